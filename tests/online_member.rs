//! A member that failed while the array ran comes back into service without a reopen
//! (`Engine::online`, `ectable online`), once its device works again: the same device (a
//! fault that went away) or the member under another name (a device that came back as
//! another node). It must come back stale, so that it is not trusted for what it missed
//! until the resync, and the resync must make it whole.
//!
//! Oracle: while the device still fails, `online` is refused and nothing changes; after it,
//! new synced writes are acknowledged, the member is in service but stale (also across a
//! close and reopen before the resync); after the resync every member is in sync, a scrub
//! finds nothing, and every pair of members can be lost with every acknowledged row still
//! readable. Devices that are not this slot's member are refused.

mod common;
use common::*;
use ectable::devices::{BlockDevice, FaultyDevice, MemDevice};
use ectable::{format, Engine, EngineOptions, Error, RebuildOptions};
use std::sync::Arc;

const N: usize = 6;
const K: usize = 4;
const M: usize = 2;
const SIZE: u64 = 16 << 20;

fn put_rows(e: &Engine, from: u64, count: u64, rows: &mut Rows) {
    for i in from..from + count {
        let key = format!("row{i:06}").into_bytes();
        let value = value_for(i, 53, 300 + (i as usize * 131) % 5000);
        e.put_sync("t", &key, &value).expect("put_sync");
        rows.insert(key, value);
    }
}

fn state(e: &Engine, slot: usize) -> String {
    e.status().devices[slot].state.as_str().to_string()
}

fn setup(seed: u64) -> (Vec<Arc<MemDevice>>, Vec<Arc<FaultyDevice>>, Engine, Rows) {
    let (mems, faulty) = mem_devices(N, SIZE, seed);
    format(io_of(&faulty).as_ref(), &fmt_opts(K, M)).expect("format");
    let e = Engine::open(io_of(&faulty), EngineOptions::default()).expect("open");
    let mut rows = Rows::new();
    put_rows(&e, 0, 200, &mut rows);
    (mems, faulty, e, rows)
}

/// Makes slot `slot` fail under writes (every write to it fails, or every I/O) and checks
/// that the engine took it out of service.
fn fail_slot(e: &Engine, faulty: &[Arc<FaultyDevice>], slot: usize, unplug: bool, rows: &mut Rows) {
    if unplug {
        faulty[slot].set_failed(true);
    } else {
        faulty[slot].add_write_error_range(0..SIZE);
    }
    put_rows(e, 1000, 150, rows);
    let c = faulty[slot].counters();
    assert!(
        c.eio_writes + c.eio_reads > 0,
        "the fault on slot {slot} never fired"
    );
    assert_eq!(
        state(e, slot),
        "FAULTED",
        "slot {slot} after its writes failed"
    );
}

/// The resync, then every member in sync, nothing for a scrub, every pair losable.
fn resync_and_check(e: Engine, faulty: &[Arc<FaultyDevice>], rows: &Rows, what: &str) {
    let p = e
        .rebuild(&RebuildOptions::default(), &mut |_| {})
        .unwrap_or_else(|err| panic!("{what}: resync: {err}"));
    assert!(p.segments_done > 0, "{what}: the resync walked no segment");
    let st = e.status();
    for d in &st.devices {
        assert_eq!(
            d.state.as_str(),
            "ONLINE",
            "{what}: slot {} after the resync",
            d.slot
        );
    }
    assert_eq!(st.redundancy_left, M, "{what}: redundancy after the resync");
    let scrub = e
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .expect("scrub");
    assert_eq!(
        scrub.bad_chunks_per_slot.iter().sum::<u64>(),
        0,
        "{what}: scrub found bad chunks after the resync: {:?}",
        scrub.bad_chunks_per_slot
    );
    check_rows(&e, "t", rows, what);
    e.close().expect("close");
    drop(e);
    check_every_pair_lost(faulty, "t", rows, what);
}

