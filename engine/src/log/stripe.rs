//! Reading stripes: check every chunk's identity and crc, agree on the stripe header, and
//! rebuild what is missing from parity, verified before it is trusted.
//!
//! Invariants:
//! - A chunk is used only if its header names exactly the place it was read from.
//! - A body is used only if its crc matches the stripe's agreed crc table.
//! - Reconstructed bodies are checked against the same table; a mismatch is data loss, never
//!   returned.

use crate::array::Array;
use crate::error::{Error, Result};
use crate::format::chunk_header::StripeKey;
use crate::format::*;
use crate::index::RecordLoc;
use crate::segments::SegmentInfo;
use ectable_devices::IoOp;

pub(crate) struct GoodStripe {
    pub header: ChunkHeader,
    /// The data space: k bodies, concatenated.
    pub data: Vec<u8>,
    /// Shards that were missing, unreadable or bad.
    pub bad_shards: Vec<usize>,
    /// Slots whose chunk was read and failed its identity or checksum (no read error):
    /// what [`GoodStripe::note_bad_chunks`] holds against the devices.
    pub bad_read_slots: Vec<usize>,
}

impl GoodStripe {
    /// Passive detection: counts a checksum error against every slot whose chunk was read
    /// and failed its identity or checksum.
    pub(crate) fn note_bad_chunks(&self, array: &Array) {
        for &slot in &self.bad_read_slots {
            array.note_checksum_error(slot);
        }
    }
}

pub(crate) enum StripeOutcome {
    /// No chunk at this place names it: nothing was ever committed here.
    Empty,
    /// Some chunks name this place but fewer than k agree and verify. `height_bytes` and
    /// `committed_lsn` come from the largest group of agreeing valid headers.
    Incomplete {
        good: usize,
        detail: String,
        height_bytes: u32,
        committed_lsn: u64,
    },
    Good(GoodStripe),
}

/// Member position of shard `shard` of the stripe with `ordinal` (docs/format.md).
pub(crate) fn position_of(shard: usize, ordinal: u32, width: usize) -> usize {
    (shard + ordinal as usize) % width
}

/// Device index and byte offset of shard `shard` of a stripe, or None if its device is gone.
pub(crate) fn chunk_place(
    array: &Array,
    seg: &SegmentInfo,
    offset_in_segment_bytes: u32,
    ordinal: u32,
    shard: usize,
) -> (u32, Option<(usize, u64)>) {
    let (slot, dseg) = seg.members[position_of(shard, ordinal, seg.members.len())];
    let place = array.device_of_slot(slot).map(|d| {
        (
            d,
            array.device_segment_offset(dseg) + offset_in_segment_bytes as u64,
        )
    });
    (slot, place)
}

