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

use crate::array::Array;
use crate::error::{Error, Result};
use crate::format::*;
use crate::index::{Index, IndexEntry, Place, RecordLoc};
use crate::log::stripe::chunk_place;
use crate::recovery::Cursor;

/// The most stripes one flush batch writes.
pub const MAX_IN_FLIGHT_STRIPES: usize = 64;
use crate::segments::{FreeSpace, SegmentInfo};
use ectable_devices::{AlignedBuf, IoOp};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};

pub(crate) struct PendingRecord {
    pub table: String,
    pub key: Vec<u8>,
    pub lsn: u64,
    pub offset: u32,
    pub len: u32,
    pub crc: u32,
    pub is_put: bool,
}

pub(crate) struct OpenStripe {
    pub segment: Arc<SegmentInfo>,
    pub new_segment: bool,
    pub offset: u32,
    pub ordinal: u32,
    pub max_height: u32,
    pub buf: Vec<u8>,
    pub first_lsn: u64,
    pub last_lsn: u64,
    pub records: Vec<PendingRecord>,
}

pub(crate) struct SealedStripe {
    pub stripe: OpenStripe,
    pub height: u32,
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
}

/// Counters the writer and readers keep.
#[derive(Debug, Default)]
pub struct EngineCounters {
    pub records_written: AtomicU64,
    pub stripes_written: AtomicU64,
    pub short_stripes_written: AtomicU64,
    pub chunk_bytes_written: AtomicU64,
    pub payload_bytes_written: AtomicU64,
    pub flush_batches: AtomicU64,
    pub degraded_writes: AtomicU64,
    pub reads: AtomicU64,
    pub degraded_reads: AtomicU64,
}

pub(crate) struct Shared {
    pub array: Array,
    pub segments: RwLock<HashMap<u64, Arc<SegmentInfo>>>,
    pub index: RwLock<Index>,
    pub state: Mutex<WriterState>,
    pub work_cv: Condvar,
    pub durable_cv: Condvar,
    pub counters: EngineCounters,
    pub min_write_shards: usize,
    pub max_batch_stripes: usize,
}

/// One operation of a batch.
pub(crate) enum Mutation<'a> {
    Put { table: &'a str, key: &'a [u8], value: &'a [u8] },
    Delete { table: &'a str, key: &'a [u8] },
}

