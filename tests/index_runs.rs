//! A table larger than one run of its key map (docs/design.md, "Index memory": runs of at
//! most 2^16 keys, split at their middle key as random keys arrive) through the engine:
//! random puts, a checkpoint, then deletes, overwrites and new keys, a power cut, and the
//! reopen that rebuilds the key map from the checkpoint (keys in order: new runs appended)
//! and the log after it (keys out of order: folds and splits). Every acknowledged key must
//! read back, deleted keys stay deleted, and scans (forward and reverse, from random keys,
//! streamed and paged) return exactly the model's keys in order across the run boundaries.
//! The key map's own property tests check runs against a `BTreeMap` with runs of 16 keys;
//! this test checks the real size in the engine.

mod common;
use common::power_switch::{no_cleaner, session};
use common::*;
use ectable::{format, WriteBatch};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::ops::Bound;

/// Keys loaded before the checkpoint: about three runs' worth once split.
const KEYS: usize = 200_000;

fn random_key(rng: &mut SmallRng) -> Vec<u8> {
    format!("{:016x}", rng.random::<u64>()).into_bytes()
}

/// Writes `ops` in batches of 1,024 (None deletes) and makes them durable.
fn apply(e: &ectable::Engine, ops: &[(Vec<u8>, Option<Vec<u8>>)]) {
    for chunk in ops.chunks(1024) {
        let mut b = WriteBatch::new();
        for (k, v) in chunk {
            match v {
                Some(v) => b.put("t", k, v),
                None => b.delete("t", k),
            };
        }
        e.write_batch(&b).expect("write batch");
    }
    e.sync().expect("sync");
}

#[test]
fn a_table_of_several_runs_survives_a_power_cut_and_scans_in_order() {
    let seed = std::env::var("ECTABLE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0072_0b5e);
    println!("seed {seed} (ECTABLE_TEST_SEED to replay)");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mems = memory_devices(6, 128 << 20);
    format(io_of(&wrap(&mems, seed)).as_ref(), &fmt_opts(4, 2)).expect("format");
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();

    let checkpoint_lsn = {
        let (e, power) = session(&mems, seed, no_cleaner());
        let mut ops = Vec::with_capacity(KEYS);
        while model.len() < KEYS {
            let k = random_key(&mut rng);
            let v = value_for(model.len() as u64, seed, 12);
            model.insert(k.clone(), v.clone());
            ops.push((k, Some(v)));
        }
        apply(&e, &ops);
        let lsn = e.checkpoint().expect("checkpoint").expect("something new");
        // After the checkpoint: delete a third, overwrite a third, and add new keys.
        let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
        let mut ops = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            match i % 3 {
                0 => {
                    model.remove(k);
                    ops.push((k.clone(), None));
                }
                1 => {
                    let v = value_for(i as u64 + 1_000_000, seed, 12);
                    model.insert(k.clone(), v.clone());
                    ops.push((k.clone(), Some(v)));
                }
                _ => {}
            }
        }
        for i in 0..KEYS / 4 {
            let k = random_key(&mut rng);
            let v = value_for(i as u64 + 2_000_000, seed, 12);
            model.insert(k.clone(), v.clone());
            ops.push((k, Some(v)));
        }
        // Out of key order, as a table's writes come.
        for i in (1..ops.len()).rev() {
            ops.swap(i, rng.random_range(0..=i));
        }
        apply(&e, &ops);
        power.cut();
        lsn
    };

    let (e, _power) = session(&mems, seed, no_cleaner());
    assert_eq!(
        e.status().recovery.checkpoint_lsn,
        checkpoint_lsn,
        "recovery starts from the checkpoint and replays the log after it"
    );
    let want: Vec<(&Vec<u8>, &Vec<u8>)> = model.iter().collect();
    let all: Vec<(Vec<u8>, Vec<u8>)> = e
        .scan_iter("t", Bound::Unbounded, Bound::Unbounded)
        .expect("scan")
        .collect::<Result<_, _>>()
        .expect("scan rows");
    assert_eq!(
        all.len(),
        model.len(),
        "the table holds exactly the model's keys"
    );
    for ((k, v), (mk, mv)) in all.iter().zip(&want) {
        assert_eq!((k, v), (*mk, *mv), "the whole table in key order");
    }
    let mut rev: Vec<Vec<u8>> = e
        .scan_iter_rev("t", Bound::Unbounded, Bound::Unbounded)
        .expect("reverse scan")
        .map(|r| r.map(|(k, _)| k))
        .collect::<Result<_, _>>()
        .expect("reverse scan rows");
    rev.reverse();
    assert!(
        rev.iter().eq(model.keys()),
        "the reverse scan is the forward scan backwards"
    );
    // Pages of 500 from random keys (present or not): the model's next 500 keys.
    for _ in 0..40 {
        let from = random_key(&mut rng);
        let page = e
            .scan("t", Bound::Included(&from), Bound::Unbounded, 500)
            .expect("paged scan");
        let want: Vec<&Vec<u8>> = model
            .range::<Vec<u8>, _>((Bound::Included(&from), Bound::Unbounded))
            .take(500)
            .map(|(k, _)| k)
            .collect();
        assert!(
            page.iter().map(|(k, _)| k).eq(want),
            "page from {}",
            String::from_utf8_lossy(&from)
        );
    }
    // Deleted keys stay deleted; a sample of live ones reads back.
    for (i, (k, v)) in want.iter().enumerate().step_by(97) {
        assert_eq!(e.get("t", k).expect("get").as_ref(), Some(*v), "row {i}");
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut deleted = 0;
    for _ in 0..KEYS {
        let k = random_key(&mut rng);
        if !model.contains_key(&k) {
            assert_eq!(e.get("t", &k).expect("get"), None, "a deleted key");
            deleted += 1;
        }
    }
    assert!(deleted > KEYS / 4, "{deleted} deleted keys checked");
}
