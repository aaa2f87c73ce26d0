//! Devices change while the engine runs: a new disk is handed to a running engine and
//! replaces a member (a writer keeps writing meanwhile), a spare is added the same way, bad
//! hand-overs are refused with nothing changed, and `close` releases the devices while other
//! handles live on, so that the array reopens at once.

#![allow(clippy::big_endian_bytes)] // big-endian keys sort in numeric order

mod common;
use common::*;
use ectable::devices::{BackendKind, BlockDevice, FileDevice, OpenOptions};
use ectable::{Engine, EngineOptions, Error, RebuildOptions};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const SIZE: u64 = 64 << 20;

fn file_device(path: &Path, read_only: bool) -> Arc<dyn BlockDevice> {
    let o = OpenOptions {
        create_size_bytes: Some(SIZE),
        read_only,
        ..Default::default()
    };
    Arc::new(FileDevice::open(path, &o).expect("open device"))
}

/// Six member files in `dir`, formatted RS(4,2) and opened, with rows 0..300 (900 bytes,
/// seed 1) put in table "t".
fn six_files_with_rows(dir: &Path) -> (Vec<std::path::PathBuf>, Engine) {
    let paths = file_paths(dir, 6);
    format_files(&paths, SIZE, 4, 2, BackendKind::Auto);
    let e = open_engine_on(open_files(&paths, None, BackendKind::Auto));
    for i in 0..300u64 {
        e.put("t", &i.to_be_bytes(), &value_for(i, 1, 900)).unwrap();
    }
    (paths, e)
}

#[test]
fn a_device_handed_to_a_running_engine_replaces_a_member_without_downtime() {
    let dir = tempfile::tempdir().unwrap();
    let (paths, e) = six_files_with_rows(dir.path());
    let e = Arc::new(e);
    e.sync().unwrap();

    // Refused, nothing changed: a member under another handle (the same storage), and a
    // member of another array.
    let again = file_device(&paths[1], true);
    assert!(matches!(
        e.replace_with_device(2, again),
        Err(Error::DuplicateDevice { .. })
    ));
    let other = file_paths(&dir.path().join("other"), 6);
    std::fs::create_dir_all(dir.path().join("other")).unwrap();
    format_files(&other, SIZE, 4, 2, BackendKind::Auto);
    let foreign = file_device(&other[0], false);
    assert!(matches!(
        e.replace_with_device(2, foreign),
        Err(Error::AlreadyFormatted { .. })
    ));
    let before = e.status();
    assert_eq!(before.devices[2].path.as_deref(), paths[2].to_str());
    assert!(before.rebuild.is_none());

    // Slot 2's disk "dies": its file is truncated under the engine.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&paths[2])
        .unwrap()
        .set_len(0)
        .unwrap();
    // A writer keeps writing through the swap and the rebuild.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let e = e.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 1000u64;
            while !stop.load(Ordering::Relaxed) {
                e.put("t", &i.to_be_bytes(), &value_for(i, 1, 900)).unwrap();
                if i.is_multiple_of(50) {
                    e.sync().unwrap();
                }
                i += 1;
            }
            e.sync().unwrap();
            i
        })
    };
    let new_path = dir.path().join("new.img");
    let index = e
        .replace_with_device(2, file_device(&new_path, false))
        .expect("replace with a new device");
    assert_eq!(index, 6, "the new device follows the six given at open");
    let p = e
        .rebuild(&RebuildOptions::default(), &mut |_| {})
        .expect("rebuild");
    assert!(p.unrecoverable.is_empty(), "{:?}", p.unrecoverable);
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    let st = e.status();
    assert_eq!(st.devices[2].path.as_deref(), new_path.to_str());
    assert_eq!(st.devices[2].state, "ONLINE", "{:?}", st.devices[2]);
    assert!(st.rebuild.is_none());

    // A spare handed over the same way.
    let spare_path = dir.path().join("spare.img");
    e.add_spare_device(file_device(&spare_path, false))
        .expect("add a spare");
    assert_eq!(
        e.status().spares,
        vec![spare_path.to_string_lossy().to_string()]
    );

    // Close with another handle alive: the other handle gets Closed, and the array opens
    // again at once (no wait on this process's own locks).
    let other_handle = e.clone();
    e.close().unwrap();
    assert!(matches!(
        other_handle.get("t", &0u64.to_be_bytes()),
        Err(Error::Closed)
    ));
    assert!(matches!(
        other_handle.put("t", b"k", b"v"),
        Err(Error::Closed)
    ));
    let mut now: Vec<_> = paths.clone();
    now[2] = new_path.clone();
    now.push(spare_path);
    let started = std::time::Instant::now();
    let e2 = Engine::open(
        open_files(&now, None, BackendKind::Auto),
        EngineOptions::default(),
    )
    .expect("reopen while the old handle lives");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the reopen waited for the closed engine's locks"
    );
    drop(other_handle);
    for i in (0..300u64).chain(1000..written) {
        assert_eq!(
            e2.get("t", &i.to_be_bytes()).unwrap(),
            Some(value_for(i, 1, 900)),
            "row {i}"
        );
    }
    assert_eq!(e2.status().spares.len(), 1);
    e2.close().unwrap();
    drop(e2);
    // Two other members left out: every row comes from the four that remain, the new
    // device among them, so its rebuilt chunks are right.
    let rest: Vec<_> = now[2..6].to_vec();
    let ro = EngineOptions {
        read_only: true,
        ..Default::default()
    };
    let e3 =
        Engine::open(open_files(&rest, None, BackendKind::Auto), ro).expect("open with two lost");
    for i in (0..300u64).chain(1000..written) {
        assert_eq!(
            e3.get("t", &i.to_be_bytes()).unwrap(),
            Some(value_for(i, 1, 900)),
            "row {i} from four devices"
        );
    }
}

