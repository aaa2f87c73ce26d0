//! Faults through the kernel's real I/O path: the array's devices are files of a FUSE file
//! system (ectable-faultfs) that delays or fails their requests, and the engine reaches them
//! through io_uring and O_DIRECT as it reaches any file (docs/fault-model.md, "Real-kernel
//! faults"). Needs root (the mount); skips with a reason otherwise, unless
//! ECTABLE_REQUIRE_LOOP=1.

#![allow(clippy::big_endian_bytes)] // big-endian keys sort in numeric order

mod common;
use common::*;
use ectable::devices::BackendKind;
use ectable::{Engine, EngineOptions};
use ectable_faultfs::{Config, FaultFs};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One mount at a time: the latency test must not share the CPUs with another.
static LOCK: Mutex<()> = Mutex::new(());

const ROWS: u64 = 2_000;
const VALUE: usize = 4096;
const SEED: u64 = 41;
/// A healthy device's service time in the latency test.
const SERVICE: Duration = Duration::from_micros(200);

/// A mounted fault file system of six devices per array, each array RS(4,2) holding ROWS
/// rows.
struct Rig {
    // Dropped in this order: the mount, then its directories.
    fs: FaultFs,
    _mnt: tempfile::TempDir,
    _backing: tempfile::TempDir,
}

impl Rig {
    /// Array `a`'s devices.
    fn paths(&self, a: usize) -> Vec<PathBuf> {
        self.fs.paths()[6 * a..6 * a + 6].to_vec()
    }

    fn open(&self, a: usize, opts: EngineOptions) -> Engine {
        Engine::open(open_files(&self.paths(a), None, BackendKind::Uring), opts).expect("open")
    }

    fn read_only(&self, a: usize) -> Engine {
        self.open(
            a,
            EngineOptions {
                read_only: true,
                ..Default::default()
            },
        )
    }
}

/// `journal`: format version 3 (the sync journal) or version 1 (syncs write stripes).
fn rig(test: &str, arrays: usize, journal: bool) -> Option<Rig> {
    if !is_root() || !std::path::Path::new("/dev/fuse").exists() {
        assert!(
            !loop_required(),
            "{test}: ECTABLE_REQUIRE_LOOP=1 but FUSE cannot be mounted here (needs root and \
             /dev/fuse)"
        );
        eprintln!("SKIP {test}: mounting FUSE needs root and /dev/fuse");
        return None;
    }
    let backing = tempfile::tempdir().expect("backing dir");
    let mnt = tempfile::tempdir().expect("mount dir");
    let mut cfg = Config::new(backing.path(), 6 * arrays, 64 << 20);
    // Durability of the backing files is not under test here; fsync still reaches faultfs.
    cfg.sync_backing = false;
    let fs = FaultFs::mount(mnt.path(), &cfg).expect("mount faultfs");
    let rig = Rig {
        fs,
        _mnt: mnt,
        _backing: backing,
    };
    for a in 0..arrays {
        let io = open_files(&rig.paths(a), None, BackendKind::Uring);
        let opts = if journal {
            fmt_opts(4, 2)
        } else {
            fmt_opts_stripes_only(4, 2)
        };
        ectable::format(io.as_ref(), &opts).expect("format");
        drop(io);
        let e = rig.open(a, EngineOptions::default());
        for i in 0..ROWS {
            e.put("t", &i.to_be_bytes(), &value_for(i, SEED, VALUE))
                .expect("put");
        }
        e.sync().expect("sync");
        e.close().expect("close");
    }
    Some(rig)
}

fn key(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15) % ROWS
}

