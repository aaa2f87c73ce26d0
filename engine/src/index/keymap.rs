//! [`KeyMap`]: one table's ordered map from key to [`IndexEntry`], packed for memory.
//!
//! A table's keys are cut by key range into **runs** of at most [`RUN_KEYS`] base keys
//! each, so that no fold below ever passes over more than one run: a put waits for at most
//! one run's fold or split (a few milliseconds), however large the table. Run `i` holds the
//! keys from `lows[i - 1]` (inclusive; the first run from the start) to `lows[i]`
//! (exclusive; the last run to the end). A run that grows past [`RUN_KEYS`] is split in
//! two at its middle key; a key that sorts after a full last run starts a new run; a run
//! left empty is dropped.
//!
//! Inside a run, a key lives in one of two places:
//! - the **base**: every key's bytes back to back in one arena, in key order, and one 48-byte
//!   [`Slot`] per key in the same order, found by binary search;
//! - the **delta**: a small `BTreeMap` of the keys the base does not hold.
//!
//! Updating a key the base holds rewrites its slot in place; deleting it marks the slot dead
//! (a later put of the same key revives it). A new key that sorts after every base key (a
//! sequential load, the replay of a checkpoint, which is written in key order) is appended to
//! the base; any other new key goes to the delta. When the delta grows past 1/8 of the base,
//! or dead slots pass 1/4 of it, base and delta are merged into a new base in one pass.
//!
//! Invariants (of each run, and of the runs together):
//! - base keys are strictly increasing; slot `i`'s key is `arena[slots[i].key_off..end]`,
//!   where `end` is the next slot's `key_off` or the arena's length;
//! - no key is in both the base (alive or dead) and the delta;
//! - `dead` counts the dead base slots and `dead_key_bytes` their key bytes;
//! - `lows` is strictly increasing, holds one key fewer than there are runs, and every key
//!   of run `i` (base and delta) lies in its range;
//! - [`KeyMap::len`] is the sum of the runs' keys.
//!
//! At 16-byte keys a base key costs 64 bytes (48-byte slot and the key); see
//! docs/performance.md, "Index memory per key".

use super::bloom::{self, Bloom};
use super::{IndexEntry, Place, RecordLoc};
use std::collections::BTreeMap;
use std::ops::Bound;

/// A packed [`IndexEntry`]: `w` holds the place's fields (see [`Slot::pack`]).
#[derive(Debug, Clone, Copy)]
struct Slot {
    lsn: u64,
    segment_id: u64,
    /// Offset of the key in the arena (base slots only).
    key_off: u32,
    /// The value length in the low 30 bits, the kind (`KIND_*`) in the top two.
    len_kind: u32,
    w: [u32; 6],
}

const _: () = assert!(std::mem::size_of::<Slot>() == 48);

const KIND_SHIFT: u32 = 30;
const LEN_MASK: u32 = (1 << KIND_SHIFT) - 1;
const KIND_DISK: u32 = 0;
const KIND_PENDING: u32 = 1;
const KIND_DEAD: u32 = 2;

// A record never straddles stripes, so a value is shorter than the largest stripe payload,
// which is below 2^30: the top two bits of the length are free for the kind.
const _: () = assert!(
    (crate::format::layout::MAX_CHUNK_SIZE_BYTES as u64) * (crate::format::MAX_DEVICES as u64)
        <= LEN_MASK as u64
);

impl Slot {
    fn pack(e: &IndexEntry, key_off: u32) -> Slot {
        debug_assert!(e.value_len <= LEN_MASK, "value length {}", e.value_len);
        let len = e.value_len & LEN_MASK;
        let (kind, w) = match &e.place {
            Place::Disk(l) => (
                KIND_DISK,
                [
                    l.offset_in_segment_bytes,
                    l.height_bytes,
                    l.ordinal,
                    l.record_offset,
                    l.record_len,
                    l.crc,
                ],
            ),
            Place::Pending {
                stripe_seq,
                record_offset,
                ..
            } => (
                KIND_PENDING,
                [
                    *record_offset,
                    *stripe_seq as u32,
                    (*stripe_seq >> 32) as u32,
                    0,
                    0,
                    0,
                ],
            ),
        };
        Slot {
            lsn: e.lsn,
            segment_id: e.place.segment_id(),
            key_off,
            len_kind: len | (kind << KIND_SHIFT),
            w,
        }
    }

    fn kind(&self) -> u32 {
        self.len_kind >> KIND_SHIFT
    }

    fn alive(&self) -> bool {
        self.kind() != KIND_DEAD
    }

    fn unpack(&self) -> IndexEntry {
        let w = self.w;
        let place = if self.kind() == KIND_PENDING {
            Place::Pending {
                stripe_seq: u64::from(w[1]) | (u64::from(w[2]) << 32),
                record_offset: w[0],
                segment_id: self.segment_id,
            }
        } else {
            Place::Disk(RecordLoc {
                segment_id: self.segment_id,
                offset_in_segment_bytes: w[0],
                height_bytes: w[1],
                ordinal: w[2],
                record_offset: w[3],
                record_len: w[4],
                crc: w[5],
            })
        };
        IndexEntry {
            lsn: self.lsn,
            value_len: self.len_kind & LEN_MASK,
            place,
        }
    }

    /// Overwrites this slot with `e`, keeping its key.
    fn set(&mut self, e: &IndexEntry) {
        *self = Slot::pack(e, self.key_off);
    }
}

/// Slots per fence entry.
const FENCE_BLOCK: usize = 32;

/// A key's first 8 bytes, zero-padded, as a big-endian number: `prefix(a) < prefix(b)`
/// implies `a < b`, and `a < b` implies `prefix(a) <= prefix(b)`.
// Big-endian on purpose: the number must order as the bytes do (nothing here is on disk).
#[allow(clippy::big_endian_bytes)]
fn prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// Orders `stored` against `key` (whose prefix is `p`), deciding on the 8-byte prefixes
/// when they differ, as they do for most keys a search meets.
fn cmp_keys(stored: &[u8], key: &[u8], p: u64) -> std::cmp::Ordering {
    match prefix(stored).cmp(&p) {
        std::cmp::Ordering::Equal => stored.cmp(key),
        o => o,
    }
}

