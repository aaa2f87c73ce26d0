//! The I/O backend trait: batches of operations in flight across all devices.
//!
//! A backend takes a batch of [`IoOp`]s, runs them concurrently (in any order) and hands each
//! buffer back with its result in an [`IoCompletion`]. Nothing orders operations inside a batch:
//! a flush that must cover some writes is submitted in a later batch, after those writes have
//! completed (docs/design.md invariant 7).

use crate::{AlignedBuf, BlockDevice, DeviceError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What an [`IoOp`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoKind {
    /// Read `buf.len()` bytes at `offset_bytes` into `buf`.
    Read,
    /// Write all of `buf` at `offset_bytes`.
    Write,
    /// fdatasync of the whole device. `offset_bytes` and `buf` are ignored.
    Flush,
    /// Write all of `buf` at `offset_bytes`, durable when it completes (`RWF_DSYNC`: the
    /// write and the cache flush it needs, in one request). Makes no other write durable.
    WriteDurable,
}

/// One operation: read into `buf`, write `buf`, or flush, on device `device_index`.
#[derive(Debug)]
pub struct IoOp {
    /// Index of the device in the backend's [`IoBackend::devices`].
    pub device_index: usize,
    /// Read, write or flush.
    pub kind: IoKind,
    /// Byte offset on the device; a multiple of [`crate::ALIGN_BYTES`].
    pub offset_bytes: u64,
    /// The bytes to write, or the buffer a read fills (its length is the transfer size).
    pub buf: AlignedBuf,
}

impl IoOp {
    /// A read of `len` bytes (rounded up to [`crate::ALIGN_BYTES`]) at `offset_bytes`, into a
    /// new zeroed buffer.
    pub fn read(device_index: usize, offset_bytes: u64, len: usize) -> IoOp {
        IoOp {
            device_index,
            kind: IoKind::Read,
            offset_bytes,
            buf: AlignedBuf::for_read(len),
        }
    }
    /// A read of `buf.len()` bytes at `offset_bytes` into `buf` (a buffer being reused; its
    /// old contents are overwritten).
    pub fn read_into(device_index: usize, offset_bytes: u64, buf: AlignedBuf) -> IoOp {
        IoOp {
            device_index,
            kind: IoKind::Read,
            offset_bytes,
            buf,
        }
    }
    /// A write of all of `buf` at `offset_bytes`.
    pub fn write(device_index: usize, offset_bytes: u64, buf: AlignedBuf) -> IoOp {
        IoOp {
            device_index,
            kind: IoKind::Write,
            offset_bytes,
            buf,
        }
    }
    /// A write of all of `buf` at `offset_bytes` that is durable when it completes.
    pub fn write_durable(device_index: usize, offset_bytes: u64, buf: AlignedBuf) -> IoOp {
        IoOp {
            device_index,
            kind: IoKind::WriteDurable,
            offset_bytes,
            buf,
        }
    }
    /// A flush (fdatasync) of the whole device.
    pub fn flush(device_index: usize) -> IoOp {
        IoOp {
            device_index,
            kind: IoKind::Flush,
            offset_bytes: 0,
            buf: AlignedBuf::new(0),
        }
    }
}

/// An operation handed back with its result and how long the device took.
#[derive(Debug)]
pub struct IoCompletion {
    /// The operation, its buffer handed back (filled, for a read).
    pub op: IoOp,
    /// `Ok` once the whole transfer (or flush) completed; a short transfer is an error.
    pub result: Result<(), DeviceError>,
    /// How long the operation took, from its start (pushed to the ring, or taken by a psync
    /// worker) to its completion; zero for an operation failed before it started.
    pub latency: Duration,
}

pub(crate) struct BatchState {
    slots: Mutex<(Vec<Option<IoCompletion>>, usize)>,
    done: Condvar,
    /// The backend's counters, fed as each operation completes.
    stats: Option<Arc<crate::stats::IoStats>>,
}

impl BatchState {
    pub(crate) fn remaining(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).1
    }

    pub(crate) fn complete(&self, index: usize, completion: IoCompletion) {
        if let Some(stats) = &self.stats {
            use crate::stats::OpClass;
            let class = match completion.op.kind {
                IoKind::Read => OpClass::Read,
                IoKind::Write | IoKind::WriteDurable => OpClass::Write,
                IoKind::Flush => OpClass::Flush,
            };
            stats.record(
                completion.op.device_index,
                class,
                completion.op.buf.len() as u64,
                completion.result.is_ok(),
                completion.latency,
            );
        }
        let mut g = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        debug_assert!(g.0[index].is_none());
        g.0[index] = Some(completion);
        g.1 -= 1;
        // Every completion wakes a waiter: one that needs only some of a batch's operations
        // (IoBatch::wait_progress) looks again at each.
        self.done.notify_all();
    }
}

/// How far [`DriveFn`] turns a thread's ring.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Drive {
    /// Reap what has completed, without blocking.
    Poll,
    /// Until the batch is complete.
    Complete,
    /// Once, blocking until at least one operation of the ring completed or the time passed
    /// (nothing if the batch is already complete).
    Progress(Duration),
}

