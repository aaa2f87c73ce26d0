//! `ectable scrub` checks the superblock copies and the segment headers as well as the
//! stripes: a superblock copy overwritten by stray data (a misdirected write) is named with
//! its slot and copy, a spoiled segment header is counted on its device, the plain scrub
//! exits 1 and writes nothing but its finding (into the health blocks), `scrub --repair` mends both, and a scrub after that is clean.

mod cli_common;
use cli_common::*;
use std::io::{Read, Seek, SeekFrom, Write};

/// Both copies gone while the array was closed: `status` says DEGRADED, lists the device
/// as holding no valid superblock and names the command that rebuilds it in place; that
/// command brings the array back to ONLINE with every row.
#[test]
fn a_device_without_superblocks_is_named_and_rebuilt_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let p = format6(dir.path(), "nb");
    let all = join(&p);
    let load = [
        "--devices",
        &all,
        "--table",
        "t",
        "--rows",
        "500",
        "--value-size",
        "2000",
    ];
    let out = ectable(&[&["load"], &load[..]].concat());
    assert!(out.status.success(), "load: {}", stderr(&out));
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&p[3]).unwrap();
        f.write_all(&[0x3c; 8192]).unwrap();
    }
    let out = ectable(&["status", "--devices", &all]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let path = p[3].display().to_string();
    let command = format!("ectable replace --old {path} --old-slot 3 --new {path}");
    assert!(
        text.contains("DEGRADED")
            && text.contains("no valid superblock")
            && text.contains(&command),
        "{text}"
    );
    let out = ectable(&["status", "--devices", &all, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["blank"], serde_json::json!([path]), "{json}");
    let out = ectable(&[
        "replace",
        "--devices",
        &all,
        "--old",
        &path,
        "--old-slot",
        "3",
        "--new",
        &path,
        "--yes",
    ]);
    assert!(out.status.success(), "replace: {}", stderr(&out));
    let out = ectable(&["status", "--devices", &all]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("state: ONLINE"), "{text}");
    // The scan: line reports the rebuild, as zpool's reports the last resilver.
    assert!(text.contains("scan: rebuild of slot 3 rebuilt "), "{text}");
    let out = ectable(&["status", "--devices", &all, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["last_rebuild"]["slot"], 3, "{json}");
    assert_eq!(json["last_rebuild"]["kind"], "rebuild", "{json}");
    let out = ectable(&[&["verify"], &load[..]].concat());
    assert!(out.status.success(), "verify: {}", stderr(&out));
}

#[test]
fn scrub_names_and_mends_a_bad_superblock_copy() {
    let dir = tempfile::tempdir().unwrap();
    let p = format6(dir.path(), "sb");
    let all = join(&p);
    load_rows(&all, "300", "1000");
    // Copy 1 (4096..8192) of the third device: stray bytes, as a misdirected write leaves.
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&p[2]).unwrap();
        f.seek(SeekFrom::Start(4096)).unwrap();
        f.write_all(&[0x5a; 4096]).unwrap();
    }
    // The segment header of the fifth device's first device segment (1 MiB on).
    {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p[4])
            .unwrap();
        let mut h = vec![0u8; 4096];
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.read_exact(&mut h).unwrap();
        assert!(
            ectable_engine::format::SegmentHeader::decode(&h).is_ok(),
            "the first device segment of the fifth device is not in use"
        );
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(&[0xa5; 4096]).unwrap();
    }
    // A read-only status reads both copies and says one is bad (before, ONLINE with exit
    // 0 until a scrub ran), writing nothing.
    let before = digest_but_health_blocks(&p);
    let out = ectable(&["status", "--devices", &all]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("state: ONLINE, but 1 superblock copy(ies) are bad")
            && text.contains("errors: slot 2 (")
            && text.contains("superblock copy 1: not a superblock"),
        "{text}"
    );
    let out = ectable(&["status", "--json", "--devices", &all]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["bad_superblocks"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "BAD_SUPERBLOCK"),
        "{v}"
    );
    assert_eq!(digest_but_health_blocks(&p), before, "status wrote");
    // A plain scrub writes nothing but what it found into the health blocks (for `status`).
    let out = ectable(&["scrub", "--devices", &all]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("slot 2") && text.contains("superblock copy 1"),
        "{text}"
    );
    let json = ectable(&["scrub", "--json", "--devices", &all]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["devices"][4]["bad_segment_headers"], 1, "{v}");
    assert_eq!(v["devices"][2]["bad_superblocks"], 1, "{v}");
    // Nobody writes here: nothing is put down to a writer's reuse.
    assert_eq!(v["reused_by_writer"], serde_json::json!([]), "{v}");
    assert_eq!(
        digest_but_health_blocks(&p),
        before,
        "a scrub without --repair wrote"
    );

    let out = ectable(&["scrub", "--repair", "--devices", &all]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // (A writable open mends what it finds before the scrub starts: the superblocks when its
    // session starts, the segment headers of the log it replayed; the clean scrub below
    // shows both mended.)
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    let out = ectable(&["scrub", "--json", "--devices", &all]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["bad_superblocks"].as_array().map(Vec::len),
        Some(0),
        "{v}"
    );
    let out = ectable(&["status", "--devices", &all]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["bad_superblocks"] == 0 && d["bad_segment_headers"] == 0),
        "{v}"
    );
}