/// Merge when the delta holds more than this many keys and more than 1/8 of the base.
const MIN_DELTA_BEFORE_MERGE: usize = 1024;

/// Base keys a run may hold before it is split (see the module comment): 2^16 keys, 4 MiB
/// of slots and keys at 16-byte keys, which one fold passes over in a few milliseconds
/// (docs/performance.md, "Index memory per key": 2^18 let a put wait up to 95 ms).
pub const RUN_KEYS: usize = 1 << 16;

/// One key range of a table (see the module comment).
#[derive(Debug)]
struct Run {
    arena: Vec<u8>,
    slots: Vec<Slot>,
    /// The first 8 bytes (zero-padded, big-endian) of the first key of every block of
    /// `FENCE_BLOCK` slots: a search narrows to one block in this small array before it
    /// touches the slots and the arena.
    fence: Vec<u64>,
    /// Holds every base key while `bloom_valid`; built when a put first needs it (a load in
    /// key order only appends, and never does).
    bloom: Bloom,
    bloom_valid: bool,
    /// A base position where the last keys put out of order went in: a new key that sorts
    /// strictly between the base keys on either side of it is not in the base (no filter,
    /// no search). Checked by comparing keys, so any value is safe.
    gap_hint: usize,
    dead: usize,
    dead_key_bytes: usize,
    delta: BTreeMap<Box<[u8]>, Slot>,
    /// Largest arena (key offsets are u32); lowered by tests.
    arena_limit: usize,
    /// Smallest delta (and dead count) that triggers a merge; lowered by tests.
    min_merge: usize,
    /// The most keys one fold, splice or split of this run (or of the run it was split
    /// from) has passed over: what a put may wait for (tests check its bound).
    largest_pass: usize,
}

impl Default for Run {
    fn default() -> Self {
        Run {
            arena: Vec::new(),
            slots: Vec::new(),
            fence: Vec::new(),
            bloom: Bloom::default(),
            bloom_valid: false,
            gap_hint: 0,
            dead: 0,
            dead_key_bytes: 0,
            delta: BTreeMap::new(),
            arena_limit: u32::MAX as usize,
            min_merge: MIN_DELTA_BEFORE_MERGE,
            largest_pass: 0,
        }
    }
}

/// Doubles `v` (at least `min`) when it is full. Merges and splits size a run's vectors
/// exactly, so unused capacity is left only in runs that appends or splices have grown
/// since (in a load, the run it is filling), each at most one run of [`RUN_KEYS`] keys; and
/// a run reaches its size in a few copies (growing by an eighth, as the single base of a
/// table did, copied each run about eight times over).
fn grow<T>(v: &mut Vec<T>, need: usize, min: usize) {
    if v.capacity() - v.len() < need {
        v.reserve_exact(v.len().max(min).max(need));
    }
}