/// Builds the stripe at (seg, offset, ordinal) from the chunk bytes read for each shard
/// (`None`: not read, or the read failed).
pub(crate) fn assemble(
    array: &Array,
    seg: &SegmentInfo,
    offset: u32,
    ordinal: u32,
    chunks: &[Option<&[u8]>],
) -> StripeOutcome {
    let w = array.w();
    let k = array.k();
    let mut headers: Vec<Option<ChunkHeader>> = vec![None; w];
    let mut notes: Vec<String> = Vec::new();
    for (j, c) in chunks.iter().enumerate() {
        let Some(b) = c else {
            notes.push(format!("shard {j}: unavailable"));
            continue;
        };
        match ChunkHeader::decode(b) {
            Ok(h) => {
                let identity_ok = h.array_uuid == array.sb.array_uuid
                    && h.segment_id == seg.id
                    && h.offset_in_segment_bytes == offset
                    && h.ordinal == ordinal
                    && h.shard_index as usize == j
                    && h.width as usize == w
                    && h.data_shards as usize == k
                    && h.height_bytes as usize <= b.len();
                if identity_ok {
                    headers[j] = Some(h);
                } else {
                    notes.push(format!(
                        "shard {j}: chunk names another place (segment {}, offset {}, shard {})",
                        h.segment_id, h.offset_in_segment_bytes, h.shard_index
                    ));
                }
            }
            Err(DecodeError::Magic) => notes.push(format!("shard {j}: no chunk header")),
            Err(e) => notes.push(format!("shard {j}: bad chunk header: {e}")),
        }
    }
    let mut groups: Vec<(StripeKey, Vec<usize>)> = Vec::new();
    for (j, h) in headers.iter().enumerate() {
        let Some(h) = h else { continue };
        let key = h.stripe_key();
        match groups.iter_mut().find(|(k2, _)| *k2 == key) {
            Some(g) => g.1.push(j),
            None => groups.push((key, vec![j])),
        }
    }
    let Some((key, members)) = groups
        .into_iter()
        .max_by_key(|(key, members)| (members.len(), key.write_epoch))
    else {
        return StripeOutcome::Empty;
    };
    let h = key.height_bytes as usize;
    let body_len = h - CHUNK_HEADER_SIZE_BYTES;
    let mut good = vec![false; w];
    for &j in &members {
        let b = chunks[j].expect("header came from this chunk");
        let body = &b[CHUNK_HEADER_SIZE_BYTES..h];
        if crc32c::crc32c(body) == key.body_crcs[j] {
            good[j] = true;
        } else {
            notes.push(format!("shard {j}: body crc mismatch"));
        }
    }
    let good_count = good.iter().filter(|g| **g).count();
    let incomplete = |good: usize, detail: String| StripeOutcome::Incomplete {
        good,
        detail,
        height_bytes: key.height_bytes,
        committed_lsn: key.committed_lsn,
    };
    if good_count < k {
        return incomplete(good_count, notes.join("; "));
    }
    let header = headers[members[0]].clone().expect("member has a header");
    let bad_shards: Vec<usize> = (0..w).filter(|&j| !good[j]).collect();
    let mut data = vec![0u8; k * body_len];
    if (0..k).all(|j| good[j]) {
        for j in 0..k {
            let b = chunks[j].expect("good");
            data[j * body_len..(j + 1) * body_len].copy_from_slice(&b[CHUNK_HEADER_SIZE_BYTES..h]);
        }
    } else {
        let mut bodies: Vec<Vec<u8>> = (0..w)
            .map(|j| match (good[j], chunks[j]) {
                (true, Some(b)) => b[CHUNK_HEADER_SIZE_BYTES..h].to_vec(),
                _ => vec![0u8; body_len],
            })
            .collect();
        let mut refs: Vec<&mut [u8]> = bodies.iter_mut().map(|b| b.as_mut_slice()).collect();
        if let Err(e) = array.codec.reconstruct(&mut refs, &good) {
            return incomplete(good_count, format!("{e}"));
        }
        for j in 0..k {
            if !good[j] && crc32c::crc32c(&bodies[j]) != key.body_crcs[j] {
                notes.push(format!("shard {j}: reconstruction does not match its crc"));
                return incomplete(good_count, notes.join("; "));
            }
            data[j * body_len..(j + 1) * body_len].copy_from_slice(&bodies[j]);
        }
    }
    let bad_read_slots = bad_shards
        .iter()
        .filter(|&&j| chunks[j].is_some())
        .map(|&j| seg.members[position_of(j, ordinal, w)].0 as usize)
        .collect();
    if !notes.is_empty() {
        tracing::debug!(
            segment = seg.id,
            offset,
            "stripe read degraded: {}",
            notes.join("; ")
        );
    }
    StripeOutcome::Good(GoodStripe {
        header,
        data,
        bad_shards,
        bad_read_slots,
    })
}

/// Reads the w chunks of one stripe (`height` bytes each; the chunk size when unknown).
/// Unavailable or unreadable chunks are None.
///
/// Which devices a stripe read asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkSources {
    /// Online devices, leaving out suspect (slow) ones when k chunks on the others can be
    /// read: reads are served by the fastest devices.
    Fastest,
    /// Every online device.
    Online,
    /// Every present device, failed ones included: a device failed for its error count may
    /// still hold the chunks a stripe needs (every chunk is verified anyway).
    LastResort,
}

