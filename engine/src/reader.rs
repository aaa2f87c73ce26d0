//! Read-only engines beside another process's writer.
//!
//! A read-only open takes no lock (docs/operations.md, "Reading while another process
//! writes"): it reads the superblocks, loads the checkpoint they name and replays the log,
//! while the writer may go on appending, checkpointing, and freeing and reusing segments.
//! What it read can then stop matching the devices: a checkpoint's segments freed after a
//! newer checkpoint, a log segment the cleaner emptied and reused. The reads that meet it
//! fail their checks (every byte is verified against the index's crc, LSN, table and key, and
//! every chunk's identity), so no wrong byte is returned; but the failure looks like lost
//! data. Before a read-only engine reports `DataLost` (or an inconsistency of the log), it
//! looks for evidence that the array moved on since it was opened:
//!
//! - a superblock of the array with a newer epoch, or naming another checkpoint, than the
//!   one the engine opened at (a writer starts a session, writes a checkpoint or changes a
//!   device state only with a new epoch, written before it frees anything);
//! - a segment header, where the failing segment's members lie, that names a segment of the
//!   same array created after the open (an id at or beyond the next id the open found): the
//!   cleaner frees segments without a new epoch, and a reused segment's header is written
//!   with its first stripe. (An older id there could be a misdirected write: not evidence.)
//!
//! With such evidence the error is `Error::ArrayChanged` (retryable: a new open sees the new
//! state); without it the original error stands, so real data loss on a quiet array is never
//! reported as a change.

use crate::array::{read_superblocks, Array};
use crate::error::Error;
use crate::format::{uuid_string, SegmentHeader, SEGMENT_HEADER_SIZE_BYTES};
use crate::segments::SegmentInfo;
use crate::sync::MutexExt;
use ectable_devices::IoOp;

/// How many times a read-only open starts over when the array changed under it.
pub(crate) const READ_ONLY_OPEN_ATTEMPTS: usize = 5;

/// A reused segment's header and its chunks are written in one batch, in no set order: when
/// nothing shows yet, the evidence is looked for once more after this pause.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(20);

/// Whether `e` is what a reader meets when the array changes under it.
pub(crate) fn may_be_a_change(e: &Error) -> bool {
    matches!(e, Error::DataLost { .. } | Error::Corrupt { .. })
}

/// Evidence that another process changed the array since `array` was opened (read-only), as
/// a sentence; `seg` is the segment a failing read was in, if any, with the next segment id
/// as of the open.
pub(crate) fn changed_since_open(
    array: &Array,
    seg: Option<(&SegmentInfo, u64)>,
) -> Option<String> {
    twice(|| look(array, seg))
}

/// `look()`, and when it finds nothing, once more after [`SETTLE`].
fn twice(look: impl Fn() -> Option<String>) -> Option<String> {
    look().or_else(|| {
        std::thread::sleep(SETTLE);
        look()
    })
}

/// Evidence that a writer freed `seg` and reused its place since this read-only `array` was
/// opened (`next_at_open`: the next segment id as of the open), looked for twice like
/// [`changed_since_open`]. Unlike a moved superblock, which any checkpoint causes, this says
/// that what was read of `seg` may be the new use's.
pub(crate) fn reused_since_open(
    array: &Array,
    seg: &SegmentInfo,
    next_at_open: u64,
) -> Option<String> {
    twice(|| segment_reused(array, seg, next_at_open))
}

fn look(array: &Array, seg: Option<(&SegmentInfo, u64)>) -> Option<String> {
    superblocks_moved(array).or_else(|| seg.and_then(|(s, next)| segment_reused(array, s, next)))
}

/// A superblock of this array newer than the state the engine opened at.
fn superblocks_moved(array: &Array) -> Option<String> {
    let (epoch, checkpoint) = {
        let p = array.persisted.locked();
        (p.epoch, p.checkpoint)
    };
    for (d, r) in read_superblocks(array.io.as_ref()).into_iter().enumerate() {
        let Ok(Ok(sb)) = r else { continue };
        if sb.array_uuid != array.sb.array_uuid {
            continue;
        }
        let ckpt = (
            sb.checkpoint_segment_id,
            sb.checkpoint_segment_count,
            sb.checkpoint_lsn,
        );
        if sb.epoch > epoch || (sb.epoch == epoch && ckpt != checkpoint) {
            return Some(format!(
                "{} is at epoch {} (checkpoint LSN {}), this reader opened the array at epoch {epoch} (checkpoint LSN {})",
                array.io.devices()[d].name(),
                sb.epoch,
                sb.checkpoint_lsn,
                checkpoint.2
            ));
        }
    }
    None
}

/// A member place of `seg` whose segment header now names a segment of this array created
/// since the open (id `next_at_open` or later).
fn segment_reused(array: &Array, seg: &SegmentInfo, next_at_open: u64) -> Option<String> {
    let mut ops = Vec::new();
    for (slot, dseg) in &seg.members {
        if let Some(d) = array.present_device(*slot as usize) {
            ops.push(IoOp::read(
                d,
                array.device_segment_offset(*dseg),
                SEGMENT_HEADER_SIZE_BYTES,
            ));
        }
    }
    for c in array.io.execute(ops) {
        if c.result.is_err() {
            continue;
        }
        let Ok(h) = SegmentHeader::decode(&c.op.buf) else {
            continue;
        };
        if h.array_uuid == array.sb.array_uuid && h.segment_id >= next_at_open {
            return Some(format!(
                "segment {} was freed and reused (its place on {} now holds segment {} of array {})",
                seg.id,
                array.io.devices()[c.op.device_index].name(),
                h.segment_id,
                uuid_string(&h.array_uuid)
            ));
        }
    }
    None
}
