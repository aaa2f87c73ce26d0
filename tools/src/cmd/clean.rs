//! `ectable clean` (reclaim space now) and `ectable backup-clear-horizon` (give the history
//! kept for incremental backups back to the cleaner).

use crate::cmd::common::{open_array, DevicesArg};
use crate::term;
use anyhow::Result;
use clap::Args;
use ectable_devices::BackendKind;
use ectable_engine::Status;
use serde_json::json;

#[derive(Args)]
pub struct CleanArgs {
    #[command(flatten)]
    pub dev: DevicesArg,
    /// Stop after this many passes (a pass cleans up to 8 segments).
    #[arg(long, default_value_t = 64)]
    pub max_passes: usize,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `ectable clean`.
pub fn clean(kind: BackendKind, a: &CleanArgs) -> Result<i32> {
    if let Some(node) = crate::node::client::find(&a.dev)? {
        let raw_status = |n: &crate::node::client::NodeClient| -> Result<Status> {
            Ok(serde_json::from_value(n.get("/v1/status/raw")?)?)
        };
        let before = raw_status(&node)?;
        let v = node.post_long("/v1/admin/clean", &json!({"max_passes": a.max_passes}))?;
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        let r = ectable_engine::CleanReport {
            segments_cleaned: n("segments_cleaned"),
            segments_freed: n("segments_freed"),
            records_relocated: n("records_relocated"),
            bytes_relocated: n("bytes_relocated"),
            checkpoint_lsn: v["checkpoint_lsn"].as_u64(),
            paused: v["paused"].as_bool().unwrap_or(false),
            held_by_backup_horizon: serde_json::from_value(v["held_by_backup_horizon"].clone())
                .unwrap_or_default(),
        };
        let st = raw_status(&node)?;
        report_clean(a, &before, &r, &st)?;
        return Ok(0);
    }
    let engine = open_array(kind, &a.dev, false)?;
    let before = engine.status();
    let line = term::status_line();
    let mut last_line = std::time::Instant::now();
    let r = engine.clean_with_progress(a.max_passes, &mut |pass, r| {
        let msg = format!(
            "clean: pass {pass}: {} segment(s) cleaned, {} freed, {} record(s) moved ({})",
            r.segments_cleaned,
            r.segments_freed,
            r.records_relocated,
            term::bytes(r.bytes_relocated)
        );
        if !line.is_hidden() {
            line.set_message(msg);
        } else if last_line.elapsed() >= std::time::Duration::from_secs(2) {
            eprintln!("{msg}");
            last_line = std::time::Instant::now();
        }
    })?;
    line.finish_and_clear();
    let st = engine.status();
    report_clean(a, &before, &r, &st)?;
    engine.close()?;
    Ok(0)
}

/// Prints what a clean did.
fn report_clean(
    a: &CleanArgs,
    before: &Status,
    r: &ectable_engine::CleanReport,
    st: &Status,
) -> Result<()> {
    if a.json {
        println!(
            "{}",
            json!({
                "schema_version": 1,
                "segments_cleaned": r.segments_cleaned,
                "segments_freed": r.segments_freed,
                "records_moved": r.records_relocated,
                "bytes_moved": r.bytes_relocated,
                "checkpoint_lsn": r.checkpoint_lsn,
                "paused_by_rebuild_or_scrub": r.paused,
                "held_by_backup_horizon": {
                    "horizon_lsn": r.held_by_backup_horizon.horizon_lsn,
                    "segments": r.held_by_backup_horizon.segments,
                    "bytes": r.held_by_backup_horizon.garbage_bytes,
                },
                "free_segments_before": before.free_segments,
                "free_segments": st.free_segments,
                "total_segments": st.total_segments,
                "live_bytes": st.live_bytes,
                "garbage_bytes": st.garbage_bytes,
            })
        );
    } else {
        println!(
            "clean: {} segments cleaned, {} freed; {} records moved ({}); free segments {} -> {} of {}; {} live, {} garbage left",
            r.segments_cleaned,
            r.segments_freed,
            r.records_relocated,
            term::bytes(r.bytes_relocated),
            before.free_segments,
            st.free_segments,
            st.total_segments,
            term::bytes(st.live_bytes),
            term::bytes(st.garbage_bytes)
        );
        if r.paused {
            println!("  paused: a rebuild or scrub holds the array; run clean again after it");
        } else if r.segments_cleaned == 0 && r.held_by_backup_horizon.segments == 0 {
            println!("  nothing worth cleaning: no segment before the one being written holds enough garbage");
        }
        if let Some(held) = r.held_by_backup_horizon.describe() {
            println!("  held: {held}");
        }
    }
    Ok(())
}

/// `ectable backup-clear-horizon`.
pub fn clear_backup_horizon(kind: BackendKind, dev: &DevicesArg) -> Result<i32> {
    crate::node::client::refuse_if_served(dev, crate::node::client::USE_THE_API)?;
    let engine = open_array(kind, dev, false)?;
    let held = engine.backup_horizon_hold();
    match engine.backup_horizon() {
        None => println!("backup-clear-horizon: no backup horizon is registered"),
        Some(h) => {
            engine.clear_backup_horizon()?;
            println!(
                "backup-clear-horizon: cleared the horizon at LSN {h}; {} segments ({}) of history are the cleaner's again; the next backup is a full one",
                held.segments,
                term::bytes(held.garbage_bytes)
            );
        }
    }
    engine.close()?;
    Ok(0)
}