/// The `j`th point read of a fixed pseudo-random order, checked; its latency.
fn timed_read(e: &Engine, j: u64) -> Duration {
    let i = key(j);
    let t = Instant::now();
    let v = e.get("t", &i.to_be_bytes()).expect("get");
    let took = t.elapsed();
    assert_eq!(v, Some(value_for(i, SEED, VALUE)), "row {i}");
    took
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Two arrays on one mount, read in turn (so that whatever else the machine does slows both
/// alike): array 1 has a device 100 times slower than the others; once it is flagged, reads
/// go around it: only the sampler's probes reach it, and array 1's read p99 stays far below
/// the slow device's latency. (The p99 against array 0's is printed; the 1.5 times target
/// is a benchmark figure, `ecbench --slow-device`, docs/performance.md: here a sixth of the
/// reads are rebuilt from four FUSE reads, and the slowest of four sets their latency, so
/// the ratio moves with the machine's load, 1.1 to 2.4 in CI-like runs.)
#[test]
fn a_device_100x_slower_is_flagged_slow_and_reads_keep_their_p99() {
    let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(rig) = rig(
        "a_device_100x_slower_is_flagged_slow_and_reads_keep_their_p99",
        2,
        true,
    ) else {
        return;
    };
    // Every device takes SERVICE per request, as a real drive does (an SSD's read is some
    // 100 us): without it a request through FUSE costs only CPU time, and a reconstruction's
    // k parallel reads compete for this machine's two CPUs where real drives work at once.
    for d in 0..12 {
        rig.fs.faults(d).set_delay(SERVICE);
    }
    let (healthy, degraded) = (rig.read_only(0), rig.read_only(1));
    (0..1_000).for_each(|j| {
        timed_read(&healthy, j);
        timed_read(&degraded, j);
    });
    let delay = SERVICE * 100;
    let slow = 6 + 3; // array 1's slot 3
    rig.fs.faults(slow).set_delay(delay);
    let started = Instant::now();
    let mut j = 10_000u64;
    while degraded.status().devices[3].state != "DEGRADED" {
        timed_read(&degraded, j);
        j += 1;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the slow device was never flagged"
        );
    }
    let flagged_after = started.elapsed();
    // Up to three rounds of N reads each, the arrays read in turn: a round passes when the
    // p99 with the slow device stays below a quarter of the slow device's latency. On this
    // shared 2-core machine one round's p99 can be noise (a build or another test's burst);
    // a read path that waited for the slow device (one read in a hundred is enough) would
    // miss in every round.
    const N: u64 = 6_000;
    let mut rounds = Vec::new();
    let mut passed = false;
    for _ in 0..3 {
        let before = rig.fs.faults(slow).counters().delayed_ops;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for jj in j..j + N {
            a.push(timed_read(&healthy, jj));
            b.push(timed_read(&degraded, jj));
        }
        j += N;
        a.sort();
        b.sort();
        let sampled = rig.fs.faults(slow).counters().delayed_ops - before;
        let (p99_a, p99_b) = (pct(&a, 0.99), pct(&b, 0.99));
        eprintln!(
            "service {SERVICE:?}, slow device {delay:?}, flagged after {flagged_after:?}; healthy p50 \
             {:?} p99 {p99_a:?}; with the slow device p50 {:?} p99 {p99_b:?} ({:.2}x); {sampled} \
             probes of the slow device",
            pct(&a, 0.5),
            pct(&b, 0.5),
            p99_b.as_secs_f64() / p99_a.as_secs_f64()
        );
        assert!(sampled > 0, "the slow device was never measured again");
        // Reads that go around the device probe it once in 64 (off the reader's path).
        assert!(sampled <= N / 64 + 8, "{sampled} reads waited for it");
        rounds.push((p99_a, p99_b));
        if p99_b < delay / 4 {
            passed = true;
            break;
        }
    }
    let st = degraded.status();
    assert_eq!(st.devices[3].state, "DEGRADED", "{:?}", st.devices[3]);
    assert!(
        st.devices.iter().all(|d| d.state != "FAULTED"),
        "slowness must not fail a device: {:?}",
        st.devices.iter().map(|d| d.state).collect::<Vec<_>>()
    );
    assert!(
        passed,
        "p99 with a slow device against healthy, per round: {rounds:?} (the slow device: {delay:?})"
    );
}

#[test]
fn sector_errors_through_the_kernel_are_repaired_from_parity() {
    let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(rig) = rig(
        "sector_errors_through_the_kernel_are_repaired_from_parity",
        1,
        true,
    ) else {
        return;
    };
    let dev = 2;
    // Eight 4 KiB ranges spread over the first MiBs of device 2's data area (fewer than the
    // default read-error limit of 32, so the device stays in service), each the second
    // block of a chunk: where its first 4 KiB value lies (the first block holds the chunk
    // header and the record area, which gets of placed values do not read).
    for k in 0..8u64 {
        let start = (1 << 20) + k * (160 << 10) + 8192;
        rig.fs.faults(dev).add_read_error(start..start + 4096);
    }
    let e = rig.open(0, EngineOptions::default());
    for i in 0..ROWS {
        assert_eq!(
            e.get("t", &i.to_be_bytes()).expect("get"),
            Some(value_for(i, SEED, VALUE)),
            "row {i}"
        );
    }
    let fired = rig.fs.faults(dev).counters().eio_reads;
    assert!(fired > 0, "no sector error fired");
    let st = e.status();
    assert!(st.read_repairs > 0, "the bad chunks were not rewritten");
    assert!(
        st.devices[dev].read_errors > 0,
        "the read errors were not counted"
    );
    assert_ne!(st.devices[dev].state, "FAULTED");
    assert!(
        rig.fs.faults(dev).counters().remapped_bytes > 0,
        "read-repair did not write over the bad sectors"
    );
    e.close().expect("close");
    drop(e);
    // The rewrite went through the kernel onto the bad sectors: a second pass meets none.
    let e = rig.read_only(0);
    let before = rig.fs.faults(dev).counters().eio_reads;
    for i in 0..ROWS {
        assert_eq!(
            e.get("t", &i.to_be_bytes()).expect("get"),
            Some(value_for(i, SEED, VALUE))
        );
    }
    assert_eq!(
        rig.fs.faults(dev).counters().eio_reads,
        before,
        "repaired sectors still fail"
    );
}

#[test]
fn failed_fsyncs_are_not_acknowledged_past_m_devices() {
    let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // Version 1: every sync writes a stripe to all six devices, so the failing fsyncs are
    // hit by each put (with the journal, an entry goes to three members, which may not
    // include the failing one; tests/crash_power_loss.rs covers that case).
    let Some(rig) = rig(
        "failed_fsyncs_are_not_acknowledged_past_m_devices",
        1,
        false,
    ) else {
        return;
    };
    // One device's flush fails: that device is failed, the write is durable on the five
    // others (more than k), and is acknowledged.
    let e = rig.open(0, EngineOptions::default());
    rig.fs.faults(1).set_fail_fsync(true);
    e.put_sync("t", b"one-failed-flush", b"kept")
        .expect("a write durable on 5 of 6 devices is acknowledged");
    assert!(
        rig.fs.faults(1).counters().failed_fsyncs > 0,
        "no fsync failed"
    );
    let st = e.status();
    assert_eq!(st.devices[1].state, "FAULTED", "a device that lost a flush");
    // Two more: the flush fails on three devices, more than m; nothing may be acknowledged.
    rig.fs.faults(4).set_fail_fsync(true);
    rig.fs.faults(5).set_fail_fsync(true);
    let r = e.put_sync("t", b"three-failed-flushes", b"in doubt");
    assert!(
        r.is_err(),
        "acknowledged a write whose flush failed on 3 of 6 devices"
    );
    assert!(
        rig.fs.faults(4).counters().failed_fsyncs + rig.fs.faults(5).counters().failed_fsyncs > 0,
        "the flushes did not fail"
    );
    eprintln!("put_sync with three failed flushes: {}", r.unwrap_err());
    let r = e.put_sync("t", b"after", b"x");
    assert!(
        r.is_err(),
        "acknowledged a write after losing three devices"
    );
    drop(e);
    // The devices come back: every acknowledged write is there (the refused ones are in doubt).
    for i in 0..6 {
        rig.fs.faults(i).clear();
    }
    let e = rig.read_only(0);
    assert_eq!(
        e.get("t", b"one-failed-flush").expect("get"),
        Some(b"kept".to_vec())
    );
    for i in (0..ROWS).step_by(97) {
        assert_eq!(
            e.get("t", &i.to_be_bytes()).expect("get"),
            Some(value_for(i, SEED, VALUE))
        );
    }
}

/// A device that stops answering, through the kernel: faultfs holds every read and write of
/// one device for 6 s, and io_uring, with a 1 s I/O deadline, gives them up (docs/design.md,
/// "Devices that stop answering"). Oracle: synced puts and reads of every row checked finish
/// well within one of the device's delays; the device is FAULTED; once its held requests
/// are answered they are counted out, `online` takes it back, and after the resync a scrub
/// finds nothing and every row reads.
#[test]
fn a_device_that_stops_answering_is_failed_at_the_io_deadline() {
    let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(rig) = rig(
        "a_device_that_stops_answering_is_failed_at_the_io_deadline",
        1,
        true,
    ) else {
        return;
    };
    let hold = Duration::from_secs(6);
    let opts = EngineOptions {
        health: ectable::HealthPolicy {
            io_timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        },
        ..Default::default()
    };
    let e = rig.open(0, opts);
    rig.fs.faults(3).set_delay(hold);
    let t = Instant::now();
    for i in 0..20u64 {
        e.put_sync(
            "t",
            format!("hung-{i}").as_bytes(),
            &value_for(i, 99, VALUE),
        )
        .expect("a synced put with one device not answering");
    }
    for i in (0..ROWS).step_by(7) {
        timed_read(&e, i);
    }
    let took = t.elapsed();
    assert!(
        took < hold - Duration::from_secs(1),
        "20 synced puts and {} reads took {took:?}: they waited for the device",
        ROWS / 7
    );
    let st = e.status();
    assert_eq!(st.devices[3].state, "FAULTED", "{:?}", st.devices[3]);
    assert!(
        st.devices[3].note.contains("given up") || st.devices[3].stuck_ops == 0,
        "{:?}",
        st.devices[3]
    );
    rig.fs.faults(3).set_delay(Duration::ZERO);
    // The held requests end within their 6 s; the threads that gave them up count them out
    // at their next I/O (this one by reading).
    let t = Instant::now();
    while e.status().devices[3].stuck_ops > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "still stuck: {:?}",
            e.status().devices[3]
        );
        timed_read(&e, 1);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        rig.fs.faults(3).counters().delayed_ops > 0,
        "the device held nothing"
    );
    let dev = ectable::devices::FileDevice::open(
        &rig.paths(0)[3],
        &ectable::devices::OpenOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .expect("open the device again");
    let back = e
        .online(std::sync::Arc::new(dev))
        .expect("online once it answers");
    assert_eq!(back.was, "FAULTED");
    e.rebuild(&ectable::RebuildOptions::default(), &mut |_| {})
        .expect("resync");
    let report = e
        .scrub(false, &ectable::RebuildOptions::default(), &mut |_| {})
        .expect("scrub");
    assert_eq!(
        report.bad_chunks_per_slot.iter().sum::<u64>(),
        0,
        "{report:?}"
    );
    for i in 0..20u64 {
        assert_eq!(
            e.get("t", format!("hung-{i}").as_bytes()).expect("get"),
            Some(value_for(i, 99, VALUE))
        );
    }
    for j in 0..ROWS {
        timed_read(&e, j);
    }
    e.close().expect("close");
}
