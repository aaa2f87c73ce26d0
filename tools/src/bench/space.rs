//! Space-reclamation benchmarks of `ecbench --rw overwrite` and `--rw reopen` (they need
//! `--k/--m`: they format the devices, once per level).
//!
//! Overwrite: for each fill level, a freshly formatted array is loaded with rows up to that
//! fraction of its usable capacity (the fresh-array ingest rate), then random rows are
//! overwritten (uniformly by default: the worst case for a cleaner, no hot and cold data;
//! or skewed, `--random-distribution zoned:...`) until `loops` times the live data has been
//! rewritten. Reported per level: both rates, their ratio, and the write amplification (log
//! bytes written, relocations and checkpoints included, per byte the user wrote, with the
//! checkpoints' share apart; and device bytes, parity included).
//!
//! Reopen: rows up to `size` bytes are loaded with periodic checkpoints off; the array is
//! then opened a second time, read-only, beside the writer (what a crash would leave: the
//! whole log to replay), a checkpoint is written, and it is opened again (a recent
//! checkpoint: nothing to replay).

use crate::bench::args::{BenchArgs, Distribution, OutputFormat, Rw};
use crate::bench::kv::TABLE;
use crate::bench::setup::open_checked;
use crate::{open_devices, row_key, row_value, split_devices, term};
use anyhow::{anyhow, bail, Context, Result};
use ectable_devices::{BackendKind, IoBackend};
use ectable_engine::format::log_record::encoded_len_padded;
use ectable_engine::{format, CleanerOptions, Engine, EngineOptions, FormatOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// `ecbench --rw overwrite` and `--rw reopen`.
pub fn run(cli: &BenchArgs) -> Result<()> {
    let (Some(k), Some(m)) = (cli.k, cli.m) else {
        bail!(
            "--rw {} needs --k and --m: it formats the devices (their contents are destroyed)",
            cli.rw.name()
        );
    };
    let paths = split_devices(&cli.devices)?;
    let bs = usize::try_from(cli.bs).map_err(|_| anyhow!("--bs is too large"))?;
    let chunk = cli
        .chunk_size
        .unwrap_or(ectable_engine::DEFAULT_CHUNK_SIZE_BYTES as u64);
    let rec = encoded_len_padded(TABLE.len(), row_key(0).len(), bs);
    // Checked as every workload is; the devices are then closed, each level formats them.
    if cli.slow_device.is_some() {
        bail!(
            "--slow-device applies to the measured workloads, not --rw {}",
            cli.rw.name()
        );
    }
    open_checked(cli, &paths, Some((k as usize, m as usize)), chunk, rec)?;
    let plan = SpacePlan {
        paths,
        kind: cli.io_engine,
        format: FormatOptions {
            data_shards: k as usize,
            parity_shards: m as usize,
            chunk_size_bytes: chunk as u32,
            // 0: the engine's default for the chunk size.
            segment_size_bytes: cli.segment_size.unwrap_or(0) as u32,
            force: true,
            spare_count: 0,
            sync_journal: !cli.no_sync_journal,
            inline_values: cli.inline_values,
            wide_records: cli.wide_records,
            whole_records: cli.whole_records,
        },
        value_bytes: bs,
        batch: (cli.iodepth as usize).max(1),
        seed: cli.seed,
        distribution: cli.random_distribution.clone(),
    };
    let result = match cli.rw {
        Rw::Overwrite => json!({
            "jobname": cli.name,
            "rw": "overwrite",
            "levels": overwrite(&plan, &cli.fill, cli.loops)?,
        }),
        _ => {
            let size = cli
                .size
                .ok_or_else(|| anyhow!("--rw reopen needs --size"))?;
            json!({
                "jobname": cli.name,
                "rw": "reopen",
                "result": reopen(&plan, size)?,
            })
        }
    };
    if cli.output_format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    }
    Ok(())
}

/// What the space benchmarks need from the command line.
pub struct SpacePlan {
    pub paths: Vec<PathBuf>,
    pub kind: BackendKind,
    pub format: FormatOptions,
    pub value_bytes: usize,
    /// Rows appended per sync.
    pub batch: usize,
    pub seed: u64,
    /// Which rows the overwrite phase picks.
    pub distribution: Distribution,
}

fn fresh(plan: &SpacePlan, cleaner: CleanerOptions) -> Result<(Arc<dyn IoBackend>, Engine)> {
    let io = open_devices(&plan.paths, None, false, plan.kind)?;
    let mut f = plan.format.clone();
    f.force = true;
    format(io.as_ref(), &f).context("formatting")?;
    let e = Engine::open(
        io.clone(),
        EngineOptions {
            cleaner,
            ..Default::default()
        },
    )?;
    Ok((io, e))
}

fn rate(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs.max(1e-9) / 1048576.0
}

