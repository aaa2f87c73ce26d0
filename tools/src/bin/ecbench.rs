//! `ecbench`: a fio-style benchmark of the ectable engine.
//!
//! It runs one workload (sequential or random reads or writes, or a random mix) through the
//! engine's public API and reports bandwidth, IOPS and completion-latency percentiles in fio's
//! layout and with fio's JSON field names. With `--compare-raw` it first measures the same
//! access pattern straight on the raw devices, through the same `IoBackend`, so that every
//! engine figure comes with its ratio to the physical limit measured in the same run
//! (docs/performance.md, "How a result is measured"). EC-specific figures go in a top-level `"ectable"`
//! object of the JSON output.
//!
//! Invariants:
//! - Nothing is written to a device before the command line, the geometry and the devices'
//!   superblocks have been checked; a device of an existing array is never overwritten
//!   without `--force`.
//! - The raw pass destroys device contents, so it runs first, and only when ecbench formats
//!   the devices itself afterwards (`--k/--m`).
//! - Bad input and device errors end with one line `ecbench: error: ...` and a non-zero exit;
//!   nothing a user or a device controls reaches an `unwrap`.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, ValueEnum};
use ectable_devices::{AlignedBuf, BackendKind, IoBackend, IoBatch, IoKind, IoOp};
use ectable_engine::format::log_record::encoded_len_padded;
use ectable_engine::format::{uuid_string, Superblock, DATA_START_BYTES};
use ectable_engine::{format, Engine, EngineOptions, Error as EngineError, FormatOptions, Status};
use ectable_tools::{open_devices, parse_size, row_key, row_value, split_devices};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "../table_bench.rs"]
mod table_bench;

/// The table read workloads lay their data set down in.
const TABLE: &str = "ecbench";
/// Data set of a read workload given only `--runtime` (at most a quarter of the array).
const DEFAULT_DATASET_BYTES: u64 = 64 << 20;
const MIB: u64 = 1 << 20;
/// fio's default `percentile_list`.
const PERCENTILES: [f64; 17] = [
    1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95,
    99.99,
];
/// Direction indexes, in fio's order.
const READ: usize = 0;
const WRITE: usize = 1;

const AFTER_HELP: &str = "\
Sizes take binary suffixes like fio (4K = 4096). --size is the total of all jobs: the bytes to \
write, or the data set to read. Read workloads lay down rows row_key(i) of --bs bytes in table \
'ecbench' first when the array does not hold them, then reopen the array so that reads come from \
the devices. With --runtime only, reads use a data set of 64 MiB and writes go on until the time \
is up or the array is full (the engine does not reclaim space yet).

--compare-raw first measures the same pattern on the raw devices through the same I/O engine \
(O_DIRECT, no flushes, like fio direct=1), from one thread: sequential = blocks of max(chunk \
size, bs) with iodepth*numjobs in flight on every device; random = bs blocks at 4K-aligned \
offsets over all devices, iodepth*numjobs in flight in all, over the span the data set takes on \
each device. Regions of regular files that are still sparse are written once before they are \
measured. The raw pass destroys the devices' contents, so it needs --k/--m: the array is \
formatted after it. Writes are compared with raw bandwidth x k/(k+m), the limit of coded writes.";

#[derive(Parser, Debug)]
#[command(
    name = "ecbench",
    version,
    about = "fio-style benchmark of the ectable engine"
)]
#[command(after_help = AFTER_HELP)]
struct Cli {
    /// Devices or regular files, comma or colon separated (fio: --filename).
    #[arg(long, alias = "filename", value_name = "D1,D2,...")]
    devices: String,
    /// Data shards: format the devices as RS(k,m) first.
    #[arg(long, requires = "m", value_parser = clap::value_parser!(u16).range(1..=64))]
    k: Option<u16>,
    /// Parity shards (with --k).
    #[arg(long, requires = "k", value_parser = clap::value_parser!(u16).range(1..=64))]
    m: Option<u16>,
    /// Chunk size when formatting [default: 64K].
    #[arg(long, value_name = "SIZE", value_parser = size_arg, requires = "k")]
    chunk_size: Option<u64>,
    /// Create missing regular files of this size (only when formatting).
    #[arg(long, value_name = "SIZE", value_parser = size_arg, requires = "k")]
    create_size: Option<u64>,
    /// Format devices that already hold an ectable array.
    #[arg(long)]
    force: bool,
    /// Workload (mixed = random reads and writes, see --rwmixread; fio's randrw).
    #[arg(long, value_enum)]
    rw: Rw,
    /// Percentage of reads in a mixed workload.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    rwmixread: u8,
    /// Value size of one operation (4K = 4096).
    #[arg(long, default_value = "4K", value_name = "SIZE", value_parser = size_arg)]
    bs: u64,
    /// Operations in flight per job.
    ///
    /// Reads: each job hands iodepth keys at once to Engine::get_many, which puts all their
    /// device reads in flight together; every key of a batch completes when the batch does.
    ///
    /// Writes: each job issues iodepth puts without waiting (the engine packs them into
    /// stripes and its flusher writes full stripes in the background), then calls sync(); a
    /// write's latency runs from its put to the end of the sync that made it durable, so
    /// --iodepth 1 measures durable synchronous puts.
    ///
    /// Mixed: per batch the puts go first, then the reads in one get_many, then one sync.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    iodepth: u32,
    /// Total bytes to write, or the size of the data set to read.
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    size: Option<u64>,
    /// Time limit (seconds by default; 500ms, 10s, 2m are accepted).
    #[arg(long, value_name = "TIME", value_parser = runtime_arg)]
    runtime: Option<Duration>,
    /// Run for the whole --runtime, going over the data set again (fio: time_based).
    #[arg(long = "time-based", alias = "time_based", requires = "runtime")]
    time_based: bool,
    /// Threads issuing the workload against the one engine (they share --size).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    numjobs: u32,
    /// Seed of the data set's values and of random offsets (fio: randseed).
    #[arg(long, alias = "randseed", default_value_t = 1)]
    seed: u64,
    /// I/O engine: auto, uring (io_uring) or psync.
    #[arg(long, alias = "ioengine", default_value = "auto", value_parser = engine_arg)]
    io_engine: BackendKind,
    /// Measure the same pattern on the raw devices first and print engine/raw ratios.
    #[arg(long)]
    compare_raw: bool,
    /// Compare every value read with the data set's (read and randread).
    #[arg(long)]
    verify: bool,
    /// Output format (json+ is taken as json).
    #[arg(long, value_enum, default_value = "normal")]
    output_format: OutputFormat,
    /// Job name shown in the report.
    #[arg(long, default_value = "ecbench")]
    name: String,
    /// For fio compatibility: all I/O is O_DIRECT, so only 1 is accepted.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=1))]
    direct: Option<u8>,
    /// For fio compatibility: the jobs are always reported as one group.
    #[arg(long = "group-reporting", alias = "group_reporting")]
    group_reporting: bool,
    /// --rw overwrite: fill levels, fractions of the usable capacity.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.75,0.9")]
    fill: Vec<f64>,
    /// --rw overwrite: rows overwritten, as a multiple of the rows loaded.
    #[arg(long, default_value_t = 2.0)]
    loops: f64,
    /// Segment size when formatting [default: 8M].
    #[arg(long, value_name = "SIZE", value_parser = size_arg, requires = "k")]
    segment_size: Option<u64>,
    /// --rw table-range: rows per range read.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    range_rows: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Rw {
    Write,
    Read,
    Randread,
    Randwrite,
    #[value(alias = "randrw")]
    Mixed,
    /// Space reclamation: fill a fresh array to each --fill level, then overwrite random
    /// rows --loops times the data; rates against the fresh-array ingest, write
    /// amplification. Needs --k/--m (formats the devices for each level).
    Overwrite,
    /// Reopen time for --size bytes of values, with and without a recent checkpoint. Needs
    /// --k/--m.
    Reopen,
    /// Typed tables: put_row of random rows of 10 columns, ~--bs bytes each.
    TablePut,
    /// Typed tables: get_rows of --iodepth random rows at once.
    TableGet,
    /// Typed tables: range reads of --range-rows rows from random start keys.
    TableRange,
    /// Typed tables: random puts and gets, --rwmixread percent gets.
    TableMixed,
}

