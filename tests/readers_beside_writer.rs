//! Readers beside a writer: a read-only open (what `ectable export`, `get` and `verify` do,
//! without the writers' lock) while another engine over the same files writes, cleans and
//! checkpoints continuously, so that segments are freed and reused under the reader. The
//! reader scans whole, reads batches of keys, and streams (as `ectable export` does).
//!
//! Must hold (docs/fault-model.md): on a healthy array a reader either reads values that
//! were written, or gets `Error::ArrayChanged` (retryable); never `DataLost`, never any
//! other error. The test counts both outcomes and checks that the race really happened:
//! some read passes ran while the writer's epoch moved past the one the reader opened at.

mod common;

use ectable::devices::{open_backend, BackendKind, BlockDevice, FileDevice, OpenOptions};
use ectable::{format, CleanerOptions, Engine, EngineOptions, FormatOptions, WriteBatch};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEYS: u64 = 300;
const TABLE: &str = "t";

fn key(i: u64) -> Vec<u8> {
    format!("key{i:05}").into_bytes()
}

/// The value of key `i` at writer round `round`: names both, then deterministic filler.
fn value(i: u64, round: u64) -> Vec<u8> {
    let mut v = format!("{i}:{round}:").into_bytes();
    v.extend(common::value_for(
        i ^ (round << 20),
        7,
        150 + (i % 50) as usize,
    ));
    v
}

/// Checks that a value read for key `i` is one the writer wrote (at some round up to
/// `max_round`).
fn check_value(i: u64, v: &[u8], max_round: u64) -> Result<(), String> {
    let text = String::from_utf8_lossy(&v[..v.len().min(32)]).to_string();
    let mut parts = text.splitn(3, ':');
    let ki: u64 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(format!("key {i}: value does not name its key: {text:?}"))?;
    let round: u64 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(format!("key {i}: value does not name its round: {text:?}"))?;
    if ki != i {
        return Err(format!("key {i}: holds the value of key {ki}"));
    }
    if round > max_round {
        return Err(format!("key {i}: round {round} was never written"));
    }
    if v != value(i, round).as_slice() {
        return Err(format!("key {i}: value of round {round} differs"));
    }
    Ok(())
}

fn open_io(paths: &[PathBuf], read_only: bool) -> Arc<dyn ectable::devices::IoBackend> {
    let devs: Vec<Arc<dyn BlockDevice>> = paths
        .iter()
        .map(|p| {
            let o = OpenOptions {
                read_only,
                ..Default::default()
            };
            Arc::new(FileDevice::open(p, &o).expect("open device")) as Arc<dyn BlockDevice>
        })
        .collect();
    open_backend(BackendKind::Psync, devs).expect("io engine")
}

#[derive(Default, Debug)]
struct Outcomes {
    passes: u64,
    good_reads: u64,
    /// Good reads by kind: whole scans, batches of gets, streaming scans.
    good_by_kind: [u64; 3],
    changed_at_open: u64,
    /// Opens that started over because the array changed under them.
    reopened: u64,
    changed_at_read: u64,
    /// Passes during which the writer's epoch moved past the reader's.
    raced: u64,
}

