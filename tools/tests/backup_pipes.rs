//! `backup --to -` writes the backup to stdout, `backup-verify -` and `restore --from -` read
//! one from stdin, so that `ectable backup --to - | zstd | ssh ...` works; a backup cut short
//! on the way is refused.

mod cli_common;
use cli_common::*;

#[test]
fn a_backup_goes_through_pipes_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let d = format6(dir.path(), "d");
    let all = join(&d);
    load_rows(&all, "3000", "1K");
    // To stdout: the backup's bytes only; the summary goes to stderr.
    let out = ectable(&["backup", "--devices", &all, "--to", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let backup = out.stdout.clone();
    assert!(backup.starts_with(b"ECTBKUP1"), "not a backup on stdout");
    assert!(stderr(&out).contains("full backup"), "{}", stderr(&out));
    // The same bytes as a backup to a file would hold: backup-verify of the file agrees.
    let file = dir.path().join("b.ectb");
    std::fs::write(&file, &backup).unwrap();
    let out = ectable(&["backup-verify", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // From stdin.
    let out = ectable_stdin(&["backup-verify", "-"], &backup);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = devs(dir.path(), "r", 5);
    let rall = join(&r);
    let out = ectable_stdin(
        &[
            "restore",
            "--devices",
            &rall,
            "--k",
            "3",
            "--m",
            "2",
            "--from",
            "-",
            "--create-size",
            "64M",
            "--yes",
        ],
        &backup,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ectable(&[
        "verify",
        "--devices",
        &rall,
        "--table",
        "t",
        "--rows",
        "3000",
        "--value-size",
        "1K",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Cut short on the way: verify says no (1), restore refuses and writes nothing.
    let cut = &backup[..backup.len() / 2];
    let out = ectable_stdin(&["backup-verify", "-"], cut);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("ectable: error: ") && err.contains("incomplete"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let fresh = devs(dir.path(), "f", 5);
    let out = ectable_stdin(
        &[
            "restore",
            "--devices",
            &join(&fresh),
            "--k",
            "3",
            "--m",
            "2",
            "--from",
            "-",
            "--create-size",
            "64M",
            "--yes",
        ],
        cut,
    );
    assert!(!out.status.success());
    assert!(
        fresh.iter().all(|p| !p.exists()),
        "a refused restore created devices"
    );
    // Two backups cannot both come from stdin.
    let out = ectable_stdin(&["backup-verify", "-,-"], &backup);
    assert_eq!(out.status.code(), Some(64));
}

/// A backup read from a named pipe (`mkfifo`, or a shell's `<(zstd -dc b.ectb.zst)`) as a
/// file of the chain: before, it was taken for an empty file ("the file is 0 bytes long").
/// Now it is read whole first, as stdin is, and messages name it as given.
#[test]
fn a_backup_in_a_named_pipe_is_read_as_stdin_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = format6(dir.path(), "d");
    let all = join(&d);
    load_rows(&all, "2000", "1K");
    let full = dir.path().join("full.ectb");
    let out = ectable(&["backup", "--devices", &all, "--to", full.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&full).unwrap();
    let fifo = dir.path().join("pipe");
    mkfifo(&fifo);
    // The writer end, fed from a thread (its open waits for the reader).
    let feed = |data: Vec<u8>| {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            let _ = w.write_all(&data);
        })
    };
    let f = fifo.to_str().unwrap();
    let writer = feed(bytes.clone());
    let out = ectable(&["backup-verify", f]);
    writer.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!("{f}: full backup")),
        "{}",
        stdout(&out)
    );
    // Cut short: named as given, exit 1.
    let writer = feed(bytes[..bytes.len() / 2].to_vec());
    let out = ectable(&["backup-verify", f]);
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(&format!("ectable: error: {f}: ")),
        "{}",
        stderr(&out)
    );
    // And restored from it.
    let r = devs(dir.path(), "r", 3);
    let writer = feed(bytes);
    let out = ectable(&[
        "restore",
        "--devices",
        &join(&r),
        "--k",
        "2",
        "--m",
        "1",
        "--from",
        f,
        "--create-size",
        "64M",
        "--yes",
    ]);
    writer.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ectable(&[
        "verify",
        "--devices",
        &join(&r),
        "--table",
        "t",
        "--rows",
        "2000",
        "--value-size",
        "1K",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}
