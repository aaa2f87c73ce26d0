//! `ectable status`: a zpool-style report (state, actions, durability, layout, space, one
//! line per device) or its JSON, and the exit code of `mdadm --test` (0 healthy, 1 degraded,
//! 2 data unavailable; 4, status unreadable, is given by the binary).

use crate::cmd::common::{open_array, DevicesArg};
use crate::cmd::durability::{out_of_service, status_durability_json, status_durability_line};
use crate::term;
use anyhow::Result;
use clap::Args;
use ectable_devices::BackendKind;
use ectable_engine::{DeviceStatus, Status};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub dev: DevicesArg,
    /// Print the status as one JSON object (the exit code is the same).
    #[arg(long)]
    pub json: bool,
}

/// `ectable status`.
pub fn run(kind: BackendKind, a: &StatusArgs) -> Result<i32> {
    // A running node holds the array: its live view (this session's counters, the work in
    // progress), printed the same way.
    let served = crate::node::client::served(&a.dev);
    // A node that holds the array but does not answer: the array as its devices show it (a
    // read-only open works beside the node), with the node's trouble said first.
    let stuck = served.not_answering();
    if let crate::node::client::Served::Yes(node) = served {
        let st: Status = serde_json::from_value(node.get("/v1/status/raw")?)
            .map_err(|e| crate::coded!(crate::exit::STATUS_UNREADABLE, "the node's status: {e}"))?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&status_json(&st))?);
        } else {
            print_status(&st);
        }
        return Ok(exit_code(&st));
    }
    // A path that does not exist (an unplugged device) is a missing member, as a device left
    // out of --devices is: status reports on the others. So is a path that is no device (a
    // directory or a FIFO where a member's file was).
    let paths = crate::cmd::common::devices(&a.dev)?;
    let (mut present, gone): (Vec<PathBuf>, Vec<PathBuf>) =
        paths.into_iter().partition(|p| not_a_device(p).is_none());
    // The same storage listed twice (a symlink, a loop device and its file): every other
    // command refuses the list; status shows the array from the first.
    let mut twice = Vec::new();
    let mut seen: Vec<(ectable_devices::StorageId, PathBuf)> = Vec::new();
    present.retain(|p| {
        let Ok(id) = ectable_devices::StorageId::of_path(p) else {
            return true;
        };
        if let Some((_, first)) = seen.iter().find(|(i, _)| i.same_storage(&id)) {
            twice.push(crate::cmd::common::Stray {
                device: p.display().to_string(),
                why: format!(
                    "the same device as {} (listed twice); not used",
                    first.display()
                ),
                kind: crate::cmd::common::StrayKind::Twice,
            });
            return false;
        }
        seen.push((id, p.clone()));
        true
    });
    if present.is_empty() {
        crate::fail!(
            crate::exit::NO_INPUT,
            "none of the devices exists: {}",
            a.dev.devices
        );
    }
    // A device of another array, or one replaced out of this one, in the list (a unit
    // file's list gone out of date): every other command refuses the list, naming it;
    // status shows the array without it, names it, and does not say all is well.
    let opened = crate::cmd::common::open_without_strays(&mut present, true, |present| {
        let dev = DevicesArg {
            devices: present
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(","),
        };
        open_array(kind, &dev, true)
    });
    let (engine, mut strays) = match opened {
        Ok(x) => x,
        Err(e) if unopenable(&e) => return unavailable(a, &e, &gone),
        Err(e) => return Err(e),
    };
    strays.extend(twice);
    // Every other command refuses a list naming them too (a member unplugged: the array
    // shows its slot missing as well).
    strays.extend(gone.iter().map(|p| crate::cmd::common::Stray {
        device: p.display().to_string(),
        why: format!("{}; not used", not_a_device(p).unwrap_or_default()),
        kind: crate::cmd::common::StrayKind::NoDevice,
    }));
    let mut st = engine.status();
    for s in &strays {
        st.unrecognised.push((s.device.clone(), s.why.clone()));
    }
    // A node's probe round rewrites a bad copy within seconds; a closed array's stays bad
    // until the next writing open, and only a read shows it.
    st.bad_superblocks = engine.check_superblocks();
    if a.json {
        let mut v = status_json(&st);
        for s in &strays {
            if let Some(checks) = v["checks"].as_array_mut() {
                checks.insert(
                    0,
                    json!({"code": s.kind.check_code(), "severity": "warn",
                        "message": format!("{}: {}", s.device, s.why)}),
                );
            }
        }
        if let Some(why) = &stuck {
            v["node_not_answering"] = json!(why);
            if let Some(checks) = v["checks"].as_array_mut() {
                checks.insert(
                    0,
                    json!({"code": "NODE_NOT_ANSWERING", "severity": "warn", "message": why}),
                );
            }
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        if let Some(why) = &stuck {
            println!("   node: NOT ANSWERING: {why}; below, the array as its devices show it");
        }
        for s in &strays {
            println!(
                "  given: {}: {}; every other command refuses this --devices list: leave it out",
                s.device, s.why
            );
        }
        print_status(&st);
    }
    let code = exit_code(&st);
    // A list other commands refuse is not "all is well", whatever the array's state.
    Ok(if stuck.is_some() || !strays.is_empty() {
        code.max(1)
    } else {
        code
    })
}

/// Why `path` is no device status can open, if it is not: it does not exist, or it is
/// neither a regular file nor a block device.
fn not_a_device(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Err(_) => Some("no such device or file".to_string()),
        Ok(m) if !(m.file_type().is_file() || m.file_type().is_block_device()) => {
            Some("not a regular file or block device".to_string())
        }
        Ok(_) => None,
    }
}