pub(crate) fn read_stripe_chunks(
    array: &Array,
    seg: &SegmentInfo,
    offset: u32,
    ordinal: u32,
    height: u32,
    sources: ChunkSources,
) -> Vec<Option<Vec<u8>>> {
    let w = array.w();
    let avoid_suspect = sources == ChunkSources::Fastest;
    let mut ops = Vec::new();
    let mut shard_of_op = Vec::new();
    let places: Vec<(u32, Option<(usize, u64)>)> = (0..w)
        .map(|j| {
            let (slot, place) = chunk_place(array, seg, offset, ordinal, j);
            if sources != ChunkSources::LastResort || place.is_some() {
                return (slot, place);
            }
            let (_, dseg) = seg.members[position_of(j, ordinal, w)];
            let place = array
                .present_device(slot as usize)
                .map(|d| (d, array.device_segment_offset(dseg) + offset as u64));
            (slot, place)
        })
        .collect();
    let fast = places
        .iter()
        .filter(|(slot, p)| p.is_some() && !array.avoid_for_reads(*slot as usize))
        .count();
    let skip_suspect = avoid_suspect && fast >= array.k();
    for (j, (slot, place)) in places.into_iter().enumerate() {
        if skip_suspect && array.avoid_for_reads(slot as usize) {
            continue;
        }
        if let Some((d, off)) = place {
            ops.push(IoOp::read(d, off, height as usize));
            shard_of_op.push(j);
        }
    }
    let completions = array.io.execute(ops);
    let mut bufs: Vec<Option<Vec<u8>>> = vec![None; w];
    for (c, j) in completions.into_iter().zip(shard_of_op) {
        match c.result {
            Ok(()) => {
                let (slot, _) = seg.members[position_of(j, ordinal, w)];
                array.observe(slot as usize, c.op.kind, c.latency, None);
                bufs[j] = Some(c.op.buf.to_vec())
            }
            Err(e) => {
                let (slot, _) = seg.members[position_of(j, ordinal, w)];
                array.observe(slot as usize, c.op.kind, c.latency, Some(&e));
                tracing::debug!("stripe read: shard {j}: {e}");
            }
        }
    }
    bufs
}

/// The aligned reads covering a record: (read, bytes to skip in its buffer, bytes to take).
pub(crate) fn record_read_ops(
    array: &Array,
    seg: &SegmentInfo,
    loc: &RecordLoc,
) -> Result<Vec<(BlockRead, usize, usize)>> {
    if let Some((head, tail)) = continued_parts(loc, array.k()) {
        let mut ops = record_read_ops(array, seg, &head)?;
        ops.extend(record_read_ops(array, seg, &tail)?);
        return Ok(ops);
    }
    let body_len = loc.height_bytes as usize - CHUNK_HEADER_SIZE_BYTES;
    let mut ops = Vec::new();
    let mut pos = loc.record_offset as usize;
    let end = pos + loc.record_len as usize;
    while pos < end {
        let shard = pos / body_len;
        let within = pos % body_len;
        let take = (body_len - within).min(end - pos);
        let (slot, place) =
            chunk_place(array, seg, loc.offset_in_segment_bytes, loc.ordinal, shard);
        let Some((d, chunk_off)) = place else {
            return Err(Error::Device(ectable_devices::DeviceError::Backend(
                format!("device of slot {slot} is unavailable"),
            )));
        };
        let byte = chunk_off + (CHUNK_HEADER_SIZE_BYTES + within) as u64;
        let aligned = byte / BLOCK_BYTES as u64 * BLOCK_BYTES as u64;
        let skip = (byte - aligned) as usize;
        let len = (skip + take).div_ceil(BLOCK_BYTES) * BLOCK_BYTES;
        ops.push((
            BlockRead {
                device: d,
                offset: aligned,
                len,
            },
            skip,
            take,
        ));
        pos += take;
    }
    Ok(ops)
}

/// A read of whole blocks of one device, not yet given a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockRead {
    pub device: usize,
    pub offset: u64,
    pub len: usize,
}

/// Reads of one device closer than this are read as one (the bytes between them included):
/// a few blocks read for nothing cost less than another device operation.
pub(crate) const COALESCE_GAP_BYTES: u64 = 16 << 10;
/// The largest read coalescing makes.
pub(crate) const COALESCE_MAX_BYTES: usize = 512 << 10;

/// Merges the reads of one batch: reads of one device that overlap, touch or lie within
/// [`COALESCE_GAP_BYTES`] of each other become one read of at most [`COALESCE_MAX_BYTES`]
/// (a read longer than that on its own stays whole), so rows that lie together on disk cost
/// one device operation instead of one each. Returns the merged reads and, for each input
/// read, the merged read holding it and its offset there.
pub(crate) fn coalesce(reads: &[BlockRead]) -> (Vec<BlockRead>, Vec<(usize, usize)>) {
    let mut order: Vec<usize> = (0..reads.len()).collect();
    order.sort_by_key(|&i| (reads[i].device, reads[i].offset));
    let mut merged: Vec<BlockRead> = Vec::new();
    let mut at = vec![(0usize, 0usize); reads.len()];
    for i in order {
        let r = reads[i];
        let r_end = r.offset + r.len as u64;
        let joins = merged.last().is_some_and(|m| {
            let m_end = m.offset + m.len as u64;
            m.device == r.device
                && r.offset <= m_end + COALESCE_GAP_BYTES
                && r_end.max(m_end) - m.offset <= COALESCE_MAX_BYTES as u64
        });
        if joins {
            let last = merged.len() - 1;
            let m = &mut merged[last];
            let m_end = m.offset + m.len as u64;
            m.len = (r_end.max(m_end) - m.offset) as usize;
            at[i] = (last, (r.offset - m.offset) as usize);
        } else {
            merged.push(r);
            at[i] = (merged.len() - 1, 0);
        }
    }
    (merged, at)
}

