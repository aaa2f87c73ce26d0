//! Typed errors. Variants carry the evidence (device, offsets, what was expected).

use crate::format::DecodeError;
use ectable_devices::DeviceError;

/// The engine's result type: [`Error`] unless said otherwise.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure of the engine and the typed tables. [`Error::code`] gives each variant a
/// stable name for the CLI and monitoring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad arguments (geometry, sizes, names); nothing was written.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Open found no valid superblock on any device given: none of them holds an array.
    #[error("{device}: not an ectable device (no valid superblock: {reason})")]
    NotFormatted {
        /// The first device whose superblocks did not decode.
        device: String,
        /// Why its superblocks did not decode (or that no device could be read).
        reason: String,
    },
    /// A device's superblock names another array than most of the devices given do; nothing
    /// was written to it.
    #[error("{device}: belongs to another ectable array ({found}); refusing to use it")]
    ForeignDevice {
        /// The device of the other array.
        device: String,
        /// Both array uuids, as text.
        found: String,
    },
    /// A device that was a member of the array but was replaced (`replace`): its device id
    /// is no longer in the superblocks, so it holds nothing the array needs. Leave it out of
    /// the devices given to open, or reuse it: `wipe_device`, a format with `force`, or a
    /// replace or spare with `force`. (The message states the fact only; the CLI adds its
    /// own advice.)
    #[error("{device}: was {} but has been replaced (its device id {device_uuid} is no longer a member)", if *was_spare { format!("a hot spare of array {array} (member entry {slot})") } else { format!("a member of array {array} in slot {slot}") })]
    ReplacedDevice {
        /// The replaced device.
        device: String,
        /// The uuid of the array it was a member of.
        array: String,
        /// The slot its superblock names (a hot spare's member entry, at or after n).
        slot: usize,
        /// Its superblock makes it a hot spare (an old copy of a spare that has since taken
        /// a slot or been replaced).
        was_spare: bool,
        /// Its own device uuid, no longer in the member list.
        device_uuid: String,
    },
    /// The device holds an ectable superblock (its magic and crc are good) of a format version
    /// this build does not read: an array written by a newer ectable. Nothing was written to
    /// it.
    #[error(
        "{device}: holds an ectable superblock of format version {version}, which this build \
         does not read (it reads versions 1 to {newest}): use the ectable that wrote it, or a newer one"
    )]
    UnknownFormat {
        /// The device.
        device: String,
        /// The format version its superblock names.
        version: u32,
        /// The newest version this build reads.
        newest: u32,
    },
    /// Formatting refused: the device holds an array, and `FormatOptions::force` was not set.
    #[error("{device}: already holds an ectable array ({array}); formatting over it needs the force option")]
    AlreadyFormatted {
        /// The device that holds an array.
        device: String,
        /// The uuid of the array it holds.
        array: String,
    },
    /// Formatting refused: the device holds something else an operator may want (a file
    /// system, a partition table, a RAID or volume-manager member: [`ectable_devices::foreign_signature`]),
    /// and `FormatOptions::force` was not set. Nothing was written.
    #[error(
        "{device}: holds {what}; formatting over it needs the force option (what it holds is lost)"
    )]
    HoldsData {
        /// The device.
        device: String,
        /// What it seems to hold ("an ext2/3/4 file system").
        what: String,
    },
    /// A device given to `format` or as a replacement is smaller than the geometry needs.
    #[error("{device}: too small: {capacity_bytes} bytes, need at least {needed_bytes}")]
    DeviceTooSmall {
        /// The device.
        device: String,
        /// Its capacity in bytes.
        capacity_bytes: u64,
        /// The least capacity the array's geometry needs, in bytes.
        needed_bytes: u64,
    },
    /// One storage is listed twice (the same name, or two names for the same storage, such
    /// as a loop device and its backing file).
    #[error("the same device is listed twice: {first} and {second}")]
    DuplicateDevice {
        /// The device listed first.
        first: String,
        /// The device listed later that is the same storage.
        second: String,
    },
    /// Two different storages carry the same member's superblock (one slot): one is a copy of
    /// the other, made with `dd` or `cp`. Nothing is opened; which one is the member is for
    /// the operator to say, by listing only it.
    #[error("{first} and {second} both hold slot {slot} of this array (the same member's superblock on two different devices: one is a copy of the other){}; list only the member, and for the slot whose device is missing give its device or replace it", newer.as_ref().map(|n| format!("; {n} has the newer superblock")).unwrap_or_default())]
    SlotHeldTwice {
        /// The slot both claim.
        slot: usize,
        /// The device listed first.
        first: String,
        /// The device listed later.
        second: String,
        /// Which of the two has the newer superblock, when they differ.
        newer: Option<String>,
    },
    /// A hot spare is added while the array names another spare that is not among the
    /// devices given and did not fail in this session: it may only have been left out of
    /// this open. Nothing changed; give that spare, or let the new device take its entry
    /// ([`crate::Engine::add_spare_in_place_of_missing`]).
    #[error("the array's hot spare (device {}) is not among the devices given; list it if it is there, or let the new spare take its place (the missing one is then no longer a member)", missing.join(", "))]
    SpareMissing {
        /// Device ids of the spares the superblock names that no device given carries.
        missing: Vec<String>,
    },
    /// A member whose superblock is older than the array's. Not returned by this version:
    /// a stale member is opened and resynced instead (docs/format.md, "Stale members").
    #[error("{device}: is a stale member of the array (epoch {epoch}, array is at {array_epoch})")]
    StaleDevice {
        /// The stale device.
        device: String,
        /// The epoch of its own superblock.
        epoch: u64,
        /// The newest epoch among the array's superblocks.
        array_epoch: u64,
    },
    /// More than m of the array's data-bearing members are missing (at open) or failed
    /// (while writing superblocks): the array cannot be served.
    #[error(
        "array needs {needed} of its {total} devices to open; only {present} present ({missing})"
    )]
    TooFewDevices {
        /// Members needed: all but m.
        needed: usize,
        /// Data-bearing members of the array (spares not counted).
        total: usize,
        /// Members present (or still online).
        present: usize,
        /// Which slots are missing, as text.
        missing: String,
    },
    /// A device operation failed where no redundancy could cover it.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A structure read back passed its checksum but does not decode or is inconsistent
    /// (for example log records out of LSN order in a verified stripe).
    #[error("{device} at offset {offset_bytes}: {what}: {source}")]
    Corrupt {
        /// The device, or `segment N` for a structure inside a stripe.
        device: String,
        /// Byte offset of the structure on the device (or in the segment).
        offset_bytes: u64,
        /// What was being decoded.
        what: &'static str,
        /// The decoding failure.
        source: DecodeError,
    },
    /// More than m chunks of a stripe are gone or bad: the data is lost, never guessed.
    #[error("data lost: segment {segment_id} stripe at offset {offset_in_segment_bytes}: only {good} of {width} chunks are good, {needed} needed ({detail})")]
    DataLost {
        /// The segment holding the stripe.
        segment_id: u64,
        /// Byte offset of the stripe within the segment.
        offset_in_segment_bytes: u32,
        /// Chunks that were read and verified.
        good: usize,
        /// Chunks in the stripe (k + m).
        width: usize,
        /// Chunks needed to rebuild it (k).
        needed: usize,
        /// What happened to the others.
        detail: String,
    },
    /// A write (or batch) whose encoded records do not fit in one stripe; nothing was
    /// written.
    #[error("value too large: record of {record_bytes} bytes, the limit for this array is {limit_bytes}")]
    ValueTooLarge {
        /// Encoded size of the records, in bytes (padded, headers included).
        record_bytes: usize,
        /// The most one stripe carries, in bytes: k × (chunk size − 512).
        limit_bytes: usize,
    },
    /// An empty key, or one longer than [`crate::MAX_KEY_BYTES`].
    #[error("key must be 1..={max} bytes, got {got}")]
    BadKey {
        /// The key's length in bytes.
        got: usize,
        /// The longest key allowed, in bytes.
        max: usize,
    },
    /// An empty table name, one longer than [`crate::MAX_TABLE_NAME_BYTES`], or (for a new
    /// write) one with control characters.
    #[error(
        "table name must be 1..={max} bytes of UTF-8 without control characters, got {name:?}"
    )]
    BadTableName {
        /// The name given.
        name: String,
        /// The longest name allowed, in bytes.
        max: usize,
    },
    /// A typed-table operation on a table that does not exist (key/value reads of a missing
    /// table return nothing instead).
    #[error("no such table: {0}")]
    NoSuchTable(String),
    /// A write found no free segment beyond the reserve, even after waiting for the cleaner;
    /// the text says what holds the space. Reads and deletes keep working.
    #[error("no space left on the array: {0}")]
    NoSpace(String),
    /// A stripe's writes failed on so many devices that fewer than `needed` of its chunks
    /// were written (several devices failed at once, a file system under file-backed
    /// devices filled up). The stripe does not count: what a sync acknowledged through the
    /// sync journal is still there, the rest was never acknowledged. The engine refuses
    /// further commits until it is reopened.
    #[error("could not write segment {segment_id} stripe at offset {offset_in_segment_bytes}: only {written} of {width} devices took it, {needed} needed ({errors})")]
    WriteFailed {
        /// The segment holding the stripe.
        segment_id: u64,
        /// Byte offset of the stripe within the segment.
        offset_in_segment_bytes: u32,
        /// Chunks written.
        written: usize,
        /// Chunks in the stripe.
        width: usize,
        /// Chunks that must be written for the stripe to count.
        needed: usize,
        /// The devices' errors.
        errors: String,
    },
    /// A previous write or flush failed; the engine refuses further commits until reopened
    /// (the outcome of in-flight writes is unknown).
    #[error("a previous write failed ({0}); writes are refused until the array is reopened")]
    PreviousIo(String),
    /// A member's device given back ([`crate::Engine::online`]) still fails: its superblock
    /// cannot be read, or a health block written to it does not read back. Nothing changed.
    #[error("{device} still fails ({why}); nothing changed")]
    DeviceStillFails {
        /// The device given back.
        device: String,
        /// What failed.
        why: String,
    },
    /// A device that is to join the array (`replace`'s new device, a new hot spare) refuses
    /// writes now ([`ectable_devices::BlockDevice::write_refused`]: a block device set
    /// read-only, an immutable file): refused before anything is written.
    #[error("{device} refuses writes ({why}); nothing changed")]
    DeviceRefusesWrites {
        /// The device.
        device: String,
        /// Why, as the device tells it.
        why: String,
    },
    /// A write, or a maintenance operation that writes, on an engine opened read-only.
    #[error("the array is open read-only")]
    ReadOnly,
    /// The Reed-Solomon codec refused the geometry or the shards it was given.
    #[error("codec: {0}")]
    Codec(#[from] crate::codec::CodecError),
    /// A call on an engine that is closing or closed.
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
    BadPrimaryKey {
        /// The table.
        table: String,
        /// What is wrong with the key.
        detail: String,
    },
    /// An attribute column name or value the table layer refuses.
    #[error("table '{table}': bad column: {detail}")]
    BadColumn {
        /// The table.
        table: String,
        /// Which column, and what is wrong with it.
        detail: String,
    },
    /// A write's condition did not hold; nothing of its batch was written.
    #[error("table '{table}': condition failed for row {key}: {detail}")]
    ConditionFailed {
        /// The table.
        table: String,
        /// The row's primary key, as text.
        key: String,
        /// What the condition expected and what the row held.
        detail: String,
    },
    /// Table names starting with '$' belong to system tables.
    #[error("table name '{0}' is reserved: names starting with '$' are system tables")]
    ReservedTableName(String),
    /// A typed-table operation on a key/value table, or the other way round.
    #[error("table '{table}' {detail}")]
    WrongTableKind {
        /// The table.
        table: String,
        /// What it is, and what was asked of it.
        detail: String,
    },
    /// A stored row or schema that does not decode (it passed its crc: it was not written by
    /// the table layer).
    #[error("table '{table}': stored data does not decode: {detail}")]
    CorruptTableData {
        /// The table (a system table such as `$backup` included).
        table: String,
        /// What did not decode.
        detail: String,
    },
    /// An incremental backup from an LSN whose later history the array no longer keeps.
    #[error("the changes after LSN {from_lsn} are no longer all on the array ({why}); take a full backup")]
    HistoryGone {
        /// The LSN the incremental was to start after.
        from_lsn: u64,
        /// Why that history is gone (no horizon registered, or a later one).
        why: String,
    },
    /// A read-only engine (no lock: another process may be writing) met a stripe or a log
    /// that no longer matches what it opened, and the devices show why: the array moved on
    /// (a newer epoch or checkpoint, a segment freed and reused). Nothing wrong was returned;
    /// opening the array again reads the new state.
    #[error("the array changed under this reader: {detail}; another process is writing to it, so this read-only view is out of date (no data is lost): retry the command")]
    ArrayChanged {
        /// What no longer matched, and the evidence that the array moved on.
        detail: String,
    },
    /// An engine thread panicked: the engine stopped taking calls so that nobody waits
    /// forever for work it will never do. Everything acknowledged before is on the devices:
    /// reopening the array recovers it.
    #[error("the engine stopped: its {thread} thread panicked ({detail}); close it and open the array again (acknowledged writes are safe)")]
    Poisoned {
        /// The thread that panicked: "flusher", "cleaner" or "monitor".
        thread: String,
        /// Its panic message.
        detail: String,
    },
    /// The array holds a restore that did not finish.
    #[error("the array holds an unfinished restore (started {started}); run the restore again to complete it, or format the devices")]
    RestoreIncomplete {
        /// The note the restore left in its marker when it started.
        started: String,
    },
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
            Error::UnknownFormat { .. } => "UNKNOWN_FORMAT",
            Error::ForeignDevice { .. } => "FOREIGN_DEVICE",
            Error::ReplacedDevice { .. } => "REPLACED_DEVICE",
            Error::AlreadyFormatted { .. } => "ALREADY_FORMATTED",
            Error::HoldsData { .. } => "HOLDS_DATA",
            Error::DeviceTooSmall { .. } => "DEVICE_TOO_SMALL",
            Error::DuplicateDevice { .. } => "DUPLICATE_DEVICE",
            Error::SlotHeldTwice { .. } => "SLOT_HELD_TWICE",
            Error::SpareMissing { .. } => "SPARE_MISSING",
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
            Error::WriteFailed { .. } => "WRITE_FAILED",
            Error::ReadOnly => "READ_ONLY",
            Error::Codec(_) => "CODEC",
            Error::Closed => "CLOSED",
            Error::DeviceStillFails { .. } => "DEVICE_STILL_FAILS",
            Error::DeviceRefusesWrites { .. } => "DEVICE_REFUSES_WRITES",
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
