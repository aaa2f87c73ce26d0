//! The array: format, open (identify devices by their superblocks), geometry and placement.
//!
//! Invariants:
//! - Devices are identified by what their superblock says, never by path or order.
//! - `format` refuses devices of an existing array unless forced, devices that are too small
//!   and the same device listed twice, and writes nothing before all checks pass.
//! - `open` refuses devices of another array and writes nothing to them.
//! - Superblock copies are rewritten one at a time with a flush in between.

use crate::codec::{RsCodec, StripeCodec};
use crate::error::{Error, Result};
use crate::format::*;
use crate::sync::MutexExt;
use ectable_devices::{AlignedBuf, DeviceError, ErrorClass, IoBackend, IoOp};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

const NO_DEVICE: usize = usize::MAX;
use std::sync::Arc;

use crate::format::layout::DEFAULT_CHUNK_SIZE_BYTES;

/// What `format` needs.
#[derive(Debug, Clone)]
pub struct FormatOptions {
    /// k: data chunks per stripe (the stripe payload is spread over them).
    pub data_shards: usize,
    /// m: parity chunks per stripe; the array survives the loss of any m devices.
    pub parity_shards: usize,
    /// Size of one chunk in bytes: 4 KiB to 4 MiB, a multiple of 4 KiB (default 64 KiB).
    pub chunk_size_bytes: u32,
    /// 0 picks the default (8 MiB, at least 16 chunks).
    pub segment_size_bytes: u32,
    /// Overwrite devices that hold another ectable array.
    pub force: bool,
    /// The last `spare_count` devices are hot spares: members that hold no data until one
    /// replaces a failed device.
    pub spare_count: usize,
    /// Keep a sync journal (the default): synced writes are acknowledged through a small
    /// ring on m + 1 members instead of a short stripe on all w. False formats a version 1
    /// array (docs/format.md, "Version changes").
    pub sync_journal: bool,
    /// Keep every value inline (format version 6: version 5's layout, superblock flags bit 0)
    /// instead of placing block-sized values alone on device blocks (the default): a 4 KiB
    /// value then costs an 8 KiB read, but a stripe holds about 5 % more of them, which a
    /// nearly full array's cleaner feels (docs/design.md, "Values on device blocks").
    /// Ignored without the sync journal (version 1 keeps values inline); refused with
    /// `wide_records` or `whole_records`, whose versions place values.
    pub inline_values: bool,
    /// Keep version 3's wide log records (a 24-byte header with the LSN, the table name in
    /// every record) instead of compact ones (version 4, the default: docs/format.md,
    /// "Compact records"): for builds that read version 3 at most, and for comparisons.
    /// Ignored for versions 1 and 2.
    pub wide_records: bool,
    /// Keep every record inside one stripe (a version 4 array) instead of letting a record
    /// that does not fit the room left in a stripe continue in the next one (version 5, the
    /// default: docs/format.md, "Records that continue in the next stripe"): for builds that
    /// read version 4 at most, and for comparisons. Ignored for versions 1 to 3.
    pub whole_records: bool,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            data_shards: 4,
            parity_shards: 2,
            chunk_size_bytes: DEFAULT_CHUNK_SIZE_BYTES,
            segment_size_bytes: 0,
            force: false,
            spare_count: 0,
            sync_journal: true,
            inline_values: false,
            wide_records: false,
            whole_records: false,
        }
    }
}

/// Summary of a formatted array.
#[derive(Debug, Clone)]
pub struct ArrayInfo {
    /// The new array's uuid, written into every superblock, segment and chunk header.
    pub array_uuid: [u8; 16],
    /// Data-bearing members (n), spares not counted.
    pub device_count: usize,
    /// k: data chunks per stripe.
    pub data_shards: usize,
    /// m: parity chunks per stripe.
    pub parity_shards: usize,
    /// Chunk size in bytes.
    pub chunk_size_bytes: u32,
    /// Size of a device segment in bytes; a segment is k + m of them on as many devices.
    pub segment_size_bytes: u32,
    /// Device segments per device (what the smallest device holds at format time).
    pub segment_count: u32,
}

fn now_unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Now, in ns since the Unix epoch (0 if the clock is before it): the health block's times.
pub(crate) fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Reads both superblock copies of every device. Per device: Ok(Ok(newest valid)),
/// Ok(Err(..)) (readable, but no valid copy: with the decode error of copy 0; `Truncated`
/// for a device too small to hold the two copies), or the read error.
pub(crate) fn read_superblocks(
    io: &dyn IoBackend,
) -> Vec<std::result::Result<std::result::Result<Superblock, DecodeError>, DeviceError>> {
    let devices = io.devices();
    // A device shorter than the two copies (a file made too small) holds none: reading
    // them would fail as a short read, an I/O error, where "too small" is the answer.
    let holds = |d: usize| devices[d].geometry().capacity_bytes >= 2 * SUPERBLOCK_SIZE_BYTES as u64;
    let ops: Vec<IoOp> = (0..devices.len())
        .filter(|&d| holds(d))
        .map(|d| IoOp::read(d, 0, 2 * SUPERBLOCK_SIZE_BYTES))
        .collect();
    let mut done: Vec<Option<_>> = (0..devices.len()).map(|_| None).collect();
    for c in io.execute(ops) {
        let d = c.op.device_index;
        done[d] = Some(c.result.map(|_| newest_copy(&c.op.buf)));
    }
    done.into_iter()
        .map(|read| read.unwrap_or(Ok(Err(DecodeError::Truncated))))
        .collect()
}

/// The newer of the two superblock copies in `buf` (the first `2 * SUPERBLOCK_SIZE_BYTES`
/// of a device), the first one when both have the same epoch; the first copy's decode
/// error when neither decodes. The one place that chooses between the copies.
fn newest_copy(buf: &[u8]) -> std::result::Result<Superblock, DecodeError> {
    let a = Superblock::decode(&buf[..SUPERBLOCK_SIZE_BYTES]);
    let b = Superblock::decode(&buf[SUPERBLOCK_SIZE_BYTES..2 * SUPERBLOCK_SIZE_BYTES]);
    match (a, b) {
        (Ok(a), Ok(b)) => Ok(if b.epoch > a.epoch { b } else { a }),
        (Ok(a), Err(_)) => Ok(a),
        // A copy of a version this build does not read says more than a torn other copy.
        (Err(e), Err(f @ DecodeError::Version(_))) if !matches!(e, DecodeError::Version(_)) => {
            Err(f)
        }
        (Err(_), Ok(b)) => Ok(b),
        (Err(e), Err(_)) => Err(e),
    }
}

