//! Crash-state enumeration: a workload runs over recording devices that keep every write
//! (with the bytes it replaced) and every flush in one trace; then every crash state the
//! trace allows at each cut point is rebuilt from the images, opened, and checked against
//! what had been acknowledged before the cut (docs/fault-model.md, "Crash states").
//!
//! At a cut after event P, a device holds every write it completed before P; the writes
//! after its last flush before P may be lost, reordered or torn (docs/format.md's media
//! model). Per cut the states are: all of them kept; all of them lost; random subsets of
//! them kept; the last of them torn at a random 4096-byte boundary (the rest kept).
//!
//! The workload runs over six members and a seventh, blank device: early on one member's
//! writes fail for a while until the engine takes it out, then it is brought back with
//! `online` and resynced, so that cuts fall between online's superblock writes and inside
//! the resync; half-way one member is replaced by the seventh and rebuilt, so that cuts fall
//! inside the replace and the rebuild too; full and incremental backups (which write the
//! backup horizon) run among the writes, as do checkpoints and cleaning passes. A state in
//! which the replaced device is no longer a member opens without it, as an operator would
//! after the engine named it replaced.

use crate::model::{Model, Mutation, State};
use ectable::devices::{open_backend, BackendKind, BlockDevice, DeviceError, Geometry, MemDevice};
use ectable::{format, Engine, EngineOptions, FormatOptions, RebuildOptions, WriteBatch};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::ops::Bound;
use std::sync::{Arc, Mutex};

const BLOCK: usize = 4096;

#[derive(Debug)]
enum Event {
    Write {
        device: usize,
        offset: u64,
        old: Vec<u8>,
        new: Vec<u8>,
        /// Durable when it completed (RWF_DSYNC): power loss cannot take it.
        durable: bool,
    },
    Flush {
        device: usize,
    },
    /// The workload saw a sync return: this many mutations are acknowledged.
    Ack(usize),
}

type Trace = Arc<Mutex<Vec<Event>>>;

fn lock(t: &Trace) -> std::sync::MutexGuard<'_, Vec<Event>> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

struct Recording {
    inner: Arc<MemDevice>,
    device: usize,
    trace: Trace,
    /// While set, every write and flush fails (EIO) and reaches nothing.
    failing: std::sync::atomic::AtomicBool,
}

impl Recording {
    fn record_write(
        &self,
        buf: &[u8],
        offset_bytes: u64,
        durable: bool,
    ) -> Result<(), DeviceError> {
        self.fail_if_failing("write", offset_bytes)?;
        // One lock around the read of the old bytes, the write and the event: the trace
        // order is the order the writes reached the medium.
        let mut t = lock(&self.trace);
        let old = self.inner.peek(offset_bytes, buf.len());
        self.inner.write_at(buf, offset_bytes)?;
        t.push(Event::Write {
            device: self.device,
            offset: offset_bytes,
            old,
            new: buf.to_vec(),
            durable,
        });
        Ok(())
    }

    fn fail_if_failing(&self, op: &'static str, offset_bytes: u64) -> Result<(), DeviceError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(DeviceError::Io {
                device: self.inner.name().to_string(),
                op,
                offset_bytes,
                source: std::io::Error::from_raw_os_error(5),
            });
        }
        Ok(())
    }
}

impl BlockDevice for Recording {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> Result<(), DeviceError> {
        self.inner.read_at(buf, offset_bytes)
    }
    fn write_at(&self, buf: &[u8], offset_bytes: u64) -> Result<(), DeviceError> {
        self.record_write(buf, offset_bytes, false)
    }
    fn write_durable_at(&self, buf: &[u8], offset_bytes: u64) -> Result<(), DeviceError> {
        self.record_write(buf, offset_bytes, true)
    }
    fn sync(&self) -> Result<(), DeviceError> {
        self.fail_if_failing("flush", 0)?;
        let mut t = lock(&self.trace);
        self.inner.sync()?;
        t.push(Event::Flush {
            device: self.device,
        });
        Ok(())
    }
}

