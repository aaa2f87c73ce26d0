//! Space policy: how many free segments each kind of writer must leave (the reserve), how
//! much a segment holds, freeing segments nothing needs, and what the backup horizon keeps
//! from the cleaner. The cleaner's mailbox is in [`mailbox`].

pub(crate) mod mailbox;

use crate::format::*;
use crate::index::Walk;
use crate::log::state::WriterState;
use crate::segments::SegmentInfo;
use crate::shared::Shared;
use crate::sync::{MutexExt, RwLockExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The system table of backup state: the horizon, and the marker of a restore in progress.
pub const BACKUP_TABLE: &str = "$backup";
pub(crate) const HORIZON_KEY: &[u8] = b"horizon";
pub(crate) const RESTORE_KEY: &[u8] = b"restore";

/// Log segments kept back from foreground writes, beside the checkpoint's own.
pub const RESERVE_LOG_SEGMENTS: usize = 2;
/// How many cleaner cycles a write waits for on a full array before it fails.
pub const MAX_SPACE_WAITS: usize = 64;
/// A write on a full array fails once this many cycles in a row freed nothing.
pub const MAX_EMPTY_CYCLES: usize = 3;

/// Who asks for a new segment, and so how many free segments it must leave: foreground
/// writes leave the checkpoint's segments and [`crate::space::RESERVE_LOG_SEGMENTS`] more;
/// deletes (which is how a full array is emptied) leave the checkpoint's and one; the
/// cleaner's relocations leave the checkpoint's. Checkpoints may take the last ones.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Room {
    Foreground,
    Deletes,
    Cleaner,
}

impl Shared {
    /// Bytes the next index checkpoint is expected to take: the newest checkpoint's bytes per
    /// key (written or loaded in this session), scaled up when table names and keys are
    /// longer on average now than then, times the keys now, with an eighth and 64 KiB to
    /// spare, and never more than the bound the index keeps (what the first encoding
    /// would take, above the compact one's size for any real index), which is also the
    /// estimate until a checkpoint was seen.
    pub(crate) fn checkpoint_estimate_bytes(&self) -> u64 {
        let (bound, keys, names) = {
            let index = self.index.read_locked();
            (
                index.checkpoint_bytes + 4096,
                index.key_count() as u64,
                index.name_bytes(),
            )
        };
        let last = self.cleaner.last_checkpoint();
        if last.bytes == 0 {
            return bound;
        }
        let (last_keys, last_names) = (last.keys.max(1), last.names.max(1));
        let per_key = last.bytes as f64 / last_keys as f64;
        // Keys (with their table names) longer on average than at that checkpoint: its
        // bytes per key grow with them, so the estimate does not lag until the next one.
        let growth = (names as f64 / keys.max(1) as f64) / (last_names as f64 / last_keys as f64);
        ((per_key * growth.max(1.0) * keys as f64 * 1.125) as u64 + (64 << 10)).min(bound)
    }

    /// Segments an index checkpoint needs now.
    pub(crate) fn checkpoint_segments(&self) -> usize {
        self.array
            .layout
            .segments_for(self.checkpoint_estimate_bytes() as usize)
    }

    /// Segments kept for checkpoints: room for the next one (the one in force is freed only
    /// after it), and, while there is none yet, for the first one too, which frees nothing.
    pub(crate) fn checkpoint_keep(&self) -> usize {
        let ckpt = self.checkpoint_segments();
        let none_yet = self.array.persisted.locked().checkpoint.0 == 0;
        if none_yet {
            2 * ckpt
        } else {
            ckpt
        }
    }

    /// Segments kept back from foreground writes so that the cleaner can always move live
    /// records forward and write the checkpoint that frees what it cleaned.
    pub(crate) fn reserve_segments(&self) -> usize {
        self.keep_for(Room::Foreground)
    }