/// The same device, once its fault went away: refused while it still fails, then back in
/// service (stale), writes go on, the resync makes it whole.
#[test]
fn a_member_whose_fault_went_away_comes_back_and_resyncs() {
    for unplug in [false, true] {
        let what = if unplug {
            "unplugged"
        } else {
            "writes failing"
        };
        let (_mems, faulty, e, mut rows) = setup(11);
        fail_slot(&e, &faulty, 2, unplug, &mut rows);
        let epoch = e.status().epoch;
        // Still failing: refused, nothing changed.
        let dev = faulty[2].clone() as Arc<dyn BlockDevice>;
        match e.online(dev.clone()) {
            Err(Error::DeviceStillFails { .. }) => {}
            other => panic!("{what}: online of a device that still fails: {other:?}"),
        }
        assert_eq!(state(&e, 2), "FAULTED", "{what}: after the refused online");
        assert_eq!(
            e.status().epoch,
            epoch,
            "{what}: the refused online wrote superblocks"
        );
        // The fault goes away.
        faulty[2].clear_error_ranges();
        faulty[2].set_failed(false);
        let o = e.online(dev).expect("online");
        assert_eq!((o.slot, o.was), (2, "FAULTED"), "{what}");
        assert!(
            o.resync_from.is_some(),
            "{what}: back without a resync entry"
        );
        assert_eq!(state(&e, 2), "STALE", "{what}: right after online");
        let st = e.status();
        assert!(
            !st.devices[2].in_service,
            "{what}: a stale member must not count"
        );
        assert_eq!(
            st.redundancy_left,
            M - 1,
            "{what}: redundancy while it is stale"
        );
        // Writes go on, and reach it.
        let before = faulty[2].writes_seen();
        put_rows(&e, 2000, 100, &mut rows);
        assert!(
            faulty[2].writes_seen() > before,
            "{what}: no new write reached it"
        );
        resync_and_check(e, &faulty, &rows, what);
    }
}

/// Brought back, then closed and opened again before the resync: the member must still be
/// stale (what it missed is on record in the superblocks), and the resync then runs.
#[test]
fn a_member_brought_back_stays_stale_across_a_reopen_until_resynced() {
    let (_mems, faulty, e, mut rows) = setup(12);
    fail_slot(&e, &faulty, 4, false, &mut rows);
    faulty[4].clear_error_ranges();
    let o = e
        .online(faulty[4].clone() as Arc<dyn BlockDevice>)
        .expect("online");
    assert_eq!(o.was, "FAULTED");
    put_rows(&e, 3000, 50, &mut rows);
    e.close().expect("close");
    drop(e);
    let e = Engine::open(io_of(&faulty), EngineOptions::default()).expect("reopen");
    assert_eq!(
        state(&e, 4),
        "STALE",
        "slot 4 at the reopen before its resync"
    );
    check_rows(&e, "t", &rows, "after the reopen");
    resync_and_check(e, &faulty, &rows, "reopened before the resync");
}

/// The member came back under another name (here: a new handle over the same storage, which
/// the engine cannot tell is the one it holds): it takes the slot in place of the dead
/// handle, and later opens find it under the new one.
#[test]
fn a_member_back_under_another_name_takes_its_slot() {
    let (mems, mut faulty, e, mut rows) = setup(13);
    fail_slot(&e, &faulty, 3, true, &mut rows);
    let renamed = Arc::new(FaultyDevice::new(
        mems[3].clone() as Arc<dyn BlockDevice>,
        99,
    ));
    let o = e
        .online(renamed.clone() as Arc<dyn BlockDevice>)
        .expect("online under another name");
    assert_eq!((o.slot, o.was), (3, "FAULTED"));
    put_rows(&e, 4000, 80, &mut rows);
    assert!(renamed.writes_seen() > 0, "no write reached the new handle");
    faulty[3] = renamed;
    resync_and_check(e, &faulty, &rows, "under another name");
}

