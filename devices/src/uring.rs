//! The io_uring backend: one ring per thread that uses the backend, driven by that thread.
//!
//! `submit` pushes the operations into the calling thread's ring and enters the kernel once;
//! `IoBatch::wait` reaps that same ring until the batch is complete (completions of other
//! batches of the thread are handed to their owners on the way). No other thread is woken
//! on the I/O path, which is what lets a single caller keep fio-like queue depths. Each ring
//! is set up with `SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG`: only its thread submits,
//! and completion work runs when that thread reaps.
//!
//! Invariants:
//! - A batch is waited on by the thread that submitted it (asserted).
//! - Every buffer of an in-flight operation is owned by its ring's slab entry until its
//!   completion is reaped, so the kernel never writes into freed or shared memory; a ring is
//!   never dropped with operations in flight (its drop reaps them first).
//! - In-flight operations never exceed the completion queue size, so it cannot overflow;
//!   the rest wait in the ring's backlog.
//! - Operations of an engine that was dropped and are still in a backlog are failed, never
//!   submitted: their file descriptors may have been reused.

use crate::backend::{bad_index, BatchState, Deadline, Drive};
use crate::{BlockDevice, DeviceError, IoBackend, IoBatch, IoCompletion, IoKind, IoOp};
use io_uring::{opcode, types, IoUring};
use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const SQ_ENTRIES: u32 = 256;
const CQ_ENTRIES: u32 = 1024;

static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);
/// Engines not yet dropped; a thread's ring for an engine not in here is torn down.
static LIVE_ENGINES: Mutex<Option<HashSet<u64>>> = Mutex::new(None);

fn live(id: u64) -> bool {
    LIVE_ENGINES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .is_some_and(|s| s.contains(&id))
}

type Request = (Arc<BatchState>, usize, IoOp);

struct InFlight {
    state: Arc<BatchState>,
    index: usize,
    op: IoOp,
    start: Instant,
}

/// One thread's ring for one engine.
struct ThreadRing {
    engine_id: u64,
    ring: IoUring,
    fds: Vec<RawFd>,
    names: Vec<String>,
    slab: Vec<Option<InFlight>>,
    free: Vec<usize>,
    in_flight: usize,
    backlog: VecDeque<Request>,
}

/// This thread's rings. Dropped as the thread ends, after (or before) the other
/// thread-locals of the thread, the log subscriber's among them: the drop says so first
/// ([`crate::backend::set_thread_ending`]), so that the rings' own drops write their
/// warnings without the subscriber.
struct Rings(RefCell<Vec<ThreadRing>>);

impl Drop for Rings {
    fn drop(&mut self) {
        crate::backend::set_thread_ending();
    }
}

thread_local! {
    static RINGS: Rings = const { Rings(RefCell::new(Vec::new())) };
}

fn build_ring() -> io::Result<IoUring> {
    IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_taskrun_flag()
        .setup_cqsize(CQ_ENTRIES)
        .build(SQ_ENTRIES)
        .or_else(|_| {
            IoUring::builder()
                .setup_cqsize(CQ_ENTRIES)
                .build(SQ_ENTRIES)
        })
}

impl ThreadRing {
    /// Moves backlog operations into the submission queue while there is room.
    fn fill(&mut self) {
        while self.in_flight + 1 < CQ_ENTRIES as usize && !self.ring.submission().is_full() {
            let Some((state, index, op)) = self.backlog.pop_front() else {
                break;
            };
            if op.device_index >= self.fds.len() {
                let err = bad_index(op.device_index);
                state.complete(
                    index,
                    IoCompletion {
                        op,
                        result: Err(err),
                        latency: Default::default(),
                    },
                );
                continue;
            }
            let slot = self.free.pop().unwrap_or_else(|| {
                self.slab.push(None);
                self.slab.len() - 1
            });
            let mut entry = InFlight {
                state,
                index,
                op,
                start: Instant::now(),
            };
            entry.state.started(entry.index, &entry.op);
            let fd = types::Fd(self.fds[entry.op.device_index]);
            let sqe = match entry.op.kind {
                IoKind::Read => {
                    opcode::Read::new(fd, entry.op.buf.as_mut_ptr(), entry.op.buf.len() as u32)
                        .offset(entry.op.offset_bytes)
                        .build()
                }
                IoKind::Write => {
                    opcode::Write::new(fd, entry.op.buf.as_ptr(), entry.op.buf.len() as u32)
                        .offset(entry.op.offset_bytes)
                        .build()
                }
                IoKind::WriteDurable => {
                    opcode::Write::new(fd, entry.op.buf.as_ptr(), entry.op.buf.len() as u32)
                        .offset(entry.op.offset_bytes)
                        .rw_flags(libc::RWF_DSYNC)
                        .build()
                }
                IoKind::Flush => opcode::Fsync::new(fd)
                    .flags(types::FsyncFlags::DATASYNC)
                    .build(),
            }
            .user_data(slot as u64);
            // SAFETY: the buffer pointer stays valid until completion: the AlignedBuf's heap
            // allocation is owned by the slab entry stored below and is only released after
            // its completion is reaped (Drop reaps everything in flight first).
            let pushed = unsafe { self.ring.submission().push(&sqe) };
            debug_assert!(pushed.is_ok(), "checked is_full above");
            self.slab[slot] = Some(entry);
            self.in_flight += 1;
        }
    }

