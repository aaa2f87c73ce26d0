//! Reading segments: every present member (in full, or a range of each), in one batch.

use crate::array::Array;
use crate::segments::SegmentInfo;
use ectable_devices::{AlignedBuf, IoOp};

/// Reads every member of a segment in full.
pub(crate) fn read_segment(array: &Array, seg: &SegmentInfo) -> (Vec<Option<AlignedBuf>>, u64) {
    read_segment_range(array, seg, 0, array.segment_size())
}

/// Reads bytes `from..from + len` (block multiples, within the segment) of every present
/// member of a segment; the bytes read.
pub(crate) fn read_segment_range(
    array: &Array,
    seg: &SegmentInfo,
    from: usize,
    len: usize,
) -> (Vec<Option<AlignedBuf>>, u64) {
    let mut pool = BufPool::default();
    finish_segment_read(
        array,
        submit_member_range_reads(array, seg, None, from, len, &mut pool),
    )
}

/// Reads of every present member of a segment, in flight.
pub(crate) struct SegmentRead {
    batch: ectable_devices::IoBatch,
    /// Member position per read, and the slot of every member.
    pos_of: Vec<usize>,
    slots: Vec<u32>,
    seg_id: u64,
}

/// Segments whose reads a walk over the log (scrub, rebuild) keeps in flight ahead of the
/// one it works on: up to 3, and at most 128 MiB of reads, so that the devices stay busy
/// while a segment is checked, decoded and written.
pub(crate) fn read_ahead_segments(array: &Array) -> usize {
    let per_segment = array.segment_size() as u64 * array.w() as u64;
    ((128u64 << 20) / per_segment.max(1)).clamp(1, 3) as usize
}

/// Member buffers handed back by a walk over many segments (rebuild, scrub) and reused for
/// the next segments' reads, so that the walk does not fault in and zero fresh memory for
/// every segment (a third of a rebuild's time went there).
#[derive(Default)]
pub(crate) struct BufPool(Vec<AlignedBuf>);

/// Buffers a pool keeps at most (a few segments' worth of members).
const POOL_BUFFERS: usize = 32;

impl BufPool {
    fn take(&mut self, len: usize) -> AlignedBuf {
        match self.0.iter().position(|b| b.capacity() >= len) {
            Some(i) => {
                let mut b = self.0.swap_remove(i);
                b.set_len(len);
                b
            }
            None => AlignedBuf::new(len),
        }
    }

    /// Takes back the buffers of a segment that has been dealt with.
    pub(crate) fn give(&mut self, bufs: impl IntoIterator<Item = Option<AlignedBuf>>) {
        for b in bufs.into_iter().flatten() {
            if self.0.len() < POOL_BUFFERS {
                self.0.push(b);
            }
        }
    }
}

/// Reads the first `len` bytes (a multiple of the block size, at most the segment size) of
/// the members of a segment (those in `only` when given), into buffers from `pool`.
pub(crate) fn submit_member_reads(
    array: &Array,
    seg: &SegmentInfo,
    only: Option<&[usize]>,
    len: usize,
    pool: &mut BufPool,
) -> SegmentRead {
    submit_member_range_reads(array, seg, only, 0, len, pool)
}

/// [`submit_member_reads`] of bytes `from..from + len` of each member.
fn submit_member_range_reads(
    array: &Array,
    seg: &SegmentInfo,
    only: Option<&[usize]>,
    from: usize,
    len: usize,
    pool: &mut BufPool,
) -> SegmentRead {
    let s = len.min(array.segment_size().saturating_sub(from));
    let mut ops = Vec::new();
    let mut pos_of = Vec::new();
    for (p, (slot, dseg)) in seg.members.iter().enumerate() {
        if only.is_some_and(|o| !o.contains(&p)) {
            continue;
        }
        if let Some(d) = array.device_of_slot(*slot) {
            let offset = array.device_segment_offset(*dseg) + from as u64;
            ops.push(IoOp::read_into(d, offset, pool.take(s)));
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
            Err(e) => {
                tracing::warn!("reading segment {} member {p}: {e}", r.seg_id);
                // A member that stopped answering, or that the error failed: piece by piece
                // would only wait the I/O deadline again for each piece (seen: a scrub
                // beside a hung member crawled at 2.5 MiB/s). It is left out as an erasure.
                let stopped = matches!(e.class(), ectable_devices::ErrorClass::TimedOut);
                if stopped || array.is_failed(r.slots[p] as usize) {
                    continue;
                }
                // One bad range (a latent sector error) must not cost the member's every
                // chunk in the segment: read it again a chunk at a time, leaving only the
                // pieces that still fail zeroed (they fail their chunk header or crc check,
                // as erasures).
                let (device, offset, mut buf) = (c.op.device_index, c.op.offset_bytes, c.op.buf);
                if let Some(got) = read_in_pieces(array, device, offset, &mut buf) {
                    bytes += got;
                    bufs[p] = Some(buf);
                }
            }
        }
    }
    (bufs, bytes)
}

/// Reads `buf.len()` bytes at `offset` of engine device `device` a chunk at a time, zeroing
/// the pieces that fail. Returns the bytes read, or None when every piece failed.
fn read_in_pieces(array: &Array, device: usize, offset: u64, buf: &mut AlignedBuf) -> Option<u64> {
    let piece = array.chunk_size().max(4096);
    let ops: Vec<IoOp> = (0..buf.len())
        .step_by(piece)
        .map(|at| IoOp::read(device, offset + at as u64, piece.min(buf.len() - at)))
        .collect();
    let mut got = 0u64;
    for c in array.io.execute(ops) {
        let at = (c.op.offset_bytes - offset) as usize;
        let dst = &mut buf[at..at + c.op.buf.len()];
        match c.result {
            Ok(()) => {
                dst.copy_from_slice(&c.op.buf);
                got += dst.len() as u64;
            }
            Err(_) => dst.fill(0),
        }
    }
    (got > 0).then_some(got)
}