impl Run {
    /// Keys held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len() - self.dead + self.delta.len()
    }

    fn key_at(&self, i: usize) -> &[u8] {
        let start = self.slots[i].key_off as usize;
        let end = self
            .slots
            .get(i + 1)
            .map_or(self.arena.len(), |s| s.key_off as usize);
        &self.arena[start..end]
    }

    /// The base position of `key`: Ok(i) if slot i holds it (alive or dead), Err(i) where it
    /// would go.
    fn search(&self, key: &[u8]) -> Result<usize, usize> {
        // The last block whose first key is not above `key`.
        let p = prefix(key);
        let (mut blo, mut bhi) = (0, self.fence.len());
        while blo < bhi {
            let mid = blo + (bhi - blo) / 2;
            let f = self.fence[mid];
            if f < p || (f == p && self.key_at(mid * FENCE_BLOCK) <= key) {
                blo = mid + 1;
            } else {
                bhi = mid;
            }
        }
        if blo == 0 {
            return Err(0);
        }
        let block = blo - 1;
        let (mut lo, mut hi) = (
            block * FENCE_BLOCK,
            ((block + 1) * FENCE_BLOCK).min(self.slots.len()),
        );
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match cmp_keys(self.key_at(mid), key, p) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// First base position whose key is not below the bound (`lower`), or past it.
    fn position(&self, b: Bound<&[u8]>, lower: bool) -> usize {
        let n = self.slots.len();
        match b {
            Bound::Unbounded => {
                if lower {
                    0
                } else {
                    n
                }
            }
            Bound::Included(k) => match self.search(k) {
                Ok(i) => {
                    if lower {
                        i
                    } else {
                        i + 1
                    }
                }
                Err(i) => i,
            },
            Bound::Excluded(k) => match self.search(k) {
                Ok(i) => {
                    if lower {
                        i + 1
                    } else {
                        i
                    }
                }
                Err(i) => i,
            },
        }
    }

    fn base_slot(&self, key: &[u8]) -> Option<usize> {
        self.search(key).ok()
    }

    /// The key's entry, if it holds the key.
    fn get(&self, key: &[u8]) -> Option<IndexEntry> {
        match self.base_slot(key) {
            Some(i) => {
                let s = &self.slots[i];
                s.alive().then(|| s.unpack())
            }
            None => self.delta.get(key).map(Slot::unpack),
        }
    }

    /// Changes the entry of `key` through `f`, if there is one. `hint` is the base position
    /// of the previous key of the run (`usize::MAX` at first) and is set to this key's. Keys
    /// put in order
    /// sit next to each other in the base, so the flusher, which settles the records of a
    /// stripe in the order they were put, mostly finds the key with one comparison.
    ///
    /// The delta is looked at first: a key put out of order is still in the delta when its
    /// record is settled, shortly after (and an empty delta costs nothing).
    fn update_near(&mut self, key: &[u8], hint: &mut usize, f: impl FnOnce(&mut IndexEntry)) {
        if !self.delta.is_empty() {
            if let Some(s) = self.delta.get_mut(key) {
                let mut e = s.unpack();
                f(&mut e);
                s.set(&e);
                return;
            }
        }
        let at = self.at_hint(key, *hint).or_else(|| self.search(key).ok());
        if let Some(i) = at {
            *hint = i;
            self.update_slot(i, f);
        }
    }

    /// The base position of `key` if it is the one after `hint` or `hint` itself.
    fn at_hint(&self, key: &[u8], hint: usize) -> Option<usize> {
        let n = self.slots.len();
        let next = hint.wrapping_add(1);
        if next < n && self.key_at(next) == key {
            Some(next)
        } else if hint < n && self.key_at(hint) == key {
            Some(hint)
        } else {
            None
        }
    }

    /// Changes the entry of base slot `i` through `f`, if it is alive.
    fn update_slot(&mut self, i: usize, f: impl FnOnce(&mut IndexEntry)) {
        let s = &mut self.slots[i];
        if s.alive() {
            let mut e = s.unpack();
            f(&mut e);
            s.set(&e);
        }
    }

    /// Sets the entry of `key`; returns the one it replaced. `after_base`: whether `key`
    /// sorts after every base key (or the base is empty), which the caller has found out.
    fn insert(&mut self, key: &[u8], e: &IndexEntry, after_base: bool) -> Option<IndexEntry> {
        debug_assert_eq!(after_base, self.last_base_key().is_none_or(|k| k < key));
        if !after_base && !self.in_gap_hint(key) && self.may_be_in_base(key) {
            if let Some(i) = self.base_slot(key) {
                let s = &mut self.slots[i];
                let old = s.alive().then(|| s.unpack());
                if old.is_none() {
                    self.dead -= 1;
                    self.dead_key_bytes -= key.len();
                }
                s.set(e);
                return old;
            }
        }
        let fits = after_base && self.arena.len() + key.len() <= self.arena_limit;
        if fits && self.delta.is_empty() {
            self.append(key, e);
            return None;
        }
        match self.delta.entry(key.into()) {
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let old = o.get().unpack();
                o.get_mut().set(e);
                return Some(old);
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                if !fits {
                    v.insert(Slot::pack(e, 0));
                    if self.delta.len() > self.min_merge.max((self.slots.len() - self.dead) / 8) {
                        self.fold_delta();
                    }
                    return None;
                }
            }
        }
        self.append(key, e);
        None
    }

    /// True if `key` sorts strictly between the base keys around `gap_hint`, so the base does
    /// not hold it.
    fn in_gap_hint(&self, key: &[u8]) -> bool {
        let g = self.gap_hint;
        g > 0 && g < self.slots.len() && self.key_at(g - 1) < key && key < self.key_at(g)
    }

    /// False only if the base does not hold `key` (alive or dead).
    fn may_be_in_base(&mut self, key: &[u8]) -> bool {
        if !self.bloom_valid {
            self.rebuild_bloom();
        }
        self.bloom.may_contain(bloom::hash(key))
    }

    /// Sizes the filter for twice the base (so that rebuilds come at doublings, not every
    /// merge) and adds every base key.
    fn rebuild_bloom(&mut self) {
        let mut b = Bloom::with_capacity(2 * self.slots.len());
        for i in 0..self.slots.len() {
            b.add(bloom::hash(self.key_at(i)));
        }
        self.bloom = b;
        self.bloom_valid = true;
    }

    /// Adds a key that joins the base to the filter; a full filter is dropped and rebuilt,
    /// larger, when next needed.
    fn add_to_bloom(&mut self, key: &[u8]) {
        if !self.bloom_valid {
            return;
        }
        if self.bloom.is_full() {
            self.bloom = Bloom::default();
            self.bloom_valid = false;
        } else {
            self.bloom.add(bloom::hash(key));
        }
    }

    /// Appends `key`, which sorts after every base key and is in neither base nor delta.
    fn append(&mut self, key: &[u8], e: &IndexEntry) {
        self.add_to_bloom(key);
        grow(&mut self.slots, 1, 1024);
        grow(&mut self.arena, key.len(), 16 << 10);
        if self.slots.len().is_multiple_of(FENCE_BLOCK) {
            self.fence.push(prefix(key));
        }
        self.slots.push(Slot::pack(e, self.arena.len() as u32));
        self.arena.extend_from_slice(key);
    }

    /// Removes `key`; returns its entry.
    fn remove(&mut self, key: &[u8]) -> Option<IndexEntry> {
        match self.base_slot(key) {
            Some(i) => {
                let s = &mut self.slots[i];
                if !s.alive() {
                    return None;
                }
                let old = s.unpack();
                s.len_kind = KIND_DEAD << KIND_SHIFT;
                self.dead += 1;
                self.dead_key_bytes += key.len();
                if self.dead > self.min_merge.max(self.slots.len() / 4) {
                    self.merge();
                }
                Some(old)
            }
            None => self.delta.remove(key).map(|s| s.unpack()),
        }
    }

    /// Moves the delta into the base: spliced in where it fits into one gap of the base (keys
    /// put in order inside the table: only the base after the gap moves), merged otherwise.
    fn fold_delta(&mut self) {
        match self.delta_gap() {
            Some(g) => self.splice_delta(g),
            None => self.merge(),
        }
    }

    /// The base position every delta key would take, if it is the same for all of them and
    /// the arena has room for them.
    fn delta_gap(&self) -> Option<usize> {
        let (first, _) = self.delta.first_key_value()?;
        let (last, _) = self.delta.last_key_value()?;
        let bytes: usize = self.delta.keys().map(|k| k.len()).sum();
        if self.arena.len() + bytes > self.arena_limit {
            return None;
        }
        match (self.search(first), self.search(last)) {
            (Err(a), Err(b)) if a == b => Some(a),
            _ => None,
        }
    }

    /// Inserts the delta's keys at base position `g` (see [`Run::delta_gap`]).
    fn splice_delta(&mut self, g: usize) {
        let delta = std::mem::take(&mut self.delta);
        self.largest_pass = self.largest_pass.max(self.slots.len() - g + delta.len());
        let arena_at = self
            .slots
            .get(g)
            .map_or(self.arena.len(), |s| s.key_off as usize);
        let bytes: usize = delta.keys().map(|k| k.len()).sum();
        let mut keys = Vec::with_capacity(bytes);
        let mut slots = Vec::with_capacity(delta.len());
        for (k, s) in &delta {
            slots.push(Slot {
                key_off: (arena_at + keys.len()) as u32,
                ..*s
            });
            keys.extend_from_slice(k);
        }
        // The arena stays within `arena_limit` (at most u32::MAX bytes): offsets fit.
        for s in &mut self.slots[g..] {
            s.key_off += bytes as u32;
        }
        grow(&mut self.arena, bytes, 16 << 10);
        self.arena.splice(arena_at..arena_at, keys);
        grow(&mut self.slots, slots.len(), 1024);
        self.slots.splice(g..g, slots);
        // Blocks that start before `g` keep their first key.
        self.fence.truncate(g / FENCE_BLOCK);
        let mut b = self.fence.len() * FENCE_BLOCK;
        while b < self.slots.len() {
            self.fence.push(prefix(self.key_at(b)));
            b += FENCE_BLOCK;
        }
        // Rebuilt when a key outside this gap next needs it: a load in order inside the
        // table is answered by the gap hint alone.
        self.bloom = Bloom::default();
        self.bloom_valid = false;
        self.gap_hint = g + delta.len();
    }

    /// Folds the delta into the base and drops the dead slots, in one ordered pass. Keys that
    /// would take the arena past its limit stay in the delta.
    fn merge(&mut self) {
        let delta = std::mem::take(&mut self.delta);
        self.largest_pass = self.largest_pass.max(self.slots.len() + delta.len());
        let delta_key_bytes: usize = delta.keys().map(|k| k.len()).sum();
        let arena_bytes =
            (self.arena.len() - self.dead_key_bytes + delta_key_bytes).min(self.arena_limit);
        let mut arena = Vec::with_capacity(arena_bytes);
        let mut slots = Vec::with_capacity(self.slots.len() - self.dead + delta.len());
        let mut rest = BTreeMap::new();
        let mut fence = Vec::with_capacity(slots.capacity().div_ceil(FENCE_BLOCK));
        let limit = self.arena_limit;
        let mut push = |key: &[u8], s: &Slot, arena: &mut Vec<u8>, slots: &mut Vec<Slot>| {
            if arena.len() + key.len() > limit {
                rest.insert(Box::from(key), *s);
            } else {
                if slots.len().is_multiple_of(FENCE_BLOCK) {
                    fence.push(prefix(key));
                }
                slots.push(Slot {
                    key_off: arena.len() as u32,
                    ..*s
                });
                arena.extend_from_slice(key);
            }
        };
        let mut d = delta.iter().peekable();
        for i in 0..self.slots.len() {
            if !self.slots[i].alive() {
                continue;
            }
            let key = self.key_at(i);
            while let Some((dk, ds)) = d.next_if(|(dk, _)| dk.as_ref() < key) {
                push(dk, ds, &mut arena, &mut slots);
            }
            push(key, &self.slots[i], &mut arena, &mut slots);
        }
        for (dk, ds) in d {
            push(dk, ds, &mut arena, &mut slots);
        }
        self.arena = arena;
        self.slots = slots;
        self.fence = fence;
        // Delta keys become base keys (some may stay behind in `rest`: harmless, a false
        // positive at most); dropped dead keys stay in the filter until it is rebuilt.
        for k in delta.keys() {
            self.add_to_bloom(k);
        }
        self.dead = 0;
        self.dead_key_bytes = 0;
        self.delta = rest;
    }

    /// The last base key, if any.
    fn last_base_key(&self) -> Option<&[u8]> {
        (!self.slots.is_empty()).then(|| self.key_at(self.slots.len() - 1))
    }

    /// Cuts off the upper half of this run's keys into a new run, after folding the delta
    /// and dropping dead slots; returns the new run's first key and the run. None if the
    /// run has fewer than two base keys then.
    fn split_off(&mut self) -> Option<(Box<[u8]>, Run)> {
        if self.dead > 0 || !self.delta.is_empty() {
            self.merge();
        }
        let n = self.slots.len();
        if n < 2 {
            return None;
        }
        let mid = n / 2;
        let low: Box<[u8]> = self.key_at(mid).into();
        let cut = self.slots[mid].key_off as usize;
        let mut upper = Run {
            arena_limit: self.arena_limit,
            min_merge: self.min_merge,
            largest_pass: self.largest_pass.max(n),
            ..Run::default()
        };
        upper.arena = self.arena[cut..].to_vec();
        upper.slots = self.slots[mid..]
            .iter()
            .map(|s| Slot {
                key_off: s.key_off - cut as u32,
                ..*s
            })
            .collect();
        // Keys the arena had no room for stayed in the delta: each goes with its half.
        upper.delta = self.delta.split_off(&low);
        self.arena.truncate(cut);
        self.arena.shrink_to_fit();
        self.slots.truncate(mid);
        self.slots.shrink_to_fit();
        self.largest_pass = self.largest_pass.max(n);
        self.rebuild_fence();
        upper.rebuild_fence();
        // Rebuilt (smaller) when a key out of order next needs it.
        self.bloom = Bloom::default();
        self.bloom_valid = false;
        self.gap_hint = 0;
        Some((low, upper))
    }

    /// Recomputes the fence from the base.
    fn rebuild_fence(&mut self) {
        self.fence.clear();
        let mut b = 0;
        while b < self.slots.len() {
            self.fence.push(prefix(self.key_at(b)));
            b += FENCE_BLOCK;
        }
    }

    fn merged<'a>(&'a self, lo: Bound<&[u8]>, hi: Bound<&[u8]>, rev: bool) -> Merge<'a> {
        let empty = match (lo, hi) {
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
                a >= b
            }
            _ => false,
        };
        let (start, end) = if empty {
            (0, 0)
        } else {
            (self.position(lo, true), self.position(hi, false))
        };
        // An empty delta range is left out: `BTreeMap::range` panics on bounds the wrong
        // way round.
        let delta =
            (!empty && !self.delta.is_empty()).then(|| self.delta.range::<[u8], _>((lo, hi)));
        Merge {
            run: self,
            base: start..end.max(start),
            delta,
            next_delta: None,
            rev,
        }
    }
}

