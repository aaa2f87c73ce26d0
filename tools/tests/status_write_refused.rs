//! `status` of an array whose member refuses writes while the array is closed (a loop device
//! set read-only with `blockdev --setro`): a read-only open writes nothing, so nothing fails
//! the member, yet the first writer would. Status must not say healthy: exit 1, the device's
//! note and an action name the cause, `--json` gives `write_refused`; reads still work; once
//! the device is writable again, status is healthy. Needs root for loop devices (skips with
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
