//! Regression test: a rebuild must rebuild every stripe of the index checkpoint, also one
//! whose chunk is bad on a member the rebuild reads first (found by the seeded simulator,
//! ecsim).
//!
//! What went wrong. A rebuild reads k members of each segment and rebuilds the new device's
//! chunk of each stripe from them; a stripe those k cannot assemble is read again from every
//! member, but only when the stripe holds live records the index points at. Checkpoint
//! stripes hold no records, so a checkpoint stripe with a bad chunk on one of the first k
//! members was skipped: the new device never got its chunk, and one more device lost later
//! made the checkpoint unreadable. Once the log it covers has been cleaned, the array then
//! cannot open (acknowledged writes lost with two devices gone at m = 2).
//!
//! The fix. A checkpoint segment is live as a whole: a stripe of it that the k members read
//! cannot assemble sends the rebuild back to read the segment from every member.
//!
//! The test. Six memory devices, RS(4,2). Rows written and a checkpoint taken; garbage
//! written over the first checkpoint chunk of every checkpoint segment on device 0; device 1
//! fails and is replaced by a new device, and rebuilt; the power goes off before the engine
//! closes (a close would write a new checkpoint and hide the damaged one). A read-only scrub
//! must then find no bad chunk on the new device.

#![allow(clippy::big_endian_bytes)] // big-endian keys sort in numeric order

mod common;
use common::power_switch::{no_cleaner, CutDevice, Power};
use common::*;
use ectable::devices::{open_backend, BackendKind, BlockDevice, FaultyDevice, MemDevice};
use ectable::format::segment_header::{SegmentHeader, SegmentKind};
use ectable::format::DATA_START_BYTES;
use ectable::{format, Engine, EngineOptions, RebuildOptions};
use std::sync::Arc;

const DEV_BYTES: u64 = 8 << 20;

fn engine(devs: &[Arc<FaultyDevice>], read_only: bool) -> Engine {
    let list: Vec<Arc<dyn BlockDevice>> = devs
        .iter()
        .map(|f| f.clone() as Arc<dyn BlockDevice>)
        .collect();
    let opts = EngineOptions {
        read_only,
        ..no_cleaner()
    };
    Engine::open(open_backend(BackendKind::Psync, list).expect("psync"), opts).expect("open")
}

/// Formats RS(4,2), writes 400 rows, takes a checkpoint and closes; returns the segment size.
fn rows_and_a_checkpoint(faulty: &[Arc<FaultyDevice>]) -> u64 {
    format(io_of(faulty).as_ref(), &fmt_opts(4, 2)).expect("format");
    let e = engine(faulty, false);
    for i in 0..400u64 {
        e.put("t", &i.to_be_bytes(), &value_for(i, 9, 900))
            .expect("put");
    }
    e.sync().expect("sync");
    e.checkpoint().expect("checkpoint");
    e.close().expect("close");
    fmt_opts(4, 2).segment_size_bytes as u64
}

#[test]
fn rebuild_rebuilds_checkpoint_stripes_a_first_member_cannot_give() {
    let (mems, faulty) = mem_devices(6, DEV_BYTES, 0xc4e7);
    let segment_bytes = rows_and_a_checkpoint(&faulty);
    // Garbage over the first chunk of every checkpoint segment on device 0.
    let mut damaged = 0;
    let mut at = DATA_START_BYTES;
    while at + segment_bytes <= DEV_BYTES {
        let header = mems[0].peek(at, 4096);
        if SegmentHeader::decode(&header).is_ok_and(|h| h.kind == SegmentKind::Checkpoint) {
            mems[0].poke(at + 4096, &[0x5a; 4096]);
            damaged += 1;
        }
        at += segment_bytes;
    }
    assert!(damaged > 0, "no checkpoint segment found on device 0");
    // Device 1 dies; a new device replaces it and is rebuilt.
    faulty[1].set_failed(true);
    let fresh = Arc::new(FaultyDevice::new(
        Arc::new(MemDevice::new("fresh", DEV_BYTES)),
        7,
    ));
    let mut with_fresh = faulty.clone();
    with_fresh.push(fresh.clone());
    {
        // Behind a power switch: the power goes off after the rebuild, so that no close
        // writes a new checkpoint over the damaged one.
        let power = Power::new();
        let list: Vec<Arc<dyn BlockDevice>> = with_fresh
            .iter()
            .map(|f| {
                Arc::new(CutDevice {
                    inner: f.clone() as Arc<dyn BlockDevice>,
                    power: power.clone(),
                }) as Arc<dyn BlockDevice>
            })
            .collect();
        let e = Engine::open(
            open_backend(BackendKind::Psync, list).expect("psync"),
            no_cleaner(),
        )
        .expect("open");
        e.replace(1, 6).expect("replace");
        let p = e
            .rebuild(&RebuildOptions::default(), &mut |_| {})
            .expect("rebuild");
        assert!(p.unrecoverable.is_empty(), "{:?}", p.unrecoverable);
        power.cut();
        drop(e);
    }
    // Without the dead device: the new device holds every checkpoint chunk.
    let mut now: Vec<Arc<FaultyDevice>> = faulty.clone();
    now[1] = fresh;
    let e = engine(&now, true);
    let r = e
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .expect("scrub");
    assert_eq!(
        r.bad_chunks_per_slot[1], 0,
        "the rebuilt device lacks chunks: bad chunks per slot {:?}",
        r.bad_chunks_per_slot
    );
    assert!(
        r.bad_chunks_per_slot[0] >= 1,
        "the damage on device 0 is still there to see: {:?}",
        r.bad_chunks_per_slot
    );
}

/// A checkpoint stripe past repair (garbage over its chunks on m + 1 devices) is reported by
/// scrub as unrecoverable: it holds no record the index points at, and scrub used to report
/// only stripes that do, so a checkpoint the next open could not read went unmentioned.
#[test]
fn scrub_reports_a_checkpoint_stripe_past_repair() {
    let (mems, faulty) = mem_devices(6, DEV_BYTES, 0xc4e8);
    let segment_bytes = rows_and_a_checkpoint(&faulty);
    let e = engine(&faulty, true);
    // Garbage over the first chunk of every checkpoint segment on three devices (the
    // engine is open already: its index is in memory).
    let mut at = DATA_START_BYTES;
    let mut found = 0;
    while at + segment_bytes <= DEV_BYTES {
        let header = mems[0].peek(at, 4096);
        if SegmentHeader::decode(&header).is_ok_and(|h| h.kind == SegmentKind::Checkpoint) {
            for m in &mems[..3] {
                m.poke(at + 4096, &[0x5a; 4096]);
            }
            found += 1;
        }
        at += segment_bytes;
    }
    assert!(found > 0, "no checkpoint segment found");
    let r = e
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .expect("scrub");
    assert!(
        r.progress
            .unrecoverable
            .iter()
            .any(|s| s.contains("checkpoint")),
        "the checkpoint stripe past repair is not reported: {:?}",
        r.progress.unrecoverable
    );
}