/// Too few members present, the log unreadable (more than m members missing what it
/// needs: old copies of them put back, for example), or one member's superblock on two
/// devices (a block copy listed beside its original).
fn unopenable(e: &anyhow::Error) -> bool {
    crate::cmd::common::engine_errors(e).any(|x| {
        matches!(
            x,
            ectable_engine::Error::TooFewDevices { .. }
                | ectable_engine::Error::DataLost { .. }
                | ectable_engine::Error::SlotHeldTwice { .. }
        )
    })
}

/// The slot two devices of the list both hold, if that is why the open failed.
fn slot_held_twice(e: &anyhow::Error) -> Option<(usize, String, String)> {
    crate::cmd::common::engine_errors(e).find_map(|x| match x {
        ectable_engine::Error::SlotHeldTwice {
            slot,
            first,
            second,
            ..
        } => Some((*slot, first.clone(), second.clone())),
        _ => None,
    })
}

/// The array cannot be opened (too few members present, or what they hold does not reach
/// the log's end): what the devices' superblocks say (the members found, those a
/// superblock behind, the slots missing), state UNAVAILABLE, exit 2 (mdadm's "array
/// unusable").
fn unavailable(a: &StatusArgs, e: &anyhow::Error, gone: &[PathBuf]) -> Result<i32> {
    let paths = crate::cmd::common::devices(&a.dev)?;
    let mut ex = crate::cmd::examine::examine(&paths);
    ex.not_members.retain(|(p, _)| !gone.contains(p));
    ex.not_members.extend(
        gone.iter()
            .map(|p| (p.clone(), not_a_device(p).unwrap_or_default())),
    );
    let Some(found) = ex.arrays.first() else {
        return Err(anyhow::anyhow!("{}", crate::cmd::common::one_line(e)));
    };
    let why = crate::cmd::common::one_line(e);
    let n = &found.newest;
    let behind: Vec<usize> = (0..found.slots.len())
        .filter(|&s| {
            found.slots[s]
                .as_ref()
                .is_some_and(|f| f.info.epoch < n.epoch)
        })
        .collect();
    let twice = slot_held_twice(e);
    if a.json {
        let mut v = crate::cmd::examine::array_json(found);
        v["state"] = "UNAVAILABLE".into();
        v["behind_slots"] = behind.clone().into();
        if let Some((slot, first, second)) = &twice {
            v["slot_held_twice"] = serde_json::json!({"slot": slot, "devices": [first, second]});
        }
        v["error"] = why.into();
        v["not_members"] = ex
            .not_members
            .iter()
            .map(|(p, why)| serde_json::json!({"path": p, "why": why}))
            .collect::<Vec<_>>()
            .into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let missing = found.missing();
        println!("  array: {}", found.uuid);
        println!("  state: UNAVAILABLE");
        if let Some((slot, first, second)) = &twice {
            println!(
                " status: slot {slot} is on two devices, {first} and {second}: one is a copy \
                 of the other (made with dd or cp), so the array is not opened with this list."
            );
            println!(
                " action: list only the member of slot {slot} (the device it was copied \
                 from; 'ectable examine' shows each one's superblock epoch), and give the \
                 device of each MISSING slot, or 'ectable replace' it once the array opens."
            );
        } else if missing.is_empty() && !behind.is_empty() {
            println!(
                " status: {} of {} members are behind the others (slot(s) {behind:?}: an old \
                 copy put back, or they missed writes): more than m={} for what they missed; \
                 the array cannot be opened ({why}).",
                behind.len(),
                n.slots,
                n.parity_shards
            );
            println!(
                " action: if those members' current contents exist (an old copy was put back \
                 in their place), give them back; otherwise what they missed is lost: restore \
                 from a backup."
            );
        } else if !behind.is_empty() {
            // Members left out of different commands: what the members behind missed lies
            // on the missing ones.
            println!(
                " status: {} of {} devices missing (slot(s) {missing:?}) and {} behind the \
                 others (slot(s) {behind:?}: they missed writes made without them, or an old \
                 copy was put back): {} not current, more than m={}; the array cannot be \
                 opened ({why}).",
                missing.len(),
                n.slots,
                behind.len(),
                missing.len() + behind.len(),
                n.parity_shards
            );
        } else if missing.len() > n.parity_shards {
            println!(
                " status: {} of {} devices missing: more than m={}; the array cannot be opened \
                 ({why}).",
                missing.len(),
                n.slots,
                n.parity_shards
            );
        } else if !missing.is_empty() {
            println!(
                " status: {} of {} devices missing (slot(s) {missing:?}); the array cannot be \
                 opened ({why}).",
                missing.len(),
                n.slots
            );
        } else {
            println!(" status: the array cannot be opened ({why}).");
        }
        if twice.is_none() && !missing.is_empty() {
            println!(
                " action: give the missing members back in --devices ('ectable examine' finds \
                 them among devices); with fewer than k={} of them the data is lost: restore \
                 from a backup.",
                n.data_shards
            );
        }
        println!(" layout: RS {}+{}", n.data_shards, n.parity_shards);
        println!("config:\n");
        let mut t = term::table(&["SLOT", "DEVICE", "STATE", "NOTE"], &[]);
        for (s, f) in found.slots.iter().enumerate() {
            match f {
                Some(f) if f.info.epoch < n.epoch => t.add_row(vec![
                    s.to_string(),
                    f.path.display().to_string(),
                    "BEHIND".into(),
                    format!("superblock epoch {}, the array's {}", f.info.epoch, n.epoch),
                ]),
                Some(f) => t.add_row(vec![
                    s.to_string(),
                    f.path.display().to_string(),
                    "FOUND".into(),
                    String::new(),
                ]),
                None => t.add_row(vec![
                    s.to_string(),
                    "-".into(),
                    "MISSING".into(),
                    format!(
                        "device {}",
                        n.members.get(s).map(|m| m.0.as_str()).unwrap_or("?")
                    ),
                ]),
            };
        }
        for (f, why) in &found.others {
            t.add_row(vec![
                "-".into(),
                f.path.display().to_string(),
                "NOT USED".into(),
                why.clone(),
            ]);
        }
        for (p, why) in &ex.not_members {
            t.add_row(vec![
                "-".into(),
                p.display().to_string(),
                "UNKNOWN".into(),
                why.clone(),
            ]);
        }
        for line in term::table_lines(&t, "  ") {
            println!("{line}");
        }
    }
    Ok(crate::exit::UNAVAILABLE_STATE)
}

