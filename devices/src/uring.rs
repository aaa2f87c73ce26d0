//! The io_uring engine: one ring, owned by one thread, with many operations in flight across
//! all devices.
//!
//! Callers push operations on a queue and ring an eventfd doorbell; the ring thread keeps a
//! read armed on that eventfd, so it wakes for new work even while it waits for completions.
//! Owning the ring from a single thread lets us use `SINGLE_ISSUER | DEFER_TASKRUN`
//! (completion work runs when we reap, not as interrupts to the submitting thread).
//!
//! Invariants:
//! - Every buffer of an in-flight operation is owned by the slab entry of that operation until
//!   its completion is reaped, so the kernel never writes into freed or shared memory.
//! - In-flight operations never exceed the completion queue size, so it cannot overflow.
//! - Files are registered once (fixed files); every op uses `types::Fixed(device_index)`.

use crate::engine::BatchState;
use crate::psync::bad_index;
use crate::{BlockDevice, DeviceError, IoBatch, IoCompletion, IoEngine, IoKind, IoOp};
use io_uring::{opcode, types, IoUring};
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

const SQ_ENTRIES: u32 = 256;
const CQ_ENTRIES: u32 = 1024;
const DOORBELL: u64 = u64::MAX;

type Request = (Arc<BatchState>, usize, IoOp);

struct Shared {
    queue: Mutex<VecDeque<Request>>,
    doorbell_fd: RawFd,
    stopping: AtomicBool,
    /// Set when the ring thread has stopped for good; later submissions fail at once.
    dead: AtomicBool,
}

impl Shared {
    fn ring_doorbell(&self) {
        let one: u64 = 1;
        // SAFETY: doorbell_fd is an eventfd owned by this engine, open until the ring thread
        // has exited (it is closed in Drop after the join); we pass a pointer to 8 live bytes.
        let _ = unsafe { libc::write(self.doorbell_fd, (&one as *const u64).cast(), 8) };
    }
}

pub struct UringEngine {
    devices: Vec<Arc<dyn BlockDevice>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl UringEngine {
    pub fn new(devices: Vec<Arc<dyn BlockDevice>>) -> Result<UringEngine, DeviceError> {
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
        // SAFETY: plain syscall creating a new descriptor; no pointers involved.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(DeviceError::Engine(format!("eventfd: {}", io::Error::last_os_error())));
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            doorbell_fd: efd,
            stopping: AtomicBool::new(false),
            dead: AtomicBool::new(false),
        });
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let thread_shared = shared.clone();
        let thread_devices = devices.clone();
        let thread = std::thread::Builder::new()
            .name("ectable-uring".into())
            .spawn(move || ring_thread(thread_shared, thread_devices, fds, ready_tx))
            .map_err(|e| DeviceError::Engine(format!("spawn ring thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(UringEngine { devices, shared, thread: Some(thread) }),
            Ok(Err(msg)) => {
                let _ = thread.join();
                // SAFETY: the ring thread has exited; nobody else uses efd.
                unsafe { libc::close(efd) };
                Err(DeviceError::Engine(msg))
            }
            Err(_) => {
                let _ = thread.join();
                // SAFETY: as above.
                unsafe { libc::close(efd) };
                Err(DeviceError::Engine("io_uring thread died during setup".into()))
            }
        }
    }
}

impl IoEngine for UringEngine {
    fn name(&self) -> &'static str {
        "uring"
    }
    fn devices(&self) -> &[Arc<dyn BlockDevice>] {
        &self.devices
    }
    fn submit(&self, ops: Vec<IoOp>) -> IoBatch {
        let batch = IoBatch::new(ops.len());
        if ops.is_empty() {
            return batch;
        }
        {
            let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            for (i, op) in ops.into_iter().enumerate() {
                q.push_back((batch.state.clone(), i, op));
            }
        }
        if self.shared.dead.load(Ordering::SeqCst) {
            fail_queued(&self.shared, "io_uring thread has stopped");
        } else {
            self.shared.ring_doorbell();
        }
        batch
    }
}

impl Drop for UringEngine {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.ring_doorbell();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // SAFETY: the ring thread, the only other user of the eventfd, has exited.
        unsafe { libc::close(self.shared.doorbell_fd) };
    }
}

struct InFlight {
    state: Arc<BatchState>,
    index: usize,
    op: IoOp,
    start: Instant,
}

fn build_ring() -> io::Result<IoUring> {
    // SINGLE_ISSUER + DEFER_TASKRUN: only this thread submits, and completion task work runs
    // when we reap. COOP_TASKRUN is implied to be fine with both. Older kernels refuse the
    // flags: fall back to a plain ring rather than failing.
    IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_coop_taskrun()
        .setup_cqsize(CQ_ENTRIES)
        .build(SQ_ENTRIES)
        .or_else(|_| IoUring::builder().setup_cqsize(CQ_ENTRIES).build(SQ_ENTRIES))
}

