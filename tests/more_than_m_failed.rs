//! More than m members fail at once, then come back: the array must open again with the
//! data it acknowledged.
//!
//! A file-backed member whose file system fills up fails every write that needs a new block
//! (ENOSPC) while its reads still work, and every member fills at the same rate, so they
//! tend to fail together. When more than m fail at once the array cannot take writes: the
//! writer stops and the failed write is not acknowledged. What it must not do is write the
//! survivors' superblocks with a new epoch that calls the others failed: after the operator
//! makes room, those others would be stale, `status` would call the array UNAVAILABLE
//! although every member holds every acknowledged write, and each of them would need a
//! resync of everything written since its floor (docs/fault-model.md, "More than m at once").
//!
//! Oracle: after the devices come back, a writable open has every member that never failed
//! in service and at least k in all, every acknowledged row reads back, new synced writes
//! are acknowledged, and after the resync of any member whose failure was recorded while
//! the array still took writes, every pair of members can be lost with every row still
//! readable (no member was readmitted holding chunks it missed).

mod common;
use common::*;
use ectable::devices::{FaultyDevice, IoBackend};
use ectable::{format, Engine, EngineOptions, RebuildOptions};
use std::sync::Arc;

const N: usize = 6;
const K: usize = 4;
const M: usize = 2;
const SIZE: u64 = 16 << 20;

/// How the failing members fail.
#[derive(Clone, Copy, Debug)]
enum Failure {
    /// Every write fails, reads work.
    WritesOnly,
    /// Writes past the superblocks fail, reads work: a file system that filled up under
    /// the member (the superblocks' blocks were written at format and are still there, so
    /// rewriting them works; new blocks of the log cannot be had).
    Full,
    /// Every read and write fails (unplugged).
    Everything,
}

fn fail(d: &FaultyDevice, how: Failure) {
    match how {
        Failure::WritesOnly => d.add_write_error_range(0..SIZE),
        Failure::Full => d.add_write_error_range(8192..SIZE),
        Failure::Everything => d.set_failed(true),
    }
}

fn give_back(d: &FaultyDevice) {
    d.clear_error_ranges();
    d.set_failed(false);
}

/// I/Os the failing members refused: the fault fired. Writes, and for an unplugged member
/// reads and flushes too: the engine may find the members gone by their failed flushes or
/// by reading a stripe back (its write stops with "data lost ... too few chunks of the
/// stripe were flushed" then) before any write reaches them.
fn failed_ios(faulty: &[Arc<FaultyDevice>], slots: &[usize]) -> u64 {
    slots
        .iter()
        .map(|&s| {
            let c = faulty[s].counters();
            c.eio_writes + c.eio_reads + c.failed_flushes
        })
        .sum()
}

fn put_rows(e: &Engine, from: u64, count: u64, rows: &mut Rows) {
    for i in from..from + count {
        let key = format!("row{i:06}").into_bytes();
        let value = value_for(i, 31, 200 + (i as usize * 97) % 3000);
        e.put_sync("t", &key, &value).expect("put_sync, healthy");
        rows.insert(key, value);
    }
}

fn subset(faulty: &[Arc<FaultyDevice>], keep: &[usize]) -> Arc<dyn IoBackend> {
    io_subset(faulty, keep)
}

/// Writes until a write fails; returns the rows acknowledged.
fn write_until_it_fails(e: &Engine, rows: &mut Rows) -> u64 {
    for i in 0..200u64 {
        let key = format!("late{i:06}").into_bytes();
        let value = value_for(1000 + i, 31, 4000);
        match e.put_sync("t", &key, &value) {
            Ok(_) => {
                rows.insert(key, value);
            }
            Err(err) => {
                eprintln!("write {i} failed as it should: {err}");
                assert!(
                    e.status().writes_stopped.is_some(),
                    "status does not say that writes stopped"
                );
                return i;
            }
        }
    }
    panic!("200 synced writes acknowledged with more than m members failing");
}

