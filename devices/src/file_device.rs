//! Regular files and block devices opened with O_DIRECT.

use crate::block_device::check_request;
use crate::block_device::BackingSpace;
use crate::storage_id::{
    kernel_name, loop_backing_file, loop_backing_file_deleted, loops_backed_by, major, minor,
};
use crate::{BlockDevice, DeviceError, Geometry, StorageId};
use std::fs::{File, OpenOptions as StdOpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
nix::ioctl_read_bad!(blksszget, 0x1268, libc::c_int);
nix::ioctl_read_bad!(blkroget, 0x125e, libc::c_int);

/// Why opening `path` for writing is refused (it opens and closes it; nothing is written),
/// for the errors that mean "this file takes no writes", whoever asks: immutable or
/// append-only (EPERM), a read-only file system (EROFS). Not EACCES: that is about the
/// caller (a monitoring user without write permission), not about the storage.
fn refuses_writes(path: &Path) -> Option<io::Error> {
    match StdOpenOptions::new().write(true).open(path) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EROFS)) => Some(e),
        _ => None,
    }
}

/// How to open a device.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Open read-only: nothing can be written, not even a superblock.
    pub read_only: bool,
    /// For regular files only: create the file with this size if it does not exist.
    pub create_size_bytes: Option<u64>,
    /// Skip O_DIRECT (buffered I/O). Only for filesystems that refuse O_DIRECT.
    pub buffered: bool,
    /// How long a writable open waits for another writer's claim on the storage before it
    /// fails with "in use"; None: the default (10 s, or `ECTABLE_LOCK_WAIT_MS`).
    pub lock_wait: Option<std::time::Duration>,
}

/// A regular file or block device, opened with O_DIRECT (buffered only where the filesystem
/// refuses it). Opened for writing, it holds the storage against every other writer (see
/// docs/design.md, "One writer per storage").
pub struct FileDevice {
    name: String,
    file: File,
    /// Opened read-only (asked for, or the device refuses writers): writes fail with EPERM.
    read_only: bool,
    sector_size_bytes: u32,
    /// The storage's size at open, raised by [`BlockDevice::take_growth`] (never lowered: a
    /// device that shrank is reported by [`BlockDevice::lost`]).
    capacity_bytes: std::sync::atomic::AtomicU64,
    direct: bool,
    identity: StorageId,
    /// For a loop device opened for writing: its backing file, held for its flock.
    backing_lock: Option<File>,
    /// `release` was called: the descriptors point at /dev/null.
    released: std::sync::atomic::AtomicBool,
}

