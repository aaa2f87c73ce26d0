//! The same I/O scenarios on both engines (io_uring and psync) over real files: many
//! operations in flight across devices, flush, and the errors that must never look like
//! data: a short read past the end, unaligned and out-of-range requests, a read-only device; and what a sparse file reports of the file system under it.

use ectable_devices::{
    open_backend, AlignedBuf, BackendKind, BlockDevice, DeviceError, ErrorClass, FileDevice,
    IoBackend, IoKind, IoOp, OpenOptions,
};
use std::sync::Arc;

const ENGINES: [BackendKind; 2] = [BackendKind::Uring, BackendKind::Psync];

fn files(dir: &std::path::Path, n: usize, size: u64) -> Vec<Arc<dyn BlockDevice>> {
    (0..n)
        .map(|i| {
            let o = OpenOptions {
                create_size_bytes: Some(size),
                ..Default::default()
            };
            Arc::new(FileDevice::open(&dir.join(format!("f{i}")), &o).unwrap())
                as Arc<dyn BlockDevice>
        })
        .collect()
}

#[test]
fn many_ops_in_flight_round_trip() {
    for kind in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let io = open_backend(kind, files(dir.path(), 4, 4 << 20)).unwrap();
        assert_eq!(
            io.name(),
            if kind == BackendKind::Uring {
                "uring"
            } else {
                "psync"
            }
        );
        let mut ops = Vec::new();
        for d in 0..4 {
            for blk in 0..200u64 {
                let mut b = AlignedBuf::new(4096);
                b.fill((d as u64 * 7 + blk) as u8);
                ops.push(IoOp::write(d, blk * 4096, b));
            }
        }
        for c in io.execute(ops) {
            c.result.unwrap();
        }
        for c in io.execute((0..4).map(IoOp::flush).collect()) {
            assert_eq!(c.op.kind, IoKind::Flush);
            c.result.unwrap();
        }
        let reads: Vec<IoOp> = (0..4)
            .flat_map(|d| (0..200u64).map(move |blk| IoOp::read(d, blk * 4096, 4096)))
            .collect();
        for c in io.execute(reads) {
            c.result.unwrap();
            let want = (c.op.device_index as u64 * 7 + c.op.offset_bytes / 4096) as u8;
            assert!(c.op.buf.iter().all(|&x| x == want), "{kind:?}: wrong data");
        }
    }
}

#[test]
fn short_read_is_an_error_not_end_of_data() {
    for kind in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let devs = files(dir.path(), 1, 1 << 20);
        // The file shrinks behind the device's back (like `losetup -c` after a truncate).
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("f0"))
            .unwrap()
            .set_len(8192)
            .unwrap();
        let io = open_backend(kind, devs).unwrap();
        let c = io.execute(vec![IoOp::read(0, 4096, 16384)]).pop().unwrap();
        match c.result {
            Err(e @ DeviceError::Short { .. }) => assert_eq!(e.class(), ErrorClass::Short),
            other => panic!("{kind:?}: expected a short read error, got {other:?}"),
        }
    }
}

#[test]
fn bad_requests_are_typed_errors() {
    for kind in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let io = open_backend(kind, files(dir.path(), 1, 1 << 20)).unwrap();
        let mut results = Vec::new();
        for op in [IoOp::read(0, 1 << 20, 4096), IoOp::read(7, 0, 4096)] {
            results.push(io.execute(vec![op]).pop().unwrap().result);
        }
        assert!(results.iter().all(|r| r.is_err()), "{kind:?}: {results:?}");
        // Unaligned requests through the device API.
        // Read-only: the engine above holds the file's write lock.
        let ro = OpenOptions {
            read_only: true,
            ..Default::default()
        };
        let dev = FileDevice::open(&dir.path().join("f0"), &ro).unwrap();
        let mut buf = vec![0u8; 100];
        assert!(matches!(
            dev.read_at(&mut buf, 0),
            Err(DeviceError::Unaligned { .. })
        ));
    }
}

#[test]
fn read_only_device_refuses_writes() {
    for kind in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let _ = files(dir.path(), 1, 1 << 20);
        let o = OpenOptions {
            read_only: true,
            ..Default::default()
        };
        let dev: Arc<dyn BlockDevice> =
            Arc::new(FileDevice::open(&dir.path().join("f0"), &o).unwrap());
        let io: Arc<dyn IoBackend> = open_backend(kind, vec![dev]).unwrap();
        let c = io
            .execute(vec![IoOp::write(0, 0, AlignedBuf::new(4096))])
            .pop()
            .unwrap();
        assert!(
            c.result.is_err(),
            "{kind:?}: a write to a read-only device succeeded"
        );
    }
}

