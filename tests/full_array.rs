//! A full array of live data: writes fail with the typed "no space" error, nothing
//! acknowledged before is lost, reads keep working, close succeeds and the array reopens
//! with every row. (Deleting, cleaning and writing again on a full array is in
//! tests/cleaning.rs.)

mod common;
use common::*;
use ectable::{format, Engine, EngineOptions, Error};

#[test]
fn filling_the_array_gives_no_space_and_loses_nothing() {
    let (_mems, faulty) = mem_devices(6, 4 << 20, 51);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Engine::open(io.clone(), EngineOptions::default()).unwrap();
    let mut written = 0u64;
    let err = loop {
        match e.put("t", &written.to_le_bytes(), &value_for(written, 1, 2000)) {
            Ok(_) => written += 1,
            Err(err) => break err,
        }
        assert!(written < 100_000, "never ran out of space");
    };
    assert!(
        matches!(err, Error::NoSpace(_)),
        "expected NoSpace, got {err}"
    );
    assert!(written > 100, "only {written} rows fit");
    e.sync().unwrap();
    // Still full: the next write fails the same way; reads work.
    assert!(matches!(e.put("t", b"more", b"x"), Err(Error::NoSpace(_))));
    for i in 0..written {
        assert_eq!(
            e.get("t", &i.to_le_bytes()).unwrap(),
            Some(value_for(i, 1, 2000)),
            "row {i}"
        );
    }
    e.close().unwrap();
    drop(e);
    let e = Engine::open(
        io,
        EngineOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..written {
        assert_eq!(
            e.get("t", &i.to_le_bytes()).unwrap(),
            Some(value_for(i, 1, 2000)),
            "row {i} after reopen"
        );
    }
    assert_eq!(e.status().keys as u64, written);
}
