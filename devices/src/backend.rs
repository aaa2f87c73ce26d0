//! The I/O backend trait: batches of operations in flight across all devices.
//!
//! A backend takes a batch of [`IoOp`]s, runs them concurrently (in any order) and hands each
//! buffer back with its result in an [`IoCompletion`]. Nothing orders operations inside a batch:
//! a flush that must cover some writes is submitted in a later batch, after those writes have
//! completed (docs/design.md invariant 7).

use crate::{AlignedBuf, BlockDevice, DeviceError};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

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

/// The I/O deadline of a backend, shared with its batches: how long an operation may be out
/// on its device before it is given up, and how many given-up operations each device has
/// not completed yet (docs/design.md, "Devices that stop answering").
pub(crate) struct Deadline {
    /// Nanoseconds; 0 for no deadline.
    timeout_nanos: AtomicU64,
    /// Per device index: operations given up and not yet completed by the device.
    stuck: Vec<AtomicU64>,
    /// Per device index: those of them that change the device (writes, flushes).
    stuck_writes: Vec<AtomicU64>,
    /// Per device index: its name, for the error of a given-up operation.
    names: RwLock<Vec<String>>,
    /// Called once for each operation given up (the psync engine starts a worker in place
    /// of the one the operation holds).
    on_give_up: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Deadline {
    pub(crate) fn new(names: Vec<String>) -> Arc<Deadline> {
        Arc::new(Deadline {
            timeout_nanos: AtomicU64::new(0),
            stuck: (0..crate::stats::MAX_DEVICES)
                .map(|_| AtomicU64::new(0))
                .collect(),
            stuck_writes: (0..crate::stats::MAX_DEVICES)
                .map(|_| AtomicU64::new(0))
                .collect(),
            names: RwLock::new(names),
            on_give_up: OnceLock::new(),
        })
    }
    pub(crate) fn timeout(&self) -> Option<Duration> {
        match self.timeout_nanos.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }
    pub(crate) fn set_timeout(&self, timeout: Option<Duration>) {
        let n = timeout.map_or(0, |t| {
            u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        self.timeout_nanos.store(n, Ordering::Relaxed);
    }
    pub(crate) fn add_name(&self, name: &str) {
        self.names
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_string());
    }
    pub(crate) fn stuck(&self, device_index: usize) -> u64 {
        self.stuck
            .get(device_index)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }
    pub(crate) fn stuck_writes(&self, device_index: usize) -> u64 {
        self.stuck_writes
            .get(device_index)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }
    /// Counts a given-up operation in (`add`) or out.
    fn count_stuck(&self, device_index: usize, kind: IoKind, add: bool) {
        let writes = (kind != IoKind::Read).then_some(&self.stuck_writes);
        for c in [Some(&self.stuck), writes]
            .into_iter()
            .flatten()
            .filter_map(|v| v.get(device_index))
        {
            if add {
                c.fetch_add(1, Ordering::SeqCst);
            } else {
                c.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
    pub(crate) fn any_stuck(&self) -> bool {
        self.stuck.iter().any(|c| c.load(Ordering::SeqCst) > 0)
    }
    pub(crate) fn set_on_give_up(&self, f: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_give_up.set(f);
    }
    fn name(&self, device_index: usize) -> String {
        self.names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(device_index)
            .cloned()
            .unwrap_or_else(|| format!("device {device_index}"))
    }
}

/// What an operation of a batch is doing.
#[derive(Clone, Copy)]
enum SlotState {
    /// Not yet started on its device (queued), or no deadline applied when it started.
    Waiting,
    /// Out on its device since `at`.
    Started(Started),
    /// Completed by the device.
    Completed,
    /// Given up at the deadline; the device still has it.
    GivenUp,
}

#[derive(Clone, Copy)]
struct Started {
    at: Instant,
    device_index: usize,
    kind: IoKind,
    offset_bytes: u64,
    len: usize,
}

struct Slots {
    /// The completions not yet handed out, in submission order.
    done: Vec<Option<IoCompletion>>,
    /// Operations neither completed nor given up.
    remaining: usize,
    state: Vec<SlotState>,
}

pub(crate) struct BatchState {
    slots: Mutex<Slots>,
    done: Condvar,
    /// The backend's counters, fed as each operation completes.
    stats: Option<Arc<crate::stats::IoStats>>,
    /// The backend's I/O deadline.
    deadline: Option<Arc<Deadline>>,
    /// When the batch was made: no operation of it started earlier, so none is overdue
    /// before this plus the deadline (the cheap test that keeps the deadline off the hot
    /// path).
    created: Instant,
}

/// The name of an operation in errors.
pub(crate) fn op_name(kind: IoKind) -> &'static str {
    match kind {
        IoKind::Read => "read",
        IoKind::Write => "write",
        IoKind::WriteDurable => "durable write",
        IoKind::Flush => "flush",
    }
}

impl BatchState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn remaining(&self) -> usize {
        self.lock().remaining
    }

    fn timeout(&self) -> Option<Duration> {
        self.deadline.as_ref().and_then(|d| d.timeout())
    }

    /// Operation `index` (`op`) starts on its device now: its deadline runs from here.
    pub(crate) fn started(&self, index: usize, op: &IoOp) {
        if self.timeout().is_none() {
            return;
        }
        let mut g = self.lock();
        if matches!(g.state[index], SlotState::Waiting) {
            g.state[index] = SlotState::Started(Started {
                at: Instant::now(),
                device_index: op.device_index,
                kind: op.kind,
                offset_bytes: op.offset_bytes,
                len: op.buf.len(),
            });
        }
    }

    fn record(&self, c: &IoCompletion) {
        if let Some(stats) = &self.stats {
            use crate::stats::OpClass;
            let class = match c.op.kind {
                IoKind::Read => OpClass::Read,
                IoKind::Write | IoKind::WriteDurable => OpClass::Write,
                IoKind::Flush => OpClass::Flush,
            };
            stats.record(
                c.op.device_index,
                class,
                c.op.buf.len() as u64,
                c.result.is_ok(),
                c.latency,
            );
        }
    }

    /// Hands operation `index`'s completion to the batch. Returns true when the operation
    /// had been given up at its deadline: the completion (and its buffer, which the device
    /// no longer uses) is dropped.
    pub(crate) fn complete(&self, index: usize, completion: IoCompletion) -> bool {
        let mut g = self.lock();
        if matches!(g.state[index], SlotState::GivenUp) {
            g.state[index] = SlotState::Completed;
            drop(g);
            if let Some(d) = &self.deadline {
                let i = completion.op.device_index;
                d.count_stuck(i, completion.op.kind, false);
                log(
                    tracing::Level::INFO,
                    format_args!(
                        "{}: a {} given up at the I/O deadline completed after all ({})",
                        d.name(i),
                        op_name(completion.op.kind),
                        match &completion.result {
                            Ok(()) => "done".to_string(),
                            Err(e) => e.to_string(),
                        }
                    ),
                );
            }
            return true;
        }
        self.record(&completion);
        debug_assert!(g.done[index].is_none());
        g.done[index] = Some(completion);
        g.state[index] = SlotState::Completed;
        g.remaining -= 1;
        // Every completion wakes a waiter: one that needs only some of a batch's operations
        // (IoBatch::wait_progress) looks again at each.
        self.done.notify_all();
        false
    }

    /// Gives up every operation out on its device for longer than the deadline: each gets a
    /// [`DeviceError::TimedOut`] completion with a new buffer of its length (the device keeps
    /// the real one until it completes). Returns how many were given up now.
    pub(crate) fn give_up_overdue(&self) -> usize {
        let Some(d) = &self.deadline else {
            return 0;
        };
        let Some(timeout) = d.timeout() else {
            return 0;
        };
        let now = Instant::now();
        if now.saturating_duration_since(self.created) < timeout {
            return 0;
        }
        let mut given = 0;
        {
            let mut g = self.lock();
            for i in 0..g.state.len() {
                let SlotState::Started(s) = g.state[i] else {
                    continue;
                };
                let after = now.saturating_duration_since(s.at);
                if after < timeout {
                    continue;
                }
                let c = IoCompletion {
                    op: IoOp {
                        device_index: s.device_index,
                        kind: s.kind,
                        offset_bytes: s.offset_bytes,
                        buf: AlignedBuf::for_read(s.len),
                    },
                    result: Err(DeviceError::TimedOut {
                        device: d.name(s.device_index),
                        op: op_name(s.kind),
                        offset_bytes: s.offset_bytes,
                        after,
                    }),
                    latency: after,
                };
                if let Err(e) = &c.result {
                    log(tracing::Level::WARN, format_args!("{e}; given up"));
                }
                self.record(&c);
                d.count_stuck(s.device_index, s.kind, true);
                g.done[i] = Some(c);
                g.state[i] = SlotState::GivenUp;
                g.remaining -= 1;
                given += 1;
            }
            if given > 0 {
                self.done.notify_all();
            }
        }
        if let Some(f) = d.on_give_up.get() {
            (0..given).for_each(|_| f());
        }
        given
    }

    /// Stops counting given-up operation `index` (`op`) as out on its device: its ring is
    /// going away with the thread that sent it, and nothing will see it end. (The kernel
    /// finishes or cancels it as that thread exits.)
    pub(crate) fn forget_given_up(&self, index: usize, op: &IoOp) {
        let mut g = self.lock();
        if !matches!(g.state[index], SlotState::GivenUp) {
            return;
        }
        g.state[index] = SlotState::Completed;
        drop(g);
        if let Some(d) = &self.deadline {
            d.count_stuck(op.device_index, op.kind, false);
            log(
                tracing::Level::WARN,
                format_args!(
                    "{}: a {} given up at the I/O deadline was still out when the thread that sent it ended; no longer counted as stuck",
                    d.name(op.device_index),
                    op_name(op.kind)
                ),
            );
        }
    }

    /// Whether operation `index` was given up and its device has not completed it yet.
    pub(crate) fn given_up(&self, index: usize) -> bool {
        matches!(self.lock().state[index], SlotState::GivenUp)
    }

    /// How long a waiter may sleep before it must look for overdue operations again (None:
    /// no deadline).
    fn next_check(&self) -> Option<Duration> {
        let timeout = self.timeout()?;
        let now = Instant::now();
        let age = now.saturating_duration_since(self.created);
        if age < timeout {
            return Some((timeout - age).clamp(Duration::from_millis(1), Duration::from_secs(1)));
        }
        let g = self.lock();
        let soonest = g
            .state
            .iter()
            .filter_map(|s| match s {
                SlotState::Started(s) => Some((s.at + timeout).saturating_duration_since(now)),
                _ => None,
            })
            .min()
            .unwrap_or(timeout);
        Some(soonest.clamp(Duration::from_millis(1), Duration::from_secs(1)))
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
    pub(crate) fn new(
        count: usize,
        stats: Option<Arc<crate::stats::IoStats>>,
        deadline: Option<Arc<Deadline>>,
    ) -> IoBatch {
        IoBatch {
            state: Arc::new(BatchState {
                slots: Mutex::new(Slots {
                    done: (0..count).map(|_| None).collect(),
                    remaining: count,
                    state: vec![SlotState::Waiting; count],
                }),
                done: Condvar::new(),
                stats,
                deadline,
                created: Instant::now(),
            }),
            driver: None,
        }
    }

    /// A batch that completes only when the submitting thread turns its ring with `drive`.
    pub(crate) fn driven(
        count: usize,
        stats: Option<Arc<crate::stats::IoStats>>,
        deadline: Option<Arc<Deadline>>,
        backend_id: u64,
        drive: DriveFn,
    ) -> IoBatch {
        let mut b = IoBatch::new(count, stats, deadline);
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

    /// Blocks until every operation completed, or was given up at the I/O deadline.
    fn wait_all(&self) {
        if self.state.timeout().is_none() {
            self.drive(Drive::Complete);
            let mut g = self.state.lock();
            while g.remaining > 0 {
                g = self.state.done.wait(g).unwrap_or_else(|p| p.into_inner());
            }
            return;
        }
        while self.state.remaining() > 0 {
            let slice = self.state.next_check().unwrap_or(Duration::from_secs(1));
            if self.driver.is_some() {
                self.drive(Drive::Progress(slice));
            } else {
                let g = self.state.lock();
                if g.remaining > 0 {
                    let _ = self.state.done.wait_timeout(g, slice);
                }
            }
            self.state.give_up_overdue();
        }
    }

    /// Blocks until every operation completed and returns the completions in submission order.
    /// An operation still out on its device at the I/O deadline
    /// ([`IoBackend::set_io_timeout`]) completes with [`DeviceError::TimedOut`] and a new
    /// buffer. Panics if called on an io_uring batch from a thread other than the one that
    /// submitted it.
    pub fn wait(self) -> Vec<IoCompletion> {
        self.wait_all();
        let mut g = self.state.lock();
        g.done
            .drain(..)
            .map(|c| c.expect("every slot completed"))
            .collect()
    }

    /// Whether every operation has completed (reaps the ring without blocking).
    pub fn is_done(&self) -> bool {
        self.drive(Drive::Poll);
        self.state.give_up_overdue();
        self.state.remaining() == 0
    }

    /// Whether every operation has completed, without turning any ring: for a caller that
    /// keeps several batches in flight and has just waited with [`IoBatch::wait_progress`].
    pub fn completed(&self) -> bool {
        self.state.give_up_overdue();
        self.state.remaining() == 0
    }

    /// Per operation, in submission order: None while it is in flight, else whether it
    /// succeeded (without turning any ring, like [`IoBatch::completed`]). Meaningless after
    /// [`IoBatch::take_done`].
    pub fn outcomes(&self) -> Vec<Option<bool>> {
        let g = self.state.lock();
        g.done
            .iter()
            .map(|c| c.as_ref().map(|c| c.result.is_ok()))
            .collect()
    }

    /// Hands out the operations completed so far (None for those still in flight), for a
    /// caller that can use part of a batch (a rebuild that reads one chunk more than it
    /// needs). The batch keeps its operations in flight; end it with [`IoBatch::wait_rest`],
    /// never [`IoBatch::wait`]. Call once.
    pub fn take_done(&self) -> Vec<Option<IoCompletion>> {
        let mut g = self.state.lock();
        g.done.iter_mut().map(Option::take).collect()
    }

    /// Blocks until every operation still in flight completed and returns those (a batch
    /// that [`IoBatch::take_done`] took from: its buffers belong to the device until then).
    pub fn wait_rest(self) -> Vec<IoCompletion> {
        self.wait_all();
        let mut g = self.state.lock();
        g.done.drain(..).flatten().collect()
    }

    /// Blocks until this batch is complete or, on the io_uring engine, until any operation of
    /// the calling thread's ring completed (handing it to its batch; on the psync engine, any
    /// operation of this batch), or until `timeout` passed. Returns at once when the batch is already complete. With several batches in
    /// flight, call this on one and then [`IoBatch::completed`] on each: the way to keep a
    /// queue of independent operations full from one thread. Panics like [`IoBatch::wait`]
    /// when called from a thread other than the submitting one on the io_uring engine.
    pub fn wait_progress(&self, timeout: Duration) {
        let timeout = self.state.next_check().map_or(timeout, |c| c.min(timeout));
        if self.driver.is_some() {
            self.drive(Drive::Progress(timeout));
        } else {
            let deadline = Instant::now() + timeout;
            let mut g = self.state.lock();
            let before = g.remaining;
            while g.remaining > 0 && g.remaining == before {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                g = self
                    .state
                    .done
                    .wait_timeout(g, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        self.state.give_up_overdue();
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
    /// Sets the I/O deadline (None: none, the default): an operation out on its device for
    /// longer is given up, and its waiter gets [`DeviceError::TimedOut`]
    /// (docs/design.md, "Devices that stop answering"). Applies to operations that start
    /// afterwards.
    fn set_io_timeout(&self, _timeout: Option<Duration>) {}
    /// The I/O deadline in force.
    fn io_timeout(&self) -> Option<Duration> {
        None
    }
    /// Operations given up on device `device_index` at the deadline that the device has not
    /// completed yet: it may still carry them out. On io_uring an operation counts until the
    /// thread that submitted it reaps its completion, at that thread's next I/O on this
    /// backend or its [`IoBackend::reap`].
    fn stuck_ops(&self, _device_index: usize) -> u64 {
        0
    }
    /// Those of [`IoBackend::stuck_ops`] that change the device (writes, flushes): what could
    /// still land over something written there later.
    fn stuck_writes(&self, _device_index: usize) -> u64 {
        0
    }
    /// Hands the completions the calling thread's ring holds to their batches, without
    /// blocking (io_uring; nothing to do elsewhere): for a thread that sits idle while
    /// operations it gave up at the deadline may have completed.
    fn reap(&self) {}
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

thread_local! {
    /// Whether this thread is destroying its thread-locals (it is ending): set by the
    /// io_uring engine's rings as they go. The log subscriber may have destroyed its own
    /// thread-locals by then, and an event would panic inside a destructor, which aborts the
    /// process. A `Cell<bool>` has no destructor, so it can still be read then.
    static THREAD_ENDING: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as ending (see `THREAD_ENDING`).
pub(crate) fn set_thread_ending() {
    THREAD_ENDING.with(|f| f.set(true));
}

/// Logs an event of the deadline's bookkeeping (a warning, or information); on a thread that
/// is ending, a warning goes to stderr directly and information is dropped.
fn log(level: tracing::Level, msg: std::fmt::Arguments<'_>) {
    let warn = level == tracing::Level::WARN;
    if THREAD_ENDING.with(Cell::get) {
        if warn {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "WARN ectable_devices: {msg}");
        }
    } else if warn {
        tracing::warn!("{msg}");
    } else {
        tracing::info!("{msg}");
    }
}
