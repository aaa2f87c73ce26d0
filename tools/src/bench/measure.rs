//! How ecbench measures a pass: completion-latency histograms and totals per direction,
//! per-second samples, CPU use, and a fio-like status line on a terminal while it runs
//! (docs/performance.md, "How a result is measured").

use crate::bench::units::{human_bin, human_count};
use crate::term;
use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// fio's default `percentile_list`.
pub const PERCENTILES: [f64; 17] = [
    1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95,
    99.99,
];
/// Direction indexes, in fio's order.
pub const READ: usize = 0;
pub const WRITE: usize = 1;

/// Completion latencies and totals of one direction.
pub struct Dir {
    pub hist: Histogram<u64>,
    pub ops: u64,
    pub bytes: u64,
}

impl Dir {
    pub fn new() -> Dir {
        // 1 ns to 60 s at 3 significant digits (docs/performance.md, "How a result is measured"); constant, valid bounds.
        let hist = Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
        Dir {
            hist,
            ops: 0,
            bytes: 0,
        }
    }
    pub fn pair() -> [Dir; 2] {
        [Dir::new(), Dir::new()]
    }
    pub fn record(&mut self, latency: Duration, bytes: u64, live: &Live, dir: usize) {
        self.hist
            .saturating_record((latency.as_nanos() as u64).max(1));
        self.ops += 1;
        self.bytes += bytes;
        live.ops[dir].fetch_add(1, Ordering::Relaxed);
        live.bytes[dir].fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn merge(pair: &mut [Dir; 2], other: &[Dir; 2]) {
        for (d, o) in pair.iter_mut().zip(other) {
            // Same bounds on both sides, so the addition cannot overflow the range.
            let _ = d.hist.add(&o.hist);
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

/// Counters the workers bump and the sampler reads once a second.
#[derive(Default)]
pub struct Live {
    pub ops: [AtomicU64; 2],
    pub bytes: [AtomicU64; 2],
    pub writes_issued: AtomicU64,
    pub stop: AtomicBool,
}

/// One measured pass: totals per direction, wall time, per-second samples, CPU use.
pub struct Pass {
    pub dirs: [Dir; 2],
    pub runtime: Duration,
    /// Per second and direction: (bytes, ops).
    pub samples: Vec<[(u64, u64); 2]>,
    /// User and system CPU of the whole process, in % of the wall time.
    pub cpu: (f64, f64),
    pub notes: Vec<String>,
}

/// What a job or a pass's work returns: totals per direction and notes for the report.
pub type JobResult = Result<([Dir; 2], Vec<String>)>;

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
pub fn measured<F>(label: &str, expected: (Option<u64>, Option<Duration>), work: F) -> Result<Pass>
where
    F: FnOnce(&Live) -> JobResult,
{
    let live = Live::default();
    let line = term::status_line();
    let (tx, rx) = mpsc::channel::<()>();
    let (cpu0, start) = (cpu_secs(), Instant::now());
    let (result, samples) = std::thread::scope(|s| {
        let (live, line) = (&live, &line);
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
                if !line.is_hidden() {
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
                    line.set_message(format!(
                        "Jobs: 1 (f=1): [{label}][{pct:.1}%][r={rb}/s,w={wb}/s]\
                         [r={ri},w={wi} IOPS][eta {m:02}m:{s:02}s]"
                    ));
                }
            }
            line.finish_and_clear();
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

/// Runs `numjobs` threads of `job` as one measured pass and merges their figures and notes.
pub fn jobs_pass<F>(
    label: &str,
    expected: (Option<u64>, Option<Duration>),
    numjobs: usize,
    job: F,
) -> Result<Pass>
where
    F: Fn(&Live, usize) -> JobResult + Sync,
{
    measured(label, expected, |live| {
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
