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

use crate::error::Result;
use crate::index::{IndexEntry, Place, RecordLoc};
use crate::log::read::{fast_record_reads, verify_record, FastBatch, FastReads};
use crate::log::stripe::{finish_record_rebuild, plan_record_rebuild, RecordRebuild};
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
}

enum How {
    /// The record's blocks read where they are.
    Direct(FastBatch),
    /// The record rebuilt from k other chunks (its own chunk is on a missing or slow device).
    Rebuild(RecordRebuild, IoBatch),
}

impl How {
    fn batch(&self) -> &IoBatch {
        match self {
            How::Direct(f) => f.batch(),
            How::Rebuild(_, b) => b,
        }
    }
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
            match self
                .in_flight
                .iter()
                .position(|s| s.how.batch().completed())
            {
                Some(i) => {
                    let slot = self.in_flight.remove(i).expect("position is in range");
                    self.finish(slot);
                }
                None => oldest.how.batch().wait_progress(WAIT_SLICE),
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
        match submit(shared, &seg, &loc) {
            Some(how) => {
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
            How::Direct(reads) => {
                let (mut bytes, failed) = reads.finish(array, 1);
                bytes.pop().flatten().filter(|_| !failed[0])
            }
            How::Rebuild(plan, batch) => {
                self.shared
                    .counters
                    .degraded_reads
                    .fetch_add(1, Ordering::Relaxed);
                finish_record_rebuild(array, &plan, batch.wait())
            }
        };
        if let Some(v) = bytes.and_then(|b| {
            verify_record(
                array.record_format(),
                &b,
                &loc,
                (entry.lsn, entry.value_len),
                &self.table,
                &key,
            )
        }) {
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

/// Submits the reads of one record: its own blocks when its chunks are on available, fast
/// devices, else the same bytes of k other chunks. None when neither can be planned.
fn submit(shared: &Shared, seg: &Arc<SegmentInfo>, loc: &RecordLoc) -> Option<How> {
    let array = &shared.array;
    if let Some(rops) = fast_record_reads(array, seg, loc) {
        let mut reads = FastReads::default();
        reads.add(0, rops);
        return Some(How::Direct(reads.submit(array)));
    }
    let (ops, plan) = plan_record_rebuild(array, seg, loc)?;
    Some(How::Rebuild(plan, array.io.submit(ops)))
}

impl<T> Drop for ReadQueue<'_, T> {
    fn drop(&mut self) {
        // Buffers of reads in flight are owned by their batches until they complete.
        for slot in self.in_flight.drain(..) {
            match slot.how {
                How::Direct(reads) => drop(reads.finish(&self.shared.array, 1)),
                How::Rebuild(_, batch) => drop(batch.wait()),
            }
        }
    }
}
