//! SIGKILL in the middle of a backup and of a restore.
//!
//! `kill_during_backup`: `ectable backup --to FILE` (rate-limited so that it takes seconds)
//! is killed once its progress shows it is writing: FILE does not exist, the partial file it
//! leaves is refused by `backup-verify` and by `restore` as incomplete (also under the final
//! name), and the array still opens and verifies; a new backup to the same name completes.
//! The same with `backup --auto DIR`: the temporary file is never renamed, and the next
//! `--auto` run removes it and takes the chain's full backup.
//!
//! `kill_during_restore`: `ectable restore` is killed while it writes rows: the array then
//! refuses to open (`status`, `get`) with the unfinished-restore error; restore is run again
//! without `--force` (the devices hold an unfinished restore, not an array), killed again,
//! and run a third time to completion; then every row verifies.
//!
//! Each kill must hit a running process (exit by SIGKILL), or the test fails.

mod backup_common;
use backup_common::*;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

const ROWS: &str = "16000";

/// Runs `ectable args`, reads its stderr, and SIGKILLs it at the first line `at` accepts.
/// Returns the stderr lines read; fails unless the process died of that SIGKILL.
fn kill_when(args: &[&str], at: impl Fn(&str) -> bool) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ectable"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ectable");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("read stderr");
        let hit = at(&line);
        lines.push(line);
        if hit {
            child.kill().expect("SIGKILL");
            break;
        }
    }
    let status = child.wait().expect("wait");
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "ectable {args:?} was not killed mid-way ({status}); stderr: {lines:?}"
    );
    lines
}

fn progress_line(label: &str) -> impl Fn(&str) -> bool + '_ {
    move |l: &str| {
        l.strip_prefix(label)
            .and_then(|r| r.strip_prefix(": "))
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    }
}

fn loaded_array(dir: &Path) -> String {
    let a = format(dir, "a", 6, 4, 2, "48M");
    let da = join(&a);
    ok(&[
        "load",
        "--devices",
        &da,
        "--table",
        "t",
        "--rows",
        ROWS,
        "--value-size",
        "1K",
        "--seed",
        "5",
    ]);
    da
}

fn verify_rows(devices: &str) {
    ok(&[
        "verify",
        "--devices",
        devices,
        "--table",
        "t",
        "--rows",
        ROWS,
        "--value-size",
        "1K",
        "--seed",
        "5",
    ]);
}

#[test]
fn kill_during_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let da = loaded_array(dir);
    let file = dir.join("full.ectb");
    let partial = dir.join("full.ectb.partial");
    kill_when(
        &["backup", "--devices", &da, "--to", s(&file), "--rate", "4M"],
        progress_line("backup"),
    );
    assert!(
        !file.exists(),
        "a killed backup left a file under its final name"
    );
    let size = std::fs::metadata(&partial).expect("the partial file").len();
    assert!(
        size > 256,
        "the kill came before any data was written ({size} bytes)"
    );
    // The partial file is no backup, under any name.
    let renamed = dir.join("renamed.ectb");
    std::fs::copy(&partial, &renamed).unwrap();
    for f in [&partial, &renamed] {
        let line = error_line(&ectable(&["backup-verify", s(f)]));
        assert!(line.contains("incomplete"), "{line}");
        error_offset(&line, f);
        let r = devs(dir, "r", 3);
        let out = ectable(&[
            "restore",
            "--devices",
            &join(&r),
            "--k",
            "2",
            "--m",
            "1",
            "--from",
            s(f),
            "--create-size",
            "32M",
        ]);
        assert!(error_line(&out).contains("incomplete"));
        assert!(
            r.iter().all(|p| !p.exists()),
            "a refused restore created devices"
        );
    }
    // The array is unharmed; a new backup to the same name completes and verifies.
    verify_rows(&da);
    ok(&["backup", "--devices", &da, "--to", s(&file)]);
    assert!(!partial.exists(), "the stale partial file stayed");
    ok(&["backup-verify", s(&file)]);

    // --auto: the temporary file is never renamed; the next run cleans it up.
    let bdir = dir.join("auto");
    kill_when(
        &[
            "backup",
            "--devices",
            &da,
            "--auto",
            s(&bdir),
            "--rate",
            "4M",
        ],
        progress_line("backup"),
    );
    let names: Vec<String> = std::fs::read_dir(&bdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["c0000-0000-full.ectb.partial"], "after the kill");
    ok(&["backup", "--devices", &da, "--auto", s(&bdir)]);
    let names: Vec<String> = std::fs::read_dir(&bdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["c0000-0000-full.ectb"], "after the next run");
    ok(&["backup-verify", s(&bdir.join("c0000-0000-full.ectb"))]);
}

#[test]
fn kill_during_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let da = loaded_array(dir);
    let file = dir.join("full.ectb");
    ok(&["backup", "--devices", &da, "--to", s(&file)]);
    let r = devs(dir, "r", 3);
    let dr = join(&r);
    let restore = |rate: &'static str| -> Vec<String> {
        let mut v: Vec<String> = [
            "restore",
            "--devices",
            &dr,
            "--k",
            "2",
            "--m",
            "1",
            "--segment-size",
            "1M",
            "--from",
            s(&file),
            "--create-size",
            "64M",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        if !rate.is_empty() {
            v.extend(["--rate".to_string(), rate.to_string()]);
        }
        v
    };
    let refuses_to_open = |when: &str| {
        let out = ectable(&["status", "--devices", &dr]);
        assert_eq!(out.status.code(), Some(4), "{when}: status");
        assert!(error_line(&out).contains("unfinished restore"), "{when}");
        let out = ectable(&[
            "get",
            "--devices",
            &dr,
            "--table",
            "t",
            "--key",
            "row000000000001",
        ]);
        assert!(error_line(&out).contains("unfinished restore"), "{when}");
    };
    let args = restore("4M");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kill_when(&args, progress_line("restore"));
    refuses_to_open("after the first kill");
    // Again, without --force: the devices hold an unfinished restore. Killed later this time.
    let lines = kill_when(&args, |l| {
        progress_line("restore")(l) && l.contains(": 50%")
    });
    assert!(
        lines
            .iter()
            .any(|l| l.contains("unfinished restore") && l.contains("starting it over")),
        "{lines:?}"
    );
    refuses_to_open("after the second kill");
    let args = restore("");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ectable(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    verify_rows(&dr);
    // A normal array now: restoring over it again needs --force.
    let out = ectable(&args);
    assert!(error_line(&out).contains("use --force"));
}
