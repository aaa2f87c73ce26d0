//! Backups and restores through the CLI, on file-backed devices.
//!
//! `geometry_change`: an RS(4,2) array (deterministic rows, a typed table, a large value) is
//! backed up fully and twice incrementally (overwrites, deletes, new rows); the chain is
//! restored as RS(3,3) and as 3-way replication (k = 1, m = 2), to its end and to LSNs inside
//! it, and every row is verified (`ectable verify`, exports compared with the source's at
//! the backup's moment, deleted keys absent, the typed table and its schema back). Restore
//! refuses, writing nothing: devices of an array without `--force`, an until-LSN outside
//! the chain, a geometry whose stripes cannot hold the largest value; `backup --to` refuses
//! an existing file.
//!
//! `auto_policy`: `backup --auto` takes a full backup, then incrementals until
//! `--full-every`, then a new chain; a large incremental (over `--max-chain-percent` of the
//! full) makes the next one full; old chains are pruned to `--keep-chains`; stale partial
//! files are removed; when the array no longer keeps a chain's history (a backup outside the
//! directory moved the horizon), an incremental after it is refused with "take a full
//! backup", and `--auto` takes a full one instead. The kept chains verify and restore.
//!
//! `a_backup_of_a_degraded_array_says_so`: a backup around a member not in service is whole
//! and warns that the array is not healthy.

mod backup_common;
use backup_common::*;
use std::path::PathBuf;

fn verify_rows(devices: &str, rows: &str, seed: &str) {
    ok(&[
        "verify",
        "--devices",
        devices,
        "--table",
        "t",
        "--rows",
        rows,
        "--value-size",
        "1K",
        "--seed",
        seed,
    ]);
}

fn backup_json(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    json(&ok(&a))
}

