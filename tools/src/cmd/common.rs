//! What the `ectable` commands share: the `--devices`, `--table` and row arguments, opening
//! the array, read-only commands that start over when another process changes the array
//! under them, and the one-line error with its exit code.

use crate::{open_devices, parse_size, split_devices};
use anyhow::{Context, Result};
use clap::Args;
use ectable_devices::BackendKind;
use ectable_engine::Engine;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Clone)]
pub struct DevicesArg {
    /// The array's devices, comma separated, in any order (`ectable examine` prints the list).
    #[arg(long, value_name = "D1,D2,...", env = "ECTABLE_DEVICES")]
    pub devices: String,
}

/// The devices of `format`: never taken from ECTABLE_DEVICES (a new array is made on
/// devices named on the command line).
#[derive(Args, Clone)]
pub struct NewDevicesArg {
    /// The devices, comma separated, in any order.
    #[arg(long, value_name = "D1,D2,...")]
    pub devices: String,
}

impl From<&NewDevicesArg> for DevicesArg {
    fn from(a: &NewDevicesArg) -> DevicesArg {
        DevicesArg {
            devices: a.devices.clone(),
        }
    }
}

#[derive(Args, Clone)]
pub struct TableArg {
    /// Table name (1..=64 bytes).
    #[arg(long)]
    pub table: String,
}

