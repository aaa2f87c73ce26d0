//! Taking backups: a full backup streams the engine's image at one LSN into a file; an
//! incremental streams the changes after its base's end LSN. Both register their end LSN
//! with the engine (the backup horizon), and both write `NAME.partial`, fsync it and rename
//! it to `NAME`, so the name only ever holds a complete backup.
//!
//! Invariants:
//! - Nothing is written under the final name before the trailer is on disk (fsync of the
//!   file, rename, fsync of the directory).
//! - A failed backup removes its partial file; a killed one leaves `NAME.partial`, which has
//!   no trailer and is refused by every reader.
//! - An incremental is taken only after its base's header and trailer were checked and its
//!   array id matched this array's.

use crate::format::{
    block_payload_limit, read_header_and_trailer, BackupKind, Header, Manifest, Writer,
};
use crate::{now_unix_secs, parse_uuid, uuid_text, Error, Result};
use ectable_engine::Engine;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How a backup is taken.
#[derive(Default)]
pub struct TakeOptions<'a> {
    /// Bytes per second written to the backup file, at most (0: unlimited).
    pub rate_bytes_per_sec: u64,
    /// Called with (bytes written, bytes expected) now and then.
    pub progress: Option<&'a mut dyn FnMut(u64, u64)>,
    /// Set (by another thread: a node that is stopping) to stop the backup between rows:
    /// the take ends with [`Error::Stopped`], and the file being written is removed.
    pub cancel: Option<&'a std::sync::atomic::AtomicBool>,
}

/// The sink's error when the take is stopped (`TakeOptions::cancel`), turned into
/// [`Error::Stopped`] once the engine hands it back.
#[derive(Debug, thiserror::Error)]
#[error("the backup was stopped")]
struct StoppedMark;

/// A file written as `NAME.partial` and renamed to `NAME` once complete and durable.
pub(crate) struct AtomicFile {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// The temporary name of `target`.
    pub(crate) fn partial_name(target: &Path) -> PathBuf {
        let mut name = target.as_os_str().to_os_string();
        name.push(".partial");
        PathBuf::from(name)
    }

    /// Creates `NAME.partial` (replacing a stale one); refuses an existing `NAME`.
    pub(crate) fn create(target: &Path) -> Result<(AtomicFile, File)> {
        if target.exists() {
            return Err(Error::AlreadyExists {
                path: target.to_path_buf(),
            });
        }
        let tmp = Self::partial_name(target);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, 0, e))?;
        Ok((
            AtomicFile {
                tmp,
                target: target.to_path_buf(),
                committed: false,
            },
            file,
        ))
    }

    /// Makes the file durable and gives it its final name.
    pub(crate) fn commit(mut self, file: File) -> Result<()> {
        file.sync_all().map_err(|e| Error::io(&self.tmp, 0, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.target).map_err(|e| Error::io(&self.target, 0, e))?;
        sync_dir(&self.target)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// fsyncs the directory holding `path`, so that a rename or unlink in it is durable.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let d = File::open(&dir).map_err(|e| Error::io(&dir, 0, e))?;
    d.sync_all().map_err(|e| Error::io(&dir, 0, e))
}

/// The array's id as bytes.
fn array_id(engine: &Engine) -> Result<[u8; 16]> {
    let text = engine.status().array_uuid;
    parse_uuid(&text).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "the engine reported an array id that is not a uuid: {text}"
        ))
    })
}

/// Paces writing to a rate, and reports progress.
struct Pace<'a, 'b> {
    opts: &'a mut TakeOptions<'b>,
    start: Instant,
    expected_bytes: u64,
    last_report: u64,
}

