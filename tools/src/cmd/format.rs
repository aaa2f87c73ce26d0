//! `ectable format` (a new array) and `ectable add-spare` (a blank device joins as a hot
//! spare).

use crate::cmd::common::{devices, size_arg, DevicesArg, NewDevicesArg};
use crate::term;
use crate::{open_for_format, split_devices};
use anyhow::Result;
use clap::Args;
use ectable_devices::BackendKind;
use ectable_engine::{format, FormatOptions};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct FormatArgs {
    #[command(flatten)]
    pub dev: NewDevicesArg,
    /// Data shards per stripe.
    #[arg(long)]
    pub k: usize,
    /// Parity shards per stripe (the array survives any m lost devices).
    #[arg(long)]
    pub m: usize,
    /// Largest chunk (one shard of one stripe), a multiple of 4K.
    #[arg(long, default_value_t = ectable_engine::DEFAULT_CHUNK_SIZE_BYTES as u64, value_parser = size_arg)]
    pub chunk_size: u64,
    /// Segment size per device (unit of allocation); default 8M.
    #[arg(long, value_parser = size_arg)]
    pub segment_size: Option<u64>,
    /// Hot spares: devices that join the array holding no data, and replace a failed
    /// device (automatically under the automatic recovery policy).
    #[arg(long, value_name = "S1,S2,...")]
    pub spares: Option<String>,
    /// Create missing regular files of this size.
    #[arg(long, value_parser = size_arg)]
    pub create_size: Option<u64>,
    /// Overwrite devices that hold another ectable array.
    #[arg(long)]
    pub force: bool,
    /// Allocate every block of the member files now (fallocate), so that a file system that
    /// fills up later cannot fail the array's writes; refused, with nothing formatted, when
    /// the file system has not room for them all. Files are otherwise sparse: they take
    /// blocks only as the array writes. Block devices are left as they are.
    #[arg(long)]
    pub preallocate: bool,
    /// Do not ask before overwriting an existing array.
    #[arg(long)]
    pub yes: bool,
    /// Format a version 1 array, without the sync journal: synced writes then take a short
    /// stripe on every member (for comparisons, and for older builds, which refuse version 2).
    #[arg(long)]
    pub no_sync_journal: bool,
    /// Keep every value inline (a version 6 array, otherwise laid out as the default): a 4 KiB
    /// value then costs an 8 KiB read, but a stripe holds about 5 % more 4 KiB values, which
    /// matters to the cleaner on a nearly full array (most under skewed overwrites, whose
    /// cold rows keep the layout they were written in).
    #[arg(long)]
    pub inline_values: bool,
    /// Keep version 3's wide log records (a version 3 array: a 24-byte record header with
    /// the LSN, and the table name in every record) instead of compact ones: for builds that
    /// read version 3 at most, and for comparisons.
    #[arg(long, conflicts_with_all = ["inline_values", "no_sync_journal"])]
    pub wide_records: bool,
    /// Keep every record inside one stripe (a version 4 array) instead of letting a record
    /// that does not fit a stripe's room continue in the next stripe: for builds that read
    /// version 4 at most, and for comparisons.
    #[arg(long, conflicts_with_all = ["inline_values", "no_sync_journal", "wide_records"])]
    pub whole_records: bool,
}

#[derive(Args)]
pub struct AddSpareArgs {
    #[command(flatten)]
    pub dev: DevicesArg,
    /// The device to keep as a hot spare (blank, or created with --create-size).
    #[arg(long)]
    pub spare: PathBuf,
    /// Create the spare as a regular file of this size if it does not exist.
    #[arg(long, value_parser = size_arg)]
    pub create_size: Option<u64>,
    /// Allocate every block of the spare's file now (fallocate), as `format --preallocate`:
    /// refused, with nothing written, when its file system has not room.
    #[arg(long)]
    pub preallocate: bool,
    /// Reuse a spare that holds an ectable array (another array's device, or one replaced
    /// out of this array): it is wiped. A member of this array is refused all the same.
    #[arg(long)]
    pub force: bool,
}

