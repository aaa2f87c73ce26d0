//! Recovery: rebuild the segment table, the free space and the index from the devices.
//!
//! Invariants:
//! - The log is the longest chain of committed stripes, visited in segment-id order, whose
//!   LSNs follow on one from the other and whose write epochs never go down.
//! - What lies beyond the end of that chain was never acknowledged (a writer acknowledges
//!   only after the flush covering every earlier stripe); on a writable open those segments,
//!   and the chunk headers at the place the log ends in the open segment, are invalidated
//!   before this session's first write, so they can never be replayed later.
//! - Every stripe records the LSN up to which the log was durable when it was written. If any
//!   stripe found (even beyond the end) vouches for an LSN the log does not reach, records
//!   that were acknowledged are unreadable: recovery reports data loss instead of silently
//!   treating it as a torn tail.

use crate::array::Array;
use crate::error::{Error, Result};
use crate::format::checkpoint::ResumePoint;
use crate::format::journal::{JournalEntry, JOURNAL_BYTES, JOURNAL_START_BYTES};
use crate::format::log_record::{Held, RecordFormat, StripeFormat};
use crate::format::*;
use crate::index::{Index, IndexEntry, Place, RecordLoc};
use crate::log::cursor::Cursor;
use crate::log::repair::LogRepairs;
use crate::log::segment_read::read_segment_range;
use crate::log::state::{JournalReplay, JOURNAL_REPLAY_SEQ};
use crate::log::stripe::{chunk_place, walk_stripes_in, StripeOutcome};
use crate::segments::{FreeSpace, SegmentInfo};
use crate::sync::MutexExt;
use ectable_devices::{AlignedBuf, IoOp};
use std::collections::BTreeMap;
use std::sync::Arc;

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
    /// What the replayed log lacks on present devices: rewritten before this session's first
    /// write (see [`repair_log`]).
    pub repairs: LogRepairs,
    /// Highest LSN per log segment (for segments the checkpoint covers: a bound, see
    /// [`covered_max_lsn`]).
    pub segment_max_lsn: std::collections::HashMap<u64, u64>,
    /// Records the sync journal continues the log with (format version 2), not yet in any
    /// stripe: the index serves them from memory until the session writes them into the log.
    pub journal: Option<JournalReplay>,
}

/// What the log replay did when the engine opened ([`crate::Engine::recovery_stats`]).
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RecoveryStats {
    /// Log segments replayed.
    pub segments: usize,
    /// Stripes replayed.
    pub stripes: u64,
    /// Records replayed into the index (puts, moves and deletes).
    pub records: u64,
    /// Replayed stripes with chunks that were unreadable or bad (rebuilt from the others).
    pub degraded_stripes: u64,
    /// Chunk headers at the first stripe's place of device segments whose segment header an
    /// interrupted writer never got onto the disk, from a segment id this session gives
    /// out again: zeroed by the session's first write (docs/format.md, "Recovery").
    pub stray_chunks: usize,
    /// Stripes of the last write batch with chunks an interrupted writer never wrote
    /// (repaired by the session's first write); not counted in `degraded_stripes`.
    pub interrupted_stripes: u64,
    /// Segments after the end of the log (its first gap): read, not replayed.
    pub discarded_segments: usize,
    /// Stripes found after the end of the log (not replayed).
    pub discarded_stripes: usize,
    /// Bytes read from the devices (checkpoint and log segments).
    pub bytes_read: u64,
    /// LSN of the checkpoint the index was loaded from (0: replayed from the start).
    pub checkpoint_lsn: u64,
    /// Keys in the checkpoint loaded (0: none).
    pub checkpoint_keys: usize,
    /// Bytes of that checkpoint's image (0: none).
    pub checkpoint_bytes: u64,
    /// Bytes of the table names and keys of that checkpoint's entries.
    pub checkpoint_names: u64,
    /// The segment the log resumes in after that checkpoint (0: none).
    pub checkpoint_resume_segment: u64,
    /// The offset in that segment of the first stripe after the checkpoint.
    pub checkpoint_resume_offset: u32,
    /// Log segments before the checkpoint with no live record (and no history the backup
    /// horizon keeps): freed at open.
    pub dead_segments_freed: usize,
    /// Sync journal entries replayed after the log's stripes (format version 2).
    pub journal_entries: usize,
    /// Records those entries held (counted in `records` too).
    pub journal_records: u64,
    /// Records whose head ended the log: they continued in a stripe that was never written
    /// (format version 5), so they were never acknowledged, and are not replayed.
    pub unfinished_records: u64,
    /// Read-only opens only: how many times the open started over because another process
    /// changed the array while it read it (see `Error::ArrayChanged`).
    pub reopened_after_change: usize,
}

