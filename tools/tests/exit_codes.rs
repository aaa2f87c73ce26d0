//! Every exit-code class of `ectable` (docs/operations.md, "Exit codes"), made happen and
//! checked: a script can tell a missing key from an I/O failure, a usage error from a
//! refusal, and `status` keeps mdadm's meaning even when too few devices are present.
//! Also `examine` on mixed devices and `--devices` from ECTABLE_DEVICES.

mod cli_common;
use cli_common::*;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Output;

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

/// Six 64 MiB files formatted RS(4,2), holding t/a = 1.
fn array(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let d = format6(dir, prefix);
    let out = ectable(&[
        "put",
        "--devices",
        &join(&d),
        "--table",
        "t",
        "--key",
        "a",
        "--value",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    d
}

#[test]
fn every_exit_code_class() {
    let dir = tempfile::tempdir().unwrap();
    let d = array(dir.path(), "d");
    let all = join(&d);
    let get = |devices: &str, key: &str| {
        ectable(&["get", "--devices", devices, "--table", "t", "--key", key])
    };
    // 0: the key exists.
    let out = get(&all, "a");
    assert_eq!((code(&out), out.stdout.as_slice()), (0, &b"1"[..]));
    // 1: the answer is no (a missing key), told apart from every failure below.
    let out = get(&all, "zz");
    assert_eq!(code(&out), 1);
    assert_clean_error(&out, &["not found"]);
    let out = ectable(&["delete", "--devices", &all, "--table", "t", "--key", "zz"]);
    assert_eq!(code(&out), 1);
    // 64: the command line cannot be run (not clap's 2, which status uses for "unavailable").
    assert_eq!(code(&ectable(&["frobnicate"])), 64);
    assert_eq!(code(&ectable(&["get", "--table", "t"])), 64);
    assert_eq!(
        code(&ectable(&[
            "format",
            "--devices",
            &all,
            "--k",
            "0",
            "--m",
            "2"
        ])),
        64
    );
    let help = ectable(&["--help"]);
    assert_eq!(code(&help), 0);
    assert!(!help.stdout.is_empty());
    // 65: the input data is wrong.
    let long_key = "k".repeat(3000);
    let out = ectable(&[
        "put",
        "--devices",
        &all,
        "--table",
        "t",
        "--key",
        &long_key,
        "--value",
        "1",
    ]);
    assert_eq!(code(&out), 65);
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "not json\n").unwrap();
    let out = ectable(&[
        "import",
        "--devices",
        &all,
        "--table",
        "t",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 65);
    assert_clean_error(&out, &["line 1"]);
    // 66: an input does not exist.
    let missing = dir.path().join("nothing.img");
    assert_eq!(code(&get(missing.to_str().unwrap(), "a")), 66);
    let out = ectable(&["reopen", "--devices", missing.to_str().unwrap()]);
    assert_eq!(code(&out), 66, "reopen of devices that are not there");
    assert_clean_error(&out, &["none of the devices exists"]);
    // A spare (or replacement) that is not there and no size to create it with: one line
    // saying how to create it, not the open's "No such file or directory".
    let out = ectable(&[
        "add-spare",
        "--devices",
        &all,
        "--spare",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 66, "{}", stderr(&out));
    assert_clean_error(
        &out,
        &["does not exist: give its size to create it as a file"],
    );
    assert!(!missing.exists());
    // 69: too few of the array's devices to open it.
    assert_eq!(code(&get(&join(&d[..3]), "a")), 69);
    // 73: a backup never overwrites a file.
    let existing = dir.path().join("exists.ecb");
    std::fs::write(&existing, b"").unwrap();
    let out = ectable(&[
        "backup",
        "--devices",
        &all,
        "--to",
        existing.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 73);
    // 74: an input fails to read (a directory where the import file should be).
    let adir = dir.path().join("importdir");
    std::fs::create_dir(&adir).unwrap();
    let out = ectable(&[
        "import",
        "--devices",
        &all,
        "--table",
        "t",
        adir.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 74, "{}", stderr(&out));
    // 75: another writer holds a device (its lock is taken here; the command waits briefly).
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&d[0])
        .unwrap();
    // SAFETY: flock on an open descriptor owned by `holder`, which outlives the call.
    assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX) }, 0);
    let out = ectable_env(
        &[
            "put",
            "--devices",
            &all,
            "--table",
            "t",
            "--key",
            "b",
            "--value",
            "2",
        ],
        &[("ECTABLE_LOCK_WAIT_MS", "200")],
    );
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    drop(holder);
    // 78: the devices are not what the command needs.
    let out = ectable(&["format", "--devices", &all, "--k", "4", "--m", "2", "--yes"]);
    assert_eq!(code(&out), 78, "formatting over an array without --force");
    let other = array(dir.path(), "o");
    let mut mixed = d.clone();
    mixed[5] = other[5].clone();
    assert_eq!(
        code(&get(&join(&mixed), "a")),
        78,
        "a member of another array"
    );
    let dirdev = dir.path().join("adir");
    std::fs::create_dir(&dirdev).unwrap();
    let with_dir = format!("{all},{}", dirdev.display());
    assert_eq!(code(&get(&with_dir, "a")), 78, "a directory as a device");
    let out = ectable(&["reopen", "--devices", &other[0].display().to_string()]);
    assert_eq!(code(&out), 0, "reopen without a node: nothing to do");
    let blank = dir.path().join("blank.img");
    std::fs::write(&blank, vec![0u8; 1 << 20]).unwrap();
    let out = ectable(&["reopen", "--devices", blank.to_str().unwrap()]);
    assert_eq!(code(&out), 78, "reopen of a device that holds no array");
    // Nothing above changed the array.
    assert_eq!(get(&all, "a").stdout, b"1");
    assert_eq!(code(&get(&all, "b")), 1);
}

#[test]
fn status_with_too_few_devices_is_unavailable_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = array(dir.path(), "d");
    let gone = dir.path().join("gone");
    std::fs::create_dir(&gone).unwrap();
    // One device unplugged: degraded (1), the path listed as not found.
    std::fs::rename(&d[5], gone.join("d5.img")).unwrap();
    let out = ectable(&["status", "--devices", &join(&d), "--json"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "DEGRADED");
    assert!(v["unrecognised"].to_string().contains("d5.img"), "{v}");
    // Three unplugged: unavailable (2), with the members found and the slots missing.
    for i in [3, 4] {
        std::fs::rename(&d[i], gone.join(format!("d{i}.img"))).unwrap();
    }
    let out = ectable(&["status", "--devices", &join(&d), "--json"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "UNAVAILABLE");
    assert_eq!(v["missing_slots"], serde_json::json!([3, 4, 5]));
    assert_eq!(v["members"].as_array().unwrap().len(), 6);
    assert_eq!(v["devices"], join(&d[..3]));
    let out = ectable(&["status", "--devices", &join(&d)]);
    assert_eq!(code(&out), 2);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("state: UNAVAILABLE"), "{text}");
    assert!(text.contains("MISSING"), "{text}");
    // The devices come back: healthy again.
    for i in [3, 4, 5] {
        std::fs::rename(gone.join(format!("d{i}.img")), &d[i]).unwrap();
    }
    assert_eq!(code(&ectable(&["status", "--devices", &join(&d)])), 0);
}

/// Old copies of three members put back (more than m): the log cannot be read to its end,
/// so the array does not open; status still says why, from the superblocks: the members
/// behind, exit 2 (not 4, "status could not be read"). With the current copies back it is
/// healthy again.
#[test]
fn status_with_more_than_m_old_copies_names_the_members_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = array(dir.path(), "d");
    let old = dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    for (i, p) in d.iter().enumerate().take(3) {
        std::fs::copy(p, old.join(format!("d{i}.img"))).unwrap();
    }
    let out = ectable(&[
        "load",
        "--devices",
        &join(&d),
        "--table",
        "later",
        "--rows",
        "3000",
        "--value-size",
        "4096",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let current = dir.path().join("current");
    std::fs::create_dir(&current).unwrap();
    for (i, p) in d.iter().enumerate().take(3) {
        std::fs::rename(p, current.join(format!("d{i}.img"))).unwrap();
        std::fs::rename(old.join(format!("d{i}.img")), p).unwrap();
    }
    let out = ectable(&["status", "--devices", &join(&d)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 2, "{text}{}", stderr(&out));
    assert!(text.contains("state: UNAVAILABLE"), "{text}");
    assert!(text.contains("3 of 6 members are behind"), "{text}");
    assert_eq!(text.matches("BEHIND").count(), 3, "{text}");
    let out = ectable(&["status", "--devices", &join(&d), "--json"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["behind_slots"], serde_json::json!([0, 1, 2]), "{v}");
    for (i, p) in d.iter().enumerate().take(3) {
        std::fs::rename(current.join(format!("d{i}.img")), p).unwrap();
    }
    assert_eq!(code(&ectable(&["status", "--devices", &join(&d)])), 0);
}

/// Only the superblocks of three members put back from before a load (a power cut part way
/// through a superblock write leaves that): more than m members stale, but their chunks are
/// all there. Status says UNAVAILABLE (exit 2) without claiming data is lost, every row
/// reads back, and `rebuild` brings them back (exit 0 after).
#[test]
fn status_with_more_than_m_stale_members_says_what_may_be_missing() {
    use std::io::{Read, Seek, SeekFrom, Write};
    let dir = tempfile::tempdir().unwrap();
    let d = array(dir.path(), "d");
    let head = |p: &Path| {
        let mut b = vec![0u8; 8192];
        std::fs::File::open(p).unwrap().read_exact(&mut b).unwrap();
        b
    };
    let old: Vec<Vec<u8>> = d[..3].iter().map(|p| head(p)).collect();
    let rows = ["--table", "later", "--rows", "3000", "--value-size", "4096"];
    let mut load = vec!["load", "--devices"];
    let devices = join(&d);
    load.push(&devices);
    load.extend(rows);
    let out = ectable(&load);
    assert!(out.status.success(), "{}", stderr(&out));
    for (p, b) in d[..3].iter().zip(&old) {
        let mut f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(b).unwrap();
    }
    let out = ectable(&["status", "--devices", &devices]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 2, "{text}{}", stderr(&out));
    assert!(text.contains("state: UNAVAILABLE"), "{text}");
    assert!(
        text.contains("what they missed may be unavailable until 'ectable rebuild'"),
        "{text}"
    );
    let mut verify = vec!["verify", "--devices", &devices];
    verify.extend(rows);
    let out = ectable(&verify);
    assert!(out.status.success(), "rows unreadable: {}", stderr(&out));
    let out = ectable(&["rebuild", "--devices", &devices]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(code(&ectable(&["status", "--devices", &devices])), 0);
}

#[test]
fn examine_finds_each_arrays_members_among_mixed_devices() {
    let dir = tempfile::tempdir().unwrap();
    let a = array(dir.path(), "a");
    let b = array(dir.path(), "b");
    let stray = dir.path().join("stray.img");
    std::fs::write(&stray, vec![7u8; 1 << 20]).unwrap();
    // b's slot 2 is left out: b is listed as degraded, with its --devices list.
    let mut paths: Vec<String> = a
        .iter()
        .chain(&b)
        .map(|p| p.display().to_string())
        .collect();
    paths.retain(|p| !p.ends_with("b2.img"));
    paths.push(stray.display().to_string());
    let mut args = vec!["examine", "--json"];
    args.extend(paths.iter().map(String::as_str));
    let out = ectable(&args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arrays = v["arrays"].as_array().unwrap();
    assert_eq!(arrays.len(), 2, "{v}");
    let (full, degraded) = (&arrays[0], &arrays[1]);
    assert_eq!(full["state"], "complete");
    assert_eq!(full["devices"], join(&a));
    assert_eq!(degraded["state"], "degraded");
    assert_eq!(degraded["missing_slots"], serde_json::json!([2]));
    let b_found: Vec<PathBuf> = b
        .iter()
        .filter(|p| !p.ends_with("b2.img"))
        .cloned()
        .collect();
    assert_eq!(degraded["devices"], join(&b_found));
    assert_eq!(v["not_members"][0]["path"], stray.display().to_string());
    // The printed list opens the array.
    let out = ectable(&[
        "get",
        "--devices",
        full["devices"].as_str().unwrap(),
        "--table",
        "t",
        "--key",
        "a",
    ]);
    assert_eq!(out.stdout, b"1");
    // A quoted pattern is expanded by examine itself.
    let pattern = format!("{}/a*.img", dir.path().display());
    let out = ectable(&["examine", &pattern]);
    assert_eq!(code(&out), 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("6 of 6 members found"), "{text}");
    assert!(
        text.contains("format v5\n"),
        "the version builds need to read: {text}"
    );
    assert!(text.contains(&format!("--devices {}", join(&a))), "{text}");
    // Nothing but non-members: the answer is no.
    let out = ectable(&["examine", stray.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
}

#[test]
fn devices_come_from_ectable_devices_but_format_needs_them_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = array(dir.path(), "d");
    let all = join(&d);
    let run = |args: &[&str]| ectable_env(args, &[("ECTABLE_DEVICES", &all)]);
    let out = run(&["get", "--table", "t", "--key", "a"]);
    assert_eq!(
        (code(&out), out.stdout.as_slice()),
        (0, &b"1"[..]),
        "{}",
        stderr(&out)
    );
    assert_eq!(code(&run(&["status"])), 0);
    // format never takes its devices from the environment.
    let out = run(&["format", "--k", "4", "--m", "2", "--yes"]);
    assert_eq!(code(&out), 64);
    assert_eq!(code(&run(&["get", "--table", "t", "--key", "a"])), 0);
}