    /// Enters the kernel: submits what is queued and, with `wait`, blocks for at least one
    /// completion (for at most `timeout`, when given); then hands every completion to its
    /// batch.
    fn turn(
        &mut self,
        wait: bool,
        timeout: Option<std::time::Duration>,
    ) -> Result<(), DeviceError> {
        self.fill();
        let want = usize::from(wait && self.in_flight > 0);
        loop {
            let entered = match timeout.filter(|_| want > 0) {
                Some(t) => {
                    let ts = types::Timespec::from(t);
                    let args = types::SubmitArgs::new().timespec(&ts);
                    self.ring.submitter().submit_with_args(want, &args)
                }
                None => self.ring.submit_and_wait(want),
            };
            match entered {
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // The time passed with nothing completed.
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => break,
                // The completion queue is full: reap below, then try again.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => break,
                Err(e) => return Err(DeviceError::Backend(format!("io_uring enter failed: {e}"))),
            }
        }
        let cqes: Vec<(u64, i32)> = self
            .ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (user_data, res) in cqes {
            let slot = user_data as usize;
            let Some(entry) = self.slab.get_mut(slot).and_then(Option::take) else {
                continue;
            };
            self.free.push(slot);
            self.in_flight -= 1;
            let InFlight {
                state,
                index,
                op,
                start,
            } = entry;
            let result = completion_result(&self.names[op.device_index], &op, res);
            state.complete(
                index,
                IoCompletion {
                    op,
                    result,
                    latency: start.elapsed(),
                },
            );
        }
        Ok(())
    }

    /// Fails everything not yet submitted (the engine is gone, or the ring broke).
    fn fail_backlog(&mut self, msg: &str) {
        while let Some((state, index, op)) = self.backlog.pop_front() {
            let result = Err(DeviceError::Backend(msg.to_string()));
            state.complete(
                index,
                IoCompletion {
                    op,
                    result,
                    latency: Default::default(),
                },
            );
        }
    }
}

impl Drop for ThreadRing {
    fn drop(&mut self) {
        self.fail_backlog("io_uring engine closed");
        // Buffers of operations in flight belong to the kernel until reaped.
        while self.in_flight > 0 {
            // Operations given up at the I/O deadline may never complete (a device that
            // stopped answering): once only those are left, leak their buffers rather than
            // wait for them.
            for e in self.slab.iter().flatten() {
                e.state.give_up_overdue();
            }
            if self
                .slab
                .iter()
                .flatten()
                .all(|e| e.state.given_up(e.index))
            {
                for e in self.slab.drain(..).flatten() {
                    e.state.forget_given_up(e.index, &e.op);
                    std::mem::forget(e.op.buf);
                }
                break;
            }
            if self
                .turn(true, Some(std::time::Duration::from_millis(100)))
                .is_err()
            {
                // The ring cannot be entered any more: leak the buffers rather than free
                // memory the kernel might still write.
                for e in self.slab.drain(..).flatten() {
                    std::mem::forget(e.op.buf);
                }
                break;
            }
        }
    }
}