/// The valid segment headers of every device segment, grouped by segment id, and per log
/// segment the `first_lsn` of its first stripe as the chunk headers of that stripe give it
/// (the read that fetches a segment header takes the first chunk's header with it).
///
/// Also every device segment whose first stripe's place holds a chunk of this array from
/// a segment its header does not name (the header missing, or an older segment's): an
/// interrupted writer opened that segment and its header never reached the disk. As
/// (slot, device segment, the chunk's segment id).
#[allow(clippy::type_complexity)]
fn read_segment_headers(
    array: &Array,
) -> (
    BTreeMap<u64, SegmentInfo>,
    BTreeMap<u64, u64>,
    Vec<(u32, u32, u64)>,
) {
    let mut ops = Vec::new();
    let mut meta = Vec::new();
    for slot in 0..array.n() {
        let Some(d) = array.device_of_slot(slot as u32) else {
            continue;
        };
        for dseg in 0..array.segment_count() {
            ops.push(IoOp::read(
                d,
                array.device_segment_offset(dseg),
                SEGMENT_HEADER_SIZE_BYTES + BLOCK_BYTES,
            ));
            meta.push((slot as u32, dseg));
        }
    }
    let mut segments: BTreeMap<u64, SegmentInfo> = BTreeMap::new();
    // Which members' devices hold each segment's header (to tell a stale member's old
    // headers, which its resync rewrites, from a leftover elsewhere).
    let mut found_on: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    let mut first_lsn: BTreeMap<u64, u64> = BTreeMap::new();
    let mut strays = Vec::new();
    for (c, (slot, dseg)) in array.io.execute(ops).into_iter().zip(meta) {
        if c.result.is_err() {
            continue;
        }
        let first_chunk = ChunkHeader::decode(
            &c.op.buf
                [SEGMENT_HEADER_SIZE_BYTES..SEGMENT_HEADER_SIZE_BYTES + CHUNK_HEADER_SIZE_BYTES],
        )
        .ok()
        .filter(|ch| {
            ch.array_uuid == array.sb.array_uuid
                && ch.offset_in_segment_bytes as usize == SEGMENT_HEADER_SIZE_BYTES
                && ch.ordinal == 0
        });
        let header = SegmentHeader::decode(&c.op.buf);
        if let Some(ch) = &first_chunk {
            if header.as_ref().ok().map(|h| h.segment_id) != Some(ch.segment_id) {
                strays.push((slot, dseg, ch.segment_id));
            }
        }
        let Ok(h) = header else {
            continue;
        };
        let pos = h.position as usize;
        let fits = h.array_uuid == array.sb.array_uuid
            && h.members.len() == array.w()
            && h.data_shards as usize == array.k()
            && h.members.get(pos) == Some(&(slot, dseg))
            && h.write_epoch <= array.epoch()
            && h.members
                .iter()
                .all(|(s, ds)| (*s as usize) < array.n() && *ds < array.segment_count());
        if !fits {
            continue;
        }
        if h.kind == SegmentKind::Log {
            // The chunk this member holds of the segment's first stripe (shard `pos`: the
            // placement puts shard j of stripe 0 on member j), if it is that chunk.
            let is_it = first_chunk.as_ref().filter(|ch| {
                ch.segment_id == h.segment_id
                    && ch.shard_index as usize == pos
                    && ch.flags & chunk_header::FLAG_CHECKPOINT == 0
            });
            if let Some(ch) = is_it {
                let f = first_lsn.entry(h.segment_id).or_insert(ch.first_lsn);
                *f = (*f).max(ch.first_lsn);
            }
        }
        found_on.entry(h.segment_id).or_default().push(slot);
        segments.entry(h.segment_id).or_insert(SegmentInfo {
            id: h.segment_id,
            kind: h.kind,
            members: h.members,
        });
    }
    drop_leftovers(&mut segments, |id| {
        found_on.get(&id).is_some_and(|slots| {
            slots
                .iter()
                .all(|&s| array.stale_from(s as usize).is_some())
        })
    });
    (segments, first_lsn, strays)
}

/// Drops every segment that names a device segment a newer segment names too. A place is
/// given to a new segment only after the segment that held it was freed or discarded (its
/// headers zeroed first), so the older one is a leftover: a header copy whose zeroing a
/// device dropped, or one of an old image put back. Walking it would stop the log where
/// the newer segment's stripes are (docs/fault-model.md, "a stale segment header").
///
/// `only_on_stale(id)`: segment `id`'s header was found on stale members only. A member
/// that was away while its segments were freed and their places reused keeps the old
/// headers until its resync writes the new segments there: expected, so said at info level.
fn drop_leftovers(segments: &mut BTreeMap<u64, SegmentInfo>, only_on_stale: impl Fn(u64) -> bool) {
    let mut owner: std::collections::HashMap<(u32, u32), u64> = Default::default();
    let mut leftovers = Vec::new();
    for (id, seg) in segments.iter().rev() {
        match seg.members.iter().find_map(|p| owner.get(p)) {
            Some(newer) => leftovers.push((*id, *newer)),
            None => owner.extend(seg.members.iter().map(|p| (*p, *id))),
        }
    }
    for (id, newer) in leftovers {
        if only_on_stale(id) {
            tracing::info!(
                "segment {id}: an old header on a stale member (segment {newer} uses its places \
                 now; the member's resync writes it); left out"
            );
        } else {
            tracing::warn!(
                "segment {id}: a leftover header (segment {newer} uses its places now); left out"
            );
        }
        segments.remove(&id);
    }
}

