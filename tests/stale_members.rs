//! Stale members on real loop devices, RS(4,2) over six: a member that missed writes is
//! never readmitted without a resync.
//!
//! - An old copy of a device's backing file put back after more writes: the next open knows
//!   it is stale from the superblocks alone, a writing session does not make it ONLINE again,
//!   `status` counts it as missing, `rebuild` resyncs only what it missed (reading every
//!   rewritten chunk back), and afterwards every pair of the other five devices can be lost
//!   with every acknowledged row still readable.
//! - Two devices left out of one writing session and given back: the same, for both, and
//!   the dirty-segment record survives further sessions until the resync.
//! - A device left out and given back to an engine under the automatic recovery policy: the
//!   monitor resyncs it without being asked.

mod common;
use common::*;
use ectable::devices::BackendKind;
use ectable::{format, Engine, EngineOptions, RebuildOptions, RecoveryPolicy};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static LOCK: Mutex<()> = Mutex::new(());
const SIZE: u64 = 40 << 20;

type Rows = BTreeMap<(String, Vec<u8>), Vec<u8>>;

fn open_rw(paths: &[&str], opts: EngineOptions) -> Engine {
    Engine::open(open_files(paths, None, BackendKind::Auto), opts).expect("open read-write")
}

fn open_ro(paths: &[&str]) -> Result<Engine, ectable::Error> {
    Engine::open(
        open_files(paths, None, BackendKind::Auto),
        EngineOptions {
            read_only: true,
            ..Default::default()
        },
    )
}

/// Writes `count` rows of table `table` (values derived from `seed`) and syncs.
fn write_rows(e: &Engine, table: &str, seed: u64, count: u64, rows: &mut Rows) {
    for i in 0..count {
        let key = format!("{table}-{i:06}").into_bytes();
        let value = value_for(i, seed, 300 + (i as usize * 131) % 2600);
        e.put(table, &key, &value).expect("put");
        rows.insert((table.to_string(), key), value);
    }
    e.sync().expect("sync");
}

/// Every row reads back with the expected value from an array opened on `paths`.
fn check_rows(paths: &[&str], rows: &Rows, what: &str) {
    let e = open_ro(paths).unwrap_or_else(|err| panic!("{what}: open failed: {err}"));
    for ((t, k), v) in rows {
        match e.get(t, k) {
            Ok(Some(got)) => assert!(
                got == *v,
                "{what}: wrong value for {t}/{}",
                String::from_utf8_lossy(k)
            ),
            other => panic!(
                "{what}: {t}/{} not readable: {other:?}",
                String::from_utf8_lossy(k)
            ),
        }
    }
}

/// Every pair of the devices other than `except` left out: every row reads back.
fn check_every_pair_lost(loops: &[LoopDevice], except: &[usize], rows: &Rows) -> usize {
    let others: Vec<usize> = (0..loops.len()).filter(|i| !except.contains(i)).collect();
    let mut pairs = 0;
    for a in 0..others.len() {
        for b in a + 1..others.len() {
            let keep: Vec<&str> = (0..loops.len())
                .filter(|i| *i != others[a] && *i != others[b])
                .map(|i| loops[i].path.as_str())
                .collect();
            check_rows(
                &keep,
                rows,
                &format!("devices {} and {} lost", others[a], others[b]),
            );
            pairs += 1;
        }
    }
    pairs
}

fn setup(dir: &std::path::Path) -> Vec<LoopDevice> {
    let loops: Vec<LoopDevice> = (0..6)
        .map(|i| LoopDevice::attach(&dir.join(format!("b{i}.img")), SIZE))
        .collect();
    let paths: Vec<&str> = loops.iter().map(|l| l.path.as_str()).collect();
    format(
        open_files(&paths, None, BackendKind::Auto).as_ref(),
        &fmt_opts(4, 2),
    )
    .expect("format");
    loops
}

fn state_of(e: &Engine, slot: usize) -> (&'static str, bool) {
    let st = e.status();
    let d = &st.devices[slot];
    (d.state.as_str(), d.in_service)
}

fn flush_loop(l: &LoopDevice) {
    let _ = Command::new("blockdev")
        .args(["--flushbufs", &l.path])
        .status();
}

