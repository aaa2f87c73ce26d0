//! Active detection: a thread that, at an interval, writes a health block on every device,
//! reads it back and checks it. A device whose probe fails (I/O error, short transfer, or a
//! block that does not read back as written) is failed; probe latency feeds the slowness
//! detector like normal traffic. Stops when the engine closes.

use crate::health::probe;
use crate::log::writer::Shared;
use ectable_devices::{AlignedBuf, IoOp};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Tells the prober to stop, and wakes it.
#[derive(Default)]
pub(crate) struct StopSignal {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl StopSignal {
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }

    /// Sleeps for `d` or until stopped; returns true when stopped.
    fn sleep(&self, d: Duration) -> bool {
        let g = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = self.cv.wait_timeout_while(g, d, |s| !*s).unwrap_or_else(|p| p.into_inner());
        *g
    }
}

/// One round of probes over every present, not failed device. Returns the slots that failed.
pub(crate) fn probe_once(shared: &Shared, sequence: u64) -> Vec<usize> {
    let a = &shared.array;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let slots: Vec<(usize, usize)> =
        (0..a.n()).filter_map(|s| a.device_of_slot(s as u32).map(|d| (s, d))).collect();
    let writes = slots
        .iter()
        .map(|&(s, d)| {
            let block = probe::encode(&a.sb.array_uuid, s as u32, sequence, nanos);
            IoOp::write(d, probe::HEALTH_BLOCK_OFFSET, AlignedBuf::from_slice(&block))
        })
        .collect();
    let mut failed = Vec::new();
    let mut fail = |slot: usize, why: String| {
        shared.counters.probe_failures.fetch_add(1, Ordering::Relaxed);
        a.mark_failed(slot, &format!("prober: {why}"));
        failed.push(slot);
    };
    let mut ok_slots = Vec::new();
    for (c, &(s, _)) in a.io.execute(writes).into_iter().zip(&slots) {
        match c.result {
            Ok(()) => {
                a.health[s].observe(c.latency);
                ok_slots.push((s, c.op.device_index));
            }
            Err(e) => fail(s, e.to_string()),
        }
    }
    let reads = ok_slots.iter().map(|&(_, d)| IoOp::read(d, probe::HEALTH_BLOCK_OFFSET, 4096)).collect();
    for (c, &(s, _)) in a.io.execute(reads).into_iter().zip(&ok_slots) {
        match c.result {
            Ok(()) => {
                a.health[s].observe(c.latency);
                if probe::decode(&c.op.buf, &a.sb.array_uuid, s as u32) != Some(sequence) {
                    fail(s, "health block did not read back as written".into());
                }
            }
            Err(e) => fail(s, e.to_string()),
        }
    }
    shared.counters.probes.fetch_add(1, Ordering::Relaxed);
    a.persist_if_dirty();
    failed
}

/// The prober thread's loop.
pub(crate) fn run(shared: Arc<Shared>, stop: Arc<StopSignal>, on_failure: impl Fn(&[usize])) {
    let mut sequence = 0u64;
    loop {
        if stop.sleep(shared.array.policy.probe_interval) {
            return;
        }
        sequence += 1;
        let failed = probe_once(&shared, sequence);
        if !failed.is_empty() {
            on_failure(&failed);
        }
    }
}
