//! The one setup path of ecbench's measured workloads (`crate::bench::kv` and
//! `crate::bench::tables`): check everything the run depends on before anything is written
//! (the command line, the layout, the devices' sizes, that they hold no array unless
//! `--force`), run the raw pass, format, open the array, lay the data set down and reopen it
//! for reads, check the room for writes, run the measured pass and print the report. A
//! workload supplies only what differs: its table, its records, its jobs ([`Workload`]).

use crate::bench::args::{BenchArgs, Rw};
use crate::bench::checks::{
    check_devices_free, check_geometry, check_layout, write_capacity, Geometry,
};
use crate::bench::measure::{measured, Dir, Live, MeasureCfg, Pass, WRITE};
use crate::bench::raw::{prefill_sparse, raw_jobs, raw_plan};
use crate::bench::report::Report;
use crate::{open_devices, split_devices};
use anyhow::{anyhow, bail, Context, Result};
use ectable_devices::{open_backend, BackendKind, BlockDevice, FaultyDevice, IoBackend};
use ectable_engine::{format, Engine, FormatOptions, Layout};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Data set of a read workload given only `--runtime` (at most a quarter of the array).
const DEFAULT_DATASET_BYTES: u64 = 64 << 20;

/// The measured workload, as every job sees it.
pub struct Plan {
    pub rw: Rw,
    pub bs: usize,
    pub iodepth: usize,
    pub numjobs: usize,
    pub nkeys: u64,
    /// The data set's first row (`--offset` / bs): rows base..base + nkeys.
    pub base: u64,
    /// Operations over all jobs (None: until the deadline).
    pub op_limit: Option<u64>,
    pub deadline: Option<Duration>,
    /// Puts the array has room for (counted over all jobs).
    pub max_write_ops: u64,
    pub seed: u64,
    pub read_pct: u8,
    /// Rows per range read (`--rw table-range`).
    pub range_rows: usize,
    /// Ranges read in place (`--range-view`).
    pub range_view: bool,
    pub verify: bool,
    /// Operations per second each job issues at most (`--rate_iops`).
    pub rate_iops: Option<u64>,
    /// How the pass is measured (ramp, logs, interim reports).
    pub measure: MeasureCfg,
}

/// What a measured workload adds to the shared setup: an opened array with what it needs
/// on it, its data set, and its jobs.
pub trait Workload: Sized {
    /// The table the data set is in (named in the report).
    const TABLE: &'static str;
    /// What the workload calls one record in the "does not fit a stripe" error.
    const RECORD: &'static str;
    /// The error of `--compare-raw` without `--k/--m`.
    const RAW_NEEDS_FORMAT: &'static str;
    /// Whether `--segment-size` is passed to format (the key/value workloads format with
    /// the default segment size).
    const SEGMENT_SIZE: bool;

    /// Checks `--bs` before any device is opened.
    fn check_bs(_bs: usize) -> Result<()> {
        Ok(())
    }
    /// Bytes one record of `bs` value bytes takes in the log.
    fn record_bytes(bs: usize) -> usize;
    /// Opens the array, read-only or not.
    fn open(io: &Arc<dyn IoBackend>, read_only: bool) -> Result<Self>;
    fn engine(&self) -> &Engine;
    /// Once, after the first open: what the workload needs on the array (its table).
    fn prepare(&self) -> Result<()> {
        Ok(())
    }
    /// True when the array holds the data set: the records of `rows`.
    fn present(&self, rows: Range<u64>, bs: usize, seed: u64) -> Result<bool>;
    /// Writes the data set, measured.
    fn lay_down(&self, rows: Range<u64>, bs: usize, seed: u64) -> Result<Pass>;
    /// The measured pass.
    fn pass(&self, plan: &Plan) -> Result<Pass>;
}

/// The opened devices, the geometry checked for formatting, and the device `--slow-device`
/// names (behind the fault-injecting device, not slowed yet).
pub type Opened = (
    Arc<dyn IoBackend>,
    Option<Geometry>,
    Option<Arc<FaultyDevice>>,
);

