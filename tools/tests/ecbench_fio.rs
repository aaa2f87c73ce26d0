//! ecbench against fio itself, on this machine: the same options given to both, and
//! ecbench's JSON (json+ included), logs and job files must have fio's shape, so that tools
//! written for fio read ecbench's output. fio must be installed; without it the tests print
//! why they skip, unless ECTABLE_REQUIRE_FIO=1 (CI), where they fail instead.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn fio_present() -> bool {
    let ok = Command::new("fio")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("ECTABLE_REQUIRE_FIO").as_deref() != Ok("1"),
            "fio is required (ECTABLE_REQUIRE_FIO=1) but cannot be run"
        );
        eprintln!("skipped: fio is not installed (apt-get install fio)");
    }
    ok
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ecbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ecbench"))
}

fn devices(dir: &Path) -> String {
    let paths: Vec<String> = (0..6)
        .map(|i| dir.join(format!("d{i}")).display().to_string())
        .collect();
    paths.join(",")
}

/// JSON type names, numbers told apart as integers and floats.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every field of `fio` that `ours` lacks or holds with another type, by path. Objects whose
/// keys are data (percentiles, bins, job options, disk_util entries) are compared by the
/// type of their values only.
fn differences(fio: &Value, ours: &Value, path: &str, out: &mut Vec<String>) {
    let data_keyed = ["percentile", "bins", "job options", "global options"];
    match (fio, ours) {
        (Value::Object(f), Value::Object(o)) => {
            let name = path.rsplit('.').next().unwrap_or("");
            if data_keyed.contains(&name) {
                for (k, v) in o {
                    if let Some(fv) = f.values().next() {
                        if kind(fv) != kind(v) {
                            out.push(format!("{path}.{k}: {} vs fio's {}", kind(v), kind(fv)));
                        }
                    }
                }
                return;
            }
            for (k, fv) in f {
                match o.get(k) {
                    None => out.push(format!("{path}.{k}: missing")),
                    Some(ov) => differences(fv, ov, &format!("{path}.{k}"), out),
                }
            }
        }
        (Value::Array(f), Value::Array(o)) => {
            if path.ends_with("disk_util") {
                return;
            }
            if let (Some(fv), Some(ov)) = (f.first(), o.first()) {
                differences(fv, ov, &format!("{path}[0]"), out);
            }
        }
        // fio writes some means as integers when they happen to be whole; a number is a
        // number for those.
        (Value::Number(_), Value::Number(_)) => {}
        (f, o) if kind(f) != kind(o) => {
            out.push(format!("{path}: {} vs fio's {}", kind(o), kind(f)));
        }
        _ => {}
    }
}

