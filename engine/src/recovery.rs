//! Recovery: rebuild the segment table, the free space and the index from the devices.
//!
//! Invariants:
//! - The log is the longest chain of committed stripes, visited in segment-id order, whose
//!   LSNs follow on one from the other and whose write epochs never go down.
//! - What lies beyond the end of that chain was never acknowledged (a writer acknowledges
//!   only after the flush covering every earlier stripe); on a writable open those segments
//!   are invalidated before this session's first write, so they can never be replayed later.
//! - More committed stripes beyond the end than one write batch can hold in flight cannot
//!   come from a crash: that is data loss in the middle of the log, reported as such.

use crate::array::Array;
use crate::error::{Error, Result};
use crate::format::*;
use crate::index::{Index, IndexEntry, Place, RecordLoc};
use crate::log::stripe::{assemble, position_of, StripeOutcome};
use crate::segments::{FreeSpace, SegmentInfo};
use ectable_devices::{AlignedBuf, IoOp};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The most stripes a writer ever has in flight (unacknowledged) at once.
pub const MAX_IN_FLIGHT_STRIPES: usize = 64;

/// Where the next stripe goes.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    pub segment: Arc<SegmentInfo>,
    pub offset: u32,
    pub ordinal: u32,
}

pub(crate) struct Recovered {
    pub segments: BTreeMap<u64, Arc<SegmentInfo>>,
    pub free: FreeSpace,
    pub index: Index,
    pub cursor: Option<Cursor>,
    pub next_lsn: u64,
    pub next_segment_id: u64,
    pub stats: RecoveryStats,
    /// Segments beyond the end of the log: invalidated before this session's first write.
    pub discarded: Vec<Arc<SegmentInfo>>,
}

#[derive(Debug, Clone, Default)]
pub struct RecoveryStats {
    pub segments: usize,
    pub stripes: u64,
    pub records: u64,
    pub degraded_stripes: u64,
    pub discarded_segments: usize,
    pub discarded_stripes: usize,
    pub bytes_read: u64,
}

fn read_segment_headers(array: &Array) -> BTreeMap<u64, SegmentInfo> {
    let mut ops = Vec::new();
    let mut meta = Vec::new();
    for slot in 0..array.n() {
        let Some(d) = array.device_of_slot(slot as u32) else { continue };
        for dseg in 0..array.segment_count() {
            ops.push(IoOp::read(d, array.device_segment_offset(dseg), SEGMENT_HEADER_SIZE_BYTES));
            meta.push((slot as u32, dseg));
        }
    }
    let mut segments: BTreeMap<u64, SegmentInfo> = BTreeMap::new();
    for (c, (slot, dseg)) in array.io.execute(ops).into_iter().zip(meta) {
        if c.result.is_err() {
            continue;
        }
        let Ok(h) = SegmentHeader::decode(&c.op.buf) else { continue };
        let pos = h.position as usize;
        let fits = h.array_uuid == array.sb.array_uuid
            && h.members.len() == array.w()
            && h.data_shards as usize == array.k()
            && h.members.get(pos) == Some(&(slot, dseg))
            && h.write_epoch <= array.epoch()
            && h.members.iter().all(|(s, ds)| (*s as usize) < array.n() && *ds < array.segment_count());
        if !fits {
            continue;
        }
        segments.entry(h.segment_id).or_insert(SegmentInfo { id: h.segment_id, members: h.members });
    }
    segments
}

/// Reads every member of a segment in full.
fn read_segment(array: &Array, seg: &SegmentInfo) -> (Vec<Option<AlignedBuf>>, u64) {
    let s = array.segment_size();
    let mut ops = Vec::new();
    let mut pos_of = Vec::new();
    for (p, (slot, dseg)) in seg.members.iter().enumerate() {
        if let Some(d) = array.device_of_slot(*slot) {
            ops.push(IoOp::read(d, array.device_segment_offset(*dseg), s));
            pos_of.push(p);
        }
    }
    let mut bufs: Vec<Option<AlignedBuf>> = (0..seg.members.len()).map(|_| None).collect();
    let mut bytes = 0;
    for (c, p) in array.io.execute(ops).into_iter().zip(pos_of) {
        match c.result {
            Ok(()) => {
                bytes += c.op.buf.len() as u64;
                bufs[p] = Some(c.op.buf);
            }
            Err(e) => tracing::warn!("recovery: reading segment {} member {p}: {e}", seg.id),
        }
    }
    (bufs, bytes)
}

