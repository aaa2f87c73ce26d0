//! The public engine handle: open, put/delete/batch, sync, get/scan, status, close.
//!
//! Invariants:
//! - `sync` (and every `*_sync` call) returns Ok only when every record appended before it
//!   is durable on at least `min_write_shards` devices of its stripe.
//! - Every byte returned by `get`/`scan` was checked against the crc the index holds, and
//!   the record's LSN, table and key; on mismatch the stripe is rebuilt from parity.

use crate::array::Array;
use crate::error::{Error, Result};
use crate::format::{uuid_string, MemberState, DATA_START_BYTES};
use crate::index::{IndexEntry, Place, RecordLoc};
use crate::log::state::WriterState;
use crate::log::stripe::{
    assemble, read_stripe_chunks, rebuild_chunks, ChunkSources, StripeOutcome,
};
use crate::log::writer::{clamp_batch, Mutation};
use crate::rebuild::{Progress, RebuildOptions, ScrubReport};
use crate::recovery::{recover, RecoveryStats};
use crate::segments::SegmentInfo;
use crate::shared::{EngineCounters, Shared};
use crate::space::{BACKUP_TABLE, HORIZON_KEY, RESTORE_KEY};
use ectable_devices::IoBackend;
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;

/// How to open an array.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Open without writing anything (not even a new superblock epoch).
    pub read_only: bool,
    /// The fewest chunks of a stripe that must be written and flushed for a commit to count
    /// (0 means k: the stripe is readable but has no redundancy left when only k succeed).
    pub min_write_shards: usize,
    /// Stripes written per flush batch (1..=64).
    pub max_batch_stripes: usize,
    /// Failure detection: which detectors run and their thresholds.
    pub health: crate::health::HealthPolicy,
    /// What happens when a device is lost (hot spares are used by the automatic policy).
    pub recovery: crate::prober::RecoveryPolicy,
    /// Segment cleaning and periodic index checkpoints.
    pub cleaner: crate::cleaner::CleanerOptions,
    /// Open an array that holds an unfinished restore (only `restore` itself does).
    pub allow_incomplete_restore: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            read_only: false,
            min_write_shards: 0,
            max_batch_stripes: 16,
            health: crate::health::HealthPolicy::default(),
            recovery: crate::prober::RecoveryPolicy::default(),
            cleaner: crate::cleaner::CleanerOptions::default(),
            allow_incomplete_restore: false,
        }
    }
}

