//! How ecbench measures a pass: completion-latency histograms and totals per direction,
//! per-second samples, CPU use, and a fio-like status line on a terminal while it runs
//! (docs/performance.md, "How a result is measured").

use crate::bench::units::{human_bin, human_count};
use crate::term;
use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// fio's default `percentile_list`.
pub const PERCENTILES: [f64; 17] = [
    1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95,
    99.99,
];
/// Direction indexes, in fio's order.
pub const READ: usize = 0;
pub const WRITE: usize = 1;

/// fio's latency histogram (the one its `json+` output writes as `clat_ns.bins`): values
/// below 128 ns have a bucket each; above, every power of two is split into 64 buckets,
/// 29 groups in all, the last bucket holding everything beyond.
const PLAT_BITS: u32 = 6;
const PLAT_VAL: u64 = 1 << PLAT_BITS;
/// Buckets of fio's histogram (29 groups of 64).
pub const PLAT_NR: usize = 29 * PLAT_VAL as usize;

/// The bucket of fio's histogram that a latency of `ns` falls in.
pub fn plat_idx(ns: u64) -> usize {
    let msb = 63u32.saturating_sub(ns.leading_zeros());
    if msb <= PLAT_BITS {
        return ns as usize;
    }
    let error_bits = msb - PLAT_BITS;
    let base = ((error_bits + 1) as u64) << PLAT_BITS;
    let offset = (PLAT_VAL - 1) & (ns >> error_bits);
    ((base + offset) as usize).min(PLAT_NR - 1)
}

/// The value fio names bucket `idx` by (the middle of its range, rounded down as fio does).
pub fn plat_val(idx: usize) -> u64 {
    let idx = idx as u64;
    if idx < PLAT_VAL << 1 {
        return idx;
    }
    let error_bits = (idx >> PLAT_BITS) - 1;
    let base = 1u64 << (error_bits + PLAT_BITS as u64);
    let k = idx % PLAT_VAL;
    base + ((k as f64 + 0.5) * (1u64 << error_bits) as f64) as u64
}

/// One completed operation for the per-I/O logs: (ms since the measured part of the pass
/// began, completion latency in ns, bytes).
pub type IoLogEntry = (u64, u64, u64);

/// Completion latencies and totals of one direction.
pub struct Dir {
    pub hist: Histogram<u64>,
    /// fio's histogram of the same latencies ([`plat_idx`]).
    pub plat: Vec<u64>,
    pub ops: u64,
    pub bytes: u64,
    /// Every operation, when the run writes fio's logs (`--write_lat_log` and the others).
    pub log: Vec<IoLogEntry>,
}

impl Dir {
    pub fn new() -> Dir {
        // 1 ns to 60 s at 3 significant digits (docs/performance.md, "How a result is measured"); constant, valid bounds.
        let hist = Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
        Dir {
            hist,
            plat: vec![0; PLAT_NR],
            ops: 0,
            bytes: 0,
            log: Vec::new(),
        }
    }
    pub fn pair() -> [Dir; 2] {
        [Dir::new(), Dir::new()]
    }
    /// Counts one completed operation (nothing while the pass ramps up, `--ramp_time`).
    pub fn record(&mut self, latency: Duration, bytes: u64, live: &Live, dir: usize) {
        if live.ramping.load(Ordering::Relaxed) {
            return;
        }
        let ns = latency.as_nanos() as u64;
        self.hist.saturating_record(ns.max(1));
        self.plat[plat_idx(ns)] += 1;
        if live.log_ios {
            let at = live
                .began
                .get()
                .map_or(0, |b| b.elapsed().as_millis() as u64);
            self.log.push((at, ns, bytes));
        }
        self.ops += 1;
        self.bytes += bytes;
        live.ops[dir].fetch_add(1, Ordering::Relaxed);
        live.bytes[dir].fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn merge(pair: &mut [Dir; 2], other: &[Dir; 2]) {
        for (d, o) in pair.iter_mut().zip(other) {
            // Same bounds on both sides, so the addition cannot overflow the range.
            let _ = d.hist.add(&o.hist);
            for (a, b) in d.plat.iter_mut().zip(&o.plat) {
                *a += b;
            }
            d.log.extend_from_slice(&o.log);
            d.ops += o.ops;
            d.bytes += o.bytes;
        }
    }
    pub fn bw(&self, rt: Duration) -> f64 {
        self.bytes as f64 / rt.as_secs_f64().max(1e-9)
    }
    pub fn iops(&self, rt: Duration) -> f64 {
        self.ops as f64 / rt.as_secs_f64().max(1e-9)
    }
    pub fn q(&self, percentile: f64) -> u64 {
        self.hist.value_at_quantile(percentile / 100.0)
    }
}

impl Default for Dir {
    fn default() -> Dir {
        Dir::new()
    }
}

/// When a job's next operation is due at a fixed rate (`--rate_iops`, as fio's
/// `rate_iops` with its default linear process): the n-th at the job's start + n / rate,
/// so a job that fell behind catches up instead of losing the operations it was late with.
pub struct Pacer {
    start: Instant,
    per_op: Option<Duration>,
    issued: u64,
}

impl Pacer {
    /// A pacer for `rate` operations per second (None: every operation is due at once).
    pub fn new(rate: Option<u64>) -> Pacer {
        Pacer {
            start: Instant::now(),
            per_op: rate.map(|r| Duration::from_secs_f64(1.0 / r.max(1) as f64)),
            issued: 0,
        }
    }