/// Points the index at a replayed record of the stripe `header` describes (a put or a moved
/// put), or removes its key (a delete). `at` is what the entry holds: (record_offset,
/// record_len, crc).
fn apply_record(
    index: &mut Index,
    seg_id: u64,
    header: &ChunkHeader,
    rec: &crate::format::log_record::RecordView<'_>,
    (record_offset, record_len, crc): (u32, u32, u32),
) {
    match rec.kind {
        RecordKind::Put | RecordKind::Moved => {
            let loc = RecordLoc {
                segment_id: seg_id,
                offset_in_segment_bytes: header.offset_in_segment_bytes,
                height_bytes: header.height_bytes,
                ordinal: header.ordinal,
                record_offset,
                record_len,
                crc,
            };
            index.put(
                rec.table,
                rec.key,
                IndexEntry {
                    lsn: rec.lsn,
                    value_len: rec.value.len() as u32,
                    place: Place::Disk(loc),
                },
            );
        }
        RecordKind::Delete => index.delete(rec.table, rec.key),
    }
}

/// Completes a record held from the stripe `head` describes with the tail at the start of
/// the next stripe (`header`, `data`) and applies it (format version 5).
fn apply_continued(
    index: &mut Index,
    seg_id: u64,
    (held, head): &(Held, ChunkHeader),
    header: &ChunkHeader,
    data: &[u8],
    sf: StripeFormat,
) -> Result<()> {
    let corrupt = |source| Error::Corrupt {
        device: format!("segment {seg_id}"),
        offset_bytes: head.offset_in_segment_bytes as u64 + held.offset as u64,
        what: "log record continued across stripes",
        source,
    };
    let joined = held
        .joined(header, data)
        .ok_or(corrupt(DecodeError::Field("tail_bytes")))?;
    let (rec, crc) = held.decode(sf.records, &joined).map_err(corrupt)?;
    let at = (held.offset as u32, joined.len() as u32, crc);
    apply_record(index, seg_id, head, &rec, at);
    Ok(())
}

/// Decodes the records of a good stripe (in the array's stripe format `sf`) and applies
/// them to the index. Returns how many, and the head of its last record when that record
/// continues in the next stripe (format version 5: applied with its tail, by
/// [`apply_continued`]).
pub(crate) fn apply_stripe(
    index: &mut Index,
    seg_id: u64,
    header: &ChunkHeader,
    data: &[u8],
    sf: StripeFormat,
) -> Result<(u64, Option<Held>)> {
    let mut expected = header.first_lsn + u64::from(header.tail_bytes > 0);
    let mut count = 0;
    let mut records = StripeRecords::in_stripe(sf, header, data);
    while let Some(r) = records.next() {
        let r = r.map_err(|e| Error::Corrupt {
            device: format!("segment {seg_id}"),
            offset_bytes: header.offset_in_segment_bytes as u64 + records.position() as u64,
            what: "log record in a verified stripe",
            source: e,
        })?;
        let rec = r.rec;
        if rec.lsn != expected {
            return Err(Error::Corrupt {
                device: format!("segment {seg_id}"),
                offset_bytes: header.offset_in_segment_bytes as u64,
                what: "log record out of sequence",
                source: DecodeError::Field("lsn"),
            });
        }
        apply_record(index, seg_id, header, &rec, r.index_loc());
        expected += 1;
        count += 1;
    }
    let held = records.held();
    let end = if header.continues() {
        header.last_lsn
    } else {
        header.last_lsn + 1
    };
    if expected != end || header.continues() != held.is_some() {
        return Err(Error::Corrupt {
            device: format!("segment {seg_id}"),
            offset_bytes: header.offset_in_segment_bytes as u64,
            what: "stripe lsn range does not match its records",
            source: DecodeError::Field("last_lsn"),
        });
    }
    Ok((count, held))
}

/// Why a scan of a segment stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stop {
    /// Nothing more was ever committed in this segment (or it is full).
    End,
    /// A stripe names this place but cannot be read: torn by a crash, or lost.
    Incomplete { detail: String },
    /// The caller refused the stripe (out of sequence).
    Refused,
}

/// Scans one segment from (`offset`, `ordinal`). Calls `on_stripe` for each committed stripe
/// in order until it returns false or the segment ends; returns where and why it stopped.
/// `bufs` hold the members from byte `base` on, and only stripes that start before `limit`
/// are looked at (buffers up to `limit` + chunk size are enough).
#[allow(clippy::too_many_arguments)]
fn scan_segment(
    array: &Array,
    seg: &SegmentInfo,
    bufs: &[Option<AlignedBuf>],
    base: usize,
    start: (usize, u32),
    limit: usize,
    count_errors: bool,
    mut on_stripe: impl FnMut(&crate::log::stripe::GoodStripe) -> bool,
) -> (u32, u32, Stop) {
    let mut stop = Stop::End;
    let (offset, ordinal) = walk_stripes_in(
        array,
        seg,
        bufs,
        base,
        start,
        limit,
        count_errors,
        |_, _, _, outcome| match outcome {
            StripeOutcome::Good(g) => {
                let go_on = on_stripe(&g);
                if !go_on {
                    stop = Stop::Refused;
                }
                go_on
            }
            StripeOutcome::Incomplete { detail, .. } => {
                stop = Stop::Incomplete { detail };
                false
            }
            StripeOutcome::Empty => false,
        },
    );
    (offset, ordinal, stop)
}