/// A device open for writing is locked: a second writer waits for the lock and then fails
/// with a clear error; a reader is not held up; once the first writer is gone the second
/// gets it.
#[test]
fn a_second_writer_is_refused_until_the_first_is_gone() {
    // This binary's other tests never wait for a lock, so the short wait affects only this one.
    std::env::set_var("ECTABLE_LOCK_WAIT_MS", "200");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.img");
    let create = OpenOptions {
        create_size_bytes: Some(1 << 20),
        ..Default::default()
    };
    let first = FileDevice::open(&path, &create).unwrap();
    let err = match FileDevice::open(&path, &OpenOptions::default()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a second writer opened a locked device"),
    };
    assert!(err.contains("in use"), "{err}");
    let ro = OpenOptions {
        read_only: true,
        ..Default::default()
    };
    FileDevice::open(&path, &ro).expect("a reader is not locked out");
    drop(first);
    FileDevice::open(&path, &OpenOptions::default()).expect("the lock is free again");
}

/// A sparse file reports what it still needs and what its file system has; writing into it
/// takes blocks from the first and gives them to the file. Memory devices have no backing.
#[test]
fn a_sparse_file_reports_its_unallocated_bytes_and_the_room_left() {
    let dir = tempfile::tempdir().unwrap();
    let o = OpenOptions {
        create_size_bytes: Some(64 << 20),
        ..Default::default()
    };
    let dev = FileDevice::open(&dir.path().join("sparse"), &o).unwrap();
    let before = dev.backing_space().expect("a file on a file system");
    assert!(
        before.unallocated_bytes >= 63 << 20,
        "a new 64 MiB file is sparse: {before:?}"
    );
    assert!(before.fs_free_bytes > 0, "{before:?}");
    let buf = ectable_devices::AlignedBuf::from_slice(&vec![7u8; 1 << 20]);
    dev.write_at(&buf, 8 << 20).unwrap();
    dev.sync().unwrap();
    let after = dev.backing_space().unwrap();
    assert_eq!(after.fs_id, before.fs_id);
    assert!(
        before.unallocated_bytes - after.unallocated_bytes >= 1 << 20,
        "1 MiB written, yet {before:?} -> {after:?}"
    );
    let mem = ectable_devices::MemDevice::new("m", 1 << 20);
    assert_eq!(mem.backing_space(), None);
}

/// `write_refused` finds, without writing, a file that takes no writes (here: immutable,
/// `chattr +i`, which only root can set; skipped with a reason otherwise), and says nothing
/// of a file that does.
#[test]
fn an_immutable_file_is_reported_as_refusing_writes() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var("ECTABLE_REQUIRE_LOOP").map_or(true, |v| v != "1"),
            "ECTABLE_REQUIRE_LOOP=1 but not running as root"
        );
        eprintln!("SKIP an_immutable_file_is_reported_as_refusing_writes: chattr +i needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let o = OpenOptions {
        create_size_bytes: Some(1 << 20),
        read_only: false,
        ..Default::default()
    };
    drop(FileDevice::open(&path, &o).unwrap());
    let ro = OpenOptions {
        read_only: true,
        ..Default::default()
    };
    let dev = FileDevice::open(&path, &ro).unwrap();
    assert_eq!(dev.write_refused(), None);
    /// `chattr -i` on drop, so that the temporary directory can be removed.
    struct Immutable<'a>(&'a std::path::Path);
    impl Drop for Immutable<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(self.0)
                .status();
        }
    }
    let st = std::process::Command::new("chattr")
        .arg("+i")
        .arg(&path)
        .status()
        .expect("run chattr");
    assert!(st.success(), "chattr +i");
    let _undo = Immutable(&path);
    let why = dev
        .write_refused()
        .expect("an immutable file refuses writes");
    assert!(why.contains("refuses writes"), "{why}");
}

/// A file that grows while its device is open: the handle keeps the size it had at open
/// (a write past it is refused as out of range) until `take_growth` takes the new size in;
/// that never lowers it, and a file that shrank below it is reported by `lost`.
#[test]
fn an_open_device_takes_in_growth_of_its_storage_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let dev = files(dir.path(), 1, 1 << 20).remove(0);
    let path = dir.path().join("f0");
    assert_eq!(dev.take_growth(), None, "nothing grew yet");
    let set_len = |len: u64| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len)
            .unwrap()
    };
    let mut block = AlignedBuf::new(4096);
    block.fill(7);
    set_len(2 << 20);
    let past_old_end = dev.write_at(&block, 1 << 20);
    assert!(
        matches!(past_old_end, Err(DeviceError::OutOfRange { .. })),
        "{past_old_end:?}"
    );
    assert_eq!(dev.take_growth(), Some(2 << 20));
    assert_eq!(dev.geometry().capacity_bytes, 2 << 20);
    assert_eq!(dev.take_growth(), None, "taken in already");
    dev.write_at(&block, 1 << 20)
        .expect("a write past the old end once the growth is taken in");
    set_len(1 << 20);
    assert_eq!(dev.take_growth(), None, "a shrink is not growth");
    assert_eq!(dev.geometry().capacity_bytes, 2 << 20);
    let lost = dev.lost().unwrap_or_default();
    assert!(lost.contains("shrank"), "{lost:?}");
}