#[test]
fn readers_beside_a_cleaning_writer_never_see_data_loss() {
    let dir = tempfile::tempdir().unwrap();
    let paths = common::file_paths(dir.path(), 6);
    {
        let io = common::open_files(&paths, Some(4 << 20), BackendKind::Psync);
        let opts = FormatOptions {
            data_shards: 4,
            parity_shards: 2,
            chunk_size_bytes: 4096,
            segment_size_bytes: 32 << 10,
            force: false,
            spare_count: 0,
            sync_journal: true,
            inline_values: false,
            wide_records: false,
            whole_records: false,
        };
        format(io.as_ref(), &opts).expect("format");
    }
    let writer = Arc::new(
        Engine::open(
            open_io(&paths, false),
            EngineOptions {
                cleaner: CleanerOptions {
                    interval: Duration::from_millis(5),
                    checkpoint_every_bytes: 256 << 10,
                    start_free_fraction: 0.3,
                    target_free_fraction: 0.4,
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .expect("open writer"),
    );
    // Every key exists before the first reader opens.
    for i in 0..KEYS {
        writer.put(TABLE, &key(i), &value(i, 0)).unwrap();
    }
    writer.sync().unwrap();
    let round = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let w = {
        let (writer, round, stop) = (writer.clone(), round.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut x = 0x2545_F491_4F6C_DD1Du64;
            while !stop.load(Ordering::SeqCst) {
                let r = round.load(Ordering::SeqCst) + 1;
                let mut b = WriteBatch::new();
                for _ in 0..20 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = x % KEYS;
                    b.put(TABLE, &key(i), &value(i, r));
                }
                // The round is published before its writes, so a reader may see them.
                round.store(r, Ordering::SeqCst);
                writer.write_batch(&b).expect("writer batch");
                writer.sync().expect("writer sync");
                if r % 8 == 0 {
                    writer.clean(2).expect("clean");
                }
                if r % 25 == 0 {
                    writer.checkpoint().expect("checkpoint");
                }
            }
        })
    };
    let mut out = Outcomes::default();
    let mut failures: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && failures.len() < 5 {
        out.passes += 1;
        let reader = match Engine::open(
            open_io(&paths, true),
            EngineOptions {
                read_only: true,
                ..Default::default()
            },
        ) {
            Ok(e) => e,
            Err(e) if e.code() == "ARRAY_CHANGED" => {
                out.changed_at_open += 1;
                continue;
            }
            Err(e) => {
                failures.push(format!("open: {} ({e})", e.code()));
                continue;
            }
        };
        let opened_epoch = reader.status().epoch;
        out.reopened += reader.recovery_stats().reopened_after_change as u64;
        // A long-lived reader: several passes over everything, with pauses in which the
        // writer's cleaner frees and reuses segments the reader's index points into.
        for pass in 0..4 {
            if pass > 0 {
                std::thread::sleep(Duration::from_millis(30));
            }
            let numbered = |rows: Vec<(Vec<u8>, Vec<u8>)>| {
                rows.into_iter()
                    .map(|(k, v)| {
                        let i = String::from_utf8_lossy(&k[3..]).parse::<u64>().unwrap();
                        (i, Some(v))
                    })
                    .collect::<Vec<_>>()
            };
            // A whole scan, a batch of gets, and a streaming scan (what export does), whose
            // pages are read while the writer goes on.
            // Each reader starts with another kind (a reader's later passes often meet a
            // change first).
            let kind = ((out.passes + pass) % 3) as usize;
            let res = match kind {
                0 => reader
                    .scan(TABLE, Bound::Unbounded, Bound::Unbounded, usize::MAX)
                    .map(numbered),
                1 => {
                    let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
                    let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
                    reader
                        .get_many(TABLE, &refs)
                        .map(|vs| (0..KEYS).zip(vs).collect::<Vec<_>>())
                }
                _ => reader
                    .scan_iter(TABLE, Bound::Unbounded, Bound::Unbounded)
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                    .map(numbered),
            };
            let max_round = round.load(Ordering::SeqCst);
            match res {
                Ok(rows) => {
                    if rows.len() as u64 != KEYS {
                        failures.push(format!("read {} of {KEYS} keys", rows.len()));
                    }
                    for (i, v) in rows {
                        match v {
                            Some(v) => match check_value(i, &v, max_round) {
                                Ok(()) => {}
                                Err(e) => failures.push(e),
                            },
                            None => failures.push(format!("key {i} missing")),
                        }
                    }
                    out.good_reads += 1;
                    out.good_by_kind[kind] += 1;
                }
                Err(e) if e.code() == "ARRAY_CHANGED" => {
                    out.changed_at_read += 1;
                    break;
                }
                Err(e) => {
                    failures.push(format!("read: {} ({e})", e.code()));
                    break;
                }
            }
        }
        if writer.status().epoch > opened_epoch {
            out.raced += 1;
        }
    }
    stop.store(true, Ordering::SeqCst);
    w.join().expect("writer thread");
    let cleaned = writer.cleaner_stats();
    let rounds = round.load(Ordering::SeqCst);
    writer.close().unwrap();
    eprintln!("{out:?}; writer rounds {rounds}, cleaner {cleaned:?}");
    assert!(failures.is_empty(), "{out:?}: {failures:#?}");
    assert!(
        out.good_by_kind.iter().all(|n| *n > 0),
        "a kind of read never succeeded: {out:?}"
    );
    assert!(
        out.raced > 0,
        "the writer never moved on under a reader: {out:?}"
    );
    assert!(
        out.changed_at_open + out.reopened + out.changed_at_read > 0,
        "no reader noticed a change: {out:?}"
    );
    assert!(
        cleaned.segments_freed > 0,
        "the cleaner freed nothing: {cleaned:?}"
    );
}

/// The other side: real data loss on a quiet array (no writer anywhere) stays `DataLost` for
/// a read-only engine; it is never excused as a change.
#[test]
fn data_loss_on_a_quiet_array_is_not_called_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let paths = common::file_paths(dir.path(), 6);
    {
        let io = common::open_files(&paths, Some(4 << 20), BackendKind::Psync);
        let opts = FormatOptions {
            data_shards: 4,
            parity_shards: 2,
            chunk_size_bytes: 4096,
            segment_size_bytes: 32 << 10,
            force: false,
            spare_count: 0,
            sync_journal: true,
            inline_values: false,
            wide_records: false,
            whole_records: false,
        };
        format(io.as_ref(), &opts).expect("format");
        let e = Engine::open(io, EngineOptions::default()).expect("open");
        for i in 0..40 {
            e.put(TABLE, &key(i), &value(i, 0)).unwrap();
        }
        e.sync().unwrap();
        e.close().unwrap();
    }
    // Three of six chunks of the first segment's stripes (not its header) are gone: more than
    // m = 2.
    for p in &paths[..3] {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        let start = ectable::format::DATA_START_BYTES + 4096;
        f.write_all_at(&vec![0u8; 28 << 10], start).unwrap();
        f.sync_all().unwrap();
    }
    let opts = EngineOptions {
        read_only: true,
        ..Default::default()
    };
    let code = match Engine::open(open_io(&paths, true), opts) {
        Err(e) => e.code(),
        Ok(reader) => {
            let keys: Vec<Vec<u8>> = (0..40).map(key).collect();
            let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
            match reader.get_many(TABLE, &refs) {
                Err(e) => e.code(),
                Ok(_) => "OK",
            }
        }
    };
    assert_eq!(code, "DATA_LOST");
}
