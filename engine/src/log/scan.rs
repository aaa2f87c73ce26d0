//! Streaming scans: an iterator that pages through the index and keeps the next page's
//! device reads in flight while the caller takes the rows of this one (docs/design.md,
//! "Streaming scans").
//!
//! A page is listed under the index lock (at most `PAGE_ROWS` keys or `PAGE_VALUE_BYTES` of
//! values), its on-disk records' reads coalesced and submitted at once (`start_load`), and
//! finished later (`finish_load`). Like a read queue, a page's reads do not hold the free
//! gate while in flight: a row is accepted only when its bytes are the record the index
//! named; any other row (in memory, on a slow or missing device, moved or failed) is looked
//! up again under the gate and read through the ordinary path, which skips it if it was
//! deleted meanwhile. A scan is therefore not a snapshot: each row is the key's value at
//! some moment during the scan, and rows come in key order.

use crate::error::Result;
use crate::index::{IndexEntry, Place};
use crate::log::read::{fast_record_reads, verify_record, FastBatch, FastReads};
use crate::shared::Shared;
use crate::sync::RwLockExt;
use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::atomic::Ordering;

/// Most keys listed for one page.
pub(crate) const PAGE_ROWS: usize = 2048;
/// Most value bytes of one page (a page holds at least one key).
pub(crate) const PAGE_VALUE_BYTES: usize = 8 << 20;
/// Pages whose reads are in flight ahead of the one being handed out.
const READ_AHEAD_PAGES: usize = 2;

/// The rows of one page with their fast-path reads in flight.
pub(crate) struct PendingLoad {
    items: Vec<(Vec<u8>, IndexEntry)>,
    reads: FastBatch,
    /// Items whose record was planned on the fast path.
    fast: Vec<bool>,
}

impl Shared {
    /// Submits, all together and coalesced, the reads of the items whose records lie on
    /// available, fast devices; the rest are read in `finish_load`.
    pub(crate) fn start_load(&self, items: Vec<(Vec<u8>, IndexEntry)>) -> PendingLoad {
        let array = &self.array;
        let mut reads = FastReads::default();
        let mut fast = vec![false; items.len()];
        for (i, (_, e)) in items.iter().enumerate() {
            let Place::Disk(loc) = &e.place else { continue };
            let Ok(seg) = self.segment(loc.segment_id) else {
                continue;
            };
            if let Some(rops) = fast_record_reads(array, &seg, loc) {
                reads.add(i, rops);
                fast[i] = true;
            }
        }
        self.counters.reads.fetch_add(
            fast.iter().filter(|f| **f).count() as u64,
            Ordering::Relaxed,
        );
        PendingLoad {
            items,
            reads: reads.submit(array),
            fast,
        }
    }

    /// Waits for a page's reads and returns its rows in order: (key, value), a row deleted
    /// meanwhile left out.
    pub(crate) fn finish_load(
        &self,
        table: &str,
        p: PendingLoad,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let n = p.items.len();
        let (mut bytes, failed) = p.reads.finish(&self.array, n);
        let mut values: Vec<Option<Vec<u8>>> = vec![None; n];
        let mut again = Vec::new();
        for (i, (key, e)) in p.items.iter().enumerate() {
            let checked = match (&e.place, bytes[i].take()) {
                (Place::Disk(loc), Some(b)) if p.fast[i] && !failed[i] => verify_record(
                    self.array.record_format(),
                    b,
                    loc,
                    (e.lsn, e.value_len),
                    table,
                    key,
                ),
                _ => None,
            };
            match checked {
                Some(v) => values[i] = Some(v),
                None => again.push(i),
            }
        }
        if !again.is_empty() {
            // Through the ordinary path, which holds the free gate (no segment is freed under
            // it) and looks each key up again: in memory, rebuilt, repaired; absent if deleted
            // meanwhile.
            let checked_and_failed = again.iter().filter(|&&i| p.fast[i]).count();
            self.counters
                .reads_looked_again
                .fetch_add(checked_and_failed as u64, Ordering::Relaxed);
            let keys: Vec<&[u8]> = again.iter().map(|&i| p.items[i].0.as_slice()).collect();
            for (&i, v) in again.iter().zip(self.get_many(table, &keys)?) {
                values[i] = v;
            }
        }
        Ok(p.items
            .into_iter()
            .zip(values)
            .filter_map(|((k, _), v)| v.map(|v| (k, v)))
            .collect())
    }
}

