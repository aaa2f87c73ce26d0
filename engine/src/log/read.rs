//! The read path: index lookup, then the record's blocks read straight from the chunks that
//! hold them (all reads of a batch in flight together); a record on a missing or slow device
//! rebuilt from k other chunks; a chunk that fails its checks read past (whole stripe,
//! rebuild, verify) and repaired in place.

use crate::array::Array;
use crate::error::{Error, Result};
use crate::index::{IndexEntry, Place, RecordLoc};
use crate::log::stripe::{
    assemble, coalesce, read_stripe_chunks, rebuild_chunks, record_read_ops, BlockRead,
    ChunkSources, StripeOutcome,
};
use crate::segments::SegmentInfo;
use crate::shared::Shared;
use crate::sync::RwLockExt;
use ectable_devices::{IoBatch, IoOp};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Shared {
    pub(crate) fn entry(&self, table: &str, key: &[u8]) -> Result<Option<IndexEntry>> {
        crate::validate_name_key(table, key)?;
        let index = self.index.read_locked();
        // A key/value table has no existence of its own: one that never had a key reads
        // like one whose keys were all deleted.
        Ok(index.tables.get(table).and_then(|t| t.get(key)))
    }

    /// Reads the newest value of `key`, or None if it does not exist.
    pub(crate) fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_alive()?;
        let _gate = self.read_gate();
        self.get_gated(table, key)
    }

    /// Holds segments from being freed (and reused) while a read is in flight.
    pub(crate) fn read_gate(&self) -> crate::sync::ReadGuard<'_, ()> {
        self.free_gate.read_locked()
    }

    fn get_gated(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.entry(table, key)? {
            None => Ok(None),
            Some(e) => self.load_value(table, key, &e).map(Some),
        }
    }

    /// Reads several keys of one table with all their device reads in flight at once.
    pub(crate) fn get_many(&self, table: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        self.check_alive()?;
        let _gate = self.read_gate();
        let mut entries = Vec::with_capacity(keys.len());
        for k in keys {
            entries.push(self.entry(table, k)?);
        }
        let pairs: Vec<(&[u8], Option<IndexEntry>)> = keys.iter().copied().zip(entries).collect();
        self.load_values(table, &pairs)
    }

    fn load_value(&self, table: &str, key: &[u8], e: &IndexEntry) -> Result<Vec<u8>> {
        Ok(self
            .load_values(table, &[(key, Some(e.clone()))])?
            .pop()
            .flatten()
            .unwrap_or_default())
    }

    pub(crate) fn segment(&self, id: u64) -> Result<Arc<SegmentInfo>> {
        self.segments
            .read_locked()
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::InvalidArgument(format!("index names unknown segment {id}")))
    }

    /// Loads values, submitting every fast-path read of the batch together.
    pub(crate) fn load_values(
        &self,
        table: &str,
        items: &[(&[u8], Option<IndexEntry>)],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let array = &self.array;
        let mut out: Vec<Option<Vec<u8>>> = vec![None; items.len()];
        let mut fast = FastReads::default();
        let mut disk: Vec<(usize, RecordLoc, Arc<SegmentInfo>, Expect)> = Vec::new();
        // Items whose record chunks are all on available, fast devices.
        let mut fast_path = vec![false; items.len()];
        for (i, (_, e)) in items.iter().enumerate() {
            let Some(e) = e else { continue };
            match &e.place {
                Place::Pending {
                    stripe_seq,
                    record_offset,
                    ..
                } => {
                    match self.pending_value(*stripe_seq, *record_offset, e.value_len) {
                        Some(v) => out[i] = Some(v),
                        // Settled meanwhile: the index now points at the disk.
                        None => out[i] = self.get_gated(table, items[i].0)?,
                    }
                }
                Place::Disk(loc) => {
                    let seg = self.segment(loc.segment_id)?;
                    // Device gone, or slow: the slow path below rebuilds the record from the
                    // other chunks instead.
                    if let Some(rops) = fast_record_reads(array, &seg, loc) {
                        fast.add(i, rops);
                        fast_path[i] = true;
                    }
                    disk.push((i, *loc, seg, (e.lsn, e.value_len)));
                }
            }
        }
        self.counters
            .reads
            .fetch_add(disk.len() as u64, Ordering::Relaxed);
        let (mut bytes, failed) = fast.submit(array).finish(array, items.len());
        // Records whose chunk is on a missing or slow device: rebuild just their blocks from
        // k other chunks, all of the batch's reads submitted together. A chunk that was read
        // and failed its checks takes the whole-stripe path instead, which finds and repairs
        // the bad chunk.
        let mut partial: HashMap<usize, Vec<u8>> = HashMap::new();
        {
            // A call with few records to rebuild (a single get) reads a spare chunk for each
            // and decodes from the first k that arrive: its latency is then not the slowest
            // of k reads. A call with many has enough reads to keep the devices busy, where
            // the spares would cost throughput (the read queue's rule, read_queue.rs).
            let rebuilds = disk.iter().filter(|d| !fast_path[d.0]).count();
            let spare = match rebuilds <= HEDGE_MAX_REBUILDS {
                true => HEDGE_SPARES,
                false => 0,
            };
            let mut ops = Vec::new();
            let mut plans = Vec::new();
            for (i, loc, seg, _) in &disk {
                if fast_path[*i] {
                    continue;
                }
                if let Some((o, plan)) =
                    crate::log::stripe::plan_record_rebuild(array, seg, loc, spare)
                {
                    ops.extend(o);
                    plans.push((*i, plan));
                }
            }
            let mut completions = if ops.is_empty() {
                Vec::new().into_iter()
            } else {
                first_k_of(array, &plans, array.io.submit(ops)).into_iter()
            };
            for (i, plan) in plans {
                let mine: Vec<_> = completions.by_ref().take(plan.op_count()).collect();
                if let Some(b) =
                    crate::log::stripe::finish_record_rebuild_keeping(array, &plan, mine, None)
                {
                    partial.insert(i, b);
                }
            }
        }
        // Stripes rebuilt for this call, so that records sharing a degraded stripe rebuild it
        // once.
        let mut rebuilt: HashMap<(u64, u32), Vec<u8>> = HashMap::new();
        for (i, loc, seg, lsn) in disk {
            let key = items[i].0;
            let fast = match (bytes[i].take(), failed[i]) {
                (Some(b), false) => verify_record(array.record_format(), b, &loc, lsn, table, key),
                _ => None,
            };
            let value = match fast {
                Some(v) => v,
                None => {
                    self.counters.degraded_reads.fetch_add(1, Ordering::Relaxed);
                    match partial.remove(&i).and_then(|b| {
                        verify_record(array.record_format(), b, &loc, lsn, table, key)
                    }) {
                        Some(v) => v,
                        None => self
                            .read_degraded(&seg, &loc, lsn, table, key, &mut rebuilt)
                            .map_err(|e| self.changed_or(e, &seg))?,
                    }
                }
            };
            out[i] = Some(value);
        }
        Ok(out)
    }

    /// A read-only engine's failed read: `Error::ArrayChanged` when the devices show that
    /// another process changed the array since the open (so the failure says nothing about
    /// the data), else the error itself.
    fn changed_or(&self, e: Error, seg: &SegmentInfo) -> Error {
        let array = &self.array;
        if !array.read_only || !crate::reader::may_be_a_change(&e) {
            return e;
        }
        // A read-only engine allocates nothing: its next segment id is the one of the open.
        let next_at_open = self.lock_state().next_segment_id;
        match crate::reader::changed_since_open(array, Some((seg, next_at_open))) {
            Some(detail) => Error::ArrayChanged { detail },
            None => e,
        }
    }

    /// The slow path: read the whole stripe, rebuild what is bad, verify, extract. A record
    /// that continues in the next stripe (format version 5) reads both stripes so.
    fn read_degraded(
        &self,
        seg: &SegmentInfo,
        loc: &RecordLoc,
        lsn: Expect,
        table: &str,
        key: &[u8],
        rebuilt: &mut HashMap<(u64, u32), Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let array = &self.array;
        let lost = |good: usize, detail: String| data_lost(array, seg, loc, good, detail);
        let (head, tail) = match crate::log::stripe::continued_parts(loc, array.k()) {
            Some((h, t)) => (h, Some(t)),
            None => (*loc, None),
        };
        self.whole_stripe(seg, &head, rebuilt)?;
        let data = &rebuilt[&(seg.id, head.offset_in_segment_bytes)];
        let from = head.record_offset as usize;
        let mut bytes = data
            .get(from..from + head.record_len as usize)
            .map(<[u8]>::to_vec);
        if let Some(t) = tail {
            // The tail's stripe, read at the most its place can hold (its chunk headers
            // give its height).
            let t = RecordLoc {
                height_bytes: crate::log::stripe::place_height(array, t.offset_in_segment_bytes),
                ..t
            };
            self.whole_stripe(seg, &t, rebuilt)?;
            let data = &rebuilt[&(seg.id, t.offset_in_segment_bytes)];
            match (bytes.as_mut(), data.get(..t.record_len as usize)) {
                (Some(b), Some(tail)) => b.extend_from_slice(tail),
                _ => bytes = None,
            }
        }
        bytes
            .and_then(|b| verify_record_in(array.record_format(), &b, loc, lsn, table, key))
            .ok_or_else(|| {
                lost(
                    array.k(),
                    "the stripe verifies but does not hold the indexed record".into(),
                )
            })
    }

    /// Reads the stripe at `loc`'s place (its offset, ordinal and height) whole into
    /// `rebuilt`, unless it is there already: every chunk checked, what is bad rebuilt from
    /// the rest and repaired in place; its data space is kept.
    fn whole_stripe(
        &self,
        seg: &SegmentInfo,
        loc: &RecordLoc,
        rebuilt: &mut HashMap<(u64, u32), Vec<u8>>,
    ) -> Result<()> {
        let array = &self.array;
        let lost = |good: usize, detail: String| data_lost(array, seg, loc, good, detail);
        let stripe_key = (seg.id, loc.offset_in_segment_bytes);
        let std::collections::hash_map::Entry::Vacant(e) = rebuilt.entry(stripe_key) else {
            return Ok(());
        };
        let read = |sources| {
            read_stripe_chunks(
                array,
                seg,
                loc.offset_in_segment_bytes,
                loc.ordinal,
                loc.height_bytes,
                sources,
            )
        };
        let mut bufs = read(ChunkSources::Fastest);
        let mut chunks: Vec<Option<&[u8]>> = bufs.iter().map(|b| b.as_deref()).collect();
        let mut outcome = assemble(
            array,
            seg,
            loc.offset_in_segment_bytes,
            loc.ordinal,
            &chunks,
        );
        // Not enough: ask the slow devices too, then even the failed ones.
        for sources in [ChunkSources::Online, ChunkSources::LastResort] {
            if matches!(outcome, StripeOutcome::Good(_)) {
                break;
            }
            bufs = read(sources);
            chunks = bufs.iter().map(|b| b.as_deref()).collect();
            outcome = assemble(
                array,
                seg,
                loc.offset_in_segment_bytes,
                loc.ordinal,
                &chunks,
            );
        }
        match outcome {
            StripeOutcome::Good(g) => {
                g.note_bad_chunks(array);
                // Chunks left unread on slow devices are not bad: repair only what was read
                // and failed.
                if !g.bad_shards.is_empty() && !array.read_only {
                    self.read_repair(seg, loc, &g, &chunks);
                }
                e.insert(g.data);
                Ok(())
            }
            StripeOutcome::Incomplete { good, detail, .. } => Err(lost(good, detail)),
            StripeOutcome::Empty => Err(lost(
                0,
                "no chunk of the stripe could be read or identified".into(),
            )),
        }
    }

    /// Rewrites the bad chunks of a stripe that was read degraded, in place, on devices that
    /// are still writable, and flushes them: a repair counts only once it is durable (a
    /// rewrite a power loss undoes would leave the damage a scrub just called repaired).
    /// The rebuilt chunks are verified against the stripe's crc table first, so a repair
    /// never writes bytes computed from bad inputs.
    fn read_repair(
        &self,
        seg: &SegmentInfo,
        loc: &RecordLoc,
        g: &crate::log::stripe::GoodStripe,
        chunks: &[Option<&[u8]>],
    ) {
        let array = &self.array;
        let mut targets = Vec::new();
        for &j in &g.bad_shards {
            let (slot, place) = crate::log::stripe::chunk_place(
                array,
                seg,
                loc.offset_in_segment_bytes,
                loc.ordinal,
                j,
            );
            if array.avoid_for_reads(slot as usize) {
                continue; // not read on purpose (slow device), not known bad
            }
            if let Some((d, off)) = place {
                targets.push((j, slot, d, off));
            }
        }
        let shards: Vec<usize> = targets.iter().map(|t| t.0).collect();
        let Ok(rebuilt) = rebuild_chunks(array, g, chunks, &shards) else {
            return;
        };
        let mut ops = Vec::new();
        let mut slots = Vec::new();
        for ((_, buf), (_, slot, d, off)) in rebuilt.into_iter().zip(&targets) {
            ops.push(ectable_devices::IoOp::write(*d, *off, buf));
            slots.push(*slot);
        }
        // (device, slot, chunks written) of each device a rewrite reached.
        let mut written: Vec<(usize, u32, u64)> = Vec::new();
        for (c, slot) in array.io.execute(ops).into_iter().zip(slots) {
            match c.result {
                Ok(()) => match written.iter_mut().find(|w| w.0 == c.op.device_index) {
                    Some(w) => w.2 += 1,
                    None => written.push((c.op.device_index, slot, 1)),
                },
                Err(e) => array.observe(slot as usize, c.op.kind, c.latency, Some(&e)),
            }
        }
        let devices: Vec<(usize, u32)> = written.iter().map(|w| (w.0, w.1)).collect();
        for (ok, (_, _, n)) in array.flush_devices(&devices).into_iter().zip(written) {
            if ok {
                self.counters.read_repairs.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// Chunks a record rebuild reads beyond the k it needs (from devices reads do not go
/// around), so that it decodes from the first k to arrive: the slowest read of a rebuild
/// no longer sets its latency (docs/design.md, "Read queues"). Taken by queued reads while
/// the queue is shallow and by `get` calls with few records to rebuild.
pub(crate) const HEDGE_SPARES: usize = 1;

/// Records a call may rebuild with a spare read each (see `load_values`).
const HEDGE_MAX_REBUILDS: usize = 2;

/// Waits until every plan can be finished from the reads of `batch` completed so far
/// (`RecordRebuild::ready`: k good reads of a decoded piece, or every read done), and
/// returns those, None for the spares still in flight. The batch is dropped with them: the
/// I/O engine owns their buffers until they complete (a ring's slab, a worker's request),
/// and their latency goes unobserved (a spare is read only from a device reads do not go
/// around, and that device's own reads still measure it).
fn first_k_of(
    array: &Array,
    plans: &[(usize, crate::log::stripe::RecordRebuild)],
    batch: ectable_devices::IoBatch,
) -> Vec<Option<ectable_devices::IoCompletion>> {
    let k = array.k();
    let ready = |outcomes: &[Option<bool>]| {
        let mut at = 0;
        plans.iter().all(|(_, p)| {
            let mine = outcomes.get(at..at + p.op_count()).unwrap_or(&[]);
            at += p.op_count();
            p.ready(k, mine)
        })
    };
    loop {
        if batch.completed() {
            return batch.wait().into_iter().map(Some).collect();
        }
        if ready(&batch.outcomes()) {
            return batch.take_done();
        }
        batch.wait_progress(std::time::Duration::from_millis(1));
    }
}

/// `Error::DataLost` for the stripe at `loc`'s place with `good` chunks.
fn data_lost(
    array: &Array,
    seg: &SegmentInfo,
    loc: &RecordLoc,
    good: usize,
    detail: String,
) -> Error {
    Error::DataLost {
        segment_id: seg.id,
        offset_in_segment_bytes: loc.offset_in_segment_bytes,
        good,
        width: array.w(),
        needed: array.k(),
        detail,
    }
}

/// The reads of a record's own blocks, when every chunk it spans is on an available device
/// that reads are not going around (a slow one); None otherwise (the record is then rebuilt
/// from other chunks).
pub(crate) fn fast_record_reads(
    array: &Array,
    seg: &SegmentInfo,
    loc: &RecordLoc,
) -> Option<Vec<(BlockRead, usize, usize)>> {
    let rops = record_read_ops(array, seg, loc).ok()?;
    let slow = rops.iter().any(|(r, _, _)| {
        array
            .slot_of_device(r.device)
            .is_some_and(|s| array.avoid_for_reads(s))
    });
    (!slow).then_some(rops)
}

/// The fast-path reads of several records, gathered, then coalesced (rows that lie together
/// on disk share device reads) and submitted together.
#[derive(Default)]
pub(crate) struct FastReads {
    reads: Vec<BlockRead>,
    /// (item, skip, take) per read.
    owner: Vec<(usize, usize, usize)>,
}

/// Fast-path reads in flight.
pub(crate) struct FastBatch {
    batch: IoBatch,
    /// (item, merged read, offset in it, skip, take) per piece of a record.
    pieces: Vec<(usize, usize, usize, usize, usize)>,
}

impl FastReads {
    /// Adds item `item`'s reads (from [`fast_record_reads`]).
    pub(crate) fn add(&mut self, item: usize, rops: Vec<(BlockRead, usize, usize)>) {
        for (r, skip, take) in rops {
            self.reads.push(r);
            self.owner.push((item, skip, take));
        }
    }

    pub(crate) fn submit(self, array: &Array) -> FastBatch {
        let (merged, at) = coalesce(&self.reads);
        let ops = merged
            .iter()
            .map(|r| IoOp::read(r.device, r.offset, r.len))
            .collect();
        let pieces = at
            .into_iter()
            .zip(self.owner)
            .map(|((m, off), (i, skip, take))| (i, m, off, skip, take))
            .collect();
        FastBatch {
            batch: array.io.submit(ops),
            pieces,
        }
    }
}

impl FastBatch {
    /// The reads in flight (to wait on several batches from one thread).
    pub(crate) fn batch(&self) -> &IoBatch {
        &self.batch
    }

    /// Waits; per item of `items`, the record bytes read (None if it had no reads) and
    /// whether a read of it failed.
    pub(crate) fn finish(self, array: &Array, items: usize) -> (Vec<Option<Vec<u8>>>, Vec<bool>) {
        let done = self.batch.wait();
        for c in &done {
            array.observe_completion(c);
        }
        let mut bytes: Vec<Option<Vec<u8>>> = vec![None; items];
        let mut failed = vec![false; items];
        for (i, m, off, skip, take) in self.pieces {
            let c = &done[m];
            match c.result {
                Ok(()) => bytes[i]
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(&c.op.buf[off + skip..off + skip + take]),
                Err(_) => failed[i] = true,
            }
        }
        (bytes, failed)
    }
}

/// What a read checks its bytes against besides table and key: the index entry's LSN and
/// value length.
pub(crate) type Expect = (u64, u32);

/// Checks fetched record bytes (in the array's record format `fmt`) against the index entry
/// (`(lsn, value_len)`, table and key); returns the value if they match. A value placed on
/// device blocks (record_len = value_len, docs/format.md "Values on device blocks") is the
/// bytes themselves, checked against its own crc, and handed back without a copy.
pub(crate) fn verify_record(
    fmt: crate::format::log_record::RecordFormat,
    bytes: Vec<u8>,
    loc: &RecordLoc,
    expect: Expect,
    table: &str,
    key: &[u8],
) -> Option<Vec<u8>> {
    if loc.record_len == expect.1 {
        return (bytes.len() == expect.1 as usize && crc32c::crc32c(&bytes) == loc.crc)
            .then_some(bytes);
    }
    verify_record_in(fmt, &bytes, loc, expect, table, key)
}

/// [`verify_record`] of borrowed bytes (the value is copied out). A compact record stores
/// neither its LSN nor, when elided, its table: its crc covers both, so it is decoded with
/// the expected ones.
pub(crate) fn verify_record_in(
    fmt: crate::format::log_record::RecordFormat,
    bytes: &[u8],
    loc: &RecordLoc,
    (lsn, value_len): Expect,
    table: &str,
    key: &[u8],
) -> Option<Vec<u8>> {
    if loc.record_len == value_len {
        return (bytes.len() == value_len as usize && crc32c::crc32c(bytes) == loc.crc)
            .then(|| bytes.to_vec());
    }
    let (rec, crc, _) =
        crate::format::log_record::RecordView::decode_in(fmt, bytes, lsn, Some(table)).ok()?;
    (crc == loc.crc
        && rec.lsn == lsn
        && rec.table == table
        && rec.key == key
        && rec.value.len() == value_len as usize)
        .then(|| rec.value.to_vec())
}
