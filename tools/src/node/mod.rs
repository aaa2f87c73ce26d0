//! `ectable serve`: a storage node over an existing array. It holds the devices (the
//! engine's exclusive lock refuses a second node or a writing CLI on them), runs the engine's
//! own background work (flusher, cleaner, periodic checkpoints, the monitor and its recovery
//! policy), optional scheduled scrubs and hybrid backups, and serves the HTTP API of
//! `routes` and `/metrics` (`prom`). docs/node.md is the API's reference; docs/operations.md
//! says how to run a node.
//!
//! Invariants:
//! - The node answers only once the array is open and its log replayed; it prints
//!   `listening on ADDR` (and tells systemd READY=1 when NOTIFY_SOCKET is set) at that point.
//! - SIGTERM or SIGINT: the listener stops taking connections, requests in flight finish
//!   (a scrub or rebuild stops between segments), then the engine closes (everything durable, an index checkpoint written) and the node
//!   exits 0. A SIGKILL loses nothing acknowledged: the next open replays the log.
//! - Scheduled work runs one at a time beside the requests; a failure is logged and retried
//!   at the next tick, never fatal to the node.

pub mod client;
pub mod durable;
pub mod prom;
pub mod routes;

use crate::{open_devices, split_devices};
use anyhow::{Context, Result};
use clap::Args;
use ectable_backup::{take_auto, AutoPolicy, TakeOptions};
use ectable_devices::BackendKind;
use ectable_engine::table::Tables;
use ectable_engine::{Engine, EngineOptions, Error as EngineError, RebuildOptions, RecoveryPolicy};
use serde_json::{json, Value as JsonValue};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `ectable serve`.
#[derive(Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub dev: crate::cmd::common::DevicesArg,
    /// Address to serve the HTTP API and /metrics on (port 0: any free port, printed).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7070")]
    pub listen: String,
    /// Scrub (with repair) this often, e.g. 7d; the first one after one period.
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub scrub_every: Option<Duration>,
    /// Take hybrid backups (the `backup --auto` policy) into this directory.
    #[arg(long, value_name = "DIR", requires = "backup_every")]
    pub backup_dir: Option<PathBuf>,
    /// How often to take a backup into --backup-dir, e.g. 1h.
    #[arg(long, value_name = "DURATION", value_parser = duration_arg, requires = "backup_dir")]
    pub backup_every: Option<Duration>,
    /// What the node does when a member is lost: `manual` (the operator runs replace),
    /// `semi-automatic` (the plan, which hot spare for which slot, goes to the log; the
    /// operator confirms it with replace), `automatic` (a hot spare takes the slot and is
    /// rebuilt at once, and a stale member is resynced, with no operator).
    #[arg(long, value_name = "POLICY", default_value = "manual", value_parser = recovery_arg)]
    pub recovery: RecoveryPolicy,
}

fn recovery_arg(s: &str) -> std::result::Result<RecoveryPolicy, String> {
    s.parse()
}

fn duration_arg(s: &str) -> std::result::Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 30s, 1h, 7d)"))?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(d)
}

