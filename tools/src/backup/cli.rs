//! The `backup`, `backup-verify` and `restore` commands of `ectable`: their arguments, the
//! checks and the confirmation before a restore formats devices, progress and output
//! (`src/bin/ectable.rs` only dispatches to them). The backups themselves are taken, verified
//! and restored by the `ectable_backup` library, whose errors `?` turns into the CLI's
//! messages unchanged.
//!
//! Invariants:
//! - `restore` checks everything it can before it writes: the whole chain, the until-LSN,
//!   the record sizes against the new geometry, and the devices (a device of an existing
//!   array needs `--force`, unless the array holds an unfinished restore).
//! - Files `restore --create-size` created are removed again when formatting fails.

use super::now_unix_secs;
use crate::term::{self, ByteProgress};
use crate::{open_devices, open_for_format, parse_size, split_devices};
use anyhow::{anyhow, Context, Result};
use clap::Args;
use ectable_backup::{
    restore_chain, take_auto, take_full, take_incremental, uuid_text, verify_chain, AutoPolicy,
    BackupKind, Chain, Manifest, TakeOptions,
};
use ectable_devices::BackendKind;
use ectable_engine::{format, Engine, EngineOptions, FormatOptions, Layout};
use serde_json::{json, Value};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

fn size_arg(s: &str) -> std::result::Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

/// `ectable backup`.
#[derive(Args)]
pub struct BackupArgs {
    /// The array's devices, comma separated, in any order.
    #[arg(long, value_name = "D1,D2,...", env = "ECTABLE_DEVICES")]
    pub devices: String,
    /// The backup file to write (refused if it exists; written as FILE.partial, then
    /// renamed); `-` writes the backup to stdout (and the summary to stderr).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "auto",
        required_unless_present = "auto"
    )]
    pub to: Option<PathBuf>,
    /// Take an incremental backup: the changes after this backup (full or incremental) of
    /// the same array.
    #[arg(
        long,
        value_name = "PREV_FILE",
        requires = "to",
        conflicts_with = "auto"
    )]
    pub incremental_from: Option<PathBuf>,
    /// Let the hybrid policy choose a full or an incremental backup into DIR, name it
    /// cCCCC-SSSS-full.ectb / cCCCC-SSSS-incr.ectb, and prune old chains.
    #[arg(long, value_name = "DIR")]
    pub auto: Option<PathBuf>,
    /// --auto: a chain holds at most this many incrementals, then a full backup starts the
    /// next [default: 7].
    #[arg(long, value_name = "N", conflicts_with = "to")]
    pub full_every: Option<u32>,
    /// --auto: a full backup starts the next chain once the chain's incrementals exceed
    /// this percentage of its full backup's size [default: 50].
    #[arg(long, value_name = "N", conflicts_with = "to")]
    pub max_chain_percent: Option<u32>,
    /// --auto: chains kept (the newest, the new backup's included); older ones are deleted
    /// [default: 2].
    #[arg(long, value_name = "N", conflicts_with = "to")]
    pub keep_chains: Option<u32>,
    /// Bytes per second written at most (suffixes allowed; 0: unlimited).
    #[arg(long, default_value = "0", value_parser = crate::cmd::common::rate_arg)]
    pub rate: u64,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `ectable backup-verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The chain: the full backup first, then its incrementals in order; `-` reads one
    /// backup from stdin.
    #[arg(value_name = "FILE[,FILE...]", required = true, num_args = 1.., value_delimiter = ',')]
    pub files: Vec<PathBuf>,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `ectable restore`.
#[derive(Args)]
pub struct RestoreArgs {
    /// The new array's devices, comma separated.
    #[arg(long, value_name = "D1,D2,...")]
    pub devices: String,
    /// Data shards per stripe of the new array.
    #[arg(long)]
    pub k: usize,
    /// Parity shards per stripe of the new array.
    #[arg(long)]
    pub m: usize,
    /// The chain: the full backup first, then its incrementals in order.
    #[arg(long, value_name = "FULL[,INCR...]", required = true, num_args = 1.., value_delimiter = ',')]
    pub from: Vec<PathBuf>,
    /// Restore the state as of this LSN (from the full backup's LSN to the chain's end;
    /// default: the end).
    #[arg(long)]
    pub until_lsn: Option<u64>,
    /// Largest chunk of the new array, a multiple of 4K.
    #[arg(long, default_value_t = ectable_engine::DEFAULT_CHUNK_SIZE_BYTES as u64, value_parser = size_arg)]
    pub chunk_size: u64,
    /// Segment size per device of the new array (default 8M).
    #[arg(long, value_parser = size_arg)]
    pub segment_size: Option<u64>,
    /// Create missing device files of this size.
    #[arg(long, value_parser = size_arg)]
    pub create_size: Option<u64>,
    /// Allocate every block of the device files now (fallocate), as `format --preallocate`:
    /// refused, with nothing written, when their file system has not room.
    #[arg(long)]
    pub preallocate: bool,
    /// Overwrite devices that hold an ectable array.
    #[arg(long)]
    pub force: bool,
    /// Do not ask before overwriting an existing array.
    #[arg(long)]
    pub yes: bool,
    /// Keep every value inline in the new array (a version 6 array, as `ectable format
    /// --inline-values`): less cleaning on a nearly full array, 8 KiB per point read of a 4 KiB
    /// value.
    #[arg(long)]
    pub inline_values: bool,
    /// Bytes per second read from the backup files at most (0: unlimited).
    #[arg(long, default_value = "0", value_parser = crate::cmd::common::rate_arg)]
    pub rate: u64,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn manifest_json(path: &Path, m: &Manifest) -> Value {
    json!({
        "file": path.display().to_string(),
        "kind": m.kind.name(),
        "array_id": uuid_text(&m.array_id),
        "backup_id": uuid_text(&m.backup_id),
        "base_backup_id": (m.kind == BackupKind::Incremental).then(|| uuid_text(&m.base_backup_id)),
        "chain_id": uuid_text(&m.chain_id),
        "chain_index": m.chain_index,
        "start_lsn": m.start_lsn,
        "end_lsn": m.end_lsn,
        "records": m.record_count,
        "puts": m.put_count,
        "deletes": m.delete_count,
        "tables": m.table_count,
        "blocks": m.block_count,
        "size_bytes": m.file_size_bytes,
    })
}

