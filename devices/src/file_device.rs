//! Regular files and block devices opened with O_DIRECT.

use crate::block_device::check_request;
use crate::{BlockDevice, DeviceError, Geometry};
use std::fs::{File, OpenOptions as StdOpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
nix::ioctl_read_bad!(blksszget, 0x1268, libc::c_int);

/// How to open a device.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Open read-only: nothing can be written, not even a superblock.
    pub read_only: bool,
    /// For regular files only: create the file with this size if it does not exist.
    pub create_size_bytes: Option<u64>,
    /// Skip O_DIRECT (buffered I/O). Only for filesystems that refuse O_DIRECT.
    pub buffered: bool,
}

pub struct FileDevice {
    name: String,
    file: File,
    /// Opened read-only (asked for, or the device refuses writers): writes fail with EPERM.
    read_only: bool,
    geometry: Geometry,
    direct: bool,
    identity: (u64, u64),
}

impl FileDevice {
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<FileDevice, DeviceError> {
        let name = path.display().to_string();
        let open_err = |source: io::Error| DeviceError::Open {
            device: name.clone(),
            source,
        };
        if let Some(size) = opts.create_size_bytes {
            if !path.exists() {
                let f = StdOpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .map_err(open_err)?;
                f.set_len(size).map_err(open_err)?;
            }
        }
        let mut read_only = opts.read_only;
        let mut std_opts = StdOpenOptions::new();
        std_opts.read(true).write(!read_only);
        // A device set read-only (`blockdev --setro`) refuses writers at open: open it for
        // reading, so that its data still serves reads, and let every write fail with EPERM.
        if !read_only {
            if let Err(e) = std_opts.open(path) {
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM)
                ) {
                    tracing::warn!(device = %name, "device refuses writes ({e}); opened read-only");
                    read_only = true;
                    std_opts = StdOpenOptions::new();
                    std_opts.read(true);
                }
            }
        }
        let mut direct = !opts.buffered;
        // O_DIRECT: bypass the page cache so that a completed write is on the device (after
        // its flush) and reads come from the device, not from a cached copy that hides rot.
        let file = if direct {
            match std_opts.clone().custom_flags(libc::O_DIRECT).open(path) {
                Ok(f) => f,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    // Some filesystems refuse O_DIRECT; buffered I/O plus fdatasync keeps
                    // durability but loses the cache bypass. Say so once, loudly.
                    tracing::warn!(device = %name, "filesystem refuses O_DIRECT; using buffered I/O");
                    direct = false;
                    std_opts.open(path).map_err(open_err)?
                }
                Err(e) => return Err(open_err(e)),
            }
        } else {
            std_opts.open(path).map_err(open_err)?
        };
        if !read_only {
            lock_exclusive(&file, &name)?;
        }
        let meta = file.metadata().map_err(open_err)?;
        let geometry = if meta.file_type().is_block_device() {
            let mut size: u64 = 0;
            let mut ssz: libc::c_int = 0;
            // SAFETY: the fd is an open block device and the out-pointers point to live locals
            // of the types these ioctls write.
            unsafe {
                blkgetsize64(file.as_raw_fd(), &mut size).map_err(|e| open_err(e.into()))?;
                blksszget(file.as_raw_fd(), &mut ssz).map_err(|e| open_err(e.into()))?;
            }
            Geometry {
                sector_size_bytes: ssz as u32,
                capacity_bytes: size,
            }
        } else if meta.file_type().is_file() {
            Geometry {
                sector_size_bytes: 4096,
                capacity_bytes: meta.len(),
            }
        } else {
            return Err(DeviceError::Unsupported {
                device: name,
                message: "not a regular file or block device".into(),
            });
        };
        let identity = if meta.file_type().is_block_device() {
            (meta.rdev(), 0)
        } else {
            (meta.dev(), meta.ino())
        };
        Ok(FileDevice {
            name,
            file,
            read_only,
            geometry,
            direct,
            identity,
        })
    }

    pub fn is_direct(&self) -> bool {
        self.direct
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }
}

impl BlockDevice for FileDevice {
    fn name(&self) -> &str {
        &self.name
    }

    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> Result<(), DeviceError> {
        check_request(self, "read", offset_bytes, buf.len())?;
        let mut done = 0;
        while done < buf.len() {
            match self
                .file
                .read_at(&mut buf[done..], offset_bytes + done as u64)
            {
                Ok(0) => {
                    return Err(DeviceError::Short {
                        device: self.name.clone(),
                        op: "read",
                        offset_bytes,
                        expected: buf.len(),
                        got: done,
                    })
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DeviceError::io(&self.name, "read", offset_bytes, e)),
            }
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset_bytes: u64) -> Result<(), DeviceError> {
        check_request(self, "write", offset_bytes, buf.len())?;
        if self.read_only {
            let e = io::Error::from_raw_os_error(libc::EPERM);
            return Err(DeviceError::io(&self.name, "write", offset_bytes, e));
        }
        let mut done = 0;
        while done < buf.len() {
            match self.file.write_at(&buf[done..], offset_bytes + done as u64) {
                Ok(0) => {
                    return Err(DeviceError::Short {
                        device: self.name.clone(),
                        op: "write",
                        offset_bytes,
                        expected: buf.len(),
                        got: done,
                    })
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DeviceError::io(&self.name, "write", offset_bytes, e)),
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), DeviceError> {
        self.file
            .sync_data()
            .map_err(|e| DeviceError::io(&self.name, "flush", 0, e))
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }

    fn identity(&self) -> Option<(u64, u64)> {
        Some(self.identity)
    }
}

/// How long a writable open waits for another holder of the device's lock
/// (`ECTABLE_LOCK_WAIT_MS` overrides it).
fn lock_wait() -> std::time::Duration {
    let ms = std::env::var("ECTABLE_LOCK_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    std::time::Duration::from_millis(ms)
}

/// Takes the exclusive advisory lock (`flock`) of a device opened for writing, waiting up to
/// [`lock_wait`] for another holder. Two writers never share a device; and a process that
/// was killed still holds the lock while writes it had in flight (io_uring requests keep
/// their file referenced) land, so a new writer cannot start before they have.
fn lock_exclusive(file: &std::fs::File, name: &str) -> Result<(), DeviceError> {
    let wait = lock_wait();
    let deadline = std::time::Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(DeviceError::Open {
                    device: name.to_string(),
                    source: io::Error::other(format!(
                        "in use: another writer has it open (waited {:.1} s for its lock)",
                        wait.as_secs_f64()
                    )),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(DeviceError::Open {
                    device: name.to_string(),
                    source: e,
                })
            }
        }
    }
}