/// Chunk headers of `seg` found on the members read at block offsets after `end` (where the
/// log ends in it; the block at `end` itself is zeroed apart, `invalidate_log_end`):
/// (slot, device segment, offset). Stripes a crash left there are not the log, but one of
/// them could pass for it later: a checkpoint that resumes the log exactly at its place,
/// where this session's stripes end, and whose LSN it continues, leaves the replay no
/// earlier stripe of this session to tell its older epoch by. The session's first write
/// zeroes them.
fn chunk_headers_beyond(
    array: &Array,
    seg: &SegmentInfo,
    bufs: &[Option<AlignedBuf>],
    base: usize,
    end: usize,
) -> Vec<(u32, u32, u32)> {
    let s = array.segment_size();
    let mut found = Vec::new();
    for (p, (slot, dseg)) in seg.members.iter().enumerate() {
        let Some(buf) = bufs.get(p).and_then(|b| b.as_ref()) else {
            continue;
        };
        let mut at = end.max(base) + BLOCK_BYTES;
        while at + CHUNK_HEADER_SIZE_BYTES <= s && at - base + CHUNK_HEADER_SIZE_BYTES <= buf.len()
        {
            let b = &buf[at - base..at - base + CHUNK_HEADER_SIZE_BYTES];
            if let Ok(h) = ChunkHeader::decode(b) {
                if h.segment_id == seg.id
                    && h.offset_in_segment_bytes as usize == at
                    && h.array_uuid == array.sb.array_uuid
                {
                    found.push((*slot, *dseg, at as u32));
                }
            }
            at += BLOCK_BYTES;
        }
    }
    found
}

/// Looks at everything from (`offset`, `ordinal`) to the end of a segment that is not part
/// of the log, stepping over unreadable stripes by the height their valid headers give
/// (`bufs` hold the members from byte `base` on). Returns the committed stripes found and
/// the highest `committed_lsn` any valid header carries (the evidence of what was
/// acknowledged).
fn survey_segment(
    array: &Array,
    seg: &SegmentInfo,
    bufs: &[Option<AlignedBuf>],
    base: usize,
    start: (usize, u32),
) -> (usize, u64) {
    let (mut committed_stripes, mut max_committed) = (0, 0);
    walk_stripes_in(
        array,
        seg,
        bufs,
        base,
        start,
        usize::MAX,
        false,
        |_, _, _, outcome| {
            match outcome {
                StripeOutcome::Good(g) => {
                    committed_stripes += 1;
                    max_committed = max_committed.max(g.header.committed_lsn);
                }
                StripeOutcome::Incomplete { committed_lsn, .. } => {
                    max_committed = max_committed.max(committed_lsn);
                }
                StripeOutcome::Empty => {}
            }
            true
        },
    );
    (committed_stripes, max_committed)
}

/// How much of each member a checkpoint segment's first read takes: a quarter of the
/// segment (at least two chunks). With the default 8 MiB segments, 2 MiB holds the compact
/// image of about 350,000 keys at k = 4.
fn checkpoint_first_read(segment_size: usize, chunk_size: usize) -> usize {
    (segment_size / 4).max(2 * chunk_size).min(segment_size)
}

/// Reads the checkpoint the superblocks point at. None if there is none, or if it cannot be
/// read and verified (recovery then replays the whole log).
fn load_checkpoint(
    array: &Array,
    all: &BTreeMap<u64, SegmentInfo>,
    stats: &mut RecoveryStats,
) -> Option<(Index, u64, ResumePoint)> {
    let (first, count, _) = array.persisted.locked().checkpoint;
    if first == 0 {
        return None;
    }
    let mut bytes = Vec::new();
    let (s, c) = (array.segment_size(), array.chunk_size());
    for id in first..first + count as u64 {
        let Some(seg) = all.get(&id).filter(|s| s.kind == SegmentKind::Checkpoint) else {
            tracing::warn!("checkpoint segment {id} is missing; replaying the whole log");
            return None;
        };
        // A checkpoint seldom fills its last segment: read a prefix of the members first and
        // walk the stripes that lie wholly in it; only if the walk ran to the prefix's end,
        // read the rest of the segment from the stripe where it stopped and go on there.
        let mut at = (SEGMENT_HEADER_SIZE_BYTES, 0u32);
        let (mut from, mut len) = (0, checkpoint_first_read(s, c));
        let stop = loop {
            let (bufs, n) = read_segment_range(array, seg, from, len);
            stats.bytes_read += n;
            let end = from + len;
            let limit = if end < s { end - c } else { usize::MAX };
            let (offset, ordinal, stop) =
                scan_segment(array, seg, &bufs, from, at, limit, true, |g| {
                    bytes.extend_from_slice(&g.data[..g.header.payload_bytes as usize]);
                    true
                });
            if end < s && matches!(stop, Stop::End) && offset as usize + BLOCK_BYTES > limit {
                at = (offset as usize, ordinal);
                (from, len) = (at.0, s - at.0);
                continue;
            }
            break stop;
        };
        if let Stop::Incomplete { detail } = stop {
            tracing::warn!(
                "checkpoint segment {id} is unreadable ({detail}); replaying the whole log"
            );
            return None;
        }
    }
    match crate::format::checkpoint::decode_in(&bytes, array.record_format()) {
        Ok(c) => {
            stats.checkpoint_bytes = bytes.len() as u64;
            Some(c)
        }
        Err(e) => {
            tracing::warn!("checkpoint does not verify ({e}); replaying the whole log");
            None
        }
    }
}

