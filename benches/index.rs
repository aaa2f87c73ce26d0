//! The index alone: one table's `KeyMap` against the `BTreeMap` it replaced, for 1,000,000
//! keys of 16 bytes put in three orders (after the whole table, in order inside the table,
//! random), each put followed 1,000 keys later by the settle the flusher does (the entry
//! switches from its pending place to a disk place).
//!
//! Run: `cargo bench --bench index`. One iteration builds the whole map.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ectable::index::{IndexEntry, KeyMap, NearHint, Place, RecordLoc};
use std::collections::BTreeMap;
use std::hint::black_box;

const KEYS: u64 = 1_000_000;
/// How far behind the puts the settles run.
const SETTLE_LAG: usize = 1000;

fn keys(order: &str) -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| match order {
            "random" => format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            _ => format!("{i:016}"),
        })
        .map(String::into_bytes)
        .collect()
}

fn pending() -> IndexEntry {
    IndexEntry {
        lsn: 1,
        value_len: 100,
        place: Place::Pending {
            stripe_seq: 1,
            record_offset: 0,
            segment_id: 1,
        },
    }
}

fn on_disk() -> IndexEntry {
    IndexEntry {
        lsn: 1,
        value_len: 100,
        place: Place::Disk(RecordLoc {
            segment_id: 1,
            offset_in_segment_bytes: 4096,
            height_bytes: 65536,
            ordinal: 0,
            record_offset: 0,
            record_len: 148,
            crc: 7,
        }),
    }
}

fn keymap(keys: &[Vec<u8>], inside: bool) -> KeyMap {
    let (p, d) = (pending(), on_disk());
    let mut m = KeyMap::default();
    if inside {
        // A key after all of them: the others go in order inside the table.
        m.insert(b"~", &p);
    }
    let mut hint = NearHint::default();
    for (i, k) in keys.iter().enumerate() {
        m.insert(k, &p);
        if i >= SETTLE_LAG {
            m.update_near(&keys[i - SETTLE_LAG], &mut hint, |e| *e = d.clone());
        }
    }
    m
}

fn btree(keys: &[Vec<u8>], inside: bool) -> BTreeMap<Vec<u8>, IndexEntry> {
    let (p, d) = (pending(), on_disk());
    let mut m = BTreeMap::new();
    if inside {
        m.insert(b"~".to_vec(), p.clone());
    }
    for (i, k) in keys.iter().enumerate() {
        m.insert(k.clone(), p.clone());
        if i >= SETTLE_LAG {
            if let Some(e) = m.get_mut(keys[i - SETTLE_LAG].as_slice()) {
                *e = d.clone();
            }
        }
    }
    m
}

fn bench_index(c: &mut Criterion) {
    let mut group = c.benchmark_group("index");
    group.sample_size(10);
    group.throughput(Throughput::Elements(KEYS));
    for (name, order, inside) in [
        ("appended", "seq", false),
        ("in-order-inside", "seq", true),
        ("random", "random", false),
    ] {
        let ks = keys(order);
        group.bench_function(BenchmarkId::new("keymap", name), |b| {
            b.iter(|| black_box(keymap(&ks, inside)).len())
        });
        group.bench_function(BenchmarkId::new("btreemap", name), |b| {
            b.iter(|| black_box(btree(&ks, inside)).len())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_index);
criterion_main!(benches);
