//! Index checkpoints: the whole index, written as RS-coded stripes into checkpoint segments
//! on clean close, so that reopen replays only the log written after it.
//!
//! `// { magic | version | reserved | lsn | resume_segment | resume_offset | resume_ordinal |
//!      entry_count | entries... | crc }`
//! `// entry { table_len u8 | table | key_len u16 | key | lsn u64 | value_len u32 |
//!      segment_id u64 | offset u32 | height u32 | ordinal u32 | record_offset u32 |
//!      record_len u32 | crc u32 }`
//!
//! Invariants:
//! - A checkpoint holds exactly the index after every record with LSN ≤ `lsn`, and names
//!   where the log goes on (the resume point).
//! - The superblocks point at a checkpoint only after all its stripes are written and
//!   flushed; a crash before that leaves the previous checkpoint in force, and the new
//!   checkpoint's segments unreferenced (free at the next open).
//! - A checkpoint that cannot be read or verified is ignored: recovery replays the whole log.

use crate::error::{Error, Result};
use crate::format::*;
use crate::index::{Index, IndexEntry, Place, RecordLoc};
use crate::log::writer::{OpenStripe, SealedStripe, Shared, WriterState};
use crate::segments::SegmentInfo;
use ectable_devices::IoOp;
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"ECTCKPT1";
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
    put_u32(&mut out, 8, FORMAT_VERSION);
    put_u64(&mut out, 16, lsn);
    put_u64(&mut out, 24, resume.segment_id);
    put_u32(&mut out, 32, resume.offset);
    put_u32(&mut out, 36, resume.ordinal);
    let mut count = 0u64;
    let mut tables: Vec<&String> = index.tables.keys().collect();
    tables.sort();
    for t in tables {
        for (key, e) in &index.tables[t] {
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
                loc.offset_in_segment,
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
    put_u64(&mut out, 40, count);
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
    if get_u32(b, 8) != FORMAT_VERSION {
        return Err(DecodeError::Version(get_u32(b, 8)));
    }
    if get_u32(b, 12) != 0 {
        return Err(DecodeError::Reserved);
    }
    let lsn = get_u64(b, 16);
    let resume = ResumePoint {
        segment_id: get_u64(b, 24),
        offset: get_u32(b, 32),
        ordinal: get_u32(b, 36),
    };
    let count = get_u64(b, 40);
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
            offset_in_segment: f(0),
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

/// Writes a checkpoint of the (quiesced) engine and points the superblocks at it. Called at
/// clean close, with the flusher stopped and everything durable.
pub(crate) fn write(shared: &Shared, st: &mut WriterState) -> Result<Option<u64>> {
    let array = &shared.array;
    let Some(cursor) = st.cursor.clone() else {
        return Ok(None);
    };
    let lsn = st.durable_lsn;
    if lsn == 0 || st.open.as_ref().is_some_and(|o| !o.records.is_empty()) || !st.sealed.is_empty()
    {
        return Ok(None);
    }
    let resume = ResumePoint {
        segment_id: cursor.segment.id,
        offset: cursor.offset,
        ordinal: cursor.ordinal,
    };
    let bytes = {
        let index = shared.index.read().unwrap_or_else(|p| p.into_inner());
        match encode(&index, lsn, resume) {
            Some(b) => b,
            None => return Ok(None),
        }
    };
    let (k, c, s) = (array.k(), array.chunk_size(), array.segment_size());
    let per_stripe = k * (c - CHUNK_HEADER_SIZE_BYTES);
    let stripes_per_segment = (s - SEGMENT_HEADER_SIZE_BYTES) / c;
    let per_segment = per_stripe * stripes_per_segment;
    let segment_count = bytes.len().div_ceil(per_segment);
    let online: Vec<bool> = (0..array.n())
        .map(|slot| array.device_of_slot(slot as u32).is_some())
        .collect();
    let first_id = st.next_segment_id;
    let mut segs: Vec<Arc<SegmentInfo>> = Vec::new();
    for i in 0..segment_count {
        let id = first_id + i as u64;
        let Some(members) = st
            .free
            .allocate(id, array.w(), &online, shared.min_write_shards)
        else {
            for seg in &segs {
                for (slot, dseg) in &seg.members {
                    st.free.release(*slot, *dseg);
                }
            }
            return Err(Error::NoSpace("no room for an index checkpoint".into()));
        };
        segs.push(Arc::new(SegmentInfo {
            id,
            kind: SegmentKind::Checkpoint,
            members,
        }));
    }
    st.next_segment_id = first_id + segment_count as u64;
    let mut stripes = Vec::new();
    for (i, piece) in bytes.chunks(per_stripe).enumerate() {
        let seg = &segs[i / stripes_per_segment];
        let ordinal = (i % stripes_per_segment) as u32;
        let per_chunk = piece.len().div_ceil(k);
        let height =
            ((CHUNK_HEADER_SIZE_BYTES + per_chunk).div_ceil(BLOCK_BYTES) * BLOCK_BYTES) as u32;
        stripes.push(SealedStripe {
            stripe: OpenStripe {
                segment: seg.clone(),
                new_segment: ordinal == 0,
                offset: (SEGMENT_HEADER_SIZE_BYTES + ordinal as usize * c) as u32,
                ordinal,
                max_height: c as u32,
                buf: Arc::new(piece.to_vec()),
                seq: 0,
                first_lsn: lsn,
                last_lsn: lsn,
                records: Vec::new(),
            },
            height,
            for_sync: false,
        });
    }
    let release = |st: &mut WriterState| {
        for seg in &segs {
            for (slot, dseg) in &seg.members {
                st.free.release(*slot, *dseg);
            }
        }
    };
    let (ops, meta) = shared.encode_batch(&stripes, lsn - 1)?;
    let mut devices = Vec::new();
    let mut written = vec![0usize; stripes.len()];
    for (comp, (si, _)) in array.io.execute(ops).into_iter().zip(meta) {
        if comp.result.is_ok() {
            if si != usize::MAX {
                written[si] += 1;
            }
            if !devices.contains(&comp.op.device_index) {
                devices.push(comp.op.device_index);
            }
        }
    }
    let flushed = array
        .io
        .execute(devices.into_iter().map(IoOp::flush).collect())
        .iter()
        .all(|c| c.result.is_ok());
    if !flushed || written.iter().any(|w| *w < array.w()) {
        // Not worth a degraded checkpoint: the log still has everything.
        release(st);
        return Ok(None);
    }
    let previous = array
        .persisted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .checkpoint;
    array.persist_checkpoint((first_id, segment_count as u32, lsn))?;
    // The previous checkpoint's segments are free now that nothing points at them.
    let (prev_id, prev_count, _) = previous;
    if prev_id != 0 {
        let old: Vec<Arc<SegmentInfo>> = {
            let map = shared.segments.read().unwrap_or_else(|p| p.into_inner());
            (prev_id..prev_id + prev_count as u64)
                .filter_map(|id| map.get(&id).cloned())
                .collect()
        };
        let mut map = shared.segments.write().unwrap_or_else(|p| p.into_inner());
        for seg in old {
            map.remove(&seg.id);
            for (slot, dseg) in &seg.members {
                st.free.release(*slot, *dseg);
            }
        }
    }
    let mut map = shared.segments.write().unwrap_or_else(|p| p.into_inner());
    for seg in segs {
        map.insert(seg.id, seg);
    }
    Ok(Some(lsn))
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
                offset_in_segment: 4096,
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
