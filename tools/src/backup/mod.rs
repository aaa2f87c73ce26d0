//! Backups and restores of an array (issue 7): full backups (every row of every table as of
//! one LSN, taken while writes go on), incremental backups (every put and delete after the
//! previous backup's end LSN), a hybrid policy that picks one or the other and prunes old
//! chains, verification of a chain without restoring it, and restore onto fresh devices of
//! any geometry. The file format is in docs/backup-format.md; the engine side (the image at
//! an LSN, the changes after one, the backup horizon, the restore marker) is
//! `ectable_engine::backup`.
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
//!   mismatched file gives a [`BackupError`] naming the file and the byte offset, never a
//!   panic.

pub mod auto;
pub mod chain;
pub mod cli;
pub mod format;
pub mod progress;
pub mod take;

pub use auto::{take_auto, AutoOutcome, AutoPolicy};
pub use chain::{read_manifest, restore_chain, verify_chain, Chain, RestoreReport};
pub use format::{BackupKind, Entry, Header, Manifest, Reader, Writer};
pub use take::{take_full, take_incremental, TakeOptions};

/// What can go wrong with a backup file, a chain, or the work around them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The file could not be opened, created, read or written.
    #[error("{file}: at byte {offset_bytes}: {source}")]
    Io {
        file: String,
        offset_bytes: u64,
        source: std::io::Error,
    },
    /// Bytes that fail a checksum or break the format.
    #[error("{file}: at byte {offset_bytes}: {detail}")]
    Corrupt {
        file: String,
        offset_bytes: u64,
        detail: String,
    },
    /// The file ends before its trailer: an interrupted or truncated backup.
    #[error("{file}: at byte {offset_bytes}: incomplete backup: {detail}")]
    Incomplete {
        file: String,
        offset_bytes: u64,
        detail: String,
    },
    /// A file that is sound on its own but does not follow the file before it in the chain.
    #[error("{file}: at byte {offset_bytes}: broken chain: {detail}")]
    Chain {
        file: String,
        offset_bytes: u64,
        detail: String,
    },
    /// Bad arguments (until-LSN, policy numbers, a target that cannot hold the data).
    #[error("{0}")]
    Invalid(String),
    /// The engine refused (with its own typed error).
    #[error("{context}: {source}")]
    Engine {
        context: String,
        source: ectable_engine::Error,
    },
}

pub type Result<T, E = BackupError> = std::result::Result<T, E>;

impl BackupError {
    pub(crate) fn engine(context: impl Into<String>, source: ectable_engine::Error) -> Self {
        BackupError::Engine {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io(file: &std::path::Path, offset_bytes: u64, source: std::io::Error) -> Self {
        BackupError::Io {
            file: file.display().to_string(),
            offset_bytes,
            source,
        }
    }
}

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
    ectable_engine::format::uuid_string(u)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Bytes for people: `1.5 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_round_trip_through_text() {
        let u = ectable_engine::format::new_uuid();
        assert_eq!(parse_uuid(&uuid_text(&u)), Some(u));
        assert_eq!(parse_uuid("not-a-uuid"), None);
        assert_eq!(parse_uuid(&"zz".repeat(16)), None);
    }
}
