//! Sync journal entries (format version 2): a run of consecutive log records written to
//! m + 1 members of a small ring and flushed there, so that a synced write is acknowledged
//! without a stripe on every member (docs/format.md, "Sync journal").
//!
//! `// { magic | array | epoch | first_lsn | last_lsn | payload | entry | reserved | crc | records }`
//!
//! Invariants:
//! - An entry is 4096-aligned in length and lies wholly inside the ring.
//! - The crc covers the header before it and every payload byte, so a torn entry, or one
//!   partly overwritten by a later entry, never decodes.
//! - A decoded entry's payload holds exactly the records first_lsn ..= last_lsn, in order.

use super::log_record::RecordFormat;
use super::*;

/// Where the ring starts on every device (after the health block).
pub const JOURNAL_START_BYTES: u64 = 12288;
/// The ring's length: up to the first device segment.
pub const JOURNAL_BYTES: usize = (DATA_START_BYTES - JOURNAL_START_BYTES) as usize;
/// Bytes of an entry's header; the records follow it.
pub const ENTRY_HEADER_BYTES: usize = 64;
/// An entry's LSNs lie below this (docs/format.md, "Sync journal").
pub const MAX_LSN: u64 = 1 << 63;

const MAGIC: &[u8; MAGIC_BYTES] = b"ECTJRNL1";
const OFF_MAGIC: usize = 0;
const OFF_ARRAY: usize = 8;
const OFF_EPOCH: usize = 24;
const OFF_FIRST_LSN: usize = 32;
const OFF_LAST_LSN: usize = 40;
const OFF_PAYLOAD: usize = 48;
const OFF_ENTRY: usize = 52;
const OFF_RESERVED: usize = 56;
const OFF_CRC: usize = 60;

const _: () = assert!(contiguous(&[
    (OFF_MAGIC, MAGIC_BYTES),
    (OFF_ARRAY, UUID_BYTES),
    (OFF_EPOCH, size_of::<u64>()),
    (OFF_FIRST_LSN, size_of::<u64>()),
    (OFF_LAST_LSN, size_of::<u64>()),
    (OFF_PAYLOAD, size_of::<u32>()),
    (OFF_ENTRY, size_of::<u32>()),
    (OFF_RESERVED, size_of::<u32>()),
    (OFF_CRC, CRC_BYTES),
    (ENTRY_HEADER_BYTES, 0),
]));
const _: () = assert!(JOURNAL_BYTES.is_multiple_of(BLOCK_BYTES));
const _: () = assert!(JOURNAL_START_BYTES.is_multiple_of(BLOCK_BYTES as u64));

/// A decoded journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// The array it belongs to.
    pub array_uuid: [u8; UUID_BYTES],
    /// The array's epoch when it was written.
    pub write_epoch: u64,
    /// LSN of its first record.
    pub first_lsn: u64,
    /// LSN of its last record.
    pub last_lsn: u64,
    /// Its records, encoded and padded as in a stripe's data space.
    pub payload: Vec<u8>,
}

/// The length on disk of an entry holding `payload_bytes` bytes of records.
pub fn entry_bytes(payload_bytes: usize) -> usize {
    (ENTRY_HEADER_BYTES + payload_bytes).next_multiple_of(BLOCK_BYTES)
}

fn entry_crc(b: &[u8], payload_bytes: usize) -> u32 {
    let head = crc32c::crc32c(&b[..OFF_CRC]);
    crc32c::crc32c_append(
        head,
        &b[ENTRY_HEADER_BYTES..ENTRY_HEADER_BYTES + payload_bytes],
    )
}

