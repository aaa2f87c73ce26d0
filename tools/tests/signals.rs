//! Ctrl-C (SIGINT) or SIGTERM during the long commands: each stops at its next safe point,
//! closes the array cleanly, says what was done and what stands, and exits 128 + the signal
//! (130, 143). A load names the rows that are in (and exactly those read back); a scrub its
//! progress (not recorded as the last scrub); a rebuild resumes where it stopped; a backup
//! leaves no file. Before, the default action ended each where it stood.

mod cli_common;
use cli_common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `ectable`, its stderr read by a thread.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ectable"));
        cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
        // The tests may run under a shell that started them in the background, with SIGINT
        // ignored, which the child would inherit (and ectable keeps a signal ignored at its
        // start ignored): the child gets the default disposition, as from a terminal.
        // SAFETY: between fork and exec only `signal`, which is async-signal-safe, runs.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("run ectable");
        let err = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (at most 60 s) for a stderr line containing `needle`.
    fn wait_for(&mut self, needle: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let hit = line.contains(needle);
                self.seen.push(line);
                if hit {
                    return;
                }
            }
        }
        panic!("no line with {needle:?} within 60 s: {:?}", self.seen);
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success());
    }

    /// Waits for the exit (at most 60 s; killed after that): its code and all of stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let code = loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                break st.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("did not stop within 60 s of the signal: {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        (code, self.seen.join("\n"))
    }
}

/// Six 256 MiB files formatted RS(4,2) with 1 MiB segments.
fn array(dir: &std::path::Path) -> (Vec<std::path::PathBuf>, String) {
    let d = devs(dir, "s", 6);
    let all = join(&d);
    let out = ectable(&[
        "format",
        "--devices",
        &all,
        "--k",
        "4",
        "--m",
        "2",
        "--create-size",
        "256M",
        "--segment-size",
        "1M",
        "--yes",
    ]);
    assert!(out.status.success(), "format: {}", stderr(&out));
    (d, all)
}

/// The number `N` in "rows 0 to N are in table".
fn last_row_in(text: &str) -> u64 {
    let at = text
        .find("rows 0 to ")
        .unwrap_or_else(|| panic!("no 'rows 0 to': {text}"))
        + "rows 0 to ".len();
    text[at..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no row number: {text}"))
}

#[test]
fn a_load_stopped_by_sigint_names_the_rows_that_are_in() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, all) = array(dir.path());
    let mut run = Running::start(&[
        "load",
        "--devices",
        &all,
        "--table",
        "t",
        "--rows",
        "800000",
        "--value-size",
        "1000",
    ]);
    run.wait_for("load: 10%");
    run.signal("-INT");
    let (code, text) = run.finish();
    assert_eq!(code, Some(130), "{text}");
    assert!(text.contains("interrupted (SIGINT)"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    let last = last_row_in(&text);
    assert!(last > 0 && last < 799_999, "{text}");
    // Exactly the rows it names are in, and the array closed cleanly.
    let n = (last + 1).to_string();
    let out = ectable(&[
        "verify",
        "--devices",
        &all,
        "--table",
        "t",
        "--rows",
        &n,
        "--value-size",
        "1000",
    ]);
    assert!(out.status.success(), "verify: {}", stderr(&out));
    let out = ectable(&["status", "--devices", &all, "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["keys"].as_u64(), Some(last + 1), "{st}");
    assert_eq!(out.status.code(), Some(0), "{st}");
}

#[test]
fn scrub_rebuild_and_backup_stop_at_a_signal_and_say_how_to_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (d, all) = array(dir.path());
    load_rows(&all, "40000", "1000");

    // A scrub at 4 MiB/s (about ten seconds), SIGTERM: 143, not recorded as the last scrub.
    let mut run = Running::start(&["scrub", "--devices", &all, "--rate", "4M"]);
    run.wait_for("scrub:");
    std::thread::sleep(Duration::from_millis(500));
    run.signal("-TERM");
    let (code, text) = run.finish();
    assert_eq!(code, Some(143), "{text}");
    assert!(
        text.contains("interrupted (SIGTERM): the scrub stopped after"),
        "{text}"
    );
    let out = ectable(&["status", "--devices", &all, "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(st["last_scrub"].is_null(), "{}", st["last_scrub"]);

    // A backup at 4 MiB/s, SIGINT: 130, no file left.
    let file = dir.path().join("full.ectb");
    let mut run = Running::start(&[
        "backup",
        "--devices",
        &all,
        "--to",
        file.to_str().unwrap(),
        "--rate",
        "4M",
    ]);
    run.wait_for("backup:");
    std::thread::sleep(Duration::from_millis(500));
    run.signal("-INT");
    let (code, text) = run.finish();
    assert_eq!(code, Some(130), "{text}");
    assert!(
        text.contains("the unfinished backup file was removed"),
        "{text}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map_while(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("ectb"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A replace whose rebuild runs at 4 MiB/s, SIGINT: 130; 'ectable rebuild' finishes it.
    let new = dir.path().join("new.img");
    let mut now: Vec<_> = d.clone();
    now[2] = new.clone();
    let now = join(&now);
    let mut run = Running::start(&[
        "replace",
        "--devices",
        &all,
        "--old",
        d[2].to_str().unwrap(),
        "--new",
        new.to_str().unwrap(),
        "--create-size",
        "256M",
        "--rate",
        "4M",
        "--yes",
    ]);
    run.wait_for("rebuild:");
    std::thread::sleep(Duration::from_millis(500));
    run.signal("-INT");
    let (code, text) = run.finish();
    assert_eq!(code, Some(130), "{text}");
    assert!(text.contains("resumes where it stopped"), "{text}");
    let out = ectable(&["status", "--devices", &now]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("REBUILDING"), "{}", stdout(&out));
    let out = ectable(&["rebuild", "--devices", &now]);
    assert!(out.status.success(), "rebuild: {}", stderr(&out));
    let out = ectable(&["status", "--devices", &now]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = ectable(&[
        "verify",
        "--devices",
        &now,
        "--table",
        "t",
        "--rows",
        "40000",
        "--value-size",
        "1000",
    ]);
    assert!(out.status.success(), "verify: {}", stderr(&out));
}
