//! What `status` reports: every member's state, the array's health and space, the counters.

use crate::engine::Engine;
use crate::format::{uuid_string, MemberState, DATA_START_BYTES};
use crate::recovery::RecoveryStats;
use crate::sync::{MutexExt, RwLockExt};
use std::sync::atomic::Ordering;

/// A member's state as `status` reports it (zpool's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "SCREAMING_SNAKE_CASE"))]
pub enum DeviceState {
    /// In service (it may still have errors this session: see `in_service`).
    Online,
    /// Slow (suspect): reads go around it while k others can serve them.
    Degraded,
    /// Failed: I/O errors past the limits, a failed write or flush.
    Faulted,
    /// Being rebuilt onto (a replacement).
    Rebuilding,
    /// Present but missed writes while it was away: to be resynced (`rebuild`).
    Stale,
    /// Not present: left out of the devices given, or gone.
    Removed,
}

impl DeviceState {
    /// The word `status` prints: "ONLINE", "DEGRADED", ...
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Online => "ONLINE",
            DeviceState::Degraded => "DEGRADED",
            DeviceState::Faulted => "FAULTED",
            DeviceState::Rebuilding => "REBUILDING",
            DeviceState::Stale => "STALE",
            DeviceState::Removed => "REMOVED",
        }
    }
}

impl std::fmt::Display for DeviceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `state == "ONLINE"` reads as `status` prints.
impl PartialEq<&str> for DeviceState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The array's state as a whole, from its members (mdadm's and zpool's meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "SCREAMING_SNAKE_CASE"))]
pub enum ArrayState {
    /// Every member in service.
    Online,
    /// Some members out of service, no more than m: every byte readable, less redundancy.
    Degraded,
    /// More than m members out of service: some data cannot be read.
    Unavailable,
}

impl ArrayState {
    /// The word `status` prints: "ONLINE", "DEGRADED" or "UNAVAILABLE".
    pub fn as_str(self) -> &'static str {
        match self {
            ArrayState::Online => "ONLINE",
            ArrayState::Degraded => "DEGRADED",
            ArrayState::Unavailable => "UNAVAILABLE",
        }
    }
}

impl std::fmt::Display for ArrayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ArrayState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One member (a data-bearing slot) as status reports it.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeviceStatus {
    /// The slot (0..n) the member holds.
    pub slot: usize,
    /// The device's name (its path), or None when no device of the slot is present.
    pub path: Option<String>,
    /// The member's device uuid, as text.
    pub device_uuid: String,
    /// Its state.
    pub state: DeviceState,
    /// Why it is in that state and what to do, for people (empty when there is nothing to
    /// say).
    pub note: String,
    /// The device's capacity in bytes (0 when not present).
    pub capacity_bytes: u64,
    /// Device segments in use on it (log and checkpoint).
    pub used_segments: u32,
    /// Device segments per device.
    pub segment_count: u32,
    /// Read errors (EIO, short reads) seen this session.
    pub read_errors: u64,
    /// Write and flush errors seen this session.
    pub write_errors: u64,
    /// Chunks read from it that failed their checksum or identity check this session.
    pub checksum_errors: u64,
    /// Read errors over all sessions (kept in the member's health block).
    pub lifetime_read_errors: u64,
    /// Write and flush errors over all sessions.
    pub lifetime_write_errors: u64,
    /// Checksum and identity errors over all sessions.
    pub lifetime_checksum_errors: u64,
    /// The member holds every chunk it should and has shown no error this session: only
    /// such members count towards redundancy.
    pub in_service: bool,
    /// A stale member (or a missing one that will be, when it returns): the segment its
    /// resync starts at.
    pub resync_from: Option<u64>,
    /// Why writes to the device would be refused, found without writing
    /// ([`ectable_devices::BlockDevice::write_refused`]): a read-only block device, an
    /// immutable file. Reads still work; the first write of a writer fails the member.
    #[cfg_attr(feature = "serde", serde(default))]
    pub write_refused: Option<String>,
    /// Operations given up on the device at the I/O deadline that it has not completed yet
    /// (docs/design.md, "Devices that stop answering"): `online` refuses it until they are
    /// done.
    #[cfg_attr(feature = "serde", serde(default))]
    pub stuck_ops: u64,
}

