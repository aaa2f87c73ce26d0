//! Typed tables through the CLI, on file-backed devices: `table create|list|describe|drop`;
//! `put`/`get`/`delete` with `--key` as the JSON object of the primary key; `import`,
//! `export` and `scan` with JSON lines, rows in primary-key order (negative ints, strings with
//! embedded zero bytes, binary keys), bounds, prefixes, reverse order and limits; plain
//! key/value tables working beside them. Bad input (invalid schemas, reserved names, wrong key
//! arity or type, unknown tables, oversized rows, malformed import lines) gets a one-line
//! error and leaves every device file byte-identical.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ectable(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ectable"))
        .args(args)
        .output()
        .expect("run ectable")
}

fn ok(args: &[&str]) -> String {
    let out = ectable(args);
    assert!(
        out.status.success(),
        "ectable {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn format6(dir: &Path) -> String {
    let paths: Vec<PathBuf> = (0..6).map(|i| dir.join(format!("d{i}.img"))).collect();
    let list = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    ok(&[
        "format",
        "--devices",
        &list,
        "--k",
        "4",
        "--m",
        "2",
        "--chunk-size",
        "16K",
        "--create-size",
        "64M",
    ]);
    list
}

fn digest(list: &str) -> Vec<u32> {
    list.split(',')
        .map(|p| std::fs::read(p).map(|b| crc32c::crc32c(&b)).unwrap_or(0))
        .collect()
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

fn pks(text: &str) -> Vec<Value> {
    lines(text).into_iter().map(|v| v["pk"].clone()).collect()
}

#[test]
fn typed_tables_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = format6(dir.path());
    let dev = |args: &[&str]| -> Vec<String> {
        let mut v = vec![args[0].to_string()];
        if args[0] == "table" {
            v.push(args[1].to_string());
            v.extend(["--devices".to_string(), d.clone()]);
            v.extend(args[2..].iter().map(|s| s.to_string()));
        } else {
            v.extend(["--devices".to_string(), d.clone()]);
            v.extend(args[1..].iter().map(|s| s.to_string()));
        }
        v
    };
    let run = |args: &[&str]| {
        let v = dev(args);
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        ok(&refs)
    };
    let fail = |args: &[&str]| {
        let v = dev(args);
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        let out = ectable(&refs);
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    // An array with only key/value tables does not look empty.
    run(&["put", "--table", "plain", "--key", "a", "--value", "1"]);
    let list = run(&["table", "list"]);
    assert!(
        list.contains("no typed tables")
            && list.contains("key/value tables (not typed): plain (1 keys)"),
        "{list}"
    );
    run(&[
        "table",
        "create",
        "--table",
        "T",
        "--pk",
        "id:int64,name:string",
    ]);
    run(&["table", "create", "--table", "B", "--pk", "h:binary"]);
    let list = run(&["table", "list"]);
    assert!(
        list.contains("T ") && list.contains("id:int64,name:string"),
        "{list}"
    );
    let desc: Value =
        serde_json::from_str(&run(&["table", "describe", "--table", "T", "--json"])).unwrap();
    assert_eq!(
        desc,
        json!({"table": "T", "rows": 0, "primary_key": [
            {"name": "id", "type": "int64"}, {"name": "name", "type": "string"}]})
    );

    // put / get with JSON keys and the issue's example row.
    run(&[
        "put",
        "--table",
        "T",
        "--key",
        r#"{"id": 7, "name": "a"}"#,
        "--value",
        r#"{"score": 1.5, "ok": true, "tag": "x", "n": 3}"#,
    ]);
    let got = lines(&run(&[
        "get",
        "--table",
        "T",
        "--key",
        r#"{"name": "a", "id": 7}"#,
    ]));
    assert_eq!(
        got,
        vec![json!({"pk": {"id": 7, "name": "a"},
                    "cols": {"score": 1.5, "ok": true, "tag": "x", "n": 3}})]
    );

    // import rows out of order; export and scan print them in primary-key order.
    let rows = [
        json!({"pk": {"id": 5, "name": "b"}, "cols": {"v": 1}}),
        json!({"pk": {"id": -3, "name": "z"}, "cols": {"v": 2.25, "bin": {"$bin": "AAH/"}}}),
        json!({"pk": {"id": 5, "name": "a\u{0}b"}, "cols": {}}),
        json!({"pk": {"id": 5, "name": "a"}}),
        json!({"pk": {"id": -9223372036854775808i64, "name": ""}, "cols": {"neg": -1}}),
        json!({"pk": {"id": 100, "name": "a"}, "cols": {"s": "x"}}),
    ];
    let file = dir.path().join("rows.jsonl");
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&file, text).unwrap();
    run(&["import", "--table", "T", file.to_str().unwrap()]);
    let want_order = vec![
        json!({"id": -9223372036854775808i64, "name": ""}),
        json!({"id": -3, "name": "z"}),
        json!({"id": 5, "name": "a"}),
        json!({"id": 5, "name": "a\u{0}b"}),
        json!({"id": 5, "name": "b"}),
        json!({"id": 7, "name": "a"}),
        json!({"id": 100, "name": "a"}),
    ];
    let exported = run(&["export", "--table", "T", "-"]);
    assert_eq!(pks(&exported), want_order);
    let all = lines(&exported);
    assert_eq!(all[1]["cols"], json!({"v": 2.25, "bin": {"$bin": "AAH/"}}));
    assert_eq!(all[2]["cols"], json!({}));
    assert_eq!(pks(&run(&["scan", "--table", "T"])), want_order);
    // Bounds (partial keys), prefix, reverse, limit.
    let s = run(&[
        "scan",
        "--table",
        "T",
        "--from",
        r#"{"id": 5}"#,
        "--to",
        r#"{"id": 100}"#,
    ]);
    assert_eq!(pks(&s), want_order[2..6].to_vec());
    let s = run(&[
        "scan",
        "--table",
        "T",
        "--prefix",
        r#"{"id": 5}"#,
        "--reverse",
    ]);
    let mut rev = want_order[2..5].to_vec();
    rev.reverse();
    assert_eq!(pks(&s), rev);
    let s = run(&["scan", "--table", "T", "--limit", "2", "--reverse"]);
    assert_eq!(pks(&s), vec![want_order[6].clone(), want_order[5].clone()]);
    // A scan cut by --limit says how to go on, and going on that way reads the rest.
    for reverse in [false, true] {
        let mut args = vec!["scan", "--table", "T", "--limit", "3"];
        if reverse {
            args.push("--reverse");
        }
        let v = dev(&args);
        let out = ectable(&v.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let (flag, key) = err
            .trim_end()
            .strip_prefix("more rows follow; continue with ")
            .and_then(|r| r.split_once(' '))
            .unwrap_or_else(|| panic!("reverse={reverse}: {err}"));
        assert_eq!(flag, if reverse { "--to" } else { "--from" }, "{err}");
        args.truncate(3);
        args.extend([flag, key.trim_matches('\'')]);
        if reverse {
            args.push("--reverse");
        }
        let mut seen = pks(&String::from_utf8_lossy(&out.stdout));
        seen.extend(pks(&run(&args)));
        let mut want = want_order.clone();
        if reverse {
            want.reverse();
        }
        assert_eq!(seen, want, "reverse={reverse}");
    }

    // Binary keys.
    run(&[
        "put",
        "--table",
        "B",
        "--key",
        r#"{"h": {"$bin": "/w=="}}"#,
        "--value",
        "{}",
    ]);
    run(&[
        "put",
        "--table",
        "B",
        "--key",
        r#"{"h": {"$bin": "AA=="}}"#,
        "--value",
        "{}",
    ]);
    assert_eq!(
        pks(&run(&["scan", "--table", "B"])),
        vec![
            json!({"h": {"$bin": "AA=="}}),
            json!({"h": {"$bin": "/w=="}})
        ]
    );

    // delete; a missing row is an error.
    run(&[
        "delete",
        "--table",
        "T",
        "--key",
        r#"{"id": 7, "name": "a"}"#,
    ]);
    let err = fail(&["get", "--table", "T", "--key", r#"{"id": 7, "name": "a"}"#]);
    assert!(err.contains("not found"), "{err}");
    let err = fail(&[
        "delete",
        "--table",
        "T",
        "--key",
        r#"{"id": 7, "name": "a"}"#,
    ]);
    assert!(err.contains("not found"), "{err}");

    // Key/value tables keep working beside typed ones.
    run(&["put", "--table", "kv", "--key", "k1", "--value", "v1"]);
    assert_eq!(run(&["get", "--table", "kv", "--key", "k1"]), "v1");
    assert_eq!(run(&["scan", "--table", "kv"]), "k1\tv1\n");

    // Reopen-proof: describe counts the rows; drop removes table and rows.
    let desc: Value =
        serde_json::from_str(&run(&["table", "describe", "--table", "T", "--json"])).unwrap();
    assert_eq!(desc["rows"], json!(6));
    run(&["table", "drop", "--table", "T", "--yes"]);
    let list = run(&["table", "list", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&list).unwrap(),
        json!([{"table": "B", "rows": 2, "primary_key": [{"name": "h", "type": "binary"}]}])
    );
    let err = fail(&["table", "describe", "--table", "T"]);
    assert!(err.contains("no such table"), "{err}");
    // The name is free for a new table, which starts empty.
    run(&["table", "create", "--table", "T", "--pk", "k:string"]);
    assert_eq!(run(&["export", "--table", "T", "-"]), "");
}

/// Asserts a clean failure: non-zero exit, one line on stderr naming `needle`, no panic.
fn assert_clean_error(out: &Output, needle: &str, args: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?}: expected failure");
    assert!(!stderr.contains("panicked"), "{args:?}: panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one line, got: {stderr}");
    assert!(lines[0].starts_with("ectable: error: "), "{stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected '{needle}' in: {stderr}"
    );
}

#[test]
fn bad_table_input_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = format6(dir.path());
    ok(&[
        "table",
        "create",
        "--devices",
        &d,
        "--table",
        "T",
        "--pk",
        "id:int64,name:string",
    ]);
    ok(&[
        "put",
        "--devices",
        &d,
        "--table",
        "T",
        "--key",
        r#"{"id": 1, "name": "a"}"#,
        "--value",
        r#"{"x": 1}"#,
    ]);
    ok(&[
        "put",
        "--devices",
        &d,
        "--table",
        "kv",
        "--key",
        "k",
        "--value",
        "v",
    ]);
    let before = digest(&d);

    let bad_import = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad_import,
        "{\"pk\": {\"id\": 2, \"name\": \"b\"}}\n{\"pk\": {\"id\": \"3\", \"name\": \"c\"}}\n",
    )
    .unwrap();
    let big_import = dir.path().join("big.jsonl");
    let big = base64_of(&vec![7u8; 300_000]);
    std::fs::write(
        &big_import,
        format!(
            "{{\"pk\": {{\"id\": 2, \"name\": \"b\"}}}}\n{{\"pk\": {{\"id\": 3, \"name\": \"c\"}}, \"cols\": {{\"b\": {{\"$bin\": \"{big}\"}}}}}}\n"
        ),
    )
    .unwrap();
    let (bi, gi) = (
        bad_import.display().to_string(),
        big_import.display().to_string(),
    );
    // Over the 63,488-byte limit of RS(4,2) with 16 KiB chunks, under the 128 KiB an argument
    // may take.
    let big_value = format!(
        r#"{{"b": {{"$bin": "{}"}}}}"#,
        base64_of(&vec![7u8; 70_000])
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["table", "create", "--table", "X", "--pk", "x:double"],
            "invalid schema",
        ),
        (
            vec!["table", "create", "--table", "X", "--pk", ""],
            "invalid schema",
        ),
        (
            vec![
                "table",
                "create",
                "--table",
                "X",
                "--pk",
                "a:int64,b:int64,c:int64,d:int64,e:int64",
            ],
            "1 to 4",
        ),
        (
            vec![
                "table",
                "create",
                "--table",
                "X",
                "--pk",
                "a:int64,a:string",
            ],
            "twice",
        ),
        (
            vec!["table", "create", "--table", "$X", "--pk", "a:int64"],
            "reserved",
        ),
        (
            vec!["table", "create", "--table", "T", "--pk", "a:int64"],
            "already exists",
        ),
        (
            vec!["table", "create", "--table", "kv", "--pk", "a:int64"],
            "key/value data",
        ),
        (
            vec!["table", "describe", "--table", "nope"],
            "no such table",
        ),
        (
            vec!["table", "drop", "--table", "nope", "--yes"],
            "no such table",
        ),
        (
            vec![
                "put",
                "--table",
                "T",
                "--key",
                r#"{"id": 1}"#,
                "--value",
                "{}",
            ],
            "needs name",
        ),
        (
            vec![
                "put",
                "--table",
                "T",
                "--key",
                r#"{"id": "1", "name": "a"}"#,
                "--value",
                "{}",
            ],
            "column 'id' is int64",
        ),
        (
            vec![
                "put",
                "--table",
                "T",
                "--key",
                r#"{"id": 1, "name": "a", "z": 1}"#,
                "--value",
                "{}",
            ],
            "not a primary-key column",
        ),
        (
            vec!["put", "--table", "T", "--key", "{not json", "--value", "{}"],
            "invalid JSON",
        ),
        (
            vec![
                "put",
                "--table",
                "T",
                "--key",
                r#"{"id": 1, "name": "a"}"#,
                "--value",
                "[1]",
            ],
            "JSON object of the columns",
        ),
        (
            vec![
                "put",
                "--table",
                "T",
                "--key",
                r#"{"id": 1, "name": "a"}"#,
                "--value",
                r#"{"id": 5}"#,
            ],
            "primary-key column",
        ),
        (
            vec![
                "put",
                "--table",
                "T",
                "--key",
                r#"{"id": 1, "name": "a"}"#,
                "--value",
                &big_value,
            ],
            "too large",
        ),
        (
            vec!["put", "--table", "$schema", "--key", "T", "--value", "x"],
            "reserved",
        ),
        (
            vec!["delete", "--table", "$schema", "--key", "T"],
            "reserved",
        ),
        (
            vec![
                "delete",
                "--table",
                "T",
                "--key",
                r#"{"id": 9, "name": "a"}"#,
            ],
            "not found",
        ),
        (vec!["import", "--table", "T", &bi], "line 2"),
        (vec!["import", "--table", "T", &gi], "line 2"),
        (
            vec!["scan", "--table", "T", "--prefix", r#"{"name": "a"}"#],
            "first primary-key columns",
        ),
        (
            vec![
                "load",
                "--table",
                "T",
                "--rows",
                "10",
                "--value-size",
                "100",
            ],
            "typed table",
        ),
        (
            vec![
                "verify",
                "--table",
                "T",
                "--rows",
                "10",
                "--value-size",
                "100",
            ],
            "typed table",
        ),
    ];
    for (args, needle) in &cases {
        let mut full: Vec<&str> = vec![args[0]];
        if args[0] == "table" {
            full.push(args[1]);
            full.extend(["--devices", &d]);
            full.extend(&args[2..]);
        } else {
            full.extend(["--devices", &d]);
            full.extend(&args[1..]);
        }
        let out = ectable(&full);
        assert_clean_error(&out, needle, args);
        assert_eq!(digest(&d), before, "{args:?} changed the devices");
    }
    // Nothing of the bad imports arrived.
    let rows = ok(&["export", "--devices", &d, "--table", "T", "-"]);
    assert_eq!(rows.lines().count(), 1, "{rows}");
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
