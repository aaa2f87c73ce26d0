//! One writer per array, whatever the names (fault-model.md, "aliases"): a loop device, the
//! regular file backing it, and a second device node of the same block device (a `mknod`
//! alias, as in a container's /dev) all name the same storage.
//!
//! - A writer through /dev/loopN excludes a writer through the backing file and through an
//!   alias node; a writer through the backing file (opened before the loop device was
//!   attached) excludes a writer through the loop device; two loop devices over one file
//!   exclude each other.
//! - Read-only opens beside the writer still work, through every name.
//! - `format` refuses the same storage listed under two names and writes nothing.
//!
//! Every loop device is attached by a Drop guard that detaches exactly it; alias nodes live in
//! a temporary directory and are removed by their own guard. All tests take one lock.

mod common;
use common::*;
use ectable::devices::{
    open_backend, AlignedBuf, BackendKind, BlockDevice, DeviceError, FileDevice, IoBackend,
    OpenOptions,
};
use ectable::{format, Error};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

static LOOP_LOCK: Mutex<()> = Mutex::new(());

const SIZE: u64 = 64 << 20;

/// Short lock waits: a refused writer fails in 0.2 s instead of 10 s.
fn setup() -> std::sync::MutexGuard<'static, ()> {
    let g = LOOP_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    std::env::set_var("ECTABLE_LOCK_WAIT_MS", "200");
    g
}

fn writer(p: &Path) -> Result<FileDevice, DeviceError> {
    FileDevice::open(p, &OpenOptions::default())
}

fn reader(p: &Path) -> Result<FileDevice, DeviceError> {
    FileDevice::open(
        p,
        &OpenOptions {
            read_only: true,
            ..Default::default()
        },
    )
}

/// A block device node made with `mknod` for the same major:minor, removed on drop.
struct Alias(PathBuf);

impl Alias {
    fn of(dev: &str, at: PathBuf) -> Alias {
        let rdev = std::fs::metadata(dev).expect("stat loop device").rdev();
        // glibc's encoding of dev_t (sys/sysmacros.h).
        let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
        let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
        let st = Command::new("mknod")
            .arg(&at)
            .arg("b")
            .arg(major.to_string())
            .arg(minor.to_string())
            .status()
            .expect("run mknod");
        assert!(st.success(), "mknod failed");
        assert_eq!(std::fs::metadata(&at).unwrap().rdev(), rdev);
        Alias(at)
    }
}

