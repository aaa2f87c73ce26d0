//! Per-device fault settings, changed at any moment from another thread, and the counters of
//! the faults that fired.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// The faults of one device file. Every setting takes effect for the requests that start
/// after it is made.
#[derive(Debug, Default)]
pub struct DeviceFaults {
    delay_ns: AtomicU64,
    dead: AtomicBool,
    fail_writes: AtomicBool,
    fail_fsync: AtomicBool,
    /// Byte ranges whose reads fail with EIO until a write covers them.
    read_errors: Mutex<Vec<Range<u64>>>,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    reads: AtomicU64,
    writes: AtomicU64,
    fsyncs: AtomicU64,
    read_bytes: AtomicU64,
    written_bytes: AtomicU64,
    delayed_ops: AtomicU64,
    eio_reads: AtomicU64,
    eio_writes: AtomicU64,
    failed_fsyncs: AtomicU64,
    remapped_bytes: AtomicU64,
}

/// What a device's requests met so far (every count includes the failed requests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounters {
    pub reads: u64,
    pub writes: u64,
    pub fsyncs: u64,
    pub read_bytes: u64,
    pub written_bytes: u64,
    /// Reads and writes that waited for the device's delay.
    pub delayed_ops: u64,
    /// Reads answered with EIO (a read-error range, or a dead device).
    pub eio_reads: u64,
    /// Writes answered with EIO (failing writes, or a dead device).
    pub eio_writes: u64,
    /// Fsyncs answered with EIO.
    pub failed_fsyncs: u64,
    /// Bytes of read-error ranges that writes covered (and so cleared).
    pub remapped_bytes: u64,
}

/// How a request ends, decided before its I/O.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Serve,
    Eio,
}

impl DeviceFaults {
    /// Adds `delay` to every read and write (zero: no delay).
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ns
            .store(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    pub fn delay(&self) -> Duration {
        Duration::from_nanos(self.delay_ns.load(Relaxed))
    }

    /// Every request (read, write, fsync) fails with EIO: a device that died.
    pub fn set_dead(&self, dead: bool) {
        self.dead.store(dead, Relaxed);
    }

    /// Every write fails with EIO (reads are served).
    pub fn set_fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Relaxed);
    }

    /// Every fsync fails with EIO. The writes before it stay on the backing file: a device
    /// whose cache flush fails may or may not have kept them, and the engine must not count
    /// on either.
    pub fn set_fail_fsync(&self, fail: bool) {
        self.fail_fsync.store(fail, Relaxed);
    }

    /// Reads touching `range` (bytes) fail with EIO until writes cover it: a latent sector
    /// error, which a drive remaps when the sector is written again.
    pub fn add_read_error(&self, range: Range<u64>) {
        if range.start < range.end {
            self.read_errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(range);
        }
    }

    /// The read-error ranges still in place.
    pub fn read_errors(&self) -> Vec<Range<u64>> {
        self.read_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes every fault away (the counters stay).
    pub fn clear(&self) {
        self.set_delay(Duration::ZERO);
        self.set_dead(false);
        self.set_fail_writes(false);
        self.set_fail_fsync(false);
        self.read_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Relaxed)
    }

    pub fn fails_writes(&self) -> bool {
        self.fail_writes.load(Relaxed)
    }

    pub fn fails_fsync(&self) -> bool {
        self.fail_fsync.load(Relaxed)
    }

    pub fn counters(&self) -> FaultCounters {
        let c = &self.counters;
        FaultCounters {
            reads: c.reads.load(Relaxed),
            writes: c.writes.load(Relaxed),
            fsyncs: c.fsyncs.load(Relaxed),
            read_bytes: c.read_bytes.load(Relaxed),
            written_bytes: c.written_bytes.load(Relaxed),
            delayed_ops: c.delayed_ops.load(Relaxed),
            eio_reads: c.eio_reads.load(Relaxed),
            eio_writes: c.eio_writes.load(Relaxed),
            failed_fsyncs: c.failed_fsyncs.load(Relaxed),
            remapped_bytes: c.remapped_bytes.load(Relaxed),
        }
    }

    /// Waits for the device's delay, if any (for a read or a write).
    pub(crate) fn wait(&self) {
        let d = self.delay();
        if !d.is_zero() {
            self.counters.delayed_ops.fetch_add(1, Relaxed);
            std::thread::sleep(d);
        }
    }

    pub(crate) fn on_read(&self, range: Range<u64>) -> Verdict {
        let c = &self.counters;
        c.reads.fetch_add(1, Relaxed);
        let bad = self.is_dead()
            || self
                .read_errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|r| r.start < range.end && range.start < r.end);
        if bad {
            c.eio_reads.fetch_add(1, Relaxed);
            return Verdict::Eio;
        }
        c.read_bytes.fetch_add(range.end - range.start, Relaxed);
        Verdict::Serve
    }

    pub(crate) fn on_write(&self, range: Range<u64>) -> Verdict {
        let c = &self.counters;
        c.writes.fetch_add(1, Relaxed);
        if self.is_dead() || self.fails_writes() {
            c.eio_writes.fetch_add(1, Relaxed);
            return Verdict::Eio;
        }
        c.written_bytes.fetch_add(range.end - range.start, Relaxed);
        Verdict::Serve
    }

    /// A write of `range` reached the backing file: the read errors it covers are gone.
    pub(crate) fn written(&self, range: Range<u64>) {
        let mut errors = self.read_errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.is_empty() {
            return;
        }
        let (kept, removed) = subtract(&errors, &range);
        *errors = kept;
        self.counters.remapped_bytes.fetch_add(removed, Relaxed);
    }

    pub(crate) fn on_fsync(&self) -> Verdict {
        let c = &self.counters;
        c.fsyncs.fetch_add(1, Relaxed);
        if self.is_dead() || self.fails_fsync() {
            c.failed_fsyncs.fetch_add(1, Relaxed);
            return Verdict::Eio;
        }
        Verdict::Serve
    }
}