/// Waits (up to 20 s) until the monitor has failed `slot`; returns its status note.
fn wait_faulted(e: &Engine, slot: usize) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let st = e.status();
        if st.devices[slot].state == "FAULTED" {
            return st.devices[slot].note.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slot {slot} still reads as {:?}",
            st.devices[slot]
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A member's file deleted while the engine runs (an operator's `rm`): it keeps working
/// until the array closes and is gone at the next open. Another member's file truncated
/// to half: reads past its new end come back short. The monitor fails each at its next
/// round, and status says why (not "ONLINE" until a restart loses them); every row still
/// reads, and after the close the array opens without them, degraded, with every row there.
#[test]
fn a_member_file_deleted_while_open_is_failed_and_the_array_reopens_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let paths = file_paths(dir.path(), 6);
    format_files(&paths, SIZE, 4, 2, BackendKind::Auto);
    let mut opts = EngineOptions::default();
    opts.health.probe_interval = std::time::Duration::from_millis(20);
    let e = Engine::open(open_files(&paths, None, BackendKind::Auto), opts).unwrap();
    for i in 0..300u64 {
        e.put("t", &i.to_be_bytes(), &value_for(i, 3, 900)).unwrap();
    }
    e.sync().unwrap();
    assert_eq!(e.status().devices[4].state, "ONLINE");
    std::fs::remove_file(&paths[4]).unwrap();
    let note = wait_faulted(&e, 4);
    assert!(
        note.contains("deleted"),
        "the note does not say why: {note}"
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&paths[1])
        .unwrap()
        .set_len(SIZE / 2)
        .unwrap();
    let note = wait_faulted(&e, 1);
    assert!(note.contains("shrank"), "the note does not say why: {note}");
    for i in (0..300u64).step_by(7) {
        assert_eq!(
            e.get("t", &i.to_be_bytes()).unwrap(),
            Some(value_for(i, 3, 900))
        );
    }
    e.put("t", b"after", b"x").unwrap();
    e.sync().unwrap();
    e.close().unwrap();
    let left: Vec<_> = [0, 2, 3, 5].iter().map(|&i| paths[i].clone()).collect();
    let e = open_engine_on(open_files(&left, None, BackendKind::Auto));
    assert_eq!(e.status().state().as_str(), "DEGRADED");
    for i in 0..300u64 {
        assert_eq!(
            e.get("t", &i.to_be_bytes()).unwrap(),
            Some(value_for(i, 3, 900))
        );
    }
    assert_eq!(e.get("t", b"after").unwrap(), Some(b"x".to_vec()));
}