impl Status {
    /// The array's state: every member that is not fully in service (missing, faulted,
    /// stale, rebuilding, slow, or with errors this session) counts against the m it may
    /// lose (`ectable status` exits 0, 1 or 2 by it).
    pub fn state(&self) -> ArrayState {
        let out = self.devices.iter().filter(|d| !d.in_service).count();
        if out == 0 {
            ArrayState::Online
        } else if out <= self.parity_shards {
            ArrayState::Degraded
        } else {
            ArrayState::Unavailable
        }
    }

    /// The share of [`Status::fillable_bytes`] taken (at most 1: the live count is an
    /// upper bound, each record counted with its table name), and the record bytes still
    /// free for new data once the cleaner has reclaimed the garbage. Taken are the live
    /// data and the garbage the backup horizon keeps from the cleaner until the next backup.
    /// None when the status does not say (from a node of an older build).
    pub fn fill(&self) -> Option<(f64, u64)> {
        let taken = self.live_bytes + self.backup_horizon.garbage_bytes;
        (self.fillable_bytes > 0).then(|| {
            (
                (taken as f64 / self.fillable_bytes as f64).min(1.0),
                self.fillable_bytes.saturating_sub(taken),
            )
        })
    }

    /// The share of the fillable bytes at and above which status warns that the array is
    /// nearly full.
    pub const NEARLY_FULL: f64 = 0.95;
}

