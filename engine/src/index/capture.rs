//! An index checkpoint taken a slice at a time while writers go on (docs/design.md,
//! "Recovery": "Index checkpoints are taken beside writers"). The image must hold exactly the index as of one LSN L. Taking it whole
//! under the index lock stopped every writer for as long as the encoding ran (over a second
//! at 10 M keys). Instead, while an image is being taken, the index keeps the entry as of L
//! of each key that changes after L and that the image has not reached yet (its
//! *pre-image*: the entry, or None when the key had none), and the encoder reads the index a
//! slice at a time, taking the pre-image wherever there is one.
//!
//! Invariants:
//! - The capture is installed while appends are held back and every appended record is
//!   durable and on disk in the index (the writer is quiesced at L), and removed when the
//!   image is complete or abandoned.
//! - Every change to the index goes through `Index::put` or `Index::delete`, which call
//!   [`Capture::remember`] before changing anything; the flusher's switch of an entry from
//!   memory to its disk location changes only entries whose LSN is above L, whose pre-image
//!   was kept when the entry was put (or which the image had passed).
//! - The image has written every table before `pos` and, of table `pos`, the keys up to
//!   `key`; a change at or before that point needs no pre-image (the image already holds
//!   the key as of L), a change after it keeps the first pre-image only.

use super::{Index, IndexEntry, KeyMap};
use crate::format::checkpoint::ImageWriter;
use crate::sync::MutexExt;
use std::collections::BTreeMap;
use std::ops::Bound;

/// The pre-images of a checkpoint being taken, and how far the image has got.
pub struct Capture {
    /// The tables with keys at L, in name order: the image's tables.
    tables: Vec<String>,
    /// The image is in table `pos` (`tables.len()`: complete).
    pos: usize,
    /// The last key of table `pos` written; None: the table is not begun (an empty key:
    /// begun, no key written yet; keys are never empty).
    key: Option<Vec<u8>>,
    /// Per table: key → its entry at L, for keys changed since and not reached yet.
    before: Vec<BTreeMap<Vec<u8>, Option<IndexEntry>>>,
    /// Pre-images kept in all (for the figures and the tests).
    kept: u64,
}

impl Capture {
    /// Keeps the pre-image of (`table`, `key`) if the image will still read the key, before
    /// `tables` changes it.
    pub(super) fn remember(
        &mut self,
        tables: &std::collections::HashMap<String, KeyMap>,
        table: &str,
        key: &[u8],
    ) {
        let Ok(p) = self.tables.binary_search_by(|t| t.as_str().cmp(table)) else {
            return; // a table created after L: not in the image
        };
        let passed =
            p < self.pos || (p == self.pos && self.key.as_deref().is_some_and(|done| key <= done));
        if passed || self.before[p].contains_key(key) {
            return;
        }
        let old = tables.get(table).and_then(|t| t.get(key));
        self.before[p].insert(key.to_vec(), old);
        self.kept += 1;
    }
}

/// What [`Index::image_slice`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slice {
    /// More of the index is left.
    More,
    /// Every table is written: the image is complete.
    Done,
}

