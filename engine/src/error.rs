//! Typed errors. Variants carry the evidence (device, offsets, what was expected).

use crate::format::DecodeError;
use ectable_devices::DeviceError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad arguments (geometry, sizes, names); nothing was written.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("{device}: not an ectable device (no valid superblock: {reason})")]
    NotFormatted { device: String, reason: String },
    #[error("{device}: belongs to another ectable array ({found}); refusing to use it")]
    ForeignDevice { device: String, found: String },
    /// A device that was a member of the array but was replaced (`replace`): its device id
    /// is no longer in the superblocks, so it holds nothing the array needs.
    #[error("{device}: was a member of array {array} in slot {slot} but has been replaced (its device id {device_uuid} is no longer a member); leave it out of the devices given, or wipe it (`wipe_device`, or a format with `force`) to reuse it")]
    ReplacedDevice {
        device: String,
        array: String,
        slot: usize,
        device_uuid: String,
    },
    /// Formatting refused: the device holds an array, and `FormatOptions::force` was not set.
    #[error("{device}: already holds an ectable array ({array}); formatting over it needs the force option")]
    AlreadyFormatted { device: String, array: String },
    #[error("{device}: too small: {capacity_bytes} bytes, need at least {needed_bytes}")]
    DeviceTooSmall {
        device: String,
        capacity_bytes: u64,
        needed_bytes: u64,
    },
    #[error("the same device is listed twice: {first} and {second}")]
    DuplicateDevice { first: String, second: String },
    #[error("{device}: is a stale member of the array (epoch {epoch}, array is at {array_epoch})")]
    StaleDevice {
        device: String,
        epoch: u64,
        array_epoch: u64,
    },
    #[error(
        "array needs {needed} of its {total} devices to open; only {present} present ({missing})"
    )]
    TooFewDevices {
        needed: usize,
        total: usize,
        present: usize,
        missing: String,
    },
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("{device} at offset {offset_bytes}: {what}: {source}")]
    Corrupt {
        device: String,
        offset_bytes: u64,
        what: &'static str,
        source: DecodeError,
    },
    /// More than m chunks of a stripe are gone or bad: the data is lost, never guessed.
    #[error("data lost: segment {segment_id} stripe at offset {offset_in_segment_bytes}: only {good} of {width} chunks are good, {needed} needed ({detail})")]
    DataLost {
        segment_id: u64,
        offset_in_segment_bytes: u32,
        good: usize,
        width: usize,
        needed: usize,
        detail: String,
    },
    #[error("value too large: record of {record_bytes} bytes, the limit for this array is {limit_bytes}")]
    ValueTooLarge {
        record_bytes: usize,
        limit_bytes: usize,
    },
    #[error("key must be 1..={max} bytes, got {got}")]
    BadKey { got: usize, max: usize },
    #[error("table name must be 1..={max} bytes of UTF-8, got '{name}'")]
    BadTableName { name: String, max: usize },
    #[error("no such table: {0}")]
    NoSuchTable(String),
    #[error("no space left on the array: {0}")]
    NoSpace(String),
    /// A previous write or flush failed; the engine refuses further commits until reopened
    /// (the outcome of in-flight writes is unknown).
    #[error("a previous write failed ({0}); reopen the array")]
    PreviousIo(String),
    #[error("the array is open read-only")]
    ReadOnly,
    #[error("codec: {0}")]
    Codec(#[from] crate::codec::CodecError),
    #[error("the engine is closed")]
    Closed,
    // Typed tables (engine/src/table/).
    /// `create_table` of a name that is taken.
    #[error("table '{0}' already exists")]
    TableExists(String),
    /// A schema that breaks the rules (column count, names, key types); nothing was written.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// A primary key of the wrong arity or types, or too long encoded.
    #[error("table '{table}': bad primary key: {detail}")]
    BadPrimaryKey { table: String, detail: String },
    /// An attribute column name or value the table layer refuses.
    #[error("table '{table}': bad column: {detail}")]
    BadColumn { table: String, detail: String },
    /// A write's condition did not hold; nothing of its batch was written.
    #[error("table '{table}': condition failed for row {key}: {detail}")]
    ConditionFailed {
        table: String,
        key: String,
        detail: String,
    },
    /// Table names starting with '$' belong to system tables.
    #[error("table name '{0}' is reserved: names starting with '$' are system tables")]
    ReservedTableName(String),
    /// A typed-table operation on a key/value table, or the other way round.
    #[error("table '{table}' {detail}")]
    WrongTableKind { table: String, detail: String },
    /// A stored row or schema that does not decode (it passed its crc: it was not written by
    /// the table layer).
    #[error("table '{table}': stored data does not decode: {detail}")]
    CorruptTableData { table: String, detail: String },
    /// An incremental backup from an LSN whose later history the array no longer keeps.
    #[error("the changes after LSN {from_lsn} are no longer all on the array ({why}); take a full backup")]
    HistoryGone { from_lsn: u64, why: String },
    /// A read-only engine (no lock: another process may be writing) met a stripe or a log
    /// that no longer matches what it opened, and the devices show why: the array moved on
    /// (a newer epoch or checkpoint, a segment freed and reused). Nothing wrong was returned;
    /// opening the array again reads the new state.
    #[error("the array changed under this reader: {detail}; another process is writing to it, so this read-only view is out of date (no data is lost): retry the command")]
    ArrayChanged { detail: String },
    /// An engine thread panicked: the engine stopped taking calls so that nobody waits
    /// forever for work it will never do. Everything acknowledged before is on the devices:
    /// reopening the array recovers it.
    #[error("the engine stopped: its {thread} thread panicked ({detail}); close it and open the array again (acknowledged writes are safe)")]
    Poisoned { thread: String, detail: String },
    /// The array holds a restore that did not finish.
    #[error("the array holds an unfinished restore (started {started}); run the restore again to complete it, or format the devices")]
    RestoreIncomplete { started: String },
    /// A callback of the caller's (a backup's row or change sink) failed with its own
    /// error, which the engine passes back unchanged: get it with [`Error::into_callback`]
    /// or downcast the source.
    #[error("{0}")]
    Callback(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl Error {
    /// Wraps an error of the caller's own in a callback (a backup sink) to return it
    /// through the engine.
    pub fn callback(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Error {
        Error::Callback(e.into())
    }

    /// The caller's own error that a callback returned, if this is one.
    pub fn into_callback(self) -> Option<Box<dyn std::error::Error + Send + Sync + 'static>> {
        match self {
            Error::Callback(e) => Some(e),
            _ => None,
        }
    }

    /// A short stable code for the CLI and monitoring.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
            Error::NotFormatted { .. } => "NOT_FORMATTED",
            Error::ForeignDevice { .. } => "FOREIGN_DEVICE",
            Error::ReplacedDevice { .. } => "REPLACED_DEVICE",
            Error::AlreadyFormatted { .. } => "ALREADY_FORMATTED",
            Error::DeviceTooSmall { .. } => "DEVICE_TOO_SMALL",
            Error::DuplicateDevice { .. } => "DUPLICATE_DEVICE",
            Error::StaleDevice { .. } => "STALE_DEVICE",
            Error::TooFewDevices { .. } => "TOO_FEW_DEVICES",
            Error::Device(_) => "DEVICE_ERROR",
            Error::Corrupt { .. } => "CORRUPT",
            Error::DataLost { .. } => "DATA_LOST",
            Error::ValueTooLarge { .. } => "VALUE_TOO_LARGE",
            Error::BadKey { .. } => "BAD_KEY",
            Error::BadTableName { .. } => "BAD_TABLE_NAME",
            Error::NoSuchTable(_) => "NO_SUCH_TABLE",
            Error::NoSpace(_) => "NO_SPACE",
            Error::PreviousIo(_) => "PREVIOUS_IO",
            Error::ReadOnly => "READ_ONLY",
            Error::Codec(_) => "CODEC",
            Error::Closed => "CLOSED",
            Error::HistoryGone { .. } => "HISTORY_GONE",
            Error::RestoreIncomplete { .. } => "RESTORE_INCOMPLETE",
            Error::ArrayChanged { .. } => "ARRAY_CHANGED",
            Error::Poisoned { .. } => "POISONED",
            Error::Callback(_) => "CALLBACK",
            Error::TableExists(_) => "TABLE_EXISTS",
            Error::InvalidSchema(_) => "INVALID_SCHEMA",
            Error::BadPrimaryKey { .. } => "BAD_PRIMARY_KEY",
            Error::BadColumn { .. } => "BAD_COLUMN",
            Error::ConditionFailed { .. } => "CONDITION_FAILED",
            Error::ReservedTableName(_) => "RESERVED_TABLE_NAME",
            Error::WrongTableKind { .. } => "WRONG_TABLE_KIND",
            Error::CorruptTableData { .. } => "CORRUPT_TABLE_DATA",
        }
    }
}

impl From<crate::format::LayoutError> for Error {
    fn from(e: crate::format::LayoutError) -> Error {
        Error::InvalidArgument(e.0)
    }
}
