//! Point reads kept in flight continuously: a submission/completion queue over the read
//! path (docs/design.md, "Read path", "Read queues").
//!
//! `Engine::get_many` submits a batch and returns when its slowest read is back, so a caller
//! that loops over batches of 32 has 32 reads in flight only at the start of each batch. A
//! [`ReadQueue`] hands every read back as soon as it completes, so the caller can submit the
//! next one at once and the devices see a steady queue depth, as fio's do.
//!
//! A queued read does not hold the free gate while it is in flight (a caller could then
//! neither read through another call on its thread nor let the cleaner free a segment). It
//! is optimistic instead: its bytes are accepted only when they are the record the index
//! named (crc, LSN, table and key), which bytes of a freed and reused segment never are.
//! When the check fails the read goes through the ordinary path, which holds the gate and
//! looks the index up again: a record that moved meanwhile is read where it is now, and one
//! that did not meets all the checks, the whole-stripe rebuild and the repair.
//!
//! A record rebuilt from k other chunks reads (and decodes) the same rows of every data
//! chunk of its stripe, which hold the stripe's other records. The queue keeps those bytes
//! (a stripe window): a later read of a record inside them takes it from there, and one
//! submitted while the rebuild is still in flight waits for it instead of reading its own
//! blocks. A sequential read with a device missing then reads each degraded stripe once
//! rather than once for the rebuild and again record by record. Window bytes are checked
//! like device bytes (the record's crc, LSN, table and key).

use crate::error::Result;
use crate::index::{IndexEntry, Place, RecordLoc};
use crate::log::read::{fast_record_reads, verify_record, FastBatch, FastReads, HEDGE_SPARES};
use crate::log::stripe::{
    finish_record_rebuild_keeping, finish_stripe_rows, plan_record_rebuild, plan_stripe_rows,
    record_from, record_pieces, stripe_data_degraded, ChunkBytes, RecordRebuild,
};
use crate::segments::SegmentInfo;
use crate::shared::Shared;
use ectable_devices::IoBatch;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How long one wait for completions blocks before the queue looks again (the psync engine
/// wakes only for the oldest read's batch; io_uring wakes for any completion).
const WAIT_SLICE: Duration = Duration::from_micros(250);

/// How often a read is submitted again because the index moved its record while it was
/// looked up, before the queue reads it through the ordinary (gated) path.
const LOOKUP_RETRIES: usize = 4;

/// Reads a queue may hold in flight for a rebuild it starts to take its spare: a deeper
/// queue keeps the devices busy, where a spare read costs throughput (measured at a queue
/// depth of 32: 8 % fewer degraded point reads with it, docs/performance.md).
const HEDGE_BELOW_DEPTH: usize = 8;

/// Stripe windows of completed rebuilds kept for later reads (each at most k chunks).
const KEPT_WINDOWS: usize = 8;

/// The outcome of one queued read: the tag given at submission, and the value (None when the
/// key does not exist) or the error that read alone met.
pub type ReadDone<T> = (T, Result<Option<Vec<u8>>>);

/// Point reads of one table kept in flight together, each handed back as soon as it
/// completes (in completion order, not submission order). See `Engine::read_queue`.
///
/// The queue is driven by the thread that uses it: with the io_uring engine its reads are
/// in that thread's ring, so a queue is not `Send`. Reads left in flight when the queue is
/// dropped are waited for.
pub struct ReadQueue<'e, T> {
    shared: &'e Shared,
    table: String,
    in_flight: VecDeque<Slot<T>>,
    ready: VecDeque<ReadDone<T>>,
    /// Stripe windows: of rebuilds in flight (bytes not yet there), then of the last
    /// [`KEPT_WINDOWS`] completed ones.
    windows: VecDeque<Window>,
    next_window: u64,
    /// Segment and stripe offset of the last record read from the devices: a record in the
    /// same stripe or the next one is read sequentially, and when its stripe has a data
    /// chunk to rebuild, the whole stripe is read and decoded once.
    last_read: Option<(u64, u32)>,
    /// Spare reads of rebuilds that finished without them, in flight until they complete
    /// (their buffers are the device's until then); their latency is still observed.
    spares: Vec<IoBatch>,
    /// The queue holds io_uring operations of the creating thread.
    _not_send: std::marker::PhantomData<*const ()>,
}

