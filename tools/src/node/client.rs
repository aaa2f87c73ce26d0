//! How the CLI reaches a running node. A node writes `<run dir>/<array uuid>.node` (its
//! process id and the URL it serves) once it listens, and removes it when it stops. A
//! command given `--devices` reads the array's uuid from the first device's superblock
//! (read-only, no lock), and when that file names a live node serving the same array, the
//! command goes through the node's API instead of opening the devices itself (which the
//! node's lock would refuse). The run dir is `ECTABLE_RUN_DIR`, else `/run/ectable` for root
//! and `$XDG_RUNTIME_DIR/ectable` (or `/tmp/ectable-<uid>`) for other users.

use crate::cmd::common::DevicesArg;
use anyhow::{Context, Result};
use serde_json::{json, Value as JsonValue};
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

/// The directory of the node files.
pub fn run_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ECTABLE_RUN_DIR") {
        return PathBuf::from(d);
    }
    // SAFETY: geteuid(2) takes no arguments, touches no memory and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/run/ectable");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => PathBuf::from(d).join("ectable"),
        None => PathBuf::from(format!("/tmp/ectable-{uid}")),
    }
}

fn node_file(array_uuid: &str) -> PathBuf {
    run_dir().join(format!("{array_uuid}.node"))
}

/// Written by a node once it listens; removed when it stops (a SIGKILLed node leaves it:
/// a reader checks that the process lives and answers for the same array).
pub struct NodeFile {
    path: PathBuf,
}

impl NodeFile {
    /// Records that this process serves `array_uuid` at `url`.
    pub fn write(array_uuid: &str, url: &str) -> Result<NodeFile> {
        let dir = run_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = node_file(array_uuid);
        let tmp = path.with_extension("node.tmp");
        let body = json!({"pid": std::process::id(), "url": url, "array_uuid": array_uuid});
        std::fs::write(&tmp, body.to_string())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(NodeFile { path })
    }
}

impl Drop for NodeFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A running node serving the array of some devices.
pub struct NodeClient {
    base: String,
    /// For long work (a clean, a reopen, taking in a spare, streamed scrubs and rebuilds): no
    /// deadline past the connection.
    agent: ureq::Agent,
    /// For a question or a single write: answered within [`node_call_timeout`].
    quick: ureq::Agent,
}

/// How long a call that asks for no long work (a status, a get, a put, a delete, a plan)
/// waits for the node's answer before the CLI gives up on it: four times the engine's
/// default I/O deadline, past which a member that stopped answering is failed and the
/// call goes on without it. A node that takes longer is stopped or stuck.
/// `ECTABLE_NODE_CALL_TIMEOUT_MS` overrides it (tests).
pub fn node_call_timeout() -> Duration {
    std::env::var("ECTABLE_NODE_CALL_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(120), Duration::from_millis)
}

/// How long the CLI waits for a node to answer whether it serves the array, before it
/// takes the node for stuck (stopped, or waiting on a device that does not answer).
pub const NODE_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a node serves the array of some devices.
pub enum Served {
    /// No node runs for it here (no node file, or its process is gone or serves another
    /// array).
    No,
    /// A node serves it and answers.
    Yes(NodeClient),
    /// A node process that serves it lives, but did not answer within
    /// [`NODE_ANSWER_TIMEOUT`].
    NotAnswering {
        /// The URL it serves.
        url: String,
        /// Its process id.
        pid: i32,
    },
}

impl Served {
    /// The one-line description of a node that does not answer (None otherwise).
    pub fn not_answering(&self) -> Option<String> {
        match self {
            Served::NotAnswering { url, pid } => Some(format!(
                "the storage node at {url} (pid {pid}) holds this array but did not answer within {} s: it may be stopped or waiting on a device that does not answer ('ps -o stat= -p {pid}': T stopped, D waiting on a device); restart it if it does not recover",
                NODE_ANSWER_TIMEOUT.as_secs()
            )),
            _ => None,
        }
    }
}

/// The node serving the array whose devices `dev` names, if one runs here; an error (exit
/// 75) when its process lives but does not answer, rather than waiting for it without end.
pub fn find(dev: &DevicesArg) -> Result<Option<NodeClient>> {
    let s = served(dev);
    if let Some(why) = s.not_answering() {
        crate::fail!(crate::exit::TEMPFAIL, "{why}");
    }
    Ok(match s {
        Served::Yes(c) => Some(c),
        _ => None,
    })
}

/// Whether a node serves the array whose devices `dev` names ([`Served`]).
pub fn served(dev: &DevicesArg) -> Served {
    served_inner(dev).unwrap_or(Served::No)
}

fn served_inner(dev: &DevicesArg) -> Option<Served> {
    let paths = crate::split_devices(&dev.devices).ok()?;
    let uuid = paths.iter().find_map(|p| array_uuid_of(p))?;
    let text = std::fs::read_to_string(node_file(&uuid)).ok()?;
    let v: JsonValue = serde_json::from_str(&text).ok()?;
    let pid = v["pid"].as_i64()? as i32;
    // SAFETY: kill(2) with signal 0 only checks that the process exists; no memory involved.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return None;
    }
    let client = NodeClient {
        base: v["url"].as_str()?.trim_end_matches('/').to_string(),
        agent: http_agent(None),
        quick: http_agent(Some(node_call_timeout())),
    };
    // The question has a short deadline; the work asked for afterwards (a rebuild) has none.
    let probe = http_agent(Some(NODE_ANSWER_TIMEOUT));
    let asked = probe.get(format!("{}/v1/status/raw", client.base)).call();
    if let Err(ureq::Error::Timeout(t)) = &asked {
        tracing::debug!("the node at {}: timeout {t}", client.base);
        return Some(Served::NotAnswering {
            url: client.base,
            pid,
        });
    }
    let health = answer(asked).ok()?;
    (health["array_uuid"].as_str() == Some(uuid.as_str())).then_some(Served::Yes(client))
}

