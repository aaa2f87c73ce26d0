//! The index with many keys, through the engine: enough keys that the packed index of
//! docs/design.md, "Index memory", appends, splices runs put in order inside a table, merges
//! keys put in random order, compacts deleted ones, and serves them while the flusher
//! settles them; then a checkpoint, more writes, a reopen (checkpoint replay and log replay)
//! and a full comparison against a model: every key by `get`, ordered `scan`s, and ranges.

mod common;
use common::*;
use ectable::{format, Engine, EngineOptions};
use std::collections::BTreeMap;
use std::ops::Bound;

fn key(x: u64) -> Vec<u8> {
    format!("{x:016x}").into_bytes()
}

#[test]
fn many_keys_in_every_order_survive_checkpoint_and_reopen() {
    let (_mems, faulty) = mem_devices(6, 64 << 20, 11);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).expect("format");
    let mut engine = Engine::open(io.clone(), EngineOptions::default()).expect("open");
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut n = 0u64;
    let mut put = |e: &Engine, model: &mut BTreeMap<Vec<u8>, Vec<u8>>, k: Vec<u8>| {
        n += 1;
        let v = value_for(n, 5, (n % 40) as usize);
        e.put("t", &k, &v).expect("put");
        model.insert(k, v);
    };
    // Appended: keys after the whole table.
    for i in 0..12_000u64 {
        put(&engine, &mut model, key(0x1000_0000 + i));
    }
    // A high key, then a run in order inside the table (splices into one gap).
    put(&engine, &mut model, key(u64::MAX));
    for i in 0..9_000u64 {
        put(&engine, &mut model, key(0x0800_0000 + i));
    }
    // Random order all over (merges), overwrites of existing keys included.
    for i in 0..15_000u64 {
        let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 4;
        put(&engine, &mut model, key(x));
        if i % 5 == 0 {
            put(&engine, &mut model, key(0x1000_0000 + (i % 12_000)));
        }
    }
    // Deletes, enough to compact dead slots.
    let victims: Vec<Vec<u8>> = model.keys().step_by(3).cloned().collect();
    for k in &victims {
        engine.delete("t", k).expect("delete");
        model.remove(k);
    }
    engine.sync().expect("sync");
    engine.checkpoint().expect("checkpoint");
    // After the checkpoint: log replay on top of it at reopen.
    for i in 0..3_000u64 {
        put(&engine, &mut model, key((i * 7919) << 20));
    }
    for k in victims.iter().take(500) {
        put(&engine, &mut model, k.clone());
    }
    engine.sync().expect("sync");
    check(&engine, &model);
    engine.close().expect("close");
    drop(engine);
    engine = Engine::open(io.clone(), EngineOptions::default()).expect("reopen");
    check(&engine, &model);
    engine.close().expect("close");
}

fn check(engine: &Engine, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let all = engine
        .scan("t", Bound::Unbounded, Bound::Unbounded, usize::MAX)
        .expect("scan");
    assert_eq!(all.len(), model.len());
    for ((k, v), (mk, mv)) in all.iter().zip(model) {
        assert_eq!((k, v), (mk, mv));
    }
    for (k, v) in model.iter().step_by(7) {
        assert_eq!(engine.get("t", k).expect("get").as_ref(), Some(v));
    }
    for (lo, hi) in [
        (0x0800_0100u64, 0x0800_0200u64),
        (0x1000_0000, 0x1000_0100),
        (1 << 40, 1 << 56),
    ] {
        let (lo, hi) = (key(lo), key(hi));
        let got: Vec<Vec<u8>> = engine
            .scan("t", Bound::Included(&lo), Bound::Excluded(&hi), 1000)
            .expect("range")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let want: Vec<Vec<u8>> = model
            .range::<[u8], _>((
                Bound::Included(lo.as_slice()),
                Bound::Excluded(hi.as_slice()),
            ))
            .take(1000)
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(got, want);
    }
}
