//! The cleaner's mailbox: how writers waiting for space, checkpoints and the engine talk to
//! the cleaner thread, and what it reports back.

use crate::sync::{CondvarExt, MutexExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the cleaner has done since the engine was opened.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CleanerStats {
    /// Cleaning passes that did something: cleaned or freed a segment, or wrote a
    /// checkpoint (paused ones, and those that found nothing worth cleaning, not counted:
    /// a full array looks every 100 ms).
    pub passes: u64,
    /// Passes skipped because a rebuild or scrub was running.
    pub paused_passes: u64,
    /// Victim segments whose live records were moved forward.
    pub segments_cleaned: u64,
    /// Segments given back to free space.
    pub segments_freed: u64,
    /// Live records appended again as moved records.
    pub records_relocated: u64,
    /// Encoded bytes (padded, headers included) of the live records read for moving.
    pub bytes_relocated: u64,
    /// Index checkpoints written since the engine was opened.
    pub checkpoints: u64,
    /// LSN of the newest of those checkpoints (0: none yet).
    pub last_checkpoint_lsn: u64,
}

pub(crate) struct CtlState {
    /// Cycles of the cleaner thread completed.
    pub(crate) generation: u64,
    /// A cycle is running now.
    pub(crate) in_cycle: bool,
    pub(crate) requested: bool,
    pub(crate) stop: bool,
    pub(crate) running: bool,
    /// Segments freed by the last completed pass.
    pub(crate) last_freed: u64,
    pub(crate) stats: CleanerStats,
    /// Victims found unreadable beyond repair: not picked again this session.
    pub(crate) unreadable: Vec<u64>,
}

/// What a checkpoint took: its bytes, its keys, and the bytes of their table names and
/// keys (the estimate of the next one scales from these; `Shared::checkpoint_estimate_bytes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CheckpointSize {
    pub bytes: u64,
    pub keys: u64,
    pub names: u64,
}

/// The cleaner thread's controls, shared with writers waiting for space.
pub(crate) struct CleanerCtl {
    pub(crate) state: Mutex<CtlState>,
    pub(crate) cv: Condvar,
    /// The checkpoint's resume point: (segment, offset) of the first stripe after it, where
    /// recovery starts replaying the log ((0, 0): no checkpoint, the whole log is replayed).
    resume_point: Mutex<(u64, u32)>,
    /// Payload bytes written when the last checkpoint was taken.
    pub payload_at_checkpoint: AtomicU64,
    /// The newest checkpoint written or loaded in this session (all zero: none yet): what
    /// the next one is expected to take per key. One lock, so that a reader never pairs one
    /// checkpoint's bytes with another's keys.
    last_checkpoint: Mutex<CheckpointSize>,
}

impl CleanerCtl {
    pub(crate) fn new(resume_point: (u64, u32)) -> CleanerCtl {
        CleanerCtl {
            state: Mutex::new(CtlState {
                generation: 0,
                in_cycle: false,
                requested: false,
                stop: false,
                running: false,
                last_freed: 0,
                stats: CleanerStats::default(),
                unreadable: Vec::new(),
            }),
            cv: Condvar::new(),
            resume_point: Mutex::new(resume_point),
            payload_at_checkpoint: AtomicU64::new(0),
            last_checkpoint: Mutex::new(CheckpointSize::default()),
        }
    }

    /// Resume segment of the checkpoint in force (0: none).
    pub(crate) fn resume_segment(&self) -> u64 {
        self.resume_point.locked().0
    }

    /// Whether recovery replays the stripe at `offset` of `seg`: a log stripe at or after the
    /// resume point of the checkpoint in force (every log stripe, without a checkpoint).
    /// Such a stripe is needed whether or not an index entry points into it (deletes,
    /// records overwritten later): unreadable, it breaks the log at the next open.
    pub(crate) fn replayed_by_recovery(
        &self,
        seg: &crate::segments::SegmentInfo,
        offset: u32,
    ) -> bool {
        let (rs, ro) = *self.resume_point.locked();
        seg.kind == crate::format::SegmentKind::Log
            && (rs == 0 || seg.id > rs || (seg.id == rs && offset >= ro))
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, CtlState> {
        self.state.locked()
    }

    pub(crate) fn stats(&self) -> CleanerStats {
        self.lock().stats.clone()
    }

    /// Wakes the cleaner thread and waits for a cycle that starts after this call to end:
    /// whether it freed segments, or None if there is no cleaner thread (or it is stopping,
    /// or a minute went by).
    pub(crate) fn wait_for_pass(&self) -> Option<bool> {
        let mut s = self.lock();
        if !s.running || s.stop {
            return None;
        }
        s.requested = true;
        self.cv.notify_all();
        // A cycle running now may have started before the caller ran out of space: wait
        // for the one after it.
        let target = s.generation + if s.in_cycle { 2 } else { 1 };
        let deadline = Instant::now() + Duration::from_secs(60);
        while s.generation < target && s.running && !s.stop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            s = self.cv.waited_timeout(s, left);
        }
        if !s.running || s.stop {
            return None;
        }
        Some(s.last_freed > 0)
    }

    pub(crate) fn checkpoint_written(
        &self,
        lsn: u64,
        resume_point: (u64, u32),
        payload: u64,
        size: CheckpointSize,
    ) {
        *self.resume_point.locked() = resume_point;
        self.checkpoint_size(size);
        self.payload_at_checkpoint.store(payload, Ordering::SeqCst);
        let mut s = self.lock();
        s.stats.checkpoints += 1;
        s.stats.last_checkpoint_lsn = lsn;
    }

    /// Records the size of the newest checkpoint (written, or loaded at open).
    pub(crate) fn checkpoint_size(&self, size: CheckpointSize) {
        *self.last_checkpoint.locked() = size;
    }

    /// The size of the newest checkpoint written or loaded in this session.
    pub(crate) fn last_checkpoint(&self) -> CheckpointSize {
        *self.last_checkpoint.locked()
    }

    /// The cleaner thread is gone (it panicked): writers waiting for a pass stop waiting.
    pub(crate) fn stopped(&self) {
        let mut s = self.lock();
        s.stop = true;
        s.running = false;
        s.in_cycle = false;
        self.cv.notify_all();
    }

    /// Asks the cleaner thread for a cycle now, without waiting for it.
    pub(crate) fn request(&self) {
        let mut s = self.lock();
        s.requested = true;
        self.cv.notify_all();
    }

    pub(crate) fn stop(&self) {
        let mut s = self.lock();
        s.stop = true;
        self.cv.notify_all();
    }
}
