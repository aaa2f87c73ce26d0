//! Reading whole segments: every present member in full, in one batch.

use crate::array::Array;
use crate::segments::SegmentInfo;
use ectable_devices::{AlignedBuf, IoOp};

/// Reads every member of a segment in full.
pub(crate) fn read_segment(array: &Array, seg: &SegmentInfo) -> (Vec<Option<AlignedBuf>>, u64) {
    finish_segment_read(array, submit_segment_read(array, seg))
}

/// Reads of every present member of a segment, in flight.
pub(crate) struct SegmentRead {
    batch: ectable_devices::IoBatch,
    /// Member position per read, and the slot of every member.
    pos_of: Vec<usize>,
    slots: Vec<u32>,
    seg_id: u64,
}

/// Starts reading every member of a segment in full (so that a caller can overlap it with
/// other work, e.g. rebuild writing the previous segment).
/// Segments whose reads a walk over the log (scrub, rebuild) keeps in flight ahead of the
/// one it works on: up to 3, and at most 128 MiB of reads, so that the devices stay busy
/// while a segment is checked, decoded and written.
pub(crate) fn read_ahead_segments(array: &Array) -> usize {
    let per_segment = array.segment_size() as u64 * array.w() as u64;
    ((128u64 << 20) / per_segment.max(1)).clamp(1, 3) as usize
}

pub(crate) fn submit_segment_read(array: &Array, seg: &SegmentInfo) -> SegmentRead {
    submit_segment_read_of(array, seg, None)
}

/// As [`submit_segment_read`], reading only the member positions in `only` when given.
pub(crate) fn submit_segment_read_of(
    array: &Array,
    seg: &SegmentInfo,
    only: Option<&[usize]>,
) -> SegmentRead {
    let s = array.segment_size();
    let mut ops = Vec::new();
    let mut pos_of = Vec::new();
    for (p, (slot, dseg)) in seg.members.iter().enumerate() {
        if only.is_some_and(|o| !o.contains(&p)) {
            continue;
        }
        if let Some(d) = array.device_of_slot(*slot) {
            ops.push(IoOp::read(d, array.device_segment_offset(*dseg), s));
            pos_of.push(p);
        }
    }
    SegmentRead {
        batch: array.io.submit(ops),
        pos_of,
        slots: seg.members.iter().map(|m| m.0).collect(),
        seg_id: seg.id,
    }
}

/// Waits for a segment read: the member buffers (None where unreadable) and bytes read.
pub(crate) fn finish_segment_read(array: &Array, r: SegmentRead) -> (Vec<Option<AlignedBuf>>, u64) {
    let mut bufs: Vec<Option<AlignedBuf>> = (0..r.slots.len()).map(|_| None).collect();
    let mut bytes = 0;
    for (c, p) in r.batch.wait().into_iter().zip(r.pos_of) {
        array.observe(
            r.slots[p] as usize,
            c.op.kind,
            c.latency,
            c.result.as_ref().err(),
        );
        match c.result {
            Ok(()) => {
                bytes += c.op.buf.len() as u64;
                bufs[p] = Some(c.op.buf);
            }
            Err(e) => tracing::warn!("reading segment {} member {p}: {e}", r.seg_id),
        }
    }
    (bufs, bytes)
}