fn manifest_line(path: &Path, m: &Manifest) -> String {
    match m.kind {
        BackupKind::Full => format!(
            "{}: full backup {} of array {}: {} rows in {} table(s) as of LSN {}, {} blocks, {}",
            path.display(),
            uuid_text(&m.backup_id),
            uuid_text(&m.array_id),
            m.record_count,
            m.table_count,
            m.end_lsn,
            m.block_count,
            term::bytes(m.file_size_bytes)
        ),
        BackupKind::Incremental => format!(
            "{}: incremental backup {} (number {} of chain {}): {} puts and {} deletes after LSN {} up to {}, {} blocks, {}",
            path.display(),
            uuid_text(&m.backup_id),
            m.chain_index,
            uuid_text(&m.chain_id),
            m.put_count,
            m.delete_count,
            m.start_lsn,
            m.end_lsn,
            m.block_count,
            term::bytes(m.file_size_bytes)
        ),
    }
}

/// `ectable backup`.
pub fn backup(kind: BackendKind, a: &BackupArgs) -> Result<i32> {
    backup_watched(kind, a).map_err(|e| {
        let stopped = e
            .chain()
            .find_map(|c| match c.downcast_ref::<ectable_backup::Error>() {
                Some(ectable_backup::Error::Stopped { path, .. }) => Some(path.clone()),
                _ => None,
            });
        match stopped {
            Some(path) if crate::interrupt::requested() => {
                crate::interrupt::stopped(if path == Path::new("(stdout)") {
                    "the backup written to standard output is unfinished (it has no end \
                     record: backup-verify and restore refuse it)"
                        .to_string()
                } else {
                    format!(
                        "{}: the unfinished backup file was removed; nothing was kept",
                        path.display()
                    )
                })
            }
            _ => e,
        }
    })
}