#[test]
fn json_plus_has_fios_fields_types_and_histogram() {
    if !fio_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let common = [
        "--rw=randread",
        "--bs=4k",
        "--iodepth=4",
        "--runtime=1",
        "--time_based",
        "--ramp_time=200ms",
        "--output-format=json+",
        "--percentile_list=50:99:99.9",
    ];
    let file = d.join("fio.dat");
    std::fs::write(&file, vec![7u8; 8 << 20]).expect("fio's file");
    let fio_json = d.join("fio.json");
    run(Command::new("fio")
        .arg("--name=parity")
        .arg(format!("--filename={}", file.display()))
        .arg(format!("--output={}", fio_json.display()))
        .args(["--size=8M", "--ioengine=io_uring", "--direct=1"])
        .args(common));
    let fio = std::fs::read(&fio_json).expect("fio's output");
    let fio: Value = serde_json::from_slice(&fio).expect("fio's JSON");
    let devs = devices(d);
    let ours = run(ecbench()
        .args([
            "--devices",
            &devs,
            "--create-size",
            "24M",
            "--k",
            "4",
            "--m",
            "2",
        ])
        .args(["--size=8M", "--name=parity"])
        .args(common));
    let ours: Value = serde_json::from_slice(&ours.stdout).expect("ecbench's JSON");

    let mut diff = Vec::new();
    differences(&fio, &ours, "", &mut diff);
    assert!(
        diff.is_empty(),
        "ecbench's JSON differs from fio's: {diff:#?}"
    );

    let (fj, oj) = (&fio["jobs"][0], &ours["jobs"][0]);
    // The same spellings of the same options.
    for key in ["rw", "bs", "iodepth", "percentile_list"] {
        assert!(oj["job options"][key].is_string(), "job options.{key}");
    }
    assert_eq!(oj["job options"]["rw"], fj["job options"]["rw"]);
    // The asked-for percentiles, named as fio names them.
    let keys = |v: &Value| -> Vec<String> {
        v["read"]["clat_ns"]["percentile"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(keys(oj), keys(fj));
    // json+: bins named by fio's bucket values; their counts add up to the reads.
    let bins = oj["read"]["clat_ns"]["bins"]
        .as_object()
        .expect("clat_ns.bins");
    assert!(!bins.is_empty());
    let total: u64 = bins.values().filter_map(Value::as_u64).sum();
    assert_eq!(total, oj["read"]["total_ios"].as_u64().unwrap_or(0));
    for k in bins.keys() {
        let v: u64 = k.parse().expect("a bin is named by its value in ns");
        // fio's bucket values: exact below 128 ns, then 64 per power of two, odd steps.
        assert!(v < 128 || bins.contains_key(k), "{k}");
    }
    assert!(oj["read"]["iops"].as_f64().unwrap_or(0.0) > 0.0);
    assert_eq!(ours["jobs"][0]["iodepth_level"]["4"], 100.0);
}

#[test]
fn logs_have_fios_layout() {
    if !fio_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let file = d.join("fio.dat");
    std::fs::write(&file, vec![7u8; 8 << 20]).expect("fio's file");
    for avg in ["0", "100"] {
        let fio_prefix = d.join(format!("fio{avg}")).display().to_string();
        let our_prefix = d.join(format!("ours{avg}")).display().to_string();
        let opts = |prefix: &str| {
            vec![
                "--rw=randread".to_string(),
                "--bs=4k".into(),
                "--size=2M".into(),
                format!("--write_lat_log={prefix}"),
                format!("--write_bw_log={prefix}"),
                format!("--write_iops_log={prefix}"),
                format!("--log_avg_msec={avg}"),
            ]
        };
        run(Command::new("fio")
            .arg("--name=logs")
            .arg(format!("--filename={}", file.display()))
            .args([
                "--ioengine=io_uring",
                "--direct=1",
                "--runtime=1",
                "--time_based",
            ])
            .args(opts(&fio_prefix)));
        let dev_dir = d.join(format!("devs{avg}"));
        std::fs::create_dir_all(&dev_dir).expect("dir");
        let devs = devices(&dev_dir);
        run(ecbench()
            .args([
                "--devices",
                &devs,
                "--create-size",
                "24M",
                "--k",
                "4",
                "--m",
                "2",
            ])
            .args(["--runtime=1", "--time_based"])
            .args(opts(&our_prefix)));
        for kind in ["lat", "clat", "slat", "bw", "iops"] {
            let read = |prefix: &str| {
                let p = format!("{prefix}_{kind}.1.log");
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
            };
            let (theirs, mine) = (read(&fio_prefix), read(&our_prefix));
            let shape = |text: &str| -> Vec<usize> {
                let mut cols: Vec<usize> = text.lines().map(|l| l.split(", ").count()).collect();
                cols.dedup();
                cols
            };
            assert_eq!(
                shape(&mine),
                shape(&theirs),
                "{kind} log, log_avg_msec={avg}"
            );
            assert!(!mine.is_empty(), "{kind} log is empty");
            for line in mine.lines() {
                let cols: Vec<u64> = line
                    .split(", ")
                    .map(|c| c.parse().expect("integer columns"))
                    .collect();
                assert_eq!(cols[2], 0, "direction of a read: {line}");
                if avg == "0" {
                    assert_eq!(cols[3], 4096, "block size: {line}");
                } else {
                    assert_eq!(cols[0] % 100, 0, "window ends: {line}");
                }
            }
        }
    }
}

#[test]
fn a_job_file_fio_accepts_runs_and_unsupported_options_are_refused() {
    if !fio_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let devs = devices(d).replace(',', ":");
    let job = d.join("job.fio");
    std::fs::write(
        &job,
        format!(
            "; read 4 KiB values at queue depth 4\n[global]\nioengine=io_uring\ndirect=1\n\
             bs=4k\nruntime=1\ntime_based\n\n[qd4]\nrw=randread\niodepth=4\nsize=4M\n\
             filename={devs}\n"
        ),
    )
    .expect("job file");
    run(Command::new("fio").arg("--parse-only").arg(&job));
    let out = run(ecbench()
        .arg(&job)
        .args(["--create-size", "24M", "--k", "4", "--m", "2"])
        .args(["--output-format=json", "--status-interval=300ms"]));
    let text = String::from_utf8_lossy(&out.stdout);
    // Interim reports (one JSON object per line) come before the final document.
    let (interim, last) = text.split_at(text.find("{\n").expect("the final report"));
    assert!(interim.lines().count() >= 2, "interim lines: {interim}");
    for l in interim.lines() {
        let v: Value = serde_json::from_str(l).expect("an interim line is JSON");
        assert!(v["read"]["total_ios"].as_u64().is_some(), "{l}");
    }
    let v: Value = serde_json::from_str(last).expect("final JSON");
    assert_eq!(v["jobs"][0]["jobname"], "qd4");
    assert_eq!(v["jobs"][0]["job options"]["iodepth"], "4");
    assert_eq!(v["jobs"][0]["job options"]["ioengine"], "io_uring");

    std::fs::write(&job, "[j]\nrw=read\nfilename=x\nzonemode=zbd\n").expect("job file");
    let out = ecbench().arg(&job).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("line 4") && err.contains("zonemode"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn the_comparison_finds_missing_fields_and_other_types() {
    let fio = serde_json::json!({ "jobs": [{ "read": { "iops": 1.5, "clat_ns": { "N": 3 } },
                                           "jobname": "x" }] });
    let ours = serde_json::json!({ "jobs": [{ "read": { "iops": 2.0, "clat_ns": {} },
                                            "jobname": 7 }] });
    let mut diff = Vec::new();
    differences(&fio, &ours, "", &mut diff);
    assert_eq!(
        diff,
        vec![
            ".jobs[0].jobname: integer vs fio's string".to_string(),
            ".jobs[0].read.clat_ns.N: missing".to_string(),
        ]
    );
}
