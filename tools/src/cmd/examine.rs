//! `ectable examine PATH...`: which arrays' members are among these devices, and the
//! `--devices` list of each (as `mdadm --examine --scan` and `zpool import` do). Also what
//! `status` prints when too few members are present to open the array.

use crate::exit;
use anyhow::Result;
use clap::Args;
use ectable_devices::{open_backend, BackendKind, BlockDevice, FileDevice, OpenOptions, StorageId};
use ectable_engine::{examine_device, examine_devices, MemberInfo};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct ExamineArgs {
    /// Devices or files to look at; a quoted pattern (`'/dev/loop*'`) is expanded here.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// One JSON object: the arrays found and the paths that are not members.
    #[arg(long)]
    pub json: bool,
}

/// A device found to be a member (or spare) of an array.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    pub info: MemberInfo,
}

/// One array's members among the examined paths.
#[derive(Debug, Clone)]
pub struct ArrayFound {
    pub uuid: String,
    /// The superblock of the newest epoch among the members found: its member list is the
    /// current one.
    pub newest: MemberInfo,
    /// Per slot: the device holding its current copy (the newest epoch that carries the
    /// slot's current device uuid).
    pub slots: Vec<Option<Found>>,
    /// Hot spares of the current member list.
    pub spares: Vec<Found>,
    /// Devices that were members once but are not now (replaced), or older copies of a slot
    /// another path holds at a newer epoch.
    pub others: Vec<(Found, String)>,
}

impl ArrayFound {
    pub fn missing(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&s| self.slots[s].is_none())
            .collect()
    }

    /// The `--devices` list: the slots found, in slot order, then the spares.
    pub fn devices_list(&self) -> String {
        self.slots
            .iter()
            .flatten()
            .chain(self.spares.iter())
            .map(|f| f.path.display().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Device ids of the hot spares the newest superblock names that no path given carries.
    pub fn spares_missing(&self) -> Vec<String> {
        self.newest
            .members
            .iter()
            .skip(self.newest.slots)
            .filter(|(uuid, state)| {
                *state == "SPARE" && !self.spares.iter().any(|f| f.info.device_uuid == *uuid)
            })
            .map(|(uuid, _)| uuid.clone())
            .collect()
    }

    /// Members missing past m: the array cannot be opened.
    pub fn unavailable(&self) -> bool {
        self.missing().len() > self.newest.parity_shards
    }
}

#[derive(Debug, Default)]
pub struct Examined {
    pub arrays: Vec<ArrayFound>,
    /// Paths that are not members of any array, with why.
    pub not_members: Vec<(PathBuf, String)>,
}

/// Expands quoted patterns; other paths are kept as they are (a missing one is reported by
/// [`examine`]).
pub fn expand(paths: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.contains(['*', '?', '[']) {
            let matches = glob::glob(p).map_err(|e| crate::coded!(exit::USAGE, "{p}: {e}"))?;
            let before = out.len();
            for m in matches.flatten() {
                out.push(m);
            }
            if out.len() == before {
                out.push(PathBuf::from(p));
            }
        } else {
            out.push(PathBuf::from(p));
        }
    }
    Ok(out)
}

