//! pread/pwrite on a pool of worker threads.
//!
//! For machines where io_uring is blocked, and for devices without a file descriptor
//! (memory and fault-injecting devices). Concurrency comes from the workers: a batch of N
//! operations has up to `worker_count` of them in flight.
//!
//! A worker whose operation is given up at the I/O deadline stays with it (the system call
//! cannot be taken back); a new worker is started in its place, and the held one ends when
//! its operation does, so a device that stopped answering never takes the whole pool.

use crate::backend::{bad_index, run_sync, BatchState, Deadline, DeviceList};
use crate::{BlockDevice, DeviceError, IoBackend, IoBatch, IoCompletion, IoOp};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Job = (Arc<BatchState>, usize, IoOp);

/// The pread/pwrite backend: each operation runs on one of a pool of worker threads (four per
/// device, 4 to 64).
pub struct PsyncBackend {
    devices: Arc<RwLock<DeviceList>>,
    sender: Mutex<Option<Sender<Job>>>,
    workers: Vec<JoinHandle<()>>,
    stats: Arc<crate::stats::IoStats>,
    deadline: Arc<Deadline>,
}

/// What a worker needs: the queue of jobs and the devices.
#[derive(Clone)]
struct Pool {
    rx: Arc<Mutex<Receiver<Job>>>,
    devices: Arc<RwLock<DeviceList>>,
    /// Workers started so far (for their names).
    started: Arc<AtomicUsize>,
}

impl Pool {
    fn spawn(&self) -> std::io::Result<JoinHandle<()>> {
        let i = self.started.fetch_add(1, Ordering::Relaxed);
        let pool = self.clone();
        std::thread::Builder::new()
            .name(format!("ectable-psync-{i}"))
            .spawn(move || pool.work())
    }

    fn work(&self) {
        loop {
            let job = {
                let r = self.rx.lock().unwrap_or_else(|p| p.into_inner());
                r.recv()
            };
            let Ok((state, index, mut op)) = job else {
                return;
            };
            let start = Instant::now();
            state.started(index, &op);
            let dev = self
                .devices
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(op.device_index)
                .cloned();
            let result = match dev {
                Some(dev) => run_sync(dev.as_ref(), &mut op),
                None => Err(bad_index(op.device_index)),
            };
            let given_up = state.complete(
                index,
                IoCompletion {
                    op,
                    result,
                    latency: start.elapsed(),
                },
            );
            if given_up {
                // A worker was started in this one's place when the operation was given up.
                return;
            }
        }
    }
}

impl PsyncBackend {
    /// Starts the worker pool over `devices`; the workers stop when the backend is dropped.
    pub fn new(devices: Vec<Arc<dyn BlockDevice>>) -> PsyncBackend {
        let worker_count = (devices.len() * 4).clamp(4, 64);
        let stats = Arc::new(crate::stats::IoStats::new(crate::stats::MAX_DEVICES));
        let deadline = Deadline::new(devices.iter().map(|d| d.name().to_string()).collect());
        let devices: Arc<RwLock<DeviceList>> = Arc::new(RwLock::new(devices.into()));
        let (tx, rx) = channel::<Job>();
        let pool = Pool {
            rx: Arc::new(Mutex::new(rx)),
            devices: devices.clone(),
            started: Arc::new(AtomicUsize::new(0)),
        };
        let workers = (0..worker_count)
            .map(|_| pool.spawn().expect("spawn psync worker"))
            .collect();
        deadline.set_on_give_up(Box::new(move || {
            if let Err(e) = pool.spawn() {
                tracing::error!("cannot start a psync worker in place of one held by a device that stopped answering: {e}");
            }
        }));
        PsyncBackend {
            stats,
            devices,
            sender: Mutex::new(Some(tx)),
            workers,
            deadline,
        }
    }
}

impl IoBackend for PsyncBackend {
    fn name(&self) -> &'static str {
        "psync"
    }
    fn devices(&self) -> DeviceList {
        crate::backend::snapshot(&self.devices)
    }
    fn add_device(&self, dev: Arc<dyn BlockDevice>) -> Result<usize, DeviceError> {
        let mut g = self.devices.write().unwrap_or_else(|p| p.into_inner());
        crate::backend::append_device(&mut g, dev.clone())?;
        self.deadline.add_name(dev.name());
        Ok(g.len() - 1)
    }
    fn io_stats(&self) -> Option<&crate::stats::IoStats> {
        Some(&self.stats)
    }
    fn set_io_timeout(&self, timeout: Option<Duration>) {
        self.deadline.set_timeout(timeout);
    }
    fn io_timeout(&self) -> Option<Duration> {
        self.deadline.timeout()
    }
    fn stuck_ops(&self, device_index: usize) -> u64 {
        self.deadline.stuck(device_index)
    }
    fn stuck_writes(&self, device_index: usize) -> u64 {
        self.deadline.stuck_writes(device_index)
    }
    fn submit(&self, ops: Vec<IoOp>) -> IoBatch {
        let batch = IoBatch::new(
            ops.len(),
            Some(self.stats.clone()),
            Some(self.deadline.clone()),
        );
        let guard = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        for (i, op) in ops.into_iter().enumerate() {
            let sent = guard.as_ref().map(|s| s.send((batch.state.clone(), i, op)));
            if let Some(Err(std::sync::mpsc::SendError((state, i, op)))) = sent {
                let result = Err(DeviceError::Backend("psync engine stopped".into()));
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

impl Drop for PsyncBackend {
    fn drop(&mut self) {
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        // A worker held by a device that stopped answering may never come back: wait for the
        // workers only when none is.
        if self.deadline.any_stuck() {
            self.workers.clear();
            return;
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
