//! Failure detection: a slow device becomes suspect within a bounded number of operations
//! and reads stop going to it, without being failed; the active prober fails a dead device
//! that normal traffic never touches within a bounded time; latent sector errors are
//! repaired by read-repair and do not fail the device below the error threshold.

#![allow(clippy::big_endian_bytes)] // big-endian keys sort in numeric order

mod common;
use common::*;
use ectable::{format, DetectionMode, Engine, EngineOptions, HealthPolicy};
use std::time::{Duration, Instant};

const ROWS: u64 = 300;

fn loaded(
    seed: u64,
) -> (
    Vec<std::sync::Arc<ectable::devices::MemDevice>>,
    Vec<std::sync::Arc<ectable::devices::FaultyDevice>>,
) {
    let (mems, faulty) = mem_devices(6, 8 << 20, seed);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Engine::open(io, EngineOptions::default()).unwrap();
    for i in 0..ROWS {
        e.put("t", &i.to_be_bytes(), &value_for(i, 3, 300)).unwrap();
    }
    e.close().unwrap();
    (mems, faulty)
}

#[test]
fn slow_device_becomes_suspect_and_reads_avoid_it() {
    let (_mems, faulty) = loaded(31);
    let e = Engine::open(
        io_of(&faulty),
        EngineOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    faulty[3].set_delay(Duration::from_millis(15));
    let started = Instant::now();
    let n = read_until_flagged(&e, 3);
    let took = started.elapsed();
    // The detector waits for the slowness to last (HealthPolicy::slow_persistence, 1 s).
    let bound = HealthPolicy::default().slow_persistence + Duration::from_secs(2);
    assert!(
        took <= bound,
        "took {took:?} ({n} reads) to flag a 15 ms device"
    );
    let before = faulty[3].counters().delayed_ops;
    for i in 0..ROWS {
        assert_eq!(
            e.get("t", &i.to_be_bytes()).unwrap(),
            Some(value_for(i, 3, 300))
        );
    }
    // One read in 64 that would go around it still goes to it (it keeps being measured).
    let sampled = faulty[3].counters().delayed_ops - before;
    assert!(
        sampled <= ROWS / 64 + 1,
        "{sampled} reads still went to the suspect device"
    );
    let st = e.status();
    assert_eq!(st.devices[3].state, "DEGRADED");
    assert!(
        st.devices.iter().all(|d| d.state != "FAULTED"),
        "slowness must not fail a device"
    );
}

/// Reads rows round and round until `slot` is reported DEGRADED (panics after 20 s);
/// returns the reads it took.
fn read_until_flagged(e: &Engine, slot: usize) -> u64 {
    let start = Instant::now();
    for n in 0.. {
        let i = n % ROWS;
        assert_eq!(
            e.get("t", &i.to_be_bytes()).unwrap(),
            Some(value_for(i, 3, 300))
        );
        if e.status().devices[slot].state == "DEGRADED" {
            return n + 1;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the slow device was never flagged"
        );
    }
    unreachable!()
}

/// A device found slow in a read-only session is seen to recover once it is fast again,
/// although reads go around it: a few reads still sample it.
#[test]
fn a_suspect_device_recovers_in_a_read_only_session() {
    let (_mems, faulty) = loaded(34);
    let e = Engine::open(
        io_of(&faulty),
        EngineOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    faulty[3].set_delay(Duration::from_millis(15));
    read_until_flagged(&e, 3);
    faulty[3].set_delay(Duration::ZERO);
    let start = Instant::now();
    let mut n = 0u64;
    while e.status().devices[3].state != "ONLINE" {
        let i = n % ROWS;
        assert_eq!(
            e.get("t", &i.to_be_bytes()).unwrap(),
            Some(value_for(i, 3, 300))
        );
        n += 1;
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still {} after {n} reads at full speed: {:?}, {:?}",
            e.status().devices[3].state,
            e.status().latency_ewma_ns,
            faulty[3].counters()
        );
    }
}

/// A device that was slow for a while is persisted as suspect (status says so while the
/// session lasts), but the next session measures afresh: it starts ONLINE, with a note, and
/// the array is not reported degraded for a slowness that is over.
#[test]
fn a_device_slow_in_the_last_session_starts_online() {
    let (_mems, faulty) = loaded(33);
    let e = Engine::open(io_of(&faulty), EngineOptions::default()).unwrap();
    faulty[3].set_delay(Duration::from_millis(15));
    read_until_flagged(&e, 3);
    // A write persists the new state into the superblocks.
    e.put("t", b"after", b"the slow spell").unwrap();
    e.sync().unwrap();
    e.close().unwrap();
    drop(e);
    faulty[3].set_delay(Duration::ZERO);
    let opts = EngineOptions {
        read_only: true,
        ..Default::default()
    };
    let e = Engine::open(io_of(&faulty), opts.clone()).unwrap();
    let st = e.status();
    assert_eq!(st.devices[3].state, "ONLINE", "{:?}", st.devices[3]);
    assert!(
        st.devices[3].note.contains("slow in the last session"),
        "{:?}",
        st.devices[3].note
    );
    assert_eq!(st.redundancy_left, 2);
    drop(e);
    // The first write of a new session persists it as online: the note goes away too.
    let e = Engine::open(io_of(&faulty), EngineOptions::default()).unwrap();
    e.put("t", b"later", b"x").unwrap();
    e.sync().unwrap();
    e.close().unwrap();
    drop(e);
    let e = Engine::open(io_of(&faulty), opts).unwrap();
    let st = e.status();
    assert_eq!(st.devices[3].state, "ONLINE");
    assert_eq!(st.devices[3].note, "");
}

#[test]
fn prober_fails_an_idle_dead_device_quickly() {
    let (_mems, faulty) = loaded(32);
    let health = HealthPolicy {
        mode: DetectionMode::Active,
        probe_interval: Duration::from_millis(20),
        ..Default::default()
    };
    let e = Engine::open(
        io_of(&faulty),
        EngineOptions {
            health,
            // Idle means idle: no cleaner I/O that could find the dead device first.
            cleaner: ectable::CleanerOptions {
                enabled: false,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    faulty[1].set_failed(true);
    let start = Instant::now();
    // FAULTED is set by the failed probe's I/O; its failure is counted just after.
    while e.status().devices[1].state != "FAULTED" || e.status().probe_failures == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "prober did not fail the dead device"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = e.status();
    assert!(st.probe_failures > 0 && st.probes > 0);
    assert!(faulty[1].counters().eio_writes + faulty[1].counters().eio_reads > 0);
    // The probe's failed I/O is an error of the device, as any other: a FAULTED member
    // with nothing in its READ and WRITE columns would not say why.
    let d = &st.devices[1];
    assert!(d.read_errors + d.write_errors > 0, "{d:?}");
    // Still serving, degraded.
    for i in 0..ROWS {
        assert_eq!(
            e.get("t", &i.to_be_bytes()).unwrap(),
            Some(value_for(i, 3, 300))
        );
    }
}

/// A member whose first failing write is a superblock write (here: the one that records a
/// new hot spare) is failed with that write counted, as a failed stripe write is.
#[test]
fn a_failed_superblock_write_is_counted_as_a_write_error() {
    let (_mems, faulty) = loaded(33);
    let e = Engine::open(io_of(&faulty), EngineOptions::default()).unwrap();
    faulty[2].set_read_only(true);
    let spare = std::sync::Arc::new(ectable::devices::MemDevice::new("spare", 8 << 20));
    e.add_spare_device(spare).unwrap();
    let st = e.status();
    let d = &st.devices[2];
    assert_eq!(d.state, "FAULTED", "{d:?}");
    assert!(d.write_errors >= 1, "{d:?}");
    assert!(faulty[2].counters().eperm_writes >= 1);
}

#[test]
fn latent_sector_errors_are_repaired_not_fatal() {
    let (_mems, faulty) = loaded(33);
    // EIO on a few ranges of device 2's data area.
    for k in 0..4u64 {
        let start = (1 << 20) + 4096 + k * 20480;
        faulty[2].add_read_error_range(start..start + 4096);
    }
    let passive = HealthPolicy {
        mode: DetectionMode::Passive,
        ..Default::default()
    };
    let e = Engine::open(
        io_of(&faulty),
        EngineOptions {
            health: passive.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..ROWS {
        assert_eq!(
            e.get("t", &i.to_be_bytes()).unwrap(),
            Some(value_for(i, 3, 300)),
            "row {i}"
        );
    }
    let st = e.status();
    let fired = faulty[2].counters().eio_reads;
    assert!(fired > 0, "no latent error fired");
    assert!(st.read_repairs > 0, "bad chunks were not rewritten");
    assert_ne!(
        st.devices[2].state, "FAULTED",
        "a few sector errors must not fail the device"
    );
    drop(e);
    // The rewrite remapped the sectors: reading everything again meets no error.
    let e = Engine::open(
        io_of(&faulty),
        EngineOptions {
            health: passive,
            ..Default::default()
        },
    )
    .unwrap();
    let before = faulty[2].counters().eio_reads;
    for i in 0..ROWS {
        assert_eq!(
            e.get("t", &i.to_be_bytes()).unwrap(),
            Some(value_for(i, 3, 300))
        );
    }
    assert_eq!(
        faulty[2].counters().eio_reads,
        before,
        "repaired sectors still fail"
    );
}