/// A snapshot of the array's state, space and counters ([`Engine::status`]); what
/// `ectable status` prints.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Status {
    /// The array's uuid, as text.
    pub array_uuid: String,
    /// The superblocks' epoch: raised at every superblock write (a new session, a member's
    /// state change, a checkpoint).
    pub epoch: u64,
    /// k: data chunks per stripe.
    pub data_shards: usize,
    /// m: parity chunks per stripe.
    pub parity_shards: usize,
    /// Chunk size in bytes.
    pub chunk_size_bytes: u32,
    /// The superblock's format version (docs/format.md, "Version changes"): 1 without a sync
    /// journal, 5 by default, 6 when values stay inline.
    pub format_version: u32,
    /// The writer keeps every value inline (format version 6, superblock flags bit 0).
    pub inline_values: bool,
    /// Device segment size in bytes.
    pub segment_size_bytes: u32,
    /// Every data-bearing slot, in slot order.
    pub devices: Vec<DeviceStatus>,
    /// Hot spares present (paths).
    pub spares: Vec<String>,
    /// Hot spares the array's superblock names that no device given carries (their device
    /// ids): a spare that died, was wiped or was left out of the list. `replace` and the
    /// automatic policy cannot count on it.
    #[cfg_attr(feature = "serde", serde(default))]
    pub spares_missing: Vec<String>,
    /// Hot spares present whose device refuses writes now (name, why; found without writing,
    /// as [`DeviceStatus::write_refused`]): a replacement onto one fails at its first write,
    /// so neither `replace` nor the automatic policy counts on it.
    #[cfg_attr(feature = "serde", serde(default))]
    pub spares_write_refused: Vec<(String, String)>,
    /// Superblock copies that are not what the array last wrote (`slot 2 (d2.img)
    /// superblock copy 1: ...`): empty from [`Engine::status`], which does no I/O; the
    /// `status` command fills it from [`Engine::check_superblocks`].
    #[cfg_attr(feature = "serde", serde(default))]
    pub bad_superblocks: Vec<String>,
    /// What the engine does when a member is lost (`RecoveryPolicy::as_str`): "manual",
    /// "semi-automatic" or "automatic" (a hot spare takes the slot at once).
    #[cfg_attr(feature = "serde", serde(default))]
    pub recovery_policy: String,
    /// Devices given that are neither members nor spares: (name, why).
    pub unrecognised: Vec<(String, String)>,
    /// Those of them a replacement took out of the array while it was open (a `replace`,
    /// or a hot spare taking a lost member's slot): no longer members and no longer held,
    /// so a device list to reopen from must leave them out.
    #[cfg_attr(feature = "serde", serde(default))]
    pub replaced: Vec<String>,
    /// Those of them that hold no valid superblock: blank devices, or members whose two
    /// superblock copies were both overwritten.
    #[cfg_attr(feature = "serde", serde(default))]
    pub blank: Vec<String>,
    /// Devices that can still be lost before data is (for the worst stripe).
    pub redundancy_left: usize,
    /// Bytes of all members together (a missing one counted as the part the array uses).
    pub raw_capacity_bytes: u64,
    /// Record bytes the data segments hold at most (parity, headers excluded).
    pub usable_capacity_bytes: u64,
    /// Usable bytes of the segments allocated (log and checkpoint).
    pub used_bytes: u64,
    /// Bytes of the records the index points at (padded as stored).
    pub live_bytes: u64,
    /// Bytes of log segments no record needs any more: overwritten and deleted records,
    /// padding; the cleaner reclaims them.
    pub garbage_bytes: u64,
    /// Segments (of k + m device segments) that can still be allocated, of `total_segments`.
    pub free_segments: usize,
    /// Segments the array holds in all.
    pub total_segments: usize,
    /// Free segments foreground writes may not take (kept for the cleaner).
    pub reserved_segments: usize,
    /// Record bytes the live data may fill at most: the segments less the reserve and the
    /// checkpoint in force (stripe ends lose a little more). Writes of new data are refused
    /// as the live data reaches it, and well before, the cleaner moves several bytes for
    /// each byte overwritten ([`Status::fill`]).
    #[cfg_attr(feature = "serde", serde(default))]
    pub fillable_bytes: u64,
    /// LSN of the index checkpoint in force (0: none).
    pub checkpoint_lsn: u64,
    /// Segments the checkpoint in force takes.
    pub checkpoint_segments: u32,
    /// Bytes the engine expects the next checkpoint to take: what the reserve keeps room for
    /// (docs/design.md, "Space reclamation").
    pub checkpoint_estimate_bytes: u64,
    /// What the cleaner has done since open.
    pub cleaner: crate::space::mailbox::CleanerStats,
    /// Keys in all tables (system tables included).
    pub keys: usize,
    /// Tables holding at least one key (system tables included).
    pub tables: usize,
    /// The LSN the next write will get.
    pub next_lsn: u64,
    /// Every write up to this LSN is durable.
    pub durable_lsn: u64,
    /// What the log replay at open did.
    pub recovery: RecoveryStats,
    /// Stripes written since open.
    pub stripes_written: u64,
    /// Of those, stripes sealed early because a writer waited for durability (short stripes).
    pub short_stripes_written: u64,
    /// Records written since open that continue in the next stripe (format version 5:
    /// docs/format.md, "Records that continue in the next stripe").
    pub records_continued: u64,
    /// Sync journal entries written since open (each acknowledged a sync on m + 1 members
    /// instead of a short stripe on all w).
    pub journal_entries_written: u64,
    /// The part of `journal_entries_written` a syncing caller wrote itself, from its own
    /// thread, because the flusher was idle (docs/design.md, "Small synced writes").
    pub journal_entries_by_caller: u64,
    /// Chunk bytes written since open, parity and headers included.
    pub chunk_bytes_written: u64,
    /// Payload bytes (records, as padded in their stripes) written since open.
    pub payload_bytes_written: u64,
    /// The part of `payload_bytes_written` that index checkpoints wrote.
    pub checkpoint_bytes_written: u64,
    /// Index entries changed by writes while an index checkpoint was being taken, since
    /// open: the index kept each one's earlier state for the checkpoint's image, so that the
    /// writes did not wait for it (docs/design.md, "Index checkpoints are taken beside
    /// writers").
    pub checkpoint_pre_images: u64,
    /// Record reads the fast path could not serve (taken by the slow path) since open.
    pub degraded_reads: u64,
    /// Chunks rewritten by read-repair since open.
    pub read_repairs: u64,
    /// Optimistic reads (a read queue's, a streaming scan's) looked up again since open: the
    /// cleaner had moved the record while the read was in flight, or its bytes failed the
    /// check; the ordinary path, with its repairs, read it then.
    pub reads_looked_again: u64,
    /// Stripes written with fewer than k + m chunks since open.
    pub degraded_writes: u64,
    /// Probe rounds run by the monitor thread since open.
    pub probes: u64,
    /// Devices failed by a probe since open.
    pub probe_failures: u64,
    /// Probe rounds that found a superblock copy spoiled (unreadable, not the member's, or
    /// of an older epoch) and rewrote the superblocks, since open.
    pub superblocks_rewritten: u64,
    /// Per slot: smoothed I/O latency in nanoseconds (whether a device is suspect is its
    /// state, `Degraded`).
    pub latency_ewma_ns: Vec<u64>,
    /// Per slot: how often this session found the device slow (suspect).
    pub slow_events: Vec<u64>,
    /// A write failed and the writer stopped (it refuses commits until the array is
    /// reopened): why. Reads go on. Also set (to "the engine is closed") once the engine
    /// is closed.
    #[cfg_attr(feature = "serde", serde(default))]
    pub writes_stopped: Option<String>,
    /// The I/O backend the devices run on: "uring" or "psync".
    pub io_engine: String,
    /// The file systems under members that are sparse files (or loop devices over sparse
    /// files), one entry per file system: what those files still need to be written in
    /// full, and the room the file system has (thin provisioning).
    #[cfg_attr(feature = "serde", serde(default))]
    pub backing: Vec<BackingFs>,
    /// The codec's inner loop on this CPU: "avx2", "ssse3" or "portable".
    pub codec_kernel: String,
    /// A rebuild in progress: (slot, next segment id).
    pub rebuild: Option<(usize, u64)>,
    /// Garbage the backup horizon keeps from the cleaner.
    pub backup_horizon: crate::space::HorizonHold,
    /// The array's last completed scrub (kept in the health blocks across sessions).
    pub last_scrub: Option<crate::format::health_block::ScrubRecord>,
    /// The array's last completed rebuild or resync of a slot (kept in the health blocks).
    #[cfg_attr(feature = "serde", serde(default))]
    pub last_rebuild: Option<crate::format::health_block::RebuildRecord>,
    /// A scrub or rebuild running in this process now, with how far it is.
    pub scan_in_progress: Option<ScanProgress>,
}