/// A set of mutations committed atomically (they share one stripe).
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    ops: Vec<(String, Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }
    pub fn put(&mut self, table: &str, key: &[u8], value: &[u8]) -> &mut Self {
        self.ops
            .push((table.to_string(), key.to_vec(), Some(value.to_vec())));
        self
    }
    pub fn delete(&mut self, table: &str, key: &[u8]) -> &mut Self {
        self.ops.push((table.to_string(), key.to_vec(), None));
        self
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// One device as status reports it.
#[derive(Debug, Clone)]
pub struct DeviceStatus {
    pub slot: usize,
    pub path: Option<String>,
    pub device_uuid: String,
    pub state: &'static str,
    pub note: String,
    pub capacity_bytes: u64,
    pub used_segments: u32,
    pub segment_count: u32,
    pub read_errors: u64,
    pub write_errors: u64,
    pub checksum_errors: u64,
    /// The member holds every chunk it should and has shown no error this session: only
    /// such members count towards redundancy.
    pub in_service: bool,
    /// A stale member (or a missing one that will be, when it returns): the segment its
    /// resync starts at.
    pub resync_from: Option<u64>,
}

/// A snapshot of the array's state.
#[derive(Debug, Clone)]
pub struct Status {
    pub array_uuid: String,
    pub epoch: u64,
    pub data_shards: usize,
    pub parity_shards: usize,
    pub chunk_size_bytes: u32,
    pub segment_size_bytes: u32,
    pub devices: Vec<DeviceStatus>,
    /// Hot spares present (paths).
    pub spares: Vec<String>,
    pub unrecognised: Vec<(String, String)>,
    /// Devices that can still be lost before data is (for the worst stripe).
    pub redundancy_left: usize,
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
    pub total_segments: usize,
    /// Free segments foreground writes may not take (kept for the cleaner).
    pub reserved_segments: usize,
    /// LSN of the index checkpoint in force (0: none).
    pub checkpoint_lsn: u64,
    pub cleaner: crate::space::mailbox::CleanerStats,
    pub keys: usize,
    pub tables: usize,
    pub next_lsn: u64,
    pub durable_lsn: u64,
    pub recovery: RecoveryStats,
    pub stripes_written: u64,
    pub short_stripes_written: u64,
    pub chunk_bytes_written: u64,
    pub payload_bytes_written: u64,
    pub degraded_reads: u64,
    pub read_repairs: u64,
    pub degraded_writes: u64,
    pub probes: u64,
    pub probe_failures: u64,
    /// Per slot: smoothed latency (ns) and whether the device is suspect (slow).
    pub latency_ewma_ns: Vec<u64>,
    pub io_engine: &'static str,
    /// A rebuild in progress: (slot, next segment id).
    pub rebuild: Option<(usize, u64)>,
    /// Garbage the backup horizon keeps from the cleaner.
    pub backup_horizon: crate::space::HorizonHold,
}

pub struct Engine {
    pub(crate) shared: Arc<Shared>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    #[allow(clippy::type_complexity)]
    prober: Mutex<
        Option<(
            JoinHandle<()>,
            Arc<crate::prober::StopSignal>,
            Arc<std::sync::atomic::AtomicBool>,
        )>,
    >,
    cleaner: Mutex<Option<JoinHandle<()>>>,
    cleaner_opts: crate::cleaner::CleanerOptions,
    recovery: RecoveryStats,
}

impl Engine {
    /// Opens the array on the devices of `io`: identifies them, replays the log, and (unless
    /// read-only) starts a new write epoch and the flusher thread.
    ///
    /// A read-only open takes no lock, so another process may write while it reads: when
    /// what it reads stops matching because the array moved on, it starts over (a few times)
    /// and then fails with [`Error::ArrayChanged`], never with `DataLost` (engine/src/reader.rs).
    pub fn open(io: Arc<dyn IoBackend>, opts: EngineOptions) -> Result<Engine> {
        if !opts.read_only {
            return Engine::open_once(io, opts);
        }
        let mut attempt = 0;
        loop {
            match Engine::open_once(io.clone(), opts.clone()) {
                Ok(mut e) => {
                    e.recovery.reopened_after_change = attempt;
                    return Ok(e);
                }
                Err(Error::ArrayChanged { detail })
                    if attempt + 1 < crate::reader::READ_ONLY_OPEN_ATTEMPTS =>
                {
                    tracing::info!("the array changed while it was opened ({detail}); again");
                    attempt += 1;
                }
                Err(Error::ArrayChanged { detail }) => {
                    return Err(Error::ArrayChanged {
                        detail: format!(
                            "it changed during each of {} attempts to open it, the last: {detail}",
                            attempt + 1
                        ),
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn open_once(io: Arc<dyn IoBackend>, opts: EngineOptions) -> Result<Engine> {
        let mut array = Array::open(io, opts.read_only)?;
        array.policy = opts.health.clone();
        let rec = match recover(&array) {
            Ok(rec) => rec,
            Err(e) if array.read_only && crate::reader::may_be_a_change(&e) => {
                return Err(match crate::reader::changed_since_open(&array, None) {
                    Some(detail) => Error::ArrayChanged { detail },
                    None => e,
                })
            }
            Err(e) => return Err(e),
        };
        let k = array.k();
        let min_write_shards = if opts.min_write_shards == 0 {
            k
        } else {
            opts.min_write_shards
        };
        if min_write_shards < k || min_write_shards > array.w() {
            return Err(Error::InvalidArgument(format!(
                "min_write_shards must be between k={k} and k+m={}",
                array.w()
            )));
        }
        // Nothing this session writes lies below the segment the log goes on in (or the next
        // one), except the repairs its first write makes in the replayed log.
        let mut floor = rec
            .cursor
            .as_ref()
            .map_or(rec.next_segment_id, |c| c.segment.id);
        for (seg, ..) in &rec.repairs.stripes {
            floor = floor.min(seg.id);
        }
        for (h, _) in &rec.repairs.headers {
            floor = floor.min(h.segment_id);
        }
        array.set_sync_floor(floor);
        let segments: HashMap<u64, Arc<SegmentInfo>> = rec
            .segments
            .iter()
            .map(|(id, s)| (*id, s.clone()))
            .collect();
        let state = WriterState {
            open: None,
            cursor: rec.cursor,
            free: rec.free,
            next_lsn: rec.next_lsn,
            next_segment_id: rec.next_segment_id,
            sealed: Default::default(),
            durable_lsn: rec.next_lsn - 1,
            sync_wanted_lsn: 0,
            error: None,
            closing: false,
            flusher_done: opts.read_only,
            writing_started: false,
            pending_discard: rec.discarded,
            pending: HashMap::new(),
            next_stripe_seq: 0,
            pending_repairs: rec.repairs,
            paused: false,
            segment_max_lsn: rec.segment_max_lsn,
            cleaner_exclusive: false,
            unflushed_segments: Default::default(),
        };
        let shared = Arc::new(Shared {
            array,
            segments: RwLock::new(segments),
            index: RwLock::new(rec.index),
            state: Mutex::new(state),
            work_cv: Condvar::new(),
            durable_cv: Condvar::new(),
            counters: EngineCounters::default(),
            min_write_shards,
            max_batch_stripes: clamp_batch(opts.max_batch_stripes),
            chunk_pool: Mutex::new(Vec::new()),
            free_gate: RwLock::new(()),
            maintenance: Mutex::new(()),
            cleaner: crate::space::mailbox::CleanerCtl::new(rec.stats.checkpoint_resume_segment),
            backup_horizon: std::sync::atomic::AtomicU64::new(u64::MAX),
        });
        let flusher = if opts.read_only {
            None
        } else {
            let s = shared.clone();
            Some(
                std::thread::Builder::new()
                    .name("ectable-flusher".into())
                    .spawn(move || s.flusher())
                    .map_err(|e| Error::InvalidArgument(format!("cannot start flusher: {e}")))?,
            )
        };
        let monitor_needed = opts.health.mode != crate::health::DetectionMode::Passive
            || opts.recovery != crate::prober::RecoveryPolicy::Manual;
        let prober = if opts.read_only || !monitor_needed {
            None
        } else {
            let s = shared.clone();
            let stop = Arc::new(crate::prober::StopSignal::default());
            let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (stop2, cancel2, policy) = (stop.clone(), cancel.clone(), opts.recovery);
            let h = std::thread::Builder::new()
                .name("ectable-monitor".into())
                .spawn(move || crate::prober::run(s, stop2, cancel2, policy))
                .map_err(|e| Error::InvalidArgument(format!("cannot start the monitor: {e}")))?;
            Some((h, stop, cancel))
        };
        let mut engine = Engine {
            shared,
            flusher: Mutex::new(flusher),
            prober: Mutex::new(prober),
            cleaner: Mutex::new(None),
            cleaner_opts: opts.cleaner.clone(),
            recovery: rec.stats,
        };
        // The backup horizon first: only then may the log segments the checkpoint left dead
        // be freed, and the cleaner start (both keep the history it needs).
        engine.load_backup_state(opts.allow_incomplete_restore)?;
        let resume = engine.recovery.checkpoint_resume_segment;
        engine.recovery.dead_segments_freed =
            crate::space::free_dead_segments(&engine.shared, resume);
        if !opts.read_only && opts.cleaner.enabled {
            let (s, o) = (engine.shared.clone(), opts.cleaner);
            let h = std::thread::Builder::new()
                .name("ectable-cleaner".into())
                .spawn(move || crate::cleaner::run(s, o))
                .map_err(|e| Error::InvalidArgument(format!("cannot start the cleaner: {e}")))?;
            *engine.cleaner.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
        }
        Ok(engine)
    }

    /// Loads the horizon and checks for an unfinished restore (at open).
    fn load_backup_state(&self, allow_incomplete_restore: bool) -> Result<()> {
        let get = |key: &[u8]| match self.get(BACKUP_TABLE, key) {
            Err(Error::NoSuchTable(_)) => Ok(None),
            r => r,
        };
        if let Some(v) = get(HORIZON_KEY)? {
            let b: [u8; 8] = v
                .as_slice()
                .try_into()
                .map_err(|_| Error::CorruptTableData {
                    table: BACKUP_TABLE.into(),
                    detail: format!("horizon of {} bytes", v.len()),
                })?;
            self.shared
                .backup_horizon
                .store(u64::from_le_bytes(b), Ordering::SeqCst);
        }
        if !allow_incomplete_restore {
            if let Some(v) = get(RESTORE_KEY)? {
                return Err(Error::RestoreIncomplete {
                    started: String::from_utf8_lossy(&v).into_owned(),
                });
            }
        }
        Ok(())
    }

    /// Appends a put; durable after the next [`Engine::sync`].
    pub fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<u64> {
        self.shared.append(&[Mutation::Put { table, key, value }])
    }

    /// Appends a delete; durable after the next [`Engine::sync`].
    pub fn delete(&self, table: &str, key: &[u8]) -> Result<u64> {
        self.shared.append(&[Mutation::Delete { table, key }])
    }

    /// Put and wait until it is durable.
    pub fn put_sync(&self, table: &str, key: &[u8], value: &[u8]) -> Result<u64> {
        let lsn = self.put(table, key, value)?;
        self.shared.wait_durable(lsn)?;
        Ok(lsn)
    }

    /// Appends a batch atomically (all or nothing after a crash); durable after `sync`.
    pub fn write_batch(&self, batch: &WriteBatch) -> Result<u64> {
        let muts: Vec<Mutation<'_>> = batch
            .ops
            .iter()
            .map(|(t, k, v)| match v {
                Some(v) => Mutation::Put {
                    table: t,
                    key: k,
                    value: v,
                },
                None => Mutation::Delete { table: t, key: k },
            })
            .collect();
        self.shared.append(&muts)
    }

    /// Waits until everything appended so far is durable; returns the durable LSN.
    pub fn sync(&self) -> Result<u64> {
        self.shared.sync_all()
    }

    fn entry(&self, table: &str, key: &[u8]) -> Result<Option<IndexEntry>> {
        crate::validate_name_key(table, key)?;
        let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
        match index.tables.get(table) {
            None => Err(Error::NoSuchTable(table.to_string())),
            Some(t) => Ok(t.get(key).cloned()),
        }
    }

    /// Reads the newest value of `key`, or None if it does not exist.
    pub fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let _gate = self.read_gate();
        self.get_gated(table, key)
    }

    /// Holds segments from being freed (and reused) while a read is in flight.
    fn read_gate(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.shared
            .free_gate
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn get_gated(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.entry(table, key)? {
            None => Ok(None),
            Some(e) => self.load_value(table, key, &e).map(Some),
        }
    }

    /// Reads several keys of one table with all their device reads in flight at once.
    pub fn get_many(&self, table: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let _gate = self.read_gate();
        let mut entries = Vec::with_capacity(keys.len());
        for k in keys {
            entries.push(self.entry(table, k)?);
        }
        let pairs: Vec<(&[u8], Option<IndexEntry>)> = keys.iter().copied().zip(entries).collect();
        self.load_values(table, &pairs)
    }

    fn load_value(&self, table: &str, key: &[u8], e: &IndexEntry) -> Result<Vec<u8>> {
        Ok(self
            .load_values(table, &[(key, Some(e.clone()))])?
            .pop()
            .flatten()
            .unwrap_or_default())
    }

    fn segment(&self, id: u64) -> Result<Arc<SegmentInfo>> {
        self.shared
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::InvalidArgument(format!("index names unknown segment {id}")))
    }

    /// Loads values, submitting every fast-path read of the batch together.
    pub(crate) fn load_values(
        &self,
        table: &str,
        items: &[(&[u8], Option<IndexEntry>)],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let array = &self.shared.array;
        let mut out: Vec<Option<Vec<u8>>> = vec![None; items.len()];
        let mut ops = Vec::new();
        let mut plan: Vec<(usize, usize, usize)> = Vec::new(); // (item, skip, take) per op
        let mut disk: Vec<(usize, RecordLoc, Arc<SegmentInfo>, u64)> = Vec::new();
        // Items whose record chunks are all on available, fast devices.
        let mut fast_path = vec![false; items.len()];
        for (i, (_, e)) in items.iter().enumerate() {
            let Some(e) = e else { continue };
            match &e.place {
                Place::Pending {
                    stripe_seq,
                    record_offset,
                    ..
                } => {
                    match self
                        .shared
                        .pending_value(*stripe_seq, *record_offset, e.value_len)
                    {
                        Some(v) => out[i] = Some(v),
                        // Settled meanwhile: the index now points at the disk.
                        None => out[i] = self.get_gated(table, items[i].0)?,
                    }
                }
                Place::Disk(loc) => {
                    let seg = self.segment(loc.segment_id)?;
                    // Device gone, or slow: the slow path below rebuilds the record from the
                    // other chunks instead.
                    if let Ok(rops) = crate::log::stripe::record_read_ops(array, &seg, loc) {
                        let slow = rops.iter().any(|(op, _, _)| {
                            array
                                .slot_of_device(op.device_index)
                                .is_some_and(|s| array.is_suspect(s))
                        });
                        if !slow {
                            for (op, skip, take) in rops {
                                ops.push(op);
                                plan.push((i, skip, take));
                            }
                            fast_path[i] = true;
                        }
                    }
                    disk.push((i, *loc, seg, e.lsn));
                }
            }
        }
        self.shared
            .counters
            .reads
            .fetch_add(disk.len() as u64, Ordering::Relaxed);
        let mut bytes: Vec<Option<Vec<u8>>> = vec![None; items.len()];
        let mut failed = vec![false; items.len()];
        for (c, (i, skip, take)) in array.io.execute(ops).into_iter().zip(plan) {
            if let Some(slot) = array.slot_of_device(c.op.device_index) {
                array.observe(slot, c.op.kind, c.latency, c.result.as_ref().err());
            }
            match c.result {
                Ok(()) => bytes[i]
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(&c.op.buf[skip..skip + take]),
                Err(_) => failed[i] = true,
            }
        }
        // Records whose chunk is on a missing or slow device: rebuild just their blocks from
        // k other chunks, all of the batch's reads submitted together. A chunk that was read
        // and failed its checks takes the whole-stripe path instead, which finds and repairs
        // the bad chunk.
        let mut partial: HashMap<usize, Vec<u8>> = HashMap::new();
        {
            let mut ops = Vec::new();
            let mut plans = Vec::new();
            for (i, loc, seg, _) in &disk {
                if fast_path[*i] {
                    continue;
                }
                if let Some((o, plan)) = crate::log::stripe::plan_record_rebuild(array, seg, loc) {
                    ops.extend(o);
                    plans.push((*i, plan));
                }
            }
            let mut completions = array.io.execute(ops).into_iter();
            for (i, plan) in plans {
                let mine: Vec<_> = completions.by_ref().take(plan.op_count()).collect();
                if let Some(b) = crate::log::stripe::finish_record_rebuild(array, &plan, mine) {
                    partial.insert(i, b);
                }
            }
        }
        // Stripes rebuilt for this call, so that records sharing a degraded stripe rebuild it
        // once.
        let mut rebuilt: HashMap<(u64, u32), Vec<u8>> = HashMap::new();
        for (i, loc, seg, lsn) in disk {
            let key = items[i].0;
            let fast = match (&bytes[i], failed[i]) {
                (Some(b), false) => verify_record(b, &loc, lsn, table, key),
                _ => None,
            };
            let value = match fast {
                Some(v) => v,
                None => {
                    self.shared
                        .counters
                        .degraded_reads
                        .fetch_add(1, Ordering::Relaxed);
                    match partial
                        .get(&i)
                        .and_then(|b| verify_record(b, &loc, lsn, table, key))
                    {
                        Some(v) => v,
                        None => self
                            .read_degraded(&seg, &loc, lsn, table, key, &mut rebuilt)
                            .map_err(|e| self.changed_or(e, &seg))?,
                    }
                }
            };
            out[i] = Some(value);
        }
        Ok(out)
    }

    /// A read-only engine's failed read: `Error::ArrayChanged` when the devices show that
    /// another process changed the array since the open (so the failure says nothing about
    /// the data), else the error itself.
    fn changed_or(&self, e: Error, seg: &SegmentInfo) -> Error {
        let array = &self.shared.array;
        if !array.read_only || !crate::reader::may_be_a_change(&e) {
            return e;
        }
        // A read-only engine allocates nothing: its next segment id is the one of the open.
        let next_at_open = self.shared.lock_state().next_segment_id;
        match crate::reader::changed_since_open(array, Some((seg, next_at_open))) {
            Some(detail) => Error::ArrayChanged { detail },
            None => e,
        }
    }

    /// The slow path: read the whole stripe, rebuild what is bad, verify, extract.
    fn read_degraded(
        &self,
        seg: &SegmentInfo,
        loc: &RecordLoc,
        lsn: u64,
        table: &str,
        key: &[u8],
        rebuilt: &mut HashMap<(u64, u32), Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let array = &self.shared.array;
        let lost = |good: usize, detail: String| Error::DataLost {
            segment_id: seg.id,
            offset_in_segment: loc.offset_in_segment,
            good,
            width: array.w(),
            needed: array.k(),
            detail,
        };
        let stripe_key = (seg.id, loc.offset_in_segment);
        if let std::collections::hash_map::Entry::Vacant(e) = rebuilt.entry(stripe_key) {
            let read = |sources| {
                read_stripe_chunks(
                    array,
                    seg,
                    loc.offset_in_segment,
                    loc.ordinal,
                    loc.height_bytes,
                    sources,
                )
            };
            let mut bufs = read(ChunkSources::Fastest);
            let mut chunks: Vec<Option<&[u8]>> = bufs.iter().map(|b| b.as_deref()).collect();
            let mut outcome = assemble(array, seg, loc.offset_in_segment, loc.ordinal, &chunks);
            // Not enough: ask the slow devices too, then even the failed ones.
            for sources in [ChunkSources::Online, ChunkSources::LastResort] {
                if matches!(outcome, StripeOutcome::Good(_)) {
                    break;
                }
                bufs = read(sources);
                chunks = bufs.iter().map(|b| b.as_deref()).collect();
                outcome = assemble(array, seg, loc.offset_in_segment, loc.ordinal, &chunks);
            }
            match outcome {
                StripeOutcome::Good(g) => {
                    g.note_bad_chunks(array);
                    // Chunks left unread on slow devices are not bad: repair only what was read
                    // and failed.
                    if !g.bad_shards.is_empty() && !array.read_only {
                        self.read_repair(seg, loc, &g, &chunks);
                    }
                    e.insert(g.data);
                }
                StripeOutcome::Incomplete { good, detail, .. } => return Err(lost(good, detail)),
                StripeOutcome::Empty => {
                    return Err(lost(
                        0,
                        "no chunk of the stripe could be read or identified".into(),
                    ))
                }
            }
        }
        let data = &rebuilt[&stripe_key];
        let from = loc.record_offset as usize;
        let to = from + loc.record_len as usize;
        data.get(from..to)
            .and_then(|b| verify_record(b, loc, lsn, table, key))
            .ok_or_else(|| {
                lost(
                    array.k(),
                    "the stripe verifies but does not hold the indexed record".into(),
                )
            })
    }

    /// Rewrites the bad chunks of a stripe that was read degraded, in place, on devices that
    /// are still writable. The rebuilt chunks are verified against the stripe's crc table
    /// first, so a repair never writes bytes computed from bad inputs.
    fn read_repair(
        &self,
        seg: &SegmentInfo,
        loc: &RecordLoc,
        g: &crate::log::stripe::GoodStripe,
        chunks: &[Option<&[u8]>],
    ) {
        let array = &self.shared.array;
        let mut targets = Vec::new();
        for &j in &g.bad_shards {
            let (slot, place) =
                crate::log::stripe::chunk_place(array, seg, loc.offset_in_segment, loc.ordinal, j);
            if array.is_suspect(slot as usize) {
                continue; // not read on purpose (slow device), not known bad
            }
            if let Some((d, off)) = place {
                targets.push((j, slot, d, off));
            }
        }
        let shards: Vec<usize> = targets.iter().map(|t| t.0).collect();
        let Ok(rebuilt) = rebuild_chunks(array, g, chunks, &shards) else {
            return;
        };
        let mut ops = Vec::new();
        let mut slots = Vec::new();
        for ((_, buf), (_, slot, d, off)) in rebuilt.into_iter().zip(&targets) {
            ops.push(ectable_devices::IoOp::write(*d, *off, buf));
            slots.push(*slot);
        }
        for (c, slot) in array.io.execute(ops).into_iter().zip(slots) {
            match c.result {
                Ok(()) => {
                    self.shared
                        .counters
                        .read_repairs
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => array.observe(slot as usize, c.op.kind, c.latency, Some(&e)),
            }
        }
    }

    /// Keys and values of `table` in key order within the bounds, at most `limit`.
    pub fn scan(
        &self,
        table: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let _gate = self.read_gate();
        let entries: Vec<(Vec<u8>, IndexEntry)> = {
            let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
            let Some(t) = index.tables.get(table) else {
                return Err(Error::NoSuchTable(table.to_string()));
            };
            let range = (from.map(|b| b.to_vec()), to.map(|b| b.to_vec()));
            t.range::<Vec<u8>, _>(range)
                .take(limit)
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect()
        };
        let mut out = Vec::with_capacity(entries.len());
        for chunk in entries.chunks(256) {
            let items: Vec<(&[u8], Option<IndexEntry>)> = chunk
                .iter()
                .map(|(k, e)| (k.as_slice(), Some(e.clone())))
                .collect();
            let values = self.load_values(table, &items)?;
            for ((k, _), v) in chunk.iter().zip(values) {
                out.push((k.clone(), v.unwrap_or_default()));
            }
        }
        Ok(out)
    }

    /// Table names with their key counts, sorted by name.
    pub fn tables(&self) -> Vec<(String, usize)> {
        let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
        let mut t: Vec<(String, usize)> = index
            .tables
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(n, m)| (n.clone(), m.len()))
            .collect();
        t.sort();
        t
    }

    pub fn recovery_stats(&self) -> &RecoveryStats {
        &self.recovery
    }

    pub fn status(&self) -> Status {
        let s = &self.shared;
        let a = &s.array;
        let st = s.lock_state();
        let mut used_per_slot = vec![0u32; a.n()];
        for (slot, f) in st.free.free.iter().enumerate() {
            used_per_slot[slot] = a.segment_count() - f.len() as u32;
        }
        let (next_lsn, durable_lsn) = (st.next_lsn, st.durable_lsn);
        let free_segments = st.free.allocatable(a.w());
        let cursor = st.cursor.as_ref().map(|c| (c.segment.id, c.offset as u64));
        drop(st);
        let backup_horizon = self.backup_horizon_hold();
        let reserved_segments = s.reserve_segments();
        let seg_cap = crate::space::segment_data_capacity(a);
        let log_segments: Vec<u64> = s
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|g| g.kind == crate::format::SegmentKind::Log)
            .map(|g| g.id)
            .collect();
        let persisted = a
            .persisted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let devices: Vec<DeviceStatus> = (0..a.n())
            .map(|slot| {
                let dev = a.present_device(slot);
                let c = &a.counters[slot];
                let errors = c.read_errors.load(Ordering::Relaxed)
                    + c.write_errors.load(Ordering::Relaxed)
                    + c.checksum_errors.load(Ordering::Relaxed);
                let resync_from = Some(persisted.resync_from[slot]).filter(|f| *f != 0);
                let rebuilding = persisted.rebuild.filter(|(s, _)| *s as usize == slot);
                let (state, note) = match dev {
                    None => (
                        "REMOVED",
                        match resync_from {
                            Some(f) => format!(
                                "device not present; missed writes from segment {f} on (resynced when it returns)"
                            ),
                            None => "device not present".to_string(),
                        },
                    ),
                    Some(_) if a.is_failed(slot) => ("FAULTED", "I/O errors".to_string()),
                    Some(_) if rebuilding.is_some() => (
                        "REBUILDING",
                        format!(
                            "rebuild resumes at segment {}; run 'ectable rebuild'",
                            rebuilding.map_or(0, |r| r.1)
                        ),
                    ),
                    Some(_) if resync_from.is_some() => (
                        "STALE",
                        format!(
                            "missed writes from segment {} on; resync with 'ectable rebuild'",
                            resync_from.unwrap_or(0)
                        ),
                    ),
                    Some(_) if a.is_suspect(slot) => {
                        ("DEGRADED", "suspect: slow, reads avoid it".to_string())
                    }
                    Some(_) => match persisted.members[slot].1 {
                        MemberState::Online => (
                            "ONLINE",
                            if errors > 0 {
                                "errors seen: check it with 'ectable scrub --repair'".to_string()
                            } else {
                                String::new()
                            },
                        ),
                        other => (other.name(), String::new()),
                    },
                };
                DeviceStatus {
                    in_service: state == "ONLINE" && errors == 0,
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
        let index = s.index.read().unwrap_or_else(|p| p.into_inner());
        let live_bytes = index.total_live_bytes();
        // Garbage: what the log segments hold beyond their live records; the segment being
        // written counts only up to the cursor.
        let seg_span = (a.segment_size() - crate::format::SEGMENT_HEADER_SIZE_BYTES) as u64;
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
        let spares: Vec<String> = a
            .spares
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(_, d)| a.io.devices()[*d].name().to_string())
            .collect();
        let rebuild = self.rebuild_in_progress();
        let checkpoint_lsn = a
            .persisted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .checkpoint
            .2;
        let c = &s.counters;
        Status {
            array_uuid: uuid_string(&a.sb.array_uuid),
            epoch: a.epoch(),
            data_shards: a.k(),
            parity_shards: a.m(),
            chunk_size_bytes: a.sb.chunk_size_bytes,
            segment_size_bytes: a.sb.segment_size_bytes,
            devices,
            spares,
            unrecognised: a
                .unrecognised
                .iter()
                .map(|(d, why)| (a.io.devices()[*d].name().to_string(), why.clone()))
                .collect(),
            redundancy_left: a.m().saturating_sub(lost),
            raw_capacity_bytes: raw,
            usable_capacity_bytes: usable,
            used_bytes: used_segs * a.segment_size() as u64 * a.k() as u64 / a.w() as u64,
            live_bytes,
            garbage_bytes: written.saturating_sub(live_bytes),
            free_segments,
            total_segments: a.segment_count() as usize * a.n() / a.w(),
            reserved_segments,
            checkpoint_lsn,
            cleaner: s.cleaner.stats(),
            keys: index.key_count(),
            tables: index.tables.values().filter(|t| !t.is_empty()).count(),
            next_lsn,
            durable_lsn,
            recovery: self.recovery.clone(),
            stripes_written: c.stripes_written.load(Ordering::Relaxed),
            short_stripes_written: c.short_stripes_written.load(Ordering::Relaxed),
            chunk_bytes_written: c.chunk_bytes_written.load(Ordering::Relaxed),
            payload_bytes_written: c.payload_bytes_written.load(Ordering::Relaxed),
            degraded_reads: c.degraded_reads.load(Ordering::Relaxed),
            read_repairs: c.read_repairs.load(Ordering::Relaxed),
            probes: c.probes.load(Ordering::Relaxed),
            probe_failures: c.probe_failures.load(Ordering::Relaxed),
            latency_ewma_ns: a
                .health
                .iter()
                .map(|h| h.latency_ewma_ns.load(Ordering::Relaxed))
                .collect(),
            degraded_writes: c.degraded_writes.load(Ordering::Relaxed),
            io_engine: a.io.name(),
            rebuild,
            backup_horizon,
        }
    }

    /// Runs the cleaner now, in the calling thread, until no segment is worth cleaning (or
    /// `max_passes` passes ran): moves live records out of mostly-dead segments, checkpoints,
    /// and frees them. Returns what it did, summed over the passes.
    pub fn clean(&self, max_passes: usize) -> Result<crate::cleaner::CleanReport> {
        if self.shared.array.read_only {
            return Err(Error::ReadOnly);
        }
        let mut total = crate::cleaner::CleanReport::default();
        for _ in 0..max_passes.max(1) {
            let r = crate::cleaner::clean_pass(&self.shared, &self.cleaner_opts, 8)?;
            total.segments_cleaned += r.segments_cleaned;
            total.segments_freed += r.segments_freed;
            total.records_relocated += r.records_relocated;
            total.bytes_relocated += r.bytes_relocated;
            total.checkpoint_lsn = r.checkpoint_lsn.or(total.checkpoint_lsn);
            total.paused |= r.paused;
            if r.paused || (r.segments_cleaned == 0 && r.segments_freed == 0) {
                break;
            }
        }
        total.held_by_backup_horizon = self.backup_horizon_hold();
        Ok(total)
    }

    /// Writes an index checkpoint now (the engine keeps running; appends wait only while the
    /// index image is taken). Returns its LSN, or None if nothing was written since the last.
    pub fn checkpoint(&self) -> Result<Option<u64>> {
        if self.shared.array.read_only {
            return Err(Error::ReadOnly);
        }
        // Writing it also frees the segments it leaves dead.
        crate::checkpoint::write_online(&self.shared)
    }

    /// What the cleaner has done since open.
    pub fn cleaner_stats(&self) -> crate::space::mailbox::CleanerStats {
        self.shared.cleaner.stats()
    }

    /// The largest batch (sum of padded records) one stripe holds.
    pub fn max_batch_bytes(&self) -> usize {
        self.shared.array.max_stripe_payload()
    }

    /// Makes everything durable and stops the flusher.
    pub fn close(&self) -> Result<()> {
        if let Some((h, stop, cancel)) =
            self.prober.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            stop.stop();
            cancel.store(true, Ordering::SeqCst);
            let _ = h.join();
        }
        if let Some(h) = self
            .cleaner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            self.shared.cleaner.stop();
            let _ = h.join();
        }
        let r = self.sync();
        {
            let mut st = self.shared.lock_state();
            st.closing = true;
            self.shared.work_cv.notify_all();
        }
        let Some(h) = self
            .flusher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return r.map(|_| ());
        };
        let _ = h.join();
        r?;
        // Clean close: checkpoint the index so the next open replays only what follows.
        // The checkpoint only shortens the next open; everything is durable already, so
        // failing to write one (a full array, a failing device) does not fail the close.
        if let Err(e) = crate::checkpoint::write_at_close(&self.shared) {
            tracing::warn!("no index checkpoint written at close: {e}");
        }
        self.shared.array.persist_if_dirty();
        Ok(())
    }
}

/// Rebuild, hot spares and scrub (rebuild.rs does the work).
impl Engine {
    /// Slot of the device at `path` in this array, if it is a present member.
    pub fn slot_of_path(&self, path: &str) -> Option<usize> {
        self.shared.slot_of_path(path)
    }
    /// Slots that are missing or failed.
    pub fn lost_slots(&self) -> Vec<usize> {
        self.shared.lost_slots()
    }
    /// A rebuild in progress: (slot, next segment id).
    pub fn rebuild_in_progress(&self) -> Option<(usize, u64)> {
        self.shared.rebuild_in_progress()
    }
    /// See [`Shared::replace`]: makes a new device (or a spare) the member of `slot`.
    pub fn replace(&self, slot: usize, new_device_index: usize) -> Result<()> {
        self.shared.replace(slot, new_device_index)
    }
    /// Rebuilds the slot being replaced, resuming at the persisted cursor.
    pub fn rebuild(
        &self,
        opts: &RebuildOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Progress> {
        self.shared.rebuild(opts, progress)
    }
    /// Adds a blank device (by engine index) as a hot spare.
    pub fn add_spare(&self, device_index: usize) -> Result<()> {
        self.shared.add_spare(device_index)
    }
    /// Engine indices of the hot spares present.
    pub fn spare_devices(&self) -> Vec<usize> {
        self.shared.spare_devices()
    }
    /// Checks every live stripe; with `repair`, rewrites bad chunks.
    pub fn scrub(
        &self,
        repair: bool,
        opts: &RebuildOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<ScrubReport> {
        self.shared.scrub(repair, opts, progress)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Checks fetched record bytes against the index entry; returns the value if they match.
fn verify_record(
    bytes: &[u8],
    loc: &RecordLoc,
    lsn: u64,
    table: &str,
    key: &[u8],
) -> Option<Vec<u8>> {
    let (rec, crc, _) = crate::format::log_record::RecordView::decode(bytes).ok()?;
    (crc == loc.crc && rec.lsn == lsn && rec.table == table && rec.key == key)
        .then(|| rec.value.to_vec())
}
