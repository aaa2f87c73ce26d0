//! Replacing a device, rebuilding its chunks, and scrubbing.
//!
//! Invariants:
//! - Rebuild writes only chunks reconstructed from at least k verified chunks and checked
//!   against the stripe's crc table (damage never spreads).
//! - Rebuild progress is persisted in the superblocks after each segment, so a rebuild
//!   interrupted by a crash resumes at the segment where it stopped.
//! - A replaced device is no longer a member: its device id leaves the superblocks before
//!   anything is rebuilt, so if it comes back it is refused.
//! - Only live data is rebuilt: segments in use, and in them the stripes of the log.

use crate::array::{Array, BadSuperblock};
use crate::error::{Error, Result};
use crate::format::*;
use crate::log::segment_read::{
    finish_segment_read, read_ahead_segments, read_segment, submit_member_reads, BufPool,
};
use crate::log::stripe::{parity_agrees, position_of, rebuild_chunks, walk_stripes, StripeOutcome};
use crate::segments::SegmentInfo;
use crate::shared::Shared;
use crate::sync::{MutexExt, RwLockExt};
use ectable_devices::{AlignedBuf, IoBatch, IoOp};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of rebuilt chunks written before they are flushed and read back together (and the
/// rebuild's cursor may move past them): the writes overlap the next segments' decoding.
const VERIFY_BYTES: u64 = 32 << 20;

/// How fast rebuild and scrub may go.
#[derive(Debug, Clone, Default)]
pub struct RebuildOptions {
    /// Bytes read per second across all devices (0: unlimited).
    pub rate_limit_bytes_per_sec: u64,
    /// Checked between segments: when set, a rebuild stops (resumable) and returns, and a
    /// scrub stops and returns what it checked (`Progress::interrupted`; not recorded as
    /// the last scrub).
    pub cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl RebuildOptions {
    /// Whether `cancel` is set.
    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }
}

/// Progress of a rebuild or scrub.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Segments walked so far.
    pub segments_done: usize,
    /// Segments to walk.
    pub segments_total: usize,
    /// Bytes read from the devices so far.
    pub bytes_scanned: u64,
    /// Bytes of the segments to walk on the members present (a bound: a rebuild reads
    /// only k members where it can).
    pub bytes_total: u64,
    /// Chunks reconstructed and written (for a scrub: chunks repaired).
    pub chunks_rebuilt: u64,
    /// Bytes written by those repairs.
    pub bytes_rebuilt: u64,
    /// Stripes holding live records that could not be rebuilt (more than m chunks bad).
    pub unrecoverable: Vec<String>,
    /// The rebuild was cancelled before it finished; it resumes where it stopped.
    pub interrupted: bool,
}

impl Progress {
    /// The sum of two runs' progress (the slots of one `rebuild` call, one after another).
    pub fn plus(&self, o: &Progress) -> Progress {
        Progress {
            segments_done: self.segments_done + o.segments_done,
            segments_total: self.segments_total + o.segments_total,
            bytes_scanned: self.bytes_scanned + o.bytes_scanned,
            bytes_total: self.bytes_total + o.bytes_total,
            chunks_rebuilt: self.chunks_rebuilt + o.chunks_rebuilt,
            bytes_rebuilt: self.bytes_rebuilt + o.bytes_rebuilt,
            unrecoverable: self
                .unrecoverable
                .iter()
                .chain(&o.unrecoverable)
                .cloned()
                .collect(),
            interrupted: self.interrupted || o.interrupted,
        }
    }
}

/// What a scrub found.
#[derive(Debug, Clone, Default)]
pub struct ScrubReport {
    /// How far the walk got, and what it rewrote.
    pub progress: Progress,
    /// Stripes checked: every stripe read whole enough to verify, and the unreadable ones
    /// that hold live data (those are also in `progress.unrecoverable`).
    pub stripes_checked: u64,
    /// Per slot: chunks that were unreadable, failed identity or crc.
    pub bad_chunks_per_slot: Vec<u64>,
    /// Per slot: chunks not checked because their member was not in service (missing,
    /// failed before or during the scrub): not findings about the data, and nothing a
    /// repair could rewrite there.
    pub unchecked_chunks_per_slot: Vec<u64>,
    /// Stripes whose chunks all passed their checks but whose parity does not match the data.
    pub parity_mismatches: u64,
    /// Bad chunks rewritten (only with repair).
    pub chunks_repaired: u64,
    /// Per slot: superblock copies (of two) that are unreadable, not this member's, or of
    /// an older epoch than the array's. Both bad means the next open will not recognise
    /// the member.
    pub bad_superblocks_per_slot: Vec<u64>,
    /// Every bad superblock copy found (members and hot spares), in words.
    pub bad_superblocks: Vec<String>,
    /// Per slot: segment headers of live segments that do not decode as this member's
    /// header of the segment (an open finds a segment by any one of its w copies, so bad
    /// ones cost nothing at once, but left alone they pile up member by member).
    pub bad_segment_headers_per_slot: Vec<u64>,
    /// Bad segment headers rewritten (only with repair).
    pub segment_headers_repaired: u64,
    /// Bad superblock copies that read back good after the repair rewrote the superblocks
    /// (only with repair; a copy still bad after it is listed again in `bad_superblocks`).
    pub superblocks_repaired: u64,
    /// Read-only scrub beside a writer: segments whose findings were dropped because the
    /// writer freed the segment and reused its place since this engine opened the array
    /// (what was read may be the new use's). One sentence each, naming the evidence.
    pub reused_by_writer: Vec<String>,
}

impl ScrubReport {
    /// Everything the findings count, for comparing before and after one segment.
    fn findings(&self) -> (u64, u64, usize, u64) {
        (
            self.bad_chunks_per_slot.iter().sum(),
            self.bad_segment_headers_per_slot.iter().sum(),
            self.progress.unrecoverable.len(),
            self.parity_mismatches,
        )
    }
}

/// Whether `buf`, read from the start of member `p`'s device segment of `seg`, begins with
/// that member's header of the segment (any write epoch up to the array's; a read-only
/// engine takes newer ones as a writer's, which rewrites headers with its current epoch).
fn holds_header(a: &Array, seg: &SegmentInfo, p: usize, buf: &[u8]) -> bool {
    SegmentHeader::decode(&buf[..SEGMENT_HEADER_SIZE_BYTES.min(buf.len())]).is_ok_and(|h| {
        (a.read_only || h.write_epoch <= a.write_epoch.load(Ordering::SeqCst))
            && SegmentHeader {
                write_epoch: 0,
                ..h
            } == seg.header(a.sb.array_uuid, a.k(), 0, p)
    })
}

/// Walks the stripes of a segment held in `bufs`, stepping over unreadable stripes by their
/// headers' height, until the segment ends or `end` (offset) is reached.
fn walk_segment(
    array: &Array,
    seg: &SegmentInfo,
    bufs: &[Option<AlignedBuf>],
    end: Option<u32>,
    mut f: impl FnMut(u32, u32, &[Option<&[u8]>], StripeOutcome),
) -> Option<(u32, u32)> {
    let limit = end
        .map_or(usize::MAX, |e| e as usize)
        .min(array.segment_size());
    let start = (SEGMENT_HEADER_SIZE_BYTES, 0);
    let (offset, ordinal) = walk_stripes(
        array,
        seg,
        bufs,
        start,
        limit,
        true,
        |o, t, chunks, outcome| {
            f(o, t, chunks, outcome);
            true
        },
    );
    // Stopped before the limit: no chunk named the next place (or the walk may have been
    // short, see `any_chunk_at`).
    (offset as usize + BLOCK_BYTES <= limit).then_some((offset, ordinal))
}