pub(crate) fn check_duplicates(io: &dyn IoBackend) -> Result<()> {
    let devs = io.devices();
    for i in 0..devs.len() {
        for j in 0..i {
            let same_name = devs[i].name() == devs[j].name();
            // The same storage under two names: two nodes of one block device, two paths to
            // one file, a loop device and its backing file (ectable_devices::StorageId).
            let same_id = matches!((devs[i].identity(), devs[j].identity()),
                (Some(a), Some(b)) if a.same_storage(&b));
            if same_name || same_id {
                return Err(Error::DuplicateDevice {
                    first: devs[j].name().to_string(),
                    second: devs[i].name().to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Writes `sbs[i]` to device i (two copies, one at a time, each followed by a flush).
/// Returns per-device errors instead of failing, so callers can decide what is fatal.
pub(crate) fn write_superblocks(
    io: &dyn IoBackend,
    sbs: &[Option<Superblock>],
) -> Vec<Option<DeviceError>> {
    let mut errors: Vec<Option<DeviceError>> = (0..sbs.len()).map(|_| None).collect();
    for (copy, &offset) in SUPERBLOCK_OFFSETS.iter().enumerate() {
        let mut ops = Vec::new();
        for (d, sb) in sbs.iter().enumerate() {
            let Some(sb) = sb else { continue };
            if errors[d].is_some() {
                continue;
            }
            let mut sb = sb.clone();
            sb.copy_index = copy as u32;
            ops.push(IoOp::write(d, offset, AlignedBuf::from_slice(&sb.encode())));
        }
        let mut flushes = Vec::new();
        for c in io.execute(ops) {
            match c.result {
                Ok(()) => flushes.push(IoOp::flush(c.op.device_index)),
                Err(e) => errors[c.op.device_index] = Some(e),
            }
        }
        for c in io.execute(flushes) {
            if let Err(e) = c.result {
                errors[c.op.device_index] = Some(e);
            }
        }
    }
    errors
}

/// Formats the devices of `io` as one array. Nothing is written unless every check passes.
pub fn format(io: &dyn IoBackend, opts: &FormatOptions) -> Result<ArrayInfo> {
    let total = io.devices().len();
    if opts.spare_count >= total {
        return Err(Error::InvalidArgument(format!(
            "{} spares leave no data devices out of {total}",
            opts.spare_count
        )));
    }
    let n = total - opts.spare_count;
    let (k, m) = (opts.data_shards, opts.parity_shards);
    let layout = Layout::new(k, m, opts.chunk_size_bytes, opts.segment_size_bytes)?;
    let w = layout.w();
    if n < w {
        return Err(Error::InvalidArgument(format!(
            "RS({k},{m}) needs at least {w} devices, {n} given"
        )));
    }
    if total > MAX_DEVICES {
        return Err(Error::InvalidArgument(format!(
            "at most {MAX_DEVICES} devices and spares, {total} given"
        )));
    }
    let (c, s) = (layout.chunk_bytes() as u32, layout.segment_bytes() as u32);
    check_duplicates(io)?;
    let needed_bytes = layout.smallest_device();
    let mut segment_count = u32::MAX;
    for d in io.devices().iter() {
        let cap = d.geometry().capacity_bytes;
        if cap < needed_bytes {
            return Err(Error::DeviceTooSmall {
                device: d.name().to_string(),
                capacity_bytes: cap,
                needed_bytes,
            });
        }
    }
    // The members set the geometry; a hot spare (the last `spare_count` devices) must hold
    // what a member holds, or it could not take a member's place: it is refused rather
    // than shrinking every member to its size.
    for d in io.devices().iter().take(n) {
        segment_count = segment_count.min(layout.segments_on(d.geometry().capacity_bytes));
    }
    let member_bytes = layout.device_segment_offset(segment_count);
    for d in io.devices().iter().skip(n) {
        let cap = d.geometry().capacity_bytes;
        if cap < member_bytes {
            return Err(Error::DeviceTooSmall {
                device: d.name().to_string(),
                capacity_bytes: cap,
                needed_bytes: member_bytes,
            });
        }
    }
    for (d, r) in read_superblocks(io).into_iter().enumerate() {
        let name = io.devices()[d].name().to_string();
        match r {
            Err(e) => return Err(e.into()),
            Ok(Ok(sb)) if !opts.force => {
                return Err(Error::AlreadyFormatted {
                    device: name,
                    array: uuid_string(&sb.array_uuid),
                })
            }
            // An array of a newer build is an array too.
            Ok(Err(DecodeError::Version(v))) if !opts.force => {
                return Err(Error::AlreadyFormatted {
                    device: name,
                    array: format!("format version {v}, which this build does not read"),
                })
            }
            // Not an array: something else the operator may want (a file system, a
            // partition table), as mkfs and mdadm look for.
            Ok(Err(_)) if !opts.force => {
                if let Some(what) = ectable_devices::foreign_signature(io.devices()[d].as_ref())? {
                    return Err(Error::HoldsData {
                        device: name,
                        what: what.to_string(),
                    });
                }
            }
            Ok(_) => {}
        }
    }
    let array_uuid = new_uuid();
    let device_uuids: Vec<[u8; 16]> = (0..total).map(|_| new_uuid()).collect();
    let members: Vec<([u8; 16], MemberState)> = device_uuids
        .iter()
        .enumerate()
        .map(|(i, u)| {
            (
                *u,
                if i < n {
                    MemberState::Online
                } else {
                    MemberState::Spare
                },
            )
        })
        .collect();
    let (version, flags) = match (
        opts.sync_journal,
        opts.inline_values,
        opts.wide_records,
        opts.whole_records,
    ) {
        (false, ..) => (FORMAT_VERSION, 0),
        (true, true, false, false) => (FORMAT_VERSION_INLINE, SB_FLAG_INLINE_VALUES),
        (true, true, ..) => {
            return Err(Error::InvalidArgument(
                "inline values keep the layout of the newest version; they cannot be combined \
                 with wide or whole records (versions 3 and 4 place values)"
                    .into(),
            ))
        }
        (true, false, true, _) => (FORMAT_VERSION_PLACED, 0),
        (true, false, false, true) => (FORMAT_VERSION_COMPACT, 0),
        (true, false, false, false) => (FORMAT_VERSION_CONTINUED, 0),
    };
    let created = now_unix_secs();
    let sbs: Vec<Option<Superblock>> = (0..total)
        .map(|d| {
            Some(Superblock {
                array_uuid,
                device_uuid: device_uuids[d],
                device_slot: d as u32,
                device_count: n as u32,
                data_shards: k as u16,
                parity_shards: m as u16,
                chunk_size_bytes: c,
                segment_size_bytes: s,
                segment_count,
                device_capacity_bytes: io.devices()[d].geometry().capacity_bytes,
                epoch: 1,
                copy_index: 0,
                format_version: version,
                flags,
                created_unix_secs: created,
                checkpoint_segment_id: 0,
                checkpoint_segment_count: 0,
                checkpoint_lsn: 0,
                rebuild: None,
                members: members.clone(),
                sync_floor: 1,
                resync_from: vec![0; total],
            })
        })
        .collect();
    // Clear the health block and the reserved area so that nothing of a previous life of the
    // device is mistaken for ours. Segment contents need no clearing: every segment header
    // and chunk names its array.
    let zero = AlignedBuf::new((DATA_START_BYTES - 2 * SUPERBLOCK_SIZE_BYTES as u64) as usize);
    let ops = (0..total)
        .map(|d| IoOp::write(d, 8192, zero.clone()))
        .collect();
    for c in io.execute(ops) {
        c.result?;
    }
    if let Some(e) = write_superblocks(io, &sbs).into_iter().flatten().next() {
        return Err(e.into());
    }
    Ok(ArrayInfo {
        array_uuid,
        device_count: n,
        data_shards: k,
        parity_shards: m,
        chunk_size_bytes: c,
        segment_size_bytes: s,
        segment_count,
    })
}

/// The floor a device's own superblock copy records: the array's sync floor, lowered to
/// where the device's own resync or rebuild still has to start (docs/format.md, "Stale
/// members"). Read back from an older copy, it is where that device's resync starts.
fn own_sync_floor(
    floor: u64,
    resync_from: &[u64],
    rebuild: Option<(u32, u64)>,
    entry: usize,
) -> u64 {
    let mut own = floor.max(1);
    if let Some(f) = resync_from.get(entry).filter(|f| **f != 0) {
        own = own.min(*f);
    }
    if let Some((_, cursor)) = rebuild.filter(|(s, _)| *s as usize == entry) {
        own = own.min(cursor.max(1));
    }
    own
}

/// Whether the valid superblocks of one array disagree on the epoch.
fn epochs_differ(
    results: &[std::result::Result<std::result::Result<Superblock, DecodeError>, DeviceError>],
) -> bool {
    let sbs: Vec<&Superblock> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().and_then(|r| r.as_ref().ok()))
        .collect();
    sbs.iter().any(|a| {
        sbs.iter()
            .any(|b| a.array_uuid == b.array_uuid && a.epoch != b.epoch)
    })
}

/// An opened array: identified devices, geometry, codec.
pub(crate) struct Array {
    pub io: Arc<dyn IoBackend>,
    /// The authoritative superblock (newest epoch); its slot/uuid fields are those of one
    /// member and are not used.
    pub sb: Superblock,
    /// The geometry, from the superblock.
    pub layout: Layout,
    /// Engine device index per slot, None when the slot's device is not present.
    slot_device: Vec<AtomicUsize>,
    /// In-memory failed marks per slot (I/O errors seen this session).
    pub slot_failed: Vec<AtomicBool>,
    /// Per slot: the sync floor when it failed (u64::MAX: it has not failed this session).
    slot_failed_floor: Vec<AtomicU64>,
    /// Per slot: why it failed this session (what `status` shows beside FAULTED).
    failed_why: Vec<std::sync::Mutex<String>>,
    /// The lowest segment id any write from now on can touch (docs/format.md, "Stale
    /// members"): written into the superblocks as `sync_floor`, and what an absent or
    /// failed member's resync must start from.
    pub sync_floor: AtomicU64,
    /// Hot spares present: (member index ≥ n, engine device index).
    pub spares: std::sync::Mutex<Vec<(usize, usize)>>,
    /// Devices given but not members or spares (no valid superblock, unreadable, or
    /// replaced this session), by index, with why.
    pub unrecognised: std::sync::Mutex<Vec<(usize, String)>>,
    /// Devices a replacement took out of the array this session, by index (also in
    /// `unrecognised`, with why): released, never members again under that index.
    pub replaced: std::sync::Mutex<Vec<usize>>,
    /// Member-list entries of hot spares that failed this session (`fail_spare`): the only
    /// missing spares whose entry `add_spare` gives to a new device without being told to.
    pub spares_failed: std::sync::Mutex<Vec<usize>>,
    /// Devices given at open that held no valid superblock (blank, or both copies
    /// overwritten), by index; those still in `unrecognised` are shown as blank by status.
    pub blank: Vec<usize>,
    pub codec: Arc<dyn StripeCodec>,
    /// The epoch written into chunk and segment headers this session (set when the first
    /// write starts a new epoch; see `bump_epoch`).
    pub write_epoch: AtomicU64,
    /// What the superblocks say, as last persisted.
    pub persisted: std::sync::Mutex<Persisted>,
    pub read_only: bool,
    /// Per-slot error counters, this session.
    pub counters: Vec<SlotCounters>,
    /// Per-slot latency and suspicion.
    pub health: Vec<crate::health::SlotHealth>,
    pub policy: crate::health::HealthPolicy,
    /// A device changed state since the superblocks were last written.
    pub state_dirty: AtomicBool,
    observations: AtomicU64,
    /// When this session opened the array: the clock of the slowness detector.
    opened: std::time::Instant,
    /// Per slot: the superblocks said the device was slow (suspect) when this session began.
    pub slow_last_session: Vec<bool>,
    /// Per slot: the error counters (read, write, checksum) its health block kept from the
    /// sessions before this one.
    pub lifetime_base: std::sync::Mutex<Vec<[u64; 3]>>,
    /// Per slot: the health record its block holds, as read at open or last written (so
    /// that a session that changed nothing writes nothing at close).
    pub kept: std::sync::Mutex<Vec<crate::format::health_block::HealthRecord>>,
    /// The array's last completed scrub (from the newest health block, or this session's).
    pub last_scrub: std::sync::Mutex<Option<crate::format::health_block::ScrubRecord>>,
    /// The last completed rebuild or resync (the newest of the members' health blocks at
    /// open, then this session's).
    pub last_rebuild: std::sync::Mutex<Option<crate::format::health_block::RebuildRecord>>,
    /// Subscribers to member state changes.
    pub events: crate::events::Events,
    /// Probe reads of the devices that reads go around (sampler.rs).
    sampler: crate::sampler::Sampler,
    /// Per engine device index: the superblock the device holds, as read at open or as this
    /// session last wrote it (None: no superblock of this array, or not known). What a
    /// superblock write the array cannot stand behind is undone to (`roll_back`).
    on_disk: std::sync::Mutex<Vec<Option<Superblock>>>,
}

/// For one read in this many that goes around a device, the sampler probes that device.
const AVOIDED_READ_SAMPLE: u64 = 64;

/// A member's state as a new session starts from it: slowness was measured by the last
/// session and is measured again by this one, so a member persisted as suspect starts online
/// (a moment's slowness must not leave the array degraded across restarts).
fn fresh_session_state(st: MemberState) -> MemberState {
    match st {
        MemberState::Suspect => MemberState::Online,
        other => other,
    }
}

/// The mutable part of the superblock.
#[derive(Debug, Clone)]
pub struct Persisted {
    pub epoch: u64,
    pub members: Vec<([u8; 16], MemberState)>,
    /// (first segment id, segment count, lsn) of the newest index checkpoint.
    pub checkpoint: (u64, u32, u64),
    /// (slot, next segment id) of a rebuild in progress.
    pub rebuild: Option<(u32, u64)>,
    /// Per member entry: 0 when in sync; else the member is stale and must be resynced
    /// from this segment id on (also the resync's cursor).
    pub resync_from: Vec<u64>,
}

/// Errors seen on one device this session.
#[derive(Debug, Default)]
pub struct SlotCounters {
    pub read_errors: AtomicU64,
    pub write_errors: AtomicU64,
    pub checksum_errors: AtomicU64,
}

impl Array {
    pub fn k(&self) -> usize {
        self.layout.k()
    }
    pub fn m(&self) -> usize {
        self.layout.m()
    }
    pub fn w(&self) -> usize {
        self.layout.w()
    }
    pub fn n(&self) -> usize {
        self.sb.device_count as usize
    }
    pub fn chunk_size(&self) -> usize {
        self.layout.chunk_bytes()
    }
    pub fn segment_size(&self) -> usize {
        self.layout.segment_bytes()
    }
    pub fn segment_count(&self) -> u32 {
        self.sb.segment_count
    }
    /// The bytes a member must hold: the superblock area and every device segment.
    pub fn member_bytes_needed(&self) -> u64 {
        self.device_segment_offset(self.segment_count())
    }
    /// The largest record batch one stripe can hold.
    /// Whether log stripes may place values on device blocks (format version 3).
    pub fn places_values(&self) -> bool {
        self.sb.format_version >= crate::format::FORMAT_VERSION_PLACED && !self.inline_values()
    }
    /// Whether the superblock says values stay inline (format version 6, flags bit 0).
    pub fn inline_values(&self) -> bool {
        self.sb.flags & crate::format::SB_FLAG_INLINE_VALUES != 0
    }
    /// How this array's log stripes hold records (docs/format.md, "Compact records").
    pub fn stripe_format(&self) -> crate::format::log_record::StripeFormat {
        crate::format::log_record::StripeFormat::of_version(self.sb.format_version)
    }
    /// Whether a log record may continue in the next stripe (format version 5).
    pub fn continues_records(&self) -> bool {
        self.stripe_format().continued
    }
    /// This array's record layout.
    pub fn record_format(&self) -> crate::format::log_record::RecordFormat {
        self.stripe_format().records
    }
    pub fn max_stripe_payload(&self) -> usize {
        self.layout.stripe_payload()
    }
    pub fn device_of_slot(&self, slot: u32) -> Option<usize> {
        let slot = slot as usize;
        if slot >= self.slot_device.len() || self.slot_failed[slot].load(Ordering::Relaxed) {
            return None;
        }
        self.present_device(slot)
    }
    /// The engine device index holding `slot`, failed or not.
    pub fn present_device(&self, slot: usize) -> Option<usize> {
        match self.slot_device.get(slot).map(|d| d.load(Ordering::SeqCst)) {
            Some(NO_DEVICE) | None => None,
            Some(d) => Some(d),
        }
    }
    /// The slot a device index holds, if any.
    pub fn slot_of_device(&self, device_index: usize) -> Option<usize> {
        (0..self.slot_device.len()).find(|&s| self.present_device(s) == Some(device_index))
    }
    /// Member-list entries of hot spares that no present spare holds (failed, wiped, or not
    /// given): `Status::spares_missing`, and the entry `add_spare` reuses. Takes the spares'
    /// lock and then the persisted state's, each on its own (see `persist`).
    pub(crate) fn missing_spare_entries(&self) -> Vec<usize> {
        let present: Vec<usize> = self.spares.locked().iter().map(|(e, _)| *e).collect();
        let p = self.persisted.locked();
        (self.n()..p.members.len())
            .filter(|e| p.members[*e].1 == MemberState::Spare && !present.contains(e))
            .collect()
    }
    /// A hot spare whose I/O failed (its superblocks could not be read or written): it
    /// leaves the spares present, so that no replacement is made onto it and no probe round
    /// rewrites every superblock for it again; its entry stays in the member list, which
    /// `Status::spares_missing` then reports (and `add_spare` gives to the next spare), and
    /// the device is listed as unrecognised with the error. Returns whether it was a spare.
    pub(crate) fn fail_spare(&self, device_index: usize, why: &str) -> bool {
        let removed = {
            let mut spares = self.spares.locked();
            let entry = spares
                .iter()
                .find(|(_, d)| *d == device_index)
                .map(|(e, _)| *e);
            spares.retain(|(_, d)| *d != device_index);
            entry
        };
        if let Some(entry) = removed {
            self.spares_failed.locked().push(entry);
            let name = self.io.devices()[device_index].name().to_string();
            tracing::warn!(device = %name, "hot spare failed: {why}; it is no longer used as a spare");
            let mut unrecognised = self.unrecognised.locked();
            unrecognised.retain(|(d, _)| *d != device_index);
            unrecognised.push((device_index, format!("hot spare failed: {why}")));
        }
        removed.is_some()
    }
    /// Puts a device in a slot (replacement) and clears the slot's failed mark.
    /// A new device took `slot` (replace): the errors and the latency history of the device
    /// that was there are not the new one's.
    pub fn fresh_slot(&self, slot: usize) {
        let c = &self.counters[slot];
        c.read_errors.store(0, Ordering::Relaxed);
        c.write_errors.store(0, Ordering::Relaxed);
        c.checksum_errors.store(0, Ordering::Relaxed);
        if let Some(b) = self.lifetime_base.locked().get_mut(slot) {
            *b = [0; 3];
        }
        if let Some(k) = self.kept.locked().get_mut(slot) {
            // Replace clears the new device's first megabyte, its health block with it.
            *k = Default::default();
        }
        self.health[slot].reset();
    }

    /// Probes each (slot, engine device index) of `slots`: writes the slot's health block with
    /// `sequence` and reads it back. Returns the slots whose probe failed, with why; changes no
    /// device state (the caller decides: the round fails them, `online` refuses the device).
    pub(crate) fn probe_health_blocks(
        &self,
        slots: &[(usize, usize)],
        sequence: u64,
    ) -> Vec<(usize, String)> {
        use crate::format::health_block::{self as probe, HEALTH_BLOCK_BYTES, HEALTH_BLOCK_OFFSET};
        let nanos = now_unix_nanos();
        let mut failed = Vec::new();
        // A member whose file was deleted works until the array closes and is gone at the next
        // open; one that shrank reads short past its new end. Failed now, so that status says
        // so and a hot spare (or `replace`) takes its place while the array still runs
        // (docs/fault-model.md).
        let slots: Vec<(usize, usize)> = slots
            .iter()
            .copied()
            .filter(
                |&(s, d)| match self.io.devices().get(d).and_then(|dev| dev.lost()) {
                    Some(why) => {
                        failed.push((s, why));
                        false
                    }
                    None => true,
                },
            )
            .collect();
        let writes = slots
            .iter()
            .map(|&(s, d)| {
                let block = probe::encode(
                    &self.sb.array_uuid,
                    s as u32,
                    sequence,
                    nanos,
                    &self.health_record(s),
                );
                IoOp::write(d, HEALTH_BLOCK_OFFSET, AlignedBuf::from_slice(&block))
            })
            .collect();
        let mut ok_slots = Vec::new();
        for (c, &(s, _)) in self.io.execute(writes).into_iter().zip(&slots) {
            match c.result {
                Ok(()) => {
                    self.health[s].observe(c.latency);
                    ok_slots.push((s, c.op.device_index));
                }
                Err(e) => {
                    self.counters[s]
                        .write_errors
                        .fetch_add(1, Ordering::Relaxed);
                    failed.push((s, e.to_string()))
                }
            }
        }
        let reads = ok_slots
            .iter()
            .map(|&(_, d)| IoOp::read(d, HEALTH_BLOCK_OFFSET, HEALTH_BLOCK_BYTES))
            .collect();
        for (c, &(s, _)) in self.io.execute(reads).into_iter().zip(&ok_slots) {
            match c.result {
                Ok(()) => {
                    self.health[s].observe(c.latency);
                    if probe::decode(&c.op.buf, &self.sb.array_uuid, s as u32) != Some(sequence) {
                        self.counters[s]
                            .checksum_errors
                            .fetch_add(1, Ordering::Relaxed);
                        failed.push((s, "health block did not read back as written".into()));
                    }
                }
                Err(e) => {
                    self.counters[s].read_errors.fetch_add(1, Ordering::Relaxed);
                    failed.push((s, e.to_string()))
                }
            }
        }
        failed
    }

    /// The segment from which a member out of service misses writes: where it failed, or
    /// the current floor when it was never here this session.
    pub fn failed_floor(&self, slot: usize) -> u64 {
        let floor = self.sync_floor.load(Ordering::SeqCst).max(1);
        floor.min(self.slot_failed_floor[slot].load(Ordering::SeqCst))
    }

    /// Puts a failed or absent member back into service on engine device `device_index`
    /// (`Engine::online`): the slot's errors so far move into its lifetime counts, so its
    /// error limits count afresh, and its latency history starts over. The caller has
    /// recorded what the member missed (its resync entry) first.
    pub fn bring_back(&self, slot: usize, device_index: usize) {
        let c = &self.counters[slot];
        if let Some(b) = self.lifetime_base.locked().get_mut(slot) {
            b[0] += c.read_errors.swap(0, Ordering::Relaxed);
            b[1] += c.write_errors.swap(0, Ordering::Relaxed);
            b[2] += c.checksum_errors.swap(0, Ordering::Relaxed);
        }
        self.health[slot].reset();
        if let Some(w) = self.failed_why.get(slot) {
            w.locked().clear();
        }
        self.set_slot_device(slot, device_index);
    }

    pub fn set_slot_device(&self, slot: usize, device_index: usize) {
        self.slot_device[slot].store(device_index, Ordering::SeqCst);
        self.slot_failed[slot].store(false, Ordering::SeqCst);
        self.slot_failed_floor[slot].store(u64::MAX, Ordering::SeqCst);
    }
    pub fn device_segment_offset(&self, device_segment_index: u32) -> u64 {
        self.layout.device_segment_offset(device_segment_index)
    }
    pub fn slot_name(&self, slot: usize) -> String {
        match self.present_device(slot) {
            Some(d) => self.io.devices()[d].name().to_string(),
            None => format!("slot {slot} (missing)"),
        }
    }
    pub fn mark_failed(&self, slot: usize, why: &str) {
        // Everything the device misses from now on lies at or after the current floor.
        self.slot_failed_floor[slot].fetch_min(
            self.sync_floor.load(Ordering::SeqCst).max(1),
            Ordering::SeqCst,
        );
        if !self.slot_failed[slot].swap(true, Ordering::SeqCst) {
            tracing::warn!(slot, device = %self.slot_name(slot), "device failed: {why}");
            if let Some(w) = self.failed_why.get(slot) {
                *w.locked() = why.to_string();
            }
            self.state_dirty.store(true, Ordering::SeqCst);
            self.events.emit(
                slot,
                self.slot_name(slot),
                crate::events::DeviceEventKind::Failed,
                why.to_string(),
            );
        }
    }

    /// Passive detection: feeds one completion's latency and outcome into the slot's health.
    pub fn observe(
        &self,
        slot: usize,
        kind: ectable_devices::IoKind,
        latency: std::time::Duration,
        error: Option<&ectable_devices::DeviceError>,
    ) {
        for (s, latency, e) in self.sampler.take_results() {
            self.observe_one(s, ectable_devices::IoKind::Read, latency, e.as_ref());
        }
        self.observe_one(slot, kind, latency, error);
    }

    /// Flushes each of `devices` (device index, slot) and returns whether each flush
    /// succeeded. A failed flush counts against its slot and fails it, as a failed write
    /// does: what it should have made durable may be gone.
    pub(crate) fn flush_devices(&self, devices: &[(usize, u32)]) -> Vec<bool> {
        let ops = devices.iter().map(|&(d, _)| IoOp::flush(d)).collect();
        self.io
            .execute(ops)
            .into_iter()
            .zip(devices)
            .map(|(c, &(_, slot))| match &c.result {
                Ok(()) => true,
                Err(e) => {
                    self.observe(slot as usize, c.op.kind, c.latency, Some(e));
                    false
                }
            })
            .collect()
    }

    /// [`Array::observe`] for a completion of a device still in a slot (a device swapped out
    /// meanwhile is not observed); returns that slot.
    pub fn observe_completion(&self, c: &ectable_devices::IoCompletion) -> Option<usize> {
        let slot = self.slot_of_device(c.op.device_index)?;
        self.observe(slot, c.op.kind, c.latency, c.result.as_ref().err());
        Some(slot)
    }

    fn observe_one(
        &self,
        slot: usize,
        kind: ectable_devices::IoKind,
        latency: std::time::Duration,
        error: Option<&ectable_devices::DeviceError>,
    ) {
        use crate::health::DetectionMode;
        let Some(h) = self.health.get(slot) else {
            return;
        };
        let passive = self.policy.mode != DetectionMode::Active;
        match error {
            // Flush latency measures the file system's writeback, not the device (health.rs);
            // so does a durable write's, which includes a flush.
            None if matches!(
                kind,
                ectable_devices::IoKind::Flush | ectable_devices::IoKind::WriteDurable
            ) => {}
            None => {
                h.observe(latency);
                if self.observations.fetch_add(1, Ordering::Relaxed) % 32 == 31 && passive {
                    let online: Vec<bool> = (0..self.n())
                        .map(|s| self.device_of_slot(s as u32).is_some())
                        .collect();
                    for s in crate::health::evaluate_slowness(
                        &self.health,
                        &online,
                        &self.policy,
                        self.opened.elapsed(),
                    ) {
                        let now = self.health[s].suspect.load(Ordering::Relaxed);
                        tracing::warn!(slot = s, device = %self.slot_name(s), "device {}", if now { "is slow: suspect" } else { "is no longer slow" });
                        self.state_dirty.store(true, Ordering::SeqCst);
                        let (kind, detail) = if now {
                            (
                                crate::events::DeviceEventKind::Slow,
                                "latency well above the other members'",
                            )
                        } else {
                            (
                                crate::events::DeviceEventKind::NoLongerSlow,
                                "latency back in line",
                            )
                        };
                        self.events
                            .emit(s, self.slot_name(s), kind, detail.to_string());
                    }
                }
            }
            Some(e) => {
                let c = &self.counters[slot];
                if matches!(e, ectable_devices::DeviceError::TimedOut { .. }) {
                    // It stopped answering: whatever the operation, nothing more is sent to
                    // it (docs/design.md, "Devices that stop answering").
                    if kind == ectable_devices::IoKind::Read {
                        c.read_errors.fetch_add(1, Ordering::Relaxed);
                    } else {
                        c.write_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    self.mark_failed(slot, &e.to_string());
                    return;
                }
                if kind == ectable_devices::IoKind::Read {
                    if self.is_rebuilding(slot) {
                        return;
                    }
                    let n = c.read_errors.fetch_add(1, Ordering::Relaxed) + 1;
                    if passive && n >= self.policy.read_error_limit {
                        self.mark_failed(slot, &format!("{n} read errors, the last: {e}"));
                    }
                } else {
                    c.write_errors.fetch_add(1, Ordering::Relaxed);
                    // A device that cannot write cannot hold new stripes, whatever the mode.
                    self.mark_failed(slot, &e.to_string());
                }
            }
        }
    }

    /// Passive detection: a chunk from this slot failed its identity or checksum.
    /// Whether `slot` is the target of a rebuild in progress (its chunks are expected to be
    /// missing until rebuilt, so they count against nothing).
    pub fn is_rebuilding(&self, slot: usize) -> bool {
        let p = self.persisted.locked();
        p.rebuild.is_some_and(|(s, _)| s as usize == slot)
            || p.resync_from.get(slot).is_some_and(|f| *f != 0)
    }

    /// Where the resync of a stale member starts (None: the member is in sync).
    pub fn stale_from(&self, slot: usize) -> Option<u64> {
        let p = self.persisted.locked();
        p.resync_from.get(slot).copied().filter(|f| *f != 0)
    }

    /// Sets the sync floor: from now on nothing is written below `segment_id`.
    pub fn set_sync_floor(&self, segment_id: u64) {
        self.sync_floor.store(segment_id.max(1), Ordering::SeqCst);
    }

    pub fn note_checksum_error(&self, slot: usize) {
        if self.is_rebuilding(slot) {
            return;
        }
        let n = self.counters[slot]
            .checksum_errors
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        if self.policy.mode != crate::health::DetectionMode::Active
            && n >= self.policy.checksum_error_limit
        {
            self.mark_failed(slot, &format!("{n} checksum errors"));
        }
    }

    /// Whether a read should go around this slot's device (slow for a while, or suspect).
    /// For one in `AVOIDED_READ_SAMPLE` of them the sampler reads a block of the device off
    /// the reader's path: without a measurement a device found slow in a read-only session
    /// would never be seen to recover (health.rs), and with the reader's own read the
    /// array's tail latency would be the slow device's (sampler.rs).
    pub fn avoid_for_reads(&self, slot: usize) -> bool {
        let Some(h) = self.health.get(slot) else {
            return false;
        };
        if !h.avoid.load(Ordering::Relaxed) {
            return false;
        }
        let n = h.avoided_reads.fetch_add(1, Ordering::Relaxed);
        if n % AVOIDED_READ_SAMPLE == AVOIDED_READ_SAMPLE - 1 {
            self.probe(slot, n / AVOIDED_READ_SAMPLE);
        }
        true
    }

    /// Asks the sampler to read one block of `slot`'s device, at a place spread over the
    /// device by `nth` (a drive's cache must not answer every probe).
    fn probe(&self, slot: usize, nth: u64) {
        let Some(d) = self.device_of_slot(slot as u32) else {
            return;
        };
        let Some(dev) = self.io.devices().get(d).cloned() else {
            return;
        };
        let probe = crate::sampler::PROBE_BYTES as u64;
        let blocks = dev.geometry().capacity_bytes / probe;
        if blocks == 0 {
            return;
        }
        let block = nth.wrapping_mul(0x9E37_79B9_7F4A_7C15) % blocks;
        self.sampler.request(&self.io, slot, d, block * probe);
    }

    pub fn is_suspect(&self, slot: usize) -> bool {
        self.health
            .get(slot)
            .is_some_and(|h| h.suspect.load(Ordering::Relaxed))
    }

    /// Writes the device states to the superblocks if they changed (not in read-only mode).
    pub fn persist_if_dirty(&self) {
        if !self.read_only && self.state_dirty.swap(false, Ordering::SeqCst) {
            if let Err(e) = self.persist(|_| {}) {
                tracing::warn!("could not persist device states: {e}");
            }
        }
    }
    /// Why the slot failed this session ("" when it has not).
    pub fn failed_why(&self, slot: usize) -> String {
        self.failed_why
            .get(slot)
            .map(|w| w.locked().clone())
            .unwrap_or_default()
    }
    pub fn is_failed(&self, slot: usize) -> bool {
        self.slot_failed
            .get(slot)
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }
    pub fn epoch(&self) -> u64 {
        self.persisted.locked().epoch
    }
    pub fn online_slots(&self) -> Vec<usize> {
        (0..self.n())
            .filter(|&s| self.device_of_slot(s as u32).is_some())
            .collect()
    }

    /// Identifies the devices of `io` and (unless read-only) starts a new write epoch.
    /// `no_writer_beside`: see [`crate::EngineOptions::no_writer_beside`].
    pub fn open(io: Arc<dyn IoBackend>, read_only: bool, no_writer_beside: bool) -> Result<Array> {
        check_duplicates(io.as_ref())?;
        let names: Vec<String> = io.devices().iter().map(|d| d.name().to_string()).collect();
        let mut results = read_superblocks(io.as_ref());
        if read_only && !no_writer_beside {
            // A writer beside this reader rewrites the superblocks one device after the other:
            // caught in the middle, some devices look a superblock behind, which would read as
            // stale members. Their epochs are read again after a pause; a device that stays
            // behind (an old copy put back) is stale.
            for _ in 0..3 {
                if !epochs_differ(&results) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
                results = read_superblocks(io.as_ref());
            }
        }
        let mut found: Vec<Option<Superblock>> = Vec::new();
        let mut unrecognised = Vec::new();
        let mut blank = Vec::new();
        let mut first_decode_error = None;
        let mut unknown_version = None;
        for (d, r) in results.into_iter().enumerate() {
            match r {
                Ok(Ok(sb)) => found.push(Some(sb)),
                Ok(Err(e)) => {
                    if let DecodeError::Version(v) = e {
                        unknown_version.get_or_insert((d, v));
                    }
                    first_decode_error.get_or_insert((d, e.to_string()));
                    unrecognised.push((d, format!("no valid superblock ({e})")));
                    blank.push(d);
                    found.push(None);
                }
                Err(e) => {
                    unrecognised.push((d, format!("unreadable: {e}")));
                    found.push(None);
                }
            }
        }
        // The array is the one most of the recognised devices belong to.
        let mut arrays: Vec<([u8; 16], usize)> = Vec::new();
        for sb in found.iter().flatten() {
            match arrays.iter_mut().find(|(u, _)| *u == sb.array_uuid) {
                Some(e) => e.1 += 1,
                None => arrays.push((sb.array_uuid, 1)),
            }
        }
        arrays.sort_by_key(|a| std::cmp::Reverse(a.1));
        let Some(&(array_uuid, _)) = arrays.first() else {
            if let Some((d, version)) = unknown_version {
                return Err(unknown_format(names[d].clone(), version));
            }
            let (d, reason) =
                first_decode_error.unwrap_or((0, "no device could be read".to_string()));
            return Err(Error::NotFormatted {
                device: names[d].clone(),
                reason,
            });
        };
        for (d, sb) in found.iter().enumerate() {
            if let Some(sb) = sb {
                if sb.array_uuid != array_uuid {
                    return Err(Error::ForeignDevice {
                        device: names[d].clone(),
                        found: format!(
                            "array {}, while the other devices are array {}",
                            uuid_string(&sb.array_uuid),
                            uuid_string(&array_uuid)
                        ),
                    });
                }
            }
        }
        // The members' newest superblock is the array's state. A hot spare holds no data,
        // and its copy can be newer than every member's only when a superblock write was
        // cut after the spare took it (the spares are written after the members since,
        // but an array an older build wrote may hold one): it must not make every member
        // look behind.
        let is_member = |sb: &&Superblock| sb.device_slot < sb.device_count;
        let newest = found
            .iter()
            .flatten()
            .filter(is_member)
            .max_by_key(|sb| sb.epoch)
            .or_else(|| found.iter().flatten().max_by_key(|sb| sb.epoch))
            .cloned()
            .ok_or_else(|| Error::InvalidArgument("no devices".into()))?;
        let n = newest.device_count as usize;
        let mut slot_device: Vec<Option<usize>> = vec![None; n];
        // A superblock write cut short (power lost part-way) leaves the members that had not
        // taken it one epoch behind with nothing else missed: the newest copy lists them in
        // service, and stripes go to every member in service whatever its superblock holds.
        // An old copy put back is one member (or a few): more than m members one epoch
        // behind, each in service with no resync entry in the newest copy, is such a cut,
        // and they are in sync (docs/format.md, "Stale members").
        let in_sync_behind = |sb: &Superblock| {
            let slot = sb.device_slot as usize;
            sb.array_uuid == array_uuid
                && sb.epoch + 1 == newest.epoch
                && slot < n
                && newest.members[slot].0 == sb.device_uuid
                && matches!(
                    newest.members[slot].1,
                    MemberState::Online | MemberState::Suspect
                )
                && newest.resync_from.get(slot).is_none_or(|f| *f == 0)
        };
        let cut_short = found
            .iter()
            .flatten()
            .filter(|sb| in_sync_behind(sb))
            .count()
            > newest.parity_shards as usize;
        // Staleness comes from the superblocks alone (docs/format.md, "Stale members"): the
        // newest copy's dirty-segment record, or an own copy older than the newest.
        let mut resync_from = newest.resync_from.clone();
        let mut spares = Vec::new();
        for (d, sb) in found.iter().enumerate() {
            let Some(sb) = sb else { continue };
            let slot = sb.device_slot as usize;
            if slot >= n
                && newest
                    .members
                    .get(slot)
                    .is_some_and(|m| m.0 == sb.device_uuid && m.1 == MemberState::Spare)
            {
                spares.push((slot, d));
                continue;
            }
            if slot >= n
                && sb.epoch >= newest.epoch
                && !newest.members.iter().any(|m| m.0 == sb.device_uuid)
            {
                // The members never took the write that added it (see `newest`).
                unrecognised.push((
                    d,
                    "a hot spare whose adding was cut short (the members never took it); \
                     not used: add it again with 'ectable add-spare'"
                        .to_string(),
                ));
                continue;
            }
            if slot >= n || newest.members[slot].0 != sb.device_uuid {
                return Err(Error::ReplacedDevice {
                    device: names[d].clone(),
                    array: uuid_string(&array_uuid),
                    slot,
                    was_spare: slot >= n,
                    device_uuid: uuid_string(&sb.device_uuid),
                });
            }
            if let Some(prev) = slot_device[slot] {
                // Two storages (not one under two names: that was refused before any
                // superblock was read) with the same member's superblock: one is a copy.
                let epochs = found[prev].as_ref().map(|p| (p.epoch, sb.epoch));
                return Err(Error::SlotHeldTwice {
                    slot,
                    first: names[prev].clone(),
                    second: names[d].clone(),
                    newer: match epochs {
                        Some((a, b)) if a > b => Some(names[prev].clone()),
                        Some((a, b)) if b > a => Some(names[d].clone()),
                        _ => None,
                    },
                });
            }
            if newest.members[slot].1 == MemberState::Failed && resync_from[slot] == 0 {
                // Failed in a session that wrote no dirty-segment record (an array formatted
                // before the record existed): what it missed is unknown, so all of it.
                resync_from[slot] = 1;
            }
            if sb.epoch < newest.epoch && cut_short && in_sync_behind(sb) {
                tracing::info!(
                    device = %names[d],
                    slot,
                    epoch = sb.epoch,
                    array_epoch = newest.epoch,
                    "one superblock write behind, as more than m members are: the write was cut short (a power loss); the member missed nothing else and is in sync"
                );
            } else if sb.epoch < newest.epoch {
                let own = own_sync_floor(sb.sync_floor, &sb.resync_from, sb.rebuild, slot);
                let entry = &mut resync_from[slot];
                *entry = if *entry == 0 { own } else { (*entry).min(own) };
                tracing::warn!(
                    device = %names[d],
                    slot,
                    epoch = sb.epoch,
                    array_epoch = newest.epoch,
                    "stale member: it missed writes; it is resynced from segment {} on",
                    resync_from[slot]
                );
            }
            slot_device[slot] = Some(d);
        }
        let present = slot_device.iter().filter(|d| d.is_some()).count();
        let k = newest.data_shards as usize;
        let m = newest.parity_shards as usize;
        if present + m < n {
            let missing: Vec<String> = (0..n)
                .filter(|s| slot_device[*s].is_none())
                .map(|s| format!("slot {s}"))
                .collect();
            return Err(Error::TooFewDevices {
                needed: n - m,
                total: n,
                present,
                missing: missing.join(", "),
            });
        }
        let codec: Arc<dyn StripeCodec> = Arc::new(RsCodec::new(k, m)?);
        let slot_failed = (0..n).map(|_| AtomicBool::new(false)).collect();
        let array = Array {
            io,
            layout: Layout::new(
                newest.data_shards as usize,
                newest.parity_shards as usize,
                newest.chunk_size_bytes,
                newest.segment_size_bytes,
            )?,
            sb: newest.clone(),
            slot_device: slot_device
                .into_iter()
                .map(|d| AtomicUsize::new(d.unwrap_or(NO_DEVICE)))
                .collect(),
            slot_failed,
            slot_failed_floor: (0..n).map(|_| AtomicU64::new(u64::MAX)).collect(),
            failed_why: (0..n)
                .map(|_| std::sync::Mutex::new(String::new()))
                .collect(),
            sync_floor: AtomicU64::new(1),
            spares: std::sync::Mutex::new(spares),
            unrecognised: std::sync::Mutex::new(unrecognised),
            replaced: std::sync::Mutex::new(Vec::new()),
            spares_failed: std::sync::Mutex::new(Vec::new()),
            blank,
            codec,
            write_epoch: AtomicU64::new(newest.epoch),
            persisted: std::sync::Mutex::new(Persisted {
                epoch: newest.epoch,
                members: newest
                    .members
                    .iter()
                    .map(|(u, st)| (*u, fresh_session_state(*st)))
                    .collect(),
                checkpoint: (
                    newest.checkpoint_segment_id,
                    newest.checkpoint_segment_count,
                    newest.checkpoint_lsn,
                ),
                rebuild: newest.rebuild,
                resync_from,
            }),
            read_only,
            counters: (0..n).map(|_| SlotCounters::default()).collect(),
            health: (0..n)
                .map(|_| crate::health::SlotHealth::default())
                .collect(),
            policy: crate::health::HealthPolicy::default(),
            state_dirty: AtomicBool::new(false),
            observations: AtomicU64::new(0),
            opened: std::time::Instant::now(),
            slow_last_session: (0..n)
                .map(|slot| {
                    newest
                        .members
                        .get(slot)
                        .is_some_and(|m| m.1 == MemberState::Suspect)
                })
                .collect(),
            sampler: crate::sampler::Sampler::new(n),
            on_disk: std::sync::Mutex::new(found.clone()),
            lifetime_base: std::sync::Mutex::new(vec![[0; 3]; n]),
            kept: std::sync::Mutex::new(vec![Default::default(); n]),
            last_scrub: std::sync::Mutex::new(None),
            last_rebuild: std::sync::Mutex::new(None),
            events: Default::default(),
        };
        let mut array = array;
        array.load_health();
        array.fail_members_too_small();
        Ok(array)
    }

    /// Fails every member smaller than the segments the array lays out on it: its storage
    /// shrank while the array was closed (a file truncated, a loop device resized). Its chunks
    /// past the new end are gone and it cannot take the segments there, so it is failed now,
    /// with the sizes, rather than called healthy by a read-only status or found out by a
    /// write past its end some time later. Given its size back, the next open finds it stale
    /// from the first segment (if a writer recorded the failure) and `rebuild` resyncs it.
    fn fail_members_too_small(&self) {
        let needed = self.member_bytes_needed();
        for slot in 0..self.n() {
            let Some(d) = self.device_of_slot(slot as u32) else {
                continue;
            };
            let dev = &self.io.devices()[d];
            let cap = dev.geometry().capacity_bytes;
            if cap >= needed {
                continue;
            }
            let had = self
                .on_disk
                .locked()
                .get(d)
                .and_then(|sb| sb.as_ref().map(|sb| sb.device_capacity_bytes))
                .unwrap_or(0);
            self.mark_failed(
                slot,
                &format!(
                    "{}: {cap} bytes, smaller than the {needed} the array lays out on it (it had \
                     {had} when it joined: it shrank?); what lay past its end is gone: replace \
                     it, or give it its size back and resync it ('ectable rebuild', then \
                     'ectable scrub --repair')",
                    dev.name()
                ),
            );
            // What lay past its new end is gone whenever it was written: once it is back at
            // its size, its resync starts at the first segment, not where it failed.
            self.slot_failed_floor[slot].store(1, Ordering::SeqCst);
        }
        // A hot spare that shrank while the array was closed (its file cut short) would be
        // refused as too small when a member fails and it is wanted: it is failed now, so
        // that status says the array has no usable spare instead of listing it as one.
        let spares: Vec<usize> = self.spares.locked().iter().map(|(_, d)| *d).collect();
        for d in spares {
            let dev = &self.io.devices()[d];
            let cap = dev.geometry().capacity_bytes;
            if cap < needed {
                self.fail_spare(
                    d,
                    &format!(
                        "{cap} bytes, smaller than the {needed} a member needs (it shrank?): a \
                         replacement cannot use it; give it its size back, or add another \
                         spare with 'ectable add-spare --force'"
                    ),
                );
            }
        }
    }

    /// Reads what the present members' health blocks kept: their error counters so far and
    /// the newest scrub. A block that does not read or check is taken as empty.
    fn load_health(&mut self) {
        use crate::format::health_block::{decode_record, HEALTH_BLOCK_BYTES, HEALTH_BLOCK_OFFSET};
        let slots: Vec<(usize, usize)> = (0..self.n())
            .filter_map(|s| self.device_of_slot(s as u32).map(|d| (s, d)))
            .collect();
        let reads = slots
            .iter()
            .map(|&(_, d)| ectable_devices::IoOp::read(d, HEALTH_BLOCK_OFFSET, HEALTH_BLOCK_BYTES))
            .collect();
        let mut newest: Option<crate::format::health_block::ScrubRecord> = None;
        let mut newest_rebuild: Option<crate::format::health_block::RebuildRecord> = None;
        for (c, &(s, _)) in self.io.execute(reads).into_iter().zip(&slots) {
            if c.result.is_err() {
                continue;
            }
            if let Some((_, r)) = decode_record(&c.op.buf, &self.sb.array_uuid, s as u32) {
                self.lifetime_base.locked()[s] = [r.read_errors, r.write_errors, r.checksum_errors];
                self.kept.locked()[s] = r;
                if let Some(sc) = r.last_scrub {
                    if newest.is_none_or(|n| sc.finished_unix_nanos > n.finished_unix_nanos) {
                        newest = Some(sc);
                    }
                }
                if let Some(rb) = r.last_rebuild {
                    if newest_rebuild.is_none_or(|n| rb.finished_unix_nanos > n.finished_unix_nanos)
                    {
                        newest_rebuild = Some(rb);
                    }
                }
            }
        }
        *self.last_scrub.locked() = newest;
        *self.last_rebuild.locked() = newest_rebuild;
    }

    /// Slot `slot`'s error counters over all sessions (read, write, checksum).
    pub fn lifetime_errors(&self, slot: usize) -> [u64; 3] {
        let b = self
            .lifetime_base
            .locked()
            .get(slot)
            .copied()
            .unwrap_or_default();
        let c = &self.counters[slot];
        [
            b[0] + c.read_errors.load(Ordering::Relaxed),
            b[1] + c.write_errors.load(Ordering::Relaxed),
            b[2] + c.checksum_errors.load(Ordering::Relaxed),
        ]
    }

    /// What slot `slot`'s health block keeps: its counters and the array's last scrub.
    pub fn health_record(&self, slot: usize) -> crate::format::health_block::HealthRecord {
        let [read_errors, write_errors, checksum_errors] = self.lifetime_errors(slot);
        crate::format::health_block::HealthRecord {
            read_errors,
            write_errors,
            checksum_errors,
            last_scrub: *self.last_scrub.locked(),
            last_rebuild: *self.last_rebuild.locked(),
        }
    }

    /// Persists a new epoch (and the current member states) to every present device. Called
    /// before the first write of a session, so that opening an array and failing on bad input
    /// changes nothing on the devices.
    pub fn bump_epoch(&self) -> Result<()> {
        self.persist(|_| {})
    }

    /// Points the superblocks at a new index checkpoint (and starts a new epoch).
    pub fn persist_checkpoint(&self, checkpoint: (u64, u32, u64)) -> Result<()> {
        self.persist(|p| p.checkpoint = checkpoint)
    }

    /// Applies `change` to the persisted state and writes it, with a new epoch, to the
    /// superblocks of every present device that is not failed.
    pub fn persist(&self, change: impl FnOnce(&mut Persisted)) -> Result<()> {
        let mut persisted = self.persisted.locked();
        // Too few members left to hold the array's data: the writer stops here, so nothing
        // acknowledged from now on can depend on the new state. Writing it to the members
        // left would give them an epoch that names the others failed, so that even with
        // every device back more than m would be stale (counted unavailable, each to be
        // resynced from its floor): a file system that fills up under
        // file-backed members fails them all at once, and its space can be given back
        // (docs/fault-model.md, "More than m at once").
        let online = self.online_slots().len();
        if online + self.m() < self.n() {
            return Err(Error::TooFewDevices {
                needed: self.n() - self.m(),
                total: self.n(),
                present: online,
                missing: "too many devices failed; their states were not written, so the \
                          array opens again once they are back"
                    .into(),
            });
        }
        let mut next = persisted.clone();
        change(&mut next);
        let epoch = persisted.epoch + 1;
        let checkpoint = next.checkpoint;
        let rebuild = next.rebuild;
        let floor = self.sync_floor.load(Ordering::SeqCst).max(1);
        // The write-intent record: a member that is absent or failed while the superblocks
        // move on misses every write from the floor on (docs/format.md, "Stale members").
        for slot in 0..self.n() {
            if self.device_of_slot(slot as u32).is_none() {
                let from = self.failed_floor(slot);
                let e = &mut next.resync_from[slot];
                *e = if *e == 0 { from } else { (*e).min(from) };
            }
        }
        let resync_from = next.resync_from.clone();
        let n_dev = self.io.devices().len();
        let mut sbs: Vec<Option<Superblock>> = vec![None; n_dev];
        let mut members = next.members.clone();
        for (slot, m) in members.iter_mut().enumerate().take(self.n()) {
            if self.is_failed(slot) {
                m.1 = MemberState::Failed;
            } else if self.is_suspect(slot) && m.1 == MemberState::Online {
                m.1 = MemberState::Suspect;
            } else if !self.is_suspect(slot) && m.1 == MemberState::Suspect {
                m.1 = MemberState::Online;
            }
        }
        // Every present, working member (data slots and hot spares) with its member entry.
        let mut targets: Vec<(usize, usize)> = (0..self.n())
            .filter_map(|slot| self.device_of_slot(slot as u32).map(|d| (slot, d)))
            .collect();
        targets.extend(self.spares.locked().iter().copied());
        for (entry, d) in targets {
            let mut sb = self.sb.clone();
            sb.device_slot = entry as u32;
            sb.device_uuid = members[entry].0;
            sb.device_capacity_bytes = self.io.devices()[d].geometry().capacity_bytes;
            sb.epoch = epoch;
            sb.members = members.clone();
            (
                sb.checkpoint_segment_id,
                sb.checkpoint_segment_count,
                sb.checkpoint_lsn,
            ) = checkpoint;
            sb.rebuild = rebuild;
            sb.sync_floor = own_sync_floor(floor, &resync_from, rebuild, entry);
            sb.resync_from = resync_from.clone();
            sbs[d] = Some(sb);
        }
        // The members first, then the hot spares: a cut between leaves the spares behind (a
        // spare the members name and whose device says otherwise is reported missing), never
        // a spare ahead of every member.
        let spare_devices: Vec<usize> = self.spares.locked().iter().map(|(_, d)| *d).collect();
        let (mut first, mut then) = (sbs.clone(), vec![None; n_dev]);
        for &d in &spare_devices {
            then[d] = first[d].take();
        }
        let mut errors = write_superblocks(self.io.as_ref(), &first);
        if then.iter().any(Option::is_some) {
            for (d, e) in write_superblocks(self.io.as_ref(), &then)
                .into_iter()
                .enumerate()
            {
                if then[d].is_some() {
                    errors[d] = e;
                }
            }
        }
        let took: Vec<bool> = (0..n_dev)
            .map(|d| sbs[d].is_some() && errors[d].is_none())
            .collect();
        for (d, e) in errors.into_iter().enumerate() {
            if let Some(e) = e {
                let slot = self.slot_of_device(d);
                if slot.is_none() && e.class() != ErrorClass::Invalid {
                    self.fail_spare(d, &format!("superblock write: {e}"));
                }
                if let Some(slot) = slot {
                    self.counters[slot]
                        .write_errors
                        .fetch_add(1, Ordering::Relaxed);
                    self.mark_failed(slot, &e.to_string());
                }
                if e.class() == ErrorClass::Invalid {
                    return Err(e.into());
                }
            }
        }
        let online = self.online_slots().len();
        if online + self.m() < self.n() {
            // The write itself found more members failed (several devices gone at once):
            // the members that took the new epoch would name the others failed or behind,
            // and with every device back more than m would be stale. They are put
            // back to what they held, as if this write had found the failures beforehand.
            self.roll_back(&took);
            return Err(Error::TooFewDevices {
                needed: self.n() - self.m(),
                total: self.n(),
                present: online,
                missing: "devices failed while writing superblocks; the superblocks were \
                          put back, so the array opens again once they are back"
                    .into(),
            });
        }
        {
            let mut on_disk = self.on_disk.locked();
            if on_disk.len() < n_dev {
                on_disk.resize(n_dev, None);
            }
            for (d, sb) in sbs.into_iter().enumerate() {
                if took[d] {
                    on_disk[d] = sb;
                }
            }
        }
        *persisted = Persisted {
            epoch,
            members,
            checkpoint,
            rebuild,
            resync_from,
        };
        self.write_epoch.store(epoch, Ordering::SeqCst);
        Ok(())
    }

    /// Writes back the superblocks the devices in `took` held before the last write (see
    /// `persist`). A device that held none of this array's (one given to it this session)
    /// gets both copies cleared, so it is not recognised at the next open, as before. Best
    /// effort: a device that fails now is failed anyway.
    fn roll_back(&self, took: &[bool]) {
        let before = self.on_disk.locked().clone();
        let mut sbs: Vec<Option<Superblock>> = vec![None; took.len()];
        let mut cleared = Vec::new();
        let mut flushes = Vec::new();
        for (d, &t) in took.iter().enumerate() {
            if !t {
                continue;
            }
            match before.get(d).cloned().flatten() {
                Some(sb) => sbs[d] = Some(sb),
                None => {
                    for &offset in SUPERBLOCK_OFFSETS.iter() {
                        cleared.push(IoOp::write(
                            d,
                            offset,
                            AlignedBuf::new(SUPERBLOCK_SIZE_BYTES),
                        ));
                    }
                    flushes.push(IoOp::flush(d));
                }
            }
        }
        let restored = sbs.iter().flatten().count();
        let mut failed = write_superblocks(self.io.as_ref(), &sbs)
            .into_iter()
            .flatten()
            .count();
        // The zeroed copies, then their flushes (a batch's operations are not ordered).
        for batch in [cleared, flushes] {
            failed += self
                .io
                .execute(batch)
                .into_iter()
                .filter(|c| c.result.is_err())
                .count();
        }
        tracing::warn!(
            restored,
            failed,
            "too few members left after a superblock write: the members that took it were \
             put back to the superblock before it"
        );
    }

    /// Reads both superblock copies of every working member and hot spare and names each
    /// copy that is not what the last superblock write put there: unreadable, not a
    /// superblock, another member's or array's, or of an older epoch (a misdirected write
    /// over it, or a lost one). The engine keeps the device states in memory, so such a copy
    /// shows only at the next open, where a member with both copies bad is not recognised.
    /// The superblock lock is not held over the reads (every completion's health
    /// bookkeeping takes it, and a slow device would stall them all): when a superblock
    /// write moved the epoch meanwhile the comparison is made again, up to three times,
    /// and then nothing is reported (the next check sees the new copies).
    pub(crate) fn check_superblocks(&self) -> Vec<BadSuperblock> {
        for _ in 0..3 {
            let (epoch, uuids) = {
                let p = self.persisted.locked();
                (p.epoch, p.members.iter().map(|m| m.0).collect::<Vec<_>>())
            };
            let bad = self.compare_superblocks(epoch, &uuids);
            if self.persisted.locked().epoch == epoch {
                return bad;
            }
        }
        Vec::new()
    }

    /// One pass of [`Array::check_superblocks`] against the array's superblock at `epoch`
    /// with the member device ids `uuids`.
    fn compare_superblocks(&self, epoch: u64, uuids: &[[u8; 16]]) -> Vec<BadSuperblock> {
        let mut entries: Vec<(usize, usize)> = (0..self.n())
            .filter_map(|slot| self.device_of_slot(slot as u32).map(|d| (slot, d)))
            .collect();
        entries.extend(self.spares.locked().iter().copied());
        let ops = entries
            .iter()
            .map(|&(_, d)| IoOp::read(d, 0, 2 * SUPERBLOCK_SIZE_BYTES))
            .collect();
        let mut bad = Vec::new();
        for (c, &(entry, d)) in self.io.execute(ops).into_iter().zip(&entries) {
            if let Err(e) = &c.result {
                // A spare that cannot be read is out of the spares: nothing to rewrite.
                if entry >= self.n() && !self.read_only && self.fail_spare(d, &e.to_string()) {
                    continue;
                }
                if entry < self.n() {
                    self.observe(entry, c.op.kind, c.latency, Some(e));
                    // The read failed the member (it stopped answering, or its errors
                    // passed the limits): out of service, its copies are not a finding
                    // about superblocks, and no rewrite would reach them.
                    if self.is_failed(entry) {
                        continue;
                    }
                }
                let why = format!("unreadable: {e}");
                for copy in 0..SUPERBLOCK_OFFSETS.len() {
                    bad.push(BadSuperblock {
                        entry,
                        copy,
                        why: why.clone(),
                    });
                }
                continue;
            }
            let copies: Vec<_> =
                c.op.buf
                    .chunks(SUPERBLOCK_SIZE_BYTES)
                    .map(Superblock::decode)
                    .collect();
            for (copy, decoded) in copies.iter().enumerate() {
                if self.read_only && interrupted_update(&copies, copy, epoch) {
                    continue;
                }
                // Both copies whole and at the same older epoch: a device that missed the
                // superblock writes of commands it was left out of (a hot spare not listed,
                // a member the open found stale), not damage. A writer's open rewrites them;
                // a read-only engine can only say so, and status does (STALE for a member).
                if self.read_only && behind_but_whole(&copies, epoch) {
                    continue;
                }
                let why = match decoded {
                    Err(e) => format!("not a superblock ({e})"),
                    Ok(sb) if sb.array_uuid != self.sb.array_uuid => "another array's".into(),
                    Ok(sb) if sb.device_slot as usize != entry => {
                        format!("slot {}'s, not this member's", sb.device_slot)
                    }
                    Ok(sb) if uuids.get(entry) != Some(&sb.device_uuid) => {
                        "another device's".into()
                    }
                    Ok(sb) if sb.copy_index as usize != copy => {
                        format!("copy {} written at copy {copy}'s place", sb.copy_index)
                    }
                    // A read-only engine beside a writer sees the writer's newer copies.
                    Ok(sb) if sb.epoch < epoch || sb.epoch > epoch && !self.read_only => {
                        format!("epoch {}, the array's is {epoch}", sb.epoch)
                    }
                    Ok(_) => continue,
                };
                bad.push(BadSuperblock { entry, copy, why });
            }
        }
        bad
    }
}

/// Whether copy `copy` of one device's superblock `copies` is what an unfinished superblock
/// write leaves: the writer writes and flushes copy 0 on every device before copy 1, so a
/// writer caught in between, still at work beside a read-only engine or stopped there by a
/// crash or a failed device, leaves copy 1 exactly one epoch behind a copy 0 at (or past)
/// the array's `epoch`. Not damage: the next writable open rewrites both copies. A
/// read-only engine cannot tell it from a lost write of copy 1; a writable scrub, whose
/// own superblock write came just before, reports that.
fn interrupted_update(
    copies: &[std::result::Result<Superblock, DecodeError>],
    copy: usize,
    epoch: u64,
) -> bool {
    let (Some(Ok(first)), Some(Ok(this))) = (copies.first(), copies.get(copy)) else {
        return false;
    };
    copy == 1
        && first.epoch >= epoch
        && this.epoch + 1 == first.epoch
        && this.array_uuid == first.array_uuid
        && this.device_uuid == first.device_uuid
        && this.device_slot == first.device_slot
        && this.copy_index == 1
}

/// Whether a device's superblock `copies` are both readable and at the same epoch, older
/// than the array's `epoch`: it missed superblock writes while it was left out, and holds
/// nothing damaged.
fn behind_but_whole(copies: &[std::result::Result<Superblock, DecodeError>], epoch: u64) -> bool {
    let mut epochs = copies.iter().map(|c| c.as_ref().ok().map(|s| s.epoch));
    match (epochs.next().flatten(), epochs.next().flatten()) {
        (Some(a), Some(b)) => a == b && a < epoch && epochs.next().is_none(),
        _ => false,
    }
}

/// One superblock copy of a member (or hot spare) that does not hold what the array last
/// wrote there, as [`Array::check_superblocks`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSuperblock {
    /// The member's slot, or a hot spare's member entry (at or after n).
    pub entry: usize,
    /// 0 or 1: the copy at 0 or at 4096.
    pub copy: usize,
    /// What is wrong with it.
    pub why: String,
}

/// What a device's superblocks say, without opening an array: Ok(Some(array uuid)) for a
/// member of some ectable array, Ok(None) for a device that holds none.
pub fn probe_device(dev: &dyn ectable_devices::BlockDevice) -> Result<Option<String>> {
    Ok(examine_device(dev)?.map(|m| m.array_uuid))
}

/// A device's view of its array, from the newer of its two superblock copies: what
/// `ectable examine` lists, and what `status` shows when too few members are present to
/// open the array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The uuid of the array the device belongs to, as text.
    pub array_uuid: String,
    /// This device's own uuid, as text.
    pub device_uuid: String,
    /// The data-bearing slot this device holds, or None for a hot spare.
    pub slot: Option<usize>,
    /// k: data chunks per stripe.
    pub data_shards: usize,
    /// m: parity chunks per stripe.
    pub parity_shards: usize,
    /// Data-bearing slots of the array (k + m).
    pub slots: usize,
    /// The superblock's epoch: among copies of one slot, the highest is the current one.
    pub epoch: u64,
    /// When the array was formatted, in seconds since the Unix epoch.
    pub created_unix_secs: u64,
    /// The device's capacity in bytes when it joined the array.
    pub capacity_bytes: u64,
    /// The superblock's format version (docs/format.md, "Version changes"): which builds
    /// can open the array.
    pub format_version: u32,
    /// Values stay inline (format version 6, superblock flags bit 0).
    pub inline_values: bool,
    /// Every member entry as this device last saw it: device uuid and state, slots first,
    /// then the spares.
    pub members: Vec<(String, &'static str)>,
}

/// Reads a device's superblocks: Ok(Some) for a member (or spare) of an ectable array,
/// Ok(None) for a device that holds no valid superblock; Err for a failed read, and
/// `Error::UnknownFormat` for a superblock of a format version this build does not read.
pub fn examine_device(dev: &dyn ectable_devices::BlockDevice) -> Result<Option<MemberInfo>> {
    Ok(newest_superblock(dev)?.map(|sb| member_info(&sb)))
}

/// [`examine_device`] for every device of `io` at once, through the I/O engine: a device
/// that does not answer within its deadline ([`IoBackend::set_io_timeout`]) gives
/// `DeviceError::TimedOut` and holds nothing up (with io_uring not even the process's exit).
pub fn examine_devices(io: &dyn IoBackend) -> Vec<Result<Option<MemberInfo>>> {
    read_superblocks(io)
        .into_iter()
        .zip(io.devices().iter())
        .map(|(r, d)| Ok(known_version(d.name(), r?)?.map(|sb| member_info(&sb))))
        .collect()
}

fn member_info(sb: &Superblock) -> MemberInfo {
    let slots = sb.device_count as usize;
    let slot = Some(sb.device_slot as usize).filter(|&i| i < slots);
    MemberInfo {
        array_uuid: uuid_string(&sb.array_uuid),
        device_uuid: uuid_string(&sb.device_uuid),
        slot,
        data_shards: sb.data_shards as usize,
        parity_shards: sb.parity_shards as usize,
        slots,
        epoch: sb.epoch,
        created_unix_secs: sb.created_unix_secs,
        capacity_bytes: sb.device_capacity_bytes,
        format_version: sb.format_version,
        inline_values: sb.flags & SB_FLAG_INLINE_VALUES != 0,
        members: sb
            .members
            .iter()
            .map(|(u, st)| (uuid_string(u), st.name()))
            .collect(),
    }
}

/// [`newest_superblock`] of a device handed to a running engine (online, replace, spare),
/// read on an I/O engine of its own with the array's deadline `timeout`: a device that
/// stopped answering fails the call with `DeviceError::TimedOut` instead of holding it.
pub(crate) fn newest_superblock_within(
    device: &Arc<dyn ectable_devices::BlockDevice>,
    timeout: Option<std::time::Duration>,
) -> Result<Option<Superblock>> {
    let Some(timeout) = timeout else {
        return newest_superblock(device.as_ref());
    };
    let io =
        ectable_devices::open_backend(ectable_devices::BackendKind::Psync, vec![device.clone()])?;
    io.set_io_timeout(Some(timeout));
    match read_superblocks(io.as_ref()).pop() {
        Some(read) => known_version(device.name(), read?),
        None => newest_superblock(device.as_ref()),
    }
}

/// A device's decoded superblock as an Option (None: no ectable superblock), but an error for
/// one of a format version this build does not read: such a device holds an array all the
/// same, and taking it as blank would write over it.
fn known_version(
    device: &str,
    decoded: std::result::Result<Superblock, DecodeError>,
) -> Result<Option<Superblock>> {
    match decoded {
        Ok(sb) => Ok(Some(sb)),
        Err(DecodeError::Version(v)) => Err(unknown_format(device.to_string(), v)),
        Err(_) => Ok(None),
    }
}

fn unknown_format(device: String, version: u32) -> Error {
    Error::UnknownFormat {
        device,
        version,
        newest: FORMAT_VERSION_INLINE,
    }
}

/// The newer of a device's two valid superblock copies (None: neither is valid).
pub(crate) fn newest_superblock(
    dev: &dyn ectable_devices::BlockDevice,
) -> Result<Option<Superblock>> {
    if dev.geometry().capacity_bytes < 2 * SUPERBLOCK_SIZE_BYTES as u64 {
        // Too small to hold one (see `read_superblocks`).
        return Ok(None);
    }
    let mut buf = AlignedBuf::new(2 * SUPERBLOCK_SIZE_BYTES);
    dev.read_at(&mut buf, 0)?;
    known_version(dev.name(), newest_copy(&buf))
}

/// The segment from which a device whose newest superblock is `sb` misses writes, by its
/// own record: the sync floor when that superblock was written, or its own resync or
/// rebuild cursor if earlier (what recovery takes for a member behind the others).
pub(crate) fn floor_by_own_superblock(sb: &Superblock) -> u64 {
    own_sync_floor(
        sb.sync_floor,
        &sb.resync_from,
        sb.rebuild,
        sb.device_slot as usize,
    )
}

/// Erases a device's superblocks and health block (the first megabyte), so that it no longer
/// belongs to any array. Used before reusing a device with `--force`.
pub fn wipe_device(dev: &dyn ectable_devices::BlockDevice) -> Result<()> {
    dev.write_at(&AlignedBuf::new(DATA_START_BYTES as usize), 0)?;
    dev.sync()?;
    Ok(())
}