    /// When the next operation is due, if that is still to come.
    pub fn due_later(&self) -> Option<Instant> {
        let per_op = self.per_op?;
        let due = self.start + per_op.mul_f64(self.issued as f64);
        (due > Instant::now()).then_some(due)
    }

    /// Counts one operation issued.
    pub fn issued(&mut self) {
        self.issued += 1;
    }
}

/// Sleeps until `t` (at once when it has passed).
pub fn sleep_until(t: Instant) {
    let left = t.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        std::thread::sleep(left);
    }
}

/// How a pass is measured, from the command line (fio's options of the same names).
#[derive(Clone, Debug, Default)]
pub struct MeasureCfg {
    /// `--ramp_time`: the workload runs this long before anything is counted.
    pub ramp: Duration,
    /// Length of one throughput sample (default 1 s).
    pub tick: Option<Duration>,
    /// Keep every operation for fio's per-I/O logs.
    pub log_ios: bool,
    /// `--status-interval`: print the figures so far this often.
    pub status_every: Option<Duration>,
    /// Print those interim figures as JSON (one object per line).
    pub status_json: bool,
}

impl MeasureCfg {
    /// The sample length: 1 s, or shorter when interim reports come more often.
    fn tick(&self) -> Duration {
        let tick = self.tick.unwrap_or(Duration::from_secs(1));
        self.status_every.map_or(tick, |every| tick.min(every))
    }
}

/// Counters the workers bump and the sampler reads once a tick.
#[derive(Default)]
pub struct Live {
    pub ops: [AtomicU64; 2],
    pub bytes: [AtomicU64; 2],
    pub writes_issued: AtomicU64,
    pub stop: AtomicBool,
    /// True while the pass ramps up: operations then are not counted.
    pub ramping: AtomicBool,
    /// When the measured part began (the end of the ramp).
    pub began: OnceLock<Instant>,
    /// Whether [`Dir::record`] keeps every operation for the per-I/O logs.
    pub log_ios: bool,
}

/// One measured pass: totals per direction, wall time, per-tick samples, CPU use.
pub struct Pass {
    pub dirs: [Dir; 2],
    pub runtime: Duration,
    /// Per tick and direction: (bytes, ops).
    pub samples: Vec<[(u64, u64); 2]>,
    /// Length of one sample.
    pub tick: Duration,
    /// User and system CPU of the whole process, in % of the wall time.
    pub cpu: (f64, f64),
    /// Context switches, major and minor page faults during the pass (fio's ctx, majf, minf).
    pub faults: (u64, u64, u64),
    /// When the measured part began.
    pub started: SystemTime,
    /// Per job, per direction: every operation (only with `MeasureCfg::log_ios`).
    pub job_logs: Vec<[Vec<IoLogEntry>; 2]>,
    pub notes: Vec<String>,
}

/// What a job or a pass's work returns: totals per direction and notes for the report.
pub type JobResult = Result<([Dir; 2], Vec<String>)>;

/// The process's resource use: (user s, system s), (context switches, major, minor faults).
#[derive(Clone, Copy)]
struct Usage((f64, f64), (u64, u64, u64));

