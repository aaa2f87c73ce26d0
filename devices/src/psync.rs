//! pread/pwrite on a pool of worker threads.
//!
//! For machines where io_uring is blocked, and for devices without a file descriptor
//! (memory and fault-injecting devices). Concurrency comes from the workers: a batch of N
//! operations has up to `worker_count` of them in flight.

use crate::backend::{bad_index, run_sync, BatchState};
use crate::{BlockDevice, DeviceError, IoBackend, IoBatch, IoCompletion, IoOp};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

type Job = (Arc<BatchState>, usize, IoOp);

/// The pread/pwrite backend: each operation runs on one of a pool of worker threads (four per
/// device, 4 to 64).
pub struct PsyncBackend {
    devices: Arc<std::sync::RwLock<crate::backend::DeviceList>>,
    sender: Mutex<Option<Sender<Job>>>,
    workers: Vec<JoinHandle<()>>,
    stats: Arc<crate::stats::IoStats>,
}

impl PsyncBackend {
    /// Starts the worker pool over `devices`; the workers stop when the backend is dropped.
    pub fn new(devices: Vec<Arc<dyn BlockDevice>>) -> PsyncBackend {
        let worker_count = (devices.len() * 4).clamp(4, 64);
        let stats = Arc::new(crate::stats::IoStats::new(crate::stats::MAX_DEVICES));
        let devices: Arc<std::sync::RwLock<crate::backend::DeviceList>> =
            Arc::new(std::sync::RwLock::new(devices.into()));
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..worker_count)
            .map(|i| {
                let rx: Arc<Mutex<Receiver<Job>>> = rx.clone();
                let devices = devices.clone();
                std::thread::Builder::new()
                    .name(format!("ectable-psync-{i}"))
                    .spawn(move || loop {
                        let job = {
                            let r = rx.lock().unwrap_or_else(|p| p.into_inner());
                            r.recv()
                        };
                        let Ok((state, index, mut op)) = job else {
                            return;
                        };
                        let start = Instant::now();
                        let dev = devices
                            .read()
                            .unwrap_or_else(|p| p.into_inner())
                            .get(op.device_index)
                            .cloned();
                        let result = match dev {
                            Some(dev) => run_sync(dev.as_ref(), &mut op),
                            None => Err(bad_index(op.device_index)),
                        };
                        state.complete(
                            index,
                            IoCompletion {
                                op,
                                result,
                                latency: start.elapsed(),
                            },
                        );
                    })
                    .expect("spawn psync worker")
            })
            .collect();
        PsyncBackend {
            stats,
            devices,
            sender: Mutex::new(Some(tx)),
            workers,
        }
    }
}

impl IoBackend for PsyncBackend {
    fn name(&self) -> &'static str {
        "psync"
    }
    fn devices(&self) -> crate::backend::DeviceList {
        crate::backend::snapshot(&self.devices)
    }
    fn add_device(&self, dev: Arc<dyn BlockDevice>) -> Result<usize, DeviceError> {
        let mut g = self.devices.write().unwrap_or_else(|p| p.into_inner());
        crate::backend::append_device(&mut g, dev)?;
        Ok(g.len() - 1)
    }
    fn io_stats(&self) -> Option<&crate::stats::IoStats> {
        Some(&self.stats)
    }
    fn submit(&self, ops: Vec<IoOp>) -> IoBatch {
        let batch = IoBatch::new(ops.len(), Some(self.stats.clone()));
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
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
