//! Smaller holes of the command line: an import that runs out of space part-way says how
//! many rows it applied (and exactly those are in the table); `format --segment-size 0` is
//! refused (0 is not "the default"); a chunk size the segment size is not a multiple of gets
//! an error naming that rule, the numbers and a size that works; a replaced device given back
//! is called replaced, not "another array's", and `add-spare --force` takes it back as the
//! hot spare (a member never); a small load reports the device bytes its stripes took; a block copy of a member is named as a copy; a hot spare that is gone is reported and a new one takes its place. Refusals leave the devices byte-identical.

mod cli_common;
use cli_common::*;

fn format_ok(args: &[&str]) {
    let out = ectable(args);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Formats six small files as RS(4,2) with 16 segments of 64 KiB per device: about 3 MiB
/// of records.
fn format_small(list: &str) {
    format_ok(&[
        "format",
        "--devices",
        list,
        "--k",
        "4",
        "--m",
        "2",
        "--chunk-size",
        "4K",
        "--segment-size",
        "64K",
        "--create-size",
        "2M",
    ]);
}

/// Six small members (`format_small`) and a 2 MiB hot spare `spare.img` added: the
/// members, their list, the spare.
fn array_with_a_spare(
    dir: &std::path::Path,
) -> (Vec<std::path::PathBuf>, String, std::path::PathBuf) {
    let p = devs(dir, "d", 6);
    let all = join(&p);
    format_small(&all);
    let spare = dir.join("spare.img");
    std::fs::File::create(&spare)
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    let out = add_spare(&all, &spare, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    (p, all, spare)
}

/// `ectable add-spare --devices LIST --spare SPARE EXTRA...`.
fn add_spare(list: &str, spare: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["add-spare", "--devices", list, "--spare"];
    args.push(spare.to_str().unwrap());
    args.extend_from_slice(extra);
    ectable(&args)
}

/// `status --json` of LIST: the exit code and the JSON.
fn status_json(list: &str) -> (Option<i32>, serde_json::Value) {
    let out = ectable(&["status", "--devices", list, "--json"]);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
    (out.status.code(), v)
}

fn put_ok(devices: &str, table: &str, key: &str, value: &str) {
    let out = ectable(&[
        "put",
        "--devices",
        devices,
        "--table",
        table,
        "--key",
        key,
        "--value",
        value,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn import_out_of_space_says_how_many_rows_it_applied() {
    let dir = tempfile::tempdir().unwrap();
    let p = devs(dir.path(), "d", 6);
    let list = join(&p);
    format_small(&list);
    let total = 2000;
    let file = dir.path().join("rows.jsonl");
    let mut text = String::new();
    for i in 0..total {
        let v = format!("{i:06}").repeat(500);
        text.push_str(&format!("{{\"key\": \"row{i:06}\", \"value\": \"{v}\"}}\n"));
    }
    std::fs::write(&file, text).unwrap();
    let out = ectable(&[
        "import",
        "--devices",
        &list,
        "--table",
        "t",
        file.to_str().unwrap(),
    ]);
    assert_clean_error(
        &out,
        &["import stopped after ", "no space left on the array"],
    );
    let err = stderr(&out);
    let applied: usize = err
        .split("import stopped after ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no row count in: {err}"));
    assert!(
        err.contains(&format!(
            "the first {applied} rows of {} are in table 't' (durable), the other {} were not written",
            file.display(),
            total - applied
        )),
        "{err}"
    );
    assert!(applied > 0 && applied < total, "{err}");
    // Exactly the rows it names are there, with their values.
    let exported = dir.path().join("out.jsonl");
    let out = ectable(&[
        "export",
        "--devices",
        &list,
        "--table",
        "t",
        exported.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = std::fs::read_to_string(&exported)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), applied, "rows in the table vs the count said");
    for (i, line) in lines.iter().enumerate() {
        let j: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(j["key"], format!("row{i:06}"));
        assert_eq!(j["value"], format!("{i:06}").repeat(500));
    }
}

/// `load` out of space says how many rows it wrote, makes them durable, and they verify.
#[test]
fn load_out_of_space_says_how_many_rows_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let list = join(&devs(dir.path(), "d", 6));
    format_small(&list);
    let total = 2000u64;
    let load = |verb: &str, rows: u64| {
        ectable(&[
            verb,
            "--devices",
            &list,
            "--table",
            "t",
            "--rows",
            &rows.to_string(),
            "--value-size",
            "3000",
            "--seed",
            "5",
        ])
    };
    let out = load("load", total);
    assert_clean_error(&out, &["load stopped after ", "no space left on the array"]);
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
    let err = stderr(&out);
    let wrote: u64 = err
        .split("load stopped after ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no row count in: {err}"));
    assert!(wrote > 0 && wrote < total, "{err}");
    assert!(
        err.contains(&format!(
            "rows 0 to {} are in table 't' (durable), the other {} were not written",
            wrote - 1,
            total - wrote
        )),
        "{err}"
    );
    // The rows it names are there and right; the next one is not.
    let out = load("verify", wrote);
    assert!(out.status.success(), "verify: {}", stderr(&out));
    let out = ectable(&[
        "get",
        "--devices",
        &list,
        "--table",
        "t",
        "--key",
        &format!("row{wrote:012}"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

/// A load too small to fill half a stripe would be made durable by the sync journal, its
/// stripe written only at close: the device bytes it reports must count that stripe (it
/// printed 0.000 when the load's sync went through the journal).
#[test]
fn a_small_load_reports_the_device_bytes_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let list = join(&devs(dir.path(), "d", 6));
    format_small(&list);
    let out = ectable(&[
        "load",
        "--devices",
        &list,
        "--table",
        "t",
        "--rows",
        "10",
        "--value-size",
        "100",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let figure: f64 = err
        .split("durable; ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no device-bytes figure in: {err}"));
    // RS(4,2) writes at least 1.5 device bytes per byte stored; ten small rows in one
    // short stripe of 4 KiB chunks take many more.
    assert!(figure >= 1.5, "{figure} device bytes per byte: {err}");
}

/// A member copied block for block onto another slot's device (`cp d1 d2`): the open was
/// refused as "the same device is listed twice" (they are two files), `status` printed
/// nothing else (exit 4), and `online` of the copy answered "slot 1 is in service and in
/// sync: nothing to do". Now the copy is named as a copy everywhere, nothing is written,
/// and `replace --force` takes it for the missing slot.
#[test]
fn a_block_copy_of_a_member_is_named_as_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let p = devs(dir.path(), "d", 6);
    let all = join(&p);
    format_small(&all);
    put_ok(&all, "t", "k", "v");
    std::fs::copy(&p[1], &p[2]).unwrap();
    let before = digest(&p);

    let out = ectable(&["status", "--devices", &all]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("slot 1 is on two devices"), "{text}");
    assert!(
        text.contains("NOT USED") && text.contains("MISSING"),
        "{text}"
    );
    let out = ectable(&["status", "--devices", &all, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["slot_held_twice"]["slot"], 1, "{v}");
    assert_eq!(v["state"], "UNAVAILABLE", "{v}");

    let out = ectable(&["get", "--devices", &all, "--table", "t", "--key", "k"]);
    assert_clean_error(&out, &["both hold slot 1", "a copy of the other"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));

    let five: Vec<std::path::PathBuf> = p.iter().filter(|x| **x != p[2]).cloned().collect();
    let five = join(&five);
    let copy = p[2].to_str().unwrap();
    let out = ectable(&["online", "--devices", &five, copy]);
    assert_clean_error(&out, &["both hold slot 1"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let replace = |force: bool| {
        let mut args = vec![
            "replace",
            "--devices",
            &five,
            "--old-slot",
            "2",
            "--old",
            "gone",
            "--new",
            copy,
            "--yes",
        ];
        if force {
            args.push("--force");
        }
        ectable(&args)
    };
    let out = replace(false);
    assert_clean_error(&out, &["holds a copy of slot 1", "use --force"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert_eq!(digest(&p), before, "a refusal wrote to the devices");

    let out = replace(true);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ectable(&["status", "--devices", &all]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = ectable(&["get", "--devices", &all, "--table", "t", "--key", "k"]);
    assert_eq!(stdout(&out).trim(), "v", "{}", stderr(&out));
}

/// A hot spare that died (its file cut to nothing) left `status` at "state: ONLINE", exit 0,
/// the spare only an UNKNOWN row: a replacement the operator counts on was gone, and no new
/// spare could take its entry. Now status says so (exit 1, SPARE_MISSING), and a new spare
/// takes the missing one's place.
#[test]
fn a_hot_spare_that_is_gone_is_reported_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (p, all, spare) = array_with_a_spare(dir.path());
    let spare2 = dir.path().join("spare2.img");
    std::fs::File::create(&spare2)
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    let with = |s: &std::path::Path| format!("{all},{}", s.display());
    let out = ectable(&["status", "--devices", &with(&spare)]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    std::fs::File::create(&spare).unwrap().set_len(0).unwrap();
    let out = ectable(&["status", "--devices", &with(&spare)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("state: ONLINE, but 1 hot spare(s) of the array are missing or failed")
            && text.contains("add another with 'ectable add-spare --force'"),
        "{text}"
    );
    let (_, v) = status_json(&with(&spare));
    assert_eq!(v["spares_missing"].as_array().map(Vec::len), Some(1), "{v}");
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "SPARE_MISSING"),
        "{v}"
    );
    let mut examine = vec!["examine"];
    examine.extend(p.iter().map(|x| x.to_str().unwrap()));
    let out = ectable(&examine);
    assert!(
        stdout(&out).contains("spare    MISSING (device "),
        "{}",
        stdout(&out)
    );

    // The array cannot tell a dead spare from one left out of this command: told to
    // (--force), the new spare takes its entry.
    let out = add_spare(&all, &spare2, &[]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("give --force to let"),
        "{}",
        stderr(&out)
    );
    let out = add_spare(&all, &spare2, &["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("in place of the spare device"),
        "{}",
        stdout(&out)
    );
    let (code, v) = status_json(&with(&spare2));
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["spares"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["spares_missing"].as_array().map(Vec::len), Some(0), "{v}");
}

/// A hot spare only left out of one command's --devices is not taken for dead: `add-spare`
/// of another device is refused (exit 78, naming the missing spare, the new file not
/// created, nothing written), and the spare given back still opens. Before, the new spare
/// took the left-out one's entry and every later command listing it was refused
/// ("has been replaced").
#[test]
fn a_spare_left_out_of_one_command_is_not_given_away() {
    let dir = tempfile::tempdir().unwrap();
    let (p, all, spare) = array_with_a_spare(dir.path());
    let spare2 = dir.path().join("spare2.img");
    let before: Vec<Vec<u8>> = p.iter().map(|x| std::fs::read(x).unwrap()).collect();
    let out = add_spare(&all, &spare2, &["--create-size", "2M"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("names a hot spare (device ")
            && err.contains("list it in --devices if it is there"),
        "{err}"
    );
    assert!(!spare2.exists(), "the refused spare's file was left behind");
    let after: Vec<Vec<u8>> = p.iter().map(|x| std::fs::read(x).unwrap()).collect();
    assert!(before == after, "a refused add-spare changed a member");
    let with = format!("{all},{}", spare.display());
    let (code, v) = status_json(&with);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["spares"].as_array().map(Vec::len), Some(1), "{v}");
    // Listed, the first spare stays, and the second joins beside it.
    let out = add_spare(&with, &spare2, &["--create-size", "2M"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, v) = status_json(&format!("{with},{}", spare2.display()));
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["spares"].as_array().map(Vec::len), Some(2), "{v}");
    // A spare given again is refused as what it is, by name and under another name.
    let with2 = format!("{with},{}", spare2.display());
    let out = add_spare(&with2, &spare, &[]);
    assert_clean_error(
        &out,
        &[&format!(
            "{} is already a hot spare of the array",
            spare.display()
        )],
    );
    let link = dir.path().join("link.img");
    std::os::unix::fs::symlink(&spare, &link).unwrap();
    let out = add_spare(&with2, &link, &[]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("already"), "{}", stderr(&out));
}

/// A hot spare whose file shrank while the array was closed: before, status listed it as
/// the spare, exit 0, and a replacement onto it would have been refused as too small when a
/// member failed. Now it is failed at open (named, with the sizes), status exits 1; given
/// its size back, it is the spare again.
#[test]
fn a_hot_spare_that_shrank_is_not_counted_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_, all, spare) = array_with_a_spare(dir.path());
    let with = format!("{all},{}", spare.display());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&spare)
        .unwrap();
    f.set_len(1 << 20).unwrap();
    let out = ectable(&["status", "--devices", &with]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("hot spare failed: 1048576 bytes, smaller than the"),
        "{text}"
    );
    assert!(
        text.contains("hot spare(s) of the array are missing or failed"),
        "{text}"
    );
    f.set_len(2 << 20).unwrap();
    let (code, v) = status_json(&with);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(
        v["spares"],
        serde_json::json!([spare.display().to_string()]),
        "{v}"
    );
}

/// Small devices at the default segment size (8 MiB) hold few segments: with 7 a device,
/// overwrites at 60 % fill ran out of room (the cleaner keeps 2 free, the checkpoint takes
/// 1 or more). `format` says so and names a segment size that gives 64 or more; with
/// enough segments it says nothing.
#[test]
fn format_warns_of_few_segments_and_names_a_size() {
    let dir = tempfile::tempdir().unwrap();
    let p = devs(dir.path(), "d", 3);
    let list = join(&p);
    let base = [
        "format",
        "--devices",
        &list,
        "--k",
        "2",
        "--m",
        "1",
        "--yes",
        "--force",
    ];
    let out = ectable(&[&base[..], &["--create-size", "64M"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("7 segments of 8.0 MiB per device"),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("format: warning: each device holds only 7 segments of 8.0 MiB")
            && err.contains("a smaller --segment-size (512.0 KiB: about 112 segments)"),
        "{err}"
    );
    let out = ectable(&[&base[..], &["--segment-size", "512K"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

#[test]
fn format_segment_size_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Fresh files: none is created.
    let fresh = devs(dir.path(), "new", 6);
    let out = ectable(&[
        "format",
        "--devices",
        &join(&fresh),
        "--k",
        "4",
        "--m",
        "2",
        "--segment-size",
        "0",
        "--create-size",
        "64M",
    ]);
    assert_clean_error(&out, &["--segment-size 0", "leave --segment-size out"]);
    assert!(fresh.iter().all(|p| !p.exists()), "files were created");
    // An existing array, even with --force: untouched.
    let p = devs(dir.path(), "d", 6);
    format_ok(&[
        "format",
        "--devices",
        &join(&p),
        "--k",
        "4",
        "--m",
        "2",
        "--create-size",
        "64M",
    ]);
    let before = digest(&p);
    let out = ectable(&[
        "format",
        "--devices",
        &join(&p),
        "--k",
        "4",
        "--m",
        "2",
        "--segment-size",
        "0",
        "--force",
        "--yes",
    ]);
    assert_clean_error(&out, &["--segment-size 0"]);
    assert_eq!(digest(&p), before, "a refused format changed the devices");
}

#[test]
fn format_chunk_size_not_dividing_the_segment_names_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let p = devs(dir.path(), "d", 6);
    format_ok(&[
        "format",
        "--devices",
        &join(&p),
        "--k",
        "4",
        "--m",
        "2",
        "--create-size",
        "64M",
    ]);
    let before = digest(&p);
    let out = ectable(&[
        "format",
        "--devices",
        &join(&p),
        "--k",
        "4",
        "--m",
        "2",
        "--chunk-size",
        "12K",
        "--force",
        "--yes",
    ]);
    assert_clean_error(
        &out,
        &[
            "the default segment size 8M (8388608 bytes) is not a multiple of the chunk size 12K (12288 bytes)",
            "--segment-size 8184K",
        ],
    );
    assert_eq!(digest(&p), before, "a refused format changed the devices");
    // A given segment size is named as given; the hint works.
    let out = ectable(&[
        "format",
        "--devices",
        &join(&p),
        "--k",
        "4",
        "--m",
        "2",
        "--chunk-size",
        "12K",
        "--segment-size",
        "1M",
        "--force",
        "--yes",
    ]);
    assert_clean_error(
        &out,
        &["the segment size 1M (1048576 bytes) is not a multiple of the chunk size 12K"],
    );
    assert_eq!(digest(&p), before);
    format_ok(&[
        "format",
        "--devices",
        &join(&p),
        "--k",
        "4",
        "--m",
        "2",
        "--chunk-size",
        "12K",
        "--segment-size",
        "8184K",
        "--force",
        "--yes",
    ]);
}

#[test]
fn a_replaced_device_given_back_is_called_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = format6(dir.path(), "d");
    let six = join(&p);
    p.push(dir.path().join("d6.img"));
    put_ok(&six, "t", "k", "v");
    let old = p[2].display().to_string();
    let new = p[6].display().to_string();
    let out = ectable(&[
        "replace",
        "--devices",
        &six,
        "--old",
        &old,
        "--new",
        &new,
        "--create-size",
        "64M",
        "--yes",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = digest(&p);
    // The old device comes back beside its replacement.
    let all = join(&p);
    let out = ectable(&["get", "--devices", &all, "--table", "t", "--key", "k"]);
    assert_clean_error(
        &out,
        &[
            &format!("{old}: was a member of array "),
            " in slot 2 but has been replaced",
            "leave it out of --devices, or reuse it with format, replace or add-spare and --force",
        ],
    );
    assert!(
        !stderr(&out).contains("another ectable array"),
        "{}",
        stderr(&out)
    );
    assert_eq!(digest(&p), before, "a refused open changed the devices");
    // Without its replacement too.
    let mut back = p[..6].to_vec();
    back[2] = p[2].clone();
    // (status shows the array without it, its replacement missing, and names it.)
    let out = ectable(&["status", "--devices", &join(&back)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "given: {old}: was replaced out of this array (it held slot 2); not used"
        )) && stdout(&out).contains("DEGRADED"),
        "{}",
        stdout(&out)
    );
    assert_eq!(digest(&p), before);

    // The hint's last way works: add-spare, refused without --force (nothing changes)...
    let now: Vec<_> = p
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, d)| d.clone())
        .collect();
    let now = join(&now);
    let spare = ["add-spare", "--devices", &now, "--spare", &old];
    let out = ectable(&spare);
    assert_clean_error(
        &out,
        &[
            &format!("{old}: already holds an ectable array ("),
            "use --force to reuse it",
        ],
    );
    assert_eq!(out.status.code(), Some(78));
    assert_eq!(
        digest(&p),
        before,
        "a refused add-spare changed the devices"
    );
    // ... also with the device listed (a list that still names it)...
    let out = ectable(&["add-spare", "--devices", &all, "--spare", &old]);
    assert_clean_error(
        &out,
        &["was replaced out of this array earlier; use --force to reuse it"],
    );
    assert_eq!(digest(&p), before);
    // ... and a member is refused even with --force, untouched.
    let member = p[0].display().to_string();
    let out = ectable(&[
        "add-spare",
        "--devices",
        &now,
        "--spare",
        &member,
        "--force",
    ]);
    assert_clean_error(
        &out,
        &[&format!("{member} is already a member of the array")],
    );
    assert_eq!(digest(&p), before);
    // With --force the old device is wiped and joins as the hot spare.
    let out = ectable(&["add-spare", "--devices", &all, "--spare", &old, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ectable(&["status", "--devices", &all, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["spares"], serde_json::json!([old]), "{v}");
    let out = ectable(&["get", "--devices", &all, "--table", "t", "--key", "k"]);
    assert_eq!(stdout(&out), "v", "{}", stderr(&out));
}

/// With one member gone and a hot spare at hand, status's action names the replacement in
/// full (old device, slot, the spare), and following it word for word works: the array is
/// healthy after, with the row it held.
#[test]
fn status_names_the_hot_spare_in_its_replace_action() {
    let dir = tempfile::tempdir().unwrap();
    let p = devs(dir.path(), "d", 6);
    let spare = dir.path().join("spare.img").display().to_string();
    let six = join(&p);
    format_ok(&[
        "format",
        "--devices",
        &six,
        "--k",
        "4",
        "--m",
        "2",
        "--create-size",
        "64M",
        "--spares",
        &spare,
        "--yes",
    ]);
    let all = format!("{six},{spare}");
    put_ok(&all, "t", "k", "v");
    // Slot 3's file is gone for good.
    std::fs::remove_file(&p[3]).unwrap();
    let out = ectable(&["status", "--devices", &all]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    let cmd = format!("'ectable replace --old <device> --old-slot 3 --new {spare}'");
    assert!(text.contains(&cmd), "{text}");
    // Word for word, with the device it names filled in (the one status cannot name: its
    // path is gone).
    let old = p[3].display().to_string();
    let out = ectable(&[
        "replace",
        "--devices",
        &all,
        "--old",
        &old,
        "--old-slot",
        "3",
        "--new",
        &spare,
        "--yes",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Healthy, but the list still names the file that is gone, which every other command
    // refuses: said, and not exit 0.
    let out = ectable(&["status", "--devices", &all]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!("given: {old}: no such device or file; not used")),
        "{}",
        stdout(&out)
    );
    // The members now: the spare in place of the file that is gone.
    let now = all.replace(&format!("{old},"), "");
    let out = ectable(&["status", "--devices", &now]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = ectable(&["get", "--devices", &now, "--table", "t", "--key", "k"]);
    assert_eq!(out.stdout, b"v", "{}", stderr(&out));
}

/// `get` of a table the array does not have says so, with the tables it has (a mistyped
/// name), where a missing key in a table that exists says the key is not there. Both "no"
/// answers (exit 1).
#[test]
fn get_from_a_table_that_does_not_exist_names_the_tables() {
    let dir = tempfile::tempdir().unwrap();
    let p = format6(dir.path(), "d");
    let all = join(&p);
    put_ok(&all, "users", "k", "v");
    let out = ectable(&["get", "--devices", &all, "--table", "user", "--key", "k"]);
    assert_clean_error(&out, &["no table 'user'", "tables users"]);
    assert_eq!(out.status.code(), Some(1));
    let out = ectable(&["get", "--devices", &all, "--table", "users", "--key", "zz"]);
    assert_clean_error(&out, &["key 'zz' not found in table 'users'"]);
    assert_eq!(out.status.code(), Some(1));
}

/// A member file truncated while the array is closed: `status` says FAULTED with both sizes
/// and exits 1 (it said ONLINE, exit 0). The engine's warning on stderr is plain text when
/// stderr is not a terminal: no colour codes in a log file or the journal.
#[test]
fn a_member_file_truncated_while_closed_is_faulted_and_logged_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let p = format6(dir.path(), "sh");
    let all = join(&p);
    load_rows(&all, "300", "1000");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p[4])
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    let out = ectable(&["status", "--devices", &all]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAULTED") && text.contains("smaller than"),
        "{text}"
    );
    let err = stderr(&out);
    assert!(
        err.contains("WARN") && err.contains("smaller than"),
        "{err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "colour codes in a log that is not a terminal: {err:?}"
    );
}

/// A replace that succeeds on an array with a second member out: its last line says the
/// slot is online, and the next one that the array is not (an operator reading the first
/// alone would take the array for healthy).
#[test]
fn replace_says_when_the_array_is_still_degraded_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = format6(dir.path(), "d");
    put_ok(&join(&p), "t", "k", "v");
    // Members 2 and 4 are out: 2 left out of the list (its file still there, so its
    // superblock tells its slot although two are missing), 4 gone. 2 is replaced, 4 stays
    // out.
    std::fs::remove_file(&p[4]).unwrap();
    let rest: Vec<std::path::PathBuf> = [0, 1, 3, 5].iter().map(|&i| p[i].clone()).collect();
    let new = dir.path().join("new.img");
    let out = ectable(&[
        "replace",
        "--devices",
        &join(&rest),
        "--old",
        p[2].to_str().unwrap(),
        "--new",
        new.to_str().unwrap(),
        "--create-size",
        "64M",
        "--yes",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("slot 2 is online on"), "{text}");
    assert!(
        text.contains("the array is still DEGRADED: slot 4 REMOVED"),
        "{text}"
    );
    // With every member in service, no such line.
    let mut all = rest.clone();
    all.push(new.clone());
    let newer = dir.path().join("newer.img");
    let out = ectable(&[
        "replace",
        "--devices",
        &join(&all),
        "--old",
        p[4].to_str().unwrap(),
        "--new",
        newer.to_str().unwrap(),
        "--create-size",
        "64M",
        "--yes",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("still"), "{}", stdout(&out));
}

/// A device of another array in the list (a unit file's list gone out of date): every
/// command refuses the list, naming the device, and so did `status`, with exit 4 and no
/// view of the array. Now `status` shows the array without it, names it (`given: ...`, the
/// check DEVICE_NOT_MEMBER) and exits 1, so that monitoring sees that the list is wrong.
#[test]
fn status_names_a_device_of_another_array_and_shows_the_array() {
    let dir = tempfile::tempdir().unwrap();
    let p = devs(dir.path(), "d", 6);
    let all = join(&p);
    format_small(&all);
    let other = devs(dir.path(), "o", 6);
    format_small(&join(&other));
    let list = format!("{all},{}", other[0].display());
    let out = ectable(&["status", "--devices", &list]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!(
            "given: {}: belongs to another ectable array",
            other[0].display()
        )) && text.contains("state: ONLINE")
            && text.contains("all 6 devices online"),
        "{text}"
    );
    let out = ectable(&["status", "--devices", &list, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "DEVICE_NOT_MEMBER"),
        "{v}"
    );
    // Writing commands still refuse the list.
    let out = ectable(&[
        "put",
        "--devices",
        &list,
        "--table",
        "t",
        "--key",
        "k",
        "--value",
        "v",
    ]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
}

/// An old copy of a hot spare (taken before the spare took a slot) listed beside the
/// array: it was called "a member ... in slot 6"; it is named an old hot spare, and status
/// shows the array without it.
#[test]
fn an_old_copy_of_a_spare_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _, spare) = array_with_a_spare(dir.path());
    let old = dir.path().join("s1old.img");
    std::fs::copy(&spare, &old).unwrap();
    std::fs::remove_file(&p[2]).unwrap();
    let mut now: Vec<_> = p.clone();
    now[2] = spare.clone();
    let now = join(&now);
    let out = ectable(&[
        "replace",
        "--devices",
        &now,
        "--old",
        p[2].to_str().unwrap(),
        "--old-slot",
        "2",
        "--new",
        spare.to_str().unwrap(),
        "--yes",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let with_old = format!("{now},{}", old.display());
    let out = ectable(&["status", "--devices", &with_old]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!(
            "given: {}: an old hot spare of this array (member entry 6), replaced since",
            old.display()
        )) && text.contains("state: ONLINE"),
        "{text}"
    );
    let out = ectable(&["get", "--devices", &with_old, "--table", "t", "--key", "k"]);
    assert!(
        stderr(&out).contains("was a hot spare of array "),
        "{}",
        stderr(&out)
    );
}

/// A member listed twice, under its name and through a symlink (a unit file edited by
/// hand): every other command refuses the list; `status` printed only that error (exit 4).
/// Now it shows the array from the first, says which path is the same device, and exits 1.
#[test]
fn status_with_a_member_listed_twice_shows_the_array() {
    let dir = tempfile::tempdir().unwrap();
    let p = format6(dir.path(), "d");
    let all = join(&p);
    let alias = dir.path().join("alias.img");
    std::os::unix::fs::symlink(&p[1], &alias).unwrap();
    let with = format!("{all},{}", alias.display());
    let out = ectable(&["get", "--devices", &with, "--table", "t", "--key", "k"]);
    assert_clean_error(&out, &["the same device is listed twice"]);
    let out = ectable(&["status", "--devices", &with]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "given: {}: the same device as {} (listed twice); not used",
            alias.display(),
            p[1].display()
        )),
        "{text}"
    );
    assert!(text.contains("state: ONLINE"), "{text}");
    let (code, v) = status_json(&with);
    assert_eq!(code, Some(1), "{v}");
    assert!(
        v["checks"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["code"] == "DEVICE_LISTED_TWICE")),
        "{v}"
    );
}

/// Two members left out of one command and two others out of the next (cables moved between
/// commands): the second finds two members missing and two behind, which together are more
/// than m. Status must say that, not "2 of 6 devices missing: more than m=2"; the command is
/// refused and writes nothing; with every member back the two behind are resynced and every
/// row of both loads reads back.
#[test]
fn members_missing_and_members_behind_are_both_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = format6(dir.path(), "r");
    let all = join(&d);
    load_rows(&all, "300", "1000");
    let first4 = join(&d[..4]);
    let out = ectable(&[
        "load",
        "--devices",
        &first4,
        "--table",
        "one",
        "--rows",
        "300",
        "--value-size",
        "1000",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let last4 = join(&d[2..]);
    let before = digest(&d);
    let out = ectable(&["status", "--devices", &last4]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(
            "2 of 6 devices missing (slot(s) [0, 1]) and 2 behind the others (slot(s) [4, 5]"
        ),
        "{text}"
    );
    assert!(!text.contains("devices missing: more than m=2"), "{text}");
    let out = ectable(&[
        "load",
        "--devices",
        &last4,
        "--table",
        "two",
        "--rows",
        "300",
        "--value-size",
        "1000",
    ]);
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("slot(s) [0, 1] are missing and slot(s) [4, 5] behind"),
        "{}",
        stderr(&out)
    );
    // A read-only command says the same.
    let out = ectable(&["get", "--devices", &last4, "--table", "one", "--key", "k"]);
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("slot(s) [0, 1] are missing and slot(s) [4, 5] behind"),
        "{}",
        stderr(&out)
    );
    assert_eq!(digest(&d), before, "a refused load wrote");
    let out = ectable(&["status", "--devices", &all]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let out = ectable(&["rebuild", "--devices", &all]);
    assert!(out.status.success(), "rebuild: {}", stderr(&out));
    let out = ectable(&["status", "--devices", &all]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    for table in ["t", "one"] {
        let out = ectable(&[
            "verify",
            "--devices",
            &last4,
            "--table",
            table,
            "--rows",
            "300",
            "--value-size",
            "1000",
        ]);
        assert!(out.status.success(), "verify {table}: {}", stderr(&out));
    }
}