/// Where [`KeyMap::update_near`] last found a key: its run and its base position there.
#[derive(Debug, Clone, Copy)]
pub struct NearHint {
    run: usize,
    pos: usize,
}

impl Default for NearHint {
    fn default() -> Self {
        NearHint {
            run: usize::MAX,
            pos: usize::MAX,
        }
    }
}

/// One table's keys: runs of at most [`RUN_KEYS`] base keys by key range (see the module
/// comment).
#[derive(Debug)]
pub struct KeyMap {
    /// Never empty.
    runs: Vec<Run>,
    /// `lows[i]` is the first key run `i + 1` may hold.
    lows: Vec<Box<[u8]>>,
    len: usize,
    /// Base keys past which a run is split; lowered by tests.
    run_keys: usize,
}

impl Default for KeyMap {
    fn default() -> Self {
        KeyMap {
            runs: vec![Run::default()],
            lows: Vec::new(),
            len: 0,
            run_keys: RUN_KEYS,
        }
    }
}

impl KeyMap {
    /// Keys held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The run whose range holds `key`: the last one after one comparison when the key
    /// sorts after the last run's first key, a binary search on 8-byte prefixes otherwise.
    fn run_of(&self, key: &[u8]) -> usize {
        let p = prefix(key);
        let not_above = |l: &[u8]| cmp_keys(l, key, p) != std::cmp::Ordering::Greater;
        match self.lows.last() {
            None => 0,
            Some(l) if not_above(l) => self.lows.len(),
            Some(_) => self.lows.partition_point(|l| not_above(l)),
        }
    }

