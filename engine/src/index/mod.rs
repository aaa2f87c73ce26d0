//! The in-memory ordered index: (table, key) → where the newest record of that key lives.
//!
//! Invariants:
//! - An entry points at the record with the highest LSN written for its key; deletes remove
//!   the entry.
//! - A record not yet durable is served from memory ([`Place::Pending`]); the writer switches the
//!   entry to its disk location once the stripe's flush completed, and only if the entry still
//!   names that LSN.
//! - `live_bytes[s]` is the sum of the padded record lengths (in the array's record format,
//!   table name counted) of the entries that point into
//!   segment `s` (on disk or, while pending, in a stripe placed in `s`); the cleaner picks
//!   segments by it. `checkpoint_bytes` is what the entries take in an index checkpoint.

mod bloom;
mod capture;
mod keymap;

use crate::format::log_record::RecordFormat;
pub use capture::{Capture, Slice};
pub use keymap::{KeyMap, NearHint};
use std::collections::HashMap;
use std::sync::Mutex;

/// Where a record sits in the log (see docs/format.md, "Placement function").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLoc {
    /// The segment holding the record's stripe.
    pub segment_id: u64,
    /// Byte offset of the stripe within its device segments.
    pub offset_in_segment_bytes: u32,
    /// Height of the stripe in bytes.
    pub height_bytes: u32,
    /// Ordinal of the stripe in its segment (which member holds which shard).
    pub ordinal: u32,
    /// Offset of the record in the stripe's data space.
    pub record_offset: u32,
    /// Encoded length of the record, without padding.
    pub record_len: u32,
    /// The record's crc, held here so a point read is checked against a referrer.
    pub crc: u32,
}

/// Where an entry's record can be read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// In a stripe on the devices.
    Disk(RecordLoc),
    /// Not on disk yet: the record is at `record_offset` in the data of the writer's stripe
    /// with sequence number `stripe_seq`.
    Pending {
        /// The writer's sequence number of the stripe.
        stripe_seq: u64,
        /// Offset of the record in the stripe's data.
        record_offset: u32,
        /// The segment the stripe is placed in.
        segment_id: u64,
    },
}

impl Place {
    /// The segment the record is (or will be) in.
    pub fn segment_id(&self) -> u64 {
        match self {
            Place::Disk(loc) => loc.segment_id,
            Place::Pending { segment_id, .. } => *segment_id,
        }
    }
}

/// What the index holds for one key: its newest record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The record's LSN.
    pub lsn: u64,
    /// Length of the value in bytes.
    pub value_len: u32,
    /// Where the record is.
    pub place: Place,
}

/// Where a walk over the index a slice at a time ([`Index::walk`]) has got.
pub struct Walk {
    tables: Vec<String>,
    pos: usize,
    after: Option<Vec<u8>>,
}

impl Walk {
    /// A walk over the tables named (in order).
    pub fn new(tables: Vec<String>) -> Walk {
        Walk {
            tables,
            pos: 0,
            after: None,
        }
    }
}

/// The whole index: one key map per table, and the live bytes per segment.
#[derive(Default)]
pub struct Index {
    /// The keys of each table (a table whose keys were all deleted may keep an empty map).
    pub tables: HashMap<String, KeyMap>,
    /// Live record bytes per segment (see the invariants above).
    pub live_bytes: HashMap<u64, u64>,
    /// The sum of `live_bytes`, kept as it changes.
    live_total: u64,
    /// Bytes the entries take in a checkpoint.
    pub checkpoint_bytes: u64,
    /// The array's record layout, which `live_bytes` counts in.
    record_format: RecordFormat,
    /// The checkpoint being taken, if one is (capture.rs): changes keep pre-images for it.
    capture: Mutex<Option<Capture>>,
}

/// Bytes one entry takes in a checkpoint, besides its table name and key.
pub const CHECKPOINT_ENTRY_FIXED_BYTES: u64 = 1 + 2 + 8 + 4 + 8 + 24;

impl Index {
    /// Bytes of the table names and keys of all entries (from the checkpoint bound).
    pub fn name_bytes(&self) -> u64 {
        self.checkpoint_bytes
            .saturating_sub(CHECKPOINT_ENTRY_FIXED_BYTES * self.key_count() as u64)
    }
}

impl Index {
    /// An empty index of an array whose log records are in `fmt`.
    pub fn for_records(fmt: RecordFormat) -> Index {
        Index {
            record_format: fmt,
            ..Index::default()
        }
    }

    /// The bytes a record of this entry takes in the log, as `live_bytes` counts them: its
    /// padded length with the table name stored (a compact record that leaves the name out
    /// takes a few bytes less; the count never falls short).
    fn record_bytes(&self, table: &str, key: &[u8], value_len: u32) -> u64 {
        self.record_format
            .encoded_len_padded(table.len(), key.len(), value_len as usize) as u64
    }