impl FileDevice {
    /// Opens `path` as `opts` says: creates a missing regular file when asked, takes the
    /// writer's lock (and a block device's exclusive claim), and reads the geometry. Fails with
    /// [`DeviceError::Open`] when another writer holds the storage (after waiting for it) and
    /// [`DeviceError::Unsupported`] for anything but a regular file or block device.
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
        // Refused before the open: a directory opens (read-only) and would be refused only
        // after the O_DIRECT fallback below had warned about its file system, and opening a
        // FIFO waits for ever for the other end (a socket fails with a less clear error).
        if std::fs::metadata(path)
            .is_ok_and(|m| !(m.file_type().is_file() || m.file_type().is_block_device()))
        {
            return Err(DeviceError::Unsupported {
                device: name,
                message: "not a regular file or block device".into(),
            });
        }
        let mut read_only = opts.read_only;
        // Block devices opened for writing are claimed with O_EXCL below; know which before
        // opening (the kind is checked again on the open file).
        let block_path = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device());
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
        // O_EXCL on a block device (without O_CREAT) claims it exclusively against every other
        // O_EXCL opener through any of its device nodes: one writer per block device, whatever
        // the name (the flock below only covers the one node). A killed writer's claim lasts
        // while its in-flight I/O holds the file, like its flock: wait for it as for the lock.
        let excl = block_path && !read_only;
        let wait = opts.lock_wait.unwrap_or_else(lock_wait);
        let claim = if excl { libc::O_EXCL } else { 0 };
        let mut direct = !opts.buffered;
        let busy_err = |e: io::Error| {
            if excl && e.raw_os_error() == Some(libc::EBUSY) {
                let rdev = std::fs::metadata(path).map(|m| m.rdev()).unwrap_or(0);
                let kname = kernel_name(rdev)
                    .map(|k| format!(" ({k})"))
                    .unwrap_or_default();
                open_err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!(
                        "in use: block device {}:{}{kname} is held by another writer under this \
                         or another name, or is mounted (waited {:.1} s for it)",
                        major(rdev),
                        minor(rdev),
                        wait.as_secs_f64()
                    ),
                ))
            } else {
                open_err(e)
            }
        };
        // O_DIRECT: bypass the page cache so that a completed write is on the device (after
        // its flush) and reads come from the device, not from a cached copy that hides rot.
        let file = if direct {
            match open_claimed(&std_opts, path, claim | libc::O_DIRECT, excl, wait) {
                Ok(f) => f,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    // Some filesystems refuse O_DIRECT; buffered I/O plus fdatasync keeps
                    // durability but loses the cache bypass. Say so once, loudly.
                    tracing::warn!(device = %name, "filesystem refuses O_DIRECT; using buffered I/O");
                    direct = false;
                    open_claimed(&std_opts, path, claim, excl, wait).map_err(busy_err)?
                }
                Err(e) => return Err(busy_err(e)),
            }
        } else {
            open_claimed(&std_opts, path, claim, excl, wait).map_err(busy_err)?
        };
        let meta = file.metadata().map_err(open_err)?;
        let is_block = meta.file_type().is_block_device();
        if is_block && !read_only && !excl {
            return Err(DeviceError::Unsupported {
                device: name,
                message: "became a block device while being opened".into(),
            });
        }
        let mut backing_lock = None;
        let identity = if is_block {
            // A loop device: its backing file is the same storage. A writer also takes the
            // backing file's lock, so that a writer through the file (opened before the loop
            // device was attached) and a second loop device over the file exclude it.
            let rdev = meta.rdev();
            let mut backing_file = None;
            if let Some(bpath) = loop_backing_file(rdev) {
                match StdOpenOptions::new().read(true).open(&bpath) {
                    Ok(bf) => {
                        let bm = bf.metadata().map_err(open_err)?;
                        backing_file = Some((bm.dev(), bm.ino()));
                        if !read_only {
                            let what = format!(
                                "another writer has its backing file {} open",
                                bpath.display()
                            );
                            lock_exclusive(&bf, &name, &what, wait)?;
                            backing_lock = Some(bf);
                        }
                    }
                    Err(e) => tracing::warn!(
                        device = %name,
                        backing = %bpath.display(),
                        "cannot open the loop device's backing file ({e}); writers through \
                         it are not excluded"
                    ),
                }
            }
            StorageId::Block { rdev, backing_file }
        } else {
            let loops = if meta.file_type().is_file() {
                loops_backed_by(meta.dev(), meta.ino())
            } else {
                Vec::new()
            };
            // A regular file backing an attached loop device is written only through that
            // device: its reads and writes (and its page cache, without direct I/O) are the
            // loop device's. Reading the file is allowed.
            if !read_only && !loops.is_empty() {
                let names: Vec<&str> = loops.iter().map(|l| l.name.as_str()).collect();
                return Err(open_err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!(
                        "refusing to write: it backs the attached loop device {}; write \
                         through {} (the file may be opened read-only)",
                        names.join(", "),
                        names[0]
                    ),
                )));
            }
            StorageId::File {
                dev: meta.dev(),
                ino: meta.ino(),
                loop_devices: loops.iter().map(|l| l.rdev).collect(),
            }
        };
        if !read_only {
            lock_exclusive(&file, &name, "another writer has it open", wait)?;
        }
        let geometry = if is_block {
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
        Ok(FileDevice {
            name,
            file,
            read_only,
            sector_size_bytes: geometry.sector_size_bytes,
            capacity_bytes: geometry.capacity_bytes.into(),
            direct,
            identity,
            backing_lock,
            released: Default::default(),
        })
    }

    /// Whether I/O bypasses the page cache (false when O_DIRECT was refused or not asked for).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Whether the device was opened read-only (asked for, or it refused writers); writes then
    /// fail with EPERM.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The storage's size now, read through the open descriptor (a file's length, a block
    /// device's size); None when it cannot be read.
    fn storage_bytes(&self) -> Option<u64> {
        let m = self.file.metadata().ok()?;
        if m.file_type().is_file() {
            return Some(m.len());
        }
        if !m.file_type().is_block_device() {
            return None;
        }
        let mut size: u64 = 0;
        // SAFETY: the fd is an open block device and the out-pointer points to a live local
        // of the type the ioctl writes.
        unsafe { blkgetsize64(self.file.as_raw_fd(), &mut size) }.ok()?;
        Some(size)
    }
}