struct Slot<T> {
    tag: T,
    key: Vec<u8>,
    entry: IndexEntry,
    loc: RecordLoc,
    how: How,
}

enum How {
    /// The record's blocks read where they are.
    Direct(FastBatch),
    /// The record rebuilt from k other chunks (its own chunk is on a missing or slow device);
    /// the rebuild's bytes become the window of this id.
    Rebuild(RecordRebuild, IoBatch, u64),
    /// The whole stripe read from k chunks (the shard of each read) and decoded, for a
    /// sequential read; the stripe becomes the window of this id.
    Stripe(Vec<usize>, IoBatch, u64),
    /// The record taken from the window of this id, whose rebuild is in flight.
    Window(u64),
    /// A record that continues in the next stripe (format version 5): its head and its
    /// tail, each read on its own.
    Parts(Box<[Part; 2]>),
}

/// How one part of a record in two stripes is read.
enum Part {
    /// Taken already (from a window; None if that failed).
    Bytes(Option<Vec<u8>>),
    /// Read where it is.
    Direct(FastBatch),
    /// Rebuilt from k other chunks.
    Rebuild(RecordRebuild, IoBatch),
    /// Its whole stripe read from k chunks and decoded; the stripe becomes the window of
    /// this id (the tail's stripe, for the records after it in a sequential read).
    Stripe(Vec<usize>, IoBatch, u64),
    /// Taken from the window of this id when its rebuild completes.
    Window(u64),
}

impl Part {
    fn batch(&self) -> Option<&IoBatch> {
        match self {
            Part::Direct(f) => Some(f.batch()),
            Part::Rebuild(_, b) | Part::Stripe(_, b, _) => Some(b),
            Part::Bytes(_) | Part::Window(_) => None,
        }
    }

    fn drain(self, array: &crate::array::Array) {
        match self {
            Part::Direct(reads) => drop(reads.finish(array, 1)),
            Part::Rebuild(_, batch) | Part::Stripe(_, batch, _) => drop(batch.wait()),
            Part::Bytes(_) | Part::Window(_) => {}
        }
    }
}

impl How {
    /// Whether the read can be finished without waiting: its reads completed, or, for a
    /// rebuild with a spare read, enough of them to decode.
    fn ready(&self, k: usize) -> bool {
        match self {
            How::Rebuild(plan, b, _) => b.completed() || plan.ready(k, &b.outcomes()),
            other => other.batch().is_some_and(IoBatch::completed),
        }
    }

    /// The reads in flight; None for a read waiting for another's window.
    fn batch(&self) -> Option<&IoBatch> {
        match self {
            How::Direct(f) => Some(f.batch()),
            How::Rebuild(_, b, _) | How::Stripe(_, b, _) => Some(b),
            How::Window(_) => None,
            How::Parts(p) => p.iter().find_map(Part::batch),
        }
    }
}

/// Rows of a stripe's data chunks that a rebuild read or decoded.
struct Window {
    id: u64,
    segment_id: u64,
    stripe_offset: u32,
    /// (shard, from, to) the rebuild yields.
    covers: Vec<(usize, usize, usize)>,
    /// The bytes, once the rebuild completed.
    bytes: Option<Vec<ChunkBytes>>,
}

impl Window {
    /// Whether every piece of the record lies in the window.
    fn holds(&self, seg: u64, loc: &RecordLoc) -> bool {
        self.segment_id == seg
            && self.stripe_offset == loc.offset_in_segment_bytes
            && record_pieces(loc).all(|(shard, first, take)| {
                self.covers
                    .iter()
                    .any(|&(j, a, b)| j == shard && a <= first && first + take <= b)
            })
    }

    /// The record's bytes from a completed window.
    fn record(&self, loc: &RecordLoc) -> Option<Vec<u8>> {
        record_from(self.bytes.as_ref()?, loc)
    }
}