/// What is not this slot's member that failed is refused, and changes nothing.
#[test]
fn devices_that_are_not_a_failed_member_are_refused_or_nothing_to_do() {
    let (_mems, faulty, e, mut rows) = setup(14);
    // In service and in sync: nothing to do.
    let o = e
        .online(faulty[1].clone() as Arc<dyn BlockDevice>)
        .expect("online of a member in service");
    assert_eq!((o.slot, o.was, o.resync_from), (1, "ONLINE", None));
    let epoch = e.status().epoch;
    // Blank: not a member that came back.
    let blank = Arc::new(MemDevice::new("blank", SIZE));
    match e.online(blank) {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("replace"), "{msg}"),
        other => panic!("a blank device: {other:?}"),
    }
    // Another array's member.
    let (_other_mems, other) = mem_devices(N, SIZE, 77);
    format(io_of(&other).as_ref(), &fmt_opts(K, M)).expect("format the other array");
    match e.online(other[2].clone() as Arc<dyn BlockDevice>) {
        Err(Error::ForeignDevice { .. }) => {}
        other => panic!("another array's device: {other:?}"),
    }
    assert_eq!(
        e.status().epoch,
        epoch,
        "a refused online wrote superblocks"
    );
    // A member replaced out of the array, given back.
    fail_slot(&e, &faulty, 5, true, &mut rows);
    let spare = Arc::new(MemDevice::new("new5", SIZE));
    e.replace_with_device(5, spare).expect("replace slot 5");
    e.rebuild(&RebuildOptions::default(), &mut |_| {})
        .expect("rebuild slot 5");
    faulty[5].set_failed(false);
    match e.online(faulty[5].clone() as Arc<dyn BlockDevice>) {
        Err(Error::DuplicateDevice { .. }) | Err(Error::ReplacedDevice { .. }) => {}
        other => panic!("a member replaced out of the array: {other:?}"),
    }
    check_rows(&e, "t", &rows, "after the refusals");
    for d in &e.status().devices {
        assert_eq!(
            d.state.as_str(),
            "ONLINE",
            "slot {} after the refusals",
            d.slot
        );
    }
}

/// Writers keep going through the failure, the online and the resync (stripes in flight
/// while the member comes back must be caught by the resync): every acknowledged row is
/// there after, with any two members lost.
#[test]
fn online_and_resync_while_writers_write() {
    use std::sync::atomic::{AtomicBool, Ordering};
    // Larger devices and no cleaner: every stripe written around the online stays where it
    // was written, so a chunk the member missed is still there for the checks to find.
    let (_mems, faulty) = mem_devices(N, 64 << 20, 15);
    format(io_of(&faulty).as_ref(), &fmt_opts(K, M)).expect("format");
    let mut opts = EngineOptions::default();
    opts.cleaner.enabled = false;
    let e = Arc::new(Engine::open(io_of(&faulty), opts).expect("open"));
    let mut rows = Rows::new();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3u64)
        .map(|t| {
            let (e, stop) = (e.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut mine = Rows::new();
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let key = format!("w{t}-{i:07}").into_bytes();
                    let value = value_for(t * 10_000_000 + i, 59, 100 + (i as usize * 61) % 500);
                    if i % 8 == 7 {
                        e.put_sync("t", &key, &value)
                            .expect("put_sync beside online");
                    } else {
                        e.put("t", &key, &value).expect("put beside online");
                    }
                    mine.insert(key, value);
                    i += 1;
                    // Paced, so that the checks of every pair stay short.
                    std::thread::sleep(std::time::Duration::from_micros(300));
                }
                e.sync().expect("final sync");
                mine
            })
        })
        .collect();
    let pause = || std::thread::sleep(std::time::Duration::from_millis(150));
    pause();
    faulty[0].add_write_error_range(0..SIZE);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while state(&e, 0) != "FAULTED" {
        assert!(std::time::Instant::now() < deadline, "slot 0 never failed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    pause();
    faulty[0].clear_error_ranges();
    let o = e
        .online(faulty[0].clone() as Arc<dyn BlockDevice>)
        .expect("online beside writers");
    assert_eq!(o.was, "FAULTED");
    pause();
    e.rebuild(&RebuildOptions::default(), &mut |_| {})
        .expect("resync beside writers");
    pause();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        rows.extend(w.join().expect("writer"));
    }
    let e = Arc::into_inner(e).expect("the only handle");
    // Whatever the writers added after the resync began is on every member already; what
    // they added before it was caught by it. A second resync has nothing left to do.
    let st = e.status();
    for d in &st.devices {
        assert_eq!(
            d.state.as_str(),
            "ONLINE",
            "slot {} after the resync",
            d.slot
        );
    }
    eprintln!("{} rows acknowledged around the online", rows.len());
    resync_and_check_quiet(e, &faulty, &rows);
}