/// A rebuild reads back the first block of every chunk it wrote, and every this many chunks
/// one in full.
const READ_BACK_FULL_EVERY: usize = 32;

/// Bytes of a segment's members a walk reads: all of them, or, for the segment the writer
/// is filling, up to where it will write next and one chunk beyond (the walk looks at a
/// chunk's worth at every stripe), not the unused tail.
fn walk_read_len(array: &Array, seg: &SegmentInfo, frontier: Option<(u64, u32)>) -> usize {
    let s = array.segment_size();
    match frontier {
        Some((id, offset)) if id == seg.id => {
            ((offset as usize).next_multiple_of(BLOCK_BYTES) + array.chunk_size()).min(s)
        }
        _ => s,
    }
}

/// Whether any present member holds a chunk header naming (seg, offset, ordinal): a walk
/// over a subset of the members that stopped there may have stopped too early.
fn any_chunk_at(array: &Array, seg: &SegmentInfo, offset: u32, ordinal: u32) -> bool {
    let w = array.w();
    let ops: Vec<IoOp> = (0..w)
        .filter_map(|j| {
            let (_, place) = crate::log::stripe::chunk_place(array, seg, offset, ordinal, j);
            place.map(|(d, off)| IoOp::read(d, off, BLOCK_BYTES))
        })
        .collect();
    array.io.execute(ops).into_iter().any(|c| {
        c.result.is_ok()
            && ChunkHeader::decode(&c.op.buf).is_ok_and(|h| {
                h.array_uuid == array.sb.array_uuid
                    && h.segment_id == seg.id
                    && h.offset_in_segment_bytes == offset
                    && h.ordinal == ordinal
            })
    })
}

struct RateLimiter {
    start: Instant,
    bytes: u64,
    rate: u64,
}

impl RateLimiter {
    fn account(&mut self, bytes: u64) {
        self.bytes += bytes;
        if self.rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

/// What the engine holds a device's storage as ([`crate::Engine::holding`]): refusing it
/// as a new member or spare names what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    /// The member of this slot (in service, failed or stale).
    Member {
        /// Its slot.
        slot: usize,
        /// The name the engine has it under.
        name: String,
    },
    /// A hot spare.
    Spare {
        /// The name the engine has it under.
        name: String,
    },
    /// Opened with the array but neither (a device given that holds no member).
    Other {
        /// The name the engine has it under.
        name: String,
    },
}

/// What [`crate::Engine::online`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Online {
    /// The member's slot.
    pub slot: usize,
    /// The device now in the slot, by name.
    pub device: String,
    /// The slot's state before: "FAULTED" or "REMOVED" (brought back now), "STALE" (in
    /// service, its resync pending: nothing changed) or "ONLINE" (in service and in sync:
    /// nothing to do).
    pub was: &'static str,
    /// Where its resync starts (None: in sync). [`crate::Engine::rebuild`] runs it.
    pub resync_from: Option<u64>,
}