    /// Free segments an allocation for `room` must leave. The cleaner always leaves room for
    /// the checkpoint that ends its pass. Foreground writes and deletes never keep more than
    /// a third of the array's segments (deletes one fewer): a very small array keeps a
    /// smaller reserve (and, full, may need deletes before the cleaner can run) rather than
    /// refuse writes from the start.
    pub(crate) fn keep_for(&self, room: Room) -> usize {
        let ckpt = self.checkpoint_keep();
        let a = &self.array;
        let cap = a.segment_count() as usize * a.n() / a.w() / 3;
        match room {
            Room::Foreground => (ckpt + crate::space::RESERVE_LOG_SEGMENTS).min(cap),
            Room::Deletes => (ckpt + 1).min(cap.saturating_sub(1)),
            Room::Cleaner => ckpt,
        }
    }
}

/// Removes segments from the segment table and gives their device segments back, with no
/// read in flight (the free gate) and no rebuild or scrub running (the maintenance lock,
/// held by the caller or taken here).
pub(crate) fn free_segments(shared: &Shared, ids: &[u64]) {
    if ids.is_empty() {
        return;
    }
    let _gate = shared.free_gate.write_locked();
    let mut st = shared.lock_state();
    let mut map = shared.segments.write_locked();
    let freed: Vec<Arc<SegmentInfo>> = ids
        .iter()
        .filter_map(|id| {
            st.forget_segment(*id);
            map.remove(id)
        })
        .collect();
    // A segment freed in an earlier session and found again at open (its headers remain on
    // the members no newer segment took) names device segments that now belong to others:
    // those stay theirs.
    let in_use: std::collections::HashSet<(u32, u32)> = map
        .values()
        .chain(st.pending_discard().iter())
        .flat_map(|s| s.members.iter().copied())
        .collect();
    for seg in freed {
        for (slot, dseg) in &seg.members {
            if !in_use.contains(&(*slot, *dseg)) {
                st.free_mut().release(*slot, *dseg);
            }
        }
    }
}

/// Frees the log segments before `resume_segment` (so covered by the checkpoint in force)
/// that no index entry points into, and the checkpoint segments of earlier checkpoints. Skipped while a rebuild or scrub runs (they read the
/// segment table as it was when they started); the next checkpoint or cleaner pass frees
/// them. Returns how many were freed.
pub(crate) fn free_dead_segments(shared: &Shared, resume_segment: u64) -> usize {
    let Ok(_maintenance) = shared.maintenance.try_lock() else {
        return 0;
    };
    free_dead_segments_locked(shared, resume_segment)
}

/// As [`free_dead_segments`], with the maintenance lock held by the caller.
pub(crate) fn free_dead_segments_locked(shared: &Shared, resume_segment: u64) -> usize {
    let (ckpt_first, ckpt_count, _) = shared.array.persisted.locked().checkpoint;
    let in_force = ckpt_first..ckpt_first + ckpt_count as u64;
    let (old_checkpoints, candidates): (Vec<u64>, Vec<u64>) = {
        let map = shared.segments.read_locked();
        let old = map
            .values()
            .filter(|s| s.kind == SegmentKind::Checkpoint && !in_force.contains(&s.id))
            .map(|s| s.id)
            .collect();
        let logs = map
            .values()
            .filter(|s| s.kind == SegmentKind::Log && s.id < resume_segment)
            .map(|s| s.id)
            .collect();
        (old, logs)
    };
    let mut dead = old_checkpoints;
    // History a registered backup chain still needs stays.
    let candidates = crate::space::outside_history(shared, candidates);
    if !candidates.is_empty() {
        // The authority is the index itself, not the live-byte accounting.
        let referenced = referenced_segments(shared);
        dead.extend(candidates.into_iter().filter(|id| !referenced.contains(id)));
    }
    free_segments(shared, &dead);
    if !dead.is_empty() {
        tracing::debug!("freed {} dead log segments", dead.len());
    }
    dead.len()
}

