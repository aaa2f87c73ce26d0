//! Space reclamation: the cleaner keeps an array of overwrites and deletes running, loses
//! and resurrects nothing, works degraded, and checkpoints bound the work of reopening.
//!
//! Arrays: six memory devices of 4 MiB, RS(4,2), 16 KiB chunks, 256 KiB segments: 12
//! segments of about 930 KiB of records each, 11.2 MiB usable.

mod common;
use common::*;
use ectable::{format, CleanerOptions, Engine, EngineOptions, Error};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;

const DEV_BYTES: u64 = 4 << 20;
const VALUE_BYTES: usize = 2000;

fn open(io: Arc<dyn ectable::devices::IoBackend>, cleaner: CleanerOptions) -> Engine {
    Engine::open(
        io,
        EngineOptions {
            cleaner,
            ..Default::default()
        },
    )
    .expect("open")
}

fn read_only(io: Arc<dyn ectable::devices::IoBackend>) -> Engine {
    Engine::open(
        io,
        EngineOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .expect("open read-only")
}

fn check_all(e: &Engine, model: &BTreeMap<u64, u64>, ctx: &str) {
    for (k, version) in model {
        assert_eq!(
            e.get("t", &k.to_le_bytes())
                .unwrap_or_else(|err| panic!("{ctx}: get {k}: {err}")),
            Some(value_for(*version, *k, VALUE_BYTES)),
            "{ctx}: row {k}"
        );
    }
    let st = e.status();
    assert_eq!(
        st.keys,
        model.len(),
        "{ctx}: key count (deleted rows came back?)"
    );
}

/// The first test: a working set overwritten 20 times its size on a small array never
/// runs out of space, and every row reads back, live and after reopen. The working set is 40%
/// of the usable capacity (docs/design.md, "Space reclamation", gives the factor).
#[test]
fn overwriting_twenty_times_the_working_set_never_runs_out() {
    let (_mems, faulty) = mem_devices(6, DEV_BYTES, 71);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = open(io.clone(), CleanerOptions::default());
    let st = e.status();
    let keys = (st.usable_capacity_bytes as f64 * 0.40 / (VALUE_BYTES + 40) as f64) as u64;
    let mut model: BTreeMap<u64, u64> = BTreeMap::new();
    let mut rng = SmallRng::seed_from_u64(71);
    let writes = keys * 20;
    let mut version = 0u64;
    for i in 0..writes {
        let k = if i < keys {
            i
        } else {
            rng.random_range(0..keys)
        };
        version += 1;
        e.put("t", &k.to_le_bytes(), &value_for(version, k, VALUE_BYTES))
            .unwrap_or_else(|err| panic!("write {i} of {writes}: {err}"));
        model.insert(k, version);
        if i % 97 == 0 {
            e.sync().unwrap();
        }
        if i % 5000 == 4999 {
            // Spot checks while the cleaner moves records around.
            for _ in 0..50 {
                let k = rng.random_range(0..keys);
                assert_eq!(
                    e.get("t", &k.to_le_bytes()).unwrap(),
                    model.get(&k).map(|v| value_for(*v, k, VALUE_BYTES)),
                    "row {k} after {i} writes"
                );
            }
        }
    }
    e.sync().unwrap();
    check_all(&e, &model, "live");
    let st = e.status();
    let written = st.payload_bytes_written;
    eprintln!(
        "{writes} writes of {VALUE_BYTES} B over {keys} keys ({:.1} MiB live of {:.1} MiB usable): \
         {} segments freed, {} records moved ({:.1} MiB), {} checkpoints; write amplification {:.2}; \
         status: {} free of {} segments, {:.1} MiB garbage",
        st.live_bytes as f64 / 1048576.0,
        st.usable_capacity_bytes as f64 / 1048576.0,
        st.cleaner.segments_freed,
        st.cleaner.records_relocated,
        st.cleaner.bytes_relocated as f64 / 1048576.0,
        st.cleaner.checkpoints,
        written as f64 / (written - st.cleaner.bytes_relocated) as f64,
        st.free_segments,
        st.total_segments,
        st.garbage_bytes as f64 / 1048576.0,
    );
    assert!(
        st.cleaner.segments_freed as usize > 5 * st.total_segments,
        "the array was not recycled: {} segments freed",
        st.cleaner.segments_freed
    );
    assert!(st.live_bytes <= st.usable_capacity_bytes / 2);
    e.close().unwrap();
    drop(e);
    let e = read_only(io);
    check_all(&e, &model, "after reopen");
}

/// The second test: fill the array to "no space", reopen, delete, clean, write again.
/// While full, reads and deletes keep working.
#[test]
fn full_array_reopens_deletes_cleans_and_takes_writes_again() {
    let (_mems, faulty) = mem_devices(6, DEV_BYTES, 72);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = open(io.clone(), CleanerOptions::default());
    let mut model: BTreeMap<u64, u64> = BTreeMap::new();
    let mut n = 0u64;
    let err = loop {
        match e.put("t", &n.to_le_bytes(), &value_for(n, n, VALUE_BYTES)) {
            Ok(_) => {
                model.insert(n, n);
                n += 1;
            }
            Err(err) => break err,
        }
        assert!(n < 100_000, "never ran out of space");
    };
    assert!(
        matches!(err, Error::NoSpace(_)),
        "expected NoSpace, got {err}"
    );
    assert!(err.to_string().contains("no space"), "{err}");
    e.sync().unwrap();
    check_all(&e, &model, "full");
    let st = e.status();
    eprintln!(
        "full after {n} rows: {} free of {} segments ({} reserved), checkpoint LSN {}, {:?}",
        st.free_segments, st.total_segments, st.reserved_segments, st.checkpoint_lsn, st.cleaner
    );
    e.close().unwrap();
    drop(e);

    let e = open(io.clone(), CleanerOptions::default());
    let st = e.status();
    eprintln!(
        "reopened: {} free of {} segments ({} reserved), checkpoint LSN {}",
        st.free_segments, st.total_segments, st.reserved_segments, st.checkpoint_lsn
    );
    check_all(&e, &model, "full, reopened");
    assert!(matches!(
        e.put("t", b"one more", &[7u8; VALUE_BYTES]),
        Err(Error::NoSpace(_))
    ));
    // Delete every other row.
    let mut deleted = 0;
    for k in (0..n).step_by(2) {
        match e.delete("t", &k.to_le_bytes()) {
            Ok(_) => {
                model.remove(&k);
                deleted += 1;
            }
            Err(Error::NoSpace(_)) => {
                // The open segment is full too: let the cleaner reclaim what the deletes so
                // far freed, then go on.
                e.sync().unwrap();
                e.clean(4).unwrap();
                e.delete("t", &k.to_le_bytes())
                    .unwrap_or_else(|err| panic!("delete {k} after cleaning: {err}"));
                model.remove(&k);
                deleted += 1;
            }
            Err(err) => panic!("delete {k}: {err}"),
        }
    }
    e.sync().unwrap();
    let report = e.clean(16).unwrap();
    eprintln!("{deleted} rows deleted of {n}; clean: {report:?}");
    check_all(&e, &model, "after deletes and cleaning");
    // Writes work again: new rows up to about the space the deletes gave back.
    let mut extra = 0u64;
    for k in n..n + (deleted as u64) / 2 {
        e.put("t", &k.to_le_bytes(), &value_for(k, k, VALUE_BYTES))
            .unwrap_or_else(|err| panic!("write {k} after cleaning: {err}"));
        model.insert(k, k);
        extra += 1;
    }
    e.sync().unwrap();
    assert!(extra > 100);
    check_all(&e, &model, "after writing again");
    e.close().unwrap();
    drop(e);
    let e = read_only(io);
    check_all(&e, &model, "reopened at the end");
}

/// Deleted rows stop costing space once cleaned, and never come back: after deleting every
/// row and cleaning, the live bytes are zero, nearly every segment is free, and reopening
/// finds no row.
#[test]
fn deleted_rows_stop_costing_space_and_stay_deleted() {
    let (_mems, faulty) = mem_devices(6, DEV_BYTES, 73);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = open(
        io.clone(),
        CleanerOptions {
            enabled: false,
            ..Default::default()
        },
    );
    for k in 0..2000u64 {
        e.put("t", &k.to_le_bytes(), &value_for(k, k, VALUE_BYTES))
            .unwrap();
    }
    e.sync().unwrap();
    let before = e.status();
    for k in 0..2000u64 {
        e.delete("t", &k.to_le_bytes()).unwrap();
    }
    e.sync().unwrap();
    let report = e.clean(16).unwrap();
    let after = e.status();
    eprintln!(
        "before: {} free of {}, {} live bytes; after deleting all and cleaning: {} free, {} live; {report:?}",
        before.free_segments,
        before.total_segments,
        before.live_bytes,
        after.free_segments,
        after.live_bytes
    );
    assert_eq!(after.live_bytes, 0);
    assert!(after.free_segments + 3 >= after.total_segments);
    assert!(report.segments_freed > 0);
    drop(e);
    let e = read_only(io);
    assert_eq!(e.status().keys, 0, "deleted rows came back after reopen");
    assert_eq!(
        e.get("t", &5u64.to_le_bytes()).unwrap_or(None),
        None,
        "row 5 came back"
    );
}

/// A degraded array still cleans: with one device failed, the cleaner reads the victims
/// degraded and writes to the online devices; everything reads back, also after reopening
/// without the failed device.
#[test]
fn a_degraded_array_still_cleans() {
    let (_mems, faulty) = mem_devices(6, DEV_BYTES, 74);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = open(io.clone(), CleanerOptions::default());
    let keys = 1500u64;
    let mut model: BTreeMap<u64, u64> = BTreeMap::new();
    let mut rng = SmallRng::seed_from_u64(74);
    let mut version = 0;
    for i in 0..keys * 12 {
        if i == keys * 3 {
            // Device 2 dies: every read and write to it fails from now on.
            faulty[2].set_failed(true);
        }
        let k = if i < keys {
            i
        } else {
            rng.random_range(0..keys)
        };
        version += 1;
        e.put("t", &k.to_le_bytes(), &value_for(version, k, VALUE_BYTES))
            .unwrap_or_else(|err| panic!("write {i}: {err}"));
        model.insert(k, version);
        if i % 101 == 0 {
            e.sync().unwrap();
        }
    }
    e.sync().unwrap();
    let st = e.status();
    assert!(st.cleaner.segments_freed > 20, "{:?}", st.cleaner);
    assert!(
        faulty[2].counters().total() > 0,
        "the device failure never fired"
    );
    check_all(&e, &model, "degraded");
    e.close().unwrap();
    drop(e);
    let e = read_only(io_subset(&faulty, &[0, 1, 3, 4, 5]));
    check_all(&e, &model, "reopened without the failed device");
}

/// Reopening replays only the log after the checkpoint in force: its reads are far below
/// the data written when a checkpoint is recent, and cover the whole log when there is none.
/// (Bytes read stand in for time: the benchmark in docs/performance.md gives the seconds.)
#[test]
fn a_recent_checkpoint_bounds_what_reopening_reads() {
    let (_mems, faulty) = mem_devices(6, 16 << 20, 75);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = open(
        io.clone(),
        CleanerOptions {
            enabled: false,
            ..Default::default()
        },
    );
    for k in 0..20_000u64 {
        e.put("t", &k.to_le_bytes(), &value_for(k, k, 2000))
            .unwrap();
    }
    e.sync().unwrap();
    // Opened read-only beside the writer: what a crash now would leave.
    let without = read_only(io.clone()).recovery_stats().clone();
    let lsn = e.checkpoint().unwrap().expect("a checkpoint");
    for k in 0..200u64 {
        e.put("u", &k.to_le_bytes(), &value_for(k, k, 2000))
            .unwrap();
    }
    e.sync().unwrap();
    let r = read_only(io.clone());
    let with = r.recovery_stats().clone();
    eprintln!(
        "reopen without a checkpoint read {} KiB ({} records replayed); with one at LSN {lsn} read {} KiB \
         ({} keys from the checkpoint, {} records replayed)",
        without.bytes_read >> 10,
        without.records,
        with.bytes_read >> 10,
        with.checkpoint_keys,
        with.records
    );
    assert_eq!(without.checkpoint_lsn, 0);
    assert_eq!(without.records, 20_000);
    assert_eq!(with.checkpoint_lsn, lsn);
    assert_eq!(with.records, 200);
    assert!(with.bytes_read * 5 < without.bytes_read);
    assert_eq!(r.status().keys, 20_200);
    assert_eq!(
        r.get("t", &19_999u64.to_le_bytes()).unwrap(),
        Some(value_for(19_999, 19_999, 2000))
    );
}

/// Cleaning and rebuild cooperate: while a rebuild runs (rate-limited, so it lasts) the
/// cleaner's passes are skipped (counted as paused) and no segment is freed under it, while
/// foreground overwrites go on; afterwards the cleaner resumes, and the array, reopened
/// without the dead device, reads every row with no degraded read and scrubs clean.
#[test]
fn cleaning_pauses_while_a_rebuild_runs() {
    use ectable::devices::{open_backend, BackendKind, BlockDevice, FaultyDevice, MemDevice};
    use ectable::RebuildOptions;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    let (_mems, faulty) = mem_devices(6, DEV_BYTES, 76);
    format(io_of(&faulty).as_ref(), &fmt_opts(4, 2)).unwrap();
    let fresh = Arc::new(FaultyDevice::new(
        Arc::new(MemDevice::new("fresh", DEV_BYTES)),
        176,
    ));
    let mut devs: Vec<Arc<dyn BlockDevice>> = faulty
        .iter()
        .map(|f| f.clone() as Arc<dyn BlockDevice>)
        .collect();
    devs.push(fresh.clone());
    let e = open(
        open_backend(BackendKind::Psync, devs).unwrap(),
        CleanerOptions::default(),
    );
    let model = Mutex::new(BTreeMap::new());
    let mut version = 0u64;
    let mut rng = SmallRng::seed_from_u64(76);
    overwrite(&e, &model, &mut rng, KEYS * 6, &mut version, false);
    let freed_before = e.cleaner_stats().segments_freed;
    assert!(freed_before > 0, "the cleaner never ran before the rebuild");

    faulty[2].set_failed(true);
    e.replace(2, 6).unwrap();
    let done = AtomicBool::new(false);
    let (paused_during, full) = std::thread::scope(|s| {
        let (e, model, done, start) = (&e, &model, &done, version);
        let writer = s.spawn(move || {
            let mut full = 0;
            let mut v = start;
            let mut rng = SmallRng::seed_from_u64(176);
            while !done.load(Ordering::SeqCst) {
                full += overwrite(e, model, &mut rng, 200, &mut v, true);
            }
            (full, v)
        });
        let p = e
            .rebuild(
                &RebuildOptions {
                    rate_limit_bytes_per_sec: 8 << 20,
                    cancel: None,
                },
                &mut |_| {},
            )
            .unwrap();
        let paused = e.cleaner_stats().paused_passes;
        done.store(true, Ordering::SeqCst);
        let (full, v) = writer.join().unwrap();
        version = v;
        assert!(p.unrecoverable.is_empty(), "{:?}", p.unrecoverable);
        (paused, full)
    });
    assert!(
        paused_during > 0,
        "no cleaner pass was paused by the rebuild"
    );
    // After the rebuild the cleaner works again.
    overwrite(&e, &model, &mut rng, KEYS * 3, &mut version, false);
    let st = e.status();
    assert!(st.cleaner.segments_freed > freed_before);
    eprintln!(
        "rebuild: {paused_during} cleaner passes paused, {full} writes refused for space meanwhile; cleaner: {:?}",
        st.cleaner
    );
    let model = model.into_inner().unwrap();
    check_all(&e, &model, "after the rebuild");
    e.close().unwrap();
    drop(e);
    let mut healthy: Vec<Arc<dyn BlockDevice>> = faulty
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, f)| f.clone() as Arc<dyn BlockDevice>)
        .collect();
    healthy.push(fresh);
    let e = read_only(open_backend(BackendKind::Psync, healthy).unwrap());
    check_all(&e, &model, "reopened on the rebuilt device");
    assert_eq!(e.status().degraded_reads, 0, "rebuilt chunks must be whole");
    let scrub = e
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(
        scrub.bad_chunks_per_slot.iter().sum::<u64>(),
        0,
        "{scrub:?}"
    );
}