/// Rebuilds the complete chunks (header and body) of `shards` of a stripe that assembled as
/// Good from `chunks`. Every rebuilt body is checked against the stripe's crc table before
/// it is returned, so a repair never writes bytes computed from bad inputs.
pub(crate) fn rebuild_chunks(
    array: &Array,
    g: &GoodStripe,
    chunks: &[Option<&[u8]>],
    shards: &[usize],
) -> Result<Vec<(usize, ectable_devices::AlignedBuf)>> {
    let w = array.w();
    let h = g.header.height_bytes as usize;
    let body_len = h - CHUNK_HEADER_SIZE_BYTES;
    let good: Vec<bool> = (0..w).map(|j| !g.bad_shards.contains(&j)).collect();
    let mut bodies: Vec<Vec<u8>> = (0..w)
        .map(|j| match (good[j], chunks[j]) {
            (true, Some(b)) => b[CHUNK_HEADER_SIZE_BYTES..h].to_vec(),
            _ => vec![0u8; body_len],
        })
        .collect();
    if good.iter().any(|g| !g) {
        let mut refs: Vec<&mut [u8]> = bodies.iter_mut().map(|b| b.as_mut_slice()).collect();
        array.codec.reconstruct(&mut refs, &good)?;
    }
    let mut out = Vec::with_capacity(shards.len());
    for &j in shards {
        if crc32c::crc32c(&bodies[j]) != g.header.body_crcs[j] {
            return Err(Error::DataLost {
                segment_id: g.header.segment_id,
                offset_in_segment_bytes: g.header.offset_in_segment_bytes,
                good: good.iter().filter(|x| **x).count(),
                width: w,
                needed: array.k(),
                detail: format!("rebuilt shard {j} does not match the stripe's checksum"),
            });
        }
        let mut buf = ectable_devices::AlignedBuf::new(h);
        let mut header = g.header.clone();
        header.shard_index = j as u16;
        header.encode_into(&mut buf[..CHUNK_HEADER_SIZE_BYTES]);
        buf[CHUNK_HEADER_SIZE_BYTES..].copy_from_slice(&bodies[j]);
        out.push((j, buf));
    }
    Ok(out)
}

/// Checks that the parity of a Good stripe agrees with its data (scrub). Reconstructs
/// nothing: every body must be present and good.
pub(crate) fn parity_agrees(
    array: &Array,
    g: &GoodStripe,
    chunks: &[Option<&[u8]>],
) -> Result<bool> {
    let h = g.header.height_bytes as usize;
    let mut bodies: Vec<&[u8]> = Vec::with_capacity(array.w());
    for c in chunks {
        match c {
            Some(b) => bodies.push(&b[CHUNK_HEADER_SIZE_BYTES..h]),
            None => return Ok(false),
        }
    }
    Ok(array.codec.verify(&bodies)?)
}

/// How to rebuild one record from the same byte range of k other chunks, without reading
/// whole chunks: Reed-Solomon works byte position by byte position, so the blocks that hold
/// the record in a lost chunk follow from the same blocks of any k others. Built by
/// [`plan_record_rebuild`]; its reads are submitted with other records' (so a batch of
/// degraded reads keeps its queue depth); [`finish_record_rebuild_keeping`] decodes.
pub(crate) struct RecordRebuild {
    /// Per piece of the record (one per data chunk it spans): (shard, first byte in the
    /// chunk, aligned start a, aligned end b, bytes to take, shards read in op order).
    pieces: Vec<(usize, usize, usize, usize, usize, Vec<usize>)>,
    op_count: usize,
}

/// The most a stripe at `offset` of a segment can be high: a chunk, or what is left of the
/// segment.
pub(crate) fn place_height(array: &Array, offset: u32) -> u32 {
    (array.segment_size() as u32 - offset).min(array.chunk_size() as u32)
}