impl Rw {
    fn name(self) -> &'static str {
        match self {
            Rw::Write => "write",
            Rw::Read => "read",
            Rw::Randread => "randread",
            Rw::Randwrite => "randwrite",
            Rw::Mixed => "mixed",
            Rw::Overwrite => "overwrite",
            Rw::Reopen => "reopen",
            Rw::TablePut => "table-put",
            Rw::TableGet => "table-get",
            Rw::TableRange => "table-range",
            Rw::TableMixed => "table-mixed",
        }
    }
    fn random(self) -> bool {
        matches!(
            self,
            Rw::Randread
                | Rw::Randwrite
                | Rw::Mixed
                | Rw::TablePut
                | Rw::TableGet
                | Rw::TableRange
                | Rw::TableMixed
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Normal,
    #[value(alias = "json+")]
    Json,
}

fn size_arg(s: &str) -> Result<u64, String> {
    match parse_size(s) {
        Ok(0) => Err("must be greater than zero".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

fn engine_arg(s: &str) -> Result<BackendKind, String> {
    s.parse()
}

/// Parses fio-style times: seconds by default, or with a unit (us, ms, s, m, h).
fn runtime_arg(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().map_err(|_| format!("invalid time '{s}'"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" | "sec" => 1.0,
        "ms" | "msec" => 1e-3,
        "us" | "usec" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown time unit '{other}' (us, ms, s, m, h)")),
    };
    match v * scale {
        secs if secs > 0.0 && secs < 1e7 => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!("time '{s}' must be greater than zero")),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
            if matches!(e.kind(), DisplayHelp | DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // clap's message spans several lines (usage, tips): keep its first paragraph.
            let text = e.to_string();
            let para: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let msg = para.join(" ");
            let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
            let _ = writeln!(std::io::stderr(), "ecbench: error: {msg}");
            return ExitCode::from(2);
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "ecbench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Completion latencies and totals of one direction.
struct Dir {
    hist: Histogram<u64>,
    ops: u64,
    bytes: u64,
}

impl Dir {
    fn new() -> Dir {
        // 1 ns to 60 s at 3 significant digits (docs/performance.md, "How a result is measured"); constant, valid bounds.
        let hist = Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
        Dir {
            hist,
            ops: 0,
            bytes: 0,
        }
    }
    fn pair() -> [Dir; 2] {
        [Dir::new(), Dir::new()]
    }
    fn record(&mut self, latency: Duration, bytes: u64, live: &Live, dir: usize) {
        self.hist
            .saturating_record((latency.as_nanos() as u64).max(1));
        self.ops += 1;
        self.bytes += bytes;
        live.ops[dir].fetch_add(1, Ordering::Relaxed);
        live.bytes[dir].fetch_add(bytes, Ordering::Relaxed);
    }
    fn merge(pair: &mut [Dir; 2], other: &[Dir; 2]) {
        for (d, o) in pair.iter_mut().zip(other) {
            // Same bounds on both sides, so the addition cannot overflow the range.
            let _ = d.hist.add(&o.hist);
            d.ops += o.ops;
            d.bytes += o.bytes;
        }
    }
    fn bw(&self, rt: Duration) -> f64 {
        self.bytes as f64 / rt.as_secs_f64().max(1e-9)
    }
    fn iops(&self, rt: Duration) -> f64 {
        self.ops as f64 / rt.as_secs_f64().max(1e-9)
    }
    fn q(&self, percentile: f64) -> u64 {
        self.hist.value_at_quantile(percentile / 100.0)
    }
}

/// Counters the workers bump and the sampler reads once a second.
#[derive(Default)]
struct Live {
    ops: [AtomicU64; 2],
    bytes: [AtomicU64; 2],
    writes_issued: AtomicU64,
    stop: AtomicBool,
}

/// One measured pass: totals per direction, wall time, per-second samples, CPU use.
struct Pass {
    dirs: [Dir; 2],
    runtime: Duration,
    /// Per second and direction: (bytes, ops).
    samples: Vec<[(u64, u64); 2]>,
    /// User and system CPU of the whole process, in % of the wall time.
    cpu: (f64, f64),
    notes: Vec<String>,
}

fn cpu_secs() -> (f64, f64) {
    // SAFETY: getrusage writes one rusage struct into the zeroed local we pass it.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// Runs `work` while a sampler records per-second figures and, when stderr is a terminal,
/// draws a fio-like status line there. `expected` (ops, time) gives the percentage done.
fn measured<F>(label: &str, expected: (Option<u64>, Option<Duration>), work: F) -> Result<Pass>
where
    F: FnOnce(&Live) -> Result<([Dir; 2], Vec<String>)>,
{
    let live = Live::default();
    let tty = std::io::stderr().is_terminal();
    let (tx, rx) = mpsc::channel::<()>();
    let (cpu0, start) = (cpu_secs(), Instant::now());
    let (result, samples) = std::thread::scope(|s| {
        let live = &live;
        let sampler = s.spawn(move || {
            let (mut samples, mut last) = (Vec::new(), [(0u64, 0u64); 2]);
            while rx.recv_timeout(Duration::from_secs(1)) == Err(mpsc::RecvTimeoutError::Timeout) {
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
                if tty {
                    let el = start.elapsed().as_secs_f64();
                    let pct = match expected {
                        (Some(ops), _) => 100.0 * (now[0].1 + now[1].1) as f64 / ops as f64,
                        (None, Some(t)) => 100.0 * el / t.as_secs_f64(),
                        _ => 0.0,
                    };
                    let eta = expected.1.map_or(0.0, |t| (t.as_secs_f64() - el).max(0.0)) as u64;
                    let (rb, wb) = (human_bin(d[0].0 as f64), human_bin(d[1].0 as f64));
                    let (ri, wi) = (human_count(d[0].1 as f64), human_count(d[1].1 as f64));
                    let (m, s) = (eta / 60, eta % 60);
                    let pct = pct.min(100.0);
                    let _ = write!(
                        std::io::stderr(),
                        "\r\x1b[KJobs: 1 (f=1): [{label}][{pct:.1}%][r={rb}/s,w={wb}/s]\
                         [r={ri},w={wi} IOPS][eta {m:02}m:{s:02}s]"
                    );
                }
            }
            if tty {
                let _ = write!(std::io::stderr(), "\r\x1b[K");
            }
            samples
        });
        let r = work(live);
        drop(tx);
        (r, sampler.join().unwrap_or_default())
    });
    let runtime = start.elapsed();
    let (dirs, notes) = result?;
    let (cpu1, wall) = (cpu_secs(), runtime.as_secs_f64().max(1e-9));
    let cpu = (
        100.0 * (cpu1.0 - cpu0.0) / wall,
        100.0 * (cpu1.1 - cpu0.1) / wall,
    );
    Ok(Pass {
        dirs,
        runtime,
        samples,
        cpu,
        notes,
    })
}

/// The engine workload, as every job sees it.
struct Plan {
    rw: Rw,
    bs: usize,
    iodepth: usize,
    numjobs: usize,
    nkeys: u64,
    /// Operations over all jobs (None: until the deadline).
    op_limit: Option<u64>,
    deadline: Option<Duration>,
    /// Puts the array has room for (the engine does not reclaim space yet).
    max_write_ops: u64,
    seed: u64,
    read_pct: u8,
    verify: bool,
}

/// One engine job: batches of `iodepth` operations (see `--iodepth` in the help).
fn engine_job(
    engine: &Engine,
    p: &Plan,
    live: &Live,
    job: usize,
) -> Result<([Dir; 2], Vec<String>)> {
    let start = Instant::now();
    let mut rng = SmallRng::seed_from_u64(p.seed ^ (job as u64 + 1).wrapping_mul(0x9E37_79B9));
    let (jobs, job64) = (p.numjobs as u64, job as u64);
    let quota = p.op_limit.map(|t| t / jobs + u64::from(job64 < t % jobs));
    // Written values are one random buffer with the row number stamped in front: cheap, so
    // the benchmark's own CPU stays out of the engine's figures.
    let mut value = row_value(u64::MAX - job64, p.seed, p.bs);
    let (mut dirs, mut notes) = (Dir::pair(), Vec::new());
    let (mut next_seq, mut done) = (job64, 0u64);
    loop {
        let n = quota.map_or(p.iodepth as u64, |q| (q - done).min(p.iodepth as u64));
        let late = p.deadline.is_some_and(|d| start.elapsed() >= d);
        if n == 0 || late || live.stop.load(Ordering::Relaxed) {
            break;
        }
        let (mut reads, mut writes) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let idx = if p.rw.random() {
                rng.random_range(0..p.nkeys)
            } else {
                next_seq += jobs;
                if p.rw == Rw::Read {
                    (next_seq - jobs) % p.nkeys
                } else {
                    next_seq - jobs
                }
            };
            match p.read_pct == 100 || (p.read_pct > 0 && rng.random_range(0..100) < p.read_pct) {
                true => reads.push(idx),
                false => writes.push(idx),
            }
        }
        // Puts first: they only queue records, so the flusher writes while the reads run.
        let mut started = Vec::with_capacity(writes.len());
        for &i in &writes {
            if live.writes_issued.fetch_add(1, Ordering::Relaxed) >= p.max_write_ops {
                notes.push("stopped early: the array is nearly full".to_string());
                break;
            }
            let stamp = 8.min(p.bs);
            value[..stamp].copy_from_slice(&i.to_le_bytes()[..stamp]);
            let t0 = Instant::now();
            match engine.put(TABLE, &row_key(i), &value) {
                Ok(_) => started.push(t0),
                Err(EngineError::NoSpace(why)) => {
                    notes.push(format!("stopped early: {why}"));
                    break;
                }
                Err(e) => return Err(e).context(format!("put of row {i}")),
            }
        }
        if !reads.is_empty() {
            let keys: Vec<Vec<u8>> = reads.iter().map(|&i| row_key(i)).collect();
            let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            let t0 = Instant::now();
            let values = engine.get_many(TABLE, &refs).context("get_many")?;
            let lat = t0.elapsed();
            for (&i, v) in reads.iter().zip(values) {
                let Some(v) = v else {
                    bail!("row {i} is missing from table '{TABLE}'")
                };
                if v.len() != p.bs {
                    bail!("row {i} holds {} bytes, expected {}", v.len(), p.bs);
                }
                if p.verify && p.rw != Rw::Mixed && v != row_value(i, p.seed, p.bs) {
                    bail!("row {i} read back other bytes than were written (--verify)");
                }
                dirs[READ].record(lat, p.bs as u64, live, READ);
            }
        }
        if !started.is_empty() {
            engine.sync().context("sync")?;
            let t1 = Instant::now();
            for t0 in &started {
                dirs[WRITE].record(t1 - *t0, p.bs as u64, live, WRITE);
            }
        }
        if started.len() < writes.len() {
            live.stop.store(true, Ordering::Relaxed);
        }
        done += n;
    }
    Ok((dirs, notes))
}

fn engine_pass(engine: &Engine, p: &Plan) -> Result<Pass> {
    jobs_pass(
        p.rw.name(),
        (p.op_limit, p.deadline),
        p.numjobs,
        |live, j| engine_job(engine, p, live, j),
    )
}

/// Runs `numjobs` threads of `job` as one measured pass and merges their figures and notes.
fn jobs_pass<F>(
    label: &str,
    expected: (Option<u64>, Option<Duration>),
    numjobs: usize,
    job: F,
) -> Result<Pass>
where
    F: Fn(&Live, usize) -> Result<([Dir; 2], Vec<String>)> + Sync,
{
    measured(label, expected, |live| {
        let job = &job;
        let results: Vec<Result<([Dir; 2], Vec<String>)>> = std::thread::scope(|s| {
            let jobs: Vec<_> = (0..numjobs)
                .map(|j| s.spawn(move || job(live, j)))
                .collect();
            let panicked = || Err(anyhow!("a job thread panicked"));
            jobs.into_iter()
                .map(|h| h.join().unwrap_or_else(|_| panicked()))
                .collect()
        });
        let (mut total, mut notes) = (Dir::pair(), Vec::<String>::new());
        for r in results {
            let (d, n) = r?;
            Dir::merge(&mut total, &d);
            notes.extend(n);
        }
        notes.sort();
        notes.dedup();
        Ok((total, notes))
    })
}

/// A raw access pattern on the devices, outside the engine.
struct RawPlan {
    random: bool,
    read_pct: u8,
    block: usize,
    /// In flight per device (sequential) or over all devices (random).
    qd: usize,
    /// Byte range used on every device.
    region: (u64, u64),
    op_limit: Option<u64>,
    deadline: Option<Duration>,
    seed: u64,
}

impl RawPlan {
    fn describe(&self, n: usize) -> String {
        let (bs, span) = (
            human_bin(self.block as f64),
            human_bin(self.region.1 as f64),
        );
        match self.random {
            true => format!(
                "random 4K-aligned, bs={bs}, qd={} in all, {n} devices x {span}",
                self.qd
            ),
            false => format!(
                "sequential, bs={bs}, qd={}/device, {n} devices x {span}",
                self.qd
            ),
        }
    }
}

/// Runs a raw pattern with `qd` operations in flight per device (sequential) or in all
/// (random), from one thread like fio: it waits for the oldest submission, reaps every other
/// one that has completed meanwhile, and refills all those slots with one submission. Each
/// latency is the I/O engine's own submit-to-completion time.
fn raw_run(io: &dyn IoBackend, p: &RawPlan, live: &Live) -> Result<[Dir; 2]> {
    let n = io.devices().len();
    let total = if p.random { p.qd } else { p.qd * n };
    if total as u64 * p.block as u64 > 1 << 30 {
        bail!(
            "the raw pass would hold {total} buffers of {} bytes; lower --iodepth",
            p.block
        );
    }
    let mut rng = SmallRng::seed_from_u64(p.seed);
    let template = AlignedBuf::from_slice(&row_value(0, p.seed, p.block));
    // Slot s always serves device s % n in sequential patterns: qd per device exactly.
    let mut idle: Vec<(usize, AlignedBuf)> = (0..total).map(|s| (s, template.clone())).collect();
    let mut outstanding: VecDeque<(IoBatch, Vec<usize>)> = VecDeque::new();
    let (mut dirs, mut cursor) = (Dir::pair(), vec![0u64; n]);
    let blocks_4k = p.region.1.saturating_sub(p.block as u64) / 4096;
    let region_blocks = (p.region.1 / p.block as u64).max(1);
    let (mut issued, start) = (0u64, Instant::now());
    loop {
        let (mut ops, mut slots) = (Vec::new(), Vec::new());
        while p.deadline.is_none_or(|d| start.elapsed() < d) {
            let Some((slot, buf)) = idle.pop() else { break };
            // The limit is per device in sequential patterns (each device gets its share);
            // a slot whose device is done retires.
            if p.random && p.op_limit.is_some_and(|l| issued >= l) {
                idle.push((slot, buf));
                break;
            }
            if !p.random
                && p.op_limit
                    .is_some_and(|l| cursor[slot % n] >= l.div_ceil(n as u64))
            {
                continue;
            }
            let (dev, off) = if p.random {
                (
                    rng.random_range(0..n),
                    rng.random_range(0..=blocks_4k) * 4096,
                )
            } else {
                cursor[slot % n] += 1;
                (
                    slot % n,
                    (cursor[slot % n] - 1) % region_blocks * p.block as u64,
                )
            };
            let read =
                p.read_pct == 100 || (p.read_pct > 0 && rng.random_range(0..100) < p.read_pct);
            let kind = if read { IoKind::Read } else { IoKind::Write };
            ops.push(IoOp {
                device_index: dev,
                kind,
                offset_bytes: p.region.0 + off,
                buf,
            });
            slots.push(slot);
            issued += 1;
        }
        if !ops.is_empty() {
            outstanding.push_back((io.submit(ops), slots));
        }
        let Some((batch, slots)) = outstanding.pop_front() else {
            break;
        };
        let mut ready = vec![(batch.wait(), slots)];
        let mut i = 0;
        while i < outstanding.len() {
            if outstanding[i].0.is_done() {
                ready.extend(outstanding.remove(i).map(|(b, s)| (b.wait(), s)));
            } else {
                i += 1;
            }
        }
        for (completions, slots) in ready {
            for (c, slot) in completions.into_iter().zip(slots) {
                c.result.context("raw pass")?;
                let d = if c.op.kind == IoKind::Read {
                    READ
                } else {
                    WRITE
                };
                dirs[d].record(c.latency, c.op.buf.len() as u64, live, d);
                idle.push((slot, c.op.buf));
            }
        }
    }
    Ok(dirs)
}

/// Writes the region of every regular file that still has holes, so that the raw pass
/// measures the device and not the filesystem (a read of a hole does no I/O at all).
fn prefill_sparse(io: &dyn IoBackend, paths: &[PathBuf], region: (u64, u64)) -> Result<()> {
    use std::os::fd::AsRawFd;
    let mut sparse = false;
    for p in paths {
        let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
        if f.metadata()?.file_type().is_file() {
            // SAFETY: lseek on a descriptor we own; it touches no memory of ours.
            let hole = unsafe { libc::lseek(f.as_raw_fd(), region.0 as _, libc::SEEK_HOLE) };
            sparse |= hole < 0 || (hole as u64) < region.0 + region.1;
        }
    }
    if sparse {
        let block = MIB.min(region.1) as usize;
        let op_limit = Some(region.1 / block as u64 * paths.len() as u64);
        let plan = RawPlan {
            random: false,
            read_pct: 0,
            block,
            qd: 4,
            region,
            op_limit,
            deadline: None,
            seed: 7,
        };
        measured("prefill", (op_limit, None), |live| {
            Ok((raw_run(io, &plan, live)?, Vec::new()))
        })?;
    }
    Ok(())
}

/// Refuses devices that hold an ectable superblock, unless forced.
fn check_devices_free(io: &dyn IoBackend, force: bool) -> Result<()> {
    let ops = (0..io.devices().len())
        .map(|d| IoOp::read(d, 0, 8192))
        .collect();
    for c in io.execute(ops) {
        let name = io.devices()[c.op.device_index].name().to_string();
        c.result
            .with_context(|| format!("{name}: reading its superblock"))?;
        let sb = Superblock::decode(&c.op.buf[..4096])
            .or_else(|_| Superblock::decode(&c.op.buf[4096..8192]));
        if let (Ok(sb), false) = (sb, force) {
            let uuid = uuid_string(&sb.array_uuid);
            bail!("{name}: already holds an ectable array ({uuid}); use --force to overwrite it");
        }
    }
    Ok(())
}

/// What the array will be: checked against what `format` refuses before the raw pass runs.
#[derive(Clone, Copy)]
struct Geometry {
    k: usize,
    m: usize,
    chunk: u64,
    /// Capacity of the smallest device.
    cap: u64,
}

/// The checks that need no device: done before any file is created.
fn check_layout(n: usize, k: usize, m: usize, chunk: u64, rec: usize) -> Result<()> {
    if k + m > n || n > 64 {
        bail!(
            "RS({k},{m}) needs between {} and 64 devices, {n} given",
            k + m
        );
    }
    if chunk & 4095 != 0 || !(4096..=4 * MIB).contains(&chunk) {
        bail!("--chunk-size must be a multiple of 4K between 4K and 4M, got {chunk}");
    }
    let limit = k * (chunk as usize - 512);
    if rec > limit {
        bail!("--bs: a record of {rec} bytes does not fit a stripe of RS({k},{m}) (limit {limit})");
    }
    Ok(())
}

fn check_geometry(io: &dyn IoBackend, k: usize, m: usize, chunk: u64) -> Result<Geometry> {
    let need = DATA_START_BYTES + 2 * (8 * MIB).max(16 * chunk);
    let cap = io
        .devices()
        .iter()
        .map(|d| d.geometry().capacity_bytes)
        .min()
        .unwrap_or(0);
    if cap < need {
        bail!("devices too small: {cap} bytes, RS({k},{m}) with {chunk}-byte chunks needs {need}");
    }
    Ok(Geometry { k, m, chunk, cap })
}

/// Puts of `rec`-byte records the array has room for when synced every `group` puts: each
/// group fills whole stripes plus one short stripe (docs/format.md, "short stripes"). One
/// segment stays free for the index checkpoint the engine writes when it closes.
fn write_capacity(st: &Status, rec: usize, group: usize) -> u64 {
    let (k, c, s) = (
        st.data_shards as u64,
        st.chunk_size_bytes as u64,
        st.segment_size_bytes as u64,
    );
    let free = st.usable_capacity_bytes.saturating_sub(st.used_bytes) / (k * s);
    let free_segments = free.saturating_sub(1);
    let height_total = free_segments * s.saturating_sub(4096 + c);
    let (rec, g) = (rec as u64, group.max(1) as u64);
    let per_stripe = (k * (c - 512) / rec).max(1);
    let short = (g % per_stripe) * rec;
    let short_h = if short > 0 {
        (512 + short.div_ceil(k)).div_ceil(4096) * 4096
    } else {
        0
    };
    let group_h = (g / per_stripe) * c + short_h;
    height_total / group_h.max(1) * g * 95 / 100
}

/// True when the array holds the data set: a few rows, first and last included, read back
/// exactly.
fn dataset_present(engine: &Engine, nkeys: u64, bs: usize, seed: u64) -> Result<bool> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xDA7A);
    let mut probe = vec![0, nkeys - 1, nkeys / 2];
    probe.extend((0..5).map(|_| rng.random_range(0..nkeys)));
    for i in probe {
        match engine.get(TABLE, &row_key(i)) {
            Ok(Some(v)) if v == row_value(i, seed, bs) => {}
            Ok(_) | Err(EngineError::NoSuchTable(_)) => return Ok(false),
            Err(e) => return Err(e).context("checking the data set"),
        }
    }
    Ok(true)
}

fn lay_down(engine: &Engine, nkeys: u64, bs: usize, seed: u64) -> Result<Pass> {
    measured("laying out", (Some(nkeys), None), |live| {
        let mut d = Dir::pair();
        for i in 0..nkeys {
            let t0 = Instant::now();
            engine
                .put(TABLE, &row_key(i), &row_value(i, seed, bs))
                .context("laying down rows")?;
            d[WRITE].record(t0.elapsed(), bs as u64, live, WRITE);
            if (i + 1) % 1024 == 0 {
                engine
                    .sync()
                    .context("sync while laying down the data set")?;
            }
        }
        engine
            .sync()
            .context("sync after laying down the data set")?;
        Ok((d, Vec::new()))
    })
}

/// The raw pattern that matches the workload (see the help text).
fn raw_plan(cli: &Cli, g: Geometry, n: usize, dataset: u64, op_limit: Option<u64>) -> RawPlan {
    let (random, read_pct) = (cli.rw.random(), read_pct(cli));
    let bs4k = cli.bs.div_ceil(4096) * 4096;
    let block = if random { bs4k } else { g.chunk.max(bs4k) };
    let span = (g.cap - DATA_START_BYTES) / MIB * MIB;
    let per_device = |bytes: u64| (bytes.div_ceil(n as u64).div_ceil(MIB) * MIB).clamp(MIB, span);
    let coded = |bytes: u64| bytes * (g.k + g.m) as u64 / g.k as u64;
    let (op_limit, region_len) = match (random, op_limit) {
        (true, l) => (l, per_device(coded(dataset))),
        (false, None) => (None, span),
        (false, Some(_)) => {
            let bytes = if read_pct == 0 {
                coded(dataset)
            } else {
                dataset
            };
            (
                Some(bytes.div_ceil(block)),
                per_device(bytes.div_ceil(block) * block),
            )
        }
    };
    RawPlan {
        random,
        read_pct,
        block: block as usize,
        qd: (cli.iodepth * cli.numjobs) as usize,
        region: (DATA_START_BYTES, region_len.max(block)),
        op_limit,
        deadline: cli.runtime,
        seed: cli.seed,
    }
}

fn read_pct(cli: &Cli) -> u8 {
    match cli.rw {
        Rw::Read | Rw::Randread => 100,
        Rw::Write | Rw::Randwrite | Rw::Overwrite | Rw::Reopen | Rw::TablePut => 0,
        Rw::TableGet | Rw::TableRange => 100,
        Rw::Mixed | Rw::TableMixed => cli.rwmixread,
    }
}

/// `--rw overwrite` and `--rw reopen` (see `ectable_tools::space_bench`).
fn space_run(cli: &Cli) -> Result<()> {
    let (Some(k), Some(m)) = (cli.k, cli.m) else {
        bail!(
            "--rw {} needs --k and --m: it formats the devices (their contents are destroyed)",
            cli.rw.name()
        );
    };
    let paths = split_devices(&cli.devices)?;
    let bs = usize::try_from(cli.bs).map_err(|_| anyhow!("--bs is too large"))?;
    let chunk = cli.chunk_size.unwrap_or(64 << 10);
    let rec = encoded_len_padded(TABLE.len(), row_key(0).len(), bs);
    check_layout(paths.len(), k as usize, m as usize, chunk, rec)?;
    {
        let io = open_devices(&paths, cli.create_size, false, cli.io_engine)?;
        check_geometry(io.as_ref(), k as usize, m as usize, chunk)?;
        check_devices_free(io.as_ref(), cli.force)?;
    }
    let plan = ectable_tools::space_bench::SpacePlan {
        paths,
        kind: cli.io_engine,
        format: FormatOptions {
            data_shards: k as usize,
            parity_shards: m as usize,
            chunk_size_bytes: chunk as u32,
            segment_size_bytes: cli.segment_size.unwrap_or(8 << 20) as u32,
            force: true,
            spare_count: 0,
        },
        value_bytes: bs,
        batch: (cli.iodepth as usize).max(1),
        seed: cli.seed,
    };
    let result = match cli.rw {
        Rw::Overwrite => json!({
            "jobname": cli.name,
            "rw": "overwrite",
            "levels": ectable_tools::space_bench::overwrite(&plan, &cli.fill, cli.loops)?,
        }),
        _ => {
            let size = cli
                .size
                .ok_or_else(|| anyhow!("--rw reopen needs --size"))?;
            json!({
                "jobname": cli.name,
                "rw": "reopen",
                "result": ectable_tools::space_bench::reopen(&plan, size)?,
            })
        }
    };
    if cli.output_format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    }
    Ok(())
}

fn run(cli: &Cli) -> Result<()> {
    if matches!(cli.rw, Rw::Overwrite | Rw::Reopen) {
        return space_run(cli);
    }
    if matches!(
        cli.rw,
        Rw::TablePut | Rw::TableGet | Rw::TableRange | Rw::TableMixed
    ) {
        return table_bench::run(cli);
    }
    if cli.compare_raw && cli.k.is_none() {
        bail!(
            "--compare-raw needs --k and --m: the raw pass destroys the devices' contents \
             (it would destroy the array that is there), so ecbench must format them after it"
        );
    }
    if cli.size.is_none() && cli.runtime.is_none() {
        bail!("give --size or --runtime");
    }
    let bs = usize::try_from(cli.bs).map_err(|_| anyhow!("--bs is too large"))?;
    let paths = split_devices(&cli.devices)?;
    let (n, chunk) = (paths.len(), cli.chunk_size.unwrap_or(64 << 10));
    let rec = encoded_len_padded(TABLE.len(), row_key(0).len(), bs);
    let km = cli.k.zip(cli.m).map(|(k, m)| (k as usize, m as usize));
    if let Some((k, m)) = km {
        check_layout(n, k, m, chunk, rec)?;
    }
    let io = open_devices(&paths, cli.create_size, false, cli.io_engine)?;
    // Everything the raw pass and format depend on is checked before anything is written.
    let mut geometry = None;
    if let Some((k, m)) = km {
        geometry = Some(check_geometry(io.as_ref(), k, m, chunk)?);
        check_devices_free(io.as_ref(), cli.force)?;
    }
    // The data set: rows 0..nkeys of bs bytes.
    let dataset = cli.size.unwrap_or(match geometry {
        Some(g) => DEFAULT_DATASET_BYTES
            .min((g.cap - DATA_START_BYTES) * n as u64 * g.k as u64 / (g.k + g.m) as u64 / 4),
        None => DEFAULT_DATASET_BYTES,
    });
    let nkeys = (dataset / bs as u64).max(1);
    let op_limit = cli
        .size
        .filter(|_| !cli.time_based)
        .map(|s| s.div_ceil(bs as u64));

    let mut raw = None;
    if let (true, Some(g)) = (cli.compare_raw, geometry) {
        let plan = raw_plan(cli, g, n, dataset, op_limit);
        prefill_sparse(io.as_ref(), &paths, plan.region)?;
        let work = |live: &Live| Ok((raw_run(io.as_ref(), &plan, live)?, Vec::new()));
        let pass = measured("raw", (plan.op_limit, plan.deadline), work)?;
        raw = Some((plan, pass));
    }
    if let Some(g) = geometry {
        let opts = FormatOptions {
            data_shards: g.k,
            parity_shards: g.m,
            chunk_size_bytes: g.chunk as u32,
            segment_size_bytes: 0,
            force: cli.force,
            spare_count: 0,
        };
        format(io.as_ref(), &opts).context("formatting the devices")?;
    }
    let open = |read_only: bool| {
        let opts = EngineOptions {
            read_only,
            ..Default::default()
        };
        Engine::open(io.clone(), opts)
            .context("opening the array (give --k and --m to format the devices first)")
    };
    let mut engine = open(false)?;
    let limit = engine.max_batch_bytes();
    if rec > limit {
        bail!("--bs {bs}: a record of {rec} bytes does not fit a stripe (limit {limit})");
    }
    let mut laid = None;
    if read_pct(cli) > 0 {
        if !dataset_present(&engine, nkeys, bs, cli.seed)? {
            let room = write_capacity(&engine.status(), rec, 1024);
            if nkeys > room {
                bail!(
                    "a data set of {nkeys} rows of {bs} bytes does not fit the array \
                     (room for about {room} rows); use a smaller --size"
                );
            }
            laid = Some(lay_down(&engine, nkeys, bs, cli.seed)?);
        }
        // Reopen so that every read comes from the devices (fresh puts are served from
        // memory until their stripe is flushed), read-only when nothing is written.
        engine
            .close()
            .context("closing the array after laying down the data set")?;
        drop(engine);
        engine = open(read_pct(cli) == 100)?;
    }
    let max_write_ops = write_capacity(&engine.status(), rec, cli.iodepth as usize);
    if read_pct(cli) == 0 && op_limit.is_some_and(|o| o > max_write_ops) {
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
        op_limit,
        deadline: cli.runtime,
        max_write_ops,
        seed: cli.seed,
        read_pct: read_pct(cli),
        verify: cli.verify,
    };
    let pass = engine_pass(&engine, &plan)?;
    let status = engine.status();
    engine.close().context("closing the array")?;

    let r = Report {
        cli,
        table: TABLE,
        n,
        nkeys,
        pass: &pass,
        raw: raw.as_ref(),
        laid: laid.as_ref(),
        st: &status,
    };
    let text = match cli.output_format {
        OutputFormat::Json => serde_json::to_string_pretty(&r.json())? + "\n",
        OutputFormat::Normal => r.normal(),
    };
    // A closed stdout is an error like any other, not a panic of print!.
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("writing the report")
}

/// Everything the output needs.
struct Report<'a> {
    cli: &'a Cli,
    /// The table the data set is in.
    table: &'a str,
    n: usize,
    nkeys: u64,
    pass: &'a Pass,
    raw: Option<&'a (RawPlan, Pass)>,
    laid: Option<&'a Pass>,
    st: &'a Status,
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

/// fio's direction object (`jobs[].read|write`).
fn dir_json(d: &Dir, rt: Duration, samples: &[[(u64, u64); 2]], i: usize) -> Value {
    let h = &d.hist;
    let mut clat = json!({ "min": h.min(), "max": h.max(), "mean": h.mean(),
                           "stddev": h.stdev(), "N": h.len() });
    let lat = clat.clone();
    if !h.is_empty() {
        let p: Map<String, Value> = PERCENTILES
            .iter()
            .map(|q| (format!("{q:.6}"), json!(d.q(*q))))
            .collect();
        clat["percentile"] = Value::Object(p);
    }
    let bw: Vec<f64> = samples.iter().map(|s| s[i].0 as f64 / 1024.0).collect();
    let iops: Vec<f64> = samples.iter().map(|s| s[i].1 as f64).collect();
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
            "ioengine": self.st.io_engine, "direct": "1", "randseed": c.seed.to_string(),
        });
        if let Some(s) = c.size {
            o["size"] = json!(s.to_string());
        }
        if let Some(r) = c.runtime {
            o["runtime"] = json!(format!("{}ms", r.as_millis()));
        }
        if c.rw == Rw::Mixed {
            o["rwmixread"] = json!(c.rwmixread.to_string());
        }
        o
    }

    fn json(&self) -> Value {
        let (p, st) = (self.pass, self.st);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let zero = json!({ "min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0 });
        let job = json!({
            "jobname": self.cli.name, "groupid": 0, "error": 0, "eta": 0,
            "elapsed": p.runtime.as_secs(), "job options": self.options(),
            "read": dir_json(&p.dirs[READ], p.runtime, &p.samples, READ),
            "write": dir_json(&p.dirs[WRITE], p.runtime, &p.samples, WRITE),
            "trim": dir_json(&Dir::new(), Duration::ZERO, &[], 0),
            "sync": { "total_ios": 0, "lat_ns": zero },
            "job_runtime": p.runtime.as_millis() as u64, "usr_cpu": p.cpu.0, "sys_cpu": p.cpu.1,
        });
        let raw = self.raw.map_or(Value::Null, |(plan, r)| {
            json!({
                "pattern": plan.describe(self.n), "block_bytes": plan.block,
                "queue_depth": plan.qd, "queue_depth_per_device": !plan.random,
                "region_bytes_per_device": plan.region.1, "runtime": r.runtime.as_millis() as u64,
                "read": dir_json(&r.dirs[READ], r.runtime, &r.samples, READ),
                "write": dir_json(&r.dirs[WRITE], r.runtime, &r.samples, WRITE),
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
            "chunk_bytes_written": st.chunk_bytes_written,
            "payload_bytes_written": st.payload_bytes_written,
            "write_amplification": div(st.chunk_bytes_written, st.payload_bytes_written),
            "device_bytes_per_value_byte": div(st.chunk_bytes_written, p.dirs[WRITE].bytes),
            "degraded_reads": st.degraded_reads, "degraded_writes": st.degraded_writes,
            "notes": p.notes,
        });
        json!({
            "fio version": format!("ecbench-{}", env!("CARGO_PKG_VERSION")),
            "timestamp": now.as_secs(), "timestamp_ms": now.as_millis() as u64,
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
        for (i, name) in [(READ, "read"), (WRITE, "write")] {
            if p.dirs[i].ops > 0 {
                s += &dir_text(name, &p.dirs[i], p.runtime, &p.samples, i);
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
fn dir_text(name: &str, d: &Dir, rt: Duration, samples: &[[(u64, u64); 2]], i: usize) -> String {
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
    let pv: Vec<u64> = PERCENTILES.iter().map(|q| d.q(*q)).collect();
    let (unit, div) = lat_unit(pv[0], pv[pv.len() - 1]);
    let _ = writeln!(s, "    clat percentiles ({unit}):");
    let cells: Vec<String> = PERCENTILES
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
    let bwk: Vec<f64> = samples.iter().map(|x| x[i].0 as f64 / 1024.0).collect();
    let io: Vec<f64> = samples.iter().map(|x| x[i].1 as f64).collect();
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

/// fio's num2str: at most 4 significant digits with a unit prefix.
fn human(v: f64, base: f64, units: &[&str]) -> String {
    let (mut v, mut u) = (v, 0);
    while v >= 10000.0 && u + 1 < units.len() {
        v /= base;
        u += 1;
    }
    let prec = match (u, v) {
        (0, _) => 0,
        (_, v) if v < 10.0 => 2,
        (_, v) if v < 100.0 => 1,
        _ => 0,
    };
    format!("{v:.prec$}{}", units[u])
}

fn human_bin(v: f64) -> String {
    human(v, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB"])
}

fn human_dec(v: f64) -> String {
    human(v, 1000.0, &["B", "kB", "MB", "GB", "TB"])
}

fn human_count(v: f64) -> String {
    human(v, 1000.0, &["", "k", "M", "G"])
}

fn human_ns(ns: u64) -> String {
    match ns {
        n if n >= 1_000_000 => format!("{:.2}ms", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}us", n as f64 / 1e3),
        n => format!("{n}ns"),
    }
}

/// fio's choice of latency unit for a range of nanosecond values (stat.c).
fn lat_unit(min: u64, max: u64) -> (&'static str, f64) {
    match (min, max) {
        (a, b) if a > 2_000_000 && b > 99_999_999 => ("msec", 1e6),
        (a, b) if a > 2000 && b > 99_999 => ("usec", 1e3),
        _ => ("nsec", 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_parse_like_fio() {
        assert_eq!(runtime_arg("10").ok(), Some(Duration::from_secs(10)));
        assert_eq!(runtime_arg("10s").ok(), Some(Duration::from_secs(10)));
        assert_eq!(runtime_arg("500ms").ok(), Some(Duration::from_millis(500)));
        assert_eq!(runtime_arg("2m").ok(), Some(Duration::from_secs(120)));
        assert!(runtime_arg("0").is_err() && runtime_arg("5x").is_err());
        assert!(runtime_arg("").is_err() && runtime_arg("nan").is_err());
    }

    #[test]
    fn numbers_print_like_fio() {
        assert_eq!(human_bin(11.1 * 1048576.0), "11.1MiB");
        assert_eq!(human_bin(4096.0), "4096B");
        assert_eq!(human_count(2844.0), "2844");
        assert_eq!(human_count(385_000.0), "385k");
        assert_eq!(lat_unit(400_000, 9_000_000), ("usec", 1e3));
    }
}