impl Pace<'_, '_> {
    fn stopped(&self) -> bool {
        self.opts
            .cancel
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// After each row: reports, paces, and fails the sink with `StoppedMark` when the take
    /// is to stop (also in the middle of a pause for the rate).
    fn tick(&mut self, written: u64) -> std::result::Result<(), ectable_engine::Error> {
        let stop = || Err(ectable_engine::Error::callback(StoppedMark));
        if self.stopped() {
            return stop();
        }
        if written < self.last_report + (1 << 20) {
            return Ok(());
        }
        self.last_report = written;
        if let Some(p) = self.opts.progress.as_mut() {
            p(written, self.expected_bytes.max(written));
        }
        let rate = self.opts.rate_bytes_per_sec;
        if rate > 0 {
            let due = std::time::Duration::from_secs_f64(written as f64 / rate as f64);
            while let Some(left) = due.checked_sub(self.start.elapsed()) {
                if self.stopped() {
                    return stop();
                }
                std::thread::sleep(left.min(std::time::Duration::from_millis(100)));
            }
        }
        Ok(())
    }

    fn done(&mut self, written: u64) {
        if let Some(p) = self.opts.progress.as_mut() {
            p(written, written);
        }
    }
}

/// Takes a full backup of every table into `target` (which must not exist). Registers the
/// backup's LSN as the array's backup horizon.
pub fn take_full(engine: &Engine, target: &Path, opts: &mut TakeOptions<'_>) -> Result<Manifest> {
    // About the live data, refused before it is read when the target's file system lacks
    // that room, rather than after writing as much as fits (a nightly job on a disk that
    // filled up would otherwise spend its night on it).
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let needed = engine.status().live_bytes;
    if let Some(free) = ectable_devices::free_bytes_under(dir).filter(|&f| f < needed) {
        return Err(Error::Io {
            path: target.to_path_buf(),
            offset_bytes: 0,
            source: std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "a full backup needs about {:.1} MiB (the live data) and the file system \
                     of {} has {:.1} MiB free: give it room or back up elsewhere",
                    needed as f64 / 1048576.0,
                    dir.display(),
                    free as f64 / 1048576.0
                ),
            ),
        });
    }
    let (guard, file) = AtomicFile::create(target)?;
    let tmp = guard.tmp.clone();
    let (out, manifest) =
        take_full_to(engine, BufWriter::with_capacity(1 << 20, file), &tmp, opts)?;
    let file = out
        .into_inner()
        .map_err(|e| Error::io(&tmp, manifest.file_size_bytes, e.into_error()))?;
    guard.commit(file)?;
    Ok(manifest)
}

/// A full backup written to `out` (a pipe, stdout): the same bytes as [`take_full`] writes
/// to its file, without the file's atomic rename and fsync, which are the reader's to do
/// (a consumer that stops early is told by the missing trailer: `Error::Incomplete`).
/// `name` names the output in errors. Returns the writer, flushed, and the manifest.
pub fn take_full_to<W: Write>(
    engine: &Engine,
    out: W,
    name: &Path,
    opts: &mut TakeOptions<'_>,
) -> Result<(W, Manifest)> {
    let backup_id = ectable_engine::new_uuid();
    let header = Header {
        kind: BackupKind::Full,
        array_id: array_id(engine)?,
        backup_id,
        base_backup_id: [0; 16],
        chain_id: backup_id,
        chain_index: 0,
        block_payload_limit_bytes: block_payload_limit(engine.max_batch_bytes()),
        start_lsn: 0,
        created_unix_secs: now_unix_secs(),
    };
    let expected = engine.status().live_bytes;
    let mut w = Writer::new(out, header).map_err(|e| Error::io(name, 0, e))?;
    let mut pace = Pace {
        opts,
        start: Instant::now(),
        expected_bytes: expected,
        last_report: 0,
    };
    // A write error of the file comes back through the engine as the sink's own error.
    let result = engine.backup_full(!engine.is_read_only(), &mut |table, key, value| {
        w.push_row(table, key, value)
            .map_err(ectable_engine::Error::callback)?;
        pace.tick(w.written_bytes())
    });
    let lsn = result.map_err(|e| match e {
        ectable_engine::Error::Callback(e) => sink_error(name, w.written_bytes(), e),
        e => Error::engine("taking the full backup", e),
    })?;
    let written = w.written_bytes();
    let (mut out, manifest) = w.finish(lsn).map_err(|e| Error::io(name, written, e))?;
    out.flush()
        .map_err(|e| Error::io(name, manifest.file_size_bytes, e))?;
    pace.done(manifest.file_size_bytes);
    Ok((out, manifest))
}

