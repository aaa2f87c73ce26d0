//! The sync journal (docs/format.md, "Sync journal"): synced puts acknowledged through an
//! entry on m + 1 members must survive a power cut that loses every write no flush covered
//! (so the stripes holding them are gone), also with any m members lost afterwards; the
//! records replayed from the journal are written into the log by the next writable session
//! and served from memory by a read-only one; an old copy of a member put back cannot bring
//! an older session's entries into a newer history; and a version 1 array (formatted without
//! the journal) still takes short stripes. Each test counts that the journal really carried
//! the records (entries written, entries replayed) so it cannot pass on the stripe path.

mod common;

use common::*;
use ectable::devices::{CrashMode, FaultyDevice, MemDevice};
use ectable::{format, Engine, EngineOptions};
use std::sync::Arc;

const N: usize = 6;
const K: usize = 4;
const M: usize = 2;
/// The power-cut modes every crash test here runs through.
const CRASH_MODES: [CrashMode; 3] = [
    CrashMode::DropAll,
    CrashMode::RandomSubset,
    CrashMode::TornLast,
];

fn new_array(journal: bool) -> Vec<Arc<MemDevice>> {
    let mems = memory_devices(N, 16 << 20);
    let opts = if journal {
        fmt_opts(K, M)
    } else {
        fmt_opts_stripes_only(K, M)
    };
    format(io_of(&wrap(&mems, 1)).as_ref(), &opts).expect("format");
    mems
}

fn tracked(mems: &[Arc<MemDevice>], seed: u64) -> Vec<Arc<FaultyDevice>> {
    let faulty = wrap(mems, seed);
    for f in &faulty {
        f.set_track_unflushed(true);
    }
    faulty
}

fn key(i: usize) -> Vec<u8> {
    format!("k{i:04}").into_bytes()
}

/// Acknowledged synced puts through the journal; then the power fails and every write no
/// flush covered is lost. Returns the devices and the values acknowledged.
fn journaled_then_power_cut(mode: CrashMode, seed: u64, puts: usize) -> Vec<Arc<MemDevice>> {
    let mems = new_array(true);
    let faulty = tracked(&mems, seed);
    let e = Engine::open(io_of(&faulty), EngineOptions::default()).expect("open");
    for i in 0..puts {
        e.put_sync("t", &key(i), &value_for(i as u64, seed, 300))
            .expect("put_sync");
    }
    let st = e.status();
    assert!(
        st.journal_entries_written >= puts as u64,
        "the puts were not journaled: {} entries for {puts} puts",
        st.journal_entries_written
    );
    assert_eq!(st.short_stripes_written, 0, "a sync took a short stripe");
    // One writer and an idle flusher: the writer writes its entries itself.
    assert!(
        st.journal_entries_by_caller >= puts as u64 / 2,
        "{} of {} entries written by the caller",
        st.journal_entries_by_caller,
        st.journal_entries_written
    );
    // The power fails: the engine is gone without a close, unflushed writes are lost.
    std::mem::forget(e);
    // (The open stripe holding the records was never written: after the cut they exist only
    // in the journal, which the reopen must replay; the tests count that it did.)
    for f in &faulty {
        f.crash(mode).expect("crash");
    }
    mems
}

fn assert_all_there(e: &Engine, seed: u64, puts: usize, ctx: &str) {
    for i in 0..puts {
        let got = e.get("t", &key(i)).expect("get");
        assert_eq!(
            got.as_deref(),
            Some(&value_for(i as u64, seed, 300)[..]),
            "{ctx}: acknowledged put {i} lost"
        );
    }
}