/// `ectable format`.
pub fn run(kind: BackendKind, a: &FormatArgs) -> Result<i32> {
    let (k, m) = (a.k, a.m);
    let mut paths = devices(&DevicesArg::from(&a.dev))?;
    let data_count = paths.len();
    if let Some(sp) = &a.spares {
        paths.extend(split_devices(sp)?);
    }
    if k == 0 || m == 0 {
        crate::fail!(
            crate::exit::USAGE,
            "--k and --m must both be at least 1 (got k={k}, m={m})"
        );
    }
    if a.segment_size == Some(0) {
        // 0 means "the default" to the engine: a user's 0 is a mistake, not a choice.
        crate::fail!(crate::exit::USAGE,
            "--segment-size 0: a segment must hold at least one chunk after its 4K header; leave --segment-size out for the default (8M)"
        );
    }
    if data_count < k + m {
        crate::fail!(
            crate::exit::USAGE,
            "RS({k},{m}) needs at least {} devices, {} given",
            k + m,
            data_count
        );
    }
    // With or without --force: the open below would wait for the node's lock first.
    crate::node::client::refuse_if_served(
        &DevicesArg::from(&a.dev),
        "stop the node before formatting its devices",
    )?;
    // Files this command creates are removed again if formatting fails, so a bad
    // command line leaves nothing behind.
    let (io, created) = open_for_format(&paths, a.create_size, kind)?;
    if a.force && term::should_ask(a.yes) {
        term::confirm(&format!(
            "Format {} device(s), destroying any ectable array on them?",
            paths.len()
        ))?;
    }
    let opts = FormatOptions {
        data_shards: k,
        parity_shards: m,
        chunk_size_bytes: u32::try_from(a.chunk_size)
            .map_err(|_| crate::coded!(crate::exit::USAGE, "chunk size too large"))?,
        segment_size_bytes: match a.segment_size {
            Some(s) => u32::try_from(s)
                .map_err(|_| crate::coded!(crate::exit::USAGE, "segment size too large"))?,
            None => 0,
        },
        force: a.force,
        sync_journal: !a.no_sync_journal,
        inline_values: a.inline_values,
        wide_records: a.wide_records,
        whole_records: a.whole_records,
        spare_count: paths.len() - data_count,
    };
    if a.preallocate {
        crate::preallocate(&paths)?;
    }
    let info = format(io.as_ref(), &opts)?;
    created.keep();
    println!(
        "formatted array {} : RS({},{}) over {} devices, chunk {}, {} segments of {} per device",
        ectable_engine::format::uuid_string(&info.array_uuid),
        info.data_shards,
        info.parity_shards,
        info.device_count,
        term::bytes(info.chunk_size_bytes as u64),
        info.segment_count,
        term::bytes(info.segment_size_bytes as u64)
    );
    if let Some(w) = few_segments(
        info.segment_count,
        info.segment_size_bytes,
        info.chunk_size_bytes,
    ) {
        eprintln!("format: warning: {w}");
    }
    Ok(0)
}

/// Fewer segments per device than this leave the cleaner little to work with.
const FEW_SEGMENTS: u32 = 32;

/// The warning for an array of few, large segments (small devices at the default segment
/// size), naming a segment size that gives it 64 or more; None when it has enough.
fn few_segments(count: u32, segment: u32, chunk: u32) -> Option<String> {
    if count >= FEW_SEGMENTS {
        return None;
    }
    let capacity = count as u64 * segment as u64;
    let s = roomy_segment_size(capacity, chunk);
    let better = (s < segment as u64).then(|| {
        format!(
            "; a smaller --segment-size ({}: about {} segments) gives it more to work with",
            term::bytes(s),
            capacity / s
        )
    });
    Some(format!(
        "each device holds only {count} segments of {}: the cleaner keeps 2 of them free and the index checkpoint takes 1 or more, so under overwrites the array runs out of room well before its capacity{}",
        term::bytes(segment as u64),
        better.unwrap_or_default()
    ))
}

/// The largest power-of-two segment size (at least two chunks) that gives a device of
/// `capacity` bytes 64 segments or more.
pub(crate) fn roomy_segment_size(capacity: u64, chunk: u32) -> u64 {
    let mut s = 2 * chunk as u64;
    while s * 2 * 64 <= capacity {
        s *= 2;
    }
    s
}

