//! Failure detection: what normal traffic and the prober tell about each device.
//!
//! Passive detection watches every completion: I/O errors, checksum mismatches and latency.
//! A device is **failed** on a write or flush error, or when its read or checksum errors pass
//! a threshold (a few latent sector errors are repaired, not fatal). A device is **suspect**
//! when its smoothed read and write latency stays far above the other devices' for a while
//! (fail-slow); reads avoid it while k other chunks can serve them.
//!
//! Devices that share one disk (files on one file system, loop devices) stall one at a time
//! for a moment whenever the disk serves another's writeback; such a stall is not a slow
//! device. So a device becomes suspect only when its latency is above the others' median by
//! `slow_factor`, above twice their upper quartile (one other slow device does not lower the
//! bar), above `slow_floor`, and has stayed so at every evaluation for `slow_persistence`.
//! Reads go around it sooner, once it has been slow for `avoid_after` (a stall costs the
//! reads waiting on it its whole length; reading around it costs k reads instead of one),
//! but that is neither reported nor persisted. For one read in 64 that goes around a
//! device, a sampler thread reads a block of that device off the reader's path
//! (sampler.rs), so that its latency keeps being measured and it can be seen to recover
//! even when nothing is written, without a reader waiting for it.
//! Flush latency is left out: it measures how much the file system had to write back, which
//! the devices of a shared disk do not control. A suspect device leaves that state once its
//! latency is back within `slow_factor / 4` of the others (hysteresis). The state is not
//! carried to the next session (docs/format.md, member state 5). Active detection is a prober thread that writes and
//! reads back a health block on each device at an interval.
//!
//! Invariants:
//! - A suspect device is never failed for slowness alone.
//! - State changes are persisted in the superblocks (with a new epoch) by the next writer
//!   batch or probe, not on the failing I/O's path.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Which detectors run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DetectionMode {
    /// Normal traffic only: I/O errors, checksum mismatches, latency outliers.
    Passive,
    /// The prober only; errors of normal traffic are counted but change no state.
    Active,
    /// Both.
    #[default]
    Hybrid,
}

impl std::str::FromStr for DetectionMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "passive" => Ok(DetectionMode::Passive),
            "active" => Ok(DetectionMode::Active),
            "hybrid" => Ok(DetectionMode::Hybrid),
            o => Err(format!(
                "unknown detection mode '{o}' (passive, active or hybrid)"
            )),
        }
    }
}

/// Detection thresholds.
#[derive(Debug, Clone)]
pub struct HealthPolicy {
    /// Which detectors run: normal traffic, the prober, or both (the default).
    pub mode: DetectionMode,
    /// Read errors (EIO, short reads) before a device is failed.
    pub read_error_limit: u64,
    /// Checksum/identity mismatches before a device is failed.
    pub checksum_error_limit: u64,
    /// A device is suspect when its smoothed latency exceeds this many times the median of
    /// the others...
    pub slow_factor: f64,
    /// ...and this absolute floor.
    pub slow_floor: Duration,
    /// Completions observed before latency can make a device suspect.
    pub min_samples: u64,
    /// How long a device must stay slow, at every evaluation, before it is suspect.
    pub slow_persistence: Duration,
    /// How long a device must stay slow before reads go around it (sooner than it is
    /// reported suspect: a read served from the other devices costs k reads, a read left
    /// waiting on a slow device costs its whole delay).
    pub avoid_after: Duration,
    /// The prober's interval (Active and Hybrid).
    pub probe_interval: Duration,
    /// The I/O deadline: an operation out on a device for longer is given up and the
    /// device failed (docs/design.md, "Devices that stop answering"). None: wait for ever.
    pub io_timeout: Option<Duration>,
}

/// The default I/O deadline: the kernel's own SCSI and NVMe command timeout.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            mode: DetectionMode::Hybrid,
            read_error_limit: 32,
            checksum_error_limit: 64,
            slow_factor: 8.0,
            slow_floor: Duration::from_millis(5),
            min_samples: 16,
            slow_persistence: Duration::from_secs(1),
            avoid_after: Duration::from_millis(100),
            probe_interval: Duration::from_secs(5),
            io_timeout: Some(DEFAULT_IO_TIMEOUT),
        }
    }
}

/// Latency and suspicion of one slot.
#[derive(Debug, Default)]
pub struct SlotHealth {
    /// Exponentially smoothed latency in nanoseconds (weight 1/8 for a new sample).
    pub latency_ewma_ns: AtomicU64,
    pub samples: AtomicU64,
    pub suspect: AtomicBool,
    /// Reads go around this device: it is suspect, or has been slow for `avoid_after`.
    pub avoid: AtomicBool,
    /// Reads that asked whether to go around it while `avoid` was set (every 64th has the
    /// sampler probe it, so that its latency keeps being measured).
    pub avoided_reads: AtomicU64,
    pub slow_events: AtomicU64,
    /// Since when (ns on the caller's clock, plus one; 0: not slow at the last evaluation)
    /// the latency has been above the bar without a break.
    slow_since: AtomicU64,
}

