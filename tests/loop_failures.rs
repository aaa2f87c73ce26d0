//! Device failures on real loop devices, RS(4,2) over six: each way a device can fail on
//! this machine — backing file truncated and made immutable (EIO on everything), backing
//! file truncated and the loop device resized (`losetup -c`: reads come back short),
//! `blockdev --setro` (writes fail with EPERM), garbage over a whole device, garbage over
//! scattered chunks of two devices — and then every row is verified, writes continue, and
//! the array reopens. Every pair of devices lost: all rows read; three lost: a typed error,
//! never a wrong row. A failed device is rebuilt onto a fresh loop device and the array is
//! whole again without it.

mod common;
use common::*;
use ectable::devices::BackendKind;
use ectable::{
    format, DetectionMode, Engine, EngineOptions, Error, FormatOptions, HealthPolicy,
    RebuildOptions,
};
use std::io::{Seek, SeekFrom, Write};
use std::process::Command;
use std::sync::Mutex;

static LOCK: Mutex<()> = Mutex::new(());
const ROWS: u64 = 2000;
const SIZE: u64 = 48 << 20;

fn value(i: u64, seed: u64) -> Vec<u8> {
    value_for(i, seed, 200 + (i as usize * 97) % 2500)
}

fn passive() -> EngineOptions {
    EngineOptions {
        health: HealthPolicy {
            mode: DetectionMode::Passive,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn setup(dir: &std::path::Path, count: usize) -> (Vec<LoopDevice>, Vec<String>) {
    let loops: Vec<LoopDevice> = (0..count)
        .map(|i| LoopDevice::attach(&dir.join(format!("b{i}.img")), SIZE))
        .collect();
    let paths: Vec<String> = loops.iter().map(|l| l.path.clone()).collect();
    let io = open_files(&paths[..6], None, BackendKind::Auto);
    format(
        io.as_ref(),
        &FormatOptions {
            chunk_size_bytes: 16 << 10,
            segment_size_bytes: 1 << 20,
            ..Default::default()
        },
    )
    .unwrap();
    let e = Engine::open(io, passive()).unwrap();
    for i in 0..ROWS {
        e.put("t", format!("row{i:06}").as_bytes(), &value(i, 1))
            .unwrap();
    }
    e.close().unwrap();
    (loops, paths)
}

fn verify(e: &Engine, rows: u64, seed: u64) -> Result<(), Error> {
    for i in 0..rows {
        let got = e.get("t", format!("row{i:06}").as_bytes())?;
        assert_eq!(got, Some(value(i, seed)), "row {i}: wrong bytes");
    }
    Ok(())
}

fn run(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd).args(args).status().expect("run command");
    assert!(st.success(), "{cmd} {args:?} failed");
}

/// Random bytes over [from, to) of a device, written through the device itself.
fn garbage(path: &str, from: u64, to: u64, seed: u64) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(from)).unwrap();
    let mut x = seed | 1;
    let mut left = to - from;
    let mut block = vec![0u8; 1 << 16];
    while left > 0 {
        for b in block.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    f.sync_all().unwrap();
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Eio,
    Shrink,
    ReadOnly,
    GarbageWhole,
    GarbageScattered,
}

fn apply(fault: Fault, loops: &[LoopDevice]) {
    let l = &loops[1];
    let backing = l.backing.to_str().unwrap();
    match fault {
        Fault::Eio => {
            run("truncate", &["-s", "0", backing]);
            run("chattr", &["+i", backing]);
        }
        Fault::Shrink => {
            run("truncate", &["-s", "1100K", backing]);
            run("losetup", &["-c", &l.path]);
        }
        Fault::ReadOnly => run("blockdev", &["--setro", &l.path]),
        Fault::GarbageWhole => garbage(&l.path, 0, SIZE, 7),
        Fault::GarbageScattered => {
            for (d, seed) in [(0usize, 11u64), (4, 12)] {
                for k in 0..40u64 {
                    let off = (1 << 20) + 4096 + k * 53 * 4096;
                    garbage(&loops[d].path, off, off + 4096, seed + k);
                }
            }
        }
    }
}

#[test]
fn loop_fault_classes_within_tolerance() {
    if !loop_devices_available("loop_fault_classes_within_tolerance") {
        return;
    }
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    for fault in [
        Fault::Eio,
        Fault::Shrink,
        Fault::ReadOnly,
        Fault::GarbageWhole,
        Fault::GarbageScattered,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (loops, paths) = setup(dir.path(), 6);
        apply(fault, &loops);
        {
            let e = Engine::open(open_files(&paths, None, BackendKind::Auto), passive())
                .unwrap_or_else(|e| panic!("{fault:?}: open: {e}"));
            verify(&e, ROWS, 1).unwrap_or_else(|e| panic!("{fault:?}: {e}"));
            // Writes go on, degraded where the device cannot take them.
            for i in 0..200 {
                e.put("t", format!("row{i:06}").as_bytes(), &value(i, 2))
                    .unwrap();
            }
            e.sync().unwrap_or_else(|e| panic!("{fault:?}: sync: {e}"));
            let st = e.status();
            let evidence: u64 = st
                .devices
                .iter()
                .map(|d| d.read_errors + d.write_errors + d.checksum_errors)
                .sum::<u64>()
                + st.unrecognised.len() as u64
                + st.devices.iter().filter(|d| d.state != "ONLINE").count() as u64
                + st.degraded_reads;
            assert!(evidence > 0, "{fault:?}: the fault never showed");
            e.close().unwrap();
        }
        let e = Engine::open(
            open_files(&paths, None, BackendKind::Auto),
            EngineOptions {
                read_only: true,
                ..passive()
            },
        )
        .unwrap();
        for i in 0..ROWS {
            let seed = if i < 200 { 2 } else { 1 };
            assert_eq!(
                e.get("t", format!("row{i:06}").as_bytes()).unwrap(),
                Some(value(i, seed)),
                "{fault:?}: row {i} after reopen"
            );
        }
    }
}

#[test]
fn loop_every_pair_lost_and_three_unrecoverable() {
    if !loop_devices_available("loop_every_pair_lost_and_three_unrecoverable") {
        return;
    }
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (_loops, paths) = setup(dir.path(), 6);
    let ro = EngineOptions {
        read_only: true,
        ..passive()
    };
    for a in 0..6 {
        for b in (a + 1)..6 {
            let subset: Vec<String> = (0..6)
                .filter(|i| *i != a && *i != b)
                .map(|i| paths[i].clone())
                .collect();
            let e = Engine::open(open_files(&subset, None, BackendKind::Auto), ro.clone()).unwrap();
            verify(&e, ROWS, 1).unwrap_or_else(|e| panic!("devices {a},{b} lost: {e}"));
        }
    }
    // Three lost: two left out, a third turned to garbage. A typed error, no wrong row.
    garbage(&paths[2], 0, SIZE, 5);
    let subset: Vec<String> = vec![
        paths[2].clone(),
        paths[3].clone(),
        paths[4].clone(),
        paths[5].clone(),
    ];
    match Engine::open(open_files(&subset, None, BackendKind::Auto), ro) {
        Err(e) => assert!(
            matches!(e, Error::DataLost { .. } | Error::TooFewDevices { .. }),
            "unexpected error: {e}"
        ),
        Ok(e) => match verify(&e, ROWS, 1) {
            Err(err) => assert!(matches!(err, Error::DataLost { .. }), "{err}"),
            Ok(()) => panic!("three devices lost, yet every row read back"),
        },
    }
}

#[test]
fn loop_rebuild_onto_fresh_device() {
    if !loop_devices_available("loop_rebuild_onto_fresh_device") {
        return;
    }
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (loops, paths) = setup(dir.path(), 7);
    apply(Fault::Eio, &loops); // device 1 dies
    {
        let e = Engine::open(open_files(&paths, None, BackendKind::Auto), passive()).unwrap();
        assert_eq!(e.lost_slots(), vec![1]);
        e.replace(1, 6).unwrap();
        let p = e.rebuild(&RebuildOptions::default(), &mut |_| {}).unwrap();
        assert!(p.unrecoverable.is_empty() && p.chunks_rebuilt > 0, "{p:?}");
        e.close().unwrap();
    }
    let healthy: Vec<String> = (0..7)
        .filter(|i| *i != 1)
        .map(|i| paths[i].clone())
        .collect();
    let e = Engine::open(
        open_files(&healthy, None, BackendKind::Auto),
        EngineOptions {
            read_only: true,
            ..passive()
        },
    )
    .unwrap();
    verify(&e, ROWS, 1).unwrap();
    assert_eq!(
        e.status().degraded_reads,
        0,
        "the rebuilt device must serve every chunk"
    );
    let s = e
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(s.bad_chunks_per_slot.iter().sum::<u64>(), 0, "{s:?}");
    assert!(s.progress.unrecoverable.is_empty());
}