#[derive(Args, Clone)]
pub struct RowsArg {
    #[command(flatten)]
    pub table: TableArg,
    /// Number of rows (row i has key "row" + i as 12 digits).
    #[arg(long)]
    pub rows: u64,
    /// Value size in bytes (suffixes allowed).
    #[arg(long, value_parser = size_arg)]
    pub value_size: u64,
    /// Seed of the values: the same seed gives the same rows.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// clap's parser of a size argument (binary suffixes, like fio).
pub fn size_arg(s: &str) -> std::result::Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

/// The least rate limit taken (bytes per second): below it a long run would crawl for days,
/// and a bare number such as `--rate 50` is more likely meant as 50M.
pub const MIN_RATE_BYTES_PER_SEC: u64 = 64 << 10;

/// A `--rate` value: a size per second, at least [`MIN_RATE_BYTES_PER_SEC`], or 0 for no
/// limit.
pub fn rate_arg(s: &str) -> std::result::Result<u64, String> {
    let n = parse_size(s).map_err(|e| e.to_string())?;
    if n != 0 && n < MIN_RATE_BYTES_PER_SEC {
        return Err(format!(
            "{n} bytes per second would take days over a real array; give a size per second of at least 64K (such as 50M), or 0 for no limit"
        ));
    }
    Ok(n)
}

/// The paths of `--devices`.
pub fn devices(arg: &DevicesArg) -> Result<Vec<PathBuf>> {
    split_devices(&arg.devices)
}

/// Opens the array on the devices of `arg`.
pub fn open_array(kind: BackendKind, arg: &DevicesArg, read_only: bool) -> Result<Engine> {
    let paths = devices(arg)?;
    if let Some(p) = paths.iter().find(|p| !p.exists()) {
        crate::fail!(
            crate::exit::NO_INPUT,
            "{}: no such device or file (a member that is gone: leave it out of --devices to \
             open the array without it; 'ectable status' reports on the array with the list \
             as it is)",
            p.display()
        );
    }
    let io = open_devices(&paths, None, read_only, kind)?;
    Engine::open(io, crate::deadline::engine_options(read_only)).context("opening the array")
}

/// Exit code of a read-only command whose array another process changed under it
/// (`EX_TEMPFAIL` of sysexits.h: try again later).
pub const EXIT_ARRAY_CHANGED: i32 = crate::exit::TEMPFAIL;

/// Read-only commands start over this many times when the array changes under them.
const READ_ATTEMPTS: usize = 3;

/// Whether the error is the engine's "the array changed under this reader".
pub fn array_changed(e: &anyhow::Error) -> bool {
    engine_errors(e).any(|x| matches!(x, ectable_engine::Error::ArrayChanged { .. }))
}

/// The engine's errors in `e`'s chain of causes, outermost first.
pub fn engine_errors(e: &anyhow::Error) -> impl Iterator<Item = &ectable_engine::Error> {
    e.chain()
        .filter_map(|c| c.downcast_ref::<ectable_engine::Error>())
}

/// After a read-only command: records the device errors it met and a scrub it ran in the
/// members' health blocks, so that `status` shows them (docs/operations.md, "Errors a
/// read-only command finds"), and names on stderr the devices whose chunks it had to read
/// around. The members are opened for writing without waiting: when another writer holds
/// the array, nothing is recorded (that writer's own reads count what they meet) and the
/// warning says so. Nothing to do for a session that met no error and ran no scrub.
pub fn record_findings(engine: &Engine, warn: bool) {
    if !engine.has_findings() {
        return;
    }
    let st = engine.status();
    let met: Vec<String> = st
        .devices
        .iter()
        .filter(|d| d.read_errors + d.checksum_errors > 0)
        .map(|d| {
            format!(
                "{} (slot {}: {} chunk(s) failed their checksum, {} read error(s))",
                d.path.as_deref().unwrap_or("a missing device"),
                d.slot,
                d.checksum_errors,
                d.read_errors
            )
        })
        .collect();
    let opts = ectable_devices::OpenOptions {
        lock_wait: Some(std::time::Duration::ZERO),
        ..Default::default()
    };
    let mut writable: Vec<(usize, Arc<dyn ectable_devices::BlockDevice>)> = Vec::new();
    let mut held = None;
    for d in &st.devices {
        let Some(path) = &d.path else { continue };
        match ectable_devices::FileDevice::open(std::path::Path::new(path), &opts) {
            Ok(dev) => writable.push((d.slot, Arc::new(dev))),
            Err(e) if is_in_use(&e) => {
                held = Some(e.to_string());
                break;
            }
            // A member that cannot be opened for writing (gone, read-only) keeps its block.
            Err(e) => tracing::debug!("{path}: not opened to record what was found: {e}"),
        }
    }
    // Ok: recorded; Err: why not.
    let recorded = match held {
        Some(why) => {
            writable.clear();
            Err(format!(
                "another process holds the array for writing and counts what its own reads meet; {why}"
            ))
        }
        None => match engine.record_findings(&writable) {
            0 => Err("no member could be written".to_string()),
            _ => Ok(()),
        },
    };
    if warn && !met.is_empty() {
        let said = match &recorded {
            Ok(()) => "recorded for 'status'".to_string(),
            Err(why) => format!("not recorded for 'status': {why}"),
        };
        eprintln!(
            "warning: {}; what this command read there was rebuilt from the other members, and a read-only command rewrites nothing ({said}): run 'ectable scrub --repair'",
            met.join(", ")
        );
    } else if let Err(why) = &recorded {
        eprintln!("note: this scrub's result is not recorded for 'status': {why}");
    }
}

/// Calls [`record_findings`] (with the warning) when dropped: for a read-only command with
/// several ways out.
pub struct RecordFindings(pub Arc<Engine>);

impl Drop for RecordFindings {
    fn drop(&mut self) {
        record_findings(&self.0, true);
    }
}

/// Whether opening a device failed because another writer holds it.
fn is_in_use(e: &ectable_devices::DeviceError) -> bool {
    match e {
        ectable_devices::DeviceError::Open { source, .. } => {
            source.kind() == std::io::ErrorKind::ResourceBusy
        }
        _ => false,
    }
}

/// Opens the array read-only and runs `read` on it; when another process changed the array
/// under the reader (`Error::ArrayChanged`), opens it again and starts over, up to
/// `READ_ATTEMPTS` times. `read` must write its output only once it has read everything.
pub fn with_reader<T>(
    kind: BackendKind,
    dev: &DevicesArg,
    mut read: impl FnMut(&Arc<Engine>) -> Result<T>,
) -> Result<T> {
    let mut attempt = 1;
    loop {
        let r = open_array(kind, dev, true).and_then(|e| {
            let e = Arc::new(e);
            let r = read(&e);
            // A read the array changed under met chunks a writer had reused, not damage.
            if !matches!(&r, Err(err) if array_changed(err)) {
                record_findings(&e, true);
            }
            r
        });
        match r {
            Err(e) if attempt < READ_ATTEMPTS && array_changed(&e) => attempt += 1,
            r => return r,
        }
    }
}

/// A device of the list the array does not use, as the open's error names it: another
/// array's, or one replaced out of this array (an old member, or an old copy of a hot
/// spare).
pub struct Stray {
    /// The device, as listed.
    pub device: String,
    /// What it is, ending in "; not used".
    pub why: String,
    /// Which kind: `--json`'s check code for it.
    pub kind: StrayKind,
}

/// What a [`Stray`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrayKind {
    /// Another array's device.
    Foreign,
    /// A device replaced out of this array.
    Replaced,
    /// A path that is not there or is no device (`status` only).
    NoDevice,
    /// The same storage as a device listed before it (`status` only).
    Twice,
}

