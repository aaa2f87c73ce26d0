//! Property test of backup and restore against a model: random puts, deletes and batches
//! over four key/value tables (binary keys, empty and large values), with syncs and reopens,
//! and backups taken at random moments: a full backup starts a chain, incrementals extend it,
//! and a later full backup starts the next chain (after which an incremental of the old
//! chain is refused with `HistoryGone`). Every acknowledged operation is recorded with its
//! LSN. At the end every chain is verified, and every prefix of every chain (the full
//! backup, then each incremental in turn) is restored onto fresh memory devices of a random
//! geometry (replication included); the restored array must equal the model's state at that
//! prefix's end LSN exactly, deletes included, and so must a restore up to a random LSN
//! inside the chain. Seeds are printed; `ECTABLE_TEST_SEED` replays one.

use ectable_backup::{
    restore_chain, take_full, take_incremental, verify_chain, Error as BackupError, Manifest,
    TakeOptions,
};
use ectable_devices::{open_backend, BackendKind, BlockDevice, IoBackend, MemDevice};
use ectable_engine::{format, Engine, EngineOptions, FormatOptions, WriteBatch};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

type State = BTreeMap<(String, Vec<u8>), Vec<u8>>;
/// (lsn, table, key, value or None for a delete), as acknowledged by the engine.
type History = Vec<(u64, String, Vec<u8>, Option<Vec<u8>>)>;

const TABLES: [&str; 4] = ["a", "b", "c.d", "zz"];

fn state_at(history: &History, lsn: u64) -> State {
    let mut s = State::new();
    for (l, t, k, v) in history {
        if *l > lsn {
            continue;
        }
        match v {
            Some(v) => s.insert((t.clone(), k.clone()), v.clone()),
            None => s.remove(&(t.clone(), k.clone())),
        };
    }
    s
}

