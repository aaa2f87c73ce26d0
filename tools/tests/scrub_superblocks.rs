//! `ectable scrub` checks the superblock copies as well as the stripes: a copy overwritten
//! by stray data (a misdirected write) is named with its slot and copy, the plain scrub exits
//! 1 and writes nothing, `scrub --repair` mends it, and a scrub after that is clean.

mod cli_common;
use cli_common::*;
use std::io::{Seek, SeekFrom, Write};

#[test]
fn scrub_names_and_mends_a_bad_superblock_copy() {
    let dir = tempfile::tempdir().unwrap();
    let p = format6(dir.path(), "sb");
    let all = join(&p);
    let out = ectable(&[
        "load",
        "--devices",
        &all,
        "--table",
        "t",
        "--rows",
        "300",
        "--value-size",
        "1000",
    ]);
    assert!(out.status.success(), "load: {}", stderr(&out));
    // Copy 1 (4096..8192) of the third device: stray bytes, as a misdirected write leaves.
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&p[2]).unwrap();
        f.seek(SeekFrom::Start(4096)).unwrap();
        f.write_all(&[0x5a; 4096]).unwrap();
    }
    let before = digest(&p);
    let out = ectable(&["scrub", "--devices", &all]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("slot 2") && text.contains("superblock copy 1"),
        "{text}"
    );
    assert_eq!(digest(&p), before, "a scrub without --repair wrote");

    let out = ectable(&["scrub", "--repair", "--devices", &all]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = ectable(&["scrub", "--json", "--devices", &all]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["bad_superblocks"].as_array().map(Vec::len),
        Some(0),
        "{v}"
    );
    assert!(
        v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["bad_superblocks"] == 0),
        "{v}"
    );
}