/// Every segment some index entry points into.
/// The segments index entries point into, read a slice of the index at a time with the
/// lock let go between slices (a walk of 10 M keys under one guard held writers up for
/// 0.4 to 1 s). Exact for the segments behind the log's head, which is what callers ask
/// about: a write never points an entry into a segment before the one being written, so
/// such a segment that no entry pointed into when the walk read that entry's key has none
/// at the end of the walk.
pub(crate) fn referenced_segments(shared: &Shared) -> std::collections::HashSet<u64> {
    let mut out = std::collections::HashSet::new();
    let mut walk = Walk::new(shared.index.read_locked().table_names());
    while !shared
        .index
        .read_locked()
        .walk(&mut walk, WALK_SLICE_KEYS, |e| {
            out.insert(e.place.segment_id());
        })
    {
        crate::sync::let_writers_in();
    }
    out
}

/// Keys read per turn of the index lock in a walk: a few milliseconds.
pub(crate) const WALK_SLICE_KEYS: usize = 16_384;

/// The segments among `ids` the cleaner may clean or free: those holding no record after
/// the backup horizon.
pub(crate) fn outside_history(shared: &Shared, ids: Vec<u64>) -> Vec<u64> {
    let h = shared.backup_horizon.load(Ordering::SeqCst);
    if h == u64::MAX {
        return ids;
    }
    let st = shared.lock_state();
    ids.into_iter()
        .filter(|id| st.segment_max_lsn(*id).is_some_and(|m| m <= h))
        .collect()
}

/// Space the backup horizon keeps from the cleaner: log segments (other than the one being
/// written) holding a record after the horizon, and the bytes in them no row needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HorizonHold {
    /// The horizon (LSN), or None when no backup chain is registered.
    pub horizon_lsn: Option<u64>,
    /// Segments held that hold garbage.
    pub segments: usize,
    /// Their garbage: what cleaning them would give back.
    pub garbage_bytes: u64,
}

impl HorizonHold {
    /// "N segments (X MiB reclaimable) held by the backup horizon (LSN H): ...", or None
    /// when it holds nothing. Reclaimable, not garbage: the status line's garbage counts
    /// only bytes written and no longer needed, while cleaning a held segment would also
    /// give back the room its stripes never filled.
    pub fn describe(&self) -> Option<String> {
        let h = self.horizon_lsn?;
        (self.segments > 0).then(|| {
            format!(
                "{} segments ({:.1} MiB reclaimable) held by the backup horizon (LSN {h}): \
                 the next backup raises it, or clearing it (Engine::clear_backup_horizon, \
                 `ectable backup-clear-horizon`) releases them (the next backup is then a \
                 full one)",
                self.segments,
                self.garbage_bytes as f64 / (1u64 << 20) as f64
            )
        })
    }
}

/// What the horizon holds now (see [`HorizonHold`]). Takes the segment table and the index
/// for reading; the caller may hold the writer state (`st`), never the index.
pub(crate) fn horizon_hold(shared: &Shared, st: &WriterState) -> HorizonHold {
    let h = shared.backup_horizon.load(Ordering::SeqCst);
    if h == u64::MAX {
        return HorizonHold::default();
    }
    let writing = st.writing_segment();
    let cap = shared.array.layout.log_segment_payload() as u64;
    let held: Vec<u64> = shared
        .segments
        .read_locked()
        .values()
        .filter(|s| s.kind == SegmentKind::Log && s.id < writing)
        .filter(|s| st.segment_max_lsn(s.id).is_none_or(|m| m > h))
        .map(|s| s.id)
        .collect();
    let index = shared.index.read_locked();
    let mut out = HorizonHold {
        horizon_lsn: Some(h),
        ..HorizonHold::default()
    };
    for id in held {
        let garbage = cap.saturating_sub(index.live_bytes.get(&id).copied().unwrap_or(0));
        if garbage > 0 {
            out.segments += 1;
            out.garbage_bytes += garbage;
        }
    }
    out
}
