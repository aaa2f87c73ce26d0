//! Repairing the log a session replayed before its first write: chunks and segment headers
//! an interrupted writer or a lost device left missing, and segments beyond the end of the
//! log to invalidate.

use crate::array::Array;
use crate::error::Result;
use crate::format::*;
use crate::log::stripe::{
    assemble, chunk_place, read_stripe_chunks, rebuild_chunks, ChunkSources, StripeOutcome,
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
    /// (segment, offset, ordinal, height) of stripes with bad chunks.
    pub stripes: Vec<(Arc<SegmentInfo>, u32, u32, u32)>,
    /// A valid header of the segment, and the member positions whose header is missing.
    pub headers: Vec<(SegmentHeader, Vec<usize>)>,
}

/// Rewrites what [`LogRepairs`] lists: each stripe is read again, its bad chunks rebuilt
/// from the good ones (checked against the stripe's crc table before anything is written,
/// with the stripe's own header, so they join it exactly) and written in place, missing
/// segment headers are rewritten from a valid copy, and every device written is flushed.
/// Best effort: a device that fails a repair write or flush is marked failed, as a failed
/// log write would be.
pub(crate) fn repair_log(array: &Array, repairs: &LogRepairs) {
    let mut ops: Vec<(u32, IoOp)> = Vec::new();
    for (seg, offset, ordinal, height) in &repairs.stripes {
        let bufs = read_stripe_chunks(array, seg, *offset, *ordinal, *height, ChunkSources::Online);
        let chunks: Vec<Option<&[u8]>> = bufs.iter().map(|b| b.as_deref()).collect();
        let StripeOutcome::Good(g) = assemble(array, seg, *offset, *ordinal, &chunks) else {
            continue;
        };
        let targets: Vec<usize> = g
            .bad_shards
            .iter()
            .copied()
            .filter(|&j| chunk_place(array, seg, *offset, *ordinal, j).1.is_some())
            .collect();
        match rebuild_chunks(array, &g, &chunks, &targets) {
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
    if ops.is_empty() {
        return;
    }
    let count = ops.len();
    let slots: Vec<u32> = ops.iter().map(|(s, _)| *s).collect();
    let mut flush: Vec<(u32, usize)> = Vec::new();
    for (c, slot) in array
        .io
        .execute(ops.into_iter().map(|(_, op)| op).collect())
        .into_iter()
        .zip(slots)
    {
        match c.result {
            Ok(()) if !flush.iter().any(|(_, d)| *d == c.op.device_index) => {
                flush.push((slot, c.op.device_index))
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
    let flush_slots: Vec<u32> = flush.iter().map(|(s, _)| *s).collect();
    for (c, slot) in array
        .io
        .execute(flush.into_iter().map(|(_, d)| IoOp::flush(d)).collect())
        .into_iter()
        .zip(flush_slots)
    {
        if let Err(e) = c.result {
            array.counters[slot as usize]
                .write_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            array.mark_failed(slot as usize, &e.to_string());
        }
    }
    tracing::info!("recovery: rewrote {count} missing chunk(s) and segment header(s) of the log");
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