/// Where a record that continues in the next stripe lies (format version 5; docs/format.md,
/// "Records that continue in the next stripe"): its head, in the stripe `loc` names, from
/// its offset to the end of the data space; and its tail, the first bytes of data shard 0's
/// body of the next stripe of the segment, named with a height at which that body holds the
/// tail (no reader needs that stripe's real height). None for a record in one stripe.
pub(crate) fn continued_parts(loc: &RecordLoc, k: usize) -> Option<(RecordLoc, RecordLoc)> {
    let space = k * (loc.height_bytes as usize).checked_sub(CHUNK_HEADER_SIZE_BYTES)?;
    let (from, len) = (loc.record_offset as usize, loc.record_len as usize);
    if from + len <= space {
        return None;
    }
    let head_len = space.checked_sub(from)?;
    let tail = len - head_len;
    Some((
        RecordLoc {
            record_len: head_len as u32,
            ..*loc
        },
        RecordLoc {
            offset_in_segment_bytes: loc.offset_in_segment_bytes + loc.height_bytes,
            height_bytes: Layout::chunk_height_for(tail) as u32,
            ordinal: loc.ordinal + 1,
            record_offset: 0,
            record_len: tail as u32,
            ..*loc
        },
    ))
}

/// The pieces of a record, one per data chunk it spans: (shard, first byte in the chunk,
/// bytes to take). For a record in one stripe ([`continued_parts`] splits the others).
pub(crate) fn record_pieces(loc: &RecordLoc) -> impl Iterator<Item = (usize, usize, usize)> {
    let body_len = loc.height_bytes as usize - CHUNK_HEADER_SIZE_BYTES;
    let end = loc.record_offset as usize + loc.record_len as usize;
    let mut pos = loc.record_offset as usize;
    std::iter::from_fn(move || {
        if pos >= end || body_len == 0 {
            return None;
        }
        let (shard, within) = (pos / body_len, pos % body_len);
        let take = (body_len - within).min(end - pos);
        pos += take;
        Some((shard, CHUNK_HEADER_SIZE_BYTES + within, take))
    })
}

/// Bytes of one data chunk of a stripe, from byte `from` of the chunk (its header included)
/// on: what a record rebuild read or decoded, kept so that other records of the stripe can
/// be taken from it (log/read_queue.rs).
pub(crate) struct ChunkBytes {
    pub(crate) shard: usize,
    pub(crate) from: usize,
    pub(crate) bytes: Vec<u8>,
}

impl ChunkBytes {
    /// The `take` bytes at `first` of `shard`, if these bytes hold them.
    pub(crate) fn get(&self, shard: usize, first: usize, take: usize) -> Option<&[u8]> {
        let at = first.checked_sub(self.from)?;
        (self.shard == shard && at + take <= self.bytes.len()).then(|| &self.bytes[at..at + take])
    }
}

/// Plans the reads. None when fewer than k chunks are available.
///
/// With `spare` > 0 a piece that is decoded reads up to that many chunks more than k, from
/// devices reads do not go around: it can then be decoded from the first k that arrive
/// ([`RecordRebuild::ready`]), so the slowest of its reads no longer sets its latency.
pub(crate) fn plan_record_rebuild(
    array: &Array,
    seg: &SegmentInfo,
    loc: &RecordLoc,
    spare: usize,
) -> Option<(Vec<IoOp>, RecordRebuild)> {
    if let Some((head, tail)) = continued_parts(loc, array.k()) {
        // Both parts, one after the other: a piece's decoding needs only its rows, not its
        // stripe's place.
        let (mut ops, mut plan) = plan_record_rebuild(array, seg, &head, spare)?;
        let (tail_ops, tail_plan) = plan_record_rebuild(array, seg, &tail, spare)?;
        ops.extend(tail_ops);
        plan.pieces.extend(tail_plan.pieces);
        plan.op_count += tail_plan.op_count;
        return Some((ops, plan));
    }
    let mut ops = Vec::new();
    let mut pieces = Vec::new();
    for (shard, first, take) in record_pieces(loc) {
        let a = first / BLOCK_BYTES * BLOCK_BYTES;
        let b = (first + take).div_ceil(BLOCK_BYTES) * BLOCK_BYTES;
        let (slot, place) =
            chunk_place(array, seg, loc.offset_in_segment_bytes, loc.ordinal, shard);
        let read_from: Vec<(usize, usize, u64)> = match place {
            Some((d, off)) if !array.avoid_for_reads(slot as usize) => vec![(shard, d, off)],
            _ => {
                // k other chunks, fast devices first, and the spares.
                readable_chunks(array, seg, loc, Some(shard), spare)?
            }
        };
        for &(_, d, off) in &read_from {
            ops.push(IoOp::read(d, off + a as u64, b - a));
        }
        pieces.push((
            shard,
            first,
            a,
            b,
            take,
            read_from.iter().map(|r| r.0).collect(),
        ));
    }
    let op_count = ops.len();
    Some((ops, RecordRebuild { pieces, op_count }))
}

