//! Basic put/get/delete/scan/reopen on memory devices and on files with both I/O engines.

#![allow(clippy::big_endian_bytes)] // big-endian keys sort in numeric order

mod common;
use common::*;
use ectable::{format, Engine, EngineOptions, Error};
use std::ops::Bound;

#[test]
fn put_get_delete_reopen_on_memory() {
    let (_mems, faulty) = mem_devices(6, 8 << 20, 1);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    {
        let e = open_engine_on(io.clone());
        for i in 0..500u64 {
            e.put(
                "t",
                format!("k{i:05}").as_bytes(),
                &value_for(i, 1, (i % 300) as usize),
            )
            .unwrap();
        }
        e.delete("t", b"k00007").unwrap();
        e.sync().unwrap();
        assert_eq!(e.get("t", b"k00001").unwrap(), Some(value_for(1, 1, 1)));
        assert_eq!(e.get("t", b"k00007").unwrap(), None);
        assert_eq!(e.status().writes_stopped, None);
        e.close().unwrap();
        // A closed engine's status does not claim it takes writes.
        assert_eq!(
            e.status().writes_stopped.as_deref(),
            Some("the engine is closed")
        );
    }
    let e = open_engine_on(io.clone());
    // The clean close wrote a checkpoint: nothing is replayed from the log.
    assert_eq!(e.recovery_stats().checkpoint_lsn, 501);
    assert_eq!(e.recovery_stats().checkpoint_keys, 499);
    assert_eq!(e.recovery_stats().records, 0);
    for i in 0..500u64 {
        let got = e.get("t", format!("k{i:05}").as_bytes()).unwrap();
        if i == 7 {
            assert_eq!(got, None);
        } else {
            assert_eq!(got, Some(value_for(i, 1, (i % 300) as usize)), "row {i}");
        }
    }
    let rows = e
        .scan(
            "t",
            Bound::Included(b"k00100".as_slice()),
            Bound::Excluded(b"k00110".as_slice()),
            100,
        )
        .unwrap();
    assert_eq!(rows.len(), 10);
    // A table that never had a key reads like an emptied one.
    assert_eq!(e.get("nope", b"x").unwrap(), None);
    assert!(e
        .scan("nope", Bound::Unbounded, Bound::Unbounded, 10)
        .unwrap()
        .is_empty());
    assert_eq!(e.get_many("nope", &[b"x", b"y"]).unwrap(), vec![None, None]);
    e.put("gone", b"k", b"v").unwrap();
    e.delete("gone", b"k").unwrap();
    assert_eq!(e.get("gone", b"k").unwrap(), e.get("never", b"k").unwrap());
}

#[test]
fn files_on_both_engines() {
    for kind in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let paths = file_paths(dir.path(), 6);
        format_files(&paths, 8 << 20, 4, 2, kind);
        {
            let e = Engine::open(open_files(&paths, None, kind), EngineOptions::default()).unwrap();
            for i in 0..200u64 {
                e.put_sync("t", &i.to_le_bytes(), &value_for(i, 9, 1000))
                    .unwrap();
            }
            e.close().unwrap();
        }
        let e = Engine::open(open_files(&paths, None, kind), EngineOptions::default()).unwrap();
        for i in 0..200u64 {
            assert_eq!(
                e.get("t", &i.to_le_bytes()).unwrap(),
                Some(value_for(i, 9, 1000)),
                "{kind:?} row {i}"
            );
        }
        let st = e.status();
        assert!(st.short_stripes_written == 0 || st.stripes_written > 0);
    }
}

