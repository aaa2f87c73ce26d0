//! `ectable online`: brings a member that failed back into service once its device works
//! again, also when it came back under another name, and resyncs what it missed
//! (docs/operations.md, "Device states"). Through a running node there is no downtime.

use crate::cmd::common::{open_array, DevicesArg};
use crate::term::ByteProgress;
use anyhow::{Context, Result};
use clap::Args;
use ectable_devices::{BackendKind, BlockDevice, FileDevice, OpenOptions};
use ectable_engine::{Engine, Online, RebuildOptions};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct OnlineArgs {
    #[command(flatten)]
    pub dev: DevicesArg,
    /// The member's device as it is named now (it may have come back under another name).
    pub device: PathBuf,
    /// Resync rate limit in bytes per second read (0: unlimited).
    #[arg(long, default_value = "0", value_parser = crate::cmd::common::rate_arg)]
    pub rate: u64,
}

/// Opens the device a member came back on, for [`Engine::online`]: read-only when the engine
/// already holds that storage (a fault that went away: it uses its own handle, and a second
/// writable open would wait for the engine's own claim), for writing otherwise.
pub fn open_returning(engine: &Engine, path: &Path) -> Result<Arc<dyn BlockDevice>> {
    let ro: Arc<dyn BlockDevice> = Arc::new(FileDevice::open(
        path,
        &OpenOptions {
            read_only: true,
            ..Default::default()
        },
    )?);
    if engine.holds_device(&ro) {
        return Ok(ro);
    }
    drop(ro);
    Ok(Arc::new(FileDevice::open(path, &OpenOptions::default())?))
}

/// What the resync after `online` does, for its report.
pub fn resync_what(o: &Online) -> String {
    format!(
        "resync of slot {} ({}) from segment {}",
        o.slot,
        o.device,
        o.resync_from.unwrap_or(0)
    )
}

/// `ectable online`.
pub fn online(kind: BackendKind, a: &OnlineArgs) -> Result<i32> {
    let device_abs = std::path::absolute(&a.device).unwrap_or_else(|_| a.device.clone());
    let by_device = DevicesArg {
        devices: device_abs.display().to_string(),
    };
    let node = match crate::node::client::find(&a.dev)? {
        Some(n) => Some(n),
        None => crate::node::client::find(&by_device)?,
    };
    if let Some(node) = node {
        return online_via_node(&node, &device_abs, a.rate);
    }
    // The member's old name may be gone (a device that came back as another node): paths
    // that do not exist are left out, as missing members, rather than refused.
    let (present, gone): (Vec<PathBuf>, Vec<PathBuf>) = crate::cmd::common::devices(&a.dev)?
        .into_iter()
        .partition(|p| p.exists());
    if !gone.is_empty() {
        let gone: Vec<String> = gone.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "online: not there, left out as missing: {}",
            gone.join(", ")
        );
    }
    let list = |paths: &[PathBuf]| DevicesArg {
        devices: paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(","),
    };
    // With the device listed the open itself takes it in (stale, or in sync: nothing to
    // do). If that open fails because of the device (it still fails, or it is listed under
    // another name too), the array is opened without it, and `online` says what is wrong.
    let engine = if present.contains(&a.device) {
        open_array(kind, &list(&present), false)?
    } else {
        let mut with = present.clone();
        with.push(a.device.clone());
        match open_array(kind, &list(&with), false) {
            Ok(e) => e,
            Err(err) => {
                tracing::debug!("open with {} failed: {err:#}", a.device.display());
                open_array(kind, &list(&present), false)?
            }
        }
    };
    let dev = open_returning(&engine, &a.device)?;
    let o = engine
        .online(dev)
        .with_context(|| format!("{}: not brought back", a.device.display()))?;
    if o.was == "ONLINE" {
        println!(
            "{}: slot {} is in service and in sync: nothing to do",
            a.device.display(),
            o.slot
        );
        engine.close()?;
        return Ok(crate::exit::OK);
    }
    if o.was == "STALE" {
        println!(
            "{}: slot {} is in service but missed writes; resyncing them",
            a.device.display(),
            o.slot
        );
    } else {
        println!(
            "{}: slot {} back in service (was {}); resyncing what it missed",
            a.device.display(),
            o.slot,
            o.was
        );
    }
    let bar = ByteProgress::new("resync");
    let start = Instant::now();
    let p = engine.rebuild(
        &RebuildOptions {
            rate_limit_bytes_per_sec: a.rate,
            cancel: None,
        },
        &mut |p| bar.update(p),
    )?;
    bar.finish();
    crate::cmd::rebuild::report_rebuild(&resync_what(&o), &p, start.elapsed())?;
    let after = engine.status();
    engine.close()?;
    println!("slot {} is online on {}", o.slot, a.device.display());
    crate::cmd::rebuild::say_still_out(&after);
    Ok(crate::exit::OK)
}

/// `online` through a running node: no downtime; the same report.
fn online_via_node(
    node: &crate::node::client::NodeClient,
    device: &Path,
    rate: u64,
) -> Result<i32> {
    let bar = ByteProgress::new("resync");
    let r = node.post_streaming(
        "/v1/admin/online",
        &json!({"device": device.display().to_string(), "rate": rate}),
        &mut |p| bar.update(&crate::node::client::progress_of(p)),
    );
    bar.finish();
    let r = r?;
    let slot = r["slot"].as_u64().unwrap_or(0);
    if r["nothing"].as_bool() == Some(true) {
        println!(
            "{}: slot {slot} is in service and in sync: nothing to do",
            device.display()
        );
        return Ok(crate::exit::OK);
    }
    crate::cmd::rebuild::report_rebuild(
        r["what"].as_str().unwrap_or("resync"),
        &crate::node::client::progress_of(&r["progress"]),
        Duration::from_nanos(r["elapsed_ns"].as_u64().unwrap_or(0)),
    )?;
    println!(
        "slot {slot} is online on {} (was {}); the node keeps this path for later reopens",
        device.display(),
        r["was"].as_str().unwrap_or("?")
    );
    Ok(crate::exit::OK)
}
