//! `ectable model`: a good invocation gives parseable JSON with the expected numbers; bad
//! inputs (k = 0, AFR 100%, negative hours) give one error line, a non-zero exit, no panic.

use std::process::{Command, Output};

fn ectable(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ectable"))
        .args(args)
        .output()
        .expect("run ectable")
}

fn assert_clean_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("ectable: error: "), "{stderr}");
    assert!(stderr.contains(needle), "expected '{needle}' in: {stderr}");
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

#[test]
fn rs42_json_matches_the_closed_form() {
    // AFR 1.5%, 24 h rebuild, RS(4,2) over 6 devices, serial repair: with μ ≫ λ the exact
    // MTTDL is within 1 % of μ² / (6·5·4·λ³).
    let out = ectable(&[
        "model",
        "--k",
        "4",
        "--m",
        "2",
        "--afr",
        "1.5%",
        "--rebuild-hours",
        "24",
        "--json",
    ]);
    let v = json_of(&out);
    assert_eq!(v["k"], 4);
    assert_eq!(v["m"], 2);
    assert_eq!(v["devices"], 6);
    let lambda = -(1.0f64 - 0.015).ln() / 8766.0;
    let mu = 1.0 / 24.0;
    let approx_years = mu * mu / (120.0 * lambda.powi(3)) / 8766.0;
    let s = &v["scenarios"][0];
    let years = s["mttdl_years"].as_f64().expect("mttdl_years");
    assert!(
        (years - approx_years).abs() / approx_years < 0.01,
        "{years} vs {approx_years}"
    );
    let p = s["loss_probability_1y"].as_f64().expect("loss probability");
    assert!(p > 0.0 && p < 1e-6, "{p}");
    let nines = s["durability_nines_1y"].as_f64().expect("nines");
    assert!((nines + p.log10()).abs() < 1e-9);
}

#[test]
fn simulation_runs_and_agrees_at_high_failure_rates() {
    // Failure-prone devices so losses are frequent enough to count.
    let out = ectable(&[
        "model",
        "--k",
        "4",
        "--m",
        "2",
        "--mttf-hours",
        "500",
        "--rebuild-hours",
        "50",
        "--simulate",
        "--years",
        "2",
        "--trials",
        "300",
        "--seed",
        "3",
        "--json",
    ]);
    let v = json_of(&out);
    let sim = &v["simulation"];
    assert!(sim["losses"].as_u64().expect("losses") > 100);
    let rate = sim["analytic_losses_per_year"].as_f64().expect("rate");
    let lo = sim["losses_per_year_ci95"][0].as_f64().expect("lo");
    let hi = sim["losses_per_year_ci95"][1].as_f64().expect("hi");
    assert!(lo <= rate && rate <= hi, "{rate} not in [{lo}, {hi}]");
}

#[test]
fn text_output_names_the_numbers() {
    let out = ectable(&[
        "model",
        "--k",
        "1",
        "--m",
        "2",
        "--capacity",
        "16T",
        "--rebuild-rate",
        "200M",
        "--ure",
        "1e-15",
        "--scrub-days",
        "14",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3-way replication"), "{text}");
    assert!(text.contains("expected years to first loss"), "{text}");
    assert!(text.contains("nines"), "{text}");
}

#[test]
fn bad_inputs_are_one_line_errors() {
    assert_clean_error(
        &ectable(&["model", "--k", "0", "--m", "2", "--rebuild-hours", "24"]),
        "--k must be at least 1",
    );
    assert_clean_error(
        &ectable(&[
            "model",
            "--k",
            "4",
            "--m",
            "2",
            "--afr",
            "100%",
            "--rebuild-hours",
            "24",
        ]),
        "--afr must be below 100%",
    );
    assert_clean_error(
        &ectable(&["model", "--k", "4", "--m", "2", "--rebuild-hours", "-5"]),
        "must not be negative",
    );
    assert_clean_error(
        &ectable(&["model", "--k", "4", "--m", "2", "--rebuild-hours", "0"]),
        "greater than zero",
    );
    assert_clean_error(
        &ectable(&[
            "model",
            "--k",
            "4",
            "--m",
            "2",
            "--rebuild-hours",
            "24",
            "--ure",
            "1e-15",
        ]),
        "--ure needs --capacity",
    );
    assert_clean_error(
        &ectable(&["model", "--k", "4", "--m", "2"]),
        "--rebuild-hours",
    );
    assert_clean_error(
        &ectable(&[
            "model",
            "--k",
            "4",
            "--m",
            "2",
            "--device-count",
            "5",
            "--rebuild-hours",
            "9",
        ]),
        "needs at least 6 devices",
    );
}
