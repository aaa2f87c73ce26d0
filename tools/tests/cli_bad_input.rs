//! Bad command lines get a one-line error, a non-zero exit, no panic, and change nothing on
//! the devices: fewer devices than k + m, the same device twice, a device too small, a device
//! of another array, invalid k/m/chunk size, an oversized value, a missing table, devices
//! that were never formatted, and a malformed import file.

use std::process::Output;

mod cli_common;
use cli_common::*;

/// A clean failure naming `needle` (see `cli_common::assert_clean_error`).
fn assert_one_error(out: &Output, needle: &str) {
    assert_clean_error(out, &[needle]);
}

#[test]
fn bad_format_arguments_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let few = devs(dir.path(), "few", 3);
    let out = ectable(&[
        "format",
        "--devices",
        &join(&few),
        "--k",
        "4",
        "--m",
        "2",
        "--create-size",
        "64M",
    ]);
    assert_one_error(&out, "needs at least 6 devices");
    assert!(
        few.iter().all(|p| !p.exists()),
        "files were created by a failed format"
    );

    let six = devs(dir.path(), "d", 6);
    for (k, m, chunk, needle) in [
        ("0", "2", "64K", "at least 1"),
        ("4", "0", "64K", "at least 1"),
        ("2", "2", "5000", "chunk size"),
        ("2", "2", "8M", "chunk size"),
    ] {
        let out = ectable(&[
            "format",
            "--devices",
            &join(&six),
            "--k",
            k,
            "--m",
            m,
            "--chunk-size",
            chunk,
            "--create-size",
            "64M",
        ]);
        assert_one_error(&out, needle);
    }
    assert!(
        six.iter().all(|p| !p.exists()),
        "files were created by a failed format"
    );

    let small = devs(dir.path(), "small", 3);
    let out = ectable(&[
        "format",
        "--devices",
        &join(&small),
        "--k",
        "2",
        "--m",
        "1",
        "--create-size",
        "4M",
    ]);
    assert_one_error(&out, "too small");
    assert!(small.iter().all(|p| !p.exists()));

    // A hot spare smaller than the members: refused, where it used to shrink every member
    // to its size (64 MiB members laid out as 20 MiB ones).
    let members = devs(dir.path(), "m", 3);
    for p in &members {
        std::fs::File::create(p).unwrap().set_len(64 << 20).unwrap();
    }
    let spare = dir.path().join("spare.img");
    std::fs::File::create(&spare)
        .unwrap()
        .set_len(20 << 20)
        .unwrap();
    let before = digest(&members);
    let out = ectable(&[
        "format",
        "--devices",
        &join(&members),
        "--k",
        "2",
        "--m",
        "1",
        "--spares",
        spare.to_str().unwrap(),
        "--yes",
    ]);
    assert_one_error(&out, "spare.img: too small: 20971520 bytes, need at least");
    assert_eq!(
        digest(&members),
        before,
        "a refused format wrote to a member"
    );

    let out = ectable(&[
        "format",
        "--devices",
        "/nonexistent/a,/nonexistent/b",
        "--k",
        "1",
        "--m",
        "1",
    ]);
    assert_one_error(&out, "no such device");
}

#[test]
fn existing_array_duplicates_and_foreign_devices() {
    let dir = tempfile::tempdir().unwrap();
    let a = format6(dir.path(), "a");
    let b = format6(dir.path(), "b");
    let before = digest(&a);

    let out = ectable(&["format", "--devices", &join(&a), "--k", "4", "--m", "2"]);
    assert_one_error(&out, "already holds an ectable array");

    let mut dup = a.clone();
    dup[5] = a[0].clone();
    let out = ectable(&[
        "put",
        "--devices",
        &join(&dup),
        "--table",
        "t",
        "--key",
        "k",
        "--value",
        "v",
    ]);
    assert_one_error(&out, "listed twice");

    let mut mixed = a.clone();
    mixed[2] = b[2].clone();
    let b_before = digest(&b);
    let out = ectable(&[
        "put",
        "--devices",
        &join(&mixed),
        "--table",
        "t",
        "--key",
        "k",
        "--value",
        "v",
    ]);
    assert_one_error(&out, "another ectable array");
    assert_eq!(digest(&b), b_before, "the foreign device was written");
    assert_eq!(digest(&a), before, "a refused command changed the array");
}