/// Encodes an entry into `b`, which must be `entry_bytes(payload length)` zeroed bytes; the
/// payload is the concatenation of `parts` (the writer encodes straight into the buffer it
/// writes, without a copy of the records).
pub fn encode_entry(
    array_uuid: &[u8; UUID_BYTES],
    write_epoch: u64,
    (first_lsn, last_lsn): (u64, u64),
    parts: &[&[u8]],
    b: &mut [u8],
) {
    let p: usize = parts.iter().map(|x| x.len()).sum();
    debug_assert_eq!(b.len(), entry_bytes(p));
    b[OFF_MAGIC..OFF_MAGIC + MAGIC_BYTES].copy_from_slice(MAGIC);
    b[OFF_ARRAY..OFF_ARRAY + UUID_BYTES].copy_from_slice(array_uuid);
    put_u64(b, OFF_EPOCH, write_epoch);
    put_u64(b, OFF_FIRST_LSN, first_lsn);
    put_u64(b, OFF_LAST_LSN, last_lsn);
    put_u32(b, OFF_PAYLOAD, p as u32);
    put_u32(b, OFF_ENTRY, entry_bytes(p) as u32);
    let mut at = ENTRY_HEADER_BYTES;
    for part in parts {
        b[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    let crc = entry_crc(b, p);
    put_u32(b, OFF_CRC, crc);
}

impl JournalEntry {
    /// Encodes the entry into `entry_bytes(payload.len())` bytes (zero after the records).
    /// (The writer uses [`encode_entry`]; this is for tests, seeds and tools.)
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; entry_bytes(self.payload.len())];
        encode_entry(
            &self.array_uuid,
            self.write_epoch,
            (self.first_lsn, self.last_lsn),
            &[&self.payload],
            &mut b,
        );
        b
    }

    /// Decodes and checks the entry at the start of `b` (the rest of the ring from its
    /// place): magic, crc, lengths, reserved bytes, and that the payload is exactly the
    /// records first_lsn ..= last_lsn in the array's record format `fmt`. The caller checks
    /// the array and the epoch.
    pub fn decode(b: &[u8], fmt: RecordFormat) -> Result<JournalEntry, DecodeError> {
        if b.len() < ENTRY_HEADER_BYTES {
            return Err(DecodeError::Truncated);
        }
        if &b[OFF_MAGIC..OFF_MAGIC + MAGIC_BYTES] != MAGIC {
            return Err(DecodeError::Magic);
        }
        let p = get_u32(b, OFF_PAYLOAD) as usize;
        let e = get_u32(b, OFF_ENTRY) as usize;
        if p < fmt.header_len() || !p.is_multiple_of(8) || e != entry_bytes(p) {
            return Err(DecodeError::Field("journal entry lengths"));
        }
        if b.len() < e {
            return Err(DecodeError::Truncated);
        }
        let stored = get_u32(b, OFF_CRC);
        let computed = entry_crc(b, p);
        if stored != computed {
            return Err(DecodeError::Checksum { stored, computed });
        }
        if get_u32(b, OFF_RESERVED) != 0 {
            return Err(DecodeError::Reserved);
        }
        let (first_lsn, last_lsn) = (get_u64(b, OFF_FIRST_LSN), get_u64(b, OFF_LAST_LSN));
        // LSNs never come near 2^63; the bound keeps every `lsn + 1` below from overflowing.
        if first_lsn == 0 || last_lsn < first_lsn || last_lsn >= MAX_LSN {
            return Err(DecodeError::Field("journal entry lsn range"));
        }
        let payload = &b[ENTRY_HEADER_BYTES..ENTRY_HEADER_BYTES + p];
        let (mut pos, mut expected) = (0usize, first_lsn);
        let mut records = StripeRecords::plain(fmt, first_lsn, payload);
        for r in records.by_ref() {
            let r = r?;
            if r.rec.lsn != expected || expected > last_lsn {
                return Err(DecodeError::Field("journal record lsn"));
            }
            expected += 1;
            pos = r.offset + r.len.next_multiple_of(8);
        }
        if pos != p || expected != last_lsn + 1 {
            return Err(DecodeError::Field("journal entry lsn range"));
        }
        Ok(JournalEntry {
            array_uuid: get_uuid(b, OFF_ARRAY),
            write_epoch: get_u64(b, OFF_EPOCH),
            first_lsn,
            last_lsn,
            payload: payload.to_vec(),
        })
    }

    /// Every valid entry of one device's ring (`ring` is the ring's bytes), with its offset
    /// in the ring. Every 4096-aligned offset is tried: entries do not overlap when
    /// written, but a later entry may have overwritten the start of an earlier one.
    pub fn scan_ring(ring: &[u8], fmt: RecordFormat) -> Vec<(usize, JournalEntry)> {
        let mut out = Vec::new();
        let mut off = 0;
        while off + ENTRY_HEADER_BYTES <= ring.len() {
            match JournalEntry::decode(&ring[off..], fmt) {
                Ok(e) => {
                    let len = entry_bytes(e.payload.len());
                    out.push((off, e));
                    off += len;
                }
                Err(_) => off += BLOCK_BYTES,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::log_record::{LogRecord, RecordKind};

    const W: RecordFormat = RecordFormat::Wide;

    fn records(first: u64, n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for lsn in first..first + n {
            let r = LogRecord {
                lsn,
                kind: RecordKind::Put,
                table: "t".into(),
                key: format!("k{lsn}").into_bytes(),
                value: vec![lsn as u8; 100],
            };
            r.encode_into(&mut out);
        }
        out
    }

    fn entry(first: u64, n: u64) -> JournalEntry {
        JournalEntry {
            array_uuid: [7; 16],
            write_epoch: 9,
            first_lsn: first,
            last_lsn: first + n - 1,
            payload: records(first, n),
        }
    }

    #[test]
    fn an_entry_round_trips_and_is_block_sized() {
        let e = entry(5, 3);
        let b = e.encode();
        assert_eq!(b.len() % BLOCK_BYTES, 0);
        assert_eq!(JournalEntry::decode(&b, W), Ok(e));
    }

    #[test]
    fn any_flipped_bit_of_header_or_records_is_refused() {
        let e = entry(1, 4);
        let b = e.encode();
        let used = ENTRY_HEADER_BYTES + e.payload.len();
        for byte in 0..used {
            let mut c = b.clone();
            c[byte] ^= 0x10;
            assert!(
                JournalEntry::decode(&c, W).is_err(),
                "flip at {byte} accepted"
            );
        }
    }

    #[test]
    fn a_torn_entry_is_refused() {
        let e = entry(1, 60);
        let b = e.encode();
        assert!(b.len() > BLOCK_BYTES);
        let mut torn = b.clone();
        torn[BLOCK_BYTES..].fill(0);
        assert!(JournalEntry::decode(&torn, W).is_err());
        assert_eq!(
            JournalEntry::decode(&b[..b.len() - 1], W),
            Err(DecodeError::Truncated)
        );
    }

    /// Found by libFuzzer: a last_lsn of u64::MAX overflowed `last_lsn + 1`.
    #[test]
    fn an_lsn_range_reaching_the_top_is_refused_not_overflowed() {
        let mut e = entry(10, 2);
        e.last_lsn = u64::MAX;
        assert_eq!(
            JournalEntry::decode(&e.encode(), W),
            Err(DecodeError::Field("journal entry lsn range"))
        );
        let mut e = entry(10, 2);
        e.first_lsn = MAX_LSN;
        e.last_lsn = MAX_LSN;
        assert!(JournalEntry::decode(&e.encode(), W).is_err());
    }

    #[test]
    fn records_must_match_the_lsn_range() {
        let mut e = entry(10, 2);
        e.last_lsn = 12;
        assert!(JournalEntry::decode(&e.encode(), W).is_err());
        let mut e = entry(10, 2);
        e.first_lsn = 9;
        assert!(JournalEntry::decode(&e.encode(), W).is_err());
    }

    #[test]
    fn the_ring_scan_finds_entries_and_skips_overwritten_ones() {
        let mut ring = vec![0u8; 16 * BLOCK_BYTES];
        let a = entry(1, 60).encode(); // two blocks or more
        let b = entry(61, 1).encode();
        ring[..a.len()].copy_from_slice(&a);
        ring[a.len()..a.len() + b.len()].copy_from_slice(&b);
        let found = JournalEntry::scan_ring(&ring, W);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].0, found[1].0), (0, a.len()));
        // A later entry written over the start of `a` hides it.
        let c = entry(100, 1).encode();
        ring[..c.len()].copy_from_slice(&c);
        let found: Vec<u64> = JournalEntry::scan_ring(&ring, W)
            .iter()
            .map(|(_, e)| e.first_lsn)
            .collect();
        assert_eq!(found, vec![100, 61]);
    }
}
