//! Backups do not pin space (docs/fault-model.md, "a backup horizon pins every segment a
//! checkpoint covered").
//!
//! `auto_backups_after_every_round`: the cron use the docs recommend, scaled down. An RS(4,2)
//! array of 1 MiB segments holds about a third of its usable capacity live; 50 rounds each
//! overwrite a random third of the rows in one process, then take
//! `backup --auto DIR` in another. Every round must succeed (no "no space left"), and at the
//! end the newest chain verifies and restores to exactly the array's rows.
//!
//! `clean_after_a_backup`: right after a full backup, a fresh `ectable clean` frees the
//! garbage the overwrites before it left; after more overwrites, `clean` says the backup
//! horizon holds the rest (how many segments, how much) and names what releases it, as
//! `status` does; `backup-clear-horizon` releases it, and the next `backup --auto` is a full
//! one. Rows overwritten twice after a backup, by two processes, are still in the next
//! incremental (the dead segments a checkpoint covers are not freed at open while the
//! horizon needs them).

mod backup_common;
use backup_common::*;
use std::path::{Path, PathBuf};

const ROWS: u64 = 6000;
const VALUE: &str = "4K";

fn load(devices: &str, rows: u64, seed: u64) {
    ok(&[
        "load",
        "--devices",
        devices,
        "--table",
        "t",
        "--rows",
        &rows.to_string(),
        "--value-size",
        VALUE,
        "--seed",
        &seed.to_string(),
    ]);
}

fn auto(devices: &str, dir: &Path) -> serde_json::Value {
    json(&ok(&[
        "backup",
        "--devices",
        devices,
        "--auto",
        s(dir),
        "--json",
    ]))
}

/// The files of the newest chain in `dir`, in order.
fn newest_chain(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ectb"))
        .collect();
    names.sort();
    let last = names.last().expect("a backup").clone();
    let chain = &last[..5];
    names
        .into_iter()
        .filter(|n| n.starts_with(chain))
        .map(|n| dir.join(n))
        .collect()
}