/// Turns the calling thread's ring of backend `id` for `state` as far as `how` says.
pub(crate) type DriveFn = fn(id: u64, state: &BatchState, how: Drive);

struct Driver {
    backend_id: u64,
    thread: std::thread::ThreadId,
    drive: DriveFn,
}

/// A submitted batch; [`IoBatch::wait`] returns the completions in submission order.
///
/// A batch of the io_uring engine must be waited on by the thread that submitted it: that
/// thread's ring is what completes it.
pub struct IoBatch {
    pub(crate) state: Arc<BatchState>,
    /// For batches completed by driving a per-thread ring: the backend's id, the submitting
    /// thread and the function that turns that thread's ring.
    driver: Option<Driver>,
}

impl IoBatch {
    pub(crate) fn new(count: usize, stats: Option<Arc<crate::stats::IoStats>>) -> IoBatch {
        IoBatch {
            state: Arc::new(BatchState {
                slots: Mutex::new(((0..count).map(|_| None).collect(), count)),
                done: Condvar::new(),
                stats,
            }),
            driver: None,
        }
    }

    /// A batch that completes only when the submitting thread turns its ring with `drive`.
    pub(crate) fn driven(
        count: usize,
        stats: Option<Arc<crate::stats::IoStats>>,
        backend_id: u64,
        drive: DriveFn,
    ) -> IoBatch {
        let mut b = IoBatch::new(count, stats);
        b.driver = Some(Driver {
            backend_id,
            thread: std::thread::current().id(),
            drive,
        });
        b
    }

    fn drive(&self, how: Drive) {
        if let Some(d) = &self.driver {
            assert_eq!(
                d.thread,
                std::thread::current().id(),
                "an io_uring batch must be waited on by the thread that submitted it"
            );
            (d.drive)(d.backend_id, &self.state, how);
        }
    }

