//! The writer: records go into an open stripe buffer; sealed stripes are encoded and written
//! by a flusher thread in batches (several stripes in flight), followed by one flush per
//! device; then the batch's records become durable and their waiters return (group commit).
//!
//! Invariants:
//! - A stripe is written once, at a place that held no live data (no write hole).
//! - `journal_lsn` (acknowledged through the sync journal) moves only after an entry holding
//!   every record after the previous acknowledged LSN was flushed on m + 1 members.
//! - `durable_lsn` only moves forward, and only after the flush that covers every stripe up
//!   to it has completed on at least `min_write_shards` devices of each of those stripes.
//! - After a failed write batch the writer latches the error: later commits fail with
//!   `Error::PreviousIo` until the array is reopened.
//! - Batches (and single records) live in one stripe, so they are all there or not at all.

use crate::error::{Error, Result};
use crate::format::*;
use crate::index::{Index, IndexEntry, Place};
use crate::log::cursor::Cursor;
use crate::sync::{CondvarExt, RwLockExt};

use crate::format::log_record::RecordFormat;
use crate::format::placement::{placeable, Packer, Spot};
use crate::log::state::{Carried, OpenStripe, PendingRecord, Placement, SealedStripe, WriterState};
use crate::segments::SegmentInfo;
use crate::shared::Shared;
use crate::space::Room;

use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Foreground appends wait while this lives (see [`Shared::exclusive_appends`]).
pub(crate) struct ExclusiveAppends<'a>(&'a Shared);

impl Drop for ExclusiveAppends<'_> {
    fn drop(&mut self) {
        self.0.lock_state().cleaner_exclusive = false;
        self.0.durable_cv.notify_all();
    }
}

/// A live record the cleaner moves forward: appended again only if the index still names
/// `lsn` for its key.
pub(crate) struct Relocation {
    pub table: String,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub lsn: u64,
}

/// One operation of a batch.
pub(crate) enum Mutation<'a> {
    Put {
        table: &'a str,
        key: &'a [u8],
        value: &'a [u8],
    },
    Delete {
        table: &'a str,
        key: &'a [u8],
    },
    /// A put the cleaner moves forward (logged as [`RecordKind::Moved`]).
    Moved {
        table: &'a str,
        key: &'a [u8],
        value: &'a [u8],
    },
}

/// The share of the log's capacity the live records may fill while new stripes still place
/// values on device blocks (`Shared::places_values_now`).
const PLACE_BELOW_FILL: f64 = 0.8;

/// Offers a mutation to a stripe's plan (format/placement.rs), with `fmt`'s lengths for the
/// record with or without its table name.
fn pack_mutation(
    fmt: RecordFormat,
    m: &Mutation<'_>,
    table_stored: bool,
    packer: &mut Packer,
) -> Option<Spot> {
    let (table, key, value_len) = match m {
        Mutation::Put { table, key, value } | Mutation::Moved { table, key, value } => {
            (*table, *key, Some(value.len()))
        }
        Mutation::Delete { table, key } => (*table, *key, None),
    };
    let stored = if table_stored { table.len() } else { 0 };
    packer.add(
        fmt.encoded_len_padded(stored, key.len(), value_len.unwrap_or(0)),
        fmt.placed_head_len(stored, key.len()),
        value_len,
    )
}

