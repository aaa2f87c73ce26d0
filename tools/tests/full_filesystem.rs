//! File-backed members on a file system that fills up (docs/fault-model.md, "More than m at
//! once"): six sparse files on a small tmpfs, loaded until the tmpfs is full. Every member
//! gets the same share of the writes, so they run out of room together: more than m fail
//! at once with ENOSPC. The load must fail with one clear error naming the cause and no
//! panic; once the operator makes room, the array must open again (members whose failure
//! was recorded while writes went on are resynced by `rebuild`), every row acknowledged
//! before the load reads back, new loads work and a scrub finds nothing.
//!
//! Mounting a tmpfs needs root: the test skips with a reason otherwise (with
//! ECTABLE_REQUIRE_LOOP=1 it must run).

mod cli_common;

use cli_common::{array_on_small_tmpfs, ectable, tmpfs_available, Tmpfs};
use std::process::Output;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: Output, what: &str) -> Output {
    assert!(out.status.success(), "{what} failed: {}", text(&out));
    out
}

/// `ectable format --preallocate` of RS(4,2) on `devs`, created at `size`, 1 MiB segments.
fn format_preallocated(devs: &str, size: &str) -> Output {
    ectable(&[
        "format",
        "--devices",
        devs,
        "--k",
        "4",
        "--m",
        "2",
        "--create-size",
        size,
        "--segment-size",
        "1M",
        "--preallocate",
        "--yes",
    ])
}

/// Bytes the files in `dir` have allocated.
fn allocated_in(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().blocks() * 512)
        .sum()
}