pub(crate) fn recover(array: &Array) -> Result<Recovered> {
    let journal_entries = read_journal(array);
    // Every entry vouches that the LSN before its first was acknowledged.
    let journal_vouches = journal_entries.keys().next_back().map_or(0, |f| f - 1);
    let (all, first_lsn, strays) = read_segment_headers(array);
    let (ckpt_first, ckpt_count, _) = array.persisted.locked().checkpoint;
    let ckpt_ids = ckpt_first..ckpt_first + ckpt_count as u64;
    let mut free = FreeSpace::new(array.n(), array.segment_count());
    for seg in all.values() {
        // Checkpoint segments no superblock points at are free.
        if seg.kind == SegmentKind::Log || ckpt_ids.contains(&seg.id) {
            for (slot, dseg) in &seg.members {
                free.mark_used(*slot, *dseg);
            }
        }
    }
    let next_segment_id = all.keys().next_back().map_or(1, |id| id + 1);
    let mut stats = RecoveryStats::default();
    let mut segments = BTreeMap::new();
    for id in ckpt_ids.clone() {
        if let Some(seg) = all.get(&id) {
            segments.insert(id, Arc::new(seg.clone()));
        }
    }
    let checkpoint = load_checkpoint(array, &all, &mut stats);
    let (mut index, mut expected_lsn, resume) = match checkpoint {
        Some((index, lsn, resume)) => {
            stats.checkpoint_lsn = lsn;
            stats.checkpoint_keys = index.key_count();
            stats.checkpoint_names = index.name_bytes();
            stats.checkpoint_resume_segment = resume.segment_id;
            stats.checkpoint_resume_offset = resume.offset;
            (index, lsn + 1, Some(resume))
        }
        None => (Index::for_records(array.record_format()), 1u64, None),
    };
    let headers: BTreeMap<u64, SegmentInfo> = all
        .into_iter()
        .filter(|(_, s)| s.kind == SegmentKind::Log)
        .collect();
    let mut last_epoch = 0u64;
    let mut max_committed = 0u64;
    let mut cursor: Option<Cursor> = None;
    // Where and why the log ended, once it has.
    let mut ended: Option<(u64, u32, String)> = None;
    let mut discarded: Vec<Arc<SegmentInfo>> = Vec::new();
    let mut error: Option<Error> = None;
    let mut repairs = LogRepairs {
        strays: strays
            .iter()
            .filter(|(_, _, id)| *id >= next_segment_id)
            .map(|&(slot, dseg, _)| (slot, dseg))
            .collect(),
        ..Default::default()
    };
    stats.stray_chunks = repairs.strays.len();
    let mut segment_max_lsn = std::collections::HashMap::new();
    let covered_lsn = expected_lsn - 1;
    // (last LSN, slots of the chunks read bad) of every replayed stripe with bad chunks.
    let mut degraded: Vec<(u64, Vec<usize>)> = Vec::new();
    let mut covered: Vec<u64> = Vec::new();
    for (_, seg) in headers {
        let seg = Arc::new(seg);
        let mut first = (SEGMENT_HEADER_SIZE_BYTES, 0u32);
        let mut is_resume_segment = false;
        if let Some(r) = resume {
            if seg.id < r.segment_id {
                // Wholly covered by the checkpoint: no need to read it (its highest LSN is
                // bounded below, from the log segment after it).
                covered.push(seg.id);
                segments.insert(seg.id, seg.clone());
                continue;
            }
            if seg.id == r.segment_id {
                first = (r.offset as usize, r.ordinal);
                is_resume_segment = true;
            }
        }
        // What lies before the resume point of its segment is the checkpoint's: read from
        // there on (the segment header apart, below, if it is needed).
        let s = array.segment_size();
        let base = if is_resume_segment && first.0 < s {
            first.0
        } else {
            0
        };
        let (bufs, bytes) = read_segment_range(array, &seg, base, s - base);
        stats.bytes_read += bytes;
        if ended.is_some() {
            let (n, c) = survey_segment(array, &seg, &bufs, base, first);
            stats.discarded_stripes += n;
            max_committed = max_committed.max(c);
            discarded.push(seg);
            continue;
        }
        let mut replayed = 0u64;
        let whole = usize::MAX;
        // The head of a record that continues in the next stripe (format version 5), with
        // its stripe's header: a segment never ends with one held.
        let mut held: Option<(Held, ChunkHeader)> = None;
        let sf = array.stripe_format();
        let (offset, ordinal, mut stop) =
            scan_segment(array, &seg, &bufs, base, first, whole, false, |g| {
                if g.header.first_lsn != expected_lsn || g.header.write_epoch < last_epoch {
                    return false;
                }
                // A tail continues the held record; a stripe with none right after a head
                // is a later session's, written where the log had ended (the held record's
                // tail was never written, and its LSN is this stripe's first).
                match (held.take(), g.header.tail_bytes > 0) {
                    (Some(_), false) => stats.unfinished_records += 1,
                    (Some(h), true) => {
                        if let Err(e) =
                            apply_continued(&mut index, seg.id, &h, &g.header, &g.data, sf)
                        {
                            error.get_or_insert(e);
                            return false;
                        }
                        stats.records += 1;
                    }
                    (None, true) => return false,
                    (None, false) => {}
                }
                match apply_stripe(&mut index, seg.id, &g.header, &g.data, sf) {
                    Ok((n, h)) => {
                        stats.records += n;
                        held = h.map(|h| (h, g.header.clone()));
                    }
                    Err(e) => {
                        error.get_or_insert(e);
                        return false;
                    }
                }
                if !g.bad_shards.is_empty() {
                    stats.degraded_stripes += 1;
                    let (o, t) = (g.header.offset_in_segment_bytes, g.header.ordinal);
                    degraded.push((g.header.last_lsn, g.bad_read_slots.clone()));
                    if g.bad_shards
                        .iter()
                        .any(|&j| chunk_place(array, &seg, o, t, j).1.is_some())
                    {
                        repairs.stripes.push(crate::log::repair::StripeRepair {
                            seg: seg.clone(),
                            offset: o,
                            ordinal: t,
                            height: g.header.height_bytes,
                            known: Some((g.header.clone(), g.data.clone(), g.bad_shards.clone())),
                        });
                        // Only the last few keep their copy (memory stays bounded).
                        let n = repairs.stripes.len();
                        if n > crate::log::repair::KNOWN_REPAIR_STRIPES {
                            repairs.stripes[n - 1 - crate::log::repair::KNOWN_REPAIR_STRIPES]
                                .known = None;
                        }
                    }
                }
                // The held record's LSN is the next one expected until its tail is read.
                expected_lsn = g.header.last_lsn + u64::from(held.is_none());
                segment_max_lsn.insert(seg.id, g.header.last_lsn);
                last_epoch = g.header.write_epoch;
                max_committed = max_committed.max(g.header.committed_lsn);
                replayed += 1;
                stats.stripes += 1;
                true
            });
        if let Some(e) = error.take() {
            return Err(e);
        }
        if let Some((h, _)) = held.take() {
            stats.unfinished_records += 1;
            // Its tail's stripe was never written: the record was never acknowledged, and
            // the log ends after its head (the next session writes its LSN here).
            tracing::info!(
                "segment {}: the record with LSN {} continues in a stripe that was never \
                 written; the log ends before it",
                seg.id,
                h.lsn
            );
            if stop == Stop::End {
                stop = Stop::Refused;
            }
        }
        let reason = match &stop {
            Stop::End => "no further stripe".to_string(),
            Stop::Refused => "the next stripe does not continue the log".to_string(),
            Stop::Incomplete { detail } => format!("unreadable stripe: {detail}"),
        };
        if replayed == 0 && !is_resume_segment {
            // Nothing of the log is in this segment: the log ended before it.
            ended = Some((seg.id, offset, reason));
            let (n, c) = survey_segment(array, &seg, &bufs, base, first);
            stats.discarded_stripes += n;
            max_committed = max_committed.max(c);
            discarded.push(seg);
            continue;
        }
        stats.segments += 1;
        let heads =
            (base > 0).then(|| read_segment_range(array, &seg, 0, SEGMENT_HEADER_SIZE_BYTES));
        stats.bytes_read += heads.as_ref().map_or(0, |h| h.1);
        let head_bufs = heads.as_ref().map_or(&bufs, |h| &h.0);
        if let Some(missing) = missing_headers(array, &seg, head_bufs) {
            repairs.headers.push(missing);
        }
        segments.insert(seg.id, seg.clone());
        cursor = Some(Cursor {
            segment: seg.clone(),
            offset,
            ordinal,
        });
        // Only the segment the log ends in keeps them (the cursor's).
        repairs.beyond_end = chunk_headers_beyond(array, &seg, &bufs, base, offset as usize);
        if stop != Stop::End {
            ended = Some((seg.id, offset, reason));
            let (n, c) = survey_segment(array, &seg, &bufs, base, (offset as usize, ordinal));
            stats.discarded_stripes += n;
            max_committed = max_committed.max(c);
        }
    }
    stats.discarded_segments = discarded.len();
    let journal = if !journal_entries.is_empty() {
        let seg = cursor.as_ref().map_or(0, |c| c.segment.id);
        let r = replay_journal(
            array.record_format(),
            &journal_entries,
            &mut index,
            &mut expected_lsn,
            last_epoch,
            seg,
        )?;
        if let Some(j) = &r {
            stats.journal_entries = j.entries.len();
            stats.journal_records = j.last_lsn + 1 - j.first_lsn;
            stats.records += stats.journal_records;
        }
        r
    } else {
        None
    };
    // Stripes no later stripe vouches for (their records are after every committed LSN the
    // log carries) are the last write batch: chunks missing there were never written by a
    // writer that was interrupted (killed, or a power cut), not damaged by the devices. They
    // are reported as such and not held against the devices; the session's first write
    // rewrites them. Bad chunks of every other replayed stripe count as device errors.
    for (last_lsn, slots) in &degraded {
        if *last_lsn > max_committed {
            stats.interrupted_stripes += 1;
            stats.degraded_stripes -= 1;
        } else {
            for &slot in slots {
                array.note_checksum_error(slot);
            }
        }
    }
    let (_, _, ckpt_lsn) = array.persisted.locked().checkpoint;
    if ckpt_lsn >= expected_lsn {
        // The superblocks name a checkpoint the devices can no longer give back, and the log
        // does not reach its LSN either.
        let (segment_id, offset_in_segment_bytes, detail) =
            ended
                .clone()
                .unwrap_or((ckpt_first, 0, "the log is unreadable".to_string()));
        return Err(Error::DataLost {
            segment_id,
            offset_in_segment_bytes,
            good: 0,
            width: array.w(),
            needed: array.k(),
            detail: format!(
                "the index checkpoint at LSN {ckpt_lsn} is unreadable and the log breaks off at LSN {expected_lsn}: {detail}"
            ),
        });
    }
    // (Journal entries vouch only here: a stripe an interrupted writer left short of chunks
    // may hold journaled records, and those chunks are no device's fault.)
    let max_committed = max_committed.max(journal_vouches);
    if max_committed >= expected_lsn {
        // A stripe or journal entry written later says everything up to max_committed had
        // been acknowledged, yet the log breaks off before it: lost data, not a torn tail.
        let (segment_id, offset_in_segment_bytes, detail) =
            ended.unwrap_or((0, 0, "log ends early".to_string()));
        return Err(Error::DataLost {
            segment_id,
            offset_in_segment_bytes,
            good: 0,
            width: array.w(),
            needed: array.k(),
            detail: format!(
                "acknowledged records up to LSN {max_committed} existed but the log breaks off at LSN {expected_lsn}: {detail}"
            ),
        });
    }
    // Log segments the checkpoint covers that no entry points into hold nothing live (the
    // cleaner moved their records, or they were all overwritten). They are freed once the
    // engine knows the backup horizon, which lives in the index: those holding history it
    // needs stay (`Engine::open`). Until then their device segments count as used.
    // A resume segment replayed from its middle holds records the checkpoint covers too.
    if let Some(r) = resume {
        let m = segment_max_lsn.entry(r.segment_id).or_insert(covered_lsn);
        *m = (*m).max(covered_lsn);
    }
    let log_ids: Vec<u64> = segments
        .values()
        .filter(|s| s.kind == SegmentKind::Log)
        .map(|s| s.id)
        .collect();
    covered.retain(|id| segments.contains_key(id));
    for (id, bound) in covered_max_lsn(&covered, &log_ids, &first_lsn, covered_lsn) {
        segment_max_lsn.insert(id, bound);
    }
    Ok(Recovered {
        segment_max_lsn,
        segments,
        free,
        index,
        cursor,
        next_lsn: expected_lsn,
        next_segment_id,
        stats,
        discarded,
        repairs,
        journal,
    })
}

