//! SIGKILL at random points: a child process writes to a file-backed array (six files,
//! RS(4,2), 16 KiB chunks, 256 KiB segments) and is killed with SIGKILL after a random delay;
//! the test process then reopens the array itself and checks what survived, and the next
//! child continues writing on the same array, so crash after crash accumulates on it.
//!
//! The child is this test binary run again (`current_exe()` with `--exact sigkill_child_writer
//! --ignored`), told what to do by the `ECTABLE_SIGKILL_CHILD` environment variable; without
//! it the `#[ignore]`d child test returns at once. The child opens the array (alternately on
//! io_uring and psync), and two writer threads on disjoint keys of two tables append groups of
//! 1–4 units (a put, a delete, or a `write_batch` of 2–5 operations), one `sync()` per group,
//! so groups of both threads share flushes (group commit). Before appending a group the thread
//! writes a `B` line describing it to an ack log; after its `sync()` returned Ok it writes an
//! `A` line with the durable LSN and fsyncs the log. A group with an `A` line is acknowledged;
//! one with only its `B` line is in doubt; a torn last line is ignored (that only makes the
//! oracle weaker, never wrong). One kill in five is aimed at the child's start-up (0–40 ms
//! after spawning it: process start, `Engine::open` and its recovery); the rest land 0–120 ms
//! after the child reported ready, so short delays hit the first write of a session (new
//! superblock epoch, invalidation of orphan segments) and longer ones the steady writing.
//! Every other reopen by the parent is read-only, so that the child's own open is the first
//! writable one after the crash, and can itself be killed.
//!
//! Oracle (docs/fault-model.md "process killed at any instant"): the reopen always succeeds; for each
//! writer thread the recovered rows equal the state known before this child, plus every
//! acknowledged group, plus a prefix of the in-doubt units (docs/design.md invariant 2), which gives
//! S1 (every acknowledged write is present, unless a later in-doubt write superseded it), S2 (no
//! key holds a value never written to it; every value names the write that made it) and S3
//! (batches are all there or not at all), each also checked and reported on its own. The
//! recovered next LSN must be past every acknowledged LSN. The state read becomes the known
//! state for the next child. Only kills that hit a running child (exit status: killed by
//! SIGKILL) are counted, and there must be at least 200.
//!
//! Seeds: the run's seed is printed; `ECTABLE_TEST_SEED` replays the same rounds, workloads and
//! kill delays. Where in the child's work a delay lands depends on the machine's timing.

mod common;
use common::crash_oracle::{self, check, make_value, okey, read_all, State, Unit};
use common::*;
use ectable::devices::BackendKind;
use ectable::{CleanerOptions, Engine, EngineOptions, WriteBatch};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "ECTABLE_SIGKILL_CHILD";
const CHILD_TEST: &str = "sigkill_child_writer";
const THREADS: usize = 2;
const KEYS_PER_THREAD: usize = 24;
const TABLES: [&str; 2] = ["a", "b"];
const N: usize = 6;

/// What a run of kills exercises.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Profile {
    /// Roomy devices: the log never fills; kills land in writes, flushes and recovery.
    Writes,
    /// Devices of eight segments, an eager cleaner and a checkpoint every 256 KiB of log: the
    /// overwrites fill the array within one child, so kills land while the cleaner moves
    /// records, checkpoints and frees segments (at least 100 kills must hit a child whose
    /// cleaner had freed segments).
    Cleaning,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Profile::Writes => "writes",
            Profile::Cleaning => "cleaning",
        }
    }

    fn dev_bytes(self) -> u64 {
        match self {
            Profile::Writes => 32 << 20,
            Profile::Cleaning => 3 << 20,
        }
    }

    fn rounds(self) -> u64 {
        match self {
            Profile::Writes => 20,
            // More rounds than before the sync journal: syncs no longer take short stripes,
            // so the same children fill (and the cleaner frees) less per round.
            Profile::Cleaning => 20,
        }
    }

    fn min_kills(self) -> usize {
        match self {
            Profile::Writes => 200,
            Profile::Cleaning => 200,
        }
    }

    /// Kills land up to this long after the child is ready: long enough, with the cleaning
    /// profile, for the child to fill its array and clean it several times.
    fn max_delay_us(self) -> u64 {
        match self {
            Profile::Writes => 120_000,
            Profile::Cleaning => 600_000,
        }
    }

    fn engine_options(self) -> EngineOptions {
        match self {
            Profile::Writes => EngineOptions::default(),
            Profile::Cleaning => EngineOptions {
                cleaner: CleanerOptions {
                    start_free_fraction: 0.6,
                    target_free_fraction: 0.8,
                    checkpoint_every_bytes: 256 << 10,
                    interval: Duration::from_millis(5),
                    ..Default::default()
                },
                ..Default::default()
            },
        }
    }
}