impl RecordRebuild {
    pub(crate) fn op_count(&self) -> usize {
        self.op_count
    }

    /// Whether the record can be finished from the reads completed so far (`outcomes`, per
    /// op in op order: None in flight, else whether it succeeded): every piece has its own
    /// chunk's read, or k good reads of other chunks, or nothing more to wait for.
    pub(crate) fn ready(&self, k: usize, outcomes: &[Option<bool>]) -> bool {
        let mut at = 0;
        self.pieces.iter().all(|(_, _, _, _, _, sources)| {
            let mine = outcomes.get(at..at + sources.len()).unwrap_or(&[]);
            at += sources.len();
            let good = mine.iter().filter(|o| **o == Some(true)).count();
            let needed = if sources.len() == 1 { 1 } else { k };
            good >= needed || mine.iter().all(Option::is_some)
        })
    }

    /// The chunk bytes [`finish_record_rebuild_keeping`] will yield, as (shard, from, to):
    /// every data chunk's for a piece that is decoded, the piece's own chunk's for one read
    /// where it is. `k` is the array's data shard count.
    pub(crate) fn yields(&self, k: usize) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for (shard, _, a, b, _, sources) in &self.pieces {
            if sources.as_slice() == [*shard] {
                out.push((*shard, *a, *b));
            } else {
                out.extend((0..k).map(|j| (j, *a, *b)));
            }
        }
        out
    }
}

/// Decodes the record from the reads of its plan completed so far, in op order (None for one
/// still in flight: a spare the decode does not need), also handing the data chunks' bytes
/// it read or decoded to `keep` (what [`RecordRebuild::yields`] names; nothing when a read
/// failed). The bytes are not verified here: the caller checks them against the record's
/// crc held by the index, and falls back to the whole-stripe path, which checks every
/// chunk, when they differ.
pub(crate) fn finish_record_rebuild_keeping(
    array: &Array,
    plan: &RecordRebuild,
    completions: Vec<Option<ectable_devices::IoCompletion>>,
    mut keep: Option<&mut Vec<ChunkBytes>>,
) -> Option<Vec<u8>> {
    let (w, k) = (array.w(), array.k());
    for c in completions.iter().flatten() {
        array.observe_completion(c);
    }
    let mut it = completions.into_iter();
    let mut out = Vec::new();
    for (shard, first, a, b, take, sources) in &plan.pieces {
        let span = b - a;
        let mut bufs: Vec<Option<Vec<u8>>> = vec![None; w];
        for &j in sources {
            match it.next()? {
                Some(c) if c.result.is_ok() => bufs[j] = Some(c.op.buf.to_vec()),
                // A piece read where it is needs that read; one decoded needs k of its
                // reads (checked below).
                _ if sources.len() == 1 => return None,
                _ => {}
            }
        }
        if bufs[*shard].is_none() {
            if bufs.iter().filter(|b| b.is_some()).count() < k {
                return None;
            }
            bufs = reconstruct_rows(array, bufs, span)?;
        }
        let piece = bufs[*shard].as_ref()?;
        out.extend_from_slice(&piece[first - a..first - a + take]);
        if let Some(keep) = keep.as_deref_mut() {
            for (j, b) in bufs.into_iter().enumerate().take(k) {
                if let Some(bytes) = b {
                    keep.push(ChunkBytes {
                        shard: j,
                        from: *a,
                        bytes,
                    });
                }
            }
        }
    }
    Some(out)
}

/// Whether a data chunk of the record's stripe is on a missing device or one that reads go
/// around (a slow one): reading the stripe's records then means rebuilding some of them.
pub(crate) fn stripe_data_degraded(array: &Array, seg: &SegmentInfo, loc: &RecordLoc) -> bool {
    (0..array.k()).any(|j| {
        let (slot, place) = chunk_place(array, seg, loc.offset_in_segment_bytes, loc.ordinal, j);
        place.is_none() || array.avoid_for_reads(slot as usize)
    })
}

/// Reads of the whole height of k chunks of the record's stripe (data chunks and fast
/// devices first), and the shard of each read: one read of k chunks yields every record of
/// a stripe whose data chunks are not all available (a sequential read's next records).
/// None when fewer than k chunks are available.
pub(crate) fn plan_stripe_rows(
    array: &Array,
    seg: &SegmentInfo,
    loc: &RecordLoc,
) -> Option<(Vec<IoOp>, Vec<usize>)> {
    let chunks = readable_chunks(array, seg, loc, None, 0)?;
    let h = loc.height_bytes as usize;
    let ops = chunks
        .iter()
        .map(|&(_, d, off)| IoOp::read(d, off, h))
        .collect();
    Some((ops, chunks.iter().map(|c| c.0).collect()))
}