    /// The key's entry, if it holds the key.
    pub fn get(&self, key: &[u8]) -> Option<IndexEntry> {
        self.runs[self.run_of(key)].get(key)
    }

    /// Changes the entry of `key` through `f`, if there is one. `hint` remembers where the
    /// previous key of the run was found (start from `NearHint::default()`): keys put in
    /// order sit next to each other, so the flusher, which settles the records of a stripe
    /// in the order they were put, mostly finds the key with one comparison.
    pub fn update_near(
        &mut self,
        key: &[u8],
        hint: &mut NearHint,
        f: impl FnOnce(&mut IndexEntry),
    ) {
        // The key where the hint says, in the run it names: keys are in one place only, so
        // finding it there is proof enough (and costs what it did before runs).
        if let Some(run) = self.runs.get_mut(hint.run) {
            if let Some(i) = run.at_hint(key, hint.pos) {
                hint.pos = i;
                run.update_slot(i, f);
                return;
            }
        }
        let r = self.run_of(key);
        *hint = NearHint {
            run: r,
            pos: usize::MAX,
        };
        self.runs[r].update_near(key, &mut hint.pos, f);
    }

    /// Sets the entry of `key`; returns the one it replaced.
    pub fn insert(&mut self, key: &[u8], e: &IndexEntry) -> Option<IndexEntry> {
        // A key after the last run's last base key is the last run's (one comparison: a
        // load in key order, a checkpoint's replay); any other is found by `run_of`.
        let last = self.runs.len() - 1;
        let (r, after_base) = match self.runs[last].last_base_key() {
            Some(k) if k < key => (last, true),
            _ => {
                let r = self.run_of(key);
                (r, self.runs[r].last_base_key().is_none_or(|k| k < key))
            }
        };
        let run = &self.runs[r];
        if r == last && after_base && run.slots.len() >= self.run_keys && run.delta.is_empty() {
            // After every key of a full last run (a load in key order): a new run, no split,
            // sized at once like the run before it, which the load is likely to fill again
            // (growing from empty copied each run's vectors about twice over). The capacity
            // this may leave unused is one run's, in the last run of a table.
            let mut next = Run {
                arena_limit: run.arena_limit,
                min_merge: run.min_merge,
                ..Run::default()
            };
            next.slots.reserve_exact(run.slots.len());
            next.arena.reserve_exact(run.arena.len());
            next.insert(key, e, true);
            self.runs.push(next);
            self.lows.push(key.into());
            self.len += 1;
            return None;
        }
        let old = self.runs[r].insert(key, e, after_base);
        if old.is_none() {
            self.len += 1;
        }
        if self.runs[r].slots.len() > self.run_keys {
            if let Some((low, upper)) = self.runs[r].split_off() {
                self.runs.insert(r + 1, upper);
                self.lows.insert(r, low);
            }
        }
        old
    }

