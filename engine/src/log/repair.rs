//! Repairing the log a session replayed before its first write: chunks and segment headers
//! an interrupted writer or a lost device left missing, and segments beyond the end of the
//! log to invalidate.

use crate::array::Array;
use crate::error::Result;
use crate::format::*;
use crate::log::stripe::{
    assemble, chunk_place, read_stripe_chunks, rebuild_chunks, ChunkSources, GoodStripe,
    StripeOutcome,
};
use crate::segments::SegmentInfo;
use ectable_devices::{AlignedBuf, IoOp};
use std::sync::Arc;

/// Chunks and segment headers of the replayed log that are missing or bad on devices that
/// are present: a crash interrupted their writes (a stripe needs only k chunks to be
/// replayed) or a device lost them. Everything written later is logged after them, so they
/// must be whole again before anything new is acknowledged, or losing m devices later could
/// break the log there and take acknowledged writes with it.
#[derive(Default)]
pub(crate) struct LogRepairs {
    /// Stripes with bad chunks.
    pub stripes: Vec<StripeRepair>,
    /// A valid header of the segment, and the member positions whose header is missing.
    pub headers: Vec<(SegmentHeader, Vec<usize>)>,
    /// (slot, device segment) holding, at the first stripe's place, a chunk of a segment
    /// whose header never reached the disk (an interrupted writer opened it), from a
    /// segment id this session will give out again: its chunk header is zeroed, or a later
    /// header of that id on the same device segments would make the old chunks part of the
    /// log.
    pub strays: Vec<(u32, u32)>,
    /// (slot, device segment, offset in the segment) of chunk headers found after the end
    /// of the log in the segment it ends in: zeroed, so that no later open can take what a
    /// crash left there for the log (recovery.rs, `chunk_headers_beyond`).
    pub beyond_end: Vec<(u32, u32, u32)>,
}

/// How many of the last stripes to repair keep what recovery read of them (they are the
/// last write batch an interrupted writer left, the ones most likely to be short of chunks).
pub(crate) const KNOWN_REPAIR_STRIPES: usize = 64;

/// One replayed stripe with chunks missing or bad on present devices.
pub(crate) struct StripeRepair {
    pub seg: Arc<SegmentInfo>,
    pub offset: u32,
    pub ordinal: u32,
    pub height: u32,
    /// What recovery read of it (header, data space, bad shards), for the last
    /// [`KNOWN_REPAIR_STRIPES`] stripes: the missing chunks are made from it when the stripe
    /// cannot be read again (a device lost between the open and the first write would
    /// otherwise leave a stripe of the log with fewer than k chunks, and everything written
    /// after it unreachable).
    pub known: Option<(ChunkHeader, Vec<u8>, Vec<usize>)>,
}

/// The chunks `targets` of a stripe, encoded again from its data space (and checked
/// against the stripe's crc table).
fn chunks_from_data(
    array: &Array,
    header: &ChunkHeader,
    data: &[u8],
    targets: &[usize],
) -> Result<Vec<(usize, AlignedBuf)>> {
    let (k, w) = (array.k(), array.w());
    let h = header.height_bytes as usize;
    let body_len = h - CHUNK_HEADER_SIZE_BYTES;
    let bodies: Vec<Vec<u8>> = (0..k)
        .map(|j| {
            let mut c = vec![0u8; h];
            c[CHUNK_HEADER_SIZE_BYTES..].copy_from_slice(&data[j * body_len..(j + 1) * body_len]);
            c
        })
        .collect();
    let chunks: Vec<Option<&[u8]>> = (0..w)
        .map(|j| bodies.get(j).map(|b| b.as_slice()))
        .collect();
    let g = GoodStripe {
        header: header.clone(),
        data: Vec::new(),
        bad_shards: (k..w).collect(),
        bad_read_slots: Vec::new(),
    };
    rebuild_chunks(array, &g, &chunks, targets)
}