fn exit_code(st: &Status) -> i32 {
    match st.state() {
        // Writes fail (the file system under the member files is full, or the writer
        // stopped after a failed write): not healthy.
        ectable_engine::ArrayState::Online
            if backing_full(st).is_some()
                || st.writes_stopped.is_some()
                || !write_refused(st).is_empty()
                || unrepaired_scrub(st).is_some()
                || !st.spares_missing.is_empty()
                || !st.spares_write_refused.is_empty()
                || !st.bad_superblocks.is_empty() =>
        {
            1
        }
        ectable_engine::ArrayState::Online => 0,
        ectable_engine::ArrayState::Degraded => 1,
        ectable_engine::ArrayState::Unavailable => crate::exit::UNAVAILABLE_STATE,
    }
}

fn array_state(st: &Status) -> &'static str {
    st.state().as_str()
}

/// The last scrub, when it found bad chunks it did not rewrite (a plain scrub, or one whose
/// repair left some): those stripes have less redundancy than the state says until a
/// `scrub --repair` rewrites them.
fn unrepaired_scrub(st: &Status) -> Option<&ectable_engine::ScrubRecord> {
    st.last_scrub
        .as_ref()
        .filter(|s| s.bad_chunks > s.chunks_repaired)
}

/// The first hot spare a replacement can use (one that takes writes).
fn usable_spare(st: &Status) -> Option<&String> {
    st.spares
        .iter()
        .find(|s| !st.spares_write_refused.iter().any(|(p, _)| p == *s))
}

/// The slots whose device refuses writes (read-only block device, immutable file): the first
/// writer fails them.
fn write_refused(st: &Status) -> Vec<usize> {
    st.devices
        .iter()
        .filter(|d| d.write_refused.is_some())
        .map(|d| d.slot)
        .collect()
}

/// The first file system under member files that cannot take one more segment per member.
fn backing_full(st: &Status) -> Option<&ectable_engine::BackingFs> {
    st.backing.iter().find(|b| b.full)
}

