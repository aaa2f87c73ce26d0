//! The checkpoint payload: the whole index, serialized; written as the data of the stripes
//! of checkpoint segments (docs/format.md, "Index checkpoint").
//!
//! `// { magic | version | reserved | lsn | resume_segment | resume_offset | resume_ordinal |
//!      entry_count | entries... | crc }`
//! `// entry { table_len u8 | table | key_len u16 | key | lsn u64 | value_len u32 |
//!      segment_id u64 | offset u32 | height u32 | ordinal u32 | record_offset u32 |
//!      record_len u32 | crc u32 }`

use super::*;
use crate::index::{Index, IndexEntry, Place, RecordLoc};

const MAGIC: &[u8; 8] = b"ECTCKPT1";
const OFF_VERSION: usize = 8;
const OFF_LSN: usize = 16;
const OFF_RESUME_SEGMENT: usize = 24;
const OFF_RESUME_OFFSET: usize = 32;
const OFF_RESUME_ORDINAL: usize = 36;
const OFF_ENTRY_COUNT: usize = 40;
const HEADER_BYTES: usize = 48;

/// Where the log continues after a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    pub segment_id: u64,
    pub offset: u32,
    pub ordinal: u32,
}

/// Serializes the index. Returns None if some entry is not on disk yet.
pub(crate) fn encode(index: &Index, lsn: u64, resume: ResumePoint) -> Option<Vec<u8>> {
    let mut out = vec![0u8; HEADER_BYTES];
    out[0..8].copy_from_slice(MAGIC);
    put_u32(&mut out, OFF_VERSION, FORMAT_VERSION);
    put_u64(&mut out, OFF_LSN, lsn);
    put_u64(&mut out, OFF_RESUME_SEGMENT, resume.segment_id);
    put_u32(&mut out, OFF_RESUME_OFFSET, resume.offset);
    put_u32(&mut out, OFF_RESUME_ORDINAL, resume.ordinal);
    let mut count = 0u64;
    let mut tables: Vec<&String> = index.tables.keys().collect();
    tables.sort();
    for t in tables {
        for (key, e) in index.tables[t].iter() {
            let Place::Disk(loc) = &e.place else {
                return None;
            };
            out.push(t.len() as u8);
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(&(key.len() as u16).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&e.lsn.to_le_bytes());
            out.extend_from_slice(&e.value_len.to_le_bytes());
            out.extend_from_slice(&loc.segment_id.to_le_bytes());
            for v in [
                loc.offset_in_segment_bytes,
                loc.height_bytes,
                loc.ordinal,
                loc.record_offset,
                loc.record_len,
                loc.crc,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            count += 1;
        }
    }
    put_u64(&mut out, OFF_ENTRY_COUNT, count);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Some(out)
}

/// Decodes and verifies a checkpoint.
pub(crate) fn decode(b: &[u8]) -> std::result::Result<(Index, u64, ResumePoint), DecodeError> {
    if b.len() < HEADER_BYTES + 4 {
        return Err(DecodeError::Truncated);
    }
    if &b[0..8] != MAGIC {
        return Err(DecodeError::Magic);
    }
    check_trailing_crc(b)?;
    if get_u32(b, OFF_VERSION) != FORMAT_VERSION {
        return Err(DecodeError::Version(get_u32(b, OFF_VERSION)));
    }
    if get_u32(b, 12) != 0 {
        return Err(DecodeError::Reserved);
    }
    let lsn = get_u64(b, OFF_LSN);
    let resume = ResumePoint {
        segment_id: get_u64(b, OFF_RESUME_SEGMENT),
        offset: get_u32(b, OFF_RESUME_OFFSET),
        ordinal: get_u32(b, OFF_RESUME_ORDINAL),
    };
    let count = get_u64(b, OFF_ENTRY_COUNT);
    let end = b.len() - 4;
    let mut pos = HEADER_BYTES;
    let mut index = Index::default();
    let need = |pos: usize, n: usize| {
        if pos + n <= end {
            Ok(())
        } else {
            Err(DecodeError::Truncated)
        }
    };
    for _ in 0..count {
        need(pos, 1)?;
        let tl = b[pos] as usize;
        pos += 1;
        need(pos, tl + 2)?;
        let table = std::str::from_utf8(&b[pos..pos + tl])
            .map_err(|_| DecodeError::Field("table"))?
            .to_string();
        pos += tl;
        let kl = get_u16(b, pos) as usize;
        pos += 2;
        need(pos, kl + 8 + 4 + 8 + 24)?;
        let key = b[pos..pos + kl].to_vec();
        pos += kl;
        let e_lsn = get_u64(b, pos);
        let value_len = get_u32(b, pos + 8);
        let segment_id = get_u64(b, pos + 12);
        let f = |i: usize| get_u32(b, pos + 20 + 4 * i);
        let loc = RecordLoc {
            segment_id,
            offset_in_segment_bytes: f(0),
            height_bytes: f(1),
            ordinal: f(2),
            record_offset: f(3),
            record_len: f(4),
            crc: f(5),
        };
        pos += 44;
        if e_lsn > lsn || table.is_empty() || key.is_empty() {
            return Err(DecodeError::Field("checkpoint entry"));
        }
        index.put(
            &table,
            &key,
            IndexEntry {
                lsn: e_lsn,
                value_len,
                place: Place::Disk(loc),
            },
        );
    }
    if pos != end {
        return Err(DecodeError::Field("checkpoint length"));
    }
    Ok((index, lsn, resume))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let mut index = Index::default();
        for i in 0..50u32 {
            let loc = RecordLoc {
                segment_id: 3,
                offset_in_segment_bytes: 4096,
                height_bytes: 8192,
                ordinal: i,
                record_offset: 8 * i,
                record_len: 40,
                crc: i,
            };
            index.put(
                if i % 2 == 0 { "a" } else { "bb" },
                &i.to_le_bytes(),
                IndexEntry {
                    lsn: i as u64 + 1,
                    value_len: 7,
                    place: Place::Disk(loc),
                },
            );
        }
        let resume = ResumePoint {
            segment_id: 9,
            offset: 12288,
            ordinal: 2,
        };
        let b = encode(&index, 60, resume).unwrap();
        let (d, lsn, r) = decode(&b).unwrap();
        assert_eq!((lsn, r), (60, resume));
        assert_eq!(d.key_count(), 50);
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 1;
            assert!(decode(&c).is_err(), "flip at {i}");
        }
        assert!(decode(&b[..b.len() - 1]).is_err());
    }
}