impl SlotHealth {
    /// Forgets everything measured (a new device in the slot).
    pub fn reset(&self) {
        self.latency_ewma_ns.store(0, Ordering::Relaxed);
        self.samples.store(0, Ordering::Relaxed);
        self.suspect.store(false, Ordering::Relaxed);
        self.avoid.store(false, Ordering::Relaxed);
        self.avoided_reads.store(0, Ordering::Relaxed);
        self.slow_since.store(0, Ordering::Relaxed);
    }

    pub fn observe(&self, latency: Duration) {
        let ns = latency.as_nanos().min(u64::MAX as u128) as u64;
        let n = self.samples.fetch_add(1, Ordering::Relaxed);
        let old = self.latency_ewma_ns.load(Ordering::Relaxed);
        let new = if n == 0 { ns } else { old - old / 8 + ns / 8 };
        self.latency_ewma_ns.store(new, Ordering::Relaxed);
    }
}

/// Re-evaluates which slots are suspect from their latencies at time `now` (any clock that
/// only moves forward, e.g. the time since the array was opened). Returns the slots whose
/// suspicion changed.
pub fn evaluate_slowness(
    slots: &[SlotHealth],
    online: &[bool],
    policy: &HealthPolicy,
    now: Duration,
) -> Vec<usize> {
    let now_ns = now.as_nanos().min(u64::MAX as u128 - 1) as u64;
    let mut changed = Vec::new();
    for (i, s) in slots.iter().enumerate() {
        if !online[i] {
            continue;
        }
        let mut others: Vec<u64> = slots
            .iter()
            .enumerate()
            .filter(|(j, o)| *j != i && online[*j] && o.samples.load(Ordering::Relaxed) > 0)
            .map(|(_, o)| o.latency_ewma_ns.load(Ordering::Relaxed))
            .collect();
        if others.is_empty() || s.samples.load(Ordering::Relaxed) < policy.min_samples {
            continue;
        }
        others.sort_unstable();
        let median = others[others.len() / 2] as f64;
        let upper_quartile = others[others.len() * 3 / 4] as f64;
        let mine = s.latency_ewma_ns.load(Ordering::Relaxed) as f64;
        let floor = policy.slow_floor.as_nanos() as f64;
        let was = s.suspect.load(Ordering::Relaxed);
        let is = if was {
            // Hysteresis: stay suspect until well back among the others.
            mine > (median * policy.slow_factor / 4.0).max(floor / 2.0)
        } else {
            let slow_now = mine
                > (median * policy.slow_factor)
                    .max(upper_quartile * 2.0)
                    .max(floor);
            if !slow_now {
                s.slow_since.store(0, Ordering::Relaxed);
                s.avoid.store(false, Ordering::Relaxed);
                false
            } else {
                let since = match s.slow_since.load(Ordering::Relaxed) {
                    0 => {
                        s.slow_since.store(now_ns + 1, Ordering::Relaxed);
                        now_ns
                    }
                    t => t - 1,
                };
                let lasted = now_ns.saturating_sub(since);
                if lasted >= policy.avoid_after.as_nanos() as u64 {
                    s.avoid.store(true, Ordering::Relaxed);
                }
                lasted >= policy.slow_persistence.as_nanos() as u64
            }
        };
        if is != was {
            s.suspect.store(is, Ordering::Relaxed);
            s.avoid.store(is, Ordering::Relaxed);
            s.slow_since.store(0, Ordering::Relaxed);
            if is {
                s.slow_events.fetch_add(1, Ordering::Relaxed);
            }
            changed.push(i);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn slow_device_becomes_suspect_after_the_persistence_time_and_recovers() {
        let slots: Vec<SlotHealth> = (0..6).map(|_| SlotHealth::default()).collect();
        let online = vec![true; 6];
        let p = HealthPolicy::default();
        for _ in 0..40 {
            for (i, s) in slots.iter().enumerate() {
                s.observe(Duration::from_micros(if i == 2 { 30_000 } else { 200 }));
            }
        }
        assert!(evaluate_slowness(&slots, &online, &p, Duration::ZERO).is_empty());
        assert!(!slots[2].avoid.load(Ordering::Relaxed));
        assert!(evaluate_slowness(&slots, &online, &p, SEC / 2).is_empty());
        // Reads go around it already; it is not reported yet.
        assert!(slots[2].avoid.load(Ordering::Relaxed));
        assert!(!slots[2].suspect.load(Ordering::Relaxed));
        assert_eq!(evaluate_slowness(&slots, &online, &p, SEC), vec![2]);
        assert!(slots[2].suspect.load(Ordering::Relaxed));
        for _ in 0..200 {
            for s in &slots {
                s.observe(Duration::from_micros(200));
            }
        }
        assert_eq!(evaluate_slowness(&slots, &online, &p, 2 * SEC), vec![2]);
        assert!(!slots[2].suspect.load(Ordering::Relaxed));
        assert!(!slots[2].avoid.load(Ordering::Relaxed));
    }

    #[test]
    fn a_break_in_the_slowness_restarts_the_persistence_time() {
        let slots: Vec<SlotHealth> = (0..4).map(|_| SlotHealth::default()).collect();
        let online = vec![true; 4];
        let p = HealthPolicy::default();
        let feed = |slow: bool| {
            for _ in 0..100 {
                for (i, s) in slots.iter().enumerate() {
                    let us = if i == 1 && slow { 40_000 } else { 300 };
                    s.observe(Duration::from_micros(us));
                }
            }
        };
        feed(true);
        assert!(evaluate_slowness(&slots, &online, &p, Duration::ZERO).is_empty());
        feed(false);
        assert!(evaluate_slowness(&slots, &online, &p, SEC / 2).is_empty());
        feed(true);
        assert!(evaluate_slowness(&slots, &online, &p, SEC).is_empty());
        assert!(evaluate_slowness(&slots, &online, &p, 2 * SEC).contains(&1));
    }

    #[test]
    fn uniformly_slow_devices_are_not_suspect() {
        let slots: Vec<SlotHealth> = (0..4).map(|_| SlotHealth::default()).collect();
        for _ in 0..40 {
            for s in &slots {
                s.observe(Duration::from_millis(50));
            }
        }
        let p = HealthPolicy::default();
        for t in 0..5 {
            assert!(evaluate_slowness(&slots, &[true; 4], &p, t * SEC).is_empty());
        }
    }

    /// A small deterministic generator for the latency traces below.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// One simulated minute of six healthy devices on one shared disk, 1 ms per step, one
    /// completion per device per step: 150-450 us normally, and about once a second one
    /// device stalls for 50-400 ms behind the disk's writeback (20-80 ms per completion
    /// meanwhile). `slow` makes device 4 answer 15 ms late from second 30 on. Returns how
    /// often a healthy device was flagged, and when device 4 was first flagged after it
    /// turned slow.
    fn shared_disk_minute(seed: u64, slow: bool) -> (u64, Option<Duration>) {
        let slots: Vec<SlotHealth> = (0..6).map(|_| SlotHealth::default()).collect();
        let online = vec![true; 6];
        let p = HealthPolicy::default();
        let mut rng = Rng(seed);
        let mut stall_until = [0u64; 6];
        let mut first_flag = None;
        let mut healthy_flags = 0;
        for ms in 0..60_000u64 {
            if rng.below(1000) == 0 {
                let d = rng.below(6) as usize;
                stall_until[d] = ms + 50 + rng.below(350);
            }
            for (d, s) in slots.iter().enumerate() {
                let mut us = 150 + rng.below(300);
                if stall_until[d] > ms {
                    us = 20_000 + rng.below(60_000);
                }
                if slow && d == 4 && ms >= 30_000 {
                    us += 15_000;
                }
                s.observe(Duration::from_micros(us));
            }
            if ms % 5 == 0 {
                let now = Duration::from_millis(ms);
                for d in evaluate_slowness(&slots, &online, &p, now) {
                    if !slots[d].suspect.load(Ordering::Relaxed) {
                        continue;
                    }
                    if slow && d == 4 && ms >= 30_000 {
                        first_flag.get_or_insert(now - Duration::from_secs(30));
                    } else {
                        healthy_flags += 1;
                    }
                }
            }
        }
        (healthy_flags, first_flag)
    }

    #[test]
    fn healthy_devices_on_a_shared_disk_are_never_suspect() {
        for seed in [1, 7, 42, 1234, 99991] {
            let (healthy_flags, _) = shared_disk_minute(seed, false);
            assert_eq!(
                healthy_flags, 0,
                "seed {seed}: a stalled but healthy device was flagged"
            );
        }
    }

    #[test]
    fn a_slow_device_on_a_shared_disk_is_still_found() {
        for seed in [3, 8, 77] {
            let (healthy_flags, first) = shared_disk_minute(seed, true);
            let first = first.unwrap_or_else(|| panic!("seed {seed}: never flagged"));
            assert!(
                first <= Duration::from_millis(1500),
                "seed {seed}: {first:?}"
            );
            assert_eq!(
                healthy_flags, 0,
                "seed {seed}: a healthy device was flagged"
            );
        }
    }
}
