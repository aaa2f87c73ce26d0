//! The `ectable` CLI and one storage under two names (docs/fault-model.md): `format` refuses
//! a loop device listed with its backing file, or with a `mknod` alias of it, and writes
//! nothing; while a writer holds the loop device, `put` through the alias or the backing file
//! is refused with a one-line error and changes nothing, and `get` (read-only) through either
//! name works. Needs root for loop devices (skips with a reason otherwise; with
//! ECTABLE_REQUIRE_LOOP=1 it must run). Its tests take one lock.

mod cli_common;

use cli_common::{loop_devices_available, Loop};
use ectable_devices::{FileDevice, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

static LOOP_LOCK: Mutex<()> = Mutex::new(());

fn ectable(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ectable"))
        .args(args)
        .env("ECTABLE_LOCK_WAIT_MS", "200")
        .output()
        .expect("run ectable")
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Asserts a clean failure: non-zero exit, one line on stderr containing every needle.
fn assert_clean_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "expected '{n}' in: {stderr}");
    }
}

/// A `mknod` node with the loop device's major:minor, removed on drop.
struct Alias(PathBuf);

impl Alias {
    fn of(dev: &str, at: PathBuf) -> Alias {
        let rdev = std::fs::metadata(dev).unwrap().rdev();
        let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
        let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
        let st = Command::new("mknod")
            .arg(&at)
            .args(["b", &major.to_string(), &minor.to_string()])
            .status()
            .expect("run mknod");
        assert!(st.success(), "mknod failed");
        Alias(at)
    }
}

impl Drop for Alias {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn crc(p: &Path) -> u32 {
    crc32c::crc32c(&std::fs::read(p).unwrap())
}

#[test]
fn format_refuses_loop_device_with_its_backing_file_or_alias() {
    if !loop_devices_available("format_refuses_loop_device_with_its_backing_file_or_alias") {
        return;
    }
    let _g = LOOP_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("b.img");
    let l = Loop::attach(&backing);
    let alias = Alias::of(&l.path, dir.path().join("alias"));
    let b = backing.display().to_string();
    let a = alias.0.display().to_string();
    let before = crc(&backing);
    for (list, second) in [
        (format!("{},{b}", l.path), &b),
        (format!("{b},{}", l.path), &l.path),
        (format!("{},{a}", l.path), &a),
    ] {
        let out = ectable(&["format", "--devices", &list, "--k", "1", "--m", "1"]);
        assert_clean_error(&out, &["listed twice", second]);
    }
    assert_eq!(crc(&backing), before, "a refused format wrote");
}

#[test]
fn writer_on_loop_device_refuses_put_through_alias_and_backing_file() {
    if !loop_devices_available("writer_on_loop_device_refuses_put_through_alias_and_backing") {
        return;
    }
    let _g = LOOP_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("b.img");
    let other = dir.path().join("f1.img");
    std::fs::File::create(&other)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let l = Loop::attach(&backing);
    let alias = Alias::of(&l.path, dir.path().join("alias"));
    let o = other.display().to_string();
    let b = backing.display().to_string();
    let a = alias.0.display().to_string();
    let through_loop = format!("{},{o}", l.path);
    ok(ectable(&[
        "format",
        "--devices",
        &through_loop,
        "--k",
        "1",
        "--m",
        "1",
    ]));
    ok(ectable(&[
        "put",
        "--devices",
        &through_loop,
        "--table",
        "t",
        "--key",
        "k",
        "--value",
        "v1",
    ]));

    // With no writer at all, writing through the backing file is refused: it backs a loop
    // device, which may be opened at any time.
    let put = |devs: &str| {
        ectable(&[
            "put",
            "--devices",
            devs,
            "--table",
            "t",
            "--key",
            "k",
            "--value",
            "v2",
        ])
    };
    let via_backing = format!("{b},{o}");
    let via_alias = format!("{a},{o}");
    let before = (crc(&backing), crc(&other));
    assert_clean_error(&put(&via_backing), &[&b, &l.path, "loop device"]);

    // A writer holds the loop device (as a running `ectable load` would).
    let w = FileDevice::open(Path::new(&l.path), &OpenOptions::default()).unwrap();
    assert_clean_error(&put(&via_alias), &[&a, "in use"]);
    assert_clean_error(&put(&via_backing), &[&b, &l.path]);
    assert_eq!((crc(&backing), crc(&other)), before, "a refused put wrote");

    // Readers beside the writer work through every name.
    for devs in [&through_loop, &via_backing, &via_alias] {
        let out = ok(ectable(&[
            "get",
            "--devices",
            devs,
            "--table",
            "t",
            "--key",
            "k",
        ]));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("v1"),
            "get through {devs}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    drop(w);
}