impl Shared {
    pub(crate) fn lock_state(&self) -> std::sync::MutexGuard<'_, WriterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stripe_capacity(&self, max_height: u32) -> usize {
        self.array.k() * (max_height as usize - CHUNK_HEADER_SIZE_BYTES)
    }

    /// Opens a stripe at the cursor, allocating a new segment when the current one is full.
    fn open_stripe(&self, st: &mut WriterState) -> Result<()> {
        let s = self.array.segment_size() as u32;
        let need_new = match &st.cursor {
            None => true,
            Some(c) => c.offset as usize + BLOCK_BYTES > s as usize,
        };
        if need_new {
            let online: Vec<bool> =
                (0..self.array.n()).map(|slot| self.array.device_of_slot(slot as u32).is_some()).collect();
            let id = st.next_segment_id;
            let Some(members) =
                st.free.allocate(id, self.array.w(), &online, self.min_write_shards)
            else {
                return Err(Error::NoSpace(format!(
                    "no free segment on {} online devices ({} free device segments in all)",
                    self.array.w(),
                    st.free.free_count()
                )));
            };
            st.next_segment_id += 1;
            let seg = Arc::new(SegmentInfo { id, members });
            self.segments.write().unwrap_or_else(|p| p.into_inner()).insert(id, seg.clone());
            st.cursor = Some(Cursor { segment: seg, offset: SEGMENT_HEADER_SIZE_BYTES as u32, ordinal: 0 });
        }
        let c = st.cursor.as_ref().expect("cursor set above");
        let max_height = (self.array.chunk_size() as u32).min(s - c.offset);
        st.open = Some(OpenStripe {
            segment: c.segment.clone(),
            new_segment: need_new,
            offset: c.offset,
            ordinal: c.ordinal,
            max_height,
            buf: Vec::new(),
            first_lsn: st.next_lsn,
            last_lsn: 0,
            records: Vec::new(),
        });
        Ok(())
    }

    /// Seals the open stripe at the smallest height that holds it.
    fn seal(&self, st: &mut WriterState) {
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
        let height = ((CHUNK_HEADER_SIZE_BYTES + per_chunk).div_ceil(BLOCK_BYTES) * BLOCK_BYTES)
            .max(BLOCK_BYTES) as u32;
        debug_assert!(height <= open.max_height);
        st.cursor = Some(Cursor {
            segment: open.segment.clone(),
            offset: open.offset + height,
            ordinal: open.ordinal + 1,
        });
        st.sealed.push_back(SealedStripe { stripe: open, height });
        self.work_cv.notify_all();
    }

    /// Appends a batch of mutations atomically (one stripe). Returns the last LSN.
    pub(crate) fn append(&self, muts: &[Mutation<'_>]) -> Result<u64> {
        if self.array.read_only {
            return Err(Error::ReadOnly);
        }
        let mut total = 0usize;
        for m in muts {
            let (table, key, value_len) = match m {
                Mutation::Put { table, key, value } => (*table, *key, value.len()),
                Mutation::Delete { table, key } => (*table, *key, 0),
            };
            crate::validate_name_key(table, key)?;
            total += log_record::encoded_len_padded(table.len(), key.len(), value_len);
        }
        let limit = self.array.max_stripe_payload();
        if total > limit {
            return Err(Error::ValueTooLarge { record_bytes: total, limit_bytes: limit });
        }
        if muts.is_empty() {
            return Ok(self.lock_state().next_lsn - 1);
        }
        let mut st = self.lock_state();
        // Backpressure: bound the memory held by stripes waiting for the flusher.
        while st.sealed.len() >= 2 * self.max_batch_stripes && st.error.is_none() && !st.closing {
            st = self.durable_cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        if let Some(e) = &st.error {
            return Err(Error::PreviousIo(e.clone()));
        }
        if st.closing {
            return Err(Error::Closed);
        }
        if !st.writing_started {
            self.start_writing(&mut st)?;
        }
        loop {
            if st.open.is_none() {
                self.open_stripe(&mut st)?;
            }
            let open = st.open.as_ref().expect("opened");
            if open.buf.len() + total <= self.stripe_capacity(open.max_height) {
                break;
            }
            if open.records.is_empty() {
                // The tail of this segment is too short for the batch: skip to a new segment.
                st.open = None;
                st.cursor = None;
                continue;
            }
            self.seal(&mut st);
        }
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        let st = &mut *st;
        let open = st.open.as_mut().expect("opened");
        for m in muts {
            let lsn = st.next_lsn;
            st.next_lsn += 1;
            let (rec, value) = match m {
                Mutation::Put { table, key, value } => (
                    LogRecord { lsn, kind: RecordKind::Put, table: table.to_string(), key: key.to_vec(), value: value.to_vec() },
                    Some(*value),
                ),
                Mutation::Delete { table, key } => (
                    LogRecord { lsn, kind: RecordKind::Delete, table: table.to_string(), key: key.to_vec(), value: Vec::new() },
                    None,
                ),
            };
            let offset = open.buf.len();
            rec.encode_into(&mut open.buf);
            let crc = get_u32(&open.buf[offset..], 20);
            if open.records.is_empty() {
                open.first_lsn = lsn;
            }
            open.last_lsn = lsn;
            match value {
                Some(v) => index.put(
                    &rec.table,
                    &rec.key,
                    IndexEntry { lsn, value_len: v.len() as u32, place: Place::Mem(Arc::from(v)) },
                ),
                None => index.delete(&rec.table, &rec.key),
            }
            let len = rec.encoded_len() as u32;
            open.records.push(PendingRecord {
                table: rec.table,
                key: rec.key,
                lsn,
                offset: offset as u32,
                len,
                crc,
                is_put: value.is_some(),
            });
        }
        self.counters.records_written.fetch_add(muts.len() as u64, Ordering::Relaxed);
        let last = open.last_lsn;
        if open.buf.len() + 64 > self.stripe_capacity(open.max_height) {
            self.seal(st);
        }
        Ok(last)
    }

    /// The first write of a session: persist a new epoch, so that this session's stripes are
    /// told apart from anything an earlier session left, and invalidate the segments beyond
    /// the end of the log before any of their device segments is reused.
    fn start_writing(&self, st: &mut WriterState) -> Result<()> {
        self.array.bump_epoch()?;
        let discard = std::mem::take(&mut st.pending_discard);
        crate::recovery::invalidate_segments(&self.array, &discard)?;
        for seg in &discard {
            for (slot, dseg) in &seg.members {
                st.free.release(*slot, *dseg);
            }
        }
        st.writing_started = true;
        Ok(())
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
            if let Some(e) = &st.error {
                return Err(Error::PreviousIo(e.clone()));
            }
            if st.flusher_done {
                return Err(Error::Closed);
            }
            st = self.durable_cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The flusher thread's loop.
    pub(crate) fn flusher(self: Arc<Self>) {
        loop {
            let committed_lsn;
            let batch: Vec<SealedStripe> = {
                let mut st = self.lock_state();
                loop {
                    if st.error.is_some() {
                        st.flusher_done = true;
                        self.durable_cv.notify_all();
                        return;
                    }
                    if !st.sealed.is_empty() {
                        break;
                    }
                    let open_has_records = st.open.as_ref().is_some_and(|o| !o.records.is_empty());
                    if open_has_records && (st.sync_wanted_lsn > st.durable_lsn || st.closing) {
                        self.seal(&mut st);
                        break;
                    }
                    if st.closing {
                        st.flusher_done = true;
                        self.durable_cv.notify_all();
                        return;
                    }
                    st = self.work_cv.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                let n = st.sealed.len().min(self.max_batch_stripes);
                committed_lsn = st.durable_lsn;
                st.sealed.drain(..n).collect()
            };
            let last_lsn = batch.last().map(|s| s.stripe.last_lsn).unwrap_or(0);
            let result = self.write_batch(&batch, committed_lsn);
            {
                let mut st = self.lock_state();
                match &result {
                    Ok(()) => st.durable_lsn = st.durable_lsn.max(last_lsn),
                    Err(e) => {
                        tracing::error!("write batch failed: {e}");
                        st.error = Some(e.to_string());
                    }
                }
                self.durable_cv.notify_all();
            }
            if result.is_ok() {
                let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
                for s in &batch {
                    let o = &s.stripe;
                    for r in o.records.iter().filter(|r| r.is_put) {
                        let loc = RecordLoc {
                            segment_id: o.segment.id,
                            offset_in_segment: o.offset,
                            height_bytes: s.height,
                            ordinal: o.ordinal,
                            record_offset: r.offset,
                            record_len: r.len,
                            crc: r.crc,
                        };
                        index.settle(&r.table, &r.key, r.lsn, loc);
                    }
                }
            }
        }
    }

    /// Encodes and writes a batch of sealed stripes, then flushes every device written.
    fn write_batch(&self, batch: &[SealedStripe], committed_lsn: u64) -> Result<()> {
        let array = &self.array;
        let (k, w) = (array.k(), array.w());
        let mut ops = Vec::new();
        // (stripe index, slot) per op; usize::MAX marks segment-header writes.
        let mut meta: Vec<(usize, u32)> = Vec::new();
        for (si, s) in batch.iter().enumerate() {
            let o = &s.stripe;
            let h = s.height as usize;
            let body_len = h - CHUNK_HEADER_SIZE_BYTES;
            let mut bufs: Vec<AlignedBuf> = (0..w).map(|_| AlignedBuf::new(h)).collect();
            for j in 0..k {
                let from = (j * body_len).min(o.buf.len());
                let to = ((j + 1) * body_len).min(o.buf.len());
                bufs[j][CHUNK_HEADER_SIZE_BYTES..CHUNK_HEADER_SIZE_BYTES + (to - from)]
                    .copy_from_slice(&o.buf[from..to]);
            }
            {
                let (data, parity) = bufs.split_at_mut(k);
                let d: Vec<&[u8]> = data.iter().map(|b| &b[CHUNK_HEADER_SIZE_BYTES..]).collect();
                let mut p: Vec<&mut [u8]> =
                    parity.iter_mut().map(|b| &mut b[CHUNK_HEADER_SIZE_BYTES..]).collect();
                array.codec.encode(&d, &mut p)?;
            }
            let body_crcs: Vec<u32> =
                bufs.iter().map(|b| crc32c::crc32c(&b[CHUNK_HEADER_SIZE_BYTES..])).collect();
            let places: Vec<(u32, Option<(usize, u64)>)> =
                (0..w).map(|j| chunk_place(array, &o.segment, o.offset, o.ordinal, j)).collect();
            let present_mask = places
                .iter()
                .enumerate()
                .filter(|(_, (_, p))| p.is_some())
                .fold(0u64, |m, (j, _)| m | (1u64 << j));
            for (j, mut buf) in bufs.into_iter().enumerate() {
                let header = ChunkHeader {
                    array_uuid: array.sb.array_uuid,
                    segment_id: o.segment.id,
                    write_epoch: array.write_epoch.load(Ordering::SeqCst),
                    offset_in_segment_bytes: o.offset,
                    height_bytes: s.height,
                    ordinal: o.ordinal,
                    shard_index: j as u16,
                    width: w as u16,
                    data_shards: k as u16,
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
                    let Some(d) = array.device_of_slot(*slot) else { continue };
                    let h = SegmentHeader {
                        position: p as u16,
                        array_uuid: array.sb.array_uuid,
                        segment_id: o.segment.id,
                        write_epoch: array.write_epoch.load(Ordering::SeqCst),
                        data_shards: k as u16,
                        members: o.segment.members.clone(),
                    };
                    let buf = AlignedBuf::from_slice(&h.encode());
                    ops.push(IoOp::write(d, array.device_segment_offset(*dseg), buf));
                    meta.push((usize::MAX, *slot));
                }
            }
            self.counters.stripes_written.fetch_add(1, Ordering::Relaxed);
            if s.height < array.chunk_size() as u32 {
                self.counters.short_stripes_written.fetch_add(1, Ordering::Relaxed);
            }
            self.counters.chunk_bytes_written.fetch_add((h * w) as u64, Ordering::Relaxed);
            self.counters.payload_bytes_written.fetch_add(o.buf.len() as u64, Ordering::Relaxed);
        }
        let mut written: Vec<Vec<u32>> = vec![Vec::new(); batch.len()];
        let mut flush_devices: Vec<usize> = Vec::new();
        let mut failed_slots: Vec<u32> = Vec::new();
        for (c, (si, slot)) in array.io.execute(ops).into_iter().zip(meta) {
            match c.result {
                Ok(()) => {
                    if si != usize::MAX {
                        written[si].push(slot);
                    }
                    if !flush_devices.contains(&c.op.device_index) {
                        flush_devices.push(c.op.device_index);
                    }
                }
                Err(e) => {
                    array.counters[slot as usize].write_errors.fetch_add(1, Ordering::Relaxed);
                    array.mark_failed(slot as usize, &e.to_string());
                    failed_slots.push(slot);
                }
            }
        }
        // Only now, after every write of the batch completed, flush: io_uring would
        // otherwise be free to run the flush before the writes it must cover.
        let slot_of_device = |d: usize| array.slot_device.iter().position(|x| *x == Some(d));
        for c in array.io.execute(flush_devices.iter().map(|&d| IoOp::flush(d)).collect()) {
            if let Err(e) = c.result {
                if let Some(slot) = slot_of_device(c.op.device_index) {
                    array.counters[slot].write_errors.fetch_add(1, Ordering::Relaxed);
                    array.mark_failed(slot, &e.to_string());
                    failed_slots.push(slot as u32);
                }
            }
        }
        self.counters.flush_batches.fetch_add(1, Ordering::Relaxed);
        for (si, slots) in written.iter().enumerate() {
            let durable = slots.iter().filter(|s| !failed_slots.contains(s)).count();
            if durable < w {
                self.counters.degraded_writes.fetch_add(1, Ordering::Relaxed);
            }
            if durable < self.min_write_shards {
                let o = &batch[si].stripe;
                return Err(Error::DataLost {
                    segment_id: o.segment.id,
                    offset_in_segment: o.offset,
                    good: durable,
                    width: w,
                    needed: self.min_write_shards,
                    detail: "too few chunks of the stripe were written and flushed".into(),
                });
            }
        }
        Ok(())
    }
}

pub(crate) fn clamp_batch(n: usize) -> usize {
    n.clamp(1, MAX_IN_FLIGHT_STRIPES)
}
