//! `ectable replace`, `ectable rebuild` and `ectable scrub`: the commands that walk the
//! array's live stripes, with a progress bar (or a line per tenth) on stderr.

use crate::cmd::common::{devices, open_array, size_arg, DevicesArg};
use crate::open_devices;
use crate::term::{self, ByteProgress};
use anyhow::{Context, Result};
use clap::Args;
use ectable_devices::BackendKind;
use ectable_engine::{Engine, RebuildOptions};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct ReplaceArgs {
    #[command(flatten)]
    pub dev: DevicesArg,
    /// The device being replaced (a path; it may be dead or missing).
    #[arg(long)]
    pub old: String,
    /// The slot the old device held, when it cannot be told from the devices given.
    #[arg(long)]
    pub old_slot: Option<usize>,
    /// The new device (blank, or any ectable device with --force).
    #[arg(long)]
    pub new: PathBuf,
    /// Create the new device as a regular file of this size if it does not exist.
    #[arg(long, value_parser = size_arg)]
    pub create_size: Option<u64>,
    /// Allocate every block of the new device's file now (fallocate), as `format
    /// --preallocate`: refused, with nothing written, when its file system has not room.
    #[arg(long)]
    pub preallocate: bool,
    /// Rebuild rate limit in bytes per second read (0: unlimited).
    #[arg(long, default_value = "0", value_parser = crate::cmd::common::rate_arg)]
    pub rate: u64,
    /// Reuse a new device that holds an ectable array.
    #[arg(long)]
    pub force: bool,
    /// Do not ask before rebuilding onto the new device (for scripts).
    #[arg(long)]
    pub yes: bool,
}

#[derive(Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub dev: DevicesArg,
    /// Rebuild rate limit in bytes per second read (0: unlimited).
    #[arg(long, default_value = "0", value_parser = crate::cmd::common::rate_arg)]
    pub rate: u64,
}

