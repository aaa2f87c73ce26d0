//! `ectable export` streams: rows go to the file as they are read (Engine::scan_iter), so
//! the process stays far smaller than the table it exports (it used to build the whole
//! output in memory first). The peak resident size of the export process is read from the
//! kernel (wait4's rusage) and compared with the size of what it wrote.

mod cli_common;
use cli_common::*;
use std::process::Command;

#[test]
fn export_of_a_table_larger_than_its_own_memory_streams() {
    let dir = tempfile::tempdir().unwrap();
    let p = devs(dir.path(), "d", 6);
    let list = join(&p);
    let out = ectable(&[
        "format",
        "--devices",
        &list,
        "--k",
        "4",
        "--m",
        "2",
        "--create-size",
        "160M",
        "--yes",
    ]);
    assert!(out.status.success(), "format: {}", stderr(&out));
    let rows = 150_000u64;
    let out = ectable(&[
        "load",
        "--devices",
        &list,
        "--table",
        "big",
        "--rows",
        &rows.to_string(),
        "--value-size",
        "1K",
    ]);
    assert!(out.status.success(), "load: {}", stderr(&out));

    let file = dir.path().join("big.jsonl");
    // Reaped by wait4 below, which also gives its peak resident size.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_ectable"))
        .args(["export", "--devices", &list, "--table", "big"])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run export");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not yet waited for; status and usage are valid pointers
    // for the duration of the call.
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(got, pid, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "export failed: {status}"
    );
    let peak = usage.ru_maxrss as u64 * 1024;
    let written = std::fs::metadata(&file).unwrap().len();
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count() as u64, rows, "every row exported");
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!(first.get("key").is_some() && first.get("value").is_some());
    eprintln!(
        "export wrote {} MiB with a peak resident size of {} MiB",
        written >> 20,
        peak >> 20
    );
    assert!(
        written > 150 << 20,
        "the export is larger than the bound below"
    );
    assert!(
        peak < written / 2,
        "the export process peaked at {peak} bytes for {written} bytes of output"
    );
    assert!(
        !dir.path().join("big.jsonl.partial").exists(),
        "the partial file was renamed"
    );
    // A FILE that is not a regular file is written in place, never replaced by a rename.
    let out = ectable(&["export", "--devices", &list, "--table", "big", "/dev/null"]);
    assert!(
        out.status.success(),
        "export to /dev/null: {}",
        stderr(&out)
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device(),
        "/dev/null is still a device"
    );
    // An output that fills up (/dev/full: every write fails with ENOSPC) is named in the
    // error, with the code for an output that cannot be written; before, the error was the
    // bare "No space left on device (os error 28)".
    let out = ectable(&["export", "--devices", &list, "--table", "big", "/dev/full"]);
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("writing the export to /dev/full: No space left on device"),
        "{}",
        stderr(&out)
    );
}