/// `backup`, with SIGINT and SIGTERM stopping it between rows (crate::interrupt).
fn backup_watched(kind: BackendKind, a: &BackupArgs) -> Result<i32> {
    let defaults = AutoPolicy::default();
    let policy = AutoPolicy {
        full_every: a.full_every.unwrap_or(defaults.full_every),
        max_chain_percent: a.max_chain_percent.unwrap_or(defaults.max_chain_percent),
        keep_chains: a.keep_chains.unwrap_or(defaults.keep_chains),
    };
    if policy.keep_chains == 0 {
        crate::fail!(crate::exit::USAGE, "--keep-chains must be at least 1");
    }
    // A file in a directory that is not there: said before the array is opened or read.
    if let Some(to) = a.to.as_deref().filter(|t| *t != Path::new("-")) {
        let dir = match to.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            crate::fail!(
                crate::exit::CANT_CREATE,
                "--to {}: its directory {} does not exist",
                to.display(),
                dir.display()
            );
        }
        if to.is_dir() {
            crate::fail!(
                crate::exit::USAGE,
                "--to {}: is a directory; --to takes the name of a new backup file (--auto DIR takes a directory and names the files itself)",
                to.display()
            );
        }
    }
    if let Some(dir) = a.auto.as_deref().filter(|d| d.exists() && !d.is_dir()) {
        crate::fail!(
            crate::exit::USAGE,
            "--auto {}: is not a directory; --auto takes a directory for the policy's files (--to FILE writes one backup file)",
            dir.display()
        );
    }
    let dev = crate::cmd::common::DevicesArg {
        devices: a.devices.clone(),
    };
    if let Some(node) = crate::node::client::find(&dev)? {
        return backup_via_node(&node, a, &policy);
    }
    let engine = open_for_backup(kind, &a.devices)?;
    let bar = ByteProgress::new("backup");
    let mut report = |done: u64, total: u64| bar.update_bytes(done, total);
    let interrupted = crate::interrupt::watch()?;
    let mut opts = TakeOptions {
        rate_bytes_per_sec: a.rate,
        progress: Some(&mut report),
        cancel: Some(interrupted.as_ref()),
    };
    let to_stdout = a.to.as_deref() == Some(Path::new("-"));
    if to_stdout && std::io::stdout().is_terminal() {
        crate::fail!(
            crate::exit::USAGE,
            "--to -: refusing to write a backup to a terminal; send stdout to a file or a pipe \
             (backup --to - | zstd > FILE)"
        );
    }
    let (path, m, reason, pruned) = match (&a.auto, &a.to, &a.incremental_from) {
        (Some(dir), _, _) => {
            let o = take_auto(&engine, dir, &policy, &mut opts)?;
            (o.path, o.manifest, Some(o.reason), o.pruned)
        }
        (None, Some(_), base) if to_stdout => {
            let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            let name = Path::new("(stdout)");
            let (_, m) = match base {
                None => ectable_backup::take_full_to(&engine, out, name, &mut opts)?,
                Some(base) => {
                    ectable_backup::take_incremental_to(&engine, base, out, name, &mut opts)?
                }
            };
            (PathBuf::from("-"), m, None, Vec::new())
        }
        (None, Some(to), None) => (
            to.clone(),
            take_full(&engine, to, &mut opts)?,
            None,
            Vec::new(),
        ),
        (None, Some(to), Some(base)) => (
            to.clone(),
            take_incremental(&engine, base, to, &mut opts)?,
            None,
            Vec::new(),
        ),
        (None, None, _) => crate::fail!(crate::exit::USAGE, "give --to FILE or --auto DIR"),
    };
    bar.finish();
    // A member that failed while the backup read around it (or was out before): the backup
    // is whole, and the operator reading its output (a cron job's mail) learns of it here.
    let out = crate::cmd::rebuild::members_out(&engine.status());
    engine.close()?;
    warn_not_healthy(out.as_deref());
    if a.json {
        let mut v = manifest_json(&path, &m);
        v["schema_version"] = json!(1);
        if let Some(out) = &out {
            v["array_not_healthy"] = json!(out);
        }
        if let Some(r) = &reason {
            v["reason"] = json!(r);
            v["pruned"] = json!(pruned
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>());
        }
        say(to_stdout, &v.to_string());
    } else {
        say(to_stdout, &manifest_line(&path, &m));
        if let Some(r) = &reason {
            say(to_stdout, &format!("  policy: {r}"));
        }
        for p in &pruned {
            say(to_stdout, &format!("  pruned: {}", p.display()));
        }
    }
    Ok(0)
}

