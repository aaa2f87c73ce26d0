//! Smoke tests of the `ecbench` binary on tiny file-backed devices: a write and a random read
//! run with `--compare-raw` and JSON output must report fio's fields, non-zero IOPS and the
//! engine/raw ratios; bad command lines and unsafe requests must end with one error line and a
//! non-zero exit, never a panic.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// Six file devices of 24 MiB (enough for two 8 MiB segments each), created by ecbench.
fn devices(dir: &Path) -> String {
    let paths: Vec<String> = (0..6)
        .map(|i| dir.join(format!("d{i}")).display().to_string())
        .collect();
    paths.join(",")
}

fn ecbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecbench"))
        .args(args)
        .output()
        .expect("run ecbench")
}

/// The options that create and format the six devices as RS(4,2).
fn format_args_of(devs: &str) -> [&str; 8] {
    [
        "--devices",
        devs,
        "--create-size",
        "24M",
        "--k",
        "4",
        "--m",
        "2",
    ]
}

fn json_run(args: &[&str]) -> Value {
    let out = ecbench(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ecbench {args:?} failed: {stderr}");
    serde_json::from_slice(&out.stdout).expect("ecbench prints one JSON document")
}

fn number(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = cur
            .get(p)
            .unwrap_or_else(|| panic!("missing field {p} of {path:?} in {v}"));
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {cur}"))
}

#[test]
fn write_and_randread_report_iops_and_raw_ratios() {
    let dir = tempfile::tempdir().expect("temp dir");
    let devs = devices(dir.path());
    let common = format_args_of(&devs);

    let mut args = common.to_vec();
    args.extend([
        "--rw=write",
        "--bs=64K",
        "--size=4M",
        "--iodepth=4",
        "--compare-raw",
    ]);
    args.extend(["--output-format=json"]);
    let w = json_run(&args);
    let job = &w["jobs"][0];
    assert!(number(job, &["write", "iops"]) > 0.0);
    assert_eq!(number(job, &["write", "io_bytes"]), (4 << 20) as f64);
    assert!(number(job, &["write", "clat_ns", "percentile", "99.000000"]) > 0.0);
    let ratios = &w["ectable"]["ratios"]["write"];
    assert!(number(ratios, &["engine_to_raw"]) > 0.0);
    assert!(number(ratios, &["engine_to_target"]) > 0.0);
    assert!(number(&w["ectable"], &["raw", "write", "iops"]) > 0.0);
    assert!(number(&w["ectable"], &["write_amplification"]) >= 1.5);

    // One synced 4 KiB put, acknowledged by the sync journal: its stripe is written before
    // the bytes are counted (the figure read 0.000).
    let mut args = common.to_vec();
    args.extend([
        "--rw=write",
        "--bs=4K",
        "--size=4K",
        "--iodepth=1",
        "--force",
    ]);
    args.extend(["--output-format=json"]);
    let w = json_run(&args);
    assert!(
        number(&w["ectable"], &["write_amplification"]) >= 1.5,
        "{}",
        w["ectable"]
    );

    // Writes keep up to --iodepth puts in flight in groups; every put is counted once, also
    // those of the groups still in flight at the end (265 puts: 8 groups of 8, and a rest).
    let mut args = common.to_vec();
    args.extend([
        "--force",
        "--rw=write",
        "--bs=4K",
        "--size=1060K",
        "--iodepth=64",
        "--output-format=json",
    ]);
    let w = json_run(&args);
    let job = &w["jobs"][0];
    assert_eq!(number(job, &["write", "total_ios"]), 265.0);
    assert_eq!(number(job, &["write", "io_bytes"]), (1060 << 10) as f64);

    // The devices now hold an array: formatting them again needs --force.
    let mut args = common.to_vec();
    args.extend([
        "--rw",
        "randread",
        "--size",
        "1M",
        "--force",
        "--compare-raw",
    ]);
    args.extend(["--bs", "4K", "--iodepth", "8", "--output-format", "json"]);
    let r = json_run(&args);
    assert!(number(&r["jobs"][0], &["read", "iops"]) > 0.0);
    assert_eq!(r["ectable"]["dataset"]["laid_down"], Value::Bool(true));
    let ratios = &r["ectable"]["ratios"]["read"];
    assert!(number(ratios, &["engine_to_raw"]) > 0.0);
    assert!(number(ratios, &["iops_engine_to_raw"]) > 0.0);

    // fio's spellings and fields: rw randrw for the random mix, ioengine io_uring or psync,
    // time and job_start; --output writes the report to a file, nothing to stdout. (On a
    // fresh array of larger devices: the mix has no room to write on these small ones,
    // and a run that can do no I/O is an error.)
    let report = dir.path().join("report.json");
    let big = dir.path().join("big");
    std::fs::create_dir(&big).expect("dir");
    let big_devs = devices(&big);
    let out = ecbench(&[
        "--devices",
        &big_devs,
        "--create-size",
        "64M",
        "--k",
        "4",
        "--m",
        "2",
        "--force",
        "--rw",
        "randrw",
        "--size",
        "1M",
        "--output-format",
        "json",
        "--output",
        report.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "the report went to stdout too");
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let opts = &r["jobs"][0]["job options"];
    assert_eq!(opts["rw"], "randrw");
    let engine = opts["ioengine"].as_str().unwrap();
    assert!(engine == "io_uring" || engine == "psync", "{engine}");
    let time = r["time"].as_str().unwrap();
    assert_eq!(time.split_whitespace().count(), 5, "{time}");
    // fio's latency distribution: the buckets of the three units add up to 100 % (a
    // read run: these small devices are too full by now for the mix to write).
    let rr = json_run(&[
        "--devices",
        &devs,
        "--rw",
        "randread",
        "--size",
        "1M",
        "--output-format",
        "json",
    ]);
    let job = &rr["jobs"][0];
    assert!(number(job, &["read", "total_ios"]) > 0.0);
    let total: f64 = ["latency_ns", "latency_us", "latency_ms"]
        .iter()
        .flat_map(|u| job[u].as_object().unwrap().values())
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!(
        (total - 100.0).abs() < 0.01,
        "latency buckets sum to {total}"
    );
    assert!(job["latency_ms"].get(">=2000").is_some());
    let start = number(&r["jobs"][0], &["job_start"]);
    assert!(
        start > 1.7e12 && start <= number(&r, &["timestamp_ms"]),
        "{start}"
    );

    // Without --k/--m the array that is there is used, and its data set is found.
    let args = [
        "--devices",
        &devs,
        "--rw",
        "randread",
        "--size",
        "1M",
        "--output-format",
        "json",
    ];
    let again = json_run(&args);
    assert!(number(&again["jobs"][0], &["read", "iops"]) > 0.0);
    assert_eq!(again["ectable"]["dataset"]["laid_down"], Value::Bool(false));
    assert_eq!(again["ectable"]["ratios"], Value::Null);

    // Refusals: another format without --force, and a raw pass over an existing array.
    let mut args = common.to_vec();
    args.extend(["--rw", "write", "--size", "1M"]);
    assert_refused(&args, "use --force");
    assert_refused(
        &[
            "--devices",
            &devs,
            "--rw",
            "write",
            "--size",
            "1M",
            "--compare-raw",
        ],
        "--k",
    );
}

fn assert_refused(args: &[&str], expect: &str) {
    let out = ecbench(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ecbench {args:?} should fail");
    assert!(
        stderr.starts_with("ecbench: error: "),
        "one error line expected: {stderr}"
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one error line expected: {stderr}"
    );
    assert!(stderr.contains(expect), "expected '{expect}' in: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout when refused");
}

#[test]
fn bad_command_lines_exit_non_zero_without_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let devs = devices(dir.path());
    assert_refused(
        &["--devices", &devs, "--rw", "sideways", "--size", "1M"],
        "--rw",
    );
    assert_refused(
        &[
            "--devices",
            &devs,
            "--rw",
            "read",
            "--bs",
            "12x",
            "--size",
            "1M",
        ],
        "12x",
    );
    assert_refused(&["--rw", "read", "--size", "1M"], "--devices");
    assert_refused(
        &["--devices", &devs, "--rw", "read", "--runtime", "0"],
        "runtime",
    );
    assert_refused(&["--devices", &devs, "--rw", "read"], "--size or --runtime");
    assert_refused(
        &["--devices", &devs, "--rw", "read", "--size", "1M"],
        "no such device",
    );
    let args = [
        "--devices",
        &devs,
        "--create-size",
        "24M",
        "--k",
        "9",
        "--m",
        "2",
    ];
    assert_refused(
        &[&args[..], &["--rw", "write", "--size", "1M"]].concat(),
        "devices",
    );
    let args = [
        "--devices",
        &devs,
        "--create-size",
        "24M",
        "--k",
        "4",
        "--m",
        "2",
    ];
    assert_refused(
        &[&args[..], &["--rw", "write", "--bs", "1M", "--size", "1M"]].concat(),
        "--bs",
    );
    // The geometry is refused before any file is created.
    assert!(
        !dir.path().join("d0").exists(),
        "a refused run created a device file"
    );
    // Devices made too small: refused, and the files it made are removed again (they were
    // left behind).
    let tiny = [
        "--devices",
        &devs,
        "--create-size",
        "1M",
        "--k",
        "4",
        "--m",
        "2",
    ];
    assert_refused(
        &[&tiny[..], &["--rw", "write", "--size", "1M"]].concat(),
        "devices too small",
    );
    assert!(
        !dir.path().join("d0").exists(),
        "a refused run left a device file it made"
    );
    // `--rw overwrite` with no overwrites (a write amplification of 0 / 0), and a fill the
    // array's reserve leaves no room for: refused before anything is loaded (the fill ran
    // into "no space" part-way through its load).
    assert_refused(
        &[&args[..], &["--rw", "overwrite", "--loops", "0"]].concat(),
        "--loops 0: give a positive multiple",
    );
    // (The engine's warnings about the checkpoint it had no room for come first.)
    let out = ecbench(&[&args[..], &["--rw", "overwrite", "--fill", "0.95"]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let last = err.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("ecbench: error: --fill 0.95: ") && last.ends_with("or larger devices"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// `--slow-device` slows one device for the measured pass only (the fail-slow figure): the
/// run completes with reads served, the report names the slow device, and bad values are
/// refused before anything is written.
#[test]
fn a_slow_device_run_reports_and_bad_values_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let devs = devices(dir.path());
    let common = format_args_of(&devs);
    assert_refused(
        &[
            &common[..],
            &["--rw", "randread", "--size", "1M", "--slow-device", "6:1ms"],
        ]
        .concat(),
        "only 6 devices",
    );
    assert_refused(
        &[
            &common[..],
            &[
                "--rw",
                "randread",
                "--size",
                "1M",
                "--slow-device",
                "1:1ms",
                "--io-engine",
                "uring",
            ],
        ]
        .concat(),
        "psync",
    );
    assert_refused(
        &[
            &common[..],
            &["--rw", "randread", "--size", "1M", "--slow-device", "one"],
        ]
        .concat(),
        "IDX:DELAY",
    );
    assert!(
        !dir.path().join("d0").exists(),
        "a refused run created a device file"
    );
    let v = json_run(
        &[
            &common[..],
            &[
                "--rw",
                "randread",
                "--size",
                "1M",
                "--iodepth",
                "8",
                "--slow-device",
                "2:2ms",
                "--output-format",
                "json",
            ],
        ]
        .concat(),
    );
    let job = &v["jobs"][0];
    assert_eq!(job["job options"]["slow_device"], "2:2ms", "{job}");
    assert!(job["read"]["total_ios"].as_u64().unwrap_or(0) > 0, "{job}");
    // The delay fired: some read waited for the slow device.
    let max_ns = job["read"]["clat_ns"]["max"].as_u64().unwrap_or(0);
    assert!(
        max_ns >= 2_000_000,
        "no read took the 2 ms delay: {max_ns} ns"
    );
}

/// `--rate_iops` caps each job's reads per second, in the engine pass and in the raw pass,
/// and is named in the report; a write workload refuses it before anything is written.
#[test]
fn rate_iops_caps_the_reads_of_both_passes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let devs = devices(dir.path());
    let common = format_args_of(&devs);
    assert_refused(
        &[
            &common[..],
            &["--rw", "write", "--size", "1M", "--rate_iops", "100"],
        ]
        .concat(),
        "--rate_iops applies to --rw read and randread only",
    );
    assert_refused(
        &[
            &common[..],
            &["--rw", "randread", "--size", "1M", "--rate_iops", "0"],
        ]
        .concat(),
        "--rate-iops",
    );
    assert!(
        !dir.path().join("d0").exists(),
        "a refused run created a device file"
    );
    let rate = 2000.0;
    let v = json_run(
        &[
            &common[..],
            &[
                "--rw",
                "randread",
                "--size",
                "4M",
                "--iodepth",
                "16",
                "--numjobs",
                "2",
                "--runtime",
                "2s",
                "--time_based",
                "--rate_iops",
                "2000",
                "--compare-raw",
                "--output-format",
                "json",
            ],
        ]
        .concat(),
    );
    let job = &v["jobs"][0];
    assert_eq!(job["job options"]["rate_iops"], "2000", "{job}");
    // Two jobs of 2,000 each: never more than 4,000 a second (files in a temporary
    // directory serve many times that unpaced), and not far below it either.
    let engine = number(job, &["read", "iops"]);
    let raw = number(&v, &["ectable", "ratios", "read", "raw_iops"]);
    for (pass, iops) in [("engine", engine), ("raw", raw)] {
        assert!(
            iops <= 2.0 * rate * 1.02 && iops >= 2.0 * rate * 0.5,
            "{pass} pass: {iops} IOPS at --rate_iops 2000 x 2 jobs"
        );
    }
}

#[test]
fn chart_is_valid_svg_with_engine_and_raw_side_by_side() {
    let dir = tempfile::tempdir().expect("temp dir");
    let devs = devices(dir.path());
    let chart = dir.path().join("run.svg");
    let mut args = format_args_of(&devs).to_vec();
    let chart_arg = format!("--chart={}", chart.display());
    args.extend([
        "--rw=randread",
        "--bs=4K",
        "--size=2M",
        "--iodepth=4",
        "--compare-raw",
        &chart_arg,
    ]);
    let out = ecbench(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&chart).expect("the chart was written");
    let doc = roxmltree::Document::parse(&text).expect("the chart is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    for want in ["engine read", "raw read", "randread"] {
        assert!(
            texts.iter().any(|t| t.contains(want)),
            "no text '{want}' in {texts:?}"
        );
    }
    let lines = doc
        .descendants()
        .filter(|n| matches!(n.tag_name().name(), "polyline" | "path"))
        .count();
    assert!(lines >= 4, "{lines} lines drawn");

    // A chart, log or report that cannot be written is an error before anything is
    // written: the devices keep their array (no format with --force), nothing runs.
    let before = std::fs::read(dir.path().join("d0")).expect("device");
    for bad_arg in [
        "--chart=/nonexistent/dir/x.svg",
        "--write_lat_log=/nonexistent/dir/x",
        "--output=/nonexistent/dir/x.json",
    ] {
        let mut bad = format_args_of(&devs).to_vec();
        bad.extend(["--force", "--rw=randwrite", "--size=1M", bad_arg]);
        let out = ecbench(&bad);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("/nonexistent/dir"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(std::fs::read(dir.path().join("d0")).expect("device") == before);
}

/// A write run on an array with no room left does no I/O: that is an error saying why,
/// not a report of zeros with exit 0.
#[test]
fn a_run_that_does_no_io_is_an_error_saying_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let devs = devices(dir.path());
    let mut fill = format_args_of(&devs).to_vec();
    fill.extend(["--rw=write", "--bs=64K", "--iodepth=16", "--runtime=20s"]);
    // Writes until the array is nearly full (every write is a new row).
    let out = ecbench(&fill);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("stopped early"), "{text}");
    let out = ecbench(&[
        "--devices",
        &devs,
        "--rw=randwrite",
        "--bs=64K",
        "--runtime=1s",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exit 0 with: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains("did no I/O") && err.contains("full"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
