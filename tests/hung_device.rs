//! A member that stops answering (docs/design.md, "Devices that stop answering"; fault
//! model: "a device that hangs"): its operations never complete until the hang is lifted
//! (`FaultyDevice::set_hung`). Without the I/O deadline every stripe write waits for it for
//! ever, and so does every read sent to it.
//!
//! Oracle: with one member hung, synced puts and reads of every acknowledged row finish
//! within a bound; the member is FAULTED naming the deadline; `online` refuses it while an
//! operation given up on it is still out, and takes it back once it answered them; after the
//! resync a scrub finds nothing and every row reads with any two members lost. The same for
//! a member that hangs while only reads reach it, and a close with a member still hung.

#![allow(clippy::big_endian_bytes)] // big-endian keys sort in numeric order

mod common;
use common::*;
use ectable::{format, Engine, EngineOptions, Error, HealthPolicy, RebuildOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_millis(400);

fn opts() -> EngineOptions {
    EngineOptions {
        health: HealthPolicy {
            io_timeout: Some(DEADLINE),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Runs `f` on its own thread; fails the test when it takes longer than `limit` (a hang).
fn within<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            h.join().unwrap();
            v
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("sent before ending"),
        },
        Err(_) => panic!("{what}: still waiting after {limit:?}: hung on the device"),
    }
}

fn key(i: u64) -> Vec<u8> {
    i.to_be_bytes().to_vec()
}

fn put_synced(e: &Engine, from: u64, count: u64, rows: &mut Rows) {
    for i in from..from + count {
        let v = value_for(i, 5, 3000);
        e.put_sync("t", &key(i), &v)
            .unwrap_or_else(|err| panic!("put {i}: {err}"));
        rows.insert(key(i), v);
    }
}

#[test]
fn a_member_that_stops_answering_is_failed_at_the_deadline_and_taken_back_once_it_answers() {
    let (_mems, faulty) = mem_devices(6, 16 << 20, 71);
    format(io_of(&faulty).as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Arc::new(Engine::open(io_of(&faulty), opts()).unwrap());
    let mut rows = Rows::new();
    put_synced(&e, 0, 100, &mut rows);

    // Member 2 stops answering while writes go on.
    faulty[2].set_hung(true);
    let (e2, mut rows2) = (e.clone(), rows.clone());
    let t = Instant::now();
    rows = within(
        "synced puts with a member hung",
        Duration::from_secs(20),
        move || {
            put_synced(&e2, 100, 100, &mut rows2);
            rows2
        },
    );
    let took = t.elapsed();
    assert!(
        faulty[2].held_ops() > 0,
        "the hang held operations: the fault fired"
    );
    // One deadline for the write that found it, not one per put.
    assert!(took < DEADLINE * 10, "100 synced puts took {took:?}");
    let st = e.status();
    let d = &st.devices[2];
    assert_eq!(d.state.as_str(), "FAULTED", "{d:?}");
    assert!(d.stuck_ops > 0, "{d:?}");
    assert!(
        d.note.contains("given up at the I/O deadline"),
        "{}",
        d.note
    );
    assert!(st
        .devices
        .iter()
        .filter(|d| d.slot != 2)
        .all(|d| d.state.as_str() == "ONLINE"));
    let e2 = e.clone();
    let r2 = rows.clone();
    within(
        "reads with a member hung",
        Duration::from_secs(20),
        move || check_rows(&e2, "t", &r2, "member 2 hung"),
    );

    // Back while operations given up on it are still out: refused, nothing changes.
    let dev2 = faulty[2].clone() as Arc<dyn ectable::devices::BlockDevice>;
    let e2 = e.clone();
    let refused = within(
        "online of a hung member",
        Duration::from_secs(20),
        move || e2.online(dev2),
    );
    match refused {
        Err(Error::DeviceStillFails { why, .. }) => {
            assert!(why.contains("still out"), "{why}")
        }
        other => panic!("online of a member still hung: {other:?}"),
    }
    assert_eq!(e.status().devices[2].state.as_str(), "FAULTED");

    // It answers again: what it held completes (and is dropped), then it comes back.
    faulty[2].set_hung(false);
    wait_until(
        "the given-up operations to complete",
        Duration::from_secs(30),
        || e.status().devices[2].stuck_ops == 0,
    );
    assert!(faulty[2].counters().hung_ops > 0);
    let back = e
        .online(faulty[2].clone() as Arc<dyn ectable::devices::BlockDevice>)
        .expect("online once it answers");
    assert_eq!(back.was, "FAULTED");
    e.rebuild(&RebuildOptions::default(), &mut |_| {})
        .expect("resync");
    put_synced(&e, 200, 20, &mut rows);
    let report = e
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .expect("scrub");
    assert_eq!(
        report.bad_chunks_per_slot.iter().sum::<u64>(),
        0,
        "{report:?}"
    );
    assert!(e
        .status()
        .devices
        .iter()
        .all(|d| d.state.as_str() == "ONLINE"));

    // Member 4 hangs while only reads reach it: each read it holds is given up, the row is
    // rebuilt from the others, and the member is failed.
    faulty[4].set_hung(true);
    let (e2, r2) = (e.clone(), rows.clone());
    within(
        "reads with a member hung",
        Duration::from_secs(20),
        move || check_rows(&e2, "t", &r2, "member 4 hung under reads"),
    );
    assert!(faulty[4].held_ops() > 0, "reads reached the hung member");
    assert_eq!(e.status().devices[4].state.as_str(), "FAULTED");

    // A close with the member still hung does not wait for it.
    let e2 = e.clone();
    within(
        "close with a member hung",
        Duration::from_secs(20),
        move || e2.close().expect("close"),
    );
    drop(e);
    faulty[4].set_hung(false);
    wait_until(
        "member 4's held operations to end",
        Duration::from_secs(30),
        || faulty[4].held_ops() == 0,
    );

    // Every acknowledged row is there after a reopen, also with any two members lost.
    let e = Engine::open(io_of(&faulty), opts()).unwrap();
    check_rows(&e, "t", &rows, "reopened");
    e.rebuild(&RebuildOptions::default(), &mut |_| {})
        .expect("resync member 4");
    e.close().unwrap();
    check_every_pair_lost(&faulty, "t", &rows, "after both hangs");
}

/// Six memory members (RS(4,2), the deadline of `opts`) holding `rows` rows of 3,000 bytes,
/// synced.
fn array_of_rows(seed: u64, rows: u64) -> (Vec<Arc<ectable::devices::FaultyDevice>>, Arc<Engine>) {
    let (_mems, faulty) = mem_devices(6, 16 << 20, seed);
    format(io_of(&faulty).as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Arc::new(Engine::open(io_of(&faulty), opts()).unwrap());
    for i in 0..rows {
        e.put("t", &key(i), &value_for(i, seed, 3000)).unwrap();
    }
    e.sync().unwrap();
    (faulty, e)
}

/// Scrub with a member that stops answering as it starts: the member is failed at the first
/// deadline, and what follows leaves it out. Each given-up read is not tried again piece by
/// piece (each piece would wait the deadline again: a scrub beside a hung member ran at 2.5
/// MiB/s), and the chunks it holds are "not checked", not bad chunks: nothing is wrong with
/// the data the scrub could see.
#[test]
fn a_scrub_with_a_member_that_stops_answering_leaves_it_out_and_finds_nothing_bad() {
    let (faulty, e) = array_of_rows(73, 3000);
    let segments = e.status().devices[3].used_segments;
    assert!(segments >= 6, "only {segments} segments to scrub");

    // Hung once the superblocks are checked, as the segment reads start (the first
    // progress report).
    let (e2, hang) = (e.clone(), faulty[3].clone());
    let r = within(
        "scrub with member 3 hung",
        Duration::from_secs(60),
        move || {
            e2.scrub(false, &RebuildOptions::default(), &mut |_| {
                hang.set_hung(true)
            })
            .expect("scrub")
        },
    );
    // Still held by the member (none of them has ended).
    let sent = faulty[3].held_ops();
    assert!(sent > 0, "the scrub sent nothing to the hung member");
    // The segments read ahead before the member was failed, and no piece of them again.
    assert!(
        sent <= 8,
        "{sent} operations sent to the hung member: it was read again piece by piece"
    );
    assert_eq!(e.status().devices[3].state, "FAULTED");
    assert_eq!(r.bad_chunks_per_slot, vec![0; 6], "{r:?}");
    assert!(r.unchecked_chunks_per_slot[3] > 0, "{r:?}");
    assert_eq!(
        r.unchecked_chunks_per_slot.iter().sum::<u64>(),
        r.unchecked_chunks_per_slot[3]
    );
    assert!(r.progress.unrecoverable.is_empty(), "{r:?}");
    assert_eq!(r.parity_mismatches, 0);
    faulty[3].set_hung(false);
    e.close().unwrap();

    // The same array with that member left out altogether: its chunks are not checked, and
    // nothing is bad.
    let io = io_of(
        &faulty[..3]
            .iter()
            .chain(&faulty[4..])
            .cloned()
            .collect::<Vec<_>>(),
    );
    let e = Engine::open(io, opts()).unwrap();
    let r = e
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .expect("scrub without member 3");
    assert_eq!(r.bad_chunks_per_slot, vec![0; 6], "{r:?}");
    assert!(r.unchecked_chunks_per_slot[3] > 0, "{r:?}");
}

/// A member that stopped answering before the scrub: its superblock read is the one that
/// waits the deadline and fails it; neither its superblock copies nor its chunks are then
/// findings (the member is FAULTED in `status`, which is where that is said).
#[test]
fn a_scrub_after_a_member_stopped_answering_reports_no_bad_superblocks() {
    let (faulty, e) = array_of_rows(74, 500);
    faulty[3].set_hung(true);
    let e2 = e.clone();
    let r = within(
        "scrub with member 3 hung",
        Duration::from_secs(60),
        move || {
            e2.scrub(false, &RebuildOptions::default(), &mut |_| {})
                .expect("scrub")
        },
    );
    assert_eq!(e.status().devices[3].state, "FAULTED");
    assert_eq!(r.bad_superblocks_per_slot, vec![0; 6], "{r:?}");
    assert!(r.bad_superblocks.is_empty(), "{r:?}");
    assert_eq!(r.bad_chunks_per_slot, vec![0; 6], "{r:?}");
    assert!(r.unchecked_chunks_per_slot[3] > 0, "{r:?}");
    faulty[3].set_hung(false);
}

/// A device handed to the running engine that does not answer (a spare being added, a
/// replacement, a member given back with `online`): its superblock read waits the deadline,
/// not for ever, and the call fails naming the device.
#[test]
fn a_device_handed_to_the_engine_that_does_not_answer_is_refused_at_the_deadline() {
    let (_mems, faulty) = mem_devices(8, 16 << 20, 75);
    format(io_of(&faulty[..6]).as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Arc::new(Engine::open(io_of(&faulty[..6]), opts()).unwrap());
    e.put_sync("t", &key(1), b"one").unwrap();
    faulty[6].set_hung(true);
    let (e2, spare) = (e.clone(), faulty[6].clone());
    let err = within(
        "add_spare_device of a hung device",
        Duration::from_secs(20),
        move || {
            e2.add_spare_device(spare)
                .expect_err("a device that does not answer is no spare")
        },
    );
    assert!(
        err.to_string().contains("mem6") && err.to_string().contains("not done after"),
        "{err}"
    );
    faulty[6].set_hung(false);
    // The member given back with `online` while it does not answer: the same.
    faulty[7].set_hung(true);
    let (e2, back) = (e.clone(), faulty[7].clone());
    let err = within(
        "online of a hung device",
        Duration::from_secs(20),
        move || {
            e2.online(back)
                .expect_err("a device that does not answer is not taken back")
        },
    );
    assert!(err.to_string().contains("mem7"), "{err}");
    faulty[7].set_hung(false);
    assert_eq!(e.get("t", &key(1)).unwrap().as_deref(), Some(&b"one"[..]));
}
