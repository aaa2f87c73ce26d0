//! Recovery policies: with the automatic policy a device that dies is replaced by the hot
//! spare given at format and rebuilt at once, with no operator; the array ends healthy and
//! every row reads back without the dead device. A spare added later is used the same way.
//! With the manual policy nothing happens on its own. A spare that dies while the engine runs
//! leaves the spares (status reports it missing) and is never rebuilt onto.

#![allow(clippy::big_endian_bytes)] // big-endian keys sort in numeric order

mod common;
use common::*;
use ectable::devices::{open_backend, BackendKind, BlockDevice, FaultyDevice, MemDevice};
use ectable::{
    format, DetectionMode, DeviceEventKind, Engine, EngineOptions, FormatOptions, HealthPolicy,
    RecoveryPolicy,
};
use std::sync::Arc;
use std::time::Duration;

const ROWS: u64 = 400;

fn opts(recovery: RecoveryPolicy) -> EngineOptions {
    let health = HealthPolicy {
        mode: DetectionMode::Hybrid,
        probe_interval: Duration::from_millis(20),
        ..Default::default()
    };
    EngineOptions {
        health,
        recovery,
        ..Default::default()
    }
}

fn devices(faulty: &[Arc<FaultyDevice>]) -> Vec<Arc<dyn BlockDevice>> {
    faulty
        .iter()
        .map(|f| f.clone() as Arc<dyn BlockDevice>)
        .collect()
}

fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    wait_until(what, Duration::from_secs(10), cond)
}

/// Seven memory devices formatted RS(4,2) with the seventh a hot spare, open under the
/// automatic policy, `ROWS` rows written and synced.
fn automatic_with_a_spare(seed: u64) -> (Vec<Arc<FaultyDevice>>, Engine) {
    let (_mems, faulty) = mem_devices(7, 8 << 20, seed);
    let io = open_backend(BackendKind::Psync, devices(&faulty)).unwrap();
    let f = FormatOptions {
        spare_count: 1,
        ..fmt_opts(4, 2)
    };
    format(io.as_ref(), &f).unwrap();
    let e = Engine::open(io, opts(RecoveryPolicy::Automatic)).unwrap();
    assert_eq!(e.status().spares.len(), 1);
    for i in 0..ROWS {
        e.put("t", &i.to_be_bytes(), &value_for(i, 4, 700)).unwrap();
    }
    e.sync().unwrap();
    (faulty, e)
}

/// The monitor's rebuild is the running activity, as an operator's is: status shows its
/// progress and says it runs, instead of asking for an 'ectable rebuild' already under way.
#[test]
fn an_automatic_rebuild_shows_in_status_as_running() {
    let (faulty, e) = automatic_with_a_spare(43);
    // The spare answers late, so that the rebuild onto it lasts long enough to be seen.
    faulty[6].set_delay(Duration::from_millis(30));
    faulty[4].set_failed(true);
    wait_for("status to show the monitor's rebuild running", || {
        let st = e.status();
        let running = st
            .scan_in_progress
            .as_ref()
            .is_some_and(|p| p.kind == "rebuild");
        if running && st.devices[4].state == "REBUILDING" {
            assert!(
                st.devices[4].note.contains("in progress now"),
                "{:?}",
                st.devices[4]
            );
            return true;
        }
        false
    });
    faulty[6].set_delay(Duration::ZERO);
    wait_for("the rebuild to finish", || {
        let st = e.status();
        st.rebuild.is_none() && st.devices[4].state == "ONLINE"
    });
    assert!(e.status().scan_in_progress.is_none());
    e.close().unwrap();
}