/// Prints the human-readable report.
pub fn print_status(st: &Status) {
    let state = array_state(st);
    let lost = out_of_service(st);
    println!("  array: {}", st.array_uuid);
    let refused = write_refused(st);
    match (backing_full(st), &st.writes_stopped) {
        (_, Some(_)) => println!("  state: {state}, but writes have stopped (a write failed)"),
        (None, None) if !refused.is_empty() => println!(
            "  state: {state}, but slot(s) {refused:?} refuse writes (the first write fails them)"
        ),
        (None, None) if unrepaired_scrub(st).is_some() => println!(
            "  state: {state}, but the last scrub found bad chunks it did not repair (errors: below)"
        ),
        (None, None) if !st.spares_missing.is_empty() => println!(
            "  state: {state}, but {} hot spare(s) of the array are missing or failed",
            st.spares_missing.len()
        ),
        (None, None) if !st.spares_write_refused.is_empty() => println!(
            "  state: {state}, but {} hot spare(s) refuse writes (no replacement can use them)",
            st.spares_write_refused.len()
        ),
        (None, None) if !st.bad_superblocks.is_empty() => println!(
            "  state: {state}, but {} superblock copy(ies) are bad (errors: below)",
            st.bad_superblocks.len()
        ),
        (Some(_), None) => println!("  state: {state}, but new writes fail (the file system under the member files is full)"),
        (None, None) => println!("  state: {state}"),
    }
    let n = st.devices.len();
    let status_line = if let (0, Some(b)) = (lost, backing_full(st)) {
        format!(
            "all {n} devices online and in sync, but the file system under slot(s) {:?} has {} free: new writes fail with 'No space left on device' (reads work).",
            b.slots,
            term::bytes(b.free_bytes)
        )
    } else if lost == 0 && !refused.is_empty() {
        format!(
            "all {n} devices online and in sync, but slot(s) {refused:?} refuse writes: reads work, but the first write fails them, and then any {} more may fail without losing data.",
            st.parity_shards.saturating_sub(refused.len())
        )
    } else if lost == 0 {
        format!(
            "all {n} devices online and in sync; any {} may fail without losing data.",
            st.parity_shards
        )
    } else {
        let which: Vec<String> = st
            .devices
            .iter()
            .filter(|d| !d.in_service)
            .map(|d| format!("slot {} {}", d.slot, d.state.as_str().to_lowercase()))
            .collect();
        if lost <= st.parity_shards {
            format!(
                "{lost} of {n} devices not in service ({}); any {} more may fail without losing data.",
                which.join(", "),
                st.redundancy_left
            )
        } else if st
            .devices
            .iter()
            .all(|d| d.in_service || d.state.as_str() == "STALE")
        {
            // Stale members are present: their chunks are read where they verify, so only
            // what they missed (if anything) may be out of reach.
            format!(
                "{lost} of {n} devices not in service ({}): more than m={}; what they missed may be unavailable until 'ectable rebuild' resyncs them (their other chunks are still read).",
                which.join(", "),
                st.parity_shards
            )
        } else {
            format!(
                "{lost} of {n} devices not in service ({}): more than m={}; some data is unavailable.",
                which.join(", "),
                st.parity_shards
            )
        }
    };
    println!(" status: {status_line}");
    for action in actions(st) {
        println!(" action: {action}");
    }
    println!("durable: {}", status_durability_line(st));
    println!(
        " layout: RS {}+{} (GF(2^8)/0x11d, Vandermonde-systematic, {} kernel), chunk {}, segment {}, io engine {}, format v{} ({})",
        st.data_shards,
        st.parity_shards,
        st.codec_kernel,
        crate::term::bytes(st.chunk_size_bytes as u64),
        crate::term::bytes(st.segment_size_bytes as u64),
        st.io_engine,
        st.format_version,
        if st.format_version >= 5 && st.inline_values {
            "sync journal, values inline, compact records that may continue in the next stripe"
        } else if st.format_version >= 5 {
            "sync journal, values on device blocks, compact records that may continue in the next stripe"
        } else if st.format_version == 4 {
            "sync journal, values on device blocks, compact records"
        } else if st.format_version == 3 {
            "sync journal, values on device blocks"
        } else if st.format_version == 2 {
            "sync journal"
        } else {
            "syncs take short stripes"
        }
    );
    println!(
        "  space: {} usable of {} raw, {} allocated; {} live, {} garbage; {} of {} segments free ({} kept for the cleaner)",
        term::bytes(st.usable_capacity_bytes),
        term::bytes(st.raw_capacity_bytes),
        term::bytes(st.used_bytes),
        term::bytes(st.live_bytes),
        term::bytes(st.garbage_bytes),
        st.free_segments,
        st.total_segments,
        st.reserved_segments
    );
    if let Some((fill, room)) = st.fill() {
        println!(
            "   room: {} more live data fits; the live data{} {:.1}% of the {} it may (the reserve and the checkpoint keep {} segments)",
            term::bytes(room),
            and_held_fill(st, ""),
            fill * 100.0,
            term::bytes(st.fillable_bytes),
            st.reserved_segments + st.checkpoint_segments as usize
        );
    }
    if let Some(held) = st.backup_horizon.describe() {
        println!("   held: {held}");
    }
    println!(
        "   data: {} keys in {} table(s); log at LSN {}; index checkpoint at LSN {} ({} segment(s))",
        st.keys,
        st.tables,
        st.next_lsn.saturating_sub(1),
        st.checkpoint_lsn,
        st.checkpoint_segments
    );
    if st.cleaner.passes + st.cleaner.checkpoints > 0 {
        println!(
            "cleaner: {} passes ({} paused by rebuild/scrub), {} segments freed, {} records moved ({}), {} checkpoints",
            st.cleaner.passes,
            st.cleaner.paused_passes,
            st.cleaner.segments_freed,
            st.cleaner.records_relocated,
            term::bytes(st.cleaner.bytes_relocated),
            st.cleaner.checkpoints
        );
    }
    println!(
        "   open: {}replayed {} stripes ({} records) from {} segments{}",
        if st.recovery.checkpoint_lsn > 0 {
            format!(
                "index loaded from the checkpoint at LSN {} ({} keys); ",
                st.recovery.checkpoint_lsn, st.recovery.checkpoint_keys
            )
        } else {
            String::new()
        },
        st.recovery.stripes,
        st.recovery.records,
        st.recovery.segments,
        if st.recovery.discarded_segments + st.recovery.discarded_stripes > 0 {
            format!(
                ", discarded an unacknowledged tail of {} stripe(s)",
                st.recovery.discarded_stripes
            )
        } else {
            String::new()
        }
    );
    if let Some(p) = &st.scan_in_progress {
        println!("   scan: {}", progress_line(p));
    } else if let Some((slot, next)) = st.rebuild {
        println!(
            "   scan: rebuild of slot {slot} unfinished (resumes at segment {next}); {}",
            finish_rebuild(st)
        );
    } else {
        println!(
            "   scan: {}",
            scan_line(st.last_scrub.as_ref(), st.last_rebuild.as_ref())
        );
    }
    println!("config:\n");
    for line in term::table_lines(&device_table(st), "  ") {
        println!("{line}");
    }
    println!();
    print_errors(st);
}

/// Who finishes an unfinished rebuild or resync: the one running now, the node's recovery
/// policy, or the operator.
fn finish_rebuild(st: &Status) -> &'static str {
    match &st.scan_in_progress {
        Some(p) if p.kind == "rebuild" => "it is running now (the scan: line above)",
        _ if st.recovery_policy == "automatic" => {
            "the recovery policy (automatic) resumes it within seconds; by hand: 'ectable rebuild'"
        }
        _ => "run 'ectable rebuild' to finish it",
    }
}

