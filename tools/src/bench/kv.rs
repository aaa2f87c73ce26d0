//! `ecbench --rw write|randwrite|read|randread|mixed`: puts and gets of `--bs`-byte values
//! in the key/value table `ecbench` through the engine's API (see `--iodepth` in the help
//! for what one operation is). Read workloads read rows `row_key(i)` that they lay down
//! first when the array does not hold them.

use crate::bench::args::{BenchArgs, Rw};
use crate::bench::measure::{
    jobs_pass, sleep_until, Dir, JobResult, Live, Pacer, Pass, READ, WRITE,
};
use crate::bench::setup::{self, Plan, Workload};
use crate::{row_key, row_value};
use anyhow::{bail, Context, Result};
use ectable_devices::IoBackend;
use ectable_engine::format::log_record::encoded_len_padded;
use ectable_engine::{Engine, EngineOptions, Error as EngineError};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// The table the key/value workloads use.
pub const TABLE: &str = "ecbench";

/// Runs a key/value workload.
pub fn run(cli: &BenchArgs) -> Result<()> {
    setup::run::<KvWorkload>(cli)
}

/// The array opened for a key/value workload.
struct KvWorkload(Engine);

impl Workload for KvWorkload {
    const TABLE: &'static str = TABLE;
    const RECORD: &'static str = "record";
    const RAW_NEEDS_FORMAT: &'static str = "--compare-raw needs --k and --m: the raw pass \
        destroys the devices' contents (it would destroy the array that is there), so ecbench \
        must format them after it";
    const SEGMENT_SIZE: bool = false;

    fn record_bytes(bs: usize) -> usize {
        encoded_len_padded(TABLE.len(), row_key(0).len(), bs)
    }

    fn open(io: &Arc<dyn IoBackend>, read_only: bool) -> Result<Self> {
        let opts = EngineOptions {
            read_only,
            ..Default::default()
        };
        let engine = Engine::open(io.clone(), opts)
            .context("opening the array (give --k and --m to format the devices first)")?;
        Ok(KvWorkload(engine))
    }

    fn engine(&self) -> &Engine {
        &self.0
    }

    fn present(&self, rows: Range<u64>, bs: usize, seed: u64) -> Result<bool> {
        dataset_present(&self.0, rows, bs, seed)
    }

    fn lay_down(&self, rows: Range<u64>, bs: usize, seed: u64) -> Result<Pass> {
        lay_down(&self.0, rows, bs, seed)
    }

    fn pass(&self, p: &Plan) -> Result<Pass> {
        jobs_pass(
            p.rw.name(),
            (p.op_limit, p.deadline),
            &p.measure,
            p.numjobs,
            |live, j| engine_job(&self.0, p, live, j),
        )
    }
}

/// The rows one job touches, in order: random ones, or its share of a sequential walk
/// (jobs interleave; reads wrap around the data set).
struct Rows {
    rng: SmallRng,
    next_seq: u64,
    jobs: u64,
}

impl Rows {
    fn new(p: &Plan, job: usize) -> Rows {
        Rows {
            rng: SmallRng::seed_from_u64(p.seed ^ (job as u64 + 1).wrapping_mul(0x9E37_79B9)),
            next_seq: job as u64,
            jobs: p.numjobs as u64,
        }
    }

    fn next(&mut self, p: &Plan) -> u64 {
        if p.rw.random() {
            return p.base + self.rng.random_range(0..p.nkeys);
        }
        let seq = self.next_seq;
        self.next_seq += self.jobs;
        p.base
            + match p.rw {
                Rw::Read | Rw::Readwrite => seq % p.nkeys,
                _ => seq,
            }
    }
}

/// The operations job `job` runs when the run has an operation limit: its share of it.
fn job_quota(p: &Plan, job: usize) -> Option<u64> {
    let (jobs, job) = (p.numjobs as u64, job as u64);
    p.op_limit.map(|t| t / jobs + u64::from(job < t % jobs))
}

/// Groups of puts a write job keeps in flight (at most; never more than --iodepth).
const WRITE_GROUPS: usize = 8;