impl Shared {
    pub(crate) fn live_segments(&self) -> Vec<Arc<SegmentInfo>> {
        let map = self.segments.read_locked();
        let mut v: Vec<Arc<SegmentInfo>> = map.values().cloned().collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// (segment id, offset) of every stripe the index points into: stripes holding live
    /// records (and the tail's stripe of a record that continues in the next one).
    pub(crate) fn live_stripes(&self) -> HashSet<(u64, u32)> {
        let k = self.array.k();
        let index = self.index.read_locked();
        let mut live = HashSet::new();
        for e in index.tables.values().flat_map(|t| t.values()) {
            if let crate::index::Place::Disk(loc) = e.place {
                live.insert((loc.segment_id, loc.offset_in_segment_bytes));
                if let Some((_, tail)) = crate::log::stripe::continued_parts(&loc, k) {
                    live.insert((tail.segment_id, tail.offset_in_segment_bytes));
                }
            }
        }
        live
    }

    /// Where the writer will put its next stripe: nothing at or beyond it is live.
    pub(crate) fn write_frontier(&self) -> Option<(u64, u32)> {
        let st = self.lock_state();
        st.cursor().map(|c| (c.segment.id, c.offset))
    }

    /// Slot of the device at `path` in this array, if it is a present member.
    pub fn slot_of_path(&self, path: &str) -> Option<usize> {
        let a = &self.array;
        (0..a.n()).find(|&s| {
            a.present_device(s)
                .is_some_and(|d| a.io.devices()[d].name() == path)
        })
    }

    /// Slots that are missing or failed.
    pub fn lost_slots(&self) -> Vec<usize> {
        let a = &self.array;
        (0..a.n())
            .filter(|&s| a.device_of_slot(s as u32).is_none())
            .collect()
    }

    /// A rebuild in progress: (slot, next segment id).
    pub fn rebuild_in_progress(&self) -> Option<(usize, u64)> {
        let p = self.array.persisted.locked();
        p.rebuild.map(|(s, n)| (s as usize, n))
    }

    /// Makes the device with engine index `new_device_index` (opened with the array, holding
    /// no valid superblock) the member of `slot`, in place of the device that was there,
    /// and records a rebuild of that slot as in progress. Call [`Engine::rebuild`] next.
    pub fn replace(&self, slot: usize, new_device_index: usize) -> Result<()> {
        let _membership = self.membership.locked();
        self.replace_locked(slot, new_device_index)
    }

    /// As [`Shared::replace`], only while `slot` is still lost (failed or missing): the
    /// monitor's automatic replacement, which must not replace a member an operator
    /// brought back meanwhile. Returns whether it replaced.
    pub fn replace_if_lost(&self, slot: usize, new_device_index: usize) -> Result<bool> {
        let _membership = self.membership.locked();
        if !self.lost_slots().contains(&slot) {
            return Ok(false);
        }
        self.replace_locked(slot, new_device_index)?;
        Ok(true)
    }

    fn replace_locked(&self, slot: usize, new_device_index: usize) -> Result<()> {
        let a = &self.array;
        if a.read_only {
            return Err(Error::ReadOnly);
        }
        if slot >= a.n() {
            return Err(Error::InvalidArgument(format!(
                "no slot {slot} in an array of {} devices",
                a.n()
            )));
        }
        let devices = a.io.devices();
        let Some(new_dev) = devices.get(new_device_index) else {
            return Err(Error::InvalidArgument(format!(
                "no device with index {new_device_index}"
            )));
        };
        let spare_slot = self.spare_entry(new_device_index);
        if a.slot_of_device(new_device_index).is_some() {
            return Err(Error::InvalidArgument(format!(
                "{} is already a member of the array",
                new_dev.name()
            )));
        }
        self.check_joining(new_dev.as_ref())?;
        if let Some((busy, _)) = self.rebuild_in_progress() {
            if busy != slot {
                return Err(Error::InvalidArgument(format!(
                    "slot {busy} is still being rebuilt; finish that rebuild first (ectable rebuild)"
                )));
            }
        }
        // The session starts before anything is written (docs/format.md, "Recovery" step
        // 6): what an interrupted writer left short of chunks in the replayed log is made
        // whole while the device being replaced still counts (a stripe replayed with k
        // chunks, one of them on it, could not be rebuilt after the swap).
        self.ensure_writing_started()?;
        // Make every record appended so far durable first: stripes encoded before the swap
        // leave this slot out, and rebuild must see them on the devices.
        self.sync_stripes()?;
        // Clear the new device's first megabyte (health block, stale superblocks).
        let zero = AlignedBuf::new(DATA_START_BYTES as usize);
        for c in a.io.execute(vec![IoOp::write(new_device_index, 0, zero)]) {
            c.result?;
        }
        let old_name = a.slot_name(slot);
        let old_device = a.present_device(slot);
        if let Some(ss) = spare_slot {
            // The spare leaves the spare list; the spares after it move down one entry.
            let mut spares = a.spares.locked();
            spares.retain(|(_, d)| *d != new_device_index);
            for (s, _) in spares.iter_mut() {
                if *s > ss {
                    *s -= 1;
                }
            }
        }
        a.set_slot_device(slot, new_device_index);
        a.fresh_slot(slot);
        let first_segment = self.live_segments().first().map_or(0, |s| s.id);
        a.persist(|p| {
            p.members[slot] = (new_uuid(), MemberState::Rebuilding);
            p.resync_from[slot] = 0;
            if let Some(ss) = spare_slot {
                p.members.remove(ss);
                p.resync_from.remove(ss);
            }
            p.rebuild = Some((slot as u32, first_segment));
        })?;
        {
            // The new member is recognised now; the old device, if it is still here, is not.
            let mut unrecognised = a.unrecognised.locked();
            unrecognised.retain(|(d, _)| *d != new_device_index);
            if let Some(old) = old_device {
                unrecognised.push((
                    old,
                    format!(
                        "replaced by {} (was slot {slot}); no longer a member",
                        new_dev.name()
                    ),
                ));
            }
        }
        // Nothing reads or writes the old device any more: give up its claim now rather
        // than at close, so that the operator can take it out, test it, wipe it or hand it
        // back as a spare while the array stays open (a running node would otherwise hold
        // it until it stops). A read still in flight on it fails and is rebuilt from parity.
        if let Some(old) = old_device {
            a.replaced.locked().push(old);
            devices[old].release();
        }
        tracing::info!(slot, old = %old_name, new = %new_dev.name(), "device replaced; rebuild pending");
        a.events.emit(
            slot,
            new_dev.name().to_string(),
            crate::events::DeviceEventKind::Replaced,
            format!("in place of {old_name}; rebuild pending"),
        );
        Ok(())
    }

    /// What the engine holds its device `index` as.
    fn holding_of(&self, index: usize) -> Holding {
        let a = &self.array;
        let name = a.io.devices()[index].name().to_string();
        if let Some(slot) = a.slot_of_device(index) {
            Holding::Member { slot, name }
        } else if a.spares.locked().iter().any(|(_, d)| *d == index) {
            Holding::Spare { name }
        } else {
            Holding::Other { name }
        }
    }

    /// What the engine holds `device`'s storage as (see [`Shared::held_device`]).
    pub fn holding(&self, device: &Arc<dyn ectable_devices::BlockDevice>) -> Option<Holding> {
        self.held_device(device).map(|d| self.holding_of(d))
    }

    /// The member or hot spare the engine holds under the name `path`, by name alone: also
    /// when the storage cannot be opened to compare (a member's file deleted while the
    /// engine keeps it open). Other devices of that name are not counted: one replaced out
    /// of the array keeps its name in the engine's list after its claim was given up.
    pub fn holding_path(&self, path: &str) -> Option<Holding> {
        let devices = self.array.io.devices();
        let held: Vec<Holding> = (0..devices.len())
            .filter(|&d| devices[d].name() == path)
            .map(|d| self.holding_of(d))
            .collect();
        held.iter()
            .find(|h| matches!(h, Holding::Member { .. }))
            .or_else(|| held.iter().find(|h| matches!(h, Holding::Spare { .. })))
            .cloned()
    }

    /// The engine index of the device it already holds on the same storage as `device`,
    /// under this or another name (or the very same handle: devices without an identity,
    /// in memory).
    pub fn held_device(&self, device: &Arc<dyn ectable_devices::BlockDevice>) -> Option<usize> {
        let id = device.identity();
        self.array.io.devices().iter().position(|d| {
            std::ptr::addr_eq(Arc::as_ptr(d), Arc::as_ptr(device))
                || match (d.identity(), &id) {
                    (Some(x), Some(y)) => x.same_storage(y),
                    _ => false,
                }
        })
    }

    /// Brings the member on `device` back into service (see [`crate::Engine::online`]).
    pub fn online(&self, device: Arc<dyn ectable_devices::BlockDevice>) -> Result<Online> {
        let _membership = self.membership.locked();
        let a = &self.array;
        if a.read_only {
            return Err(Error::ReadOnly);
        }
        let name = device.name().to_string();
        // Operations given up on it at the I/O deadline may still land, over whatever the
        // array writes there from now on: not before they are done. (Checked before its
        // superblock is read: that read would wait on the same device.)
        // On io_uring only the thread that sent a given-up write sees it end, at its next
        // I/O: one that sits idle keeps it counted after the device has long answered it. So
        // a count left is not the last word: a health-block probe through the engine (the
        // deadline applies) that the device answers now lets it back.
        let stuck = |index: usize| -> Result<()> {
            let n = a.io.stuck_writes(index);
            if n == 0 {
                return Ok(());
            }
            let probe = match a.slot_of_device(index) {
                Some(slot) => {
                    let sequence = u64::MAX - self.counters.probes.load(Ordering::Relaxed);
                    a.probe_health_blocks(&[(slot, index)], sequence)
                        .into_iter()
                        .next()
                        .map(|(_, why)| why)
                }
                None => Some("it holds no slot".to_string()),
            };
            match probe {
                None => {
                    tracing::info!(device = %name, "{n} write(s) given up at the I/O deadline not yet seen to end, but the device answers again; taken back (a write that lands late is caught as an old chunk)");
                    Ok(())
                }
                Some(why) => Err(Error::DeviceStillFails {
                    device: name.clone(),
                    why: format!(
                        "{n} write(s) sent to it before it stopped answering are still out \
                         (given up after the I/O deadline of {}) and it does not answer a \
                         probe ({why}): it could still carry them out over what the array \
                         writes there now; try again once it answers \
                         ('ectable status' counts them as stuck)",
                        a.io.io_timeout()
                            .map_or("none".to_string(), |t| format!("{} s", t.as_secs_f64()))
                    ),
                }),
            }
        };
        if let Some(h) = self.held_device(&device) {
            stuck(h)?;
        }
        // Whose device is it? Only this array's member of a data slot, by its device id.
        let own = match crate::array::newest_superblock_within(&device, a.io.io_timeout()) {
            Err(Error::Device(e)) => {
                return Err(Error::DeviceStillFails {
                    device: name,
                    why: format!("its superblocks cannot be read: {e}"),
                })
            }
            other => other?,
        };
        let own = own.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{name} holds no ectable superblock: it is not a member that came back; to \
                 rebuild a slot onto a blank device use replace"
            ))
        })?;
        if own.array_uuid != a.sb.array_uuid {
            return Err(Error::ForeignDevice {
                device: name,
                found: format!(
                    "array {}, while this array is {}",
                    uuid_string(&own.array_uuid),
                    uuid_string(&a.sb.array_uuid)
                ),
            });
        }
        let slot = own.device_slot as usize;
        if slot >= a.n() {
            return Err(Error::InvalidArgument(format!(
                "{name} is a hot spare of this array, not a member; a spare takes a slot with \
                 replace"
            )));
        }
        if a.persisted.locked().members.get(slot).map(|m| m.0) != Some(own.device_uuid) {
            return Err(Error::ReplacedDevice {
                device: name,
                array: uuid_string(&own.array_uuid),
                slot,
                was_spare: false,
                device_uuid: uuid_string(&own.device_uuid),
            });
        }
        // A write to the member that failed while it was out may still be on its way to
        // marking it failed (the rest of its stripe's writes in flight): every stripe sealed
        // so far is written first, so that the state below is the truth and "in service,
        // nothing to do" is never followed by the member failing a moment later.
        if let Some(why) = self.lock_state().failure() {
            return Err(Error::PreviousIo(why.to_string()));
        }
        self.sync_stripes()?;
        // The same for a health-block probe of the monitor in progress.
        drop(self.probe_round.locked());
        let state = |s: usize| {
            if a.is_failed(s) {
                "FAULTED"
            } else if a.present_device(s).is_none() {
                "REMOVED"
            } else if a.stale_from(s).is_some() {
                "STALE"
            } else {
                "ONLINE"
            }
        };
        let held = self.held_device(&device);
        if let Some(d) = a.present_device(slot) {
            stuck(d)?;
        }
        let was = state(slot);
        if let Some(h) = held {
            // Held under another slot or as a spare: a second name for a device in use. Held
            // in no role (given at open but unreadable then) it may take its slot now.
            let spare = a.spares.locked().iter().any(|(_, d)| *d == h);
            if a.present_device(slot) != Some(h) && (a.slot_of_device(h).is_some() || spare) {
                return Err(Error::DuplicateDevice {
                    first: a.io.devices()[h].name().to_string(),
                    second: name,
                });
            }
        }
        if (was == "ONLINE" || was == "STALE") && held.is_none() {
            // The slot is in service on another storage, and this one carries the same
            // member's superblock: a block copy, not the member.
            return Err(Error::SlotHeldTwice {
                slot,
                first: a.slot_name(slot),
                second: name,
                newer: None,
            });
        }
        if was == "ONLINE" || was == "STALE" {
            // In service already; a stale member is resynced by `rebuild`.
            return Ok(Online {
                slot,
                device: a.slot_name(slot),
                was,
                resync_from: a.stale_from(slot),
            });
        }
        if let Some(busy) = self
            .rebuild_in_progress()
            .map(|r| r.0)
            .filter(|&s| s == slot)
        {
            return Err(Error::InvalidArgument(format!(
                "slot {busy} is being rebuilt onto a replacement; finish that rebuild (ectable rebuild)"
            )));
        }
        // The handle it holds was opened at the size the storage had then: a member that was
        // failed for being too small and has its size back (a loop device grown again with
        // `losetup -c`) is written through that handle, so it takes the growth in first.
        let devices = a.io.devices();
        let own_handle = match held {
            Some(h) => {
                if let Some(now) = devices[h].take_growth() {
                    tracing::info!(slot, device = %name, capacity_bytes = now, "member's storage grew since it was opened");
                }
                &devices[h]
            }
            None => &device,
        };
        self.check_capacity(own_handle.as_ref())?;
        if let Some(why) = self.lock_state().failure() {
            return Err(Error::PreviousIo(why.to_string()));
        }
        // The session starts before anything is written (docs/format.md, "Recovery" step 6).
        self.ensure_writing_started()?;
        let index = match held {
            Some(h) => h,
            None => a.io.add_device(device)?,
        };
        // Does it work now? A health block written and read back, as the monitor probes.
        let sequence = u64::MAX - self.counters.probes.load(Ordering::Relaxed);
        if let Some((_, why)) = a
            .probe_health_blocks(&[(slot, index)], sequence)
            .into_iter()
            .next()
        {
            return Err(Error::DeviceStillFails {
                device: name,
                why: format!("health block probe: {why}; slot {slot} stays {was}"),
            });
        }
        // What it missed is recorded before it takes writes again: every segment from the
        // floor at which it left (the superblocks written while it was out hold the same).
        // A device the engine did not hold this session (missing at open, or back under
        // another name: it may be an older copy) is also taken at its own superblock's
        // word, as recovery takes a member behind the others.
        let mut floor = a.failed_floor(slot);
        if (held.is_none() || was == "REMOVED") && own.epoch < a.epoch() {
            floor = floor.min(crate::array::floor_by_own_superblock(&own));
        }
        a.persist(|p| {
            let e = &mut p.resync_from[slot];
            *e = if *e == 0 { floor } else { (*e).min(floor) };
        })?;
        a.bring_back(slot, index);
        a.unrecognised.locked().retain(|(d, _)| *d != index);
        a.persist(|p| p.members[slot].1 = MemberState::Online)?;
        let from = a.stale_from(slot);
        tracing::info!(slot, device = %name, was, resync_from = ?from, "member back in service; resync pending");
        a.events.emit(
            slot,
            name.clone(),
            crate::events::DeviceEventKind::Online,
            format!(
                "back in service (was {was}); resync from segment {} pending",
                from.unwrap_or(0)
            ),
        );
        Ok(Online {
            slot,
            device: name,
            was,
            resync_from: from,
        })
    }

    /// The member entry of the hot spare on engine device `device_index`, if it is one.
    fn spare_entry(&self, device_index: usize) -> Option<usize> {
        let spares = self.array.spares.locked();
        spares
            .iter()
            .find(|(_, d)| *d == device_index)
            .map(|(entry, _)| *entry)
    }

    /// A device joining the array as a new member or a hot spare must hold every device
    /// segment and take writes: one set read-only would fail at the first write (after the
    /// spare left the spare list, or the slot took it), so it is refused before any.
    fn check_joining(&self, dev: &dyn ectable_devices::BlockDevice) -> Result<()> {
        self.check_capacity(dev)?;
        match dev.write_refused() {
            Some(why) => Err(Error::DeviceRefusesWrites {
                device: dev.name().to_string(),
                why,
            }),
            None => Ok(()),
        }
    }

    /// A device joining the array must hold every device segment.
    fn check_capacity(&self, dev: &dyn ectable_devices::BlockDevice) -> Result<()> {
        let a = &self.array;
        let needed = a.member_bytes_needed();
        let cap = dev.geometry().capacity_bytes;
        if cap < needed {
            return Err(Error::DeviceTooSmall {
                device: dev.name().to_string(),
                capacity_bytes: cap,
                needed_bytes: needed,
            });
        }
        Ok(())
    }

    /// The member-list entry a new hot spare takes, and whether it is a missing spare's.
    /// A spare that failed this session (`Array::fail_spare`) gives up its entry; another
    /// missing spare (`Status::spares_missing`: left out of the devices given, or wiped while
    /// the array was closed) only when `in_place_of_missing`, else `SpareMissing`: it may
    /// only have been left out of this open, and taking its entry would make it a replaced
    /// device the next open refuses.
    pub(crate) fn spare_entry_for_new(&self, in_place_of_missing: bool) -> Result<(usize, bool)> {
        let a = &self.array;
        let missing = a.missing_spare_entries();
        let failed = a.spares_failed.locked().clone();
        if let Some(&e) = missing.iter().find(|e| failed.contains(e)) {
            return Ok((e, true));
        }
        match missing.first() {
            Some(&e) if in_place_of_missing => Ok((e, true)),
            Some(_) => {
                let p = a.persisted.locked();
                Err(Error::SpareMissing {
                    missing: missing
                        .iter()
                        .filter_map(|e| p.members.get(*e))
                        .map(|m| crate::format::uuid_string(&m.0))
                        .collect(),
                })
            }
            None => Ok((a.persisted.locked().members.len(), false)),
        }
    }

    /// Adds the device with engine index `device_index` (holding no valid superblock) as a
    /// hot spare, in the entry `spare_entry_for_new` gives: a missing spare's entry makes the
    /// missing one no longer a member.
    pub fn add_spare(&self, device_index: usize, in_place_of_missing: bool) -> Result<()> {
        let _membership = self.membership.locked();
        let a = &self.array;
        if a.read_only {
            return Err(Error::ReadOnly);
        }
        let Some(dev) = a.io.devices().get(device_index).cloned() else {
            return Err(Error::InvalidArgument(format!(
                "no device with index {device_index}"
            )));
        };
        let is_spare = self.spare_entry(device_index).is_some();
        if a.slot_of_device(device_index).is_some() || is_spare {
            return Err(Error::InvalidArgument(format!(
                "{} is already in the array",
                dev.name()
            )));
        }
        self.check_joining(dev.as_ref())?;
        let (entry, in_place_of) = self.spare_entry_for_new(in_place_of_missing)?;
        if entry >= MAX_DEVICES {
            return Err(Error::InvalidArgument(format!(
                "at most {MAX_DEVICES} devices and spares"
            )));
        }
        for c in a.io.execute(vec![IoOp::write(
            device_index,
            0,
            AlignedBuf::new(DATA_START_BYTES as usize),
        )]) {
            c.result?;
        }
        a.spares.locked().push((entry, device_index));
        a.spares_failed.locked().retain(|e| *e != entry);
        a.unrecognised.locked().retain(|(d, _)| *d != device_index);
        a.persist(|p| {
            if in_place_of {
                p.members[entry] = (new_uuid(), MemberState::Spare);
                p.resync_from[entry] = 0;
            } else {
                p.members.push((new_uuid(), MemberState::Spare));
                p.resync_from.push(0);
            }
        })?;
        a.events.emit(
            entry,
            dev.name().to_string(),
            crate::events::DeviceEventKind::SpareAdded,
            "hot spare".to_string(),
        );
        Ok(())
    }

    /// Engine indices of the hot spares present.
    pub fn spare_devices(&self) -> Vec<usize> {
        self.array.spares.locked().iter().map(|(_, d)| *d).collect()
    }

    /// Stale members (present or not), with the segment their resync starts at.
    pub fn stale_slots(&self) -> Vec<(usize, u64)> {
        let a = &self.array;
        (0..a.n())
            .filter_map(|s| a.stale_from(s).map(|f| (s, f)))
            .collect()
    }

    /// Brings every member back into service: first the slot recorded as being rebuilt (see
    /// [`Engine::replace`]), resuming at the persisted cursor, then every stale member that
    /// is present (resynced in place from its dirty-segment record, docs/format.md "Stale
    /// members"). Reports progress after each segment, summed over the slots.
    pub fn rebuild(
        &self,
        opts: &RebuildOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Progress> {
        let a = &self.array;
        // A rebuild writes: the session starts first (docs/format.md, "Recovery" step 6).
        self.ensure_writing_started()?;
        // No segment is freed (and reused) under the rebuild: the cleaner pauses.
        let _maintenance = self.maintenance.locked();
        let mut work: Vec<(usize, u64, bool)> = Vec::new();
        if let Some((slot, next)) = self.rebuild_in_progress() {
            work.push((slot, next, false));
        }
        for (slot, from) in self.stale_slots() {
            if work.iter().all(|w| w.0 != slot) && a.device_of_slot(slot as u32).is_some() {
                work.push((slot, from, true));
            }
        }
        let mut done = Progress::default();
        for (slot, from, resync) in work {
            let started = Instant::now();
            let p = self.rebuild_slot(slot, from, resync, opts, &mut |p| {
                progress(&done.plus(p));
            })?;
            if !p.interrupted {
                // Kept in the health blocks at the next probe round and at close (status's
                // `scan:` line), as a finished scrub is.
                *a.last_rebuild.locked() = Some(crate::format::health_block::RebuildRecord {
                    finished_unix_nanos: crate::array::now_unix_nanos().max(1),
                    duration_ns: started.elapsed().as_nanos() as u64,
                    bytes_scanned: p.bytes_scanned,
                    chunks_rebuilt: p.chunks_rebuilt,
                    bytes_rebuilt: p.bytes_rebuilt,
                    unrecoverable: p.unrecoverable.len() as u64,
                    slot: slot as u32,
                    resync,
                });
            }
            let stop = p.interrupted || !p.unrecoverable.is_empty();
            done = done.plus(&p);
            if stop {
                break;
            }
        }
        progress(&done);
        Ok(done)
    }

    /// Rebuilds (a replaced device) or resyncs (a stale member) one slot from segment
    /// `next_id` on. The caller holds the maintenance lock.
    fn rebuild_slot(
        &self,
        slot: usize,
        next_id: u64,
        resync: bool,
        opts: &RebuildOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Progress> {
        let a = &self.array;
        let Some(target) = a.device_of_slot(slot as u32) else {
            return Err(Error::InvalidArgument(format!(
                "the device being {} into slot {slot} is not present",
                if resync { "resynced" } else { "rebuilt" }
            )));
        };
        if resync {
            tracing::info!(slot, device = %a.slot_name(slot), from_segment = next_id, "resyncing a stale member");
        }
        self.sync_stripes()?;
        let live = self.live_stripes();
        let frontier = self.write_frontier();
        let segs: Vec<Arc<SegmentInfo>> = self
            .live_segments()
            .into_iter()
            .filter(|s| s.id >= next_id && s.members.iter().any(|(sl, _)| *sl as usize == slot))
            .collect();
        let s = a.segment_size() as u64;
        let present = |seg: &SegmentInfo| {
            seg.members
                .iter()
                .filter(|(sl, _)| a.device_of_slot(*sl).is_some())
                .count() as u64
        };
        let mut p = Progress {
            segments_total: segs.len(),
            bytes_total: segs.iter().map(|seg| present(seg) * s).sum(),
            ..Default::default()
        };
        let mut limiter = RateLimiter {
            start: Instant::now(),
            bytes: 0,
            rate: opts.rate_limit_bytes_per_sec,
        };
        let mut last_persist = Instant::now();
        let mut unpersisted: Option<u64> = None;
        // Writes of rebuilt chunks not yet flushed and read back, and their bytes.
        let mut pending: Vec<IoBatch> = Vec::new();
        let mut pending_bytes = 0u64;
        // The persisted cursor: the rebuild's, or the stale member's resync entry.
        let advance = |pp: &mut crate::array::Persisted, next: u64| {
            if resync {
                if pp.resync_from[slot] != 0 {
                    pp.resync_from[slot] = pp.resync_from[slot].max(next);
                }
            } else {
                pp.rebuild = Some((slot as u32, next));
            }
        };
        progress(&p);
        // Only k surviving members are read (fast ones first): any k chunks of a stripe
        // rebuild the missing one. If that is not enough for a stripe holding live data, the
        // segment is read again from every member.
        let pick = |seg: &SegmentInfo| -> Option<Vec<usize>> {
            let mut cands: Vec<(bool, usize)> = seg
                .members
                .iter()
                .enumerate()
                .filter(|(_, (sl, _))| *sl as usize != slot && a.device_of_slot(*sl).is_some())
                .map(|(p, (sl, _))| (a.avoid_for_reads(*sl as usize), p))
                .collect();
            if cands.len() < a.k() {
                return None;
            }
            cands.sort_unstable();
            let mut read: Vec<usize> = cands.into_iter().take(a.k()).map(|c| c.1).collect();
            if resync {
                // A stale member's chunks that are already good need no rewrite.
                if let Some(p) = seg.members.iter().position(|(sl, _)| *sl as usize == slot) {
                    read.push(p);
                }
            }
            Some(read)
        };
        let submit = |seg: &SegmentInfo, pool: &mut BufPool| {
            let len = walk_read_len(a, seg, frontier);
            submit_member_reads(a, seg, pick(seg).as_deref(), len, pool)
        };
        // The next segments' reads are in flight while this one is rebuilt and written, into
        // the buffers of the segments dealt with before.
        let ahead = read_ahead_segments(a);
        let mut pool = BufPool::default();
        let mut reads = std::collections::VecDeque::new();
        for seg in segs.iter().take(ahead) {
            reads.push_back(submit(seg, &mut pool));
        }
        for (index, seg) in segs.iter().enumerate() {
            if opts.cancelled() {
                // What was written since the last check is checked before the cursor moves.
                if !pending.is_empty() {
                    p.bytes_scanned += self.verify_written(slot, target, &mut pending)?;
                    unpersisted = Some(seg.id);
                }
                if let Some(next) = unpersisted {
                    a.persist(|pp| advance(pp, next))?;
                }
                p.interrupted = true;
                return Ok(p);
            }
            let pos = seg
                .members
                .iter()
                .position(|(sl, _)| *sl as usize == slot)
                .expect("filtered");
            let dseg = seg.members[pos].1;
            let Some(current) = reads.pop_front() else {
                break;
            };
            let (mut bufs, mut bytes) = finish_segment_read(a, current);
            if let Some(seg) = segs.get(index + ahead) {
                reads.push_back(submit(seg, &mut pool));
            }
            let end = frontier.filter(|(id, _)| *id == seg.id).map(|(_, o)| o);
            let mut full_read = pick(seg).is_none();
            let (mut ops, chunks_rebuilt, lost) = loop {
                let mut ops = Vec::new();
                let mut chunks_rebuilt = 0u64;
                let mut lost: Vec<String> = Vec::new();
                let mut retry_all = false;
                let stopped = walk_segment(
                    a,
                    seg,
                    &bufs,
                    end,
                    |offset, ordinal, chunks, outcome| {
                        let shard = (0..a.w())
                            .find(|&j| position_of(j, ordinal, a.w()) == pos)
                            .expect("shard");
                        match outcome {
                            StripeOutcome::Good(g) => {
                                if chunks[shard].is_some() && !g.bad_shards.contains(&shard) {
                                    return; // the target already holds a good chunk (resync)
                                }
                                match rebuild_chunks(a, &g, chunks, &[shard]) {
                                    Ok(mut v) => {
                                        let (_, buf) = v.pop().expect("one chunk");
                                        chunks_rebuilt += 1;
                                        let off = a.device_segment_offset(dseg) + offset as u64;
                                        ops.push(IoOp::write(target, off, buf));
                                    }
                                    Err(e) => lost
                                        .push(format!("segment {} offset {offset}: {e}", seg.id)),
                                }
                            }
                            StripeOutcome::Incomplete { good, detail, .. } => {
                                let replayed = self.cleaner.replayed_by_recovery(seg, offset);
                                if live.contains(&(seg.id, offset)) || replayed {
                                    lost.push(format!(
                                    "segment {} offset {offset}: only {good} good chunks ({detail})",
                                    seg.id
                                ));
                                } else {
                                    // No index entry points into it and recovery does not
                                    // replay it, but it may be the index checkpoint (live as
                                    // a whole); and a chunk written now costs little. So a
                                    // stripe the k members read cannot assemble is read from
                                    // all. (Log from the resume point on is needed like live
                                    // data, above: a stripe of deletes there, left with one
                                    // chunk fewer, breaks the log at m more faults.)
                                    retry_all = true;
                                }
                            }
                            StripeOutcome::Empty => {}
                        }
                    },
                );
                // A subset walk that met no chunk may have stopped short of the segment's end.
                let short = stopped.is_some_and(|(o, t)| !full_read && any_chunk_at(a, seg, o, t));
                if (lost.is_empty() && !short && !retry_all) || full_read {
                    break (ops, chunks_rebuilt, lost);
                }
                // Some stripe needs more than the k members read: read them all.
                let (all, more) = read_segment(a, seg);
                pool.give(std::mem::replace(&mut bufs, all));
                bytes += more;
                full_read = true;
            };
            // The header only for a segment that is on disk (another member holds its
            // header): not for the open segment before its first stripe, whose device
            // segments may still hold an earlier use's stripes (see the scrub).
            let on_disk = bufs
                .iter()
                .enumerate()
                .any(|(p, b)| p != pos && b.as_ref().is_some_and(|b| holds_header(a, seg, p, b)));
            pool.give(bufs);
            p.bytes_scanned += bytes;
            p.chunks_rebuilt += chunks_rebuilt;
            p.bytes_rebuilt += ops.iter().map(|o| o.buf.len() as u64).sum::<u64>();
            p.unrecoverable.extend(lost);
            if on_disk {
                let header = seg.header(
                    a.sb.array_uuid,
                    a.k(),
                    a.write_epoch.load(Ordering::SeqCst),
                    pos,
                );
                ops.push(IoOp::write(
                    target,
                    a.device_segment_offset(dseg),
                    AlignedBuf::from_slice(&header.encode()),
                ));
            }
            let written: u64 = ops.iter().map(|o| o.buf.len() as u64).sum();
            // The writes go on while the next segments are decoded; every VERIFY_BYTES (and
            // at the end, before a cancel returns, and before a cursor is persisted) they
            // are flushed and read back, and only then does the cursor move past them.
            pending.push(a.io.submit(ops));
            pending_bytes += written;
            let last = index + 1 == segs.len();
            let due = last_persist.elapsed() >= Duration::from_millis(500);
            if last || due || pending_bytes >= VERIFY_BYTES {
                p.bytes_scanned += self.verify_written(slot, target, &mut pending)?;
                pending_bytes = 0;
                unpersisted = Some(seg.id + 1);
                if due {
                    a.persist(|pp| advance(pp, seg.id + 1))?;
                    last_persist = Instant::now();
                    unpersisted = None;
                }
            }
            p.segments_done += 1;
            limiter.account(bytes + written);
            progress(&p);
        }
        // The last segment's check ran in the loop; this only matters if the walk ended early.
        if !pending.is_empty() {
            p.bytes_scanned += self.verify_written(slot, target, &mut pending)?;
        }
        if p.unrecoverable.is_empty() {
            // Every segment from `next_id` on was walked with the slot present (a failure on
            // the way would have ended the walk with an error), and every later stripe was
            // written to it: the slot holds everything. A lost device since (the persist below
            // sees it) records a new dirty-segment entry.
            a.persist(|pp| {
                if resync {
                    pp.resync_from[slot] = 0;
                } else {
                    pp.rebuild = None;
                    if pp.resync_from[slot] >= next_id {
                        pp.resync_from[slot] = 0;
                    }
                }
                pp.members[slot].1 = MemberState::Online;
            })?;
            if resync {
                tracing::info!(slot, device = %a.slot_name(slot), chunks = p.chunks_rebuilt, "stale member resynced: online");
            }
            a.events.emit(
                slot,
                a.slot_name(slot),
                crate::events::DeviceEventKind::Rebuilt,
                format!(
                    "{} chunks {}; in service",
                    p.chunks_rebuilt,
                    if resync { "resynced" } else { "rebuilt" }
                ),
            );
        }
        Ok(p)
    }

    /// Reads every live stripe, checks every chunk's identity and crc and the parity, and
    /// with `repair` rewrites bad chunks on devices that can be written.
    /// Waits for the writes of rebuilt chunks in `pending` (to device `target`, slot
    /// `slot`), flushes the device, and reads every chunk back to compare it with what was
    /// written; returns the bytes read back. Any failure marks the slot failed and is
    /// returned: the cursor must not move past chunks the device does not hold.
    fn verify_written(
        &self,
        slot: usize,
        target: usize,
        pending: &mut Vec<IoBatch>,
    ) -> Result<u64> {
        let a = &self.array;
        let mut failure: Option<Error> = None;
        // What was written, to read back once flushed.
        let mut expect: Vec<(u64, AlignedBuf)> = Vec::new();
        // Each failed operation on the target counts against it, as any other I/O error does.
        let counters = &a.counters[slot];
        for batch in pending.drain(..) {
            for c in batch.wait() {
                match c.result {
                    Err(e) => {
                        counters.write_errors.fetch_add(1, Ordering::Relaxed);
                        failure.get_or_insert(e.into());
                    }
                    Ok(()) => expect.push((c.op.offset_bytes, c.op.buf)),
                }
            }
        }
        if failure.is_none() {
            for c in a.io.execute(vec![IoOp::flush(target)]) {
                if let Err(e) = c.result {
                    counters.write_errors.fetch_add(1, Ordering::Relaxed);
                    failure.get_or_insert(e.into());
                }
            }
        }
        let mut read_back = 0u64;
        if failure.is_none() {
            // Every rewritten chunk's first block (its header, naming segment, offset and
            // epoch, and the start of its body) is read back and compared before the slot
            // counts as holding it, and one chunk in READ_BACK_FULL_EVERY in full: a device
            // that drops or misplaces writes is caught, for a sixteenth of the reads a full
            // read-back costs (a body damaged otherwise fails its crc on the first read or
            // scrub, and is repaired from the others).
            let lens: Vec<usize> = expect
                .iter()
                .enumerate()
                .map(|(i, (_, buf))| match i % READ_BACK_FULL_EVERY {
                    0 => buf.len(),
                    _ => buf.len().min(BLOCK_BYTES),
                })
                .collect();
            let reads: Vec<IoOp> = expect
                .iter()
                .zip(&lens)
                .map(|((off, _), len)| IoOp::read(target, *off, *len))
                .collect();
            for ((c, (off, want)), len) in a.io.execute(reads).into_iter().zip(&expect).zip(&lens) {
                match c.result {
                    Err(e) => {
                        counters.read_errors.fetch_add(1, Ordering::Relaxed);
                        failure.get_or_insert(e.into());
                    }
                    Ok(()) if c.op.buf[..] != want[..*len] => {
                        counters.checksum_errors.fetch_add(1, Ordering::Relaxed);
                        failure.get_or_insert(Error::Device(ectable_devices::DeviceError::io(
                            &a.slot_name(slot),
                            "read back",
                            *off,
                            std::io::Error::other(
                                "a rebuilt chunk read back differs from what was written",
                            ),
                        )));
                    }
                    Ok(()) => {}
                }
            }
            read_back = lens.iter().map(|l| *l as u64).sum::<u64>();
        }
        if let Some(e) = failure {
            a.mark_failed(slot, &e.to_string());
            return Err(e);
        }
        Ok(read_back)
    }

    /// The superblock part of a scrub: every copy checked, and with `repair` all rewritten
    /// (one superblock write, as any device state change makes) when one is bad, then
    /// checked again.
    /// A bad superblock copy for people: `slot 2 (d2.img) superblock copy 1: not a
    /// superblock (bad magic)`, with `still` after the copy number for one a rewrite did not
    /// mend.
    pub(crate) fn describe_bad_superblock(&self, b: &BadSuperblock, still: &str) -> String {
        let a = &self.array;
        let name = if b.entry < a.n() {
            format!("slot {} ({})", b.entry, a.slot_name(b.entry))
        } else {
            format!("spare entry {}", b.entry)
        };
        format!("{name} superblock copy {}{still}: {}", b.copy, b.why)
    }

    fn scrub_superblocks(&self, repair: bool, r: &mut ScrubReport) -> Result<()> {
        let a = &self.array;
        let bad = a.check_superblocks();
        for b in &bad {
            if let Some(n) = r.bad_superblocks_per_slot.get_mut(b.entry) {
                *n += 1;
            }
            r.bad_superblocks.push(self.describe_bad_superblock(b, ""));
        }
        if bad.is_empty() || !repair {
            return Ok(());
        }
        tracing::warn!(
            "scrub: {} bad superblock copies ({}); rewriting the superblocks",
            bad.len(),
            r.bad_superblocks.join("; ")
        );
        a.persist(|_| {})?;
        let still = a.check_superblocks();
        r.superblocks_repaired = bad
            .iter()
            .filter(|b| !still.iter().any(|s| s.entry == b.entry && s.copy == b.copy))
            .count() as u64;
        // A copy the rewrite did not mend (the device drops or misplaces writes) stays in
        // the findings; no data is lost with it, so it is not "unrecoverable".
        for s in &still {
            r.bad_superblocks
                .push(self.describe_bad_superblock(s, " still bad after the rewrite"));
        }
        Ok(())
    }

    pub fn scrub(
        &self,
        repair: bool,
        opts: &RebuildOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<ScrubReport> {
        let a = &self.array;
        if repair && a.read_only {
            return Err(Error::ReadOnly);
        }
        // No segment is freed (and reused) under the scrub: the cleaner pauses.
        let _maintenance = self.maintenance.locked();
        if !a.read_only {
            // A writable scrub starts the session first: what an interrupted writer left
            // unwritten at the end of the log is repaired then, and is no finding.
            self.ensure_writing_started()?;
            self.sync_stripes()?;
        }
        let mut r = ScrubReport {
            bad_chunks_per_slot: vec![0; a.n()],
            unchecked_chunks_per_slot: vec![0; a.n()],
            bad_superblocks_per_slot: vec![0; a.n()],
            bad_segment_headers_per_slot: vec![0; a.n()],
            ..Default::default()
        };
        self.scrub_superblocks(repair, &mut r)?;
        let live = self.live_stripes();
        let frontier = self.write_frontier();
        let segs = self.live_segments();
        r.progress.segments_total = segs.len();
        r.progress.bytes_total = segs
            .iter()
            .map(|seg| {
                let present = seg
                    .members
                    .iter()
                    .filter(|(sl, _)| a.device_of_slot(*sl).is_some())
                    .count();
                present as u64 * a.segment_size() as u64
            })
            .sum();
        let mut limiter = RateLimiter {
            start: Instant::now(),
            bytes: 0,
            rate: opts.rate_limit_bytes_per_sec,
        };
        progress(&r.progress);
        let ahead = read_ahead_segments(a);
        let mut pool = BufPool::default();
        let submit = |seg: &SegmentInfo, pool: &mut BufPool| {
            submit_member_reads(a, seg, None, walk_read_len(a, seg, frontier), pool)
        };
        // A read-only scrub allocates nothing: a segment id from this one on is a writer's.
        let next_at_open = self.lock_state().next_segment_id();
        let mut reads = std::collections::VecDeque::new();
        for seg in segs.iter().take(ahead) {
            reads.push_back(submit(seg, &mut pool));
        }
        for (index, seg) in segs.iter().enumerate() {
            // Stopped between segments (a node shutting down): not a completed scrub, so it
            // is not recorded as the last one (`Engine::scrub`).
            if opts.cancelled() {
                r.progress.interrupted = true;
                break;
            }
            let Some(current) = reads.pop_front() else {
                break;
            };
            let (bufs, bytes) = finish_segment_read(a, current);
            if let Some(seg) = segs.get(index + ahead) {
                reads.push_back(submit(seg, &mut pool));
            }
            r.progress.bytes_scanned += bytes;
            let before = a.read_only.then(|| r.clone());
            let end = frontier.filter(|(id, _)| *id == seg.id).map(|(_, o)| o);
            let mut ops = Vec::new();
            walk_segment(
                a,
                seg,
                &bufs,
                end,
                |offset, ordinal, chunks, outcome| match outcome {
                    StripeOutcome::Good(g) => {
                        r.stripes_checked += 1;
                        for &j in &g.bad_shards {
                            let (slot, _) = seg.members[position_of(j, ordinal, a.w())];
                            // Not read, and its member out of service: not checked. (Not
                            // read from a member in service: unreadable, a bad chunk.)
                            if chunks[j].is_none() && a.device_of_slot(slot).is_none() {
                                r.unchecked_chunks_per_slot[slot as usize] += 1;
                            } else {
                                r.bad_chunks_per_slot[slot as usize] += 1;
                            }
                        }
                        if g.bad_shards.is_empty() {
                            if !matches!(parity_agrees(a, &g, chunks), Ok(true)) {
                                r.parity_mismatches += 1;
                            }
                            return;
                        }
                        if !repair {
                            return;
                        }
                        let targets: Vec<usize> = g
                            .bad_shards
                            .iter()
                            .copied()
                            .filter(|&j| {
                                a.device_of_slot(seg.members[position_of(j, ordinal, a.w())].0)
                                    .is_some()
                            })
                            .collect();
                        match rebuild_chunks(a, &g, chunks, &targets) {
                            Ok(v) => {
                                for (j, buf) in v {
                                    let (slot, dseg) = seg.members[position_of(j, ordinal, a.w())];
                                    if let Some(d) = a.device_of_slot(slot) {
                                        let off = a.device_segment_offset(dseg) + offset as u64;
                                        ops.push((slot, IoOp::write(d, off, buf)));
                                    }
                                }
                            }
                            Err(e) => r
                                .progress
                                .unrecoverable
                                .push(format!("segment {} offset {offset}: {e}", seg.id)),
                        }
                    }
                    StripeOutcome::Incomplete { good, detail, .. } => {
                        // A checkpoint segment is live as a whole (its stripes hold no
                        // record the index points at); so is the log recovery replays,
                        // from the checkpoint's resume point on, whether or not an index
                        // entry points into a stripe (deletes, records overwritten later):
                        // one of its stripes unreadable, the next open fails.
                        let checkpoint = seg.kind == crate::format::SegmentKind::Checkpoint;
                        let replayed = self.cleaner.replayed_by_recovery(seg, offset);
                        if live.contains(&(seg.id, offset)) || checkpoint || replayed {
                            r.stripes_checked += 1;
                            r.progress.unrecoverable.push(format!(
                                "{} segment {} offset {offset}: only {good} good chunks ({detail})",
                                if checkpoint { "checkpoint" } else { "log" },
                                seg.id
                            ));
                        }
                    }
                    StripeOutcome::Empty => {}
                },
            );
            // Each member's read starts with its copy of the segment header.
            let chunk_ops = ops.len();
            let epoch = a.write_epoch.load(Ordering::SeqCst);
            let good: Vec<Option<bool>> = bufs
                .iter()
                .enumerate()
                .map(|(p, buf)| buf.as_ref().map(|b| holds_header(a, seg, p, b)))
                .collect();
            // A segment no member holds a header of has not reached the disk (the open
            // segment before its first stripe): its device segments may still hold an
            // earlier use's stripes, which a header written now would make part of the log.
            let on_disk = good.contains(&Some(true));
            for (p, g) in good.iter().enumerate() {
                if !on_disk || *g != Some(false) {
                    continue;
                }
                let (slot, dseg) = seg.members[p];
                let want = seg.header(a.sb.array_uuid, a.k(), epoch, p);
                r.bad_segment_headers_per_slot[slot as usize] += 1;
                if let Some(d) = a.device_of_slot(slot).filter(|_| repair) {
                    let buf = AlignedBuf::from_slice(&want.encode());
                    ops.push((slot, IoOp::write(d, a.device_segment_offset(dseg), buf)));
                }
            }
            pool.give(bufs);
            // Beside a writer (read-only, no lock), the writer's cleaner may have freed this
            // segment and reused its place since the open: then what was read is partly the
            // new use's, and its findings say nothing about the data.
            // (`before` was taken after this segment's bytes were counted; a read-only scrub
            // repairs nothing, so nothing else of the segment's is lost with it.)
            if let Some(before) = before.filter(|b| b.findings() != r.findings()) {
                if let Some(why) = crate::reader::reused_since_open(a, seg, next_at_open) {
                    r = before;
                    r.reused_by_writer.push(why);
                }
            }
            let slots: Vec<u32> = ops.iter().map(|(s, _)| *s).collect();
            // Per device written: (device, slot, chunks, chunk bytes, segment headers). A
            // repair counts once its device's flush made it durable.
            let mut written: Vec<(usize, u32, u64, u64, u64)> = Vec::new();
            for (i, (c, slot)) in
                a.io.execute(ops.into_iter().map(|(_, o)| o).collect())
                    .into_iter()
                    .zip(slots)
                    .enumerate()
            {
                if let Err(e) = &c.result {
                    a.observe(slot as usize, c.op.kind, c.latency, Some(e));
                    continue;
                }
                let at = match written.iter().position(|w| w.0 == c.op.device_index) {
                    Some(at) => at,
                    None => {
                        written.push((c.op.device_index, slot, 0, 0, 0));
                        written.len() - 1
                    }
                };
                match i >= chunk_ops {
                    true => written[at].4 += 1,
                    false => {
                        written[at].2 += 1;
                        written[at].3 += c.op.buf.len() as u64;
                    }
                }
            }
            let devices: Vec<(usize, u32)> = written.iter().map(|w| (w.0, w.1)).collect();
            for (ok, (_, _, chunks, bytes, headers)) in
                a.flush_devices(&devices).into_iter().zip(written)
            {
                if ok {
                    r.chunks_repaired += chunks;
                    r.progress.bytes_rebuilt += bytes;
                    r.segment_headers_repaired += headers;
                }
            }
            r.progress.chunks_rebuilt = r.chunks_repaired;
            r.progress.segments_done += 1;
            limiter.account(bytes);
            progress(&r.progress);
        }
        Ok(r)
    }
}
