//! Replace a failed device and rebuild it: RS(4,2) on memory devices; device 2 dies; a
//! fresh device takes its slot; rebuild reconstructs only live data onto it; afterwards the
//! array reads every row with the dead device gone and no degraded read, scrub finds
//! nothing, and the dead device, if it comes back, is refused. A second device failing
//! during the rebuild is survived. Bit rot is found by scrub and repaired.

#![allow(clippy::big_endian_bytes)] // big-endian keys sort in numeric order

mod common;
use common::*;
use ectable::devices::{open_backend, BackendKind, BlockDevice, FaultyDevice, MemDevice};
use ectable::format::{ChunkHeader, DATA_START_BYTES};
use ectable::{format, Engine, EngineOptions, Error, RebuildOptions};
use std::sync::Arc;

const ROWS: u64 = 600;

fn value(i: u64) -> Vec<u8> {
    value_for(i, 8, 50 + (i as usize * 131) % 3000)
}

fn load(faulty: &[Arc<FaultyDevice>]) {
    let io = io_of(faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Engine::open(io, EngineOptions::default()).unwrap();
    for i in 0..ROWS {
        e.put("t", &i.to_be_bytes(), &value(i)).unwrap();
    }
    e.close().unwrap();
}

fn verify(e: &Engine) {
    for i in 0..ROWS {
        assert_eq!(
            e.get("t", &i.to_be_bytes()).unwrap(),
            Some(value(i)),
            "row {i}"
        );
    }
}

fn engine_over(devs: Vec<Arc<dyn BlockDevice>>, read_only: bool) -> ectable::Result<Engine> {
    let io = open_backend(BackendKind::Psync, devs).unwrap();
    Engine::open(
        io,
        EngineOptions {
            read_only,
            ..Default::default()
        },
    )
}

/// A loaded RS(4,2) array of memory devices whose device 2 is dead, a fresh device `name`
/// beside it, and the seven devices to open (the fresh one last, index 6).
#[allow(clippy::type_complexity)]
fn dead_slot_2_and_a_fresh_device(
    seed: u64,
    name: &str,
) -> (
    Vec<Arc<MemDevice>>,
    Vec<Arc<FaultyDevice>>,
    Arc<FaultyDevice>,
    Vec<Arc<dyn BlockDevice>>,
) {
    let (mems, faulty) = mem_devices(6, 8 << 20, seed);
    load(&faulty);
    faulty[2].set_failed(true);
    let fresh = Arc::new(FaultyDevice::new(
        Arc::new(MemDevice::new(name, 8 << 20)),
        seed + 77,
    ));
    let mut devs: Vec<Arc<dyn BlockDevice>> = faulty
        .iter()
        .map(|f| f.clone() as Arc<dyn BlockDevice>)
        .collect();
    devs.push(fresh.clone());
    (mems, faulty, fresh, devs)
}

#[test]
fn replace_dead_device_rebuild_and_refuse_it_later() {
    let (_mems, faulty, fresh, devs) = dead_slot_2_and_a_fresh_device(21, "fresh");
    {
        let e = engine_over(devs.clone(), false).unwrap();
        assert_eq!(e.lost_slots(), vec![2]);
        let names = |st: &ectable::Status| -> Vec<String> {
            st.unrecognised.iter().map(|(p, _)| p.clone()).collect()
        };
        let dead = faulty[2].name().to_string();
        assert_eq!(names(&e.status()), vec![dead.clone(), "fresh".to_string()]);
        e.replace(2, 6).unwrap();
        // The new member is one now; the dead (unreadable) device is the one left over.
        let st = e.status();
        assert_eq!(st.devices[2].path.as_deref(), Some("fresh"));
        assert_eq!(names(&st), vec![dead], "{st:?}");
        // Foreground writes during the rebuild.
        e.put_sync("t", b"during", b"rebuild").unwrap();
        let mut calls = 0;
        let p = e
            .rebuild(&RebuildOptions::default(), &mut |_| calls += 1)
            .unwrap();
        assert!(p.unrecoverable.is_empty(), "{:?}", p.unrecoverable);
        assert!(p.chunks_rebuilt > 0 && calls >= 2);
        assert!(e.rebuild_in_progress().is_none());
        let last = e
            .status()
            .last_rebuild
            .expect("the finished rebuild is recorded");
        assert_eq!((last.slot, last.resync), (2, false), "{last:?}");
        assert_eq!(
            (last.chunks_rebuilt, last.unrecoverable),
            (p.chunks_rebuilt, 0)
        );
        e.close().unwrap();
    }
    // Without the dead device: everything reads back with no degraded read.
    let mut healthy: Vec<Arc<dyn BlockDevice>> = faulty
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, f)| f.clone() as Arc<dyn BlockDevice>)
        .collect();
    healthy.push(fresh.clone());
    let e = engine_over(healthy.clone(), true).unwrap();
    // Kept across the close in the health blocks (status's scan: line).
    let last = e.status().last_rebuild.expect("kept in the health blocks");
    assert_eq!((last.slot, last.resync), (2, false), "{last:?}");
    verify(&e);
    assert_eq!(e.get("t", b"during").unwrap(), Some(b"rebuild".to_vec()));
    assert_eq!(e.status().degraded_reads, 0, "rebuilt chunks must be whole");
    let scrub = e
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(
        scrub.bad_chunks_per_slot.iter().sum::<u64>(),
        0,
        "{scrub:?}"
    );
    assert_eq!(scrub.parity_mismatches, 0);
    assert!(scrub.progress.unrecoverable.is_empty());
    drop(e);
    // The old device comes back: it is not a member any more.
    faulty[2].set_failed(false);
    let mut with_old = healthy.clone();
    with_old.push(faulty[2].clone());
    match engine_over(with_old, true) {
        Err(Error::ReplacedDevice { slot: 2, .. }) => {}
        Err(e) => panic!("unexpected {e}"),
        Ok(_) => panic!("a replaced device was accepted"),
    }
}

