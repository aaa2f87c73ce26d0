//! Power loss, in process: an array of six `MemDevice`s, each behind a `FaultyDevice` that
//! remembers every write no flush has covered yet (`set_track_unflushed`), and, in front of
//! those, a test-local "power switch" device that lets a chosen number of writes and flushes
//! through (counted over all six devices) and then fails every later operation with EIO
//! without touching the medium. One writer thread appends puts, deletes and `write_batch`es
//! with a random mix of `sync`s (one cycle in three is "bulk": large values and rare syncs, so
//! that several full stripes and new segments are unflushed when the cut comes), so the cut
//! lands at a random write or flush: inside a flush
//! batch (some chunks of a stripe written, others not, the flush not yet done), while a
//! session starts (new superblock epoch, repairs of the replayed log: at the open when it
//! has repairs to make, else at the first write), or while idle. Then the power loss
//! itself: the engine is dropped (its flusher is joined, so nothing is still in flight, and
//! nothing it tries after the cut reaches the medium), and the writes no completed flush
//! covered are undone on every device by `crash(mode)`: all of them (`DropAll`), each with
//! probability 1/2 (`RandomSubset`), or only the tail of the last one on each device
//! (`TornLast`); a fourth mode (`KeepAll`) keeps them all (the writes reached the medium, only
//! the flushes were lost). This is the media model of docs/format.md: "writes not covered by a
//! completed flush may be lost, reordered or torn at 4096-byte granularity". (Dropping the
//! engine normally rather than `mem::forget`ting it is safe because the power is already off:
//! whatever its `close` tries fails before it reaches a `FaultyDevice`.)
//!
//! The array is then reopened on the same `MemDevice`s behind fresh wrappers, and the oracle of
//! docs/fault-model.md is applied to the whole state: S1 (every acknowledged write, or a later in-doubt
//! one, is there), S2 (nothing that was never written), S3 (batches all or nothing), and the
//! stronger "the state is the acknowledged history plus a prefix of the in-doubt tail"
//! (docs/design.md invariant 2). A write is acknowledged when the `sync` after it returned Ok; it is
//! in doubt when appended but not (yet) acknowledged. Parity must agree with data in every
//! committed stripe: a value acknowledged while the power was still on (so all six chunks of
//! its stripe were written and flushed) must read back on the fast path, without a degraded
//! read; `scrub` must find no live stripe unreadable and no stripe whose parity disagrees with
//! its data; and every other cycle `scrub --repair` followed by a second scrub must leave every
//! chunk good (docs/fault-model.md L2). Each seed runs several crash cycles on the same array, so
//! crashes accumulate, and the state read after one crash is the known state for the next.
//! The fault counters (and the operations the cut refused) must show that the crashes really
//! dropped or tore writes.
//!
//! `power_loss_then_device_loss_keeps_acknowledged_writes` runs the same crash cycles and also
//! reopens every recovered state with each single device, and a random pair of devices, left
//! out (read-only): every stripe of the log then has to be rebuilt from parity and verified
//! against the chunk crcs, and every write acknowledged while the power was on must still be
//! there (docs/design.md invariant 1: a crash must not leave an acknowledged write depending on a
//! chunk the crash destroyed). `writes_after_a_replayed_partial_stripe_survive_device_loss` is
//! the smallest deterministic case of that: a crash leaves a stripe with exactly k chunks,
//! recovery replays it, later writes are acknowledged, then one device is lost.
//!
//! Replay: the seed (printed; `ECTABLE_TEST_SEED`) fixes the workload, the cut point and the
//! crash randomness. The psync engine runs the operations of one batch on parallel workers, so
//! exactly which operations of the batch in flight fall before the cut can differ between runs.
//!
//! Failed flushes: with flushes failing on more than m devices a `put_sync` must fail (and a
//! later commit fail with `PreviousIo`), and the key is then not required after a reopen (with
//! `DropAll` it must be absent: fewer than k chunks remain); with flushes failing on at most m
//! devices it must succeed, and every value must survive a reopen without those devices and
//! one with them back (holding stale chunks).

mod common;
use common::crash_oracle::{self, check, make_value, okey, read_all, uid_of, State, Unit};
use common::*;
use ectable::devices::{
    open_backend, BackendKind, BlockDevice, CrashMode, DeviceError, FaultCounters, FaultyDevice,
    Geometry, MemDevice,
};
use ectable::{format, Engine, EngineOptions, Error, RebuildOptions, WriteBatch};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

const N: usize = 6;
const K: usize = 4;
const M: usize = 2;
const DEV_BYTES: u64 = 8 << 20;
const TABLES: [&str; 2] = ["a", "b"];
const KEYS_PER_TABLE: usize = 16;
const SEEDS_PER_MODE: u64 = 30;
const DEVICE_LOSS_SEEDS_PER_MODE: u64 = 10;
const CYCLES_PER_SEED: usize = 4;
const MAX_UNITS_PER_CYCLE: usize = 60;

/// The power switch shared by the six devices of one session.
struct Power {
    /// Writes and flushes still allowed before the cut.
    budget: AtomicI64,
    off: AtomicBool,
    /// Writes and flushes refused because the power was off.
    refused: AtomicU64,
}