fn ring_thread(
    shared: Arc<Shared>,
    devices: Vec<Arc<dyn BlockDevice>>,
    fds: Vec<RawFd>,
    ready: mpsc::Sender<Result<(), String>>,
) {
    let mut ring = match build_ring() {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(format!("io_uring setup failed: {e}")));
            return;
        }
    };
    if let Err(e) = ring.submitter().register_files(&fds) {
        let _ = ready.send(Err(format!("io_uring register_files failed: {e}")));
        return;
    }
    let _ = ready.send(Ok(()));

    let mut slab: Vec<Option<InFlight>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut in_flight = 0usize;
    let mut doorbell_buf = Box::new(0u64);
    let mut doorbell_armed = false;

    loop {
        if !doorbell_armed {
            let sqe = opcode::Read::new(
                types::Fd(shared.doorbell_fd),
                (&mut *doorbell_buf as *mut u64).cast(),
                8,
            )
            .build()
            .user_data(DOORBELL);
            // SAFETY: doorbell_buf is a heap allocation that lives until this function
            // returns, which happens only after the ring (declared earlier, dropped later) is
            // torn down; the kernel writes at most 8 bytes into it.
            if unsafe { ring.submission().push(&sqe) }.is_ok() {
                doorbell_armed = true;
            }
        }
        // Move queued requests into the ring while there is room.
        {
            let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            while in_flight + 1 < CQ_ENTRIES as usize && !ring.submission().is_full() {
                let Some((state, index, op)) = q.pop_front() else { break };
                if op.device_index >= devices.len() {
                    let err = bad_index(op.device_index);
                    state.complete(index, IoCompletion { op, result: Err(err), latency: Default::default() });
                    continue;
                }
                let slot = free.pop().unwrap_or_else(|| {
                    slab.push(None);
                    slab.len() - 1
                });
                let mut entry = InFlight { state, index, op, start: Instant::now() };
                let fd = types::Fixed(entry.op.device_index as u32);
                let sqe = match entry.op.kind {
                    IoKind::Read => opcode::Read::new(
                        fd,
                        entry.op.buf.as_mut_ptr(),
                        entry.op.buf.len() as u32,
                    )
                    .offset(entry.op.offset_bytes)
                    .build(),
                    IoKind::Write => {
                        opcode::Write::new(fd, entry.op.buf.as_ptr(), entry.op.buf.len() as u32)
                            .offset(entry.op.offset_bytes)
                            .build()
                    }
                    IoKind::Flush => {
                        opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build()
                    }
                }
                .user_data(slot as u64);
                // SAFETY: the buffer pointer stays valid until completion because the
                // AlignedBuf's heap allocation is owned by the slab entry stored below and is
                // only released after its CQE is reaped.
                let pushed = unsafe { ring.submission().push(&sqe) };
                debug_assert!(pushed.is_ok(), "checked is_full above");
                slab[slot] = Some(entry);
                in_flight += 1;
            }
        }
        if shared.stopping.load(Ordering::SeqCst) && in_flight == 0 {
            let q_empty = shared.queue.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
            if q_empty {
                return;
            }
        }
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => {
                tracing::error!("io_uring submit failed: {e}");
                // Fail everything queued and in flight: the ring is unusable.
                fail_all(&shared, &mut slab, &format!("io_uring submit failed: {e}"));
                return;
            }
        }
        let cqes: Vec<(u64, i32)> = ring.completion().map(|c| (c.user_data(), c.result())).collect();
        for (user_data, res) in cqes {
            if user_data == DOORBELL {
                doorbell_armed = false;
                continue;
            }
            let slot = user_data as usize;
            let Some(entry) = slab.get_mut(slot).and_then(Option::take) else { continue };
            free.push(slot);
            in_flight -= 1;
            let InFlight { state, index, op, start } = entry;
            let dev = devices[op.device_index].name();
            let result = completion_result(dev, &op, res);
            state.complete(index, IoCompletion { op, result, latency: start.elapsed() });
        }
    }
}

fn completion_result(dev: &str, op: &IoOp, res: i32) -> Result<(), DeviceError> {
    let name = match op.kind {
        IoKind::Read => "read",
        IoKind::Write => "write",
        IoKind::Flush => "flush",
    };
    if res < 0 {
        return Err(DeviceError::io(dev, name, op.offset_bytes, io::Error::from_raw_os_error(-res)));
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

fn fail_all(shared: &Shared, slab: &mut [Option<InFlight>], msg: &str) {
    // Entries still in the slab may have their buffers in use by the kernel; we leak them on
    // purpose rather than hand memory back that the kernel might still write.
    for e in slab.iter_mut() {
        if let Some(InFlight { state, index, op, .. }) = e.take() {
            let result = Err(DeviceError::Engine(msg.to_string()));
            let device_index = op.device_index;
            let kind = op.kind;
            let offset_bytes = op.offset_bytes;
            std::mem::forget(op);
            let op = IoOp { device_index, kind, offset_bytes, buf: crate::AlignedBuf::new(0) };
            state.complete(index, IoCompletion { op, result, latency: Default::default() });
        }
    }
    shared.dead.store(true, Ordering::SeqCst);
    fail_queued(shared, msg);
}

fn fail_queued(shared: &Shared, msg: &str) {
    let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
    while let Some((state, index, op)) = q.pop_front() {
        let result = Err(DeviceError::Engine(msg.to_string()));
        state.complete(index, IoCompletion { op, result, latency: Default::default() });
    }
}
