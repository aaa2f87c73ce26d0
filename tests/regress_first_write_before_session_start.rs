//! Regression test: a session's first write must start the session, even when that first
//! write is an index checkpoint (commit 81bc2f2).
//!
//! What went wrong. Opening an array replays the log but writes nothing; the session's first
//! write "starts the session" (docs/format.md, "Recovery", step 6): a new epoch in the
//! superblocks, the segments beyond the end of the log invalidated, and the replayed log made
//! whole again — every replayed stripe that a crash left with only k of its w chunks is
//! rebuilt and written back, so that the log survives the loss of any m devices before
//! anything new is acknowledged after it. Appends started the session, but an index
//! checkpoint did not: the cleaner (or `Engine::checkpoint`) could write a checkpoint on a
//! freshly recovered array first. That checkpoint takes in the records of the k-chunk stripe
//! and moves the resume point past it, so no later open replays that stripe again, sees its
//! missing chunks, or queues their repair: the stripe stayed at k chunks for good, while the
//! engine went on acknowledging (a `sync` returns the checkpointed LSN as durable) and
//! writing after it. Losing any one device that held one of those k chunks then made
//! acknowledged records unreadable.
//!
//! The fix. `checkpoint::write_online` starts the session (`Shared::start_writing`) before it
//! takes the image, as `admit` does for appends; the repairs are written and flushed before
//! the checkpoint is.
//!
//! The test. Six memory devices, RS(4,2), cleaner off (so nothing but the test writes).
//! Session 1: one synced put, then a put whose stripe only k = 4 chunk writes reach before the
//! "power" is cut (a device wrapper that lets a set number of writes through). Session 2:
//! recovery replays that stripe with two chunks missing (asserted:
//! `interrupted_stripes > 0`); the session's first write is `Engine::checkpoint()`, and a
//! `sync` then acknowledges everything up to the stripe's LSN; the power is cut again.
//! Session 3: the open asserts that the checkpoint really covers the stripe (its LSN, and the
//! log replayed from after it: no stripe, no interrupted stripe), then acknowledges more puts
//! after it; power cut. Session 4: a read-only scrub with every device present must find no
//! bad chunk, and every acknowledged row must read back from every set of five devices.
//! Without the fix the k-chunk stripe is never repaired: the scrub finds its two missing
//! chunks, and with any of its four holders missing the row in it is lost.

mod common;
use common::power_switch::{no_cleaner, session};
use common::*;
use ectable::{format, Engine, EngineOptions, RebuildOptions};
use std::sync::atomic::Ordering;

const N: usize = 6;
const K: usize = 4;
const M: usize = 2;
const DEV_BYTES: u64 = 8 << 20;

#[test]
fn a_checkpoint_as_first_write_repairs_the_replayed_log_first() {
    let seed = 0x81bc_2f20;
    let mems = memory_devices(N, DEV_BYTES);
    format(
        io_of(&wrap(&mems, seed)).as_ref(),
        &fmt_opts_stripes_only(K, M),
    )
    .expect("format");
    // Every row acknowledged by the end of the test: (key, value).
    let mut acked: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();

    // Session 1: an acknowledged row, then a stripe of which exactly k chunks reach the media.
    {
        let (e, power) = session(&mems, seed, no_cleaner());
        let base = value_for(1, seed, 300);
        e.put_sync("t", b"base", &base).expect("put_sync");
        acked.push((b"base".to_vec(), base));
        let doubt = value_for(2, seed, 300);
        e.put("t", b"doubt", &doubt).expect("put");
        acked.push((b"doubt".to_vec(), doubt)); // acknowledged in session 2
        power.budget.store(K as i64, Ordering::SeqCst);
        assert!(
            e.sync().is_err(),
            "only {K} chunk writes get through: the sync must fail"
        );
        power.cut();
        drop(e);
    }

    // Session 2: the k-chunk stripe is replayed; the session's first write is a checkpoint,
    // and a sync then acknowledges the stripe's record.
    {
        let (e, power) = session(&mems, seed ^ 1, no_cleaner());
        assert_eq!(
            e.status().next_lsn,
            3,
            "the scenario needs the k-chunk stripe replayed"
        );
        assert!(
            e.recovery_stats().interrupted_stripes > 0,
            "the scenario needs a replayed stripe with chunks missing"
        );
        // (Nothing is read here: a degraded read would repair the stripe itself.)
        assert_eq!(
            e.checkpoint().expect("checkpoint"),
            Some(2),
            "the session's first write is a checkpoint holding the stripe's record"
        );
        assert_eq!(e.sync().expect("sync"), 2, "LSN 2 is acknowledged");
        power.cut();
        drop(e);
    }

    // Session 3: the checkpoint covers the stripe, so this open does not replay it (and could
    // not repair it); more acknowledged writes are logged after it.
    {
        let (e, power) = session(&mems, seed ^ 2, no_cleaner());
        let stats = e.recovery_stats().clone();
        assert_eq!(
            stats.checkpoint_lsn, 2,
            "the open loads the checkpoint session 2 wrote first"
        );
        assert_eq!(
            (
                stats.stripes,
                stats.interrupted_stripes,
                stats.degraded_stripes
            ),
            (0, 0, 0),
            "the log is replayed from after the stripe: nothing of it is seen again"
        );
        for i in 0..10u64 {
            let key = format!("after{i:02}").into_bytes();
            let v = value_for(10 + i, seed, 200);
            e.put_sync("t", &key, &v).expect("put_sync");
            acked.push((key, v));
        }
        power.cut();
        drop(e);
    }

    // Session 4: every chunk is there, and every acknowledged row survives any one device
    // lost (m = 2 would allow two).
    let faulty = wrap(&mems, seed ^ 3);
    let read_only = EngineOptions {
        read_only: true,
        ..no_cleaner()
    };
    {
        let e = Engine::open(io_of(&faulty), read_only.clone()).expect("read-only open");
        let r = e
            .scrub(false, &RebuildOptions::default(), &mut |_| {})
            .expect("scrub");
        assert!(
            r.bad_chunks_per_slot.iter().all(|b| *b == 0),
            "the stripe the crash left with k chunks was never repaired: bad chunks per slot {:?}",
            r.bad_chunks_per_slot
        );
    }
    let mut lost = Vec::new();
    for gone in 0..N {
        let keep: Vec<usize> = (0..N).filter(|&d| d != gone).collect();
        let e = Engine::open(io_subset(&faulty, &keep), read_only.clone())
            .unwrap_or_else(|err| panic!("open without device {gone}: {err}"));
        for (key, v) in &acked {
            match e.get("t", key) {
                Ok(Some(got)) if got == *v => {}
                other => lost.push(format!(
                    "without device {gone}: {}: {:?}",
                    String::from_utf8_lossy(key),
                    other.map(|o| o.map(|g| g.len()))
                )),
            }
        }
    }
    assert!(
        lost.is_empty(),
        "acknowledged rows lost with one device missing:\n{}",
        lost.join("\n")
    );
}
