//! `status` of an array whose member refuses writes while the array is closed (a loop device
//! set read-only with `blockdev --setro`): a read-only open writes nothing, so nothing fails
//! the member, yet the first writer would. Status must not say healthy: exit 1, the device's
//! note and an action name the cause, `--json` gives `write_refused`; reads still work; once
//! the device is writable again, status is healthy. The same for a hot spare, which is no
//! spare while it refuses writes. Needs root for loop devices (skips with
//! a reason otherwise; with ECTABLE_REQUIRE_LOOP=1 it must run).

mod cli_common;
use cli_common::*;
use std::process::Command;

/// `blockdev --setro` on a loop device, undone on drop (also when the test fails), before
/// the loop device itself is detached.
struct ReadOnly(String);

impl ReadOnly {
    fn set(dev: &str) -> ReadOnly {
        let st = Command::new("blockdev")
            .args(["--setro", dev])
            .status()
            .expect("run blockdev");
        assert!(st.success(), "blockdev --setro {dev}");
        ReadOnly(dev.to_string())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("blockdev").args(["--setrw", &self.0]).status();
    }
}

#[test]
fn a_member_set_read_only_while_closed_is_not_called_healthy() {
    if !loop_devices_available("a_member_set_read_only_while_closed_is_not_called_healthy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let loops: Vec<Loop> = (0..6)
        .map(|i| Loop::attach(&dir.path().join(format!("b{i}"))))
        .collect();
    let all = loops
        .iter()
        .map(|l| l.path.clone())
        .collect::<Vec<_>>()
        .join(",");
    let out = ectable(&["format", "--devices", &all, "--k", "4", "--m", "2", "--yes"]);
    assert!(out.status.success(), "format: {}", stderr(&out));
    load_rows(&all, "200", "1000");
    let out = ectable(&["status", "--devices", &all]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let ro = ReadOnly::set(&loops[2].path);
    let out = ectable(&["status", "--devices", &all]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("refuse writes"), "{text}");
    assert!(
        text.contains(&format!("blockdev --setrw {}", loops[2].path)),
        "{text}"
    );
    let out = ectable(&["status", "--devices", &all, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["devices"][2]["write_refused"].is_string(), "{json}");
    assert!(json["devices"][1]["write_refused"].is_null(), "{json}");
    // Reads work as before.
    let out = ectable(&[
        "verify",
        "--devices",
        &all,
        "--table",
        "t",
        "--rows",
        "200",
        "--value-size",
        "1000",
    ]);
    assert!(out.status.success(), "verify: {}", stderr(&out));

    drop(ro);
    let out = ectable(&["status", "--devices", &all]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

/// A hot spare whose device refuses writes (set read-only while the array was closed) is no
/// spare: the replacement that counts on it fails at its first write. `status` must say so
/// (exit 1, the spare's note, an action, a `--json` check) and must not propose it for a lost
/// member's slot; `replace` and `add-spare` onto a device that refuses writes are refused
/// before anything is written, naming the cause, and change nothing.
#[test]
fn a_hot_spare_that_refuses_writes_is_not_counted_as_one() {
    if !loop_devices_available("a_hot_spare_that_refuses_writes_is_not_counted_as_one") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let loops: Vec<Loop> = (0..8)
        .map(|i| Loop::attach(&dir.path().join(format!("b{i}"))))
        .collect();
    let members = loops[..6]
        .iter()
        .map(|l| l.path.clone())
        .collect::<Vec<_>>()
        .join(",");
    let spare = loops[6].path.clone();
    let blank = loops[7].path.clone();
    let all = format!("{members},{spare}");
    let out = ectable(&[
        "format",
        "--devices",
        &members,
        "--spares",
        &spare,
        "--k",
        "4",
        "--m",
        "2",
        "--yes",
    ]);
    assert!(out.status.success(), "format: {}", stderr(&out));
    load_rows(&all, "200", "1000");
    let out = ectable(&["status", "--devices", &all]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let ro = ReadOnly::set(&spare);
    let out = ectable(&["status", "--devices", &all]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let row = text
        .lines()
        .find(|l| l.contains(&spare) && l.contains("SPARE"))
        .unwrap_or_else(|| panic!("no spare row: {text}"));
    assert!(row.contains("refuses writes"), "{row}");
    assert!(
        text.contains(&format!("blockdev --setrw {spare}")),
        "{text}"
    );
    let out = ectable(&["status", "--devices", &all, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = json["checks"].as_array().expect("checks").clone();
    assert!(
        checks.iter().any(|c| c["code"] == "SPARE_WRITE_REFUSED"),
        "{json}"
    );
    assert_eq!(
        json["spares_write_refused"][0]["path"],
        spare.as_str(),
        "{json}"
    );

    // Refused before anything is written, by name and cause; the array is as it was.
    let paths: Vec<std::path::PathBuf> = loops.iter().map(|l| l.path.clone().into()).collect();
    let before = digest_but_health_blocks(&paths);
    let ro_blank = ReadOnly::set(&blank);
    let out = ectable(&["add-spare", "--devices", &members, "--spare", &blank]);
    assert_eq!(out.status.code(), Some(77), "add-spare: {}", stderr(&out));
    assert_clean_error(&out, &[&blank, "refuses writes", "nothing changed"]);
    drop(ro_blank);
    assert_eq!(digest_but_health_blocks(&paths), before, "add-spare wrote");

    // A member lost: the action must not propose the spare that refuses writes, and a
    // replace onto it is refused as the add-spare was.
    let old = loops[2].path.clone();
    let survivors = loops
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2 && *i != 7)
        .map(|(_, l)| l.path.clone())
        .collect::<Vec<_>>()
        .join(",");
    let out = ectable(&["status", "--devices", &survivors]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        !text.contains(&format!("--new {spare}")),
        "a spare that refuses writes proposed for the lost slot: {text}"
    );
    let replace = || {
        ectable(&[
            "replace",
            "--devices",
            &survivors,
            "--old",
            &old,
            "--old-slot",
            "2",
            "--new",
            &spare,
            "--yes",
        ])
    };
    let out = replace();
    assert_eq!(out.status.code(), Some(77), "replace: {}", stderr(&out));
    assert_clean_error(&out, &[&spare, "refuses writes", "nothing changed"]);

    // Once it takes writes again, it is a spare again, and the replacement goes through.
    drop(ro);
    let out = ectable(&["status", "--devices", &all]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = replace();
    assert!(out.status.success(), "replace: {}", stderr(&out));
    let out = ectable(&[
        "verify",
        "--devices",
        &survivors,
        "--table",
        "t",
        "--rows",
        "200",
        "--value-size",
        "1000",
    ]);
    assert!(out.status.success(), "verify: {}", stderr(&out));
}