/// Loads rows 0..n; returns the seconds it took (durable at the end).
fn ingest(e: &Engine, plan: &SpacePlan, n: u64) -> Result<f64> {
    let t = Instant::now();
    for i in 0..n {
        e.put(
            TABLE,
            &row_key(i),
            &row_value(i, plan.seed, plan.value_bytes),
        )
        .with_context(|| format!("loading row {i}"))?;
        if (i + 1) % plan.batch as u64 == 0 {
            e.sync()?;
        }
    }
    e.sync()?;
    Ok(t.elapsed().as_secs_f64())
}

/// Whether `err` is the engine's "no space left on the array".
fn no_space(err: &anyhow::Error) -> bool {
    crate::cmd::common::engine_errors(err).any(|x| matches!(x, ectable_engine::Error::NoSpace(_)))
}

/// The overwrite benchmark at each fill level; one JSON object per level.
pub fn overwrite(plan: &SpacePlan, fills: &[f64], loops: f64) -> Result<Vec<Value>> {
    let rec = encoded_len_padded(TABLE.len(), row_key(0).len(), plan.value_bytes) as u64;
    let mut out = Vec::new();
    if !(loops > 0.0 && loops.is_finite()) {
        bail!("--loops {loops}: give a positive multiple of the rows loaded (1 overwrites as many rows as were loaded)");
    }
    for &fill in fills {
        if !(0.05..=0.95).contains(&fill) {
            bail!("--fill {fill}: give fractions between 0.05 and 0.95");
        }
        let (_io, e) = fresh(plan, CleanerOptions::default())?;
        let st = e.status();
        let n = (st.usable_capacity_bytes as f64 * fill / rec as f64) as u64;
        // The reserve and the checkpoint take a larger share of a small array: a level
        // that cannot fit is said before anything is loaded, not as "no space" part-way.
        if n * rec > st.fillable_bytes {
            let most = (st.fillable_bytes as f64 / st.usable_capacity_bytes as f64 * 100.0).floor()
                / 100.0;
            bail!(
                "--fill {fill}: {n} rows of {} B take {}, more than the {} of live data this array may hold ({} usable; the reserve and the checkpoint keep {} segments): give a fill up to {most:.2}, or larger devices",
                plan.value_bytes,
                term::bytes(n * rec),
                term::bytes(st.fillable_bytes),
                term::bytes(st.usable_capacity_bytes),
                st.reserved_segments + st.checkpoint_segments as usize
            );
        }
        let user_bytes = n * plan.value_bytes as u64;
        eprintln!(
            "overwrite: fill {:.0}%: loading {n} rows of {} B ({} of {} usable)",
            fill * 100.0,
            plan.value_bytes,
            term::bytes(n * rec),
            term::bytes(st.usable_capacity_bytes)
        );
        let ingest_secs = match ingest(&e, plan, n) {
            Ok(secs) => secs,
            Err(err) if no_space(&err) => {
                let loaded = e.status().keys;
                let most = (fill * loaded as f64 / n as f64 * 0.95 * 100.0).floor() / 100.0;
                bail!(
                    "--fill {fill}: the array was full after {loaded} of the {n} rows (the reserve and the index checkpoint take a larger share of a small array): give a fill up to {most:.2}, or larger devices"
                );
            }
            Err(err) => return Err(err),
        };
        let before = e.status();
        let writes = (n as f64 * loops) as u64;
        let mut rng = SmallRng::seed_from_u64(plan.seed ^ 0x5eed);
        let t = Instant::now();
        for w in 0..writes {
            let i = plan.distribution.pick(n, rng.random(), rng.random());
            if let Err(err) = e.put(
                TABLE,
                &row_key(i),
                &row_value(i, plan.seed + w + 1, plan.value_bytes),
            ) {
                let err = anyhow::Error::from(err);
                if no_space(&err) {
                    bail!(
                        "--fill {fill}: the cleaner found no room after {w} of the {writes} overwrites ({err}): at this fill the reserve leaves it no free segment to work in; give a lower fill, or larger devices"
                    );
                }
                return Err(err.context(format!(
                    "overwrite {w} of {writes} at fill {:.0}%",
                    fill * 100.0
                )));
            }
            if (w + 1) % plan.batch as u64 == 0 {
                e.sync()?;
            }
        }
        e.sync()?;
        let secs = t.elapsed().as_secs_f64();
        let after = e.status();
        let over_bytes = writes * plan.value_bytes as u64;
        let log_wa =
            (after.payload_bytes_written - before.payload_bytes_written) as f64 / over_bytes as f64;
        let ckpt_wa = (after.checkpoint_bytes_written - before.checkpoint_bytes_written) as f64
            / over_bytes as f64;
        let dev_wa =
            (after.chunk_bytes_written - before.chunk_bytes_written) as f64 / over_bytes as f64;
        let (ingest_rate, over_rate) = (rate(user_bytes, ingest_secs), rate(over_bytes, secs));
        let c = &after.cleaner;
        eprintln!(
            "overwrite: fill {:.0}% ({}): ingest {ingest_rate:.1} MiB/s; overwrite {over_rate:.1} MiB/s = {:.2} x \
             ingest; write amplification {log_wa:.2} (log, of which checkpoints {ckpt_wa:.2}), {dev_wa:.2} (devices, \
             parity included); cleaner: {} segments freed, {} records moved, {} checkpoints",
            fill * 100.0,
            plan.distribution.name(),
            over_rate / ingest_rate,
            c.segments_freed - before.cleaner.segments_freed,
            c.records_relocated - before.cleaner.records_relocated,
            c.checkpoints - before.cleaner.checkpoints
        );
        out.push(json!({
            "fill": fill,
            "rows": n,
            "value_bytes": plan.value_bytes,
            "usable_bytes": st.usable_capacity_bytes,
            "ingest_mib_s": ingest_rate,
            "overwrite_mib_s": over_rate,
            "overwrite_over_ingest": over_rate / ingest_rate,
            "overwritten_rows": writes,
            "distribution": plan.distribution.name(),
            "write_amplification_log": log_wa,
            "write_amplification_checkpoints": ckpt_wa,
            "write_amplification_devices": dev_wa,
            "segments_freed": c.segments_freed - before.cleaner.segments_freed,
            "records_moved": c.records_relocated - before.cleaner.records_relocated,
            "checkpoints": c.checkpoints - before.cleaner.checkpoints,
        }));
        e.close()?;
    }
    Ok(out)
}