impl Power {
    fn new(budget: i64) -> Arc<Power> {
        Arc::new(Power {
            budget: AtomicI64::new(budget),
            off: AtomicBool::new(false),
            refused: AtomicU64::new(0),
        })
    }
    /// Whether one more write or flush reaches the device.
    fn pass(&self) -> bool {
        if self.off.load(Ordering::SeqCst) || self.budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
            self.off.store(true, Ordering::SeqCst);
            self.refused.fetch_add(1, Ordering::SeqCst);
            return false;
        }
        true
    }
    fn is_off(&self) -> bool {
        self.off.load(Ordering::SeqCst)
    }
    fn cut(&self) {
        self.off.store(true, Ordering::SeqCst);
    }
}

/// Sits in front of a `FaultyDevice`; after the power is cut every operation fails with EIO
/// and nothing reaches the device below.
struct CutDevice {
    inner: Arc<FaultyDevice>,
    power: Arc<Power>,
}

fn power_off(dev: &str, op: &'static str, offset: u64) -> DeviceError {
    DeviceError::io(
        dev,
        op,
        offset,
        std::io::Error::from_raw_os_error(libc::EIO),
    )
}

impl BlockDevice for CutDevice {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> Result<(), DeviceError> {
        if self.power.is_off() {
            return Err(power_off(self.name(), "read", offset_bytes));
        }
        self.inner.read_at(buf, offset_bytes)
    }
    fn write_at(&self, buf: &[u8], offset_bytes: u64) -> Result<(), DeviceError> {
        if !self.power.pass() {
            return Err(power_off(self.name(), "write", offset_bytes));
        }
        self.inner.write_at(buf, offset_bytes)
    }
    fn sync(&self) -> Result<(), DeviceError> {
        if !self.power.pass() {
            return Err(power_off(self.name(), "flush", 0));
        }
        self.inner.sync()
    }
    fn write_durable_at(&self, buf: &[u8], offset_bytes: u64) -> Result<(), DeviceError> {
        if !self.power.pass() {
            return Err(power_off(self.name(), "durable write", offset_bytes));
        }
        self.inner.write_durable_at(buf, offset_bytes)
    }
}

fn new_mems() -> Vec<Arc<MemDevice>> {
    memory_devices(N, DEV_BYTES)
}

/// What the crash cycles exercise.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavor {
    /// Roomy devices: the cut lands in writes, flushes, epochs and recovery.
    Writes,
    /// Devices of eight segments and an eager cleaner with a checkpoint every 64 KiB of log,
    /// longer cycles and later cuts: the cut lands while the cleaner moves records, writes
    /// checkpoints and frees segments, and the unflushed writes it drops or tears include
    /// theirs.
    Cleaning,
}

impl Flavor {
    fn mems(self) -> Vec<Arc<MemDevice>> {
        match self {
            Flavor::Writes => new_mems(),
            Flavor::Cleaning => memory_devices(N, 3 << 20),
        }
    }

    fn options(self) -> EngineOptions {
        match self {
            Flavor::Writes => EngineOptions::default(),
            Flavor::Cleaning => EngineOptions {
                cleaner: ectable::CleanerOptions {
                    start_free_fraction: 0.6,
                    target_free_fraction: 0.8,
                    checkpoint_every_bytes: 64 << 10,
                    interval: std::time::Duration::from_millis(1),
                    ..Default::default()
                },
                ..Default::default()
            },
        }
    }

    fn max_units(self) -> usize {
        match self {
            Flavor::Writes => MAX_UNITS_PER_CYCLE,
            Flavor::Cleaning => 600,
        }
    }

    fn max_budget(self) -> i64 {
        match self {
            Flavor::Writes => 320,
            Flavor::Cleaning => 4000,
        }
    }
}

fn key_name(i: usize) -> Vec<u8> {
    format!("k{i:02}").into_bytes()
}

fn value_len(rng: &mut SmallRng, bulk: bool) -> usize {
    if bulk {
        // One in four a whole number of blocks: values a version 3 array places on device
        // blocks.
        if rng.random_range(0..4) == 0 {
            return 4096 * rng.random_range(1..=2);
        }
        return rng.random_range(2000..12000);
    }
    match rng.random_range(0..100) {
        0..70 => rng.random_range(8..200),
        70..95 => rng.random_range(200..3000),
        _ => rng.random_range(3000..12000),
    }
}

