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
    /// The device did not complete the operation within the I/O deadline: it stopped
    /// answering (the operation was given up and may still complete later).
    TimedOut,
    /// Anything else.
    Other,
}

/// A failed device operation. Every variant but `Backend` names the device (its path for
/// real devices); [`DeviceError::class`] says what the failure means.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The device could not be opened, or another writer holds it (its lock or block-device
    /// claim was still busy when the wait ran out).
    #[error("{device}: cannot open: {source}")]
    Open {
        /// The device's name.
        device: String,
        /// What the open (or the lock) failed with.
        source: io::Error,
    },
    /// A read, write or flush failed with an OS error (EIO, EPERM, ENOSPC...).
    #[error("{device}: {op} at offset {offset_bytes} failed: {source}")]
    Io {
        /// The device's name.
        device: String,
        /// The operation: "read", "write", "flush"...
        op: &'static str,
        /// Byte offset of the operation on the device (0 for a flush).
        offset_bytes: u64,
        /// The OS error.
        source: io::Error,
    },
    /// Fewer bytes were transferred than asked (the device shrank or lies); never "end of
    /// data".
    #[error("{device}: short {op} at offset {offset_bytes}: {got} of {expected} bytes")]
    Short {
        /// The device's name.
        device: String,
        /// The operation: "read" or "write".
        op: &'static str,
        /// Byte offset of the operation on the device.
        offset_bytes: u64,
        /// Bytes asked for.
        expected: usize,
        /// Bytes transferred.
        got: usize,
    },
    /// The offset or length of a request is not a multiple of [`crate::ALIGN_BYTES`].
    #[error("{device}: {op} at offset {offset_bytes} length {len} is not 4096-byte aligned")]
    Unaligned {
        /// The device's name.
        device: String,
        /// The operation: "read" or "write".
        op: &'static str,
        /// Byte offset of the request.
        offset_bytes: u64,
        /// Length of the request in bytes.
        len: usize,
    },
    /// The request reaches past the end of the device.
    #[error(
        "{device}: {op} at offset {offset_bytes} length {len} is beyond capacity {capacity_bytes}"
    )]
    OutOfRange {
        /// The device's name.
        device: String,
        /// The operation: "read" or "write".
        op: &'static str,
        /// Byte offset of the request.
        offset_bytes: u64,
        /// Length of the request in bytes.
        len: usize,
        /// The device's capacity in bytes.
        capacity_bytes: u64,
    },
    /// The device cannot be used this way: not a regular file or block device, or no file
    /// descriptor for the io_uring backend.
    #[error("{device}: {message}")]
    Unsupported {
        /// The device's name.
        device: String,
        /// Why it cannot be used.
        message: String,
    },
    /// The operation did not complete within the backend's I/O deadline
    /// ([`crate::IoBackend::set_io_timeout`]): the device stopped answering. The operation
    /// was given up; it may still complete on the device later.
    #[error(
        "{device}: {op} at offset {offset_bytes} not done after {:.1} s: the device stopped answering",
        .after.as_secs_f64()
    )]
    TimedOut {
        /// The device's name.
        device: String,
        /// The operation: "read", "write", "flush"...
        op: &'static str,
        /// Byte offset of the operation on the device (0 for a flush).
        offset_bytes: u64,
        /// How long it had been out when it was given up.
        after: std::time::Duration,
    },
    /// The I/O backend itself failed (io_uring setup or submission, a stopped worker pool,
    /// an unknown backend name or device index); names no device.
    #[error("io backend: {0}")]
    Backend(String),
}

impl DeviceError {
    /// A [`DeviceError::Io`] for `op` at `offset_bytes` on `device`.
    pub fn io(device: &str, op: &'static str, offset_bytes: u64, source: io::Error) -> Self {
        DeviceError::Io {
            device: device.to_string(),
            op,
            offset_bytes,
            source,
        }
    }

    /// What the error means for failure handling, from its variant and OS error number.
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
            DeviceError::TimedOut { .. } => ErrorClass::TimedOut,
            DeviceError::Unaligned { .. } | DeviceError::OutOfRange { .. } => ErrorClass::Invalid,
            DeviceError::Unsupported { .. } | DeviceError::Backend(_) => ErrorClass::Other,
        }
    }
}