const KEYS: u64 = 1200;

/// Overwrites random rows of 0..KEYS (new rows first), recording them in `model`; returns
/// how many were refused for space (allowed only with `tolerate_full`).
fn overwrite(
    e: &Engine,
    model: &std::sync::Mutex<BTreeMap<u64, u64>>,
    rng: &mut SmallRng,
    n: u64,
    version: &mut u64,
    tolerate_full: bool,
) -> u64 {
    let mut full = 0;
    for i in 0..n {
        let k = if *version < KEYS {
            *version
        } else {
            rng.random_range(0..KEYS)
        };
        *version += 1;
        match e.put("t", &k.to_le_bytes(), &value_for(*version, k, VALUE_BYTES)) {
            Ok(_) => {
                model.lock().unwrap().insert(k, *version);
            }
            // With the cleaner paused the small array can fill up: the write is refused
            // whole and the model keeps the old value.
            Err(Error::NoSpace(_)) if tolerate_full => full += 1,
            Err(err) => panic!("write {i}: {err}"),
        }
        if i % 64 == 0 {
            e.sync().unwrap();
        }
    }
    e.sync().unwrap();
    full
}

/// Keys in order as bytes (like most applications' keys, unlike u64::to_le_bytes).
fn rkey(i: u64) -> Vec<u8> {
    format!("k{i:08}").into_bytes()
}

