//! ecbench's report: fio's layout and fio's JSON field names, with the EC-specific figures
//! (the raw pass, engine/raw ratios, write amplification) in a top-level `"ectable"` object.

use crate::bench::args::{BenchArgs, OutputFormat, Rw};
use crate::bench::measure::{plat_val, Dir, Pass, READ, WRITE};
use crate::bench::raw::RawPlan;
use crate::bench::units::{human_bin, human_count, human_dec, human_ns, lat_unit};
use anyhow::{Context, Result};
use ectable_engine::Status;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Everything the output needs.
pub struct Report<'a> {
    pub cli: &'a BenchArgs,
    /// The table the data set is in.
    pub table: &'a str,
    pub n: usize,
    pub nkeys: u64,
    pub pass: &'a Pass,
    pub raw: Option<&'a (RawPlan, Pass)>,
    pub laid: Option<&'a Pass>,
    pub st: &'a Status,
}

fn mean_dev(v: &[f64]) -> (f64, f64) {
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len().max(1) as f64;
    (mean, var.sqrt())
}

fn min_max(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    (
        if v.is_empty() { 0.0 } else { min },
        v.iter().copied().fold(0.0, f64::max),
    )
}

/// How a direction is written: the percentiles asked for, whether fio's histogram
/// (`clat_ns.bins`, json+) goes with them, and the length of one throughput sample.
struct DirStyle<'a> {
    percentiles: &'a [f64],
    bins: bool,
    tick: Duration,
}