/// A replacement gives up the old device's claim at once, not when the engine closes: the
/// operator can test or wipe it while the array stays open, and hand it back as a spare
/// (once wiped: it still holds this array's superblocks). Before, the open below waited for
/// the claim and failed ("in use") for as long as the engine ran.
#[test]
fn a_replaced_device_is_released_at_once_and_can_come_back_as_a_spare() {
    let dir = tempfile::tempdir().unwrap();
    let (paths, e) = six_files_with_rows(dir.path());
    e.sync().unwrap();
    let new_path = dir.path().join("new.img");
    e.replace_with_device(2, file_device(&new_path, false))
        .expect("replace slot 2");
    e.rebuild(&RebuildOptions::default(), &mut |_| {})
        .expect("rebuild");
    let old_name = paths[2].to_string_lossy().to_string();
    assert_eq!(e.status().replaced, vec![old_name.clone()]);

    // Writable open of the old device while the engine runs: its claim is gone.
    let old = FileDevice::open(&paths[2], &OpenOptions::default())
        .expect("the replaced device is free while the array stays open");
    // It still holds this array's superblocks (a planned swap of a healthy device): refused
    // as a spare until wiped, and not taken for a member under another name.
    let old: Arc<dyn BlockDevice> = Arc::new(old);
    assert!(
        matches!(
            e.add_spare_device(old.clone()),
            Err(Error::AlreadyFormatted { .. })
        ),
        "a replaced device that was not wiped must be refused as a spare"
    );
    ectable::wipe_device(old.as_ref()).unwrap();
    e.add_spare_device(old)
        .expect("the wiped device as a spare");
    // Given back, it is the spare: no longer listed as replaced or unrecognised.
    let st = e.status();
    assert_eq!(st.spares, vec![old_name]);
    assert!(st.replaced.is_empty(), "{:?}", st.replaced);
    assert!(st.unrecognised.is_empty(), "{:?}", st.unrecognised);
    assert_eq!(st.devices[2].path.as_deref(), new_path.to_str());
    assert!(st.devices.iter().all(|d| d.state == "ONLINE"), "{st:?}");
    e.close().unwrap();
    drop(e);

    // The array opens from the new member and the old device as its spare.
    let mut now = paths.clone();
    now[2] = new_path;
    now.push(paths[2].clone());
    let e2 = open_engine_on(open_files(&now, None, BackendKind::Auto));
    assert_eq!(e2.status().spares.len(), 1);
    for i in 0..300u64 {
        assert_eq!(
            e2.get("t", &i.to_be_bytes()).unwrap(),
            Some(value_for(i, 1, 900)),
            "row {i}"
        );
    }
}

