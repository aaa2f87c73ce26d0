//! Regression test: writes the open of one session left out (their stripe at the log's end
//! was torn, fewer than k chunks readable) must not come back in a later session that can
//! read more of that stripe (found by the seeded simulator, ecsim seed 5256).
//!
//! What went wrong. A power cut leaves the log's last stripe with exactly k chunks on the
//! media, but at the next open one of them cannot be read (a read error that later goes
//! away, a device that comes back). Recovery ends the log before the stripe and leaves its
//! writes out; the session reads without them and, writing nothing to the log, writes a
//! checkpoint that resumes the log at the stripe's place. The next open can read all k
//! chunks: the stripe follows on from the checkpoint's LSN, and its writes are replayed, so
//! a clean close and reopen changed what reads return.
//!
//! The fix. The first write of a session (the epoch bump, before anything else) zeroes the
//! chunk headers at the place where the log ends, on every present member: what an earlier
//! session's open left out can no longer be replayed by a later one.

mod common;
use common::power_switch::{no_cleaner, session};
use common::*;
use ectable::format::ChunkHeader;
use ectable::format::DATA_START_BYTES;
use ectable::{format, Engine, EngineOptions};
use std::sync::Arc;

const DEV_BYTES: u64 = 8 << 20;

/// Where each device holds its chunk of the stripe (segment id, offset in the segment).
fn chunk_places(
    mems: &[Arc<ectable::devices::MemDevice>],
    segment_id: u64,
    offset: u32,
) -> Vec<Option<u64>> {
    mems.iter()
        .map(|m| {
            (DATA_START_BYTES..DEV_BYTES).step_by(4096).find(|&at| {
                ChunkHeader::decode(&m.peek(at, 512)).is_ok_and(|h| {
                    h.segment_id == segment_id && h.offset_in_segment_bytes == offset
                })
            })
        })
        .collect()
}

#[test]
fn writes_left_out_by_one_open_are_not_replayed_by_a_later_one() {
    let (mems, faulty) = mem_devices(6, DEV_BYTES, 0x70a1);
    format(io_of(&faulty).as_ref(), &fmt_opts_stripes_only(4, 2)).expect("format");
    // Session 1: rows acknowledged, then one more row in a stripe of its own; the power goes
    // off before a close could write a checkpoint covering it.
    {
        let (e, power) = session(&mems, 1, no_cleaner());
        for i in 0..50u64 {
            e.put("t", format!("k{i:03}").as_bytes(), &value_for(i, 3, 500))
                .expect("put");
        }
        e.sync().expect("sync");
        e.put("t", b"last", &[0xab; 2000]).expect("put");
        e.sync().expect("sync");
        power.cut();
        drop(e);
    }
    // The stripe holding "last": found by its value on a data chunk.
    let (at_dev, at) = mems
        .iter()
        .enumerate()
        .find_map(|(d, m)| {
            let img = m.snapshot();
            img.windows(2000)
                .position(|w| w.iter().all(|b| *b == 0xab))
                .map(|p| (d, p as u64))
        })
        .expect("the value is on a device");
    let header_at = (0..=at / 4096)
        .rev()
        .map(|b| b * 4096)
        .find(|&o| ChunkHeader::decode(&mems[at_dev].peek(o, 512)).is_ok())
        .expect("a chunk header before the value");
    let h = ChunkHeader::decode(&mems[at_dev].peek(header_at, 512)).expect("header");
    let places = chunk_places(&mems, h.segment_id, h.offset_in_segment_bytes);
    assert!(places.iter().all(Option::is_some), "{places:?}");
    // A torn stripe: two chunks never written (their headers zero), so exactly k remain.
    for d in [4, 5] {
        mems[d].poke(places[d].expect("place"), &[0; 4096]);
    }
    // Session 2: one of the k cannot be read; the open leaves "last" out, and the session
    // writes a checkpoint and closes.
    let wrapped = wrap(&mems, 2);
    let chunk0 = places[0].expect("place");
    wrapped[0].add_read_error_range(chunk0..chunk0 + 4096);
    {
        let e = Engine::open(io_of(&wrapped), no_cleaner()).expect("open");
        assert_eq!(
            e.get("t", b"last").expect("get"),
            None,
            "the torn stripe is left out"
        );
        assert!(e.get("t", b"k049").expect("get").is_some());
        e.checkpoint().expect("checkpoint");
        e.close().expect("close");
    }
    // Session 3: the read error is gone. What session 2 read must still be what reads see.
    wrapped[0].clear_error_ranges();
    let e = Engine::open(
        io_of(&wrapped),
        EngineOptions {
            read_only: true,
            ..no_cleaner()
        },
    )
    .expect("open");
    assert_eq!(
        e.get("t", b"last").expect("get").map(|v| v.len()),
        None,
        "a write the previous session's open left out came back"
    );
    for i in 0..50u64 {
        assert_eq!(
            e.get("t", format!("k{i:03}").as_bytes()).expect("get"),
            Some(value_for(i, 3, 500))
        );
    }
}
