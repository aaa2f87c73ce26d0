//! The raw pass of `--compare-raw`: the workload's access pattern straight on the devices,
//! through the same `IoBackend` and outside the engine, so that every engine figure comes
//! with its ratio to the physical limit measured in the same run (see the help text).

use crate::bench::args::BenchArgs;
use crate::bench::checks::Geometry;
use crate::bench::measure::{measured, sleep_until, Dir, Live, MeasureCfg, Pacer, READ, WRITE};
use crate::bench::units::{human_bin, MIB};
use crate::row_value;
use anyhow::{bail, Context, Result};
use ectable_devices::{AlignedBuf, IoBackend, IoBatch, IoKind, IoOp};
use ectable_engine::format::DATA_START_BYTES;
use ectable_engine::Layout;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A raw access pattern on the devices, outside the engine.
#[derive(Clone)]
pub struct RawPlan {
    pub random: bool,
    pub read_pct: u8,
    pub block: usize,
    /// In flight per job: per device (sequential) or over all devices (random).
    pub qd: usize,
    /// Threads running the pattern at once (`--numjobs`, as fio's jobs: each its own
    /// stream of offsets and its own queue; the operation limit is shared out).
    pub jobs: usize,
    /// Byte range used on every device.
    pub region: (u64, u64),
    pub op_limit: Option<u64>,
    pub deadline: Option<Duration>,
    pub seed: u64,
    /// Operations per second per job at most (`--rate_iops`).
    pub rate_iops: Option<u64>,
}

impl RawPlan {
    pub fn describe(&self, n: usize) -> String {
        let (bs, span) = (
            human_bin(self.block as f64),
            human_bin(self.region.1 as f64),
        );
        let jobs = match self.jobs {
            1 => String::new(),
            j => format!(" x {j} jobs"),
        };
        match self.random {
            true => format!(
                "random 4K-aligned, bs={bs}, qd={} in all{jobs}, {n} devices x {span}",
                self.qd
            ),
            false => format!(
                "sequential, bs={bs}, qd={}/device{jobs}, {n} devices x {span}",
                self.qd
            ),
        }
    }
}

/// Runs a raw pattern from `plan.jobs` threads at once (one thread: [`raw_run`]), each with
/// its own seed, its own queue of `qd` and its share of the operation limit, as fio runs
/// `numjobs` jobs; the jobs' figures are added up (latency histograms merged). The I/O
/// engine gives every thread its own ring, so the jobs do not share a submission queue.
pub fn raw_jobs(io: &dyn IoBackend, p: &RawPlan, live: &Live) -> Result<[Dir; 2]> {
    if p.jobs <= 1 {
        return raw_run(io, p, live);
    }
    let plans: Vec<RawPlan> = (0..p.jobs)
        .map(|j| RawPlan {
            jobs: 1,
            seed: p.seed.wrapping_add(j as u64 * 0x9E37_79B9),
            op_limit: p.op_limit.map(|l| l.div_ceil(p.jobs as u64)),
            ..p.clone()
        })
        .collect();
    let results: Vec<Result<[Dir; 2]>> = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .map(|plan| s.spawn(move || raw_run(io, plan, live)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a raw job panicked")))
            })
            .collect()
    });
    let mut dirs = Dir::pair();
    for r in results {
        Dir::merge(&mut dirs, &r?);
    }
    Ok(dirs)
}

/// Runs a raw pattern with `qd` operations in flight per device (sequential) or in all
/// (random), from one thread like fio: it waits for the oldest submission, reaps every other
/// one that has completed meanwhile, and refills all those slots with one submission. Each
/// latency is the I/O engine's own submit-to-completion time.
pub fn raw_run(io: &dyn IoBackend, p: &RawPlan, live: &Live) -> Result<[Dir; 2]> {
    let n = io.devices().len();
    let total = if p.random { p.qd } else { p.qd * n };
    if (total * p.jobs.max(1)) as u64 * p.block as u64 > 1 << 30 {
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
    let (mut issued, start, mut pacer) = (0u64, Instant::now(), Pacer::new(p.rate_iops));
    loop {
        let (mut ops, mut slots) = (Vec::new(), Vec::new());
        while p.deadline.is_none_or(|d| start.elapsed() < d) && pacer.due_later().is_none() {
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
            (issued, _) = (issued + 1, pacer.issued());
        }
        if !ops.is_empty() {
            outstanding.push_back((io.submit(ops), slots));
        }
        // Paced and a slot free: wait for a completion or the next due time, whichever
        // comes first (waiting on the ring, so that completions are taken, and timed, as
        // they come).
        if let (Some(due), false) = (pacer.due_later(), idle.is_empty()) {
            let any_done =
                |o: &VecDeque<(IoBatch, Vec<usize>)>| o.iter().any(|(b, _)| b.completed());
            while !any_done(&outstanding) && Instant::now() < due {
                let left = due.saturating_duration_since(Instant::now());
                match outstanding.front() {
                    None => sleep_until(due),
                    Some((b, _)) => b.wait_progress(left.min(WAIT_SLICE)),
                }
            }
            if !any_done(&outstanding) {
                continue;
            }
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

/// How long a paced raw pass blocks on its ring before it looks at the clock again (the
/// psync engine wakes only for the oldest batch).
const WAIT_SLICE: Duration = Duration::from_micros(250);

/// Writes the region of every regular file that still has holes, so that the raw pass
/// measures the device and not the filesystem (a read of a hole does no I/O at all).
pub fn prefill_sparse(io: &dyn IoBackend, paths: &[PathBuf], region: (u64, u64)) -> Result<()> {
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
            jobs: 1,
            region,
            op_limit,
            deadline: None,
            seed: 7,
            rate_iops: None,
        };
        measured(
            "prefill",
            (op_limit, None),
            &MeasureCfg::default(),
            |live| Ok((raw_run(io, &plan, live)?, Vec::new())),
        )?;
    }
    Ok(())
}

/// The raw pattern that matches the workload (see the help text).
pub fn raw_plan(
    cli: &BenchArgs,
    g: Geometry,
    n: usize,
    dataset: u64,
    op_limit: Option<u64>,
) -> RawPlan {
    let (random, read_pct) = (cli.rw.random(), cli.read_pct());
    let bs4k = cli.bs.div_ceil(4096) * 4096;
    let block = if random { bs4k } else { g.chunk.max(bs4k) };
    let span = Layout::data_area_bytes(g.cap) / MIB * MIB;
    let per_device = |bytes: u64| (bytes.div_ceil(n as u64).div_ceil(MIB) * MIB).clamp(MIB, span);
    let coded = |bytes: u64| g.layout().map_or(bytes, |l| l.coded_bytes(bytes));
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
        qd: cli.iodepth as usize,
        jobs: cli.numjobs as usize,
        // --offset: the data set starts that many value bytes in, a devices' share of them
        // on each device (4 KiB aligned).
        region: (
            DATA_START_BYTES + cli.offset / n as u64 / 4096 * 4096,
            region_len.max(block),
        ),
        op_limit,
        deadline: cli.runtime.map(|r| r + cli.ramp_time.unwrap_or_default()),
        seed: cli.seed,
        rate_iops: cli.rate_iops,
    }
}
