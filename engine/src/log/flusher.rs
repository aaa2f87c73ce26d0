//! The flusher thread: takes batches of sealed stripes, encodes them (parity, body crcs,
//! chunk headers with the stripe's crc table, one write epoch per stripe), writes all their
//! chunks in one batch, and only after every write completed flushes each device written;
//! then the batch's records are durable and their waiters return (group commit).

use crate::error::{Error, Result};
use crate::format::placement::Spot;
use crate::format::*;
use crate::index::{Place, RecordLoc};
use crate::log::journal::JournalJob;
use crate::log::state::{OpenStripe, Placement, SealedStripe, WriterState};
use crate::log::stripe::chunk_place;
use crate::shared::{Shared, Worker};
use crate::sync::{CondvarExt, MutexExt, RwLockExt};
use ectable_devices::{AlignedBuf, IoOp};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The most stripes one flush batch writes.
pub const MAX_IN_FLIGHT_STRIPES: usize = 64;

impl Shared {
    /// The flusher thread's loop: encode and submit batch N+1 while batch N's writes are in
    /// flight; flush when a writer waits for durability, when much has been written since
    /// the last flush, or at close.
    pub(crate) fn flusher(self: Arc<Self>) {
        let mut inflight: Option<InFlight> = None;
        let mut unflushed = Unflushed::default();
        let journal_enabled = self.journal_enabled();
        loop {
            // 1. Take the next batch of sealed stripes, if any is ready.
            let mut next: Option<(Vec<SealedStripe>, u64)> = None;
            let mut journal: Option<JournalJob> = None;
            let mut exit = false;
            {
                let mut st = self.lock_state();
                loop {
                    if st.error.is_some() {
                        exit = true;
                        break;
                    }
                    let open_has_records = st.open.as_ref().is_some_and(|o| o.has_content());
                    let (stripes_only, wanted) = Self::sync_wanted(&st, journal_enabled);
                    // Stripes written before the open one but not yet flushed: a journal
                    // entry may only follow acknowledged records, so flush them first (step
                    // 4) rather than seal the open stripe short for this sync (one that starts
                    // with a tail is sealed anyway: then one flush covers both).
                    let flush_first = !stripes_only
                        && !unflushed.is_empty()
                        && st.open.as_ref().is_some_and(|o| {
                            o.carried.is_none() && o.first_lsn > st.acked_lsn() + 1
                        });
                    if st.sealed.is_empty()
                        && open_has_records
                        && wanted
                        && inflight.is_none()
                        && !st.journal_busy
                        && !flush_first
                    {
                        // Group commit: acknowledge a sync only when nothing is in flight, so
                        // that writers arriving meanwhile share the next entry or stripe.
                        if !stripes_only {
                            journal = self.journal_job(&mut st);
                            if journal.is_some() {
                                st.journal_busy = true;
                                self.test_panic_point(Worker::Flusher);
                                break;
                            }
                        }
                        self.seal_for(&mut st, true);
                    }
                    if !st.sealed.is_empty() {
                        self.test_panic_point(Worker::Flusher);
                        let n = st.sealed.len().min(self.max_batch_stripes);
                        next = Some((st.sealed.drain(..n).collect(), st.acked_lsn()));
                        break;
                    }
                    // Stripes holding journaled records are flushed at once: that frees the
                    // journal's ring.
                    let journaled = st.journal_lsn > st.durable_lsn;
                    let flush_wanted = st.flush_wanted_seq > st.flushed_seq;
                    if inflight.is_some()
                        || ((wanted || journaled || flush_wanted) && !unflushed.is_empty())
                    {
                        break;
                    }
                    if st.closing {
                        exit = true;
                        break;
                    }
                    let io = &self.array.io;
                    if (0..io.devices().len()).any(|d| io.stuck_ops(d) > 0) {
                        // Operations given up at the I/O deadline may complete while this
                        // thread has nothing to do: look at its ring now and then, so that
                        // they are counted out (status counts them, `online` asks about
                        // the writes among them).
                        st = self
                            .work_cv
                            .waited_timeout(st, std::time::Duration::from_millis(200));
                        self.array.io.reap();
                    } else {
                        st = self.work_cv.waited(st);
                    }
                }
                if !st.sealed.is_empty() || next.is_some() {
                    // Space in the sealed queue: wake writers held by backpressure.
                    self.durable_cv.notify_all();
                }
            }
            if let Some(job) = journal {
                self.journal_write(job, false);
                continue;
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
                        || st.journal_lsn > st.durable_lsn
                        || st.flush_wanted_seq > st.flushed_seq
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

    /// Whether only stripes can acknowledge what is waited for now, and whether something
    /// is waited for: a checkpoint (paused) and close need everything in stripes; a writer
    /// waiting for durability only needs its records acknowledged.
    pub(crate) fn sync_wanted(st: &WriterState, journal_enabled: bool) -> (bool, bool) {
        let stripes_only =
            st.paused || st.closing || !journal_enabled || st.force_stripes_lsn > st.durable_lsn;
        let wanted = if stripes_only {
            st.sync_wanted_lsn > st.durable_lsn || st.closing
        } else {
            st.sync_wanted_lsn > st.acked_lsn()
        };
        (stripes_only, wanted)
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
        // Per stripe, why its failed writes failed (for the error, should too many fail).
        let mut failures: Vec<Vec<String>> = vec![Vec::new(); prev.stripes.len()];
        for (c, (si, slot)) in prev.batch.wait().into_iter().zip(prev.meta) {
            array.observe(slot as usize, c.op.kind, c.latency, c.result.as_ref().err());
            // A failed write needs nothing more here: observe() failed its device.
            if let Err(e) = &c.result {
                if let Some(f) = failures.get_mut(si) {
                    f.push(e.to_string());
                }
            } else {
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
        for (si, (slots, why)) in written.into_iter().zip(failures).enumerate() {
            let o = &prev.stripes[si].stripe;
            if slots.len() < w {
                self.counters
                    .degraded_writes
                    .fetch_add(1, Ordering::Relaxed);
            }
            if slots.len() < self.min_write_shards {
                return Err(Error::WriteFailed {
                    segment_id: o.segment.id,
                    offset_in_segment_bytes: o.offset,
                    written: slots.len(),
                    width: w,
                    needed: self.min_write_shards,
                    errors: if why.is_empty() {
                        "the devices left are too few".into()
                    } else {
                        why.join("; ")
                    },
                });
            }
            unflushed.stripes.push((o.segment.id, o.offset, slots));
            unflushed.last_seq = unflushed.last_seq.max(o.seq);
            // A record that continues is written only with the next stripe.
            let written_lsn = o.last_lsn - u64::from(prev.stripes[si].continues);
            unflushed.last_lsn = unflushed.last_lsn.max(written_lsn);
        }
        let mut index = self.index.write_locked();
        for s in &prev.stripes {
            let o = &s.stripe;
            // The stripe's last record continues: its entry keeps naming the head stripe's
            // buffer until the next stripe is written (below, `carried`).
            let recs = &o.records[..o.records.len() - usize::from(s.continues)];
            if let Some(c) = &o.carried {
                let r = &c.rec;
                if let Some(map) = std::str::from_utf8(r.table(&c.head_buf))
                    .ok()
                    .and_then(|t| index.tables.get_mut(t))
                    .filter(|_| r.is_put)
                {
                    let mut hint = crate::index::NearHint::default();
                    map.update_near(r.key(&c.head_buf), &mut hint, |e| {
                        if e.lsn == r.lsn {
                            e.place = Place::Disk(RecordLoc {
                                segment_id: o.segment.id,
                                offset_in_segment_bytes: c.head_offset,
                                height_bytes: c.head_height,
                                ordinal: c.head_ordinal,
                                record_offset: r.offset,
                                record_len: r.len,
                                crc: r.crc,
                            });
                        }
                    });
                }
            }
            // Runs of records of one table share one table lookup.
            let mut i = 0;
            while i < recs.len() {
                let table = recs[i].table(&o.buf);
                let mut j = i;
                let mut map = std::str::from_utf8(table)
                    .ok()
                    .and_then(|t| index.tables.get_mut(t));
                let mut hint = crate::index::NearHint::default();
                while j < recs.len() && recs[j].table(&o.buf) == table {
                    let r = &recs[j];
                    j += 1;
                    let Some(map) = map.as_deref_mut() else {
                        continue;
                    };
                    if !r.is_put {
                        continue;
                    }
                    // A value placed on device blocks: the index names the value itself.
                    let (record_offset, record_len, crc) =
                        match s.placement.as_ref().map(|p| p.spots[j - 1]) {
                            None => (r.offset, r.len, r.crc),
                            Some(Spot {
                                offset,
                                value_offset: None,
                            }) => (offset as u32, r.len, r.crc),
                            Some(Spot {
                                value_offset: Some(v),
                                ..
                            }) => (v as u32, r.value_len() as u32, r.value_crc),
                        };
                    map.update_near(r.key(&o.buf), &mut hint, |e| {
                        if e.lsn == r.lsn {
                            e.place = Place::Disk(RecordLoc {
                                segment_id: o.segment.id,
                                offset_in_segment_bytes: o.offset,
                                height_bytes: s.height,
                                ordinal: o.ordinal,
                                record_offset,
                                record_len,
                                crc,
                            });
                        }
                    });
                }
                i = j;
            }
        }
        drop(index);
        // Only now, with the index pointing at the disk, may the memory copies go.
        let mut st = self.lock_state();
        for s in &prev.stripes {
            if !s.continues {
                st.pending.remove(&s.stripe.seq);
            }
            if let Some(c) = &s.stripe.carried {
                st.pending.remove(&c.head_seq);
            }
        }
        Ok(())
    }

    /// The value of a record not yet on disk: copied from the open stripe or a sealed one.
    /// None if the stripe has since been settled (the caller reads the index again).
    /// Flushes every device written since the last flush (all those writes have completed,
    /// so the flush covers them) and moves `durable_lsn`.
    fn flush(&self, unflushed: &mut Unflushed) -> Result<()> {
        let array = &self.array;
        let mut failed_slots: Vec<u32> = Vec::new();
        let ops = unflushed.devices.iter().map(|&d| IoOp::flush(d)).collect();
        for c in array.io.execute(ops) {
            if let Some(slot) = array.observe_completion(&c) {
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
                    offset_in_segment_bytes: *offset,
                    good: durable,
                    width: array.w(),
                    needed: self.min_write_shards,
                    detail: "too few chunks of the stripe were flushed".into(),
                });
            }
        }
        let last = unflushed.last_lsn;
        let last_seq = unflushed.last_seq;
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
        st.flushed_seq = st.flushed_seq.max(last_seq);
        self.durable_cv.notify_all();
        Ok(())
    }

    /// `count` buffers of `height` bytes, from the pool when possible. Their contents are
    /// stale: the encoder overwrites every byte (header, data and zero tail, parity).
    fn take_chunk_bufs(&self, count: usize, height: usize) -> Vec<AlignedBuf> {
        let mut pool = self.chunk_pool.locked();
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
            let mut pool = self.chunk_pool.locked();
            if pool.len() < 4 * self.max_batch_stripes * self.array.w() {
                pool.push(buf);
            }
        }
    }

    /// Encodes a batch of sealed stripes into chunk writes (and segment-header writes).
    /// Returns the operations and, per operation, (stripe index, slot); `usize::MAX` marks
    /// segment headers.
    /// `acked_lsn` is what was acknowledged when the batch was taken; each stripe records it
    /// as its committed_lsn, lowered below the stripe's first LSN (records of the stripe
    /// itself may have been acknowledged through the sync journal).
    pub(crate) fn encode_batch(
        &self,
        batch: &[SealedStripe],
        acked_lsn: u64,
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
            // A stripe that continues is written with its buffer cut at its data space (the
            // rest of the record is the next stripe's tail).
            let payload = match &s.placement {
                Some(p) => p.payload,
                None => o.buf.len().min(k * body_len),
            };
            let mut bufs: Vec<AlignedBuf> = self.take_chunk_bufs(w, h);
            match &s.placement {
                None => {
                    for (j, buf) in bufs.iter_mut().enumerate().take(k) {
                        let from = (j * body_len).min(o.buf.len());
                        let to = ((j + 1) * body_len).min(o.buf.len());
                        let body = &mut buf[CHUNK_HEADER_SIZE_BYTES..];
                        body[..to - from].copy_from_slice(&o.buf[from..to]);
                        // A reused buffer holds an older chunk: the unused tail must be zero.
                        body[to - from..].fill(0);
                    }
                }
                Some(p) => lay_out_placed(o, p, &mut bufs[..k], body_len),
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
                    } else if s.continues {
                        chunk_header::FLAG_CONTINUES
                    } else {
                        0
                    },
                    payload_bytes: payload as u32,
                    first_lsn: o.first_lsn,
                    last_lsn: o.last_lsn,
                    present_mask,
                    committed_lsn: acked_lsn.min(o.first_lsn - 1),
                    tail_bytes: o.tail_bytes(),
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
                    let h = o.segment.header(array.sb.array_uuid, k, write_epoch, p);
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
            // The records' bytes: a placed stripe's `payload` ends its record area, and its
            // values lie on blocks after it, so its records are counted as they are inline.
            let records = match &s.placement {
                Some(_) => o.buf.len().min(k * body_len),
                None => payload,
            };
            self.counters
                .payload_bytes_written
                .fetch_add(records as u64, Ordering::Relaxed);
            if o.segment.kind == SegmentKind::Checkpoint {
                self.counters
                    .checkpoint_bytes_written
                    .fetch_add(o.buf.len() as u64, Ordering::Relaxed);
            }
        }
        Ok((ops, meta))
    }
}

/// Writes a stripe's records into its data bodies with values placed on device blocks
/// (docs/format.md, "Values on device blocks"): each record's header, table and key at its
/// spot in the record area, a placed value alone on its blocks, the rest zero.
fn lay_out_placed(o: &OpenStripe, p: &Placement, bodies: &mut [AlignedBuf], body_len: usize) {
    for b in bodies.iter_mut() {
        b[CHUNK_HEADER_SIZE_BYTES..].fill(0);
    }
    let mut put = |mut pos: usize, mut bytes: &[u8]| {
        while !bytes.is_empty() {
            let (shard, within) = (pos / body_len, pos % body_len);
            let n = bytes.len().min(body_len - within);
            let at = CHUNK_HEADER_SIZE_BYTES + within;
            bodies[shard][at..at + n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            pos += n;
        }
    };
    for (r, spot) in o.records.iter().zip(&p.spots) {
        let rec = &o.buf[r.offset as usize..(r.offset + r.len) as usize];
        log_record::lay_out_record(r.fmt, rec, *spot, r.value_len(), &mut put);
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
    /// The highest stripe sequence number among `stripes`.
    last_seq: u64,
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
                // Large enough that stripes fill up: syncs are acknowledged through the
                // sync journal, not by short stripes.
                e.put("t", format!("k{i}").as_bytes(), &[i as u8; 4000])
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
        assert!(r.stripes_checked > 150, "{} stripes", r.stripes_checked);
        assert_eq!(
            r.bad_chunks_per_slot.iter().sum::<u64>(),
            0,
            "chunks of one stripe disagree: {:?}",
            r.bad_chunks_per_slot
        );
        assert!(r.progress.unrecoverable.is_empty());
    }
}
