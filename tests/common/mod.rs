//! Helpers shared by the integration tests: arrays on memory, files and loop devices.
#![allow(dead_code)]

use ectable::devices::{
    open_backend, BackendKind, BlockDevice, FaultyDevice, FileDevice, IoBackend, MemDevice,
    OpenOptions,
};
use ectable::{format, Engine, EngineOptions, FormatOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// Both I/O engines, so that every scenario runs on each.
pub const ENGINES: [BackendKind; 2] = [BackendKind::Uring, BackendKind::Psync];

pub fn fmt_opts(k: usize, m: usize) -> FormatOptions {
    FormatOptions {
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
    }
}

/// `fmt_opts` for a version 1 array: no sync journal, so every sync writes a short stripe
/// on all members. For the scenarios built around the stripe a sync writes (a power budget
/// that lets only some of its chunks through, a torn last stripe).
pub fn fmt_opts_stripes_only(k: usize, m: usize) -> FormatOptions {
    FormatOptions {
        sync_journal: false,
        ..fmt_opts(k, m)
    }
}

/// n memory devices wrapped in fault injectors.
pub fn mem_devices(
    n: usize,
    size: u64,
    seed: u64,
) -> (Vec<Arc<MemDevice>>, Vec<Arc<FaultyDevice>>) {
    let mems: Vec<Arc<MemDevice>> = (0..n)
        .map(|i| Arc::new(MemDevice::new(&format!("mem{i}"), size)))
        .collect();
    let faulty = mems
        .iter()
        .enumerate()
        .map(|(i, m)| {
            Arc::new(FaultyDevice::new(
                m.clone() as Arc<dyn BlockDevice>,
                seed.wrapping_add(i as u64),
            ))
        })
        .collect();
    (mems, faulty)
}

pub fn io_of(faulty: &[Arc<FaultyDevice>]) -> Arc<dyn IoBackend> {
    let devs: Vec<Arc<dyn BlockDevice>> = faulty
        .iter()
        .map(|f| f.clone() as Arc<dyn BlockDevice>)
        .collect();
    open_backend(BackendKind::Psync, devs).expect("psync engine")
}

pub fn file_paths(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n).map(|i| dir.join(format!("dev{i}.img"))).collect()
}

/// The devices at `paths` (files or block devices), created at `create_size` if missing.
pub fn open_files<P: AsRef<Path>>(
    paths: &[P],
    create_size: Option<u64>,
    kind: BackendKind,
) -> Arc<dyn IoBackend> {
    let devs: Vec<Arc<dyn BlockDevice>> = paths
        .iter()
        .map(|p| {
            let o = OpenOptions {
                create_size_bytes: create_size,
                ..Default::default()
            };
            Arc::new(FileDevice::open(p.as_ref(), &o).expect("open device")) as Arc<dyn BlockDevice>
        })
        .collect();
    open_backend(kind, devs).expect("io engine")
}

pub fn open_engine_on(io: Arc<dyn IoBackend>) -> Engine {
    Engine::open(io, EngineOptions::default()).expect("open engine")
}

pub fn format_files(paths: &[PathBuf], size: u64, k: usize, m: usize, kind: BackendKind) {
    let io = open_files(paths, Some(size), kind);
    format(io.as_ref(), &fmt_opts(k, m)).expect("format");
}

