//! Exit codes of `ectable`, the same for every command (docs/operations.md, "Exit codes").
//! A command's own refusals carry their code ([`Coded`]); every other error is classified by
//! what caused it (the engine's error, the device's, the file system's). The numbers above
//! 63 are those of sysexits.h.

use ectable_devices::{DeviceError, ErrorClass};
use ectable_engine::Error as EngineError;
use std::io;

/// The command did what was asked.
pub const OK: i32 = 0;
/// The answer is no: the key or row does not exist, `verify` found a row that differs, a
/// condition did not hold, a backup file does not check out.
pub const NO: i32 = 1;
/// `status` and `scrub` only: data unavailable (too few devices, stripes past repair).
pub const UNAVAILABLE_STATE: i32 = 2;
/// `status` only: the status could not be read.
pub const STATUS_UNREADABLE: i32 = 4;
/// The command line cannot be run: unknown option, bad value, missing or conflicting
/// arguments (EX_USAGE).
pub const USAGE: i32 = 64;
/// Input data is wrong: an import line, a JSON key or row, a key, value or table name past a
/// limit, a table of the other kind or none (EX_DATAERR).
pub const DATA: i32 = 65;
/// An input file does not exist or cannot be opened (EX_NOINPUT).
pub const NO_INPUT: i32 = 66;
/// The array's data cannot be reached: too few devices, data lost past repair, the history
/// an incremental backup needs is gone (EX_UNAVAILABLE).
pub const UNAVAILABLE: i32 = 69;
/// An internal error: a worker thread failed, or an error no class covers (EX_SOFTWARE).
pub const SOFTWARE: i32 = 70;
/// The output cannot be written: the array or the target's file system is full, or the
/// backup file exists already (EX_CANTCREAT).
pub const CANT_CREATE: i32 = 73;
/// A device or file failed to read or write, or holds corrupt data (EX_IOERR).
pub const IO: i32 = 74;
/// Try again later: another process holds the devices, or changed the array under a
/// read-only command (EX_TEMPFAIL).
pub const TEMPFAIL: i32 = 75;
/// Permission denied (EX_NOPERM).
pub const NO_PERM: i32 = 77;
/// The devices given are not what the command needs: not formatted, of another array, an
/// old copy of a member, listed twice, one member on two devices, too small, already formatted, an unfinished restore
/// (EX_CONFIG).
pub const CONFIG: i32 = 78;

/// An error that carries its exit code: the commands' own refusals (a bad argument, a device
/// that cannot be used, a missing key). Made with [`coded!`](crate::coded) and
/// [`fail!`](crate::fail).
#[derive(Debug)]
pub struct Coded(pub i32, pub String);

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Coded {}

/// An `anyhow::Error` with an exit code: `coded!(exit::USAGE, "--k must be ...")`.
#[macro_export]
macro_rules! coded {
    ($code:expr, $($arg:tt)*) => {
        ::anyhow::Error::new($crate::exit::Coded($code, format!($($arg)*)))
    };
}

/// Returns an error with an exit code from the function: `fail!(exit::NO, "key not found")`.
#[macro_export]
macro_rules! fail {
    ($code:expr, $($arg:tt)*) => {
        return ::core::result::Result::Err($crate::coded!($code, $($arg)*).into())
    };
}

/// The exit code of a failed command: the first cause in the chain that has a class.
pub fn code_of(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if let Some(code) = class_of(cause) {
            return code;
        }
    }
    SOFTWARE
}