    /// Removes `key`; returns its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<IndexEntry> {
        let r = self.run_of(key);
        let old = self.runs[r].remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        if self.runs.len() > 1 && self.runs[r].slots.is_empty() && self.runs[r].delta.is_empty() {
            // Its range joins the run before it (the run after it, for the first).
            self.runs.remove(r);
            self.lows.remove(r.saturating_sub(1));
        }
        old
    }

    /// The most keys one fold, splice or split of a run still held has passed over.
    #[cfg(test)]
    fn largest_pass(&self) -> usize {
        self.runs.iter().map(|r| r.largest_pass).max().unwrap_or(0)
    }

    /// Panics unless the invariants of the module comment hold.
    #[cfg(test)]
    fn check_invariants(&self) {
        assert_eq!(self.lows.len() + 1, self.runs.len());
        assert!(self.lows.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(self.runs.iter().map(Run::len).sum::<usize>(), self.len);
        for (i, run) in self.runs.iter().enumerate() {
            assert!((1..run.slots.len()).all(|j| run.key_at(j - 1) < run.key_at(j)));
            let keys = (0..run.slots.len())
                .map(|j| run.key_at(j))
                .chain(run.delta.keys().map(|k| k.as_ref()));
            for k in keys {
                assert!(i == 0 || self.lows[i - 1].as_ref() <= k, "run {i}");
                assert!(
                    i + 1 == self.runs.len() || k < self.lows[i].as_ref(),
                    "run {i}"
                );
                assert!(
                    !run.delta.contains_key(k) || run.search(k).is_err(),
                    "in both"
                );
            }
        }
    }

    /// Entries with keys in (`lo`, `hi`), in key order.
    pub fn range<'a>(
        &'a self,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> impl Iterator<Item = (&'a [u8], IndexEntry)> + 'a {
        self.runs_iter(lo, hi, false)
    }

    /// Entries with keys in (`lo`, `hi`), highest key first.
    pub fn range_rev<'a>(
        &'a self,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> impl Iterator<Item = (&'a [u8], IndexEntry)> + 'a {
        self.runs_iter(lo, hi, true)
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], IndexEntry)> + '_ {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }

    /// Every entry, in key order, without its key.
    pub fn values(&self) -> impl Iterator<Item = IndexEntry> + '_ {
        self.iter().map(|(_, e)| e)
    }

    /// The runs a range touches: the first and last with their bound, those between whole
    /// (opened only when reached).
    fn runs_iter<'a>(&'a self, lo: Bound<&[u8]>, hi: Bound<&[u8]>, rev: bool) -> Runs<'a> {
        let first = match lo {
            Bound::Unbounded => 0,
            Bound::Included(k) | Bound::Excluded(k) => self.run_of(k),
        };
        let last = match hi {
            Bound::Unbounded => self.runs.len() - 1,
            Bound::Included(k) | Bound::Excluded(k) => self.run_of(k),
        };
        if first >= last {
            // One run (or bounds the wrong way round: the run's own range is then empty).
            return Runs {
                runs: &self.runs,
                head: Some(self.runs[first].merged(lo, hi, rev)),
                middle: 0..0,
                tail: None,
                rev,
            };
        }
        let open = Bound::Unbounded;
        let low = self.runs[first].merged(lo, open, rev);
        let high = self.runs[last].merged(open, hi, rev);
        let (head, tail) = if rev { (high, low) } else { (low, high) };
        Runs {
            runs: &self.runs,
            head: Some(head),
            middle: first + 1..last,
            tail: Some(tail),
            rev,
        }
    }
}

/// A range over several runs: `head` until it ends, then each run of `middle` whole (in
/// order, or reverse order), then `tail`.
struct Runs<'a> {
    runs: &'a [Run],
    head: Option<Merge<'a>>,
    middle: std::ops::Range<usize>,
    tail: Option<Merge<'a>>,
    rev: bool,
}

impl<'a> Iterator for Runs<'a> {
    type Item = (&'a [u8], IndexEntry);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(x) = self.head.as_mut().and_then(Iterator::next) {
                return Some(x);
            }
            let next = if self.rev {
                self.middle.next_back()
            } else {
                self.middle.next()
            };
            self.head = match next {
                Some(i) => Some(self.runs[i].merged(Bound::Unbounded, Bound::Unbounded, self.rev)),
                None => Some(self.tail.take()?),
            };
        }
    }
}

/// Base and delta entries of one run's range, merged in key order (or reverse order).
struct Merge<'a> {
    run: &'a Run,
    /// Base positions not yet passed (dead slots among them are skipped).
    base: std::ops::Range<usize>,
    /// None once it has ended (or if the range has no delta keys at all).
    delta: Option<std::collections::btree_map::Range<'a, Box<[u8]>, Slot>>,
    /// The delta entry taken from `delta` and not yet returned.
    next_delta: Option<(&'a [u8], &'a Slot)>,
    rev: bool,
}

impl<'a> Merge<'a> {
    /// The next alive base position, skipping dead slots.
    fn peek_base(&mut self) -> Option<usize> {
        while !self.base.is_empty() {
            let i = if self.rev {
                self.base.end - 1
            } else {
                self.base.start
            };
            if self.run.slots[i].alive() {
                return Some(i);
            }
            self.pass_base();
        }
        None
    }

    fn pass_base(&mut self) {
        if self.rev {
            self.base.end -= 1;
        } else {
            self.base.start += 1;
        }
    }

    /// The next delta entry, if any.
    fn peek_delta(&mut self) -> Option<(&'a [u8], &'a Slot)> {
        if self.next_delta.is_none() {
            let d = self.delta.as_mut()?;
            let n = if self.rev { d.next_back() } else { d.next() };
            match n {
                Some((k, s)) => self.next_delta = Some((k.as_ref(), s)),
                None => self.delta = None,
            }
        }
        self.next_delta
    }
}