/// Runs `f` on this thread's ring for the engine, creating the ring on first use and
/// tearing down rings of engines that were dropped.
fn with_ring<R>(
    engine: &UringBackend,
    f: impl FnOnce(&mut ThreadRing) -> R,
) -> Result<R, DeviceError> {
    RINGS.with(|rings| {
        let mut rings = rings.0.borrow_mut();
        rings.retain(|r| r.engine_id == engine.id || live(r.engine_id));
        if !rings.iter().any(|r| r.engine_id == engine.id) {
            let ring = build_ring()
                .map_err(|e| DeviceError::Backend(format!("io_uring setup failed: {e}")))?;
            rings.push(ThreadRing {
                engine_id: engine.id,
                ring,
                fds: Vec::new(),
                names: Vec::new(),
                slab: Vec::new(),
                free: Vec::new(),
                in_flight: 0,
                backlog: VecDeque::new(),
            });
        }
        let r = rings
            .iter_mut()
            .find(|r| r.engine_id == engine.id)
            .expect("created above");
        // Devices added since this ring last looked (or since it was made): the cached
        // descriptors only grow, and a device's descriptor stays open while the backend lives.
        // The descriptors are read first and the devices after, each lock on its own
        // (`add_device` takes them nested, devices first): the devices then hold at least
        // as many as the descriptors.
        let known = engine.fds.read().unwrap_or_else(|p| p.into_inner()).len();
        if r.fds.len() < known {
            let fds = engine.fds.read().unwrap_or_else(|p| p.into_inner()).clone();
            let devices = engine.devices();
            r.names = devices.iter().map(|d| d.name().to_string()).collect();
            r.fds = fds;
        }
        Ok(f(r))
    })
}

/// Drives this thread's ring for `engine_id` as far as `how` says for `state`.
pub(crate) fn drive(engine_id: u64, state: &BatchState, how: Drive) {
    RINGS.with(|rings| {
        let mut rings = rings.0.borrow_mut();
        let Some(r) = rings.iter_mut().find(|r| r.engine_id == engine_id) else {
            return;
        };
        loop {
            if state.remaining() == 0 {
                return;
            }
            let turned = match how {
                Drive::Poll => r.turn(false, None),
                Drive::Complete => r.turn(true, None),
                Drive::Progress(t) => r.turn(true, Some(t)),
            };
            if let Err(e) = turned {
                r.fail_backlog(&e.to_string());
                return;
            }
            if !matches!(how, Drive::Complete) {
                return;
            }
        }
    })
}

/// The io_uring backend: each thread that submits gets its own ring and completes its
/// batches itself when it waits (see the module documentation).
pub struct UringBackend {
    id: u64,
    devices: std::sync::RwLock<crate::backend::DeviceList>,
    fds: std::sync::RwLock<Vec<RawFd>>,
    stats: Arc<crate::stats::IoStats>,
    /// `release_devices` was called: submissions fail (the cached descriptors point at
    /// /dev/null, where a flush would succeed without meaning anything).
    released: AtomicBool,
    /// The I/O deadline and the operations given up at it.
    deadline: Arc<Deadline>,
}

impl UringBackend {
    /// A backend over `devices`. Fails with [`DeviceError::Unsupported`] when a device has no
    /// file descriptor and with [`DeviceError::Backend`] when io_uring cannot be set up here.
    pub fn new(devices: Vec<Arc<dyn BlockDevice>>) -> Result<UringBackend, DeviceError> {
        let mut fds = Vec::with_capacity(devices.len());
        for d in &devices {
            match d.raw_fd() {
                Some(fd) => fds.push(fd),
                None => {
                    return Err(DeviceError::Unsupported {
                        device: d.name().to_string(),
                        message: "device has no file descriptor; use the psync engine".into(),
                    })
                }
            }
        }
        // Fail here, not on the first I/O, where io_uring is blocked (container profiles).
        build_ring().map_err(|e| DeviceError::Backend(format!("io_uring setup failed: {e}")))?;
        let id = NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed);
        LIVE_ENGINES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(HashSet::new)
            .insert(id);
        let deadline = Deadline::new(devices.iter().map(|d| d.name().to_string()).collect());
        Ok(UringBackend {
            deadline,
            id,
            stats: Arc::new(crate::stats::IoStats::new(crate::stats::MAX_DEVICES)),
            devices: std::sync::RwLock::new(devices.into()),
            fds: std::sync::RwLock::new(fds),
            released: AtomicBool::new(false),
        })
    }
}

