//! One-shot commands beside a member that stopped answering: `--io-timeout` (or
//! ECTABLE_IO_TIMEOUT) bounds how long each waits for it (docs/operations.md, "A device that
//! stops answering"). The member is a file of a FUSE file system (ectable-faultfs) that holds
//! every request for 40 s; without the option each command waits the 30 s default. Then a
//! replace onto a new device that does not answer fails at the deadline, naming it. Needs
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
    // Six members and a seventh device to replace one with.
    let mut cfg = Config::new(backing.path(), 7, 64 << 20);
    cfg.sync_backing = false;
    let fs = FaultFs::mount(mnt.path(), &cfg).expect("mount faultfs");
    let all = join(&fs.paths()[..6]);
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

    let paths: Vec<String> = fs.paths()[..6]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
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

    // A replace whose new device stops answering: refused at the deadline with the device
    // named (exit 74), and no panic as its threads end. (By hand, with the device hung in
    // the middle of the rebuild, it once died with SIGABRT there: a panic in a thread-local
    // destructor, which devices/tests/deadline.rs reproduces; this order of events does
    // not.)
    fs.faults(2).set_dead(true);
    fs.faults(6).set_delay(HOLD);
    let rest: Vec<_> = [0, 1, 3, 4, 5].iter().map(|&i| fs.path(i)).collect();
    let (old, new) = (fs.path(2), fs.path(6));
    let replace = [
        "--io-timeout",
        "2s",
        "replace",
        "--devices",
        &join(&rest),
        "--old",
        old.to_str().unwrap(),
        "--new",
        new.to_str().unwrap(),
        "--yes",
    ];
    let (out, took) = timed(&replace, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(74), "replace: {err}");
    assert!(
        err.contains("dev6") && err.contains("not done after 2.0 s"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(took < LIMIT, "replace with --io-timeout 2s took {took:?}");
    fs.faults(6).set_delay(Duration::ZERO);
}
