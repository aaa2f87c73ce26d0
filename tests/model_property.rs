//! Property test: random sequences of puts, deletes, batches, syncs and reopens, checked
//! against an in-memory model (a BTreeMap per table) after every step and by a full scan at
//! the end. Runs on memory devices through the psync engine, with small chunks and segments
//! so that stripes, segment switches and short stripes all happen.

mod common;
use common::*;
use ectable::{format, Engine, EngineOptions, WriteBatch};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::ops::Bound;

#[derive(Debug, Clone)]
enum Op {
    Put { table: u8, key: u8, len: u16 },
    Delete { table: u8, key: u8 },
    Batch(Vec<(u8, u8, Option<u16>)>),
    Sync,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..2, 0u8..40, 0u16..3000).prop_map(|(table, key, len)| Op::Put { table, key, len }),
        2 => (0u8..2, 0u8..40).prop_map(|(table, key)| Op::Delete { table, key }),
        1 => prop::collection::vec((0u8..2, 0u8..40, prop::option::of(0u16..500)), 1..6).prop_map(Op::Batch),
        2 => Just(Op::Sync),
        1 => Just(Op::Reopen),
    ]
}

fn table_name(t: u8) -> String {
    format!("t{t}")
}

fn key_of(k: u8) -> Vec<u8> {
    // Binary keys, including a zero byte, so ordering is bytewise.
    vec![b'k', k / 10, k % 10]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_model(ops in prop::collection::vec(op(), 1..120), k in 1usize..4, m in 1usize..3) {
        let n = k + m + 1; // one spare device: declustered placement
        let (_mems, faulty) = mem_devices(n, 8 << 20, 7);
        let io = io_of(&faulty);
        format(io.as_ref(), &fmt_opts(k, m)).unwrap();
        let mut engine = Engine::open(io.clone(), EngineOptions::default()).unwrap();
        let mut model: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> = BTreeMap::new();
        let mut counter = 0u64;
        for op in &ops {
            counter += 1;
            match op {
                Op::Put { table, key, len } => {
                    let v = value_for(counter, 3, *len as usize);
                    engine.put(&table_name(*table), &key_of(*key), &v).unwrap();
                    model.entry(table_name(*table)).or_default().insert(key_of(*key), v);
                }
                Op::Delete { table, key } => {
                    engine.delete(&table_name(*table), &key_of(*key)).unwrap();
                    model.entry(table_name(*table)).or_default().remove(&key_of(*key));
                }
                Op::Batch(items) => {
                    let mut b = WriteBatch::new();
                    for (i, (table, key, len)) in items.iter().enumerate() {
                        let t = table_name(*table);
                        match len {
                            Some(len) => {
                                let v = value_for(counter * 100 + i as u64, 4, *len as usize);
                                b.put(&t, &key_of(*key), &v);
                                model.entry(t).or_default().insert(key_of(*key), v);
                            }
                            None => {
                                b.delete(&t, &key_of(*key));
                                model.entry(t).or_default().remove(&key_of(*key));
                            }
                        }
                    }
                    engine.write_batch(&b).unwrap();
                }
                Op::Sync => {
                    engine.sync().unwrap();
                }
                Op::Reopen => {
                    engine.close().unwrap();
                    drop(engine);
                    engine = Engine::open(io.clone(), EngineOptions::default()).unwrap();
                }
            }
        }
        engine.close().unwrap();
        drop(engine);
        let engine = Engine::open(io.clone(), EngineOptions::default()).unwrap();
        for (t, rows) in &model {
            if rows.is_empty() {
                continue;
            }
            let got = engine.scan(t, Bound::Unbounded, Bound::Unbounded, usize::MAX).unwrap();
            let want: Vec<(Vec<u8>, Vec<u8>)> = rows.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(got, want, "table {}", t);
            for (k, v) in rows {
                prop_assert_eq!(engine.get(t, k).unwrap(), Some(v.clone()));
            }
        }
        prop_assert_eq!(engine.status().degraded_reads, 0);
    }
}
