//! Basic put/get/delete/scan/reopen on memory devices and on files with both I/O engines.

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
            e.put("t", format!("k{i:05}").as_bytes(), &value_for(i, 1, (i % 300) as usize)).unwrap();
        }
        e.delete("t", b"k00007").unwrap();
        e.sync().unwrap();
        assert_eq!(e.get("t", b"k00001").unwrap(), Some(value_for(1, 1, 1)));
        assert_eq!(e.get("t", b"k00007").unwrap(), None);
        e.close().unwrap();
    }
    let e = open_engine_on(io.clone());
    assert_eq!(e.recovery_stats().records, 501);
    for i in 0..500u64 {
        let got = e.get("t", format!("k{i:05}").as_bytes()).unwrap();
        if i == 7 {
            assert_eq!(got, None);
        } else {
            assert_eq!(got, Some(value_for(i, 1, (i % 300) as usize)), "row {i}");
        }
    }
    let rows = e.scan("t", Bound::Included(b"k00100".as_slice()), Bound::Excluded(b"k00110".as_slice()), 100).unwrap();
    assert_eq!(rows.len(), 10);
    assert!(matches!(e.get("nope", b"x"), Err(Error::NoSuchTable(_))));
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
                e.put_sync("t", &i.to_le_bytes(), &value_for(i, 9, 1000)).unwrap();
            }
            e.close().unwrap();
        }
        let e = Engine::open(open_files(&paths, None, kind), EngineOptions::default()).unwrap();
        for i in 0..200u64 {
            assert_eq!(e.get("t", &i.to_le_bytes()).unwrap(), Some(value_for(i, 9, 1000)), "{kind:?} row {i}");
        }
        let st = e.status();
        assert!(st.short_stripes_written == 0 || st.stripes_written > 0);
    }
}