fn class_of(cause: &(dyn std::error::Error + 'static)) -> Option<i32> {
    if let Some(c) = cause.downcast_ref::<Coded>() {
        return Some(c.0);
    }
    if cause.is::<clap::Error>() {
        return Some(USAGE);
    }
    if let Some(e) = cause.downcast_ref::<EngineError>() {
        return engine_class(e);
    }
    if let Some(e) = cause.downcast_ref::<DeviceError>() {
        return Some(device_class(e));
    }
    if let Some(e) = cause.downcast_ref::<ectable_backup::Error>() {
        return backup_class(e);
    }
    if let Some(e) = cause.downcast_ref::<io::Error>() {
        return Some(io_class(e));
    }
    if cause.is::<serde_json::Error>() {
        return Some(DATA);
    }
    None
}

fn engine_class(e: &EngineError) -> Option<i32> {
    use EngineError as E;
    Some(match e {
        E::InvalidArgument(_) | E::DuplicateDevice { .. } => USAGE,
        E::BadKey { .. }
        | E::BadTableName { .. }
        | E::ValueTooLarge { .. }
        | E::NoSuchTable(_)
        | E::TableExists(_)
        | E::InvalidSchema(_)
        | E::BadPrimaryKey { .. }
        | E::BadColumn { .. }
        | E::ReservedTableName(_)
        | E::WrongTableKind { .. } => DATA,
        E::ConditionFailed { .. } => NO,
        E::NotFormatted { .. }
        | E::UnknownFormat { .. }
        | E::ForeignDevice { .. }
        | E::ReplacedDevice { .. }
        | E::SlotHeldTwice { .. }
        | E::SpareMissing { .. }
        | E::AlreadyFormatted { .. }
        | E::HoldsData { .. }
        | E::DeviceTooSmall { .. }
        | E::StaleDevice { .. }
        | E::RestoreIncomplete { .. } => CONFIG,
        E::TooFewDevices { .. } | E::DataLost { .. } | E::HistoryGone { .. } => UNAVAILABLE,
        E::ArrayChanged { .. } => TEMPFAIL,
        E::DeviceRefusesWrites { .. } => NO_PERM,
        E::NoSpace(_) => CANT_CREATE,
        E::Device(d) => device_class(d),
        E::Corrupt { .. }
        | E::CorruptTableData { .. }
        | E::PreviousIo(_)
        | E::DeviceStillFails { .. }
        | E::WriteFailed { .. }
        | E::ReadOnly => IO,
        E::Poisoned { .. } | E::Closed | E::Codec(_) => SOFTWARE,
        #[allow(unreachable_patterns)] // the engine may add variants
        _ => return None,
    })
}

fn device_class(e: &DeviceError) -> i32 {
    match e {
        DeviceError::Open { source, .. } => return io_class(source),
        // Not a regular file or block device, or one the I/O engine cannot drive.
        DeviceError::Unsupported { .. } => return CONFIG,
        _ => {}
    }
    match e.class() {
        ErrorClass::NoSpace => CANT_CREATE,
        _ => IO,
    }
}

fn backup_class(e: &ectable_backup::Error) -> Option<i32> {
    use ectable_backup::Error as B;
    Some(match e {
        // Classified by their cause, further down the chain.
        B::Io { .. } | B::Engine { .. } => return None,
        // A backup file that does not check out (`backup-verify` answers 1 itself).
        B::Corrupt { .. } | B::Incomplete { .. } | B::Chain { .. } => DATA,
        B::AlreadyExists { .. } => CANT_CREATE,
        B::HistoryGone { .. } => UNAVAILABLE,
        B::Stopped { .. } | B::Busy { .. } => TEMPFAIL,
        B::InvalidArgument(_) => USAGE,
        #[allow(unreachable_patterns)] // the library may add variants
        _ => return None,
    })
}

fn io_class(e: &io::Error) -> i32 {
    match e.kind() {
        io::ErrorKind::NotFound => NO_INPUT,
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => NO_PERM,
        io::ErrorKind::ResourceBusy | io::ErrorKind::WouldBlock => TEMPFAIL,
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => CANT_CREATE,
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => DATA,
        _ => match e.raw_os_error() {
            Some(libc::EBUSY) => TEMPFAIL,
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => CANT_CREATE,
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => NO_PERM,
            _ => IO,
        },
    }
}