#[test]
fn automatic_policy_replaces_a_dead_device_with_the_spare() {
    let (faulty, e) = automatic_with_a_spare(41);
    let events = e.subscribe_events();
    faulty[4].set_failed(true);
    wait_for("the spare to take slot 4 and the rebuild to finish", || {
        let st = e.status();
        st.spares.is_empty() && st.rebuild.is_none() && st.devices[4].state == "ONLINE"
    });
    let st = e.status();
    assert_eq!(st.devices[4].path.as_deref(), Some("mem6"));
    // An embedder subscribed to the device events saw the whole story, in order.
    // (The last event follows the state change that status shows: wait for it.)
    let seen: Vec<(usize, String, DeviceEventKind)> = (0..3)
        .map_while(|_| events.recv_timeout(Duration::from_secs(10)).ok())
        .map(|ev| (ev.slot, ev.device, ev.kind))
        .collect();
    assert_eq!(
        seen,
        vec![
            (4, "mem4".to_string(), DeviceEventKind::Failed),
            (4, "mem6".to_string(), DeviceEventKind::Replaced),
            (4, "mem6".to_string(), DeviceEventKind::Rebuilt),
        ]
    );
    // The device that died is still given but no longer a member, and status says so.
    assert_eq!(st.unrecognised.len(), 1, "{:?}", st.unrecognised);
    assert_eq!(st.unrecognised[0].0, "mem4");
    assert!(
        st.unrecognised[0]
            .1
            .contains("replaced by mem6 (was slot 4)"),
        "{:?}",
        st.unrecognised
    );
    e.close().unwrap();
    drop(e);
    let mut survivors = devices(&faulty);
    survivors.remove(4);
    let e = Engine::open(
        open_backend(BackendKind::Psync, survivors).unwrap(),
        EngineOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..ROWS {
        assert_eq!(
            e.get("t", &i.to_be_bytes()).unwrap(),
            Some(value_for(i, 4, 700)),
            "row {i}"
        );
    }
    assert_eq!(e.status().degraded_reads, 0);
}

#[test]
fn spare_added_later_and_manual_policy_waits() {
    let (_mems, faulty) = mem_devices(6, 8 << 20, 42);
    let extra = Arc::new(FaultyDevice::new(
        Arc::new(MemDevice::new("extra", 8 << 20)),
        7,
    ));
    let mut all = devices(&faulty);
    all.push(extra.clone());
    {
        let io = open_backend(BackendKind::Psync, devices(&faulty)).unwrap();
        format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    }
    let e = Engine::open(
        open_backend(BackendKind::Psync, all.clone()).unwrap(),
        opts(RecoveryPolicy::Manual),
    )
    .unwrap();
    for i in 0..ROWS {
        e.put("t", &i.to_be_bytes(), &value_for(i, 5, 500)).unwrap();
    }
    assert_eq!(
        e.status().unrecognised.len(),
        1,
        "the extra device, not yet added"
    );
    e.add_spare(6).unwrap();
    let st = e.status();
    assert_eq!(st.spares.len(), 1);
    assert!(
        st.unrecognised.is_empty(),
        "a spare is recognised: {:?}",
        st.unrecognised
    );
    faulty[1].set_failed(true);
    wait_for("the prober to fail slot 1", || {
        e.status().devices[1].state == "FAULTED"
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        e.status().spares.len(),
        1,
        "the manual policy must not use the spare"
    );
    e.close().unwrap();
    drop(e);
    // Reopen with the automatic policy: the spare (persisted as such) now replaces slot 1.
    let e = Engine::open(
        open_backend(BackendKind::Psync, all).unwrap(),
        opts(RecoveryPolicy::Automatic),
    )
    .unwrap();
    wait_for("the automatic replacement", || {
        let st = e.status();
        st.spares.is_empty() && st.rebuild.is_none() && st.devices[1].state == "ONLINE"
    });
    for i in 0..ROWS {
        assert_eq!(
            e.get("t", &i.to_be_bytes()).unwrap(),
            Some(value_for(i, 5, 500)),
            "row {i}"
        );
    }
}

/// A hot spare that dies while the engine runs. Before the fix every probe round found its
/// superblock copies unreadable and rewrote every member's superblocks (a new epoch each
/// round, without end), `status` kept listing it as the spare, and the automatic policy
/// took it for the next member lost. Now the failed read takes it out of the spares:
/// `status` names its entry missing and the device unrecognised with the error, the
/// superblocks stop changing, and a member lost afterwards is not rebuilt onto it.
#[test]
fn a_hot_spare_that_dies_is_taken_out_of_the_spares() {
    let (faulty, e) = automatic_with_a_spare(43);
    faulty[6].set_failed(true);
    wait_for("the dead spare to leave the spares", || {
        let st = e.status();
        st.spares.is_empty() && st.spares_missing.len() == 1
    });
    let st = e.status();
    assert!(
        st.unrecognised
            .iter()
            .any(|(d, why)| d == "mem6" && why.starts_with("hot spare failed")),
        "{:?}",
        st.unrecognised
    );
    // Some probe rounds (every 20 ms) later the superblocks are as they were.
    let epoch = st.epoch;
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        e.status().epoch,
        epoch,
        "the superblocks were rewritten round after round"
    );
    // A member lost now stays lost: there is no spare to take its slot.
    faulty[4].set_failed(true);
    wait_for("slot 4 to fail", || {
        e.status().devices[4].state == "FAULTED"
    });
    std::thread::sleep(Duration::from_millis(400));
    let st = e.status();
    assert!(st.rebuild.is_none(), "{:?}", st.rebuild);
    assert_eq!(st.devices[4].state, "FAULTED");
    // A new spare takes the dead one's entry without being told to (it failed in this
    // session), and the automatic policy rebuilds the lost member onto it.
    e.add_spare_device(Arc::new(MemDevice::new("new-spare", 8 << 20)))
        .unwrap();
    wait_for("the new spare to take slot 4", || {
        let st = e.status();
        st.rebuild.is_none() && st.devices[4].state == "ONLINE"
    });
    let st = e.status();
    assert!(st.spares_missing.is_empty(), "{:?}", st.spares_missing);
    assert_eq!(st.devices[4].path.as_deref(), Some("new-spare"));
    for i in 0..ROWS {
        assert_eq!(
            e.get("t", &i.to_be_bytes()).unwrap(),
            Some(value_for(i, 4, 700)),
            "row {i}"
        );
    }
}

/// A hot spare only left out of the devices given at one open is not taken for dead: a
/// spare added then is refused (`SpareMissing`, nothing changed), so the left-out spare still
/// opens the next time it is given; told to (`add_spare_device_in_place_of_missing`), the
/// new spare takes its entry. Before, the new spare took the entry unasked, and every later
/// open that listed the left-out spare was refused as naming a replaced device.
#[test]
fn a_spare_left_out_of_one_open_keeps_its_entry() {
    let (_mems, faulty) = mem_devices(7, 8 << 20, 44);
    let all = devices(&faulty);
    let io = open_backend(BackendKind::Psync, all.clone()).unwrap();
    let f = FormatOptions {
        spare_count: 1,
        ..fmt_opts(4, 2)
    };
    format(io.as_ref(), &f).unwrap();
    drop(io);
    let members = all[..6].to_vec();
    let e = Engine::open(
        open_backend(BackendKind::Psync, members.clone()).unwrap(),
        opts(RecoveryPolicy::Manual),
    )
    .unwrap();
    let st = e.status();
    assert_eq!(st.spares_missing.len(), 1, "{:?}", st.spares_missing);
    let epoch = st.epoch;
    let err = e
        .add_spare_device(Arc::new(MemDevice::new("other", 8 << 20)))
        .unwrap_err();
    assert!(
        matches!(&err, ectable::Error::SpareMissing { missing } if missing == &st.spares_missing),
        "{err}"
    );
    let st = e.status();
    assert_eq!(st.epoch, epoch, "a refused spare changed the superblocks");
    assert!(st.spares.is_empty(), "{:?}", st.spares);
    e.close().unwrap();
    drop(e);
    // Given again, the left-out spare is the spare.
    let e = Engine::open(
        open_backend(BackendKind::Psync, all.clone()).unwrap(),
        opts(RecoveryPolicy::Manual),
    )
    .unwrap();
    let st = e.status();
    assert_eq!(st.spares, vec!["mem6".to_string()]);
    assert!(st.spares_missing.is_empty(), "{:?}", st.spares_missing);
    e.close().unwrap();
    drop(e);
    // Left out again, and this time told to: the new spare takes its entry.
    let e = Engine::open(
        open_backend(BackendKind::Psync, members).unwrap(),
        opts(RecoveryPolicy::Manual),
    )
    .unwrap();
    e.add_spare_device_in_place_of_missing(Arc::new(MemDevice::new("other", 8 << 20)))
        .unwrap();
    let st = e.status();
    assert_eq!(st.spares, vec!["other".to_string()]);
    assert!(st.spares_missing.is_empty(), "{:?}", st.spares_missing);
}

/// A hot spare whose device refuses writes (set read-only after the array last wrote its
/// superblocks): status names it at once, before any write fails; the superblock write that
/// records a member's failure fails the spare too (it is taken out of the spares, as a spare
/// that died is), so the monitor never rebuilds onto it and the lost slot stays lost.
#[test]
fn a_spare_that_refuses_writes_is_named_and_never_rebuilt_onto() {
    let (faulty, e) = automatic_with_a_spare(47);
    faulty[6].set_read_only(true);
    let st = e.status();
    assert_eq!(st.spares_write_refused.len(), 1, "{st:?}");
    assert_eq!(st.spares_write_refused[0].0, "mem6");
    let writes = faulty[6].writes_seen();
    let refused = faulty[6].counters().eperm_writes;
    faulty[4].set_failed(true);
    wait_for("slot 4 to be seen lost", || {
        e.status().devices[4].state == "FAULTED"
    });
    // Several rounds of the monitor (20 ms apart): nothing lands on the spare.
    std::thread::sleep(Duration::from_millis(300));
    let st = e.status();
    assert_eq!(st.devices[4].state, "FAULTED", "{:?}", st.devices[4]);
    assert!(st.spares.is_empty(), "{:?}", st.spares);
    assert_eq!(st.spares_missing.len(), 1, "{st:?}");
    assert!(st.rebuild.is_none());
    // Every write tried on it since (the failure record's superblock) was refused.
    assert_eq!(
        faulty[6].writes_seen() - writes,
        faulty[6].counters().eperm_writes - refused,
        "a write reached the spare"
    );
    for i in 0..ROWS {
        assert_eq!(
            e.get("t", &i.to_be_bytes()).unwrap(),
            Some(value_for(i, 4, 700)),
            "row {i}"
        );
    }
    e.close().unwrap();
}
