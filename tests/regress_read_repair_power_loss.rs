//! Found by the simulator (seed 2060112 at RS(6,3)): a read that met a bad chunk rewrote
//! it (read repair) but never flushed the rewrite. A scrub right after found the chunk
//! good (the device served the unflushed write) and the disk counted as repaired; a power
//! loss ten steps later undid the write, and the damage was back on a disk every check had
//! called clean. A read repair is now flushed before it counts.
//!
//! The test: bad bytes on one device, every record read (the reads repair what they meet),
//! a scrub that only counts (what the reads did not meet: parity chunks, stripes of no
//! record), then the power is cut with nothing else written, and the writes no flush
//! covered are undone. A scrub of the reopened array must count the same: every repair
//! the reads counted reached the medium.

mod common;
use common::*;
use ectable::devices::{BlockDevice, CrashMode, FaultyDevice, MemDevice};
use ectable::{format, Engine, EngineOptions, RebuildOptions};
use std::sync::Arc;

fn key(i: u64) -> Vec<u8> {
    format!("k{i:04}").into_bytes()
}

/// Flips one byte in every 4 KiB of the device's data area (from 1 MiB on).
fn rot(mem: &MemDevice) {
    let size = mem.geometry().capacity_bytes;
    let mut off = (1u64 << 20) + 777;
    while off < size {
        let b = mem.peek(off, 1)[0];
        mem.poke(off, &[b ^ 0x5A]);
        off += 4096;
    }
}

fn fresh(mems: &[Arc<MemDevice>]) -> Vec<Arc<FaultyDevice>> {
    mems.iter()
        .enumerate()
        .map(|(i, m)| {
            Arc::new(FaultyDevice::new(
                m.clone() as Arc<dyn BlockDevice>,
                i as u64,
            ))
        })
        .collect()
}

#[test]
fn a_read_repair_survives_a_power_loss_right_after_it() {
    let (mems, faulty) = mem_devices(6, 16 << 20, 11);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Engine::open(io, EngineOptions::default()).unwrap();
    for i in 0..120 {
        e.put("t", &key(i), &value_for(i, 3, 3000)).unwrap();
    }
    e.close().unwrap();
    drop(e);

    rot(&mems[1]);
    let faulty = fresh(&mems);
    let e = Engine::open(io_of(&faulty), EngineOptions::default()).unwrap();
    // From here on every write no flush covers can be undone by the power loss.
    for f in &faulty {
        f.set_track_unflushed(true);
    }
    for i in 0..120 {
        assert_eq!(e.get("t", &key(i)).unwrap(), Some(value_for(i, 3, 3000)));
    }
    let repaired = e.status().read_repairs;
    assert!(
        repaired > 0,
        "the reads met no bad chunk: the damage did not fire"
    );
    let bad = |e: &Engine| {
        let r = e
            .scrub(false, &RebuildOptions::default(), &mut |_| {})
            .unwrap();
        r.bad_chunks_per_slot
    };
    let left = bad(&e);
    // Power loss: nothing the engine tries from now on reaches the media.
    for f in &faulty {
        f.set_failed(true);
    }
    drop(e);
    for f in &faulty {
        f.crash(CrashMode::DropAll).expect("crash");
    }

    let e = Engine::open(io_of(&fresh(&mems)), EngineOptions::default()).unwrap();
    assert_eq!(
        bad(&e),
        left,
        "{repaired} read repairs counted, but the power loss undid some (bad chunks per slot \
         after it, left: what the reads had not met)"
    );
    for i in 0..120 {
        assert_eq!(e.get("t", &key(i)).unwrap(), Some(value_for(i, 3, 3000)));
    }
    e.close().unwrap();
}
