//! The simulator in CI: a fixed list of seeds, each a few hundred steps of random workload,
//! faults and operator actions over the real engine, the oracle checked after every step
//! (sim/src/lib.rs). A failure prints the seed, the step and the replay command. The totals
//! must show that every fault class was injected and that repairs ran: a schedule that
//! stopped drawing some class would otherwise pass silently.

use ectable_sim::{run, Config, Report, CI_SEEDS, CI_STEPS, CLASSES};

#[test]
fn fixed_seeds_pass_and_every_fault_class_fires() {
    let mut total = Report::default();
    // About a second per seed in a release build, a few in a test build.
    for seed in CI_SEEDS {
        let cfg = Config {
            seed,
            steps: CI_STEPS,
            ..Default::default()
        };
        match run(&cfg) {
            Ok(r) => total.add(&r),
            Err(f) => panic!("{f}"),
        }
    }
    assert_eq!(total.acknowledged_lost, 0);
    for c in CLASSES {
        let n = total.classes.get(c).copied().unwrap_or_default();
        assert!(
            n.injected > 0,
            "fault class '{c}' was never injected: {total:?}"
        );
    }
    for c in [
        "power loss",
        "process crash",
        "device loss",
        "device replaced",
    ] {
        let n = total.classes[c];
        assert!(n.repaired > 0, "'{c}' never repaired: {n:?}");
    }
    assert!(total.crash_states >= 50, "{total:?}");
    assert!(
        total.backups_checked > 0,
        "no backup was checked: {total:?}"
    );
    assert!(total.writes_acknowledged > 1_000, "{total:?}");
}

/// Found by an RS(8,2) soak: one device drops writes while a power loss leaves the first
/// stripe of segment 1 with no chunk; the next session zeroes segment 1's headers and writes
/// a segment 2 at the same places, and both writes are lost on that device. Before the fix
/// an open (a reader beside the writer here; the writer's own after a crash too) found the
/// leftover segment 1 there, walked it first and stopped with DataLost. The engine's timing
/// decides whether the device drops those two writes, so the seed runs several times (it
/// failed in the first run or two of most tries before the fix).
#[test]
fn a_leftover_segment_header_on_a_device_that_dropped_writes_does_not_stop_the_open() {
    let cfg = Config {
        seed: 2_110_402,
        steps: 26,
        data_shards: 8,
        parity_shards: 2,
        ..Default::default()
    };
    runs_pass(&cfg, 12);
}

/// Seed 2120050 at RS(6,3): a power loss, then the writer's reopen fails inside its superblock
/// write after copy 0 reached six members and before copy 1 did. Before the fix the
/// read-only scrub that follows reported copy 1 of those six members as bad (a false alarm:
/// the next writable open rewrites both copies); it failed in the first run.
#[test]
fn a_superblock_write_stopped_between_its_copies_is_no_scrub_finding() {
    let cfg = Config {
        seed: 2_120_050,
        steps: 156,
        data_shards: 6,
        parity_shards: 3,
        ..Default::default()
    };
    runs_pass(&cfg, 3);
}

/// Seed 2140143 at RS(4,2): a disk drops writes silently (a chunk never reaches it), then
/// comes back stale and is resynced. A resync rewrites only what it missed while out, so
/// the lost chunk is still there until a scrub; before the fix the simulator counted the
/// disk repaired after the resync and called the next scrub's (right) finding a false one.
#[test]
fn a_resynced_disk_that_dropped_writes_is_scrubbed_before_it_counts_repaired() {
    let cfg = Config {
        seed: 2_140_143,
        steps: 146,
        ..Default::default()
    };
    runs_pass(&cfg, 3);
}

/// Seed 2380557 at RS(4,2): a disk brought back with `online`, later a power cut. The
/// simulator handed the running engine that disk without its power switch, so after the
/// cut the engine still reached it: a sync journal entry written there alone vouched for
/// records whose stripe the cut had left on too few disks, and the open stopped with
/// DataLost (nothing of it had been acknowledged). A fault of the simulator, not of the
/// engine; it failed in the first run before the fix.
#[test]
fn a_disk_brought_back_online_loses_power_with_the_others() {
    let cfg = Config {
        seed: 2_380_557,
        steps: 202,
        ..Default::default()
    };
    runs_pass(&cfg, 3);
}

/// Runs one seed `times` times: the engine's timing decides whether some faults land, so a
/// regression seed runs more than once. Fails naming the run.
fn runs_pass(cfg: &Config, times: usize) {
    for run_no in 0..times {
        if let Err(f) = run(cfg) {
            panic!("run {run_no}: {f}");
        }
    }
}

/// Seed 2150232 at RS(4,2): a scrub right after a reopen, when the writer had dropped an
/// open stripe left empty (its sequence number is never sealed). The scrub waits for every
/// sealed stripe to be flushed; before the fix it waited for that number too, for ever.
/// Run on a thread with a deadline, so that a hang fails the test instead of stopping it.
#[test]
fn a_scrub_does_not_wait_for_a_stripe_that_was_never_sealed() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let cfg = Config {
            seed: 2_150_232,
            steps: 150,
            ..Default::default()
        };
        let _ = tx.send(run(&cfg).map(drop));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(120)) {
        Ok(Ok(())) => {}
        Ok(Err(f)) => panic!("{f}"),
        Err(_) => panic!("seed 2150232 did not finish within 120 s: a hang"),
    }
}