/// One crash state of a cut: its name, the unflushed writes lost, and a write torn (kept up
/// to a byte offset).
type Variant = (String, Vec<usize>, Option<(usize, usize)>);

/// What a run checked.
#[derive(Debug, Clone, Default)]
pub struct CrashReport {
    pub events: usize,
    pub cut_points: usize,
    pub states: u64,
    /// States whose recovery kept some in-doubt writes / lost some (both allowed).
    pub in_doubt_kept: u64,
    pub in_doubt_lost: u64,
    /// States taken while a checkpoint or the cleaner was writing.
    pub during_checkpoint_or_cleaning: u64,
    /// States taken during a replace and its rebuild, during a member's `online` and its
    /// resync, and during a backup.
    pub during_rebuild: u64,
    pub during_online: u64,
    pub during_backup: u64,
    pub acknowledged_lost: u64,
    pub failed_recoveries: u64,
    /// States (among those that lost in-doubt writes) also given a second session on a
    /// copy: opened writable, closed with a checkpoint, opened again; the two opens must
    /// read the same.
    pub second_sessions: u64,
}

impl CrashReport {
    /// Adds another enumeration's figures to these.
    pub fn add(&mut self, o: &CrashReport) {
        self.events += o.events;
        self.cut_points += o.cut_points;
        self.states += o.states;
        self.in_doubt_kept += o.in_doubt_kept;
        self.in_doubt_lost += o.in_doubt_lost;
        self.during_checkpoint_or_cleaning += o.during_checkpoint_or_cleaning;
        self.during_rebuild += o.during_rebuild;
        self.during_online += o.during_online;
        self.during_backup += o.during_backup;
        self.acknowledged_lost += o.acknowledged_lost;
        self.failed_recoveries += o.failed_recoveries;
        self.second_sessions += o.second_sessions;
    }
}

/// What one enumeration does.
#[derive(Debug, Clone)]
pub struct CrashConfig {
    pub seed: u64,
    /// Workload operations recorded.
    pub ops: usize,
    /// Crash states opened at most (cut points are spread evenly over the trace).
    pub max_states: u64,
    /// Random-subset states per cut point.
    pub subsets_per_cut: usize,
}

impl Default for CrashConfig {
    fn default() -> Self {
        CrashConfig {
            seed: 1,
            ops: 250,
            max_states: 1_200,
            subsets_per_cut: 2,
        }
    }
}

/// Devices: six members, then a blank one that replaces a member half-way.
const N: usize = 7;
const MEMBERS: usize = 6;

/// What the engine was doing during a range of the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Busy {
    CheckpointOrCleaning,
    Rebuild,
    Online,
    Backup,
}
const DEVICE_BYTES: u64 = 6 << 20;
const TABLES: [&str; 2] = ["a", "b"];

fn fmt() -> FormatOptions {
    FormatOptions {
        data_shards: 4,
        parity_shards: 2,
        chunk_size_bytes: 16 << 10,
        segment_size_bytes: 256 << 10,
        force: false,
        spare_count: 0,
        sync_journal: true,
        inline_values: false,
        wide_records: false,
        whole_records: false,
    }
}

/// Records the workload: returns the images before it, the trace, the mutations in order,
/// and the trace ranges during which a checkpoint, a cleaning pass, the replace and rebuild,
/// or a backup ran.
#[allow(clippy::type_complexity)]
fn record(
    cfg: &CrashConfig,
) -> Result<
    (
        Vec<Vec<u8>>,
        Vec<Event>,
        Vec<Mutation>,
        Vec<(usize, usize, Busy)>,
    ),
    String,