#[test]
fn geometry_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = format(dir, "a", 6, 4, 2, "32M");
    let da = join(&a);
    ok(&[
        "load",
        "--devices",
        &da,
        "--table",
        "t",
        "--rows",
        "3000",
        "--value-size",
        "1K",
        "--seed",
        "1",
    ]);
    ok(&[
        "table",
        "create",
        "--devices",
        &da,
        "--table",
        "users",
        "--pk",
        "id:int64",
    ]);
    ok(&[
        "put",
        "--devices",
        &da,
        "--table",
        "users",
        "--key",
        r#"{"id": 1}"#,
        "--value",
        r#"{"name": "ann"}"#,
    ]);
    let big = "x".repeat(20_000);
    ok(&[
        "put",
        "--devices",
        &da,
        "--table",
        "big",
        "--key",
        "k",
        "--value",
        &big,
    ]);
    let (full, i1, i2) = (
        dir.join("full.ectb"),
        dir.join("i1.ectb"),
        dir.join("i2.ectb"),
    );
    let m0 = backup_json(&["backup", "--devices", &da, "--to", s(&full)]);
    assert_eq!(m0["kind"], "full");
    assert_eq!(m0["records"], 3003, "{m0}"); // 3000 rows, a schema, a user, a big value
    let l0 = m0["end_lsn"].as_u64().unwrap();
    // Overwrite every row: an incremental of 3000 puts.
    ok(&[
        "load",
        "--devices",
        &da,
        "--table",
        "t",
        "--rows",
        "3000",
        "--value-size",
        "1K",
        "--seed",
        "2",
    ]);
    let m1 = backup_json(&[
        "backup",
        "--devices",
        &da,
        "--to",
        s(&i1),
        "--incremental-from",
        s(&full),
    ]);
    assert_eq!(
        (
            m1["kind"].as_str(),
            m1["puts"].as_u64(),
            m1["deletes"].as_u64()
        ),
        (Some("incremental"), Some(3000), Some(0))
    );
    assert_eq!(m1["start_lsn"].as_u64(), Some(l0));
    let l1 = m1["end_lsn"].as_u64().unwrap();
    // Deletes, a new row, a new typed row.
    for k in ["row000000000010", "row000000000011", "row000000002999"] {
        ok(&["delete", "--devices", &da, "--table", "t", "--key", k]);
    }
    ok(&[
        "put",
        "--devices",
        &da,
        "--table",
        "t",
        "--key",
        "new",
        "--value",
        "row",
    ]);
    ok(&[
        "put",
        "--devices",
        &da,
        "--table",
        "users",
        "--key",
        r#"{"id": 2}"#,
        "--value",
        r#"{"name": "bob"}"#,
    ]);
    let m2 = backup_json(&[
        "backup",
        "--devices",
        &da,
        "--to",
        s(&i2),
        "--incremental-from",
        s(&i1),
    ]);
    assert_eq!(
        (m2["puts"].as_u64(), m2["deletes"].as_u64()),
        (Some(2), Some(3)),
        "{m2}"
    );
    let l2 = m2["end_lsn"].as_u64().unwrap();
    let i1_size = std::fs::metadata(&i1).unwrap().len();
    let i2_size = std::fs::metadata(&i2).unwrap().len();
    assert!(
        i2_size < 2048 && i2_size * 100 < i1_size,
        "an incremental grows with its changes: {i2_size} vs {i1_size}"
    );
    let tables = ["t", "big"];
    let source_end = export(&da, &tables);
    let users_end = ok(&["export", "--devices", &da, "--table", "users", "-"]);
    // An existing file is never overwritten.
    let out = ectable(&["backup", "--devices", &da, "--to", s(&full)]);
    assert!(error_line(&out).contains("already exists"));
    let chain = join(&[full.clone(), i1.clone(), i2.clone()]);
    let v = json(&ok(&["backup-verify", &chain, "--json"]));
    assert_eq!(
        (v["full_lsn"].as_u64(), v["end_lsn"].as_u64()),
        (Some(l0), Some(l2))
    );

    // RS(3,3), up to the first incremental: every row is seed 2's.
    let r33 = devs(dir, "r33_", 6);
    let d33 = join(&r33);
    let said = ok(&[
        "restore",
        "--segment-size",
        "1M",
        "--devices",
        &d33,
        "--k",
        "3",
        "--m",
        "3",
        "--from",
        &chain,
        "--until-lsn",
        &l1.to_string(),
        "--create-size",
        "32M",
        "--inline-values",
    ]);
    // The summary counts the files the restore read, not the chain given.
    assert!(
        said.contains("from 2 of the 3 file(s) given") && said.contains("from 1 incremental(s)"),
        "{said}"
    );
    verify_rows(&d33, "3000", "2");
    // (status exits 1 when a device is merely slow, which a busy machine can make it)
    let st = json(&String::from_utf8_lossy(
        &ectable(&["status", "--devices", &d33, "--json"]).stdout,
    ));
    assert_eq!(
        (
            st["layout"]["data_shards"].as_u64(),
            st["layout"]["parity_shards"].as_u64()
        ),
        (Some(3), Some(3)),
        "{}",
        st["layout"]
    );
    assert_eq!(
        (
            st["layout"]["format_version"].as_u64(),
            st["layout"]["values_placed"].as_bool()
        ),
        (Some(6), Some(false)),
        "restore --inline-values: {}",
        st["layout"]
    );
    assert!(ok(&["table", "list", "--devices", &d33]).contains("users"));

    // 3-way replication, to the end: deletes applied, the typed table and the big value back.
    let r12 = devs(dir, "r12_", 3);
    let d12 = join(&r12);
    let out = json(&ok(&[
        "restore",
        "--segment-size",
        "1M",
        "--devices",
        &d12,
        "--k",
        "1",
        "--m",
        "2",
        "--from",
        &chain,
        "--create-size",
        "32M",
        "--json",
    ]));
    assert_eq!(
        (out["rows"].as_u64(), out["deletes"].as_u64()),
        (Some(3003), Some(3)),
        "{out}"
    );
    assert_eq!(
        export(&d12, &tables),
        source_end,
        "the restored rows differ from the source's"
    );
    assert_eq!(
        ok(&["export", "--devices", &d12, "--table", "users", "-"]),
        users_end
    );
    assert!(!ectable(&[
        "get",
        "--devices",
        &d12,
        "--table",
        "t",
        "--key",
        "row000000000010"
    ])
    .status
    .success());
    assert!(ok(&[
        "get",
        "--devices",
        &d12,
        "--table",
        "users",
        "--key",
        r#"{"id": 2}"#
    ])
    .contains("bob"));
    ok(&["scrub", "--devices", &d12]);

    // Refusals write nothing.
    let before = digest(&r33);
    let out = ectable(&[
        "restore",
        "--segment-size",
        "1M",
        "--devices",
        &d33,
        "--k",
        "3",
        "--m",
        "3",
        "--from",
        &chain,
    ]);
    assert!(error_line(&out).contains("use --force"));
    for until in [l0 - 1, l2 + 1] {
        let out = ectable(&[
            "restore",
            "--segment-size",
            "1M",
            "--devices",
            &d33,
            "--k",
            "3",
            "--m",
            "3",
            "--from",
            &chain,
            "--until-lsn",
            &until.to_string(),
            "--force",
            "--yes",
        ]);
        assert!(error_line(&out).contains("outside the chain"));
    }
    let out = ectable(&[
        "restore",
        "--segment-size",
        "1M",
        "--devices",
        &d33,
        "--k",
        "1",
        "--m",
        "2",
        "--chunk-size",
        "16K",
        "--from",
        &chain,
        "--force",
        "--yes",
    ]);
    assert!(error_line(&out).contains("holds a record of"));
    assert_eq!(
        digest(&r33),
        before,
        "a refused restore changed the devices"
    );
    let fresh = devs(dir, "fresh", 3);
    let out = ectable(&[
        "restore",
        "--segment-size",
        "1M",
        "--devices",
        &join(&fresh),
        "--k",
        "2",
        "--m",
        "1",
        "--from",
        &chain,
        "--until-lsn",
        "1",
        "--create-size",
        "32M",
    ]);
    error_line(&out);
    assert!(
        fresh.iter().all(|p| !p.exists()),
        "a refused restore created files"
    );

    // With --force, back to the full backup's state: every row is seed 1's.
    ok(&[
        "restore",
        "--segment-size",
        "1M",
        "--devices",
        &d33,
        "--k",
        "3",
        "--m",
        "3",
        "--from",
        &chain,
        "--until-lsn",
        &l0.to_string(),
        "--force",
        "--yes",
    ]);
    verify_rows(&d33, "3000", "1");
    assert!(
        ectable(&[
            "get",
            "--devices",
            &d33,
            "--table",
            "users",
            "--key",
            r#"{"id": 2}"#
        ])
        .status
        .code()
            != Some(0)
    );
}

fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn auto_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = format(dir, "a", 6, 4, 2, "32M");
    let da = join(&a);
    ok(&[
        "load",
        "--devices",
        &da,
        "--table",
        "t",
        "--rows",
        "2000",
        "--value-size",
        "1K",
        "--seed",
        "1",
    ]);
    let bdir = dir.join("backups");
    let auto = |full_every: &str| {
        backup_json(&[
            "backup",
            "--devices",
            &da,
            "--auto",
            s(&bdir),
            "--full-every",
            full_every,
            "--keep-chains",
            "2",
        ])
    };
    let mut n = 0;
    let mut change = || {
        n += 1;
        ok(&[
            "put",
            "--devices",
            &da,
            "--table",
            "t",
            "--key",
            &format!("x{n}"),
            "--value",
            "v",
        ]);
    };
    let expect = [
        ("c0000-0000-full.ectb", "no backup chain"),
        ("c0000-0001-incr.ectb", "incremental number 1"),
        ("c0000-0002-incr.ectb", "incremental number 2"),
        ("c0001-0000-full.ectb", "holds 2 incrementals"),
        ("c0001-0001-incr.ectb", "incremental number 1"),
    ];
    let mut names: Vec<String> = Vec::new();
    for (name, reason) in expect {
        let v = auto("2");
        assert!(v["file"].as_str().unwrap().ends_with(name), "{v}");
        assert!(v["reason"].as_str().unwrap().contains(reason), "{v}");
        assert_eq!(v["pruned"].as_array().map(Vec::len), Some(0));
        names.push(name.to_string());
        assert_eq!(listing(&bdir), names);
        change();
    }
    // A large change: this incremental is over 50% of the full backup, so the next is full
    // (well before --full-every), and the oldest chain goes.
    ok(&[
        "load",
        "--devices",
        &da,
        "--table",
        "t",
        "--rows",
        "2000",
        "--value-size",
        "1K",
        "--seed",
        "2",
    ]);
    let v = auto("5");
    assert!(
        v["file"]
            .as_str()
            .unwrap()
            .ends_with("c0001-0002-incr.ectb"),
        "{v}"
    );
    change();
    std::fs::write(bdir.join("c0009-0000-full.ectb.partial"), b"killed").unwrap();
    let v = auto("5");
    assert!(
        v["file"]
            .as_str()
            .unwrap()
            .ends_with("c0002-0000-full.ectb"),
        "{v}"
    );
    assert!(v["reason"].as_str().unwrap().contains("exceed 50%"), "{v}");
    assert_eq!(v["pruned"].as_array().map(Vec::len), Some(3), "{v}");
    assert_eq!(
        listing(&bdir),
        [
            "c0001-0000-full.ectb",
            "c0001-0001-incr.ectb",
            "c0001-0002-incr.ectb",
            "c0002-0000-full.ectb"
        ]
    );
    let chain1 = join(&[
        bdir.join("c0001-0000-full.ectb"),
        bdir.join("c0001-0001-incr.ectb"),
        bdir.join("c0001-0002-incr.ectb"),
    ]);
    ok(&["backup-verify", &chain1]);

    // The older chain's history is gone: an incremental after it is refused.
    let x = dir.join("x.ectb");
    let out = ectable(&[
        "backup",
        "--devices",
        &da,
        "--to",
        s(&x),
        "--incremental-from",
        s(&bdir.join("c0001-0002-incr.ectb")),
    ]);
    let line = error_line(&out);
    assert!(line.contains("take a full backup"), "{line}");
    assert!(!x.exists() && !dir.join("x.ectb.partial").exists());
    // A full backup elsewhere moves the horizon past the newest chain: --auto starts anew.
    change();
    ok(&[
        "backup",
        "--devices",
        &da,
        "--to",
        s(&dir.join("elsewhere.ectb")),
    ]);
    change();
    let v = auto("5");
    assert!(
        v["file"]
            .as_str()
            .unwrap()
            .ends_with("c0003-0000-full.ectb"),
        "{v}"
    );
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("no longer keeps the history"),
        "{v}"
    );
    assert_eq!(
        listing(&bdir),
        ["c0002-0000-full.ectb", "c0003-0000-full.ectb"]
    );
    change();
    let v = auto("5");
    assert!(
        v["file"]
            .as_str()
            .unwrap()
            .ends_with("c0003-0001-incr.ectb"),
        "{v}"
    );
    let source = export(&da, &["t"]);
    let chain3: Vec<PathBuf> = vec![
        bdir.join("c0003-0000-full.ectb"),
        bdir.join("c0003-0001-incr.ectb"),
    ];
    let r = devs(dir, "r", 3);
    ok(&[
        "restore",
        "--segment-size",
        "1M",
        "--devices",
        &join(&r),
        "--k",
        "2",
        "--m",
        "1",
        "--from",
        &join(&chain3),
        "--create-size",
        "32M",
    ]);
    assert_eq!(export(&join(&r), &["t"]), source);
}