#[test]
fn old_copy_put_back_is_resynced_before_it_counts() {
    if !loop_devices_available("old_copy_put_back_is_resynced_before_it_counts") {
        return;
    }
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let loops = setup(dir.path());
    let paths: Vec<&str> = loops.iter().map(|l| l.path.as_str()).collect();
    let mut rows = Rows::new();
    let e = open_rw(&paths, EngineOptions::default());
    write_rows(&e, "one", 1, 1500, &mut rows);
    e.close().unwrap();
    drop(e);
    // The old copy of device 2.
    flush_loop(&loops[2]);
    let copy = dir.path().join("b2.old");
    std::fs::copy(&loops[2].backing, &copy).unwrap();
    let e = open_rw(&paths, EngineOptions::default());
    write_rows(&e, "two", 2, 1500, &mut rows);
    e.close().unwrap();
    drop(e);
    // Put the copy back (the fault fired: the device's contents are now older).
    flush_loop(&loops[2]);
    let before = std::fs::read(&loops[2].backing).unwrap();
    std::fs::write(&loops[2].backing, std::fs::read(&copy).unwrap()).unwrap();
    flush_loop(&loops[2]);
    assert_ne!(
        before,
        std::fs::read(&loops[2].backing).unwrap(),
        "the copy must differ from the current contents"
    );

    // A read-only open knows it from the superblocks.
    let ro = open_ro(&paths).unwrap();
    assert_eq!(state_of(&ro, 2), ("STALE", false));
    let st = ro.status();
    assert_eq!(st.redundancy_left, 1, "a stale member is a missing one");
    drop(ro);

    // A writing session (one put) does not readmit it.
    let e = open_rw(&paths, EngineOptions::default());
    e.put("one", b"after", b"the copy came back").unwrap();
    rows.insert(
        ("one".into(), b"after".to_vec()),
        b"the copy came back".to_vec(),
    );
    e.sync().unwrap();
    assert_eq!(state_of(&e, 2), ("STALE", false));
    e.close().unwrap();
    drop(e);
    let ro = open_ro(&paths).unwrap();
    assert_eq!(
        state_of(&ro, 2),
        ("STALE", false),
        "staleness persists across sessions"
    );
    let from = ro.status().devices[2].resync_from.expect("resync point");
    drop(ro);

    // The resync rewrites only what the member missed, and brings it back.
    let e = open_rw(&paths, EngineOptions::default());
    let p = e.rebuild(&RebuildOptions::default(), &mut |_| {}).unwrap();
    assert!(p.unrecoverable.is_empty(), "{:?}", p.unrecoverable);
    assert!(p.chunks_rebuilt > 0, "the resync rewrote the missed chunks");
    assert!(
        from > 1,
        "the resync starts where the copy was taken, not at 1"
    );
    assert_eq!(state_of(&e, 2), ("ONLINE", true));
    assert_eq!(e.status().redundancy_left, 2);
    let scrub = e
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(
        scrub.bad_chunks_per_slot.iter().sum::<u64>(),
        0,
        "scrub after the resync: {:?}",
        scrub.bad_chunks_per_slot
    );
    e.close().unwrap();
    drop(e);
    let pairs = check_every_pair_lost(&loops, &[2], &rows);
    assert_eq!(pairs, 10);
}

#[test]
fn devices_left_out_of_one_session_stay_stale_until_resynced() {
    if !loop_devices_available("devices_left_out_of_one_session_stay_stale_until_resynced") {
        return;
    }
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let loops = setup(dir.path());
    let all: Vec<&str> = loops.iter().map(|l| l.path.as_str()).collect();
    let mut rows = Rows::new();
    let e = open_rw(&all, EngineOptions::default());
    write_rows(&e, "one", 1, 1200, &mut rows);
    e.close().unwrap();
    drop(e);
    // Devices 1 and 4 left out of one session.
    let some: Vec<&str> = [0, 2, 3, 5].iter().map(|&i| all[i]).collect();
    let e = open_rw(&some, EngineOptions::default());
    write_rows(&e, "two", 2, 1200, &mut rows);
    e.close().unwrap();
    drop(e);
    // Given back: both stale, no redundancy left.
    let ro = open_ro(&all).unwrap();
    assert_eq!(state_of(&ro, 1), ("STALE", false));
    assert_eq!(state_of(&ro, 4), ("STALE", false));
    assert_eq!(ro.status().redundancy_left, 0);
    drop(ro);
    // A session that writes (here: a put and a checkpoint) keeps them stale.
    let e = open_rw(&all, EngineOptions::default());
    e.put("one", b"later", b"v").unwrap();
    rows.insert(("one".into(), b"later".to_vec()), b"v".to_vec());
    e.sync().unwrap();
    e.checkpoint().unwrap();
    e.close().unwrap();
    drop(e);
    let ro = open_ro(&all).unwrap();
    assert_eq!(state_of(&ro, 1), ("STALE", false));
    assert_eq!(state_of(&ro, 4), ("STALE", false));
    drop(ro);
    // Resync both.
    let e = open_rw(&all, EngineOptions::default());
    let p = e.rebuild(&RebuildOptions::default(), &mut |_| {}).unwrap();
    assert!(p.unrecoverable.is_empty(), "{:?}", p.unrecoverable);
    assert!(p.chunks_rebuilt > 0);
    let st = e.status();
    assert!(st.devices.iter().all(|d| d.in_service), "{:?}", st.devices);
    assert_eq!(st.redundancy_left, 2);
    // The last of the two is what status's scan: line reports.
    let last = st.last_rebuild.expect("the resync is recorded");
    assert!(last.resync && [1, 4].contains(&last.slot), "{last:?}");
    e.close().unwrap();
    drop(e);
    // Every pair of devices lost, the two resynced ones included.
    let pairs = check_every_pair_lost(&loops, &[], &rows);
    assert_eq!(pairs, 15);
}

#[test]
fn automatic_policy_resyncs_a_returning_member() {
    if !loop_devices_available("automatic_policy_resyncs_a_returning_member") {
        return;
    }
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let loops = setup(dir.path());
    let all: Vec<&str> = loops.iter().map(|l| l.path.as_str()).collect();
    let mut rows = Rows::new();
    let some: Vec<&str> = [0, 1, 2, 4, 5].iter().map(|&i| all[i]).collect();
    let e = open_rw(&some, EngineOptions::default());
    write_rows(&e, "one", 1, 800, &mut rows);
    e.close().unwrap();
    drop(e);
    let mut opts = EngineOptions {
        recovery: RecoveryPolicy::Automatic,
        ..Default::default()
    };
    opts.health.probe_interval = Duration::from_millis(50);
    let e = open_rw(&all, opts);
    let deadline = Instant::now() + Duration::from_secs(60);
    while state_of(&e, 3) != ("ONLINE", true) {
        assert!(
            Instant::now() < deadline,
            "the monitor did not resync slot 3: {:?}",
            e.status().devices[3]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    e.close().unwrap();
    drop(e);
    check_every_pair_lost(&loops, &[], &rows);
}