#[test]
fn second_failure_during_rebuild_is_survived() {
    let (_mems, faulty) = mem_devices(6, 8 << 20, 22);
    load(&faulty);
    {
        // More data, so that the rebuild spans several segments and the second failure
        // lands in the middle of it (rebuild reads one segment ahead).
        let e = engine_over(
            faulty
                .iter()
                .map(|f| f.clone() as Arc<dyn BlockDevice>)
                .collect(),
            false,
        )
        .unwrap();
        for i in 0..3000u64 {
            e.put("extra", &i.to_le_bytes(), &value_for(i, 9, 1500))
                .unwrap();
        }
        e.close().unwrap();
    }
    faulty[0].set_failed(true);
    let fresh = Arc::new(FaultyDevice::new(
        Arc::new(MemDevice::new("fresh", 8 << 20)),
        98,
    ));
    let mut devs: Vec<Arc<dyn BlockDevice>> = faulty
        .iter()
        .map(|f| f.clone() as Arc<dyn BlockDevice>)
        .collect();
    devs.push(fresh.clone());
    let e = engine_over(devs, false).unwrap();
    e.replace(0, 6).unwrap();
    let mut segments_seen = 0;
    let p = e
        .rebuild(&RebuildOptions::default(), &mut |p| {
            segments_seen = p.segments_done;
            if p.segments_done == 1 {
                faulty[4].set_failed(true); // a second device dies mid-rebuild
            }
        })
        .unwrap();
    assert!(p.unrecoverable.is_empty(), "{:?}", p.unrecoverable);
    assert!(
        faulty[4].counters().eio_reads > 0,
        "the second failure never fired"
    );
    verify(&e);
}

#[test]
fn scrub_finds_and_repairs_rot() {
    let (mems, faulty) = mem_devices(6, 8 << 20, 23);
    load(&faulty);
    // Rot one block in several chunks on device 3.
    for blk in 0..20u64 {
        let off = (1 << 20) + 4096 + blk * 8192 + 700;
        mems[3].poke(off, &[0xEE, 0xEE]);
    }
    let e = engine_over(
        faulty
            .iter()
            .map(|f| f.clone() as Arc<dyn BlockDevice>)
            .collect(),
        false,
    )
    .unwrap();
    let r = e
        .scrub(true, &RebuildOptions::default(), &mut |_| {})
        .unwrap();
    assert!(r.bad_chunks_per_slot[3] > 0, "{r:?}");
    assert_eq!(r.chunks_repaired, r.bad_chunks_per_slot[3]);
    let again = e
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(
        again.bad_chunks_per_slot.iter().sum::<u64>(),
        0,
        "{again:?}"
    );
    verify(&e);
}

