//! What the engine records about its calls as they happen: latency histograms of puts,
//! gets, syncs and scans, and the scrub or rebuild running now (metrics.rs copies them into
//! the `Metrics` snapshot). Recording costs a few relaxed atomic increments per call.

use crate::rebuild::Progress;
use crate::sync::MutexExt;
use ectable_devices::LatencyHistogram;
use std::sync::Mutex;
use std::time::Instant;

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

    /// As [`OpMetrics::begin`], unless other work is recorded as running already (an
    /// operator's rebuild, while the monitor's waits for it): then None, and that record
    /// stays.
    pub fn begin_if_idle(&self, kind: ActivityKind) -> Option<ActivityGuard<'_>> {
        let mut a = self.activity.locked();
        if a.is_some() {
            return None;
        }
        *a = Some((kind, Instant::now(), Progress::default()));
        Some(ActivityGuard { ops: self })
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