/// Rows of one key/value table in key order (or reverse key order) within bounds, read a
/// page at a time with the next pages' reads in flight. See `Engine::scan_iter`.
///
/// The iterator is used on the thread that made it (its reads are in that thread's io_uring
/// ring). After an error it ends.
pub struct Scan<'e> {
    shared: &'e Shared,
    table: String,
    /// The bound that moves as pages are listed (the lower one going forward, the upper one
    /// in reverse) and the one that stays.
    moving: Bound<Vec<u8>>,
    fixed: Bound<Vec<u8>>,
    reverse: bool,
    listed_all: bool,
    /// Keys it may still list (a caller's limit; `usize::MAX` without one).
    left: usize,
    in_flight: VecDeque<PendingLoad>,
    current: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    ended: bool,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl<'e> Scan<'e> {
    pub(crate) fn new(
        shared: &'e Shared,
        table: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
    ) -> Scan<'e> {
        let (from, to) = (from.map(<[u8]>::to_vec), to.map(<[u8]>::to_vec));
        let (moving, fixed) = if reverse { (to, from) } else { (from, to) };
        Scan {
            shared,
            table: table.to_string(),
            moving,
            fixed,
            reverse,
            listed_all: false,
            left: usize::MAX,
            in_flight: VecDeque::new(),
            current: Vec::new().into_iter(),
            ended: false,
            _not_send: std::marker::PhantomData,
        }
    }

    /// Lists (and reads) at most `n` keys in all: a caller that wants only the first `n`
    /// rows does not read the rest of a page, nor pages ahead.
    pub(crate) fn limit(mut self, n: usize) -> Scan<'e> {
        self.left = n;
        self.listed_all = n == 0;
        self
    }

    /// Lists the next page of keys and starts its reads.
    fn list_page(&mut self) {
        let (page, full) = {
            let index = self.shared.index.read_locked();
            let Some(t) = index.tables.get(&self.table) else {
                self.listed_all = true;
                return;
            };
            let (m, f) = (
                self.moving.as_ref().map(Vec::as_slice),
                self.fixed.as_ref().map(Vec::as_slice),
            );
            let it: Box<dyn Iterator<Item = (&[u8], IndexEntry)>> = if self.reverse {
                Box::new(t.range_rev(f, m))
            } else {
                Box::new(t.range(m, f))
            };
            let (mut page, mut bytes, mut full) = (Vec::new(), 0usize, false);
            for (k, e) in it {
                bytes += e.value_len as usize;
                page.push((k.to_vec(), e));
                if page.len() >= PAGE_ROWS.min(self.left) || bytes >= PAGE_VALUE_BYTES {
                    full = true;
                    break;
                }
            }
            (page, full)
        };
        self.left = self.left.saturating_sub(page.len());
        match page.last() {
            Some((k, _)) if full && self.left > 0 => self.moving = Bound::Excluded(k.clone()),
            _ => self.listed_all = true,
        }
        if !page.is_empty() {
            let load = self.shared.start_load(page);
            self.in_flight.push_back(load);
        }
    }

    fn fill(&mut self) {
        while !self.listed_all && self.in_flight.len() < READ_AHEAD_PAGES {
            self.list_page();
        }
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.current.next() {
                return Some(Ok(row));
            }
            if self.ended {
                return None;
            }
            if let Err(e) = self.shared.check_alive() {
                self.ended = true;
                return Some(Err(e));
            }
            self.fill();
            let Some(page) = self.in_flight.pop_front() else {
                self.ended = true;
                return None;
            };
            // The next pages' reads go out before this one is waited for.
            self.fill();
            match self.shared.finish_load(&self.table, page) {
                Ok(rows) => self.current = rows.into_iter(),
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
