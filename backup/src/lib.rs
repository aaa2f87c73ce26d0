//! ectable-backup: backups and restores of an ectable array, as a library (issue 7). Full
//! backups (every row of every table as of one LSN, taken while writes go on), incremental
//! backups (every put and delete after the previous backup's end LSN), a hybrid policy that
//! picks one or the other and prunes old chains, verification of a chain without restoring
//! it, and restore onto fresh devices of any geometry. The file format is in
//! docs/backup-format.md; the engine side (the image at an LSN, the changes after one, the
//! backup horizon, the restore marker) is `ectable_engine::backup`. The `ectable backup`,
//! `backup-verify` and `restore` commands (docs/operations.md) are a thin layer over this
//! crate.
//!
//! Every function returns the typed [`Error`]; none prints. Long operations report progress
//! through a callback the caller supplies, `FnMut(done_bytes, total_bytes)`
//! ([`TakeOptions::progress`], the `progress` argument of [`verify_chain`] and
//! [`restore_chain`]).
//!
//! Invariants:
//! - A backup file appears under its final name only once it is complete and fsynced (it is
//!   written as `NAME.partial`, then renamed); and even a partial file is never taken for a
//!   backup, because only a valid trailer at its very end makes a file complete.
//! - Every backup registers its end LSN with the engine (the backup horizon), so the array
//!   keeps the history the next incremental needs.
//! - A restore reads and checks the whole chain (every block checksum of every file, every
//!   trailer, every link between files) before it writes anything to the devices; while
//!   it writes, the array carries the engine's restore marker, so an interrupted restore
//!   leaves an array that refuses to open until the restore is run again.
//! - Everything read from a backup file is checked before it is used; a damaged or
//!   mismatched file gives an [`Error`] naming the file and the byte offset, never a panic.
//!
//! Taking a full backup of an open array and restoring it onto fresh devices:
//!
//! ```no_run
//! use ectable_backup::{restore_chain, take_full, verify_chain, TakeOptions};
//! use ectable_devices::{open_backend, BackendKind, BlockDevice, FileDevice, IoBackend};
//! use ectable_engine::{format, Engine, EngineOptions, FormatOptions};
//! use std::error::Error;
//! use std::path::{Path, PathBuf};
//! use std::sync::Arc;
//!
//! /// Six file-backed devices `{prefix}0.img` .. `{prefix}5.img`, created when missing.
//! fn devices(prefix: &str) -> Result<Arc<dyn IoBackend>, Box<dyn Error>> {
//!     let opts = ectable_devices::OpenOptions {
//!         create_size_bytes: Some(256 << 20),
//!         ..Default::default()
//!     };
//!     let mut devs: Vec<Arc<dyn BlockDevice>> = Vec::new();
//!     for i in 0..6 {
//!         let path = PathBuf::from(format!("{prefix}{i}.img"));
//!         devs.push(Arc::new(FileDevice::open(&path, &opts)?));
//!     }
//!     Ok(open_backend(BackendKind::Auto, devs)?)
//! }
//!
//! # fn main() -> Result<(), Box<dyn Error>> {
//! // The array to back up; writes may go on while the backup is taken.
//! let engine = Engine::open(devices("data")?, EngineOptions::default())?;
//! let full = Path::new("full.ectb");
//! let manifest = take_full(&engine, full, &mut TakeOptions::default())?;
//! println!("{} rows as of LSN {}", manifest.record_count, manifest.end_lsn);
//!
//! // Check the whole chain (here the full backup alone), then restore it onto a new array.
//! let chain = verify_chain(&[full.to_path_buf()], &mut |_, _| {})?;
//! let io = devices("restored")?;
//! format(io.as_ref(), &FormatOptions::default())?;
//! let target = Engine::open(io, EngineOptions::default())?;
//! let until = chain.end_lsn();
//! let report = restore_chain(&target, &chain, until, "restore of full.ectb", &mut |done, total| {
//!     eprintln!("restore: {done} of {total} bytes");
//! })?;
//! println!("restored {} rows up to LSN {until}", report.rows);
//! target.close()?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod auto;
pub mod chain;
mod error;
pub mod format;
pub mod take;

pub use auto::{take_auto, AutoOutcome, AutoPolicy};
pub use chain::{read_manifest, restore_chain, verify_chain, Chain, ChainFile, RestoreReport};
pub use ectable_engine::Change;
pub use error::{Error, Result};
pub use format::{BackupKind, Entry, Header, Manifest, Reader, Writer};
pub use take::{take_full, take_full_to, take_incremental, take_incremental_to, TakeOptions};

/// Parses a uuid as `uuid_string` prints it (32 hex digits, dashes anywhere).
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// A uuid as text.
pub fn uuid_text(u: &[u8; 16]) -> String {
    ectable_engine::uuid_string(u)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_round_trip_through_text() {
        let u = ectable_engine::new_uuid();
        assert_eq!(parse_uuid(&uuid_text(&u)), Some(u));
        assert_eq!(parse_uuid("not-a-uuid"), None);
        assert_eq!(parse_uuid(&"zz".repeat(16)), None);
    }
}