/// The valid sync journal entries of every present member's ring, by first LSN (format
/// version 2; none for version 1). Read before the log's segments: an entry says that
/// every LSN before its first was acknowledged when it was written, so entries read first
/// never vouch for more than the segments read after them can show (a read-only open
/// beside a writer).
fn read_journal(array: &Array) -> BTreeMap<u64, Vec<JournalEntry>> {
    let mut by_first: BTreeMap<u64, Vec<JournalEntry>> = BTreeMap::new();
    if array.sb.format_version < FORMAT_VERSION_JOURNAL {
        return by_first;
    }
    let ops: Vec<IoOp> = (0..array.n())
        .filter_map(|slot| array.device_of_slot(slot as u32))
        .map(|d| IoOp::read(d, JOURNAL_START_BYTES, JOURNAL_BYTES))
        .collect();
    for c in array.io.execute(ops) {
        if c.result.is_err() {
            continue;
        }
        for (_, e) in JournalEntry::scan_ring(&c.op.buf, array.record_format()) {
            if e.array_uuid == array.sb.array_uuid && e.write_epoch <= array.epoch() {
                by_first.entry(e.first_lsn).or_default().push(e);
            }
        }
    }
    by_first
}

/// Continues the log from the sync journal (docs/format.md, "Sync journal"): follows the
/// chain of the valid entries [`read_journal`] found from `expected_lsn`, never going down in epoch, preferring at each step the newest epoch.
/// Applies their records to the index (served from memory, see [`JOURNAL_REPLAY_SEQ`]).
fn replay_journal(
    fmt: RecordFormat,
    by_first: &BTreeMap<u64, Vec<JournalEntry>>,
    index: &mut Index,
    expected_lsn: &mut u64,
    mut last_epoch: u64,
    segment_id: u64,
) -> Result<Option<JournalReplay>> {
    let first_lsn = *expected_lsn;
    let mut buf: Vec<u8> = Vec::new();
    let mut entries = Vec::new();
    while let Some(best) = by_first.get(expected_lsn).and_then(|c| {
        c.iter()
            .filter(|e| e.write_epoch >= last_epoch)
            .max_by_key(|e| (e.write_epoch, e.last_lsn))
    }) {
        let start = buf.len();
        let mut records = StripeRecords::plain(fmt, best.first_lsn, &best.payload);
        while let Some(r) = records.next() {
            let r = r.map_err(|e| Error::Corrupt {
                device: "sync journal".into(),
                offset_bytes: records.position() as u64,
                what: "log record in a verified journal entry",
                source: e,
            })?;
            let (rec, pos) = (r.rec, r.offset);
            match rec.kind {
                RecordKind::Put | RecordKind::Moved => index.put(
                    rec.table,
                    rec.key,
                    IndexEntry {
                        lsn: rec.lsn,
                        value_len: rec.value.len() as u32,
                        place: Place::Pending {
                            stripe_seq: JOURNAL_REPLAY_SEQ,
                            record_offset: (start + pos) as u32,
                            segment_id,
                        },
                    },
                ),
                RecordKind::Delete => index.delete(rec.table, rec.key),
            }
        }
        buf.extend_from_slice(&best.payload);
        entries.push(start..buf.len());
        *expected_lsn = best.last_lsn + 1;
        last_epoch = best.write_epoch;
    }
    if entries.is_empty() {
        return Ok(None);
    }
    Ok(Some(JournalReplay {
        buf: Arc::new(buf),
        entries,
        first_lsn,
        last_lsn: *expected_lsn - 1,
    }))
}