impl BlockDevice for FileDevice {
    fn name(&self) -> &str {
        &self.name
    }

    fn geometry(&self) -> Geometry {
        Geometry {
            sector_size_bytes: self.sector_size_bytes,
            capacity_bytes: self
                .capacity_bytes
                .load(std::sync::atomic::Ordering::SeqCst),
        }
    }

    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> Result<(), DeviceError> {
        check_request(self, "read", offset_bytes, buf.len())?;
        self.check_not_released("read", offset_bytes)?;
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
        self.check_not_released("write", offset_bytes)?;
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
        self.check_not_released("flush", 0)?;
        self.file
            .sync_data()
            .map_err(|e| DeviceError::io(&self.name, "flush", 0, e))
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }

    fn identity(&self) -> Option<StorageId> {
        if self.released.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        Some(self.identity.clone())
    }

    fn lost(&self) -> Option<String> {
        if self.released.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        const GOES: &str = "the data on it lasts only until the array closes";
        let cap = self.geometry().capacity_bytes;
        let m = self.file.metadata().ok()?;
        if m.file_type().is_file() && m.nlink() == 0 {
            return Some(format!("its file was deleted; {GOES}"));
        }
        if m.file_type().is_block_device() && loop_backing_file_deleted(m.rdev()) {
            return Some(format!(
                "its loop device's backing file was deleted; {GOES}"
            ));
        }
        let now = self.storage_bytes()?;
        (now < cap).then(|| format!("it shrank to {now} bytes from the {cap} it had at open"))
    }

    fn take_growth(&self) -> Option<u64> {
        if self.released.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        let now = self.storage_bytes()?;
        let before = self
            .capacity_bytes
            .fetch_max(now, std::sync::atomic::Ordering::SeqCst);
        (now > before).then_some(now)
    }

    fn write_refused(&self) -> Option<String> {
        if self.released.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        let m = self.file.metadata().ok()?;
        if m.file_type().is_file() {
            // The open file itself, reopened through /proc (its path may have moved).
            let me = format!("/proc/self/fd/{}", self.file.as_raw_fd());
            return refuses_writes(Path::new(&me)).map(|e| {
                format!("its file refuses writes: {e} (immutable, or a read-only file system?)")
            });
        }
        if !m.file_type().is_block_device() {
            return None;
        }
        let mut ro: libc::c_int = 0;
        // SAFETY: the fd is an open block device and the out-pointer points to a live local
        // of the type the ioctl writes.
        if unsafe { blkroget(self.file.as_raw_fd(), &mut ro) }.is_ok() && ro != 0 {
            return Some(
                "the block device is read-only (blockdev --setro, or a write-protected disk): \
                 writes fail with EPERM"
                    .to_string(),
            );
        }
        let backing = loop_backing_file(m.rdev())?;
        refuses_writes(&backing).map(|e| {
            format!(
                "its loop device's backing file {} refuses writes: {e}; writes fail with EIO",
                backing.display()
            )
        })
    }

    fn backing_space(&self) -> Option<BackingSpace> {
        if self.released.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        let meta = self.file.metadata().ok()?;
        let (meta, vfs) = if meta.file_type().is_file() {
            (meta, nix::sys::statvfs::fstatvfs(&self.file).ok()?)
        } else if meta.file_type().is_block_device() {
            // A loop device: the file behind it (none for a disk).
            let path = loop_backing_file(meta.rdev())?;
            (
                std::fs::metadata(&path).ok()?,
                nix::sys::statvfs::statvfs(&path).ok()?,
            )
        } else {
            return None;
        };
        Some(BackingSpace {
            fs_id: meta.dev(),
            unallocated_bytes: meta.len().saturating_sub(meta.blocks().saturating_mul(512)),
            fs_free_bytes: free_bytes_of(&vfs),
        })
    }

