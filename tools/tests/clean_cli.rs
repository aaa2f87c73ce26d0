//! `ectable clean` and the space report of `ectable status`: after a second load overwrites
//! every row, `clean` frees segments and the garbage shrinks, every row still verifies; on
//! devices that are not an array it fails with one line and changes nothing.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ectable(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ectable"))
        .args(args)
        .output()
        .expect("run ectable")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn devices(dir: &Path) -> (Vec<PathBuf>, String) {
    let p: Vec<PathBuf> = (0..6).map(|i| dir.join(format!("d{i}.img"))).collect();
    let list = p
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    (p, list)
}

/// RS(4,2) over six 16 MiB files, 1 MiB segments.
fn format_small(list: &str) {
    ok(
        ectable(&[
            "format",
            "--devices",
            list,
            "--k",
            "4",
            "--m",
            "2",
            "--segment-size",
            "1M",
            "--create-size",
            "16M",
            "--yes",
        ]),
        "format",
    );
}

fn status(list: &str) -> Value {
    let out = ectable(&["status", "--devices", list, "--json"]);
    serde_json::from_slice(&out.stdout).expect("status --json")
}

#[test]
fn clean_frees_what_overwrites_left_and_status_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, list) = devices(dir.path());
    format_small(&list);
    ok(
        ectable(&[
            "load",
            "--devices",
            &list,
            "--table",
            "t",
            "--rows",
            "8000",
            "--value-size",
            "1K",
            "--seed",
            "1",
        ]),
        "load",
    );
    // Overwrite every other row: every segment of the load is left half garbage.
    let import = dir.path().join("half.jsonl");
    let lines: String = (0..8000)
        .step_by(2)
        .map(|i| format!("{{\"key\": \"row{i:012}\", \"value\": \"v{i}\"}}\n"))
        .collect();
    std::fs::write(&import, lines).unwrap();
    ok(
        ectable(&[
            "import",
            "--devices",
            &list,
            "--table",
            "t",
            import.to_str().unwrap(),
        ]),
        "import",
    );
    let before = status(&list);
    let garbage_before = before["capacity"]["garbage_bytes"].as_u64().unwrap();
    assert!(
        garbage_before > 3 << 20,
        "the import should leave half the loaded rows as garbage: {before}"
    );
    let out = ok(ectable(&["clean", "--devices", &list, "--json"]), "clean");
    let report: Value = serde_json::from_str(&out).expect("clean --json");
    assert!(report["segments_freed"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["free_segments"].as_u64() > report["free_segments_before"].as_u64(),
        "{report}"
    );
    let after = status(&list);
    let garbage_after = after["capacity"]["garbage_bytes"].as_u64().unwrap();
    assert!(
        garbage_after < garbage_before / 2,
        "garbage {garbage_before} -> {garbage_after}"
    );
    assert!(after["checkpoint_lsn"].as_u64().unwrap() > 0);
    assert_eq!(after["keys"].as_u64(), Some(8000));
    // The text report names the space figures.
    let text = ok(ectable(&["status", "--devices", &list]), "status");
    assert!(
        text.contains(" live, ") && text.contains(" garbage; "),
        "{text}"
    );
    // Every row reads back: the imported ones and the loaded ones the cleaner moved.
    for i in [0u64, 2, 7998] {
        let out = ok(
            ectable(&[
                "get",
                "--devices",
                &list,
                "--table",
                "t",
                "--key",
                &format!("row{i:012}"),
            ]),
            "get",
        );
        assert_eq!(out.trim_end(), format!("v{i}"));
    }
    let out = ectable(&[
        "scan",
        "--devices",
        &list,
        "--table",
        "t",
        "--json",
        "--limit",
        "100000",
    ]);
    let rows = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(rows, 8000);
}

#[test]
fn clean_on_devices_that_are_not_an_array_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (paths, list) = devices(dir.path());
    for p in &paths {
        std::fs::write(p, vec![7u8; 4 << 20]).unwrap();
    }
    let out = ectable(&["clean", "--devices", &list]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("ectable: error: "), "{stderr}");
    for p in &paths {
        assert_eq!(
            std::fs::read(p).unwrap(),
            vec![7u8; 4 << 20],
            "{p:?} changed"
        );
    }
}

/// `status` says how much more live data fits, and says so plainly once the array is nearly
/// full (a `room:` line, an action, the `SPACE_LOW` check), before writes fail; on an empty
/// array it warns of nothing.
#[test]
fn status_says_how_much_fits_and_warns_when_nearly_full() {
    let dir = tempfile::tempdir().unwrap();
    let (_, list) = devices(dir.path());
    format_small(&list);
    let empty = status(&list);
    let room = empty["capacity"]["room_bytes"].as_u64().unwrap();
    let fillable = empty["capacity"]["fillable_bytes"].as_u64().unwrap();
    let usable = empty["capacity"]["usable_bytes"].as_u64().unwrap();
    assert!(
        room == fillable && room > usable / 2 && room < usable,
        "{empty}"
    );
    assert_eq!(empty["checks"], serde_json::json!([]), "{empty}");
    let text = ok(ectable(&["status", "--devices", &list]), "status");
    assert!(
        text.contains("   room: ") && !text.contains("action:"),
        "{text}"
    );
    // Load more than fits: the load fails for lack of space (exit 73).
    let out = ectable(&[
        "load",
        "--devices",
        &list,
        "--table",
        "t",
        "--rows",
        "200000",
        "--value-size",
        "1K",
    ]);
    assert_eq!(
        out.status.code(),
        Some(73),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let full = status(&list);
    let left = full["capacity"]["room_bytes"].as_u64().unwrap();
    assert!(left < room / 20, "{left} of {room} left: {full}");
    let checks = full["checks"].as_array().unwrap();
    assert!(
        checks.iter().any(|c| c["code"] == "SPACE_LOW"),
        "no SPACE_LOW check on a full array: {full}"
    );
    let out = ectable(&["status", "--devices", &list]);
    // Full is not degraded: the exit code stays 0.
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" action: The live data fills ") && text.contains("ectable restore"),
        "{text}"
    );
}