/// The `scan:` line of a scrub or rebuild running now (in the node this status came from):
/// how far, and how long it should still take at its pace so far.
pub fn progress_line(p: &ectable_engine::ScanProgress) -> String {
    let done = p.bytes_done.min(p.bytes_total);
    let pct = if p.bytes_total > 0 {
        done as f64 * 100.0 / p.bytes_total as f64
    } else {
        0.0
    };
    let eta = if done > 0 {
        let left = (p.bytes_total - done) as f64 * p.elapsed_ms as f64 / done as f64;
        format!(
            ", {} to go",
            term::duration(Duration::from_millis(left as u64))
        )
    } else {
        String::new()
    };
    format!(
        "{} in progress: {pct:.1}% done ({} of {}) after {}{eta}",
        p.kind,
        term::bytes(done),
        term::bytes(p.bytes_total),
        term::duration(Duration::from_millis(p.elapsed_ms))
    )
}

/// The `scan:` line: the newer of the last scrub and the last rebuild or resync, as the
/// health blocks keep them (zpool's wording: it shows the last scrub or resilver).
pub fn scan_line(
    s: Option<&ectable_engine::ScrubRecord>,
    r: Option<&ectable_engine::RebuildRecord>,
) -> String {
    if let Some(r) = r.filter(|r| s.is_none_or(|s| r.finished_unix_nanos > s.finished_unix_nanos)) {
        let when = std::time::UNIX_EPOCH + Duration::from_nanos(r.finished_unix_nanos);
        let kind = if r.resync { "resync" } else { "rebuild" };
        return format!(
            "{kind} of slot {} rebuilt {} chunks ({}) in {} ({} scanned) with {} stripes \
             unrecoverable on {}",
            r.slot,
            r.chunks_rebuilt,
            term::bytes(r.bytes_rebuilt),
            term::duration(Duration::from_nanos(r.duration_ns)),
            term::bytes(r.bytes_scanned),
            r.unrecoverable,
            humantime::format_rfc3339_seconds(when)
        );
    }
    let Some(s) = s else {
        return "none requested".to_string();
    };
    let when = std::time::UNIX_EPOCH + Duration::from_nanos(s.finished_unix_nanos);
    let what = if s.repair {
        format!("scrub repaired {} chunks", s.chunks_repaired)
    } else {
        "scrub (no repair) checked the array".to_string()
    };
    let lost = if s.unrecoverable > 0 {
        format!(", {} stripes unrecoverable", s.unrecoverable)
    } else {
        String::new()
    };
    format!(
        "{what} in {} ({} scanned) with {} bad chunks{lost} on {}",
        term::duration(Duration::from_nanos(s.duration_ns)),
        term::bytes(s.bytes_scanned),
        s.bad_chunks,
        humantime::format_rfc3339_seconds(when)
    )
}

/// The `config:` table: one row per member, hot spare and unrecognised device.
fn device_table(st: &Status) -> comfy_table::Table {
    let header = [
        "SLOT", "DEVICE", "STATE", "READ", "WRITE", "CKSUM", "SIZE", "USED", "NOTE",
    ];
    let mut t = term::table(&header, &[3, 4, 5, 6, 7]);
    for d in &st.devices {
        let used = if d.segment_count > 0 {
            format!("{}%", d.used_segments as u64 * 100 / d.segment_count as u64)
        } else {
            "-".into()
        };
        let size = if d.capacity_bytes > 0 {
            term::bytes(d.capacity_bytes)
        } else {
            "-".into()
        };
        t.add_row(vec![
            d.slot.to_string(),
            d.path.clone().unwrap_or_else(|| "-".into()),
            d.state.to_string(),
            d.lifetime_read_errors.to_string(),
            d.lifetime_write_errors.to_string(),
            d.lifetime_checksum_errors.to_string(),
            size,
            used,
            d.note.to_string(),
        ]);
    }
    let absent = |path: &str, state: &str, note: &str| {
        let mut row = vec!["-".to_string(), path.to_string(), state.to_string()];
        row.extend(std::iter::repeat_n("-".to_string(), 5));
        row.push(note.to_string());
        row
    };
    let spare_note = match st.recovery_policy.as_str() {
        "automatic" => "hot spare (takes a lost member's slot at once: recovery automatic)",
        "semi-automatic" => "hot spare (proposed for a lost member's slot in the log)",
        _ => "hot spare (used by 'ectable replace')",
    };
    for path in &st.spares {
        let row = match st.spares_write_refused.iter().find(|(p, _)| p == path) {
            Some((_, why)) => absent(
                path,
                "SPARE",
                &format!("hot spare, but it refuses writes ({why}): no replacement can use it"),
            ),
            None => absent(path, "SPARE", spare_note),
        };
        t.add_row(row);
    }
    for (path, why) in &st.unrecognised {
        t.add_row(absent(path, "UNKNOWN", why));
    }
    t
}

