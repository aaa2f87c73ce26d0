//! Chains: a full backup and the incrementals after it, in order. Verifying a chain reads
//! every file to its end (every block checksum, the trailer) and checks each file's link to
//! the one before it; restoring a chain writes its rows and then its changes, up to an LSN,
//! into an engine.
//!
//! Invariants:
//! - A chain starts with a full backup; file i + 1 is an incremental of the same array and
//!   chain, whose base is file i (backup id), whose chain index is one more, and whose start
//!   LSN is file i's end LSN. So a missing, repeated or reordered file, or one of another
//!   array or chain, breaks the chain at a named file and offset.
//! - [`restore_chain`] writes nothing unless its chain was verified; it reads every file
//!   again, checks every block again before applying its records, and checks each file is
//!   still the one verified.
//! - The restore marker is set before the first row is written and cleared only after the
//!   last one is durable.

use crate::format::{read_header_and_trailer, BackupKind, Entry, Header, Manifest, Reader};
use crate::{uuid_text, Error, Result};
use ectable_engine::encoded_len_padded;
use ectable_engine::{Engine, WriteBatch};
use std::path::{Path, PathBuf};

/// Offsets of the header fields a chain check names.
const AT_KIND: u64 = 10;
const AT_ARRAY_ID: u64 = 16;
const AT_BASE_ID: u64 = 48;
const AT_CHAIN_ID: u64 = 64;
const AT_CHAIN_INDEX: u64 = 80;
const AT_START_LSN: u64 = 88;

/// One verified file of a chain.
#[derive(Debug, Clone)]
pub struct ChainFile {
    /// The file.
    pub path: PathBuf,
    /// When the backup started, in seconds since the Unix epoch (from its header).
    pub created_unix_secs: u64,
    /// Its manifest (what its trailer says).
    pub manifest: Manifest,
}

/// A verified chain: a full backup and its incrementals, in order.
#[derive(Debug, Clone)]
pub struct Chain {
    /// The full backup first, then its incrementals in chain order.
    pub files: Vec<ChainFile>,
}

impl Chain {
    /// The full backup's LSN: the earliest state the chain restores.
    pub fn full_lsn(&self) -> u64 {
        self.files[0].manifest.end_lsn
    }

    /// The last file's end LSN: the latest state the chain restores.
    pub fn end_lsn(&self) -> u64 {
        self.files[self.files.len() - 1].manifest.end_lsn
    }

    /// The id of the array the chain is a backup of.
    pub fn array_id(&self) -> [u8; 16] {
        self.files[0].manifest.array_id
    }

    /// The largest record (as the engine stores it) of any file.
    pub fn largest_record_bytes(&self) -> u32 {
        self.files
            .iter()
            .map(|f| f.manifest.largest_record_bytes)
            .max()
            .unwrap_or(0)
    }

    /// The size of all the chain's files together, in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.manifest.file_size_bytes).sum()
    }

    /// Checks that `until` lies within the chain: from the full backup's LSN to the end.
    pub fn check_until(&self, until: u64) -> Result<()> {
        let (lo, hi) = (self.full_lsn(), self.end_lsn());
        if until < lo || until > hi {
            return Err(Error::InvalidArgument(format!(
                "--until-lsn {until} is outside the chain: it restores LSN {lo} (the full backup {}) up to LSN {hi}",
                self.files[0].path.display()
            )));
        }
        Ok(())
    }
}

/// Reads a complete backup's manifest from its header and trailer (without checking its
/// blocks).
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    read_header_and_trailer(path).map(|(_, m)| m)
}

fn chain_error(path: &Path, offset_bytes: u64, detail: String) -> Error {
    Error::chain(path, offset_bytes, detail)
}