/// One file system under sparse member files ([`Status::backing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BackingFs {
    /// The slots whose files it holds.
    pub slots: Vec<usize>,
    /// Bytes those files hold no blocks for yet (each file's size less what it holds).
    pub unallocated_bytes: u64,
    /// Bytes the file system still has for them.
    pub free_bytes: u64,
    /// The room is short of what the files need: writes will fail with ENOSPC before the
    /// array is full.
    pub short: bool,
    /// The room left would not hold one more segment on each of these members: new
    /// writes fail now (the array is read-only in effect until it is given room).
    pub full: bool,
}

impl BackingFs {
    /// The members' backing files, grouped by file system; only file systems under files
    /// that are still sparse.
    pub(crate) fn of(a: &crate::array::Array) -> Vec<BackingFs> {
        let mut out: Vec<(u64, BackingFs)> = Vec::new();
        for slot in 0..a.n() {
            let Some(d) = a.present_device(slot) else {
                continue;
            };
            let Some(space) = a.io.devices().get(d).and_then(|dev| dev.backing_space()) else {
                continue;
            };
            if space.unallocated_bytes == 0 {
                continue;
            }
            match out.iter_mut().find(|(id, _)| *id == space.fs_id) {
                Some((_, fs)) => {
                    fs.slots.push(slot);
                    fs.unallocated_bytes += space.unallocated_bytes;
                    fs.free_bytes = fs.free_bytes.min(space.fs_free_bytes);
                }
                None => out.push((
                    space.fs_id,
                    BackingFs {
                        slots: vec![slot],
                        unallocated_bytes: space.unallocated_bytes,
                        free_bytes: space.fs_free_bytes,
                        short: false,
                        full: false,
                    },
                )),
            }
        }
        let segment = a.layout.segment_bytes() as u64;
        out.into_iter()
            .map(|(_, mut fs)| {
                fs.short = fs.unallocated_bytes > fs.free_bytes;
                fs.full = fs.short && fs.free_bytes < segment * fs.slots.len() as u64;
                fs
            })
            .collect()
    }
}

