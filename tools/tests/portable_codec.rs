//! The codec's portable inner loop (what a CPU without SSSE3/AVX2 runs) does the whole story:
//! `ectable demo` (format, load, verify, lose a device, degraded reads, replace, rebuild,
//! verify) with ECTABLE_CODEC_KERNEL=portable, and the array it writes reads back with the
//! fastest kernel, and the other way round: the kernels write the same parity.

mod cli_common;
use cli_common::*;

fn ectable_with_kernel(kernel: &str, args: &[&str]) -> std::process::Output {
    ectable_env(args, &[("ECTABLE_CODEC_KERNEL", kernel)])
}

#[test]
fn the_portable_kernel_runs_the_demo_and_agrees_with_the_fast_one() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let out = ectable_with_kernel(
        "portable",
        &[
            "demo",
            "--dir",
            demo_dir.to_str().unwrap(),
            "--rows",
            "3000",
            "--value-size",
            "4K",
            "--device-size",
            "64M",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("portable kernel"), "{text}");
    // Written by one kernel, rebuilt through the other: the parity must be the same bytes.
    let d = format6_env(dir.path(), "d", &[("ECTABLE_CODEC_KERNEL", "portable")]);
    let all = join(&d);
    let rows = ["--table", "t", "--rows", "3000", "--value-size", "1K"];
    let mut load = vec!["load", "--devices", &all];
    load.extend(rows);
    assert!(ectable_with_kernel("portable", &load).status.success());
    // The fastest kernel this CPU has (the default) scrubs: every parity chunk agrees.
    let out = ectable(&["scrub", "--devices", &all, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Two devices lost: every read rebuilds data from parity with the fast kernel.
    let two_left_out = join(&d[2..]);
    let mut verify = vec!["verify", "--devices", &two_left_out];
    verify.extend(rows);
    let out = ectable(&verify);
    assert!(out.status.success(), "{}", stderr(&out));
    // And the other way round: the fast kernel writes, the portable one scrubs and rebuilds.
    let more = ["--table", "u", "--rows", "2000", "--value-size", "3000"];
    let mut load = vec!["load", "--devices", &all];
    load.extend(more);
    assert!(ectable(&load).status.success());
    let out = ectable_with_kernel("portable", &["scrub", "--devices", &all]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut verify = vec!["verify", "--devices", &two_left_out];
    verify.extend(more);
    let out = ectable_with_kernel("portable", &verify);
    assert!(out.status.success(), "{}", stderr(&out));
}