/// Opens the devices with device `idx` behind the fault-injecting device (no delay yet), on
/// the psync engine (the fault device has no file descriptor for io_uring).
fn open_with_slow_device(
    cli: &BenchArgs,
    paths: &[PathBuf],
    idx: usize,
) -> Result<(Arc<dyn IoBackend>, Arc<FaultyDevice>)> {
    if idx >= paths.len() {
        bail!(
            "--slow-device {idx}: there are only {} devices (0..{})",
            paths.len(),
            paths.len() - 1
        );
    }
    if cli.io_engine == BackendKind::Uring {
        bail!("--slow-device needs the psync I/O engine (the fault-injecting device has no file descriptor for io_uring)");
    }
    let plain = open_devices(paths, cli.create_size, false, BackendKind::Psync)?;
    let mut devices: Vec<Arc<dyn BlockDevice>> = plain.devices().to_vec();
    let slow = Arc::new(FaultyDevice::new(devices[idx].clone(), 1));
    devices[idx] = slow.clone();
    let io = open_backend(BackendKind::Psync, devices).context("starting the I/O engine")?;
    Ok((io, slow))
}

/// Opens the devices after checking what needs no device (`--k/--m`: the layout), then,
/// when formatting, checks their sizes and that they hold no array (unless `--force`).
/// Nothing has been written when this returns.
pub fn open_checked(
    cli: &BenchArgs,
    paths: &[PathBuf],
    km: Option<(usize, usize)>,
    chunk: u64,
    rec: usize,
) -> Result<Opened> {
    if let Some((k, m)) = km {
        check_layout(paths.len(), k, m, chunk, rec)?;
    }
    // Files `--create-size` makes are removed again when a check below refuses them.
    let created = crate::CreatedFiles::to_be_made(paths, cli.create_size);
    let (io, slow) = match cli.slow_device {
        None => (
            open_devices(paths, cli.create_size, false, cli.io_engine)?,
            None,
        ),
        Some((idx, _)) => {
            let (io, slow) = open_with_slow_device(cli, paths, idx)?;
            (io, Some(slow))
        }
    };
    let mut geometry = None;
    if let Some((k, m)) = km {
        geometry = Some(check_geometry(io.as_ref(), k, m, chunk)?);
        check_devices_free(io.as_ref(), cli.force)?;
    }
    created.keep();
    Ok((io, geometry, slow))
}

