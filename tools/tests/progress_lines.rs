//! Long commands print progress lines on stderr when it is not a terminal (a log file, a
//! pipe), and only there: stdout keeps the data.

mod cli_common;
use cli_common::*;

#[test]
fn long_commands_print_progress_lines_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = format6(dir.path(), "d");
    let all = join(&d);
    let rows = ["--table", "t", "--rows", "100000", "--value-size", "64"];
    for cmd in ["load", "verify"] {
        let mut args = vec![cmd, "--devices", &all];
        args.extend(rows);
        let out = ectable(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        for pct in [10, 50, 90] {
            let want = format!("{cmd}: {pct}% (");
            assert!(err.contains(&want), "{cmd}: no '{want}' in:\n{err}");
        }
        assert!(!err.contains("100%"), "{err}");
    }
    let file = dir.path().join("t.jsonl");
    let out = ectable(&[
        "export",
        "--devices",
        &all,
        "--table",
        "t",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The index knows the row count, so an export reports percents.
    let err = stderr(&out);
    assert!(err.contains("export: 50% ("), "{err}");
    assert!(err.contains("exported 100000 rows"), "{err}");
    let out = ectable(&[
        "import",
        "--devices",
        &all,
        "--table",
        "u",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("import: 50% ("), "{err}");
    assert!(err.contains("imported 100000 rows"), "{err}");

    // A typed table's export too.
    let out = ectable(&[
        "table",
        "create",
        "--devices",
        &all,
        "--table",
        "T",
        "--pk",
        "id:int64",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: String = (0..20_000)
        .map(|i| format!("{{\"pk\": {{\"id\": {i}}}, \"cols\": {{\"n\": {i}}}}}\n"))
        .collect();
    let typed = dir.path().join("typed.jsonl");
    std::fs::write(&typed, rows).unwrap();
    let typed_arg = typed.to_str().unwrap();
    let out = ectable(&["import", "--devices", &all, "--table", "T", typed_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ectable(&["export", "--devices", &all, "--table", "T", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("export: 40% ("), "{err}");
    assert!(err.contains("exported 20000 rows"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 20_000);
}
