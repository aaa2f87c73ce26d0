//! Segment headers spoiled one member at a time: a stray write over the first block of a
//! device segment (a misdirected chunk lands there) destroys that member's copy of the
//! segment header. An open finds a segment by any one valid copy of its w headers, so one
//! spoiled copy costs nothing at once; but if scrub does not mend them, spoiled copies pile
//! up over the months, member by member, until a segment has none left and vanishes at an
//! open with every row in it.
//!
//! Oracle (docs/fault-model.md, "misdirected write": both places repaired): a scrub names
//! the bad headers per slot and writes nothing without repair; with repair it rewrites them,
//! and after every member's headers were spoiled in turn (each followed by `scrub --repair`)
//! the next open still finds every segment and every row.

mod common;
use common::*;
use ectable::devices::{open_backend, BackendKind, BlockDevice, FaultyDevice, MemDevice};
use ectable::format::{SegmentHeader, DATA_START_BYTES};
use ectable::{format, Engine, EngineOptions, RebuildOptions};
use std::sync::Arc;

const ROWS: u64 = 600;
const DEV_BYTES: u64 = 8 << 20;

fn value(i: u64) -> Vec<u8> {
    value_for(i, 43, 200 + (i as usize * 53) % 5000)
}

fn open(faulty: &[Arc<FaultyDevice>]) -> Engine {
    let devs: Vec<Arc<dyn BlockDevice>> = faulty
        .iter()
        .map(|f| f.clone() as Arc<dyn BlockDevice>)
        .collect();
    let io = open_backend(BackendKind::Psync, devs).unwrap();
    Engine::open(io, EngineOptions::default()).unwrap()
}

fn verify(e: &Engine) {
    for i in 0..ROWS {
        assert_eq!(
            e.get("t", &i.to_le_bytes()).unwrap(),
            Some(value(i)),
            "row {i}"
        );
    }
}

/// Overwrites every valid segment header on `mem` with stray bytes; how many it spoiled.
fn spoil_headers(mem: &MemDevice, segment_bytes: u64) -> usize {
    let mut spoiled = 0;
    let mut at = DATA_START_BYTES;
    while at + segment_bytes <= DEV_BYTES {
        if SegmentHeader::decode(&mem.peek(at, 4096)).is_ok() {
            mem.poke(at, &[0xa5; 4096]);
            spoiled += 1;
        }
        at += segment_bytes;
    }
    spoiled
}

#[test]
fn scrub_mends_segment_headers_so_spoiled_copies_never_pile_up() {
    let (mems, faulty) = mem_devices(6, DEV_BYTES, 11);
    format(io_of(&faulty).as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = open(&faulty);
    for i in 0..ROWS {
        e.put("t", &i.to_le_bytes(), &value(i)).unwrap();
    }
    e.sync().unwrap();
    let segment_bytes = e.status().segment_size_bytes as u64;
    let segments = e.status().total_segments - e.status().free_segments;
    assert!(segments >= 2, "{segments} segments in use");

    // The plain scrub names them and writes nothing.
    let spoiled = spoil_headers(&mems[0], segment_bytes);
    assert!(spoiled >= 2, "only {spoiled} headers on member 0");
    let check = e
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .unwrap();
    assert!(check.bad_segment_headers_per_slot[0] >= 2, "{check:?}");
    assert_eq!(
        spoil_headers(&mems[0], segment_bytes),
        0,
        "a scrub without repair wrote"
    );

    for (slot, mem) in mems.iter().enumerate() {
        spoil_headers(mem, segment_bytes);
        let fix = e
            .scrub(true, &RebuildOptions::default(), &mut |_| {})
            .unwrap();
        assert!(fix.bad_segment_headers_per_slot[slot] >= 2, "{fix:?}");
        assert_eq!(
            fix.segment_headers_repaired,
            fix.bad_segment_headers_per_slot.iter().sum::<u64>(),
            "{fix:?}"
        );
        assert!(fix.progress.unrecoverable.is_empty(), "{fix:?}");
    }
    let clean = e
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(
        clean.bad_segment_headers_per_slot.iter().sum::<u64>(),
        0,
        "{clean:?}"
    );
    e.close().unwrap();

    let e = open(&faulty);
    verify(&e);
}
