//! Index checkpoints: the whole index, written as RS-coded stripes into checkpoint segments
//! periodically (by the cleaner thread) and on clean close, so that reopen replays only the
//! log written after it, and so that the log segments before it can be cleaned and freed.
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
//! - A checkpoint that cannot be read or verified is ignored: recovery replays the whole log
//!   (which, once segments were cleaned, no longer reaches the checkpoint's LSN: recovery then
//!   reports data loss instead of opening with records missing).
//! - Log segments before the checkpoint's resume segment are needed only through the index
//!   entries that point into them; one with none is freed (at the checkpoint, or at open).

use crate::error::{Error, Result};
use crate::format::checkpoint::{ImageWriter, ResumePoint};
use crate::format::*;
use crate::index::Slice;
use crate::log::state::{OpenStripe, SealedStripe, WriterState};
use crate::segments::SegmentInfo;
use crate::shared::Shared;
use crate::space::free_dead_segments;
use crate::space::mailbox::CheckpointSize;
use crate::sync::{MutexExt, RwLockExt};
use ectable_devices::IoOp;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A consistent image of the index, ready to be written: cut into the data of its stripes.
pub(crate) struct Snapshot {
    pieces: Vec<Vec<u8>>,
    /// The image's size.
    bytes: usize,
    keys: u64,
    names: u64,
    lsn: u64,
    resume: ResumePoint,
}

/// Keys the encoder reads per turn of the index lock (a few milliseconds of encoding): the
/// longest a writer waits for a checkpoint being taken.
const IMAGE_SLICE_KEYS: usize = 16_384;

/// An image begun: the LSN it holds the index as of, and where the log goes on after it.
struct Begun {
    lsn: u64,
    resume: ResumePoint,
}

/// Begins the image of a quiesced writer's index (nothing open, sealed or pending,
/// everything durable): from here on the index keeps the pre-images the image needs
/// (index/capture.rs). None if the writer is not quiesced, nothing was ever written, or
/// nothing since the checkpoint in force (at LSN `current`).
fn begin(shared: &Shared, st: &WriterState, current: u64) -> Option<Begun> {
    let cursor = st.cursor()?.clone();
    let lsn = st.acked_lsn();
    if lsn == 0 || lsn == current || !st.is_quiet() {
        return None;
    }
    if !shared.index.write_locked().begin_image() {
        // The image gate lets one image be taken at a time.
        tracing::error!("index checkpoint not written: another image is being taken");
        return None;
    }
    Some(Begun {
        lsn,
        resume: ResumePoint {
            segment_id: cursor.segment.id,
            offset: cursor.offset,
            ordinal: cursor.ordinal,
        },
    })
}

/// Takes the image begun, a slice of the index at a time with the index lock let go
/// between slices (writers go on meanwhile), cut into the data of its stripes. The index
/// stops keeping pre-images when this returns, whatever happened.
fn take(shared: &Shared, begun: Begun) -> Option<Snapshot> {
    struct End<'a>(&'a Shared);
    impl Drop for End<'_> {
        fn drop(&mut self) {
            let kept = self.0.index.read_locked().end_image();
            self.0
                .counters
                .checkpoint_pre_images
                .fetch_add(kept, Ordering::Relaxed);
        }
    }
    let _end = End(shared);
    let Begun { lsn, resume } = begun;
    let per_stripe = shared.array.layout.stripe_payload();
    let mut out = ImageWriter::new(lsn, resume, per_stripe);
    let complete = loop {
        let slice = shared
            .index
            .read_locked()
            .image_slice(&mut out, IMAGE_SLICE_KEYS);
        match slice {
            Some(Slice::More) => crate::sync::let_writers_in(),
            Some(Slice::Done) => break true,
            None => break false,
        }
    };
    let (keys, names) = (out.entries(), out.name_bytes());
    let pieces = if complete { out.finish() } else { None };
    let Some(pieces) = pieces else {
        // Quiesced, so every entry of the image is on disk, in order, as of its LSN: the
        // writer refused one all the same (a bug). Say so rather than skip checkpoints
        // without a word.
        tracing::error!(
            "index checkpoint not written: an index entry is not as the checkpoint format \
             requires (not on disk, off its alignment, newer than the image, or out of order)"
        );
        return None;
    };
    Some(Snapshot {
        bytes: pieces.iter().map(Vec::len).sum(),
        pieces,
        keys,
        names,
        lsn,
        resume,
    })
}

/// Takes an index checkpoint while the engine runs: holds appends back until every
/// appended record is durable and on disk in the index, begins the image there, lets
/// appends go on, takes the image a slice at a time, then writes it ([`store`]). One
/// checkpoint is taken and written at a time, so they are stored in LSN order. Returns the
/// checkpoint's LSN, or None when there was nothing new to checkpoint.
pub(crate) fn write_online(shared: &Shared) -> Result<Option<u64>> {
    // Nothing is written in a session before its start: a new epoch, the segments beyond the
    // end of the log invalidated, the replayed log's missing chunks repaired.
    shared.ensure_writing_started()?;
    let _one = shared.image_gate.locked();
    // Checkpoints are stored under the gate only, so the one in force stays while it is held.
    let (_, _, current) = shared.array.persisted.locked().checkpoint;
    let Some(begun) = shared.quiesced(|st| begin(shared, st, current))? else {
        return Ok(None);
    };
    match take(shared, begun) {
        Some(snap) => store(shared, snap),
        None => Ok(None),
    }
}