#[test]
fn auto_backups_after_every_round() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = format(dir, "a", 6, 4, 2, "24M");
    let da = join(&a);
    let backups = dir.join("backups");
    std::fs::create_dir(&backups).unwrap();
    load(&da, ROWS, 0);
    auto(&da, &backups);
    let mut kinds = std::collections::BTreeMap::new();
    for round in 1..=50u64 {
        // A third of the rows, picked at random: the segments written before are left partly
        // live (rarely wholly dead), so only cleaning gives their space back.
        let import = dir.join("round.jsonl");
        let lines: String = (0..ROWS)
            .filter(|i| picked(*i, round))
            .map(|i| {
                let v = format!("r{round}-{i}-");
                format!("{{\"key\": \"row{i:012}\", \"value\": \"{v:x<4000}\"}}\n")
            })
            .collect();
        std::fs::write(&import, lines).unwrap();
        let out = ectable(&["import", "--devices", &da, "--table", "t", s(&import)]);
        assert!(
            out.status.success(),
            "round {round}: the overwrites failed: {}\nstatus:\n{}",
            String::from_utf8_lossy(&out.stderr),
            ok(&["status", "--devices", &da])
        );
        let out = ectable(&["backup", "--devices", &da, "--auto", s(&backups), "--json"]);
        assert!(
            out.status.success(),
            "round {round}: backup --auto failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let b = json(&String::from_utf8_lossy(&out.stdout));
        // The array kept the history every incremental needed.
        let reason = b["reason"].as_str().unwrap_or_default();
        assert!(
            !reason.contains("no longer keeps the history"),
            "round {round}: {b}"
        );
        *kinds
            .entry(b["kind"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    eprintln!("backups taken: {kinds:?}");
    assert!(
        kinds.get("incremental").copied().unwrap_or(0) >= 15,
        "{kinds:?}"
    );
    let chain = newest_chain(&backups);
    let list = join(&chain);
    ok(&["backup-verify", &list]);
    let r = devs(dir, "r", 6);
    let dr = join(&r);
    ok(&[
        "restore",
        "--segment-size",
        "1M",
        "--devices",
        &dr,
        "--k",
        "4",
        "--m",
        "2",
        "--from",
        &list,
        "--create-size",
        "24M",
    ]);
    assert_eq!(export(&dr, &["t"]), export(&da, &["t"]));
    let last = (1..=50)
        .rev()
        .find(|r| picked(7, *r))
        .expect("row 7 overwritten");
    let row = ok(&[
        "get",
        "--devices",
        &dr,
        "--table",
        "t",
        "--key",
        "row000000000007",
    ]);
    assert!(row.starts_with(&format!("r{last}-7-x")), "{row}");
}

/// Whether round `round` overwrites row `i` (about a third of the rows).
fn picked(i: u64, round: u64) -> bool {
    ((i ^ (round << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40).is_multiple_of(3)
}

fn clean_json(devices: &str) -> serde_json::Value {
    json(&ok(&["clean", "--devices", devices, "--json"]))
}

/// Overwrites every other row with a small value: every segment of the load is left about
/// half garbage (nothing dead, so only cleaning gives it back).
fn overwrite_even_rows(devices: &str, dir: &Path) {
    let import = dir.join("even.jsonl");
    let lines: String = (0..ROWS)
        .step_by(2)
        .map(|i| format!("{{\"key\": \"row{i:012}\", \"value\": \"v{i}\"}}\n"))
        .collect();
    std::fs::write(&import, lines).unwrap();
    ok(&["import", "--devices", devices, "--table", "t", s(&import)]);
}

#[test]
fn clean_after_a_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = format(dir, "a", 6, 4, 2, "24M");
    let da = join(&a);
    let backups = dir.join("backups");
    std::fs::create_dir(&backups).unwrap();
    load(&da, ROWS, 0);
    overwrite_even_rows(&da, dir);
    let b = auto(&da, &backups);
    assert_eq!(b["kind"].as_str(), Some("full"), "{b}");
    // The garbage the overwrites left is older than the backup: a new process cleans it.
    let r = clean_json(&da);
    assert!(
        r["segments_cleaned"].as_u64().unwrap() >= 4
            && r["free_segments"].as_u64() > r["free_segments_before"].as_u64(),
        "a clean right after a full backup reclaimed nothing: {r}"
    );

    // History after the backup: held, and said so.
    load(&da, ROWS / 2, 2);
    load(&da, ROWS / 2, 3);
    let r = clean_json(&da);
    let held = &r["held_by_backup_horizon"];
    assert!(held["segments"].as_u64().unwrap() >= 3, "{r}");
    assert!(held["bytes"].as_u64().unwrap() > 8 << 20, "{r}");
    let text = ok(&["clean", "--devices", &da]);
    assert!(
        text.contains("held by the backup horizon") && text.contains("backup-clear-horizon"),
        "{text}"
    );
    let st = ok(&["status", "--devices", &da]);
    assert!(st.contains("held by the backup horizon"), "{st}");
    let stj = json(&ok(&["status", "--devices", &da, "--json"]));
    assert!(
        stj["capacity"]["held_by_backup_horizon_segments"]
            .as_u64()
            .unwrap()
            >= 3,
        "{stj}"
    );
    // What the horizon holds is no room for new data until it is released: the room left
    // counts it as taken, and the room line says so.
    let cap = &stj["capacity"];
    let held_bytes = cap["held_by_backup_horizon_bytes"].as_u64().unwrap();
    assert_eq!(
        cap["room_bytes"].as_u64().unwrap(),
        cap["fillable_bytes"].as_u64().unwrap() - cap["live_bytes"].as_u64().unwrap() - held_bytes,
        "{stj}"
    );
    assert!(st.contains("the backup horizon holds fill"), "{st}");

    // Releasing it: the garbage goes, and the next backup starts a new chain.
    let out = ok(&["backup-clear-horizon", "--devices", &da]);
    assert!(out.contains("cleared the horizon"), "{out}");
    let r = clean_json(&da);
    assert!(r["segments_freed"].as_u64().unwrap() >= 3, "{r}");
    assert_eq!(r["held_by_backup_horizon"]["segments"].as_u64(), Some(0));
    assert_eq!(r["held_by_backup_horizon"]["horizon_lsn"].as_u64(), None);
    let b = auto(&da, &backups);
    assert_eq!(b["kind"].as_str(), Some("full"), "{b}");
    // Nothing to clean: the reason is given.
    let text = ok(&["clean", "--devices", &da]);
    assert!(
        text.contains("0 segments cleaned") && text.contains("nothing worth cleaning"),
        "{text}"
    );

    // Rows written twice after the backup, by two processes: the first version's segments
    // are dead when the next process opens, yet an incremental needs them.
    load(&da, ROWS / 2, 4);
    load(&da, ROWS / 2, 5);
    ok(&["clean", "--devices", &da]);
    let b = auto(&da, &backups);
    assert_eq!(b["kind"].as_str(), Some("incremental"), "{b}");
    assert_eq!(b["puts"].as_u64(), Some(ROWS), "{b}");
}
