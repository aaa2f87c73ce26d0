//! The sync journal's writing side (format version 2; docs/format.md, "Sync journal"): the
//! flusher acknowledges a sync by writing the records not yet acknowledged, all of them in
//! the open stripe, as one entry at the same place of the ring on m + 1 online members and
//! flushing it there. The records reach the coded log when their stripe is sealed.
//!
//! Invariants:
//! - An entry continues what was acknowledged before it: its first LSN is the acknowledged
//!   LSN + 1, and every record before the open stripe is already acknowledged.
//! - The ring is written over only where every entry it held is in flushed stripes.
//! - `journal_lsn` moves only when the entry was written and flushed on m + 1 members;
//!   otherwise the sync takes a short stripe.
//! - Only groups of at most half a stripe's payload are journaled; larger ones take a
//!   stripe (fewer bytes moved).

use crate::format::journal::{encode_entry, entry_bytes, JOURNAL_START_BYTES};
use crate::format::log_record;
use crate::format::FORMAT_VERSION_JOURNAL;
use crate::log::state::WriterState;
use crate::shared::Shared;
use ectable_devices::{AlignedBuf, IoOp};
use std::ops::Range;
use std::sync::atomic::Ordering;

/// One entry to write: taken from the open stripe under the writer lock.
pub(crate) struct JournalJob {
    entry: AlignedBuf,
    place: Range<usize>,
    slots: Vec<u32>,
    last_lsn: u64,
}

impl Shared {
    /// Whether this array keeps a sync journal.
    pub(crate) fn journal_enabled(&self) -> bool {
        self.array.sb.format_version >= FORMAT_VERSION_JOURNAL && !self.array.read_only
    }

    /// The entry that acknowledges every record appended so far, if the journal can take
    /// it (docs/format.md, "Sync journal", Writing); None: the sync takes a short stripe.
    pub(crate) fn journal_job(&self, st: &mut WriterState) -> Option<JournalJob> {
        let open = st.open.as_ref()?;
        let acked = st.acked_lsn();
        // A stripe that starts with a tail is flushed instead (the sync that wants the
        // continued record has `force_stripes_lsn` at it).
        if open.records.is_empty()
            || open.carried.is_some()
            || open.last_lsn <= acked
            || acked + 1 < open.first_lsn
            || open.last_lsn <= st.journal_ring.refused_through
        {
            return None;
        }
        let copies = self.array.m() + 1;
        let n = self.array.n();
        // m + 1 online members, preferring those not found slow, rotating over the slots.
        let mut slots: Vec<u32> = Vec::with_capacity(copies);
        for pass in 0..2 {
            for i in 0..n {
                let slot = (st.journal_ring.rotation + i) % n;
                if slots.len() == copies || slots.contains(&(slot as u32)) {
                    continue;
                }
                let online = self.array.device_of_slot(slot as u32).is_some();
                if online && (pass == 1 || !self.array.avoid_for_reads(slot)) {
                    slots.push(slot as u32);
                }
            }
        }
        if slots.len() < copies {
            return None;
        }
        let first = (acked + 1 - open.first_lsn) as usize;
        let head = open.records.get(first)?;
        let from = head.offset as usize;
        // A large group is cheaper as a stripe: the journal moves its bytes m + 1 times now
        // and w/k times later, a stripe w/k times once; past half a stripe, bandwidth counts
        // more than the journal's saved round trip.
        if open.buf.len() - from > self.array.max_stripe_payload() / 2 {
            return None;
        }
        // An entry's first record stores its table name (docs/format.md, "Compact
        // records"): one the stripe elided is written with it, the rest as they are.
        let named;
        let (first_part, rest) = if head.table_stored {
            (&[][..], &open.buf[from..])
        } else {
            let end = from + (head.len as usize).next_multiple_of(8);
            let rec = &open.buf[from..from + head.len as usize];
            named = log_record::with_table_stored(head.fmt, rec, head.table(&open.buf));
            (&named[..], &open.buf[end..])
        };
        let payload_len = first_part.len() + rest.len();
        let place = st
            .journal_ring
            .place_for(entry_bytes(payload_len), st.durable_lsn)?;
        st.journal_ring.rotation = (st.journal_ring.rotation + copies) % n;
        // Encoded straight into the buffer that is written: one copy of the records.
        let mut entry = AlignedBuf::new(place.len());
        encode_entry(
            &self.array.sb.array_uuid,
            self.array.write_epoch.load(Ordering::SeqCst),
            (acked + 1, open.last_lsn),
            &[first_part, rest],
            &mut entry,
        );
        Some(JournalJob {
            entry,
            place,
            slots,
            last_lsn: open.last_lsn,
        })
    }