/// An HTTP client for the node: HTTP error statuses are answers (the node's error bodies),
/// a connection is given 2 s, and a whole call `deadline` (None: no deadline past the
/// connection).
fn http_agent(deadline: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(2)))
        .timeout_global(deadline)
        .build()
        .into()
}

/// How long the check for a node waits for one device's superblock: a member that stopped
/// answering is passed over for the next (the engine's own I/O deadline fails it later).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The array uuid in `path`'s superblock, read through the I/O engine with a deadline, so
/// that a device that does not answer holds up neither the command nor its exit.
fn array_uuid_of(path: &std::path::Path) -> Option<String> {
    let limit = crate::deadline::io_timeout().map_or(PROBE_TIMEOUT, |t| t.min(PROBE_TIMEOUT));
    match crate::cmd::examine::member_info_of(path, Some(limit)) {
        Ok(info) => info.map(|m| m.array_uuid),
        // A device that stopped answering is worth a word here, where the wait happened;
        // one that is gone or unreadable is the command's to report, if it matters.
        Err(ectable_engine::Error::Device(e))
            if e.class() == ectable_devices::ErrorClass::TimedOut =>
        {
            tracing::warn!("{e}; looking at the next device");
            None
        }
        Err(e) => {
            tracing::debug!("{e}; looking at the next device");
            None
        }
    }
}

/// What to do instead of a writing command that cannot go through a node (load, import,
/// table create and drop, backup-clear-horizon).
pub const USE_THE_API: &str = "this command does not go through a node: use the node's HTTP \
     API instead (/v1/kv/batch for rows, /v1/tables for typed tables; docs/node.md) or stop \
     the node first";

/// For a command that needs the devices a node holds and cannot go through it (the writing
/// commands of [`USE_THE_API`], a second `serve`, `format --force`, `restore --force`):
/// refused at once when a node serves the array, naming it and `instead`, rather than after
/// waiting for the lock the node holds.
pub fn refuse_if_served(dev: &DevicesArg, instead: &str) -> Result<()> {
    if let Some(node) = find(dev)? {
        crate::fail!(
            crate::exit::TEMPFAIL,
            "in use: the storage node at {} serves this array and holds its devices; {instead}",
            node.url()
        );
    }
    Ok(())
}

/// The error a node answered, as the CLI reports it: its message, and the exit code the CLI
/// would have exited with for it.
fn node_error(v: &JsonValue) -> anyhow::Error {
    let e = &v["error"];
    let code = e["exit_code"]
        .as_i64()
        .unwrap_or(crate::exit::SOFTWARE as i64) as i32;
    let msg = e["message"]
        .as_str()
        .unwrap_or("the node failed")
        .to_string();
    crate::coded!(code, "{msg}")
}

/// A failed call to the node as the CLI reports it: one that ran out of
/// [`node_call_timeout`] says so, and that a write may still take effect there.
fn call_error(e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Timeout(_) => timed_out(),
        e => crate::coded!(crate::exit::UNAVAILABLE, "the node: {e}"),
    }
}

/// A failed read of the node's answer after its head came: the same deadline as the call.
fn answer_error(e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Timeout(_) => timed_out(),
        e => crate::coded!(crate::exit::UNAVAILABLE, "the node's answer: {e}"),
    }
}