> {
    let mems: Vec<Arc<MemDevice>> = (0..N)
        .map(|i| Arc::new(MemDevice::new(&format!("rec{i}"), DEVICE_BYTES)))
        .collect();
    let plain: Vec<Arc<dyn BlockDevice>> = mems[..MEMBERS]
        .iter()
        .map(|m| m.clone() as Arc<dyn BlockDevice>)
        .collect();
    let io = open_backend(BackendKind::Psync, plain).map_err(|e| e.to_string())?;
    format(io.as_ref(), &fmt()).map_err(|e| format!("format: {e}"))?;
    let base: Vec<Vec<u8>> = mems.iter().map(|m| m.snapshot()).collect();
    let trace: Trace = Arc::new(Mutex::new(Vec::new()));
    let recording: Vec<Arc<Recording>> = mems
        .iter()
        .enumerate()
        .map(|(i, m)| {
            Arc::new(Recording {
                inner: m.clone(),
                device: i,
                trace: trace.clone(),
                failing: Default::default(),
            })
        })
        .collect();
    let devs: Vec<Arc<dyn BlockDevice>> = recording
        .iter()
        .map(|r| r.clone() as Arc<dyn BlockDevice>)
        .collect();
    let io = open_backend(BackendKind::Psync, devs).map_err(|e| e.to_string())?;
    let e = Engine::open(io, crate::engine_options()).map_err(|e| format!("open: {e}"))?;
    let mut rng = SmallRng::seed_from_u64(cfg.seed);
    let mut mutations = Vec::new();
    let mut busy = Vec::new();
    let rebuild_at = rng.random_range(cfg.ops * 3 / 10..=cfg.ops * 7 / 10);
    // A member fails at `fail_at` (its writes and flushes) and comes back 25 operations on.
    let fail_at = rng.random_range(cfg.ops / 20..=cfg.ops / 5);
    let fail_slot = rng.random_range(0..MEMBERS);
    let set_failing = |on: bool| {
        recording[fail_slot]
            .failing
            .store(on, std::sync::atomic::Ordering::SeqCst)
    };
    let mut last_backup: Option<u64> = None;
    let mut n = 0u64;
    let mut value = |rng: &mut SmallRng| -> Vec<u8> {
        n += 1;
        let len = match rng.random_range(0..12) {
            // Up to past a quarter of a stripe: records that continue in the next one.
            0 => rng.random_range(5_000..17_000),
            // Whole blocks: values a version 3 array places on device blocks.
            1 => 4096 * rng.random_range(1..=2),
            _ => rng.random_range(16..2_000),
        };
        let mut v = cfg.seed.to_le_bytes().to_vec();
        v.extend_from_slice(&n.to_le_bytes());
        v.resize(len, (n % 251) as u8);
        v
    };
    for op in 0..cfg.ops {
        if op == fail_at {
            set_failing(true);
        }
        if op == fail_at + 25 {
            set_failing(false);
            let from = lock(&trace).len();
            let o = e
                .online(recording[fail_slot].clone() as Arc<dyn BlockDevice>)
                .map_err(|e| format!("online slot {fail_slot}: {e}"))?;
            if o.was != "ONLINE" {
                let p = e
                    .rebuild(&RebuildOptions::default(), &mut |_| {})
                    .map_err(|e| format!("resync slot {fail_slot}: {e}"))?;
                if !p.unrecoverable.is_empty() {
                    return Err(format!("resync lost stripes: {:?}", p.unrecoverable));
                }
            }
            busy.push((from, lock(&trace).len(), Busy::Online));
        }
        if op == rebuild_at {
            let slot = rng.random_range(0..MEMBERS);
            let from = lock(&trace).len();
            e.replace(slot, MEMBERS)
                .map_err(|e| format!("replace slot {slot}: {e}"))?;
            let p = e
                .rebuild(&RebuildOptions::default(), &mut |_| {})
                .map_err(|e| format!("rebuild slot {slot}: {e}"))?;
            if !p.unrecoverable.is_empty() {
                return Err(format!("rebuild lost stripes: {:?}", p.unrecoverable));
            }
            busy.push((from, lock(&trace).len(), Busy::Rebuild));
        }
        let t = TABLES[rng.random_range(0..TABLES.len())];
        let k = format!("k{:02}", rng.random_range(0..40)).into_bytes();
        match rng.random_range(0..100) {
            0..=59 => {
                let v = value(&mut rng);
                e.put(t, &k, &v).map_err(|e| format!("put: {e}"))?;
                mutations.push(Mutation::One(t.into(), k, Some(v)));
            }
            60..=69 => {
                e.delete(t, &k).map_err(|e| format!("delete: {e}"))?;
                mutations.push(Mutation::One(t.into(), k, None));
            }
            70..=77 => {
                let mut b = WriteBatch::new();
                let mut ops = Vec::new();
                for _ in 0..rng.random_range(2..5) {
                    let t = TABLES[rng.random_range(0..TABLES.len())];
                    let k = format!("k{:02}", rng.random_range(0..40)).into_bytes();
                    let v = value(&mut rng);
                    b.put(t, &k, &v);
                    ops.push((t.to_string(), k, Some(v)));
                }
                e.write_batch(&b).map_err(|e| format!("batch: {e}"))?;
                mutations.push(Mutation::Batch(ops));
            }
            78..=93 => {
                e.sync().map_err(|e| format!("sync: {e}"))?;
                lock(&trace).push(Event::Ack(mutations.len()));
            }
            94..=95 => {
                let from = lock(&trace).len();
                e.checkpoint().map_err(|e| format!("checkpoint: {e}"))?;
                busy.push((from, lock(&trace).len(), Busy::CheckpointOrCleaning));
            }
            96..=97 => {
                let from = lock(&trace).len();
                e.clean(2).map_err(|e| format!("clean: {e}"))?;
                busy.push((from, lock(&trace).len(), Busy::CheckpointOrCleaning));
            }
            _ => {
                // A backup registers its end as the horizon (a durable write of its own);
                // after the first, an incremental one half of the time.
                let from = lock(&trace).len();
                let end = match last_backup {
                    Some(lsn) if rng.random_bool(0.5) => e
                        .backup_changes(lsn, true, &mut |_| Ok(()))
                        .map_err(|e| format!("incremental backup from {lsn}: {e}"))?,
                    _ => e
                        .backup_full(true, &mut |_, _, _| Ok(()))
                        .map_err(|e| format!("full backup: {e}"))?,
                };
                last_backup = Some(end);
                busy.push((from, lock(&trace).len(), Busy::Backup));
            }
        }
    }
    e.close().map_err(|e| format!("close: {e}"))?;
    lock(&trace).push(Event::Ack(mutations.len()));
    drop(e);
    let events = std::mem::take(&mut *lock(&trace));
    Ok((base, events, mutations, busy))
}

