//! `ectable serve`: the storage node over six file-backed devices, driven over HTTP as a
//! client would. What a client is told must hold: acknowledged writes survive SIGKILL, bad
//! requests change nothing, `/metrics` parses and its error counters move when a device
//! returns garbage, a second node is refused, SIGTERM closes the array cleanly.

mod cli_common;

use cli_common::{
    ectable, ectable_env, format6, join, load_rows, loop_devices_available, mkfifo, stderr, Loop,
};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A node running as a child process; killed (SIGKILL) when dropped.
struct NodeProc {
    child: Child,
    base: String,
    stderr_path: PathBuf,
}

impl NodeProc {
    fn start(devices: &str, dir: &Path) -> NodeProc {
        Self::try_start(devices, dir, &[]).unwrap_or_else(|e| panic!("node did not start: {e}"))
    }

    /// Starts a node; Err(its stderr) when it exits before listening.
    fn try_start(devices: &str, dir: &Path, extra: &[&str]) -> Result<NodeProc, String> {
        let stderr_path = dir.join(format!("node-{}.err", rand_suffix()));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ectable"))
            .args(["serve", "--devices", devices, "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("ECTABLE_RUN_DIR", dir.join("run"))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn ectable serve");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let _ = out.read_line(&mut line);
        let Some(addr) = line
            .trim()
            .rsplit("listening on ")
            .next()
            .filter(|_| line.contains("listening on "))
        else {
            let _ = child.wait();
            return Err(std::fs::read_to_string(&stderr_path).unwrap_or_default());
        };
        // Keep reading stdout in the background so the node never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while out.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        Ok(NodeProc {
            base: format!("http://{addr}"),
            child,
            stderr_path,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit code and stderr.
    fn terminate(mut self) -> (Option<i32>, String) {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) with a pid this test spawned and has not reaped; no memory involved.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let code = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s.code();
            }
            assert!(Instant::now() < deadline, "node did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        (
            code,
            std::fs::read_to_string(&self.stderr_path).unwrap_or_default(),
        )
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// (status, body as JSON or the raw text as a JSON string).
fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut r = r.expect("request");
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn post(a: &ureq::Agent, url: &str, body: &Value) -> (u16, Value) {
    answer(
        a.post(url)
            .header("content-type", "application/json")
            .send(body.to_string()),
    )
}

fn post_raw(a: &ureq::Agent, url: &str, body: &str) -> (u16, Value) {
    answer(
        a.post(url)
            .header("content-type", "application/json")
            .send(body),
    )
}

fn put_rows(a: &ureq::Agent, url: &str, body: &Value) -> (u16, Value) {
    answer(
        a.put(url)
            .header("content-type", "application/json")
            .send(body.to_string()),
    )
}

fn get_bytes(a: &ureq::Agent, url: &str) -> (u16, Vec<u8>) {
    let mut r = a.get(url).call().expect("get");
    let status = r.status().as_u16();
    let body = r
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap_or_default();
    (status, body)
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[test]
fn node_serves_tables_refuses_bad_requests_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let devs = join(&format6(dir.path(), "d"));
    let node = NodeProc::start(&devs, dir.path());
    let a = agent();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    // A file that holds an ext2/3/4 file system's magic: not written over without force.
    let ext4 = dir.path().join("ext4.img");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&ext4).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(&[0x53, 0xef], 1080).unwrap();
    }