/// The state every request shares.
pub struct Node {
    /// The open array; replaced whole by `reopen`.
    session: std::sync::RwLock<Arc<Session>>,
    /// What the array is opened from at a `reopen`: the node's `--devices`, kept up to date
    /// as members change device (`replace`, `online` under a new name, `add-spare`).
    devices: Mutex<Vec<PathBuf>>,
    kind: BackendKind,
    recovery: RecoveryPolicy,
    backup_dir: Option<PathBuf>,
    started: Instant,
    requests: [AtomicU64; 3],
    /// One scrub or backup at a time (scheduled or asked for).
    maintenance: Mutex<()>,
    /// The latest device events (at most `KEPT_EVENTS`), oldest first.
    events: Mutex<std::collections::VecDeque<JsonValue>>,
    /// Set at SIGTERM or SIGINT: a scrub or rebuild running stops between segments (a
    /// rebuild resumes where it stopped), so that the node stops in seconds, not when a
    /// rate-limited scrub would have finished.
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

/// One open of the array and what hangs on it. A request takes the current one for its
/// whole run ([`Node::s`]), so a reopen never pulls the engine out from under it: a request
/// that raced the reopen finds its engine closed and is answered 503.
pub struct Session {
    /// The open array.
    pub engine: Arc<Engine>,
    /// Its typed tables.
    pub tables: Tables,
    /// Waits for durability on behalf of every request in flight.
    durable: durable::Waiter,
}

impl Session {
    /// Opens the array on `devices` (the node's own process holds them from now on). A
    /// listed device the array has replaced (by `replace`, or by a hot spare under the
    /// automatic recovery policy) is left out of the list with a warning, rather than
    /// keeping the node from starting: the list a unit file was written with names it.
    fn open(
        devices: &mut Vec<PathBuf>,
        kind: BackendKind,
        recovery: RecoveryPolicy,
    ) -> Result<Session> {
        // The I/O deadline is the process's (`ectable --io-timeout`, also given after
        // `serve`), at start and at every reopen.
        let opts = EngineOptions {
            recovery,
            ..crate::deadline::engine_options(false)
        };
        let (engine, left_out) =
            crate::cmd::common::open_without_strays(devices, false, |devices| {
                let io = open_devices(devices, None, false, kind)?;
                Ok(Engine::open(io, opts.clone())?)
            })
            .context("opening the array")?;
        for s in left_out {
            tracing::warn!("{}: {} (take it off --devices)", s.device, s.why);
        }
        let engine = Arc::new(engine);
        let tables = Tables::open(engine.clone()).context("loading the table schemas")?;
        let durable = durable::Waiter::start(engine.clone())?;
        Ok(Session {
            engine,
            tables,
            durable,
        })
    }
}

/// What `POST /v1/admin/backup` asks for.
#[derive(Default)]
pub struct BackupRequest {
    /// A directory for the hybrid policy.
    pub auto: Option<PathBuf>,
    /// Or a file.
    pub to: Option<PathBuf>,
    /// With `to`: an incremental backup after this one.
    pub incremental_from: Option<PathBuf>,
    /// The policy's settings (with `auto`).
    pub policy: AutoPolicy,
    /// Bytes per second at most (0: unlimited).
    pub rate: u64,
}

/// Device events `/v1/events` keeps.
const KEPT_EVENTS: usize = 100;

impl Node {
    /// The array as the node has it open now.
    pub fn s(&self) -> Arc<Session> {
        self.session
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Closes the array and opens it again from the same devices: after a failure that
    /// stopped writes (more than m devices failed at once, a full file system under the
    /// member files) and has been put right, writes work again without restarting the
    /// node. The close writes what it can (the health blocks); the open replays the log as
    /// after a crash. If the open fails, the node keeps answering with its engine closed
    /// (503) until a reopen succeeds.
    fn reopen(self: &Arc<Self>) -> Result<JsonValue> {
        let _one = self.one_at_a_time()?;
        // Not before enough members are readable again: closing first would take the
        // reads the node still serves with it.
        let devices = self.devices();
        let ex = crate::cmd::examine::examine(&devices);
        let uuid = self.s().engine.status().array_uuid;
        match ex.arrays.iter().find(|a| a.uuid == uuid) {
            Some(found) if !found.unavailable() => {}
            found => crate::fail!(
                crate::exit::UNAVAILABLE,
                "not reopening: too few members of the array are readable yet ({} of {} \
                 missing among the node's devices); the array stays open as it is",
                found.map_or(devices.len(), |f| f.missing().len()),
                found.map_or(devices.len(), |f| f.slots.len())
            ),
        }
        let old = self.s();
        let before = old.engine.status().state().as_str();
        if let Err(e) = old.engine.close() {
            tracing::warn!(
                "reopen: the array closed with an error (expected after a failed write): {}",
                crate::cmd::common::one_line(&anyhow::Error::from(e))
            );
        }
        drop(old);
        let start = Instant::now();
        let mut devices = devices;
        let session = Arc::new(Session::open(&mut devices, self.kind, self.recovery)?);
        *self.devices.lock().unwrap_or_else(|p| p.into_inner()) = devices;
        spawn_event_feed(self, &session.engine)?;
        let st = session.engine.status();
        *self.session.write().unwrap_or_else(|p| p.into_inner()) = session;
        tracing::info!("reopened the array: {}", st.state().as_str());
        Ok(json!({
            "state_before": before,
            "state": st.state().as_str(),
            "elapsed_ns": start.elapsed().as_nanos() as u64,
            "replayed_stripes": st.recovery.stripes,
            "durable_lsn": st.durable_lsn,
        }))
    }

    /// The devices a reopen opens the array from.
    fn devices(&self) -> Vec<PathBuf> {
        self.devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A member changed device: `old` (the name its slot's device had, if any) leaves the
    /// list a reopen opens from, `new` joins it. Without this a reopen after a `replace`
    /// would list the device replaced out of the array, and be refused.
    fn swap_device(&self, old: Option<&str>, new: &Path) {
        let mut d = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = old {
            d.retain(|p| p.display().to_string() != old);
        }
        if !d.iter().any(|p| p == new) {
            d.push(new.to_path_buf());
        }
    }

    /// After a replacement the node did not ask for (the engine's recovery policy put a hot
    /// spare in a slot): the devices the engine now names replaced leave the list a reopen
    /// opens from (the spare is in it already), as `replace` through the node does.
    fn drop_replaced(&self) {
        let st = self.s().engine.status();
        let mut d = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        d.retain(|p| !st.replaced.contains(&p.display().to_string()));
    }

    fn count(&self, class: u16) {
        routes::count_in(&self.requests, class);
    }

    fn count_result<T>(&self, r: &std::result::Result<T, routes::ApiError>) {
        self.count(match r {
            Ok(_) => 2,
            Err(e) if e.is_client_error() => 4,
            Err(_) => 5,
        });
    }

    /// Key/value calls on a typed table are refused: its rows have their own encoding.
    fn refuse_typed(&self, table: &str) -> std::result::Result<(), routes::ApiError> {
        if self.s().tables.schema(table).is_some() {
            return Err(EngineError::WrongTableKind {
                table: table.to_string(),
                detail: "is a typed table: use /v1/tables/{table}/rows".into(),
            }
            .into());
        }
        Ok(())
    }

    fn default_backup_dir(&self) -> Option<PathBuf> {
        self.backup_dir.clone()
    }

    fn recent_events(&self) -> JsonValue {
        let q = self.events.lock().unwrap_or_else(|p| p.into_inner());
        json!({"events": q.iter().cloned().collect::<Vec<_>>()})
    }

    fn render_metrics(&self) -> String {
        let names = ["2xx", "4xx", "5xx"];
        prom::render(
            self.s().engine.metrics(),
            prom::NodeFigures {
                requests: names
                    .iter()
                    .zip(&self.requests)
                    .map(|(n, c)| (*n, c.load(Ordering::Relaxed)))
                    .collect(),
                uptime_seconds: self.started.elapsed().as_secs_f64(),
            },
        )
    }

    fn one_at_a_time(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.maintenance.try_lock().map_err(|_| {
            crate::coded!(
                crate::exit::TEMPFAIL,
                "a scrub, backup, replace or rebuild is running on the node; try again when it is done"
            )
        })
    }

    fn scrub(
        &self,
        repair: bool,
        rate: u64,
        progress: &mut dyn FnMut(JsonValue),
    ) -> Result<JsonValue> {
        let _one = self.one_at_a_time()?;
        let opts = RebuildOptions {
            rate_limit_bytes_per_sec: rate,
            cancel: Some(self.stopping.clone()),
        };
        let r = self
            .s()
            .engine
            .scrub(repair, &opts, &mut |p| progress(progress_json(p)))?;
        Ok(json!({
            "interrupted": r.progress.interrupted,
            "segments_done": r.progress.segments_done,
            "segments_total": r.progress.segments_total,
            "stripes_checked": r.stripes_checked,
            "bytes_scanned": r.progress.bytes_scanned,
            "parity_mismatches": r.parity_mismatches,
            "chunks_repaired": r.chunks_repaired,
            "bytes_repaired": r.progress.bytes_rebuilt,
            "unrecoverable": r.progress.unrecoverable,
            "bad_chunks_per_slot": r.bad_chunks_per_slot,
            "unchecked_chunks_per_slot": r.unchecked_chunks_per_slot,
            "bad_superblocks_per_slot": r.bad_superblocks_per_slot,
            "bad_superblocks": r.bad_superblocks,
            "superblocks_repaired": r.superblocks_repaired,
            "bad_segment_headers_per_slot": r.bad_segment_headers_per_slot,
            "segment_headers_repaired": r.segment_headers_repaired,
            "reused_by_writer": r.reused_by_writer,
        }))
    }

    /// What `rebuild` has to do here (the rebuild in progress, stale members present), or
    /// why there is nothing: the same decisions as the CLI's own `rebuild`.
    fn rebuild(&self, rate: u64, progress: &mut dyn FnMut(JsonValue)) -> Result<JsonValue> {
        let _one = self.one_at_a_time()?;
        let (what, absent) = crate::cmd::rebuild::rebuild_plan(&self.s().engine);
        if what.is_empty() {
            return Ok(json!({"nothing": true, "absent": absent}));
        }
        self.run_rebuild(&what.join(", "), rate, progress)
    }

    fn run_rebuild(
        &self,
        what: &str,
        rate: u64,
        progress: &mut dyn FnMut(JsonValue),
    ) -> Result<JsonValue> {
        let start = Instant::now();
        let p = self.s().engine.rebuild(
            &RebuildOptions {
                rate_limit_bytes_per_sec: rate,
                cancel: Some(self.stopping.clone()),
            },
            &mut |p| progress(progress_json(p)),
        )?;
        Ok(json!({
            "what": what,
            "elapsed_ns": start.elapsed().as_nanos() as u64,
            "progress": progress_json(&p),
        }))
    }

    /// Refuses a device the engine holds already, by name or by storage under another name
    /// (a relative path the node was started with, a symlink, a loop device over a member's
    /// file): opening it for writing would wait for the lock this node holds and then say
    /// "in use". A read-only handle takes no lock.
    pub fn refuse_held(&self, path: &Path) -> Result<()> {
        let engine = &self.s().engine;
        let held = engine
            .holding_path(&path.display().to_string())
            .or_else(|| {
                let ro = ectable_devices::FileDevice::open(
                    path,
                    &ectable_devices::OpenOptions {
                        read_only: true,
                        ..Default::default()
                    },
                )
                .ok()?;
                let ro: Arc<dyn ectable_devices::BlockDevice> = Arc::new(ro);
                engine.holding(&ro)
            });
        crate::cmd::rebuild::refuse_holding(engine, path, held)
    }

    /// The slot `replace` would rebuild: `old_slot`, or the slot of the member at `old`,
    /// or the one slot missing.
    fn replace_slot(&self, old: &str, old_slot: Option<usize>) -> Result<usize> {
        let engine = &self.s().engine;
        let member = engine
            .slot_of_path(old)
            .or_else(|| crate::cmd::rebuild::slot_by_superblock(engine, std::path::Path::new(old)));
        crate::cmd::rebuild::replace_slot(engine, old, old_slot, member)
    }

    /// Opens `path` in the node's process (created at `create_size` if missing; with
    /// `force`, wiped when it holds an ectable array) for a hand-over to the engine, as the
    /// new device of `replace` or `add-spare`. A member or spare is refused before the open,
    /// which would wait for the claim this node holds. The file it made, if any, is removed
    /// when the returned guard drops before it is cleared: when the engine then refuses the
    /// device.
    fn open_new_device<'a>(
        &self,
        new: &'a NewDevice,
    ) -> Result<(
        Arc<dyn ectable_devices::BlockDevice>,
        crate::cmd::rebuild::MadeFile<'a>,
    )> {
        let (path, force) = (new.path.as_path(), new.force);
        self.refuse_held(path)?;
        let made = crate::cmd::rebuild::MadeFile(
            (new.create_size.is_some() && path.symlink_metadata().is_err()).then_some(path),
        );
        let dev = crate::open_added_device(path, new.create_size, new.preallocate)?;
        if let Some(array) = crate::cmd::examine::probe_path(path)? {
            if !force {
                let what = if array == self.s().engine.status().array_uuid {
                    "was replaced out of this array earlier".to_string()
                } else {
                    format!("holds an ectable array ({array})")
                };
                crate::fail!(
                    crate::exit::CONFIG,
                    "{}: {what}; use --force to reuse it",
                    path.display()
                );
            }
            ectable_engine::wipe_device(&dev)?;
        } else {
            crate::cmd::common::refuse_signature(path, force)?;
        }
        Ok((Arc::new(dev), made))
    }

    fn replace(
        &self,
        slot: usize,
        new: &NewDevice,
        rate: u64,
        progress: &mut dyn FnMut(JsonValue),
    ) -> Result<JsonValue> {
        let _one = self.one_at_a_time()?;
        let (dev, mut made) = self.open_new_device(new)?;
        let old = self
            .s()
            .engine
            .status()
            .devices
            .get(slot)
            .and_then(|d| d.path.clone());
        self.s().engine.replace_with_device(slot, dev)?;
        made.0 = None;
        self.swap_device(old.as_deref(), &new.path);
        let mut r = self.run_rebuild(&format!("rebuild of slot {slot}"), rate, progress)?;
        r["slot"] = json!(slot);
        Ok(r)
    }

    /// `online`: the member on `path` back into service, then its resync (the same as
    /// `ectable online` without a node).
    fn online(
        &self,
        path: &Path,
        rate: u64,
        progress: &mut dyn FnMut(JsonValue),
    ) -> Result<JsonValue> {
        let _one = self.one_at_a_time()?;
        let s = self.s();
        let before = s.engine.status();
        let dev = crate::cmd::online::open_returning(&s.engine, path)?;
        let o = s.engine.online(dev)?;
        if o.was == "ONLINE" {
            return Ok(json!({"slot": o.slot, "was": o.was, "device": o.device, "nothing": true}));
        }
        let old = before.devices.get(o.slot).and_then(|d| d.path.clone());
        self.swap_device(old.as_deref(), path);
        let what = crate::cmd::online::resync_what(&o);
        let mut r = self.run_rebuild(&what, rate, progress)?;
        r["slot"] = json!(o.slot);
        r["was"] = json!(o.was);
        r["device"] = json!(o.device);
        Ok(r)
    }

    fn add_spare(&self, new: &NewDevice) -> Result<JsonValue> {
        let _one = self.one_at_a_time()?;
        let engine = &self.s().engine;
        let missing = engine.status().spares_missing;
        let (dev, mut made) = self.open_new_device(new)?;
        let added = if new.force {
            engine.add_spare_device_in_place_of_missing(dev)
        } else {
            engine.add_spare_device(dev)
        };
        added.map_err(|e| crate::cmd::format::spare_missing_hint(e.into(), &new.path))?;
        made.0 = None;
        // (A spare that failed while the node ran gives its entry without being asked to.)
        let in_place_of = crate::cmd::format::spare_taken(&missing, engine);
        self.swap_device(None, &new.path);
        Ok(json!({"spare": new.path.display().to_string(), "in_place_of": in_place_of}))
    }

    fn backup(&self, dir: Option<&Path>) -> Result<JsonValue> {
        let req = BackupRequest {
            auto: dir.or(self.backup_dir.as_deref()).map(Path::to_path_buf),
            ..Default::default()
        };
        if req.auto.is_none() {
            crate::fail!(
                crate::exit::USAGE,
                "no backup directory: give \"dir\" or start the node with --backup-dir"
            );
        }
        self.backup_with(&req, &mut |_| {})
    }

    /// A backup as `ectable backup` takes it: into a directory by the hybrid policy, or
    /// to a file (full, or incremental after another file). Progress: bytes written and
    /// expected.
    fn backup_with(
        &self,
        req: &BackupRequest,
        progress: &mut dyn FnMut(JsonValue),
    ) -> Result<JsonValue> {
        let _one = self.one_at_a_time()?;
        let mut report =
            |done: u64, total: u64| progress(json!({"bytes_done": done, "bytes_total": total}));
        // A node that is stopping stops the backup between rows (the unfinished file is
        // removed) rather than hold the close for the rest of it.
        let mut opts = TakeOptions {
            rate_bytes_per_sec: req.rate,
            progress: Some(&mut report),
            cancel: Some(self.stopping.as_ref()),
        };
        let (path, m, reason, pruned) = match (&req.auto, &req.to, &req.incremental_from) {
            (Some(dir), _, _) => {
                let o = take_auto(&self.s().engine, dir, &req.policy, &mut opts)?;
                (o.path, o.manifest, Some(o.reason), o.pruned)
            }
            (None, Some(to), None) => (
                to.clone(),
                ectable_backup::take_full(&self.s().engine, to, &mut opts)?,
                None,
                Vec::new(),
            ),
            (None, Some(to), Some(base)) => (
                to.clone(),
                ectable_backup::take_incremental(&self.s().engine, base, to, &mut opts)?,
                None,
                Vec::new(),
            ),
            (None, None, _) => crate::fail!(crate::exit::USAGE, "give \"to\" or \"auto\""),
        };
        let mut v = crate::backup::cli::manifest_json(&path, &m);
        if let Some(r) = reason {
            v["reason"] = json!(r);
            v["pruned"] = json!(pruned
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>());
        }
        Ok(v)
    }
}

/// The device a node's `replace` is handed, and how to open it.
pub struct NewDevice {
    pub path: PathBuf,
    /// Create it as a sparse file of this size when missing.
    pub create_size: Option<u64>,
    /// Allocate all of its blocks first (`--preallocate`).
    pub preallocate: bool,
    /// Wipe it when it holds an ectable array.
    pub force: bool,
}

/// A rebuild's or scrub's progress as the node streams it.
pub fn progress_json(p: &ectable_engine::Progress) -> JsonValue {
    json!({
        "segments_done": p.segments_done,
        "segments_total": p.segments_total,
        "bytes_scanned": p.bytes_scanned,
        "bytes_total": p.bytes_total,
        "chunks_rebuilt": p.chunks_rebuilt,
        "bytes_rebuilt": p.bytes_rebuilt,
        "unrecoverable": p.unrecoverable,
        "interrupted": p.interrupted,
    })
}

/// Runs the node until SIGTERM or SIGINT.
pub fn serve(kind: BackendKind, a: &ServeArgs) -> Result<i32> {
    let addr: std::net::SocketAddr = a.listen.parse().map_err(|e| {
        crate::coded!(
            crate::exit::USAGE,
            "--listen {}: {e} (expected HOST:PORT, e.g. 127.0.0.1:7070)",
            a.listen
        )
    })?;
    crate::node::client::refuse_if_served(
        &a.dev,
        "one node serves an array at a time: use that one, or stop it first",
    )?;
    let mut devices: Vec<PathBuf> = split_devices(&a.dev.devices)?;
    let session = Arc::new(Session::open(&mut devices, kind, a.recovery)?);
    let node = Arc::new(Node {
        session: std::sync::RwLock::new(session.clone()),
        devices: Mutex::new(devices),
        kind,
        recovery: a.recovery,
        backup_dir: a.backup_dir.clone(),
        started: Instant::now(),
        requests: Default::default(),
        maintenance: Mutex::new(()),
        events: Mutex::new(Default::default()),
        stopping: Default::default(),
    });
    spawn_event_feed(&node, &session.engine)?;
    drop(session);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ectable-node")
        .build()
        .context("starting the node's runtime")?;
    let served = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| crate::coded!(crate::exit::UNAVAILABLE, "--listen {addr}: {e}"))?;
        let local = listener.local_addr()?;
        let st = node.s().engine.status();
        println!(
            "ectable node: array {} ({} devices, RS({},{}), {}); listening on {local}",
            st.array_uuid,
            st.devices.len(),
            st.data_shards,
            st.parity_shards,
            st.state().as_str()
        );
        // How the CLI finds this node from the devices (client.rs).
        let ip = match local.ip() {
            std::net::IpAddr::V4(v) if v.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(v) if v.is_unspecified() => "[::1]".to_string(),
            std::net::IpAddr::V6(v) => format!("[{v}]"),
            ip => ip.to_string(),
        };
        let _node_file =
            match client::NodeFile::write(&st.array_uuid, &format!("http://{ip}:{}", local.port()))
            {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(
                        "the CLI will not find this node: {}",
                        crate::cmd::common::one_line(&e)
                    );
                    None
                }
            };
        notify_systemd("READY=1");
        if let Some(every) = a.scrub_every {
            tokio::spawn(every_period(every, node.clone(), |n| {
                n.scrub(true, 0, &mut |_| {})
                    .map(|r| format!("scheduled scrub: {r}"))
            }));
        }
        if let Some(every) = a.backup_every {
            tokio::spawn(every_period(every, node.clone(), |n| {
                n.backup(None).map(|r| format!("scheduled backup: {r}"))
            }));
        }
        // Small answers go out at once (no Nagle delay waiting for the client's ACK).
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("TCP_NODELAY: {e}");
            }
        });
        axum::serve(listener, routes::router(node.clone()))
            .with_graceful_shutdown(shutdown_signal(node.stopping.clone()))
            .await
            .context("serving")?;
        anyhow::Ok(())
    });
    notify_systemd("STOPPING=1");
    // Scheduled work still running holds the engine; it stops with the runtime.
    rt.shutdown_timeout(Duration::from_secs(10));
    let engine = node.s().engine.clone();
    drop(node);
    let closed = engine.close().context("closing the array");
    served?;
    closed?;
    eprintln!("ectable node: stopped; the array is closed");
    Ok(crate::exit::OK)
}