/// A backup that reads around a member not in service (left out here; the same when one
/// fails while the backup runs) is whole, exits 0, and says on stderr (and in `--json`) that
/// the array is not healthy: a cron job's output is often the only place an operator looks.
/// It said nothing before.
#[test]
fn a_backup_of_a_degraded_array_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = format(dir, "a", 6, 4, 2, "32M");
    let all = join(&a);
    ok(&[
        "load",
        "--devices",
        &all,
        "--table",
        "t",
        "--rows",
        "500",
        "--value-size",
        "1K",
    ]);
    let healthy = ectable(&["backup", "--devices", &all, "--to", s(&dir.join("b0"))]);
    assert!(healthy.status.success(), "{}", error_line(&healthy));
    let err = String::from_utf8_lossy(&healthy.stderr).to_string();
    assert!(!err.contains("warning"), "{err}");

    let five = join(&a[..5]);
    let out = ectable(&["backup", "--devices", &five, "--to", s(&dir.join("b1"))]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "backup: warning: the backup is whole, but the array is DEGRADED: slot 5 REMOVED"
        ),
        "{err}"
    );
    let v = backup_json(&["backup", "--devices", &five, "--to", s(&dir.join("b2"))]);
    assert!(
        v["array_not_healthy"]
            .as_str()
            .is_some_and(|t| t.starts_with("DEGRADED: slot 5 REMOVED")),
        "{v}"
    );
    // The backup taken around the missing member restores every row.
    let r = devs(dir, "r", 6);
    let restored = join(&r);
    ok(&[
        "restore",
        "--from",
        s(&dir.join("b1")),
        "--devices",
        &restored,
        "--k",
        "4",
        "--m",
        "2",
        "--create-size",
        "32M",
        "--yes",
    ]);
    ok(&[
        "verify",
        "--devices",
        &restored,
        "--table",
        "t",
        "--rows",
        "500",
        "--value-size",
        "1K",
    ]);
}

