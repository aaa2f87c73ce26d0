//! A panic in an engine thread poisons the engine instead of hanging it (docs/design.md,
//! "Worker threads").
//!
//! Before, a panic in the flusher left `flusher_done` unset and every caller waiting for
//! durability blocked forever; a panic in the cleaner left writers on a full array waiting
//! for a pass that never came. Now every worker runs under a guard that catches the panic,
//! latches `Error::Poisoned` naming the thread, and wakes every waiter.
//!
//! Each test makes one worker panic through the engine's test hook (the `test-hooks`
//! feature, on only for tests), then checks: the waiting writer and a reader return
//! `Poisoned` naming that thread within a second; every later call does too; closing does not
//! hang; and reopening the devices recovers every write acknowledged before the panic.

mod common;

use common::*;
use ectable::{format, Engine, EngineOptions, Error, Worker};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ACKED: u64 = 200;

fn key(i: u64) -> Vec<u8> {
    format!("k{i:06}").into_bytes()
}

/// An array with ACKED synced rows; returns the fault devices (to reopen) and the engine.
fn array_with_acked_rows(seed: u64) -> (Vec<Arc<ectable::devices::FaultyDevice>>, Engine) {
    let (_mems, faulty) = mem_devices(6, 64 << 20, seed);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).expect("format");
    let engine = Engine::open(io, EngineOptions::default()).expect("open");
    for i in 0..ACKED {
        engine
            .put("t", &key(i), &value_for(i, seed, 300))
            .expect("put");
    }
    engine.sync().expect("sync");
    (faulty, engine)
}

fn assert_poisoned_by(r: Result<impl std::fmt::Debug, Error>, thread: &str) {
    match r {
        Err(Error::Poisoned { thread: t, detail }) => {
            assert_eq!(t, thread, "poisoned by the wrong thread ({detail})");
            assert!(detail.contains("test hook"), "{detail}");
        }
        other => panic!("expected Poisoned by the {thread} thread, got {other:?}"),
    }
}

/// Reopens the devices and checks every acknowledged row.
fn check_acked_rows(faulty: &[Arc<ectable::devices::FaultyDevice>], seed: u64) {
    let engine = Engine::open(io_of(faulty), EngineOptions::default()).expect("reopen");
    for i in 0..ACKED {
        assert_eq!(
            engine.get("t", &key(i)).expect("get after reopen"),
            Some(value_for(i, seed, 300)),
            "acknowledged row {i} lost"
        );
    }
    engine.close().expect("close after reopen");
}

#[test]
fn flusher_panic_fails_waiting_writers_and_readers() {
    let seed = 0xF1A5;
    let (faulty, engine) = array_with_acked_rows(seed);
    let engine = Arc::new(engine);
    engine.panic_worker_for_test(Worker::Flusher);
    // A writer that waits for durability: the flusher panics when it takes this stripe.
    // The value is over half a stripe, so it takes a stripe, not the sync journal (which a
    // lone syncing caller may write itself, without the flusher).
    let writer = {
        let e = engine.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let r = e.put_sync("t", b"after", &[7u8; 40 << 10]);
            (r, t0.elapsed())
        })
    };
    let (r, took) = writer.join().expect("writer thread");
    assert_poisoned_by(r, "flusher");
    // Not a hang: the bound is generous for a debug build on a busy two-core machine (a CI
    // run beside other work once took 1.27 s; alone it takes milliseconds).
    assert!(took < Duration::from_secs(5), "the writer waited {took:?}");
    // The latch is visible and every later call fails the same way, reads included.
    let (thread, _) = engine.poisoned().expect("poisoned");
    assert_eq!(thread, "flusher");
    let t0 = Instant::now();
    assert_poisoned_by(engine.get("t", &key(1)), "flusher");
    assert_poisoned_by(engine.put("t", b"x", b"y"), "flusher");
    assert_poisoned_by(engine.sync(), "flusher");
    assert_poisoned_by(engine.checkpoint(), "flusher");
    assert!(t0.elapsed() < Duration::from_secs(1));
    // Closing does not hang, and reports why it could not finish cleanly.
    let t0 = Instant::now();
    assert_poisoned_by(engine.close(), "flusher");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "close took {:?}",
        t0.elapsed()
    );
    drop(engine);
    check_acked_rows(&faulty, seed);
}

#[test]
fn cleaner_panic_poisons_the_engine() {
    let seed = 0xC1EA;
    let (faulty, engine) = array_with_acked_rows(seed);
    let engine = Arc::new(engine);
    // A reader and a writer running while the cleaner panics.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = {
        let (e, stop) = (engine.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            loop {
                if let Err(err) = e.get("t", &key(i % ACKED)) {
                    return Some(err);
                }
                if let Err(err) = e.put_sync("u", &key(i), b"v") {
                    return Some(err);
                }
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return None;
                }
                i += 1;
            }
        })
    };
    engine.panic_worker_for_test(Worker::Cleaner);
    let t0 = Instant::now();
    while engine.poisoned().is_none() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (thread, _) = engine
        .poisoned()
        .expect("the cleaner's panic poisons the engine");
    assert_eq!(thread, "cleaner");
    let poisoned_at = Instant::now();
    let err = busy.join().expect("busy thread");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        poisoned_at.elapsed() < Duration::from_secs(1),
        "the busy caller took {:?} to notice",
        poisoned_at.elapsed()
    );
    assert_poisoned_by(
        Err::<(), _>(err.expect("the busy caller saw an error")),
        "cleaner",
    );
    assert_poisoned_by(engine.get("t", &key(0)), "cleaner");
    assert_poisoned_by(engine.clean(1), "cleaner");
    assert_poisoned_by(engine.close(), "cleaner");
    drop(engine);
    check_acked_rows(&faulty, seed);
}
