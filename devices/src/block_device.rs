//! The device trait the engine is generic over.

use crate::{DeviceError, Geometry, StorageId};
use std::os::fd::RawFd;

/// The room the storage behind a device still needs and has, when that storage is a file
/// on a file system (the device itself, or a loop device's backing file). A sparse file
/// takes blocks only as it is written, so its file system can run out before the device is
/// full (thin provisioning), and then writes fail with ENOSPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingSpace {
    /// The file system holding the file (its st_dev): files that share one share its room.
    pub fs_id: u64,
    /// Bytes of the file that hold no blocks yet: its size less what it has allocated.
    pub unallocated_bytes: u64,
    /// Bytes the file system still gives an unprivileged writer (f_bavail × f_frsize).
    pub fs_free_bytes: u64,
}

/// A device addressed by byte offsets (redb's `StorageBackend` shape).
///
/// Offsets and lengths of data-path I/O are multiples of 4096. Implementations must report a
/// short transfer as [`DeviceError::Short`].
pub trait BlockDevice: Send + Sync {
    /// The name used in errors and status output (the path for real devices).
    fn name(&self) -> &str;
    /// Capacity and logical sector size.
    fn geometry(&self) -> Geometry;
    /// Fills all of `buf` from `offset_bytes`; offset and length are multiples of 4096 and
    /// within the capacity ([`DeviceError::Unaligned`], [`DeviceError::OutOfRange`] otherwise).
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> Result<(), DeviceError>;
    /// Writes all of `buf` at `offset_bytes`, with the same alignment and range rules as
    /// `read_at`. Durable only after [`BlockDevice::sync`].
    fn write_at(&self, buf: &[u8], offset_bytes: u64) -> Result<(), DeviceError>;
    /// Makes every completed write durable (fdatasync).
    fn sync(&self) -> Result<(), DeviceError>;
    /// Writes all of `buf` at `offset_bytes` and makes that write durable (what `RWF_DSYNC`
    /// does); other writes need not become durable. By default a write and a `sync`.
    fn write_durable_at(&self, buf: &[u8], offset_bytes: u64) -> Result<(), DeviceError> {
        self.write_at(buf, offset_bytes)?;
        self.sync()
    }
    /// The file descriptor, for engines that submit I/O to the kernel themselves. Devices that
    /// intercept I/O (memory, fault injection) return `None` and run on the psync engine.
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
    /// What identifies the storage behind the device, to refuse the same storage listed
    /// twice under two names ([`StorageId::same_storage`]). None for devices without one,
    /// and once the handle is released ([`BlockDevice::release`]): it holds no storage then.
    fn identity(&self) -> Option<StorageId> {
        None
    }
    /// The room its backing file needs and has ([`BackingSpace`]); None for devices not
    /// backed by a file (a disk, memory) or when it cannot be read.
    fn backing_space(&self) -> Option<BackingSpace> {
        None
    }
    /// Why the storage is going or gone while the device is open, if it is: a file deleted
    /// (the device's own, or a loop device's backing file; it lives only until its last
    /// handle closes, and is gone at the next open), or a file or device that shrank below
    /// the capacity it had when opened (reads past its end come back short).
    fn lost(&self) -> Option<String> {
        None
    }
    /// Takes in storage that grew since the handle was opened (a file extended, a loop
    /// device resized with `losetup -c` after its backing file grew): the capacity follows,
    /// so I/O past the end it had is no longer refused. Returns the new capacity when it
    /// grew; never lowers it (a device that shrank is [`BlockDevice::lost`]). None for
    /// devices of a fixed size.
    fn take_growth(&self) -> Option<u64> {
        None
    }
    /// Why a write to the storage would be refused now, found without writing anything: a
    /// block device set read-only (`blockdev --setro`), a file (or a loop device's backing
    /// file) made immutable or on a file system mounted read-only. None when writes should go
    /// through or the device cannot tell: a write can still fail for other reasons (a dead
    /// disk). A read-only session uses it to say that writes will fail before any is tried.
    fn write_refused(&self) -> Option<String> {
        None
    }
    /// Gives up the device's claim (its lock, its exclusive open) now, before the last
    /// handle to it is dropped, so that another opener need not wait; every later I/O
    /// through this handle fails. Nothing for devices without a claim (memory).
    fn release(&self) {}
}

/// Checks alignment and range of a request, shared by all implementations.
pub(crate) fn check_request(
    dev: &dyn BlockDevice,
    op: &'static str,
    offset_bytes: u64,
    len: usize,
) -> Result<(), DeviceError> {
    if !offset_bytes.is_multiple_of(crate::ALIGN_BYTES as u64)
        || !len.is_multiple_of(crate::ALIGN_BYTES)
    {
        return Err(DeviceError::Unaligned {
            device: dev.name().to_string(),
            op,
            offset_bytes,
            len,
        });
    }
    let capacity_bytes = dev.geometry().capacity_bytes;
    if offset_bytes
        .checked_add(len as u64)
        .is_none_or(|end| end > capacity_bytes)
    {
        return Err(DeviceError::OutOfRange {
            device: dev.name().to_string(),
            op,
            offset_bytes,
            len,
            capacity_bytes,
        });
    }
    Ok(())
}