/// A replacement that loses every write silently (it acknowledges them and keeps nothing):
/// the rebuild's read-back finds it, the rebuild fails with the device named and the slot
/// failed, the cursor does not move past what was never verified, and every row still reads
/// (degraded). The writes are checked in groups (not one segment at a time), so this is the
/// test that the group check still happens, also for the last group.
#[test]
fn a_replacement_that_loses_writes_fails_the_rebuild_and_keeps_the_rows() {
    // Every write lost, and one in two: the read-back (the first block of every chunk) finds
    // both.
    for p in [1.0, 0.5] {
        replacement_losing_writes(p);
    }
}

fn replacement_losing_writes(p: f64) {
    let (_mems, _faulty, fresh, devs) = dead_slot_2_and_a_fresh_device(23, "liar");
    let e = engine_over(devs, false).unwrap();
    e.replace(2, 6).unwrap();
    let cursor = e.rebuild_in_progress();
    assert_eq!(cursor.map(|c| c.0), Some(2), "a rebuild of slot 2 is due");
    fresh.set_drop_write_probability(p);
    let dropped = fresh.counters().dropped_writes;
    let err = e
        .rebuild(&RebuildOptions::default(), &mut |_| {})
        .expect_err("a device that keeps nothing cannot be rebuilt onto");
    assert!(err.to_string().contains("read back"), "{err}");
    assert!(fresh.counters().dropped_writes > dropped, "the fault fired");
    let st = e.status();
    assert_ne!(st.devices[2].state, "ONLINE", "{st:?}");
    // What the read-back found counts against the device (the CKSUM column).
    assert!(st.devices[2].checksum_errors >= 1, "{:?}", st.devices[2]);
    // The cursor never moved past unverified segments.
    assert!(
        e.rebuild_in_progress().is_none_or(|c| c == cursor.unwrap()),
        "{:?} -> {:?}",
        cursor,
        e.rebuild_in_progress()
    );
    verify(&e);
}

/// A process that dies (a clean close would write a checkpoint): nothing it writes while it
/// goes down lands.
fn crash(e: Engine, devices: &[Arc<FaultyDevice>]) {
    for f in devices {
        f.set_failed(true);
    }
    drop(e);
    for f in devices {
        f.set_failed(false);
    }
}

/// A stripes-only array (no sync journal) with rows 0..50 under a checkpoint, then a stripe
/// holding only the deletes of rows 0..10 (after the checkpoint's resume point, and no index
/// entry points into it), then rows 100..140; all synced. Also the first delete's LSN.
#[allow(clippy::type_complexity)]
fn deletes_after_the_resume_point(
    seed: u64,
) -> (Vec<Arc<MemDevice>>, Vec<Arc<FaultyDevice>>, Engine, u64) {
    let (mems, faulty) = mem_devices(6, 8 << 20, seed);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts_stripes_only(4, 2)).unwrap();
    let e = Engine::open(io, EngineOptions::default()).unwrap();
    for i in 0..50u64 {
        e.put("t", &i.to_be_bytes(), &value(i)).unwrap();
    }
    e.sync().unwrap();
    e.checkpoint().unwrap();
    let first_delete = e.delete("t", &0u64.to_be_bytes()).unwrap();
    for i in 1..10u64 {
        e.delete("t", &i.to_be_bytes()).unwrap();
    }
    e.sync().unwrap();
    for i in 100..140u64 {
        e.put("t", &i.to_be_bytes(), &value(i)).unwrap();
    }
    e.sync().unwrap();
    (mems, faulty, e, first_delete)
}

/// Where `mem` holds the chunk of the stripe whose first LSN is `first_lsn`.
fn chunk_starting_at(mem: &MemDevice, first_lsn: u64) -> Option<u64> {
    (DATA_START_BYTES..(8 << 20) - 4096)
        .step_by(4096)
        .find(|&at| ChunkHeader::decode(&mem.peek(at, 512)).is_ok_and(|h| h.first_lsn == first_lsn))
}

