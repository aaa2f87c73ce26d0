//! The writer's state: the open stripe, the sealed stripes waiting for the flusher, the
//! cursor, the free space map and the LSNs. One mutex (`Shared::state`) guards it; the
//! writer (log/writer.rs) owns its rules.

use crate::format::log_record;
use crate::log::cursor::Cursor;
use crate::log::repair::LogRepairs;
use crate::segments::{FreeSpace, SegmentInfo};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// A record appended to a stripe that is not on disk yet. Its table name and key are not
/// copied: they are read back from the stripe buffer (`{ header | table | key | value }`).
pub(crate) struct PendingRecord {
    pub lsn: u64,
    pub offset: u32,
    pub len: u32,
    pub crc: u32,
    pub is_put: bool,
    pub table_len: u8,
    pub key_len: u16,
}

impl PendingRecord {
    pub(crate) fn table<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let start = self.offset as usize + log_record::RECORD_HEADER_BYTES;
        &buf[start..start + self.table_len as usize]
    }

    pub(crate) fn key<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let start =
            self.offset as usize + log_record::RECORD_HEADER_BYTES + self.table_len as usize;
        &buf[start..start + self.key_len as usize]
    }
}

pub(crate) struct OpenStripe {
    pub segment: Arc<SegmentInfo>,
    pub new_segment: bool,
    pub offset: u32,
    pub ordinal: u32,
    pub max_height: u32,
    /// The stripe's data space so far. Unique while the stripe is open (readers copy from
    /// it under the writer lock); shared with `WriterState::pending` once sealed.
    pub buf: Arc<Vec<u8>>,
    /// Unique per stripe in this session; index entries of records not yet on disk name it.
    pub seq: u64,
    pub first_lsn: u64,
    pub last_lsn: u64,
    pub records: Vec<PendingRecord>,
}

pub(crate) struct SealedStripe {
    pub stripe: OpenStripe,
    pub height: u32,
    /// Sealed early because a writer waited for durability (a short stripe), rather than
    /// because the next record did not fit.
    pub for_sync: bool,
}

pub(crate) struct WriterState {
    pub open: Option<OpenStripe>,
    pub cursor: Option<Cursor>,
    pub free: FreeSpace,
    pub next_lsn: u64,
    pub next_segment_id: u64,
    pub sealed: VecDeque<SealedStripe>,
    pub durable_lsn: u64,
    pub sync_wanted_lsn: u64,
    pub error: Option<String>,
    pub closing: bool,
    pub flusher_done: bool,
    /// Whether this session has started writing (new epoch persisted, orphans invalidated).
    pub writing_started: bool,
    /// Segments beyond the end of the log, to invalidate before the first write.
    pub pending_discard: Vec<Arc<SegmentInfo>>,
    /// Data of sealed stripes whose records the index still serves from memory, by stripe
    /// sequence number; dropped once their index entries point at the disk.
    pub pending: HashMap<u64, Arc<Vec<u8>>>,
    pub next_stripe_seq: u64,
    /// Chunks and headers of the replayed log to rewrite before the first write.
    pub pending_repairs: LogRepairs,
    /// A checkpoint is taking an image of the index: appends wait until it is cleared.
    pub paused: bool,
    /// Per log segment, the highest LSN of a record in it (for segments the checkpoint
    /// covered at open, the bound recovery gives: above a horizon exactly when the segment
    /// holds a record after it). The cleaner keeps segments holding history after the
    /// backup horizon.
    pub segment_max_lsn: HashMap<u64, u64>,
    /// The cleaner is moving records on an array out of room: foreground appends wait.
    pub cleaner_exclusive: bool,
    /// Stripes sealed and not yet flushed, counted per segment id: with the cursor, they
    /// bound the array's sync floor (docs/format.md, "Stale members").
    pub unflushed_segments: std::collections::BTreeMap<u64, usize>,
}