#[test]
fn checkpoint_plus_log_tail_and_fallback_when_checkpoint_is_bad() {
    let (mems, faulty) = mem_devices(6, 8 << 20, 2);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    {
        let e = open_engine_on(io.clone());
        for i in 0..300u64 {
            e.put("t", &i.to_be_bytes(), &value_for(i, 1, 100)).unwrap();
        }
        e.close().unwrap(); // writes a checkpoint at LSN 300
    }
    let e = open_engine_on(io.clone());
    assert_eq!(e.recovery_stats().checkpoint_lsn, 300);
    for i in 300..350u64 {
        e.put("t", &i.to_be_bytes(), &value_for(i, 1, 100)).unwrap();
    }
    e.delete("t", &5u64.to_be_bytes()).unwrap();
    e.sync().unwrap();
    // Crash: no clean close, so no new checkpoint; the tail must come from the log.
    std::mem::forget(e);
    let check = |e: &Engine| {
        for i in 0..350u64 {
            let want = if i == 5 {
                None
            } else {
                Some(value_for(i, 1, 100))
            };
            assert_eq!(e.get("t", &i.to_be_bytes()).unwrap(), want, "row {i}");
        }
    };
    let ro = EngineOptions {
        read_only: true,
        ..Default::default()
    };
    let e = Engine::open(io.clone(), ro.clone()).unwrap();
    assert_eq!(e.recovery_stats().checkpoint_lsn, 300);
    assert_eq!(
        e.recovery_stats().records,
        51,
        "only the tail after the checkpoint is replayed"
    );
    check(&e);
    drop(e);
    // Destroy the checkpoint on every device: recovery falls back to the whole log.
    let seg_bytes = 256u64 << 10;
    for m in &mems {
        for dseg in 0..((8u64 << 20) - (1 << 20)) / seg_bytes {
            let off = (1 << 20) + dseg * seg_bytes;
            let hdr = m.peek(off, 64);
            if &hdr[0..8] == b"ECTSEGH1" && hdr[50] == 1 {
                m.poke(off + 4096, &[0xFF; 4096]);
            }
        }
    }
    let e = Engine::open(io.clone(), ro).unwrap();
    assert_eq!(
        e.recovery_stats().checkpoint_lsn,
        0,
        "a broken checkpoint must be ignored"
    );
    assert_eq!(e.recovery_stats().records, 351);
    check(&e);
}

/// Values not yet on disk are read from the writer's stripes (the open one, sealed ones, and
/// ones being written), and from the disk once settled: every read sees the newest value.
#[test]
fn read_your_writes_before_sync() {
    let (_mems, faulty) = mem_devices(6, 16 << 20, 3);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = open_engine_on(io);
    for round in 0..4u64 {
        for i in 0..400u64 {
            e.put(
                "t",
                &i.to_le_bytes(),
                &value_for(i, round, 100 + (i as usize * 7) % 900),
            )
            .unwrap();
            // The value just written, before any sync, while earlier stripes are in flight.
            if i % 37 == 0 {
                let got = e.get("t", &i.to_le_bytes()).unwrap();
                assert_eq!(got, Some(value_for(i, round, 100 + (i as usize * 7) % 900)));
            }
        }
        let keys: Vec<[u8; 8]> = (0..400u64).map(|i| i.to_le_bytes()).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        let got = e.get_many("t", &refs).unwrap();
        for (i, v) in got.into_iter().enumerate() {
            let i = i as u64;
            assert_eq!(
                v,
                Some(value_for(i, round, 100 + (i as usize * 7) % 900)),
                "round {round} row {i}"
            );
        }
    }
    e.sync().unwrap();
    assert_eq!(
        e.get("t", &5u64.to_le_bytes()).unwrap(),
        Some(value_for(5, 3, 135))
    );
}