/// One engine job: batches of `iodepth` operations (see `--iodepth` in the help); reads only
/// through a read queue that keeps `iodepth` in flight.
fn engine_job(engine: &Engine, p: &Plan, live: &Live, job: usize) -> JobResult {
    if p.read_pct == 100 {
        return read_job(engine, p, live, job);
    }
    let start = Instant::now();
    let (mut rows, quota) = (Rows::new(p, job), job_quota(p, job));
    let job64 = job as u64;
    // Written values are one random buffer with the row number stamped in front: cheap, so
    // the benchmark's own CPU stays out of the engine's figures.
    let mut value = row_value(u64::MAX - job64, p.seed, p.bs);
    let (mut dirs, mut notes) = (Dir::pair(), Vec::new());
    let mut done = 0u64;
    // Writes only: up to WRITE_GROUPS groups of puts in flight, iodepth puts in all (see
    // --iodepth in the help); each group with its last LSN and its puts' start times.
    let groups = if p.read_pct == 0 {
        WRITE_GROUPS.min(p.iodepth)
    } else {
        1
    };
    let window = groups > 1;
    let group = (p.iodepth / groups) as u64;
    let mut in_flight: std::collections::VecDeque<(u64, Vec<Instant>)> = Default::default();
    loop {
        let n = quota.map_or(group, |q| (q - done).min(group));
        let late = p.deadline.is_some_and(|d| start.elapsed() >= d);
        if n == 0 || late || live.stop.load(Ordering::Relaxed) {
            break;
        }
        let (mut reads, mut writes) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let idx = rows.next(p);
            let read =
                p.read_pct == 100 || (p.read_pct > 0 && rows.rng.random_range(0..100) < p.read_pct);
            match read {
                true => reads.push(idx),
                false => writes.push(idx),
            }
        }
        // Puts first: they only queue records, so the flusher writes while the reads run.
        let mut started = Vec::with_capacity(writes.len());
        let mut last_lsn = 0;
        for &i in &writes {
            if live.writes_issued.fetch_add(1, Ordering::Relaxed) >= p.max_write_ops {
                notes.push("stopped early: the array is nearly full".to_string());
                break;
            }
            let stamp = 8.min(p.bs);
            value[..stamp].copy_from_slice(&i.to_le_bytes()[..stamp]);
            let t0 = Instant::now();
            match engine.put(TABLE, &row_key(i), &value) {
                Ok(lsn) => {
                    started.push(t0);
                    last_lsn = lsn;
                }
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
                let mixed = matches!(p.rw, Rw::Mixed | Rw::Readwrite);
                if p.verify && !mixed && v != row_value(i, p.seed, p.bs) {
                    bail!("row {i} read back other bytes than were written (--verify)");
                }
                dirs[READ].record(lat, p.bs as u64, live, READ);
            }
        }
        let stopped = started.len() < writes.len();
        if !started.is_empty() {
            if window {
                in_flight.push_back((last_lsn, started));
                if in_flight.len() == groups {
                    if let Some((lsn, oldest)) = in_flight.pop_front() {
                        engine.wait_durable(lsn).context("wait_durable")?;
                        durable(&mut dirs, &oldest, p.bs, live);
                    }
                }
            } else {
                engine.sync().context("sync")?;
                durable(&mut dirs, &started, p.bs, live);
            }
        }
        if stopped {
            live.stop.store(true, Ordering::Relaxed);
        }
        done += n;
    }
    if !in_flight.is_empty() {
        engine.sync().context("sync")?;
        let rest: Vec<Instant> = in_flight.into_iter().flat_map(|(_, g)| g).collect();
        durable(&mut dirs, &rest, p.bs, live);
    }
    Ok((dirs, notes))
}

/// One read job: `iodepth` reads kept in flight through `Engine::read_queue`, the next
/// submitted as each completes, as fio keeps its queue full (with `--rate_iops`, as each
/// completes or comes due, whichever is later); a read's latency runs from its submission
/// to its completion.
fn read_job(engine: &Engine, p: &Plan, live: &Live, job: usize) -> JobResult {
    let start = Instant::now();
    let (mut rows, quota) = (Rows::new(p, job), job_quota(p, job));
    let mut dirs = Dir::pair();
    let (mut issued, mut pacer) = (0u64, Pacer::new(p.rate_iops));
    let mut queue = engine.read_queue::<(u64, Instant)>(TABLE);
    loop {
        let stop = quota.is_some_and(|q| issued >= q)
            || p.deadline.is_some_and(|d| start.elapsed() >= d)
            || live.stop.load(Ordering::Relaxed);
        let done = if !stop && queue.len() < p.iodepth {
            match pacer.due_later() {
                None => {
                    let idx = rows.next(p);
                    queue
                        .submit(&row_key(idx), (idx, Instant::now()))
                        .context("read_queue submit")?;
                    (issued, _) = (issued + 1, pacer.issued());
                    continue;
                }
                // Not due yet: reap what completes meanwhile.
                Some(due) if queue.is_empty() => {
                    sleep_until(due);
                    continue;
                }
                Some(due) => match queue.next_done_before(due) {
                    Some(done) => done,
                    None => continue,
                },
            }
        } else {
            match queue.next_done() {
                Some(done) => done,
                None => break,
            }
        };
        let ((i, t0), got) = done;
        let lat = t0.elapsed();
        let Some(v) = got.with_context(|| format!("read of row {i}"))? else {
            bail!("row {i} is missing from table '{TABLE}'")
        };
        if v.len() != p.bs {
            bail!("row {i} holds {} bytes, expected {}", v.len(), p.bs);
        }
        if p.verify && v != row_value(i, p.seed, p.bs) {
            bail!("row {i} read back other bytes than were written (--verify)");
        }
        dirs[READ].record(lat, p.bs as u64, live, READ);
    }
    Ok((dirs, Vec::new()))
}

/// True when the array holds the data set: a few rows, first and last included, read back
/// exactly.
/// Records the latency of puts started at `started` that are durable now.
fn durable(dirs: &mut [Dir; 2], started: &[Instant], bs: usize, live: &Live) {
    let t1 = Instant::now();
    for t0 in started {
        dirs[WRITE].record(t1 - *t0, bs as u64, live, WRITE);
    }
}

fn dataset_present(engine: &Engine, rows: Range<u64>, bs: usize, seed: u64) -> Result<bool> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xDA7A);
    let mut probe = vec![
        rows.start,
        rows.end - 1,
        rows.start + (rows.end - rows.start) / 2,
    ];
    probe.extend((0..5).map(|_| rng.random_range(rows.clone())));
    for i in probe {
        match engine.get(TABLE, &row_key(i)) {
            Ok(Some(v)) if v == row_value(i, seed, bs) => {}
            Ok(_) | Err(EngineError::NoSuchTable(_)) => return Ok(false),
            Err(e) => return Err(e).context("checking the data set"),
        }
    }
    Ok(true)
}

fn lay_down(engine: &Engine, rows: Range<u64>, bs: usize, seed: u64) -> Result<Pass> {
    let put = |i: u64| {
        let t0 = Instant::now();
        engine.put(TABLE, &row_key(i), &row_value(i, seed, bs))?;
        Ok(t0.elapsed())
    };
    setup::lay_down_measured(rows, bs, put, || Ok(engine.sync().map(|_| ())?))
}