/// The reserve keeps room for the next checkpoint at its real size: until the first
/// checkpoint the estimate is the first encoding's (67 bytes per entry here), after it the
/// compact image's measured bytes per key, also after a reopen; the next checkpoint always
/// fits in what was kept, and every row reads back after reopening from it.
#[test]
fn reserve_follows_the_checkpoints_real_size() {
    // 48 segments of ~930 KiB: the first encoding's estimate for 40,000 keys takes 3.
    let (_mems, faulty) = mem_devices(6, 16 << 20, 73);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let opts = CleanerOptions {
        enabled: false,
        ..Default::default()
    };
    let e = open(io.clone(), opts.clone());
    let keys = 40_000u64;
    for i in 0..keys {
        e.put("t", &rkey(i), &value_for(i, 73, 16)).unwrap();
    }
    e.sync().unwrap();
    let before = e.status();
    assert_eq!(before.checkpoint_segments, 0);
    let first_estimate = before.checkpoint_estimate_bytes;
    assert!(first_estimate > keys * 56, "{first_estimate}");
    // No checkpoint yet: room for two (the first frees nothing), plus 2 for moves.
    let seg_payload = (first_estimate as f64 / 930_000.0).ceil() as usize;
    assert_eq!(before.reserved_segments, 2 * seg_payload + 2, "{before:?}");
    e.checkpoint().unwrap();
    let after = e.status();
    assert_eq!(after.checkpoint_segments, 1, "{after:?}");
    assert!(
        after.checkpoint_estimate_bytes * 2 < first_estimate,
        "estimate {} after the checkpoint, {first_estimate} before",
        after.checkpoint_estimate_bytes
    );
    assert_eq!(after.reserved_segments, 1 + 2, "{after:?}");
    // More keys: the estimate grows with them, and the next checkpoint fits.
    for i in keys..2 * keys {
        e.put("t", &rkey(i), &value_for(i, 73, 16)).unwrap();
    }
    e.checkpoint().unwrap();
    let grown = e.status();
    assert!(grown.checkpoint_estimate_bytes > after.checkpoint_estimate_bytes);
    assert!(grown.checkpoint_segments as usize <= grown.reserved_segments - 2);
    e.close().unwrap();
    let e = open(io, opts);
    let st = e.status();
    assert_eq!(
        st.recovery.records, 0,
        "reopened from the checkpoint, nothing replayed"
    );
    assert_eq!(st.keys as u64, 2 * keys);
    assert_eq!(
        st.checkpoint_estimate_bytes,
        grown.checkpoint_estimate_bytes
    );
    for i in (0..2 * keys).step_by(997) {
        assert_eq!(e.get("t", &rkey(i)).unwrap(), Some(value_for(i, 73, 16)));
    }
}

