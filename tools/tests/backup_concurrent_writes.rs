//! Backups taken while a writer thread keeps putting, overwriting and deleting are
//! consistent: a full backup and three incrementals are taken to files while the writer
//! runs (and the cleaner runs hard on a small array, so only the registered backup horizon
//! keeps the history the incrementals need). The writer records the LSN of every
//! acknowledged write; afterwards each prefix of the chain is verified and restored onto
//! RS(3,3) and onto 3-way replication (k = 1, m = 2), and the restored state must equal the
//! state the acknowledged writes give at that backup's end LSN.

use ectable_backup::{restore_chain, take_full, take_incremental, verify_chain, TakeOptions};
use ectable_devices::{open_backend, BackendKind, BlockDevice, IoBackend, MemDevice};
use ectable_engine::{format, CleanerOptions, Engine, EngineOptions, FormatOptions};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type State = BTreeMap<(String, Vec<u8>), Vec<u8>>;
type History = Vec<(u64, String, Vec<u8>, Option<Vec<u8>>)>;

fn state_at(history: &History, lsn: u64) -> State {
    let mut h: Vec<_> = history.iter().filter(|h| h.0 <= lsn).collect();
    h.sort_by_key(|h| h.0);
    let mut s = State::new();
    for (_, t, k, v) in h {
        match v {
            Some(v) => s.insert((t.clone(), k.clone()), v.clone()),
            None => s.remove(&(t.clone(), k.clone())),
        };
    }
    s
}

fn mem_array(k: usize, m: usize, size: u64) -> Arc<dyn IoBackend> {
    let devs: Vec<Arc<dyn BlockDevice>> = (0..k + m)
        .map(|i| Arc::new(MemDevice::new(&format!("mem{i}"), size)) as Arc<dyn BlockDevice>)
        .collect();
    let io = open_backend(BackendKind::Psync, devs).expect("psync engine");
    format(
        io.as_ref(),
        &FormatOptions {
            data_shards: k,
            parity_shards: m,
            chunk_size_bytes: 16 << 10,
            segment_size_bytes: 256 << 10,
            force: false,
            spare_count: 0,
            sync_journal: true,
            inline_values: false,
            wide_records: false,
            whole_records: false,
        },
    )
    .expect("format");
    io
}

fn read_all(e: &Engine) -> State {
    let mut s = State::new();
    for (t, _) in e.tables() {
        if t == ectable_engine::BACKUP_TABLE {
            continue;
        }
        for (k, v) in e
            .scan(&t, Bound::Unbounded, Bound::Unbounded, usize::MAX)
            .unwrap()
        {
            s.insert((t.clone(), k), v);
        }
    }
    s
}

fn value(i: u64, len: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Overwrites and deletes over 300 keys of two tables until stopped, recording every
/// acknowledged write with its LSN.
fn writer(e: &Engine, history: &Mutex<History>, stop: &AtomicBool) {
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let table = if i.is_multiple_of(3) { "b" } else { "a" };
        let key = format!("k{:03}", (i * 7919) % 300).into_bytes();
        let (lsn, v) = if i.is_multiple_of(9) {
            (e.delete(table, &key).expect("delete"), None)
        } else {
            let v = value(i, 200 + (i as usize * 37) % 2500);
            (e.put(table, &key, &v).expect("put"), Some(v))
        };
        history
            .lock()
            .unwrap()
            .push((lsn, table.to_string(), key, v));
        if i.is_multiple_of(16) {
            e.sync().expect("sync");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    e.sync().expect("sync");
}

#[test]
fn backups_taken_during_writes_restore_the_state_at_their_lsn() {
    let dir = tempfile::tempdir().unwrap();
    let io = mem_array(4, 2, 8 << 20);
    let opts = EngineOptions {
        cleaner: CleanerOptions {
            start_free_fraction: 0.95,
            target_free_fraction: 0.99,
            interval: Duration::from_millis(2),
            ..Default::default()
        },
        ..Default::default()
    };
    let e = Engine::open(io, opts).unwrap();
    let history = Mutex::new(History::new());
    let stop = AtomicBool::new(false);
    let files: Vec<(PathBuf, u64)> = std::thread::scope(|s| {
        let w = s.spawn(|| writer(&e, &history, &stop));
        std::thread::sleep(Duration::from_millis(200));
        let mut files = Vec::new();
        let full = dir.path().join("full.ectb");
        let m = take_full(&e, &full, &mut TakeOptions::default()).unwrap();
        files.push((full, m.end_lsn));
        for i in 1..=3 {
            std::thread::sleep(Duration::from_millis(250));
            let p = dir.path().join(format!("incr{i}.ectb"));
            let base = files[files.len() - 1].0.clone();
            let m = take_incremental(&e, &base, &p, &mut TakeOptions::default()).unwrap();
            assert_eq!(m.start_lsn, files[files.len() - 1].1);
            assert!(
                m.record_count > 0,
                "no writes between two backups: the writer stalled"
            );
            files.push((p, m.end_lsn));
        }
        stop.store(true, Ordering::SeqCst);
        w.join().unwrap();
        files
    });
    let history = history.into_inner().unwrap();
    let cleaner = e.cleaner_stats();
    e.close().unwrap();
    assert!(
        cleaner.segments_freed > 0,
        "the cleaner never freed a segment: history retention was not exercised ({cleaner:?})"
    );
    let last_lsn = history.iter().map(|h| h.0).max().unwrap();
    assert!(
        last_lsn > files[files.len() - 1].1,
        "the writer stopped before the last backup: no write ran during it"
    );
    let deletes = history.iter().filter(|h| h.3.is_none()).count();
    assert!(deletes > 0);
    for n in 1..=files.len() {
        let paths: Vec<PathBuf> = files[..n].iter().map(|f| f.0.clone()).collect();
        let end = files[n - 1].1;
        let chain = verify_chain(&paths, &mut |_, _| {}).unwrap();
        let want = state_at(&history, end);
        for (k, m) in [(3, 3), (1, 2)] {
            let target = Engine::open(mem_array(k, m, 16 << 20), EngineOptions::default()).unwrap();
            restore_chain(&target, &chain, end, "concurrent test", &mut |_, _| {}).unwrap();
            let got = read_all(&target);
            assert_eq!(
                got.len(),
                want.len(),
                "prefix of {n} file(s) onto RS({k},{m}): row count at LSN {end}"
            );
            assert!(
                got == want,
                "prefix of {n} file(s) onto RS({k},{m}): rows differ at LSN {end}"
            );
            target.close().unwrap();
        }
    }
    eprintln!(
        "{} writes ({deletes} deletes), backups at LSNs {:?}, cleaner freed {} segments",
        history.len(),
        files.iter().map(|f| f.1).collect::<Vec<_>>(),
        cleaner.segments_freed
    );
}
