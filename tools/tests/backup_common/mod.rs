//! Helpers shared by the backup CLI tests: running `ectable`, device file lists, digests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn ectable(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ectable"))
        .args(args)
        .output()
        .expect("run ectable")
}

/// Runs `ectable` and insists on success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = ectable(args);
    assert!(
        out.status.success(),
        "ectable {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn devs(dir: &Path, prefix: &str, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| dir.join(format!("{prefix}{i}.img")))
        .collect()
}

pub fn join(p: &[PathBuf]) -> String {
    p.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// crc32c of each file (0 when it does not exist).
pub fn digest(paths: &[PathBuf]) -> Vec<u32> {
    paths
        .iter()
        .map(|p| std::fs::read(p).map(|b| crc32c::crc32c(&b)).unwrap_or(0))
        .collect()
}

/// Formats `n` device files of `size` with RS(k, m) and 1 MiB segments.
pub fn format(dir: &Path, prefix: &str, n: usize, k: usize, m: usize, size: &str) -> Vec<PathBuf> {
    let p = devs(dir, prefix, n);
    ok(&[
        "format",
        "--devices",
        &join(&p),
        "--k",
        &k.to_string(),
        "--m",
        &m.to_string(),
        "--segment-size",
        "1M",
        "--create-size",
        size,
    ]);
    p
}

/// The one error line of a failed command (no panic, non-zero exit, exactly one
/// `ectable: error:` line; progress lines may come before it).
pub fn error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("ectable: error: "))
        .collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr}");
    lines[0].to_string()
}

/// The byte offset an error names after `FILE: at byte `.
pub fn error_offset(line: &str, file: &Path) -> u64 {
    let needle = format!("{}: at byte ", file.display());
    let at = line.find(&needle).unwrap_or_else(|| {
        panic!(
            "the error does not name {} and a byte offset: {line}",
            file.display()
        )
    });
    let rest = &line[at + needle.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no offset in: {line}"))
}

/// Every row of every key/value table as `ectable export` prints it, by table.
pub fn export(devices: &str, tables: &[&str]) -> Vec<String> {
    tables
        .iter()
        .map(|t| ok(&["export", "--devices", devices, "--table", t, "-"]))
        .collect()
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
