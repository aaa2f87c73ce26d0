//! Smoke tests of `ecbench`'s table workloads on tiny file-backed devices: `table-put` formats
//! the array, creates the typed table and reports write IOPS and latency percentiles;
//! `table-get`, `table-range` and `table-mixed` run on the rows it left (verifying what they
//! read with --verify), all with fio's JSON fields. A row size too small for ten columns is a
//! one-line error. Sizes are tiny: these check the plumbing, not performance.

use serde_json::Value;
use std::process::{Command, Output};

fn ecbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecbench"))
        .args(args)
        .output()
        .expect("run ecbench")
}

fn json_run(args: &[&str]) -> Value {
    let out = ecbench(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ecbench {args:?} failed: {stderr}");
    serde_json::from_slice(&out.stdout).expect("ecbench prints one JSON document")
}

fn ops(v: &Value, dir: &str) -> u64 {
    v["jobs"][0][dir]["total_ios"].as_u64().unwrap_or(0)
}

#[test]
fn table_workloads_run_and_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    let devs: Vec<String> = (0..6)
        .map(|i| dir.path().join(format!("d{i}")).display().to_string())
        .collect();
    let devs = devs.join(",");
    let base = ["--devices", devs.as_str(), "--bs", "1K", "--size", "256K"];
    let json = ["--output-format", "json"];

    let mut args = base.to_vec();
    args.extend([
        "--k",
        "4",
        "--m",
        "2",
        "--create-size",
        "24M",
        "--segment-size",
        "1M",
    ]);
    args.extend(["--rw", "table-put"]);
    args.extend(["--iodepth", "8"]);
    args.extend(json);
    let v = json_run(&args);
    assert_eq!(ops(&v, "write"), 256);
    assert!(v["jobs"][0]["write"]["clat_ns"]["percentile"]["99.000000"].as_u64() > Some(0));
    assert_eq!(v["ectable"]["dataset"]["table"], "ecbench_rows");

    for (rw, extra) in [
        ("table-get", vec!["--verify", "--iodepth", "16"]),
        ("table-range", vec!["--range-rows", "20"]),
        ("table-range", vec!["--range-rows", "20", "--range-view"]),
        ("table-mixed", vec!["--iodepth", "4"]),
    ] {
        let mut args = base.to_vec();
        args.extend(["--rw", rw]);
        args.extend(extra);
        args.extend(json);
        let v = json_run(&args);
        assert!(ops(&v, "read") > 0, "{rw}: no reads: {v}");
        assert_eq!(v["global options"]["rw"], rw);
        if rw == "table-mixed" {
            assert!(ops(&v, "write") > 0, "{rw}: no writes");
            assert_eq!(ops(&v, "read") + ops(&v, "write"), 256);
        }
    }

    let refused = |rest: &[&str], expect: &str| {
        let mut args = vec!["--devices", devs.as_str(), "--size", "256K"];
        args.extend(rest);
        let out = ecbench(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && !stderr.contains("panicked"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expect), "{stderr}");
    };
    refused(&["--rw", "table-put", "--bs", "64"], "at least");
    // Ranges read in place are a table-range option only.
    refused(
        &["--rw", "table-get", "--range-view"],
        "--range-view applies to --rw table-range only",
    );
}
