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
//! When the check fails the read is resolved under the gate: the index is looked up again; a
//! record that moved meanwhile is read again where it is now, and one that did not takes the
//! ordinary path with all its checks, the whole-stripe rebuild and the repair.

use crate::error::Result;
use crate::index::{IndexEntry, Place, RecordLoc};
use crate::log::read::verify_record;
use crate::log::stripe::RecordRebuild;
use crate::log::stripe::{finish_record_rebuild, plan_record_rebuild, record_read_ops};
use crate::segments::SegmentInfo;
use crate::shared::Shared;
use ectable_devices::{IoBatch, IoOp};
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
    /// The queue holds io_uring operations of the creating thread.
    _not_send: std::marker::PhantomData<*const ()>,
}

struct Slot<T> {
    tag: T,
    key: Vec<u8>,
    entry: IndexEntry,
    loc: RecordLoc,
    how: How,
    batch: IoBatch,
}

enum How {
    /// The record's blocks read where they are: (skip, take) per operation.
    Direct(Vec<(usize, usize)>),
    /// The record rebuilt from k other chunks (its own chunk is on a missing or slow device).
    Rebuild(RecordRebuild),
}

impl<'e, T> ReadQueue<'e, T> {
    pub(crate) fn new(shared: &'e Shared, table: &str) -> ReadQueue<'e, T> {
        ReadQueue {
            shared,
            table: table.to_string(),
            in_flight: VecDeque::new(),
            ready: VecDeque::new(),
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
        loop {
            if let Some(done) = self.ready.pop_front() {
                return Some(done);
            }
            let oldest = self.in_flight.front()?;
            match self.in_flight.iter().position(|s| s.batch.completed()) {
                Some(i) => {
                    let slot = self.in_flight.remove(i).expect("position is in range");
                    self.finish(slot);
                }
                None => oldest.batch.wait_progress(WAIT_SLICE),
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
        match plan(shared, &seg, &loc) {
            Some((ops, how)) => {
                shared.counters.reads.fetch_add(1, Ordering::Relaxed);
                let batch = shared.array.io.submit(ops);
                self.in_flight.push_back(Slot {
                    tag,
                    key,
                    entry,
                    loc,
                    how,
                    batch,
                });
            }
            None => self.gated(key, tag),
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
            batch,
        } = slot;
        let array = &self.shared.array;
        let done = batch.wait();
        let bytes = match how {
            How::Direct(plan) => {
                let mut bytes = Vec::with_capacity(loc.record_len as usize);
                let mut ok = true;
                for (c, (skip, take)) in done.iter().zip(plan) {
                    if let Some(s) = array.slot_of_device(c.op.device_index) {
                        array.observe(s, c.op.kind, c.latency, c.result.as_ref().err());
                    }
                    match c.result {
                        Ok(()) => bytes.extend_from_slice(&c.op.buf[skip..skip + take]),
                        Err(_) => ok = false,
                    }
                }
                ok.then_some(bytes)
            }
            How::Rebuild(plan) => {
                self.shared
                    .counters
                    .degraded_reads
                    .fetch_add(1, Ordering::Relaxed);
                finish_record_rebuild(array, &plan, done)
            }
        };
        if let Some(v) = bytes.and_then(|b| verify_record(&b, &loc, entry.lsn, &self.table, &key)) {
            return self.ready.push_back((tag, Ok(Some(v))));
        }
        // Under the gate no segment is freed: if the index still names this record, the read
        // failed on the devices and the ordinary path finds out why (and repairs); if it moved,
        // read it where it is now.
        self.shared
            .counters
            .reads_looked_again
            .fetch_add(1, Ordering::Relaxed);
        let now = {
            let _gate = self.shared.read_gate();
            match self.shared.entry(&self.table, &key) {
                Ok(Some(e)) if e == entry => {
                    let items = [(key.as_slice(), Some(e))];
                    let got = self.shared.load_values(&self.table, &items);
                    Some(got.map(|mut v| v.pop().flatten()))
                }
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        };
        match now {
            Some(got) => self.ready.push_back((tag, got)),
            None => self.start(key, tag, 0),
        }
    }
}

/// The reads of one record: its own blocks when its chunks are on available, fast devices,
/// else the same bytes of k other chunks. None when neither can be planned.
fn plan(shared: &Shared, seg: &Arc<SegmentInfo>, loc: &RecordLoc) -> Option<(Vec<IoOp>, How)> {
    let array = &shared.array;
    if let Ok(rops) = record_read_ops(array, seg, loc) {
        let slow = rops.iter().any(|(r, _, _)| {
            array
                .slot_of_device(r.device)
                .is_some_and(|s| array.avoid_for_reads(s))
        });
        if !slow {
            let ops = rops
                .iter()
                .map(|(r, _, _)| IoOp::read(r.device, r.offset, r.len))
                .collect();
            let plan = rops.iter().map(|(_, skip, take)| (*skip, *take)).collect();
            return Some((ops, How::Direct(plan)));
        }
    }
    plan_record_rebuild(array, seg, loc).map(|(ops, p)| (ops, How::Rebuild(p)))
}

impl<T> Drop for ReadQueue<'_, T> {
    fn drop(&mut self) {
        // Buffers of reads in flight are owned by their batches until they complete.
        for slot in self.in_flight.drain(..) {
            drop(slot.batch.wait());
        }
    }
}