/// Two arrays backed up into one directory (two nodes given the same --backup-dir): before,
/// each `--auto` run took the other array's newest chain for "not a chain of this array",
/// started a new full chain every time, and pruned the other array's chains as old ones;
/// with --keep-chains 1 the second array's first backup deleted the first array's only
/// backup. Now each array extends and prunes its own chains, and names the other's as left
/// alone.
#[test]
fn two_arrays_in_one_backup_directory_keep_their_own_chains() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let da = join(&format(dir, "a", 3, 2, 1, "32M"));
    let db = join(&format(dir, "b", 3, 2, 1, "32M"));
    let bdir = dir.join("backups");
    let put = |d: &str, k: &str| {
        ok(&[
            "put",
            "--devices",
            d,
            "--table",
            "t",
            "--key",
            k,
            "--value",
            "v",
        ]);
    };
    let auto = |d: &str| {
        backup_json(&[
            "backup",
            "--devices",
            d,
            "--auto",
            s(&bdir),
            "--keep-chains",
            "1",
            "--max-chain-percent",
            "1000",
        ])
    };
    for round in 0..2 {
        for d in [&da, &db] {
            put(d, &format!("k{round}"));
            let v = auto(d);
            let reason = v["reason"].as_str().unwrap_or_default();
            assert_eq!(v["pruned"], serde_json::json!([]), "{v}");
            if round == 1 {
                assert!(reason.starts_with("incremental number 1 of chain"), "{v}");
            }
            if d == &db || round == 1 {
                assert!(reason.contains("of another array, left alone"), "{v}");
            }
        }
    }
    assert_eq!(
        listing(&bdir),
        [
            "c0000-0000-full.ectb",
            "c0000-0001-incr.ectb",
            "c0001-0000-full.ectb",
            "c0001-0001-incr.ectb"
        ]
    );
    // Each array's chain restores its rows.
    for (chain, d) in [("c0000", &da), ("c0001", &db)] {
        let from = format!(
            "{},{}",
            bdir.join(format!("{chain}-0000-full.ectb")).display(),
            bdir.join(format!("{chain}-0001-incr.ectb")).display()
        );
        let r = join(&devs(dir, &format!("r{chain}"), 3));
        ok(&[
            "restore",
            "--devices",
            &r,
            "--k",
            "2",
            "--m",
            "1",
            "--from",
            &from,
            "--create-size",
            "32M",
            "--yes",
        ]);
        assert_eq!(export(&r, &["t"]), export(d, &["t"]), "{chain}");
    }
}

/// Two `--auto` runs into one directory at once (a slow cron backup still running when the
/// next starts, or two arrays sharing the directory): before, the second removed the
/// first's unfinished `.partial` file as stale while the first still wrote it. Now the
/// second is refused at once (exit 75) and changes nothing; the first completes.
#[test]
fn a_second_auto_backup_into_a_busy_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let da = join(&format(dir, "a", 3, 2, 1, "64M"));
    let db = join(&format(dir, "b", 3, 2, 1, "32M"));
    ok(&[
        "load",
        "--devices",
        &da,
        "--table",
        "t",
        "--rows",
        "3000",
        "--value-size",
        "1K",
    ]);
    ok(&[
        "put",
        "--devices",
        &db,
        "--table",
        "t",
        "--key",
        "k",
        "--value",
        "v",
    ]);
    let bdir = dir.join("backups");
    let slow = {
        let (da, bdir) = (da.clone(), bdir.clone());
        std::thread::spawn(move || {
            ectable(&[
                "backup",
                "--devices",
                &da,
                "--auto",
                s(&bdir),
                "--rate",
                "512K",
            ])
        })
    };
    let partial = bdir.join("c0000-0000-full.ectb.partial");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !partial.exists() {
        assert!(
            std::time::Instant::now() < until,
            "the first backup did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = ectable(&["backup", "--devices", &db, "--auto", s(&bdir)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(
        err.contains("another backup --auto is writing into this directory"),
        "{err}"
    );
    assert!(
        partial.exists(),
        "the second run removed the first one's unfinished file"
    );
    let first = slow.join().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // Done: the second array's backup goes in beside it.
    ok(&["backup", "--devices", &db, "--auto", s(&bdir)]);
    assert_eq!(
        listing(&bdir),
        ["c0000-0000-full.ectb", "c0001-0000-full.ectb"]
    );
}

/// `--to` a directory and `--auto` a file, the two options swapped: each named with the
/// other option to use (exit 64), nothing made. `--auto FILE` used to end in "File exists
/// (os error 17)".
#[test]
fn to_a_directory_and_auto_a_file_are_refused_naming_the_other_option() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let da = join(&format(dir, "a", 3, 2, 1, "32M"));
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    for (args, says) in [
        (
            ["--to", s(dir)],
            "is a directory; --to takes the name of a new backup file",
        ),
        (
            ["--auto", s(&file)],
            "is not a directory; --auto takes a directory",
        ),
    ] {
        let out = ectable(&[&["backup", "--devices", &da][..], &args[..]].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}