/// Deterministic value for row i under `seed`.
pub fn value_for(i: u64, seed: u64, len: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A value that names its key and version (both in its first 16 bytes), for tests where
/// any version of the right key is a right answer.
pub fn versioned_value(key: u64, version: u64, seed: u64, len: usize) -> Vec<u8> {
    let mut v = value_for(key * 100_000 + version, seed, len);
    v[..16].copy_from_slice(&[key.to_le_bytes(), version.to_le_bytes()].concat());
    v
}

/// The key and version a `versioned_value` names.
pub fn version_of(v: &[u8]) -> (u64, u64) {
    let word = |r: std::ops::Range<usize>| u64::from_le_bytes(v[r].try_into().expect("8 bytes"));
    (word(0..8), word(8..16))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether loop-device tests must run (CI) rather than skip.
pub fn loop_required() -> bool {
    std::env::var("ECTABLE_REQUIRE_LOOP").is_ok_and(|v| v == "1")
}

/// A loop device attached by this test, detached on drop (also when the test fails).
pub struct LoopDevice {
    pub path: String,
    pub backing: PathBuf,
}

impl LoopDevice {
    pub fn attach(backing: &Path, size: u64) -> LoopDevice {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(backing)
            .expect("backing file");
        f.set_len(size).expect("size backing file");
        let out = Command::new("losetup")
            .args(["-f", "--show", "--direct-io=on"])
            .arg(backing)
            .output()
            .expect("run losetup");
        let out = if out.status.success() {
            out
        } else {
            Command::new("losetup")
                .args(["-f", "--show"])
                .arg(backing)
                .output()
                .expect("run losetup")
        };
        assert!(
            out.status.success(),
            "losetup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        LoopDevice {
            path,
            backing: backing.to_path_buf(),
        }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.backing).status();
        // The read-only flag outlives a detach: clear it so the next user of this loop
        // device number can write.
        let _ = Command::new("blockdev")
            .arg("--setrw")
            .arg(&self.path)
            .status();
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
    }
}

/// Returns false (and prints why) when loop devices cannot be used here; panics when CI
/// requires them.
pub fn loop_devices_available(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        !loop_required(),
        "{test}: ECTABLE_REQUIRE_LOOP=1 but not running as root"
    );
    eprintln!("SKIP {test}: loop devices need root");
    false
}

/// The crash-consistency oracle of docs/fault-model.md (S1–S3, and "a crash leaves a prefix of the
/// history", docs/design.md invariant 2), shared by the crash tests.
///
/// A test records what it asked the engine to do as a sequence of [`crash_oracle::Unit`]s
/// (a single put/delete, or a `write_batch`), in the order it appended them, and how many of
/// them a successful `sync` acknowledged. After the crash it reads the whole recovered state
/// and [`crash_oracle::check`] decides whether that state is allowed.
pub mod crash_oracle {
    use std::collections::{BTreeMap, BTreeSet};

    /// The state of the array as the oracle sees it: `table/key` → value.
    pub type State = BTreeMap<Vec<u8>, Vec<u8>>;

    /// The oracle's name for (table, key).
    pub fn okey(table: &str, key: &[u8]) -> Vec<u8> {
        let mut v = table.as_bytes().to_vec();
        v.push(b'/');
        v.extend_from_slice(key);
        v
    }

