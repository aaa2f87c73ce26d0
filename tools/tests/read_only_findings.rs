//! What a read-only command finds reaches `status`: a plain `scrub` (read-only, so that its
//! open mends nothing it is to find) that finds bad chunks leaves `status` unhealthy (exit 1,
//! the errors line and the action naming `scrub --repair`) until a `scrub --repair`; a
//! `verify` that had to rebuild chunks from parity names the device on stderr and its
//! checksum errors are counted in `status`; with another writer holding the array nothing
//! is recorded and the command says so. Before, `status` said "No known data errors" and
//! exited 0 after a plain scrub had found five bad chunks.

mod cli_common;
use cli_common::*;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the first data segment of a member starts, and its header's length: garbage past
/// them lands in chunks of the first stripes.
const FIRST_SEGMENT: u64 = 1 << 20;

/// Six formatted files holding 300 rows of 1,000 bytes, and garbage over the bodies of the
/// fourth member's first two chunks (the stripes that hold the rows).
fn damaged_array(dir: &Path) -> (Vec<PathBuf>, String) {
    let p = format6(dir, "f");
    let all = join(&p);
    load_rows(&all, "300", "1000");
    let mut f = std::fs::OpenOptions::new().write(true).open(&p[3]).unwrap();
    f.seek(SeekFrom::Start(FIRST_SEGMENT + 8192)).unwrap();
    f.write_all(&[0x5a; 128 * 1024]).unwrap();
    (p, all)
}

/// `ectable verify` of the first `rows` rows of 1,000 bytes in table "t".
fn verify(all: &str, rows: &str) -> std::process::Output {
    ectable(&[
        "verify",
        "--devices",
        all,
        "--table",
        "t",
        "--rows",
        rows,
        "--value-size",
        "1000",
    ])
}

/// A member's checksum errors over all sessions, as `status --json` gives them.
fn lifetime_checksum(v: &serde_json::Value, slot: usize) -> u64 {
    v["devices"][slot]["lifetime_errors"]["checksum"]
        .as_u64()
        .unwrap_or_else(|| panic!("no lifetime checksum count for slot {slot}: {v}"))
}

fn status_json(all: &str) -> serde_json::Value {
    let out = ectable(&["status", "--devices", all, "--json"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_plain_scrub_that_finds_bad_chunks_leaves_status_unhealthy_until_a_repair() {
    let dir = tempfile::tempdir().unwrap();
    let (p, all) = damaged_array(dir.path());
    let before = digest_but_health_blocks(&p);
    let out = ectable(&["scrub", "--devices", &all]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        digest_but_health_blocks(&p),
        before,
        "a scrub without --repair wrote more than the health blocks"
    );
    let out = ectable(&["status", "--devices", &all]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("but the last scrub found bad chunks")
            && text.contains("errors: the last scrub")
            && text.contains("run 'ectable scrub --repair'")
            && !text.contains("No known data errors"),
        "{text}"
    );
    let v = status_json(&all);
    let codes: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["code"].as_str())
        .collect();
    assert!(codes.contains(&"SCRUB_FOUND_BAD_CHUNKS"), "{v}");
    assert!(v["last_scrub"]["bad_chunks"].as_u64().unwrap() > 0, "{v}");
    assert!(lifetime_checksum(&v, 3) > 0, "{v}");

    let out = ectable(&["scrub", "--repair", "--devices", &all]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = ectable(&["status", "--devices", &all]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("No known data errors"), "{text}");
}

#[test]
fn a_read_that_rebuilds_around_bad_chunks_names_the_device_and_status_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let (p, all) = damaged_array(dir.path());
    let out = verify(&all, "300");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let path = p[3].display().to_string();
    assert!(
        err.contains("warning: ")
            && err.contains(&format!("{path} (slot 3: "))
            && err.contains("recorded for 'status'")
            && err.contains("scrub --repair"),
        "{err}"
    );
    let v = status_json(&all);
    assert!(lifetime_checksum(&v, 3) > 0, "{v}");
    // The other members met no error and their counters stay at zero.
    for s in [0, 1, 2, 4, 5] {
        assert_eq!(lifetime_checksum(&v, s), 0, "{v}");
    }
    // A read of a healthy array writes nothing at all.
    let clean = tempfile::tempdir().unwrap();
    let q = format6(clean.path(), "c");
    let all = join(&q);
    load_rows(&all, "100", "1000");
    let before = digest(&q);
    let out = verify(&all, "100");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    assert_eq!(digest(&q), before, "a clean read-only command wrote");
}

#[test]
fn with_a_writer_holding_the_array_a_plain_scrub_says_its_result_is_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (p, all) = damaged_array(dir.path());
    let io = ectable_tools::open_devices(&p, None, false, ectable_devices::BackendKind::Psync)
        .expect("open for writing");
    let writer = Arc::new(
        ectable_engine::Engine::open(io, ectable_engine::EngineOptions::default()).unwrap(),
    );
    writer.put("t", b"held", b"by this writer").unwrap();
    let out = ectable(&["scrub", "--devices", &all]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}\n{err}", stdout(&out));
    assert!(
        err.contains("not recorded for 'status'") && err.contains("in use"),
        "{err}"
    );
    writer.close().unwrap();
}