/// Runs workload `W` from the command line to the printed report.
pub fn run<W: Workload>(cli: &BenchArgs) -> Result<()> {
    if cli.compare_raw && cli.k.is_none() {
        bail!("{}", W::RAW_NEEDS_FORMAT);
    }
    if cli.size.is_none() && cli.runtime.is_none() {
        bail!("give --size or --runtime");
    }
    if cli.range_view && cli.rw != Rw::TableRange {
        bail!("--range-view applies to --rw table-range only");
    }
    if cli.rate_iops.is_some() && !matches!(cli.rw, Rw::Read | Rw::Randread) {
        bail!("--rate_iops applies to --rw read and randread only");
    }
    let bs = usize::try_from(cli.bs).map_err(|_| anyhow!("--bs is too large"))?;
    W::check_bs(bs)?;
    check_outputs(cli)?;
    let paths = split_devices(&cli.devices)?;
    let chunk = cli
        .chunk_size
        .unwrap_or(ectable_engine::DEFAULT_CHUNK_SIZE_BYTES as u64);
    let n = paths.len();
    let rec = W::record_bytes(bs);
    let km = cli.k.zip(cli.m).map(|(k, m)| (k as usize, m as usize));
    // Everything the raw pass and format depend on is checked before anything is written.
    // The device --slow-device names (slowed down once the data set is laid down).
    let (io, geometry, slow) = open_checked(cli, &paths, km, chunk, rec)?;
    // The data set: rows 0..nkeys of bs bytes.
    let dataset = cli.size.unwrap_or(match geometry {
        // A quarter of the data the devices hold.
        Some(g) => DEFAULT_DATASET_BYTES.min(g.layout().map_or(0, |l| {
            l.data_bytes_of(Layout::data_area_bytes(g.cap) * n as u64) / 4
        })),
        None => DEFAULT_DATASET_BYTES,
    });
    let nkeys = (dataset / bs as u64).max(1);
    // --offset: the data set's first row.
    let base = cli.offset / bs as u64;
    let op_limit = cli
        .size
        .filter(|_| !cli.time_based)
        .map(|s| s.div_ceil(bs as u64));

    let mut raw = None;
    if let (true, Some(g)) = (cli.compare_raw, geometry) {
        let plan = raw_plan(cli, g, n, dataset, op_limit);
        prefill_sparse(io.as_ref(), &paths, plan.region)?;
        let work = |live: &Live| Ok((raw_jobs(io.as_ref(), &plan, live)?, Vec::new()));
        let mut cfg = cli.measure_cfg();
        cfg.log_ios = false;
        let pass = measured("raw", (plan.op_limit, plan.deadline), &cfg, work)?;
        raw = Some((plan, pass));
    }
    if let Some(g) = geometry {
        let segment_size_bytes = match W::SEGMENT_SIZE {
            true => u32::try_from(cli.segment_size.unwrap_or(0))
                .map_err(|_| anyhow!("--segment-size is too large"))?,
            false => 0,
        };
        let opts = FormatOptions {
            data_shards: g.k,
            parity_shards: g.m,
            chunk_size_bytes: g.chunk as u32,
            segment_size_bytes,
            force: cli.force,
            spare_count: 0,
            sync_journal: !cli.no_sync_journal,
            inline_values: cli.inline_values,
            wide_records: cli.wide_records,
            whole_records: cli.whole_records,
        };
        format(io.as_ref(), &opts).context("formatting the devices")?;
    }
    let mut w = W::open(&io, false)?;
    let limit = w.engine().max_batch_bytes();
    if rec > limit {
        bail!(
            "--bs {bs}: a {} of {rec} bytes does not fit a stripe (limit {limit})",
            W::RECORD
        );
    }
    w.prepare()?;
    let read_pct = cli.read_pct();
    let mut laid = None;
    if read_pct > 0 {
        if !w.present(base..base + nkeys, bs, cli.seed)? {
            let room = write_capacity(&w.engine().status(), rec, 1024);
            if nkeys > room {
                bail!(
                    "a data set of {nkeys} rows of {bs} bytes does not fit the array \
                     (room for about {room} rows); use a smaller --size"
                );
            }
            laid = Some(w.lay_down(base..base + nkeys, bs, cli.seed)?);
        }
        // Reopen so that every read comes from the devices (fresh puts are served from
        // memory until their stripe is flushed), read-only when nothing is written.
        w.engine()
            .close()
            .context("closing the array after laying down the data set")?;
        drop(w);
        w = W::open(&io, read_pct == 100)?;
    }
    let max_write_ops = write_capacity(&w.engine().status(), rec, cli.iodepth as usize);
    if read_pct == 0 && op_limit.is_some_and(|o| o > max_write_ops) {
        let room = max_write_ops * bs as u64;
        bail!(
            "--size {dataset} does not fit the array \
             (room for about {room} bytes at this --bs and --iodepth)"
        );
    }
    let plan = Plan {
        rw: cli.rw,
        bs,
        iodepth: cli.iodepth as usize,
        numjobs: cli.numjobs as usize,
        nkeys,
        base,
        op_limit,
        // The ramp comes on top of --runtime.
        deadline: cli.runtime.map(|r| r + cli.ramp_time.unwrap_or_default()),
        max_write_ops,
        seed: cli.seed,
        read_pct,
        range_rows: cli.range_rows as usize,
        range_view: cli.range_view,
        verify: cli.verify,
        rate_iops: cli.rate_iops,
        measure: cli.measure_cfg(),
    };
    if let (Some((idx, delay)), Some(d)) = (cli.slow_device, &slow) {
        d.set_delay(delay);
        eprintln!(
            "device {idx} ({}) now answers every request {} late",
            paths[idx].display(),
            crate::term::duration(delay)
        );
    }
    let pass = w.pass(&plan)?;
    // Records the pass's syncs left in the open stripe (acknowledged by the sync journal)
    // are written now, outside the measured time, so that the bytes they cost are counted:
    // a short run's write amplification read 0.000.
    w.engine()
        .sync_into_stripes()
        .context("writing the pass's last records into stripes")?;
    let status = w.engine().status();
    w.engine().close().context("closing the array")?;
    // A pass that did nothing measured nothing: say why instead of printing zeros.
    if pass.dirs.iter().all(|d| d.ops == 0) {
        let why = match pass.notes.as_slice() {
            [] => "no operation completed".to_string(),
            notes => notes.join("; "),
        };
        bail!("the measured pass did no I/O ({why}); nothing to report");
    }
    if cli.logs() {
        let files = crate::bench::logs::write(cli, &pass)?;
        eprintln!("ecbench: wrote {} fio log files", files.len());
    }
    if let Some(path) = &cli.chart {
        draw_chart(cli, path, &pass, raw.as_ref().map(|(_, r)| r))?;
    }
    Report {
        cli,
        table: W::TABLE,
        n,
        nkeys,
        pass: &pass,
        raw: raw.as_ref(),
        laid: laid.as_ref(),
        st: &status,
    }
    .print()
}