/// Decodes the records of a good stripe and applies them to the index.
pub(crate) fn apply_stripe(
    index: &mut Index,
    seg_id: u64,
    header: &ChunkHeader,
    data: &[u8],
) -> Result<u64> {
    let mut pos = 0usize;
    let mut expected = header.first_lsn;
    let payload = header.payload_bytes as usize;
    let mut count = 0;
    while pos < payload {
        let (rec, crc, len) = LogRecord::decode(&data[pos..payload]).map_err(|e| Error::Corrupt {
            device: format!("segment {seg_id}"),
            offset_bytes: header.offset_in_segment_bytes as u64 + pos as u64,
            what: "log record in a verified stripe",
            source: e,
        })?;
        if rec.lsn != expected {
            return Err(Error::Corrupt {
                device: format!("segment {seg_id}"),
                offset_bytes: header.offset_in_segment_bytes as u64,
                what: "log record out of sequence",
                source: DecodeError::Field("lsn"),
            });
        }
        match rec.kind {
            RecordKind::Put => {
                let loc = RecordLoc {
                    segment_id: seg_id,
                    offset_in_segment: header.offset_in_segment_bytes,
                    height_bytes: header.height_bytes,
                    ordinal: header.ordinal,
                    record_offset: pos as u32,
                    record_len: rec.encoded_len() as u32,
                    crc,
                };
                index.put(
                    &rec.table,
                    &rec.key,
                    IndexEntry { lsn: rec.lsn, value_len: rec.value.len() as u32, place: Place::Disk(loc) },
                );
            }
            RecordKind::Delete => index.delete(&rec.table, &rec.key),
        }
        expected += 1;
        count += 1;
        pos += len;
    }
    if expected != header.last_lsn + 1 {
        return Err(Error::Corrupt {
            device: format!("segment {seg_id}"),
            offset_bytes: header.offset_in_segment_bytes as u64,
            what: "stripe lsn range does not match its records",
            source: DecodeError::Field("last_lsn"),
        });
    }
    Ok(count)
}

/// Scans one segment from its start. Calls `on_stripe` for each committed stripe in order
/// until it returns false or the segment ends; returns the offset and ordinal where it stopped.
fn scan_segment(
    array: &Array,
    seg: &SegmentInfo,
    bufs: &[Option<AlignedBuf>],
    mut on_stripe: impl FnMut(&crate::log::stripe::GoodStripe) -> bool,
) -> (u32, u32) {
    let s = array.segment_size();
    let c = array.chunk_size();
    let w = array.w();
    let mut offset = SEGMENT_HEADER_SIZE_BYTES;
    let mut ordinal = 0u32;
    while offset + BLOCK_BYTES <= s {
        let end = (offset + c).min(s);
        let chunks: Vec<Option<&[u8]>> = (0..w)
            .map(|j| bufs[position_of(j, ordinal, w)].as_ref().map(|b| &b[offset..end]))
            .collect();
        match assemble(array, seg, offset as u32, ordinal, &chunks) {
            StripeOutcome::Good(g) => {
                if !on_stripe(&g) {
                    break;
                }
                offset += g.header.height_bytes as usize;
                ordinal += 1;
            }
            StripeOutcome::Empty | StripeOutcome::Incomplete { .. } => break,
        }
    }
    (offset as u32, ordinal)
}

