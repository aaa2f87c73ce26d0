//! Helpers shared by the tests that run the `ectable` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `ectable` with `args`.
pub fn ectable(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ectable"))
        .args(args)
        .output()
        .expect("run ectable")
}

/// `n` device file paths `<prefix><i>.img` in `dir`.
pub fn devs(dir: &Path, prefix: &str, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| dir.join(format!("{prefix}{i}.img")))
        .collect()
}

/// The `--devices` list of `p`.
pub fn join(p: &[PathBuf]) -> String {
    p.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A crc32c of each file's whole contents (0 for a file that cannot be read): equal digests
/// before and after a refused command show it wrote nothing.
pub fn digest(paths: &[PathBuf]) -> Vec<u32> {
    paths
        .iter()
        .map(|p| std::fs::read(p).map(|b| crc32c::crc32c(&b)).unwrap_or(0))
        .collect()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A clean failure: non-zero exit, no panic, exactly one line on stderr starting with
/// `ectable: error: ` and containing every needle.
pub fn assert_clean_error(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("ectable: error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected '{n}' in: {err}");
    }
}
