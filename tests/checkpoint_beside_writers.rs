//! Index checkpoints are taken while writers go on (docs/design.md, "Index checkpoints are
//! taken beside writers"): the image is read a slice of the index at a time, and the index keeps the pre-image (the
//! entry as of the checkpoint's LSN) of every key a write changes before the image reaches
//! it. The exact image is checked by the index's own property test (index/capture.rs:
//! byte for byte the image of the whole index as of the LSN, however writes and slices
//! interleave); this test runs it in the engine.
//!
//! Six memory devices, RS(4,2), the cleaner off. 80,000 keys are loaded into two tables
//! (the image takes several slices of 16,384 keys). Two writer threads then overwrite,
//! delete and insert keys (also into a table created after the checkpoints' LSNs) in
//! batches, each acknowledged by a `sync`, while the main thread takes checkpoints, until a
//! checkpoint has been taken with writes landing inside it (the status counts the pre-images
//! kept: the "fault" here is the overlap, and it must have happened). Then the power is cut
//! (no close, so no checkpoint at close replaces the last online one), and the array is
//! reopened: recovery must start from that checkpoint, and every acknowledged write must
//! read back, every deleted key stay deleted, and each table hold exactly the model's keys.

mod common;
use common::power_switch::{no_cleaner, session};
use common::*;
use ectable::{format, WriteBatch};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const LOADED: u64 = 40_000;
/// (table, key) → the acknowledged value, or None once deleted.
type Model = BTreeMap<(String, Vec<u8>), Option<Vec<u8>>>;
type Op = ((String, Vec<u8>), Option<Vec<u8>>);

fn key(i: u64) -> Vec<u8> {
    format!("key{i:08}").into_bytes()
}

#[test]
fn checkpoints_taken_beside_writers_recover_every_acknowledged_write() {
    let seed = std::env::var("ECTABLE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00c4_ec9b);
    println!("seed {seed} (ECTABLE_TEST_SEED to replay)");
    let mems = memory_devices(6, 96 << 20);
    format(io_of(&wrap(&mems, seed)).as_ref(), &fmt_opts(4, 2)).expect("format");
    let model: Arc<Mutex<Model>> = Arc::default();

    let last_checkpoint = {
        let (e, power) = session(&mems, seed, no_cleaner());
        let e = Arc::new(e);
        for t in ["a", "b"] {
            for chunk in (0..LOADED).collect::<Vec<_>>().chunks(512) {
                let mut b = WriteBatch::new();
                for &i in chunk {
                    b.put(t, &key(i), &value_for(i, seed, 24));
                }
                e.write_batch(&b).expect("load");
            }
        }
        e.sync().expect("sync the load");
        {
            let mut m = model.lock().unwrap();
            for t in ["a", "b"] {
                for i in 0..LOADED {
                    m.insert((t.to_string(), key(i)), Some(value_for(i, seed, 24)));
                }
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let (e, stop, model) = (e.clone(), stop.clone(), model.clone());
                std::thread::spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(seed + w);
                    let mut version = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let mut b = WriteBatch::new();
                        let mut ops: Vec<Op> = Vec::new();
                        for _ in 0..64 {
                            // Each writer owns the keys of its parity: the model needs no
                            // order between them.
                            let i = rng.random_range(0..LOADED + 5_000) / 2 * 2 + w;
                            let t = ["a", "b", "c"][rng.random_range(0..3)];
                            let k = key(i);
                            if rng.random_bool(0.2) {
                                b.delete(t, &k);
                                ops.push(((t.to_string(), k), None));
                            } else {
                                version += 1;
                                let v = versioned_value(i, version, seed + w, 24);
                                b.put(t, &k, &v);
                                ops.push(((t.to_string(), k), Some(v)));
                            }
                        }
                        e.write_batch(&b).expect("write beside a checkpoint");
                        e.sync().expect("sync beside a checkpoint");
                        let mut m = model.lock().unwrap();
                        for (k, v) in ops {
                            m.insert(k, v);
                        }
                    }
                })
            })
            .collect();
        let mut last = 0;
        let mut taken = 0;
        while taken < 3 || e.status().checkpoint_pre_images == 0 {
            assert!(taken < 200, "no checkpoint overlapped a write in 200 tries");
            let lsn = e.checkpoint().expect("checkpoint beside writers");
            if let Some(lsn) = lsn {
                assert!(lsn > last, "checkpoints are taken in LSN order");
                last = lsn;
                taken += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer");
        }
        let pre_images = e.status().checkpoint_pre_images;
        println!("{taken} checkpoints, {pre_images} pre-images kept, last at LSN {last}");
        power.cut();
        last
    };

    let (e, _power) = session(&mems, seed, no_cleaner());
    let rec = e.status().recovery;
    assert_eq!(
        rec.checkpoint_lsn, last_checkpoint,
        "recovery starts from the last checkpoint taken beside the writers"
    );
    let model = model.lock().unwrap();
    let mut live: BTreeMap<&str, usize> = BTreeMap::new();
    for ((t, k), v) in model.iter() {
        let got = e.get(t, k).expect("get after the power cut");
        assert_eq!(
            got.as_deref(),
            v.as_deref(),
            "{t}/{}: acknowledged state",
            String::from_utf8_lossy(k)
        );
        *live.entry(t.as_str()).or_default() += v.is_some() as usize;
    }
    for (t, n) in live {
        let mut count = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let from = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let page = e
                .scan(t, from, Bound::Unbounded, 10_000)
                .expect("scan after the power cut");
            if page.is_empty() {
                break;
            }
            count += page.len();
            after = page.last().map(|(k, _)| k.clone());
        }
        assert_eq!(count, n, "table {t} holds exactly the acknowledged keys");
    }
}
