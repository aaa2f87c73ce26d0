//! Regression test: an index checkpoint resumes where the log really goes on, never at a
//! synthetic "next segment id" (commit d0da0ad, which undid 74dbc93).
//!
//! What went wrong. A checkpoint names a resume point (docs/format.md, "Index checkpoint"):
//! recovery loads the checkpoint, does not read the log segments below the resume segment
//! (they are "covered"), and replays the log from the resume point; the cleaner frees covered
//! segments once their live records are moved forward, relying on that replay to bring the
//! moved records back. When a batch did not fit in the short tail of a segment (the last
//! `S − o` bytes, less than a chunk), the writer dropped its cursor; if no new segment could
//! be allocated then (a full array), the cursor stayed empty, and a checkpoint taken in that
//! state (74dbc93: so that a full array's cleaner could still checkpoint and free space)
//! invented a resume point: `(next segment id, 4096, 0)`, a segment that did not exist yet.
//! The next allocation took that id — usually the checkpoint's own segments did — so the
//! resume point named a segment that is not a log segment and that the log never goes on
//! in. Power-loss runs of the cleaner lost acknowledged writes with it (the fix's commit
//! message: bisected to 74dbc93). This test does not reproduce that loss itself (with the
//! fix reverted, every value below still reads back in this scenario; the exact path to the
//! loss is not recorded in the repository); it pins the invariant the fix restored: the
//! resume point is where the log's next stripe really goes.
//!
//! The fix. Leaving a short tail keeps the cursor, at the segment's end `(segment, S,
//! ordinal)`; a checkpoint resumes exactly there (the real last log segment, scanned from
//! `S`: nothing), and a checkpoint is never taken with no cursor.
//!
//! The test. Three memory devices, RS(2,1), 16 KiB chunks, 256 KiB segments (15 full stripes
//! and a 12 KiB tail each), eight segments per device, cleaner off. Session 1 overwrites ten
//! keys with synced puts of exactly one full stripe each until the array is full: the failing
//! put is the one that did not fit in a segment's tail and found no segment free
//! (`Error::NoSpace`, asserted, with every segment filled by exactly 15 stripes). Then
//! `Engine::checkpoint()` (the cleaner's checkpoint, taken in that state), which frees the
//! dead segments; then more acknowledged puts; then the power is cut (no close, so no
//! checkpoint at close replaces it). Session 2 asserts that the checkpoint in force is that
//! one and that it resumes in the segment whose tail was skipped (not the id allocated next:
//! without the fix this assertion fails, resume segment 7 where 6 is expected),
//! reads every acknowledged value, runs a cleaning pass and more acknowledged puts, and cuts
//! the power again; session 3 reads every acknowledged value once more.

mod common;
use common::power_switch::{no_cleaner, session};
use common::*;
use ectable::{format, Engine, Error, FormatOptions};
use std::collections::BTreeMap;

const N: usize = 3;
const K: usize = 2;
const M: usize = 1;
const CHUNK: usize = 16 << 10;
const SEGMENT: usize = 256 << 10;
const SEGMENTS_PER_DEVICE: u64 = 8;
const KEYS: u64 = 10;
/// Full stripes in a segment: (S − 4096) / C, and a tail of S − 4096 − 15·C = 12 KiB.
const STRIPES_PER_SEGMENT: u64 = ((SEGMENT - 4096) / CHUNK) as u64;

fn key(i: u64) -> Vec<u8> {
    format!("key{:05}", i % KEYS).into_bytes()
}

/// A value whose record (24-byte header, table "t", an 8-byte key) fills a stripe's data
/// space, k × (C − 512) bytes, exactly: every put is one full-height stripe.
fn value(i: u64, seed: u64) -> Vec<u8> {
    value_for(i, seed, K * (CHUNK - 512) - 24 - 1 - 8)
}