fn usage() -> Usage {
    // SAFETY: getrusage writes one rusage struct into the zeroed local we pass it.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let n = |v: libc::c_long| v.max(0) as u64;
    Usage(
        (tv(ru.ru_utime), tv(ru.ru_stime)),
        (
            n(ru.ru_nvcsw) + n(ru.ru_nivcsw),
            n(ru.ru_majflt),
            n(ru.ru_minflt),
        ),
    )
}

/// One interim report of `--status-interval`: the figures since the measured part began.
fn interim(label: &str, cfg: &MeasureCfg, elapsed: Duration, now: &[(u64, u64); 2]) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let line = if cfg.status_json {
        let dir = |(bytes, ops): (u64, u64)| {
            serde_json::json!({ "io_bytes": bytes, "total_ios": ops,
                "bw_bytes": (bytes as f64 / secs) as u64, "iops": ops as f64 / secs })
        };
        serde_json::json!({ "interim": { "pass": label, "elapsed_ms": elapsed.as_millis() as u64 },
            "read": dir(now[READ]), "write": dir(now[WRITE]) })
        .to_string()
    } else {
        let mut s = format!("{label}: {:.1}s:", elapsed.as_secs_f64());
        for (i, name) in [(READ, "read"), (WRITE, "write")] {
            let (bytes, ops) = now[i];
            if ops > 0 {
                let (iops, bw) = (
                    human_count(ops as f64 / secs),
                    human_bin(bytes as f64 / secs),
                );
                s += &format!(" {name}: IOPS={iops}, BW={bw}/s;");
            }
        }
        s.trim_end_matches(';').to_string()
    };
    // The interim lines go above the status line, like log lines.
    term::suspend(|| println!("{line}"));
}

/// Runs `work` while a sampler records per-tick figures and, when stderr is a terminal,
/// draws a fio-like status line there. `expected` (ops, time) gives the percentage done.
/// With `cfg.ramp` the workload runs that long before anything is counted: the runtime, the
/// samples, the CPU use and the logs start at the end of the ramp.
pub fn measured<F>(
    label: &str,
    expected: (Option<u64>, Option<Duration>),
    cfg: &MeasureCfg,
    work: F,
) -> Result<Pass>
where
    F: FnOnce(&Live) -> JobResult,
{
    let live = Live {
        ramping: AtomicBool::new(!cfg.ramp.is_zero()),
        log_ios: cfg.log_ios,
        ..Live::default()
    };
    let line = term::status_line();
    let (tx, rx) = mpsc::channel::<()>();
    let start = Instant::now();
    let tick = cfg.tick();
    let (result, sampled) = std::thread::scope(|s| {
        let (live, line) = (&live, &line);
        let sampler = s.spawn(move || {
            let mut stopped = false;
            if !cfg.ramp.is_zero() {
                stopped = rx.recv_timeout(cfg.ramp) != Err(mpsc::RecvTimeoutError::Timeout);
            }
            let (began, at_start) = (Instant::now(), (usage(), SystemTime::now()));
            let _ = live.began.set(began);
            live.ramping.store(false, Ordering::Relaxed);
            let (mut samples, mut last, mut last_status) = (Vec::new(), [(0u64, 0u64); 2], began);
            while !stopped && rx.recv_timeout(tick) == Err(mpsc::RecvTimeoutError::Timeout) {
                let now: [(u64, u64); 2] = std::array::from_fn(|i| {
                    (
                        live.bytes[i].load(Ordering::Relaxed),
                        live.ops[i].load(Ordering::Relaxed),
                    )
                });
                let d: [(u64, u64); 2] =
                    std::array::from_fn(|i| (now[i].0 - last[i].0, now[i].1 - last[i].1));
                samples.push(d);
                last = now;
                if let Some(every) = cfg.status_every {
                    if last_status.elapsed() >= every {
                        last_status = Instant::now();
                        interim(label, cfg, began.elapsed(), &now);
                    }
                }
                if !line.is_hidden() {
                    let el = start.elapsed().as_secs_f64();
                    let pct = match expected {
                        (Some(ops), _) => 100.0 * (now[0].1 + now[1].1) as f64 / ops as f64,
                        (None, Some(t)) => 100.0 * el / t.as_secs_f64(),
                        _ => 0.0,
                    };
                    let eta = expected.1.map_or(0.0, |t| (t.as_secs_f64() - el).max(0.0)) as u64;
                    let per_s = |v: u64| v as f64 / tick.as_secs_f64();
                    let (rb, wb) = (human_bin(per_s(d[0].0)), human_bin(per_s(d[1].0)));
                    let (ri, wi) = (human_count(per_s(d[0].1)), human_count(per_s(d[1].1)));
                    let (m, s) = (eta / 60, eta % 60);
                    let pct = pct.min(100.0);
                    let ramp = if live.began.get().is_none() {
                        "ramp "
                    } else {
                        ""
                    };
                    line.set_message(format!(
                        "Jobs: 1 (f=1): [{ramp}{label}][{pct:.1}%][r={rb}/s,w={wb}/s]\
                         [r={ri},w={wi} IOPS][eta {m:02}m:{s:02}s]"
                    ));
                }
            }
            line.finish_and_clear();
            (samples, began, at_start)
        });
        let r = work(live);
        drop(tx);
        let sampled = sampler.join().ok();
        (r, sampled)
    });
    let (samples, began, (usage0, started)) =
        sampled.ok_or_else(|| anyhow!("the sampler thread panicked"))?;
    let runtime = began.elapsed();
    let (dirs, notes) = result?;
    let (usage1, wall) = (usage(), runtime.as_secs_f64().max(1e-9));
    let cpu = (
        100.0 * (usage1.0 .0 - usage0.0 .0) / wall,
        100.0 * (usage1.0 .1 - usage0.0 .1) / wall,
    );
    let faults = (
        usage1.1 .0.saturating_sub(usage0.1 .0),
        usage1.1 .1.saturating_sub(usage0.1 .1),
        usage1.1 .2.saturating_sub(usage0.1 .2),
    );
    Ok(Pass {
        dirs,
        runtime,
        samples,
        tick,
        cpu,
        faults,
        started,
        job_logs: Vec::new(),
        notes,
    })
}