/// The `errors:` line (and its note).
fn print_errors(st: &Status) {
    for b in &st.bad_superblocks {
        println!("errors: {b}");
    }
    let errors: u64 = st
        .devices
        .iter()
        .map(|d| d.read_errors + d.write_errors + d.checksum_errors)
        .sum();
    let missed: Vec<String> = st
        .devices
        .iter()
        .filter_map(|d| {
            d.resync_from
                .map(|f| format!("slot {} from segment {f}", d.slot))
        })
        .collect();
    if !missed.is_empty() {
        println!(
            "errors: chunks missed while away, not yet resynced: {}",
            missed.join(", ")
        );
    } else if let Some(s) = unrepaired_scrub(st).filter(|_| errors == 0) {
        let when = std::time::UNIX_EPOCH + Duration::from_nanos(s.finished_unix_nanos);
        println!(
            "errors: the last scrub ({}) found {} bad chunk(s) and rewrote {}: their stripes can lose fewer devices than the status line says until 'ectable scrub --repair' rewrites them",
            humantime::format_rfc3339_seconds(when),
            s.bad_chunks,
            s.chunks_repaired
        );
    } else if errors == 0 && st.recovery.degraded_stripes == 0 {
        println!("errors: No known data errors");
        if st.recovery.interrupted_stripes > 0 {
            println!(
                "  note: {} stripe(s) of the last write batch miss chunks an interrupted writer (a killed process or a power cut) never wrote; the next writing command, or 'ectable scrub --repair', rewrites them",
                st.recovery.interrupted_stripes
            );
        }
        if st.recovery.stray_chunks > 0 {
            println!(
                "  note: {} chunk(s) an interrupted writer left at the start of a segment whose header never reached the disk; the next writing command zeroes them before that segment id is given out again",
                st.recovery.stray_chunks
            );
        }
        if st.recovery.unfinished_records > 0 {
            println!(
                "  note: the log ends with {} record(s) whose continuation in the next stripe was never written (an interrupted writer); they were never acknowledged and are not part of the log",
                st.recovery.unfinished_records
            );
        }
    } else {
        println!(
            "errors: {errors} device error(s); {} stripe(s) were read degraded at open",
            st.recovery.degraded_stripes
        );
    }
}

/// What the operator should do, one line per kind of trouble, naming the command.
fn actions(st: &Status) -> Vec<String> {
    let slots = |f: &dyn Fn(&DeviceStatus) -> bool| -> Vec<usize> {
        st.devices.iter().filter(|d| f(d)).map(|d| d.slot).collect()
    };
    let mut out = Vec::new();
    if !st.spares_missing.is_empty() {
        out.push(format!(
            "The array names hot spare(s) that are missing or failed (device {}): list the spare in --devices if it is there and works; if it failed or was wiped, add another with 'ectable add-spare --force', which gives it the missing one's entry (a replacement cannot count on the missing one).",
            st.spares_missing.join(", ")
        ));
    }
    for (path, why) in &st.spares_write_refused {
        out.push(format!(
            "The hot spare {path} refuses writes ({why}): make it writable again ('blockdev --setrw {path}' for a device set read-only, 'chattr -i' for an immutable file) or add another spare ('ectable add-spare'); until then a lost member has no spare to take its slot."
        ));
    }
    if !st.bad_superblocks.is_empty() {
        out.push("A member keeps two copies of its superblock, and a copy is bad: one more fault on the other copy leaves the member unrecognised. Run 'ectable scrub --repair' (any writing command rewrites every superblock; the scrub reads them back).".to_string());
    }
    if let Some(s) = unrepaired_scrub(st) {
        out.push(format!(
            "The last scrub found {} bad chunk(s) it did not rewrite: run 'ectable scrub --repair' (it rewrites them from the good ones and records a new scrub).",
            s.bad_chunks - s.chunks_repaired
        ));
    }
    if let Some(why) = &st.writes_stopped {
        out.push(format!(
            "Writes stopped after a failed write ({why}). Reads go on. Put the cause right (devices back, room given), then reopen the array: 'ectable reopen' for a node, or restart the process that holds it."
        ));
    }
    let gone = slots(&|d| d.state == "REMOVED" || d.state == "FAULTED");
    if !gone.is_empty() {
        // With one slot lost and a hot spare at hand, the replacement is named in full.
        let replace = match (gone.as_slice(), usable_spare(st)) {
            ([slot], Some(spare)) => {
                let old = st.devices[*slot].path.as_deref().unwrap_or("<device>");
                let cmd = format!("'ectable replace --old {old} --old-slot {slot} --new {spare}'");
                if st.recovery_policy == "automatic" {
                    format!("the hot spare {spare} takes slot {slot} at once (recovery automatic; by hand: {cmd})")
                } else {
                    format!("or replace it by the hot spare: {cmd}")
                }
            }
            _ => "or replace them: 'ectable replace --old <device> --new <device>'".to_string(),
        };
        out.push(format!(
            "Bring the device(s) of slot(s) {gone:?} back once they work again: 'ectable online <device>' (also under a new name; it resyncs what they missed), {replace}."
        ));
    }
    // A listed device with no valid superblock left (stray writes over both copies) cannot
    // be told to be the missing member: name the command that rebuilds it in place.
    let blank: Vec<&str> = st.blank.iter().map(String::as_str).collect();
    if let ([slot], [path]) = (gone.as_slice(), blank.as_slice()) {
        out.push(format!(
            "{path} holds no valid superblock: if it is slot {slot}'s device, rebuild it in place with 'ectable replace --old {path} --old-slot {slot} --new {path}'."
        ));
    }
    let stale = slots(&|d| d.state == "STALE");
    if !stale.is_empty() {
        out.push(format!(
            "Slot(s) {stale:?} missed writes while away and are resynced in place (only the segments written since): {}.",
            finish_rebuild(st)
        ));
    }
    if st.devices.iter().any(|d| d.state == "REBUILDING") {
        out.push(format!("A rebuild is unfinished: {}.", finish_rebuild(st)));
    }
    let slow = slots(&|d| d.state == "DEGRADED");
    if !slow.is_empty() {
        out.push(format!(
            "Slot(s) {slow:?} are slow or suspect: check them, and replace them if it lasts."
        ));
    }
    for b in st.backing.iter().filter(|b| b.short) {
        out.push(format!(
            "The file system under slot(s) {:?} has {} free, but their files are sparse and need {} more to be written in full: give it room (or, with the array closed, allocate the files in full: 'fallocate -l <size> <file>' keeps the data){}.",
            b.slots,
            term::bytes(b.free_bytes),
            term::bytes(b.unallocated_bytes),
            if b.full { "; writes fail until then" } else { " before the array fills that far" }
        ));
    }
    for d in st.devices.iter().filter(|d| d.write_refused.is_some()) {
        let path = d.path.as_deref().unwrap_or("<device>");
        out.push(format!(
            "Slot {}'s device {path} refuses writes ({}): make it writable again ('blockdev --setrw {path}' for a device set read-only, 'chattr -i' for an immutable file) before a writer opens the array, or replace it.",
            d.slot,
            d.write_refused.as_deref().unwrap_or_default()
        ));
    }
    if let Some(full) = nearly_full(st) {
        let first = if st.backup_horizon.garbage_bytes > 0 {
            "Take the next backup of the chain ('ectable backup --auto DIR': it raises the horizon, and the cleaner reclaims what it held; 'ectable backup-clear-horizon' releases it without one, and the next backup is then a full one), delete data"
        } else {
            "Delete data"
        };
        out.push(format!(
            "{full}: writes of new data fail soon (no space left), and the cleaner already moves several bytes for each byte overwritten. {first} (the cleaner reclaims its space), or move the array onto larger devices ('ectable backup', then 'ectable restore')."
        ));
    }
    let erroring = slots(&|d| d.state == "ONLINE" && !d.in_service);
    if !erroring.is_empty() {
        out.push(format!(
            "Slot(s) {erroring:?} returned errors: run 'ectable scrub --repair' and watch them."
        ));
    }
    out
}