const KILLS_PER_ROUND: u64 = 12;

fn ack_log(dir: &Path, kill: u64) -> PathBuf {
    dir.join(format!("ack-{kill:03}.log"))
}

fn key_of(thread: usize, i: usize) -> String {
    format!("t{thread}k{i:02}")
}

fn kind_name(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Uring => "uring",
        _ => "psync",
    }
}

// ----------------------------------------------------------------------------------------
// The child.

/// One operation as written to the ack log: `P.table.key.uid.len` or `D.table.key`.
fn encode_op(table: &str, key: &str, put: Option<(u64, usize)>) -> String {
    match put {
        Some((uid, len)) => format!("P.{table}.{key}.{uid}.{len}"),
        None => format!("D.{table}.{key}"),
    }
}

fn write_line(log: &Mutex<File>, line: &str, durable: bool) {
    let mut f = log.lock().unwrap_or_else(|p| p.into_inner());
    f.write_all(line.as_bytes()).expect("write ack log");
    if durable {
        f.sync_data().expect("fsync ack log");
    }
}

/// Units to append: (is a batch, [(table, key, Some(value) / None for a delete)]).
type Todo<'a> = Vec<(bool, Vec<(&'a str, String, Option<Vec<u8>>)>)>;

fn child_writer(
    e: &Engine,
    log: &Mutex<File>,
    thread: usize,
    seed: u64,
    kill: u64,
    ppid: libc::pid_t,
) {
    let mut rng = SmallRng::seed_from_u64(seed ^ (kill << 16) ^ thread as u64);
    let mut counter = 0u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    for group in 0u64.. {
        // SAFETY: getppid has no preconditions.
        if Instant::now() > deadline || unsafe { libc::getppid() } != ppid {
            return; // the parent is gone or forgot us: stop writing
        }
        let n_units = if rng.random_bool(0.6) {
            1
        } else {
            rng.random_range(2..=4)
        };
        let mut units_text = Vec::new();
        let mut todo: Todo = Vec::new();
        for _ in 0..n_units {
            let r = rng.random_range(0..100);
            let (batch, n_ops) = if r < 20 {
                (true, rng.random_range(2..=5))
            } else {
                (false, 1)
            };
            let mut ops = Vec::new();
            let mut text = Vec::new();
            for _ in 0..n_ops {
                let table = TABLES[rng.random_range(0..TABLES.len())];
                let key = key_of(thread, rng.random_range(0..KEYS_PER_THREAD));
                let delete = if batch { rng.random_bool(0.2) } else { r >= 85 };
                if delete {
                    text.push(encode_op(table, &key, None));
                    ops.push((table, key, None));
                } else {
                    counter += 1;
                    let uid = (kill << 40) | ((thread as u64) << 32) | counter;
                    let len = match rng.random_range(0..100) {
                        0..70 => rng.random_range(8..300),
                        70..95 => rng.random_range(300..3000),
                        _ => rng.random_range(3000..8000),
                    };
                    text.push(encode_op(table, &key, Some((uid, len))));
                    ops.push((table, key, Some(make_value(uid, seed, len))));
                }
            }
            units_text.push(format!(
                "{}{}",
                if batch { "W" } else { "S" },
                text.join(",")
            ));
            todo.push((batch, ops));
        }
        // The B line only has to be in the page cache before the appends: SIGKILL keeps it.
        write_line(
            log,
            &format!("B {thread} {group} {}\n", units_text.join(";")),
            false,
        );
        for (batch, ops) in &todo {
            let r = if *batch {
                let mut b = WriteBatch::new();
                for (t, k, v) in ops {
                    match v {
                        Some(v) => b.put(t, k.as_bytes(), v),
                        None => b.delete(t, k.as_bytes()),
                    };
                }
                e.write_batch(&b)
            } else {
                let (t, k, v) = &ops[0];
                match v {
                    Some(v) => e.put(t, k.as_bytes(), v),
                    None => e.delete(t, k.as_bytes()),
                }
            };
            r.unwrap_or_else(|err| panic!("child: append failed: {err}"));
        }
        let lsn = e
            .sync()
            .unwrap_or_else(|err| panic!("child: sync failed: {err}"));
        write_line(log, &format!("A {thread} {group} {lsn}\n"), true);
    }
}