#[test]
fn journaled_puts_survive_a_power_cut_that_loses_their_stripes() {
    for (s, mode) in CRASH_MODES.into_iter().enumerate() {
        let seed = 100 + s as u64;
        let mems = journaled_then_power_cut(mode, seed, 40);
        let faulty = wrap(&mems, seed + 1);
        let e = Engine::open(io_of(&faulty), EngineOptions::default()).expect("reopen");
        let r = e.recovery_stats();
        assert!(
            r.journal_entries > 0 && r.journal_records > 0,
            "{mode:?}: nothing was replayed from the journal ({r:?})"
        );
        assert_all_there(&e, seed, 40, &format!("{mode:?}, first reopen"));
        // The writable open wrote the replayed records into the log: after a clean close
        // they come back from the stripes alone.
        e.close().expect("close");
        let e = Engine::open(io_of(&wrap(&mems, seed + 2)), EngineOptions::default())
            .expect("second reopen");
        assert_eq!(e.recovery_stats().journal_entries, 0, "{mode:?}");
        assert_all_there(&e, seed, 40, &format!("{mode:?}, after close"));
    }
}

/// An entry is on m + 1 members: with any m of the six left out after the power cut, every
/// acknowledged put is still there.
#[test]
fn journaled_puts_survive_a_power_cut_and_the_loss_of_any_m_members() {
    let seed = 200;
    let mems = journaled_then_power_cut(CrashMode::DropAll, seed, 30);
    let images: Vec<Vec<u8>> = mems.iter().map(|m| m.snapshot()).collect();
    let mut cases = 0;
    for a in 0..N {
        for b in a + 1..N {
            for (m, img) in mems.iter().zip(&images) {
                m.restore(img);
            }
            let keep: Vec<usize> = (0..N).filter(|&i| i != a && i != b).collect();
            let faulty = wrap(&mems, seed + 1);
            let e = Engine::open(io_subset(&faulty, &keep), EngineOptions::default())
                .unwrap_or_else(|err| panic!("open without {a} and {b}: {err}"));
            assert!(e.recovery_stats().journal_entries > 0);
            assert_all_there(&e, seed, 30, &format!("without members {a} and {b}"));
            cases += 1;
        }
    }
    assert_eq!(cases, 15);
}

/// One writer's synced puts fill several stripes. The put that seals a stripe is
/// journaled by the caller while that stripe's write and flush are still to come (before,
/// it waited for them), so entries and stripe writes interleave. Then the power fails in
/// each mode: every acknowledged put is there, from the stripes that were flushed and the
/// journal for the rest.
#[test]
fn synced_puts_that_seal_stripes_are_journaled_beside_the_stripe_writes_and_survive() {
    const PUTS: usize = 100;
    for (s, mode) in CRASH_MODES.into_iter().enumerate() {
        let seed = 700 + s as u64;
        let mems = new_array(true);
        let faulty = tracked(&mems, seed);
        let e = Engine::open(io_of(&faulty), EngineOptions::default()).expect("open");
        // 16 KiB chunks, k = 4: about 20 values of 3000 bytes per stripe.
        for i in 0..PUTS {
            e.put_sync("t", &key(i), &value_for(i as u64, seed, 3000))
                .expect("put_sync");
        }
        // About 305 KB of records, 63.5 KB per stripe: four stripes sealed. The syncs did
        // not wait for them to be written; the flusher writes them soon.
        let t0 = std::time::Instant::now();
        while e.status().stripes_written < 4 && t0.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let st = e.status();
        assert!(
            st.stripes_written >= 4,
            "{mode:?}: {} stripes",
            st.stripes_written
        );
        assert_eq!(st.short_stripes_written, 0, "{mode:?}");
        // Every sync, the ones that sealed a stripe too, was an entry the caller wrote.
        assert_eq!(st.journal_entries_by_caller, PUTS as u64, "{mode:?}");
        std::mem::forget(e);
        for f in &faulty {
            f.crash(mode).expect("crash");
        }
        let e =
            Engine::open(io_of(&wrap(&mems, seed + 1)), EngineOptions::default()).expect("reopen");
        for i in 0..PUTS {
            assert_eq!(
                e.get("t", &key(i)).expect("get").as_deref(),
                Some(&value_for(i as u64, seed, 3000)[..]),
                "{mode:?}: acknowledged put {i} lost"
            );
        }
    }
}