fn setup() -> (Vec<Arc<FaultyDevice>>, Engine, Rows) {
    let (_mems, faulty) = mem_devices(N, SIZE, 7);
    format(io_of(&faulty).as_ref(), &fmt_opts(K, M)).expect("format");
    let e = Engine::open(io_of(&faulty), EngineOptions::default()).expect("open");
    let mut rows = Rows::new();
    put_rows(&e, 0, 300, &mut rows);
    (faulty, e, rows)
}

/// The devices are back: a writable open must have every member that never failed in
/// service and at least k in all (the array is available), every acknowledged row, new
/// synced writes acknowledged. A member whose failure was recorded while the array still
/// took writes missed them: it is stale until the resync, which must then bring every
/// member back; after that a scrub finds nothing and every pair of members can be lost.
/// Returns how many members were stale at the reopen.
fn reopen_and_check(
    faulty: &[Arc<FaultyDevice>],
    rows: &mut Rows,
    failed: &[usize],
    what: &str,
) -> usize {
    for d in faulty {
        give_back(d);
    }
    let e = Engine::open(io_of(faulty), EngineOptions::default())
        .unwrap_or_else(|err| panic!("{what}: reopen with every member back: {err}"));
    let st = e.status();
    let out: Vec<usize> = st
        .devices
        .iter()
        .filter(|d| !d.in_service)
        .map(|d| d.slot)
        .collect();
    let at_reopen: Vec<String> = st
        .devices
        .iter()
        .map(|d| {
            format!(
                "slot {} {} c{}",
                d.slot,
                d.state.as_str(),
                d.checksum_errors
            )
        })
        .collect();
    for d in &st.devices {
        if !d.in_service {
            assert!(
                failed.contains(&d.slot),
                "{what}: slot {} never failed, yet it is {} ({})",
                d.slot,
                d.state.as_str(),
                d.note
            );
        }
    }
    assert!(
        N - out.len() >= K,
        "{what}: only {} members in service after every member came back: {out:?} are not",
        N - out.len()
    );
    // Chunks a member missed without its failure being recorded: the stripe of the last
    // journaled puts, written in the background while the test fails the members, can reach
    // k of them with two of the failing ones missing it; the superblock write that would
    // record those two then finds the third failed too and is put back. The reopen finds
    // the stripe short of those chunks, counts them as checksum errors against the two
    // (ONLINE, not stale) and rewrites them at its first write. Such a member is not in
    // service for the rest of the session (it showed errors), though it holds every chunk:
    // the scrub and the every-pair check below prove that.
    let repaired_at_open: Vec<usize> = st
        .devices
        .iter()
        .filter(|d| {
            d.state.as_str() == "ONLINE"
                && d.checksum_errors > 0
                && d.read_errors == 0
                && d.write_errors == 0
        })
        .map(|d| d.slot)
        .collect();
    check_rows(&e, "t", rows, what);
    put_rows(&e, 5000, 50, rows);
    if !out.is_empty() {
        e.rebuild(&RebuildOptions::default(), &mut |_| {})
            .unwrap_or_else(|err| panic!("{what}: resync of {out:?}: {err}"));
    }
    let st = e.status();
    assert!(
        st.devices
            .iter()
            .all(|d| d.in_service || repaired_at_open.contains(&d.slot)),
        "{what}: not every member in service after the resync (at the reopen: {at_reopen:?}): {:?}",
        st.devices
            .iter()
            .map(|d| format!(
                "slot {} {} r{} w{} c{} {}",
                d.slot,
                d.state.as_str(),
                d.read_errors,
                d.write_errors,
                d.checksum_errors,
                d.note
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        st.redundancy_left,
        M - repaired_at_open.len().min(M),
        "{what}: redundancy after the resync (members whose missing chunks the reopen \
         found and rewrote: {repaired_at_open:?})"
    );
    let scrub = e
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .expect("scrub");
    assert_eq!(
        scrub.bad_chunks_per_slot.iter().sum::<u64>(),
        0,
        "{what}: scrub found bad chunks: {:?}",
        scrub.bad_chunks_per_slot
    );
    drop(e);
    check_every_pair_lost(faulty, "t", rows, what);
    out.len()
}

/// m + 1 members fail together, then all come back.
#[test]
fn members_that_failed_together_beyond_m_come_back() {
    for how in [Failure::WritesOnly, Failure::Full, Failure::Everything] {
        let what = format!("{how:?}");
        let (faulty, e, mut rows) = setup();
        let failing = [1usize, 3, 5];
        for &s in &failing {
            fail(&faulty[s], how);
        }
        let acked = write_until_it_fails(&e, &mut rows);
        assert!(failed_ios(&faulty, &failing) > 0, "{what}: no write failed");
        drop(e);
        let stale = reopen_and_check(&faulty, &mut rows, &failing, &what);
        eprintln!(
            "{what}: {acked} writes acknowledged after the failure began; {stale} member(s) stale at the reopen"
        );
    }
}

/// One member fails first (the array goes on with five), then two more at once. The first
/// one missed writes the others took: it must be stale when they all come back.
#[test]
fn a_member_that_failed_first_is_stale_when_two_more_fail_later() {
    for how in [Failure::WritesOnly, Failure::Full, Failure::Everything] {
        let what = format!("{how:?}");
        let (faulty, e, mut rows) = setup();
        fail(&faulty[2], how);
        put_rows(&e, 300, 100, &mut rows);
        assert!(
            faulty[2].counters().eio_writes > 0,
            "{what}: slot 2 did not fail"
        );
        assert!(
            !e.status().devices[2].in_service,
            "{what}: slot 2 still in service"
        );
        fail(&faulty[0], how);
        fail(&faulty[4], how);
        write_until_it_fails(&e, &mut rows);
        drop(e);
        // Slot 2 first, while writes went on: stale at the reopen (checked before the resync).
        {
            for d in &faulty {
                give_back(d);
            }
            let e = Engine::open(
                io_of(&faulty),
                EngineOptions {
                    read_only: true,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|err| panic!("{what}: read-only reopen: {err}"));
            let d = &e.status().devices[2];
            assert!(
                !d.in_service,
                "{what}: slot 2 missed 100 writes, yet it is {}",
                d.state.as_str()
            );
        }
        let stale = reopen_and_check(&faulty, &mut rows, &[0, 2, 4], &what);
        eprintln!("{what}: {stale} member(s) stale at the reopen");
    }
}

/// A replacement handed to the engine while three other members fail under the superblock
/// write that makes it a member: the write is undone, and the new device, which held none
/// of this array's superblocks, has both copies cleared. Left with the new epoch, it would
/// be the only device at the newest epoch and every other member would read as stale.
#[test]
fn a_replacement_whose_superblock_write_found_too_many_failed_is_not_left_a_member() {
    use ectable::devices::{BlockDevice, MemDevice};
    let (faulty, e, mut rows) = setup();
    fail(&faulty[0], Failure::Everything);
    put_rows(&e, 300, 50, &mut rows);
    assert!(!e.status().devices[0].in_service, "slot 0 did not fail");
    for s in [1, 2, 3] {
        fail(&faulty[s], Failure::WritesOnly);
    }
    let mem = Arc::new(MemDevice::new("new", SIZE));
    let new: Arc<dyn BlockDevice> = Arc::new(FaultyDevice::new(mem.clone(), 99));
    let r = e.replace_with_device(0, new);
    assert!(
        r.is_err(),
        "a replace whose superblock write reached 3 of 6 members succeeded"
    );
    eprintln!("replace refused: {}", r.unwrap_err());
    assert!(failed_ios(&faulty, &[1, 2, 3]) > 0, "no write failed");
    let mut head = vec![0u8; 8192];
    mem.read_at(&mut head, 0).unwrap();
    assert!(
        head.iter().all(|&b| b == 0),
        "the new device keeps a superblock of a write that was undone"
    );
    drop(e);
    // The old device of slot 0 stays dead; the others come back.
    for d in &faulty[1..] {
        give_back(d);
    }
    let keep: Vec<usize> = (1..N).collect();
    let e = Engine::open(subset(&faulty, &keep), EngineOptions::default())
        .unwrap_or_else(|err| panic!("reopen without slot 0: {err}"));
    let st = e.status();
    for d in &st.devices[1..] {
        assert!(
            d.in_service,
            "slot {} is {} ({})",
            d.slot,
            d.state.as_str(),
            d.note
        );
    }
    check_rows(&e, "t", &rows, "after the undone replace");
}
