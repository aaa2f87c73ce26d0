//! What the engine measures about itself, for exporters: latency histograms of the calls
//! (puts, gets, syncs, scans), the devices' I/O counters (kept by the I/O backend), and the
//! scrub or rebuild in progress. Recording costs a few relaxed atomic increments per call;
//! [`Engine::metrics`] copies everything into a [`Metrics`] snapshot (`Send + Sync`, plain
//! data) that a storage node renders as Prometheus text and an embedder may export any way.

use crate::engine::Engine;
use crate::ops::ActivityKind;
use crate::rebuild::Progress;
use crate::status::Status;
use crate::sync::MutexExt;
use ectable_devices::{DeviceIoSnapshot, HistogramSnapshot};
use std::time::Duration;

/// A scrub or rebuild in progress.
#[derive(Debug, Clone)]
pub struct Activity {
    /// What runs.
    pub kind: ActivityKind,
    /// For how long.
    pub elapsed: Duration,
    /// Its latest progress.
    pub progress: Progress,
}

/// One member's I/O as the backend counted it.
#[derive(Debug, Clone)]
pub struct DeviceMetrics {
    /// The slot the member holds.
    pub slot: usize,
    /// Its device's name, None when no device of the slot is present.
    pub path: Option<String>,
    /// Operations, bytes, errors and latency since the backend was opened (zero when absent
    /// or when the backend keeps no counters).
    pub io: DeviceIoSnapshot,
}

/// A snapshot of everything the engine measures ([`Engine::metrics`]).
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The array's members, state, space and counters.
    pub status: Status,
    /// Per member, in slot order: the backend's I/O counters.
    pub devices: Vec<DeviceMetrics>,
    /// Latency of puts (put, put_sync, delete, write_batch).
    pub put: HistogramSnapshot,
    /// Latency of gets (get, get_many: one per call).
    pub get: HistogramSnapshot,
    /// Latency of syncs (sync, wait_durable).
    pub sync: HistogramSnapshot,
    /// Latency of scans.
    pub scan: HistogramSnapshot,
    /// A scrub or rebuild running now.
    pub activity: Option<Activity>,
}

impl Engine {
    /// Everything the engine measures, copied: status, per-device I/O, call latencies and
    /// the maintenance work in progress. Cheap enough to call every few seconds.
    pub fn metrics(&self) -> Metrics {
        let status = self.status();
        let a = &self.shared.array;
        let stats = a.io.io_stats();
        let devices = (0..a.n())
            .map(|slot| {
                let d = a.present_device(slot);
                DeviceMetrics {
                    slot,
                    path: d.map(|d| a.io.devices()[d].name().to_string()),
                    io: match (d, stats) {
                        (Some(d), Some(s)) => s.device(d),
                        _ => DeviceIoSnapshot::default(),
                    },
                }
            })
            .collect();
        let ops = &self.ops;
        Metrics {
            status,
            devices,
            put: ops.put.snapshot(),
            get: ops.get.snapshot(),
            sync: ops.sync.snapshot(),
            scan: ops.scan.snapshot(),
            activity: ops
                .activity
                .locked()
                .as_ref()
                .map(|(kind, started, p)| Activity {
                    kind: *kind,
                    elapsed: started.elapsed(),
                    progress: p.clone(),
                }),
        }
    }
}