impl<'e, T> ReadQueue<'e, T> {
    pub(crate) fn new(shared: &'e Shared, table: &str) -> ReadQueue<'e, T> {
        ReadQueue {
            shared,
            table: table.to_string(),
            in_flight: VecDeque::new(),
            ready: VecDeque::new(),
            windows: VecDeque::new(),
            next_window: 0,
            last_read: None,
            spares: Vec::new(),
            _not_send: std::marker::PhantomData,
        }
    }

    /// The table the queue reads.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Reads submitted and not yet handed back by [`ReadQueue::next_done`].
    pub fn len(&self) -> usize {
        self.in_flight.len() + self.ready.len()
    }

    /// Whether every submitted read has been handed back.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts a read of `key`; its outcome comes back, with `tag`, from
    /// [`ReadQueue::next_done`]. Fails at once (and queues nothing) for an invalid key or a
    /// closed or poisoned engine; everything the read itself meets (a device error, lost
    /// data) comes back with its outcome. The queue does not bound how many reads are in
    /// flight: the caller keeps its own depth.
    pub fn submit(&mut self, key: &[u8], tag: T) -> Result<()> {
        self.shared.check_alive()?;
        crate::validate_name_key(&self.table, key)?;
        self.start(key.to_vec(), tag, 0);
        Ok(())
    }

    /// The next completed read, waiting for one if none has completed yet; None when nothing
    /// is in flight.
    pub fn next_done(&mut self) -> Option<ReadDone<T>> {
        self.next_done_by(None)
    }

    /// [`ReadQueue::next_done`] that waits no later than `deadline`: None also when no read
    /// completed by then (the reads stay in flight). A caller that paces its submissions
    /// (a benchmark at a fixed rate) reaps what completes until its next submission is due.
    pub fn next_done_before(&mut self, deadline: std::time::Instant) -> Option<ReadDone<T>> {
        self.next_done_by(Some(deadline))
    }

    fn next_done_by(&mut self, deadline: Option<std::time::Instant>) -> Option<ReadDone<T>> {
        loop {
            if let Some(done) = self.ready.pop_front() {
                return Some(done);
            }
            self.reap_spares();
            if self.in_flight.is_empty() {
                return None;
            }
            let k = self.shared.array.k();
            match self.in_flight.iter().position(|s| s.how.ready(k)) {
                Some(i) => {
                    let slot = self.in_flight.remove(i).expect("position is in range");
                    self.finish(slot);
                }
                // Reads waiting for a window always have its rebuild in flight with them.
                None => match self.in_flight.iter().find_map(|s| s.how.batch()) {
                    Some(b) => {
                        let slice = match deadline {
                            None => WAIT_SLICE,
                            Some(d) => {
                                let left = d.saturating_duration_since(std::time::Instant::now());
                                if left.is_zero() {
                                    return None;
                                }
                                left.min(WAIT_SLICE)
                            }
                        };
                        b.wait_progress(slice)
                    }
                    None => {
                        let slot = self.in_flight.pop_front().expect("not empty");
                        self.gated(slot.key, slot.tag);
                    }
                },
            }
        }
    }

    /// Looks the key up and submits its reads; a read that needs no device (an absent key, a
    /// record not yet on disk) or cannot be planned goes straight to `ready`.
    fn start(&mut self, key: Vec<u8>, tag: T, tries: usize) {
        let shared = self.shared;
        let entry = match shared.entry(&self.table, &key) {
            Ok(Some(e)) => e,
            Ok(None) => return self.ready.push_back((tag, Ok(None))),
            Err(e) => return self.ready.push_back((tag, Err(e))),
        };
        let loc = match &entry.place {
            Place::Pending {
                stripe_seq,
                record_offset,
                ..
            } => {
                if let Some(v) = shared.pending_value(*stripe_seq, *record_offset, entry.value_len)
                {
                    return self.ready.push_back((tag, Ok(Some(v))));
                }
                // Settled meanwhile: the index now points at the disk.
                return self.again(key, tag, tries);
            }
            Place::Disk(loc) => *loc,
        };
        let Ok(seg) = shared.segment(loc.segment_id) else {
            // Cleaned and freed since the lookup: the record is elsewhere now.
            return self.again(key, tag, tries);
        };
        if let Some((head, tail)) = crate::log::stripe::continued_parts(&loc, shared.array.k()) {
            return self.start_parts(tag, key, entry, loc, &seg, head, tail);
        }
        if let Some(w) = self.windows.iter().find(|w| w.holds(seg.id, &loc)) {
            shared.counters.reads.fetch_add(1, Ordering::Relaxed);
            shared
                .counters
                .degraded_reads
                .fetch_add(1, Ordering::Relaxed);
            if w.bytes.is_none() {
                let how = How::Window(w.id);
                return self.in_flight.push_back(Slot {
                    tag,
                    key,
                    entry,
                    loc,
                    how,
                });
            }
            let got = w.record(&loc);
            return self.checked(got, tag, key, &entry, &loc);
        }
        let window = self.next_window;
        let at = (seg.id, loc.offset_in_segment_bytes);
        let sequential = self.last_read.is_some_and(|(s, o)| {
            s == at.0 && at.1 >= o && at.1 - o <= shared.array.chunk_size() as u32
        });
        self.last_read = Some(at);
        // A spare read only while the queue is shallow: at a full queue the devices are
        // busy, and a fifth read per rebuilt value costs more throughput than it saves.
        let spares = match self.len() < HEDGE_BELOW_DEPTH {
            true => HEDGE_SPARES,
            false => 0,
        };
        match submit(shared, &seg, &loc, window, sequential, spares) {
            Some(how) => {
                let k = shared.array.k();
                let covers = match &how {
                    How::Rebuild(plan, _, _) => plan.yields(k),
                    How::Stripe(..) => (0..k).map(|j| (j, 0, loc.height_bytes as usize)).collect(),
                    _ => Vec::new(),
                };
                // Every read that could name a window takes its own id, so that a rebuild
                // with no window never completes another's.
                self.next_window += 1;
                if !covers.is_empty() {
                    self.windows.push_front(Window {
                        id: window,
                        segment_id: seg.id,
                        stripe_offset: loc.offset_in_segment_bytes,
                        covers,
                        bytes: None,
                    });
                }
                shared.counters.reads.fetch_add(1, Ordering::Relaxed);
                self.in_flight.push_back(Slot {
                    tag,
                    key,
                    entry,
                    loc,
                    how,
                });
            }
            None => self.gated(key, tag),
        }
    }

    /// Starts the reads of a record that continues in the next stripe (format version 5):
    /// its head from a window of its stripe when there is one, else read or rebuilt; its
    /// tail read or rebuilt, or, in a sequential read whose next stripe has a data chunk to
    /// rebuild, from that whole stripe, which becomes the window the records after it use.
    #[allow(clippy::too_many_arguments)]
    fn start_parts(
        &mut self,
        tag: T,
        key: Vec<u8>,
        entry: IndexEntry,
        loc: RecordLoc,
        seg: &Arc<SegmentInfo>,
        head: RecordLoc,
        tail: RecordLoc,
    ) {
        let shared = self.shared;
        let array = &shared.array;
        let k = array.k();
        let one = |l: &RecordLoc| -> Option<Part> {
            if let Some(rops) = fast_record_reads(array, seg, l) {
                let mut reads = FastReads::default();
                reads.add(0, rops);
                return Some(Part::Direct(reads.submit(array)));
            }
            let (ops, plan) = plan_record_rebuild(array, seg, l, 0)?;
            Some(Part::Rebuild(plan, array.io.submit(ops)))
        };
        let head_part = match self.windows.iter().find(|w| w.holds(seg.id, &head)) {
            Some(w) if w.bytes.is_some() => Some(Part::Bytes(w.record(&head))),
            Some(w) => Some(Part::Window(w.id)),
            None => one(&head),
        };
        let at = (seg.id, tail.offset_in_segment_bytes);
        let sequential = self.last_read.is_some_and(|(s, o)| {
            s == at.0 && at.1 >= o && at.1 - o <= 2 * array.chunk_size() as u32
        });
        self.last_read = Some(at);
        // The tail's stripe at the most its place holds (its real height is not known
        // here; rows past it are never taken: records of the next stripe name another
        // offset).
        let place = crate::log::stripe::place_height(array, tail.offset_in_segment_bytes);
        let whole = RecordLoc {
            height_bytes: place,
            ..tail
        };
        let tail_part = match (sequential && stripe_data_degraded(array, seg, &tail))
            .then(|| plan_stripe_rows(array, seg, &whole))
            .flatten()
        {
            Some((ops, shards)) => {
                let id = self.next_window;
                self.next_window += 1;
                self.windows.push_front(Window {
                    id,
                    segment_id: seg.id,
                    stripe_offset: tail.offset_in_segment_bytes,
                    covers: (0..k).map(|j| (j, 0, place as usize)).collect(),
                    bytes: None,
                });
                Some(Part::Stripe(shards, array.io.submit(ops), id))
            }
            None => one(&tail),
        };
        let (h, t) = match (head_part, tail_part) {
            (Some(h), Some(t)) => (h, t),
            // One part cannot be planned (fewer than k chunks): the ordinary path reads it.
            // The other's reads are waited for, and a window it opened is closed as failed.
            (h, t) => {
                for p in [h, t].into_iter().flatten() {
                    let window = match &p {
                        Part::Stripe(_, _, id) => Some(*id),
                        _ => None,
                    };
                    p.drain(array);
                    if let Some(id) = window {
                        self.window_done(id, None);
                    }
                }
                return self.gated(key, tag);
            }
        };
        shared.counters.reads.fetch_add(1, Ordering::Relaxed);
        self.in_flight.push_back(Slot {
            tag,
            key,
            entry,
            loc,
            how: How::Parts(Box::new([h, t])),
        });
    }

    /// The bytes of one part of a record in two stripes, once its reads completed (waiting
    /// for them if not), and the window its reads make (its id and rows). A part still
    /// waiting for a window is read on its own now.
    #[allow(clippy::type_complexity)]
    fn finish_part(
        &mut self,
        part: Part,
        part_loc: &RecordLoc,
        seg_id: u64,
    ) -> (Option<Vec<u8>>, Option<(u64, Option<Vec<ChunkBytes>>)>) {
        let array = &self.shared.array;
        let got = match part {
            Part::Bytes(b) => b,
            Part::Direct(reads) => direct_bytes(reads, array),
            Part::Rebuild(plan, batch) => {
                self.shared
                    .counters
                    .degraded_reads
                    .fetch_add(1, Ordering::Relaxed);
                let done = batch.wait().into_iter().map(Some).collect();
                finish_record_rebuild_keeping(array, &plan, done, None)
            }
            Part::Stripe(shards, batch, window) => {
                self.shared
                    .counters
                    .degraded_reads
                    .fetch_add(1, Ordering::Relaxed);
                let kept = finish_stripe_rows(array, &shards, batch.wait());
                let got = kept.as_deref().and_then(|c| record_from(c, part_loc));
                return (got, Some((window, kept)));
            }
            Part::Window(id) => match self.windows.iter().find(|w| w.id == id) {
                Some(w) if w.bytes.is_some() => w.record(part_loc),
                _ => (|| {
                    let seg = self.shared.segment(seg_id).ok()?;
                    let rops = fast_record_reads(array, &seg, part_loc)?;
                    let mut reads = FastReads::default();
                    reads.add(0, rops);
                    direct_bytes(reads.submit(array), array)
                })(),
            },
        };
        (got, None)
    }

    /// Ends the spare reads that have completed (their latency counts for their devices).
    fn reap_spares(&mut self) {
        let array = &self.shared.array;
        let mut i = 0;
        while i < self.spares.len() {
            if self.spares[i].completed() {
                for c in self.spares.swap_remove(i).wait_rest() {
                    array.observe_completion(&c);
                }
            } else {
                i += 1;
            }
        }
    }

    /// The record moved while it was looked up: look again, or, after a few tries, read it
    /// through the ordinary path.
    fn again(&mut self, key: Vec<u8>, tag: T, tries: usize) {
        self.shared
            .counters
            .reads_looked_again
            .fetch_add(1, Ordering::Relaxed);
        if tries < LOOKUP_RETRIES {
            self.start(key, tag, tries + 1)
        } else {
            self.gated(key, tag)
        }
    }

    /// Reads the key through the ordinary path (under the free gate, every check, the
    /// whole-stripe rebuild and repair).
    fn gated(&mut self, key: Vec<u8>, tag: T) {
        let got = self.shared.get(&self.table, &key);
        self.ready.push_back((tag, got));
    }

    /// Takes a completed read's bytes; hands the value on when they are the indexed record,
    /// else resolves the read under the gate.
    fn finish(&mut self, slot: Slot<T>) {
        let Slot {
            tag,
            key,
            entry,
            loc,
            how,
        } = slot;
        let array = &self.shared.array;
        let bytes = match how {
            How::Direct(reads) => direct_bytes(reads, array),
            How::Rebuild(plan, batch, window) => {
                self.shared
                    .counters
                    .degraded_reads
                    .fetch_add(1, Ordering::Relaxed);
                // Decoded from the reads that arrived; a spare still in flight is kept
                // until it completes.
                let done = match batch.completed() {
                    true => batch.wait().into_iter().map(Some).collect(),
                    false => {
                        let done = batch.take_done();
                        self.spares.push(batch);
                        done
                    }
                };
                let mut kept = Vec::new();
                let got = finish_record_rebuild_keeping(array, &plan, done, Some(&mut kept))
                    .and_then(|b| self.verify(b, &loc, &entry, &key));
                // A window is kept only when its own record verified: bytes of a chunk that
                // was read and is bad go no further than this read.
                self.window_done(window, got.is_some().then_some(kept));
                return self.hand_on(got, tag, key);
            }
            How::Stripe(shards, batch, window) => {
                self.shared
                    .counters
                    .degraded_reads
                    .fetch_add(1, Ordering::Relaxed);
                let kept = finish_stripe_rows(array, &shards, batch.wait());
                let got = kept
                    .as_deref()
                    .and_then(|c| record_from(c, &loc))
                    .and_then(|b| self.verify(b, &loc, &entry, &key));
                self.window_done(window, kept.filter(|_| got.is_some()));
                return self.hand_on(got, tag, key);
            }
            // Resolved by `window_done` when its rebuild completes, never finished here.
            How::Window(_) => None,
            How::Parts(parts) => {
                let Some((head, tail)) = crate::log::stripe::continued_parts(&loc, array.k())
                else {
                    return self.hand_on(None, tag, key);
                };
                let [h, t] = *parts;
                let (head_bytes, head_window) = self.finish_part(h, &head, loc.segment_id);
                let (tail_bytes, tail_window) = self.finish_part(t, &tail, loc.segment_id);
                let got = match (head_bytes, tail_bytes) {
                    (Some(mut b), Some(t)) => {
                        b.extend_from_slice(&t);
                        self.verify(b, &loc, &entry, &key)
                    }
                    _ => None,
                };
                // A window is kept only when the record that read it verified.
                for (id, kept) in [head_window, tail_window].into_iter().flatten() {
                    self.window_done(id, kept.filter(|_| got.is_some()));
                }
                return self.hand_on(got, tag, key);
            }
        };
        self.checked(bytes, tag, key, &entry, &loc)
    }

    /// A rebuild completed (`bytes`: what it read and decoded, None if it failed): the reads
    /// waiting for its window take their records from it (or, if it failed, read on their
    /// own), and it is kept for later reads.
    fn window_done(&mut self, id: u64, bytes: Option<Vec<ChunkBytes>>) {
        let Some(at) = self.windows.iter().position(|w| w.id == id) else {
            return;
        };
        let failed = bytes.is_none();
        let mut w = self.windows.remove(at).expect("position is in range");
        w.bytes = bytes;
        let waiting: VecDeque<Slot<T>> = {
            let (mine, others) = std::mem::take(&mut self.in_flight)
                .into_iter()
                .partition(|s| matches!(s.how, How::Window(x) if x == id));
            self.in_flight = others;
            mine
        };
        for s in waiting {
            let got = w.record(&s.loc);
            self.checked(got, s.tag, s.key, &s.entry, &s.loc);
        }
        // Heads of records in two stripes that wait for this window take their bytes.
        let k = self.shared.array.k();
        for s in self.in_flight.iter_mut() {
            if let How::Parts(parts) = &mut s.how {
                if matches!(parts[0], Part::Window(x) if x == id) {
                    let head = crate::log::stripe::continued_parts(&s.loc, k).map(|p| p.0);
                    parts[0] = Part::Bytes(head.and_then(|h| w.record(&h)));
                }
            }
        }
        if !failed {
            // Completed windows after those in flight, newest first.
            let first_done = self
                .windows
                .iter()
                .position(|w| w.bytes.is_some())
                .unwrap_or(self.windows.len());
            self.windows.insert(first_done, w);
            let done = self.windows.len() - first_done;
            if done > KEPT_WINDOWS {
                self.windows.pop_back();
            }
        }
    }

    /// Hands the value on when `bytes` are the indexed record, else resolves the read under
    /// the gate.
    fn checked(
        &mut self,
        bytes: Option<Vec<u8>>,
        tag: T,
        key: Vec<u8>,
        entry: &IndexEntry,
        loc: &RecordLoc,
    ) {
        let value = bytes.and_then(|b| self.verify(b, loc, entry, &key));
        self.hand_on(value, tag, key)
    }

    /// The value, when `bytes` are the record the index entry names.
    fn verify(
        &self,
        bytes: Vec<u8>,
        loc: &RecordLoc,
        entry: &IndexEntry,
        key: &[u8],
    ) -> Option<Vec<u8>> {
        verify_record(
            self.shared.array.record_format(),
            bytes,
            loc,
            (entry.lsn, entry.value_len),
            &self.table,
            key,
        )
    }

    /// Hands a verified value on, or reads the key through the gated path.
    fn hand_on(&mut self, value: Option<Vec<u8>>, tag: T, key: Vec<u8>) {
        if let Some(v) = value {
            return self.ready.push_back((tag, Ok(Some(v))));
        }
        // The ordinary path holds the free gate (no segment is freed under it) and looks the
        // key up again: a record that moved is read where it is now; one that did not failed
        // on the devices, and that path finds out why (and repairs).
        self.shared
            .counters
            .reads_looked_again
            .fetch_add(1, Ordering::Relaxed);
        self.gated(key, tag);
    }
}

/// The bytes of one record's direct reads, once they completed (None if one failed).
fn direct_bytes(reads: FastBatch, array: &crate::array::Array) -> Option<Vec<u8>> {
    let (mut bytes, failed) = reads.finish(array, 1);
    bytes.pop().flatten().filter(|_| !failed[0])
}

/// Submits the reads of one record: its own blocks when its chunks are on available, fast
/// devices, else the same bytes of k other chunks. None when neither can be planned.
fn submit(
    shared: &Shared,
    seg: &Arc<SegmentInfo>,
    loc: &RecordLoc,
    window: u64,
    sequential: bool,
    spares: usize,
) -> Option<How> {
    let array = &shared.array;
    if sequential && stripe_data_degraded(array, seg, loc) {
        if let Some((ops, shards)) = plan_stripe_rows(array, seg, loc) {
            return Some(How::Stripe(shards, array.io.submit(ops), window));
        }
    }
    if let Some(rops) = fast_record_reads(array, seg, loc) {
        let mut reads = FastReads::default();
        reads.add(0, rops);
        return Some(How::Direct(reads.submit(array)));
    }
    let (ops, plan) = plan_record_rebuild(array, seg, loc, spares)?;
    Some(How::Rebuild(plan, array.io.submit(ops), window))
}

impl<T> Drop for ReadQueue<'_, T> {
    fn drop(&mut self) {
        // Buffers of reads in flight are owned by their batches until they complete.
        for spare in self.spares.drain(..) {
            drop(spare.wait_rest());
        }
        for slot in self.in_flight.drain(..) {
            match slot.how {
                How::Direct(reads) => drop(reads.finish(&self.shared.array, 1)),
                How::Rebuild(_, batch, _) | How::Stripe(_, batch, _) => drop(batch.wait()),
                How::Window(_) => {}
                How::Parts(parts) => {
                    let [h, t] = *parts;
                    h.drain(&self.shared.array);
                    t.drain(&self.shared.array);
                }
            }
        }
    }
}
