//! The writer: records go into an open stripe buffer; sealed stripes are encoded and written
//! by a flusher thread in batches (several stripes in flight), followed by one flush per
//! device; then the batch's records become durable and their waiters return (group commit).
//!
//! Invariants:
//! - A stripe is written once, at a place that held no live data (no write hole).
//! - `durable_lsn` only moves forward, and only after the flush that covers every stripe up
//!   to it has completed on at least `min_write_shards` devices of each of those stripes.
//! - After a failed write batch the writer latches the error: later commits fail with
//!   `Error::PreviousIo` until the array is reopened.
//! - Batches (and single records) live in one stripe, so they are all there or not at all.

use crate::error::{Error, Result};
use crate::format::*;
use crate::index::{Index, IndexEntry, Place, RecordLoc};
use crate::log::cursor::Cursor;
use crate::log::stripe::chunk_place;

use crate::log::state::{OpenStripe, PendingRecord, SealedStripe, WriterState};
use crate::segments::SegmentInfo;
use crate::shared::{Shared, Worker};
use crate::space::Room;

/// The most stripes one flush batch writes.
pub const MAX_IN_FLIGHT_STRIPES: usize = 64;
use ectable_devices::{AlignedBuf, IoOp};
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
            self.segments
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, seg.clone());
            st.cursor = Some(Cursor {
                segment: seg,
                offset: SEGMENT_HEADER_SIZE_BYTES as u32,
                ordinal: 0,
            });
            self.refresh_sync_floor(st);
        }
        let c = st.cursor.as_ref().expect("cursor set above");
        let max_height = (self.array.chunk_size() as u32).min(s - c.offset);
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
        });
        Ok(())
    }

    /// Seals the open stripe at the smallest height that holds it.
    fn seal(&self, st: &mut WriterState) {
        self.seal_for(st, false)
    }

    fn seal_for(&self, st: &mut WriterState, for_sync: bool) {
        let Some(open) = st.open.take() else { return };
        if open.records.is_empty() {
            // Nothing to write: give the place back (the cursor has not moved).
            if open.new_segment {
                // Keep the segment; its header goes out with the next stripe placed in it.
                st.open = Some(open);
            }
            return;
        }
        let k = self.array.k();
        let per_chunk = open.buf.len().div_ceil(k);
        let height = Layout::chunk_height_for(per_chunk) as u32;
        debug_assert!(height <= open.max_height);
        st.cursor = Some(Cursor {
            segment: open.segment.clone(),
            offset: open.offset + height,
            ordinal: open.ordinal + 1,
        });
        st.pending.insert(open.seq, open.buf.clone());
        *st.unflushed_segments.entry(open.segment.id).or_default() += 1;
        st.sealed.push_back(SealedStripe {
            stripe: open,
            height,
            for_sync,
        });
        self.work_cv.notify_all();
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
            st = self.durable_cv.wait(st).unwrap_or_else(|p| p.into_inner());
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

    /// Makes the open stripe able to take `total` more bytes.
    fn make_room(&self, st: &mut WriterState, total: usize, room: Room) -> Result<()> {
        loop {
            if st.open.is_none() {
                self.open_stripe(st, room)?;
            }
            let open = st.open.as_ref().expect("opened");
            if open.buf.len() + total <= self.stripe_capacity(open.max_height) {
                return Ok(());
            }
            if open.records.is_empty() {
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
        self.make_room(&mut st, total, room)?;
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        Ok(self.place(&mut st, &mut index, muts))
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
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&r.table, &r.key)
                .is_some_and(|e| e.lsn == r.lsn);
            if !still_live {
                continue;
            }
            let total = log_record::encoded_len_padded(r.table.len(), r.key.len(), r.value.len());
            self.make_room(&mut st, total, Room::Cleaner)?;
            let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
            let m = Mutation::Moved {
                table: &r.table,
                key: &r.key,
                value: &r.value,
            };
            self.place(&mut st, &mut index, std::slice::from_ref(&m));
            moved += 1;
        }
        Ok(moved)
    }

    /// Writes the records into the open stripe (which has room) and points the index at them.
    fn place(&self, st: &mut WriterState, index: &mut Index, muts: &[Mutation<'_>]) -> u64 {
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
            let (crc, len) = log_record::encode_parts(
                lsn,
                kind,
                table,
                key,
                value.unwrap_or(&[]),
                Arc::make_mut(&mut open.buf),
            );
            if open.records.is_empty() {
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
            open.records.push(PendingRecord {
                lsn,
                offset: offset as u32,
                len: len as u32,
                crc,
                is_put: value.is_some(),
                table_len: table.len() as u8,
                key_len: key.len() as u16,
            });
        }
        self.counters
            .records_written
            .fetch_add(muts.len() as u64, Ordering::Relaxed);
        let last = open.last_lsn;
        let segment = open.segment.id;
        if open.buf.len() + 64 > self.stripe_capacity(open.max_height) {
            self.seal(st);
        }
        st.segment_max_lsn.insert(segment, last);
        last
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
            st = self.durable_cv.wait(st).unwrap_or_else(|p| p.into_inner());
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
            st = self.durable_cv.wait(st).unwrap_or_else(|p| p.into_inner());
        };
        st.paused = false;
        self.durable_cv.notify_all();
        result
    }

    /// The first write of a session: persist a new epoch, so that this session's stripes are
    /// told apart from anything an earlier session left, and invalidate the segments beyond
    /// the end of the log before any of their device segments is reused.
    pub(crate) fn start_writing(&self, st: &mut WriterState) -> Result<()> {
        self.array.bump_epoch()?;
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
            return Ok(self.lock_state().durable_lsn);
        }
        let lsn = self.lock_state().next_lsn - 1;
        self.wait_durable(lsn)
    }

    /// Waits until every record up to `lsn` is durable.
    pub(crate) fn wait_durable(&self, lsn: u64) -> Result<u64> {
        let mut st = self.lock_state();
        if st.durable_lsn >= lsn {
            return Ok(st.durable_lsn);
        }
        st.sync_wanted_lsn = st.sync_wanted_lsn.max(lsn);
        self.work_cv.notify_all();
        loop {
            if st.durable_lsn >= lsn {
                return Ok(st.durable_lsn);
            }
            self.check_alive()?;
            if let Some(e) = &st.error {
                return Err(Error::PreviousIo(e.clone()));
            }
            if st.flusher_done {
                return Err(Error::Closed);
            }
            st = self.durable_cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The flusher thread's loop: encode and submit batch N+1 while batch N's writes are in
    /// flight; flush when a writer waits for durability, when much has been written since
    /// the last flush, or at close.
    pub(crate) fn flusher(self: Arc<Self>) {
        let mut inflight: Option<InFlight> = None;
        let mut unflushed = Unflushed::default();
        loop {
            // 1. Take the next batch of sealed stripes, if any is ready.
            let mut next: Option<(Vec<SealedStripe>, u64)> = None;
            let mut exit = false;
            {
                let mut st = self.lock_state();
                loop {
                    if st.error.is_some() {
                        exit = true;
                        break;
                    }
                    let open_has_records = st.open.as_ref().is_some_and(|o| !o.records.is_empty());
                    let wanted = st.sync_wanted_lsn > st.durable_lsn || st.closing;
                    if st.sealed.is_empty() && open_has_records && wanted && inflight.is_none() {
                        // Group commit: seal for a sync only when nothing is in flight, so
                        // that writers arriving meanwhile share the next stripe and flush.
                        self.seal_for(&mut st, true);
                    }
                    if !st.sealed.is_empty() {
                        self.test_panic_point(Worker::Flusher);
                        let n = st.sealed.len().min(self.max_batch_stripes);
                        next = Some((st.sealed.drain(..n).collect(), st.durable_lsn));
                        break;
                    }
                    if inflight.is_some() || (wanted && !unflushed.is_empty()) {
                        break;
                    }
                    if st.closing {
                        exit = true;
                        break;
                    }
                    st = self.work_cv.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                if !st.sealed.is_empty() || next.is_some() {
                    // Space in the sealed queue: wake writers held by backpressure.
                    self.durable_cv.notify_all();
                }
            }
            if exit {
                if let Some(prev) = inflight.take() {
                    let _ = prev.batch.wait();
                }
                let mut st = self.lock_state();
                st.flusher_done = true;
                self.durable_cv.notify_all();
                return;
            }
            // 2. Encode and submit it; its writes overlap with the previous batch's.
            let submitted = match next {
                Some((stripes, committed_lsn)) => {
                    match self.encode_batch(&stripes, committed_lsn) {
                        Ok((ops, meta)) => Some(InFlight {
                            batch: self.array.io.submit(ops),
                            meta,
                            stripes,
                        }),
                        Err(e) => {
                            self.latch(&e);
                            None
                        }
                    }
                }
                None => None,
            };
            // 3. Complete the previous batch.
            let mut result = Ok(());
            if let Some(prev) = inflight.take() {
                result = self.complete_batch(prev, &mut unflushed);
            }
            inflight = submitted;
            self.array.persist_if_dirty();
            // 4. Flush when someone waits, when enough is unflushed, or at close.
            if result.is_ok() && !unflushed.is_empty() {
                let must = {
                    let st = self.lock_state();
                    st.sync_wanted_lsn > st.durable_lsn
                        || (st.closing && st.sealed.is_empty() && inflight.is_none())
                };
                if must || unflushed.bytes >= FLUSH_EVERY_BYTES {
                    result = self.flush(&mut unflushed);
                }
            }
            if let Err(e) = result {
                self.latch(&e);
            }
        }
    }

    fn latch(&self, e: &Error) {
        tracing::error!("write failed: {e}");
        let mut st = self.lock_state();
        st.error.get_or_insert_with(|| e.to_string());
        self.durable_cv.notify_all();
    }

    /// Waits for a submitted batch, records which chunks were written, and points the index
    /// at the records (they are readable once their writes completed).
    fn complete_batch(&self, prev: InFlight, unflushed: &mut Unflushed) -> Result<()> {
        let array = &self.array;
        let mut written: Vec<Vec<u32>> = vec![Vec::new(); prev.stripes.len()];
        for (c, (si, slot)) in prev.batch.wait().into_iter().zip(prev.meta) {
            array.observe(slot as usize, c.op.kind, c.latency, c.result.as_ref().err());
            // A failed write needs nothing more here: observe() failed its device.
            if c.result.is_ok() {
                if si != usize::MAX {
                    written[si].push(slot);
                }
                if !unflushed.devices.contains(&c.op.device_index) {
                    unflushed.devices.push(c.op.device_index);
                }
                unflushed.bytes += c.op.buf.len() as u64;
                self.return_chunk_buf(c.op.buf);
            }
        }
        let w = array.w();
        for (si, slots) in written.into_iter().enumerate() {
            let o = &prev.stripes[si].stripe;
            if slots.len() < w {
                self.counters
                    .degraded_writes
                    .fetch_add(1, Ordering::Relaxed);
            }
            if slots.len() < self.min_write_shards {
                return Err(Error::DataLost {
                    segment_id: o.segment.id,
                    offset_in_segment: o.offset,
                    good: slots.len(),
                    width: w,
                    needed: self.min_write_shards,
                    detail: "too few chunks of the stripe could be written".into(),
                });
            }
            unflushed.stripes.push((o.segment.id, o.offset, slots));
            unflushed.last_lsn = unflushed.last_lsn.max(o.last_lsn);
        }
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        for s in &prev.stripes {
            let o = &s.stripe;
            let recs = &o.records;
            // Runs of records of one table share one table lookup.
            let mut i = 0;
            while i < recs.len() {
                let table = recs[i].table(&o.buf);
                let mut j = i;
                let mut map = std::str::from_utf8(table)
                    .ok()
                    .and_then(|t| index.tables.get_mut(t));
                while j < recs.len() && recs[j].table(&o.buf) == table {
                    let r = &recs[j];
                    j += 1;
                    let Some(map) = map.as_deref_mut() else {
                        continue;
                    };
                    if !r.is_put {
                        continue;
                    }
                    if let Some(e) = map.get_mut(r.key(&o.buf)) {
                        if e.lsn == r.lsn {
                            e.place = Place::Disk(RecordLoc {
                                segment_id: o.segment.id,
                                offset_in_segment: o.offset,
                                height_bytes: s.height,
                                ordinal: o.ordinal,
                                record_offset: r.offset,
                                record_len: r.len,
                                crc: r.crc,
                            });
                        }
                    }
                }
                i = j;
            }
        }
        drop(index);
        // Only now, with the index pointing at the disk, may the memory copies go.
        let mut st = self.lock_state();
        for s in &prev.stripes {
            st.pending.remove(&s.stripe.seq);
        }
        Ok(())
    }

    /// The value of a record not yet on disk: copied from the open stripe or a sealed one.
    /// None if the stripe has since been settled (the caller reads the index again).
    pub(crate) fn pending_value(
        &self,
        stripe_seq: u64,
        record_offset: u32,
        value_len: u32,
    ) -> Option<Vec<u8>> {
        let value_at = |buf: &[u8]| -> Option<Vec<u8>> {
            let o = record_offset as usize;
            let header = buf.get(o..o + log_record::RECORD_HEADER_BYTES)?;
            let start = o
                + log_record::RECORD_HEADER_BYTES
                + header[14] as usize
                + get_u16(header, 12) as usize;
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

    /// Flushes every device written since the last flush (all those writes have completed,
    /// so the flush covers them) and moves `durable_lsn`.
    fn flush(&self, unflushed: &mut Unflushed) -> Result<()> {
        let array = &self.array;
        let mut failed_slots: Vec<u32> = Vec::new();
        let ops = unflushed.devices.iter().map(|&d| IoOp::flush(d)).collect();
        for c in array.io.execute(ops) {
            if let Some(slot) = array.slot_of_device(c.op.device_index) {
                array.observe(slot, c.op.kind, c.latency, c.result.as_ref().err());
                if c.result.is_err() {
                    failed_slots.push(slot as u32);
                }
            }
        }
        self.counters.flush_batches.fetch_add(1, Ordering::Relaxed);
        for (segment_id, offset, slots) in &unflushed.stripes {
            let durable = slots.iter().filter(|s| !failed_slots.contains(s)).count();
            if durable < self.min_write_shards {
                return Err(Error::DataLost {
                    segment_id: *segment_id,
                    offset_in_segment: *offset,
                    good: durable,
                    width: array.w(),
                    needed: self.min_write_shards,
                    detail: "too few chunks of the stripe were flushed".into(),
                });
            }
        }
        let last = unflushed.last_lsn;
        let flushed = std::mem::take(&mut unflushed.stripes);
        *unflushed = Unflushed::default();
        let mut st = self.lock_state();
        for (segment_id, ..) in flushed {
            if let std::collections::btree_map::Entry::Occupied(mut e) =
                st.unflushed_segments.entry(segment_id)
            {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
        self.refresh_sync_floor(&st);
        st.durable_lsn = st.durable_lsn.max(last);
        self.durable_cv.notify_all();
        Ok(())
    }

    /// `count` buffers of `height` bytes, from the pool when possible. Their contents are
    /// stale: the encoder overwrites every byte (header, data and zero tail, parity).
    fn take_chunk_bufs(&self, count: usize, height: usize) -> Vec<AlignedBuf> {
        let mut pool = self.chunk_pool.lock().unwrap_or_else(|p| p.into_inner());
        (0..count)
            .map(|_| {
                let mut b = pool
                    .pop()
                    .unwrap_or_else(|| AlignedBuf::new(self.array.chunk_size()));
                b.set_len(height);
                b
            })
            .collect()
    }

    fn return_chunk_buf(&self, buf: AlignedBuf) {
        if buf.capacity() == self.array.chunk_size() {
            let mut pool = self.chunk_pool.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < 4 * self.max_batch_stripes * self.array.w() {
                pool.push(buf);
            }
        }
    }

    /// Encodes a batch of sealed stripes into chunk writes (and segment-header writes).
    /// Returns the operations and, per operation, (stripe index, slot); `usize::MAX` marks
    /// segment headers.
    pub(crate) fn encode_batch(
        &self,
        batch: &[SealedStripe],
        committed_lsn: u64,
    ) -> Result<EncodedBatch> {
        let array = &self.array;
        let (k, w) = (array.k(), array.w());
        let mut ops = Vec::new();
        // (stripe index, slot) per op; usize::MAX marks segment-header writes.
        let mut meta: Vec<(usize, u32)> = Vec::new();
        for (si, s) in batch.iter().enumerate() {
            let o = &s.stripe;
            let h = s.height as usize;
            let body_len = h - CHUNK_HEADER_SIZE_BYTES;
            let mut bufs: Vec<AlignedBuf> = self.take_chunk_bufs(w, h);
            for (j, buf) in bufs.iter_mut().enumerate().take(k) {
                let from = (j * body_len).min(o.buf.len());
                let to = ((j + 1) * body_len).min(o.buf.len());
                let body = &mut buf[CHUNK_HEADER_SIZE_BYTES..];
                body[..to - from].copy_from_slice(&o.buf[from..to]);
                // A reused buffer holds an older chunk: the unused tail must be zero.
                body[to - from..].fill(0);
            }
            {
                let (data, parity) = bufs.split_at_mut(k);
                let d: Vec<&[u8]> = data.iter().map(|b| &b[CHUNK_HEADER_SIZE_BYTES..]).collect();
                let mut p: Vec<&mut [u8]> = parity
                    .iter_mut()
                    .map(|b| &mut b[CHUNK_HEADER_SIZE_BYTES..])
                    .collect();
                array.codec.encode(&d, &mut p)?;
            }
            let body_crcs: Vec<u32> = bufs
                .iter()
                .map(|b| crc32c::crc32c(&b[CHUNK_HEADER_SIZE_BYTES..]))
                .collect();
            let places: Vec<(u32, Option<(usize, u64)>)> = (0..w)
                .map(|j| chunk_place(array, &o.segment, o.offset, o.ordinal, j))
                .collect();
            let present_mask = places
                .iter()
                .enumerate()
                .filter(|(_, (_, p))| p.is_some())
                .fold(0u64, |m, (j, _)| m | (1u64 << j));
            // One epoch for the whole stripe: every chunk must carry the same stripe key, or
            // the chunks stop agreeing and the stripe is unreadable. A superblock write (a
            // checkpoint, a device state change) can move the epoch while this loop runs.
            let write_epoch = array.write_epoch.load(Ordering::SeqCst);
            for (j, mut buf) in bufs.into_iter().enumerate() {
                let header = ChunkHeader {
                    array_uuid: array.sb.array_uuid,
                    segment_id: o.segment.id,
                    write_epoch,
                    offset_in_segment_bytes: o.offset,
                    height_bytes: s.height,
                    ordinal: o.ordinal,
                    shard_index: j as u16,
                    width: w as u16,
                    data_shards: k as u16,
                    flags: if o.segment.kind == SegmentKind::Checkpoint {
                        chunk_header::FLAG_CHECKPOINT
                    } else {
                        0
                    },
                    payload_bytes: o.buf.len() as u32,
                    first_lsn: o.first_lsn,
                    last_lsn: o.last_lsn,
                    present_mask,
                    committed_lsn,
                    body_crcs: body_crcs.clone(),
                };
                header.encode_into(&mut buf[..CHUNK_HEADER_SIZE_BYTES]);
                if let (slot, Some((d, off))) = places[j] {
                    ops.push(IoOp::write(d, off, buf));
                    meta.push((si, slot));
                }
            }
            if o.new_segment {
                for (p, (slot, dseg)) in o.segment.members.iter().enumerate() {
                    let Some(d) = array.device_of_slot(*slot) else {
                        continue;
                    };
                    let h = SegmentHeader {
                        position: p as u16,
                        array_uuid: array.sb.array_uuid,
                        segment_id: o.segment.id,
                        write_epoch,
                        data_shards: k as u16,
                        kind: o.segment.kind,
                        members: o.segment.members.clone(),
                    };
                    let buf = AlignedBuf::from_slice(&h.encode());
                    ops.push(IoOp::write(d, array.device_segment_offset(*dseg), buf));
                    meta.push((usize::MAX, *slot));
                }
            }
            self.counters
                .stripes_written
                .fetch_add(1, Ordering::Relaxed);
            if s.for_sync {
                self.counters
                    .short_stripes_written
                    .fetch_add(1, Ordering::Relaxed);
            }
            self.counters
                .chunk_bytes_written
                .fetch_add((h * w) as u64, Ordering::Relaxed);
            self.counters
                .payload_bytes_written
                .fetch_add(o.buf.len() as u64, Ordering::Relaxed);
        }
        Ok((ops, meta))
    }
}

/// Write the unflushed data out at least this often, to bound what a crash can take.
const FLUSH_EVERY_BYTES: u64 = 256 << 20;

/// A batch's writes, and per write (stripe index, slot); `usize::MAX` marks segment headers.
pub(crate) type EncodedBatch = (Vec<IoOp>, Vec<(usize, u32)>);

/// A submitted batch whose writes may still be in flight.
struct InFlight {
    batch: ectable_devices::IoBatch,
    meta: Vec<(usize, u32)>,
    stripes: Vec<SealedStripe>,
}

/// Writes completed since the last flush.
#[derive(Default)]
struct Unflushed {
    /// (segment id, offset, slots written) per stripe.
    stripes: Vec<(u64, u32, Vec<u32>)>,
    devices: Vec<usize>,
    bytes: u64,
    last_lsn: u64,
}

impl Unflushed {
    fn is_empty(&self) -> bool {
        self.stripes.is_empty()
    }
}

pub(crate) fn clamp_batch(n: usize) -> usize {
    n.clamp(1, MAX_IN_FLIGHT_STRIPES)
}

#[cfg(test)]
mod tests {
    use crate::{format, Engine, EngineOptions, FormatOptions, RebuildOptions};
    use ectable_devices::{open_backend, BackendKind, BlockDevice, MemDevice};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Superblock writes (checkpoints, device state changes) move the epoch while the flusher
    /// encodes: every chunk of a stripe must still carry the same epoch, or the chunks of one
    /// stripe fall into two groups and the stripe stops being readable.
    #[test]
    fn every_chunk_of_a_stripe_carries_one_epoch_while_the_superblocks_move() {
        let devs: Vec<Arc<dyn BlockDevice>> = (0..6)
            .map(|i| Arc::new(MemDevice::new(&format!("m{i}"), 64 << 20)) as Arc<dyn BlockDevice>)
            .collect();
        let io = open_backend(BackendKind::Psync, devs).expect("engine");
        let opts = FormatOptions {
            chunk_size_bytes: 16 << 10,
            segment_size_bytes: 256 << 10,
            ..Default::default()
        };
        format(io.as_ref(), &opts).expect("format");
        let e = Engine::open(io, EngineOptions::default()).expect("open");
        e.put_sync("t", b"first", b"v").expect("first put");
        let stop = AtomicBool::new(false);
        let persists = std::thread::scope(|s| {
            let bumper = s.spawn(|| {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    e.shared.array.persist(|_| {}).expect("persist");
                    n += 1;
                }
                n
            });
            for i in 0..3000u64 {
                e.put("t", format!("k{i}").as_bytes(), &[i as u8; 100])
                    .expect("put");
                if i % 8 == 0 {
                    e.sync().expect("sync");
                }
            }
            e.sync().expect("sync");
            stop.store(true, Ordering::SeqCst);
            bumper.join().expect("bumper")
        });
        assert!(persists > 50, "the epoch moved only {persists} times");
        let r = e
            .scrub(false, &RebuildOptions::default(), &mut |_| {})
            .expect("scrub");
        assert!(r.stripes_checked > 300, "{} stripes", r.stripes_checked);
        assert_eq!(
            r.bad_chunks_per_slot.iter().sum::<u64>(),
            0,
            "chunks of one stripe disagree: {:?}",
            r.bad_chunks_per_slot
        );
        assert!(r.progress.unrecoverable.is_empty());
    }
}
