//! The engine side of backups: a full image taken while a writer runs equals the state at
//! its LSN; the changes after it, read while the cleaner runs hard on a small array, take
//! that image exactly to the state at their end LSN (deletes included), because the
//! registered horizon keeps the history; an LSN before the horizon, or no horizon, is
//! refused with `HistoryGone`; an unfinished restore makes the array refuse to open.

mod common;
use common::*;
use ectable::{format, CleanerOptions, Engine, EngineOptions, Error};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

type State = BTreeMap<(String, Vec<u8>), Vec<u8>>;
/// (lsn, table, key, value or None for a delete), as acknowledged by the engine.
type History = Vec<(u64, String, Vec<u8>, Option<Vec<u8>>)>;

fn state_at(history: &History, lsn: u64) -> State {
    let mut s = State::new();
    let mut h: Vec<_> = history.iter().filter(|h| h.0 <= lsn).collect();
    h.sort_by_key(|h| h.0);
    for (_, t, k, v) in h {
        match v {
            Some(v) => s.insert((t.clone(), k.clone()), v.clone()),
            None => s.remove(&(t.clone(), k.clone())),
        };
    }
    s
}

fn eager() -> EngineOptions {
    EngineOptions {
        cleaner: CleanerOptions {
            // Always cleaning: every pass meets the horizon.
            start_free_fraction: 0.95,
            target_free_fraction: 0.99,
            interval: std::time::Duration::from_millis(2),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A writer thread: overwrites and deletes over 300 keys of two tables until stopped.
fn writer(e: &Engine, history: &Mutex<History>, stop: &AtomicBool, seed: u64) {
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let table = if i.is_multiple_of(3) { "b" } else { "a" };
        let key = format!("k{:03}", (i * 7919 + seed) % 300).into_bytes();
        let (lsn, v) = if i.is_multiple_of(11) {
            (e.delete(table, &key).expect("delete"), None)
        } else {
            let v = value_for(i, seed, 500 + (i as usize * 37) % 3000);
            (e.put(table, &key, &v).expect("put"), Some(v))
        };
        history
            .lock()
            .unwrap()
            .push((lsn, table.to_string(), key, v));
        if i.is_multiple_of(16) {
            e.sync().expect("sync");
            // Paced, so that the history kept between two backups fits the array.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    e.sync().expect("sync");
}

#[test]
fn full_image_and_changes_reproduce_the_state_at_their_lsns_while_the_cleaner_runs() {
    let (_mems, faulty) = mem_devices(6, 8 << 20, 81);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Arc::new(Engine::open(io.clone(), eager()).unwrap());
    let history = Mutex::new(History::new());
    let stop = AtomicBool::new(false);
    // No history is kept before a chain is registered.
    assert!(matches!(
        e.backup_changes(0, false, &mut |_| Ok(())),
        Err(Error::HistoryGone { .. })
    ));
    let (full, full_lsn, chain) = std::thread::scope(|s| {
        let w = s.spawn(|| writer(&e, &history, &stop, 81));
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut full = State::new();
        let full_lsn = e
            .backup_full(true, &mut |t, k, v| {
                full.insert((t.to_string(), k.to_vec()), v.to_vec());
                Ok(())
            })
            .unwrap();
        assert_eq!(e.backup_horizon(), Some(full_lsn));
        // Three incrementals while the writer and the cleaner go on.
        let mut chain = Vec::new();
        let mut from = full_lsn;
        for _ in 0..3 {
            std::thread::sleep(std::time::Duration::from_millis(300));
            let mut changes = Vec::new();
            let end = e
                .backup_changes(from, true, &mut |c| {
                    changes.push(c.clone());
                    Ok(())
                })
                .unwrap();
            assert!(end >= from);
            chain.push((from, end, changes));
            from = end;
        }
        stop.store(true, Ordering::SeqCst);
        w.join().unwrap();
        (full, full_lsn, chain)
    });
    let history = history.into_inner().unwrap();
    assert_eq!(
        full,
        state_at(&history, full_lsn),
        "full image at LSN {full_lsn}"
    );
    let mut state = full;
    let mut deletes = 0;
    for (from, end, changes) in &chain {
        let mut last = *from;
        for c in changes {
            assert!(
                c.lsn > last && c.lsn <= *end,
                "changes out of order or range"
            );
            last = c.lsn;
            let k = (c.table.clone(), c.key.clone());
            match &c.value {
                Some(v) => state.insert(k, v.clone()),
                None => {
                    deletes += 1;
                    state.remove(&k)
                }
            };
        }
        assert_eq!(
            state,
            state_at(&history, *end),
            "state after the changes up to {end}"
        );
    }
    let cleaner = e.cleaner_stats();
    eprintln!(
        "full at LSN {full_lsn}, {} incrementals with {} changes ({deletes} deletes); cleaner freed {} segments; {cleaner:?}; {:?}",
        chain.len(),
        chain.iter().map(|c| c.2.len()).sum::<usize>(),
        cleaner.segments_freed,
        e.status().free_segments
    );
    assert!(deletes > 0);
    assert!(
        cleaner.segments_freed > 0,
        "the cleaner never ran: history retention was not exercised"
    );
    // Before the horizon: refused. After a reopen the horizon is still there.
    let h = e.backup_horizon().unwrap();
    assert!(matches!(
        e.backup_changes(full_lsn, false, &mut |_| Ok(())),
        Err(Error::HistoryGone { .. })
    ));
    e.close().unwrap();
    drop(e);
    let e = Engine::open(io, EngineOptions::default()).unwrap();
    assert_eq!(e.backup_horizon(), Some(h));
    e.backup_changes(h, false, &mut |_| Ok(())).unwrap();
    e.clear_backup_horizon().unwrap();
    assert!(matches!(
        e.backup_changes(h, false, &mut |_| Ok(())),
        Err(Error::HistoryGone { .. })
    ));
}

#[test]
fn an_unfinished_restore_refuses_to_open() {
    let (_mems, faulty) = mem_devices(6, 4 << 20, 82);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Engine::open(io.clone(), EngineOptions::default()).unwrap();
    e.begin_restore("from full-0001.ectb").unwrap();
    e.put("t", b"k", b"v").unwrap();
    drop(e);
    match Engine::open(io.clone(), EngineOptions::default()) {
        Err(Error::RestoreIncomplete { started }) => {
            assert!(started.contains("full-0001"), "{started}")
        }
        Err(e) => panic!("expected RestoreIncomplete, got {e}"),
        Ok(_) => panic!("an unfinished restore opened"),
    }
    let e = Engine::open(
        io.clone(),
        EngineOptions {
            allow_incomplete_restore: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(e.restore_in_progress().unwrap().is_some());
    e.finish_restore().unwrap();
    drop(e);
    let e = Engine::open(io, EngineOptions::default()).unwrap();
    assert_eq!(e.get("t", b"k").unwrap(), Some(b"v".to_vec()));
}

/// A sink that fails part-way (a full disk, a closed pipe) ends the full backup with its
/// error, promptly (the threads reading ahead stop too), registers no horizon, and the
/// engine goes on: a second backup reads every row, in key order, across the batches that
/// several threads read ahead (60,000 rows: four batches of at most 16,384).
#[test]
fn a_failing_sink_ends_the_full_backup_with_its_error() {
    let (_mems, faulty) = mem_devices(6, 24 << 20, 41);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Engine::open(io, EngineOptions::default()).unwrap();
    let rows = 60_000u64;
    for i in 0..rows {
        e.put("t", format!("k{i:06}").as_bytes(), &value_for(i, 41, 40))
            .unwrap();
    }
    e.sync().unwrap();
    // The sink's own error type comes back unchanged (Error::Callback).
    #[derive(Debug, PartialEq)]
    struct SinkFull(u64);
    impl std::fmt::Display for SinkFull {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "sink full after {} rows", self.0)
        }
    }
    impl std::error::Error for SinkFull {}
    let mut seen = 0u64;
    let err = e
        .backup_full(true, &mut |_, _, _| {
            seen += 1;
            if seen == 40_000 {
                return Err(Error::callback(SinkFull(seen)));
            }
            Ok(())
        })
        .unwrap_err();
    assert_eq!(err.code(), "CALLBACK");
    let mine = err
        .into_callback()
        .expect("the sink's error")
        .downcast::<SinkFull>();
    assert_eq!(*mine.expect("of the sink's type"), SinkFull(40_000));
    assert_eq!(seen, 40_000);
    assert_eq!(e.status().backup_horizon.horizon_lsn, None);
    let mut all = 0u64;
    e.backup_full(false, &mut |t, k, v| {
        let i: u64 = std::str::from_utf8(&k[1..]).unwrap().parse().unwrap();
        assert_eq!((t, v), ("t", value_for(i, 41, 40).as_slice()));
        assert_eq!(i, all, "rows come in key order");
        all += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(all, rows);
}