/// As [`resync_and_check`], for an array already resynced: scrub, rows, every pair.
fn resync_and_check_quiet(e: Engine, faulty: &[Arc<FaultyDevice>], rows: &Rows) {
    let scrub = e
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .expect("scrub");
    assert_eq!(
        scrub.bad_chunks_per_slot.iter().sum::<u64>(),
        0,
        "scrub found bad chunks: {:?}",
        scrub.bad_chunks_per_slot
    );
    check_rows(&e, "t", rows, "beside writers");
    e.close().expect("close");
    drop(e);
    check_every_pair_lost(faulty, "t", rows, "beside writers");
}

/// An old copy of the member comes back under another name (a disk restored from an image
/// taken before more writes): it missed more than the session recorded for the slot, and
/// must be resynced from where its own superblock says, as recovery would at an open.
#[test]
fn an_old_copy_back_under_another_name_is_resynced_from_its_own_floor() {
    let (mems, mut faulty, e, mut rows) = setup(16);
    let image = mems[3].snapshot();
    // More writes after the image, then a reopen (a new session, a new floor), more writes.
    put_rows(&e, 5000, 300, &mut rows);
    e.close().expect("close");
    drop(e);
    let e = Engine::open(io_of(&faulty), EngineOptions::default()).expect("reopen");
    put_rows(&e, 6000, 100, &mut rows);
    fail_slot(&e, &faulty, 3, true, &mut rows);
    // The old image, under a new name.
    let old = Arc::new(MemDevice::new("mem3-old", SIZE));
    old.restore(&image);
    let renamed = Arc::new(FaultyDevice::new(old as Arc<dyn BlockDevice>, 98));
    let o = e
        .online(renamed.clone() as Arc<dyn BlockDevice>)
        .expect("online of the old copy");
    assert_eq!((o.slot, o.was), (3, "FAULTED"));
    faulty[3] = renamed;
    resync_and_check(e, &faulty, &rows, "an old copy under another name");
}

/// `online` of a member and a `replace` of the same slot by a hot spare at the same time
/// (an operator bringing the disk back while the monitor's automatic recovery, or a second
/// operator, replaces it): they must not interleave. Either the member comes back and is
/// then replaced, or the replace comes first and the member is refused as replaced; never a
/// slot whose device and recorded member disagree. The old member answers slowly, so that
/// the online is still at work when the replace starts, at several points of its run.
///
/// Oracle: after both, the rebuild and a reopen from the spare, the slot holds the spare,
/// every member is in service and in sync, a scrub finds nothing, and every row can be read
/// with any two members lost.
#[test]
fn online_and_a_replace_of_the_same_slot_do_not_interleave() {
    use std::time::Duration;
    for (round, start_ms) in [0u64, 60, 150, 250, 400, 600].into_iter().enumerate() {
        let what = format!("replace {start_ms} ms into the online");
        let (_mems, mut faulty, e, mut rows) = setup(40 + round as u64);
        fail_slot(&e, &faulty, 2, true, &mut rows);
        let spare = Arc::new(FaultyDevice::new(
            Arc::new(MemDevice::new("spare2", SIZE)) as Arc<dyn BlockDevice>,
            97,
        ));
        let spare_index = e
            .add_spare_device(spare.clone() as Arc<dyn BlockDevice>)
            .expect("add the spare");
        faulty[2].set_failed(false);
        faulty[2].set_delay(Duration::from_millis(50));
        let old = faulty[2].clone() as Arc<dyn BlockDevice>;
        let (online, replaced) = std::thread::scope(|s| {
            let on = s.spawn(|| e.online(old));
            std::thread::sleep(Duration::from_millis(start_ms));
            let r = e.replace(2, spare_index);
            (on.join().expect("online thread"), r)
        });
        replaced.unwrap_or_else(|err| panic!("{what}: replace: {err}"));
        match &online {
            Ok(o) => assert_eq!(o.slot, 2, "{what}"),
            Err(Error::ReplacedDevice { .. }) => {}
            Err(err) => panic!("{what}: online: {err}"),
        }
        faulty[2].set_delay(Duration::ZERO);
        e.rebuild(&RebuildOptions::default(), &mut |_| {})
            .unwrap_or_else(|err| panic!("{what}: rebuild: {err}"));
        let st = e.status();
        assert_eq!(
            st.devices[2].path.as_deref(),
            Some("spare2"),
            "{what}: slot 2 after the replace (online: {online:?})"
        );
        e.close().expect("close");
        drop(e);
        faulty[2] = spare;
        let e = Engine::open(io_of(&faulty), EngineOptions::default())
            .unwrap_or_else(|err| panic!("{what}: reopen with the spare: {err}"));
        for d in &e.status().devices {
            assert_eq!(d.state.as_str(), "ONLINE", "{what}: slot {}", d.slot);
        }
        put_rows(&e, 7000, 20, &mut rows);
        resync_and_check_quiet(e, &faulty, &rows);
    }
}