/// Rewrites what [`LogRepairs`] lists: each stripe is read again, its bad chunks rebuilt
/// from the good ones (checked against the stripe's crc table before anything is written,
/// with the stripe's own header, so they join it exactly) and written in place, missing
/// segment headers are rewritten from a valid copy, and every device written is flushed.
/// Best effort: a device that fails a repair write or flush is marked failed, as a failed
/// log write would be.
pub(crate) fn repair_log(array: &Array, repairs: &LogRepairs) {
    let mut ops: Vec<(u32, IoOp)> = Vec::new();
    for r in &repairs.stripes {
        let (seg, offset, ordinal) = (&r.seg, &r.offset, &r.ordinal);
        let bufs = read_stripe_chunks(
            array,
            seg,
            *offset,
            *ordinal,
            r.height,
            ChunkSources::Online,
        );
        let chunks: Vec<Option<&[u8]>> = bufs.iter().map(|b| b.as_deref()).collect();
        let present = |j: &usize| chunk_place(array, seg, *offset, *ordinal, *j).1.is_some();
        let rebuilt = match assemble(array, seg, *offset, *ordinal, &chunks) {
            StripeOutcome::Good(g) => {
                let targets: Vec<usize> = g.bad_shards.iter().copied().filter(present).collect();
                rebuild_chunks(array, &g, &chunks, &targets)
            }
            _ => match &r.known {
                // Fewer good chunks than recovery read: make the missing ones from its copy.
                Some((header, data, bad)) => {
                    let targets: Vec<usize> = bad.iter().copied().filter(present).collect();
                    tracing::warn!(
                        "recovery: segment {} offset {offset} lost chunks since it was replayed; \
                         rewriting {} from the replayed copy",
                        seg.id,
                        targets.len()
                    );
                    chunks_from_data(array, header, data, &targets)
                }
                None => continue,
            },
        };
        match rebuilt {
            Ok(rebuilt) => {
                for (j, buf) in rebuilt {
                    if let (slot, Some((d, off))) = chunk_place(array, seg, *offset, *ordinal, j) {
                        ops.push((slot, IoOp::write(d, off, buf)));
                    }
                }
            }
            Err(e) => tracing::warn!(
                "recovery: cannot repair segment {} offset {offset}: {e}",
                seg.id
            ),
        }
    }
    for (template, positions) in &repairs.headers {
        for &p in positions {
            let (slot, dseg) = template.members[p];
            let Some(d) = array.device_of_slot(slot) else {
                continue;
            };
            let h = SegmentHeader {
                position: p as u16,
                ..template.clone()
            };
            ops.push((
                slot,
                IoOp::write(
                    d,
                    array.device_segment_offset(dseg),
                    AlignedBuf::from_slice(&h.encode()),
                ),
            ));
        }
    }
    for &(slot, dseg) in &repairs.strays {
        if let Some(d) = array.device_of_slot(slot) {
            let at = array.device_segment_offset(dseg) + SEGMENT_HEADER_SIZE_BYTES as u64;
            ops.push((slot, IoOp::write(d, at, AlignedBuf::new(BLOCK_BYTES))));
        }
    }
    for &(slot, dseg, offset) in &repairs.beyond_end {
        if let Some(d) = array.device_of_slot(slot) {
            let at = array.device_segment_offset(dseg) + offset as u64;
            ops.push((slot, IoOp::write(d, at, AlignedBuf::new(BLOCK_BYTES))));
        }
    }
    if ops.is_empty() {
        return;
    }
    let count = ops.len();
    let slots: Vec<u32> = ops.iter().map(|(s, _)| *s).collect();
    let mut flush: Vec<(usize, u32)> = Vec::new();
    for (c, slot) in array
        .io
        .execute(ops.into_iter().map(|(_, op)| op).collect())
        .into_iter()
        .zip(slots)
    {
        match c.result {
            Ok(()) if !flush.iter().any(|(d, _)| *d == c.op.device_index) => {
                flush.push((c.op.device_index, slot))
            }
            Ok(()) => {}
            Err(e) => {
                array.counters[slot as usize]
                    .write_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                array.mark_failed(slot as usize, &e.to_string());
            }
        }
    }
    array.flush_devices(&flush);
    tracing::info!(
        "recovery: rewrote {count} missing chunk(s) and segment header(s) of the log, or \
         stray chunk header(s) zeroed"
    );
}

/// Zeroes the headers of segments that lie beyond the end of the log, and flushes.
/// Zeroes the chunk headers at the place the log ends and this session writes next, on every
/// present member of that segment, and flushes them. A stripe an interrupted writer left
/// there, which the open could not assemble and so left out of the log, can then never be
/// replayed by a later open that reads more of it (a device back, a read error gone): what
/// one session read is what the next one reads. A member whose write or flush fails is
/// left (its chunk alone cannot assemble the stripe) as long as m + 1 members took the
/// zeros; otherwise the session does not start.
pub(crate) fn invalidate_log_end(array: &Array, segment: &SegmentInfo, offset: u32) -> Result<()> {
    if offset as usize + BLOCK_BYTES > array.segment_size() {
        return Ok(());
    }
    let mut ops = Vec::new();
    for (slot, dseg) in &segment.members {
        if let Some(d) = array.device_of_slot(*slot) {
            let at = array.device_segment_offset(*dseg) + offset as u64;
            ops.push(IoOp::write(d, at, AlignedBuf::new(BLOCK_BYTES)));
        }
    }
    let mut written = Vec::new();
    let mut first_error = None;
    for c in array.io.execute(ops) {
        match c.result {
            Ok(_) => written.push(c.op.device_index),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let mut zeroed = 0;
    for c in array
        .io
        .execute(written.into_iter().map(IoOp::flush).collect())
    {
        match c.result {
            Ok(_) => zeroed += 1,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if zeroed <= array.m() => Err(e.into()),
        Some(e) => {
            tracing::warn!("invalidating the end of the log on every member: {e}");
            Ok(())
        }
        None => Ok(()),
    }
}

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
    for c in array
        .io
        .execute(devices.into_iter().map(IoOp::flush).collect())
    {
        c.result?;
    }
    tracing::info!(
        "discarded {} segment(s) beyond the end of the log",
        segs.len()
    );
    Ok(())
}
