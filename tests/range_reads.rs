//! Rows that lie together on disk are read together: a scan over rows written in key order
//! costs a few device reads, not one per row, and a failed merged read (a latent sector
//! error in the middle of the rows) sends every row it held down the slow path, which
//! returns each exactly (docs/design.md, "Read path").

mod common;
use common::*;
use ectable::{format, Engine, EngineOptions};
use std::ops::Bound;

const ROWS: u64 = 400;
const VALUE_BYTES: usize = 1000;

fn key(i: u64) -> Vec<u8> {
    format!("row{i:06}").into_bytes()
}

#[test]
fn a_scan_of_adjacent_rows_coalesces_its_reads_and_survives_a_bad_block() {
    let (_mems, faulty) = mem_devices(6, 8 << 20, 29);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Engine::open(io.clone(), EngineOptions::default()).unwrap();
    for i in 0..ROWS {
        e.put("t", &key(i), &value_for(i, 29, VALUE_BYTES)).unwrap();
    }
    e.close().unwrap();
    // Reopened: every row on disk (none served from the writer's buffers).
    let e = Engine::open(io, EngineOptions::default()).unwrap();
    let reads = || faulty.iter().map(|f| f.reads_seen()).sum::<u64>();
    let check = |rows: Vec<(Vec<u8>, Vec<u8>)>| {
        assert_eq!(rows.len() as u64, ROWS);
        for (i, (k, v)) in rows.into_iter().enumerate() {
            assert_eq!(k, key(i as u64));
            assert_eq!(v, value_for(i as u64, 29, VALUE_BYTES), "row {i}");
        }
    };
    let before = reads();
    check(
        e.scan("t", Bound::Unbounded, Bound::Unbounded, ROWS as usize)
            .unwrap(),
    );
    let used = reads() - before;
    // ~400 KiB of rows in ~7 stripes of four 16 KiB data chunks: a read per device and
    // stripe run at most, where one read per row took 400 or more.
    assert!(used <= 40, "{used} device reads for {ROWS} adjacent rows");
    assert_eq!(e.status().degraded_reads, 0);

    // Bad blocks in the middle of the rows on one device (one block in each of the chunks of
    // stripes 1..4 it holds, data or parity): the merged reads that cover them fail, and
    // their rows come back rebuilt from the other chunks.
    let chunk0 = ectable::format::DATA_START_BYTES + 4096;
    for stripe in 1..4u64 {
        let block = chunk0 + stripe * 16 * 1024 + 8192;
        faulty[1].add_read_error_range(block..block + 4096);
    }
    let eio_before = faulty[1].counters().eio_reads;
    check(
        e.scan("t", Bound::Unbounded, Bound::Unbounded, ROWS as usize)
            .unwrap(),
    );
    assert!(
        faulty[1].counters().eio_reads > eio_before,
        "the bad block was never read: the test would prove nothing"
    );
    assert!(e.status().degraded_reads > 0);
    // And one by one, through the same path.
    for i in (0..ROWS).step_by(7) {
        assert_eq!(
            e.get("t", &key(i)).unwrap(),
            Some(value_for(i, 29, VALUE_BYTES))
        );
    }
}