/// Device state changes of `engine`: logged by the engine; kept for /v1/events. The thread
/// ends with the engine (its feed closes) or the node.
fn spawn_event_feed(node: &Arc<Node>, engine: &Engine) -> Result<()> {
    let feed = engine.subscribe_events();
    let keep = Arc::downgrade(node);
    std::thread::Builder::new()
        .name("ectable-node-events".into())
        .spawn(move || {
            while let Ok(ev) = feed.recv() {
                let Some(node) = keep.upgrade() else { return };
                if ev.kind == ectable_engine::DeviceEventKind::Replaced {
                    node.drop_replaced();
                }
                let at = humantime::format_rfc3339_millis(ev.at).to_string();
                let mut q = node.events.lock().unwrap_or_else(|p| p.into_inner());
                if q.len() == KEPT_EVENTS {
                    q.pop_front();
                }
                q.push_back(json!({
                    "at": at,
                    "slot": ev.slot,
                    "device": ev.device,
                    "event": ev.kind.as_str(),
                    "detail": ev.detail,
                }));
            }
        })
        .context("starting the event thread")?;
    Ok(())
}

/// Runs `work` every `period` (the first run after one period), one at a time.
async fn every_period(period: Duration, node: Arc<Node>, work: fn(&Node) -> Result<String>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let n = node.clone();
        match tokio::task::spawn_blocking(move || work(&n)).await {
            Ok(Ok(line)) => tracing::info!("{line}"),
            Ok(Err(e)) => tracing::warn!(
                "scheduled work failed: {}",
                crate::cmd::common::one_line(&e)
            ),
            Err(e) => tracing::warn!("scheduled work failed: {e}"),
        }
    }
}

async fn shutdown_signal(stopping: Arc<std::sync::atomic::AtomicBool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the node runs until killed; SIGKILL loses nothing.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    eprintln!("ectable node: stopping (requests in flight finish, a scrub or rebuild stops between segments and a backup between rows, then the array closes)");
}

/// Tells systemd (a `Type=notify` unit) about the node's state, when NOTIFY_SOCKET is set.
fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let r = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), Path::new(&path))
    };
    if let Err(e) = r {
        tracing::warn!("NOTIFY_SOCKET: {e}");
    }
}