/// k chunks of the record's stripe to read, other than `except`: (shard, device, offset of
/// the chunk), chunks on fast devices first, then by shard (data chunks first). None when
/// fewer than k are on available devices.
fn readable_chunks(
    array: &Array,
    seg: &SegmentInfo,
    loc: &RecordLoc,
    except: Option<usize>,
    spare: usize,
) -> Option<Vec<(usize, usize, u64)>> {
    let mut avail: Vec<(bool, usize, usize, u64)> = (0..array.w())
        .filter(|&j| Some(j) != except)
        .filter_map(|j| {
            let (slot, place) =
                chunk_place(array, seg, loc.offset_in_segment_bytes, loc.ordinal, j);
            place.map(|(d, off)| (array.avoid_for_reads(slot as usize), j, d, off))
        })
        .collect();
    if avail.len() < array.k() {
        return None;
    }
    avail.sort_unstable_by_key(|o| (o.0, o.1));
    // The spares come from devices reads do not go around (a read that waits for a slow
    // device is no spare).
    let fast = avail.iter().filter(|o| !o.0).count();
    let take = array.k().max(fast.min(array.k() + spare));
    Some(
        avail
            .into_iter()
            .take(take)
            .map(|(_, j, d, off)| (j, d, off))
            .collect(),
    )
}

/// Passive detection sees the reads of a rebuild too (a device read around keeps being
/// measured through the reads sampled here).
fn observe_completions(array: &Array, completions: &[ectable_devices::IoCompletion]) {
    for c in completions {
        array.observe_completion(c);
    }
}

/// Decodes the data chunks of a stripe from the completed reads of [`plan_stripe_rows`] (in
/// op order, `shards` the shard of each). None if a read failed or the decode did. The
/// bytes are not verified here: each record taken from them is checked against its crc.
pub(crate) fn finish_stripe_rows(
    array: &Array,
    shards: &[usize],
    completions: Vec<ectable_devices::IoCompletion>,
) -> Option<Vec<ChunkBytes>> {
    let (w, k) = (array.w(), array.k());
    observe_completions(array, &completions);
    let mut bufs: Vec<Option<Vec<u8>>> = vec![None; w];
    let mut span = 0;
    for (c, &j) in completions.into_iter().zip(shards) {
        c.result.ok()?;
        span = c.op.buf.len();
        bufs[j] = Some(c.op.buf.to_vec());
    }
    if bufs.iter().take(k).any(|b| b.is_none()) {
        bufs = reconstruct_rows(array, bufs, span)?;
    }
    bufs.into_iter()
        .take(k)
        .enumerate()
        .map(|(shard, b)| {
            b.map(|bytes| ChunkBytes {
                shard,
                from: 0,
                bytes,
            })
        })
        .collect()
}

/// The same `span` rows of every chunk of a stripe, decoded from the at least k of them
/// present in `bufs` (by shard). None if the codec cannot.
fn reconstruct_rows(
    array: &Array,
    bufs: Vec<Option<Vec<u8>>>,
    span: usize,
) -> Option<Vec<Option<Vec<u8>>>> {
    let present: Vec<bool> = bufs.iter().map(|x| x.is_some()).collect();
    let mut full: Vec<Vec<u8>> = bufs
        .into_iter()
        .map(|x| x.unwrap_or_else(|| vec![0u8; span]))
        .collect();
    let mut refs: Vec<&mut [u8]> = full.iter_mut().map(|v| v.as_mut_slice()).collect();
    array.codec.reconstruct(&mut refs, &present).ok()?;
    Some(full.into_iter().map(Some).collect())
}

/// A record's bytes from chunk bytes that hold all of its pieces.
pub(crate) fn record_from(chunks: &[ChunkBytes], loc: &RecordLoc) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(loc.record_len as usize);
    for (shard, first, take) in record_pieces(loc) {
        out.extend_from_slice(chunks.iter().find_map(|c| c.get(shard, first, take))?);
    }
    Some(out)
}