/// Checks that the header of `path` follows the files already verified.
fn check_link(path: &Path, h: &Header, before: &[ChainFile]) -> Result<()> {
    let Some(full) = before.first() else {
        if h.kind != BackupKind::Full {
            return Err(chain_error(
                path,
                AT_KIND,
                format!(
                    "is incremental backup number {} of its chain; a chain must be given from its full backup on",
                    h.chain_index
                ),
            ));
        }
        return Ok(());
    };
    let prev = &before[before.len() - 1];
    let (fm, pm) = (&full.manifest, &prev.manifest);
    if h.kind != BackupKind::Incremental {
        return Err(chain_error(
            path,
            AT_KIND,
            format!(
                "is a full backup, but only the first file of a chain may be one (the chain of {} is already started)",
                full.path.display()
            ),
        ));
    }
    if h.array_id != fm.array_id {
        return Err(chain_error(
            path,
            AT_ARRAY_ID,
            format!(
                "is a backup of array {}, but the chain's full backup {} is of array {}",
                uuid_text(&h.array_id),
                full.path.display(),
                uuid_text(&fm.array_id)
            ),
        ));
    }
    if h.chain_id != fm.backup_id {
        return Err(chain_error(
            path,
            AT_CHAIN_ID,
            format!(
                "belongs to the chain of full backup {}, not to the chain of {} (backup {})",
                uuid_text(&h.chain_id),
                full.path.display(),
                uuid_text(&fm.backup_id)
            ),
        ));
    }
    if h.base_backup_id != pm.backup_id {
        return Err(chain_error(
            path,
            AT_BASE_ID,
            format!(
                "follows backup {} (number {} of its chain), but the file before it, {}, is backup {} (number {}): an incremental is missing from the list, or the files are out of order",
                uuid_text(&h.base_backup_id),
                h.chain_index.saturating_sub(1),
                prev.path.display(),
                uuid_text(&pm.backup_id),
                pm.chain_index
            ),
        ));
    }
    if h.chain_index != pm.chain_index + 1 {
        return Err(chain_error(
            path,
            AT_CHAIN_INDEX,
            format!(
                "is number {} of its chain, but follows number {}",
                h.chain_index, pm.chain_index
            ),
        ));
    }
    if h.start_lsn != pm.end_lsn {
        return Err(chain_error(
            path,
            AT_START_LSN,
            format!(
                "starts after LSN {}, but its base {} ends at LSN {}",
                h.start_lsn,
                prev.path.display(),
                pm.end_lsn
            ),
        ));
    }
    Ok(())
}

/// Verifies a chain without restoring it: every file read to its end (every block checksum,
/// record order, the trailer against everything read) and every link. `progress` gets
/// (bytes read, bytes in all files).
pub fn verify_chain(paths: &[PathBuf], progress: &mut dyn FnMut(u64, u64)) -> Result<Chain> {
    if paths.is_empty() {
        return Err(Error::InvalidArgument("no backup files given".into()));
    }
    let mut total = 0u64;
    for p in paths {
        total += std::fs::metadata(p).map_err(|e| Error::io(p, 0, e))?.len();
    }
    let mut files: Vec<ChainFile> = Vec::with_capacity(paths.len());
    let mut done = 0u64;
    for p in paths {
        let mut r = Reader::open(p)?;
        check_link(p, r.header(), &files)?;
        let created_unix_secs = r.header().created_unix_secs;
        let manifest = r.verify_to_end(&mut |pos| progress(done + pos, total))?;
        done += r.file_size();
        files.push(ChainFile {
            path: p.clone(),
            created_unix_secs,
            manifest,
        });
    }
    Ok(Chain { files })
}

/// What a restore wrote.
#[derive(Debug, Clone, Default)]
pub struct RestoreReport {
    /// Rows written from the full backup.
    pub rows: u64,
    /// Puts replayed from the incrementals.
    pub puts: u64,
    /// Deletes replayed from the incrementals.
    pub deletes: u64,
    /// Incremental files whose changes were applied (wholly or up to the until-LSN).
    pub incrementals_applied: usize,
    /// The LSN the array was restored to.
    pub until_lsn: u64,
    /// Bytes of the backup files read (each file counted whole).
    pub bytes_read: u64,
}

/// Groups mutations into batches that each fit one stripe.
struct Batcher<'e> {
    engine: &'e Engine,
    limit: usize,
    batch: WriteBatch,
    bytes: usize,
}

