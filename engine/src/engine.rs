//! The public engine handle: open, put/delete/batch, sync, get/scan, status, close.
//!
//! Invariants:
//! - `sync` (and every `*_sync` call) returns Ok only when every record appended before it
//!   is durable on at least `min_write_shards` devices of its stripe.
//! - Every byte returned by `get`/`scan` was checked against the crc the index holds, and
//!   the record's LSN, table and key; on mismatch the stripe is rebuilt from parity.

use crate::array::Array;
use crate::error::{Error, Result};
use crate::index::IndexEntry;
use crate::log::flusher::clamp_batch;
use crate::log::state::WriterState;
use crate::log::writer::Mutation;
use crate::ops::OpMetrics;
use crate::rebuild::{Progress, RebuildOptions, ScrubReport};
use crate::recovery::{recover, RecoveryStats};
use crate::segments::SegmentInfo;
use crate::shared::{EngineCounters, Shared, Worker};
use crate::space::{BACKUP_TABLE, HORIZON_KEY, RESTORE_KEY};
use crate::sync::{MutexExt, RwLockExt};
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
    /// A read-only open normally reads the superblocks again, after short pauses, when the
    /// devices disagree on the epoch: a writer beside it may be rewriting them one device
    /// after the other. Set this when no process can write the devices (images, copies, a
    /// crash state under test): the first reading is the truth, and the pauses are skipped.
    pub no_writer_beside: bool,
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
            no_writer_beside: false,
        }
    }
}

/// A set of mutations committed atomically (they share one stripe).
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    ops: Vec<(String, Vec<u8>, Option<Vec<u8>>)>,
    /// Whether it may write system tables (see [`WriteBatch::allow_system_tables`]).
    system: bool,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }
    /// Adds a put of `value` under (`table`, `key`); checked when the batch is written.
    pub fn put(&mut self, table: &str, key: &[u8], value: &[u8]) -> &mut Self {
        self.ops
            .push((table.to_string(), key.to_vec(), Some(value.to_vec())));
        self
    }
    /// Lets the batch write system tables (names starting with `$`: typed tables' schemas,
    /// the backup horizon). Only a restore needs this: it writes back the system tables'
    /// rows a backup holds. Without it, [`Engine::write_batch`] refuses such a batch with
    /// [`Error::ReservedTableName`].
    pub fn allow_system_tables(&mut self) -> &mut Self {
        self.system = true;
        self
    }
    /// Adds a delete of (`table`, `key`); deleting a missing key is not an error.
    pub fn delete(&mut self, table: &str, key: &[u8]) -> &mut Self {
        self.ops.push((table.to_string(), key.to_vec(), None));
        self
    }
    /// The number of puts and deletes added.
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// An open array: the key/value API (puts, deletes, batches, reads, scans), durability
/// (`sync`), maintenance (clean, checkpoint, replace, rebuild, scrub), status and backups.
/// Shared between threads (`&self` everywhere); it runs its flusher, cleaner and monitor
/// threads until [`Engine::close`] (or drop).
pub struct Engine {
    pub(crate) shared: Arc<Shared>,
    /// What the monitor does when a member is lost (shown by status).
    pub(crate) recovery_policy: crate::prober::RecoveryPolicy,
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
    /// Call latencies and the maintenance in progress (ops.rs).
    pub(crate) ops: Arc<crate::ops::OpMetrics>,
}

