//! A fault-injecting device for tests (TigerBeetle's `testing/storage.zig` idea).
//!
//! Wraps any [`BlockDevice`] and, on command, makes the faults of the project's fault model:
//! whole-device EIO, EIO on chosen ranges (latent sector errors), read-only (EPERM), silent
//! read corruption, lost writes (reported done, not written), misdirected writes, latency
//! (fail-slow), failing flushes, fail-after-N operations, and power loss: writes not yet
//! covered by a flush can be dropped, kept at random or torn by [`FaultyDevice::crash`].
//!
//! Every fault that fires is counted in [`FaultCounters`], so a test can prove it fired.
//! All randomness comes from a seed given at construction.

use crate::{BlockDevice, DeviceError, Geometry, ALIGN_BYTES};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How power loss treats writes that no flush has covered yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unflushed write is lost.
    DropAll,
    /// Each unflushed write independently survives or is lost.
    RandomSubset,
    /// All unflushed writes survive except the last, of which only a prefix of 4 KiB blocks
    /// reached the medium.
    TornLast,
}

/// How many faults of each kind actually fired.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FaultCounters {
    /// Reads failed with EIO (failed device, read error range, fail-after-N).
    pub eio_reads: u64,
    /// Writes failed with EIO (failed device, write error range, fail-after-N).
    pub eio_writes: u64,
    /// Writes refused with EPERM while read-only.
    pub eperm_writes: u64,
    /// Reads returned with one byte flipped.
    pub corrupted_reads: u64,
    /// Writes reported done but not written (lost writes).
    pub dropped_writes: u64,
    /// Writes that landed at the wrong offset.
    pub misdirected_writes: u64,
    /// Operations slowed by the configured delay.
    pub delayed_ops: u64,
    /// Operations held by a hang ([`FaultyDevice::set_hung`]) until it was lifted.
    pub hung_ops: u64,
    /// Flushes failed with EIO.
    pub failed_flushes: u64,
    /// Unflushed writes undone by [`FaultyDevice::crash`].
    pub crash_dropped_writes: u64,
    /// Unflushed writes torn by [`FaultyDevice::crash`] (only a prefix kept).
    pub crash_torn_writes: u64,
}

impl FaultCounters {
    /// The sum of every counter: how many faults fired in all.
    pub fn total(&self) -> u64 {
        self.eio_reads
            + self.eio_writes
            + self.eperm_writes
            + self.corrupted_reads
            + self.dropped_writes
            + self.misdirected_writes
            + self.delayed_ops
            + self.hung_ops
            + self.failed_flushes
            + self.crash_dropped_writes
            + self.crash_torn_writes
    }
}

/// One write this device did not put where it was asked: dropped (`misdirected_to` is
/// `None`) or written elsewhere. Tests use the log to tell which area of the device a fault
/// hit (the sync journal or a segment), since the engine's write pattern decides that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteFault {
    /// Where the write was asked to go.
    pub offset_bytes: u64,
    /// Its length.
    pub len: usize,
    /// Where it went instead, for a misdirected write.
    pub misdirected_to: Option<u64>,
}

struct Unflushed {
    offset_bytes: u64,
    old: Vec<u8>,
    new_len: usize,
}

#[derive(Default)]
struct Config {
    read_error_ranges: Vec<Range<u64>>,
    write_error_ranges: Vec<Range<u64>>,
    corrupt_read_probability: f64,
    drop_write_probability: f64,
    misdirect_write_probability: f64,
    misdirect_delta_bytes: i64,
    delay: Duration,
}

/// A [`BlockDevice`] wrapper that injects the faults of the fault model on command (see the
/// module documentation). It has the inner device's name and geometry.
pub struct FaultyDevice {
    inner: Arc<dyn BlockDevice>,
    name: String,
    config: Mutex<Config>,
    rng: Mutex<SmallRng>,
    failed: AtomicBool,
    read_only: AtomicBool,
    fail_flush: AtomicBool,
    fail_after_ops: AtomicU64,
    ops: AtomicU64,
    /// Reads asked of this device (failed ones included).
    reads: AtomicU64,
    read_bytes: AtomicU64,
    /// Writes asked of this device (failed ones included).
    writes: AtomicU64,
    track_unflushed: AtomicBool,
    unflushed: Mutex<Vec<Unflushed>>,
    counters: Mutex<FaultCounters>,
    write_faults: Mutex<Vec<WriteFault>>,
    /// While `.0` every operation waits (a device that stopped answering); `.1`: the
    /// operations it held fail when it ends (they never reach the medium).
    hung: Mutex<(bool, bool)>,
    unhung: std::sync::Condvar,
    /// Operations waiting in a hang right now.
    held: AtomicU64,
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

impl FaultyDevice {
    /// Wraps `inner` with no fault enabled; `seed` drives every random choice.
    pub fn new(inner: Arc<dyn BlockDevice>, seed: u64) -> FaultyDevice {
        FaultyDevice {
            name: inner.name().to_string(),
            inner,
            config: Mutex::new(Config::default()),
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            failed: AtomicBool::new(false),
            read_only: AtomicBool::new(false),
            fail_flush: AtomicBool::new(false),
            fail_after_ops: AtomicU64::new(0),
            ops: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            read_bytes: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            track_unflushed: AtomicBool::new(false),
            write_faults: Mutex::new(Vec::new()),
            unflushed: Mutex::new(Vec::new()),
            counters: Mutex::new(FaultCounters::default()),
            hung: Mutex::new((false, false)),
            unhung: std::sync::Condvar::new(),
            held: AtomicU64::new(0),
        }
    }