    /// The seed of a randomized test: `ECTABLE_TEST_SEED` if set (to replay a run), else a
    /// fresh one. Printed either way.
    pub fn test_seed(test: &str) -> u64 {
        let seed = match std::env::var("ECTABLE_TEST_SEED") {
            Ok(s) => s
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("ECTABLE_TEST_SEED={s:?} is not a u64")),
            Err(_) => {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                (t.as_nanos() as u64) ^ ((std::process::id() as u64) << 32)
            }
        };
        eprintln!("{test}: seed {seed} (replay with ECTABLE_TEST_SEED={seed})");
        seed
    }

    /// Reads every row of `tables` (a table that does not exist is empty).
    pub fn read_all(e: &ectable::Engine, tables: &[&str]) -> Result<State, ectable::Error> {
        use std::ops::Bound::Unbounded;
        let mut state = State::new();
        for t in tables {
            match e.scan(t, Unbounded, Unbounded, usize::MAX) {
                Ok(rows) => {
                    for (k, v) in rows {
                        state.insert(okey(t, &k), v);
                    }
                }
                Err(ectable::Error::NoSuchTable(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(state)
    }

    /// A value that names the operation that wrote it: 8 bytes of `uid`, then `len - 8`
    /// deterministic bytes. Every put of a test gets its own uid, so a value read back says
    /// exactly which write it came from.
    pub fn make_value(uid: u64, seed: u64, len: usize) -> Vec<u8> {
        let mut v = uid.to_le_bytes().to_vec();
        v.extend(super::value_for(uid, seed, len.saturating_sub(8)));
        v
    }

    /// The uid a [`make_value`] value carries.
    pub fn uid_of(value: &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(value.get(..8)?.try_into().ok()?))
    }

    /// One thing the engine was asked to do atomically: a put, a delete, or a batch.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Unit {
        /// (oracle key, Some(value) for a put / None for a delete), in append order.
        pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        /// Appended with `write_batch` (all or nothing).
        pub batch: bool,
    }

    /// Applies a unit to a state.
    pub fn apply(state: &mut State, unit: &Unit) {
        for (k, v) in &unit.ops {
            match v {
                Some(v) => {
                    state.insert(k.clone(), v.clone());
                }
                None => {
                    state.remove(k);
                }
            }
        }
    }

    fn show(v: Option<&Vec<u8>>) -> String {
        match v {
            None => "absent".into(),
            Some(v) => match uid_of(v) {
                Some(uid) => format!("value of write uid {uid} ({} bytes)", v.len()),
                None => format!("{} bytes {:02x?}", v.len(), v),
            },
        }
    }

    /// Checks the recovered `actual` state against a sequential history: `base` (the state
    /// known exactly before the history started), then `units` in order, of which
    /// `units[..acked]` were acknowledged and the rest are in doubt. `base`, `units` and
    /// `actual` must all be restricted to the same set of keys.
    ///
    /// - S2: every value present was written to that key (by `base` or a unit);
    /// - S1: every key holds its last acknowledged value, or the value of a later in-doubt
    ///   write to it (a delete counts as a write of "absent");
    /// - S3: an in-doubt batch is visible entirely or not at all (acknowledged batches are
    ///   covered by S1);
    /// - prefix: `actual` equals `base` + `units[..p]` for some `p ≥ acked` (invariant 2).
    ///
    /// Returns that `p`, or a description of every violation found.
    pub fn check(
        base: &State,
        units: &[Unit],
        acked: usize,
        actual: &State,
    ) -> Result<usize, String> {
        assert!(acked <= units.len());
        let mut errors: Vec<String> = Vec::new();
        // Every value ever written per key.
        let mut written: BTreeMap<&[u8], BTreeSet<&[u8]>> = BTreeMap::new();
        for (k, v) in base {
            written.entry(k).or_default().insert(v);
        }
        for u in units {
            for (k, v) in &u.ops {
                let e = written.entry(k).or_default();
                if let Some(v) = v {
                    e.insert(v);
                }
            }
        }
        // S2.
        for (k, v) in actual {
            let ok = written
                .get(k.as_slice())
                .is_some_and(|s| s.contains(v.as_slice()));
            if !ok {
                errors.push(format!(
                    "S2: key {} holds a value never written to it: {}",
                    String::from_utf8_lossy(k),
                    show(Some(v))
                ));
            }
        }
        // S1.
        let mut after_acked = base.clone();
        for u in &units[..acked] {
            apply(&mut after_acked, u);
        }
        let mut later: BTreeMap<&[u8], Vec<Option<&Vec<u8>>>> = BTreeMap::new();
        for u in &units[acked..] {
            for (k, v) in &u.ops {
                later.entry(k).or_default().push(v.as_ref());
            }
        }
        let keys: BTreeSet<&[u8]> = written
            .keys()
            .copied()
            .chain(actual.keys().map(|k| k.as_slice()))
            .collect();
        for k in &keys {
            let got = actual.get(*k);
            let expected = after_acked.get(*k);
            if got == expected {
                continue;
            }
            let superseded = later.get(k).is_some_and(|vs| vs.contains(&got));
            let never_written = got.is_some()
                && !written
                    .get(k)
                    .is_some_and(|s| s.contains(got.unwrap().as_slice()));
            if !superseded && !never_written {
                errors.push(format!(
                    "S1: key {}: the acknowledged state is {}, and no later in-doubt write explains what was read: {}",
                    String::from_utf8_lossy(k),
                    show(expected),
                    show(got)
                ));
            }
        }
        // S3.
        for (i, u) in units
            .iter()
            .enumerate()
            .skip(acked)
            .filter(|(_, u)| u.batch)
        {
            let mut seen = 0;
            let mut missing = 0;
            let mut last: BTreeMap<&[u8], Option<&Vec<u8>>> = BTreeMap::new();
            for (k, v) in &u.ops {
                last.insert(k, v.as_ref());
            }
            for (k, v) in last {
                let Some(v) = v else { continue };
                if units[i + 1..]
                    .iter()
                    .any(|l| l.ops.iter().any(|(k2, _)| k2.as_slice() == k))
                {
                    continue; // superseded by a later in-doubt unit
                }
                if actual.get(k) == Some(v) {
                    seen += 1;
                } else {
                    missing += 1;
                }
            }
            if seen > 0 && missing > 0 {
                errors.push(format!(
                    "S3: in-doubt batch #{i} is partly visible: {seen} of its puts are there, {missing} are not"
                ));
            }
        }
        // Prefix: walk p from acked to the end, keeping the number of keys that differ.
        let mut state = after_acked;
        let mut scope: BTreeSet<Vec<u8>> = state.keys().cloned().collect();
        scope.extend(actual.keys().cloned());
        for u in &units[acked..] {
            scope.extend(u.ops.iter().map(|(k, _)| k.clone()));
        }
        let mut differ = scope
            .iter()
            .filter(|k| state.get(*k) != actual.get(*k))
            .count();
        let mut found = None;
        for p in acked..=units.len() {
            if differ == 0 {
                found = Some(p);
                break;
            }
            if p == units.len() {
                break;
            }
            let touched: BTreeSet<&Vec<u8>> = units[p].ops.iter().map(|(k, _)| k).collect();
            for k in &touched {
                if state.get(*k) != actual.get(*k) {
                    differ -= 1;
                }
            }
            apply(&mut state, &units[p]);
            for k in &touched {
                if state.get(*k) != actual.get(*k) {
                    differ += 1;
                }
            }
        }
        match found {
            Some(p) if errors.is_empty() => Ok(p),
            _ => {
                if found.is_none() {
                    errors.push(format!(
                        "prefix: the recovered state is not base + units[..p] for any p in {acked}..={}",
                        units.len()
                    ));
                }
                Err(errors.join("\n"))
            }
        }
    }
}

/// `n` memory devices that outlive the fault wrappers put over them (crash tests "reboot"
/// by wrapping the same memory again).
pub fn memory_devices(n: usize, bytes: u64) -> Vec<Arc<MemDevice>> {
    (0..n)
        .map(|i| Arc::new(MemDevice::new(&format!("mem{i}"), bytes)))
        .collect()
}

/// Fresh fault wrappers over memory devices (a new "boot").
pub fn wrap(mems: &[Arc<MemDevice>], seed: u64) -> Vec<Arc<FaultyDevice>> {
    mems.iter()
        .enumerate()
        .map(|(i, m)| {
            Arc::new(FaultyDevice::new(
                m.clone() as Arc<dyn BlockDevice>,
                seed.wrapping_add(i as u64),
            ))
        })
        .collect()
}

/// A psync I/O engine over the devices `keep` (slots left out are "missing").
pub fn io_subset(faulty: &[Arc<FaultyDevice>], keep: &[usize]) -> Arc<dyn IoBackend> {
    let devs: Vec<Arc<dyn BlockDevice>> = keep
        .iter()
        .map(|&i| faulty[i].clone() as Arc<dyn BlockDevice>)
        .collect();
    open_backend(BackendKind::Psync, devs).expect("psync engine")
}

/// Waits until no other process holds the devices' write lock: after a writer process is
/// killed, the writes it had in flight (io_uring requests keep the file referenced) may
/// still land for a moment after the process is reaped; the lock is released only once
/// they have.
/// Waits until `cond` holds, checking every 10 ms; fails the test naming `what` after
/// `limit`.
pub fn wait_until(what: &str, limit: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

pub fn wait_for_writers_gone(paths: &[PathBuf]) {
    for p in paths {
        let f = std::fs::File::open(p).expect("open device file");
        f.lock().expect("wait for the device lock");
        let _ = f.unlock();
    }
}

/// A power switch in front of memory devices, for deterministic crashes: a session's
/// devices let a set number of writes and flushes through (counted over all devices), then
/// fail every operation with EIO without touching the medium. Dropping the engine after
/// `cut` is then a power loss (its close cannot write anything).
pub mod power_switch {
    use ectable::devices::{
        open_backend, BackendKind, BlockDevice, DeviceError, Geometry, MemDevice,
    };
    use ectable::{CleanerOptions, Engine, EngineOptions};
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    use std::sync::Arc;

    pub struct Power {
        /// Writes and flushes still allowed before the cut.
        pub budget: AtomicI64,
        off: AtomicBool,
    }

    impl Power {
        pub fn new() -> Arc<Power> {
            Arc::new(Power {
                budget: AtomicI64::new(i64::MAX),
                off: AtomicBool::new(false),
            })
        }
        fn pass(&self) -> bool {
            if self.off.load(Ordering::SeqCst) || self.budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
                self.off.store(true, Ordering::SeqCst);
                return false;
            }
            true
        }
        pub fn cut(&self) {
            self.off.store(true, Ordering::SeqCst);
        }
    }

    pub struct CutDevice {
        pub inner: Arc<dyn BlockDevice>,
        pub power: Arc<Power>,
    }

    fn eio(dev: &str, op: &'static str, offset: u64) -> DeviceError {
        DeviceError::io(
            dev,
            op,
            offset,
            std::io::Error::from_raw_os_error(libc::EIO),
        )
    }

    impl BlockDevice for CutDevice {
        fn name(&self) -> &str {
            self.inner.name()
        }
        fn geometry(&self) -> Geometry {
            self.inner.geometry()
        }
        fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> Result<(), DeviceError> {
            if self.power.off.load(Ordering::SeqCst) {
                return Err(eio(self.name(), "read", offset_bytes));
            }
            self.inner.read_at(buf, offset_bytes)
        }
        fn write_at(&self, buf: &[u8], offset_bytes: u64) -> Result<(), DeviceError> {
            if !self.power.pass() {
                return Err(eio(self.name(), "write", offset_bytes));
            }
            self.inner.write_at(buf, offset_bytes)
        }
        fn sync(&self) -> Result<(), DeviceError> {
            if !self.power.pass() {
                return Err(eio(self.name(), "flush", 0));
            }
            self.inner.sync()
        }
        fn write_durable_at(&self, buf: &[u8], offset_bytes: u64) -> Result<(), DeviceError> {
            if !self.power.pass() {
                return Err(eio(self.name(), "durable write", offset_bytes));
            }
            self.inner.write_durable_at(buf, offset_bytes)
        }
    }

    /// Engine options with the cleaner off: nothing but the test writes.
    pub fn no_cleaner() -> EngineOptions {
        EngineOptions {
            cleaner: CleanerOptions {
                enabled: false,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// A writable session on all of `mems` (fresh fault wrappers) behind one power switch.
    pub fn session(
        mems: &[Arc<MemDevice>],
        seed: u64,
        opts: EngineOptions,
    ) -> (Engine, Arc<Power>) {
        let power = Power::new();
        let devs: Vec<Arc<dyn BlockDevice>> = super::wrap(mems, seed)
            .into_iter()
            .map(|f| {
                Arc::new(CutDevice {
                    inner: f as Arc<dyn BlockDevice>,
                    power: power.clone(),
                }) as Arc<dyn BlockDevice>
            })
            .collect();
        let io = open_backend(BackendKind::Psync, devs).expect("psync engine");
        (Engine::open(io, opts).expect("open"), power)
    }
}

/// Key/value rows a test had acknowledged in one table.
pub type Rows = std::collections::BTreeMap<Vec<u8>, Vec<u8>>;

/// Every row of `rows` reads back exactly from `table`.
pub fn check_rows(e: &Engine, table: &str, rows: &Rows, what: &str) {
    for (k, v) in rows {
        match e.get(table, k) {
            Ok(Some(got)) => assert!(got == *v, "{what}: wrong value for {k:?}"),
            other => panic!(
                "{what}: {} not readable: {other:?}",
                String::from_utf8_lossy(k)
            ),
        }
    }
}

/// Every pair of the devices left out (read-only opens of the rest): every row of `rows`
/// reads back from `table`.
pub fn check_every_pair_lost(faulty: &[Arc<FaultyDevice>], table: &str, rows: &Rows, what: &str) {
    let n = faulty.len();
    for a in 0..n {
        for b in a + 1..n {
            let keep: Vec<usize> = (0..n).filter(|&i| i != a && i != b).collect();
            let e = Engine::open(
                io_subset(faulty, &keep),
                EngineOptions {
                    read_only: true,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|err| panic!("{what}: open without {a},{b}: {err}"));
            check_rows(&e, table, rows, &format!("{what}, without {a},{b}"));
        }
    }
}
