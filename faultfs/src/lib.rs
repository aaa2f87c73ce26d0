//! A FUSE file system of device files whose reads, writes and fsyncs can be delayed or
//! failed at any moment, so that fail-slow devices, latent sector errors and failed flushes
//! reach ectable through the kernel's real I/O path and io_uring (docs/fault-model.md,
//! "Real-kernel faults").
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use ectable_faultfs::{Config, FaultFs};
//! let backing = tempfile::tempdir()?;
//! let mnt = tempfile::tempdir()?;
//! let fs = FaultFs::mount(mnt.path(), &Config::new(backing.path(), 6, 64 << 20))?;
//! fs.faults(3).set_delay(std::time::Duration::from_millis(5));
//! // ... open fs.paths() as the array's devices ...
//! # Ok(()) }
//! ```
//!
//! Mounting needs root (the file system is mounted through /dev/fuse directly).

mod control;
mod device;
mod faults;
mod fs;

pub use faults::{DeviceFaults, FaultCounters};
pub use fs::CONTROL_NAME;

use fuser::{BackgroundSession, MountOption};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to mount.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the device files' bytes live (one regular file per device, created at the
    /// device's size when missing; an existing file keeps its bytes and gives its size).
    pub backing_dir: PathBuf,
    /// The device files: name and size in bytes.
    pub devices: Vec<(String, u64)>,
    /// Threads serving each device's requests (its queue depth).
    pub threads_per_device: usize,
    /// Serve the control file (`.faults`) for fault commands from a shell.
    pub control_file: bool,
    /// Pass a successful fsync on to the backing file (fdatasync).
    pub sync_backing: bool,
}

impl Config {
    /// `n` devices `dev0`..`dev{n-1}` of `size` bytes, 8 threads each, with a control file.
    pub fn new(backing_dir: &Path, n: usize, size: u64) -> Config {
        Config {
            backing_dir: backing_dir.to_path_buf(),
            devices: (0..n).map(|i| (format!("dev{i}"), size)).collect(),
            threads_per_device: 8,
            control_file: true,
            sync_backing: true,
        }
    }
}

/// A mounted fault file system; dropping it unmounts it (lazily, if files are still open).
pub struct FaultFs {
    mountpoint: PathBuf,
    names: Vec<String>,
    faults: Vec<Arc<DeviceFaults>>,
    session: Option<BackgroundSession>,
    /// The kernel's number for this mount's FUSE connection (its st_dev), to abort it.
    connection: Option<u64>,
}

impl FaultFs {
    pub fn mount(mountpoint: &Path, config: &Config) -> io::Result<FaultFs> {
        if config.devices.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no devices to serve",
            ));
        }
        let mut devices = Vec::with_capacity(config.devices.len());
        for (name, size) in &config.devices {
            if name.is_empty() || name.contains('/') || name == fs::CONTROL_NAME {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{name:?} cannot name a device file"),
                ));
            }
            let path = config.backing_dir.join(name);
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            let len = file.metadata()?.len();
            let size = if len == 0 {
                file.set_len(*size)?;
                *size
            } else {
                len
            };
            devices.push(Arc::new(device::Device::new(
                name.clone(),
                size,
                file,
                Arc::new(DeviceFaults::default()),
                config.sync_backing,
                config.threads_per_device,
            )?));
        }
        let names = devices.iter().map(|d| d.name.clone()).collect();
        let faults = devices.iter().map(|d| Arc::clone(&d.faults)).collect();
        let fs = fs::FaultFs::new(devices, config.control_file);
        let options = [
            MountOption::FSName("ectable-faultfs".into()),
            MountOption::AllowOther,
            MountOption::DefaultPermissions,
        ];
        let session = fuser::spawn_mount2(fs, mountpoint, &options)?;
        let connection = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(mountpoint).ok().map(|m| m.dev())
        };
        Ok(FaultFs {
            mountpoint: mountpoint.to_path_buf(),
            names,
            faults,
            session: Some(session),
            connection,
        })
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The device files, in order.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.names.iter().map(|n| self.mountpoint.join(n)).collect()
    }

    pub fn path(&self, i: usize) -> PathBuf {
        self.mountpoint.join(&self.names[i])
    }

    /// Device `i`'s fault settings and counters.
    pub fn faults(&self, i: usize) -> &Arc<DeviceFaults> {
        &self.faults[i]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// How long a drop waits for files still open on the mount to be closed before it aborts
/// the connection.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

impl Drop for FaultFs {
    fn drop(&mut self) {
        // The session unmounts; a file still open (a leaked engine in a failed test, a
        // probe thread an engine does not join) makes that fail with EBUSY, so detach
        // lazily after it: the mount goes when the last file closes, and the session's
        // thread serves until then. (EINVAL when the session's unmount worked.)
        let guard = self.session.take().map(|s| {
            let BackgroundSession { guard, .. } = s;
            guard
        });
        if let Ok(c) = std::ffi::CString::new(self.mountpoint.as_os_str().as_encoded_bytes()) {
            // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
        // The server lives in this process: a file on the mount still open when the process
        // exits is closed after the server's threads are gone, and that close waits for an
        // answer for ever (the process stays a zombie). So wait for the last close, and
        // abort the connection if it does not come: then such a close fails at once.
        let Some(guard) = guard else { return };
        let start = std::time::Instant::now();
        while !guard.is_finished() && start.elapsed() < CLOSE_GRACE {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if !guard.is_finished() {
            if let Some(dev) = self.connection {
                abort_connection(dev);
            }
        }
    }
}

/// Aborts FUSE connection `dev` through the fusectl file system (mounted if it is not):
/// its pending and later requests fail with ENOTCONN.
fn abort_connection(dev: u64) {
    let dir = Path::new("/sys/fs/fuse/connections");
    let abort = dir.join(dev.to_string()).join("abort");
    if !abort.exists() {
        let _ = std::process::Command::new("mount")
            .args(["-t", "fusectl", "none"])
            .arg(dir)
            .status();
    }
    if let Err(e) = std::fs::write(&abort, b"1") {
        eprintln!(
            "faultfs: cannot abort FUSE connection {dev} ({}): {e}",
            abort.display()
        );
    }
}