/// Reads the superblocks of every path (read-only, no lock taken) and groups the members by
/// array. A device that does not answer within the I/O deadline (`--io-timeout`) is
/// reported as unreadable, as one that fails.
pub fn examine(paths: &[PathBuf]) -> Examined {
    let mut by_array: BTreeMap<String, Vec<Found>> = BTreeMap::new();
    let mut not_members = Vec::new();
    let opts = OpenOptions {
        read_only: true,
        ..Default::default()
    };
    let mut infos: Vec<ectable_engine::Result<Option<MemberInfo>>> =
        Vec::with_capacity(paths.len());
    let mut opened: Vec<(usize, Arc<dyn BlockDevice>)> = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        match FileDevice::open(p, &opts) {
            Ok(d) => {
                opened.push((i, Arc::new(d)));
                infos.push(Ok(None));
            }
            Err(e) => infos.push(Err(e.into())),
        }
    }
    let (at, devs): (Vec<usize>, Vec<Arc<dyn BlockDevice>>) = opened.into_iter().unzip();
    for (i, info) in at
        .into_iter()
        .zip(read_members(devs, crate::deadline::io_timeout()))
    {
        infos[i] = info;
    }
    for (p, info) in paths.iter().zip(infos) {
        match info {
            Ok(Some(info)) => by_array
                .entry(info.array_uuid.clone())
                .or_default()
                .push(Found {
                    path: p.clone(),
                    info,
                }),
            Ok(None) => not_members.push((p.clone(), "no ectable superblock".to_string())),
            Err(ectable_engine::Error::UnknownFormat {
                version, newest, ..
            }) => not_members.push((
                p.clone(),
                format!(
                    "an ectable superblock of format version {version}, which this build does \
                     not read (it reads versions 1 to {newest}): examine it with the ectable \
                     that wrote it"
                ),
            )),
            Err(e) => not_members.push((p.clone(), format!("cannot read: {e}"))),
        }
    }
    let mut arrays: Vec<ArrayFound> = by_array
        .into_iter()
        .map(|(uuid, found)| group(uuid, found))
        .collect();
    // Arrays with the most members found first.
    arrays.sort_by_key(|a| std::cmp::Reverse(a.slots.iter().flatten().count()));
    Examined {
        arrays,
        not_members,
    }
}

/// The uuid of the array whose superblock `path` holds (None: none), read through the I/O
/// engine with this process's deadline (`--io-timeout`), on a read-only handle of its own:
/// a device about to be taken (format, add-spare, replace, restore) that stopped answering
/// fails the command at the deadline instead of holding it.
pub fn probe_path(path: &std::path::Path) -> Result<Option<String>> {
    match member_info_of(path, crate::deadline::io_timeout()) {
        Ok(info) => Ok(info.map(|m| m.array_uuid)),
        // An array of a newer build: taken as one (--force reuses it), not as a blank device.
        Err(ectable_engine::Error::UnknownFormat { version, .. }) => Ok(Some(format!(
            "format version {version}, which this build does not read"
        ))),
        Err(e) => Err(crate::coded!(exit::IO, "{e}")),
    }
}

/// What the superblock of the device at `path` says (None: no ectable superblock), read on a
/// read-only handle of its own through the I/O engine with the deadline `limit`.
pub fn member_info_of(
    path: &std::path::Path,
    limit: Option<Duration>,
) -> ectable_engine::Result<Option<MemberInfo>> {
    let opts = OpenOptions {
        read_only: true,
        ..Default::default()
    };
    let dev = FileDevice::open(path, &opts)?;
    read_members(vec![Arc::new(dev)], limit)
        .pop()
        .unwrap_or(Ok(None))
}

/// The superblocks of `devs`, read together through the I/O engine with the deadline `limit`:
/// a device that does not answer in time is reported as unreadable and holds up neither
/// the others nor (with io_uring) the process's exit, which a blocked `pread` would.
pub fn read_members(
    devs: Vec<Arc<dyn BlockDevice>>,
    limit: Option<Duration>,
) -> Vec<ectable_engine::Result<Option<MemberInfo>>> {
    if devs.is_empty() {
        return Vec::new();
    }
    match open_backend(BackendKind::Auto, devs.clone()) {
        Ok(io) => {
            io.set_io_timeout(limit);
            examine_devices(io.as_ref())
        }
        // No I/O engine (no thread to start): one device at a time, without a deadline.
        Err(_) => devs.iter().map(|d| examine_device(d.as_ref())).collect(),
    }
}

fn group(uuid: String, mut found: Vec<Found>) -> ArrayFound {
    found.sort_by_key(|f| std::cmp::Reverse(f.info.epoch));
    let newest = found[0].info.clone();
    let mut slots: Vec<Option<Found>> = vec![None; newest.slots];
    let mut spares = Vec::new();
    let mut others = Vec::new();
    for f in found {
        let current = newest
            .members
            .iter()
            .position(|(u, _)| *u == f.info.device_uuid);
        match current {
            Some(i) if i < newest.slots => {
                if let Some(held) = &slots[i] {
                    let alias = match (StorageId::of_path(&f.path), StorageId::of_path(&held.path))
                    {
                        (Ok(a), Ok(b)) => a.same_storage(&b),
                        _ => false,
                    };
                    let why = if alias {
                        // A loop device and its backing file, or two nodes of one device.
                        format!("the same storage as {} (another name)", held.path.display())
                    } else if f.info.epoch == held.info.epoch {
                        format!(
                            "a copy of slot {i} at the same epoch {} as {} (a block copy: \
                             only one may be used)",
                            f.info.epoch,
                            held.path.display()
                        )
                    } else {
                        format!(
                            "an older copy of slot {i} (epoch {}; {} has epoch {})",
                            f.info.epoch,
                            held.path.display(),
                            held.info.epoch
                        )
                    };
                    others.push((f, why));
                } else {
                    slots[i] = Some(f);
                }
            }
            Some(_) => spares.push(f),
            None => {
                let why = format!(
                    "no longer a member (epoch {}; replaced or removed since)",
                    f.info.epoch
                );
                others.push((f, why));
            }
        }
    }
    ArrayFound {
        uuid,
        newest,
        slots,
        spares,
        others,
    }
}