    /// Blocks until every operation completed and returns the completions in submission order.
    /// Panics if called on an io_uring batch from a thread other than the one that submitted it.
    pub fn wait(self) -> Vec<IoCompletion> {
        self.drive(Drive::Complete);
        let mut g = self.state.slots.lock().unwrap_or_else(|p| p.into_inner());
        while g.1 > 0 {
            g = self.state.done.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.0.drain(..)
            .map(|c| c.expect("every slot completed"))
            .collect()
    }

    /// Whether every operation has completed (reaps the ring without blocking).
    pub fn is_done(&self) -> bool {
        self.drive(Drive::Poll);
        self.state.remaining() == 0
    }

    /// Whether every operation has completed, without turning any ring: for a caller that
    /// keeps several batches in flight and has just waited with [`IoBatch::wait_progress`].
    pub fn completed(&self) -> bool {
        self.state.remaining() == 0
    }

    /// Per operation, in submission order: None while it is in flight, else whether it
    /// succeeded (without turning any ring, like [`IoBatch::completed`]). Meaningless after
    /// [`IoBatch::take_done`].
    pub fn outcomes(&self) -> Vec<Option<bool>> {
        let g = self.state.slots.lock().unwrap_or_else(|p| p.into_inner());
        g.0.iter()
            .map(|c| c.as_ref().map(|c| c.result.is_ok()))
            .collect()
    }

    /// Hands out the operations completed so far (None for those still in flight), for a
    /// caller that can use part of a batch (a rebuild that reads one chunk more than it
    /// needs). The batch keeps its operations in flight; end it with [`IoBatch::wait_rest`],
    /// never [`IoBatch::wait`]. Call once.
    pub fn take_done(&self) -> Vec<Option<IoCompletion>> {
        let mut g = self.state.slots.lock().unwrap_or_else(|p| p.into_inner());
        g.0.iter_mut().map(Option::take).collect()
    }

    /// Blocks until every operation still in flight completed and returns those (a batch
    /// that [`IoBatch::take_done`] took from: its buffers belong to the device until then).
    pub fn wait_rest(self) -> Vec<IoCompletion> {
        self.drive(Drive::Complete);
        let mut g = self.state.slots.lock().unwrap_or_else(|p| p.into_inner());
        while g.1 > 0 {
            g = self.state.done.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.0.drain(..).flatten().collect()
    }

    /// Blocks until this batch is complete or, on the io_uring engine, until any operation of
    /// the calling thread's ring completed (handing it to its batch; on the psync engine, any
    /// operation of this batch), or until `timeout` passed. Returns at once when the batch is already complete. With several batches in
    /// flight, call this on one and then [`IoBatch::completed`] on each: the way to keep a
    /// queue of independent operations full from one thread. Panics like [`IoBatch::wait`]
    /// when called from a thread other than the submitting one on the io_uring engine.
    pub fn wait_progress(&self, timeout: Duration) {
        if self.driver.is_some() {
            self.drive(Drive::Progress(timeout));
            return;
        }
        let deadline = std::time::Instant::now() + timeout;
        let mut g = self.state.slots.lock().unwrap_or_else(|p| p.into_inner());
        let before = g.1;
        while g.1 > 0 && g.1 == before {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            g = self
                .state
                .done
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// The devices of a backend, in the order an [`IoOp::device_index`] refers to: a snapshot
/// (a device added later is not in it; the indices of those in it never change).
pub type DeviceList = Arc<[Arc<dyn BlockDevice>]>;

/// A backend's current device list (a cheap snapshot: one `Arc` clone under a read lock).
pub(crate) fn snapshot(list: &std::sync::RwLock<DeviceList>) -> DeviceList {
    list.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Appends `dev` to a backend's list (a new snapshot; the old one stays valid for whoever
/// holds it), up to [`crate::stats::MAX_DEVICES`].
pub(crate) fn append_device(
    list: &mut DeviceList,
    dev: Arc<dyn BlockDevice>,
) -> Result<(), DeviceError> {
    if list.len() >= crate::stats::MAX_DEVICES {
        return Err(DeviceError::Backend(format!(
            "at most {} devices per engine",
            crate::stats::MAX_DEVICES
        )));
    }
    let mut v: Vec<Arc<dyn BlockDevice>> = list.to_vec();
    v.push(dev);
    *list = v.into();
    Ok(())
}

/// An I/O engine over a list of devices that only grows: runs batches of [`IoOp`]s
/// concurrently.
pub trait IoBackend: Send + Sync {
    /// The backend's name as the tools print it: "uring" or "psync".
    fn name(&self) -> &'static str;
    /// The devices, in the order an [`IoOp::device_index`] refers to.
    fn devices(&self) -> DeviceList;
    /// Adds a device while the backend runs (a disk handed to a running engine); returns its
    /// index. Fails when the backend cannot drive it (no file descriptor, for io_uring).
    fn add_device(&self, dev: Arc<dyn BlockDevice>) -> Result<usize, DeviceError> {
        Err(DeviceError::Unsupported {
            device: dev.name().to_string(),
            message: "this I/O engine cannot take devices while it runs".into(),
        })
    }
    /// Starts every operation; they complete in any order.
    fn submit(&self, ops: Vec<IoOp>) -> IoBatch;
    /// Submits and waits.
    fn execute(&self, ops: Vec<IoOp>) -> Vec<IoCompletion> {
        self.submit(ops).wait()
    }
    /// Per-device operation counts, bytes, errors and latency, kept as operations complete
    /// (None for a backend that keeps none).
    fn io_stats(&self) -> Option<&crate::stats::IoStats> {
        None
    }
    /// Gives up every device's claim now ([`BlockDevice::release`]): operations submitted
    /// afterwards fail. For an owner that is done with the devices while other handles to
    /// the backend may live on (a closed engine), so that the devices can be opened again
    /// at once, in this process or another.
    fn release_devices(&self) {
        for d in self.devices().iter() {
            d.release();
        }
    }
}

/// Runs one operation synchronously on a device (used by the psync engine).
pub(crate) fn run_sync(dev: &dyn BlockDevice, op: &mut IoOp) -> Result<(), DeviceError> {
    match op.kind {
        IoKind::Read => dev.read_at(&mut op.buf, op.offset_bytes),
        IoKind::Write => dev.write_at(&op.buf, op.offset_bytes),
        IoKind::Flush => dev.sync(),
        IoKind::WriteDurable => dev.write_durable_at(&op.buf, op.offset_bytes),
    }
}

/// The error for an operation naming a device index the backend does not have.
pub(crate) fn bad_index(i: usize) -> DeviceError {
    DeviceError::Backend(format!("no device with index {i}"))
}
