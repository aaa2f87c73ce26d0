//! Typed device errors. Every variant names the device.

use std::io;

/// The meaning of a device error, for the engine's failure handling.
///
/// EIO, EPERM, ENOSPC and short transfers mean different things and are never folded into
/// "end of data".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The medium failed (EIO and friends): treat the range or device as lost.
    Media,
    /// The device refuses writes (EPERM, EROFS): read-only, reads may still work.
    ReadOnly,
    /// The device or its backing store is out of space (ENOSPC, EDQUOT).
    NoSpace,
    /// Fewer bytes were transferred than asked: the device shrank or lies.
    Short,
    /// The request itself was wrong (alignment, range): a programming or configuration error.
    Invalid,
    /// Anything else.
    Other,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    #[error("{device}: cannot open: {source}")]
    Open { device: String, source: io::Error },
    #[error("{device}: {op} at offset {offset_bytes} failed: {source}")]
    Io {
        device: String,
        op: &'static str,
        offset_bytes: u64,
        source: io::Error,
    },
    #[error("{device}: short {op} at offset {offset_bytes}: {got} of {expected} bytes")]
    Short {
        device: String,
        op: &'static str,
        offset_bytes: u64,
        expected: usize,
        got: usize,
    },
    #[error("{device}: {op} at offset {offset_bytes} length {len} is not 4096-byte aligned")]
    Unaligned {
        device: String,
        op: &'static str,
        offset_bytes: u64,
        len: usize,
    },
    #[error(
        "{device}: {op} at offset {offset_bytes} length {len} is beyond capacity {capacity_bytes}"
    )]
    OutOfRange {
        device: String,
        op: &'static str,
        offset_bytes: u64,
        len: usize,
        capacity_bytes: u64,
    },
    #[error("{device}: {message}")]
    Unsupported { device: String, message: String },
    #[error("io backend: {0}")]
    Backend(String),
}

impl DeviceError {
    pub fn io(device: &str, op: &'static str, offset_bytes: u64, source: io::Error) -> Self {
        DeviceError::Io {
            device: device.to_string(),
            op,
            offset_bytes,
            source,
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            DeviceError::Io { source, .. } | DeviceError::Open { source, .. } => {
                match source.raw_os_error() {
                    Some(libc::EPERM) | Some(libc::EROFS) | Some(libc::EACCES)
                    | Some(libc::EBADF) => ErrorClass::ReadOnly,
                    Some(libc::ENOSPC) | Some(libc::EDQUOT) => ErrorClass::NoSpace,
                    Some(libc::EIO) | Some(libc::ENXIO) | Some(libc::ENODEV)
                    | Some(libc::EBADMSG) => ErrorClass::Media,
                    Some(libc::EINVAL) => ErrorClass::Invalid,
                    _ => ErrorClass::Other,
                }
            }
            DeviceError::Short { .. } => ErrorClass::Short,
            DeviceError::Unaligned { .. } | DeviceError::OutOfRange { .. } => ErrorClass::Invalid,
            DeviceError::Unsupported { .. } | DeviceError::Backend(_) => ErrorClass::Other,
        }
    }
}