impl Batcher<'_> {
    fn add(
        &mut self,
        table: &str,
        key: &[u8],
        value: Option<&[u8]>,
        what: &dyn Fn() -> String,
    ) -> Result<()> {
        let size = encoded_len_padded(table.len(), key.len(), value.map_or(0, <[u8]>::len));
        if size > self.limit {
            return Err(Error::InvalidArgument(format!(
                "{}: a record of {size} bytes does not fit this array's stripes ({} bytes at most): restore onto a geometry with larger stripes (--chunk-size, --k)",
                what(),
                self.limit
            )));
        }
        if self.bytes + size > self.limit {
            self.flush(what)?;
        }
        match value {
            Some(v) => self.batch.put(table, key, v),
            None => self.batch.delete(table, key),
        };
        self.bytes += size;
        Ok(())
    }

    fn flush(&mut self, what: &dyn Fn() -> String) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.engine
            .write_batch(&self.batch)
            .map_err(|e| Error::engine(format!("restoring {}", what()), e))?;
        self.batch = system_batch();
        self.bytes = 0;
        Ok(())
    }
}

/// A batch of restored rows: a backup holds the system tables' rows too (typed tables'
/// schemas), and a restore writes them back.
fn system_batch() -> WriteBatch {
    let mut b = WriteBatch::new();
    b.allow_system_tables();
    b
}

/// Restores a verified chain into `engine` (a freshly formatted array), up to `until_lsn`
/// (within [`Chain::check_until`]): sets the restore marker (with `note`), writes the full
/// backup's rows, applies the incrementals' changes with LSN <= `until_lsn` in order, makes
/// it durable and clears the marker. `progress` gets (bytes read, bytes to read).
pub fn restore_chain(
    engine: &Engine,
    chain: &Chain,
    until_lsn: u64,
    note: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RestoreReport> {
    chain.check_until(until_lsn)?;
    let limit = engine.max_batch_bytes();
    if chain.largest_record_bytes() as usize > limit {
        return Err(Error::InvalidArgument(format!(
            "the backup holds a record of {} bytes, but this array's stripes hold {} bytes at most: restore onto a geometry with larger stripes (--chunk-size, --k)",
            chain.largest_record_bytes(),
            limit
        )));
    }
    // The files read: the full one, and the incrementals that hold changes up to the LSN.
    let used: Vec<&ChainFile> = chain
        .files
        .iter()
        .filter(|f| f.manifest.kind == BackupKind::Full || f.manifest.start_lsn < until_lsn)
        .collect();
    let total: u64 = used.iter().map(|f| f.manifest.file_size_bytes).sum();
    engine
        .begin_restore(note)
        .map_err(|e| Error::engine("marking the restore as started", e))?;
    let mut report = RestoreReport {
        until_lsn,
        ..Default::default()
    };
    let mut b = Batcher {
        engine,
        limit,
        batch: system_batch(),
        bytes: 0,
    };
    let mut done = 0u64;
    let mut last_report = 0u64;
    for f in used {
        let mut r = Reader::open(&f.path)?;
        if r.header().backup_id != f.manifest.backup_id {
            return Err(Error::corrupt(
                &f.path,
                32,
                "the file changed since it was verified (another backup id)".into(),
            ));
        }
        let name = f.path.display().to_string();
        if f.manifest.kind == BackupKind::Incremental {
            report.incrementals_applied += 1;
        }
        loop {
            let at = r.position();
            let Some(entry) = r.next_entry()? else { break };
            let what = || format!("{name} (record at byte {at})");
            match entry {
                Entry::Row { table, key, value } => {
                    b.add(&table, &key, Some(&value), &what)?;
                    report.rows += 1;
                }
                Entry::Change(c) => {
                    if c.lsn > until_lsn {
                        break;
                    }
                    b.add(&c.table, &c.key, c.value.as_deref(), &what)?;
                    if c.value.is_some() {
                        report.puts += 1;
                    } else {
                        report.deletes += 1;
                    }
                }
            }
            let pos = done + r.position();
            if pos - last_report >= (1 << 20) {
                last_report = pos;
                progress(pos, total);
            }
        }
        // A file read to its end was checked against its trailer; it must be the one verified.
        if let Some(m) = r.manifest() {
            if *m != f.manifest {
                return Err(Error::corrupt(
                    &f.path,
                    m.file_size_bytes.saturating_sub(256),
                    "the file changed since it was verified (another trailer)".into(),
                ));
            }
        }
        b.flush(&|| name.clone())?;
        done += f.manifest.file_size_bytes;
        report.bytes_read = done;
    }
    progress(total, total);
    engine
        .sync()
        .map_err(|e| Error::engine("making the restored data durable", e))?;
    engine
        .finish_restore()
        .map_err(|e| Error::engine("clearing the restore marker", e))?;
    Ok(report)
}