    fn account_remove(&mut self, table: &str, key: &[u8], old: &IndexEntry) {
        let seg = old.place.segment_id();
        let gone = self.record_bytes(table, key, old.value_len);
        if let Some(b) = self.live_bytes.get_mut(&seg) {
            let gone = gone.min(*b);
            *b -= gone;
            self.live_total -= gone;
            if *b == 0 {
                self.live_bytes.remove(&seg);
            }
        }
    }

    /// Points (`table`, `key`) at `entry`, replacing the older entry (and its live bytes).
    pub fn put(&mut self, table: &str, key: &[u8], entry: IndexEntry) {
        self.remember(table, key);
        let bytes = self.record_bytes(table, key, entry.value_len);
        *self.live_bytes.entry(entry.place.segment_id()).or_default() += bytes;
        self.live_total += bytes;
        let old = match self.tables.get_mut(table) {
            Some(t) => t.insert(key, &entry),
            None => {
                let mut t = KeyMap::default();
                t.insert(key, &entry);
                self.tables.insert(table.to_string(), t);
                None
            }
        };
        match old {
            Some(old) => self.account_remove(table, key, &old),
            None => {
                self.checkpoint_bytes +=
                    CHECKPOINT_ENTRY_FIXED_BYTES + (table.len() + key.len()) as u64
            }
        }
    }

    /// Removes the key's entry, if any.
    pub fn delete(&mut self, table: &str, key: &[u8]) {
        self.remember(table, key);
        let old = self.tables.get_mut(table).and_then(|t| t.remove(key));
        if let Some(old) = old {
            self.account_remove(table, key, &old);
            self.checkpoint_bytes = self
                .checkpoint_bytes
                .saturating_sub(CHECKPOINT_ENTRY_FIXED_BYTES + (table.len() + key.len()) as u64);
        }
    }

    /// Before a change: keeps the key's pre-image for the checkpoint being taken, if any.
    fn remember(&mut self, table: &str, key: &[u8]) {
        let capture = self.capture.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = capture.as_mut() {
            c.remember(&self.tables, table, key);
        }
    }

    /// The key's entry, if it has one.
    pub fn get(&self, table: &str, key: &[u8]) -> Option<IndexEntry> {
        self.tables.get(table)?.get(key)
    }

    /// The names of the tables, in order (for a [`Walk`]).
    pub fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tables.keys().cloned().collect();
        names.sort();
        names
    }

    /// Calls `f` with the entries of up to `max` more keys of `walk`; true when the walk has
    /// passed every table it began with. A walk taken over several calls, with the index
    /// changing between them, sees each key that lives through it as it is when its slice
    /// is read, and may miss keys added to a part already passed.
    pub fn walk(&self, walk: &mut Walk, max: usize, mut f: impl FnMut(&IndexEntry)) -> bool {
        let mut n = 0;
        while n < max {
            let Some(name) = walk.tables.get(walk.pos) else {
                return true;
            };
            let Some(map) = self.tables.get(name) else {
                walk.pos += 1;
                continue;
            };
            let lo = walk
                .after
                .as_deref()
                .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
            let mut last = None;
            for (k, e) in map.range(lo, std::ops::Bound::Unbounded).take(max - n) {
                f(&e);
                n += 1;
                last = Some(k);
            }
            match last {
                Some(k) if n == max => walk.after = Some(k.to_vec()),
                _ => {
                    walk.pos += 1;
                    walk.after = None;
                }
            }
        }
        walk.pos >= walk.tables.len()
    }

    /// Keys in all tables.
    pub fn key_count(&self) -> usize {
        self.tables.values().map(|t| t.len()).sum()
    }

    /// Live record bytes in all segments.
    pub fn total_live_bytes(&self) -> u64 {
        debug_assert_eq!(self.live_total, self.live_bytes.values().sum::<u64>());
        self.live_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(seg: u64) -> IndexEntry {
        IndexEntry {
            lsn: 1,
            value_len: 100,
            place: Place::Pending {
                stripe_seq: 1,
                record_offset: 0,
                segment_id: seg,
            },
        }
    }

    #[test]
    fn live_bytes_follow_puts_and_deletes() {
        let mut i = Index::default();
        let one = i.record_bytes("t", b"k", 100);
        i.put("t", b"k", pending(3));
        i.put("t", b"j", pending(3));
        assert_eq!(i.live_bytes[&3], 2 * one);
        i.put("t", b"k", pending(4));
        assert_eq!((i.live_bytes[&3], i.live_bytes[&4]), (one, one));
        i.delete("t", b"j");
        assert!(!i.live_bytes.contains_key(&3));
        i.delete("t", b"k");
        assert!(i.live_bytes.is_empty());
        assert_eq!(i.checkpoint_bytes, 0);
    }
}