    /// While `hung`, every operation waits until the hang is lifted (a device that stopped
    /// answering: firmware stuck, a network file system whose server is gone); then it
    /// goes on as asked.
    pub fn set_hung(&self, hung: bool) {
        *self.hung.lock().unwrap_or_else(|p| p.into_inner()) = (hung, false);
        if !hung {
            self.unhung.notify_all();
        }
    }

    /// Ends a hang with the operations it held failing with EIO instead of going on: they
    /// never reach the medium (the power went off while the device held them).
    pub fn fail_held(&self) {
        *self.hung.lock().unwrap_or_else(|p| p.into_inner()) = (false, true);
        self.unhung.notify_all();
    }

    /// Operations waiting in a hang right now.
    pub fn held_ops(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }

    /// Reads asked of this device so far (failed ones included): what a test counts to see
    /// how many device operations a workload cost.
    pub fn reads_seen(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    /// Bytes asked of this device by reads so far (failed ones included).
    pub fn read_bytes_seen(&self) -> u64 {
        self.read_bytes.load(Ordering::SeqCst)
    }

    /// Writes asked of this device so far (failed ones included).
    pub fn writes_seen(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// The wrapped device (writes to it bypass every fault).
    pub fn inner(&self) -> &Arc<dyn BlockDevice> {
        &self.inner
    }

    fn cfg(&self) -> std::sync::MutexGuard<'_, Config> {
        self.config.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn count(&self, f: impl FnOnce(&mut FaultCounters)) {
        f(&mut self.counters.lock().unwrap_or_else(|p| p.into_inner()))
    }
    fn roll(&self, p: f64) -> bool {
        p > 0.0
            && self
                .rng
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .random_bool(p.min(1.0))
    }

    /// Every read and write fails with EIO (a dead device).
    pub fn set_failed(&self, failed: bool) {
        self.failed.store(failed, Ordering::SeqCst);
    }
    /// Writes fail with EPERM (`blockdev --setro`).
    pub fn set_read_only(&self, ro: bool) {
        self.read_only.store(ro, Ordering::SeqCst);
    }
    /// Flushes fail with EIO.
    pub fn set_fail_flush(&self, fail: bool) {
        self.fail_flush.store(fail, Ordering::SeqCst);
    }
    /// After `n` more operations the device fails entirely (0 disables).
    pub fn fail_after_ops(&self, n: u64) {
        self.ops.store(0, Ordering::SeqCst);
        self.fail_after_ops.store(n, Ordering::SeqCst);
    }
    /// Reads overlapping `range` fail with EIO (latent sector errors).
    pub fn add_read_error_range(&self, range: Range<u64>) {
        self.cfg().read_error_ranges.push(range);
    }
    /// Writes overlapping `range` (bytes) fail with EIO.
    pub fn add_write_error_range(&self, range: Range<u64>) {
        self.cfg().write_error_ranges.push(range);
    }
    /// Removes every read and write error range.
    pub fn clear_error_ranges(&self) {
        let mut c = self.cfg();
        c.read_error_ranges.clear();
        c.write_error_ranges.clear();
    }
    /// Each read has probability `p` of coming back with one byte flipped.
    pub fn set_corrupt_read_probability(&self, p: f64) {
        self.cfg().corrupt_read_probability = p;
    }
    /// Each write has probability `p` of being reported done but not written (lost write).
    pub fn set_drop_write_probability(&self, p: f64) {
        self.cfg().drop_write_probability = p;
    }
    /// Each write has probability `p` of landing `delta_bytes` away from its offset.
    pub fn set_misdirect_writes(&self, p: f64, delta_bytes: i64) {
        let mut c = self.cfg();
        c.misdirect_write_probability = p;
        c.misdirect_delta_bytes = delta_bytes;
    }
    /// Every operation takes at least `delay` (fail-slow).
    pub fn set_delay(&self, delay: Duration) {
        self.cfg().delay = delay;
    }
    /// Remember writes not yet covered by a flush, so that [`FaultyDevice::crash`] can undo
    /// them.
    pub fn set_track_unflushed(&self, on: bool) {
        self.track_unflushed.store(on, Ordering::SeqCst);
        self.unflushed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
    /// Number of writes not yet covered by a flush.
    pub fn unflushed_count(&self) -> usize {
        self.unflushed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Simulates power loss: applies `mode` to the writes no flush has covered, directly on the
    /// inner device, and forgets them.
    pub fn crash(&self, mode: CrashMode) -> Result<(), DeviceError> {
        let pending: Vec<Unflushed> =
            std::mem::take(&mut *self.unflushed.lock().unwrap_or_else(|p| p.into_inner()));
        let n = pending.len();
        // Undo in reverse order so that overlapping writes restore the oldest contents.
        for (i, w) in pending.into_iter().enumerate().rev() {
            match mode {
                CrashMode::DropAll => {
                    self.inner.write_at(&w.old, w.offset_bytes)?;
                    self.count(|c| c.crash_dropped_writes += 1);
                }
                CrashMode::RandomSubset => {
                    if self.roll(0.5) {
                        self.inner.write_at(&w.old, w.offset_bytes)?;
                        self.count(|c| c.crash_dropped_writes += 1);
                    }
                }
                CrashMode::TornLast => {
                    if i + 1 == n {
                        let blocks = w.new_len / ALIGN_BYTES;
                        let kept = if blocks > 1 {
                            self.rng
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .random_range(1..blocks)
                        } else {
                            0
                        };
                        let from = kept * ALIGN_BYTES;
                        self.inner
                            .write_at(&w.old[from..], w.offset_bytes + from as u64)?;
                        self.count(|c| c.crash_torn_writes += 1);
                    }
                }
            }
        }
        Ok(())
    }

    /// A copy of the counts of faults fired so far.
    pub fn counters(&self) -> FaultCounters {
        *self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every dropped or misdirected write so far, oldest first.
    pub fn write_faults(&self) -> Vec<WriteFault> {
        self.write_faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn log_write_fault(&self, f: WriteFault) {
        self.write_faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(f);
    }

    fn before_op(&self) -> Result<(), ()> {
        let mut hung = self.hung.lock().unwrap_or_else(|p| p.into_inner());
        if hung.0 {
            self.held.fetch_add(1, Ordering::SeqCst);
            while hung.0 {
                hung = self.unhung.wait(hung).unwrap_or_else(|p| p.into_inner());
            }
            let fail = hung.1;
            drop(hung);
            self.held.fetch_sub(1, Ordering::SeqCst);
            self.count(|c| c.hung_ops += 1);
            if fail {
                return Err(());
            }
        } else {
            drop(hung);
        }
        let delay = self.cfg().delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
            self.count(|c| c.delayed_ops += 1);
        }
        let limit = self.fail_after_ops.load(Ordering::SeqCst);
        if limit > 0 && self.ops.fetch_add(1, Ordering::SeqCst) >= limit {
            self.failed.store(true, Ordering::SeqCst);
        }
        if self.failed.load(Ordering::SeqCst) {
            return Err(());
        }
        Ok(())
    }
}

fn overlaps(ranges: &[Range<u64>], offset: u64, len: usize) -> bool {
    let end = offset + len as u64;
    ranges.iter().any(|r| r.start < end && offset < r.end)
}

impl BlockDevice for FaultyDevice {
    fn release(&self) {
        self.inner.release()
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }
    fn take_growth(&self) -> Option<u64> {
        self.inner.take_growth()
    }
    fn write_refused(&self) -> Option<String> {
        if self.read_only.load(Ordering::SeqCst) {
            return Some("the device is read-only (injected): writes fail with EPERM".to_string());
        }
        self.inner.write_refused()
    }

    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> Result<(), DeviceError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.read_bytes
            .fetch_add(buf.len() as u64, Ordering::SeqCst);
        if self.before_op().is_err()
            || overlaps(&self.cfg().read_error_ranges, offset_bytes, buf.len())
        {
            self.count(|c| c.eio_reads += 1);
            return Err(DeviceError::io(&self.name, "read", offset_bytes, eio()));
        }
        self.inner.read_at(buf, offset_bytes)?;
        let p = self.cfg().corrupt_read_probability;
        if !buf.is_empty() && self.roll(p) {
            let i = self
                .rng
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .random_range(0..buf.len());
            buf[i] ^= 0x5a;
            self.count(|c| c.corrupted_reads += 1);
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset_bytes: u64) -> Result<(), DeviceError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if self.before_op().is_err()
            || overlaps(&self.cfg().write_error_ranges, offset_bytes, buf.len())
        {
            self.count(|c| c.eio_writes += 1);
            return Err(DeviceError::io(&self.name, "write", offset_bytes, eio()));
        }
        if self.read_only.load(Ordering::SeqCst) {
            self.count(|c| c.eperm_writes += 1);
            let e = io::Error::from_raw_os_error(libc::EPERM);
            return Err(DeviceError::io(&self.name, "write", offset_bytes, e));
        }
        let (p_drop, p_mis, delta) = {
            let c = self.cfg();
            (
                c.drop_write_probability,
                c.misdirect_write_probability,
                c.misdirect_delta_bytes,
            )
        };
        if self.roll(p_drop) {
            self.count(|c| c.dropped_writes += 1);
            self.log_write_fault(WriteFault {
                offset_bytes,
                len: buf.len(),
                misdirected_to: None,
            });
            return Ok(());
        }
        let mut target = offset_bytes;
        if self.roll(p_mis) {
            let t = offset_bytes as i64 + delta;
            let cap = self.inner.geometry().capacity_bytes as i64;
            if t >= 0 && t + buf.len() as i64 <= cap {
                target = t as u64;
                self.count(|c| c.misdirected_writes += 1);
                self.log_write_fault(WriteFault {
                    offset_bytes,
                    len: buf.len(),
                    misdirected_to: Some(target),
                });
            }
        }
        // Writing over a latent sector error remaps the sectors written, as drives do: reads
        // of the rewritten part succeed again, the rest of the range still fails.
        {
            let end = target + buf.len() as u64;
            let mut c = self.cfg();
            let ranges = std::mem::take(&mut c.read_error_ranges);
            c.read_error_ranges = ranges
                .into_iter()
                .flat_map(|r| {
                    if r.end <= target || r.start >= end {
                        return vec![r];
                    }
                    [r.start..target, end..r.end]
                        .into_iter()
                        .filter(|p| p.start < p.end)
                        .collect()
                })
                .collect();
        }
        if self.track_unflushed.load(Ordering::SeqCst) {
            let mut old = vec![0u8; buf.len()];
            self.inner.read_at(&mut old, target)?;
            self.unflushed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Unflushed {
                    offset_bytes: target,
                    old,
                    new_len: buf.len(),
                });
        }
        self.inner.write_at(buf, target)
    }

    /// The write, tracked like any other; then, as a FUA write would, only this write is made
    /// durable (its undo record dropped), unless an earlier unflushed write overlaps it (then
    /// the device is flushed whole, so that undoing that one cannot undo this). A failing
    /// flush fails it (the write may or may not have reached the medium).
    fn write_durable_at(&self, buf: &[u8], offset_bytes: u64) -> Result<(), DeviceError> {
        self.write_at(buf, offset_bytes)?;
        if self.fail_flush.load(Ordering::SeqCst) {
            self.count(|c| c.failed_flushes += 1);
            return Err(DeviceError::io(
                &self.name,
                "durable write",
                offset_bytes,
                eio(),
            ));
        }
        let mut unflushed = self.unflushed.lock().unwrap_or_else(|p| p.into_inner());
        let end = offset_bytes + buf.len() as u64;
        let own = unflushed
            .iter()
            .rposition(|u| u.offset_bytes == offset_bytes && u.new_len == buf.len());
        let overlaps_earlier = unflushed.iter().enumerate().any(|(i, u)| {
            Some(i) != own
                && u.offset_bytes < end
                && offset_bytes < u.offset_bytes + u.new_len as u64
        });
        if overlaps_earlier {
            unflushed.clear();
            drop(unflushed);
            return self.inner.sync();
        }
        // Its own record, the newest at this place (a misdirected or dropped write left
        // none here).
        if let Some(i) = own {
            unflushed.remove(i);
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), DeviceError> {
        if self.before_op().is_err() || self.fail_flush.load(Ordering::SeqCst) {
            self.count(|c| c.failed_flushes += 1);
            return Err(DeviceError::io(&self.name, "flush", 0, eio()));
        }
        self.inner.sync()?;
        self.unflushed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemDevice;

    #[test]
    fn a_write_remaps_only_the_sectors_it_covers() {
        let f = FaultyDevice::new(Arc::new(MemDevice::new("m", 1 << 20)), 1);
        f.add_read_error_range(8192..8192 + 4 * 4096);
        let mut b = vec![0u8; 4096];
        assert!(f.read_at(&mut b, 8192 + 4096).is_err());
        // Rewrite the second and third sectors of the four.
        f.write_at(&[7u8; 8192], 8192 + 4096).expect("write");
        f.read_at(&mut b, 8192 + 4096).expect("remapped");
        assert_eq!(b, vec![7u8; 4096]);
        f.read_at(&mut b, 8192 + 2 * 4096).expect("remapped");
        assert!(f.read_at(&mut b, 8192).is_err(), "the first is still bad");
        assert!(f.read_at(&mut b, 8192 + 3 * 4096).is_err(), "the last too");
    }
}