/// Walks the stripes of a segment whose members are held in `bufs` (member buffers of the
/// whole segment, None where unread), from (`offset`, `ordinal`) up to `limit` bytes. Calls
/// `f` for each stripe found; committed and unreadable stripes are both handed over, and the
/// walk steps over an unreadable one by the height its valid headers give. It stops at the
/// first place no chunk names, at `limit`, or when `f` returns false, and returns the
/// (offset, ordinal) where it stopped. With `count_errors`, bad chunks of committed stripes
/// are held against their devices (recovery decides that itself, once it knows which
/// stripes an interrupted writer left behind).
pub(crate) fn walk_stripes(
    array: &Array,
    seg: &SegmentInfo,
    bufs: &[Option<ectable_devices::AlignedBuf>],
    start: (usize, u32),
    limit: usize,
    count_errors: bool,
    f: impl FnMut(u32, u32, &[Option<&[u8]>], StripeOutcome) -> bool,
) -> (u32, u32) {
    walk_stripes_in(array, seg, bufs, 0, start, limit, count_errors, f)
}

/// [`walk_stripes`] over member buffers that hold the segment from byte `base` on (a stripe
/// before `base` is never looked at: `start` is at or after it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn walk_stripes_in(
    array: &Array,
    seg: &SegmentInfo,
    bufs: &[Option<ectable_devices::AlignedBuf>],
    base: usize,
    start: (usize, u32),
    limit: usize,
    count_errors: bool,
    mut f: impl FnMut(u32, u32, &[Option<&[u8]>], StripeOutcome) -> bool,
) -> (u32, u32) {
    let (s, c, w) = (array.segment_size(), array.chunk_size(), array.w());
    let limit = limit.min(s);
    let (mut offset, mut ordinal) = start;
    debug_assert!(offset >= base);
    while offset + BLOCK_BYTES <= limit {
        let stop = (offset + c).min(s);
        let chunks: Vec<Option<&[u8]>> = (0..w)
            .map(|j| {
                bufs[position_of(j, ordinal, w)]
                    .as_ref()
                    .map(|b| &b[offset - base..stop - base])
            })
            .collect();
        let outcome = assemble(array, seg, offset as u32, ordinal, &chunks);
        let height = match &outcome {
            StripeOutcome::Good(g) => {
                if count_errors {
                    g.note_bad_chunks(array);
                }
                g.header.height_bytes
            }
            StripeOutcome::Incomplete { height_bytes, .. } => *height_bytes,
            StripeOutcome::Empty => break,
        };
        if !f(offset as u32, ordinal, &chunks, outcome) {
            break;
        }
        offset += height as usize;
        ordinal += 1;
    }
    (offset as u32, ordinal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(device: usize, offset: u64, len: usize) -> BlockRead {
        BlockRead {
            device,
            offset,
            len,
        }
    }

    #[test]
    fn coalesce_merges_reads_that_lie_together_on_one_device() {
        let k = 4096u64;
        let reads = [
            r(1, 8 * k, 4096),
            r(0, 0, 8192),
            r(1, 9 * k, 8192),  // touches the first
            r(0, 4096, 4096),   // inside the second
            r(1, 14 * k, 4096), // 3 blocks past the end of the merged: within the gap
            r(1, 30 * k, 4096), // too far: its own read
            r(2, 9 * k, 4096),  // another device
        ];
        let (merged, at) = coalesce(&reads);
        assert_eq!(
            merged,
            vec![
                r(0, 0, 8192),
                r(1, 8 * k, 7 * 4096),
                r(1, 30 * k, 4096),
                r(2, 9 * k, 4096)
            ]
        );
        let want = [
            (1, 0),
            (0, 0),
            (1, 4096),
            (0, 4096),
            (1, 6 * 4096),
            (2, 0),
            (3, 0),
        ];
        assert_eq!(at, want);
        // Every input read's bytes lie inside its merged read.
        for (x, (m, off)) in reads.iter().zip(&at) {
            assert_eq!(merged[*m].device, x.device);
            assert_eq!(merged[*m].offset + *off as u64, x.offset);
            assert!(off + x.len <= merged[*m].len);
        }
    }

    #[test]
    fn coalesce_caps_a_merged_read() {
        let reads: Vec<BlockRead> = (0..300).map(|i| r(0, i * 4096, 4096)).collect();
        let (merged, at) = coalesce(&reads);
        assert!(merged.iter().all(|m| m.len <= COALESCE_MAX_BYTES));
        assert_eq!(
            merged.iter().map(|m| m.len).sum::<usize>(),
            300 * 4096,
            "no block read twice, none left out"
        );
        assert_eq!(merged.len(), (300 * 4096usize).div_ceil(COALESCE_MAX_BYTES));
        assert_eq!(at[299].0, merged.len() - 1);
        // A lone read longer than the cap stays whole.
        let (m, _) = coalesce(&[r(0, 0, 2 * COALESCE_MAX_BYTES)]);
        assert_eq!(m, vec![r(0, 0, 2 * COALESCE_MAX_BYTES)]);
    }
}