fn open_and_read(devices: &[Arc<MemDevice>]) -> Result<State, String> {
    open_read_close(devices, true)
}

/// A second session on a copy of a crash state: opened writable (its first write folds the
/// journal back into the log and makes the replayed log whole), closed (a checkpoint), and
/// opened again. What the first open reads, the second must read: writes a crash left out
/// stay out (docs/fault-model.md, seeds 5256 and 2390201).
fn second_session(media: &[Arc<MemDevice>], first: &State) -> Result<(), String> {
    let copies: Vec<Arc<MemDevice>> = media
        .iter()
        .map(|m| {
            let c = MemDevice::new(m.name(), DEVICE_BYTES);
            c.restore(&m.snapshot());
            Arc::new(c)
        })
        .collect();
    let writable = open_read_close(&copies, false)?;
    if writable != *first {
        return Err(format!(
            "a writable open read other than the read-only one: {}",
            state_difference(first, &writable)
        ));
    }
    let again = open_read_close(&copies, true)?;
    if again != writable {
        return Err(format!(
            "after a session that wrote and closed, the next open reads other than it did: {}",
            state_difference(&writable, &again)
        ));
    }
    Ok(())
}

/// The keys two states disagree on (the first few).
fn state_difference(a: &State, b: &State) -> String {
    let keys: std::collections::BTreeSet<&(String, Vec<u8>)> = a.keys().chain(b.keys()).collect();
    let differ: Vec<String> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .take(5)
        .map(|k| {
            format!(
                "{}/{}: {:?} then {:?} bytes",
                k.0,
                String::from_utf8_lossy(&k.1),
                a.get(k).map(Vec::len),
                b.get(k).map(Vec::len)
            )
        })
        .collect();
    differ.join("; ")
}