/// `backup` through a running node: the node writes the file (paths are made absolute
/// here; the node must see them), with the same progress bar and summary.
fn backup_via_node(
    node: &crate::node::client::NodeClient,
    a: &BackupArgs,
    policy: &AutoPolicy,
) -> Result<i32> {
    if a.to.as_deref() == Some(Path::new("-")) {
        crate::fail!(
            crate::exit::USAGE,
            "a storage node holds the array: 'backup --to -' cannot stream through it; give --to FILE or --auto DIR"
        );
    }
    let abs = |p: &Option<PathBuf>| {
        p.as_ref().map(|p| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string()
        })
    };
    let body = match (&a.auto, &a.to) {
        (Some(_), _) => json!({
            "dir": abs(&a.auto),
            "full_every": policy.full_every,
            "max_chain_percent": policy.max_chain_percent,
            "keep_chains": policy.keep_chains,
            "rate": a.rate,
        }),
        (None, Some(_)) => json!({
            "to": abs(&a.to),
            "incremental_from": abs(&a.incremental_from),
            "rate": a.rate,
        }),
        (None, None) => crate::fail!(crate::exit::USAGE, "give --to FILE or --auto DIR"),
    };
    let bar = ByteProgress::new("backup");
    let r = node.post_streaming("/v1/admin/backup", &body, &mut |p| {
        bar.update_bytes(
            p["bytes_done"].as_u64().unwrap_or(0),
            p["bytes_total"].as_u64().unwrap_or(0),
        )
    });
    bar.finish();
    let mut v = r?;
    // The node's array at the backup's end, as for a backup taken here.
    let out = node
        .get("/v1/status/raw")
        .ok()
        .and_then(|s| serde_json::from_value::<ectable_engine::Status>(s).ok())
        .and_then(|st| crate::cmd::rebuild::members_out(&st));
    warn_not_healthy(out.as_deref());
    if a.json {
        v["schema_version"] = json!(1);
        if let Some(out) = &out {
            v["array_not_healthy"] = json!(out);
        }
        println!("{v}");
        return Ok(0);
    }
    // The file as the user named it (--to), or where the policy put it (--auto).
    let path = match &a.to {
        Some(to) => to.clone(),
        None => PathBuf::from(v["file"].as_str().unwrap_or("-")),
    };
    match ectable_backup::format::read_header_and_trailer(&path) {
        Ok((_, m)) => println!("{}", manifest_line(&path, &m)),
        Err(_) => println!("{v}"),
    }
    if let Some(r) = v["reason"].as_str() {
        println!("  policy: {r}");
    }
    for p in v["pruned"].as_array().into_iter().flatten() {
        println!("  pruned: {}", p.as_str().unwrap_or(""));
    }
    Ok(0)
}

/// The warning a backup ends with when the array is not healthy at its end (`out`: its
/// state and the members out of service): the backup is whole, and a cron job's output is
/// often the only place an operator looks.
fn warn_not_healthy(out: Option<&str>) {
    if let Some(out) = out {
        eprintln!(
            "backup: warning: the backup is whole, but the array is {out}; see 'ectable status'"
        );
    }
}