/// A stripe after the checkpoint's resume point that no index entry points into (here it
/// holds only deletes) is still part of the log recovery replays. When one member's chunk of
/// it was lost (a dropped write) and another member is replaced, the rebuild must write the
/// new member's chunk of it too, reading every member when the k it read first cannot
/// assemble the stripe. Left out, the stripe keeps exactly k chunks, and one device failure
/// more (m faults in all: the dropped chunk and the failure) makes it unreadable: the log
/// ends there and every acknowledged write after it is gone. Oracle (invariant 1): with the
/// dropped chunk and one failed device the array opens and reads every acknowledged row, the
/// deleted ones absent.
#[test]
fn rebuild_writes_the_dead_stripes_recovery_still_replays() {
    let seed = 91;
    let (mems, faulty, e, first_delete) = deletes_after_the_resume_point(seed);
    crash(e, &faulty);
    // Slot 5 dies and a fresh device takes its place.
    faulty[5].set_failed(true);
    let fresh = Arc::new(FaultyDevice::new(
        Arc::new(MemDevice::new("fresh", 8 << 20)),
        seed + 1,
    ));
    let mut devs: Vec<Arc<dyn BlockDevice>> = faulty
        .iter()
        .map(|f| f.clone() as Arc<dyn BlockDevice>)
        .collect();
    devs.push(fresh.clone());
    let e = engine_over(devs.clone(), false).unwrap();
    // Slot 0's chunk of the stripe of deletes is lost (zeroed, as a dropped write leaves it).
    let lost = chunk_starting_at(&mems[0], first_delete)
        .expect("slot 0 holds a chunk of the stripe of deletes");
    mems[0].poke(lost, &[0u8; 4096]);
    e.replace(5, 6).unwrap();
    let p = e.rebuild(&RebuildOptions::default(), &mut |_| {}).unwrap();
    assert!(p.unrecoverable.is_empty(), "{:?}", p.unrecoverable);
    // The process dies before a later checkpoint covers the stripe.
    let mut all = faulty.clone();
    all.push(fresh.clone());
    crash(e, &all);
    faulty[5].set_failed(true);
    // One more device fails.
    faulty[1].set_failed(true);
    let e = engine_over(devs, false).expect("open with one failed device and one bad chunk");
    for i in (10..50u64).chain(100..140) {
        assert_eq!(
            e.get("t", &i.to_be_bytes()).unwrap(),
            Some(value(i)),
            "row {i}"
        );
    }
    for i in 0..10u64 {
        assert_eq!(
            e.get("t", &i.to_be_bytes()).unwrap(),
            None,
            "deleted row {i}"
        );
    }
}

/// The same stripe of deletes after the resume point, with more than m of its chunks lost:
/// no index entry points into it, but the next open needs it (it fails with data lost). A
/// scrub must say so (an unrecoverable stripe) instead of reporting a clean array. Oracle:
/// the scrub names the stripe as unrecoverable, and the open after a crash fails with
/// `DataLost` (the scrub's warning was true).
#[test]
fn scrub_reports_an_unreadable_stripe_recovery_needs_though_no_entry_points_into_it() {
    let seed = 92;
    let (mems, faulty, e, first_delete) = deletes_after_the_resume_point(seed);
    // Three of the six chunks of the stripe of deletes are lost.
    let mut zeroed = 0;
    for m in &mems[..3] {
        if let Some(at) = chunk_starting_at(m, first_delete) {
            m.poke(at, &[0u8; 4096]);
            zeroed += 1;
        }
    }
    assert_eq!(
        zeroed, 3,
        "the stripe of deletes has a chunk on each member"
    );
    let r = e
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(r.progress.unrecoverable.len(), 1, "{r:?}");
    assert!(
        r.progress.unrecoverable[0].starts_with("log segment"),
        "{:?}",
        r.progress.unrecoverable
    );
    crash(e, &faulty);
    let devs: Vec<Arc<dyn BlockDevice>> = faulty
        .iter()
        .map(|f| f.clone() as Arc<dyn BlockDevice>)
        .collect();
    match engine_over(devs, false) {
        Err(Error::DataLost { .. }) => {}
        Err(e) => panic!("expected DataLost, got {e}"),
        Ok(_) => panic!("opened with the log broken"),
    }
}
