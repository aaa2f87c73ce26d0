//! The writer's state: the open stripe, the sealed stripes waiting for the flusher, the
//! cursor, the free space map and the LSNs. One mutex (`Shared::state`) guards it; the
//! writer (log/writer.rs) owns its rules. Its fields are private to the log: other layers
//! read it through the accessors below, change the free space through the few mutators the
//! space policy needs, and hold appends back through the writer's guards
//! (`Shared::quiesced`, `Shared::exclusive_appends`).

use crate::format::journal::JOURNAL_BYTES;
use crate::format::log_record;
use crate::format::placement::{Packer, Spot};
use crate::log::cursor::Cursor;
use crate::log::repair::LogRepairs;
use crate::segments::{FreeSpace, SegmentInfo};
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;

/// A record appended to a stripe that is not on disk yet. Its table name and key are not
/// copied: they are read back from the stripe buffer (`{ header | table | key | value }`;
/// a compact record whose name is elided finds it in an earlier record, at `table_at`).
#[derive(Clone, Copy)]
pub(crate) struct PendingRecord {
    pub lsn: u64,
    pub offset: u32,
    pub len: u32,
    pub crc: u32,
    /// crc32c of the value alone when it may be placed on device blocks (else 0).
    pub value_crc: u32,
    pub is_put: bool,
    pub fmt: log_record::RecordFormat,
    /// The table name is stored in this record (not elided).
    pub table_stored: bool,
    /// Where the table name's bytes are in the stripe buffer.
    pub table_at: u32,
    pub table_len: u8,
    pub key_len: u16,
}

impl PendingRecord {
    pub(crate) fn table<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let start = self.table_at as usize;
        &buf[start..start + self.table_len as usize]
    }

    /// Bytes of the table name stored in the record itself.
    fn stored_table_len(&self) -> usize {
        if self.table_stored {
            self.table_len as usize
        } else {
            0
        }
    }

    pub(crate) fn key<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let start = self.offset as usize + self.fmt.header_len() + self.stored_table_len();
        &buf[start..start + self.key_len as usize]
    }

    /// The value's length (0 for a delete).
    pub(crate) fn value_len(&self) -> usize {
        self.len as usize - self.fmt.header_len() - self.stored_table_len() - self.key_len as usize
    }

    /// Offers the record to a stripe's plan (format/placement.rs).
    pub(crate) fn pack(&self, packer: &mut Packer) -> Option<Spot> {
        packer.add(
            (self.len as usize).next_multiple_of(8),
            self.fmt
                .placed_head_len(self.stored_table_len(), self.key_len as usize),
            self.is_put.then(|| self.value_len()),
        )
    }
}

/// The stripe sequence number the index names for records replayed from the sync journal
/// (the writer numbers its own stripes from 1 and never reaches it).
pub(crate) const JOURNAL_REPLAY_SEQ: u64 = u64::MAX;

/// Records replayed from the sync journal: the payloads of the chain's entries, one after
/// the other, as the index's `Place::Pending` offsets name them.
pub(crate) struct JournalReplay {
    pub buf: Arc<Vec<u8>>,
    /// Byte range of each entry in `buf` (a sync group: whole batches).
    pub entries: Vec<std::ops::Range<usize>>,
    pub first_lsn: u64,
    pub last_lsn: u64,
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
    /// The plan of the stripe at `max_height` with values placed on device blocks (format
    /// version 3 log stripes); None when the stripe keeps every value inline.
    pub packer: Option<Packer>,
    /// The last record's table name (its position and length in `buf`): a compact record in
    /// the same table leaves its name out.
    pub prev_table: Option<(u32, u8)>,
    /// The record whose tail `buf` starts with (format version 5): it continues from the
    /// previous stripe, and its tail's length is the stripe's tail_bytes.
    pub carried: Option<Carried>,
}