/// Data lost at open while members are missing or behind (stale) says so: with members left
/// out of different commands (two in one, two others in the next), what the members behind
/// missed lies on the missing ones, and the way on is to give them back, not a restore.
fn lost_at_open(array: &Array, mut e: Error) -> Error {
    let Error::DataLost { detail, .. } = &mut e else {
        return e;
    };
    let missing: Vec<usize> = (0..array.n())
        .filter(|&s| array.present_device(s).is_none())
        .collect();
    let behind: Vec<usize> = (0..array.n())
        .filter(|&s| array.present_device(s).is_some() && array.stale_from(s).is_some())
        .collect();
    if !missing.is_empty() && !behind.is_empty() {
        *detail = format!(
            "{detail}; slot(s) {missing:?} are missing and slot(s) {behind:?} behind the others \
             (stale): what was written without the ones behind may lie on the missing ones, so \
             give those back"
        );
    }
    e
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
        io.set_io_timeout(opts.health.io_timeout);
        let mut array = Array::open(io, opts.read_only, opts.no_writer_beside)?;
        array.policy = opts.health.clone();
        let rec = match recover(&array) {
            Ok(rec) => rec,
            Err(e) if array.read_only && crate::reader::may_be_a_change(&e) => {
                return Err(match crate::reader::changed_since_open(&array, None) {
                    Some(detail) => Error::ArrayChanged { detail },
                    None => lost_at_open(&array, e),
                })
            }
            Err(e) => return Err(lost_at_open(&array, e)),
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
        for r in &rec.repairs.stripes {
            floor = floor.min(r.seg.id);
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
        let state = WriterState::new(
            rec.cursor,
            rec.free,
            rec.next_lsn,
            rec.next_segment_id,
            rec.discarded,
            rec.repairs,
            rec.segment_max_lsn,
            opts.read_only,
            rec.journal,
        );
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
            membership: Mutex::new(()),
            probe_round: Mutex::new(()),
            image_gate: Mutex::new(()),
            cleaner: crate::space::mailbox::CleanerCtl::new((
                rec.stats.checkpoint_resume_segment,
                rec.stats.checkpoint_resume_offset,
            )),
            backup_horizon: std::sync::atomic::AtomicU64::new(u64::MAX),
            poisoned: std::sync::OnceLock::new(),
            closed: Default::default(),
            test_panic: std::sync::atomic::AtomicU8::new(0),
        });
        shared
            .cleaner
            .checkpoint_size(crate::space::mailbox::CheckpointSize {
                bytes: rec.stats.checkpoint_bytes,
                keys: rec.stats.checkpoint_keys as u64,
                names: rec.stats.checkpoint_names,
            });
        let flusher = if opts.read_only {
            None
        } else {
            let s = shared.clone();
            Some(
                std::thread::Builder::new()
                    .name("ectable-flusher".into())
                    .spawn(move || {
                        let worker = s.clone();
                        worker.run_worker(Worker::Flusher, move || s.flusher())
                    })
                    .map_err(|e| Error::InvalidArgument(format!("cannot start flusher: {e}")))?,
            )
        };
        // Shared with the monitor, whose automatic rebuilds show as the running activity.
        let ops: Arc<crate::ops::OpMetrics> = Default::default();
        let monitor_needed = opts.health.mode != crate::health::DetectionMode::Passive
            || opts.recovery != crate::prober::RecoveryPolicy::Manual;
        let prober = if opts.read_only || !monitor_needed {
            None
        } else {
            let s = shared.clone();
            let stop = Arc::new(crate::prober::StopSignal::default());
            let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (stop2, cancel2, policy) = (stop.clone(), cancel.clone(), opts.recovery);
            let ops = ops.clone();
            let h = std::thread::Builder::new()
                .name("ectable-monitor".into())
                .spawn(move || {
                    let worker = s.clone();
                    worker.run_worker(Worker::Monitor, move || {
                        crate::prober::run(s, &ops, stop2, cancel2, policy)
                    })
                })
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
            recovery_policy: opts.recovery,
            ops,
        };
        // The backup horizon first: only then may the log segments the checkpoint left dead
        // be freed, and the cleaner start (both keep the history it needs).
        engine.load_backup_state(opts.allow_incomplete_restore)?;
        let resume = engine.recovery.checkpoint_resume_segment;
        engine.recovery.dead_segments_freed =
            crate::space::free_dead_segments(&engine.shared, resume);
        // When the replayed log needs repairs, a writable open starts its session now rather
        // than at the first write (docs/format.md, "Recovery" step 6): what a crash left short
        // of chunks is made whole before anything is read from it, so records recovery shows
        // do not vanish again when devices fail before the session writes (found by the
        // simulator). Otherwise the open writes nothing.
        if !opts.read_only {
            engine.shared.start_if_recovery_left_repairs()?;
        }
        if !opts.read_only && opts.cleaner.enabled {
            let (s, o) = (engine.shared.clone(), opts.cleaner);
            let h = std::thread::Builder::new()
                .name("ectable-cleaner".into())
                .spawn(move || {
                    let worker = s.clone();
                    worker.run_worker(Worker::Cleaner, move || crate::cleaner::run(s, o))
                })
                .map_err(|e| Error::InvalidArgument(format!("cannot start the cleaner: {e}")))?;
            *engine.cleaner.locked() = Some(h);
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
    ///
    /// Tables whose names start with `$` are the engine's own (typed tables' schemas, the
    /// backup horizon): writes to them through this call, [`Engine::delete`],
    /// [`Engine::put_sync`] and [`Engine::write_batch`] are refused with
    /// [`Error::ReservedTableName`] and change nothing. They can be read.
    pub fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<u64> {
        refuse_system_table(table)?;
        OpMetrics::time(&self.ops.put, || self.put_any(table, key, value))
    }

    /// [`Engine::put`] to any table, system tables included (the engine's own layers).
    pub(crate) fn put_any(&self, table: &str, key: &[u8], value: &[u8]) -> Result<u64> {
        self.shared.check_alive()?;
        self.shared.append(&[Mutation::Put { table, key, value }])
    }

    /// Appends a delete; durable after the next [`Engine::sync`].
    pub fn delete(&self, table: &str, key: &[u8]) -> Result<u64> {
        refuse_system_table(table)?;
        OpMetrics::time(&self.ops.put, || self.delete_any(table, key))
    }

    /// [`Engine::delete`] in any table, system tables included.
    pub(crate) fn delete_any(&self, table: &str, key: &[u8]) -> Result<u64> {
        self.shared.check_alive()?;
        self.shared.append(&[Mutation::Delete { table, key }])
    }

    /// Put and wait until it is durable.
    pub fn put_sync(&self, table: &str, key: &[u8], value: &[u8]) -> Result<u64> {
        refuse_system_table(table)?;
        OpMetrics::time(&self.ops.put, || self.put_sync_any(table, key, value))
    }

    /// [`Engine::put_sync`] to any table, system tables included.
    pub(crate) fn put_sync_any(&self, table: &str, key: &[u8], value: &[u8]) -> Result<u64> {
        let lsn = self.put_any(table, key, value)?;
        self.shared.wait_durable(lsn)?;
        Ok(lsn)
    }

    /// Appends a batch atomically (all or nothing after a crash); durable after `sync`.
    /// A batch that writes a system table is refused unless it was built with
    /// [`WriteBatch::allow_system_tables`].
    pub fn write_batch(&self, batch: &WriteBatch) -> Result<u64> {
        if !batch.system {
            for (t, _, _) in &batch.ops {
                refuse_system_table(t)?;
            }
        }
        self.shared.check_alive()?;
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
        OpMetrics::time(&self.ops.put, || self.shared.append(&muts))
    }

    /// Waits until the record with LSN `lsn` (and every one before it) is durable; returns
    /// the durable LSN. Unlike [`Engine::sync`] it does not wait for what was appended after
    /// `lsn`: a writer can keep appending while an earlier group becomes durable. If `lsn` is
    /// still in the stripe being filled, that stripe is written short (group commit). An LSN
    /// beyond the last one appended is refused (nothing would ever make it durable).
    pub fn wait_durable(&self, lsn: u64) -> Result<u64> {
        self.shared.check_alive()?;
        let last = self.shared.lock_state().next_lsn() - 1;
        if lsn > last {
            return Err(Error::InvalidArgument(format!(
                "LSN {lsn} was never appended (the last appended is {last})"
            )));
        }
        OpMetrics::time(&self.ops.sync, || self.shared.wait_durable(lsn))
    }

    /// Waits until everything appended so far is durable; returns the durable LSN.
    pub fn sync(&self) -> Result<u64> {
        self.shared.check_alive()?;
        OpMetrics::time(&self.ops.sync, || self.shared.sync_all())
    }

    /// Like [`Engine::sync`], and besides waits until everything appended so far is in
    /// coded stripes written and flushed on the members, not only acknowledged by the sync
    /// journal (docs/design.md, "Small synced writes"). `sync` is enough for durability; this
    /// is for a caller that counts what the stripes cost (`ectable load`'s device bytes).
    pub fn sync_into_stripes(&self) -> Result<u64> {
        self.shared.check_alive()?;
        OpMetrics::time(&self.ops.sync, || self.shared.sync_into_stripes())
    }

    /// Reads the newest value of `key`, or None if it does not exist.
    pub fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        OpMetrics::time(&self.ops.get, || self.shared.get(table, key))
    }

    /// Reads several keys of one table with all their device reads in flight at once.
    pub fn get_many(&self, table: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        OpMetrics::time(&self.ops.get, || self.shared.get_many(table, keys))
    }

    /// A queue of point reads of `table` that keeps them in flight continuously: submit keys
    /// with a tag each, take each outcome back as soon as its read completes
    /// (`ReadQueue::next_done`), submit the next. Unlike `get_many`, which returns when its
    /// slowest read is back, the devices see a steady queue depth. The queue is used from the
    /// thread that made it.
    pub fn read_queue<T>(&self, table: &str) -> crate::log::read_queue::ReadQueue<'_, T> {
        crate::log::read_queue::ReadQueue::new(&self.shared, table)
    }

    /// Keys and values of `table` in key order within the bounds, at most `limit`.
    pub fn scan(
        &self,
        table: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        OpMetrics::time(&self.ops.scan, || self.scan_untimed(table, from, to, limit))
    }

    fn scan_untimed(
        &self,
        table: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.shared.check_alive()?;
        let _gate = self.shared.read_gate();
        let entries: Vec<(Vec<u8>, IndexEntry)> = {
            let index = self.shared.index.read_locked();
            // A table that never had a key scans like an emptied one: nothing.
            let Some(t) = index.tables.get(table) else {
                return Ok(Vec::new());
            };
            t.range(from, to)
                .take(limit)
                .map(|(k, e)| (k.to_vec(), e))
                .collect()
        };
        let mut out = Vec::with_capacity(entries.len());
        for chunk in entries.chunks(256) {
            let items: Vec<(&[u8], Option<IndexEntry>)> = chunk
                .iter()
                .map(|(k, e)| (k.as_slice(), Some(e.clone())))
                .collect();
            let values = self.shared.load_values(table, &items)?;
            for ((k, _), v) in chunk.iter().zip(values) {
                out.push((k.clone(), v.unwrap_or_default()));
            }
        }
        Ok(out)
    }

    /// Keys and values of `table` in key order within the bounds, streamed: the index is
    /// read a page at a time and the next pages' device reads are in flight while the caller
    /// takes the rows of this one, so a table of any size is read in bounded memory at the
    /// devices' pace. Not a snapshot: each row is its key's value at some moment during the
    /// scan (a row deleted meanwhile may be left out). Used on the thread that made it.
    pub fn scan_iter(
        &self,
        table: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<crate::log::scan::Scan<'_>> {
        self.streaming_scan(table, from, to, false)
    }

    /// Like `scan_iter`, in descending key order.
    pub fn scan_iter_rev(
        &self,
        table: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<crate::log::scan::Scan<'_>> {
        self.streaming_scan(table, from, to, true)
    }

    fn streaming_scan(
        &self,
        table: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
    ) -> Result<crate::log::scan::Scan<'_>> {
        self.shared.check_alive()?;
        crate::validate_name_key(table, b"k")?;
        let scan = crate::log::scan::Scan::new(&self.shared, table, from, to, reverse);
        Ok(scan)
    }

    /// Table names with their key counts, sorted by name.
    pub fn tables(&self) -> Vec<(String, usize)> {
        let index = self.shared.index.read_locked();
        let mut t: Vec<(String, usize)> = index
            .tables
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(n, m)| (n.clone(), m.len()))
            .collect();
        t.sort();
        t
    }

    /// What the log replay at open did: segments and records read, stripes rebuilt or
    /// discarded, checkpoint loaded.
    pub fn recovery_stats(&self) -> &RecoveryStats {
        &self.recovery
    }

    /// Runs the cleaner now, in the calling thread, until no segment is worth cleaning (or
    /// `max_passes` passes ran): moves live records out of mostly-dead segments, checkpoints,
    /// and frees them. Returns what it did, summed over the passes.
    pub fn clean(&self, max_passes: usize) -> Result<crate::cleaner::CleanReport> {
        self.clean_with_progress(max_passes, &mut |_, _| {})
    }

    /// [`Engine::clean`], calling `progress(pass, total so far)` after every pass that did
    /// something (for a progress line).
    pub fn clean_with_progress(
        &self,
        max_passes: usize,
        progress: &mut dyn FnMut(usize, &crate::cleaner::CleanReport),
    ) -> Result<crate::cleaner::CleanReport> {
        self.shared.check_alive()?;
        if self.shared.array.read_only {
            return Err(Error::ReadOnly);
        }
        let mut total = crate::cleaner::CleanReport::default();
        for pass in 1..=max_passes.max(1) {
            let r = crate::cleaner::clean_pass(&self.shared, &self.cleaner_opts, 8, true)?;
            total.segments_cleaned += r.segments_cleaned;
            total.segments_freed += r.segments_freed;
            total.records_relocated += r.records_relocated;
            total.bytes_relocated += r.bytes_relocated;
            total.checkpoint_lsn = r.checkpoint_lsn.or(total.checkpoint_lsn);
            total.paused |= r.paused;
            if r.paused || (r.segments_cleaned == 0 && r.segments_freed == 0) {
                break;
            }
            progress(pass, &total);
        }
        total.held_by_backup_horizon = self.backup_horizon_hold();
        Ok(total)
    }

    /// Writes an index checkpoint now (the engine keeps running; appends wait only while the
    /// index image is taken). Returns its LSN, or None if nothing was written since the last.
    pub fn checkpoint(&self) -> Result<Option<u64>> {
        self.shared.check_alive()?;
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

    /// The array's geometry.
    pub fn layout(&self) -> crate::format::Layout {
        self.shared.array.layout
    }

    /// The largest batch (sum of padded records) one stripe holds.
    pub fn max_batch_bytes(&self) -> usize {
        self.shared.array.max_stripe_payload()
    }

    /// Test hook: makes the engine's `worker` thread panic at its next turn, to check that a
    /// panic poisons the engine instead of hanging its callers.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn panic_worker_for_test(&self, worker: Worker) {
        self.shared.request_test_panic(worker)
    }

    /// The thread whose panic stopped the engine, and what it said; None while it runs.
    pub fn poisoned(&self) -> Option<(String, String)> {
        self.shared.poisoned.get().cloned()
    }

    /// Makes everything durable, stops the engine's threads, writes an index checkpoint and
    /// releases the devices (their locks and exclusive opens) even while other handles to
    /// the engine live on: those get [`Error::Closed`] from then on, and the array can be
    /// opened again at once, in this process or another. When the caller still holds the
    /// I/O backend it opened the engine with, the devices stay usable through it (to open
    /// the array again on the same backend) and go when it is dropped. Closing twice is
    /// harmless.
    pub fn close(&self) -> Result<()> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let r = self.close_inner();
        self.shared.closed.store(true, Ordering::SeqCst);
        // A read-only open holds no claim; its devices go with the last handle. A backend
        // the caller also holds is theirs to use again (a reopen on it waits for nothing).
        let io = &self.shared.array.io;
        if !self.shared.array.read_only && Arc::strong_count(io) == 1 {
            io.release_devices();
        }
        r
    }

    fn close_inner(&self) -> Result<()> {
        if let Some((h, stop, cancel)) = self.prober.locked().take() {
            stop.stop();
            cancel.store(true, Ordering::SeqCst);
            let _ = h.join();
        }
        if let Some(h) = self.cleaner.locked().take() {
            self.shared.cleaner.stop();
            let _ = h.join();
        }
        let r = self.sync();
        self.shared.begin_close();
        let Some(h) = self.flusher.locked().take() else {
            return r.map(|_| ());
        };
        let _ = h.join();
        if let Err(e) = r {
            // The log could not be made durable (a write failed); the error counters still
            // go to the health blocks, or the next `status` would show none of the errors.
            crate::prober::write_kept(&self.shared);
            return Err(e);
        }
        // Clean close: checkpoint the index so the next open replays only what follows.
        // The checkpoint only shortens the next open; everything is durable already, so
        // failing to write one (a full array, a failing device) does not fail the close.
        if let Err(e) = crate::checkpoint::write_at_close(&self.shared) {
            tracing::warn!("no index checkpoint written at close: {e}");
        }
        // The error counters and the last scrub, for the next session and other processes.
        crate::prober::write_kept(&self.shared);
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
    /// Makes the device with engine index `new_device_index` (opened with the array, holding
    /// no valid superblock, or a hot spare) the member of `slot`, in place of the device
    /// that was there, and records a rebuild of that slot as in progress. Call
    /// [`Engine::rebuild`] next. The device replaced, if present, is released at once
    /// ([`ectable_devices::BlockDevice::release`]; named in [`crate::Status::replaced`]): it can be
    /// opened, wiped or handed back as a spare while the engine runs.
    pub fn replace(&self, slot: usize, new_device_index: usize) -> Result<()> {
        self.shared.check_alive()?;
        self.shared.replace(slot, new_device_index)
    }
    /// Rebuilds the slot being replaced, resuming at the persisted cursor.
    pub fn rebuild(
        &self,
        opts: &RebuildOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Progress> {
        self.shared.check_alive()?;
        let _running = self.ops.begin(crate::ops::ActivityKind::Rebuild);
        self.shared.rebuild(opts, &mut |p| {
            self.ops.progress(p);
            progress(p)
        })
    }
    /// Hands a new device to the running engine and makes it the member of `slot` (the
    /// device there may be dead, missing or alive), recording a rebuild of the slot as in
    /// progress: call [`Engine::rebuild`] next. No downtime: reads and writes go on, the
    /// slot's data is read from parity until rebuilt. Refused, with nothing changed, when
    /// the device is already given to the engine (under any name), holds an ectable array
    /// (wipe it first: a member of this or another array is never overwritten by accident),
    /// is too small, or the I/O engine cannot drive it. Returns the device's engine index.
    pub fn replace_with_device(
        &self,
        slot: usize,
        device: Arc<dyn ectable_devices::BlockDevice>,
    ) -> Result<usize> {
        self.shared.check_alive()?;
        if slot >= self.shared.array.n() {
            return Err(Error::InvalidArgument(format!(
                "no slot {slot} in an array of {} devices",
                self.shared.array.n()
            )));
        }
        let index = self.admit_device(device)?;
        self.shared.replace(slot, index)?;
        Ok(index)
    }

    /// Brings a member that failed (or was missing) back into service on `device`, once the
    /// device works again: the same device the engine holds (a fault that went away), or
    /// the member under another name (a device that came back as another node). `device`
    /// must hold this array's superblock with its slot's device id. A health block is
    /// written to it and read back first; a device that still fails is refused with nothing
    /// changed. The member comes back stale, from the segment at which it left: it takes
    /// new writes at once and its resync runs with [`Engine::rebuild`] (the `Automatic`
    /// recovery policy starts it). A member already in service changes nothing
    /// ([`crate::Online::was`] says which). No downtime: reads and writes go on.
    pub fn online(&self, device: Arc<dyn ectable_devices::BlockDevice>) -> Result<crate::Online> {
        self.shared.check_alive()?;
        self.shared.online(device)
    }

    /// Whether the engine already holds `device`'s storage, under this or another name (so
    /// a handle opened read-only beside it is enough for [`Engine::online`]).
    pub fn holds_device(&self, device: &Arc<dyn ectable_devices::BlockDevice>) -> bool {
        self.shared.held_device(device).is_some()
    }

    /// What the engine already holds `device`'s storage as, under this or another name: a
    /// member (its slot), a hot spare, or another device opened with the array. A handle
    /// opened read-only beside the engine's is enough to ask.
    pub fn holding(
        &self,
        device: &Arc<dyn ectable_devices::BlockDevice>,
    ) -> Option<crate::Holding> {
        self.shared.holding(device)
    }

    /// The member or hot spare the engine holds under the name `path` (the name it was
    /// opened or handed over under), by name alone.
    pub fn holding_path(&self, path: &str) -> Option<crate::Holding> {
        self.shared.holding_path(path)
    }

    /// Hands a new blank device to the running engine as a hot spare (the checks of
    /// [`Engine::replace_with_device`]). Returns its engine index.
    ///
    /// A hot spare the array names that is missing and did not fail in this session makes it
    /// [`Error::SpareMissing`], with nothing changed: see
    /// [`Engine::add_spare_device_in_place_of_missing`].
    pub fn add_spare_device(&self, device: Arc<dyn ectable_devices::BlockDevice>) -> Result<usize> {
        self.add_spare_device_with(device, false)
    }
    /// [`Engine::add_spare_device`], the new spare taking the entry of a hot spare the array
    /// names that is missing (left out of the devices given, or wiped); that one is then no
    /// longer a member.
    pub fn add_spare_device_in_place_of_missing(
        &self,
        device: Arc<dyn ectable_devices::BlockDevice>,
    ) -> Result<usize> {
        self.add_spare_device_with(device, true)
    }
    fn add_spare_device_with(
        &self,
        device: Arc<dyn ectable_devices::BlockDevice>,
        in_place_of_missing: bool,
    ) -> Result<usize> {
        self.shared.check_alive()?;
        // Refused before the device joins the backend.
        self.shared.spare_entry_for_new(in_place_of_missing)?;
        let index = self.admit_device(device)?;
        self.shared.add_spare(index, in_place_of_missing)?;
        Ok(index)
    }

    /// Checks a device handed to the running engine and adds it to the I/O backend.
    fn admit_device(&self, device: Arc<dyn ectable_devices::BlockDevice>) -> Result<usize> {
        let a = &self.shared.array;
        if a.read_only {
            return Err(Error::ReadOnly);
        }
        if let Some(d) = self.shared.held_device(&device) {
            return Err(Error::DuplicateDevice {
                first: a.io.devices()[d].name().to_string(),
                second: device.name().to_string(),
            });
        }
        let own = crate::array::newest_superblock_within(&device, a.io.io_timeout())?;
        if let Some(array) = own.map(|sb| crate::format::uuid_string(&sb.array_uuid)) {
            return Err(Error::AlreadyFormatted {
                device: device.name().to_string(),
                array,
            });
        }
        Ok(a.io.add_device(device)?)
    }

    /// Reads both superblock copies of every member and hot spare present and names each
    /// one that is not what the last superblock write put there (unreadable, not a
    /// superblock, another device's or array's, an older epoch): `slot 2 (d2.img) superblock
    /// copy 1: not a superblock (bad magic)`. A member keeps two copies so that one torn or
    /// overwritten copy loses nothing; with one bad the next fault on the other leaves the
    /// member unrecognised. A read-only `status` asks for it (a writable engine's probe round
    /// and `scrub --repair` rewrite bad copies). Two small reads per device.
    ///
    /// A read-only engine beside a writer could read a copy while the writer rewrites it: a
    /// copy found bad is read again a moment later, and named only when it is still bad.
    pub fn check_superblocks(&self) -> Vec<String> {
        let a = &self.shared.array;
        let mut bad = a.check_superblocks();
        if !bad.is_empty() && a.read_only {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let again = a.check_superblocks();
            bad.retain(|b| again.iter().any(|x| x.entry == b.entry && x.copy == b.copy));
        }
        bad.iter()
            .map(|b| self.shared.describe_bad_superblock(b, ""))
            .collect()
    }

    /// Adds a blank device (by engine index) as a hot spare. It takes the entry of a spare
    /// that failed in this session; a spare the array names that is missing otherwise (left
    /// out of the devices given, or wiped while the array was closed) makes it
    /// [`Error::SpareMissing`], with nothing changed.
    pub fn add_spare(&self, device_index: usize) -> Result<()> {
        self.shared.check_alive()?;
        self.shared.add_spare(device_index, false)
    }
    /// [`Engine::add_spare`], the new spare taking the entry of a missing hot spare, which is
    /// then no longer a member.
    pub fn add_spare_in_place_of_missing(&self, device_index: usize) -> Result<()> {
        self.shared.check_alive()?;
        self.shared.add_spare(device_index, true)
    }
    /// A channel of the members' state changes from now on (failed, slow, no longer slow,
    /// replaced, rebuilt, spare added), as they happen; the same changes are logged. Drop the
    /// receiver to unsubscribe.
    pub fn subscribe_events(&self) -> std::sync::mpsc::Receiver<crate::events::DeviceEvent> {
        self.shared.array.events.subscribe()
    }
    /// Engine indices of the hot spares present.
    pub fn spare_devices(&self) -> Vec<usize> {
        self.shared.spare_devices()
    }
    /// For a read-only session: records the device errors it met and a scrub it ran in the
    /// members' health blocks, through `writable` (slot, device) handles the caller opened
    /// for writing, so that a later `status` shows them (a read-only session writes nothing
    /// through its own handles). Returns how many members' blocks were written; 0 when there
    /// was nothing to record. See `prober::record_findings`.
    pub fn record_findings(
        &self,
        writable: &[(usize, std::sync::Arc<dyn ectable_devices::BlockDevice>)],
    ) -> usize {
        crate::prober::record_findings(&self.shared, writable)
    }

    /// Whether this read-only session has anything for [`Engine::record_findings`]: device
    /// errors it met, or a scrub it ran.
    pub fn has_findings(&self) -> bool {
        crate::prober::has_findings(&self.shared)
    }

    /// Checks every live stripe; with `repair`, rewrites bad chunks.
    pub fn scrub(
        &self,
        repair: bool,
        opts: &RebuildOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<ScrubReport> {
        self.shared.check_alive()?;
        let _running = self.ops.begin(crate::ops::ActivityKind::Scrub);
        let started = std::time::Instant::now();
        let report = self.shared.scrub(repair, opts, &mut |p| {
            self.ops.progress(p);
            progress(p)
        })?;
        if !report.progress.interrupted {
            let finished = crate::array::now_unix_nanos().max(1);
            // Kept in the health blocks at the next probe round and at close.
            *self.shared.array.last_scrub.locked() =
                Some(crate::format::health_block::ScrubRecord {
                    finished_unix_nanos: finished,
                    duration_ns: started.elapsed().as_nanos() as u64,
                    bytes_scanned: report.progress.bytes_scanned,
                    bad_chunks: report.bad_chunks_per_slot.iter().sum(),
                    chunks_repaired: report.chunks_repaired,
                    unrecoverable: report.progress.unrecoverable.len() as u64,
                    repair,
                });
        }
        Ok(report)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Refuses a write to a system table (a name starting with `$`) through the public
/// key/value calls.
fn refuse_system_table(table: &str) -> Result<()> {
    if table.starts_with('$') {
        return Err(Error::ReservedTableName(table.to_string()));
    }
    Ok(())
}