/// A line of the summary: on stdout, or on stderr when stdout carries the backup itself.
fn say(to_stderr: bool, line: &str) {
    if to_stderr {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// `-` in a chain, and any file that is a stream rather than a regular file (a named pipe,
/// a shell's `<(zstd -dc b.ectb.zst)`): each is copied to a temporary file (in TMPDIR; it
/// needs room for the backup) so that the chain can be checked whole before anything is
/// restored, as for a file. The returned [`Spooled`] removes the copies when dropped.
fn stdin_to_file(files: &[PathBuf]) -> Result<(Vec<PathBuf>, Spooled)> {
    use std::os::unix::fs::FileTypeExt;
    let dashes = files.iter().filter(|f| f.as_os_str() == "-").count();
    if dashes > 1 {
        crate::fail!(
            crate::exit::USAGE,
            "stdin (-) can hold one backup of the chain, not {dashes}"
        );
    }
    let stream = |f: &PathBuf| {
        f.as_os_str() == "-"
            || std::fs::metadata(f).is_ok_and(|m| {
                let t = m.file_type();
                t.is_fifo() || t.is_char_device() || t.is_socket()
            })
    };
    if !files.iter().any(stream) {
        return Ok((files.to_vec(), Spooled::default()));
    }
    if dashes == 1 && std::io::stdin().is_terminal() {
        crate::fail!(
            crate::exit::USAGE,
            "-: refusing to read a backup from a terminal; send one on stdin (zstd -dc FILE | ...)"
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("ectable-stdin-")
        .tempdir()
        .context("making a temporary directory for the backups read from streams")?;
    let mut out = Vec::with_capacity(files.len());
    let mut names = Vec::new();
    for (i, f) in files.iter().enumerate() {
        if !stream(f) {
            out.push(f.clone());
            continue;
        }
        let copy = dir.path().join(format!("{i}.ectb"));
        let mut to =
            std::fs::File::create(&copy).with_context(|| format!("creating {}", copy.display()))?;
        let copied = if f.as_os_str() == "-" {
            std::io::copy(&mut std::io::stdin().lock(), &mut to)
        } else {
            std::fs::File::open(f).and_then(|mut from| std::io::copy(&mut from, &mut to))
        };
        copied.with_context(|| format!("copying {} to {}", f.display(), copy.display()))?;
        names.push((copy.display().to_string(), f.display().to_string()));
        out.push(copy);
    }
    Ok((
        out,
        Spooled {
            _dir: Some(dir),
            names,
        },
    ))
}

/// The copies [`stdin_to_file`] made: removed on drop, and named in messages as they were
/// given (`-`, `/dev/fd/63`), not by the temporary file's path.
#[derive(Default)]
struct Spooled {
    _dir: Option<tempfile::TempDir>,
    /// (copy, name given).
    names: Vec<(String, String)>,
}

impl Spooled {
    /// `text` with each copy's path put back to the name it was given as.
    fn named(&self, text: &str) -> String {
        let mut t = text.to_string();
        for (copy, given) in &self.names {
            t = t.replace(copy, given);
        }
        t
    }
    /// A backup error of the chain's check, naming the files as given, with its exit code.
    fn error(&self, e: ectable_backup::Error) -> anyhow::Error {
        let e = anyhow::Error::new(e);
        crate::coded!(crate::exit::code_of(&e), "{}", self.named(&e.to_string()))
    }
}

/// `ectable backup-verify`.
pub fn verify(a: &VerifyArgs) -> Result<i32> {
    let bar = ByteProgress::new("backup-verify");
    let (files, spooled) = stdin_to_file(&a.files)?;
    let chain = verify_chain(&files, &mut |d, t| bar.update_bytes(d, t)).map_err(|e| {
        use ectable_backup::Error as B;
        match e {
            // What backup-verify is asked: the answer is no (exit 1), naming the problem.
            B::Corrupt { .. } | B::Incomplete { .. } | B::Chain { .. } => {
                crate::coded!(crate::exit::NO, "{}", spooled.named(&e.to_string()))
            }
            e => spooled.error(e),
        }
    })?;
    bar.finish();
    if a.json {
        println!(
            "{}",
            json!({
                "schema_version": 1,
                "ok": true,
                "array_id": uuid_text(&chain.array_id()),
                "full_lsn": chain.full_lsn(),
                "end_lsn": chain.end_lsn(),
                "files": chain.files.iter().map(|f| {
                    let given = PathBuf::from(spooled.named(&f.path.display().to_string()));
                    manifest_json(&given, &f.manifest)
                }).collect::<Vec<_>>(),
            })
        );
    } else {
        for f in &chain.files {
            let line = manifest_line(&f.path, &f.manifest);
            println!("{}: OK", spooled.named(&line));
        }
        println!(
            "chain OK: {} file(s), every checksum and link verified; restores LSN {} up to LSN {}",
            chain.files.len(),
            chain.full_lsn(),
            chain.end_lsn()
        );
    }
    Ok(0)
}

/// Opens the array for a backup: writable, so that the backup is recorded as the base of
/// incremental ones; when the array cannot take a write now (its writes stop: a full file
/// system under sparse member files, devices failing), read-only instead, with a warning:
/// the backup is then whole but not recorded. That is when a backup matters most.
fn open_for_backup(kind: BackendKind, devices: &str) -> Result<Engine> {
    let paths = split_devices(devices)?;
    let io = open_devices(&paths, None, false, kind)?;
    let err = match Engine::open(io, crate::deadline::engine_options(false)) {
        Ok(e) => return Ok(e),
        Err(e) => e,
    };
    let write_failed = matches!(
        err,
        ectable_engine::Error::Device(_)
            | ectable_engine::Error::PreviousIo(_)
            | ectable_engine::Error::WriteFailed { .. }
            | ectable_engine::Error::TooFewDevices { .. }
    );
    if !write_failed {
        return Err(anyhow::Error::from(err).context("opening the array"));
    }
    let io = open_devices(&paths, None, true, kind)?;
    let engine = match Engine::open(io, crate::deadline::engine_options(true)) {
        Ok(e) => e,
        // The read-only open failed too: the writable open's error is the one to report.
        Err(_) => return Err(anyhow::Error::from(err).context("opening the array")),
    };
    tracing::warn!(
        "the array cannot take writes now ({err}); backing up from a read-only open: the \
         backup is whole, but not recorded as the base of incremental backups"
    );
    Ok(engine)
}

/// Whether the devices may be formatted for a restore: blank devices, or devices holding an
/// unfinished restore; any other array only with `--force`. Returns the note of an
/// unfinished restore found.
fn check_devices(kind: BackendKind, paths: &[PathBuf], a: &RestoreArgs) -> Result<Option<String>> {
    let mut formatted: Vec<(PathBuf, String)> = Vec::new();
    for p in paths {
        if !p.exists() {
            if a.create_size.is_none() {
                crate::fail!(
                    crate::exit::NO_INPUT,
                    "{}: no such device or file (give --create-size to create it)",
                    p.display()
                );
            }
            continue;
        }
        if let Some(array) = crate::cmd::examine::probe_path(p)? {
            formatted.push((p.clone(), array));
        }
    }
    let Some((first, array)) = formatted.first() else {
        return Ok(None);
    };
    let existing: Vec<PathBuf> = paths.iter().filter(|p| p.exists()).cloned().collect();
    let unfinished = open_devices(&existing, None, true, kind)
        .ok()
        .and_then(|io| {
            let e = Engine::open(
                io,
                EngineOptions {
                    allow_incomplete_restore: true,
                    ..crate::deadline::engine_options(true)
                },
            )
            .ok()?;
            e.restore_in_progress().ok().flatten()
        });
    if let Some(note) = unfinished {
        return Ok(Some(note));
    }
    if !a.force {
        crate::fail!(
            crate::exit::CONFIG,
            "{}: already holds an ectable array ({array}); use --force to overwrite it",
            first.display()
        );
    }
    if term::should_ask(a.yes) {
        term::confirm(&format!(
            "Restore onto {} device(s), destroying the ectable array on them?",
            paths.len()
        ))?;
    }
    Ok(None)
}

fn note_of(chain: &Chain, until: u64) -> String {
    let name = |p: &Path| {
        p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    format!(
        "at unix time {}: restore of {} and {} incremental(s) up to LSN {until}",
        now_unix_secs(),
        name(&chain.files[0].path),
        chain.files.len() - 1
    )
}

/// `ectable restore`.
pub fn restore(kind: BackendKind, a: &RestoreArgs) -> Result<i32> {
    let paths = split_devices(&a.devices)?;
    // Before the chain is read and checked: that can take minutes.
    crate::node::client::refuse_if_served(
        &crate::cmd::common::DevicesArg {
            devices: a.devices.clone(),
        },
        "stop the node before restoring onto its devices",
    )?;
    if a.k == 0 || a.m == 0 {
        crate::fail!(
            crate::exit::USAGE,
            "--k and --m must both be at least 1 (got k={}, m={})",
            a.k,
            a.m
        );
    }
    if paths.len() < a.k + a.m {
        crate::fail!(
            crate::exit::USAGE,
            "RS({},{}) needs at least {} devices, {} given",
            a.k,
            a.m,
            a.k + a.m,
            paths.len()
        );
    }
    let chunk = u32::try_from(a.chunk_size)
        .ok()
        .filter(|c| Layout::check_chunk_size(*c).is_ok())
        .ok_or_else(|| {
            crate::coded!(
                crate::exit::USAGE,
                "--chunk-size must be a multiple of 4K between 4K and 4M, got {}",
                a.chunk_size
            )
        })?;
    let segment = match a.segment_size {
        // 0 would mean "the default" to the engine: a user's 0 is a mistake, not a choice.
        Some(0) => crate::fail!(crate::exit::USAGE,
            "--segment-size 0: a segment must hold at least one chunk after its 4K header; leave --segment-size out for the default"
        ),
        Some(s) => u32::try_from(s).map_err(|_| crate::coded!(crate::exit::USAGE, "--segment-size too large"))?,
        None => 0,
    };
    let layout = Layout::new(a.k, a.m, chunk, segment)?;
    // 1. The devices (cheap, and may ask), then the whole chain, before anything is written.
    let unfinished = check_devices(kind, &paths, a)?;
    let bar = ByteProgress::new("restore: verifying the chain");
    let (from, spooled) = stdin_to_file(&a.from)?;
    let chain =
        verify_chain(&from, &mut |d, t| bar.update_bytes(d, t)).map_err(|e| spooled.error(e))?;
    bar.finish();
    let until = a.until_lsn.unwrap_or_else(|| chain.end_lsn());
    chain.check_until(until)?;
    let stripe_bytes = layout.largest_record();
    if chain.largest_record_bytes() as usize > stripe_bytes {
        crate::fail!(crate::exit::USAGE,
            "the backup holds a record of {} bytes, but RS({},{}) with {} KiB chunks holds {} bytes per stripe: choose a larger --chunk-size or --k",
            chain.largest_record_bytes(),
            a.k,
            a.m,
            chunk / 1024,
            stripe_bytes
        );
    }
    if let Some(note) = &unfinished {
        eprintln!(
            "restore: the devices hold an unfinished restore (started {note}); starting it over"
        );
    }
    // 2. Format, then restore under the engine's marker.
    let (io, created) = open_for_format(&paths, a.create_size, kind)?;
    if a.preallocate {
        crate::preallocate(&paths)?;
    }
    let opts = FormatOptions {
        data_shards: a.k,
        parity_shards: a.m,
        chunk_size_bytes: chunk,
        segment_size_bytes: segment,
        force: a.force || unfinished.is_some(),
        spare_count: 0,
        sync_journal: true,
        inline_values: a.inline_values,
        wide_records: false,
        whole_records: false,
    };
    format(io.as_ref(), &opts).context("formatting the devices")?;
    created.keep();
    let engine = Engine::open(
        io,
        EngineOptions {
            allow_incomplete_restore: true,
            ..crate::deadline::engine_options(false)
        },
    )
    .context("opening the new array")?;
    let new_array = engine.status().array_uuid;
    let start = std::time::Instant::now();
    let bar = ByteProgress::new("restore");
    let rate = a.rate;
    let report = restore_chain(&engine, &chain, until, &note_of(&chain, until), &mut |d, t| {
        bar.update_bytes(d, t);
        if rate > 0 {
            let due = std::time::Duration::from_secs_f64(d as f64 / rate as f64);
            let elapsed = start.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
    })
    .map_err(|e| {
        anyhow!(e).context("restore failed; the array stays marked as an unfinished restore until a restore completes")
    })?;
    bar.finish();
    engine.close()?;
    let secs = start.elapsed().as_secs_f64().max(1e-3);
    if a.json {
        println!(
            "{}",
            json!({
                "schema_version": 1,
                "array_id": new_array,
                "source_array_id": uuid_text(&chain.array_id()),
                "k": a.k,
                "m": a.m,
                "until_lsn": until,
                "rows": report.rows,
                "puts": report.puts,
                "deletes": report.deletes,
                "incrementals_applied": report.incrementals_applied,
                "bytes_read": report.bytes_read,
                "seconds": secs,
            })
        );
    } else {
        // --until-lsn may end the restore before the chain's last files.
        let used = 1 + report.incrementals_applied;
        let files = if used < chain.files.len() {
            format!("{used} of the {} file(s) given", chain.files.len())
        } else {
            format!("{} file(s)", chain.files.len())
        };
        println!(
            "restored array {new_array} (RS({},{})) from {files} up to LSN {until}: {} rows, then {} puts and {} deletes from {} incremental(s); {} read in {secs:.1} s",
            a.k,
            a.m,
            report.rows,
            report.puts,
            report.deletes,
            report.incrementals_applied,
            term::bytes(report.bytes_read)
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: BackupArgs,
    }

    #[test]
    fn policy_flags_need_auto_and_to_excludes_auto() {
        let ok = |v: &[&str]| Wrap::try_parse_from(v).is_ok();
        assert!(ok(&["x", "--devices", "d", "--to", "f"]));
        assert!(ok(&[
            "x",
            "--devices",
            "d",
            "--auto",
            "dir",
            "--full-every",
            "3"
        ]));
        assert!(!ok(&[
            "x",
            "--devices",
            "d",
            "--to",
            "f",
            "--full-every",
            "3"
        ]));
        assert!(!ok(&["x", "--devices", "d", "--auto", "dir", "--to", "f"]));
        assert!(!ok(&[
            "x",
            "--devices",
            "d",
            "--auto",
            "dir",
            "--incremental-from",
            "f"
        ]));
        assert!(!ok(&["x", "--devices", "d"]));
    }
}