fn timed_out() -> anyhow::Error {
    crate::coded!(
        crate::exit::TEMPFAIL,
        "the storage node did not answer within {:.0} s: it may be stopped or waiting on a device that does not answer; a write asked for may still take effect there (look with 'ectable get' or 'ectable status' once it answers)",
        node_call_timeout().as_secs_f64()
    )
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<JsonValue> {
    let mut r = r.map_err(call_error)?;
    let ok = r.status().is_success();
    let text = r
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_string()
        .map_err(answer_error)?;
    let v: JsonValue = serde_json::from_str(&text).unwrap_or(JsonValue::String(text));
    if ok {
        Ok(v)
    } else if v.get("error").is_some() {
        Err(node_error(&v))
    } else {
        Err(crate::coded!(
            crate::exit::SOFTWARE,
            "the node answered: {v}"
        ))
    }
}

impl NodeClient {
    /// The node's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// GET `path`, its JSON answer.
    pub fn get(&self, path: &str) -> Result<JsonValue> {
        answer(self.quick.get(format!("{}{path}", self.base)).call())
    }

    /// POST a JSON body asking for no long work, its JSON answer (within
    /// [`node_call_timeout`]).
    pub fn post(&self, path: &str, body: &JsonValue) -> Result<JsonValue> {
        Self::post_with(&self.quick, &self.base, path, body)
    }

    /// POST a JSON body asking for long work (a clean, a reopen, a spare taken in), its JSON
    /// answer whenever it comes.
    pub fn post_long(&self, path: &str, body: &JsonValue) -> Result<JsonValue> {
        Self::post_with(&self.agent, &self.base, path, body)
    }

    fn post_with(
        agent: &ureq::Agent,
        base: &str,
        path: &str,
        body: &JsonValue,
    ) -> Result<JsonValue> {
        answer(
            agent
                .post(format!("{base}{path}"))
                .header("content-type", "application/json")
                .send(body.to_string()),
        )
    }

    /// PUT raw bytes, its JSON answer.
    pub fn put_bytes(&self, path: &str, body: &[u8]) -> Result<JsonValue> {
        answer(self.quick.put(format!("{}{path}", self.base)).send(body))
    }

    /// PUT a typed row (`{"pk", "cols"}`), its JSON answer.
    pub fn post_put_row(&self, table: &str, body: &JsonValue) -> Result<JsonValue> {
        answer(
            self.quick
                .put(format!("{}/v1/tables/{}/rows", self.base, segment(table)))
                .header("content-type", "application/json")
                .send(body.to_string()),
        )
    }

    /// GET raw bytes (a key/value value); a 404 is an error with the CLI's "no" code.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        let mut r = self
            .quick
            .get(format!("{}{path}", self.base))
            .call()
            .map_err(call_error)?;
        if !r.status().is_success() {
            return Err(answer(Ok(r))
                .err()
                .unwrap_or_else(|| anyhow::anyhow!("the node failed")));
        }
        r.body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_vec()
            .map_err(answer_error)
    }

    /// DELETE, its JSON answer.
    pub fn delete(&self, path: &str) -> Result<JsonValue> {
        answer(self.quick.delete(format!("{}{path}", self.base)).call())
    }

    /// POST long work with `?progress=true`: calls `progress` with each progress line and
    /// returns the result line (or the error it carries).
    pub fn post_streaming(
        &self,
        path: &str,
        body: &JsonValue,
        progress: &mut dyn FnMut(&JsonValue),
    ) -> Result<JsonValue> {
        let mut r = self
            .agent
            .post(format!("{}{path}?progress=true", self.base))
            .header("content-type", "application/json")
            .send(body.to_string())
            .map_err(|e| crate::coded!(crate::exit::UNAVAILABLE, "the node: {e}"))?;
        if !r.status().is_success() {
            return answer(Ok(r));
        }
        let reader = std::io::BufReader::new(r.body_mut().as_reader());
        for line in reader.lines() {
            let line =
                line.map_err(|e| crate::coded!(crate::exit::UNAVAILABLE, "the node: {e}"))?;
            let Ok(v) = serde_json::from_str::<JsonValue>(&line) else {
                continue;
            };
            if let Some(p) = v.get("progress") {
                progress(p);
            } else if let Some(r) = v.get("result") {
                return Ok(r.clone());
            } else if v.get("error").is_some() {
                return Err(node_error(&v));
            }
        }
        Err(crate::coded!(
            crate::exit::UNAVAILABLE,
            "the node stopped answering before the work ended (it may still be running there: see 'ectable status')"
        ))
    }
}

/// A progress line of the node as the engine's `Progress` (for the same progress bar).
pub fn progress_of(p: &JsonValue) -> ectable_engine::Progress {
    let n = |k: &str| p[k].as_u64().unwrap_or(0);
    ectable_engine::Progress {
        segments_done: n("segments_done") as usize,
        segments_total: n("segments_total") as usize,
        bytes_scanned: n("bytes_scanned"),
        bytes_total: n("bytes_total"),
        chunks_rebuilt: n("chunks_rebuilt"),
        bytes_rebuilt: n("bytes_rebuilt"),
        unrecoverable: strings(&p["unrecoverable"]),
        interrupted: p["interrupted"].as_bool().unwrap_or(false),
    }
}

/// A JSON array of strings (anything else: empty; non-strings skipped).
pub fn strings(v: &JsonValue) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A JSON array of counts (anything else: empty; non-numbers as 0).
pub fn counts(v: &JsonValue) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(0)).collect())
        .unwrap_or_default()
}

/// Percent-encodes a path segment (a table name or a key).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