pub(crate) fn recover(array: &Array) -> Result<Recovered> {
    let headers = read_segment_headers(array);
    let mut free = FreeSpace::new(array.n(), array.segment_count());
    for seg in headers.values() {
        for (slot, dseg) in &seg.members {
            free.mark_used(*slot, *dseg);
        }
    }
    let next_segment_id = headers.keys().next_back().map_or(1, |id| id + 1);
    let mut index = Index::default();
    let mut stats = RecoveryStats::default();
    let mut segments = BTreeMap::new();
    let mut expected_lsn = 1u64;
    let mut last_epoch = 0u64;
    let mut cursor: Option<Cursor> = None;
    let mut ended = false;
    let mut discarded: Vec<Arc<SegmentInfo>> = Vec::new();
    let mut error: Option<Error> = None;
    for (_, seg) in headers {
        let seg = Arc::new(seg);
        let (bufs, bytes) = read_segment(array, &seg);
        stats.bytes_read += bytes;
        if ended {
            let mut n = 0;
            scan_segment(array, &seg, &bufs, |_| {
                n += 1;
                true
            });
            stats.discarded_stripes += n;
            discarded.push(seg);
            continue;
        }
        let mut replayed = 0u64;
        let mut stopped_by_sequence = false;
        let (offset, ordinal) = scan_segment(array, &seg, &bufs, |g| {
            if g.header.first_lsn != expected_lsn || g.header.write_epoch < last_epoch {
                stopped_by_sequence = true;
                return false;
            }
            match apply_stripe(&mut index, seg.id, &g.header, &g.data) {
                Ok(n) => stats.records += n,
                Err(e) => {
                    error.get_or_insert(e);
                    return false;
                }
            }
            if !g.bad_shards.is_empty() {
                stats.degraded_stripes += 1;
            }
            expected_lsn = g.header.last_lsn + 1;
            last_epoch = g.header.write_epoch;
            replayed += 1;
            stats.stripes += 1;
            true
        });
        if let Some(e) = error.take() {
            return Err(e);
        }
        if replayed == 0 {
            // Allocated but nothing committed (or not in sequence): the log ended before it.
            ended = true;
            let mut n = 0;
            scan_segment(array, &seg, &bufs, |_| {
                n += 1;
                true
            });
            stats.discarded_stripes += n;
            discarded.push(seg);
            continue;
        }
        stats.segments += 1;
        segments.insert(seg.id, seg.clone());
        cursor = Some(Cursor { segment: seg.clone(), offset, ordinal });
        if stopped_by_sequence || (offset as usize + BLOCK_BYTES <= array.segment_size()) {
            // The segment stopped early: either the writer moved on to a new segment (the
            // rest did not fit) or the log ends here. Count what lies beyond, in case.
            if stopped_by_sequence {
                ended = true;
            }
        }
    }
    stats.discarded_segments = discarded.len();
    if stats.discarded_stripes > MAX_IN_FLIGHT_STRIPES {
        return Err(Error::DataLost {
            segment_id: discarded.first().map_or(0, |s| s.id),
            offset_in_segment: 0,
            good: 0,
            width: array.w(),
            needed: array.k(),
            detail: format!(
                "the log breaks off at LSN {expected_lsn} but {} committed stripes follow; \
                 more than one write batch, so this is lost data, not a torn tail",
                stats.discarded_stripes
            ),
        });
    }
    Ok(Recovered { segments, free, index, cursor, next_lsn: expected_lsn, next_segment_id, stats, discarded })
}

/// Zeroes the headers of segments that lie beyond the end of the log, and flushes.
pub(crate) fn invalidate_segments(array: &Array, segs: &[Arc<SegmentInfo>]) -> Result<()> {
    if segs.is_empty() {
        return Ok(());
    }
    let mut ops = Vec::new();
    for seg in segs {
        for (slot, dseg) in &seg.members {
            if let Some(d) = array.device_of_slot(*slot) {
                let zero = AlignedBuf::new(SEGMENT_HEADER_SIZE_BYTES);
                ops.push(IoOp::write(d, array.device_segment_offset(*dseg), zero));
            }
        }
    }
    let mut devices: Vec<usize> = Vec::new();
    for c in array.io.execute(ops) {
        c.result?;
        if !devices.contains(&c.op.device_index) {
            devices.push(c.op.device_index);
        }
    }
    for c in array.io.execute(devices.into_iter().map(IoOp::flush).collect()) {
        c.result?;
    }
    tracing::info!("discarded {} segment(s) beyond the end of the log", segs.len());
    Ok(())
}
