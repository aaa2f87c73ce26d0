//! Probe reads of devices that reads go around (slow, suspect), made off the readers' path.
//!
//! A device that reads avoid must still be measured, or a device found slow in a read-only
//! session would never be seen to recover. A reader that would once have sent one read in
//! 64 to the slow device (and waited for it: the array's p99 was the slow device's latency)
//! now asks this sampler instead: a thread of its own reads one block of that device, and
//! the latency reaches the slowness detector the next time the array observes an I/O. At
//! most one probe per device is in flight, so a stalled device gathers no queue of them.

use crate::sync::MutexExt;
use ectable_devices::{DeviceError, IoBackend, IoOp};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Bytes a probe reads.
pub(crate) const PROBE_BYTES: usize = 4096;

/// A finished probe: slot, latency, and the error if the read failed.
pub(crate) type ProbeResult = (usize, Duration, Option<DeviceError>);

struct Request {
    slot: usize,
    device: usize,
    offset: u64,
}

struct Shared {
    in_flight: Vec<AtomicBool>,
    ready: AtomicBool,
    results: Mutex<Vec<ProbeResult>>,
}

pub(crate) struct Sampler {
    shared: Arc<Shared>,
    /// The thread's queue. The thread is not joined: a probe of a device that hangs must not
    /// hang `close` (the thread holds the I/O engine only while a probe is in flight, and
    /// ends when this sender is dropped).
    worker: Mutex<Option<Sender<Request>>>,
}

impl Sampler {
    pub fn new(slots: usize) -> Sampler {
        Sampler {
            shared: Arc::new(Shared {
                in_flight: (0..slots).map(|_| AtomicBool::new(false)).collect(),
                ready: AtomicBool::new(false),
                results: Mutex::new(Vec::new()),
            }),
            worker: Mutex::new(None),
        }
    }

    /// Starts a probe read of `device` (slot `slot`) at `offset`, unless one is in flight.
    /// The thread starts with the first probe; it holds the I/O engine only while it reads.
    pub fn request(&self, io: &Arc<dyn IoBackend>, slot: usize, device: usize, offset: u64) {
        let Some(flag) = self.shared.in_flight.get(slot) else {
            return;
        };
        if flag.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut w = self.worker.locked();
        if w.is_none() {
            let (tx, rx) = channel::<Request>();
            let shared = Arc::clone(&self.shared);
            let weak: Weak<dyn IoBackend> = Arc::downgrade(io);
            let spawned = std::thread::Builder::new()
                .name("ectable-sampler".into())
                .spawn(move || {
                    while let Ok(r) = rx.recv() {
                        let done = weak.upgrade().map(|io| {
                            let op = IoOp::read(r.device, r.offset, PROBE_BYTES);
                            io.execute(vec![op]).pop()
                        });
                        if let Some(Some(c)) = done {
                            shared
                                .results
                                .locked()
                                .push((r.slot, c.latency, c.result.err()));
                            shared.ready.store(true, Ordering::Release);
                        }
                        shared.in_flight[r.slot].store(false, Ordering::Release);
                    }
                });
            match spawned {
                Ok(_detached) => *w = Some(tx),
                Err(e) => {
                    tracing::warn!("cannot start the sampler thread: {e}");
                    flag.store(false, Ordering::Release);
                    return;
                }
            }
        }
        if let Some(tx) = w.as_ref() {
            if tx
                .send(Request {
                    slot,
                    device,
                    offset,
                })
                .is_err()
            {
                flag.store(false, Ordering::Release);
            }
        }
    }

    /// The probes finished since the last call (cheap when there are none).
    pub fn take_results(&self) -> Vec<ProbeResult> {
        if !self.shared.ready.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(&mut *self.shared.results.locked())
    }
}
