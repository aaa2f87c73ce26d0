//! The one error of the backup library: what failed, and where (the file and the byte offset
//! when a file is involved; the engine's own typed error when the engine refused).
//!
//! Invariants:
//! - Every variant that concerns a file names it, and a byte offset in it where the format
//!   knows one (docs/backup-format.md gives the offsets of every field).
//! - Errors of the engine are kept whole as the source of [`Error::Engine`], so a caller can
//!   match on `ectable_engine::Error`; the one a caller acts on, the engine's `HistoryGone`
//!   of an incremental backup, has its own variant, [`Error::HistoryGone`].

use std::path::{Path, PathBuf};

/// What can go wrong with a backup file, a chain, or the work around them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file (or directory) could not be opened, created, read, written, synced or renamed.
    #[error("{}: at byte {offset_bytes}: {source}", path.display())]
    Io {
        /// The file (or directory).
        path: PathBuf,
        /// Byte offset in the file where the operation was (0 when it concerns the whole
        /// file).
        offset_bytes: u64,
        /// The OS error.
        source: std::io::Error,
    },
    /// Bytes that fail a checksum or break the format.
    #[error("{}: at byte {offset_bytes}: {detail}", path.display())]
    Corrupt {
        /// The backup file.
        path: PathBuf,
        /// Byte offset of the bad structure or field in the file.
        offset_bytes: u64,
        /// What is wrong.
        detail: String,
    },
    /// The file ends before its trailer: an interrupted or truncated backup.
    #[error("{}: at byte {offset_bytes}: incomplete backup: {detail}", path.display())]
    Incomplete {
        /// The backup file.
        path: PathBuf,
        /// Where the file falls short: the offset of the structure (trailer, block) it cuts
        /// off.
        offset_bytes: u64,
        /// What is missing.
        detail: String,
    },
    /// A file that is sound on its own but does not follow the file before it in the chain,
    /// or a base of another array.
    #[error("{}: at byte {offset_bytes}: broken chain: {detail}", path.display())]
    Chain {
        /// The file that does not follow.
        path: PathBuf,
        /// Byte offset of the header field that breaks the link (0 when no one field does).
        offset_bytes: u64,
        /// Which link is broken, and how.
        detail: String,
    },
    /// The target of a backup exists already: a backup never overwrites a file.
    #[error("{}: already exists; a backup never overwrites a file (choose another name or remove it)", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// An incremental backup after `base` is impossible: the array no longer keeps the
    /// history after `from_lsn` (the engine said `ectable_engine::Error::HistoryGone`, whose
    /// message this one ends with). Take a full backup.
    #[error(
        "incremental backup after {} (which ends at LSN {base_end_lsn}): {}",
        base.display(),
        ectable_engine::Error::HistoryGone { from_lsn: *from_lsn, why: why.clone() }
    )]
    HistoryGone {
        /// The backup the incremental was to follow.
        base: PathBuf,
        /// The LSN that backup ends at.
        base_end_lsn: u64,
        /// The LSN the incremental was to start after (the engine's `from_lsn`).
        from_lsn: u64,
        /// The engine's reason.
        why: String,
    },
    /// The take was stopped before its end (`TakeOptions::cancel`: the node holding the
    /// array is stopping). A backup file being written is removed; nothing is kept.
    #[error("{}: the backup was stopped after {written_bytes} bytes (the node is stopping); the unfinished file was removed: take it again once the node is back", path.display())]
    Stopped {
        /// The file being written.
        path: PathBuf,
        /// Bytes written when it stopped.
        written_bytes: u64,
    },
    /// Another `--auto` run is writing into the directory now (it holds the directory's
    /// lock file): nothing was done.
    #[error("{}: another backup --auto is writing into this directory now; nothing was done: try again when it is done", dir.display())]
    Busy {
        /// The directory.
        dir: PathBuf,
    },
    /// Bad arguments (until-LSN, policy numbers, a target that cannot hold the data).
    #[error("{0}")]
    InvalidArgument(String),
    /// The engine refused (with its own typed error).
    #[error("{context}: {source}")]
    Engine {
        /// What the library was doing.
        context: String,
        /// The engine's error, whole.
        source: ectable_engine::Error,
    },
}

/// The result of the backup library.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn engine(context: impl Into<String>, source: ectable_engine::Error) -> Self {
        Error::Engine {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io(path: &Path, offset_bytes: u64, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            offset_bytes,
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, offset_bytes: u64, detail: String) -> Self {
        Error::Corrupt {
            path: path.to_path_buf(),
            offset_bytes,
            detail,
        }
    }

    pub(crate) fn incomplete(path: &Path, offset_bytes: u64, detail: String) -> Self {
        Error::Incomplete {
            path: path.to_path_buf(),
            offset_bytes,
            detail,
        }
    }

    pub(crate) fn chain(path: &Path, offset_bytes: u64, detail: String) -> Self {
        Error::Chain {
            path: path.to_path_buf(),
            offset_bytes,
            detail,
        }
    }

    /// The file the error is about, if it is about one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. }
            | Error::Corrupt { path, .. }
            | Error::Incomplete { path, .. }
            | Error::Chain { path, .. }
            | Error::AlreadyExists { path }
            | Error::Stopped { path, .. } => Some(path),
            Error::HistoryGone { base, .. } => Some(base),
            Error::Busy { dir } => Some(dir),
            Error::InvalidArgument(_) | Error::Engine { .. } => None,
        }
    }

    /// The byte offset in [`Error::path`] the error is about, if there is one.
    pub fn offset_bytes(&self) -> Option<u64> {
        match self {
            Error::Io { offset_bytes, .. }
            | Error::Corrupt { offset_bytes, .. }
            | Error::Incomplete { offset_bytes, .. }
            | Error::Chain { offset_bytes, .. } => Some(*offset_bytes),
            Error::Stopped { written_bytes, .. } => Some(*written_bytes),
            Error::AlreadyExists { .. }
            | Error::Busy { .. }
            | Error::HistoryGone { .. }
            | Error::InvalidArgument(_)
            | Error::Engine { .. } => None,
        }
    }
}