/// Writes a checkpoint of the (quiesced) engine at clean close.
pub(crate) fn write_at_close(shared: &Shared) -> Result<Option<u64>> {
    let _one = shared.image_gate.locked();
    let begun = {
        let st = shared.lock_state();
        if !st.writing_started() || st.has_failed() {
            return Ok(None);
        }
        begin(shared, &st, 0)
    };
    match begun.and_then(|b| take(shared, b)) {
        Some(snap) => store(shared, snap),
        None => Ok(None),
    }
}

/// Writes a snapshot into new checkpoint segments, points the superblocks at it, and frees
/// the previous checkpoint's segments and the log segments the new one leaves dead.
fn store(shared: &Shared, snap: Snapshot) -> Result<Option<u64>> {
    let array = &shared.array;
    let Snapshot {
        pieces,
        bytes,
        keys,
        names,
        lsn,
        resume,
    } = snap;
    let layout = &array.layout;
    let (k, c) = (layout.k(), layout.chunk_bytes());
    let stripes_per_segment = layout.stripes_per_segment();
    let segment_count = layout.segments_for(bytes);
    let online: Vec<bool> = (0..array.n())
        .map(|slot| array.device_of_slot(slot as u32).is_some())
        .collect();
    let segs: Vec<Arc<SegmentInfo>> = {
        let mut st = shared.lock_state();
        let first_id = st.next_segment_id();
        let mut segs: Vec<Arc<SegmentInfo>> = Vec::new();
        for i in 0..segment_count {
            let id = first_id + i as u64;
            let Some(members) =
                st.free_mut()
                    .allocate(id, array.w(), &online, shared.min_write_shards)
            else {
                for seg in &segs {
                    for (slot, dseg) in &seg.members {
                        st.free_mut().release(*slot, *dseg);
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
        st.take_segment_ids(segment_count as u64);
        segs
    };
    let release = |shared: &Shared| {
        let mut st = shared.lock_state();
        for seg in &segs {
            for (slot, dseg) in &seg.members {
                st.free_mut().release(*slot, *dseg);
            }
        }
    };
    // Stripe i holds the i-th piece of the image.
    let stripe = |i: usize, piece: Vec<u8>| {
        let seg = &segs[i / stripes_per_segment];
        let ordinal = (i % stripes_per_segment) as u32;
        let per_chunk = piece.len().div_ceil(k);
        SealedStripe {
            stripe: OpenStripe {
                segment: seg.clone(),
                new_segment: ordinal == 0,
                offset: layout.full_stripe_offset(ordinal as usize) as u32,
                ordinal,
                max_height: c as u32,
                buf: Arc::new(piece),
                seq: 0,
                first_lsn: lsn,
                last_lsn: lsn,
                records: Vec::new(),
                packer: None,
                prev_table: None,
                carried: None,
            },
            height: Layout::chunk_height_for(per_chunk) as u32,
            placement: None,
            for_sync: false,
            continues: false,
        }
    };
    let mut devices = Vec::new();
    let mut written = vec![0usize; pieces.len()];
    // Written a batch at a time, each batch's stripes made of their pieces (not copied) just
    // before it is encoded, and dropped once written: the image is held once, and less of it
    // as the batches go out.
    let per_batch = shared.max_batch_stripes.max(1);
    let mut pieces = pieces.into_iter().enumerate().peekable();
    let mut base = 0;
    while pieces.peek().is_some() {
        let batch: Vec<SealedStripe> = pieces
            .by_ref()
            .take(per_batch)
            .map(|(i, piece)| stripe(i, piece))
            .collect();
        let (ops, meta) = match shared.encode_batch(&batch, lsn - 1) {
            Ok(x) => x,
            Err(e) => {
                release(shared);
                return Err(e);
            }
        };
        for (comp, (si, _)) in array.io.execute(ops).into_iter().zip(meta) {
            if comp.result.is_ok() {
                if si != usize::MAX {
                    written[base + si] += 1;
                }
                if !devices.contains(&comp.op.device_index) {
                    devices.push(comp.op.device_index);
                }
            }
        }
        base += batch.len();
    }
    let flushed = array
        .io
        .execute(devices.into_iter().map(IoOp::flush).collect())
        .iter()
        .all(|c| c.result.is_ok());
    if !flushed || written.iter().any(|w| *w < shared.min_write_shards) {
        // As a log stripe would be: the checkpoint needs the chunks a commit needs.
        release(shared);
        return Ok(None);
    }
    if let Err(e) = array.persist_checkpoint((segs[0].id, segment_count as u32, lsn)) {
        release(shared);
        return Err(e);
    }
    {
        let mut map = shared.segments.write_locked();
        for seg in &segs {
            map.insert(seg.id, seg.clone());
        }
    }
    // The previous checkpoint's segments, and the log segments this one leaves dead.
    shared.cleaner.checkpoint_written(
        lsn,
        (resume.segment_id, resume.offset),
        shared
            .counters
            .payload_bytes_written
            .load(Ordering::Relaxed),
        CheckpointSize {
            bytes: bytes as u64,
            keys,
            names,
        },
    );
    free_dead_segments(shared, resume.segment_id);
    Ok(Some(lsn))
}