/// `ectable add-spare`.
pub fn add_spare(kind: BackendKind, a: &AddSpareArgs) -> Result<i32> {
    let spare = &a.spare;
    let mut paths = devices(&a.dev)?;
    // Listed in --devices (a unit file's list that still names a device replaced out of the
    // array, say), it may be a member: whoever opens the array tells, below or in the node.
    let listed = paths.contains(spare);
    // A running node opens (or makes) the spare itself: a device it holds already, under
    // another name, would keep an open here waiting for the node's lock.
    if let Some(node) = crate::node::client::find(&a.dev)? {
        let abs = std::path::absolute(spare).unwrap_or_else(|_| spare.clone());
        let answer = node.post_long(
            "/v1/admin/add-spare",
            &serde_json::json!({
                "device": abs.display().to_string(),
                "create_size": a.create_size,
                "preallocate": a.preallocate,
                "force": a.force,
            }),
        )?;
        spare_added(spare, answer["in_place_of"].as_str());
        return Ok(0);
    }
    // A file made here is removed again when the spare is refused.
    let mut made = crate::cmd::rebuild::MadeFile(
        (!listed && a.create_size.is_some() && spare.symlink_metadata().is_err())
            .then_some(spare.as_path()),
    );
    if !listed {
        drop(crate::open_added_device(
            spare,
            a.create_size,
            a.preallocate,
        )?);
        if let Some(array) = crate::cmd::examine::probe_path(spare)? {
            if !a.force {
                crate::fail!(
                    crate::exit::CONFIG,
                    "{}: already holds an ectable array ({array}); use --force to reuse it \
                     (what it holds is lost)",
                    spare.display()
                );
            }
        } else {
            crate::cmd::common::refuse_signature(spare, a.force)?;
        }
    } else {
        crate::cmd::common::refuse_foreign(spare, a.force)?;
    }
    if !listed {
        paths.push(spare.clone());
    }
    let index = paths
        .iter()
        .position(|p| p == spare)
        .unwrap_or(paths.len() - 1);
    let name = spare.display().to_string();
    let engine = crate::cmd::rebuild::open_with_new(kind, &paths, spare, &name, a.force)?;
    // A member or spare opens as what it is: never wiped, refused here.
    crate::cmd::rebuild::refuse_holding(&engine, spare, engine.holding_path(&name))?;
    let missing = engine.status().spares_missing;
    let added = if a.force {
        engine.add_spare_in_place_of_missing(index)
    } else {
        engine.add_spare(index)
    };
    added.map_err(|e| spare_missing_hint(e.into(), spare))?;
    made.0 = None;
    let in_place_of = spare_taken(&missing, &engine);
    engine.close()?;
    spare_added(spare, in_place_of.as_deref());
    Ok(0)
}

/// The missing spare (device id) whose entry a new spare took: missing before
/// (`missing`), not now.
pub(crate) fn spare_taken(missing: &[String], engine: &ectable_engine::Engine) -> Option<String> {
    let now = engine.status().spares_missing;
    missing.iter().find(|m| !now.contains(m)).cloned()
}

/// `add-spare`'s last line: the spare, and the missing spare whose entry it took.
fn spare_added(spare: &Path, in_place_of: Option<&str>) {
    match in_place_of {
        Some(gone) => println!(
            "{} is a hot spare of the array, in place of the spare device {gone}, which was not among the devices given (it is no longer a member)",
            spare.display()
        ),
        None => println!("{} is a hot spare of the array", spare.display()),
    }
}

/// A refusal because the array names a hot spare that is not among the devices given, with
/// the way on for the CLI: list it, or `--force` to let the new spare take its entry.
pub(crate) fn spare_missing_hint(e: anyhow::Error, spare: &Path) -> anyhow::Error {
    let Some(missing) = crate::cmd::common::engine_errors(&e).find_map(|x| match x {
        ectable_engine::Error::SpareMissing { missing } => Some(missing.join(", ")),
        _ => None,
    }) else {
        return e;
    };
    crate::coded!(
        crate::exit::CONFIG,
        "the array names a hot spare (device {missing}) that is not among the devices given: list it in --devices if it is there; if it failed or was wiped, give --force to let {} take its place (it is then no longer a member). Nothing changed",
        spare.display()
    )
}