/// Takes an incremental backup into `target` (which must not exist): every put and delete
/// after the end LSN of `base`, the chain's last file. Raises the array's backup horizon to
/// the backup's LSN. Fails with [`Error::HistoryGone`] when the array no longer keeps that
/// history (take a full backup then) and [`Error::Chain`] when `base` is of another array.
pub fn take_incremental(
    engine: &Engine,
    base: &Path,
    target: &Path,
    opts: &mut TakeOptions<'_>,
) -> Result<Manifest> {
    // The base is read (and refused) before the target is created.
    read_header_and_trailer(base)?;
    let (guard, file) = AtomicFile::create(target)?;
    let tmp = guard.tmp.clone();
    let (out, manifest) = take_incremental_to(
        engine,
        base,
        BufWriter::with_capacity(1 << 20, file),
        &tmp,
        opts,
    )?;
    let file = out
        .into_inner()
        .map_err(|e| Error::io(&tmp, manifest.file_size_bytes, e.into_error()))?;
    guard.commit(file)?;
    Ok(manifest)
}

/// An incremental backup after `base` written to `out` (see [`take_full_to`]).
pub fn take_incremental_to<W: Write>(
    engine: &Engine,
    base: &Path,
    out: W,
    name: &Path,
    opts: &mut TakeOptions<'_>,
) -> Result<(W, Manifest)> {
    let (_, prev) = read_header_and_trailer(base)?;
    let id = array_id(engine)?;
    if prev.array_id != id {
        return Err(Error::chain(
            base,
            16,
            format!(
                "it is a backup of array {}, not of this array ({}); take a full backup",
                uuid_text(&prev.array_id),
                uuid_text(&id)
            ),
        ));
    }
    let chain_index = prev.chain_index.checked_add(1).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{}: the chain is too long; take a full backup",
            base.display()
        ))
    })?;
    let header = Header {
        kind: BackupKind::Incremental,
        array_id: id,
        backup_id: ectable_engine::new_uuid(),
        base_backup_id: prev.backup_id,
        chain_id: prev.chain_id,
        chain_index,
        block_payload_limit_bytes: block_payload_limit(engine.max_batch_bytes()),
        start_lsn: prev.end_lsn,
        created_unix_secs: now_unix_secs(),
    };
    let mut w = Writer::new(out, header).map_err(|e| Error::io(name, 0, e))?;
    let mut pace = Pace {
        opts,
        start: Instant::now(),
        expected_bytes: 0,
        last_report: 0,
    };
    let result = engine.backup_changes(prev.end_lsn, !engine.is_read_only(), &mut |c| {
        w.push_change(c).map_err(ectable_engine::Error::callback)?;
        pace.tick(w.written_bytes())
    });
    let end = result.map_err(|e| match e {
        ectable_engine::Error::Callback(e) => sink_error(name, w.written_bytes(), e),
        ectable_engine::Error::HistoryGone { from_lsn, why } => Error::HistoryGone {
            base: base.to_path_buf(),
            base_end_lsn: prev.end_lsn,
            from_lsn,
            why,
        },
        e => Error::engine(
            format!(
                "incremental backup after {} (which ends at LSN {})",
                base.display(),
                prev.end_lsn
            ),
            e,
        ),
    })?;
    if end < prev.end_lsn {
        // Only a base from another history under this array's id could say so.
        return Err(Error::chain(
            base,
            0,
            format!(
                "it ends at LSN {}, after this array's last durable LSN {end}; take a full backup",
                prev.end_lsn
            ),
        ));
    }
    let written = w.written_bytes();
    let (mut out, manifest) = w.finish(end).map_err(|e| Error::io(name, written, e))?;
    out.flush()
        .map_err(|e| Error::io(name, manifest.file_size_bytes, e))?;
    pace.done(manifest.file_size_bytes);
    Ok((out, manifest))
}

/// The error a sink returned through the engine: the take was stopped, or (anything else)
/// an I/O error at `written` bytes of `name`.
fn sink_error(name: &Path, written: u64, e: Box<dyn std::error::Error + Send + Sync>) -> Error {
    if e.is::<StoppedMark>() {
        return Error::Stopped {
            path: name.to_path_buf(),
            written_bytes: written,
        };
    }
    Error::io(name, written, io_of(e))
}

/// The I/O error a sink returned through the engine (anything else, as an I/O error).
fn io_of(e: Box<dyn std::error::Error + Send + Sync>) -> std::io::Error {
    match e.downcast::<std::io::Error>() {
        Ok(io) => *io,
        Err(other) => std::io::Error::other(other),
    }
}