/// A write to the member failed while it was out (unplugged for a moment), but the failure
/// has not been taken into account yet (the rest of the stripe's writes are still in
/// flight) when the operator, seeing the device back, asks for `online`. The answer must not
/// be "in service, nothing to do" with the member failed a moment later (found by the
/// simulator, seed 2350184: the operator, or the simulator, then believes it healthy).
///
/// Oracle: `online` takes the member back as a failed one (was FAULTED), it is stale until
/// resynced, and after the resync every member is in sync and every pair is losable.
#[test]
fn online_waits_for_a_failure_still_on_its_way() {
    use std::time::{Duration, Instant};
    let (_mems, faulty, e, mut rows) = setup(50);
    faulty[2].add_write_error_range(0..SIZE);
    faulty[3].set_delay(Duration::from_millis(300));
    // Enough rows to seal stripes: the flusher writes them without anyone waiting.
    for i in 0..60u64 {
        let key = format!("late{i:04}").into_bytes();
        let value = value_for(8000 + i, 53, 3000);
        e.put("t", &key, &value).expect("put");
        rows.insert(key, value);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while faulty[2].counters().eio_writes == 0 {
        assert!(Instant::now() < deadline, "no write reached slot 2");
        std::thread::sleep(Duration::from_millis(1));
    }
    // The write failed; the stripe's other writes are still held by slot 3's delay.
    faulty[2].clear_error_ranges();
    let o = e
        .online(faulty[2].clone() as Arc<dyn BlockDevice>)
        .expect("online");
    assert_eq!(
        o.was, "FAULTED",
        "online answered before the failure it had coming was counted"
    );
    assert_eq!(state(&e, 2), "STALE", "slot 2 right after online");
    faulty[3].set_delay(Duration::ZERO);
    e.sync().expect("sync");
    resync_and_check(e, &faulty, &rows, "a failure still on its way");
}

/// As above, with the monitor's health-block probe as the failed write: the device was out
/// for a moment, a probe round found it so, and the round is still running (another
/// member's probe is slow) when `online` is asked. It must wait for the round.
#[test]
fn online_waits_for_a_probe_round_in_progress() {
    use ectable::{DetectionMode, HealthPolicy};
    use std::time::{Duration, Instant};
    let (_mems, faulty) = mem_devices(N, SIZE, 51);
    format(io_of(&faulty).as_ref(), &fmt_opts(K, M)).expect("format");
    let opts = EngineOptions {
        health: HealthPolicy {
            mode: DetectionMode::Hybrid,
            probe_interval: Duration::from_millis(20),
            ..Default::default()
        },
        ..Default::default()
    };
    let e = Engine::open(io_of(&faulty), opts).expect("open");
    let mut rows = Rows::new();
    put_rows(&e, 0, 100, &mut rows);
    // Every sealed stripe written (a scrub waits for them): nothing but the probe is in
    // flight below.
    e.scrub(false, &RebuildOptions::default(), &mut |_| {})
        .expect("scrub");
    faulty[3].set_delay(Duration::from_millis(400));
    faulty[2].set_failed(true);
    let deadline = Instant::now() + Duration::from_secs(20);
    while faulty[2].counters().eio_writes == 0 {
        assert!(Instant::now() < deadline, "no probe reached slot 2");
        std::thread::sleep(Duration::from_millis(1));
    }
    faulty[2].set_failed(false);
    let o = e
        .online(faulty[2].clone() as Arc<dyn BlockDevice>)
        .expect("online");
    assert_eq!(
        o.was, "FAULTED",
        "online answered before the probe round that failed the member was over"
    );
    faulty[3].set_delay(Duration::ZERO);
    resync_and_check(e, &faulty, &rows, "a probe round in progress");
}
