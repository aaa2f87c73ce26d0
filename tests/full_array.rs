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
    // What status promises an empty array holds; checked against what fitted below.
    let empty = e.status();
    let (fill, room) = empty.fill().expect("the engine reports what fits");
    assert!(fill < 0.01 && room == empty.fillable_bytes, "{fill} {room}");
    assert!(
        room < empty.usable_capacity_bytes,
        "the reserve is left out"
    );
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
    // Status says it is full, and what fitted is what it said would fit (stripe ends lose
    // a little).
    let full = e.status();
    let (fill, left) = full.fill().unwrap();
    assert!(
        fill >= ectable::Status::NEARLY_FULL,
        "status says {:.1}% full when writes fail for lack of space",
        fill * 100.0
    );
    assert!(left < room / 20, "{left} of {room} left");
    let fitted = full.live_bytes;
    // Filling moved little: near full, a writer waiting for space does not make the cleaner
    // rewrite nearly full segments for the last few bytes (it did, 25 times the data).
    assert!(
        full.cleaner.bytes_relocated < fitted / 4,
        "filling {fitted} bytes moved {} bytes",
        full.cleaner.bytes_relocated
    );
    assert!(
        fitted <= room && fitted as f64 >= room as f64 * 0.9,
        "status promised {room} bytes, {fitted} fitted"
    );
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