/// Sets the length of the file at `path` (a member's storage shrinking or growing back).
fn resize(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// A member whose storage shrank while the array was closed (a file truncated, a loop
/// device resized with `losetup -c`) can no longer hold the segments the array lays out on
/// it: the open fails it with the sizes named (read-only too, so `status` does not say
/// healthy), every row still reads from the others, writes go on, and `online` refuses it
/// until it has its size back.
#[test]
fn a_member_that_shrank_while_closed_is_failed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (paths, e) = six_files_with_rows(dir.path());
    e.close().unwrap();
    drop(e);
    // Down to 128 KiB past the 1 MiB header area: the chunks of the first segments on it go.
    resize(&paths[3], (1 << 20) + (128 << 10));
    let ro = Engine::open(
        open_files(&paths, None, BackendKind::Auto),
        EngineOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    let st = ro.status();
    assert_eq!(st.devices[3].state, "FAULTED", "{:?}", st.devices[3]);
    assert!(
        st.devices[3].note.contains("smaller"),
        "{:?}",
        st.devices[3]
    );
    for i in 0..300u64 {
        assert_eq!(
            ro.get("t", &i.to_be_bytes()).unwrap(),
            Some(value_for(i, 1, 900))
        );
    }
    drop(ro);
    let e = open_engine_on(open_files(&paths, None, BackendKind::Auto));
    assert_eq!(e.status().devices[3].state, "FAULTED");
    e.put_sync("t", b"after", b"shrink").unwrap();
    // The same storage as the handle the engine holds (read-only: no second lock).
    let small = file_device(&paths[3], true);
    assert!(
        matches!(e.online(small), Err(Error::DeviceTooSmall { .. })),
        "online must refuse a member still too small"
    );
    e.close().unwrap();
    drop(e);
    // Its size back: what lay past the end it had is zeros now, older than the failure. It
    // opens as a stale member; its resync must cover that too (not only what was written
    // since it failed), so that a scrub afterwards finds nothing.
    resize(&paths[3], SIZE);
    let e = open_engine_on(open_files(&paths, None, BackendKind::Auto));
    let st = e.status();
    assert_eq!(st.devices[3].state, "STALE", "{:?}", st.devices[3]);
    assert_eq!(st.devices[3].resync_from, Some(1), "{:?}", st.devices[3]);
    e.rebuild(&RebuildOptions::default(), &mut |_| {})
        .expect("resync");
    let scrub = e
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(scrub.bad_chunks_per_slot[3], 0, "{scrub:?}");
    assert!(e.status().devices[3].in_service);
    e.close().unwrap();
}

/// The same member given its size back while the array stays open (a loop device grown
/// again with `losetup -c`, a node holding the array): `online` takes the handle the
/// engine already holds at the storage's new size, so the resync's writes past the end it
/// had are not refused, the member ends in service, and a scrub finds nothing to repair.
/// Both I/O engines: psync checks every request against the handle's capacity.
#[test]
fn a_shrunk_member_grown_back_while_open_comes_back_with_online() {
    for kind in [BackendKind::Psync, BackendKind::Auto] {
        let dir = tempfile::tempdir().unwrap();
        let paths = file_paths(dir.path(), 6);
        format_files(&paths, SIZE, 4, 2, kind);
        let e = open_engine_on(open_files(&paths, None, kind));
        for i in 0..300u64 {
            e.put("t", &i.to_be_bytes(), &value_for(i, 1, 900)).unwrap();
        }
        e.close().unwrap();
        drop(e);
        resize(&paths[3], (1 << 20) + (128 << 10));
        let e = open_engine_on(open_files(&paths, None, kind));
        assert_eq!(e.status().devices[3].state, "FAULTED", "{kind:?}");
        for i in 300..600u64 {
            e.put("t", &i.to_be_bytes(), &value_for(i, 1, 900)).unwrap();
        }
        e.sync().unwrap();
        resize(&paths[3], SIZE);
        let o = e
            .online(file_device(&paths[3], true))
            .unwrap_or_else(|err| panic!("{kind:?}: online: {err}"));
        assert_eq!((o.slot, o.was), (3, "FAULTED"), "{kind:?}");
        e.rebuild(&RebuildOptions::default(), &mut |_| {})
            .unwrap_or_else(|err| panic!("{kind:?}: resync: {err}"));
        let st = e.status();
        assert!(
            st.devices[3].in_service && st.devices[3].state == "ONLINE",
            "{kind:?}: {:?}",
            st.devices[3]
        );
        assert_eq!(st.devices[3].capacity_bytes, SIZE, "{kind:?}");
        let scrub = e
            .scrub(false, &RebuildOptions::default(), &mut |_| {})
            .unwrap();
        assert_eq!(scrub.bad_chunks_per_slot[3], 0, "{kind:?}: {scrub:?}");
        assert!(e.status().devices[3].in_service, "{kind:?}");
        for i in 0..600u64 {
            assert_eq!(
                e.get("t", &i.to_be_bytes()).unwrap(),
                Some(value_for(i, 1, 900)),
                "{kind:?}: row {i}"
            );
        }
        e.close().unwrap();
    }
}