    // Key/value: put (durable by default), get, scan with paging, get-many, batch, delete.
    for i in 0..25 {
        let (s, v) = answer(
            a.put(node.url(&format!("/v1/kv/kv/k{i:02}")))
                .send(format!("value {i}")),
        );
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["durable"], json!(true));
    }
    assert_eq!(
        get_bytes(&a, &node.url("/v1/kv/kv/k07")),
        (200, b"value 7".to_vec())
    );
    let (s, v) = answer(a.get(node.url("/v1/kv/kv/nope")).call());
    assert_eq!((s, error_code(&v)), (404, "not_found"));
    let (s, page) = answer(a.get(node.url("/v1/kv/kv?limit=10")).call());
    assert_eq!(s, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 10);
    assert_eq!(page["next"], json!("k09"));
    let (_, page2) = answer(a.get(node.url("/v1/kv/kv?limit=10&after=k09")).call());
    assert_eq!(page2["items"][0]["key"], json!("k10"));
    let (_, last) = answer(a.get(node.url("/v1/kv/kv?after=k19")).call());
    assert_eq!(last["items"].as_array().unwrap().len(), 5);
    assert_eq!(last["next"], Value::Null);
    let (s, v) = post(
        &a,
        &node.url("/v1/kv/kv/get-many"),
        &json!({"keys": ["k01", "zz", {"$bin": "azAy"}]}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["values"], json!(["value 1", null, "value 2"]));
    let (s, v) = post(
        &a,
        &node.url("/v1/kv/batch"),
        &json!({"ops": [
            {"op": "put", "table": "kv", "key": "b1", "value": "one"},
            {"op": "delete", "table": "kv", "key": "k00"}
        ]}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(get_bytes(&a, &node.url("/v1/kv/kv/k00")).0, 404);
    assert_eq!(get_bytes(&a, &node.url("/v1/kv/kv/b1")).1, b"one");
    let (s, _) = answer(a.delete(node.url("/v1/kv/kv/b1")).call());
    assert_eq!(s, 200);

    // Typed tables: create, put, conditional put, get, range with paging, atomic batch.
    let (s, v) = post(
        &a,
        &node.url("/v1/tables"),
        &json!({"table": "users", "pk": "id:int64"}),
    );
    assert_eq!(s, 200, "{v}");
    let rows = node.url("/v1/tables/users/rows");
    for id in 0..30 {
        let (s, v) = put_rows(
            &a,
            &rows,
            &json!({"pk": {"id": id}, "cols": {"name": format!("u{id}"), "score": id * 10}}),
        );
        assert_eq!(s, 200, "{v}");
    }
    let (s, v) = put_rows(
        &a,
        &rows,
        &json!({"pk": {"id": 1}, "cols": {"name": "x"}, "if": "absent"}),
    );
    assert_eq!((s, error_code(&v)), (412, "condition_failed"), "{v}");
    let (s, v) = post(
        &a,
        &node.url("/v1/tables/users/rows/get"),
        &json!({"pk": {"id": 3}}),
    );
    assert_eq!(s, 200);
    assert_eq!(v["row"]["cols"], json!({"name": "u3", "score": 30}));
    let (_, p1) = post(
        &a,
        &node.url("/v1/tables/users/range"),
        &json!({"from": {"id": 5}, "limit": 10}),
    );
    assert_eq!(p1["rows"].as_array().unwrap().len(), 10);
    assert_eq!(p1["next"], json!({"id": 15}));
    let (_, p2) = post(
        &a,
        &node.url("/v1/tables/users/range"),
        &json!({"from": {"id": 5}, "limit": 100, "next": p1["next"]}),
    );
    assert_eq!(
        p2["rows"][0],
        json!({"pk": {"id": 15}, "cols": {"name": "u15", "score": 150}})
    );
    assert_eq!(p2["rows"].as_array().unwrap().len(), 15);

    // Bad requests: each gets a clear error and changes nothing.
    let before = answer(a.get(node.url("/v1/status")).call()).1;
    let bad: Vec<(u16, &str, (u16, Value))> = vec![
        (
            400,
            "bad_request",
            post_raw(&a, &rows.replace("/rows", "/rows/get"), "{not json"),
        ),
        (
            400,
            "bad_request",
            put_rows(&a, &rows, &json!({"pk": {"id": "seven"}, "cols": {}})),
        ),
        (
            400,
            "bad_request",
            put_rows(&a, &rows, &json!({"pk": {"id": 1, "extra": 2}, "cols": {}})),
        ),
        (
            400,
            "bad_request",
            put_rows(&a, &rows, &json!({"pk": {"id": 1}, "colz": {}})),
        ),
        (
            404,
            "no_such_table",
            put_rows(
                &a,
                &node.url("/v1/tables/nosuch/rows"),
                &json!({"pk": {"id": 1}}),
            ),
        ),
        (
            400,
            "wrong_table_kind",
            answer(a.put(node.url("/v1/kv/users/k")).send("v")),
        ),
        (
            400,
            "reserved_table_name",
            answer(a.put(node.url("/v1/kv/$schema/k")).send("v")),
        ),
        (
            400,
            "bad_request",
            answer(a.put(node.url("/v1/kv/kv/k?sync=maybe")).send("v")),
        ),
        // A key that is not UTF-8: a JSON error like every other (it was axum's plain text).
        (
            400,
            "bad_request",
            answer(a.put(node.url("/v1/kv/kv/%ff%00")).send("v")),
        ),
        // An atomic batch with one bad op writes none of them.
        (
            400,
            "bad_request",
            post(
                &a,
                &node.url("/v1/tables/batch"),
                &json!({"ops": [
                    {"op": "put", "table": "users", "pk": {"id": 100}, "cols": {"name": "new"}},
                    {"op": "put", "table": "users", "pk": {"id": "bad"}}
                ]}),
            ),
        ),
        (
            400,
            "bad_request",
            post(
                &a,
                &node.url("/v1/kv/batch"),
                &json!({"ops": [
                    {"op": "put", "table": "kv", "key": "new", "value": "v"},
                    {"op": "frobnicate", "table": "kv", "key": "x"}
                ]}),
            ),
        ),
        (
            404,
            "not_found",
            answer(a.get(node.url("/v1/nothing")).call()),
        ),
        // A rate the CLI refuses: before, the node took it, and the scrub held the node's
        // one long-running job for days.
        (
            400,
            "bad_request",
            post(&a, &node.url("/v1/admin/scrub"), &json!({"rate": 1})),
        ),
        // A FIFO as a spare: before, the node's open of it waited for a writer for ever.
        (
            409,
            "config",
            post(
                &a,
                &node.url("/v1/admin/add-spare"),
                &json!({"device": fifo.display().to_string()}),
            ),
        ),
        // A device that holds a file system, as a spare: before, the node wrote over it.
        (
            409,
            "config",
            post(
                &a,
                &node.url("/v1/admin/add-spare"),
                &json!({"device": ext4.display().to_string()}),
            ),
        ),
    ];
    for (want_status, want_code, (s, v)) in &bad {
        assert_eq!((*s, error_code(v)), (*want_status, *want_code), "{v}");
        assert!(
            !v["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{v}"
        );
    }
    // A body larger than the node takes: a client that sends all of it before reading the
    // answer (as this one does) reads the 413, as JSON, not a reset connection.
    let huge = vec![7u8; 40 << 20];
    let (s, v) = answer(a.put(node.url("/v1/kv/kv/huge")).send(&huge[..]));
    assert_eq!((s, error_code(&v)), (413, "body_too_large"), "{v}");
    let batch = json!({"ops": [{"op": "put", "table": "kv", "key": "k",
        "value": "x".repeat(2 << 20)}]});
    let (s, v) = post(&a, &node.url("/v1/kv/batch"), &batch);
    assert_eq!((s, error_code(&v)), (413, "body_too_large"), "{v}");
    // Within the body limit but larger than a record may be: the engine's own refusal.
    let big = vec![7u8; 400 << 10];
    let (s, v) = answer(a.put(node.url("/v1/kv/kv/big")).send(&big[..]));
    assert_eq!((s, error_code(&v)), (413, "value_too_large"), "{v}");
    let after = answer(a.get(node.url("/v1/status")).call()).1;
    assert_eq!(
        before["keys"], after["keys"],
        "a bad request changed the key count"
    );
    assert_eq!(
        before["lsn"], after["lsn"],
        "a bad request appended a record"
    );
    assert_eq!(
        post(
            &a,
            &node.url("/v1/tables/users/rows/get"),
            &json!({"pk": {"id": 100}})
        )
        .0,
        404
    );

    // A second node on the same devices is refused.
    let second = NodeProc::try_start(&devs, dir.path(), &[]);
    match second {
        Ok(_) => panic!("a second node started on devices held by the first"),
        Err(stderr) => assert!(
            stderr.contains("in use") && stderr.contains("storage node at http://"),
            "{stderr}"
        ),
    }
    // So are `format` (with or without --force) and `restore --force` over its devices, at
    // once (the restore before it reads the whole backup), and nothing changes.
    let backup = dir.path().join("none.ectb");
    std::fs::write(&backup, b"not read").unwrap();
    for args in [
        vec![
            "format",
            "--devices",
            &devs,
            "--k",
            "4",
            "--m",
            "2",
            "--yes",
        ],
        vec![
            "format",
            "--devices",
            &devs,
            "--k",
            "4",
            "--m",
            "2",
            "--force",
            "--yes",
        ],
        vec![
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--devices",
            &devs,
            "--k",
            "4",
            "--m",
            "2",
            "--force",
            "--yes",
        ],
    ] {
        let out = cli(dir.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(75), "{args:?}: {err}");
        assert!(
            err.contains("storage node at http://") && !err.contains("waited"),
            "{args:?}: {err}"
        );
    }
    // A writing command that does not go through a node is refused at once, naming the node
    // and what to use instead (not after waiting for the devices' lock).
    let out = cli(
        dir.path(),
        &[
            "load",
            "--devices",
            &devs,
            "--table",
            "bulk",
            "--rows",
            "10",
            "--value-size",
            "8",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(
        err.contains("storage node") && err.contains("/v1/kv/batch") && !err.contains("waited"),
        "{err}"
    );

    // The CLI beside the node: its writing commands go through the node (the devices are
    // held), with their usual output.
    let out = cli(
        dir.path(),
        &[
            "put",
            "--devices",
            &devs,
            "--table",
            "kv",
            "--key",
            "cli",
            "--value",
            "via node",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get_bytes(&a, &node.url("/v1/kv/kv/cli")).1, b"via node");
    let out = cli(
        dir.path(),
        &[
            "delete",
            "--devices",
            &devs,
            "--table",
            "kv",
            "--key",
            "nope",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let backup = dir.path().join("full.ectb");
    let out = cli(
        dir.path(),
        &[
            "backup",
            "--devices",
            &devs,
            "--to",
            backup.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("full"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The node's array is healthy: no warning about it (the CLI asks the node after the
    // backup).
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ectable(&["backup-verify", backup.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = cli(dir.path(), &["clean", "--devices", &devs]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("clean:"));
    // A scrub held to 4 MiB/s: status through the node shows it running, with its progress.
    let slow_scrub = {
        let url = node.url("/v1/admin/scrub");
        std::thread::spawn(move || post(&agent(), &url, &json!({"repair": false, "rate": 4 << 20})))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cli(dir.path(), &["status", "--devices", &devs]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains("scan: scrub in progress:") && text.contains("% done") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed the scrub running: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(slow_scrub.join().unwrap().0, 200);
    let out = cli(dir.path(), &["scrub", "--devices", &devs, "--repair"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("scrub:"));

    // SIGTERM: exit 0, the array closed; the CLI reads what the node acknowledged.
    let (code, stderr) = node.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("the array is closed"), "{stderr}");
    let out = ectable(&["get", "--devices", &devs, "--table", "kv", "--key", "k24"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "value 24");
    let out = ectable(&[
        "get",
        "--devices",
        &devs,
        "--table",
        "users",
        "--key",
        "{\"id\": 29}",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"u29\""));
}

#[test]
fn node_killed_under_load_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let devs = join(&format6(dir.path(), "d"));
    let mut node = NodeProc::start(&devs, dir.path());
    let base = node.base.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let base = base.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let a = agent();
                let mut acked = Vec::new();
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("w{t}-{i}");
                    let value = format!("{key}:{}", "x".repeat((i as usize * 37) % 3000));
                    match a
                        .put(format!("{base}/v1/kv/load/{key}"))
                        .send(value.as_bytes())
                    {
                        Ok(r) if r.status() == 200 => acked.push((key, value)),
                        _ => break,
                    }
                    i += 1;
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(2500));
    node.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked: Vec<(String, String)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        acked.len() > 50,
        "only {} writes acknowledged before the kill",
        acked.len()
    );

    let node = NodeProc::start(&devs, dir.path());
    let a = agent();
    let mut lost = Vec::new();
    for (k, v) in &acked {
        let (s, body) = get_bytes(&a, &node.url(&format!("/v1/kv/load/{k}")));
        if s != 200 || body != v.as_bytes() {
            lost.push(k.clone());
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
    eprintln!(
        "{} acknowledged writes, all read back after SIGKILL",
        acked.len()
    );
}

/// The samples of a Prometheus text answer, parsed by a Prometheus text parser.
fn scrape(a: &ureq::Agent, url: &str) -> prometheus_parse::Scrape {
    let (s, body) = get_bytes(a, url);
    assert_eq!(s, 200);
    let text = String::from_utf8(body).expect("metrics are UTF-8");
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("metrics parse")
}

fn sample(s: &prometheus_parse::Scrape, name: &str, device: &str) -> f64 {
    sample_with(s, name, "device", device)
}

/// The value of the sample `name` whose label `label` is `value`.
fn sample_with(s: &prometheus_parse::Scrape, name: &str, label: &str, value: &str) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && x.labels.get(label) == Some(value))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .next()
        .unwrap_or_else(|| panic!("no sample {name} with {label}={value}"))
}

#[test]
fn metrics_parse_and_count_the_checksum_errors_of_a_corrupted_device() {
    let dir = tempfile::tempdir().unwrap();
    let paths = format6(dir.path(), "d");
    let devs = join(&paths);
    let node = NodeProc::start(&devs, dir.path());
    let a = agent();
    let value = |i: usize| format!("{i:06}").repeat(700);
    for i in 0..200 {
        let (s, _) = answer(a.put(node.url(&format!("/v1/kv/t/k{i}"))).send(value(i)));
        assert_eq!(s, 200);
    }
    let d0 = paths[0].to_string_lossy().to_string();
    let m = scrape(&a, &node.url("/metrics"));
    assert_eq!(sample(&m, "ectable_device_checksum_errors_total", &d0), 0.0);
    assert!(sample(&m, "ectable_device_written_bytes_total", &d0) > 0.0);
    let families: std::collections::BTreeSet<&str> =
        m.samples.iter().map(|s| s.metric.as_str()).collect();
    for f in [
        "ectable_array_state",
        "ectable_redundancy_left",
        "ectable_spares",
        "ectable_spares_missing",
        "ectable_durability_nines_1y",
        "ectable_durable_lsn",
        "ectable_live_bytes",
        "ectable_free_bytes",
        "ectable_garbage_bytes",
        // The member files are sparse (created by format --create-size).
        "ectable_backing_free_bytes",
        "ectable_backing_unallocated_bytes",
        "ectable_cleaner_write_amplification",
        "ectable_device_reads_total",
        "ectable_device_io_errors_total",
        "ectable_maintenance_progress_ratio",
        "ectable_node_requests_total",
    ] {
        assert!(families.contains(f), "no {f} in /metrics: {families:?}");
    }
    let put_count = m
        .samples
        .iter()
        .find(|s| {
            s.metric == "ectable_op_latency_seconds_count" && s.labels.get("op") == Some("put")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Untyped(v) | prometheus_parse::Value::Counter(v) => v,
            _ => 0.0,
        });
    assert_eq!(put_count, Some(200.0), "put latency count");

    // Garbage over the first 4 MiB of d0's data area (the log's first segment there), under
    // the running node: reads of those chunks fail their checks, are rebuilt from parity.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&paths[0])
        .unwrap();
    f.seek(SeekFrom::Start(1 << 20)).unwrap();
    f.write_all(&vec![0xA5u8; 4 << 20]).unwrap();
    f.sync_all().unwrap();
    drop(f);
    for i in 0..200 {
        let (s, body) = get_bytes(&a, &node.url(&format!("/v1/kv/t/k{i}")));
        assert_eq!((s, body), (200, value(i).into_bytes()), "k{i}");
    }
    let m = scrape(&a, &node.url("/metrics"));
    let errors = sample(&m, "ectable_device_checksum_errors_total", &d0);
    assert!(
        errors > 0.0,
        "the corrupted device's checksum errors did not move"
    );
    let (s, st) = answer(a.get(node.url("/v1/status")).call());
    assert_eq!(s, 200);
    assert_ne!(
        st["state"],
        json!("ONLINE"),
        "status says healthy with checksum errors: {st}"
    );
    eprintln!("checksum errors counted on {d0}: {errors}");

    // A scrub with repair through the node; then the node stops. Another process's status,
    // after the restart, still shows the errors and the scrub (kept in the health blocks).
    let (s, v) = post(&a, &node.url("/v1/admin/scrub"), &json!({"repair": true}));
    assert_eq!(s, 200, "{v}");
    // The finished scrub is in the metrics, as a Unix time an alert can compare with now.
    let m = scrape(&a, &node.url("/metrics"));
    let when = "ectable_last_scan_finished_timestamp_seconds";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let scrubbed = sample_with(&m, when, "kind", "scrub");
    assert!(
        (now - 600.0..=now + 1.0).contains(&scrubbed),
        "{scrubbed} vs {now}"
    );
    assert_eq!(sample_with(&m, when, "kind", "rebuild"), 0.0);
    let (code, stderr) = node.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    let out = ectable(&["status", "--devices", &devs, "--json"]);
    let st: Value = serde_json::from_slice(&out.stdout).expect("status --json");
    let dev0 = st["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == json!(d0))
        .expect("d0 in status")
        .clone();
    assert_eq!(
        dev0["errors"]["checksum"],
        json!(0),
        "a new session's own counter: {dev0}"
    );
    assert!(
        dev0["lifetime_errors"]["checksum"].as_u64().unwrap_or(0) >= errors as u64,
        "the checksum errors were forgotten across the restart: {dev0}"
    );
    assert_eq!(
        st["last_scrub"]["repair"],
        json!(true),
        "{}",
        st["last_scrub"]
    );
    let out = ectable(&["status", "--devices", &devs]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("scan: scrub repaired"), "{text}");
}

/// `ectable` as an operator runs it beside the node of `dir` (it finds the node through the
/// run dir).
fn cli(dir: &Path, args: &[&str]) -> std::process::Output {
    let run = dir.join("run");
    ectable_env(args, &[("ECTABLE_RUN_DIR", run.to_str().unwrap())])
}

/// `chattr +i` on a file, undone on drop (also when the test fails).
struct Immutable(PathBuf);

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// Every acknowledged row reads back through the node; then the node stops cleanly (SIGTERM,
/// exit 0).
fn every_row_then_stop(node: NodeProc, acked: &[(String, String)]) {
    let a = agent();
    for (k, v) in acked {
        assert_eq!(
            get_bytes(&a, &node.url(&format!("/v1/kv/load/{k}"))),
            (200, v.clone().into_bytes()),
            "{k}"
        );
    }
    let (code, stderr) = node.terminate();
    assert_eq!(code, Some(0), "{stderr}");
}

/// Formats RS(4,2) over loop devices; returns their paths and the --devices list.
/// `ectable status` (through the node) exits 0: every member in service and in sync.
fn assert_healthy(dir: &Path, devs: &str, when: &str) {
    let out = cli(dir, &["status", "--devices", devs]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "status {when}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `ectable reopen` through the node succeeds, and the array is healthy after it.
fn reopen_healthy(dir: &Path, devs: &str, after: &str) {
    let out = cli(dir, &["reopen", "--devices", devs]);
    assert!(
        out.status.success(),
        "reopen after {after}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_healthy(dir, devs, &format!("after the reopen after {after}"));
}

/// `n` loop devices over files `b0.img`... in `dir`, detached when dropped.
fn attach_loops(dir: &Path, n: usize) -> Vec<Loop> {
    (0..n)
        .map(|i| Loop::attach(&dir.join(format!("b{i}.img"))))
        .collect()
}

fn format_loops(loops: &[Loop]) -> (Vec<String>, String) {
    let members: Vec<String> = loops.iter().map(|l| l.path.clone()).collect();
    let devs = members.join(",");
    let out = ectable(&[
        "format",
        "--devices",
        &devs,
        "--k",
        "4",
        "--m",
        "2",
        "--yes",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (members, devs)
}

/// Rows a client had acknowledged (key, value), and how many puts failed.
type Acked = (Vec<(String, String)>, usize);

/// Client threads putting key/value rows through a node's HTTP API until stopped, each put
/// durable when answered; every answer counted.
struct Writers {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Acked>>,
}

impl Writers {
    fn start(node: &NodeProc, n: usize, tag: &str) -> Writers {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..n)
            .map(|t| {
                let (base, stop, tag) = (node.base.clone(), stop.clone(), tag.to_string());
                std::thread::spawn(move || {
                    let a = agent();
                    let mut acked = Vec::new();
                    let mut failed = 0;
                    let mut i = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let (key, value) = (
                            format!("{tag}{t}-{i}"),
                            format!("v{t}-{i}-{}", "y".repeat((i as usize * 13) % 5000)),
                        );
                        match a
                            .put(format!("{base}/v1/kv/load/{key}"))
                            .send(value.as_bytes())
                        {
                            Ok(r) if r.status() == 200 => acked.push((key, value)),
                            _ => failed += 1,
                        }
                        i += 1;
                    }
                    (acked, failed)
                })
            })
            .collect();
        Writers { stop, threads }
    }

    /// Stops them; every put must have been acknowledged. Returns the acknowledged rows.
    fn stop(self, during: &str) -> Vec<(String, String)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut acked = Vec::new();
        for w in self.threads {
            let (a, failed) = w.join().unwrap();
            assert_eq!(failed, 0, "writes failed {during}");
            acked.extend(a);
        }
        acked
    }
}

#[test]
fn node_on_loop_devices_serves_through_a_failure_a_cli_replace_and_the_rebuild() {
    if !loop_devices_available(
        "node_on_loop_devices_serves_through_a_failure_a_cli_replace_and_the_rebuild",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let loops = attach_loops(dir.path(), 7);
    let (members, devs) = format_loops(&loops[..6]);
    let node = NodeProc::start(&devs, dir.path());

    // Clients write (each put durable when answered) through everything below.
    let writers = Writers::start(&node, 4, "c");
    std::thread::sleep(Duration::from_millis(700));

    // Slot 2's disk dies: every read and write of its loop device fails with EIO.
    let dead = dir.path().join("b2.img");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&dead)
        .unwrap()
        .set_len(0)
        .unwrap();
    let st = Command::new("chattr")
        .arg("+i")
        .arg(&dead)
        .status()
        .expect("chattr");
    assert!(st.success());
    let _undo = Immutable(dead.clone());
    // The status the operator sees (through the node) turns DEGRADED, naming the device.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = cli(dir.path(), &["status", "--devices", &devs, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let faulted = v["devices"].as_array().is_some_and(|d| {
            d.iter()
                .any(|d| d["path"] == json!(members[2]) && d["state"] != json!("ONLINE"))
        });
        if faulted && out.status.code() == Some(1) {
            assert_eq!(v["state"], json!("DEGRADED"), "{v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead device never showed in status: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The operator replaces it through the CLI: the node takes the new disk and rebuilds.
    let out = cli(
        dir.path(),
        &[
            "replace",
            "--devices",
            &devs,
            "--old",
            &members[2],
            "--new",
            &loops[6].path,
            "--yes",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "replace: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("is online on {}", loops[6].path)),
        "{stdout}"
    );
    let acked = writers.stop("while one device was lost");
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());

    // Healthy again (status through the node: exit 0), and every acknowledged write reads
    // back, also after the node is stopped, from the devices as they are now.
    assert_healthy(dir.path(), &devs, "after the replace");
    // A reopen opens from the node's list, which now names the new device (it used to name
    // the dead one it replaced).
    reopen_healthy(dir.path(), &devs, "the replace");
    every_row_then_stop(node, &acked);
    let mut now = members.clone();
    now[2] = loops[6].path.clone();
    let now = now.join(",");
    for (k, v) in acked.iter().step_by(7) {
        let out = ectable(&["get", "--devices", &now, "--table", "load", "--key", k]);
        assert_eq!(
            out.stdout,
            v.as_bytes(),
            "{k}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!(
        "{} acknowledged writes through a device failure and a replace via the CLI",
        acked.len()
    );
}

/// A node whose writes stopped because the file system under its sparse member files
/// filled up (more than m members failed at once): reads go on, `ectable reopen` after the
/// room is given brings writes back without restarting the node, and every write the node
/// acknowledged is there. Without a node, `reopen` has nothing to do. Needs root (tmpfs).
#[test]
fn node_reopens_the_array_after_its_file_system_was_given_room() {
    if !cli_common::tmpfs_available("node_reopens_the_array_after_its_file_system_was_given_room") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (fs, devs) = cli_common::array_on_small_tmpfs(dir.path());
    let out = cli(dir.path(), &["reopen", "--devices", &devs]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to reopen"),
        "{out:?}"
    );
    let node = NodeProc::start(&devs, dir.path());
    let a = agent();
    let value = vec![b'v'; 4000];
    let mut acked = Vec::new();
    let mut failed = None;
    for i in 0..20_000 {
        let (s, v) = answer(
            a.put(node.url(&format!("/v1/kv/t/k{i:05}")))
                .send(&value[..]),
        );
        if s == 200 {
            acked.push(i);
        } else {
            failed = Some((s, v));
            break;
        }
    }
    let (s, v) = failed.expect("20000 puts of 4 KB fitted in a 40 MiB file system");
    eprintln!(
        "the first refused put: {s} {v}; {} acknowledged",
        acked.len()
    );
    assert!(s >= 500, "{s} {v}");
    assert!(acked.len() > 100, "too few puts before the failure");
    // Reads go on while writes are stopped.
    let (s, body) = get_bytes(&a, &node.url(&format!("/v1/kv/t/k{:05}", acked[0])));
    assert_eq!((s, body.len()), (200, value.len()));
    // The node says so: health, metrics and status.
    let (s, h) = answer(a.get(node.url("/v1/health")).call());
    assert_eq!((s, &h["writes_stopped"]), (200, &json!(true)), "{h}");
    let m = scrape(&a, &node.url("/metrics"));
    let stopped = m
        .samples
        .iter()
        .find(|x| x.metric == "ectable_writes_stopped")
        .map(|x| format!("{:?}", x.value));
    assert_eq!(stopped.as_deref(), Some("Gauge(1.0)"));
    let out = cli(dir.path(), &["status", "--devices", &devs]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("writes have stopped") && text.contains("'ectable reopen'"),
        "{text}"
    );
    // A reopen asked for while too few members are readable is refused, and the node keeps
    // serving reads from the array it has open.
    let away = fs.0.join("away");
    std::fs::create_dir(&away).unwrap();
    for i in 0..3 {
        std::fs::rename(fs.0.join(format!("d{i}")), away.join(format!("d{i}"))).unwrap();
    }
    let out = cli(dir.path(), &["reopen", "--devices", &devs]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "reopened with 3 of 6 members gone");
    assert!(said.contains("too few members"), "{said}");
    let (s, _) = get_bytes(&a, &node.url(&format!("/v1/kv/t/k{:05}", acked[0])));
    assert_eq!(s, 200, "reads stopped after a refused reopen");
    for i in 0..3 {
        std::fs::rename(away.join(format!("d{i}")), fs.0.join(format!("d{i}"))).unwrap();
    }
    // Writes stay refused until the array is reopened, even once there is room again.
    fs.resize("512M");
    let (s, _) = answer(a.put(node.url("/v1/kv/t/after")).send("x"));
    assert_ne!(
        s, 200,
        "a write was acknowledged by an engine whose writes had stopped"
    );
    let out = cli(dir.path(), &["reopen", "--devices", &devs]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("the node reopened the array"), "{said}");
    let (s, v) = answer(a.put(node.url("/v1/kv/t/after")).send("x"));
    assert_eq!(s, 200, "{v}");
    let (_, h) = answer(a.get(node.url("/v1/health")).call());
    assert_eq!(h["writes_stopped"], json!(false), "{h}");
    for i in acked.iter().step_by(37).chain(acked.last()) {
        let (s, body) = get_bytes(&a, &node.url(&format!("/v1/kv/t/k{i:05}")));
        assert_eq!((s, body), (200, value.clone()), "k{i:05}");
    }
    let out = cli(dir.path(), &["status", "--devices", &devs]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("new writes fail"), "{text}");
    // A reopen while clients write: a put is acknowledged by the old engine or the new one,
    // or refused; every acknowledged one is there after.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (a, url, stop) = (agent(), node.url(""), stop.clone());
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let key = format!("w{w}-{i:05}");
                    let (s, _) = answer(a.put(format!("{url}/v1/kv/t/{key}")).send(&key));
                    if s == 200 {
                        acked.push(key);
                    }
                    i += 1;
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let out = cli(dir.path(), &["reopen", "--devices", &devs]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acked: Vec<String> = writers
        .into_iter()
        .flat_map(|h| h.join().expect("writer"))
        .collect();
    assert!(acked.len() > 10, "too few puts around the reopen");
    for key in &acked {
        let (s, body) = get_bytes(&a, &node.url(&format!("/v1/kv/t/{key}")));
        assert_eq!((s, body), (200, key.clone().into_bytes()), "{key}");
    }
    eprintln!("{} puts acknowledged around the second reopen", acked.len());
    // A replacement or a spare the file system has not room for, preallocated through the
    // node: refused (exit 73 from the CLI, 507 over HTTP), the file removed, nothing changed.
    let new = fs.0.join("n5").display().to_string();
    let old = fs.0.join("d5").display().to_string();
    let out = cli(
        dir.path(),
        &[
            "replace",
            "--devices",
            &devs,
            "--old",
            &old,
            "--new",
            &new,
            "--create-size",
            "2G",
            "--preallocate",
            "--yes",
        ],
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(73), "{said}");
    assert!(said.contains("cannot preallocate"), "{said}");
    assert!(
        !Path::new(&new).exists(),
        "the refused replacement's file was left"
    );
    let (s, v) = post(
        &a,
        &node.url("/v1/admin/add-spare"),
        &json!({"device": new, "create_size": 2u64 << 30, "preallocate": true}),
    );
    assert_eq!((s, error_code(&v)), (507, "no_space"), "{v}");
    assert!(
        !Path::new(&new).exists(),
        "the refused spare's file was left"
    );
    assert_healthy(dir.path(), &devs, "after the refused replacement and spare");
    let (code, err) = node.terminate();
    assert_eq!(code, Some(0), "{err}");
}

/// `blockdev --setro` or `--setrw` on a loop device.
fn set_ro(dev: &str, ro: bool) {
    let st = Command::new("blockdev")
        .arg(if ro { "--setro" } else { "--setrw" })
        .arg(dev)
        .status()
        .expect("blockdev");
    assert!(st.success(), "blockdev on {dev}");
}

/// Sets a loop device writable again on drop, also when the test fails (the read-only flag
/// outlives the loop device's detach and would fail the next test that gets that device).
struct Writable(String);

impl Drop for Writable {
    fn drop(&mut self) {
        let _ = Command::new("blockdev")
            .arg("--setrw")
            .arg(&self.0)
            .status();
    }
}

/// Waits until the node's status shows `dev` FAULTED.
fn wait_faulted(dir: &Path, devs: &str, dev: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = cli(dir, &["status", "--devices", devs, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let faulted = v["devices"].as_array().is_some_and(|d| {
            d.iter()
                .any(|d| d["path"] == json!(dev) && d["state"] == json!("FAULTED"))
        });
        if faulted {
            return;
        }
        assert!(Instant::now() < deadline, "{dev} never showed FAULTED: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A member of a running node fails (its loop device set read-only: writes fail with EPERM),
/// and comes back once the device works again, without downtime: `ectable online` is
/// refused while it still fails, then brings it back and resyncs it. Another member comes
/// back under another name (its image on a new loop device): the node takes it in that
/// slot and keeps the new path, so a later `ectable reopen` finds it. Clients write
/// throughout; every acknowledged write is there at the end.
#[test]
fn node_brings_members_back_online_also_under_another_name() {
    if !loop_devices_available("node_brings_members_back_online_also_under_another_name") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut loops = attach_loops(dir.path(), 6);
    let (members, devs) = format_loops(&loops);
    let node = NodeProc::start(&devs, dir.path());
    let writers = Writers::start(&node, 3, "o");
    std::thread::sleep(Duration::from_millis(500));

    // Slot 1: writes fail (EPERM) until the device is set writable again.
    let _rw: Vec<Writable> = members.iter().map(|m| Writable(m.clone())).collect();
    set_ro(&members[1], true);
    wait_faulted(dir.path(), &devs, &members[1]);
    let out = cli(dir.path(), &["online", "--devices", &devs, &members[1]]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(74),
        "online of a device that still fails: {stderr}"
    );
    assert!(stderr.contains("still fails"), "{stderr}");
    wait_faulted(dir.path(), &devs, &members[1]);
    set_ro(&members[1], false);
    let out = cli(dir.path(), &["online", "--devices", &devs, &members[1]]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "online: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("slot 1 is online on {}", members[1])),
        "{stdout}"
    );
    assert_healthy(dir.path(), &devs, "after online");

    // Slot 4: fails, and its disk comes back as another device (its image on a new loop
    // device; the old one stays read-only and failed).
    set_ro(&members[4], true);
    wait_faulted(dir.path(), &devs, &members[4]);
    let copy = dir.path().join("b4-copy.img");
    std::fs::copy(dir.path().join("b4.img"), &copy).expect("copy the image");
    let renamed = Loop::attach_existing(&copy);
    let out = cli(dir.path(), &["online", "--devices", &devs, &renamed.path]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "online under another name: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("slot 4 is online on {}", renamed.path)),
        "{stdout}"
    );
    let acked = writers.stop("while members failed and came back");
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    // The node reopens from its own list, which now names the new device for slot 4.
    let out = cli(dir.path(), &["reopen", "--devices", &devs]);
    assert!(
        out.status.success(),
        "reopen: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(dir.path(), &["status", "--devices", &devs, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(out.status.code(), Some(0), "status after the reopen: {v}");
    assert_eq!(v["devices"][4]["path"], json!(renamed.path), "{v}");
    every_row_then_stop(node, &acked);
    // From the devices as they are now: a scrub finds nothing.
    let mut now = members.clone();
    now[4] = renamed.path.clone();
    let out = ectable(&["scrub", "--devices", &now.join(","), "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(out.status.success(), "scrub: {v}");
    assert_eq!(v["unrecoverable"], json!([]), "{v}");
    let bad: u64 = v["devices"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["bad_chunks"].as_u64()).sum())
        .unwrap_or(u64::MAX);
    assert_eq!(bad, 0, "scrub after the online: {v}");
    loops.push(renamed);
    eprintln!(
        "{} acknowledged writes through two members failing and coming back",
        acked.len()
    );
}

/// A node started with `--recovery automatic` and a hot spare: a member fails (its loop
/// device set read-only, so writes fail with EPERM) while clients write, and with no
/// operator the spare takes its slot and is rebuilt. The node's device list follows, so a
/// later `ectable reopen` opens the array from the spare and not from the failed device.
///
/// Oracle: every put answered 200 (no write fails through the failure), status exit 0 with
/// the spare in the slot, the events name the replacement and the rebuild, the reopen
/// succeeds and status stays 0, and every acknowledged row reads back.
#[test]
fn node_with_automatic_recovery_puts_the_hot_spare_in_a_failed_members_slot() {
    if !loop_devices_available(
        "node_with_automatic_recovery_puts_the_hot_spare_in_a_failed_members_slot",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let loops = attach_loops(dir.path(), 7);
    let (members, devs) = format_loops(&loops[..6]);
    let node = NodeProc::try_start(&devs, dir.path(), &["--recovery", "automatic"])
        .unwrap_or_else(|e| panic!("node did not start: {e}"));
    let spare = loops[6].path.clone();
    let out = cli(
        dir.path(),
        &["add-spare", "--devices", &devs, "--spare", &spare],
    );
    assert!(
        out.status.success(),
        "add-spare: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Status says what the spare is for under this policy.
    let out = cli(dir.path(), &["status", "--devices", &devs]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("takes a lost member's slot at once: recovery automatic"),
        "{text}"
    );
    let writers = Writers::start(&node, 3, "a");
    std::thread::sleep(Duration::from_millis(500));
    let _writable = Writable(members[1].clone());
    set_ro(&members[1], true);
    // No operator: the spare takes slot 1 and is rebuilt; status turns healthy again.
    let deadline = Instant::now() + Duration::from_secs(120);
    let v = loop {
        let out = cli(dir.path(), &["status", "--devices", &devs, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if out.status.code() == Some(0) && v["devices"][1]["path"] == json!(spare) {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the spare never took slot 1: {v}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(v["spares"], json!([]), "{v}");
    // The replaced device works again (the operator found a loose cable): the node no
    // longer holds it, and it comes back as the new hot spare, once the operator says that
    // what it holds may go.
    set_ro(&members[1], false);
    let again = ["add-spare", "--devices", &devs, "--spare", &members[1]];
    let out = cli(dir.path(), &again);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("was replaced out of this array earlier; use --force to reuse it"),
        "{}",
        stderr(&out)
    );
    let out = cli(dir.path(), &[&again[..], &["--force"]].concat());
    assert!(out.status.success(), "add-spare --force: {}", stderr(&out));
    let out = cli(dir.path(), &["status", "--devices", &devs, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["spares"], json!([members[1]]), "{v}");
    assert_eq!(v["unrecognised"], json!([]), "{v}");
    let acked = writers.stop("while the spare took the failed member's slot");
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    let a = agent();
    let (s, events) = answer(a.get(node.url("/v1/events")).call());
    assert_eq!(s, 200);
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["event"].as_str()).collect())
        .unwrap_or_default();
    for kind in ["failed", "replaced", "rebuilt"] {
        assert!(kinds.contains(&kind), "no {kind} event: {events}");
    }
    // The reopen opens from the node's list, which no longer names the failed device.
    reopen_healthy(dir.path(), &devs, "the automatic replacement");
    eprintln!(
        "{} acknowledged writes through an automatic replacement by the hot spare",
        acked.len()
    );
    every_row_then_stop(node, &acked);
    // A restart from the list the node was first started with (a unit file's), which still
    // names the replaced device: the node starts without it, on the spare.
    let mut with_spare = devs.clone();
    with_spare.push(',');
    with_spare.push_str(&spare);
    let node = NodeProc::start(&with_spare, dir.path());
    assert_healthy(
        dir.path(),
        &with_spare,
        "after a restart from the first list",
    );
    every_row_then_stop(node, &acked);
}

/// A node that holds the array but does not answer (stopped here with SIGSTOP; in the field,
/// waiting on a device that does not answer) does not hang the CLI: `status` says so and
/// shows the array as its devices show it (exit 1, `NODE_NOT_ANSWERING`), a writing command
/// fails naming the node (exit 75), each within the answer timeout; once the node runs
/// again, status goes through it as before.
#[test]
fn a_node_that_does_not_answer_does_not_hang_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let devs = join(&format6(dir.path(), "d"));
    let node = NodeProc::start(&devs, dir.path());
    assert_healthy(dir.path(), &devs, "before the stop");
    let pid = node.child.id() as i32;
    // SAFETY: kill(2) with a pid this test spawned and has not reaped; no memory involved.
    unsafe {
        libc::kill(pid, libc::SIGSTOP);
    }
    let t = Instant::now();
    let out = cli(dir.path(), &["status", "--devices", &devs]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("node: NOT ANSWERING") && text.contains(&format!("pid {pid}")),
        "{text}"
    );
    assert!(text.contains("all 6 devices online"), "{text}");
    let out = cli(dir.path(), &["status", "--devices", &devs, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("status --json");
    assert_eq!(v["checks"][0]["code"], "NODE_NOT_ANSWERING", "{v}");
    let out = cli(
        dir.path(),
        &[
            "put",
            "--devices",
            &devs,
            "--table",
            "t",
            "--key",
            "k",
            "--value",
            "v",
        ],
    );
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(stderr(&out).contains("did not answer"), "{}", stderr(&out));
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "three commands took {:?}",
        t.elapsed()
    );
    // SAFETY: as above.
    unsafe {
        libc::kill(pid, libc::SIGCONT);
    }
    assert_healthy(dir.path(), &devs, "after the node runs again");
    let (code, err) = node.terminate();
    assert_eq!(code, Some(0), "{err}");
}

/// A node on six files holding 20,000 rows of 1 KiB runs `ectable ARGS` (made from the
/// device list and the directory) for a CLI; once `started` says the work is under way on
/// the node, SIGTERM. The node must exit 0 within 20 s. Returns the directory, the device
/// list and the CLI's output.
fn sigterm_during(
    args: impl Fn(&str, &std::path::Path) -> Vec<String>,
    started: impl Fn(&NodeProc, &std::path::Path) -> bool,
) -> (tempfile::TempDir, String, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let devs = join(&format6(dir.path(), "d"));
    load_rows(&devs, "20000", "1K");
    let node = NodeProc::start(&devs, dir.path());
    let cmd = {
        let (dir, args) = (dir.path().to_path_buf(), args(&devs, dir.path()));
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(&dir, &args)
        })
    };
    let until = Instant::now() + Duration::from_secs(30);
    while !started(&node, dir.path()) {
        assert!(
            Instant::now() < until,
            "the command did not start on the node"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = Instant::now();
    let (code, err) = node.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the node took {:?} to stop",
        t.elapsed()
    );
    let out = cmd.join().unwrap();
    (dir, devs, out)
}

/// SIGTERM while a rate-limited scrub runs on the node: before, the node waited for the
/// scrub to finish (at 64K per second, minutes for this array; a service manager kills it
/// first). Now the scrub stops between segments and the node closes the array in seconds;
/// the CLI that asked for the scrub exits 75 and says so, and the unfinished scrub is not
/// recorded as the last one.
#[test]
fn sigterm_stops_a_running_scrub_and_the_node() {
    let a = agent();
    let (dir, devs, out) = sigterm_during(
        |devs, _| {
            ["scrub", "--devices", devs, "--rate", "64K"]
                .map(String::from)
                .to_vec()
        },
        // The scrub is running on the node: its status shows it.
        |node, _| {
            let (_, st) = answer(a.get(node.url("/v1/status/raw")).call());
            !st["scan_in_progress"].is_null()
        },
    );
    let serr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{serr}");
    assert!(serr.contains("the scrub stopped after"), "{serr}");
    let out = cli(dir.path(), &["status", "--devices", &devs]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("scan: scrub"), "{text}");
}

/// A member named another way (a symlink to its file) given as the new device of a replace
/// or as a spare through a node: before, the node's open waited 10 s for the lock it holds
/// itself and then answered "in use" (exit 75); now it is refused at once as already in the
/// array (exit 78). And a spare the node refuses because the array names a spare that is
/// not among its devices: the file made for it is removed again.
#[test]
fn a_member_under_another_name_is_refused_at_once_by_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let p = format6(dir.path(), "d");
    let devs = join(&p);
    let spare = dir.path().join("s1.img");
    let out = cli(
        dir.path(),
        &[
            "add-spare",
            "--devices",
            &devs,
            "--spare",
            spare.to_str().unwrap(),
            "--create-size",
            "64M",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The node is started without the spare.
    let node = NodeProc::start(&devs, dir.path());
    let link = dir.path().join("link.img");
    std::os::unix::fs::symlink(&p[1], &link).unwrap();
    let link = link.to_str().unwrap();
    for args in [
        vec![
            "replace",
            "--devices",
            &devs,
            "--old",
            p[1].to_str().unwrap(),
            "--new",
            link,
            "--yes",
        ],
        vec!["add-spare", "--devices", &devs, "--spare", link],
    ] {
        let t = Instant::now();
        let out = cli(dir.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "{link} is already a member of the array (slot 1), under the name"
            )),
            "{err}"
        );
        // Refused before a replace's plan is shown (and, on a terminal, asked about).
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("plan:"),
            "{args:?}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{args:?} took {:?}",
            t.elapsed()
        );
    }
    let s2 = dir.path().join("s2.img");
    let out = cli(
        dir.path(),
        &[
            "add-spare",
            "--devices",
            &devs,
            "--spare",
            s2.to_str().unwrap(),
            "--create-size",
            "64M",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("give --force to let"), "{err}");
    assert!(!s2.exists(), "the refused spare's file was left behind");
    let (code, err) = node.terminate();
    assert_eq!(code, Some(0), "{err}");
    // Nothing changed: the spare left out of the node is still the spare.
    let out = cli(
        dir.path(),
        &[
            "status",
            "--devices",
            &format!("{devs},{}", spare.display()),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The same for a backup: before, SIGTERM waited for a rate-limited backup to be written
/// to its end. Now it stops between rows, the unfinished file is removed (no `.partial`
/// left, no backup file), the node stops in seconds, and the CLI exits 75 saying so.
#[test]
fn sigterm_stops_a_running_backup_and_the_node() {
    let (dir, _, out) = sigterm_during(
        |devs, dir| {
            let target = dir.join("b.ectb").display().to_string();
            [
                "backup",
                "--devices",
                devs,
                "--to",
                &target,
                "--rate",
                "64K",
            ]
            .map(String::from)
            .to_vec()
        },
        // Some rows written: the stop comes in the middle.
        |_, dir| {
            let started = dir.join("b.ectb.partial").exists();
            if started {
                std::thread::sleep(Duration::from_millis(300));
            }
            started
        },
    );
    let berr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{berr}");
    assert!(berr.contains("the backup was stopped after"), "{berr}");
    assert!(
        !dir.path().join("b.ectb.partial").exists(),
        "the unfinished backup file was left"
    );
    assert!(
        !dir.path().join("b.ectb").exists(),
        "a stopped backup left a backup file"
    );
}