impl<'a> Iterator for Merge<'a> {
    type Item = (&'a [u8], IndexEntry);

    fn next(&mut self) -> Option<Self::Item> {
        let run = self.run;
        let base = self.peek_base().map(|i| (run.key_at(i), i));
        let take_base = match (base, self.peek_delta()) {
            (Some((b, _)), Some((d, _))) => (b < d) != self.rev,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        if take_base {
            let (k, i) = base?;
            self.pass_base();
            Some((k, run.slots[i].unpack()))
        } else {
            let (k, s) = self.next_delta.take()?;
            Some((k, s.unpack()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(lsn: u64, pending: bool) -> IndexEntry {
        IndexEntry {
            lsn,
            value_len: (lsn % 5000) as u32,
            place: if pending {
                Place::Pending {
                    stripe_seq: lsn << 20 | 7,
                    record_offset: lsn as u32 ^ 0x55,
                    segment_id: lsn / 3 + 1,
                }
            } else {
                Place::Disk(RecordLoc {
                    segment_id: (lsn << 33) + 1,
                    offset_in_segment_bytes: 4096 * (lsn as u32 % 100),
                    height_bytes: 8192,
                    ordinal: lsn as u32 % 17,
                    record_offset: lsn as u32 % 999,
                    record_len: 77,
                    crc: lsn as u32 ^ 0xdead_beef,
                })
            },
        }
    }

    fn same(a: &IndexEntry, b: &IndexEntry) -> bool {
        a.lsn == b.lsn
            && a.value_len == b.value_len
            && match (&a.place, &b.place) {
                (Place::Disk(x), Place::Disk(y)) => x == y,
                (
                    Place::Pending {
                        stripe_seq: s1,
                        record_offset: r1,
                        segment_id: g1,
                    },
                    Place::Pending {
                        stripe_seq: s2,
                        record_offset: r2,
                        segment_id: g2,
                    },
                ) => (s1, r1, g1) == (s2, r2, g2),
                _ => false,
            }
    }

    #[test]
    fn pack_round_trips_both_places() {
        for lsn in [1, 2, 4999, 1 << 40, u64::MAX >> 1] {
            for pending in [false, true] {
                let e = entry(lsn, pending);
                assert!(same(&Slot::pack(&e, 9).unpack(), &e), "{e:?}");
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u16, u64, bool),
        Del(u16),
        Settle(u16, u64),
        Range(u16, u16, bool, bool, bool),
    }

    fn key(k: u16) -> Vec<u8> {
        // Keys of varying length sharing prefixes, so arena boundaries matter.
        let mut v = format!("{}", k % 700).into_bytes();
        v.extend(std::iter::repeat_n(b'x', (k / 700) as usize));
        v
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (0u16..2100, 1u64..1_000_000, any::<bool>()).prop_map(|(k, l, p)| Op::Put(k, l, p)),
            2 => (0u16..2100).prop_map(Op::Del),
            1 => (0u16..2100, 1u64..1_000_000).prop_map(|(k, l)| Op::Settle(k, l)),
            1 => (0u16..2100, 0u16..2100, any::<bool>(), any::<bool>(), any::<bool>())
                .prop_map(|(a, b, i, j, r)| Op::Range(a, b, i, j, r)),
        ]
    }

    fn bound(k: &[u8], inclusive: bool) -> Bound<&[u8]> {
        if inclusive {
            Bound::Included(k)
        } else {
            Bound::Excluded(k)
        }
    }

    /// A map whose runs take the given limits.
    fn map(arena_limit: usize, min_merge: usize, run_keys: usize) -> KeyMap {
        KeyMap {
            runs: vec![Run {
                arena_limit,
                min_merge,
                ..Run::default()
            }],
            run_keys,
            ..KeyMap::default()
        }
    }

    fn check(ops: &[Op], arena_limit: usize, min_merge: usize, run_keys: usize) {
        let mut m = map(arena_limit, min_merge, run_keys);
        let mut model: BTreeMap<Vec<u8>, IndexEntry> = BTreeMap::new();
        let mut hint = NearHint::default();
        for op in ops {
            match op {
                Op::Put(k, lsn, p) => {
                    let e = entry(*lsn, *p);
                    let old = m.insert(&key(*k), &e);
                    let want = model.insert(key(*k), e);
                    assert_eq!(old.is_some(), want.is_some());
                    if let (Some(a), Some(b)) = (old, want) {
                        assert!(same(&a, &b));
                    }
                }
                Op::Del(k) => {
                    let old = m.remove(&key(*k));
                    let want = model.remove(&key(*k));
                    assert_eq!(old.is_some(), want.is_some());
                }
                Op::Settle(k, lsn) => {
                    let e = entry(*lsn, false);
                    m.update_near(&key(*k), &mut hint, |x| *x = e.clone());
                    if let Some(x) = model.get_mut(&key(*k)) {
                        *x = e;
                    }
                }
                Op::Range(a, b, ia, ib, rev) => {
                    let (ka, kb) = (key(*a), key(*b));
                    let (lo, hi) = (bound(&ka, *ia), bound(&kb, *ib));
                    let got: Vec<Vec<u8>> = if *rev {
                        m.range_rev(lo, hi).map(|(k, _)| k.to_vec()).collect()
                    } else {
                        m.range(lo, hi).map(|(k, _)| k.to_vec()).collect()
                    };
                    let inverted = ka > kb || (ka == kb && !(*ia && *ib));
                    let mut want: Vec<Vec<u8>> = if inverted {
                        Vec::new()
                    } else {
                        model
                            .range::<[u8], _>((lo, hi))
                            .map(|(k, _)| k.clone())
                            .collect()
                    };
                    if *rev {
                        want.reverse();
                    }
                    assert_eq!(got, want);
                }
            }
            assert_eq!(m.len(), model.len());
        }
        m.check_invariants();
        let all: Vec<(Vec<u8>, IndexEntry)> = m.iter().map(|(k, e)| (k.to_vec(), e)).collect();
        assert_eq!(all.len(), model.len());
        for ((k, e), (mk, me)) in all.iter().zip(&model) {
            assert_eq!(k, mk);
            assert!(same(e, me));
        }
        for (k, e) in &model {
            assert!(same(&m.get(k).expect("key present"), e));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn matches_a_btreemap(ops in proptest::collection::vec(op(), 1..6000)) {
            check(&ops, u32::MAX as usize, MIN_DELTA_BEFORE_MERGE, RUN_KEYS);
        }

        #[test]
        fn matches_a_btreemap_merging_often(ops in proptest::collection::vec(op(), 1..3000)) {
            check(&ops, u32::MAX as usize, 4, RUN_KEYS);
        }

        #[test]
        fn matches_a_btreemap_in_small_runs(ops in proptest::collection::vec(op(), 1..3000)) {
            check(&ops, u32::MAX as usize, 4, 16);
        }

        #[test]
        fn matches_a_btreemap_in_runs_that_merge_rarely(
            ops in proptest::collection::vec(op(), 1..6000)
        ) {
            check(&ops, u32::MAX as usize, MIN_DELTA_BEFORE_MERGE, 200);
        }

        #[test]
        fn matches_a_btreemap_with_a_small_arena(ops in proptest::collection::vec(op(), 1..3000)) {
            check(&ops, 2000, 4, RUN_KEYS);
        }

        #[test]
        fn matches_a_btreemap_with_a_small_arena_in_small_runs(
            ops in proptest::collection::vec(op(), 1..3000)
        ) {
            check(&ops, 300, 4, 16);
        }
    }

    #[test]
    fn keys_in_order_inside_the_table_are_spliced_in() {
        let mut m = map(u32::MAX as usize, 16, RUN_KEYS);
        let mut model = BTreeMap::new();
        let put = |m: &mut KeyMap, model: &mut BTreeMap<Vec<u8>, u64>, k: Vec<u8>, lsn: u64| {
            m.insert(&k, &entry(lsn, false));
            model.insert(k, lsn);
        };
        for i in 0..2000u64 {
            put(&mut m, &mut model, format!("a{i:05}").into_bytes(), i + 1);
        }
        put(&mut m, &mut model, b"z".to_vec(), 9999);
        m.remove(b"a00007");
        model.remove(b"a00007".as_slice());
        // Sorted after every "a" key and before "z": one gap, every fold is a splice.
        for i in 0..5000u64 {
            put(
                &mut m,
                &mut model,
                format!("m{i:05}").into_bytes(),
                10_000 + i,
            );
        }
        let run = &m.runs[0];
        assert!(run.delta.len() <= 16.max(run.slots.len() / 8));
        assert_eq!(
            run.dead, 1,
            "a splice keeps dead slots; only a merge drops them"
        );
        let got: Vec<(Vec<u8>, u64)> = m.iter().map(|(k, e)| (k.to_vec(), e.lsn)).collect();
        let want: Vec<(Vec<u8>, u64)> = model.iter().map(|(k, l)| (k.clone(), *l)).collect();
        assert_eq!(got, want);
        for (k, l) in &model {
            assert_eq!(m.get(k).map(|e| e.lsn), Some(*l));
        }
        assert!(m.get(b"a00007").is_none());
        assert!(m.get(b"m05000").is_none());
    }

    #[test]
    fn sequential_keys_append_without_a_delta() {
        let mut m = KeyMap::default();
        for i in 0..10_000u32 {
            m.insert(
                format!("{i:08}").as_bytes(),
                &entry(u64::from(i) + 1, false),
            );
        }
        assert!(m.runs[0].delta.is_empty());
        assert_eq!(m.runs[0].slots.len(), 10_000);
        assert_eq!(m.get(b"00000042").map(|e| e.lsn), Some(43));
    }

    #[test]
    fn random_keys_merge_and_deletes_compact() {
        let mut m = KeyMap::default();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut keys = Vec::new();
        for i in 0..50_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = x.to_le_bytes();
            m.insert(&k, &entry(i + 1, false));
            keys.push(k);
        }
        let run = &m.runs[0];
        assert!(run.delta.len() <= MIN_DELTA_BEFORE_MERGE.max(run.slots.len() / 8));
        for k in &keys[..40_000] {
            assert!(m.remove(k).is_some());
        }
        let run = &m.runs[0];
        assert!(run.dead <= MIN_DELTA_BEFORE_MERGE.max(run.slots.len() / 4));
        assert_eq!(m.len(), 10_000);
        let ordered: Vec<&[u8]> = m.iter().map(|(k, _)| k).collect();
        assert!(ordered.windows(2).all(|w| w[0] < w[1]));
    }

    /// Random 8-byte keys (xorshift).
    fn random_keys(n: usize) -> Vec<[u8; 8]> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn a_large_table_folds_one_run_at_a_time() {
        // With one run, the last fold of 200,000 random keys passes over all of them.
        let keys = random_keys(200_000);
        let mut one = map(u32::MAX as usize, MIN_DELTA_BEFORE_MERGE, usize::MAX);
        let mut runs = map(u32::MAX as usize, MIN_DELTA_BEFORE_MERGE, 4096);
        for (i, k) in keys.iter().enumerate() {
            one.insert(k, &entry(i as u64 + 1, false));
            runs.insert(k, &entry(i as u64 + 1, false));
        }
        assert!(one.largest_pass() > 150_000, "{}", one.largest_pass());
        // A run is split past 4,096 base keys, and folds at most an eighth more (or the
        // minimum delta) on top.
        let bound = 4096 + MIN_DELTA_BEFORE_MERGE.max(4096 / 8) + 1;
        assert!(runs.largest_pass() <= bound, "{}", runs.largest_pass());
        assert!(
            runs.runs.len() >= 200_000 / 4096,
            "{} runs",
            runs.runs.len()
        );
        runs.check_invariants();
        let a: Vec<&[u8]> = one.iter().map(|(k, _)| k).collect();
        let b: Vec<&[u8]> = runs.iter().map(|(k, _)| k).collect();
        assert_eq!(a, b);
        let mut rev: Vec<&[u8]> = runs
            .range_rev(Bound::Unbounded, Bound::Unbounded)
            .map(|(k, _)| k)
            .collect();
        rev.reverse();
        assert_eq!(a, rev);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(runs.get(k).map(|e| e.lsn), Some(i as u64 + 1));
        }
        // Emptied runs are dropped; what is left still reads back in order.
        for k in &keys[..190_000] {
            assert!(runs.remove(k).is_some());
        }
        runs.check_invariants();
        assert_eq!(runs.len(), 10_000);
        let left: Vec<&[u8]> = runs.iter().map(|(k, _)| k).collect();
        assert_eq!(left.len(), 10_000);
        assert!(left.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn keys_after_a_full_last_run_start_a_new_one_without_a_copy() {
        let mut m = map(u32::MAX as usize, MIN_DELTA_BEFORE_MERGE, 1000);
        for i in 0..10_000u32 {
            m.insert(
                format!("{i:08}").as_bytes(),
                &entry(u64::from(i) + 1, false),
            );
        }
        assert_eq!(m.runs.len(), 10);
        assert_eq!(m.largest_pass(), 0, "nothing was folded, spliced or split");
        m.check_invariants();
        assert_eq!(m.get(b"00004242").map(|e| e.lsn), Some(4243));
        let mid: Vec<&[u8]> = m
            .range(Bound::Included(b"00000998"), Bound::Excluded(b"00001002"))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(mid, [b"00000998", b"00000999", b"00001000", b"00001001"]);
    }
}