fn child_main(spec: &str) {
    let mut parts = spec.splitn(5, ' ');
    let profile = match parts.next() {
        Some("cleaning") => Profile::Cleaning,
        _ => Profile::Writes,
    };
    let seed: u64 = parts.next().and_then(|s| s.parse().ok()).expect("seed");
    let kill: u64 = parts.next().and_then(|s| s.parse().ok()).expect("kill");
    let kind = match parts.next() {
        Some("uring") => BackendKind::Uring,
        _ => BackendKind::Psync,
    };
    let dir = PathBuf::from(parts.next().expect("dir"));
    // SAFETY: getppid has no preconditions.
    let ppid = unsafe { libc::getppid() };
    let e = Engine::open(
        open_files(&file_paths(&dir, N), None, kind),
        profile.engine_options(),
    )
    .unwrap_or_else(|err| panic!("child: open failed: {err}"));
    let log = Mutex::new(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(ack_log(&dir, kill))
            .expect("ack log"),
    );
    write_line(&log, &format!("O {}\n", std::process::id()), false);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (e, log) = (&e, &log);
            s.spawn(move || child_writer(e, log, t, seed, kill, ppid));
        }
        // What the cleaner has done, whenever it changes: the parent counts the kills that
        // hit a child whose cleaner had been at work.
        let (e, log) = (&e, &log);
        s.spawn(move || {
            let mut last = (0, 0);
            let deadline = Instant::now() + Duration::from_secs(30);
            // SAFETY: getppid has no preconditions.
            while Instant::now() < deadline && unsafe { libc::getppid() } == ppid {
                let c = e.cleaner_stats();
                if (c.segments_freed, c.checkpoints) != last {
                    last = (c.segments_freed, c.checkpoints);
                    write_line(log, &format!("C {} {}\n", last.0, last.1), false);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
    });
}

/// Not a test: the child process of `sigkill_at_random_points` (does nothing unless
/// `ECTABLE_SIGKILL_CHILD` is set).
#[test]
#[ignore = "child process of sigkill_at_random_points; runs only when started by it"]
fn sigkill_child_writer() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child_main(&spec);
    }
}

// ----------------------------------------------------------------------------------------
// The parent.

/// What one child's ack log says, per thread: its units, and how many of them were
/// acknowledged (a prefix: the groups up to the first one without an `A` line).
#[derive(Default)]
struct ChildLog {
    ready: bool,
    units: Vec<Vec<Unit>>,
    acked: Vec<usize>,
    max_acked_lsn: u64,
    groups: usize,
    acked_groups: usize,
    /// Segments the child's cleaner freed and checkpoints it wrote (the last `C` line).
    cleaner_freed: u64,
    checkpoints: u64,
}