/// `ranges` without `cut`, and how many bytes were taken out.
fn subtract(ranges: &[Range<u64>], cut: &Range<u64>) -> (Vec<Range<u64>>, u64) {
    let mut kept = Vec::with_capacity(ranges.len() + 1);
    let mut removed = 0;
    for r in ranges {
        if r.end <= cut.start || cut.end <= r.start {
            kept.push(r.clone());
            continue;
        }
        removed += r.end.min(cut.end) - r.start.max(cut.start);
        if r.start < cut.start {
            kept.push(r.start..cut.start);
        }
        if cut.end < r.end {
            kept.push(cut.end..r.end);
        }
    }
    (kept, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // a list of one range, not a range of values
    fn a_write_clears_exactly_the_error_bytes_it_covers() {
        let (kept, removed) = subtract(&[0..100, 200..300, 400..500], &(50..250));
        assert_eq!(kept, vec![0..50, 250..300, 400..500]);
        assert_eq!(removed, 100);
        let (kept, removed) = subtract(&[100..200], &(120..130));
        assert_eq!(kept, vec![100..120, 130..200]);
        assert_eq!(removed, 10);
        let (kept, removed) = subtract(&[100..200], &(0..100));
        assert_eq!(kept, vec![100..200]);
        assert_eq!(removed, 0);
    }

    #[test]
    fn verdicts_follow_the_settings_and_count() {
        let f = DeviceFaults::default();
        f.add_read_error(4096..8192);
        assert_eq!(f.on_read(0..4096), Verdict::Serve);
        assert_eq!(f.on_read(4000..4200), Verdict::Eio);
        f.written(4096..8192);
        assert_eq!(f.on_read(4096..8192), Verdict::Serve);
        f.set_fail_fsync(true);
        assert_eq!(f.on_fsync(), Verdict::Eio);
        assert_eq!(f.on_write(0..512), Verdict::Serve);
        f.set_dead(true);
        assert_eq!(f.on_write(0..512), Verdict::Eio);
        let c = f.counters();
        assert_eq!(
            (
                c.reads,
                c.eio_reads,
                c.failed_fsyncs,
                c.eio_writes,
                c.remapped_bytes
            ),
            (3, 1, 1, 1, 4096)
        );
        f.clear();
        assert_eq!(f.on_read(0..1), Verdict::Serve);
    }
}
