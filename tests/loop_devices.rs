//! Real loop devices: format RS(4,2) over six `losetup` devices, load, verify, reopen with
//! the devices listed in another order and after re-attaching them under other names, and
//! refuse a device of another array swapped in. Runs on both I/O engines.
//!
//! Every loop device is created with `losetup -f --show` and detached by a Drop guard, also
//! when an assertion fails. All tests in this file take one lock: loop devices share one
//! disk and must not be driven by two tests at once.

mod common;
use common::*;
use ectable::devices::BackendKind;
use ectable::{format, Engine, EngineOptions, Error, FormatOptions};
use std::path::PathBuf;
use std::sync::Mutex;

static LOOP_LOCK: Mutex<()> = Mutex::new(());

fn attach_six(dir: &std::path::Path, size: u64) -> Vec<LoopDevice> {
    (0..6)
        .map(|i| LoopDevice::attach(&dir.join(format!("b{i}.img")), size))
        .collect()
}

const ROWS: u64 = 3000;

fn load_rows(e: &Engine, seed: u64) {
    for i in 0..ROWS {
        e.put(
            "t",
            format!("row{i:08}").as_bytes(),
            &value_for(i, seed, 100 + (i % 2000) as usize),
        )
        .unwrap();
    }
    e.sync().unwrap();
}

fn verify_rows(e: &Engine, seed: u64) {
    for i in 0..ROWS {
        let got = e.get("t", format!("row{i:08}").as_bytes()).unwrap();
        assert_eq!(
            got,
            Some(value_for(i, seed, 100 + (i % 2000) as usize)),
            "row {i}"
        );
    }
}

#[test]
fn loop_devices_format_load_verify_reorder_reattach() {
    if !loop_devices_available("loop_devices_format_load_verify_reorder_reattach") {
        return;
    }
    let _g = LOOP_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    for kind in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let mut loops = attach_six(dir.path(), 64 << 20);
        let paths: Vec<String> = loops.iter().map(|l| l.path.clone()).collect();
        let io = open_files(&paths, None, kind);
        format(io.as_ref(), &FormatOptions::default()).unwrap();
        {
            let e = Engine::open(io, EngineOptions::default()).unwrap();
            assert_eq!(
                e.status().io_engine,
                if kind == BackendKind::Uring {
                    "uring"
                } else {
                    "psync"
                }
            );
            load_rows(&e, 1);
            e.close().unwrap();
        }
        // Listed in reverse order: devices are identified by their superblocks.
        let mut reversed = paths.clone();
        reversed.reverse();
        {
            let e =
                Engine::open(open_files(&reversed, None, kind), EngineOptions::default()).unwrap();
            verify_rows(&e, 1);
            assert_eq!(
                e.status().recovery.degraded_stripes,
                0,
                "reorder must not look degraded"
            );
        }
        // Detach everything and attach the backing files again in another order, so each
        // device comes back under a different /dev/loopN name.
        let backings: Vec<PathBuf> = loops.iter().map(|l| l.backing.clone()).collect();
        loops.clear();
        let mut reattached: Vec<LoopDevice> = backings
            .iter()
            .rev()
            .map(|b| LoopDevice::attach(b, 64 << 20))
            .collect();
        let new_paths: Vec<String> = reattached.iter().map(|l| l.path.clone()).collect();
        {
            let e =
                Engine::open(open_files(&new_paths, None, kind), EngineOptions::default()).unwrap();
            verify_rows(&e, 1);
            e.put_sync("t", b"after-reattach", b"yes").unwrap();
        }
        let e = Engine::open(
            open_files(&new_paths, None, kind),
            EngineOptions {
                read_only: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            e.get("t", b"after-reattach").unwrap(),
            Some(b"yes".to_vec())
        );
        drop(e);
        reattached.clear();
    }
}

#[test]
fn loop_device_of_another_array_is_refused_and_not_written() {
    if !loop_devices_available("loop_device_of_another_array_is_refused_and_not_written") {
        return;
    }
    let _g = LOOP_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = attach_six(dir_a.path(), 32 << 20);
    let b = attach_six(dir_b.path(), 32 << 20);
    let pa: Vec<String> = a.iter().map(|l| l.path.clone()).collect();
    let pb: Vec<String> = b.iter().map(|l| l.path.clone()).collect();
    for p in [&pa, &pb] {
        let io = open_files(p, None, BackendKind::Auto);
        format(io.as_ref(), &FormatOptions::default()).unwrap();
        let e = Engine::open(io, EngineOptions::default()).unwrap();
        load_rows(&e, 2);
    }
    // Array A with its slot 3 swapped for a member of array B.
    let foreign_backing = b[3].backing.clone();
    let before = std::fs::read(&foreign_backing).unwrap();
    let mut mixed = pa.clone();
    mixed[3] = pb[3].clone();
    match Engine::open(
        open_files(&mixed, None, BackendKind::Auto),
        EngineOptions::default(),
    ) {
        Err(Error::ForeignDevice { device, .. }) => assert_eq!(device, pb[3]),
        Err(other) => panic!("expected ForeignDevice, got {other}"),
        Ok(_) => panic!("an array with a foreign device opened"),
    }
    drop(b); // detach B's devices so the backing file reflects everything written
    let after = std::fs::read(&foreign_backing).unwrap();
    assert!(before == after, "the foreign device was written to");
    // Formatting over an existing array is refused without force.
    let io = open_files(&pa, None, BackendKind::Auto);
    let err = format(io.as_ref(), &FormatOptions::default()).unwrap_err();
    assert!(matches!(err, Error::AlreadyFormatted { .. }), "{err}");
}
