//! Helpers shared by the tests that run the `ectable` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `ectable` with `args`.
pub fn ectable(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ectable"))
        .args(args)
        .output()
        .expect("run ectable")
}

/// Runs `ectable` with `args` and extra environment variables.
pub fn ectable_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ectable"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run ectable")
}

/// Runs `ectable` with `args`, `input` on its stdin.
pub fn ectable_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ectable"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ectable");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // A writer thread: the child may exit (refusing the input) before reading all of it.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for ectable");
    let _ = writer.join();
    out
}

/// Six 64 MiB files `<prefix><i>.img` in `dir`, formatted RS(4,2) (with `env` set).
pub fn format6_env(dir: &Path, prefix: &str, env: &[(&str, &str)]) -> Vec<PathBuf> {
    let p = devs(dir, prefix, 6);
    let all = join(&p);
    let out = ectable_env(
        &[
            "format",
            "--devices",
            &all,
            "--k",
            "4",
            "--m",
            "2",
            "--create-size",
            "64M",
            "--yes",
        ],
        env,
    );
    assert!(out.status.success(), "format: {}", stderr(&out));
    p
}

/// Six 64 MiB files `<prefix><i>.img` in `dir`, formatted RS(4,2).
pub fn format6(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    format6_env(dir, prefix, &[])
}

/// `ectable load` of `rows` rows of `value_size` into table "t" of the array `all`; panics
/// with its stderr if it fails.
pub fn load_rows(all: &str, rows: &str, value_size: &str) {
    let out = ectable(&[
        "load",
        "--devices",
        all,
        "--table",
        "t",
        "--rows",
        rows,
        "--value-size",
        value_size,
    ]);
    assert!(out.status.success(), "load: {}", stderr(&out));
}

/// `n` device file paths `<prefix><i>.img` in `dir`.
pub fn devs(dir: &Path, prefix: &str, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| dir.join(format!("{prefix}{i}.img")))
        .collect()
}

/// Makes a named pipe (FIFO) at `path`.
pub fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

/// The `--devices` list of `p`.
pub fn join(p: &[PathBuf]) -> String {
    p.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A crc32c of each file's whole contents (0 for a file that cannot be read): equal digests
/// before and after a refused command show it wrote nothing.
pub fn digest(paths: &[PathBuf]) -> Vec<u32> {
    paths
        .iter()
        .map(|p| std::fs::read(p).map(|b| crc32c::crc32c(&b)).unwrap_or(0))
        .collect()
}

/// [`digest`] with each file's health block (bytes 8192..12288) left out: the only bytes a
/// plain scrub or another read-only command may write (what it found, for `status`).
pub fn digest_but_health_blocks(paths: &[PathBuf]) -> Vec<u32> {
    paths
        .iter()
        .map(|p| {
            let mut b = std::fs::read(p).unwrap_or_default();
            if b.len() >= 12288 {
                b[8192..12288].fill(0);
            }
            crc32c::crc32c(&b)
        })
        .collect()
}

/// A command's stdout, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A clean failure: non-zero exit, no panic, exactly one line on stderr starting with
/// `ectable: error: ` and containing every needle.
pub fn assert_clean_error(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("ectable: error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected '{n}' in: {err}");
    }
}

// ---------------------------------------------------------------------------------------
// Loop devices (root only).

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn loop_devices_available(test: &str) -> bool {
    root_available(test, "loop devices need root")
}

/// Whether the test runs as root; otherwise prints why it skips (`why`), and fails when
/// ECTABLE_REQUIRE_LOOP=1 (CI runs as root).
fn root_available(test: &str, why: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var("ECTABLE_REQUIRE_LOOP").map_or(true, |v| v != "1"),
        "{test}: ECTABLE_REQUIRE_LOOP=1 but not running as root"
    );
    eprintln!("SKIP {test}: {why}");
    false
}

/// A loop device attached here, detached (exactly it) on drop.
pub struct Loop {
    pub path: String,
}

impl Loop {
    pub fn attach(backing: &Path) -> Loop {
        std::fs::File::create(backing)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        Loop::attach_existing(backing)
    }

    /// A loop device over a file that exists, as it is.
    pub fn attach_existing(backing: &Path) -> Loop {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(backing)
            .output()
            .expect("run losetup");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop {
            path: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
    }
}

/// Whether a tmpfs can be mounted (root).
pub fn tmpfs_available(test: &str) -> bool {
    root_available(test, "mounting a tmpfs needs root")
}

/// Six sparse member files of 32 MiB (1 MiB segments, RS(4,2)) on a 40 MiB tmpfs mounted
/// under `dir`: 192 MiB promised on 40 MiB of room. Returns the mount and the device list.
pub fn array_on_small_tmpfs(dir: &Path) -> (Tmpfs, String) {
    let fs = Tmpfs::mount(&dir.join("fs"), "40M");
    let devs = (0..6)
        .map(|i| fs.0.join(format!("d{i}")).display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let out = ectable(&[
        "format",
        "--devices",
        &devs,
        "--k",
        "4",
        "--m",
        "2",
        "--create-size",
        "32M",
        "--segment-size",
        "1M",
        "--yes",
    ]);
    assert!(
        out.status.success(),
        "format: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (fs, devs)
}

/// A tmpfs mounted at a directory, unmounted on drop (also when the test fails).
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount -t tmpfs failed");
        Tmpfs(at.to_path_buf())
    }

    pub fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(st.success(), "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