fn mem_array(k: usize, m: usize, chunk: u32, size: u64) -> Arc<dyn IoBackend> {
    let devs: Vec<Arc<dyn BlockDevice>> = (0..k + m)
        .map(|i| Arc::new(MemDevice::new(&format!("mem{i}"), size)) as Arc<dyn BlockDevice>)
        .collect();
    let io = open_backend(BackendKind::Psync, devs).expect("psync engine");
    format(
        io.as_ref(),
        &FormatOptions {
            data_shards: k,
            parity_shards: m,
            chunk_size_bytes: chunk,
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

/// Everything an engine holds, system tables of backups left out.
fn read_all(e: &Engine) -> State {
    let mut s = State::new();
    for (t, _) in e.tables() {
        if t == ectable_engine::BACKUP_TABLE {
            continue;
        }
        for (k, v) in e
            .scan(&t, Bound::Unbounded, Bound::Unbounded, usize::MAX)
            .expect("scan")
        {
            s.insert((t.clone(), k), v);
        }
    }
    s
}

fn key(rng: &mut SmallRng) -> Vec<u8> {
    // Binary keys with zero bytes, of one to three bytes: bytewise order matters.
    let n = rng.random_range(0..60u8);
    match n % 3 {
        0 => vec![n],
        1 => vec![b'k', 0, n],
        _ => vec![b'k', n, 0xff],
    }
}

fn value(rng: &mut SmallRng) -> Vec<u8> {
    let len = match rng.random_range(0..10) {
        0 => 0,
        1 => rng.random_range(3000..9000),
        _ => rng.random_range(1..400),
    };
    (0..len).map(|_| rng.random()).collect()
}

/// A chain as taken: its files and manifests.
type Taken = Vec<(PathBuf, Manifest)>;

fn restore_and_compare(
    chain_files: &[(PathBuf, Manifest)],
    until: u64,
    history: &History,
    rng: &mut SmallRng,
    ctx: &str,
) {
    let paths: Vec<PathBuf> = chain_files.iter().map(|f| f.0.clone()).collect();
    let chain =
        verify_chain(&paths, &mut |_, _| {}).unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
    assert_eq!(chain.files.len(), paths.len());
    for (f, (_, m)) in chain.files.iter().zip(chain_files) {
        assert_eq!(
            &f.manifest, m,
            "{ctx}: the verified manifest differs from the written one"
        );
    }
    let (k, m) = [(1, 1), (1, 2), (2, 1), (3, 2), (4, 2)][rng.random_range(0..5)];
    let io = mem_array(k, m, 16 << 10, 16 << 20);
    let e = Engine::open(io.clone(), EngineOptions::default()).expect("open target");
    let report = restore_chain(&e, &chain, until, "model test", &mut |_, _| {})
        .unwrap_or_else(|err| panic!("{ctx}: restore onto RS({k},{m}) until {until}: {err}"));
    assert_eq!(report.until_lsn, until);
    let want = state_at(history, until);
    let got = read_all(&e);
    if got != want {
        let missing: Vec<_> = want
            .keys()
            .filter(|k| !got.contains_key(*k))
            .take(5)
            .collect();
        let extra: Vec<_> = got
            .keys()
            .filter(|k| !want.contains_key(*k))
            .take(5)
            .collect();
        let differ: Vec<_> = want
            .iter()
            .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
            .map(|(k, _)| k)
            .take(5)
            .collect();
        panic!(
            "{ctx}: restore onto RS({k},{m}) until LSN {until}: {} rows, model {}; missing {missing:?}, extra {extra:?}, different {differ:?}",
            got.len(),
            want.len()
        );
    }
    assert!(e.restore_in_progress().unwrap().is_none());
    e.close().unwrap();
    drop(e);
    // It opens as a complete array.
    let e = Engine::open(io, EngineOptions::default()).expect("reopen the restored array");
    assert_eq!(read_all(&e), want, "{ctx}: after reopen");
}

fn run(seed: u64, dir: &Path) -> (usize, usize, u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let (k, m) = [(2, 1), (3, 2), (4, 2)][rng.random_range(0..3)];
    let io = mem_array(k, m, 16 << 10, 16 << 20);
    let mut e = Engine::open(io.clone(), EngineOptions::default()).unwrap();
    let mut history = History::new();
    let mut chains: Vec<Taken> = Vec::new();
    let mut history_gone_checked = 0;
    let mut file_no = 0;
    let ops = rng.random_range(250..450);
    for step in 0..ops {
        let table = TABLES[rng.random_range(0..TABLES.len())];
        match rng.random_range(0..100) {
            0..=54 => {
                let (k, v) = (key(&mut rng), value(&mut rng));
                let lsn = e.put(table, &k, &v).unwrap();
                history.push((lsn, table.into(), k, Some(v)));
            }
            55..=74 => {
                let k = key(&mut rng);
                let lsn = e.delete(table, &k).unwrap();
                history.push((lsn, table.into(), k, None));
            }
            75..=84 => {
                let mut b = WriteBatch::new();
                let mut ops = Vec::new();
                for _ in 0..rng.random_range(1..6) {
                    let t = TABLES[rng.random_range(0..TABLES.len())];
                    let k = key(&mut rng);
                    if rng.random_bool(0.3) {
                        b.delete(t, &k);
                        ops.push((t.to_string(), k, None));
                    } else {
                        // Small values: a batch must fit one stripe of the source array.
                        let v = value(&mut rng);
                        let v = v[..v.len().min(400)].to_vec();
                        b.put(t, &k, &v);
                        ops.push((t.to_string(), k, Some(v)));
                    }
                }
                let last = e.write_batch(&b).unwrap();
                let first = last + 1 - ops.len() as u64;
                for (i, (t, k, v)) in ops.into_iter().enumerate() {
                    history.push((first + i as u64, t, k, v));
                }
            }
            85..=89 => {
                e.sync().unwrap();
            }
            90 => {
                e.close().unwrap();
                drop(e);
                e = Engine::open(io.clone(), EngineOptions::default()).unwrap();
            }
            _ => {
                // A backup, at a random moment (often with unsynced writes).
                let new_chain = chains.is_empty() || rng.random_bool(0.2);
                let path = dir.join(format!("s{seed}-{file_no:03}.ectb"));
                file_no += 1;
                if new_chain {
                    let m = take_full(&e, &path, &mut TakeOptions::default()).unwrap();
                    assert_eq!(m.start_lsn, 0);
                    assert_eq!(e.backup_horizon(), Some(m.end_lsn));
                    // The older chain can no longer be extended once writes came between.
                    if let Some(old) = chains.last() {
                        let (old_path, old_m) = &old[old.len() - 1];
                        if old_m.end_lsn < m.end_lsn {
                            let p = dir.join(format!("s{seed}-{file_no:03}-refused.ectb"));
                            match take_incremental(&e, old_path, &p, &mut TakeOptions::default()) {
                                Err(BackupError::HistoryGone { .. }) => history_gone_checked += 1,
                                other => panic!("seed {seed}: expected HistoryGone, got {other:?}"),
                            }
                            assert!(!p.exists(), "a refused backup left its file");
                            assert!(!p.with_extension("ectb.partial").exists());
                        }
                    }
                    chains.push(vec![(path, m)]);
                } else {
                    let chain = chains.last_mut().unwrap();
                    let base = chain[chain.len() - 1].0.clone();
                    let m = take_incremental(&e, &base, &path, &mut TakeOptions::default())
                        .unwrap_or_else(|err| panic!("seed {seed} step {step}: {err}"));
                    assert_eq!(m.start_lsn, chain[chain.len() - 1].1.end_lsn);
                    assert_eq!(e.backup_horizon(), Some(m.end_lsn));
                    chain.push((path, m));
                }
            }
        }
    }
    e.close().unwrap();
    let mut restores = 0;
    for (c, chain) in chains.iter().enumerate() {
        for n in 1..=chain.len() {
            let prefix = &chain[..n];
            let end = prefix[n - 1].1.end_lsn;
            let ctx = format!("seed {seed} chain {c} prefix of {n} file(s)");
            restore_and_compare(prefix, end, &history, &mut rng, &ctx);
            restores += 1;
        }
        let (lo, hi) = (chain[0].1.end_lsn, chain[chain.len() - 1].1.end_lsn);
        let until = rng.random_range(lo..=hi);
        let ctx = format!("seed {seed} chain {c} until LSN {until}");
        restore_and_compare(chain, until, &history, &mut rng, &ctx);
        restores += 1;
    }
    (chains.len(), restores, history_gone_checked)
}

#[test]
fn restoring_every_prefix_of_every_chain_gives_the_model_state_at_its_lsn() {
    let seeds: Vec<u64> = match std::env::var("ECTABLE_TEST_SEED") {
        Ok(s) => vec![s.parse().expect("ECTABLE_TEST_SEED must be a number")],
        Err(_) => {
            let base: u64 = rand::random::<u32>().into();
            (0..6).map(|i| base + i).collect()
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut chains, mut restores, mut gone) = (0, 0, 0);
    for seed in &seeds {
        eprintln!("seed {seed}");
        let (c, r, g) = run(*seed, dir.path());
        chains += c;
        restores += r;
        gone += g;
    }
    eprintln!("{chains} chains, {restores} restores compared, {gone} HistoryGone refusals");
    assert!(restores >= 2 * seeds.len(), "too few restores: {restores}");
    if seeds.len() > 1 {
        assert!(chains > seeds.len(), "no seed started a second chain");
        assert!(gone > 0, "no incremental of an old chain was refused");
    }
}
