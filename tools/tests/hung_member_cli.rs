//! One-shot commands beside a member that stopped answering: `--io-timeout` (or
//! ECTABLE_IO_TIMEOUT) bounds how long each waits for it (docs/operations.md, "A device that
//! stops answering"). The member is a file of a FUSE file system (ectable-faultfs) that holds
//! every request for 40 s; without the option each command waits the 30 s default. Needs
//! root (the mount); skips with a reason otherwise, unless ECTABLE_REQUIRE_LOOP=1.

mod cli_common;
use cli_common::*;
use ectable_faultfs::{Config, FaultFs};
use std::time::{Duration, Instant};

/// How long the member holds each request.
const HOLD: Duration = Duration::from_secs(40);
/// What a command may take with `--io-timeout 2s`: the deadline, the command's own work, and
/// room for a slow machine, well under the 30 s default.
const LIMIT: Duration = Duration::from_secs(15);

/// Runs `ectable` with `args` and `env`, and how long it took.
fn timed(args: &[&str], env: &[(&str, &str)]) -> (std::process::Output, Duration) {
    let t = Instant::now();
    let out = ectable_env(args, env);
    (out, t.elapsed())
}

#[test]
fn one_shot_commands_wait_for_a_hung_member_no_longer_than_the_io_deadline() {
    let test = "one_shot_commands_wait_for_a_hung_member_no_longer_than_the_io_deadline";
    if !is_root() || !std::path::Path::new("/dev/fuse").exists() {
        assert!(
            std::env::var("ECTABLE_REQUIRE_LOOP").map_or(true, |v| v != "1"),
            "{test}: ECTABLE_REQUIRE_LOOP=1 but FUSE cannot be mounted here"
        );
        eprintln!("SKIP {test}: mounting FUSE needs root and /dev/fuse");
        return;
    }
    let backing = tempfile::tempdir().expect("backing dir");
    let mnt = tempfile::tempdir().expect("mount dir");
    let mut cfg = Config::new(backing.path(), 6, 64 << 20);
    cfg.sync_backing = false;
    let fs = FaultFs::mount(mnt.path(), &cfg).expect("mount faultfs");
    let all = join(&fs.paths());
    let out = ectable(&["format", "--devices", &all, "--k", "4", "--m", "2", "--yes"]);
    assert!(out.status.success(), "format: {}", stderr(&out));
    load_rows(&all, "200", "4K");

    fs.faults(3).set_delay(HOLD);
    let get = [
        "--io-timeout",
        "2s",
        "get",
        "--devices",
        &all,
        "--table",
        "t",
        "--key",
        "row000000000007",
    ];
    let (out, took) = timed(&get, &[]);
    assert!(out.status.success(), "get: {}", stderr(&out));
    assert_eq!(out.stdout.len(), 4096, "the row's value");
    assert!(took < LIMIT, "get with --io-timeout 2s took {took:?}");

    // The option after the command, and from the environment.
    let (out, took) = timed(
        &["status", "--devices", &all, "--json"],
        &[("ECTABLE_IO_TIMEOUT", "2s")],
    );
    assert!(
        took < LIMIT,
        "status with ECTABLE_IO_TIMEOUT=2s took {took:?}"
    );
    assert_eq!(out.status.code(), Some(1), "degraded: {}", stderr(&out));
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(st["state"], "DEGRADED", "{st}");
    let text = st.to_string();
    assert!(
        text.contains("dev3") && text.contains("stopped answering"),
        "{text}"
    );

    let paths: Vec<String> = fs.paths().iter().map(|p| p.display().to_string()).collect();
    let mut examine = vec!["examine", "--io-timeout", "2s"];
    examine.extend(paths.iter().map(String::as_str));
    let (out, took) = timed(&examine, &[]);
    assert!(took < LIMIT, "examine with --io-timeout 2s took {took:?}");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("dev3") && text.contains("not done after 2.0 s"),
        "{text}"
    );
    assert!(
        fs.faults(3).counters().delayed_ops > 0,
        "the member held no request"
    );
    fs.faults(3).set_delay(Duration::ZERO);
}