fn parse_unit(text: &str, seed: u64) -> Option<Unit> {
    let batch = match text.get(..1)? {
        "W" => true,
        "S" => false,
        _ => return None,
    };
    let mut ops = Vec::new();
    for op in text[1..].split(',') {
        let f: Vec<&str> = op.split('.').collect();
        match f.as_slice() {
            ["P", t, k, uid, len] => ops.push((
                okey(t, k.as_bytes()),
                Some(make_value(uid.parse().ok()?, seed, len.parse().ok()?)),
            )),
            ["D", t, k] => ops.push((okey(t, k.as_bytes()), None)),
            _ => return None,
        }
    }
    Some(Unit { ops, batch })
}

fn parse_log(path: &Path, seed: u64) -> ChildLog {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = ChildLog {
        units: vec![Vec::new(); THREADS],
        acked: vec![0; THREADS],
        ..Default::default()
    };
    // Per thread, in order: (group, units, acknowledged LSN).
    type Group = (u64, Vec<Unit>, Option<u64>);
    let mut groups: Vec<Vec<Group>> = vec![Vec::new(); THREADS];
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    for line in complete.lines() {
        let f: Vec<&str> = line.splitn(4, ' ').collect();
        match f.as_slice() {
            ["O", _] => out.ready = true,
            ["C", freed, ckpts] => {
                out.cleaner_freed = freed.parse().expect("freed");
                out.checkpoints = ckpts.parse().expect("checkpoints");
            }
            ["B", t, g, units] => {
                let (t, g): (usize, u64) = (t.parse().expect("thread"), g.parse().expect("group"));
                let units: Vec<Unit> = units
                    .split(';')
                    .map(|u| {
                        parse_unit(u, seed).unwrap_or_else(|| panic!("bad unit {u:?} in {path:?}"))
                    })
                    .collect();
                let expect_g = groups[t].last().map_or(0, |l| l.0 + 1);
                assert_eq!(g, expect_g, "{path:?}: thread {t} groups out of order");
                groups[t].push((g, units, None));
            }
            ["A", t, g, lsn] => {
                let (t, g): (usize, u64) = (t.parse().expect("thread"), g.parse().expect("group"));
                let last = groups[t].last_mut().expect("A line after its B line");
                assert_eq!(
                    last.0, g,
                    "{path:?}: thread {t} acknowledges a group it is not in"
                );
                last.2 = Some(lsn.parse().expect("lsn"));
            }
            _ => panic!("{path:?}: unreadable line {line:?}"),
        }
    }
    for (t, gs) in groups.into_iter().enumerate() {
        let mut acked_prefix = true;
        for (_, units, lsn) in gs {
            out.groups += 1;
            if let Some(lsn) = lsn {
                out.acked_groups += 1;
                out.max_acked_lsn = out.max_acked_lsn.max(lsn);
            }
            acked_prefix &= lsn.is_some();
            out.units[t].extend(units);
            if acked_prefix {
                out.acked[t] = out.units[t].len();
            }
        }
    }
    out
}