#[derive(Args)]
pub struct ScrubArgs {
    #[command(flatten)]
    pub dev: DevicesArg,
    /// Rewrite bad chunks, segment headers and superblock copies from the good ones (opens
    /// the array for writing; without it the scrub only reads and changes nothing).
    #[arg(long)]
    pub repair: bool,
    /// Scrub rate limit in bytes per second read (0: unlimited).
    #[arg(long, default_value = "0", value_parser = crate::cmd::common::rate_arg)]
    pub rate: u64,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `ectable rebuild`: finishes an interrupted rebuild and resyncs the stale members present.
pub fn rebuild(kind: BackendKind, a: &RebuildArgs) -> Result<i32> {
    if let Some(node) = crate::node::client::find(&a.dev)? {
        return rebuild_via_node(&node, a);
    }
    let engine = open_array(kind, &a.dev, false)?;
    let (what, absent) = rebuild_plan(&engine);
    if what.is_empty() {
        return nothing_to_rebuild(&absent);
    }
    run_rebuild(&engine, &what.join(", "), a.rate)?;
    let after = engine.status();
    engine.close()?;
    say_still_out(&after);
    Ok(0)
}

/// `rebuild` with nothing to do: fine when every member present is in sync, a
/// configuration error when members that missed writes are absent.
fn nothing_to_rebuild<T: std::fmt::Debug>(absent: &[T]) -> Result<i32> {
    if absent.is_empty() {
        println!("nothing to rebuild: every member present is in sync");
        return Ok(0);
    }
    crate::fail!(crate::exit::CONFIG,
        "nothing to rebuild here: slot(s) {absent:?} missed writes but are not present; give them back in --devices (they are then resynced) or replace them"
    );
}

/// What `rebuild` has to do on this array: the rebuild in progress and the resyncs of the
/// stale members present (descriptions), and the slots that missed writes but are absent.
pub fn rebuild_plan(engine: &Engine) -> (Vec<String>, Vec<usize>) {
    let st = engine.status();
    let mut what: Vec<String> = Vec::new();
    if let Some((slot, _)) = engine.rebuild_in_progress() {
        what.push(format!("rebuild of slot {slot}"));
    }
    let mut absent = Vec::new();
    for d in &st.devices {
        if d.state == "STALE" {
            what.push(format!(
                "resync of slot {} ({}) from segment {}",
                d.slot,
                d.path.as_deref().unwrap_or("-"),
                d.resync_from.unwrap_or(0)
            ));
        } else if d.state == "REMOVED" && d.resync_from.is_some() {
            absent.push(d.slot);
        }
    }
    (what, absent)
}

/// `rebuild` through a running node: the same decisions (made by the node), the same
/// progress bar and report.
fn rebuild_via_node(node: &crate::node::client::NodeClient, a: &RebuildArgs) -> Result<i32> {
    let bar = ByteProgress::new("rebuild");
    let r = node.post_streaming("/v1/admin/rebuild", &json!({"rate": a.rate}), &mut |p| {
        bar.update(&crate::node::client::progress_of(p))
    });
    bar.finish();
    let r = r?;
    if r["nothing"].as_bool() == Some(true) {
        let absent: Vec<u64> = r["absent"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
            .unwrap_or_default();
        return nothing_to_rebuild(&absent);
    }
    report_rebuild(
        r["what"].as_str().unwrap_or("rebuild"),
        &crate::node::client::progress_of(&r["progress"]),
        Duration::from_nanos(r["elapsed_ns"].as_u64().unwrap_or(0)),
    )?;
    Ok(0)
}

/// `ectable scrub`: exit 0 clean, 1 bad chunks (without --repair) or parity mismatches, 2
/// unrecoverable stripes.
pub fn scrub(kind: BackendKind, a: &ScrubArgs) -> Result<i32> {
    if let Some(node) = crate::node::client::find(&a.dev)? {
        return scrub_via_node(&node, a);
    }
    let repair = a.repair;
    let engine = open_array(kind, &a.dev, !repair)?;
    let bar = ByteProgress::new("scrub");
    let opts = RebuildOptions {
        rate_limit_bytes_per_sec: a.rate,
        cancel: Some(crate::interrupt::watch()?),
    };
    let r = engine.scrub(repair, &opts, &mut |p| bar.update(p))?;
    bar.finish();
    if r.progress.interrupted {
        // What it met so far still counts against the devices (their health blocks), but
        // an unfinished scrub is not the array's last scrub.
        let bad: u64 = r.bad_chunks_per_slot.iter().sum();
        if repair {
            engine.close()?;
        } else {
            crate::cmd::common::record_findings(&engine, false);
        }
        return Err(crate::interrupt::stopped(format!(
            "the scrub stopped after {} of {} segments ({} read, {bad} bad chunk(s) found{}); \
             an unfinished scrub is not recorded as the array's last: run it again",
            r.progress.segments_done,
            r.progress.segments_total,
            term::bytes(r.progress.bytes_scanned),
            if repair {
                format!(", {} rewritten", r.chunks_repaired)
            } else {
                String::new()
            }
        )));
    }
    let st = engine.status();
    let code = report_scrub(a, &r, &st)?;
    if repair {
        engine.close()?;
    } else if r.reused_by_writer.is_empty() {
        // A plain scrub is read-only (its open must not mend what it is to find); its
        // result goes to the health blocks here, so that `status` shows what it found.
        crate::cmd::common::record_findings(&engine, false);
    } else {
        // A writer reused segments under it: the chunks that failed there were the
        // writer's, and the device counters hold them too.
        eprintln!(
            "note: this scrub's result is not recorded for 'status': the array's writer reused segments during it"
        );
    }
    Ok(code)
}

/// `scrub` through a running node, with the same progress bar and report.
fn scrub_via_node(node: &crate::node::client::NodeClient, a: &ScrubArgs) -> Result<i32> {
    let bar = ByteProgress::new("scrub");
    let body = json!({"repair": a.repair, "rate": a.rate});
    let r = node.post_streaming("/v1/admin/scrub", &body, &mut |p| {
        bar.update(&crate::node::client::progress_of(p))
    });
    bar.finish();
    let r = r?;
    if r["interrupted"].as_bool() == Some(true) {
        crate::fail!(
            crate::exit::TEMPFAIL,
            "the scrub stopped after {} of {} segments: the node is stopping; run it again once the node is back (an unfinished scrub is not recorded)",
            r["segments_done"].as_u64().unwrap_or(0),
            r["segments_total"].as_u64().unwrap_or(0)
        );
    }
    let st: ectable_engine::Status =
        serde_json::from_value(node.get("/v1/status/raw")?).context("the node's status")?;
    let mut progress = ectable_engine::Progress {
        bytes_scanned: r["bytes_scanned"].as_u64().unwrap_or(0),
        bytes_rebuilt: r["bytes_repaired"].as_u64().unwrap_or(0),
        ..Default::default()
    };
    use crate::node::client::{counts, strings};
    progress.unrecoverable = strings(&r["unrecoverable"]);
    let report = ectable_engine::ScrubReport {
        progress,
        stripes_checked: r["stripes_checked"].as_u64().unwrap_or(0),
        bad_chunks_per_slot: counts(&r["bad_chunks_per_slot"]),
        unchecked_chunks_per_slot: counts(&r["unchecked_chunks_per_slot"]),
        parity_mismatches: r["parity_mismatches"].as_u64().unwrap_or(0),
        chunks_repaired: r["chunks_repaired"].as_u64().unwrap_or(0),
        bad_superblocks_per_slot: counts(&r["bad_superblocks_per_slot"]),
        bad_superblocks: strings(&r["bad_superblocks"]),
        superblocks_repaired: r["superblocks_repaired"].as_u64().unwrap_or(0),
        bad_segment_headers_per_slot: counts(&r["bad_segment_headers_per_slot"]),
        segment_headers_repaired: r["segment_headers_repaired"].as_u64().unwrap_or(0),
        reused_by_writer: strings(&r["reused_by_writer"]),
    };
    report_scrub(a, &report, &st)
}

/// Prints a scrub's report; its exit code.
fn report_scrub(
    a: &ScrubArgs,
    r: &ectable_engine::ScrubReport,
    st: &ectable_engine::Status,
) -> Result<i32> {
    let repair = a.repair;
    let bad_superblocks = |slot: usize| r.bad_superblocks_per_slot.get(slot).copied().unwrap_or(0);
    let unchecked = |slot: usize| r.unchecked_chunks_per_slot.get(slot).copied().unwrap_or(0);
    let bad_headers = |slot: usize| {
        r.bad_segment_headers_per_slot
            .get(slot)
            .copied()
            .unwrap_or(0)
    };
    if a.json {
        let devices: Vec<Value> = st
            .devices
            .iter()
            .map(|d| {
                json!({
                    "slot": d.slot,
                    "path": d.path,
                    "bad_chunks": r.bad_chunks_per_slot[d.slot],
                    "unchecked_chunks": unchecked(d.slot),
                    "bad_superblocks": bad_superblocks(d.slot),
                    "bad_segment_headers": bad_headers(d.slot),
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "schema_version": 1,
                "stripes_checked": r.stripes_checked,
                "bytes_scanned": r.progress.bytes_scanned,
                "parity_mismatches": r.parity_mismatches,
                "chunks_repaired": r.chunks_repaired,
                "bytes_repaired": r.progress.bytes_rebuilt,
                "bad_superblocks": r.bad_superblocks,
                "superblocks_repaired": r.superblocks_repaired,
                "segment_headers_repaired": r.segment_headers_repaired,
                "unrecoverable": r.progress.unrecoverable,
                "reused_by_writer": r.reused_by_writer,
                "devices": devices,
            })
        );
    } else {
        println!(
            "scrub: {} stripes checked, {} scanned, {} parity mismatches, {} chunks repaired ({}), {} unrecoverable",
            r.stripes_checked,
            term::bytes(r.progress.bytes_scanned),
            r.parity_mismatches,
            r.chunks_repaired,
            term::bytes(r.progress.bytes_rebuilt),
            r.progress.unrecoverable.len()
        );
        let mut t = term::table(
            &[
                "SLOT",
                "DEVICE",
                "BAD CHUNKS",
                "BAD SEGMENT HEADERS",
                "BAD SUPERBLOCKS",
            ],
            &[2, 3, 4],
        );
        for d in &st.devices {
            t.add_row(vec![
                d.slot.to_string(),
                d.path.clone().unwrap_or_else(|| "-".into()),
                r.bad_chunks_per_slot[d.slot].to_string(),
                bad_headers(d.slot).to_string(),
                format!("{} of 2", bad_superblocks(d.slot)),
            ]);
        }
        for line in term::table_lines(&t, "  ") {
            println!("{line}");
        }
        for d in st.devices.iter().filter(|d| unchecked(d.slot) > 0) {
            println!(
                "  not checked: slot {} ({} chunks): not in service ({}); 'ectable status' says why",
                d.slot,
                unchecked(d.slot),
                d.state.as_str()
            );
        }
        for b in &r.bad_superblocks {
            println!("  bad: {b}");
        }
        if r.segment_headers_repaired > 0 {
            println!(
                "  segment headers rewritten: {}",
                r.segment_headers_repaired
            );
        }
        if r.superblocks_repaired > 0 {
            println!(
                "  superblocks rewritten: {} bad copies repaired",
                r.superblocks_repaired
            );
        }
        for u in &r.progress.unrecoverable {
            println!("  unrecoverable: {u}");
        }
        for why in &r.reused_by_writer {
            println!(
                "  not counted, reused by the array's writer during this read-only scrub: {why}"
            );
        }
    }
    let bad: u64 = r.bad_chunks_per_slot.iter().sum::<u64>()
        + r.bad_segment_headers_per_slot.iter().sum::<u64>();
    let bad_superblocks: u64 = r.bad_superblocks_per_slot.iter().sum();
    Ok(if !r.progress.unrecoverable.is_empty() {
        2
    } else if (bad + bad_superblocks > 0 && !repair)
        || r.superblocks_repaired < bad_superblocks && repair
        || r.parity_mismatches > 0
    {
        1
    } else {
        0
    })
}

/// Runs the engine's rebuild with a progress bar and reports it on stderr; fails when a
/// stripe with live data could not be rebuilt.
fn run_rebuild(engine: &Engine, what: &str, rate: u64) -> Result<()> {
    let bar = ByteProgress::new("rebuild");
    let start = Instant::now();
    let p = engine.rebuild(
        &RebuildOptions {
            rate_limit_bytes_per_sec: rate,
            cancel: Some(crate::interrupt::watch()?),
        },
        &mut |p| bar.update(p),
    )?;
    bar.finish();
    report_rebuild(what, &p, start.elapsed())
}

/// Reports a finished rebuild on stderr; fails when a stripe with live data could not be
/// rebuilt.
pub fn report_rebuild(what: &str, p: &ectable_engine::Progress, elapsed: Duration) -> Result<()> {
    eprintln!(
        "{what}: {} segments, {} chunks ({}) rebuilt in {} ({} scanned), {} unrecoverable",
        p.segments_done,
        p.chunks_rebuilt,
        term::bytes(p.bytes_rebuilt),
        term::duration(elapsed),
        term::rate(p.bytes_scanned, elapsed),
        p.unrecoverable.len()
    );
    if p.interrupted && crate::interrupt::requested() {
        return Err(crate::interrupt::stopped(format!(
            "the rebuild stopped after {} of {} segments, with what it wrote made durable and \
             read back; it resumes where it stopped with 'ectable rebuild'",
            p.segments_done, p.segments_total
        )));
    }
    if p.interrupted {
        crate::fail!(
            crate::exit::TEMPFAIL,
            "the rebuild stopped after {} of {} segments: the node is stopping; it resumes where it stopped with 'ectable rebuild' once the node is back",
            p.segments_done,
            p.segments_total
        );
    }
    if !p.unrecoverable.is_empty() {
        for u in p.unrecoverable.iter().take(20) {
            eprintln!("  unrecoverable: {u}");
        }
        crate::fail!(
            crate::exit::UNAVAILABLE,
            "{} stripe(s) with live data could not be rebuilt",
            p.unrecoverable.len()
        );
    }
    Ok(())
}

/// `ectable replace`: shows the plan, asks on a terminal unless `--yes`, makes the new device
/// the member of the old one's slot and rebuilds the slot onto it.
pub fn replace(kind: BackendKind, a: &ReplaceArgs) -> Result<i32> {
    if let Some(node) = crate::node::client::find(&a.dev)? {
        return replace_via_node(&node, a);
    }
    let (old, new) = (a.old.as_str(), a.new.as_path());
    let mut paths = devices(&a.dev)?;
    // The device being replaced may be gone altogether (an unplugged disk, a deleted file):
    // listed with the others, as status's action has it, it is left out of the open as the
    // missing member rather than refused.
    if !Path::new(old).exists() {
        if let Some(i) = paths.iter().position(|p| p.as_os_str() == old) {
            paths.remove(i);
            eprintln!("replace: {old} is not there; the array is opened without it");
        }
    }
    let created = a.create_size.is_some() && !new.exists();
    if created || (a.preallocate && new.exists()) {
        drop(crate::open_added_device(new, a.create_size, a.preallocate)?);
    }
    // A file made here for the new device goes again if the replace stops before the file
    // is the slot's member (declined, refused, the open failed): bad input changes nothing.
    let mut made = MadeFile(created.then_some(new));
    if !new.exists() {
        crate::fail!(
            crate::exit::NO_INPUT,
            "--new {}: no such device or file (give --create-size SIZE to create it as a file)",
            new.display()
        );
    }
    let old_listed = paths.iter().position(|p| p.as_os_str() == old);
    // A hot spare is usually listed with the devices already.
    let new_index = match paths.iter().position(|p| p == new) {
        Some(i) => i,
        None => {
            paths.push(new.to_path_buf());
            paths.len() - 1
        }
    };
    let new_name = new.display().to_string();
    crate::cmd::common::refuse_foreign(new, a.force)?;
    let engine = open_with_new(kind, &paths, new, &new_name, a.force)?;
    // A member opens as what it is: never wiped, refused here (a hot spare is what
    // `replace` may rebuild onto; the new device itself is held as neither).
    let member = engine
        .holding_path(&new_name)
        .filter(|h| matches!(h, ectable_engine::Holding::Member { .. }));
    refuse_holding(&engine, new, member)?;
    let old_member = old_listed
        .and_then(|_| engine.slot_of_path(old))
        .or_else(|| slot_by_superblock(&engine, Path::new(old)));
    let slot = replace_slot(&engine, old, a.old_slot, old_member)?;
    println!(
        "plan: rebuild slot {slot} (was {old}) onto {}",
        new.display()
    );
    if term::should_ask(a.yes) {
        term::confirm("Proceed?")?;
    }
    engine.replace(slot, new_index)?;
    // A member now: an interrupted rebuild onto it is resumed by `ectable rebuild`.
    made.0 = None;
    run_rebuild(&engine, &format!("rebuild of slot {slot}"), a.rate)?;
    let after = engine.status();
    engine.close()?;
    println!("slot {slot} is online on {}", new.display());
    say_still_out(&after);
    Ok(0)
}

/// After a rebuild or resync that succeeded: the members still not in service (one may
/// have failed while it ran, as a source that stopped answering), so that "online" on the
/// last line is not taken for the whole array's state.
pub fn say_still_out(st: &ectable_engine::Status) {
    if let Some(out) = members_out(st) {
        println!("the array is still {out}; see 'ectable status'");
    }
}

/// The array's state and its members not in service (`DEGRADED: slot 3 FAULTED: ...`), or
/// None when every member is in service.
pub fn members_out(st: &ectable_engine::Status) -> Option<String> {
    let out: Vec<String> = st
        .devices
        .iter()
        .filter(|d| !d.in_service)
        .map(|d| {
            let note = if d.note.is_empty() {
                String::new()
            } else {
                format!(": {}", d.note)
            };
            format!("slot {} {}{note}", d.slot, d.state.as_str())
        })
        .collect();
    (!out.is_empty()).then(|| format!("{}: {}", st.state().as_str(), out.join("; ")))
}

/// The slot the device at `old` (not opened with the array) holds by its own superblock, so
/// that `--old` names the slot even when several are missing:
/// it names this array, a slot, and its device id is that slot's member now. None when it
/// does not, or cannot be read within the I/O deadline.
pub fn slot_by_superblock(engine: &Engine, old: &Path) -> Option<usize> {
    let info = crate::cmd::examine::member_info_of(old, crate::deadline::io_timeout()).ok()??;
    let st = engine.status();
    let slot = info.slot?;
    (info.array_uuid == st.array_uuid && st.devices.get(slot)?.device_uuid == info.device_uuid)
        .then_some(slot)
}

/// Refuses `path` as the new device of `replace` or `add-spare` when the engine holds it
/// already (`held`: [`Engine::holding_path`] or [`Engine::holding`]), naming what it is: a
/// member and its slot (a stale one is resynced in place, not replaced), a hot spare, or
/// another device opened with the array; and the name the engine has it under when that
/// is another (a symlink, a relative path, a loop device over a member's file).
pub fn refuse_holding(
    engine: &Engine,
    path: &Path,
    held: Option<ectable_engine::Holding>,
) -> Result<()> {
    use ectable_engine::Holding;
    let Some(held) = held else {
        return Ok(());
    };
    let p = path.display().to_string();
    let (what, name) = match held {
        Holding::Member { slot, name } => {
            if engine
                .status()
                .devices
                .get(slot)
                .is_some_and(|d| d.state == "STALE")
            {
                crate::fail!(crate::exit::CONFIG,
                    "{p} is a stale member of the array (slot {slot}): it missed writes while it was away; resync it in place with 'ectable rebuild' (only what it missed is rewritten)"
                );
            }
            (format!("a member of the array (slot {slot})"), name)
        }
        Holding::Spare { name } => ("a hot spare of the array".to_string(), name),
        Holding::Other { name } => ("open with the array".to_string(), name),
    };
    let alias = if name == p {
        String::new()
    } else {
        format!(", under the name {name}")
    };
    crate::fail!(crate::exit::CONFIG, "{p} is already {what}{alias}");
}

/// A file `replace` or `add-spare` created for the new device, removed on drop unless taken
/// out (`None`).
pub(crate) struct MadeFile<'a>(pub(crate) Option<&'a Path>);

impl Drop for MadeFile<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The slot `replace` rebuilds: `old_slot` when given, else the slot of the member at
/// `old` (`old_member`), else the one slot missing.
pub fn replace_slot(
    engine: &Engine,
    old: &str,
    old_slot: Option<usize>,
    old_member: Option<usize>,
) -> Result<usize> {
    if let Some(s) = old_slot.or(old_member) {
        return Ok(s);
    }
    match engine.lost_slots().as_slice() {
        [s] => Ok(*s),
        [] => {
            // An interrupted replace: its slot is held by the device it was rebuilding onto.
            let st = engine.status();
            if let Some(d) = st
                .devices
                .iter()
                .find(|d| d.state == ectable_engine::DeviceState::Rebuilding)
            {
                crate::fail!(
                    crate::exit::USAGE,
                    "{old} is not a member of this array and no device is missing: slot {} is \
                     being rebuilt onto {} (an interrupted replace); 'ectable rebuild' finishes \
                     that, or give --old-slot {} to rebuild onto another device",
                    d.slot,
                    d.path.as_deref().unwrap_or("its new device"),
                    d.slot
                )
            }
            crate::fail!(
                crate::exit::USAGE,
                "{old} is not a member of this array and no device is missing; give --old-slot"
            )
        }
        many => crate::fail!(
            crate::exit::USAGE,
            "cannot tell which slot {old} held ({} are missing: {many:?}); give --old-slot",
            many.len()
        ),
    }
}

/// `replace` through a running node: the node opens the new device and hands it to its
/// engine (no downtime); the same plan, question, progress bar and report.
fn replace_via_node(node: &crate::node::client::NodeClient, a: &ReplaceArgs) -> Result<i32> {
    let new = a.new.as_path();
    let new_abs = std::path::absolute(new).unwrap_or_else(|_| new.to_path_buf());
    let plan = node.post(
        "/v1/admin/replace-plan",
        &json!({"old": a.old, "old_slot": a.old_slot, "new": new_abs.display().to_string()}),
    )?;
    let slot = plan["slot"].as_u64().unwrap_or(0) as usize;
    println!(
        "plan: rebuild slot {slot} (was {}) onto {}",
        a.old,
        new.display()
    );
    if term::should_ask(a.yes) {
        term::confirm("Proceed?")?;
    }
    let bar = ByteProgress::new("rebuild");
    let r = node.post_streaming(
        "/v1/admin/replace",
        &json!({
            "slot": slot,
            "new": new_abs.display().to_string(),
            "create_size": a.create_size,
            "preallocate": a.preallocate,
            "force": a.force,
            "rate": a.rate,
        }),
        &mut |p| bar.update(&crate::node::client::progress_of(p)),
    );
    bar.finish();
    let r = r?;
    report_rebuild(
        r["what"].as_str().unwrap_or("rebuild"),
        &crate::node::client::progress_of(&r["progress"]),
        Duration::from_nanos(r["elapsed_ns"].as_u64().unwrap_or(0)),
    )?;
    println!("slot {slot} is online on {}", new.display());
    Ok(0)
}

/// Opens the array with the new device listed: it may be blank, a hot spare of this array,
/// or (with --force, then wiped) a device of another array, one replaced out of this one, or
/// a block copy of a member that is listed too. A member of this array listed as the new device opens as the member it is (the caller
/// refuses it then).
pub(crate) fn open_with_new(
    kind: BackendKind,
    paths: &[PathBuf],
    new: &Path,
    new_name: &str,
    force: bool,
) -> Result<Engine> {
    let open = |paths: &[PathBuf]| -> Result<Engine> {
        let io = open_devices(paths, None, false, kind)?;
        Ok(Engine::open(io, crate::deadline::engine_options(false))?)
    };
    match open(paths) {
        Ok(e) => Ok(e),
        Err(e) => match e.downcast_ref::<ectable_engine::Error>() {
            Some(
                ectable_engine::Error::ForeignDevice { device, .. }
                | ectable_engine::Error::ReplacedDevice { device, .. }
                | ectable_engine::Error::SlotHeldTwice { second: device, .. },
            ) if *device == new_name => {
                if !force {
                    let what = match e.downcast_ref::<ectable_engine::Error>() {
                        Some(ectable_engine::Error::ReplacedDevice { .. }) => {
                            "was replaced out of this array earlier".to_string()
                        }
                        Some(ectable_engine::Error::SlotHeldTwice {
                            slot,
                            first,
                            newer,
                            ..
                        }) => format!(
                            "holds a copy of slot {slot} of this array, whose member {first} is listed too{}",
                            match newer {
                                Some(n) if n == new_name => format!(" ({new_name} has the newer superblock: make sure {first} is the member you mean to keep)"),
                                _ => String::new(),
                            }
                        ),
                        _ => "holds another ectable array".to_string(),
                    };
                    crate::fail!(
                        crate::exit::CONFIG,
                        "{new_name}: {what}; use --force to reuse it"
                    );
                }
                let dev = ectable_devices::FileDevice::open(new, &Default::default())?;
                ectable_engine::wipe_device(&dev)?;
                drop(dev);
                open(paths).context("opening the array")
            }
            _ => Err(e.context("opening the array")),
        },
    }
}