impl StrayKind {
    /// The check code `status --json` gives it.
    pub fn check_code(self) -> &'static str {
        match self {
            StrayKind::Foreign | StrayKind::Replaced => "DEVICE_NOT_MEMBER",
            StrayKind::NoDevice => "DEVICE_NOT_FOUND",
            StrayKind::Twice => "DEVICE_LISTED_TWICE",
        }
    }
}

/// The device the open failed on, when that is why: see [`Stray`].
pub fn stray_device(e: &anyhow::Error) -> Option<Stray> {
    engine_errors(e).find_map(|x| match x {
        ectable_engine::Error::ForeignDevice { device, found } => Some(Stray {
            device: device.clone(),
            why: format!("belongs to another ectable array ({found}); not used"),
            kind: StrayKind::Foreign,
        }),
        ectable_engine::Error::ReplacedDevice {
            device,
            slot,
            was_spare,
            ..
        } => Some(Stray {
            device: device.clone(),
            why: if *was_spare {
                format!("an old hot spare of this array (member entry {slot}), replaced since; not used")
            } else {
                format!("was replaced out of this array (it held slot {slot}); not used")
            },
            kind: StrayKind::Replaced,
        }),
        _ => None,
    })
}

/// Opens with `open` on `paths`, leaving out each listed device the open fails on as a
/// [`Stray`] (only replaced ones unless `foreign_too`) and trying again with the rest, so
/// that a list gone out of date (a unit file's) still opens the array. One device is always
/// kept. Returns what `open` gave and the devices left out; `paths` is what was opened.
pub fn open_without_strays<T>(
    paths: &mut Vec<PathBuf>,
    foreign_too: bool,
    mut open: impl FnMut(&[PathBuf]) -> Result<T>,
) -> Result<(T, Vec<Stray>)> {
    let mut left_out = Vec::new();
    loop {
        let e = match open(paths) {
            Ok(t) => return Ok((t, left_out)),
            Err(e) => e,
        };
        let listed = stray_device(&e)
            .filter(|s| foreign_too || s.kind != StrayKind::Foreign)
            .and_then(|s| {
                let i = paths
                    .iter()
                    .position(|p| p.display().to_string() == s.device)?;
                Some((i, s))
            });
        match listed {
            Some((i, s)) if paths.len() > 1 => {
                paths.remove(i);
                left_out.push(s);
            }
            _ => return Err(e),
        }
    }
}

/// Refuses (exit 78, unless `force`) a device about to join an array (`add-spare`,
/// `replace --new`) that holds no ectable array but something else an operator may want: a
/// file system, a partition table, a RAID or LVM member
/// ([`ectable_devices::foreign_signature`]), as `format` refuses one. Reads only.
pub fn refuse_foreign(path: &std::path::Path, force: bool) -> Result<()> {
    if force || crate::cmd::examine::probe_path(path)?.is_some() {
        return Ok(());
    }
    refuse_signature(path, force)
}

/// As [`refuse_foreign`], for a device already known to hold no ectable array.
pub fn refuse_signature(path: &std::path::Path, force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let ro = ectable_devices::OpenOptions {
        read_only: true,
        ..Default::default()
    };
    let dev = ectable_devices::FileDevice::open(path, &ro)?;
    if let Some(what) = ectable_devices::foreign_signature(&dev)? {
        crate::fail!(
            crate::exit::CONFIG,
            "{}: holds {what}; use --force to overwrite it (what it holds is lost)",
            path.display()
        );
    }
    Ok(())
}

/// What to do on the command line about an engine error whose own text is the library's
/// (`force` is `--force` here).
fn cli_hint(e: &anyhow::Error) -> Option<&'static str> {
    e.chain()
        .find_map(|c| {
            match c.downcast_ref::<ectable_engine::Error>() {
        Some(
            ectable_engine::Error::AlreadyFormatted { .. } | ectable_engine::Error::HoldsData { .. },
        ) => Some("use --force to overwrite it"),
        Some(ectable_engine::Error::ReplacedDevice { .. }) => Some(
            "leave it out of --devices, or reuse it with format, replace or add-spare and --force",
        ),
        _ => None,
    }
        })
}

/// The error and its causes on one line (and, for some engine errors, what to do about them
/// with this command line).
pub fn one_line(e: &anyhow::Error) -> String {
    let line = chain_line(e);
    match cli_hint(e) {
        Some(hint) => format!("{line}; {hint}"),
        None => line,
    }
}

fn chain_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// The exit code of a failed command: 4 for `status` (mdadm's "status unreadable"), else the
/// class of the error (`crate::exit`).
pub fn error_exit_code(e: &anyhow::Error, is_status: bool) -> i32 {
    if is_status {
        crate::exit::STATUS_UNREADABLE
    } else {
        crate::exit::code_of(e)
    }
}