/// fio's direction object (`jobs[].read|write`).
fn dir_json(d: &Dir, rt: Duration, samples: &[[(u64, u64); 2]], i: usize, st: &DirStyle) -> Value {
    let h = &d.hist;
    let mut clat = json!({ "min": h.min(), "max": h.max(), "mean": h.mean(),
                           "stddev": h.stdev(), "N": h.len() });
    let lat = clat.clone();
    if !h.is_empty() {
        let p: Map<String, Value> = st
            .percentiles
            .iter()
            .map(|q| (format!("{q:.6}"), json!(d.q(*q))))
            .collect();
        clat["percentile"] = Value::Object(p);
        if st.bins {
            // fio writes the buckets that hold something, named by their value in ns.
            let bins: Map<String, Value> = (d.plat.iter().enumerate())
                .filter(|(_, n)| **n > 0)
                .map(|(idx, n)| (plat_val(idx).to_string(), json!(n)))
                .collect();
            clat["bins"] = Value::Object(bins);
        }
    }
    let per_s = st.tick.as_secs_f64().max(1e-9);
    let bw: Vec<f64> = samples
        .iter()
        .map(|s| s[i].0 as f64 / 1024.0 / per_s)
        .collect();
    let iops: Vec<f64> = samples.iter().map(|s| s[i].1 as f64 / per_s).collect();
    let ((bw_mean, bw_dev), (bw_min, bw_max)) = (mean_dev(&bw), min_max(&bw));
    let ((iops_mean, iops_dev), (iops_min, iops_max)) = (mean_dev(&iops), min_max(&iops));
    let runtime = if d.ops > 0 { rt.as_millis() as u64 } else { 0 };
    json!({
        "io_bytes": d.bytes, "io_kbytes": d.bytes / 1024, "bw_bytes": d.bw(rt) as u64,
        "bw": (d.bw(rt) / 1024.0) as u64, "iops": d.iops(rt), "runtime": runtime,
        "total_ios": d.ops, "short_ios": 0, "drop_ios": 0,
        "slat_ns": { "min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0 },
        "clat_ns": clat, "lat_ns": lat,
        "bw_min": bw_min as u64, "bw_max": bw_max as u64,
        "bw_agg": if d.ops > 0 { 100.0 } else { 0.0 },
        "bw_mean": bw_mean, "bw_dev": bw_dev, "bw_samples": bw.len(),
        "iops_min": iops_min as u64, "iops_max": iops_max as u64, "iops_mean": iops_mean,
        "iops_stddev": iops_dev, "iops_samples": iops.len(),
    })
}

impl Report<'_> {
    /// Writes the report in the format of `--output-format`, to stdout or to `--output`.
    pub fn print(&self) -> Result<()> {
        let text = match self.cli.output_format {
            OutputFormat::Json | OutputFormat::JsonPlus => {
                serde_json::to_string_pretty(&self.json())? + "\n"
            }
            OutputFormat::Normal => self.normal(),
        };
        if let Some(path) = &self.cli.output {
            return std::fs::write(path, text.as_bytes())
                .with_context(|| format!("writing the report to {}", path.display()));
        }
        // A closed stdout is an error like any other, not a panic of print!.
        std::io::stdout()
            .write_all(text.as_bytes())
            .context("writing the report")
    }

    /// Per direction both passes did: engine figures against raw (and, for writes, against
    /// the coded-write target raw x k/w).
    fn ratios(&self) -> Value {
        let Some((plan, raw)) = self.raw else {
            return Value::Null;
        };
        let (p, st) = (self.pass, self.st);
        let kw = st.data_shards as f64 / (st.data_shards + st.parity_shards) as f64;
        let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let mut out = Map::new();
        for (i, name) in [(READ, "read"), (WRITE, "write")] {
            let (e, r) = (&p.dirs[i], &raw.dirs[i]);
            if e.ops == 0 || r.ops == 0 {
                continue;
            }
            let (ebw, rbw) = (e.bw(p.runtime), r.bw(raw.runtime));
            let mut o = json!({ "engine_bw_bytes": ebw as u64, "raw_bw_bytes": rbw as u64,
                                "engine_to_raw": div(ebw, rbw) });
            if i == WRITE {
                o["target_bw_bytes"] = json!((rbw * kw) as u64);
                o["engine_to_target"] = json!(div(ebw, rbw * kw));
            }
            if plan.random {
                let (ei, ri) = (e.iops(p.runtime), r.iops(raw.runtime));
                o["engine_iops"] = json!(ei);
                o["raw_iops"] = json!(ri);
                o["iops_engine_to_raw"] = json!(div(ei, ri));
            }
            out.insert(name.into(), o);
        }
        Value::Object(out)
    }

    fn options(&self) -> Value {
        let c = self.cli;
        let mut o = json!({
            "name": c.name, "filename": c.devices, "rw": c.rw.name(), "bs": c.bs.to_string(),
            "iodepth": c.iodepth.to_string(), "numjobs": c.numjobs.to_string(),
            "ioengine": fio_engine(&self.st.io_engine), "direct": "1",
            "randseed": c.seed.to_string(),
        });
        if let Some(s) = c.size {
            o["size"] = json!(s.to_string());
        }
        if let Some(r) = c.runtime {
            o["runtime"] = json!(format!("{}ms", r.as_millis()));
        }
        if let Some(r) = c.rate_iops {
            o["rate_iops"] = json!(r.to_string());
        }
        if let Some((idx, delay)) = c.slow_device {
            o["slow_device"] = json!(format!("{idx}:{}ms", delay.as_secs_f64() * 1e3));
        }
        if matches!(c.rw, Rw::Mixed | Rw::Readwrite | Rw::TableMixed) {
            o["rwmixread"] = json!(c.rwmixread.to_string());
        }
        if let Some(r) = c.ramp_time {
            o["ramp_time"] = json!(format!("{}ms", r.as_millis()));
        }
        if c.offset > 0 {
            o["offset"] = json!(c.offset.to_string());
        }
        if c.percentile_list.is_some() {
            let list: Vec<String> = c.percentiles().iter().map(f64::to_string).collect();
            o["percentile_list"] = json!(list.join(":"));
        }
        for (key, v) in [
            ("write_lat_log", &c.write_lat_log),
            ("write_bw_log", &c.write_bw_log),
            ("write_iops_log", &c.write_iops_log),
        ] {
            if let Some(prefix) = v {
                o[key] = json!(prefix);
            }
        }
        if c.log_avg_msec > 0 {
            o["log_avg_msec"] = json!(c.log_avg_msec.to_string());
        }
        o
    }

    fn style(&self, tick: Duration) -> (Vec<f64>, bool, Duration) {
        let bins = self.cli.output_format == OutputFormat::JsonPlus;
        (self.cli.percentiles(), bins, tick)
    }

    fn json(&self) -> Value {
        let (p, st) = (self.pass, self.st);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let zero = json!({ "min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0 });
        let (percentiles, bins, tick) = self.style(p.tick);
        let style = DirStyle {
            percentiles: &percentiles,
            bins,
            tick,
        };
        let started = p.started.duration_since(UNIX_EPOCH).unwrap_or_default();
        let job = json!({
            "jobname": self.cli.name, "groupid": 0, "error": 0, "eta": 0,
            "elapsed": p.runtime.as_secs(), "job options": self.options(),
            "read": dir_json(&p.dirs[READ], p.runtime, &p.samples, READ, &style),
            "write": dir_json(&p.dirs[WRITE], p.runtime, &p.samples, WRITE, &style),
            "trim": dir_json(&Dir::new(), Duration::ZERO, &[], 0, &style),
            "sync": { "total_ios": 0, "lat_ns": zero },
            "job_runtime": p.runtime.as_millis() as u64, "usr_cpu": p.cpu.0, "sys_cpu": p.cpu.1,
            "ctx": p.faults.0, "majf": p.faults.1, "minf": p.faults.2,
            // When the measured part of the pass began, in ms since the epoch.
            "job_start": started.as_millis() as u64,
        });
        let mut job = job;
        for (k, v) in iodepth_dists(self.cli.iodepth) {
            job[k] = v;
        }
        let buckets = latency_buckets(&[&p.dirs[READ].hist, &p.dirs[WRITE].hist]);
        for (k, v) in buckets {
            job[k] = v;
        }
        job["latency_depth"] = json!(self.cli.iodepth);
        job["latency_target"] = json!(0);
        job["latency_percentile"] = json!(100.0);
        job["latency_window"] = json!(0);
        let raw = self.raw.map_or(Value::Null, |(plan, r)| {
            json!({
                "pattern": plan.describe(self.n), "block_bytes": plan.block,
                "queue_depth": plan.qd, "queue_depth_per_device": !plan.random, "jobs": plan.jobs,
                "region_bytes_per_device": plan.region.1, "runtime": r.runtime.as_millis() as u64,
                "read": dir_json(&r.dirs[READ], r.runtime, &r.samples, READ, &style),
                "write": dir_json(&r.dirs[WRITE], r.runtime, &r.samples, WRITE, &style),
            })
        });
        let div = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        let laydown_ms = self.laid.map_or(0, |l| l.runtime.as_millis() as u64);
        let ectable = json!({
            "schema_version": 1, "k": st.data_shards, "m": st.parity_shards, "devices": self.n,
            "chunk_size_bytes": st.chunk_size_bytes, "segment_size_bytes": st.segment_size_bytes,
            "io_engine": st.io_engine, "array_uuid": st.array_uuid,
            "formatted": self.cli.k.is_some(),
            "dataset": { "table": self.table, "rows": self.nkeys, "value_bytes": self.cli.bs,
                         "laid_down": self.laid.is_some(), "laydown_ms": laydown_ms },
            "raw": raw, "ratios": self.ratios(),
            "stripes_written": st.stripes_written,
            "short_stripes_written": st.short_stripes_written,
            "journal_entries_written": st.journal_entries_written,
            "journal_entries_by_caller": st.journal_entries_by_caller,
            "records_continued": st.records_continued,
            "chunk_bytes_written": st.chunk_bytes_written,
            "payload_bytes_written": st.payload_bytes_written,
            "write_amplification": div(st.chunk_bytes_written, st.payload_bytes_written),
            "device_bytes_per_value_byte": div(st.chunk_bytes_written, p.dirs[WRITE].bytes),
            "degraded_reads": st.degraded_reads, "degraded_writes": st.degraded_writes,
            "slow_events": st.slow_events,
            "notes": p.notes,
        });
        json!({
            "fio version": format!("ecbench-{}", env!("CARGO_PKG_VERSION")),
            "timestamp": now.as_secs(), "timestamp_ms": now.as_millis() as u64,
            "time": ctime_utc(now.as_secs()),
            "global options": self.options(), "jobs": [job], "disk_util": [], "ectable": ectable,
        })
    }

    fn normal(&self) -> String {
        let (p, st, c) = (self.pass, self.st, self.cli);
        let mut s = format!(
            "{}: (groupid=0, jobs={}): err= 0: pid={}\n",
            c.name,
            c.numjobs,
            std::process::id()
        );
        let (percentiles, _, tick) = self.style(p.tick);
        for (i, name) in [(READ, "read"), (WRITE, "write")] {
            if p.dirs[i].ops > 0 {
                s += &dir_text(
                    name,
                    &p.dirs[i],
                    p.runtime,
                    (&p.samples, tick),
                    i,
                    &percentiles,
                );
            }
        }
        let (usr, sys, (r, w)) = (p.cpu.0, p.cpu.1, (p.dirs[READ].ops, p.dirs[WRITE].ops));
        let _ = writeln!(s, "  cpu          : usr={usr:.2}%, sys={sys:.2}%");
        let _ = writeln!(
            s,
            "     issued rwts: total={r},{w},0,0 short=0,0,0,0 dropped=0,0,0,0"
        );
        s += "\nRun status group 0 (all jobs):\n";
        for (i, name) in [(READ, "READ"), (WRITE, "WRITE")] {
            let (d, ms) = (&p.dirs[i], p.runtime.as_millis());
            if d.ops > 0 {
                let (bb, bd) = (human_bin(d.bw(p.runtime)), human_dec(d.bw(p.runtime)));
                let (ib, id) = (human_bin(d.bytes as f64), human_dec(d.bytes as f64));
                let _ = writeln!(
                    s,
                    "{name:>7}: bw={bb}/s ({bd}/s), io={ib} ({id}), run={ms}-{ms}msec"
                );
            }
        }
        let (k, m, chunk) = (
            st.data_shards,
            st.parity_shards,
            human_bin(st.chunk_size_bytes as f64),
        );
        let laid = if self.laid.is_some() {
            ", laid down by this run"
        } else {
            ""
        };
        let (n, rows, bs) = (self.n, self.nkeys, human_bin(c.bs as f64));
        let _ = writeln!(
            s,
            "\nectable: RS({k},{m}) over {n} devices, chunk {chunk}, io engine {}",
            st.io_engine
        );
        let _ = writeln!(
            s,
            "  data set: {rows} rows x {bs} in table '{}'{laid}",
            self.table
        );
        if let Some((plan, raw)) = self.raw {
            let _ = writeln!(s, "  raw pass: {}", plan.describe(self.n));
            for (i, name) in [(READ, "read"), (WRITE, "write")] {
                let r = &raw.dirs[i];
                if r.ops > 0 {
                    let (iops, rbw) = (human_count(r.iops(raw.runtime)), r.bw(raw.runtime));
                    let (bb, bd) = (human_bin(rbw), human_dec(rbw));
                    let (p50, p99, p999) = (
                        human_ns(r.q(50.0)),
                        human_ns(r.q(99.0)),
                        human_ns(r.q(99.9)),
                    );
                    let _ = write!(s, "  raw {name:>5}: IOPS={iops}, BW={bb}/s ({bd}/s)");
                    let _ = writeln!(s, ", clat p50={p50} p99={p99} p99.9={p999}");
                }
            }
            let ratios = self.ratios();
            for (name, o) in ratios.as_object().into_iter().flatten() {
                let f = |key: &str| o.get(key).and_then(Value::as_f64).unwrap_or(0.0);
                let _ = write!(s, "  ratio {name:>5}: engine/raw={:.3}", f("engine_to_raw"));
                if o.get("engine_to_target").is_some() {
                    let target = human_bin(f("target_bw_bytes"));
                    let _ = write!(
                        s,
                        ", target raw x k/w={target}/s, engine/target={:.3}",
                        f("engine_to_target")
                    );
                }
                if o.get("iops_engine_to_raw").is_some() {
                    let _ = write!(s, ", IOPS engine/raw={:.3}", f("iops_engine_to_raw"));
                }
                s += "\n";
            }
        }
        let (sw, ss, cb, pb) = (
            st.stripes_written,
            st.short_stripes_written,
            st.chunk_bytes_written,
            st.payload_bytes_written,
        );
        let wa = cb as f64 / pb.max(1) as f64;
        let _ = writeln!(
            s,
            "  stripes written={sw} (short={ss}), chunk bytes={cb}, payload bytes={pb}"
        );
        if st.journal_entries_written > 0 {
            let _ = writeln!(
                s,
                "  sync journal entries={} (written by the syncing caller: {})",
                st.journal_entries_written, st.journal_entries_by_caller
            );
        }
        let _ = writeln!(
            s,
            "  write amplification={wa:.3}, degraded reads={}, degraded writes={}",
            st.degraded_reads, st.degraded_writes
        );
        for note in &p.notes {
            let _ = writeln!(s, "  note: {note}");
        }
        s
    }
}

/// fio's per-direction block: IOPS/BW line, clat summary and percentiles, bw/iops samples.
fn dir_text(
    name: &str,
    d: &Dir,
    rt: Duration,
    (samples, tick): (&[[(u64, u64); 2]], Duration),
    i: usize,
    percentiles: &[f64],
) -> String {
    let (h, ms, bw) = (&d.hist, rt.as_millis(), d.bw(rt));
    let (iops, bb, bd, io) = (
        human_count(d.iops(rt)),
        human_bin(bw),
        human_dec(bw),
        human_bin(d.bytes as f64),
    );
    let mut s = format!("  {name}: IOPS={iops}, BW={bb}/s ({bd}/s)({io}/{ms}msec)\n");
    let (unit, div) = lat_unit(h.min(), h.max());
    let (min, max, avg, dev) = (
        h.min() as f64 / div,
        h.max() as f64 / div,
        h.mean() / div,
        h.stdev() / div,
    );
    let _ = writeln!(
        s,
        "    clat ({unit}): min={min:.0}, max={max:.0}, avg={avg:.2}, stdev={dev:.2}"
    );
    let pv: Vec<u64> = percentiles.iter().map(|q| d.q(*q)).collect();
    let (unit, div) = lat_unit(pv[0], pv[pv.len() - 1]);
    let _ = writeln!(s, "    clat percentiles ({unit}):");
    let cells: Vec<String> = percentiles
        .iter()
        .zip(&pv)
        .map(|(q, v)| format!("{q:>5.2}th=[{:>5.0}]", *v as f64 / div))
        .collect();
    let rows: Vec<String> = cells
        .chunks(4)
        .map(|c| format!("     | {}", c.join(", ")))
        .collect();
    s += &rows.join(",\n");
    s += "\n";
    let per_s = tick.as_secs_f64().max(1e-9);
    let bwk: Vec<f64> = samples
        .iter()
        .map(|x| x[i].0 as f64 / 1024.0 / per_s)
        .collect();
    let io: Vec<f64> = samples.iter().map(|x| x[i].1 as f64 / per_s).collect();
    if !bwk.is_empty() {
        let (((bm, bdv), (bmin, bmax)), n) = ((mean_dev(&bwk), min_max(&bwk)), bwk.len());
        let ((im, idv), (imin, imax)) = (mean_dev(&io), min_max(&io));
        let _ = write!(
            s,
            "   bw (  KiB/s): min={bmin:.0}, max={bmax:.0}, per=100.00%, "
        );
        let _ = writeln!(s, "avg={bm:.2}, stdev={bdv:.2}, samples={n}");
        let _ = write!(s, "   iops        : min={imin:.0}, max={imax:.0}, ");
        let _ = writeln!(s, "avg={im:.2}, stdev={idv:.2}, samples={n}");
    }
    s
}

/// fio's name of an I/O engine.
fn fio_engine(name: &str) -> &str {
    match name {
        "uring" => "io_uring",
        other => other,
    }
}

/// A time as fio's `time` field writes it (C's `ctime` layout, here in UTC):
/// `Thu Dec  3 16:58:00 2026`.
pub(crate) fn ctime_utc(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {year}",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// fio's I/O depth distributions of a job, for the one depth ecbench keeps (`--iodepth`):
/// `iodepth_level` all in the bucket of that depth (fio's buckets 1, 2, 4, ..., >=64 hold
/// the depths from their bound to the next), `iodepth_submit` and `iodepth_complete` all in
/// the bucket of operations handed over or completed together (0, 4, 8, ..., 64, >=64,
/// each up to its bound).
fn iodepth_dists(depth: u32) -> Vec<(&'static str, Value)> {
    let level = ["1", "2", "4", "8", "16", "32", ">=64"];
    let at = match depth {
        0 | 1 => 0,
        d if d >= 64 => 6,
        d => (31 - d.leading_zeros()) as usize,
    };
    let lv: Map<String, Value> = (level.iter().enumerate())
        .map(|(i, k)| (k.to_string(), json!(if i == at { 100.0 } else { 0.0 })))
        .collect();
    let sub = ["0", "4", "8", "16", "32", "64", ">=64"];
    let bounds = [0u32, 4, 8, 16, 32, 64];
    let at = bounds.iter().position(|b| depth <= *b).unwrap_or(6);
    let sv: Map<String, Value> = (sub.iter().enumerate())
        .map(|(i, k)| (k.to_string(), json!(if i == at { 100.0 } else { 0.0 })))
        .collect();
    vec![
        ("iodepth_level", Value::Object(lv)),
        ("iodepth_submit", Value::Object(sv.clone())),
        ("iodepth_complete", Value::Object(sv)),
    ]
}

/// fio's latency distribution of a job (reads and writes together): per bucket the percent
/// of the I/Os whose completion latency is below the bucket's bound and at or above the
/// previous one: `latency_ns` under 1 µs, `latency_us` from 1 µs to 1 ms, `latency_ms` from
/// 1 ms on, the last bucket `>=2000` ms.
fn latency_buckets(hists: &[&hdrhistogram::Histogram<u64>]) -> Vec<(&'static str, Value)> {
    const BOUNDS: [u64; 10] = [2, 4, 10, 20, 50, 100, 250, 500, 750, 1000];
    let total: u64 = hists.iter().map(|h| h.len()).sum();
    // Every recorded value once, as (value, count): the histogram's own range counts
    // (count_between) round both ends out to whole buckets, so adjacent ranges would count
    // the values at their common bound twice and the shares add up to more than 100 %.
    let recorded: Vec<(u64, u64)> = hists
        .iter()
        .flat_map(|h| h.iter_recorded())
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect();
    let share = |lo: u64, hi: u64| -> f64 {
        if total == 0 || hi <= lo {
            return 0.0;
        }
        let n: u64 = (recorded.iter())
            .filter(|(v, _)| (lo..hi).contains(v))
            .map(|(_, c)| c)
            .sum();
        n as f64 * 100.0 / total as f64
    };
    let mut out = Vec::new();
    for (name, unit, floor) in [
        ("latency_ns", 1u64, 0u64),
        ("latency_us", 1_000, 1_000),
        ("latency_ms", 1_000_000, 1_000_000),
    ] {
        let mut m = Map::new();
        let mut lo = floor;
        for b in BOUNDS {
            let hi = (b * unit).max(floor);
            m.insert(b.to_string(), json!(share(lo, hi)));
            lo = hi;
        }
        if unit == 1_000_000 {
            m.insert("2000".into(), json!(share(lo, 2_000 * unit)));
            m.insert(">=2000".into(), json!(share(2_000 * unit, u64::MAX)));
        }
        out.push((name, Value::Object(m)));
    }
    out
}

#[cfg(test)]
mod bucket_tests {
    use hdrhistogram::Histogram;
    use serde_json::Value;

    #[test]
    fn latency_buckets_add_up_to_100_percent() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        // Values on and around the bucket bounds, where ranges meet.
        for v in [
            999, 1_000, 1_001, 1_999, 2_000, 2_001, 3_999, 4_000, 999_999, 1_000_000,
        ] {
            h.record(v).unwrap();
        }
        for v in (1..200_000u64).map(|i| i * 37 % 3_000_000 + 1) {
            h.record(v).unwrap();
        }
        let buckets = super::latency_buckets(&[&h]);
        let total: f64 = buckets
            .iter()
            .flat_map(|(_, v)| v.as_object().into_iter().flatten())
            .filter_map(|(_, v)| Value::as_f64(v))
            .sum();
        assert!((total - 100.0).abs() < 1e-9, "{total}");
    }
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn ctime_matches_known_dates() {
        assert_eq!(super::ctime_utc(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(super::ctime_utc(1_796_317_080), "Thu Dec  3 16:58:00 2026");
        assert_eq!(super::ctime_utc(951_782_400), "Tue Feb 29 00:00:00 2000");
    }
}