#[test]
fn wait_durable_waits_for_its_lsn_and_refuses_one_never_appended() {
    let (_mems, faulty) = mem_devices(6, 8 << 20, 3);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = open_engine_on(io.clone());
    let first = e.put("t", b"a", b"1").unwrap();
    let second = e.put("t", b"b", b"2").unwrap();
    assert!(e.wait_durable(first).unwrap() >= first);
    assert!(e.wait_durable(second).unwrap() >= second);
    // Returns at once, with a typed error, instead of waiting for ever.
    match e.wait_durable(second + 100) {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("never appended"), "{msg}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    e.close().unwrap();
    let ro = Engine::open(
        io,
        EngineOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(ro.wait_durable(second).unwrap() >= second);
    assert!(matches!(
        ro.wait_durable(second + 1),
        Err(Error::InvalidArgument(_))
    ));
}

/// The key/value calls refuse writes to system tables ('$' names: typed tables' schemas,
/// the backup horizon) and change nothing: a raw write there would leave typed tables
/// unopenable (found by the `api` fuzz target). Typed tables, whose schemas the engine writes
/// itself, still work, and the system tables can be read.
#[test]
fn key_value_calls_refuse_system_tables_and_change_nothing() {
    use ectable::table::{Schema, Tables, SCHEMA_TABLE};
    use ectable::{WriteBatch, BACKUP_TABLE};
    use std::sync::Arc;
    let (_mems, faulty) = mem_devices(6, 8 << 20, 1);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Arc::new(open_engine_on(io.clone()));
    let tables = Tables::open(e.clone()).unwrap();
    tables
        .create_table("users", &Schema::parse("id:int64").unwrap())
        .unwrap();
    let before = e
        .scan(SCHEMA_TABLE, Bound::Unbounded, Bound::Unbounded, 100)
        .unwrap();
    assert_eq!(before.len(), 1, "the schema record of 'users'");
    let lsn_before = e.sync().unwrap();
    for t in [SCHEMA_TABLE, BACKUP_TABLE, "$other"] {
        let reserved =
            |r: Result<u64, Error>| matches!(r, Err(Error::ReservedTableName(n)) if n == t);
        assert!(reserved(e.put(t, b"users", b"garbage")), "put {t}");
        assert!(
            reserved(e.put_sync(t, b"users", b"garbage")),
            "put_sync {t}"
        );
        assert!(reserved(e.delete(t, b"users")), "delete {t}");
        let mut b = WriteBatch::new();
        b.put("t", b"a", b"1").delete(t, b"users");
        assert!(reserved(e.write_batch(&b)), "batch with {t}");
    }
    assert!(
        matches!(e.get("t", b"a"), Ok(None)),
        "the refused batch wrote nothing"
    );
    assert_eq!(e.sync().unwrap(), lsn_before, "nothing was appended");
    drop(tables);
    e.close().unwrap();
    drop(e);
    let e = Arc::new(open_engine_on(io));
    assert_eq!(
        e.scan(SCHEMA_TABLE, Bound::Unbounded, Bound::Unbounded, 100)
            .unwrap(),
        before
    );
    assert!(matches!(e.get(BACKUP_TABLE, b"users"), Ok(None)));
    let tables = Tables::open(e).unwrap();
    assert!(tables.schema("users").is_some());
}

/// The path helpers: a blank set of files is formatted and opened, a second call opens what
/// the first made, a set of which only some hold an array is refused and left alone.
#[test]
fn open_or_format_formats_a_blank_set_once_and_refuses_half_a_set() {
    let dir = tempfile::tempdir().unwrap();
    let paths = file_paths(dir.path(), 6);
    let fmt = fmt_opts(4, 2);
    let e = Engine::open_or_format(&paths, &fmt, Some(16 << 20), EngineOptions::default())
        .expect("format a blank set");
    e.put_sync("t", b"k", b"v").unwrap();
    e.close().unwrap();
    drop(e);
    let e = Engine::open_or_format(&paths, &fmt, Some(16 << 20), EngineOptions::default())
        .expect("open what is there");
    assert_eq!(e.get("t", b"k").unwrap(), Some(b"v".to_vec()));
    e.close().unwrap();
    drop(e);
    let e = Engine::open_paths(
        &paths,
        EngineOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(e.get("t", b"k").unwrap(), Some(b"v".to_vec()));
    drop(e);
    // Two members swapped for blank files: not a blank set, nothing is formatted.
    let mut half = paths[..4].to_vec();
    half.extend(file_paths(&dir.path().join("new"), 2));
    std::fs::create_dir(dir.path().join("new")).unwrap();
    let before: Vec<Vec<u8>> = paths[..4]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let r = Engine::open_or_format(&half, &fmt, Some(16 << 20), EngineOptions::default());
    assert!(
        matches!(r, Err(Error::AlreadyFormatted { .. })),
        "{:?}",
        r.err()
    );
    let after: Vec<Vec<u8>> = paths[..4]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(before == after, "a refused open_or_format changed a member");
}

/// A checkpoint is read a prefix of its last segment first (a quarter of the segment): an
/// image inside that prefix, one that runs past it, and one over two segments all load
/// whole (nothing replayed from the log, every key there), and the small one costs only the
/// prefix's reads.
#[test]
fn checkpoints_inside_past_and_beyond_the_first_read_all_load() {
    const S: u64 = 512 << 10;
    let (_mems, faulty) = mem_devices(6, 96 << 20, 5);
    let io = io_of(&faulty);
    let mut opts = fmt_opts(4, 2);
    (opts.chunk_size_bytes, opts.segment_size_bytes) = (4 << 10, S as u32);
    format(io.as_ref(), &opts).unwrap();
    let key = |i: u64| format!("k{i:07}").into_bytes();
    let mut written = 0u64;
    // Compact entries of these keys take about 12 bytes: 1,000 keys lie in the first read
    // (30 stripes of 14,336 bytes), 60,000 run past it, 200,000 fill more than a segment.
    for keys in [1_000u64, 60_000, 200_000] {
        let e = open_engine_on(io.clone());
        for i in written..keys {
            e.put("t", &key(i), &i.to_le_bytes()[..(i % 8) as usize])
                .unwrap();
        }
        written = keys;
        e.close().unwrap();
        let e = open_engine_on(io.clone());
        let r = e.recovery_stats();
        assert_eq!(r.checkpoint_keys, keys as usize, "{keys} keys: {r:?}");
        assert_eq!(r.records, 0, "{keys} keys: the log was replayed: {r:?}");
        // The first read holds 30 stripes of 14,336 bytes, a segment 127.
        let past = [(60_000, 30 * 14_336), (200_000, 127 * 14_336)];
        for (n, bytes) in past {
            assert!(keys < n || r.checkpoint_bytes > bytes, "{keys} keys: {r:?}");
        }
        if keys == 1_000 {
            let log_reads = (r.segments + r.discarded_segments) as u64 * 6 * S;
            assert!(
                r.bytes_read <= log_reads + 6 * (S / 4),
                "the small checkpoint was read in full: {r:?}"
            );
        }
        for i in (0..keys).step_by(97).chain([keys - 1]) {
            assert_eq!(
                e.get("t", &key(i)).unwrap().as_deref(),
                Some(&i.to_le_bytes()[..(i % 8) as usize]),
                "{keys} keys: key {i}"
            );
        }
        assert_eq!(
            e.scan("t", Bound::Unbounded, Bound::Unbounded, usize::MAX)
                .unwrap()
                .len(),
            keys as usize
        );
        e.close().unwrap();
    }
}

/// Recovery reads the segment the log resumes in only from the checkpoint's resume point on,
/// and that segment's header apart: a member whose header there is bad still gets it
/// rewritten by the session's first write, and the writes after the resume point are all
/// replayed.
#[test]
fn a_bad_header_of_the_resume_segment_is_rewritten() {
    use ectable::format::{SegmentHeader, DATA_START_BYTES};
    const DEV: u64 = 8 << 20;
    let (mems, faulty) = mem_devices(6, DEV, 6);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let key = |i: u64| format!("k{i:04}").into_bytes();
    let e = open_engine_on(io.clone());
    for i in 0..100 {
        e.put("t", &key(i), &value_for(i, 1, 300)).unwrap();
    }
    e.close().unwrap(); // a checkpoint: the log resumes inside its last segment
    let e = open_engine_on(io.clone());
    let resume = e.recovery_stats().checkpoint_resume_segment;
    for i in 50..150 {
        e.put("t", &key(i), &value_for(i, 2, 300)).unwrap();
    }
    e.sync().unwrap();
    // No close: no checkpoint after these writes.
    std::mem::forget(e);
    // Garbage over the resume segment's header on the member that holds its position 0.
    let header_of = |m: &ectable::devices::MemDevice| {
        (DATA_START_BYTES..DEV).step_by(4096).find(|&at| {
            SegmentHeader::decode(&m.peek(at, 4096))
                .is_ok_and(|h| h.segment_id == resume && h.position == 0)
        })
    };
    let (dev, at) = (0..6)
        .find_map(|d| header_of(&mems[d]).map(|at| (d, at)))
        .expect("the resume segment's header");
    mems[dev].poke(at, &[0x5A; 64]);
    let e = open_engine_on(io_of(&wrap(&mems, 7)));
    let r = e.recovery_stats();
    assert_eq!(r.checkpoint_resume_segment, resume);
    assert_eq!(r.records, 100, "the writes after the resume point: {r:?}");
    e.put("t", b"first write", b"repairs").unwrap();
    e.close().unwrap();
    assert_eq!(
        header_of(&mems[dev]),
        Some(at),
        "the bad header was not rewritten"
    );
    let e = open_engine_on(io_of(&wrap(&mems, 8)));
    for i in 0..150 {
        let want = value_for(i, if i < 50 { 1 } else { 2 }, 300);
        assert_eq!(e.get("t", &key(i)).unwrap(), Some(want), "key {i}");
    }
}