#[test]
fn members_on_a_full_file_system_fail_together_and_come_back_with_room() {
    if !tmpfs_available("members_on_a_full_file_system_fail_together_and_come_back_with_room") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (fs, devices) = array_on_small_tmpfs(dir.path());
    let dev = ["--devices", devices.as_str()];
    let with = |args: &[&str]| -> Vec<String> {
        dev.iter()
            .chain(args.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |cmd: &str, args: &[&str]| -> Output {
        let mut all = vec![cmd.to_string()];
        all.extend(with(args));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        ectable(&refs)
    };

    let early = ["--table", "early", "--rows", "1000", "--value-size", "4096"];
    ok(run("load", &early), "the first load");

    // 80 MB of rows: the tmpfs fills on every member at once.
    let out = run(
        "load",
        &["--table", "big", "--rows", "20000", "--value-size", "4096"],
    );
    let said = text(&out);
    assert!(!out.status.success(), "a load beyond the room succeeded");
    assert!(!said.contains("panicked"), "panic: {said}");
    assert!(
        said.contains("No space left on device"),
        "the error does not name the cause: {said}"
    );
    let last = said
        .lines()
        .rfind(|l| l.starts_with("ectable: error"))
        .unwrap_or("");
    eprintln!("the full load ended with: {last}");

    // While the file system is still full, a status must not say all is well.
    let out = run("status", &[]);
    let said = text(&out);
    eprintln!("status while full:\n{said}");
    assert_eq!(out.status.code(), Some(1), "status exit code while full");
    assert!(
        said.contains("new writes fail") && said.contains("sparse"),
        "status does not say the file system is full:\n{said}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&run("status", &["--json"]).stdout).expect("status --json");
    assert_eq!(json["backing"][0]["full"], true, "{json}");
    assert_eq!(
        json["backing"][0]["slots"].as_array().map(Vec::len),
        Some(6),
        "{json}"
    );
    // The members' failed writes are kept in their health blocks (written at close, also
    // for the members that failed), so status shows them after the session.
    let write_errors: u64 = json["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["lifetime_errors"]["write"].as_u64().unwrap_or(0))
        .sum();
    assert!(write_errors >= 3, "failed writes not counted: {json}");

    // A backup is what the operator wants first, and it needs no write: it is taken whole
    // (only its record as the base of incremental backups cannot be written).
    let backup = dir.path().join("before-room.ectb");
    let b = backup.to_str().expect("utf-8 path");
    let out = run("backup", &["--to", b]);
    assert!(
        out.status.success(),
        "backup of a full array: {}",
        text(&out)
    );
    ok(ectable(&["backup-verify", b]), "backup-verify");

    // The operator makes room: the array opens again.
    fs.resize("512M");
    let out = run("status", &[]);
    let said = text(&out);
    assert!(
        !said.contains("UNAVAILABLE"),
        "with room again the array is still unavailable:\n{said}"
    );
    ok(
        run("rebuild", &[]),
        "rebuild (resync of members that failed first)",
    );
    let out = ok(run("status", &[]), "status after the resync");
    let said = text(&out);
    assert!(
        said.contains("state: ONLINE") && !said.contains("new writes fail"),
        "not every member back in service, or still full:\n{said}"
    );
    ok(run("verify", &early), "verify of the rows loaded before");
    let after = ["--table", "after", "--rows", "2000", "--value-size", "4096"];
    ok(run("load", &after), "a load after the room came back");
    ok(run("verify", &after), "verify of the new rows");
    ok(run("scrub", &[]), "scrub");
}

/// `format --preallocate`: refused up front (exit 73, no file left behind, nothing on the
/// file system used) when the files do not fit; when they do, every block is taken at
/// format time, so filling the array ends in the array's own "no space left on the array",
/// with the file system's use unchanged and every member online.
#[test]
fn preallocated_members_cannot_run_out_of_room_under_the_array() {
    if !tmpfs_available("preallocated_members_cannot_run_out_of_room_under_the_array") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fs = cli_common::Tmpfs::mount(&dir.path().join("fs"), "40M");
    let devs = (0..6)
        .map(|i| fs.0.join(format!("d{i}")).display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let format = |size: &str| format_preallocated(&devs, size);
    // Bytes the files on the tmpfs hold.
    let used = || allocated_in(&fs.0);
    // 6 x 32 MiB on 40 MiB: refused before anything is written, the files removed again.
    let out = format("32M");
    assert_eq!(out.status.code(), Some(73), "{}", text(&out));
    assert!(text(&out).contains("cannot preallocate"), "{}", text(&out));
    assert_eq!(
        std::fs::read_dir(&fs.0).unwrap().count(),
        0,
        "files left behind"
    );
    assert_eq!(used(), 0, "the refused format left blocks in use");
    // 6 x 6 MiB fits: all of it taken now.
    ok(format("6M"), "format with room");
    let after_format = used();
    assert!(
        after_format >= 36 << 20,
        "only {after_format} bytes allocated"
    );
    let out = ectable(&[
        "load",
        "--devices",
        &devs,
        "--table",
        "t",
        "--rows",
        "100000",
        "--value-size",
        "1000",
    ]);
    assert!(
        !out.status.success(),
        "a load larger than the array succeeded"
    );
    assert!(
        text(&out).contains("no space left on the array"),
        "the array did not run out first: {}",
        text(&out)
    );
    assert_eq!(
        used(),
        after_format,
        "the file system's use moved after format"
    );
    let out = ectable(&["status", "--devices", &devs]);
    assert_eq!(out.status.code(), Some(0), "status: {}", text(&out));
}

/// `--preallocate` for the devices that join an array after its format: a hot spare
/// (`add-spare`), a replacement (`replace`) and the members of a restored array (`restore`).
/// Each is refused up front (exit 73, the file it created removed, the file system's use
/// unchanged, the array as it was) when its file does not fit, and takes every block of its
/// file when it does.
#[test]
fn spares_replacements_and_restores_preallocate_too() {
    if !tmpfs_available("spares_replacements_and_restores_preallocate_too") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let fs = cli_common::Tmpfs::mount(&dir.path().join("fs"), "64M");
    let on_fs = |name: &str| fs.0.join(name).display().to_string();
    let devs = (0..6)
        .map(|i| on_fs(&format!("d{i}")))
        .collect::<Vec<_>>()
        .join(",");
    let used = || allocated_in(&fs.0);
    let blocks_of = |p: &str| std::fs::metadata(p).unwrap().blocks() * 512;
    ok(format_preallocated(&devs, "6M"), "format");
    let rows = ["--table", "t", "--rows", "300", "--value-size", "1000"];
    let with_devs = |cmd: &str, devs: &str, more: &[&str]| {
        let mut args = vec![cmd, "--devices", devs];
        args.extend_from_slice(more);
        ectable(&args)
    };
    ok(with_devs("load", &devs, &rows), "load");
    let refused = |out: Output, what: &str, file: &str, before: u64| {
        assert_eq!(out.status.code(), Some(73), "{what}: {}", text(&out));
        assert!(
            text(&out).contains("cannot preallocate"),
            "{what}: {}",
            text(&out)
        );
        assert!(!std::path::Path::new(file).exists(), "{what}: {file} left");
        assert_eq!(used(), before, "{what}: the file system's use moved");
    };

    // A spare that does not fit, then one that does.
    let spare = on_fs("s0");
    let before = used();
    let out = with_devs(
        "add-spare",
        &devs,
        &["--spare", &spare, "--create-size", "40M", "--preallocate"],
    );
    refused(out, "add-spare of 40M", &spare, before);
    ok(
        with_devs(
            "add-spare",
            &devs,
            &["--spare", &spare, "--create-size", "6M", "--preallocate"],
        ),
        "add-spare of 6M",
    );
    assert!(blocks_of(&spare) >= 6 << 20, "the spare is not allocated");

    // A member lost for good (its file deleted): a replacement that does not fit, then one
    // that does.
    let dead = on_fs("d5");
    std::fs::remove_file(&dead).unwrap();
    let new = on_fs("n5");
    let replace_onto = |size: &str| {
        with_devs(
            "replace",
            &devs,
            &[
                "--old",
                &dead,
                "--new",
                &new,
                "--create-size",
                size,
                "--preallocate",
                "--yes",
            ],
        )
    };
    let before = used();
    refused(replace_onto("40M"), "replace onto 40M", &new, before);
    let out = with_devs("status", &devs, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "status after the refused replace: {}",
        text(&out)
    );
    ok(replace_onto("6M"), "replace onto 6M");
    assert!(
        blocks_of(&new) >= 6 << 20,
        "the replacement is not allocated"
    );
    let devs = devs.replace(&dead, &new);
    ok(
        with_devs("verify", &devs, &rows),
        "verify after the replace",
    );
    // The hot spare listed too: a spare the array names that is not among the devices
    // given makes status exit 1 (SPARE_MISSING).
    let out = with_devs("status", &format!("{devs},{spare}"), &[]);
    assert_eq!(out.status.code(), Some(0), "status: {}", text(&out));

    // A restore onto six new files that do not fit, then onto six that do (after the old
    // array's files are gone).
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    ok(
        with_devs(
            "backup",
            &devs,
            &["--to", &backups.join("full").display().to_string()],
        ),
        "backup",
    );
    let restored = (0..6)
        .map(|i| on_fs(&format!("r{i}")))
        .collect::<Vec<_>>()
        .join(",");
    let restore = |size: &str| {
        ectable(&[
            "restore",
            "--devices",
            &restored,
            "--k",
            "4",
            "--m",
            "2",
            "--from",
            &backups.join("full").display().to_string(),
            "--create-size",
            size,
            "--segment-size",
            "1M",
            "--preallocate",
            "--yes",
        ])
    };
    let before = used();
    refused(
        restore("6M"),
        "restore of 6 x 6M beside the array",
        &on_fs("r0"),
        before,
    );
    for p in devs.split(',').chain(std::iter::once(spare.as_str())) {
        std::fs::remove_file(p).unwrap();
    }
    ok(restore("6M"), "restore with room");
    assert!(used() >= 36 << 20, "the restored members are not allocated");
    ok(
        with_devs("verify", &restored, &rows),
        "verify of the restore",
    );
}

/// A full backup into a directory whose file system lacks the room for the live data is
/// refused before anything is read or written (exit 73, both sizes named, no file left),
/// rather than after writing as much as fits; with room it goes through.
#[test]
fn a_full_backup_is_refused_up_front_where_it_cannot_fit() {
    if !tmpfs_available("a_full_backup_is_refused_up_front_where_it_cannot_fit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let devs = (0..6)
        .map(|i| dir.path().join(format!("d{i}")).display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    ok(format_preallocated(&devs, "32M"), "format");
    ok(
        ectable(&[
            "load",
            "--devices",
            &devs,
            "--table",
            "t",
            "--rows",
            "20000",
            "--value-size",
            "1K",
        ]),
        "load",
    );
    let small = Tmpfs::mount(&dir.path().join("small"), "4M");
    let to = small.0.join("b.ectb").display().to_string();
    for args in [
        vec!["--auto", small.0.to_str().unwrap()],
        vec!["--to", to.as_str()],
    ] {
        let mut all = vec!["backup", "--devices", &devs];
        all.extend(args.iter().copied());
        let out = ectable(&all);
        assert_eq!(out.status.code(), Some(73), "{}", text(&out));
        assert!(
            text(&out).contains("needs about") && text(&out).contains("MiB free"),
            "{}",
            text(&out)
        );
        let left: Vec<_> = std::fs::read_dir(&small.0).unwrap().collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
    small.resize("64M");
    ok(
        ectable(&[
            "backup",
            "--devices",
            &devs,
            "--auto",
            small.0.to_str().unwrap(),
        ]),
        "backup with room",
    );
}