/// `ectable examine`: exit 0 when some array's members were found, 1 when none.
pub fn run(a: &ExamineArgs) -> Result<i32> {
    let paths = expand(&a.paths)?;
    let ex = examine(&paths);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&examined_json(&ex))?);
    } else {
        print_examined(&ex);
    }
    Ok(if ex.arrays.is_empty() {
        exit::NO
    } else {
        exit::OK
    })
}

fn state_of(a: &ArrayFound) -> &'static str {
    let missing = a.missing().len();
    if missing == 0 {
        "complete"
    } else if missing <= a.newest.parity_shards {
        "degraded"
    } else {
        "unavailable"
    }
}

pub fn print_examined(ex: &Examined) {
    for a in &ex.arrays {
        let n = &a.newest;
        let found = a.slots.iter().flatten().count();
        println!(
            "array {}: RS({},{}), {found} of {} members found ({}), epoch {}, format v{}{}",
            a.uuid,
            n.data_shards,
            n.parity_shards,
            n.slots,
            state_of(a),
            n.epoch,
            n.format_version,
            if n.inline_values {
                " (values inline)"
            } else {
                ""
            }
        );
        for (s, f) in a.slots.iter().enumerate() {
            match f {
                Some(f) => println!("  slot {s:<3} {}", f.path.display()),
                None => println!(
                    "  slot {s:<3} MISSING (device {})",
                    n.members.get(s).map(|m| m.0.as_str()).unwrap_or("?")
                ),
            }
        }
        for f in &a.spares {
            println!("  spare    {}", f.path.display());
        }
        for uuid in a.spares_missing() {
            println!("  spare    MISSING (device {uuid})");
        }
        for (f, why) in &a.others {
            println!("  not used {}: {why}", f.path.display());
        }
        println!("  --devices {}", a.devices_list());
    }
    for (p, why) in &ex.not_members {
        println!("not a member: {}: {why}", p.display());
    }
    if ex.arrays.is_empty() {
        println!("no ectable array members found");
    }
}

pub fn array_json(a: &ArrayFound) -> Value {
    let n = &a.newest;
    json!({
        "array_uuid": a.uuid,
        "state": state_of(a),
        "data_shards": n.data_shards,
        "parity_shards": n.parity_shards,
        "epoch": n.epoch,
        "format_version": n.format_version,
        "inline_values": n.inline_values,
        "members": a.slots.iter().enumerate().map(|(s, f)| match f {
            Some(f) => json!({"slot": s, "path": f.path, "device_uuid": f.info.device_uuid,
                              "epoch": f.info.epoch}),
            None => json!({"slot": s, "path": null,
                           "device_uuid": n.members.get(s).map(|m| m.0.clone())}),
        }).collect::<Vec<_>>(),
        "missing_slots": a.missing(),
        "spares": a.spares.iter().map(|f| json!({"path": f.path, "device_uuid": f.info.device_uuid})).collect::<Vec<_>>(),
        "spares_missing": a.spares_missing(),
        "not_used": a.others.iter().map(|(f, why)| json!({"path": f.path, "why": why})).collect::<Vec<_>>(),
        "devices": a.devices_list(),
    })
}

fn examined_json(ex: &Examined) -> Value {
    json!({
        "arrays": ex.arrays.iter().map(array_json).collect::<Vec<_>>(),
        "not_members": ex.not_members.iter().map(|(p, why)| json!({"path": p, "why": why})).collect::<Vec<_>>(),
    })
}
