//! Failure detection: what normal traffic and the prober tell about each device.
//!
//! Passive detection watches every completion: I/O errors, checksum mismatches and latency.
//! A device is **failed** on a write or flush error, or when its read or checksum errors pass
//! a threshold (a few latent sector errors are repaired, not fatal). A device is **suspect**
//! when its smoothed latency is far above the other devices' (fail-slow); reads avoid it
//! while k other chunks can serve them. Active detection is a prober thread that writes and
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
    /// The prober's interval (Active and Hybrid).
    pub probe_interval: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            mode: DetectionMode::Hybrid,
            read_error_limit: 32,
            checksum_error_limit: 64,
            slow_factor: 8.0,
            slow_floor: Duration::from_millis(5),
            min_samples: 16,
            probe_interval: Duration::from_secs(5),
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
    pub slow_events: AtomicU64,
}

impl SlotHealth {
    pub fn observe(&self, latency: Duration) {
        let ns = latency.as_nanos().min(u64::MAX as u128) as u64;
        let n = self.samples.fetch_add(1, Ordering::Relaxed);
        let old = self.latency_ewma_ns.load(Ordering::Relaxed);
        let new = if n == 0 { ns } else { old - old / 8 + ns / 8 };
        self.latency_ewma_ns.store(new, Ordering::Relaxed);
    }
}

/// Re-evaluates which slots are suspect from their latencies. Returns the slots whose
/// suspicion changed.
pub fn evaluate_slowness(
    slots: &[SlotHealth],
    online: &[bool],
    policy: &HealthPolicy,
) -> Vec<usize> {
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
        let mine = s.latency_ewma_ns.load(Ordering::Relaxed) as f64;
        let floor = policy.slow_floor.as_nanos() as f64;
        let was = s.suspect.load(Ordering::Relaxed);
        let is = if was {
            // Hysteresis: stay suspect until well back among the others.
            mine > (median * policy.slow_factor / 4.0).max(floor / 2.0)
        } else {
            mine > (median * policy.slow_factor).max(floor)
        };
        if is != was {
            s.suspect.store(is, Ordering::Relaxed);
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

    #[test]
    fn slow_device_becomes_suspect_and_recovers() {
        let slots: Vec<SlotHealth> = (0..6).map(|_| SlotHealth::default()).collect();
        let online = vec![true; 6];
        let p = HealthPolicy::default();
        for _ in 0..40 {
            for (i, s) in slots.iter().enumerate() {
                s.observe(Duration::from_micros(if i == 2 { 30_000 } else { 200 }));
            }
        }
        assert_eq!(evaluate_slowness(&slots, &online, &p), vec![2]);
        assert!(slots[2].suspect.load(Ordering::Relaxed));
        for _ in 0..200 {
            for s in &slots {
                s.observe(Duration::from_micros(200));
            }
        }
        assert_eq!(evaluate_slowness(&slots, &online, &p), vec![2]);
        assert!(!slots[2].suspect.load(Ordering::Relaxed));
    }

    #[test]
    fn uniformly_slow_devices_are_not_suspect() {
        let slots: Vec<SlotHealth> = (0..4).map(|_| SlotHealth::default()).collect();
        for _ in 0..40 {
            for s in &slots {
                s.observe(Duration::from_millis(50));
            }
        }
        assert!(evaluate_slowness(&slots, &[true; 4], &HealthPolicy::default()).is_empty());
    }
}