/// Lays a data set down, measured: `put(i)` writes row i and returns its latency; `sync`
/// makes what was put durable, after every 1024 rows and at the end.
pub fn lay_down_measured(
    rows: Range<u64>,
    bs: usize,
    put: impl Fn(u64) -> Result<Duration>,
    sync: impl Fn() -> Result<()>,
) -> Result<Pass> {
    let n = rows.end - rows.start;
    let cfg = MeasureCfg::default();
    measured("laying out", (Some(n), None), &cfg, |live| {
        let mut d = Dir::pair();
        for i in rows {
            let latency = put(i).context("laying down rows")?;
            d[WRITE].record(latency, bs as u64, live, WRITE);
            if (i + 1) % 1024 == 0 {
                sync().context("sync while laying down the data set")?;
            }
        }
        sync().context("sync after laying down the data set")?;
        Ok((d, Vec::new()))
    })
}

/// `--chart`: the measured pass (and the raw pass beside it) as one SVG.
fn draw_chart(
    cli: &BenchArgs,
    path: &std::path::Path,
    pass: &Pass,
    raw: Option<&Pass>,
) -> Result<()> {
    use crate::bench::chart::{write_svg, ChartSeries};
    let mut all = vec![ChartSeries {
        label: "engine",
        tick: pass.tick,
        samples: &pass.samples,
        hists: [&pass.dirs[0].hist, &pass.dirs[1].hist],
    }];
    if let Some(r) = raw {
        all.push(ChartSeries {
            label: "raw",
            tick: r.tick,
            samples: &r.samples,
            hists: [&r.dirs[0].hist, &r.dirs[1].hist],
        });
    }
    let title = format!(
        "ecbench {} bs={} iodepth={} numjobs={}",
        cli.rw.name(),
        crate::bench::units::human_bin(cli.bs as f64),
        cli.iodepth,
        cli.numjobs
    );
    write_svg(path, &title, &all)?;
    eprintln!("ecbench: wrote the chart {}", path.display());
    Ok(())
}

/// The files the run will write (`--output`, `--chart`, the logs) can be created: checked
/// before anything is written, so that a typo does not cost the run (or format devices).
fn check_outputs(cli: &BenchArgs) -> Result<()> {
    let logs = [&cli.write_lat_log, &cli.write_bw_log, &cli.write_iops_log];
    let files = (cli.output.iter().chain(&cli.chart).cloned()).chain(
        logs.into_iter()
            .flatten()
            .map(|p| PathBuf::from(format!("{p}_x.1.log"))),
    );
    for file in files {
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            bail!(
                "cannot write {}: there is no directory {}",
                file.display(),
                dir.display()
            );
        }
        // A file made and removed again: the one test of "writable" that root passes
        // honestly (read-only mounts, immutable directories).
        if let Err(e) = tempfile::NamedTempFile::new_in(&dir) {
            bail!("cannot write {}: {e}", file.display());
        }
    }
    Ok(())
}
