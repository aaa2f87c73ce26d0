//! The in-memory ordered index: (table, key) → where the newest record of that key lives.
//!
//! Invariants:
//! - An entry points at the record with the highest LSN written for its key; deletes remove
//!   the entry.
//! - A record not yet durable is served from memory ([`Place::Pending`]); the writer switches the
//!   entry to its disk location once the stripe's flush completed, and only if the entry still
//!   names that LSN.

use std::collections::{BTreeMap, HashMap};

/// Where a record sits in the log (see docs/format.md, "Placement function").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLoc {
    pub segment_id: u64,
    pub offset_in_segment: u32,
    pub height_bytes: u32,
    pub ordinal: u32,
    /// Offset of the record in the stripe's data space.
    pub record_offset: u32,
    /// Encoded length of the record, without padding.
    pub record_len: u32,
    /// The record's crc, held here so a point read is checked against a referrer.
    pub crc: u32,
}

#[derive(Debug, Clone)]
pub enum Place {
    Disk(RecordLoc),
    /// Not on disk yet: the record is at `record_offset` in the data of the writer's stripe
    /// with sequence number `stripe_seq`.
    Pending {
        stripe_seq: u64,
        record_offset: u32,
    },
}

#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub lsn: u64,
    pub value_len: u32,
    pub place: Place,
}

#[derive(Default)]
pub struct Index {
    pub tables: HashMap<String, BTreeMap<Vec<u8>, IndexEntry>>,
}

impl Index {
    pub fn put(&mut self, table: &str, key: &[u8], entry: IndexEntry) {
        match self.tables.get_mut(table) {
            Some(t) => {
                t.insert(key.to_vec(), entry);
            }
            None => {
                let mut t = BTreeMap::new();
                t.insert(key.to_vec(), entry);
                self.tables.insert(table.to_string(), t);
            }
        }
    }

    pub fn delete(&mut self, table: &str, key: &[u8]) {
        if let Some(t) = self.tables.get_mut(table) {
            t.remove(key);
        }
    }

    pub fn get(&self, table: &str, key: &[u8]) -> Option<&IndexEntry> {
        self.tables.get(table)?.get(key)
    }

    pub fn key_count(&self) -> usize {
        self.tables.values().map(|t| t.len()).sum()
    }
}