fn restrict(state: &State, thread: usize) -> State {
    let tag = format!("/t{thread}k");
    state
        .iter()
        .filter(|(k, _)| String::from_utf8_lossy(k).contains(&tag))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[derive(Default)]
struct Tally {
    kills: usize,
    early_kills: usize,
    children_not_ready: usize,
    groups: usize,
    acked_groups: usize,
    in_doubt_units: usize,
    in_doubt_kept: usize,
    degraded_recoveries: usize,
    discarded_stripes: usize,
    device_loss_reopens: usize,
    /// Kills of a child whose cleaner had freed segments / written checkpoints.
    kills_after_cleaning: usize,
    kills_after_checkpoint: usize,
    segments_freed: u64,
    checkpoints: u64,
    /// Bytes of values acknowledged, against the array's usable capacity.
    acked_value_bytes: u64,
}

fn wait_ready(child: &mut std::process::Child, log: &Path, out: &Path, ctx: &str) {
    let start = Instant::now();
    loop {
        if std::fs::read_to_string(log).is_ok_and(|t| t.starts_with("O ")) {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{ctx}: child exited before it was ready ({status}):\n{}",
                std::fs::read_to_string(out).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{ctx}: child not ready after 60 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until the child's ack log shows its cleaner freed a segment and wrote a checkpoint
/// (a `C` line), at most `limit`, or until the child exits (the caller reports that).
fn wait_for_cleaner(child: &mut std::process::Child, log: &Path, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit && matches!(child.try_wait(), Ok(None)) {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let last_c = text
            .rsplit('\n')
            .find_map(|l| l.strip_prefix("C "))
            .and_then(|c| {
                let mut f = c.split(' ').map(|x| x.parse::<u64>().ok());
                Some((f.next()??, f.next()??))
            });
        if last_c.is_some_and(|(freed, ckpts)| freed > 0 && ckpts > 0) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A round's directory: removed when the round ends, kept (and named) when it fails, so that
/// the ack logs, child outputs and device files can be examined.
struct RoundDir(PathBuf);

impl RoundDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for RoundDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("sigkill: keeping {} for inspection", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// One round: a fresh array, then `KILLS_PER_ROUND` children killed one after the other.
fn round(profile: Profile, seed: u64, round_no: u64, tally: &mut Tally) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let dir = RoundDir(
        tempfile::Builder::new()
            .prefix("ectable-sigkill-")
            .tempdir()
            .expect("tempdir")
            .keep(),
    );
    let paths = file_paths(dir.path(), N);
    format_files(&paths, profile.dev_bytes(), 4, 2, BackendKind::Psync);
    let exe = std::env::current_exe().expect("current_exe");
    let mut base = State::new();
    // Per writer thread: the log as it really is (acknowledged units and the in-doubt units
    // recovery kept, child after child), and how much of it was acknowledged.
    let mut history: Vec<Vec<Unit>> = vec![Vec::new(); THREADS];
    let mut log_acked = [0usize; THREADS];
    for kill in 0..KILLS_PER_ROUND {
        let ctx = format!("round {round_no} (seed {seed}) kill {kill}");
        let child_kind = ENGINES[(kill as usize + round_no as usize) % 2];
        let verify_kind = ENGINES[(kill as usize + round_no as usize + 1) % 2];
        let log = ack_log(dir.path(), kill);
        let out_path = dir.path().join(format!("child-{kill:03}.out"));
        let out = File::create(&out_path).expect("child output file");
        let spec = format!(
            "{} {seed} {kill} {} {}",
            profile.name(),
            kind_name(child_kind),
            dir.path().display()
        );
        let early = rng.random_bool(0.2);
        // With the cleaning profile, one kill in two of the rest waits for the child's
        // cleaner to have freed a segment and written a checkpoint, then lands within
        // 100 ms: on a slow machine (a busy disk) a child may not reach its cleaner within
        // the delay alone, and too few kills then hit a working cleaner (21 of 240 in one
        // CI run against 76-121 on a quiet machine).
        let after_cleaner = !early && profile == Profile::Cleaning && rng.random_bool(0.5);
        let delay = Duration::from_micros(if early {
            rng.random_range(0..40_000)
        } else if after_cleaner {
            rng.random_range(0..100_000)
        } else {
            rng.random_range(0..profile.max_delay_us())
        });
        let mut child = Command::new(&exe)
            .args([
                CHILD_TEST,
                "--exact",
                "--nocapture",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &spec)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn child");
        if !early {
            wait_ready(&mut child, &log, &out_path, &ctx);
        }
        if after_cleaner {
            wait_for_cleaner(&mut child, &log, Duration::from_secs(20));
        }
        std::thread::sleep(delay);
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{ctx}: child exited by itself ({status}):\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        child.kill().expect("SIGKILL the child");
        let status = child.wait().expect("wait for child");
        // The killed child's in-flight writes land before anything looks at the devices.
        wait_for_writers_gone(&paths);
        let child_log = parse_log(&log, seed);
        if status.signal() == Some(libc::SIGKILL) {
            tally.kills += 1;
            if early {
                tally.early_kills += 1;
            }
            if child_log.cleaner_freed > 0 {
                tally.kills_after_cleaning += 1;
            }
            if child_log.checkpoints > 0 {
                tally.kills_after_checkpoint += 1;
            }
        } else {
            assert!(
                status.success(),
                "{ctx}: child failed ({status}):\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }

        tally.segments_freed += child_log.cleaner_freed;
        tally.checkpoints += child_log.checkpoints;
        tally.acked_value_bytes += child_log
            .units
            .iter()
            .zip(&child_log.acked)
            .map(|(u, a)| {
                u[..*a]
                    .iter()
                    .flat_map(|u| u.ops.iter())
                    .map(|(_, v)| v.as_ref().map_or(0, |v| v.len() as u64))
                    .sum::<u64>()
            })
            .sum::<u64>();
        // Reopen in this process; it must always work.
        if !child_log.ready {
            tally.children_not_ready += 1;
        }
        let read_only = kill % 2 == 1;
        let e = Engine::open(
            open_files(&paths, None, verify_kind),
            EngineOptions {
                read_only,
                ..profile.engine_options()
            },
        )
        .unwrap_or_else(|err| {
            panic!(
                "{ctx}: reopen after SIGKILL failed: {err}\nchild output:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            )
        });
        let actual = read_all(&e, &TABLES)
            .unwrap_or_else(|err| panic!("{ctx}: reading all rows failed: {err}"));
        let mut owned = 0;
        for t in 0..THREADS {
            let a = restrict(&actual, t);
            owned += a.len();
            match check(&restrict(&base, t), &child_log.units[t], child_log.acked[t], &a) {
                Ok(p) => {
                    tally.in_doubt_kept += p - child_log.acked[t];
                    if child_log.acked[t] > 0 {
                        log_acked[t] = history[t].len() + child_log.acked[t];
                    }
                    history[t].extend(child_log.units[t][..p].iter().cloned());
                }
                Err(why) => panic!(
                    "{ctx}: thread {t}: the state after SIGKILL violates the oracle ({} units, {} acked; replay with \
                     ECTABLE_TEST_SEED and see the ack log):\n{why}",
                    child_log.units[t].len(),
                    child_log.acked[t]
                ),
            }
            tally.in_doubt_units += child_log.units[t].len() - child_log.acked[t];
        }
        assert_eq!(
            owned,
            actual.len(),
            "{ctx}: S2: rows under keys no writer ever used"
        );
        let st = e.status();
        assert!(
            st.next_lsn > child_log.max_acked_lsn,
            "{ctx}: S1: LSN {} was acknowledged but the recovered log ends at {}",
            child_log.max_acked_lsn,
            st.next_lsn - 1
        );
        if e.recovery_stats().degraded_stripes + e.recovery_stats().interrupted_stripes > 0 {
            tally.degraded_recoveries += 1;
        }
        tally.discarded_stripes += e.recovery_stats().discarded_stripes;
        tally.groups += child_log.groups;
        tally.acked_groups += child_log.acked_groups;
        e.close()
            .unwrap_or_else(|err| panic!("{ctx}: close: {err}"));
        drop(e);
        base = actual;

        // One device (a different one each time) lost as well: every acknowledged write is
        // still there (docs/design.md invariant 1), so the crash left no acknowledged write
        // depending on a chunk it destroyed; every stripe of the log is rebuilt from parity.
        let gone = rng.random_range(0..N);
        let keep: Vec<PathBuf> = paths
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != gone)
            .map(|(_, p)| p.clone())
            .collect();
        let e = Engine::open(
            open_files(&keep, None, verify_kind),
            EngineOptions {
                read_only: true,
                ..Default::default()
            },
        )
        .unwrap_or_else(|err| panic!("{ctx}: reopen without device {gone} failed: {err}"));
        let degraded = read_all(&e, &TABLES)
            .unwrap_or_else(|err| panic!("{ctx}: reading without device {gone}: {err}"));
        for t in 0..THREADS {
            if let Err(why) = check(
                &State::new(),
                &history[t],
                log_acked[t],
                &restrict(&degraded, t),
            ) {
                panic!(
                    "{ctx}: thread {t}: without device {gone}, acknowledged writes are missing ({} of {} log units \
                     acknowledged):\n{why}",
                    log_acked[t],
                    history[t].len()
                );
            }
        }
        tally.device_loss_reopens += 1;
    }
}

fn run_profile(profile: Profile, test: &str) -> Tally {
    let seed = crash_oracle::test_seed(test);
    let start = Instant::now();
    let mut tally = Tally::default();
    let rounds = profile.rounds();
    for r in 0..rounds {
        round(profile, seed.wrapping_add(r), r, &mut tally);
    }
    eprintln!(
        "{test}: {} kills hit a running child ({} aimed at start-up; {} children killed before they were ready) \
         in {rounds} rounds of {KILLS_PER_ROUND}; {} groups written, {} acknowledged ({} MiB of values); {} in-doubt \
         units, {} of them kept; {} recoveries replayed a stripe with missing chunks, {} stripes discarded beyond the \
         log's end; {} reopens with a device missing; cleaner: {} segments freed, {} checkpoints, {} kills after the \
         child's cleaner freed segments, {} after it wrote a checkpoint; {:.1?}",
        tally.kills,
        tally.early_kills,
        tally.children_not_ready,
        tally.groups,
        tally.acked_groups,
        tally.acked_value_bytes >> 20,
        tally.in_doubt_units,
        tally.in_doubt_kept,
        tally.degraded_recoveries,
        tally.discarded_stripes,
        tally.device_loss_reopens,
        tally.segments_freed,
        tally.checkpoints,
        tally.kills_after_cleaning,
        tally.kills_after_checkpoint,
        start.elapsed()
    );
    assert!(
        tally.kills >= profile.min_kills(),
        "only {} kills hit a running child (need {})",
        tally.kills,
        profile.min_kills()
    );
    assert!(
        tally.acked_groups > 0 && tally.in_doubt_units > 0,
        "the children did too little to test anything"
    );
    tally
}

#[test]
fn sigkill_at_random_points() {
    run_profile(Profile::Writes, "sigkill_at_random_points");
}

/// docs/fault-model.md "process killed at any instant" while the cleaner moves records, checkpoints and
/// frees segments: no row lost, none resurrected (the same oracle), and the kills must really
/// land on working cleaners (one kill in two, past the start-up ones, waits until the
/// child's cleaner has freed a segment and written a checkpoint).
#[test]
fn sigkill_while_cleaning() {
    let t = run_profile(Profile::Cleaning, "sigkill_while_cleaning");
    // How far a child gets before its kill follows the machine's speed: with the same seed
    // 76 to 121 of the 240 kills landed after the cleaner freed segments (both with the
    // cleaner's age damped and without), so the bar is dozens, not a hundred.
    assert!(
        t.kills_after_cleaning >= 50 && t.kills_after_checkpoint >= 50,
        "too few kills landed after the cleaner ran: {} after freeing segments, {} after a checkpoint",
        t.kills_after_cleaning,
        t.kills_after_checkpoint
    );
    // Each array holds 8 segments: freeing many times that means the space was recycled
    // over and over while the children were being killed. (With the sync journal and
    // version 3 records a round freed about 3 arrays' worth; with short stripes, which
    // wasted space, more; compact records (version 4) take less room: about 1.5.)
    // That too follows the machine's speed (153 to 295 with one seed), so the bar is half an
    // array's worth a round: still every array's space recycled many times over.
    let segments_per_array = (Profile::Cleaning.dev_bytes() - (1 << 20)) / (256 << 10);
    assert!(
        t.segments_freed >= segments_per_array * Profile::Cleaning.rounds() / 2,
        "the cleaner freed only {} segments",
        t.segments_freed
    );
}