impl OpenStripe {
    /// Bytes at the start of `buf` that end a record continued from the previous stripe.
    pub(crate) fn tail_bytes(&self) -> u32 {
        self.carried.as_ref().map_or(0, |c| c.tail_bytes)
    }

    /// Whether the stripe has anything to write: records of its own, or a tail.
    pub(crate) fn has_content(&self) -> bool {
        !self.records.is_empty() || self.carried.is_some()
    }
}

/// A record that continues from the head stripe into the stripe that holds it (format
/// version 5; docs/design.md, "Records that continue in the next stripe"). The head
/// stripe's buffer holds the whole record and stays in `WriterState::pending` until this
/// stripe is written: the index names it until then, and the head stripe's place after.
pub(crate) struct Carried {
    /// The record, as the head stripe's buffer holds it.
    pub rec: PendingRecord,
    pub head_buf: Arc<Vec<u8>>,
    pub head_seq: u64,
    pub head_offset: u32,
    pub head_height: u32,
    pub head_ordinal: u32,
    pub tail_bytes: u32,
}

/// Where a sealed stripe's records go when it places values on device blocks: one spot per
/// record, and the end of its record area (payload_bytes).
pub(crate) struct Placement {
    pub spots: Vec<Spot>,
    pub payload: usize,
}

pub(crate) struct SealedStripe {
    pub stripe: OpenStripe,
    pub height: u32,
    /// Set when the stripe is written with values placed on device blocks.
    pub placement: Option<Placement>,
    /// Sealed early because a writer waited for durability (a short stripe), rather than
    /// because the next record did not fit.
    pub for_sync: bool,
    /// The last record continues in the next stripe (format version 5): the stripe is
    /// sealed at its full height, and written with `buf` cut at its data space.
    pub continues: bool,
}

pub(crate) struct WriterState {
    pub(in crate::log) open: Option<OpenStripe>,
    pub(in crate::log) cursor: Option<Cursor>,
    pub(in crate::log) free: FreeSpace,
    pub(in crate::log) next_lsn: u64,
    pub(in crate::log) next_segment_id: u64,
    pub(in crate::log) sealed: VecDeque<SealedStripe>,
    /// Every record up to this LSN is in flushed stripes.
    pub(in crate::log) durable_lsn: u64,
    /// Every record up to this LSN is durable in the sync journal (or in flushed stripes):
    /// acknowledged. See [`WriterState::acked_lsn`].
    pub(in crate::log) journal_lsn: u64,
    /// Records recovery replayed from the sync journal, written into the log by the
    /// session's first write (their index entries name [`JOURNAL_REPLAY_SEQ`] until then).
    pub(in crate::log) journal_replay: Option<JournalReplay>,
    /// Syncs up to this LSN must reach flushed stripes, not the journal: the records an
    /// open replayed from the journal (they may have a single copy there, and their entries
    /// lie somewhere in the ring, which nothing may overwrite before they are in stripes).
    pub(in crate::log) force_stripes_lsn: u64,
    pub(in crate::log) sync_wanted_lsn: u64,
    /// A sync journal entry is being written (by the flusher or by a syncing caller): no
    /// other is started until it is done, and no short stripe is sealed for a sync.
    pub(in crate::log) journal_busy: bool,
    /// The sync journal's ring.
    pub(in crate::log) journal_ring: JournalRing,
    /// Every stripe sealed with a sequence number up to this one is written and flushed
    /// (stripes are sealed, written and flushed in order).
    pub(in crate::log) flushed_seq: u64,
    /// The sequence number of the last stripe sealed. (Not `next_stripe_seq`: an open
    /// stripe left empty is dropped unsealed, and its number is never written.)
    pub(in crate::log) sealed_seq: u64,
    /// A caller waits for the stripes up to this sequence number to be flushed
    /// ([`crate::shared::Shared::sync_stripes`]).
    pub(in crate::log) flush_wanted_seq: u64,
    pub(in crate::log) error: Option<String>,
    pub(in crate::log) closing: bool,
    pub(in crate::log) flusher_done: bool,
    /// Whether this session has started writing (new epoch persisted, orphans invalidated).
    pub(in crate::log) writing_started: bool,
    /// Segments beyond the end of the log, to invalidate before the first write.
    pub(in crate::log) pending_discard: Vec<Arc<SegmentInfo>>,
    /// Data of sealed stripes whose records the index still serves from memory, by stripe
    /// sequence number; dropped once their index entries point at the disk.
    pub(in crate::log) pending: HashMap<u64, Arc<Vec<u8>>>,
    pub(in crate::log) next_stripe_seq: u64,
    /// Chunks and headers of the replayed log to rewrite before the first write.
    pub(in crate::log) pending_repairs: LogRepairs,
    /// A checkpoint is taking an image of the index: appends wait until it is cleared.
    pub(in crate::log) paused: bool,
    /// Per log segment, the highest LSN of a record in it (for segments the checkpoint
    /// covered at open, the bound recovery gives: above a horizon exactly when the segment
    /// holds a record after it). The cleaner keeps segments holding history after the
    /// backup horizon.
    pub(in crate::log) segment_max_lsn: HashMap<u64, u64>,
    /// The cleaner is moving records on an array out of room: foreground appends wait.
    pub(in crate::log) cleaner_exclusive: bool,
    /// Stripes sealed and not yet flushed, counted per segment id: with the cursor, they
    /// bound the array's sync floor (docs/format.md, "Stale members").
    pub(in crate::log) unflushed_segments: std::collections::BTreeMap<u64, usize>,
}

