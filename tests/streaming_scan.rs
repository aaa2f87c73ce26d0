//! `Engine::scan_iter`: a scan that pages through the index with the next pages' reads in
//! flight (docs/design.md, "Streaming scans"). It returns what the model holds, in key order
//! either way, over several pages (by row count and by bytes); rows moved by the cleaner
//! while their page's reads are in flight come back right; bad blocks are read around.

mod common;
use common::*;
use ectable::{format, Engine, EngineOptions};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn key(i: u64) -> Vec<u8> {
    format!("r{i:06}").into_bytes()
}

fn collect(it: ectable::Scan<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.map(|r| r.expect("scan row")).collect()
}

#[test]
fn a_streaming_scan_returns_the_model_over_many_pages_both_ways() {
    let (_mems, faulty) = mem_devices(6, 48 << 20, 7);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Engine::open(io.clone(), EngineOptions::default()).unwrap();
    let mut model = BTreeMap::new();
    // 6,000 rows: pages end by row count (2,048) and, where the values are large, by bytes.
    for i in 0..6000u64 {
        let len = if (2000..3000).contains(&i) {
            12_000
        } else {
            40 + (i as usize % 7) * 300
        };
        let v = value_for(i, 7, len);
        e.put("t", &key(i), &v).unwrap();
        model.insert(key(i), v);
    }
    for i in (0..6000u64).step_by(13) {
        e.delete("t", &key(i)).unwrap();
        model.remove(&key(i));
    }
    e.close().unwrap();
    drop(e);
    let e = Engine::open(io, EngineOptions::default()).unwrap();
    // Some rows only in the writer's buffers.
    for i in 6000..6100u64 {
        let v = value_for(i, 8, 500);
        e.put("t", &key(i), &v).unwrap();
        model.insert(key(i), v);
    }
    let want = |lo: Bound<&Vec<u8>>, hi: Bound<&Vec<u8>>| -> Vec<(Vec<u8>, Vec<u8>)> {
        model
            .range::<Vec<u8>, _>((lo, hi))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let all = collect(
        e.scan_iter("t", Bound::Unbounded, Bound::Unbounded)
            .unwrap(),
    );
    assert_eq!(all.len(), model.len());
    assert_eq!(all, want(Bound::Unbounded, Bound::Unbounded));
    let mut rev = collect(
        e.scan_iter_rev("t", Bound::Unbounded, Bound::Unbounded)
            .unwrap(),
    );
    rev.reverse();
    assert_eq!(rev, all);
    let (a, b) = (key(1234), key(4321));
    assert_eq!(
        collect(
            e.scan_iter("t", Bound::Excluded(&a[..]), Bound::Included(&b[..]))
                .unwrap()
        ),
        want(Bound::Excluded(&a), Bound::Included(&b))
    );
    let mut part = collect(
        e.scan_iter_rev("t", Bound::Included(&a[..]), Bound::Excluded(&b[..]))
            .unwrap(),
    );
    part.reverse();
    assert_eq!(part, want(Bound::Included(&a), Bound::Excluded(&b)));
    // The same as the collecting scan.
    assert_eq!(
        all,
        e.scan("t", Bound::Unbounded, Bound::Unbounded, usize::MAX)
            .unwrap()
    );
    // No table, no rows; a bad name is refused at once.
    assert!(collect(
        e.scan_iter("none", Bound::Unbounded, Bound::Unbounded)
            .unwrap()
    )
    .is_empty());
    assert!(e.scan_iter("", Bound::Unbounded, Bound::Unbounded).is_err());
    assert_eq!(e.status().degraded_reads, 0);

    // Bad blocks on one device: the pages' merged reads over them fail, and their rows come
    // back through the ordinary path (rebuilt).
    let start = ectable::format::DATA_START_BYTES;
    faulty[3].add_read_error_range(start..start + (16 << 20));
    let eio = faulty[3].counters().eio_reads;
    assert_eq!(
        collect(
            e.scan_iter("t", Bound::Unbounded, Bound::Unbounded)
                .unwrap()
        ),
        all
    );
    assert!(
        faulty[3].counters().eio_reads > eio,
        "the bad blocks were read"
    );
    assert!(e.status().degraded_reads > 0);
    e.close().unwrap();
}

#[test]
fn rows_moved_by_the_cleaner_during_a_streaming_scan_come_back_in_order_and_right() {
    let (_mems, faulty) = mem_devices(6, 10 << 20, 17);
    let io = io_of(&faulty);
    let mut opts = fmt_opts(4, 2);
    opts.segment_size_bytes = 256 << 10;
    format(io.as_ref(), &opts).unwrap();
    let e = Arc::new(Engine::open(io, EngineOptions::default()).unwrap());
    const KEYS: u64 = 3000;
    const LEN: usize = 300;
    let value = |i: u64, ver: u64| versioned_value(i, ver, 17, LEN);
    for i in 0..KEYS {
        e.put("t", &key(i), &value(i, 0)).unwrap();
    }
    e.sync().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (e, stop) = (e.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut ver = 1;
            while !stop.load(Ordering::Relaxed) {
                for i in (0..KEYS).step_by(3) {
                    e.put("t", &key(i), &value(i, ver)).unwrap();
                }
                e.sync().unwrap();
                e.clean(4).unwrap();
                ver += 1;
            }
        })
    };
    let mut rounds = 0;
    while e.cleaner_stats().segments_freed < 30 || rounds < 10 {
        let mut n = 0u64;
        for row in e
            .scan_iter("t", Bound::Unbounded, Bound::Unbounded)
            .unwrap()
        {
            let (k, v) = row.unwrap();
            assert_eq!(k, key(n), "every key, in order");
            let (kk, ver) = version_of(&v);
            assert_eq!(kk, n, "row {n} holds key {kk}'s value");
            assert_eq!(v, value(n, ver), "row {n} version {ver}: wrong bytes");
            n += 1;
        }
        assert_eq!(n, KEYS);
        rounds += 1;
        assert!(rounds < 2000, "the cleaner freed too few segments");
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    eprintln!(
        "{rounds} scans, {} segments freed, {} rows looked up again",
        e.cleaner_stats().segments_freed,
        e.status().reads_looked_again
    );
    e.close().unwrap();
}