impl Drop for Alias {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn engine_of(devs: Vec<FileDevice>) -> Arc<dyn IoBackend> {
    let devs: Vec<Arc<dyn BlockDevice>> = devs
        .into_iter()
        .map(|d| Arc::new(d) as Arc<dyn BlockDevice>)
        .collect();
    open_backend(BackendKind::Psync, devs).expect("engine")
}

fn assert_refused(r: Result<FileDevice, DeviceError>, names: &[&str]) -> String {
    let e = match r {
        Ok(_) => panic!("expected the writer to be refused ({names:?})"),
        Err(e) => e.to_string(),
    };
    for n in names {
        assert!(e.contains(n), "error should name {n}: {e}");
    }
    e
}

#[test]
fn writer_on_loop_device_excludes_backing_file_and_alias_readers_still_work() {
    if !loop_devices_available("writer_on_loop_device_excludes_backing_file_and_alias") {
        return;
    }
    let _g = setup();
    let dir = tempfile::tempdir().unwrap();
    let l = LoopDevice::attach(&dir.path().join("b.img"), SIZE);
    let alias = Alias::of(&l.path, dir.path().join("alias"));
    let loop_path = PathBuf::from(&l.path);
    let backing = l.backing.display().to_string();
    let alias_name = alias.0.display().to_string();

    let w = writer(&loop_path).expect("writer through the loop device");
    w.write_at(&AlignedBuf::from_slice(&[0xA5; 4096]), 0)
        .unwrap();
    w.sync().unwrap();

    // A second writer through the backing file: refused, naming both.
    assert_refused(writer(&l.backing), &[&backing, &l.path]);
    // Through an alias node of the same block device: refused.
    assert_refused(writer(&alias.0), &[&alias_name, "in use"]);

    // Read-only opens beside the writer work through every name and see its data.
    for p in [&loop_path, &l.backing, &alias.0] {
        let r = reader(p).expect("read-only open beside the writer");
        assert!(r.is_read_only());
        let mut buf = AlignedBuf::new(4096);
        r.read_at(&mut buf, 0).unwrap();
        assert!(
            buf.iter().all(|&b| b == 0xA5),
            "read through {}",
            p.display()
        );
    }

    // The writer gone, the alias can write; and then the loop device name is refused.
    drop(w);
    let w2 = writer(&alias.0).expect("writer through the alias alone");
    assert_refused(writer(&loop_path), &[&l.path, "in use"]);
    drop(w2);

    // Writing through the backing file is refused while the loop device is attached, even
    // with no other writer: the loop device may be opened at any time.
    assert_refused(writer(&l.backing), &[&backing, &l.path]);
    drop(alias);
    drop(l);
    // Detached: the file is an ordinary device file again.
    writer(&dir.path().join("b.img")).expect("writer on the detached backing file");
}

#[test]
fn writer_on_backing_file_excludes_loop_device_attached_later() {
    if !loop_devices_available("writer_on_backing_file_excludes_loop_device_attached_later") {
        return;
    }
    let _g = setup();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.img");
    std::fs::File::create(&file).unwrap().set_len(SIZE).unwrap();
    let w = writer(&file).expect("writer through the file");
    let l = LoopDevice::attach(&file, SIZE);
    let e = assert_refused(writer(&PathBuf::from(&l.path)), &[&l.path]);
    assert!(e.contains(&file.display().to_string()), "{e}");
    drop(w);
    // Without the file's writer, the loop device is the writer.
    let _w = writer(&PathBuf::from(&l.path)).expect("writer through the loop device");
}

#[test]
fn two_loop_devices_over_one_file_exclude_each_other() {
    if !loop_devices_available("two_loop_devices_over_one_file_exclude_each_other") {
        return;
    }
    let _g = setup();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.img");
    let l1 = LoopDevice::attach(&file, SIZE);
    let l2 = LoopDevice::attach(&file, SIZE);
    assert_ne!(l1.path, l2.path);
    let w = writer(&PathBuf::from(&l1.path)).expect("writer through the first loop device");
    assert_refused(writer(&PathBuf::from(&l2.path)), &[&l2.path]);
    let before = std::fs::read(&file).unwrap();
    let io = engine_of(vec![
        w,
        reader(&PathBuf::from(&l2.path)).expect("read-only second loop device"),
    ]);
    match format(io.as_ref(), &fmt_opts(1, 1)) {
        Err(Error::DuplicateDevice { first, second }) => {
            assert_eq!((first.as_str(), second.as_str()), (&*l1.path, &*l2.path));
        }
        other => panic!("expected DuplicateDevice, got {other:?}"),
    }
    drop(io);
    assert!(std::fs::read(&file).unwrap() == before, "format wrote");
}

#[test]
fn format_refuses_loop_device_and_its_backing_file() {
    if !loop_devices_available("format_refuses_loop_device_and_its_backing_file") {
        return;
    }
    let _g = setup();
    let dir = tempfile::tempdir().unwrap();
    let l = LoopDevice::attach(&dir.path().join("b.img"), SIZE);
    let before = std::fs::read(&l.backing).unwrap();
    // Writable, the backing file is refused at open already; read-only it reaches format,
    // which must see that it is the loop device's storage.
    let io = engine_of(vec![
        writer(&PathBuf::from(&l.path)).expect("loop device"),
        reader(&l.backing).expect("backing file read-only"),
    ]);
    match format(io.as_ref(), &fmt_opts(1, 1)) {
        Err(Error::DuplicateDevice { first, second }) => {
            assert_eq!(first, l.path);
            assert_eq!(second, l.backing.display().to_string());
        }
        other => panic!("expected DuplicateDevice, got {other:?}"),
    }
    // Listed the other way round too.
    let io2 = engine_of(vec![
        reader(&l.backing).expect("backing file read-only"),
        reader(&PathBuf::from(&l.path)).expect("loop device read-only"),
    ]);
    assert!(matches!(
        format(io2.as_ref(), &fmt_opts(1, 1)),
        Err(Error::DuplicateDevice { .. })
    ));
    drop(io);
    drop(io2);
    assert!(
        std::fs::read(&l.backing).unwrap() == before,
        "format wrote to the backing file"
    );
}

#[test]
fn format_refuses_alias_node_listed_twice() {
    if !loop_devices_available("format_refuses_alias_node_listed_twice") {
        return;
    }
    let _g = setup();
    let dir = tempfile::tempdir().unwrap();
    let l = LoopDevice::attach(&dir.path().join("b.img"), SIZE);
    let alias = Alias::of(&l.path, dir.path().join("alias"));
    let before = std::fs::read(&l.backing).unwrap();
    let w = writer(&PathBuf::from(&l.path)).expect("loop device");
    // Writable, the alias is refused at open; read-only it reaches format.
    assert_refused(writer(&alias.0), &["in use"]);
    let io = engine_of(vec![w, reader(&alias.0).expect("alias read-only")]);
    match format(io.as_ref(), &fmt_opts(1, 1)) {
        Err(Error::DuplicateDevice { first, second }) => {
            assert_eq!(first, l.path);
            assert_eq!(second, alias.0.display().to_string());
        }
        other => panic!("expected DuplicateDevice, got {other:?}"),
    }
    drop(io);
    assert!(
        std::fs::read(&l.backing).unwrap() == before,
        "format wrote to the device"
    );
}