/// Opens the array on `devices` (read-only, or writable and then closed), and reads every
/// row.
fn open_read_close(devices: &[Arc<MemDevice>], read_only: bool) -> Result<State, String> {
    let mut devs: Vec<Arc<dyn BlockDevice>> = devices
        .iter()
        .map(|m| m.clone() as Arc<dyn BlockDevice>)
        .collect();
    let opts = EngineOptions {
        read_only,
        // Images in memory: nothing writes them beside this open.
        no_writer_beside: true,
        ..crate::engine_options()
    };
    let e = loop {
        let io = open_backend(BackendKind::Psync, devs.clone()).map_err(|e| e.to_string())?;
        match Engine::open(io, opts.clone()) {
            Ok(e) => break e,
            // The replaced member, once the array no longer names it: left out, as the
            // operator is told to.
            Err(ectable::Error::ReplacedDevice { device, .. })
                if devs.iter().any(|d| d.name() == device) =>
            {
                devs.retain(|d| d.name() != device);
            }
            Err(e) => return Err(format!("open: {e}")),
        }
    };
    let mut s = State::new();
    for t in TABLES {
        match e.scan(t, Bound::Unbounded, Bound::Unbounded, usize::MAX) {
            Ok(rows) => {
                for (k, v) in rows {
                    s.insert((t.to_string(), k), v);
                }
            }
            Err(ectable::Error::NoSuchTable(_)) => {}
            Err(e) => return Err(format!("scan {t}: {e}")),
        }
    }
    if !read_only {
        e.close().map_err(|e| format!("close: {e}"))?;
    }
    Ok(s)
}

