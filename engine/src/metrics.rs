//! What the engine measures about itself, for exporters: latency histograms of the calls
//! (puts, gets, syncs, scans), the devices' I/O counters (kept by the I/O backend), and the
//! scrub or rebuild in progress. Recording costs a few relaxed atomic increments per call;
//! [`Engine::metrics`] copies everything into a [`Metrics`] snapshot (`Send + Sync`, plain
//! data) that a storage node renders as Prometheus text and an embedder may export any way.

use crate::engine::Engine;
use crate::rebuild::Progress;
use crate::status::Status;
use crate::sync::MutexExt;
use ectable_devices::{DeviceIoSnapshot, HistogramSnapshot, LatencyHistogram};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The calls whose latency the engine keeps.
#[derive(Debug, Default)]
pub(crate) struct OpMetrics {
    /// put, put_sync, delete, write_batch (a synced put counts its wait too).
    pub put: LatencyHistogram,
    /// get, get_many (one observation per call).
    pub get: LatencyHistogram,
    /// sync, wait_durable.
    pub sync: LatencyHistogram,
    /// scan (the whole call; streaming scans are not timed).
    pub scan: LatencyHistogram,
    /// The maintenance work running now, with its latest progress.
    pub activity: Mutex<Option<(ActivityKind, Instant, Progress)>>,
}

impl OpMetrics {
    /// Times `f` into `h`.
    pub fn time<T>(h: &LatencyHistogram, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let r = f();
        h.record(start.elapsed());
        r
    }

    /// Marks `kind` as running (its progress reported through [`OpMetrics::progress`]) until
    /// the guard is dropped.
    pub fn begin(&self, kind: ActivityKind) -> ActivityGuard<'_> {
        *self.activity.locked() = Some((kind, Instant::now(), Progress::default()));
        ActivityGuard { ops: self }
    }

    /// The latest progress of the work running now.
    pub fn progress(&self, p: &Progress) {
        if let Some((_, _, last)) = self.activity.locked().as_mut() {
            *last = p.clone();
        }
    }
}

/// Clears the activity when the work ends (however it ends).
pub(crate) struct ActivityGuard<'a> {
    ops: &'a OpMetrics,
}

impl Drop for ActivityGuard<'_> {
    fn drop(&mut self) {
        *self.ops.activity.locked() = None;
    }
}

/// Maintenance work that walks the array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum ActivityKind {
    /// A scrub (with or without repair).
    Scrub,
    /// A rebuild or resync of a member.
    Rebuild,
}

impl ActivityKind {
    /// "scrub" or "rebuild".
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Scrub => "scrub",
            ActivityKind::Rebuild => "rebuild",
        }
    }
}

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