/// (table, key, Some(value) to put / None to delete), as given to the engine.
type Mutations = Vec<(&'static str, Vec<u8>, Option<Vec<u8>>)>;

/// A random put, delete or batch, with the mutations the engine must be given.
fn random_unit(rng: &mut SmallRng, next_uid: &mut u64, seed: u64, bulk: bool) -> (Unit, Mutations) {
    let kind = rng.random_range(0..100);
    let n_ops = if kind >= 80 {
        rng.random_range(2..=6)
    } else {
        1
    };
    let mut ops = Vec::new();
    for _ in 0..n_ops {
        let table = TABLES[rng.random_range(0..TABLES.len())];
        let key = key_name(rng.random_range(0..KEYS_PER_TABLE));
        let delete = if kind < 80 {
            kind >= 62
        } else {
            rng.random_bool(0.25)
        };
        let value = if delete {
            None
        } else {
            *next_uid += 1;
            // A batch must fit one stripe (63488 bytes of records with the test geometry):
            // six values of at most 9000 bytes always do.
            let len = value_len(rng, bulk);
            let len = if kind >= 80 { len.min(9000) } else { len };
            Some(make_value(*next_uid, seed, len))
        };
        ops.push((table, key, value));
    }
    let unit = Unit {
        ops: ops
            .iter()
            .map(|(t, k, v)| (okey(t, k), v.clone()))
            .collect(),
        batch: kind >= 80,
    };
    (unit, ops)
}

fn append(e: &Engine, unit: &Unit, ops: &Mutations) -> Result<u64, Error> {
    if unit.batch {
        let mut b = WriteBatch::new();
        for (t, k, v) in ops {
            match v {
                Some(v) => b.put(t, k, v),
                None => b.delete(t, k),
            };
        }
        e.write_batch(&b)
    } else {
        let (t, k, v) = &ops[0];
        match v {
            Some(v) => e.put(t, k, v),
            None => e.delete(t, k),
        }
    }
}

#[derive(Default)]
struct Tally {
    crash_states: usize,
    cuts_in_workload: usize,
    /// Cuts inside the writable open (its session start).
    cuts_at_open: usize,
    idle_crashes: usize,
    crashes_with_unflushed: usize,
    ops_refused_by_cut: u64,
    acked_units: usize,
    in_doubt_units: usize,
    in_doubt_kept: usize,
    degraded_recoveries: usize,
    discarded_stripes: usize,
    stripes_scrubbed: u64,
    bad_chunks_after_crash: u64,
    chunks_repaired_by_scrub: u64,
    faults: FaultCounters,
    device_loss_opens: usize,
    /// Cycles whose cleaner had freed segments before the cut, and segments it freed.
    cleaning_cycles: usize,
    segments_freed: u64,
}

impl Tally {
    fn line(&self) -> String {
        format!(
            "{} crash states ({} cut while writing, {} at open, {} idle; {} with unflushed writes; {} operations refused by cuts), \
             {} acked / {} in-doubt units ({} in-doubt kept), {} recoveries replayed a stripe with missing chunks, \
             {} stripes found beyond the end of the log, {} stripes scrubbed ({} bad chunks found, {} repaired by scrub --repair), \
             crash faults: {} writes dropped, {} torn; {} reopens with devices missing; {} cycles cut after the \
             cleaner freed segments ({} freed)",
            self.crash_states,
            self.cuts_in_workload,
            self.cuts_at_open,
            self.idle_crashes,
            self.crashes_with_unflushed,
            self.ops_refused_by_cut,
            self.acked_units,
            self.in_doubt_units,
            self.in_doubt_kept,
            self.degraded_recoveries,
            self.discarded_stripes,
            self.stripes_scrubbed,
            self.bad_chunks_after_crash,
            self.chunks_repaired_by_scrub,
            self.faults.crash_dropped_writes,
            self.faults.crash_torn_writes,
            self.device_loss_opens,
            self.cleaning_cycles,
            self.segments_freed,
        )
    }
}

/// Reads the recovered state key by key and checks that no value acknowledged while the power
/// was on needs a degraded read (all its chunks were flushed, so data and parity must agree).
fn read_checked(e: &Engine, clean: &HashSet<u64>, ctx: &str) -> State {
    let state =
        read_all(e, &TABLES).unwrap_or_else(|err| panic!("{ctx}: reading all rows failed: {err}"));
    for (ok, v) in &state {
        let (t, k) = ok.split_at(ok.iter().position(|b| *b == b'/').expect("oracle key"));
        let t = std::str::from_utf8(t).expect("table name");
        let before = e.status().degraded_reads;
        let got = e
            .get(t, &k[1..])
            .unwrap_or_else(|err| panic!("{ctx}: get {}: {err}", String::from_utf8_lossy(ok)));
        assert_eq!(
            got.as_ref(),
            Some(v),
            "{ctx}: get and scan disagree on {}",
            String::from_utf8_lossy(ok)
        );
        let degraded = e.status().degraded_reads - before;
        if uid_of(v).is_some_and(|u| clean.contains(&u)) {
            assert_eq!(
                degraded,
                0,
                "{ctx}: key {} holds an acknowledged, fully flushed value but reading it needed a \
                 degraded read (a chunk of a committed stripe is missing or disagrees)",
                String::from_utf8_lossy(ok)
            );
        }
    }
    state
}

/// How power loss treats unflushed writes: one of the fault device's modes, or `None` for
/// "every write that completed reached the medium, only the flushes are missing" (a legal
/// outcome too, and the one that leaves the most partial stripes behind).
type Mode = Option<CrashMode>;
const MODES: [Mode; 4] = [
    Some(CrashMode::DropAll),
    Some(CrashMode::RandomSubset),
    Some(CrashMode::TornLast),
    None,
];

fn mode_name(mode: Mode) -> String {
    mode.map_or("KeepAll".to_string(), |m| format!("{m:?}"))
}

/// One (mode, seed) run: format, then several crash cycles on the same array. With
/// `device_loss`, every recovered state is also reopened with each single device, and a random
/// pair, left out: everything acknowledged so far must still be there (every stripe of the log
/// is then rebuilt from parity and checked against the chunk crcs).
fn run_seed(mode: Mode, seed: u64, device_loss: bool, flavor: Flavor, tally: &mut Tally) {
    let ctx0 = format!("{flavor:?}: mode {} seed {seed}", mode_name(mode));
    let mut rng = SmallRng::seed_from_u64(seed);
    let mems = flavor.mems();
    {
        let faulty = wrap(&mems, seed);
        format(io_of(&faulty).as_ref(), &fmt_opts(K, M)).expect("format");
    }
    let mut base = State::new();
    // The log as it really is (every acknowledged unit and every in-doubt unit that recovery
    // kept, cycle after cycle), and how much of it was acknowledged "cleanly": by a sync whose
    // whole flush batch ran before the cut, so that every chunk of it is on every device. (A
    // sync that returns Ok while the cut is under way may have been acknowledged with only
    // k..w flushed chunks, as `min_write_shards` allows; such a stripe has less than m of
    // redundancy left after the crash, and losing m more devices may legitimately lose it.)
    let mut log: Vec<Unit> = Vec::new();
    let mut log_clean = 0usize;
    let mut clean: HashSet<u64> = HashSet::new();
    let mut next_uid = 0u64;
    for cycle in 0..CYCLES_PER_SEED {
        let ctx = format!("{ctx0} cycle {cycle}");
        let faulty = wrap(&mems, seed ^ ((cycle as u64 + 1) << 40));
        for f in &faulty {
            f.set_track_unflushed(true);
        }
        // One cycle in three is "bulk": large values and rare syncs, so that several full
        // stripes (and new segments) are written, unflushed, before a sync; a cut then can
        // tear an early stripe and keep later ones, which recovery must discard.
        let bulk = rng.random_bool(0.33);
        let budget = rng.random_range(1..=flavor.max_budget());
        let power = Power::new(budget);
        let devs: Vec<Arc<dyn BlockDevice>> = faulty
            .iter()
            .map(|f| {
                Arc::new(CutDevice {
                    inner: f.clone(),
                    power: power.clone(),
                }) as Arc<dyn BlockDevice>
            })
            .collect();
        let io = open_backend(BackendKind::Psync, devs).expect("psync engine");
        let mut units: Vec<Unit> = Vec::new();
        let mut acked = 0usize;
        let mut clean_acked = 0usize;
        // A writable open whose replayed log needs repairs starts its session (a new epoch,
        // the repairs), so the cut can land inside the open: then there is no workload, only
        // the crash.
        let engine = match Engine::open(io, flavor.options()) {
            Ok(e) => Some(e),
            Err(err) => {
                assert!(
                    power.is_off(),
                    "{ctx}: open before the workload failed with the power on: {err}"
                );
                tally.cuts_at_open += 1;
                None
            }
        };
        for _ in 0..flavor.max_units() {
            let Some(engine) = engine.as_ref() else {
                break;
            };
            let (unit, ops) = random_unit(&mut rng, &mut next_uid, seed, bulk);
            match append(engine, &unit, &ops) {
                Ok(_) => units.push(unit),
                Err(err) => {
                    assert!(
                        power.is_off(),
                        "{ctx}: append failed with the power on: {err}"
                    );
                    break;
                }
            }
            if rng.random_bool(if bulk { 0.05 } else { 0.35 }) {
                match engine.sync() {
                    Ok(_) => {
                        // Acknowledged; "clean" if the whole flush batch ran before the cut.
                        if !power.is_off() {
                            for u in &units[acked..] {
                                clean.extend(
                                    u.ops
                                        .iter()
                                        .filter_map(|(_, v)| v.as_deref().and_then(uid_of)),
                                );
                            }
                            clean_acked = units.len();
                        }
                        acked = units.len();
                    }
                    Err(err) => {
                        assert!(
                            power.is_off(),
                            "{ctx}: sync failed with the power on: {err}"
                        );
                        break;
                    }
                }
            }
            if power.is_off() {
                break;
            }
        }
        if power.is_off() {
            tally.cuts_in_workload += 1;
        } else {
            tally.idle_crashes += 1;
        }
        // Power loss: nothing the engine does from now on reaches the media; dropping it
        // joins its flusher, so no operation is still in flight when the crash is applied.
        power.cut();
        let freed = engine
            .as_ref()
            .map_or(0, |e| e.cleaner_stats().segments_freed);
        if freed > 0 {
            tally.cleaning_cycles += 1;
            tally.segments_freed += freed;
        }
        drop(engine);
        tally.ops_refused_by_cut += power.refused.load(Ordering::SeqCst);
        let unflushed: usize = faulty.iter().map(|f| f.unflushed_count()).sum();
        if unflushed > 0 {
            tally.crashes_with_unflushed += 1;
        }
        for f in &faulty {
            if let Some(mode) = mode {
                f.crash(mode).expect("crash");
            }
            let c = f.counters();
            tally.faults.crash_dropped_writes += c.crash_dropped_writes;
            tally.faults.crash_torn_writes += c.crash_torn_writes;
        }
        tally.crash_states += 1;
        tally.acked_units += acked;
        tally.in_doubt_units += units.len() - acked;

        // Reboot: fresh wrappers, no faults. Reopen must succeed.
        let faulty = wrap(&mems, seed ^ 0xB007);
        let e = Engine::open(io_of(&faulty), flavor.options())
            .unwrap_or_else(|err| panic!("{ctx}: reopen after the crash failed: {err}"));
        if e.recovery_stats().degraded_stripes + e.recovery_stats().interrupted_stripes > 0 {
            tally.degraded_recoveries += 1;
        }
        tally.discarded_stripes += e.recovery_stats().discarded_stripes;
        // The cleaner moves fully flushed values into new stripes, which a cut can leave with
        // only k chunks (repaired before the next write, docs/design.md): with cleaning, a
        // cleanly acknowledged value may need a degraded read right after the crash.
        let no_clean = HashSet::new();
        let actual = read_checked(
            &e,
            if flavor == Flavor::Writes {
                &clean
            } else {
                &no_clean
            },
            &ctx,
        );
        let kept = match check(&base, &units, acked, &actual) {
            Ok(p) => p,
            Err(why) => panic!(
                "{ctx}: crash state violates the oracle (cut after {budget} writes/flushes, {acked} of {} units \
                 acked, {unflushed} unflushed writes):\n{why}",
                units.len()
            ),
        };
        tally.in_doubt_kept += kept - acked;
        // Parity agrees with data in every live stripe whose chunks are all there, and no live
        // stripe is unreadable. Every other cycle (not in the device-loss test, which checks
        // what the engine does on its own), scrub with repair: then every chunk must be good.
        let opts = RebuildOptions::default();
        let rep = e
            .scrub(false, &opts, &mut |_| {})
            .unwrap_or_else(|err| panic!("{ctx}: scrub: {err}"));
        assert_eq!(
            rep.parity_mismatches, 0,
            "{ctx}: parity disagrees with data in a committed stripe"
        );
        assert!(
            rep.progress.unrecoverable.is_empty(),
            "{ctx}: unreadable live stripes: {:?}",
            rep.progress.unrecoverable
        );
        tally.stripes_scrubbed += rep.stripes_checked;
        tally.bad_chunks_after_crash += rep.bad_chunks_per_slot.iter().sum::<u64>();
        if !device_loss && cycle % 2 == 1 {
            let fix = e
                .scrub(true, &opts, &mut |_| {})
                .unwrap_or_else(|err| panic!("{ctx}: scrub --repair: {err}"));
            assert!(
                fix.progress.unrecoverable.is_empty(),
                "{ctx}: {:?}",
                fix.progress.unrecoverable
            );
            let again = e
                .scrub(false, &opts, &mut |_| {})
                .unwrap_or_else(|err| panic!("{ctx}: scrub: {err}"));
            assert!(
                again.bad_chunks_per_slot.iter().all(|b| *b == 0) && again.parity_mismatches == 0,
                "{ctx}: still damaged after scrub --repair: {:?}, {} parity mismatches",
                again.bad_chunks_per_slot,
                again.parity_mismatches
            );
            tally.chunks_repaired_by_scrub += fix.chunks_repaired;
        }
        e.close()
            .unwrap_or_else(|err| panic!("{ctx}: close after recovery: {err}"));
        drop(e);
        if clean_acked > 0 {
            log_clean = log.len() + clean_acked;
        }
        log.extend(units.into_iter().take(kept));
        base = actual;

        if device_loss {
            let mut subsets: Vec<Vec<usize>> = (0..N)
                .map(|gone| (0..N).filter(|&d| d != gone).collect())
                .collect();
            let a = rng.random_range(0..N);
            let b = (a + rng.random_range(1..N)) % N;
            subsets.push((0..N).filter(|&d| d != a && d != b).collect());
            for keep in subsets {
                let sctx = format!("{ctx}: with only devices {keep:?}");
                let faulty = wrap(&mems, seed ^ 0x5EED);
                let e = Engine::open(
                    io_subset(&faulty, &keep),
                    EngineOptions {
                        read_only: true,
                        ..Default::default()
                    },
                )
                .unwrap_or_else(|err| panic!("{sctx}: open failed: {err}"));
                let got = read_all(&e, &TABLES)
                    .unwrap_or_else(|err| panic!("{sctx}: reading all rows failed: {err}"));
                if let Err(why) = check(&State::new(), &log, log_clean, &got) {
                    panic!(
                        "{sctx}: acknowledged writes do not survive the loss of these devices (next LSN {}, \
                         the first {} of {} log units were cleanly acknowledged):\n{why}",
                        e.status().next_lsn,
                        log_clean,
                        log.len()
                    );
                }
                tally.device_loss_opens += 1;
            }
        }
    }
}

fn run_modes(test: &str, seeds_per_mode: u64, device_loss: bool, flavor: Flavor) {
    let seed = crash_oracle::test_seed(test);
    let start = std::time::Instant::now();
    for (mi, mode) in MODES.into_iter().enumerate() {
        let mut tally = Tally::default();
        for s in 0..seeds_per_mode {
            run_seed(
                mode,
                seed.wrapping_add((mi as u64) << 32).wrapping_add(s),
                device_loss,
                flavor,
                &mut tally,
            );
        }
        eprintln!("{test}: {}: {}", mode_name(mode), tally.line());
        let fired = match mode {
            Some(CrashMode::TornLast) => tally.faults.crash_torn_writes,
            Some(_) => tally.faults.crash_dropped_writes,
            None => tally.ops_refused_by_cut,
        };
        assert!(
            fired > 0,
            "{}: no crash fault fired: the test tested nothing",
            mode_name(mode)
        );
        assert!(
            tally.ops_refused_by_cut > 0,
            "{}: the power was never cut mid-write",
            mode_name(mode)
        );
        assert!(
            tally.crashes_with_unflushed > 0,
            "{}: no crash found unflushed writes",
            mode_name(mode)
        );
        assert!(
            tally.acked_units > 0 && tally.in_doubt_units > 0,
            "{}: workload too thin",
            mode_name(mode)
        );
        if flavor == Flavor::Cleaning {
            // Whether the background cleaner has freed segments before a cut depends on how
            // much CPU its thread got: 26-32 of 48 cycles on a quiet machine with format
            // version 4 (smaller records, so fewer segments fill per cycle), 22 once under a
            // loaded CI run. A third still means more than a dozen cuts during cleaning per
            // mode; a cleaner that never ran would give none.
            assert!(
                tally.cleaning_cycles * 3 >= tally.crash_states,
                "{}: only {} of {} cycles were cut after the cleaner freed segments",
                mode_name(mode),
                tally.cleaning_cycles,
                tally.crash_states
            );
        }
    }
    eprintln!("{test}: done in {:.1?}", start.elapsed());
}

/// S1–S3 and the prefix property after power loss at random points, in every crash mode.
#[test]
fn power_loss_at_random_points_keeps_acknowledged_writes() {
    run_modes(
        "power_loss_at_random_points_keeps_acknowledged_writes",
        SEEDS_PER_MODE,
        false,
        Flavor::Writes,
    );
}

/// The same oracle with the cleaner at work when the power goes: relocations, checkpoints and
/// freed segments reused by later writes, all subject to dropped and torn unflushed writes.
#[test]
fn power_loss_while_cleaning_keeps_acknowledged_writes() {
    run_modes(
        "power_loss_while_cleaning_keeps_acknowledged_writes",
        12,
        false,
        Flavor::Cleaning,
    );
}

/// The same crash states, each also reopened with one or two devices missing: no
/// acknowledged write may depend on a chunk the crash left unwritten (docs/design.md invariant 1).
#[test]
fn power_loss_then_device_loss_keeps_acknowledged_writes() {
    run_modes(
        "power_loss_then_device_loss_keeps_acknowledged_writes",
        DEVICE_LOSS_SEEDS_PER_MODE,
        true,
        Flavor::Writes,
    );
}

type Setup = (
    Vec<Arc<MemDevice>>,
    Vec<Arc<FaultyDevice>>,
    Engine,
    Vec<Unit>,
);

/// Mem devices with tracking of unflushed writes, formatted (with the sync journal or
/// without), with some acknowledged rows.
fn setup_with_rows(seed: u64, rows: usize, journal: bool) -> Setup {
    let mems = new_mems();
    let faulty = wrap(&mems, seed);
    let opts = if journal {
        fmt_opts(K, M)
    } else {
        fmt_opts_stripes_only(K, M)
    };
    format(io_of(&faulty).as_ref(), &opts).expect("format");
    for f in &faulty {
        f.set_track_unflushed(true);
    }
    let e = Engine::open(io_of(&faulty), EngineOptions::default()).expect("open");
    let mut units = Vec::new();
    for i in 0..rows {
        let v = make_value(i as u64 + 1, seed, 100 + i * 37 % 900);
        let key = format!("r{i:03}").into_bytes();
        e.put_sync("a", &key, &v)
            .expect("put_sync with healthy devices");
        units.push(Unit {
            ops: vec![(okey("a", &key), Some(v))],
            batch: false,
        });
    }
    (mems, faulty, e, units)
}

/// Flushes fail on m + 1 devices. Without the sync journal a synced put writes a stripe to
/// every member, so it cannot be acknowledged and the writer latches. With the journal it
/// is acknowledged when its entry was flushed on m + 1 members that did not fail (then it
/// must survive the power loss), and otherwise falls back to a stripe, which fails.
#[test]
fn failed_flush_on_more_than_m_devices_is_not_acknowledged() {
    let seed = crash_oracle::test_seed("failed_flush_on_more_than_m_devices_is_not_acknowledged");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut journal_acks = 0;
    for (mode, journal) in [
        (CrashMode::DropAll, false),
        (CrashMode::RandomSubset, false),
        (CrashMode::TornLast, false),
        (CrashMode::DropAll, true),
        (CrashMode::RandomSubset, true),
        (CrashMode::TornLast, true),
        (CrashMode::DropAll, true),
        (CrashMode::RandomSubset, true),
        (CrashMode::TornLast, true),
    ] {
        let ctx = format!("{mode:?} journal {journal} seed {seed}");
        let (mems, faulty, e, mut units) = setup_with_rows(seed, 20, journal);
        let mut acked = units.len();
        let mut failing: Vec<usize> = (0..N).collect();
        for i in 0..N {
            failing.swap(i, rng.random_range(i..N));
        }
        failing.truncate(M + 1);
        for &d in &failing {
            faulty[d].set_fail_flush(true);
        }
        let v = make_value(1000, seed, 500);
        let r = e.put_sync("a", b"doomed", &v);
        units.push(Unit {
            ops: vec![(okey("a", b"doomed"), Some(v.clone()))],
            batch: false,
        });
        let doomed_acked = r.is_ok();
        if doomed_acked {
            // Only the journal can acknowledge it: its entry went to m + 1 members whose
            // flushes did not fail. It must survive the power loss below.
            assert!(
                journal,
                "{ctx}: put_sync acknowledged with flushes failing on {failing:?} (> m = {M} devices)"
            );
            journal_acks += 1;
            acked += 1;
        } else {
            let later = e.put_sync("a", b"later", b"0123456789");
            assert!(
                matches!(later, Err(Error::PreviousIo(_))),
                "{ctx}: a commit after the failed flush must fail with PreviousIo, got {later:?}"
            );
        }
        let fired: u64 = faulty.iter().map(|f| f.counters().failed_flushes).sum();
        assert!(
            fired > 0 || doomed_acked,
            "{ctx}: no flush failed and the put was not acknowledged"
        );
        drop(e);
        // Power loss: the writes the failed flushes should have covered may be gone.
        for f in &faulty {
            f.crash(mode).expect("crash");
        }
        let faulty = wrap(&mems, seed ^ 1);
        let e = Engine::open(io_of(&faulty), EngineOptions::default())
            .unwrap_or_else(|err| panic!("{ctx}: reopen failed: {err}"));
        let actual = read_all(&e, &TABLES).expect("read all");
        if let Err(why) = check(&State::new(), &units, acked, &actual) {
            panic!("{ctx}: {why}");
        }
        // (With the journal, a copy of an entry that was not acknowledged may survive on a
        // member whose flush did not fail: replaying it is allowed, it is in doubt.)
        if mode == CrashMode::DropAll && !journal {
            // Every write to the m + 1 failing devices is undone: at most n - (m + 1) = 3 < k
            // chunks of the stripe are left, so it is torn and must be ignored.
            assert_eq!(
                e.get("a", b"doomed").unwrap(),
                None,
                "{ctx}: a stripe with fewer than k flushed chunks was replayed"
            );
        }
        eprintln!(
            "{ctx}: flush failed on {failing:?}; 'doomed' present after reopen: {}",
            actual.contains_key(&okey("a", b"doomed"))
        );
    }
    eprintln!("{journal_acks} of 6 journal runs acknowledged through m + 1 healthy members");
}

#[test]
fn failed_flush_on_m_or_fewer_devices_still_acknowledges() {
    let seed = crash_oracle::test_seed("failed_flush_on_m_or_fewer_devices_still_acknowledges");
    let mut rng = SmallRng::seed_from_u64(seed);
    for bad in 1..=M {
        let ctx = format!("{bad} failing device(s), seed {seed}");
        let (mems, faulty, e, mut units) = setup_with_rows(seed, 10, true);
        let mut failing: Vec<usize> = (0..N).collect();
        for i in 0..N {
            failing.swap(i, rng.random_range(i..N));
        }
        failing.truncate(bad);
        for &d in &failing {
            faulty[d].set_fail_flush(true);
        }
        for i in 0..30u64 {
            let key = format!("s{i:03}").into_bytes();
            let v = make_value(2000 + i, seed, 50 + (i as usize * 131) % 5000);
            e.put_sync("a", &key, &v).unwrap_or_else(|err| {
                panic!("{ctx}: put_sync must succeed with flushes failing on {failing:?}: {err}")
            });
            units.push(Unit {
                ops: vec![(okey("a", &key), Some(v))],
                batch: false,
            });
        }
        let st = e.status();
        assert!(
            st.degraded_writes > 0,
            "{ctx}: the failed flushes went unnoticed"
        );
        drop(e);
        let fired: u64 = faulty.iter().map(|f| f.counters().failed_flushes).sum();
        assert!(fired > 0, "{ctx}: no flush failed");
        // Power loss: the failing devices lose every write their failed flushes covered.
        for f in &faulty {
            f.crash(CrashMode::DropAll).expect("crash");
        }
        let mut expected = State::new();
        for u in &units {
            crash_oracle::apply(&mut expected, u);
        }
        // Without the failing devices: everything acknowledged is there.
        let keep: Vec<usize> = (0..N).filter(|d| !failing.contains(d)).collect();
        let faulty = wrap(&mems, seed ^ 2);
        {
            let e = Engine::open(
                io_subset(&faulty, &keep),
                EngineOptions {
                    read_only: true,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|err| panic!("{ctx}: reopen without {failing:?} failed: {err}"));
            let got = read_all(&e, &TABLES).expect("read all");
            assert!(
                got == expected,
                "{ctx}: acknowledged rows lost without devices {failing:?}"
            );
        }
        // With every device back (the failing ones hold stale chunks): the same.
        let e = Engine::open(io_of(&faulty), EngineOptions::default())
            .unwrap_or_else(|err| panic!("{ctx}: reopen with all devices failed: {err}"));
        let got = read_all(&e, &TABLES).expect("read all");
        assert!(
            got == expected,
            "{ctx}: acknowledged rows wrong with all devices back"
        );
        eprintln!(
            "{ctx}: {} rows survive; degraded reads {}",
            got.len(),
            e.status().degraded_reads
        );
    }
}

/// The oracle itself must catch what it is there to catch.
#[test]
fn oracle_catches_violations() {
    let put = |k: &str, uid: u64| (okey("a", k.as_bytes()), Some(make_value(uid, 7, 20)));
    let del = |k: &str| (okey("a", k.as_bytes()), None);
    let units = vec![
        Unit {
            ops: vec![put("x", 1)],
            batch: false,
        },
        Unit {
            ops: vec![put("y", 2), put("z", 3)],
            batch: true,
        },
        Unit {
            ops: vec![del("x")],
            batch: false,
        },
        Unit {
            ops: vec![put("p", 4), put("q", 5)],
            batch: true,
        },
        Unit {
            ops: vec![put("y", 6)],
            batch: false,
        },
    ];
    let state_after = |p: usize| {
        let mut s = State::new();
        for u in &units[..p] {
            crash_oracle::apply(&mut s, u);
        }
        s
    };
    // Every prefix from the acked point on is fine.
    for p in 2..=units.len() {
        assert_eq!(check(&State::new(), &units, 2, &state_after(p)), Ok(p));
    }
    // S1: an acknowledged write missing.
    let mut s = state_after(2);
    s.remove(&okey("a", b"z"));
    assert!(check(&State::new(), &units, 2, &s)
        .unwrap_err()
        .contains("S1"));
    // S1: an acknowledged delete undone.
    let mut s = state_after(3);
    s.insert(okey("a", b"x"), make_value(1, 7, 20));
    assert!(check(&State::new(), &units, 3, &s)
        .unwrap_err()
        .contains("S1"));
    // S2: a value never written.
    let mut s = state_after(2);
    s.insert(okey("a", b"y"), b"garbage!".to_vec());
    assert!(check(&State::new(), &units, 2, &s)
        .unwrap_err()
        .contains("S2"));
    // S3: half of an in-doubt batch.
    let mut s = state_after(3);
    s.insert(okey("a", b"p"), make_value(4, 7, 20));
    assert!(check(&State::new(), &units, 2, &s)
        .unwrap_err()
        .contains("S3"));
    // Not a prefix: a later in-doubt write without an earlier one.
    let mut s = state_after(2);
    s.insert(okey("a", b"y"), make_value(6, 7, 20));
    assert!(check(&State::new(), &units, 2, &s)
        .unwrap_err()
        .contains("prefix"));
}

/// A crash can leave the last stripe with only k of its w chunks written (not acknowledged,
/// but readable, so recovery replays it, as it may). Everything acknowledged afterwards is
/// logged after that stripe, so it must not depend on the stripe's missing redundancy: with
/// any m devices gone later, every acknowledged row must still be there.
#[test]
fn writes_after_a_replayed_partial_stripe_survive_device_loss() {
    let seed =
        crash_oracle::test_seed("writes_after_a_replayed_partial_stripe_survive_device_loss");
    let mems = new_mems();
    // Without the sync journal: the scenario needs a sync that writes a stripe (the journal
    // would acknowledge it with m + 1 writes, within the power budget).
    format(
        io_of(&wrap(&mems, seed)).as_ref(),
        &fmt_opts_stripes_only(K, M),
    )
    .expect("format");
    let mut units = Vec::new();
    // Session 1: one acknowledged row, then a stripe of which only k chunks reach the media
    // before the power fails (no flush: the writes simply happened to stay).
    {
        let faulty = wrap(&mems, seed);
        let power = Power::new(i64::MAX);
        let devs: Vec<Arc<dyn BlockDevice>> = faulty
            .iter()
            .map(|f| {
                Arc::new(CutDevice {
                    inner: f.clone(),
                    power: power.clone(),
                }) as Arc<dyn BlockDevice>
            })
            .collect();
        let e = Engine::open(
            open_backend(BackendKind::Psync, devs).unwrap(),
            EngineOptions::default(),
        )
        .unwrap();
        let v = make_value(1, seed, 300);
        e.put_sync("a", b"base", &v).unwrap();
        units.push(Unit {
            ops: vec![(okey("a", b"base"), Some(v))],
            batch: false,
        });
        let v = make_value(2, seed, 300);
        e.put("a", b"doubt", &v).unwrap();
        units.push(Unit {
            ops: vec![(okey("a", b"doubt"), Some(v))],
            batch: false,
        });
        power.budget.store(K as i64, Ordering::SeqCst);
        assert!(
            e.sync().is_err(),
            "the sync must fail: only {K} writes get through"
        );
        power.cut();
        drop(e);
    }
    // Session 2: the partial stripe is replayed (in doubt, allowed); then acknowledged writes
    // logged after it, so from now on it is part of the acknowledged history; then the power
    // fails again (no clean close, so recovery must walk the log through that stripe).
    {
        let faulty = wrap(&mems, seed ^ 1);
        let power = Power::new(i64::MAX);
        let devs: Vec<Arc<dyn BlockDevice>> = faulty
            .iter()
            .map(|f| {
                Arc::new(CutDevice {
                    inner: f.clone(),
                    power: power.clone(),
                }) as Arc<dyn BlockDevice>
            })
            .collect();
        let e = Engine::open(
            open_backend(BackendKind::Psync, devs).unwrap(),
            EngineOptions::default(),
        )
        .expect("reopen");
        // (Not read here: a degraded read would repair the stripe and hide what recovery left.)
        assert_eq!(
            e.status().next_lsn,
            3,
            "the scenario needs the k-chunk stripe replayed"
        );
        // The stripe is the last write batch: reported as left by an interrupted writer.
        assert!(
            e.recovery_stats().interrupted_stripes > 0,
            "the scenario needs a stripe with missing chunks"
        );
        assert!(
            e.status().devices.iter().all(|d| d.checksum_errors == 0),
            "chunks an interrupted writer never wrote are not held against the devices"
        );
        for i in 0..20u64 {
            let key = format!("after{i:02}").into_bytes();
            let v = make_value(10 + i, seed, 200);
            e.put_sync("a", &key, &v).unwrap();
            units.push(Unit {
                ops: vec![(okey("a", &key), Some(v))],
                batch: false,
            });
        }
        power.cut();
        drop(e);
    }
    // With all devices, then with any one device lost: every acknowledged row is there.
    for gone in (0..=N).rev() {
        let keep: Vec<usize> = (0..N).filter(|&d| d != gone).collect();
        let faulty = wrap(&mems, seed ^ 2);
        let e = Engine::open(
            io_subset(&faulty, &keep),
            EngineOptions {
                read_only: true,
                ..Default::default()
            },
        )
        .unwrap_or_else(|err| panic!("open without device {gone}: {err}"));
        let got =
            read_all(&e, &TABLES).unwrap_or_else(|err| panic!("read without device {gone}: {err}"));
        if let Err(why) = check(&State::new(), &units, units.len(), &got) {
            panic!(
                "without device {gone} (recovered next LSN {}):\n{why}",
                e.status().next_lsn
            );
        }
    }
}