/// Checkpoints (and close) need everything in stripes, and the flusher seals for them only
/// while no journal entry is being written. A checkpoint that began while a caller wrote its
/// own entry must still be woken when that entry is done. Before the fix the caller woke the
/// flusher only if writers still waited for acknowledgement, so the checkpoint (and every
/// writer behind its pause) hung; seen once in tests/crash_power_loss.rs. One thread syncs
/// puts in a loop while another takes checkpoints; each must finish within seconds.
#[test]
fn checkpoints_beside_a_syncing_caller_do_not_hang() {
    let mems = new_array(true);
    let e = Engine::open(io_of(&wrap(&mems, 800)), EngineOptions::default()).expect("open");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    std::thread::scope(|sc| {
        let (e, stop) = (&e, &stop);
        sc.spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                e.put_sync("t", &key(i % 500), &value_for(i as u64, 800, 200))
                    .expect("put_sync");
                i += 1;
            }
        });
        sc.spawn(move || {
            for n in 0..150 {
                e.checkpoint().expect("checkpoint");
                let _ = tx.send(n);
            }
        });
        for n in 0..150 {
            match rx.recv_timeout(std::time::Duration::from_secs(20)) {
                Ok(_) => {}
                Err(_) => {
                    // Hung: nothing will end the threads; fail loudly instead of waiting.
                    eprintln!("checkpoint {n} did not finish within 20 s: hang");
                    std::process::abort();
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    assert!(
        e.status().journal_entries_by_caller > 0,
        "no entry was the caller's"
    );
}

/// Eight threads put and sync at once: entries are written both by syncing callers (while
/// the flusher is idle) and by the flusher (for the writers that waited meanwhile), one at
/// a time. Then the power fails. Every put acknowledged before the cut is there after it,
/// and both paths were taken (counted).
#[test]
fn syncs_from_many_threads_journaled_by_callers_and_flusher_survive_a_power_cut() {
    const THREADS: usize = 8;
    const PUTS: usize = 40;
    for (s, mode) in [CrashMode::DropAll, CrashMode::TornLast]
        .into_iter()
        .enumerate()
    {
        let seed = 600 + s as u64;
        let mems = new_array(true);
        let faulty = tracked(&mems, seed);
        let e = Engine::open(io_of(&faulty), EngineOptions::default()).expect("open");
        let tkey = |t: usize, i: usize| format!("w{t}-{i:04}").into_bytes();
        std::thread::scope(|sc| {
            for t in 0..THREADS {
                let e = &e;
                sc.spawn(move || {
                    for i in 0..PUTS {
                        e.put(
                            "t",
                            &tkey(t, i),
                            &value_for((t * PUTS + i) as u64, seed, 200),
                        )
                        .expect("put");
                        e.sync().expect("sync");
                    }
                });
            }
        });
        let st = e.status();
        assert!(
            st.journal_entries_by_caller > 0
                && st.journal_entries_written > st.journal_entries_by_caller,
            "{mode:?}: both paths must write entries: {} by callers of {}",
            st.journal_entries_by_caller,
            st.journal_entries_written
        );
        std::mem::forget(e);
        for f in &faulty {
            f.crash(mode).expect("crash");
        }
        let e =
            Engine::open(io_of(&wrap(&mems, seed + 1)), EngineOptions::default()).expect("reopen");
        assert!(e.recovery_stats().journal_entries > 0, "{mode:?}");
        for t in 0..THREADS {
            for i in 0..PUTS {
                assert_eq!(
                    e.get("t", &tkey(t, i)).expect("get").as_deref(),
                    Some(&value_for((t * PUTS + i) as u64, seed, 200)[..]),
                    "{mode:?}: writer {t}'s acknowledged put {i} lost"
                );
            }
        }
    }
}

/// A read-only open serves the replayed records from memory and writes nothing: a writable
/// open afterwards still finds them in the journal.
#[test]
fn a_read_only_open_serves_journaled_records_and_leaves_them() {
    let seed = 300;
    let mems = journaled_then_power_cut(CrashMode::DropAll, seed, 10);
    let before: Vec<Vec<u8>> = mems.iter().map(|m| m.snapshot()).collect();
    let ro = EngineOptions {
        read_only: true,
        ..Default::default()
    };
    let e = Engine::open(io_of(&wrap(&mems, seed + 1)), ro).expect("read-only open");
    assert!(e.recovery_stats().journal_entries > 0);
    assert_all_there(&e, seed, 10, "read-only");
    let rows = e
        .scan(
            "t",
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            usize::MAX,
        )
        .expect("scan");
    assert_eq!(rows.len(), 10, "scan of journaled records");
    drop(e);
    let after: Vec<Vec<u8>> = mems.iter().map(|m| m.snapshot()).collect();
    assert!(before == after, "a read-only open wrote to the devices");
    let e = Engine::open(io_of(&wrap(&mems, seed + 2)), EngineOptions::default())
        .expect("writable open");
    assert!(e.recovery_stats().journal_entries > 0);
    assert_all_there(&e, seed, 10, "writable after read-only");
}

/// Session 1 acknowledges puts through the journal and crashes; a copy of member 0 is kept.
/// Session 2 replays them, overwrites keys with new synced values through its own journal
/// entries, and crashes. The old copy of member 0 is put back: its entries (older epoch, at
/// LSNs session 2 reused for other records) must not come back, and session 2's
/// acknowledged values must all be there.
#[test]
fn an_old_copy_of_a_member_does_not_bring_back_older_entries() {
    let seed = 400;
    let mems = journaled_then_power_cut(CrashMode::DropAll, seed, 20);
    let old_copy = mems[0].snapshot();
    // Session 2: overwrite every key, synced, then the power fails again.
    let faulty = tracked(&mems, seed + 1);
    let e = Engine::open(io_of(&faulty), EngineOptions::default()).expect("session 2");
    assert!(e.recovery_stats().journal_entries > 0);
    for i in 0..20 {
        e.put_sync("t", &key(i), &value_for(i as u64, seed + 7, 300))
            .expect("put_sync");
    }
    std::mem::forget(e);
    for f in &faulty {
        f.crash(CrashMode::DropAll).expect("crash");
    }
    mems[0].restore(&old_copy);
    // Member 0 is now stale (its superblock is older); it is still read.
    let e = Engine::open(io_of(&wrap(&mems, seed + 2)), EngineOptions::default())
        .expect("open with the old copy back");
    for i in 0..20 {
        assert_eq!(
            e.get("t", &key(i)).expect("get").as_deref(),
            Some(&value_for(i as u64, seed + 7, 300)[..]),
            "key {i}: session 2's acknowledged value lost or replaced by session 1's"
        );
    }
}

/// A version 1 array (no journal) acknowledges syncs with short stripes, as before, and
/// keeps doing so across reopens.
#[test]
fn a_version_1_array_takes_short_stripes() {
    let mems = new_array(false);
    let e = Engine::open(io_of(&wrap(&mems, 1)), EngineOptions::default()).expect("open");
    for i in 0..5 {
        e.put_sync("t", &key(i), b"v").expect("put_sync");
    }
    let st = e.status();
    assert_eq!(st.journal_entries_written, 0);
    assert!(st.short_stripes_written >= 5);
    e.close().expect("close");
    let sb = ectable::format::Superblock::decode(&mems[0].peek(0, 4096)).expect("superblock");
    assert_eq!(sb.format_version, 1);
    let mems2 = new_array(true);
    let sb = ectable::format::Superblock::decode(&mems2[0].peek(0, 4096)).expect("superblock");
    // Version 5: the journal, values placed on device blocks, compact records that may
    // continue in the next stripe.
    assert_eq!(sb.format_version, 5);
}

/// Synced puts in runs of two tables, on a version 5 array (compact records: a record in
/// the same table as the one before it leaves the name out, so most entries cut from the
/// open stripe begin with a record whose name the stripe elided, and the entry must carry
/// it) and on a version 3 array (wide records); then the power fails before any stripe is
/// written. Every put comes back from the journal alone, and again from the stripes the
/// next session wrote.
#[test]
fn journaled_puts_in_two_tables_survive_a_power_cut_in_both_record_layouts() {
    for (wide, version) in [(false, 5), (true, 3)] {
        let mems = memory_devices(N, 16 << 20);
        let opts = ectable::FormatOptions {
            wide_records: wide,
            whole_records: false,
            ..fmt_opts(K, M)
        };
        format(io_of(&wrap(&mems, 1)).as_ref(), &opts).expect("format");
        let faulty = tracked(&mems, 7);
        let e = Engine::open(io_of(&faulty), EngineOptions::default()).expect("open");
        assert_eq!(e.status().format_version, version);
        // Runs of 1 to 4 puts per table.
        let table = |i: usize| {
            if (i / (1 + i % 4)).is_multiple_of(2) {
                "t"
            } else {
                "other"
            }
        };
        for i in 0..60 {
            e.put_sync(table(i), &key(i), &value_for(i as u64, 9, 200))
                .expect("put_sync");
        }
        assert!(e.status().journal_entries_written >= 60);
        std::mem::forget(e);
        for f in &faulty {
            f.crash(CrashMode::DropAll).expect("crash");
        }
        for pass in ["journal", "stripes"] {
            let e = Engine::open(io_of(&wrap(&mems, 8)), EngineOptions::default()).expect("reopen");
            let replayed = e.recovery_stats().journal_records;
            match pass {
                "journal" => assert!(replayed >= 60, "v{version}: {replayed} records replayed"),
                _ => assert_eq!(replayed, 0, "v{version}: the journal again after a close"),
            }
            for i in 0..60 {
                assert_eq!(
                    e.get(table(i), &key(i)).expect("get").as_deref(),
                    Some(&value_for(i as u64, 9, 200)[..]),
                    "v{version}, from the {pass}: put {i} lost"
                );
                let other = if table(i) == "t" { "other" } else { "t" };
                assert_eq!(
                    e.get(other, &key(i)).expect("get"),
                    None,
                    "v{version}: put {i} in the wrong table"
                );
            }
            e.close().expect("close");
        }
    }
}

/// More than m chunks of the last flushed stripe are damaged, and the records after it
/// live only in the open stripe and the journal (no later stripe vouches for them, and the
/// journal does not hold the damaged stripe's records: they were written without a sync).
/// The open must report lost data, not end the log early and drop acknowledged puts (found
/// by the simulator, seed 7061).
#[test]
fn damage_past_m_before_journaled_records_is_reported_not_hidden() {
    let seed = 500;
    let mems = new_array(true);
    let faulty = tracked(&mems, seed);
    let e = Engine::open(io_of(&faulty), EngineOptions::default()).expect("open");
    // 16 KiB chunks, k = 4: 20 values of 3000 bytes fill the first stripe (sealed and
    // written full height at offset 4096 of the first segment); the next 5 stay open.
    for i in 0..25 {
        e.put("t", &key(i), &value_for(i as u64, seed, 3000))
            .expect("put");
    }
    // The stripe's writes complete before the sync is asked for (as on a loaded machine):
    // the sync then flushes that stripe first, and the 5 records of the open stripe go to
    // the journal, and so do the synced puts after them. No record of the stripe is in the
    // journal.
    std::thread::sleep(std::time::Duration::from_millis(200));
    e.sync().expect("sync");
    for i in 25..30 {
        e.put_sync("t", &key(i), &value_for(i as u64, seed, 3000))
            .expect("put_sync");
    }
    let st = e.status();
    assert_eq!(
        st.stripes_written, 1,
        "the scenario needs exactly one stripe"
    );
    assert!(st.journal_entries_written >= 6);
    std::mem::forget(e);
    // Garbage over that stripe's chunk headers on three of the six members (m = 2).
    let first_stripe = ectable::format::DATA_START_BYTES + 4096;
    for m in &mems[..3] {
        m.poke(first_stripe, &[0xA5; 4096]);
    }
    let ro = EngineOptions {
        read_only: true,
        ..Default::default()
    };
    match Engine::open(io_of(&wrap(&mems, seed + 1)), ro) {
        Err(ectable::Error::DataLost { detail, .. }) => {
            assert!(detail.contains("acknowledged"), "{detail}")
        }
        Err(other) => panic!("expected DataLost, got {other}"),
        Ok(e) => {
            // Opening is allowed only if every acknowledged put reads back or fails typed.
            for i in 0..30 {
                match e.get("t", &key(i)) {
                    Ok(Some(v)) => assert_eq!(v, value_for(i as u64, seed, 3000)),
                    Ok(None) => panic!("acknowledged put {i} silently gone"),
                    Err(_) => {}
                }
            }
        }
    }
}

/// What a writable open replays from the journal must survive the loss of any m members
/// afterwards, even when the entry had a single copy (a sync that was never acknowledged,
/// cut off after one member's write): the open writes the replayed records into flushed
/// stripes before it returns (found by the simulator, seed 7500: the copy's member was
/// unplugged, the process killed, and a record shown by the previous open was gone).
#[test]
fn records_a_writable_open_replayed_survive_losing_the_entry_s_only_member() {
    let seed = 600;
    let mems = journaled_then_power_cut(CrashMode::DropAll, seed, 10);
    // Leave one entry with one copy: the first (put 0, at the start of the ring; its
    // members rotate from slot 0) on member 0; every other copy of every entry is erased,
    // as if the syncs after the first had never been written.
    let ring = ectable::format::journal::JOURNAL_START_BYTES;
    let len = ectable::format::journal::JOURNAL_BYTES;
    mems[0].poke(ring + 4096, &vec![0u8; len - 4096]);
    for m in &mems[1..] {
        m.poke(ring, &vec![0u8; len]);
    }
    let faulty = tracked(&mems, seed + 1);
    let e = Engine::open(io_of(&faulty), EngineOptions::default()).expect("writable open");
    assert!(e.recovery_stats().journal_entries > 0, "nothing replayed");
    let shown: Vec<usize> = (0..10)
        .filter(|&i| e.get("t", &key(i)).expect("get").is_some())
        .collect();
    assert_eq!(
        shown,
        vec![0],
        "the open replays exactly the one entry left"
    );
    // The process dies; member 0 is lost.
    std::mem::forget(e);
    for f in &faulty {
        f.crash(CrashMode::DropAll).expect("crash");
    }
    let e = Engine::open(
        io_subset(&wrap(&mems, seed + 2), &[1, 2, 3, 4, 5]),
        EngineOptions::default(),
    )
    .expect("open without member 0");
    for i in shown {
        assert_eq!(
            e.get("t", &key(i)).expect("get").as_deref(),
            Some(&value_for(i as u64, seed, 300)[..]),
            "put {i}, shown by the previous open, is gone"
        );
    }
}

/// A device whose writes to the data area (the log's stripes; not the superblocks, health
/// block or journal ring before it) wait while the shared gate is closed: a stripe write held
/// in flight on purpose.
struct Gated {
    inner: Arc<dyn ectable::devices::BlockDevice>,
    gate: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    held: Arc<std::sync::atomic::AtomicU64>,
}

impl ectable::devices::BlockDevice for Gated {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn geometry(&self) -> ectable::devices::Geometry {
        self.inner.geometry()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ectable::devices::DeviceError> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), ectable::devices::DeviceError> {
        if offset >= ectable::format::DATA_START_BYTES {
            let (lock, cv) = &*self.gate;
            let mut closed = lock.lock().unwrap_or_else(|p| p.into_inner());
            if *closed {
                self.held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            while *closed {
                closed = cv.wait(closed).unwrap_or_else(|p| p.into_inner());
            }
        }
        self.inner.write_at(buf, offset)
    }
    fn sync(&self) -> Result<(), ectable::devices::DeviceError> {
        self.inner.sync()
    }
}

/// A sync acknowledged through the caller's journal entry may return while the stripe it
/// sealed is still being written. A scrub right after it reads the log up to the writer's
/// cursor, which lies past that stripe: it must wait until the stripe is written and
/// flushed, then check it. Made without timing: the devices hold every stripe write until a
/// gate opens. Oracle: the scrub does not finish while the gate is closed (a stripe write
/// was held: counted), and after it opens the scrub checks every stripe with no finding.
/// Without the wait the scrub finished at once, before the held stripe was on the devices.
#[test]
fn a_scrub_right_after_a_sync_waits_for_the_stripe_the_sync_sealed() {
    let mems = new_array(true);
    let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let held = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let devs: Vec<Arc<dyn ectable::devices::BlockDevice>> = mems
        .iter()
        .map(|m| {
            Arc::new(Gated {
                inner: m.clone(),
                gate: gate.clone(),
                held: held.clone(),
            }) as Arc<dyn ectable::devices::BlockDevice>
        })
        .collect();
    let io = ectable::devices::open_backend(ectable::devices::BackendKind::Psync, devs)
        .expect("backend");
    let e = Engine::open(io, EngineOptions::default()).expect("open");
    for i in 0..5 {
        e.put_sync("t", &key(i), &value_for(i as u64, 900, 3000))
            .expect("put_sync");
    }
    // Hold the stripe writes, then put synced values until one seals a stripe (about 20
    // of 3000 bytes fill one). The gate opens again however the test ends (a held write
    // would stop the engine's close).
    struct Opens(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);
    impl Drop for Opens {
        fn drop(&mut self) {
            *self.0 .0.lock().unwrap_or_else(|p| p.into_inner()) = false;
            self.0 .1.notify_all();
        }
    }
    let _opens = Opens(gate.clone());
    *gate.0.lock().unwrap() = true;
    for i in 5..30 {
        e.put_sync("t", &key(i), &value_for(i as u64, 900, 3000))
            .expect("put_sync acknowledged through the journal");
    }
    std::thread::scope(|sc| {
        let scrub = sc.spawn(|| {
            e.scrub(false, &ectable::RebuildOptions::default(), &mut |_| {})
                .expect("scrub")
        });
        let t0 = std::time::Instant::now();
        while held.load(std::sync::atomic::Ordering::SeqCst) == 0
            && t0.elapsed() < std::time::Duration::from_secs(10)
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            held.load(std::sync::atomic::Ordering::SeqCst) > 0,
            "no stripe write was held: the test does not test"
        );
        // Time for a scrub that does not wait to read everything and finish.
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            !scrub.is_finished(),
            "the scrub finished while a stripe sealed before it was not on the devices"
        );
        *gate.0.lock().unwrap() = false;
        gate.1.notify_all();
        let r = scrub.join().expect("scrub thread");
        assert!(r.stripes_checked >= 1, "{r:?}");
        assert_eq!(r.bad_chunks_per_slot.iter().sum::<u64>(), 0, "{r:?}");
        assert!(r.progress.unrecoverable.is_empty(), "{r:?}");
    });
    for i in 0..30 {
        assert_eq!(
            e.get("t", &key(i)).expect("get").as_deref(),
            Some(&value_for(i as u64, 900, 3000)[..]),
            "put {i}"
        );
    }
}