/// "The live data fills N% of ...", when it fills at least [`Status::NEARLY_FULL`] of what
/// the array can hold.
fn nearly_full(st: &Status) -> Option<String> {
    let (fill, _) = st.fill()?;
    (fill >= Status::NEARLY_FULL).then(|| {
        format!(
            "The live data{} {:.1}% of what the array can hold ({})",
            and_held_fill(st, " until the next backup"),
            fill * 100.0,
            term::bytes(st.fillable_bytes)
        )
    })
}

/// What follows "the live data" where status says how full the array is: " fills", or
/// " and the X the backup horizon holds{when} fill" when the horizon keeps garbage from the
/// cleaner (it counts as taken).
fn and_held_fill(st: &Status, when: &str) -> String {
    match st.backup_horizon.garbage_bytes {
        0 => " fills".to_string(),
        held => format!(
            " and the {} the backup horizon holds{when} fill",
            term::bytes(held)
        ),
    }
}

/// `ectable status --json` (schema_version 1).
pub fn status_json(st: &Status) -> Value {
    let mut checks = Vec::new();
    for b in &st.bad_superblocks {
        checks.push(json!({"code": "BAD_SUPERBLOCK", "severity": "warn", "message": b}));
    }
    if !st.spares_missing.is_empty() {
        checks.push(json!({"code": "SPARE_MISSING", "severity": "warn",
            "message": format!("hot spare(s) named by the array not among the devices given: device {}", st.spares_missing.join(", "))}));
    }
    for (path, why) in &st.spares_write_refused {
        checks.push(json!({"code": "SPARE_WRITE_REFUSED", "severity": "warn",
            "message": format!("hot spare {path} refuses writes: {why}")}));
    }
    if let Some(s) = unrepaired_scrub(st) {
        checks.push(json!({"code": "SCRUB_FOUND_BAD_CHUNKS", "severity": "warn",
            "message": format!("the last scrub found {} bad chunk(s) it did not rewrite; run 'ectable scrub --repair'", s.bad_chunks - s.chunks_repaired)}));
    }
    if let Some(full) = nearly_full(st) {
        checks.push(json!({"code": "SPACE_LOW", "severity": "warn", "message": full}));
    }
    for d in &st.devices {
        if d.state == "FAULTED" || d.state == "REMOVED" {
            checks.push(json!({"code": "DEVICE_FAULTED", "severity": "warn",
                "message": format!("slot {} ({}) is {}", d.slot, d.path.clone().unwrap_or_default(), d.state)}));
        }
        if d.state == "STALE" {
            checks.push(json!({"code": "DEVICE_STALE", "severity": "warn",
                "message": format!("slot {} ({}) missed writes from segment {} on; run 'ectable rebuild'", d.slot, d.path.clone().unwrap_or_default(), d.resync_from.unwrap_or(0))}));
        }
        if let Some(why) = &d.write_refused {
            checks.push(json!({"code": "DEVICE_WRITE_REFUSED", "severity": "warn",
                "message": format!("slot {} ({}) refuses writes: {why}", d.slot, d.path.clone().unwrap_or_default())}));
        }
        if d.checksum_errors > 0 {
            checks.push(json!({"code": "CHECKSUM_ERRORS", "severity": "warn",
                "message": format!("slot {} has {} checksum errors", d.slot, d.checksum_errors)}));
        }
    }
    let spares_write_refused: Vec<Value> = st
        .spares_write_refused
        .iter()
        .map(|(p, w)| json!({"path": p, "reason": w}))
        .collect();
    let backing: Vec<Value> = st
        .backing
        .iter()
        .map(|b| {
            json!({
                "slots": b.slots,
                "unallocated_bytes": b.unallocated_bytes,
                "free_bytes": b.free_bytes,
                "short": b.short,
                "full": b.full,
            })
        })
        .collect();
    json!({
        "schema_version": 1,
        "array_uuid": st.array_uuid,
        "state": array_state(st),
        "epoch": st.epoch,
        "layout": {
            "data_shards": st.data_shards,
            "parity_shards": st.parity_shards,
            "stripe_unit_bytes": st.chunk_size_bytes,
            "segment_size_bytes": st.segment_size_bytes,
            "codec": "rs-gf256-0x11d-vandermonde",
            "format_version": st.format_version,
            "sync_journal": st.format_version >= 2,
            "values_placed": st.format_version >= 3 && !st.inline_values,
        },
        "redundancy_left": st.redundancy_left,
        "actions": actions(st),
        "durability_estimate": status_durability_json(st),
        "capacity": {
            "raw_bytes": st.raw_capacity_bytes,
            "usable_bytes": st.usable_capacity_bytes,
            "allocated_bytes": st.used_bytes,
            "live_bytes": st.live_bytes,
            "garbage_bytes": st.garbage_bytes,
            "free_segments": st.free_segments,
            "total_segments": st.total_segments,
            "reserved_segments": st.reserved_segments,
            "fillable_bytes": st.fillable_bytes,
            "room_bytes": st.fill().map(|f| f.1),
            "backup_horizon_lsn": st.backup_horizon.horizon_lsn,
            "held_by_backup_horizon_segments": st.backup_horizon.segments,
            "held_by_backup_horizon_bytes": st.backup_horizon.garbage_bytes,
        },
        "checkpoint_lsn": st.checkpoint_lsn,
        "checkpoint_segments": st.checkpoint_segments,
        "checkpoint_estimate_bytes": st.checkpoint_estimate_bytes,
        "cleaner": {
            "passes": st.cleaner.passes,
            "paused_passes": st.cleaner.paused_passes,
            "segments_cleaned": st.cleaner.segments_cleaned,
            "segments_freed": st.cleaner.segments_freed,
            "records_moved": st.cleaner.records_relocated,
            "bytes_moved": st.cleaner.bytes_relocated,
            "checkpoints": st.cleaner.checkpoints,
        },
        "keys": st.keys,
        "tables": st.tables,
        "lsn": st.next_lsn.saturating_sub(1),
        "io_engine": st.io_engine,
        "codec_kernel": st.codec_kernel,
        "scan": st.rebuild.map(|(slot, next)| json!({"kind": "rebuild", "state": "interrupted", "slot": slot, "next_segment_id": next})),
        "read_repairs": st.read_repairs,
        "degraded_reads": st.degraded_reads,
        "recovery": {
            "segments": st.recovery.segments,
            "stripes": st.recovery.stripes,
            "records": st.recovery.records,
            "degraded_stripes": st.recovery.degraded_stripes,
            "interrupted_stripes": st.recovery.interrupted_stripes,
            "unfinished_records": st.recovery.unfinished_records,
            "discarded_stripes": st.recovery.discarded_stripes,
            "checkpoint_lsn": st.recovery.checkpoint_lsn,
            "checkpoint_keys": st.recovery.checkpoint_keys,
            "bytes_read": st.recovery.bytes_read,
        },
        "devices": st.devices.iter().map(|d| json!({
            "slot": d.slot,
            "path": d.path,
            "uuid": d.device_uuid,
            "state": d.state.as_str(),
            "in_service": d.in_service,
            "resync_from_segment": d.resync_from,
            "write_refused": d.write_refused,
            "stuck_ops": d.stuck_ops,
            "note": d.note,
            "errors": {"read": d.read_errors, "write": d.write_errors, "checksum": d.checksum_errors},
            "lifetime_errors": {"read": d.lifetime_read_errors, "write": d.lifetime_write_errors, "checksum": d.lifetime_checksum_errors},
            "size_bytes": d.capacity_bytes,
            "used_segments": d.used_segments,
            "segment_count": d.segment_count,
        })).collect::<Vec<_>>(),
        "scan_in_progress": st.scan_in_progress.as_ref().map(|p| json!({
            "kind": p.kind,
            "bytes_done": p.bytes_done,
            "bytes_total": p.bytes_total,
            "elapsed_seconds": p.elapsed_ms as f64 / 1e3,
        })),
        "last_rebuild": st.last_rebuild.map(|r| json!({
            "finished": humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_nanos(r.finished_unix_nanos)).to_string(),
            "kind": if r.resync { "resync" } else { "rebuild" },
            "slot": r.slot,
            "duration_seconds": r.duration_ns as f64 / 1e9,
            "bytes_scanned": r.bytes_scanned,
            "chunks_rebuilt": r.chunks_rebuilt,
            "bytes_rebuilt": r.bytes_rebuilt,
            "unrecoverable_stripes": r.unrecoverable,
        })),
        "last_scrub": st.last_scrub.map(|s| json!({
            "finished": humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_nanos(s.finished_unix_nanos)).to_string(),
            "duration_seconds": s.duration_ns as f64 / 1e9,
            "bytes_scanned": s.bytes_scanned,
            "bad_chunks": s.bad_chunks,
            "chunks_repaired": s.chunks_repaired,
            "unrecoverable_stripes": s.unrecoverable,
            "repair": s.repair,
        })),
        "spares": st.spares,
        "spares_missing": st.spares_missing,
        "spares_write_refused": spares_write_refused,
        "bad_superblocks": st.bad_superblocks,
        "recovery_policy": st.recovery_policy,
        "unrecognised": st.unrecognised.iter().map(|(p, w)| json!({"path": p, "reason": w})).collect::<Vec<_>>(),
        "replaced": st.replaced,
        "blank": st.blank,
        "writes_stopped": st.writes_stopped,
        "backing": backing,
        "checks": checks,
    })
}