impl IoBackend for UringBackend {
    fn name(&self) -> &'static str {
        "uring"
    }
    fn devices(&self) -> crate::backend::DeviceList {
        crate::backend::snapshot(&self.devices)
    }
    fn add_device(&self, dev: Arc<dyn BlockDevice>) -> Result<usize, DeviceError> {
        let Some(fd) = dev.raw_fd() else {
            return Err(DeviceError::Unsupported {
                device: dev.name().to_string(),
                message: "device has no file descriptor; use the psync engine".into(),
            });
        };
        // Devices first, then the descriptor: a ring that sees the descriptor finds the
        // device's name too.
        let mut g = self.devices.write().unwrap_or_else(|p| p.into_inner());
        crate::backend::append_device(&mut g, dev.clone())?;
        self.deadline.add_name(dev.name());
        self.fds.write().unwrap_or_else(|p| p.into_inner()).push(fd);
        Ok(g.len() - 1)
    }
    fn io_stats(&self) -> Option<&crate::stats::IoStats> {
        Some(&self.stats)
    }
    fn set_io_timeout(&self, timeout: Option<std::time::Duration>) {
        self.deadline.set_timeout(timeout);
    }
    fn io_timeout(&self) -> Option<std::time::Duration> {
        self.deadline.timeout()
    }
    fn stuck_ops(&self, device_index: usize) -> u64 {
        self.deadline.stuck(device_index)
    }
    fn stuck_writes(&self, device_index: usize) -> u64 {
        self.deadline.stuck_writes(device_index)
    }
    fn reap(&self) {
        if self.released.load(Ordering::SeqCst) {
            return;
        }
        // Only a ring this thread already has: reaping never makes one.
        let _ = RINGS.try_with(|rings| {
            let Ok(mut rings) = rings.0.try_borrow_mut() else {
                return;
            };
            if let Some(r) = rings
                .iter_mut()
                .find(|r| r.engine_id == self.id && r.in_flight > 0)
            {
                if let Err(e) = r.turn(false, None) {
                    r.fail_backlog(&e.to_string());
                }
            }
        });
    }
    fn release_devices(&self) {
        self.released.store(true, Ordering::SeqCst);
        for d in self.devices().iter() {
            d.release();
        }
    }
    fn submit(&self, ops: Vec<IoOp>) -> IoBatch {
        let batch = IoBatch::driven(
            ops.len(),
            Some(self.stats.clone()),
            Some(self.deadline.clone()),
            self.id,
            drive,
        );
        if ops.is_empty() {
            return batch;
        }
        let state = batch.state.clone();
        let mut ops = Some(ops);
        let submitted = if self.released.load(Ordering::SeqCst) {
            Err(DeviceError::Backend(
                "the devices were released (array closed)".into(),
            ))
        } else {
            with_ring(self, |r| {
                for (i, op) in ops.take().into_iter().flatten().enumerate() {
                    r.backlog.push_back((state.clone(), i, op));
                }
                if let Err(e) = r.turn(false, None) {
                    r.fail_backlog(&e.to_string());
                }
            })
        };
        if let Err(e) = submitted {
            for (i, op) in ops.into_iter().flatten().enumerate() {
                let result = Err(DeviceError::Backend(e.to_string()));
                state.complete(
                    i,
                    IoCompletion {
                        op,
                        result,
                        latency: Default::default(),
                    },
                );
            }
        }
        batch
    }
}

impl Drop for UringBackend {
    fn drop(&mut self) {
        if let Some(s) = LIVE_ENGINES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            s.remove(&self.id);
        }
        // This thread's ring goes at once; other threads drop theirs at their next use of
        // any io_uring engine, or when they exit.
        let _ = RINGS.try_with(|rings| {
            if let Ok(mut rings) = rings.0.try_borrow_mut() {
                rings.retain(|r| r.engine_id != self.id);
            }
        });
    }
}

fn completion_result(dev: &str, op: &IoOp, res: i32) -> Result<(), DeviceError> {
    let name = crate::backend::op_name(op.kind);
    if res < 0 {
        return Err(DeviceError::io(
            dev,
            name,
            op.offset_bytes,
            io::Error::from_raw_os_error(-res),
        ));
    }
    if op.kind != IoKind::Flush && (res as usize) < op.buf.len() {
        return Err(DeviceError::Short {
            device: dev.to_string(),
            op: name,
            offset_bytes: op.offset_bytes,
            expected: op.buf.len(),
            got: res as usize,
        });
    }
    Ok(())
}