/// Runs `numjobs` threads of `job` as one measured pass and merges their figures and notes
/// (each job's per-I/O log is kept apart, as fio writes one log per job).
pub fn jobs_pass<F>(
    label: &str,
    expected: (Option<u64>, Option<Duration>),
    cfg: &MeasureCfg,
    numjobs: usize,
    job: F,
) -> Result<Pass>
where
    F: Fn(&Live, usize) -> JobResult + Sync,
{
    let logs = Mutex::new(Vec::new());
    let mut pass = measured(label, expected, cfg, |live| {
        let job = &job;
        let results: Vec<JobResult> = std::thread::scope(|s| {
            let jobs: Vec<_> = (0..numjobs)
                .map(|j| s.spawn(move || job(live, j)))
                .collect();
            let panicked = || Err(anyhow!("a job thread panicked"));
            jobs.into_iter()
                .map(|h| h.join().unwrap_or_else(|_| panicked()))
                .collect()
        });
        let (mut total, mut notes) = (Dir::pair(), Vec::<String>::new());
        let mut job_logs = Vec::new();
        for r in results {
            let (mut d, n) = r?;
            job_logs.push([
                std::mem::take(&mut d[READ].log),
                std::mem::take(&mut d[WRITE].log),
            ]);
            Dir::merge(&mut total, &d);
            notes.extend(n);
        }
        if let Ok(mut l) = logs.lock() {
            *l = job_logs;
        }
        notes.sort();
        notes.dedup();
        Ok((total, notes))
    })?;
    pass.job_logs = logs.into_inner().unwrap_or_default();
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plat_buckets_match_fio() {
        // Values fio's json+ output names its buckets by (a 4K random read run of fio 3.33).
        for (ns, val) in [(158, 159), (159, 159), (160, 161), (167, 167), (100, 100)] {
            assert_eq!(plat_val(plat_idx(ns)), val, "{ns}");
        }
        // Every bucket's value falls in the bucket, and buckets are in order.
        for idx in 0..PLAT_NR - 1 {
            assert_eq!(plat_idx(plat_val(idx)), idx);
            assert!(plat_val(idx) < plat_val(idx + 1));
        }
        assert_eq!(plat_idx(0), 0);
        assert_eq!(plat_idx(u64::MAX), PLAT_NR - 1);
    }
}