impl WriterState {
    /// The state of a session that opens on a recovered log. A read-only session has no
    /// flusher: it is done from the start.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cursor: Option<Cursor>,
        free: FreeSpace,
        next_lsn: u64,
        next_segment_id: u64,
        pending_discard: Vec<Arc<SegmentInfo>>,
        pending_repairs: LogRepairs,
        segment_max_lsn: HashMap<u64, u64>,
        read_only: bool,
        journal_replay: Option<JournalReplay>,
    ) -> WriterState {
        let mut pending = HashMap::new();
        let durable_lsn = match &journal_replay {
            Some(j) => {
                pending.insert(JOURNAL_REPLAY_SEQ, j.buf.clone());
                j.first_lsn - 1
            }
            None => next_lsn - 1,
        };
        WriterState {
            open: None,
            cursor,
            free,
            next_lsn,
            next_segment_id,
            sealed: VecDeque::new(),
            durable_lsn,
            journal_lsn: next_lsn - 1,
            force_stripes_lsn: journal_replay.as_ref().map_or(0, |j| j.last_lsn),
            journal_replay,
            sync_wanted_lsn: 0,
            journal_busy: false,
            journal_ring: JournalRing::new(),
            flushed_seq: 0,
            sealed_seq: 0,
            flush_wanted_seq: 0,
            error: None,
            closing: false,
            flusher_done: read_only,
            writing_started: false,
            pending_discard,
            pending,
            next_stripe_seq: 0,
            pending_repairs,
            paused: false,
            segment_max_lsn,
            cleaner_exclusive: false,
            unflushed_segments: Default::default(),
        }
    }

    /// The LSN the next record gets.
    pub(crate) fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Every record up to this LSN is durable, in flushed stripes or in the sync journal.
    pub(crate) fn acked_lsn(&self) -> u64 {
        self.durable_lsn.max(self.journal_lsn)
    }

    /// The id the next new segment gets.
    pub(crate) fn next_segment_id(&self) -> u64 {
        self.next_segment_id
    }

    /// Where the next stripe goes (None before the first write of an empty array).
    pub(crate) fn cursor(&self) -> Option<&Cursor> {
        self.cursor.as_ref()
    }

    /// The free device segments.
    pub(crate) fn free(&self) -> &FreeSpace {
        &self.free
    }

    /// Whether this session has started writing.
    pub(crate) fn writing_started(&self) -> bool {
        self.writing_started
    }

    /// Whether a write failed: the writer refuses commits until the array is reopened.
    pub(crate) fn has_failed(&self) -> bool {
        self.error.is_some()
    }

    /// The failed write that stopped the writer, if one did.
    pub(crate) fn failure(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The highest LSN of a record in log segment `id` (a bound for segments the checkpoint
    /// covered at open), if known.
    pub(crate) fn segment_max_lsn(&self, id: u64) -> Option<u64> {
        self.segment_max_lsn.get(&id).copied()
    }

    /// The oldest segment the writer may still put a stripe in: the open stripe's, the
    /// cursor's, or the next new one.
    pub(crate) fn writing_segment(&self) -> u64 {
        let mut w = self.next_segment_id;
        if let Some(c) = &self.cursor {
            w = w.min(c.segment.id);
        }
        if let Some(o) = &self.open {
            w = w.min(o.segment.id);
        }
        w
    }

    /// The segment of the cursor, or the next new one when there is no cursor yet.
    pub(crate) fn cursor_segment(&self) -> u64 {
        self.cursor
            .as_ref()
            .map_or(self.next_segment_id, |c| c.segment.id)
    }

    /// Nothing open, sealed or pending, and everything appended durable.
    pub(crate) fn is_quiet(&self) -> bool {
        self.durable_lsn + 1 == self.next_lsn
            && self.open.as_ref().is_none_or(|o| !o.has_content())
            && self.sealed.is_empty()
            && self.pending.is_empty()
    }

    /// Segments beyond the end of the log that this session has not invalidated yet.
    pub(crate) fn pending_discard(&self) -> &[Arc<SegmentInfo>] {
        &self.pending_discard
    }

    /// The free space, for the space policy (freeing segments) and checkpoints (taking
    /// their segments).
    pub(crate) fn free_mut(&mut self) -> &mut FreeSpace {
        &mut self.free
    }

    /// Takes `count` segment ids for new segments; returns the first.
    pub(crate) fn take_segment_ids(&mut self, count: u64) -> u64 {
        let first = self.next_segment_id;
        self.next_segment_id += count;
        first
    }

    /// Forgets what the writer knows of a freed segment.
    pub(crate) fn forget_segment(&mut self, id: u64) {
        self.segment_max_lsn.remove(&id);
    }
}

/// The writer's view of the sync journal's ring (log/journal.rs writes it): where the next
/// entry goes, and what the places written in this session hold.
pub(crate) struct JournalRing {
    pub(in crate::log) cursor: usize,
    /// (place in the ring, last LSN of the entry there), oldest first.
    pub(in crate::log) entries: VecDeque<(Range<usize>, u64)>,
    /// Where the choice of the next entry's members starts (rotates over the slots).
    pub(in crate::log) rotation: usize,
    /// Syncs up to this LSN take a short stripe: a journal write for them failed.
    pub(in crate::log) refused_through: u64,
}

impl JournalRing {
    /// An empty ring. (Entries an open replayed may lie anywhere in it, but nothing is
    /// journaled before their records are in flushed stripes: `force_stripes_lsn`.)
    pub(crate) fn new() -> JournalRing {
        JournalRing {
            cursor: 0,
            entries: VecDeque::new(),
            rotation: 0,
            refused_through: 0,
        }
    }

    /// Where an entry of `len` bytes goes, if that place holds nothing that is not yet in
    /// flushed stripes.
    pub(in crate::log) fn place_for(
        &mut self,
        len: usize,
        durable_lsn: u64,
    ) -> Option<Range<usize>> {
        self.entries.retain(|(_, last)| *last > durable_lsn);
        let start = if self.cursor + len > JOURNAL_BYTES {
            0
        } else {
            self.cursor
        };
        let place = start..start + len;
        let busy = self
            .entries
            .iter()
            .any(|(r, _)| r.start < place.end && place.start < r.end);
        (!busy).then_some(place)
    }
}