impl Index {
    /// Begins taking an image of the index as it is now (the writer quiesced: every entry
    /// on disk). False if an image is being taken already.
    pub fn begin_image(&mut self) -> bool {
        let capture = self.capture.get_mut().unwrap_or_else(|p| p.into_inner());
        if capture.is_some() {
            return false;
        }
        let mut tables: Vec<String> = self
            .tables
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(t, _)| t.clone())
            .collect();
        tables.sort();
        *capture = Some(Capture {
            before: vec![BTreeMap::new(); tables.len()],
            tables,
            pos: 0,
            key: None,
            kept: 0,
        });
        true
    }

    /// Ends (or abandons) the image being taken, dropping its pre-images. Returns how many
    /// pre-images it kept.
    pub fn end_image(&self) -> u64 {
        self.capture.locked().take().map_or(0, |c| c.kept)
    }

    /// Writes up to `max` more keys of the image into `out` (keys looked at: a key deleted
    /// since L takes a turn without an entry). None if there is no image being taken or the
    /// writer refused an entry (see [`ImageWriter`]).
    pub fn image_slice(&self, out: &mut ImageWriter, max: usize) -> Option<Slice> {
        let mut guard = self.capture.locked();
        let c = guard.as_mut()?;
        let mut n = 0;
        while n < max {
            let Some(name) = c.tables.get(c.pos) else {
                return Some(Slice::Done);
            };
            let map = self.tables.get(name);
            let before = &mut c.before[c.pos];
            if c.key.is_none() {
                // The table's entry count at L: the keys now, less those changed since that
                // have an entry now, plus those that had one at L.
                let mut count = map.map_or(0, KeyMap::len) as i64;
                for (k, pre) in before.iter() {
                    count -= map.and_then(|m| m.get(k)).is_some() as i64;
                    count += pre.is_some() as i64;
                }
                if count <= 0 {
                    c.pos += 1;
                    continue;
                }
                out.table(name, count as u64)?;
                c.key = Some(Vec::new());
            }
            let done = c.key.as_deref().unwrap_or_default();
            let lo = if done.is_empty() {
                Bound::Unbounded
            } else {
                Bound::Excluded(done)
            };
            let mut now = map
                .into_iter()
                .flat_map(|m| m.range(lo, Bound::Unbounded))
                .peekable();
            let mut then = before.range::<[u8], _>((lo, Bound::Unbounded)).peekable();
            // Borrowed until the slice ends: copied once per slice, not once per key.
            let mut last: Option<&[u8]> = None;
            let mut table_done = false;
            while n < max {
                let from_now = match (now.peek(), then.peek()) {
                    (None, None) => {
                        table_done = true;
                        break;
                    }
                    (Some((a, _)), Some((b, _))) => {
                        if *a == b.as_slice() {
                            now.next(); // changed since L: the pre-image stands for it
                            false
                        } else {
                            *a < b.as_slice()
                        }
                    }
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                };
                if from_now {
                    let Some((k, e)) = now.next() else { break };
                    out.entry(k, &e)?;
                    last = Some(k);
                } else {
                    let Some((k, pre)) = then.next() else { break };
                    if let Some(e) = pre {
                        out.entry(k, e)?;
                    }
                    last = Some(k.as_slice());
                }
                n += 1;
            }
            let last = last.map(<[u8]>::to_vec);
            drop(now);
            drop(then);
            if table_done {
                c.before[c.pos] = BTreeMap::new();
                c.pos += 1;
                c.key = None;
            } else if let Some(last) = last {
                // The pre-images the image has passed are no longer needed.
                let rest = before.split_off(last.as_slice());
                *before = rest;
                c.key = Some(last);
            }
        }
        if c.pos == c.tables.len() {
            return Some(Slice::Done);
        }
        Some(Slice::More)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::checkpoint::{encode, ResumePoint};
    use crate::index::{Place, RecordLoc};
    use proptest::prelude::*;

    const L: u64 = 1_000;
    const TABLES: [&str; 4] = ["a", "bb", "c", "d"];

    fn disk(lsn: u64, seed: u32) -> IndexEntry {
        IndexEntry {
            lsn,
            value_len: seed % 300,
            place: Place::Disk(RecordLoc {
                segment_id: 5 + (seed % 7) as u64,
                offset_in_segment_bytes: 4096 * (seed % 13),
                height_bytes: 4096,
                ordinal: seed % 5,
                record_offset: 8 * (seed % 100),
                record_len: 30 + seed % 300,
                crc: seed.wrapping_mul(0x9E37_79B9),
            }),
        }
    }

    fn key(n: u16) -> Vec<u8> {
        format!("k{:03}", n % 400).into_bytes()
    }

    /// What happens to the index while its image is taken.
    #[derive(Debug, Clone)]
    enum Op {
        Put(usize, u16, bool),
        Delete(usize, u16),
        NewTable(u16),
        Slice(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..TABLES.len(), any::<u16>(), any::<bool>()).prop_map(|(t, k, d)| Op::Put(t, k, d)),
            2 => (0..TABLES.len(), any::<u16>()).prop_map(|(t, k)| Op::Delete(t, k)),
            1 => any::<u16>().prop_map(Op::NewTable),
            3 => (1usize..40).prop_map(Op::Slice),
        ]
    }

    /// An index of up to 4 tables (some empty), its entries all as of LSN ≤ L.
    fn index_at_l(keys: &[(usize, u16)]) -> Index {
        let mut index = Index::default();
        for (i, &(t, k)) in keys.iter().enumerate() {
            index.put(TABLES[t], &key(k), disk(1 + i as u64, k as u32));
        }
        // A table whose keys were all deleted keeps an empty map; the image leaves it out.
        index.put("e", b"gone", disk(999, 1));
        index.delete("e", b"gone");
        index
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// However writes and slices interleave, the image is byte for byte the one the
        /// whole index as of L encodes to.
        #[test]
        fn an_image_taken_in_slices_is_the_index_as_of_its_lsn(
            keys in proptest::collection::vec((0..TABLES.len(), any::<u16>()), 0..300),
            ops in proptest::collection::vec(op(), 0..400),
        ) {
            let resume = ResumePoint { segment_id: 9, offset: 4096, ordinal: 1 };
            let expected = encode(&index_at_l(&keys), L, resume).unwrap();
            let mut index = index_at_l(&keys);
            prop_assert!(index.begin_image());
            prop_assert!(!index.begin_image());
            let mut out = ImageWriter::new(L, resume, 100);
            let mut lsn = L;
            let mut done = false;
            for op in &ops {
                lsn += 1;
                match *op {
                    Op::Put(t, k, on_disk) => {
                        let mut e = disk(lsn, k as u32 + 1);
                        if !on_disk {
                            e.place = Place::Pending { stripe_seq: lsn, record_offset: 0, segment_id: 3 };
                        }
                        index.put(TABLES[t], &key(k), e);
                    }
                    Op::Delete(t, k) => index.delete(TABLES[t], &key(k)),
                    Op::NewTable(k) => index.put("new", &key(k), disk(lsn, 7)),
                    Op::Slice(n) if !done => {
                        let slice = index.image_slice(&mut out, n);
                        prop_assert!(slice.is_some(), "the image writer refused an entry");
                        done = slice == Some(Slice::Done);
                    }
                    Op::Slice(_) => {}
                }
            }
            while !done {
                let slice = index.image_slice(&mut out, 7);
                prop_assert!(slice.is_some(), "the image writer refused an entry");
                done = slice == Some(Slice::Done);
            }
            prop_assert_eq!(out.finish().unwrap().concat(), expected);
            index.end_image();
            prop_assert!(index.capture.get_mut().unwrap().is_none());
        }
    }

    /// A walk in slices, with keys changed between them, sees every key that lives through
    /// it exactly once, as it is when its slice is read.
    #[test]
    fn a_walk_in_slices_sees_each_surviving_key_once() {
        let mut index = Index::default();
        let original = |t: usize, k: u16| 1 + t as u64 * 100_000 + k as u64;
        for (t, name) in TABLES.iter().enumerate() {
            for k in 0..400u16 {
                index.put(name, &key(k), disk(original(t, k), k as u32));
            }
        }
        let mut walk = crate::index::Walk::new(index.table_names());
        let mut seen: Vec<u64> = Vec::new();
        let mut changed = std::collections::HashSet::new();
        let mut turn = 0u16;
        while !index.walk(&mut walk, 7, |e| seen.push(e.lsn)) {
            // Between slices: keys ahead of and behind the walk change.
            turn += 1;
            let (d, p) = (turn * 3 % 400, turn * 5 % 400);
            index.delete("c", &key(d));
            index.put("bb", &key(p), disk(10_000_000 + turn as u64, 1));
            changed.insert((2, d));
            changed.insert((1, p));
        }
        assert!(turn > 100, "the walk took many slices");
        let mut uniq = seen.clone();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(uniq.len(), seen.len(), "no entry seen twice");
        assert!(seen.len() <= TABLES.len() * 400, "no key seen twice");
        for t in 0..TABLES.len() {
            for k in 0..400u16 {
                if !changed.contains(&(t, k)) {
                    assert!(uniq.binary_search(&original(t, k)).is_ok(), "{t}/{k} seen");
                }
            }
        }
    }
}