/// A scrub or rebuild running now ([`Status::scan_in_progress`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ScanProgress {
    /// "scrub" or "rebuild".
    pub kind: String,
    /// Bytes read so far.
    pub bytes_done: u64,
    /// Bytes it will read (a bound).
    pub bytes_total: u64,
    /// How long it has run, in milliseconds.
    pub elapsed_ms: u64,
}

impl Engine {
    /// Whether the engine was opened read-only (it writes nothing).
    pub fn is_read_only(&self) -> bool {
        self.shared.array.read_only
    }

    /// A snapshot of the array: members, space, counters.
    pub fn status(&self) -> Status {
        let s = &self.shared;
        let a = &s.array;
        let st = s.lock_state();
        let mut used_per_slot = vec![0u32; a.n()];
        for (slot, f) in st.free().free.iter().enumerate() {
            used_per_slot[slot] = a.segment_count() - f.len() as u32;
        }
        let (next_lsn, durable_lsn) = (st.next_lsn(), st.acked_lsn());
        // A closed engine takes no writes either (a node whose reopen failed keeps one).
        let writes_stopped = st.failure().map(str::to_string).or_else(|| {
            s.closed
                .load(Ordering::SeqCst)
                .then(|| "the engine is closed".to_string())
        });
        let free_segments = st.free().allocatable(a.w());
        let cursor = st.cursor().map(|c| (c.segment.id, c.offset as u64));
        drop(st);
        let backup_horizon = self.backup_horizon_hold();
        let reserved_segments = s.reserve_segments();
        // Before the index guard below: it reads the index itself (a second read guard on
        // one thread deadlocks once a writer waits between the two).
        let checkpoint_estimate_bytes = s.checkpoint_estimate_bytes();
        let seg_cap = a.layout.log_segment_payload() as u64;
        let log_segments: Vec<u64> = s
            .segments
            .read_locked()
            .values()
            .filter(|g| g.kind == crate::format::SegmentKind::Log)
            .map(|g| g.id)
            .collect();
        let persisted = a.persisted.locked().clone();
        // Who finishes a rebuild or resync: the one running now, the monitor (the automatic
        // recovery policy), or the operator.
        let rebuilding_now = matches!(
            self.ops.activity.locked().as_ref(),
            Some((crate::ops::ActivityKind::Rebuild, ..))
        );
        let finish = if rebuilding_now {
            "in progress now"
        } else if self.recovery_policy == crate::prober::RecoveryPolicy::Automatic {
            "the recovery policy (automatic) runs it"
        } else {
            "run 'ectable rebuild'"
        };
        let devices: Vec<DeviceStatus> = (0..a.n())
            .map(|slot| {
                let dev = a.present_device(slot);
                let c = &a.counters[slot];
                let [lifetime_read, lifetime_write, lifetime_checksum] = a.lifetime_errors(slot);
                let errors = c.read_errors.load(Ordering::Relaxed)
                    + c.write_errors.load(Ordering::Relaxed)
                    + c.checksum_errors.load(Ordering::Relaxed);
                let resync_from = Some(persisted.resync_from[slot]).filter(|f| *f != 0);
                let rebuilding = persisted.rebuild.filter(|(s, _)| *s as usize == slot);
                let (state, note) = match dev {
                    None => (
                        DeviceState::Removed,
                        match resync_from {
                            Some(f) => format!(
                                "device not present; missed writes from segment {f} on (resynced when it returns)"
                            ),
                            None => "device not present".to_string(),
                        },
                    ),
                    Some(_) if a.is_failed(slot) => (DeviceState::Faulted, {
                        let why = a.failed_why(slot);
                        if why.is_empty() {
                            "I/O errors".to_string()
                        } else {
                            why
                        }
                    }),
                    Some(_) if rebuilding.is_some() => (
                        DeviceState::Rebuilding,
                        format!(
                            "rebuild from segment {}: {finish}",
                            rebuilding.map_or(0, |r| r.1)
                        ),
                    ),
                    Some(_) if resync_from.is_some() => (
                        DeviceState::Stale,
                        format!(
                            "missed writes from segment {} on; resync: {finish}",
                            resync_from.unwrap_or(0)
                        ),
                    ),
                    Some(_) if a.is_suspect(slot) => {
                        (DeviceState::Degraded, "suspect: slow, reads avoid it".to_string())
                    }
                    Some(_) => match persisted.members[slot].1 {
                        MemberState::Online => (
                            DeviceState::Online,
                            if errors > 0 {
                                "errors seen: check it with 'ectable scrub --repair'".to_string()
                            } else if a.slow_last_session[slot] {
                                "was slow in the last session; not slow now".to_string()
                            } else {
                                String::new()
                            },
                        ),
                        MemberState::Failed => (DeviceState::Faulted, String::new()),
                        MemberState::Rebuilding => (DeviceState::Rebuilding, String::new()),
                        MemberState::Suspect => (DeviceState::Degraded, String::new()),
                        MemberState::Absent => (DeviceState::Removed, String::new()),
                        // A spare's entry in a data slot: what replace makes it, online.
                        MemberState::Spare => (DeviceState::Online, String::new()),
                    },
                };
                // Found without writing (a read-only session tries no write): the next
                // writer would fail the member at once.
                let write_refused = dev
                    .filter(|_| state != DeviceState::Faulted)
                    .and_then(|d| a.io.devices()[d].write_refused());
                let note = match &write_refused {
                    Some(w) if note.is_empty() => w.clone(),
                    Some(w) => format!("{note}; {w}"),
                    None => note,
                };
                let stuck_ops = dev.map_or(0, |d| a.io.stuck_ops(d));
                let note = match stuck_ops {
                    0 => note,
                    n => {
                        let stuck = format!(
                            "{n} operation(s) given up at the I/O deadline not yet seen to end"
                        );
                        if note.is_empty() {
                            stuck
                        } else {
                            format!("{note}; {stuck}")
                        }
                    }
                };
                DeviceStatus {
                    stuck_ops,
                    write_refused,
                    in_service: state == DeviceState::Online && errors == 0,
                    resync_from,
                    slot,
                    path: dev.map(|d| a.io.devices()[d].name().to_string()),
                    device_uuid: uuid_string(&a.sb.members[slot].0),
                    state,
                    note,
                    capacity_bytes: dev.map_or(0, |d| a.io.devices()[d].geometry().capacity_bytes),
                    used_segments: used_per_slot[slot],
                    segment_count: a.segment_count(),
                    read_errors: c.read_errors.load(Ordering::Relaxed),
                    write_errors: c.write_errors.load(Ordering::Relaxed),
                    checksum_errors: c.checksum_errors.load(Ordering::Relaxed),
                    lifetime_read_errors: lifetime_read,
                    lifetime_write_errors: lifetime_write,
                    lifetime_checksum_errors: lifetime_checksum,
                }
            })
            .collect();
        // Every member not fully in service counts against the redundancy.
        let lost = devices.iter().filter(|d| !d.in_service).count();
        let seg_bytes = a.segment_size() as u64 * a.segment_count() as u64;
        // Raw capacity: what the devices present really hold (sizes may differ); a missing
        // device counts as the part the array uses of it.
        let raw: u64 = (0..a.n())
            .map(|slot| match a.present_device(slot) {
                Some(d) => a.io.devices()[d].geometry().capacity_bytes,
                None => seg_bytes + DATA_START_BYTES,
            })
            .sum();
        let usable = seg_bytes * a.n() as u64 * a.k() as u64 / a.w() as u64;
        let used_segs: u64 = used_per_slot.iter().map(|u| *u as u64).sum();
        let index = s.index.read_locked();
        let live_bytes = index.total_live_bytes();
        // Garbage: what the log segments hold beyond their live records; the segment being
        // written counts only up to the cursor.
        let seg_span = a.layout.segment_stripe_space() as u64;
        let written: u64 = log_segments
            .iter()
            .map(|id| match cursor {
                Some((cid, off)) if cid == *id => {
                    seg_cap * off.saturating_sub(crate::format::SEGMENT_HEADER_SIZE_BYTES as u64)
                        / seg_span
                }
                _ => seg_cap,
            })
            .sum();
        // Each lock is taken and released on its own: `persist` takes the persisted state and
        // then the spares, so holding the spares while asking for the persisted state (or the
        // other way round) could deadlock with a writer starting a session.
        let spare_devices: Vec<usize> = a.spares.locked().iter().map(|(_, d)| *d).collect();
        let spares: Vec<String> = spare_devices
            .iter()
            .map(|d| a.io.devices()[*d].name().to_string())
            .collect();
        let spares_write_refused: Vec<(String, String)> = spare_devices
            .iter()
            .filter_map(|d| {
                let dev = &a.io.devices()[*d];
                dev.write_refused().map(|why| (dev.name().to_string(), why))
            })
            .collect();
        let spares_missing: Vec<String> = {
            let entries = a.missing_spare_entries();
            let p = a.persisted.locked();
            // (A replace may have taken a spare's entry out between the two locks.)
            entries
                .into_iter()
                .filter_map(|e| p.members.get(e).map(|m| uuid_string(&m.0)))
                .collect()
        };
        // A replaced device given back under the same name (as a spare, say) is that again:
        // its released handle's entries are not shown.
        let in_array = |name: &str| {
            spares.iter().any(|s| s == name)
                || devices.iter().any(|m| m.path.as_deref() == Some(name))
        };
        let unrecognised: Vec<(String, String)> = a
            .unrecognised
            .locked()
            .iter()
            .map(|(d, why)| (a.io.devices()[*d].name().to_string(), why.clone()))
            .filter(|(name, _)| !in_array(name))
            .collect();
        let blank: Vec<String> = a
            .unrecognised
            .locked()
            .iter()
            .filter(|(d, _)| a.blank.contains(d))
            .map(|(d, _)| a.io.devices()[*d].name().to_string())
            .filter(|name| !in_array(name))
            .collect();
        let replaced: Vec<String> = a
            .replaced
            .locked()
            .iter()
            .map(|d| a.io.devices()[*d].name().to_string())
            .filter(|name| !in_array(name))
            .collect();
        let rebuild = self.rebuild_in_progress();
        let (_, checkpoint_segments, checkpoint_lsn) = a.persisted.locked().checkpoint;
        let total_segments = a.segment_count() as usize * a.n() / a.w();
        let c = &s.counters;
        Status {
            recovery_policy: self.recovery_policy.as_str().to_string(),
            array_uuid: uuid_string(&a.sb.array_uuid),
            epoch: a.epoch(),
            data_shards: a.k(),
            parity_shards: a.m(),
            chunk_size_bytes: a.sb.chunk_size_bytes,
            format_version: a.sb.format_version,
            inline_values: a.inline_values(),
            segment_size_bytes: a.sb.segment_size_bytes,
            devices,
            spares,
            spares_missing,
            spares_write_refused,
            bad_superblocks: Vec::new(),
            unrecognised,
            replaced,
            blank,
            redundancy_left: a.m().saturating_sub(lost),
            raw_capacity_bytes: raw,
            usable_capacity_bytes: usable,
            used_bytes: used_segs * a.segment_size() as u64 * a.k() as u64 / a.w() as u64,
            live_bytes,
            garbage_bytes: written.saturating_sub(live_bytes),
            free_segments,
            total_segments,
            reserved_segments,
            fillable_bytes: (total_segments
                .saturating_sub(reserved_segments + checkpoint_segments as usize)
                as u64)
                * seg_cap,
            checkpoint_lsn,
            checkpoint_segments,
            checkpoint_estimate_bytes,
            cleaner: s.cleaner.stats(),
            keys: index.key_count(),
            tables: index.tables.values().filter(|t| !t.is_empty()).count(),
            next_lsn,
            durable_lsn,
            recovery: self.recovery_stats().clone(),
            stripes_written: c.stripes_written.load(Ordering::Relaxed),
            short_stripes_written: c.short_stripes_written.load(Ordering::Relaxed),
            records_continued: c.records_continued.load(Ordering::Relaxed),
            journal_entries_written: c.journal_entries_written.load(Ordering::Relaxed),
            journal_entries_by_caller: c.journal_entries_by_caller.load(Ordering::Relaxed),
            chunk_bytes_written: c.chunk_bytes_written.load(Ordering::Relaxed),
            payload_bytes_written: c.payload_bytes_written.load(Ordering::Relaxed),
            checkpoint_bytes_written: c.checkpoint_bytes_written.load(Ordering::Relaxed),
            checkpoint_pre_images: c.checkpoint_pre_images.load(Ordering::Relaxed),
            degraded_reads: c.degraded_reads.load(Ordering::Relaxed),
            reads_looked_again: c.reads_looked_again.load(Ordering::Relaxed),
            read_repairs: c.read_repairs.load(Ordering::Relaxed),
            probes: c.probes.load(Ordering::Relaxed),
            probe_failures: c.probe_failures.load(Ordering::Relaxed),
            superblocks_rewritten: c.superblocks_rewritten.load(Ordering::Relaxed),
            latency_ewma_ns: a
                .health
                .iter()
                .map(|h| h.latency_ewma_ns.load(Ordering::Relaxed))
                .collect(),
            slow_events: a
                .health
                .iter()
                .map(|h| h.slow_events.load(Ordering::Relaxed))
                .collect(),
            degraded_writes: c.degraded_writes.load(Ordering::Relaxed),
            io_engine: a.io.name().to_string(),
            backing: BackingFs::of(a),
            writes_stopped,
            codec_kernel: crate::codec::Kernel::selected().name().to_string(),
            rebuild,
            backup_horizon,
            last_scrub: *a.last_scrub.locked(),
            last_rebuild: *a.last_rebuild.locked(),
            scan_in_progress: self
                .ops
                .activity
                .locked()
                .as_ref()
                .map(|(kind, started, p)| ScanProgress {
                    kind: kind.as_str().to_string(),
                    bytes_done: p.bytes_scanned,
                    bytes_total: p.bytes_total,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                }),
        }
    }
}