/// Bounds on the highest LSN of the log segments a checkpoint covers, without reading them:
/// LSNs grow along the log in segment-id order, so every record of covered segment X lies
/// before the first stripe of the next log segment still on the array (`log_ids`, sorted),
/// and at or below the checkpoint's LSN. The bound also counts the records of segments
/// freed between X and that next one; those were freed only when they held nothing after
/// the backup horizon in force (or none was registered, and a later horizon lies above all
/// of them), so X's bound is above any horizon (or any LSN an incremental starts from) if
/// and only if X itself holds a record after it (design.md, "History for incremental
/// backups"). Where the next segment's first chunk headers were unreadable, the
/// checkpoint's LSN is the bound.
fn covered_max_lsn(
    covered: &[u64],
    log_ids: &[u64],
    first_lsn: &BTreeMap<u64, u64>,
    covered_lsn: u64,
) -> Vec<(u64, u64)> {
    covered
        .iter()
        .map(|&id| {
            let next = log_ids.iter().find(|&&n| n > id);
            let bound = next
                .and_then(|n| first_lsn.get(n))
                .map_or(covered_lsn, |f| f.saturating_sub(1).min(covered_lsn));
            (id, bound)
        })
        .collect()
}

/// The members of a replayed segment, read in `bufs`, whose segment header is missing or
/// wrong, with a valid header of the segment to rewrite them from.
fn missing_headers(
    array: &Array,
    seg: &SegmentInfo,
    bufs: &[Option<AlignedBuf>],
) -> Option<(SegmentHeader, Vec<usize>)> {
    let valid = |p: usize| {
        let b = bufs[p].as_ref()?;
        let h = SegmentHeader::decode(&b[..SEGMENT_HEADER_SIZE_BYTES]).ok()?;
        let ok = h.array_uuid == array.sb.array_uuid
            && h.segment_id == seg.id
            && h.position as usize == p
            && h.members == seg.members;
        ok.then_some(h)
    };
    let template = (0..seg.members.len()).find_map(valid)?;
    let missing: Vec<usize> = (0..seg.members.len())
        .filter(|&p| bufs[p].is_some() && array.device_of_slot(seg.members[p].0).is_some())
        .filter(|&p| valid(p).is_none())
        .collect();
    (!missing.is_empty()).then_some((template, missing))
}