fn check_all(e: &Engine, acked: &BTreeMap<Vec<u8>, Vec<u8>>, when: &str) {
    for (k, v) in acked {
        let got = e
            .get("t", k)
            .unwrap_or_else(|err| panic!("{when}: get {}: {err}", String::from_utf8_lossy(k)));
        assert!(
            got.as_deref() == Some(v.as_slice()),
            "{when}: acknowledged value of {} lost (got {:?} bytes)",
            String::from_utf8_lossy(k),
            got.map(|g| g.len())
        );
    }
}

#[test]
fn a_checkpoint_after_a_skipped_segment_tail_resumes_in_that_segment() {
    let seed = 0xd0da_0ad0;
    let mems = memory_devices(N, (1 << 20) + SEGMENTS_PER_DEVICE * SEGMENT as u64);
    let opts = FormatOptions {
        data_shards: K,
        parity_shards: M,
        chunk_size_bytes: CHUNK as u32,
        segment_size_bytes: SEGMENT as u32,
        force: false,
        spare_count: 0,
        sync_journal: true,
        inline_values: false,
        wide_records: false,
        whole_records: false,
    };
    format(io_of(&wrap(&mems, seed)).as_ref(), &opts).expect("format");
    let mut acked: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut i = 0u64;

    // Session 1: fill the array, checkpoint in the skipped-tail state, write on.
    let (ckpt_lsn, last_segment) = {
        let (e, power) = session(&mems, seed, no_cleaner());
        let err = loop {
            let v = value(i, seed);
            match e.put_sync("t", &key(i), &v) {
                Ok(lsn) => {
                    assert_eq!(lsn, i + 1);
                    acked.insert(key(i), v);
                    i += 1;
                }
                Err(err) => break err,
            }
        };
        assert!(
            matches!(err, Error::NoSpace(_)),
            "the array must fill up: {err}"
        );
        // Every segment holds exactly 15 one-stripe puts: the put that failed did not fit in
        // the 12 KiB tail of the last one, and no new segment was allowed.
        assert_eq!(
            i % STRIPES_PER_SEGMENT,
            0,
            "{i} puts: the failing put must be the one after a full segment"
        );
        let last_segment = i / STRIPES_PER_SEGMENT;
        assert!(
            last_segment >= 3,
            "the array must hold several log segments"
        );
        let ckpt = e
            .checkpoint()
            .expect("checkpoint")
            .expect("a checkpoint is written");
        assert_eq!(ckpt, i, "the checkpoint holds every acknowledged put");
        // The checkpoint freed the segments only older versions lived in: writes go on.
        for _ in 0..2 * STRIPES_PER_SEGMENT {
            let v = value(i, seed);
            e.put_sync("t", &key(i), &v)
                .expect("put after the checkpoint");
            acked.insert(key(i), v);
            i += 1;
        }
        power.cut();
        drop(e);
        (ckpt, last_segment)
    };

    // Session 2: the checkpoint resumes in the segment whose tail was skipped.
    {
        let (e, power) = session(&mems, seed ^ 1, no_cleaner());
        let stats = e.recovery_stats().clone();
        assert_eq!(
            stats.checkpoint_lsn, ckpt_lsn,
            "the checkpoint taken after the skipped tail is the one in force"
        );
        assert_eq!(
            stats.checkpoint_resume_segment,
            last_segment,
            "the checkpoint must resume in segment {last_segment}, whose tail the writer \
             skipped, not at segment {}, the id allocated next",
            last_segment + 1
        );
        assert_eq!(
            stats.records,
            2 * STRIPES_PER_SEGMENT,
            "the puts after the checkpoint are replayed from its resume point"
        );
        check_all(&e, &acked, "after the first power loss");
        e.clean(4).expect("clean");
        check_all(&e, &acked, "after cleaning");
        for _ in 0..STRIPES_PER_SEGMENT {
            let v = value(i, seed);
            e.put_sync("t", &key(i), &v)
                .expect("put after the cleaning pass");
            acked.insert(key(i), v);
            i += 1;
        }
        power.cut();
        drop(e);
    }

    // Session 3.
    let (e, _power) = session(&mems, seed ^ 2, no_cleaner());
    check_all(&e, &acked, "after the second power loss");
}