/// Whether each of `muts`, appended to `open` in order, fits the stripe's plan of placed
/// values, given to the packer exactly as `place` will give it the records: with the table
/// name left out where the record before names the same table (compact records). The
/// packer is greedy, so a record smaller than assumed can change where later ones go: a
/// plan made with every table name stored admitted batches that `place` then could not
/// fit (a restore's batch of puts to one table, seed 2711102642 of tools/tests/
/// backup_model.rs).
fn plan_fits(fmt: RecordFormat, open: &OpenStripe, muts: &[Mutation<'_>]) -> bool {
    let Some(packer) = open.packer.as_ref() else {
        return true;
    };
    let mut p = packer.clone();
    let mut prev: Option<&[u8]> = open
        .prev_table
        .and_then(|(at, len)| open.buf.get(at as usize..at as usize + len as usize));
    muts.iter().all(|m| {
        let table = match m {
            Mutation::Put { table, .. }
            | Mutation::Moved { table, .. }
            | Mutation::Delete { table, .. } => table.as_bytes(),
        };
        let same_table = fmt == RecordFormat::Compact && prev == Some(table);
        prev = Some(table);
        pack_mutation(fmt, m, !same_table, &mut p).is_some()
    })
}

impl Shared {
    fn stripe_capacity(&self, max_height: u32) -> usize {
        self.array.layout.stripe_payload_at(max_height as usize)
    }

    /// Opens a stripe at the cursor, allocating a new segment when the current one is full,
    /// if `room` may take one of the free segments left.
    fn open_stripe(&self, st: &mut WriterState, room: Room) -> Result<()> {
        let s = self.array.segment_size() as u32;
        let need_new = match &st.cursor {
            None => true,
            Some(c) => c.offset as usize + BLOCK_BYTES > s as usize,
        };
        if need_new {
            let online: Vec<bool> = (0..self.array.n())
                .map(|slot| self.array.device_of_slot(slot as u32).is_some())
                .collect();
            let id = st.next_segment_id;
            let keep = self.keep_for(room);
            let left = st.free.allocatable(self.array.w());
            if left <= keep {
                let held = crate::space::horizon_hold(self, st)
                    .describe()
                    .map_or(String::new(), |d| format!("; {d}"));
                return Err(Error::NoSpace(format!(
                    "{left} free segments left, {keep} of them kept for the cleaner; \
                     delete data (the cleaner then reclaims its space) or add capacity{held}"
                )));
            }
            let Some(members) =
                st.free
                    .allocate(id, self.array.w(), &online, self.min_write_shards)
            else {
                return Err(Error::NoSpace(format!(
                    "no free segment on {} online devices ({} free device segments in all)",
                    self.array.w(),
                    st.free.free_count()
                )));
            };
            st.next_segment_id += 1;
            let seg = Arc::new(SegmentInfo {
                id,
                kind: SegmentKind::Log,
                members,
            });
            self.segments.write_locked().insert(id, seg.clone());
            st.cursor = Some(Cursor {
                segment: seg,
                offset: SEGMENT_HEADER_SIZE_BYTES as u32,
                ordinal: 0,
            });
            self.refresh_sync_floor(st);
        }
        let c = st.cursor.as_ref().expect("cursor set above");
        let max_height = crate::log::stripe::place_height(&self.array, c.offset);
        st.open = Some(OpenStripe {
            segment: c.segment.clone(),
            new_segment: need_new,
            offset: c.offset,
            ordinal: c.ordinal,
            max_height,
            buf: Arc::new(Vec::with_capacity(self.stripe_capacity(max_height))),
            seq: {
                st.next_stripe_seq += 1;
                st.next_stripe_seq
            },
            first_lsn: st.next_lsn,
            last_lsn: 0,
            records: Vec::new(),
            packer: self
                .places_values_now()
                .then(|| Packer::new(self.array.k(), max_height as usize)),
            prev_table: None,
            carried: None,
        });
        Ok(())
    }

    /// Whether a stripe opened now places values on device blocks: on a format version 3
    /// array while live records fill less than `PLACE_BELOW_FILL` of the log's capacity. A
    /// placed 4 KiB value takes 1/30 more room than an inline one, and on a nearly full
    /// array under overwrites that share compounds into the cleaner's work (85 % fill,
    /// uniform 4 KiB overwrites: write amplification 6.9 placed against 4.9 inline,
    /// docs/performance.md); so a fuller array keeps new values inline.
    fn places_values_now(&self) -> bool {
        if !self.array.places_values() {
            return false;
        }
        let a = &self.array;
        let capacity = a.layout.segment_payload() as u64 * a.segment_count() as u64 * a.n() as u64
            / a.w() as u64;
        let live = self.index.read_locked().total_live_bytes();
        (live as f64) < PLACE_BELOW_FILL * capacity as f64
    }

    /// Where the records of a stripe sealed now go, and at which height: values on device
    /// blocks when that needs at most an eighth more height than keeping them inline (a
    /// full stripe: none), else every value inline at the smallest height.
    fn plan_seal(&self, open: &OpenStripe, inline_height: u32) -> (u32, Option<Placement>) {
        if open.packer.as_ref().is_none_or(|p| p.placed() == 0) {
            return (inline_height, None);
        }
        let k = self.array.k();
        let limit = (inline_height + inline_height / 8).min(open.max_height);
        let mut h = inline_height;
        while h <= limit {
            let mut packer = Packer::new(k, h as usize);
            let spots: Option<Vec<Spot>> =
                open.records.iter().map(|r| r.pack(&mut packer)).collect();
            if let Some(spots) = spots.filter(|_| packer.placed() > 0) {
                let payload = packer.area_end();
                return (h, Some(Placement { spots, payload }));
            }
            h += BLOCK_BYTES as u32;
        }
        (inline_height, None)
    }

    /// Seals the open stripe at the smallest height that holds it.
    fn seal(&self, st: &mut WriterState) {
        self.seal_for(st, false)
    }

    pub(super) fn seal_for(&self, st: &mut WriterState, for_sync: bool) {
        let Some(open) = st.open.take() else { return };
        if !open.has_content() {
            // Nothing to write: give the place back (the cursor has not moved).
            if open.new_segment {
                // Keep the segment; its header goes out with the next stripe placed in it.
                st.open = Some(open);
            }
            return;
        }
        let k = self.array.k();
        let per_chunk = open.buf.len().div_ceil(k);
        let (height, placement) = self.plan_seal(&open, Layout::chunk_height_for(per_chunk) as u32);
        // A tail lies in data shard 0's body (docs/format.md, "Records that continue in the
        // next stripe").
        let height = height.max(Layout::chunk_height_for(open.tail_bytes() as usize) as u32);
        debug_assert!(height <= open.max_height);
        self.push_sealed(
            st,
            SealedStripe {
                stripe: open,
                height,
                placement,
                for_sync,
                continues: false,
            },
        );
    }

    /// Hands a sealed stripe to the flusher: the cursor moves past it, and its buffer serves
    /// reads of its records until they are on disk.
    fn push_sealed(&self, st: &mut WriterState, s: SealedStripe) {
        let o = &s.stripe;
        st.cursor = Some(Cursor {
            segment: o.segment.clone(),
            offset: o.offset + s.height,
            ordinal: o.ordinal + 1,
        });
        st.pending.insert(o.seq, o.buf.clone());
        *st.unflushed_segments.entry(o.segment.id).or_default() += 1;
        st.sealed_seq = st.sealed_seq.max(o.seq);
        st.sealed.push_back(s);
        self.work_cv.notify_all();
    }

    /// Whether a write of one record of `total` bytes (padded, name stored) that does not
    /// fit the open stripe continues in the next stripe instead (format version 5; the
    /// rules of docs/format.md, "Records that continue in the next stripe").
    fn may_continue(&self, open: &OpenStripe, total: usize) -> bool {
        let (c, s) = (self.array.chunk_size(), self.array.segment_size());
        let capacity = self.stripe_capacity(open.max_height);
        let room = capacity.saturating_sub(open.buf.len());
        // The next place of the segment must take the tail in data shard 0's body.
        let next = open.offset as usize + open.max_height as usize;
        self.array.continues_records()
            && !open.records.is_empty()
            && open.packer.as_ref().is_none_or(|p| p.placed() == 0)
            && room >= capacity / 16
            && total > room
            && total - room <= c - CHUNK_HEADER_SIZE_BYTES
            && next + Layout::chunk_height_for(total - room) <= s
    }

    /// Seals the open stripe at its full height, its last record (`rec`, just placed whole
    /// in its buffer) continuing in the next stripe, and opens that stripe with the record's
    /// tail at its start.
    fn seal_continuing(&self, st: &mut WriterState) {
        let Some(mut open) = st.open.take() else {
            return;
        };
        let capacity = self.stripe_capacity(open.max_height);
        let rec = open.records.last().expect("the continued record");
        // The record's own bytes past the data space (its padding is not part of it).
        let tail = &open.buf[capacity..(rec.offset + rec.len) as usize];
        let tail_bytes = tail.len() as u32;
        let mut buf = Vec::with_capacity(capacity);
        buf.extend_from_slice(tail);
        buf.resize(tail.len().next_multiple_of(8), 0);
        let lsn = rec.lsn;
        let carried = Carried {
            rec: *rec,
            head_buf: open.buf.clone(),
            head_seq: open.seq,
            head_offset: open.offset,
            head_height: open.max_height,
            head_ordinal: open.ordinal,
            tail_bytes,
        };
        open.packer = None;
        let segment = open.segment.clone();
        let height = open.max_height;
        self.push_sealed(
            st,
            SealedStripe {
                stripe: open,
                height,
                placement: None,
                for_sync: false,
                continues: true,
            },
        );
        // The next place of the segment (may_continue checked that it takes the tail).
        let c = st.cursor.as_ref().expect("cursor set above");
        let max_height = crate::log::stripe::place_height(&self.array, c.offset);
        st.open = Some(OpenStripe {
            segment,
            new_segment: false,
            offset: c.offset,
            ordinal: c.ordinal,
            max_height,
            buf: Arc::new(buf),
            seq: {
                st.next_stripe_seq += 1;
                st.next_stripe_seq
            },
            first_lsn: lsn,
            last_lsn: lsn,
            records: Vec::new(),
            packer: None,
            prev_table: None,
            carried: Some(carried),
        });
        // A sync waiting for the record needs both stripes flushed: the journal never holds
        // a record split across stripes.
        st.force_stripes_lsn = st.force_stripes_lsn.max(lsn);
        self.counters
            .records_continued
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Appends a batch of mutations atomically (one stripe). Returns the last LSN. On a full
    /// array it waits for the cleaner while the cleaner still frees space.
    pub(crate) fn append(&self, muts: &[Mutation<'_>]) -> Result<u64> {
        self.check_alive()?;
        if self.array.read_only {
            return Err(Error::ReadOnly);
        }
        let mut total = 0usize;
        for m in muts {
            let (table, key, value_len) = match m {
                Mutation::Put { table, key, value } | Mutation::Moved { table, key, value } => {
                    (*table, *key, value.len())
                }
                Mutation::Delete { table, key } => (*table, *key, 0),
            };
            crate::validate_name_key(table, key)?;
            // A new write names its table without control characters (as a typed table's
            // name): a name that moves the terminal or breaks a line would reach every
            // listing of the tables. Records already in the log keep theirs.
            if matches!(m, Mutation::Put { .. }) && table.chars().any(char::is_control) {
                return Err(Error::BadTableName {
                    name: table.to_string(),
                    max: crate::MAX_TABLE_NAME_BYTES,
                });
            }
            total += log_record::encoded_len_padded(table.len(), key.len(), value_len);
        }
        let limit = self.array.max_stripe_payload();
        if total > limit {
            return Err(Error::ValueTooLarge {
                record_bytes: total,
                limit_bytes: limit,
            });
        }
        if muts.is_empty() {
            return Ok(self.lock_state().next_lsn - 1);
        }
        let (mut waited, mut empty) = (0, 0);
        loop {
            match self.append_once(muts, total) {
                Err(Error::NoSpace(why)) if waited < crate::space::MAX_SPACE_WAITS => {
                    // The cleaner may free space: wake it and wait for a cycle; give up when
                    // there is no cleaner, or several cycles in a row freed nothing.
                    match self.cleaner.wait_for_pass() {
                        None => {
                            self.check_alive()?;
                            return Err(Error::NoSpace(why));
                        }
                        Some(true) => empty = 0,
                        Some(false) => {
                            empty += 1;
                            if empty >= crate::space::MAX_EMPTY_CYCLES {
                                return Err(Error::NoSpace(why));
                            }
                        }
                    }
                    waited += 1;
                }
                r => return r,
            }
        }
    }

    /// Waits while backpressure or a checkpoint holds appends; fails on a latched error or
    /// at close; starts writing if this is the session's first write.
    fn admit<'a>(
        &'a self,
        mut st: std::sync::MutexGuard<'a, WriterState>,
        foreground: bool,
    ) -> Result<std::sync::MutexGuard<'a, WriterState>> {
        // Backpressure: bound the memory held by stripes waiting for the flusher. And while
        // the cleaner works on an array out of room, it alone writes: foreground appends
        // would fill the segments it takes from the reserve.
        while (st.paused
            || st.sealed.len() >= 2 * self.max_batch_stripes
            || (foreground && st.cleaner_exclusive))
            && st.error.is_none()
            && !st.closing
            && self.poisoned.get().is_none()
        {
            st = self.durable_cv.waited(st);
        }
        self.check_alive()?;
        if let Some(e) = &st.error {
            return Err(Error::PreviousIo(e.clone()));
        }
        if st.closing {
            return Err(Error::Closed);
        }
        if !st.writing_started {
            self.start_writing(&mut st)?;
        }
        Ok(st)
    }

    /// Makes the open stripe able to take `muts` (`total` bytes inline). A stripe that
    /// places values on device blocks is sealed when they no longer fit with their values
    /// placed; a batch that fits an empty stripe only inline makes that stripe an inline one.
    /// Returns true when the one record of `muts` does not fit and continues in the next
    /// stripe instead ([`Shared::may_continue`]).
    fn make_room(
        &self,
        st: &mut WriterState,
        muts: &[Mutation<'_>],
        total: usize,
        room: Room,
    ) -> Result<bool> {
        loop {
            if st.open.is_none() {
                self.open_stripe(st, room)?;
            }
            let capacity = {
                let open = st.open.as_ref().expect("opened");
                self.stripe_capacity(open.max_height)
            };
            let open = st.open.as_mut().expect("opened");
            let inline_fits = open.buf.len() + total <= capacity;
            let fmt = self.array.record_format();
            let planned = plan_fits(fmt, open, muts);
            if inline_fits && (planned || open.records.is_empty()) {
                if !planned {
                    open.packer = None;
                }
                return Ok(false);
            }
            if muts.len() == 1 && self.may_continue(open, total) {
                open.packer = None;
                return Ok(true);
            }
            if !open.has_content() {
                // The tail of this segment is too short for the batch: skip to a new segment.
                // The cursor stays, at the segment's end, so that a checkpoint taken before
                // the next segment exists still resumes where the log really goes on.
                let segment_end = self.array.segment_size() as u32;
                if let Some(c) = st.cursor.as_mut() {
                    c.offset = segment_end;
                }
                st.open = None;
                continue;
            }
            self.seal(st);
        }
    }

    fn append_once(&self, muts: &[Mutation<'_>], total: usize) -> Result<u64> {
        let mut st = self.admit(self.lock_state(), true)?;
        // Deletes, and the backup state (a raised horizon is what lets the cleaner reclaim
        // history), may dip into the reserve.
        let room = if muts.iter().all(|m| match m {
            Mutation::Delete { .. } => true,
            Mutation::Put { table, .. } => *table == crate::space::BACKUP_TABLE,
            Mutation::Moved { .. } => false,
        }) {
            Room::Deletes
        } else {
            Room::Foreground
        };
        let continues = self.make_room(&mut st, muts, total, room)?;
        let mut index = self.index.write_locked();
        Ok(self.place(&mut st, &mut index, muts, continues))
    }

    /// Moves live records forward (the cleaner): each is appended again, as a put, only if
    /// the index still names its LSN; the others were overwritten or deleted meanwhile.
    /// Returns how many were moved.
    pub(crate) fn relocate(&self, recs: &[Relocation]) -> Result<usize> {
        if self.array.read_only {
            return Err(Error::ReadOnly);
        }
        let mut moved = 0;
        let mut st = self.lock_state();
        for r in recs {
            st = self.admit(st, false)?;
            let still_live = self
                .index
                .read_locked()
                .get(&r.table, &r.key)
                .is_some_and(|e| e.lsn == r.lsn);
            if !still_live {
                continue;
            }
            let total = log_record::encoded_len_padded(r.table.len(), r.key.len(), r.value.len());
            let m = Mutation::Moved {
                table: &r.table,
                key: &r.key,
                value: &r.value,
            };
            let continues =
                self.make_room(&mut st, std::slice::from_ref(&m), total, Room::Cleaner)?;
            let mut index = self.index.write_locked();
            self.place(&mut st, &mut index, std::slice::from_ref(&m), continues);
            moved += 1;
        }
        Ok(moved)
    }

    /// Writes the records into the open stripe (which has room, or, with `continues`, takes
    /// the head of the one record and continues it in the next stripe) and points the index
    /// at them.
    fn place(
        &self,
        st: &mut WriterState,
        index: &mut Index,
        muts: &[Mutation<'_>],
        continues: bool,
    ) -> u64 {
        let open = st.open.as_mut().expect("opened");
        for m in muts {
            let lsn = st.next_lsn;
            st.next_lsn += 1;
            let (kind, table, key, value) = match m {
                Mutation::Put { table, key, value } => {
                    (RecordKind::Put, *table, *key, Some(*value))
                }
                Mutation::Moved { table, key, value } => {
                    (RecordKind::Moved, *table, *key, Some(*value))
                }
                Mutation::Delete { table, key } => (RecordKind::Delete, *table, *key, None),
            };
            let offset = open.buf.len();
            let v = value.unwrap_or(&[]);
            let fmt = self.array.record_format();
            let out = Arc::make_mut(&mut open.buf);
            let same_table = fmt == RecordFormat::Compact
                && open.prev_table.is_some_and(|(at, len)| {
                    out[at as usize..at as usize + len as usize] == *table.as_bytes()
                });
            let (crc, len) = log_record::encode_in(fmt, lsn, kind, table, key, v, same_table, out);
            // A second pass over the value: crc32c_combine would save it, but costs far more
            // than a pass over a few KiB with the CPU's crc instruction.
            let value_crc = if open.packer.is_some() && placeable(v.len()) {
                crc32c::crc32c(v)
            } else {
                0
            };
            let table_at = match open.prev_table {
                Some((at, _)) if same_table => at,
                _ => {
                    let at = (offset + fmt.header_len()) as u32;
                    open.prev_table = Some((at, table.len() as u8));
                    at
                }
            };
            if !open.has_content() {
                open.first_lsn = lsn;
            }
            open.last_lsn = lsn;
            match value {
                Some(v) => index.put(
                    table,
                    key,
                    IndexEntry {
                        lsn,
                        value_len: v.len() as u32,
                        place: Place::Pending {
                            stripe_seq: open.seq,
                            record_offset: offset as u32,
                            segment_id: open.segment.id,
                        },
                    },
                ),
                None => index.delete(table, key),
            }
            let rec = PendingRecord {
                lsn,
                offset: offset as u32,
                len: len as u32,
                crc,
                value_crc,
                is_put: value.is_some(),
                fmt,
                table_stored: !same_table,
                table_at,
                table_len: table.len() as u8,
                key_len: key.len() as u16,
            };
            // make_room checked that the records fit the plan; should one not, the stripe
            // keeps its values inline (seal plans it again from its records).
            if let Some(p) = open.packer.as_mut() {
                if rec.pack(p).is_none() {
                    debug_assert!(false, "a record make_room admitted does not fit the plan");
                    open.packer = None;
                }
            }
            open.records.push(rec);
        }
        self.counters
            .records_written
            .fetch_add(muts.len() as u64, Ordering::Relaxed);
        let last = open.last_lsn;
        let segment = open.segment.id;
        // make_room's estimate stores the table name; a record that left it out may fit.
        let continues = continues && open.buf.len() > self.stripe_capacity(open.max_height);
        if continues {
            self.seal_continuing(st);
        } else if open.buf.len() + 64 > self.stripe_capacity(open.max_height) {
            self.seal(st);
        }
        st.segment_max_lsn.insert(segment, last);
        last
    }

    /// Starts this session's writing at the end of a writable open when recovery left the
    /// log something to repair (chunks or segment headers a crash or a device left missing):
    /// records recovery shows must not depend on chunks that may fail before the first
    /// write. An open with nothing to repair writes nothing (a command refused for bad input
    /// changes nothing).
    ///
    /// Records replayed from the sync journal are written into the log here too, and flushed
    /// in stripes before the open returns: an entry that was never acknowledged may have
    /// reached one member only, and what recovery shows must survive the loss of any m.
    pub(crate) fn start_if_recovery_left_repairs(&self) -> Result<()> {
        let mut st = self.lock_state();
        let repairs = &st.pending_repairs;
        let replayed = st.journal_replay.as_ref().map(|j| j.last_lsn);
        if !st.writing_started
            && !self.array.read_only
            && (!repairs.stripes.is_empty() || !repairs.headers.is_empty() || replayed.is_some())
        {
            self.start_writing(&mut st)?;
        }
        drop(st);
        if let Some(lsn) = replayed.filter(|_| !self.array.read_only) {
            self.wait_in_stripes(lsn)?;
        }
        Ok(())
    }

    /// Waits until every record up to `lsn` is in flushed stripes, not only in the journal
    /// (`force_stripes_lsn`, set at open, keeps the flusher from journaling them).
    fn wait_in_stripes(&self, lsn: u64) -> Result<()> {
        let mut st = self.lock_state();
        st.sync_wanted_lsn = st.sync_wanted_lsn.max(lsn);
        self.work_cv.notify_all();
        self.wait_for(st, |st| st.durable_lsn >= lsn).map(drop)
    }

    /// Waits on the flusher until `done` holds; fails on a latched write error, a panicked
    /// worker, or a flusher that has stopped.
    fn wait_for<'a>(
        &'a self,
        mut st: std::sync::MutexGuard<'a, WriterState>,
        done: impl Fn(&WriterState) -> bool,
    ) -> Result<std::sync::MutexGuard<'a, WriterState>> {
        loop {
            if done(&st) {
                return Ok(st);
            }
            self.check_alive()?;
            if let Some(e) = &st.error {
                return Err(Error::PreviousIo(e.clone()));
            }
            if st.flusher_done {
                return Err(Error::Closed);
            }
            st = self.durable_cv.waited(st);
        }
    }

    /// Starts this session's writing if it has not started (a read-only engine never does):
    /// nothing is written in a session before its start.
    pub(crate) fn ensure_writing_started(&self) -> Result<()> {
        let mut st = self.lock_state();
        if !st.writing_started && !self.array.read_only {
            self.start_writing(&mut st)?;
        }
        Ok(())
    }

    /// Tells the flusher to finish what is sealed and stop.
    pub(crate) fn begin_close(&self) {
        let mut st = self.lock_state();
        st.closing = true;
        self.work_cv.notify_all();
    }

    /// Holds foreground appends back for as long as the guard lives (the cleaner moving
    /// records on an array out of room); relocations and deletes go on.
    pub(crate) fn exclusive_appends(&self) -> ExclusiveAppends<'_> {
        self.lock_state().cleaner_exclusive = true;
        ExclusiveAppends(self)
    }

    /// Runs `f` with appends held back and everything appended so far durable and on disk in
    /// the index (a consistent image of the index at the durable LSN); appends go on after it.
    /// A read-only engine is always quiet.
    pub(crate) fn quiesced<T>(&self, f: impl FnOnce(&WriterState) -> T) -> Result<T> {
        let mut st = self.lock_state();
        if self.array.read_only {
            return Ok(f(&st));
        }
        while st.paused {
            // Another caller is taking its image.
            st = self.durable_cv.waited(st);
        }
        st.paused = true;
        st.sync_wanted_lsn = st.sync_wanted_lsn.max(st.next_lsn - 1);
        self.work_cv.notify_all();
        let result = loop {
            if let Err(e) = self.check_alive() {
                break Err(e);
            }
            if let Some(e) = &st.error {
                break Err(Error::PreviousIo(e.clone()));
            }
            if st.is_quiet() {
                break Ok(f(&st));
            }
            if st.flusher_done {
                break Err(Error::Closed);
            }
            st = self.durable_cv.waited(st);
        };
        st.paused = false;
        self.durable_cv.notify_all();
        result
    }

    /// The first write of a session: persist a new epoch, so that this session's stripes are
    /// told apart from anything an earlier session left, invalidate the segments beyond
    /// the end of the log before any of their device segments is reused, and the place in
    /// the open segment where the log ends (what the open left out there stays out).
    pub(crate) fn start_writing(&self, st: &mut WriterState) -> Result<()> {
        self.array.bump_epoch()?;
        if let Some(c) = &st.cursor {
            crate::log::repair::invalidate_log_end(&self.array, &c.segment, c.offset)?;
        }
        let discard = std::mem::take(&mut st.pending_discard);
        crate::log::repair::invalidate_segments(&self.array, &discard)?;
        for seg in &discard {
            for (slot, dseg) in &seg.members {
                st.free.release(*slot, *dseg);
            }
        }
        // What a crash left unwritten in the replayed log is made whole (and flushed) before
        // anything new is logged after it.
        crate::log::repair::repair_log(&self.array, &std::mem::take(&mut st.pending_repairs));
        // The repairs are on disk: from now on writes go to the open segment or new ones.
        st.writing_started = true;
        self.refresh_sync_floor(st);
        self.fold_journal_replay(st)
    }

    /// Writes the records recovery replayed from the sync journal into the log, with their
    /// LSNs and kinds, one journal entry (whole batches) at a time, ahead of anything new.
    /// They stay acknowledged through the journal until their stripes are flushed; nothing
    /// is journaled before that (`force_stripes_lsn`).
    fn fold_journal_replay(&self, st: &mut WriterState) -> Result<()> {
        let Some(j) = st.journal_replay.take() else {
            return Ok(());
        };
        let end = st.next_lsn;
        st.next_lsn = j.first_lsn;
        let fmt = self.array.record_format();
        for range in &j.entries {
            let bytes = &j.buf[range.clone()];
            let mut views = Vec::new();
            let mut records = log_record::StripeRecords::plain(fmt, st.next_lsn, bytes);
            while let Some(r) = records.next() {
                let r = r.map_err(|e| Error::Corrupt {
                    device: "sync journal".into(),
                    offset_bytes: (range.start + records.position()) as u64,
                    what: "record replayed from the journal",
                    source: e,
                })?;
                views.push(r.rec);
            }
            let muts: Vec<Mutation<'_>> = views
                .iter()
                .map(|v| match v.kind {
                    RecordKind::Put => Mutation::Put {
                        table: v.table,
                        key: v.key,
                        value: v.value,
                    },
                    RecordKind::Moved => Mutation::Moved {
                        table: v.table,
                        key: v.key,
                        value: v.value,
                    },
                    RecordKind::Delete => Mutation::Delete {
                        table: v.table,
                        key: v.key,
                    },
                })
                .collect();
            let continues = self.make_room(st, &muts, bytes.len(), Room::Deletes)?;
            let mut index = self.index.write_locked();
            self.place(st, &mut index, &muts, continues);
        }
        debug_assert_eq!(st.next_lsn, end);
        st.next_lsn = end;
        st.pending.remove(&crate::log::state::JOURNAL_REPLAY_SEQ);
        Ok(())
    }

    /// Raises the array's sync floor to the oldest segment a write can still land in: the
    /// segment being filled (or the next one), or an older one holding unflushed stripes.
    /// A device failing from now on misses nothing below it.
    pub(crate) fn refresh_sync_floor(&self, st: &WriterState) {
        if !st.writing_started {
            return; // the open's floor also covers the repairs of the session's first write
        }
        let mut floor = st
            .cursor
            .as_ref()
            .map_or(st.next_segment_id, |c| c.segment.id);
        if let Some((&oldest, _)) = st.unflushed_segments.first_key_value() {
            floor = floor.min(oldest);
        }
        self.array.set_sync_floor(floor);
    }

    /// Waits until everything appended so far is durable.
    pub(crate) fn sync_all(&self) -> Result<u64> {
        if self.array.read_only {
            return Ok(self.lock_state().acked_lsn());
        }
        let lsn = self.lock_state().next_lsn - 1;
        self.wait_durable(lsn)
    }

    /// [`Shared::sync_all`], and then waits until every stripe sealed so far is written and
    /// flushed. Scrub, rebuild and resync read the log up to the writer's cursor, which
    /// stripes sealed but not yet written already lie behind, so they need this: a sync
    /// alone does not promise it (a lone syncing caller is acknowledged through the journal
    /// while the stripe it sealed may still be in flight). Bounded: only the stripes sealed
    /// before the call are waited for, however fast writers seal new ones.
    pub(crate) fn sync_stripes(&self) -> Result<u64> {
        let acked = self.sync_all()?;
        if self.array.read_only {
            return Ok(acked);
        }
        let mut st = self.lock_state();
        // Stripes are sealed, written and flushed in the order of their sequence numbers.
        let target = st.sealed_seq;
        if st.flushed_seq >= target {
            return Ok(st.acked_lsn());
        }
        st.flush_wanted_seq = st.flush_wanted_seq.max(target);
        self.work_cv.notify_all();
        let st = self.wait_for(st, |st| st.flushed_seq >= target)?;
        Ok(st.acked_lsn())
    }

    /// Waits until every record up to `lsn` is durable.
    /// Waits until everything appended so far is in stripes written and flushed, not only
    /// acknowledged by the sync journal: the open stripe is sealed (short if need be) and
    /// no journal entry stands in for it.
    pub(crate) fn sync_into_stripes(&self) -> Result<u64> {
        let mut st = self.lock_state();
        let lsn = st.next_lsn - 1;
        if self.array.read_only || st.durable_lsn >= lsn {
            return Ok(st.acked_lsn());
        }
        st.force_stripes_lsn = st.force_stripes_lsn.max(lsn);
        st.sync_wanted_lsn = st.sync_wanted_lsn.max(lsn);
        self.work_cv.notify_all();
        let st = self.wait_for(st, |st| st.durable_lsn >= lsn)?;
        Ok(st.acked_lsn())
    }

    pub(crate) fn wait_durable(&self, lsn: u64) -> Result<u64> {
        let mut st = self.lock_state();
        if st.acked_lsn() >= lsn {
            return Ok(st.acked_lsn());
        }
        // Other writers already wait: the flusher takes them all as one group.
        let alone = st.sync_wanted_lsn <= st.acked_lsn();
        st.sync_wanted_lsn = st.sync_wanted_lsn.max(lsn);
        if let Some(job) = alone
            .then(|| self.journal_job_for_caller(&mut st))
            .flatten()
        {
            drop(st);
            self.journal_write(job, true);
            st = self.lock_state();
            if st.acked_lsn() >= lsn {
                return Ok(st.acked_lsn());
            }
        }
        self.work_cv.notify_all();
        let st = self.wait_for(st, |st| st.acked_lsn() >= lsn)?;
        Ok(st.acked_lsn())
    }

    pub(crate) fn pending_value(
        &self,
        stripe_seq: u64,
        record_offset: u32,
        value_len: u32,
    ) -> Option<Vec<u8>> {
        let fmt = self.array.record_format();
        let value_at = |buf: &[u8]| -> Option<Vec<u8>> {
            let o = record_offset as usize;
            let start = o + fmt.value_offset(buf.get(o..)?)?;
            buf.get(start..start + value_len as usize)
                .map(<[u8]>::to_vec)
        };
        let shared = {
            let st = self.lock_state();
            if let Some(open) = st.open.as_ref().filter(|o| o.seq == stripe_seq) {
                return value_at(&open.buf);
            }
            st.pending.get(&stripe_seq)?.clone()
        };
        value_at(&shared)
    }
}