    /// The entry a syncing caller writes itself, from its own thread, when no other writer
    /// waits (the caller checks that), no other entry is being written, and nothing needs
    /// stripes (a checkpoint's pause, close, records an open replayed). Stripe writes may
    /// be in flight: the entry holds only records of the open stripe, and everything before
    /// it is already acknowledged ([`Shared::journal_job`] checks that), so the stripes and
    /// the entry do not depend on each other. This saves the hand-off to the flusher
    /// thread and back, and the wait behind a stripe write and flush that every stripe's
    /// worth of synced puts used to pay once (docs/performance.md, "Synced puts"). Writers
    /// that arrive meanwhile wait, and the flusher takes them as one group when the entry
    /// is done. The caller must pass the job to [`Shared::journal_write`] (which clears
    /// `journal_busy`).
    pub(crate) fn journal_job_for_caller(&self, st: &mut WriterState) -> Option<JournalJob> {
        // `sync_wanted(..).0`: what is waited for needs stripes (the flusher's own test).
        if !self.journal_enabled()
            || st.journal_busy
            || Self::sync_wanted(st, true).0
            || st.flusher_done
            || st.error.is_some()
            || self.check_alive().is_err()
        {
            return None;
        }
        let job = self.journal_job(st)?;
        st.journal_busy = true;
        Some(job)
    }

    /// Writes the entry to its members, durable there when the writes complete. On success
    /// the records are acknowledged (`journal_lsn`); otherwise the ring refuses these LSNs
    /// and the sync takes a short stripe. Clears `journal_busy` (also if it unwinds) and
    /// wakes the flusher, which may have writers waiting for the next entry.
    pub(crate) fn journal_write(&self, job: JournalJob, by_caller: bool) {
        /// Clears `journal_busy` however the write ends: left set, no sync would ever be
        /// acknowledged again.
        struct Busy<'a>(&'a Shared);
        impl Drop for Busy<'_> {
            fn drop(&mut self) {
                let mut st = self.0.lock_state();
                st.journal_busy = false;
                self.0.work_cv.notify_all();
                self.0.durable_cv.notify_all();
            }
        }
        let busy = Busy(self);
        let array = &self.array;
        let buf = job.entry;
        let offset = JOURNAL_START_BYTES + job.place.start as u64;
        // One request per member: the write and the flush it needs (RWF_DSYNC), so the
        // entry costs one round trip, not a write and then a flush.
        let ops: Vec<IoOp> = job
            .slots
            .iter()
            .filter_map(|&slot| array.device_of_slot(slot))
            .map(|d| IoOp::write_durable(d, offset, buf.clone()))
            .collect();
        let mut durable = 0;
        for c in array.io.execute(ops) {
            array.observe_completion(&c);
            if c.result.is_ok() {
                durable += 1;
            }
        }
        let all = durable >= job.slots.len();
        if all {
            self.counters
                .journal_entries_written
                .fetch_add(1, Ordering::Relaxed);
            if by_caller {
                self.counters
                    .journal_entries_by_caller
                    .fetch_add(1, Ordering::Relaxed);
            }
        } else {
            tracing::warn!(
                "sync journal entry reached {durable} of {} members: the sync takes a stripe",
                job.slots.len()
            );
        }
        let mut st = self.lock_state();
        // Ring space is spoken for even if the write failed: a partial entry lies there.
        st.journal_ring
            .entries
            .push_back((job.place.clone(), job.last_lsn));
        st.journal_ring.cursor = job.place.end;
        if all {
            st.journal_lsn = st.journal_lsn.max(job.last_lsn);
        } else {
            st.journal_ring.refused_through = job.last_lsn;
        }
        st.journal_busy = false;
        // After a caller's entry the flusher has work only if something is still waited for
        // (writers it left to the flusher, a checkpoint or close that needs stripes) or
        // stripes wait for their flush (which frees the ring).
        let wake_flusher =
            !by_caller || Self::sync_wanted(&st, true).1 || !st.unflushed_segments.is_empty();
        drop(st);
        // Done by hand above, in the same lock as the acknowledgement.
        std::mem::forget(busy);
        if wake_flusher {
            self.work_cv.notify_all();
        }
        self.durable_cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use crate::format::journal::JOURNAL_BYTES;
    use crate::log::state::JournalRing;

    #[test]
    fn the_ring_wraps_and_never_overwrites_what_is_not_in_flushed_stripes() {
        let mut ring = JournalRing::new();
        let e = 8192;
        let p = ring.place_for(e, 0).expect("empty ring");
        assert_eq!(p, 0..e);
        ring.entries.push_back((p.clone(), 10));
        ring.cursor = p.end;
        // Fill the ring up to its end.
        let mut last = 10;
        while ring.cursor + e <= JOURNAL_BYTES {
            let p = ring.place_for(e, 0).expect("room left");
            last += 1;
            ring.entries.push_back((p.clone(), last));
            ring.cursor = p.end;
        }
        // The next one wraps to 0, where LSN 10's entry lies: not before it is durable.
        assert_eq!(ring.place_for(e, 9), None);
        assert_eq!(ring.place_for(e, 10), Some(0..e));
    }
}
