//! ectable-devices: everything that touches a file descriptor.
//!
//! The engine never opens a file, issues an ioctl or talks to io_uring itself; it is generic
//! over [`BlockDevice`] and submits batches of [`IoOp`]s to an [`IoBackend`]. Two backends sit
//! behind that trait: [`UringBackend`] (one io_uring owned by one thread, many operations in
//! flight across all devices) and [`PsyncBackend`] (pread/pwrite on a worker pool, for machines
//! whose security profile blocks io_uring, and for devices that have no file descriptor such as
//! [`MemDevice`] and [`FaultyDevice`]).
//!
//! Invariants:
//! - Every data-path I/O is 4096-byte aligned in offset, length and memory ([`ALIGN_BYTES`]).
//! - A short read or write is an error ([`DeviceError::Short`]), never "end of data".
//! - Errors name the device, the operation and the offset.

#![warn(missing_docs)]

mod aligned_buf;
mod backend;
mod block_device;
mod error;
mod faulty_device;
mod file_device;
mod geometry;
mod mem_device;
mod open;
mod psync;
mod signature;
mod stats;
mod storage_id;
mod uring;

pub use aligned_buf::{AlignedBuf, ALIGN_BYTES};
pub use backend::{IoBackend, IoBatch, IoCompletion, IoKind, IoOp};
pub use block_device::{BackingSpace, BlockDevice};
pub use error::{DeviceError, ErrorClass};
pub use faulty_device::{CrashMode, FaultCounters, FaultyDevice, WriteFault};
pub use file_device::{free_bytes_under, preallocate_file, FileDevice, OpenOptions};
pub use geometry::Geometry;
pub use mem_device::MemDevice;
pub use open::{open_backend, BackendKind};
pub use psync::PsyncBackend;
pub use signature::foreign_signature;
pub use stats::{
    bucket_upper_seconds, DeviceIoSnapshot, HistogramSnapshot, IoStats, LatencyHistogram,
    LATENCY_BUCKETS,
};
pub use storage_id::StorageId;
pub use uring::UringBackend;