#[test]
fn bad_data_commands() {
    let dir = tempfile::tempdir().unwrap();
    let a = format6(dir.path(), "a");
    let d = join(&a);
    let before = digest(&a);
    // A table that never had a key reads like an emptied one: the key is not there (1); the
    // message says the array has no such table (a mistyped name), and which it has.
    let out = ectable(&["get", "--devices", &d, "--table", "missing", "--key", "k"]);
    assert_one_error(
        &out,
        "key 'k' not found: the array has no table 'missing' (it has no tables)",
    );
    assert_eq!(out.status.code(), Some(1));
    // A table name with control characters (a terminal escape, a line break) would reach
    // every listing of the tables: refused for a new write, named with the characters
    // escaped, nothing written.
    for bad in ["red\x1b[31m", "two\nlines", "tab\tbed"] {
        let out = ectable(&[
            "put",
            "--devices",
            &d,
            "--table",
            bad,
            "--key",
            "k",
            "--value",
            "v",
        ]);
        assert_one_error(&out, "without control characters");
        assert!(!stderr(&out).contains('\x1b'), "{}", stderr(&out));
        assert_eq!(out.status.code(), Some(65), "{bad:?}: {}", stderr(&out));
    }
    // An I/O deadline so short it would fail members that are only busy, or not a duration:
    // refused before anything is opened, on the command line (before or after the command)
    // or from the environment.
    for (bad, needle) in [("500ms", "at least 1s"), ("soon", "e.g. 30s")] {
        let put = [
            "put",
            "--devices",
            &d,
            "--table",
            "t",
            "--key",
            "k",
            "--value",
            "v",
        ];
        for out in [
            ectable(&["serve", "--devices", &d, "--io-timeout", bad]),
            ectable(&[&["--io-timeout", bad][..], &put[..]].concat()),
            ectable_env(&put, &[("ECTABLE_IO_TIMEOUT", bad)]),
        ] {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(needle) && !err.contains("panicked"), "{err}");
            assert_eq!(out.status.code(), Some(64), "--io-timeout {bad}: {err}");
        }
    }
    // A backup into a directory that is not there: said before anything is read.
    let nowhere = dir.path().join("no-such-dir").join("full.ectb");
    let out = ectable(&["backup", "--devices", &d, "--to", nowhere.to_str().unwrap()]);
    assert_one_error(&out, "does not exist");
    assert_eq!(out.status.code(), Some(73));
    let out = ectable(&[
        "load",
        "--devices",
        &d,
        "--table",
        "t",
        "--rows",
        "2",
        "--value-size",
        "1M",
    ]);
    assert_one_error(&out, "exceeds");
    let long_key = "k".repeat(2000);
    let out = ectable(&[
        "put",
        "--devices",
        &d,
        "--table",
        "t",
        "--key",
        &long_key,
        "--value",
        "v",
    ]);
    assert_one_error(&out, "key must be");
    let long_table = "t".repeat(100);
    let out = ectable(&[
        "put",
        "--devices",
        &d,
        "--table",
        &long_table,
        "--key",
        "k",
        "--value",
        "v",
    ]);
    assert_one_error(&out, "table name");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"key\": \"a\", \"value\": \"1\"}\n{\"key\": 5}\n").unwrap();
    let out = ectable(&[
        "import",
        "--devices",
        &d,
        "--table",
        "t",
        bad.to_str().unwrap(),
    ]);
    assert_one_error(&out, "line 2");
    // The valid first line was not imported either.
    let out = ectable(&["get", "--devices", &d, "--table", "t", "--key", "a"]);
    assert!(!out.status.success());
    // `online` of a device that is not there, of a blank one, and of a member in service.
    let missing = dir.path().join("nowhere");
    let out = ectable(&["online", "--devices", &d, missing.to_str().unwrap()]);
    assert_one_error(&out, "cannot open");
    assert_eq!(out.status.code(), Some(66));
    let blank_one = dir.path().join("blank-one");
    std::fs::write(&blank_one, vec![0u8; 32 << 20]).unwrap();
    let out = ectable(&["online", "--devices", &d, blank_one.to_str().unwrap()]);
    assert_one_error(&out, "holds no ectable superblock");
    // A directory: refused in one line (it used to warn about O_DIRECT first).
    let out = ectable(&["online", "--devices", &d, dir.path().to_str().unwrap()]);
    assert_one_error(&out, "not a regular file or block device");
    // A replacement that is not there, without --create-size: named as the new device.
    let out = ectable(&[
        "replace",
        "--devices",
        &d,
        "--old",
        a[1].to_str().unwrap(),
        "--new",
        missing.to_str().unwrap(),
        "--yes",
    ]);
    assert_one_error(&out, "--new");
    assert!(stderr(&out).contains("--create-size"), "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(66));
    // A member path that is not there, for a command that opens the array: the hint.
    let mut gone = a.clone();
    gone[3] = missing.clone();
    let out = ectable(&[
        "get",
        "--devices",
        &join(&gone),
        "--table",
        "t",
        "--key",
        "a",
    ]);
    assert_one_error(&out, "leave it out of --devices");
    assert_eq!(out.status.code(), Some(66));
    let out = ectable(&["online", "--devices", &d, a[2].to_str().unwrap()]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("nothing to do"),
        "online of a member in service: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(digest(&a), before, "refused commands changed the devices");

    let blank = devs(dir.path(), "blank", 3);
    for p in &blank {
        std::fs::write(p, vec![0u8; 32 << 20]).unwrap();
    }
    let out = ectable(&["status", "--devices", &join(&blank)]);
    assert_one_error(&out, "not an ectable device");
    assert_eq!(out.status.code(), Some(4));

    let out = ectable(&["frobnicate"]);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn import_export_round_trip_with_binary() {
    let dir = tempfile::tempdir().unwrap();
    let a = format6(dir.path(), "a");
    let d = join(&a);
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"key\": \"b\", \"value\": \"two\"}\n{\"key\": \"a\", \"value\": {\"$bin\": \"AP8=\"}}\n",
    )
    .unwrap();
    let out = ectable(&[
        "import",
        "--devices",
        &d,
        "--table",
        "t",
        input.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ectable(&["export", "--devices", &d, "--table", "t", "-"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains("\"$bin\":\"AP8=\""), "{}", lines[0]);
    assert!(lines[1].contains("\"two\""));
    let out = ectable(&[
        "verify",
        "--devices",
        &d,
        "--table",
        "t",
        "--rows",
        "1",
        "--value-size",
        "10",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("row 0"));
}

/// Output into a pipe whose reader is gone (`ectable status | head -1`) ends the command
/// quietly, as for other Unix tools: killed by SIGPIPE, no panic, no exit 101.
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let p = format6(dir.path(), "pipe");
    let (reader, writer) = std::io::pipe().expect("pipe");
    // The reader is gone before the command writes a byte.
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ectable"))
        .args(["status", "--devices", &join(&p)])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run ectable");
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_ne!(out.status.code(), Some(101), "{err}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {err}",
        out.status
    );
}

/// Devices of an array a newer build wrote (superblocks of format version 7, magic and crc
/// good): every command names the version instead of calling them blank, and `format`,
/// which would write over a blank device, refuses without --force and changes nothing.
#[test]
fn devices_of_a_newer_format_are_named_and_not_formatted_over() {
    let dir = tempfile::tempdir().unwrap();
    let a = format6(dir.path(), "newer");
    for p in &a {
        let mut b = std::fs::read(p).unwrap();
        for copy in b[..8192].chunks_mut(4096) {
            copy[8..12].copy_from_slice(&7u32.to_le_bytes());
            let crc = crc32c::crc32c(&copy[..4092]);
            copy[4092..4096].copy_from_slice(&crc.to_le_bytes());
        }
        std::fs::write(p, b).unwrap();
    }
    let d = join(&a);
    let before = digest(&a);
    let out = ectable(&["status", "--devices", &d]);
    assert_one_error(&out, "format version 7, which this build does not read");
    assert_ne!(out.status.code(), Some(0));
    let out = ectable(&["format", "--devices", &d, "--k", "4", "--m", "2", "--yes"]);
    assert_one_error(&out, "format version 7, which this build does not read");
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let out = ectable(&["examine", a[0].to_str().unwrap()]);
    assert!(
        stdout(&out).contains("format version 7, which this build does not read"),
        "{}",
        stdout(&out)
    );
    assert_eq!(out.status.code(), Some(1));
    // ecbench formats too: refused without --force, naming the version.
    let bench = |force: bool| {
        let mut args = vec![
            "--devices",
            &d,
            "--k",
            "4",
            "--m",
            "2",
            "--rw",
            "write",
            "--bs",
            "4K",
            "--size",
            "1M",
        ];
        if force {
            args.push("--force");
        }
        std::process::Command::new(env!("CARGO_BIN_EXE_ecbench"))
            .args(&args)
            .output()
            .expect("run ecbench")
    };
    let out = bench(false);
    assert!(!out.status.success(), "ecbench wrote over a newer array");
    assert!(
        stderr(&out).contains("format version 7, which this build does not read")
            && stderr(&out).contains("--force"),
        "{}",
        stderr(&out)
    );
    assert_eq!(digest(&a), before, "refused commands changed the devices");
    let out = bench(true);
    assert!(out.status.success(), "ecbench --force: {}", stderr(&out));
    let out = ectable(&[
        "format",
        "--devices",
        &d,
        "--k",
        "4",
        "--m",
        "2",
        "--force",
        "--yes",
    ]);
    assert!(out.status.success(), "format --force: {}", stderr(&out));
}

/// A rate limit of a few bytes per second (`--rate 50`, meant as 50M) would run a scrub,
/// rebuild or backup for days: refused on the command line (exit 64) for every command that
/// takes one, before the devices are opened; 0 (no limit) and sizes with a unit are taken.
#[test]
fn a_rate_of_a_few_bytes_per_second_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = join(&format6(dir.path(), "d"));
    let file = dir.path().join("b.ectb");
    let f = file.to_str().unwrap();
    for args in [
        &["scrub", "--devices", &d, "--rate", "50"][..],
        &["rebuild", "--devices", &d, "--rate", "1"][..],
        &["backup", "--devices", &d, "--to", f, "--rate", "4K"][..],
        &["online", "--devices", &d, "--rate", "100", "x"][..],
    ] {
        let out = ectable(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains("at least 64K"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!file.exists(), "a refused backup wrote its file");
    for rate in ["0", "64K", "50M"] {
        let out = ectable(&["scrub", "--devices", &d, "--rate", rate]);
        assert!(out.status.success(), "--rate {rate}: {}", stderr(&out));
    }
}

/// A FIFO (or a directory) where a device belongs: opening a FIFO waits for a writer for
/// ever, and every command hung on it. Now each command refuses it in one line at once,
/// and `status` shows the array without it (exit 1, the path named).
#[test]
fn a_fifo_in_the_device_list_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let p = format6(dir.path(), "f");
    let all = join(&p);
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let f = fifo.to_str().unwrap();
    let with = format!("{all},{f}");
    let blank: Vec<String> = (0..2)
        .map(|i| dir.path().join(format!("b{i}")).display().to_string())
        .collect();
    let fmt = format!("{f},{},{}", blank[0], blank[1]);
    let old = p[1].to_str().unwrap();
    let before = digest(&p);
    // Each command in a child that is killed after 20 s: a hang fails the test, not CI.
    let run = |args: &[&str]| -> Output {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ectable"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run ectable");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while child.try_wait().expect("wait").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{args:?} still waits after 20 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.wait_with_output().expect("output")
    };
    for args in [
        vec!["add-spare", "--devices", &all, "--spare", f],
        vec![
            "replace",
            "--devices",
            &all,
            "--old",
            old,
            "--new",
            f,
            "--yes",
        ],
        vec!["online", "--devices", &all, f],
        vec!["get", "--devices", &with, "--table", "t", "--key", "k"],
        vec!["format", "--devices", &fmt, "--k", "2", "--m", "1", "--yes"],
    ] {
        let out = run(&args);
        assert_one_error(&out, "not a regular file or block device");
    }
    assert_eq!(digest(&p), before, "a refused command changed a member");
    let out = run(&["status", "--devices", &with]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("state: ONLINE"), "{text}");
    assert!(
        text.contains(&format!(
            "given: {f}: not a regular file or block device; not used"
        )),
        "{text}"
    );
    let out = run(&["status", "--devices", &with, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
    assert!(
        v["checks"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["code"] == "DEVICE_NOT_FOUND")),
        "{v}"
    );
}

/// A new device smaller than the two superblock copies (8 KiB; `--create-size 1`, a file
/// cut short): before, its superblock read failed as a short read, an I/O error (exit 74)
/// that named no cause. Now it is "too small" (exit 78), and the file made is removed.
#[test]
fn a_new_device_of_a_few_bytes_is_too_small_not_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = format6(dir.path(), "s");
    let all = join(&p);
    let before = digest(&p);
    let new = dir.path().join("new.img");
    let n = new.to_str().unwrap();
    for args in [
        vec![
            "add-spare",
            "--devices",
            &all,
            "--spare",
            n,
            "--create-size",
            "1",
        ],
        vec![
            "replace",
            "--devices",
            &all,
            "--old",
            p[2].to_str().unwrap(),
            "--new",
            n,
            "--create-size",
            "4K",
            "--yes",
        ],
    ] {
        let out = ectable(&args);
        assert_one_error(&out, "too small");
        assert_eq!(out.status.code(), Some(78), "{args:?}: {}", stderr(&out));
        assert!(!new.exists(), "{args:?} left the file it made");
    }
    // A file of 100 bytes given as it is.
    std::fs::write(&new, [0u8; 100]).unwrap();
    let out = ectable(&["add-spare", "--devices", &all, "--spare", n]);
    assert_one_error(&out, "too small");
    assert_eq!(digest(&p), before, "a refused command changed a member");
}

/// `demo --dir D` replaces an earlier demo's device files, and only those: files of the same
/// names in a directory the demo did not make (someone's array) are left alone, as are files
/// another process holds (a node serving the earlier demo's array); each refusal says why and
/// removes nothing.
#[test]
fn demo_replaces_only_its_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("dev0.img"), b"someone's array").unwrap();
    let out = ectable(&["demo", "--dir", theirs.to_str().unwrap(), "--rows", "100"]);
    assert_clean_error(&out, &["dev0.img is there", "has no .ectable-demo file"]);
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(theirs.join("dev0.img")).unwrap(),
        b"someone's array"
    );

    let ours = dir.path().join("ours");
    let demo = |rows: &str| {
        ectable(&[
            "demo",
            "--dir",
            ours.to_str().unwrap(),
            "--rows",
            rows,
            "--device-size",
            "64M",
        ])
    };
    let out = demo("200");
    assert!(out.status.success(), "first demo: {}", stderr(&out));
    // The earlier demo's array held by another process: refused, nothing removed.
    let held = std::fs::File::open(ours.join("dev1.img")).unwrap();
    held.lock().unwrap();
    let before = digest(&devs(&ours, "dev", 6));
    let out = demo("100");
    assert_clean_error(&out, &["dev1.img is in use by another process"]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    drop(held);
    assert_eq!(digest(&devs(&ours, "dev", 6)), before, "files changed");
    // Its own files again: replaced.
    let out = demo("100");
    assert!(out.status.success(), "second demo: {}", stderr(&out));
}

/// A device that holds something else an operator may want (a file system, a partition
/// table, an LVM or RAID member) is not written over without `--force`, by `format`,
/// `add-spare` or `replace --new`, as `mkfs` and `mdadm --create` refuse: the refusal names
/// what it holds, and every device stays byte for byte as it was.
#[test]
fn a_device_holding_a_file_system_is_not_written_over_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let mark = |p: &std::path::Path, offset: u64, magic: &[u8]| {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(p)
            .unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(magic, offset).unwrap();
    };
    let d = devs(dir.path(), "fs", 6);
    for p in &d {
        mark(p, 0, &[0]);
    }
    mark(&d[3], 1080, &[0x53, 0xef]);
    let all = join(&d);
    let before = digest(&d);
    let out = ectable(&["format", "--devices", &all, "--k", "4", "--m", "2", "--yes"]);
    assert_clean_error(&out, &["holds an ext2/3/4 file system", "--force"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert_eq!(digest(&d), before, "a refused format wrote");
    let out = ectable(&[
        "format",
        "--devices",
        &all,
        "--k",
        "4",
        "--m",
        "2",
        "--yes",
        "--force",
    ]);
    assert!(out.status.success(), "format --force: {}", stderr(&out));

    let gpt = dir.path().join("gpt.img");
    mark(&gpt, 512, b"EFI PART");
    let lvm = dir.path().join("lvm.img");
    mark(&lvm, 512, b"LABELONE");
    let others = digest(&[gpt.clone(), lvm.clone()]);
    let array = digest(&d);
    let out = ectable(&[
        "add-spare",
        "--devices",
        &all,
        "--spare",
        gpt.to_str().unwrap(),
    ]);
    assert_clean_error(&out, &["holds a GPT partition table", "--force"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let out = ectable(&[
        "replace",
        "--devices",
        &all,
        "--old",
        d[1].to_str().unwrap(),
        "--new",
        lvm.to_str().unwrap(),
        "--yes",
    ]);
    assert_clean_error(&out, &["holds an LVM physical volume", "--force"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert_eq!(
        digest(&[gpt.clone(), lvm.clone()]),
        others,
        "a refused command wrote"
    );
    assert_eq!(digest(&d), array, "a refused command changed the array");
    let out = ectable(&[
        "add-spare",
        "--devices",
        &all,
        "--spare",
        gpt.to_str().unwrap(),
        "--force",
    ]);
    assert!(out.status.success(), "add-spare --force: {}", stderr(&out));
}