/// Opens the array read-only on its own I/O engine; returns (seconds, what recovery did).
fn timed_open(plan: &SpacePlan) -> Result<(f64, ectable_engine::RecoveryStats, usize)> {
    let io = open_devices(&plan.paths, None, true, plan.kind)?;
    let t = Instant::now();
    let e = Engine::open(
        io,
        EngineOptions {
            read_only: true,
            ..Default::default()
        },
    )?;
    let secs = t.elapsed().as_secs_f64();
    let keys = e.status().keys;
    Ok((secs, e.recovery_stats().clone(), keys))
}

/// The reopen benchmark for a data set of `size` bytes of values.
pub fn reopen(plan: &SpacePlan, size: u64) -> Result<Value> {
    let (_io, e) = fresh(
        plan,
        CleanerOptions {
            checkpoint_every_bytes: 0,
            ..Default::default()
        },
    )?;
    let n = size / plan.value_bytes as u64;
    let rec = encoded_len_padded(TABLE.len(), row_key(0).len(), plan.value_bytes) as u64;
    if n * rec > e.status().usable_capacity_bytes * 9 / 10 {
        bail!(
            "--size {size}: {n} rows of {} B do not fit in 90% of the array's {} usable bytes",
            plan.value_bytes,
            e.status().usable_capacity_bytes
        );
    }
    eprintln!("reopen: loading {n} rows of {} B", plan.value_bytes);
    let ingest_secs = ingest(&e, plan, n)?;
    let (no_ckpt_secs, no_ckpt, keys1) = timed_open(plan)?;
    if keys1 as u64 != n {
        bail!("reopen without a checkpoint found {keys1} rows, expected {n}");
    }
    let t = Instant::now();
    e.checkpoint()?;
    let ckpt_write_secs = t.elapsed().as_secs_f64();
    let (ckpt_secs, ckpt, keys2) = timed_open(plan)?;
    if keys2 as u64 != n {
        bail!("reopen with a checkpoint found {keys2} rows, expected {n}");
    }
    eprintln!(
        "reopen: {} of values in {n} rows (loaded at {:.1} MiB/s): open without a checkpoint {:.2} s \
         ({} read, {} records replayed); checkpoint written in {:.2} s; open with it {:.2} s ({} read, \
         {} records replayed)",
        term::bytes(size),
        rate(n * plan.value_bytes as u64, ingest_secs),
        no_ckpt_secs,
        term::bytes(no_ckpt.bytes_read),
        no_ckpt.records,
        ckpt_write_secs,
        ckpt_secs,
        term::bytes(ckpt.bytes_read),
        ckpt.records
    );
    e.close()?;
    Ok(json!({
        "value_bytes_total": n * plan.value_bytes as u64,
        "rows": n,
        "open_without_checkpoint_s": no_ckpt_secs,
        "open_without_checkpoint_bytes_read": no_ckpt.bytes_read,
        "records_replayed_without_checkpoint": no_ckpt.records,
        "checkpoint_write_s": ckpt_write_secs,
        "open_with_checkpoint_s": ckpt_secs,
        "open_with_checkpoint_bytes_read": ckpt.bytes_read,
        "records_replayed_with_checkpoint": ckpt.records,
    }))
}
