//! A node that answers the CLI's check (whether it serves the array) but then does not
//! answer the call itself does not hang the CLI: the call gives up at the node-call
//! deadline with exit 75 and says that a write may still take effect there. Before, only
//! the check had a deadline and such a `put` or `delete` waited for ever.
//!
//! The node here is a stand-in: a node file naming this test's own process and a listener
//! that answers `/v1/status/raw` with the array's uuid and holds every other request, either
//! before its answer or after the answer's head (the stalled body was reported as "the
//! node's answer: timeout", exit 69).

mod cli_common;
use cli_common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Serves connections on `listener` for ever: the status check is answered, anything else is
/// read and held open without an answer (`head`: after the head of an answer, without its
/// body).
fn stand_in_node(listener: TcpListener, uuid: String, head: bool) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let uuid = uuid.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                return;
            }
            // The rest of the request head.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            if first.contains("/v1/status/raw") {
                let body = format!("{{\"array_uuid\": \"{uuid}\"}}");
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            } else {
                if head {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
                    );
                    let _ = stream.flush();
                }
                // Holds the call: the node is stuck on it.
                std::thread::sleep(Duration::from_secs(600));
            }
        });
    }
}

/// `ectable` with `args` and `env`, killed (and the test failed) if it runs past `limit`:
/// the hang this test is about must fail it, not stall the suite.
fn ectable_within(args: &[&str], env: &[(&str, &str)], limit: Duration) -> std::process::Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ectable"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ectable");
    let start = Instant::now();
    while matches!(child.try_wait(), Ok(None)) {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} still waited for the node after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("wait for ectable")
}

#[test]
fn a_node_that_stops_answering_after_the_check_does_not_hang_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let p = format6(dir.path(), "d");
    let all = join(&p);
    let out = ectable(&["status", "--devices", &all, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let uuid = v["array_uuid"].as_str().expect("array_uuid").to_string();

    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let mut nodes = Vec::new();
    for head in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        nodes.push(format!("http://{}", listener.local_addr().unwrap()));
        let node_uuid = uuid.clone();
        std::thread::spawn(move || stand_in_node(listener, node_uuid, head));
    }
    let env = [
        ("ECTABLE_RUN_DIR", run.to_str().unwrap()),
        ("ECTABLE_NODE_CALL_TIMEOUT_MS", "1500"),
    ];

    for args in [
        &["delete", "--devices", &all, "--table", "t", "--key", "k"][..],
        &[
            "put",
            "--devices",
            &all,
            "--table",
            "t",
            "--key",
            "k",
            "--value",
            "v",
        ][..],
    ] {
        for url in &nodes {
            let body =
                serde_json::json!({"pid": std::process::id(), "url": url, "array_uuid": uuid});
            std::fs::write(run.join(format!("{uuid}.node")), body.to_string()).unwrap();
            call_gives_up(args, &env);
        }
    }
}

/// `args` through the stuck node ends within the test's limit with exit 75 and the words
/// of the node-call deadline.
fn call_gives_up(args: &[&str], env: &[(&str, &str)]) {
    {
        let t = Instant::now();
        let out = ectable_within(args, env, Duration::from_secs(60));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(75), "{args:?}: {err}");
        assert!(
            err.contains("the storage node did not answer within 2 s")
                && err.contains("may still take effect"),
            "{args:?}: {err}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{args:?} took {:?}",
            t.elapsed()
        );
    }
}