/// Records a workload and checks crash states of its trace. Err names the first state that
/// broke the oracle or failed to open.
pub fn enumerate(cfg: &CrashConfig) -> Result<CrashReport, String> {
    let (base, events, mutations, busy) = record(cfg)?;
    let mut report = CrashReport {
        events: events.len(),
        ..Default::default()
    };
    let per_cut = 3 + cfg.subsets_per_cut as u64;
    let cuts = (cfg.max_states / per_cut).max(1) as usize;
    let step = (events.len() / cuts).max(1);
    let mut rng = SmallRng::seed_from_u64(cfg.seed ^ 0xC4A5);
    // The media as of the cut, kept up to date event by event; a state's reverts are poked
    // onto them and undone after its check (the read-only open writes nothing).
    let media: Vec<Arc<MemDevice>> = base
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let m = MemDevice::new(&format!("rec{i}"), DEVICE_BYTES);
            m.restore(img);
            Arc::new(m)
        })
        .collect();
    // Per device: (trace index of each write since its last flush).
    let mut unflushed: Vec<Vec<usize>> = vec![Vec::new(); N];
    let mut acked = 0usize;
    for p in 0..events.len() {
        match &events[p] {
            Event::Write {
                device,
                offset,
                new,
                durable,
                ..
            } => {
                media[*device].poke(*offset, new);
                if !durable {
                    unflushed[*device].push(p);
                } else {
                    // Durable by itself; if it overlaps an unflushed write, undoing that one
                    // would undo it too: count it as a flush of the device (fewer states,
                    // none wrong).
                    let end = *offset + new.len() as u64;
                    let overlaps = unflushed[*device].iter().any(|&i| match &events[i] {
                        Event::Write {
                            offset: o, new: n, ..
                        } => *o < end && *offset < *o + n.len() as u64,
                        _ => false,
                    });
                    if overlaps {
                        unflushed[*device].clear();
                    }
                }
            }
            Event::Flush { device } => unflushed[*device].clear(),
            Event::Ack(n) => acked = *n,
        }
        if (p + 1) % step != 0 && p + 1 != events.len() {
            continue;
        }
        report.cut_points += 1;
        let pending: Vec<usize> = unflushed.iter().flatten().copied().collect();
        let mut variants: Vec<Variant> = vec![
            ("all kept".into(), Vec::new(), None),
            ("unflushed lost".into(), pending.clone(), None),
        ];
        for i in 0..cfg.subsets_per_cut {
            let lost: Vec<usize> = pending
                .iter()
                .copied()
                .filter(|_| rng.random_bool(0.5))
                .collect();
            variants.push((format!("subset {i}"), lost, None));
        }
        if let Some(&last) = pending.last() {
            if let Event::Write { new, .. } = &events[last] {
                let blocks = new.len() / BLOCK;
                let keep = if blocks > 1 {
                    rng.random_range(1..blocks)
                } else {
                    0
                };
                variants.push(("last torn".into(), Vec::new(), Some((last, keep * BLOCK))));
            }
        }
        for (what, lost, torn) in variants {
            let mut undo: Vec<(usize, usize)> = lost.iter().map(|&i| (i, 0)).collect();
            undo.extend(torn);
            undo.sort_unstable();
            let poke = |revert: bool| {
                let order: Box<dyn Iterator<Item = &(usize, usize)>> = if revert {
                    Box::new(undo.iter().rev())
                } else {
                    Box::new(undo.iter())
                };
                for &(i, from) in order {
                    if let Event::Write {
                        device,
                        offset,
                        old,
                        new,
                        ..
                    } = &events[i]
                    {
                        let bytes = if revert { old } else { new };
                        media[*device].poke(*offset + from as u64, &bytes[from..]);
                    }
                }
            };
            poke(true);
            let found = open_and_read(&media);
            let checked = found
                .inspect_err(|_| report.failed_recoveries += 1)
                .and_then(|found| {
                    let mut model = Model::default();
                    for m in &mutations[..acked] {
                        model.append(m.clone());
                    }
                    model.acknowledge();
                    for m in &mutations[acked..] {
                        model.append(m.clone());
                    }
                    let kept = model.recover(&found)?;
                    // Where in-doubt writes were left out (stripes a crash tore, perhaps
                    // good ones after them), every other such state also gets a second
                    // session, on a copy: the media stay as recorded.
                    if kept < mutations.len() - acked && report.in_doubt_lost.is_multiple_of(2) {
                        second_session(&media, &found)?;
                        report.second_sessions += 1;
                    }
                    Ok(kept)
                });
            poke(false);
            let kept = checked
                .map_err(|why| format!("cut after event {p} of {}, {what}: {why}", events.len()))?;
            let in_doubt = mutations.len() - acked;
            report.states += 1;
            report.in_doubt_kept += (kept > 0) as u64;
            report.in_doubt_lost += (kept < in_doubt) as u64;
            for kind in busy
                .iter()
                .filter(|(a, b, _)| *a <= p && p < *b)
                .map(|r| r.2)
            {
                match kind {
                    Busy::CheckpointOrCleaning => report.during_checkpoint_or_cleaning += 1,
                    Busy::Rebuild => report.during_rebuild += 1,
                    Busy::Online => report.during_online += 1,
                    Busy::Backup => report.during_backup += 1,
                }
            }
        }
    }
    Ok(report)
}