/// A full array whose garbage is spread thin (a few rows deleted in every segment) is left
/// alone while nobody writes: the cleaner does not rewrite the whole log at open to gather
/// a few percent (it did: on six 256 MiB loop devices, 908 MB moved at a node's start with no
/// write). Only a writer waiting for space makes it clean segments that full.
#[test]
fn an_idle_full_array_is_not_rewritten_to_gather_thin_garbage() {
    let (_mems, faulty) = mem_devices(6, DEV_BYTES, 73);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = open(io.clone(), CleanerOptions::default());
    let mut n = 0u64;
    while e
        .put("t", &n.to_le_bytes(), &value_for(n, n, VALUE_BYTES))
        .is_ok()
    {
        n += 1;
        assert!(n < 100_000, "never ran out of space");
    }
    // One row in 50 deleted: every segment keeps about 98 % of its records, more than the
    // background cleaner's 95 % limit.
    let mut deleted = 0;
    for k in (0..n).step_by(50) {
        if e.delete("t", &k.to_le_bytes()).is_ok() {
            deleted += 1;
        }
    }
    assert!(deleted > 10, "{deleted} deletes of {n} rows");
    e.close().unwrap();
    drop(e);
    let e = open(io.clone(), CleanerOptions::default());
    let before = e.status();
    assert!(
        before.garbage_bytes > 0 && before.free_segments <= before.reserved_segments,
        "full, with thin garbage: {before:?}"
    );
    // Several of the cleaner's cycles (every 100 ms) with nothing written.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let after = e.status();
    assert_eq!(
        after.cleaner.bytes_relocated, 0,
        "an idle array was rewritten: {:?}",
        after.cleaner
    );
    // Looking and finding nothing worth cleaning is not a pass in status's count.
    assert_eq!(
        after.cleaner.passes, before.cleaner.passes,
        "{:?}",
        after.cleaner
    );
    e.close().unwrap();
}
