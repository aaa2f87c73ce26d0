//! Per-device I/O counters and latency histograms, kept by the backends as every operation
//! completes: relaxed atomics only, so keeping them costs a few uncontended increments per
//! operation. Readers take a [`DeviceIoSnapshot`] at any time from any thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Devices a backend drives at most (its counters are allocated for all of them up front,
/// so that a device added while it runs has its own).
pub const MAX_DEVICES: usize = 160;

/// Upper bounds of the latency buckets, in microseconds: powers of two from 1 µs to about 4.2 s
/// (2^22 µs), then a last bucket for everything above it.
pub const LATENCY_BUCKETS: usize = 24;

/// The upper bound of bucket `i` in seconds (`f64::INFINITY` for the last).
pub fn bucket_upper_seconds(i: usize) -> f64 {
    if i + 1 >= LATENCY_BUCKETS {
        f64::INFINITY
    } else {
        (1u64 << i) as f64 / 1e6
    }
}

/// A lock-free latency histogram with power-of-two buckets (1 µs .. 4.2 s, then +Inf).
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS],
    sum_ns: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    /// Counts one observation.
    pub fn record(&self, latency: Duration) {
        let us = latency.as_micros().min(u64::MAX as u128) as u64;
        // Bucket i holds (2^(i-1), 2^i] µs; 0 and 1 µs go to bucket 0.
        let i = if us <= 1 {
            0
        } else {
            (64 - (us - 1).leading_zeros()) as usize
        };
        self.buckets[i.min(LATENCY_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(
            latency.as_nanos().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    /// The counts so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// A copy of a [`LatencyHistogram`]'s counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative); bucket i's upper bound is
    /// [`bucket_upper_seconds`]`(i)`.
    pub buckets: [u64; LATENCY_BUCKETS],
    /// The sum of all observations, in nanoseconds.
    pub sum_ns: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        HistogramSnapshot {
            buckets: [0; LATENCY_BUCKETS],
            sum_ns: 0,
        }
    }
}

impl HistogramSnapshot {
    /// How many observations in all.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The upper bound of the bucket holding quantile `q` (0..=1), in seconds; 0 when empty.
    pub fn quantile_upper_seconds(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b;
            if seen >= want {
                return bucket_upper_seconds(i);
            }
        }
        f64::INFINITY
    }
}

/// What an operation counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    /// A read.
    Read,
    /// A write, durable or not.
    Write,
    /// A flush.
    Flush,
}

/// Counters of one device.
#[derive(Debug, Default)]
pub struct DeviceIoStats {
    reads: AtomicU64,
    writes: AtomicU64,
    flushes: AtomicU64,
    read_bytes: AtomicU64,
    write_bytes: AtomicU64,
    errors: AtomicU64,
    latency: LatencyHistogram,
}

/// A copy of one device's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceIoSnapshot {
    /// Reads completed (failed ones included).
    pub reads: u64,
    /// Writes completed (durable writes included).
    pub writes: u64,
    /// Flushes completed.
    pub flushes: u64,
    /// Bytes read by successful reads.
    pub read_bytes: u64,
    /// Bytes written by successful writes.
    pub write_bytes: u64,
    /// Operations that failed (EIO, short transfer, EPERM, ...).
    pub errors: u64,
    /// Latency of the reads and writes (flushes excluded: they measure the file system's
    /// writeback more than the device).
    pub latency: HistogramSnapshot,
}

/// The counters of every device of a backend, in device-index order.
#[derive(Debug)]
pub struct IoStats {
    devices: Vec<DeviceIoStats>,
}

impl IoStats {
    /// Zeroed counters for `devices` devices.
    pub fn new(devices: usize) -> IoStats {
        IoStats {
            devices: (0..devices).map(|_| DeviceIoStats::default()).collect(),
        }
    }

    /// Counts one completed operation on device `device`: its kind, bytes, outcome and
    /// latency (zero for an operation failed before it started: not timed).
    pub fn record(&self, device: usize, kind: OpClass, len: u64, ok: bool, latency: Duration) {
        let Some(d) = self.devices.get(device) else {
            return;
        };
        match kind {
            OpClass::Read => {
                d.reads.fetch_add(1, Ordering::Relaxed);
                if ok {
                    d.read_bytes.fetch_add(len, Ordering::Relaxed);
                }
            }
            OpClass::Write => {
                d.writes.fetch_add(1, Ordering::Relaxed);
                if ok {
                    d.write_bytes.fetch_add(len, Ordering::Relaxed);
                }
            }
            OpClass::Flush => {
                d.flushes.fetch_add(1, Ordering::Relaxed);
            }
        }
        if !ok {
            d.errors.fetch_add(1, Ordering::Relaxed);
        }
        if kind != OpClass::Flush && !latency.is_zero() {
            d.latency.record(latency);
        }
    }

    /// A copy of device `index`'s counters (zero for an index out of range).
    pub fn device(&self, index: usize) -> DeviceIoSnapshot {
        let Some(d) = self.devices.get(index) else {
            return DeviceIoSnapshot::default();
        };
        DeviceIoSnapshot {
            reads: d.reads.load(Ordering::Relaxed),
            writes: d.writes.load(Ordering::Relaxed),
            flushes: d.flushes.load(Ordering::Relaxed),
            read_bytes: d.read_bytes.load(Ordering::Relaxed),
            write_bytes: d.write_bytes.load(Ordering::Relaxed),
            errors: d.errors.load(Ordering::Relaxed),
            latency: d.latency.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two_of_microseconds() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_nanos(300)); // bucket 0 (≤ 1 µs)
        h.record(Duration::from_micros(2)); // bucket 1 (≤ 2 µs)
        h.record(Duration::from_micros(3)); // bucket 2 (≤ 4 µs)
        h.record(Duration::from_micros(4)); // bucket 2
        h.record(Duration::from_secs(3600)); // the last bucket
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[2], 2);
        assert_eq!(s.buckets[LATENCY_BUCKETS - 1], 1);
        assert_eq!(s.count(), 5);
        assert_eq!(s.quantile_upper_seconds(0.5), 4e-6);
        assert_eq!(s.quantile_upper_seconds(1.0), f64::INFINITY);
        assert_eq!(bucket_upper_seconds(10), 1024e-6);
    }
}