    fn release(&self) {
        use std::sync::atomic::Ordering;
        if self.released.swap(true, Ordering::SeqCst) {
            return;
        }
        // The descriptor numbers stay owned by their `File`s (closed when this handle is
        // dropped); pointing them at /dev/null (read-only) closes the device's open file
        // description now, and with it the O_EXCL claim and the flock. A submission that
        // still holds the number (an io_uring ring caches it) then reads nothing and cannot
        // write: a short read or EBADF, never another file's data.
        let Ok(null) = File::open("/dev/null") else {
            tracing::warn!(device = %self.name, "cannot open /dev/null: device kept until dropped");
            return;
        };
        let fds = std::iter::once(self.file.as_raw_fd())
            .chain(self.backing_lock.as_ref().map(|b| b.as_raw_fd()));
        for fd in fds {
            if let Err(e) = nix::unistd::dup2(null.as_raw_fd(), fd) {
                tracing::warn!(device = %self.name, "release: {e}");
            }
        }
    }
}

impl FileDevice {
    fn check_not_released(&self, op: &'static str, offset_bytes: u64) -> Result<(), DeviceError> {
        if self.released.load(std::sync::atomic::Ordering::SeqCst) {
            let e = io::Error::new(
                io::ErrorKind::NotConnected,
                "device released (array closed)",
            );
            return Err(DeviceError::io(&self.name, op, offset_bytes, e));
        }
        Ok(())
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
/// `in_use` says who holds it, in the error when the wait runs out.
fn lock_exclusive(
    file: &std::fs::File,
    name: &str,
    in_use: &str,
    wait: std::time::Duration,
) -> Result<(), DeviceError> {
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
                    source: io::Error::new(
                        io::ErrorKind::ResourceBusy,
                        format!(
                            "in use: {in_use} (waited {:.1} s for its lock)",
                            wait.as_secs_f64()
                        ),
                    ),
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

/// Opens with extra `flags`; with `excl` (an O_EXCL claim of a block device), waits up to
/// [`lock_wait`] while another claim holds the device (EBUSY).
fn open_claimed(
    std_opts: &StdOpenOptions,
    path: &Path,
    flags: libc::c_int,
    excl: bool,
    wait: std::time::Duration,
) -> io::Result<File> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match std_opts.clone().custom_flags(flags).open(path) {
            Err(e)
                if excl
                    && e.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            r => return r,
        }
    }
}

/// Allocates every block of the regular file at `path` (`fallocate`, keeping its contents and
/// size), so that writes into it can no longer fail for want of room on its file system.
/// Returns the bytes it had to allocate, or None for anything but a regular file (a block
/// device has all its blocks). Fails with the file system's error (ENOSPC when there is
/// not room for the whole file; EOPNOTSUPP where the file system cannot preallocate).
pub fn preallocate_file(path: &Path) -> Result<Option<u64>, DeviceError> {
    let name = path.display().to_string();
    let io_err = |source: io::Error| DeviceError::Io {
        device: name.clone(),
        op: "preallocate",
        offset_bytes: 0,
        source,
    };
    let meta = std::fs::metadata(path).map_err(|source| DeviceError::Open {
        device: name.clone(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Ok(None);
    }
    let before = meta.blocks() * 512;
    let file = StdOpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|source| DeviceError::Open {
            device: name.clone(),
            source,
        })?;
    let len = libc::off_t::try_from(meta.len())
        .map_err(|_| io_err(io::Error::from_raw_os_error(libc::EFBIG)))?;
    nix::fcntl::fallocate(
        file.as_raw_fd(),
        nix::fcntl::FallocateFlags::empty(),
        0,
        len,
    )
    .map_err(|e| io_err(io::Error::from_raw_os_error(e as i32)))?;
    let after = file.metadata().map_err(io_err)?.blocks() * 512;
    Ok(Some(after.saturating_sub(before)))
}

/// Bytes the file system holding `path` (a directory, or a file's directory) still gives an
/// unprivileged writer (f_bavail × f_frsize); None when it cannot be read.
pub fn free_bytes_under(path: &Path) -> Option<u64> {
    Some(free_bytes_of(&nix::sys::statvfs::statvfs(path).ok()?))
}

/// f_bavail × f_frsize of a file system's statvfs.
fn free_bytes_of(vfs: &nix::sys::statvfs::Statvfs) -> u64 {
    // fsblkcnt_t and c_ulong are 32 bits wide on 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    (vfs.blocks_available() as u64).saturating_mul(vfs.fragment_size() as u64)
}
