//! The FUSE file system: a flat directory of device files (and the optional control file),
//! each device served by its own pool of threads.

use crate::control;
use crate::device::Device;
use fuser::consts::FOPEN_DIRECT_IO;
use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow,
};
use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const ROOT: u64 = 1;
const TTL: Duration = Duration::from_secs(1);
/// The control file's name in the mount's directory.
pub const CONTROL_NAME: &str = ".faults";

pub(crate) struct FaultFs {
    pub devices: Vec<Arc<Device>>,
    pub control: bool,
    uid: u32,
    gid: u32,
    started: SystemTime,
}

impl FaultFs {
    pub fn new(devices: Vec<Arc<Device>>, control: bool) -> FaultFs {
        FaultFs {
            devices,
            control,
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            started: SystemTime::now(),
        }
    }

    fn control_ino(&self) -> u64 {
        2 + self.devices.len() as u64
    }

    fn device(&self, ino: u64) -> Option<&Arc<Device>> {
        let i = usize::try_from(ino.checked_sub(2)?).ok()?;
        self.devices.get(i)
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let (kind, size, perm, nlink) = if ino == ROOT {
            (FileType::Directory, 0, 0o755, 2)
        } else if let Some(d) = self.device(ino) {
            (FileType::RegularFile, d.size, 0o600, 1)
        } else if self.control && ino == self.control_ino() {
            (FileType::RegularFile, 0, 0o600, 1)
        } else {
            return None;
        };
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: self.started,
            mtime: self.started,
            ctime: self.started,
            crtime: self.started,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn names(&self) -> Vec<(u64, FileType, String)> {
        let mut v = vec![
            (ROOT, FileType::Directory, ".".to_string()),
            (ROOT, FileType::Directory, "..".to_string()),
        ];
        for (i, d) in self.devices.iter().enumerate() {
            v.push((2 + i as u64, FileType::RegularFile, d.name.clone()));
        }
        if self.control {
            v.push((
                self.control_ino(),
                FileType::RegularFile,
                CONTROL_NAME.to_string(),
            ));
        }
        v
    }
}

impl Filesystem for FaultFs {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> Result<(), libc::c_int> {
        // Let the kernel send large requests whole (a chunk in one request where it can).
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_background(256);
        // Asynchronous direct I/O: without it the kernel serves an io_uring or aio read of a
        // FUSE file inside the submitting call, one at a time, and a queue depth of 32 is a
        // queue depth of 1. With it the requests of one submission reach the device threads
        // together, as they reach a real device's queue.
        if config
            .add_capabilities(fuser::consts::FUSE_ASYNC_DIO)
            .is_err()
        {
            tracing::warn!("the kernel does not offer asynchronous direct I/O to FUSE");
        }
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        if parent != ROOT {
            return reply.error(libc::ENOENT);
        }
        let found = self
            .names()
            .into_iter()
            .skip(2)
            .find(|(_, _, n)| OsStr::new(n) == name)
            .and_then(|(ino, _, _)| self.attr(ino));
        match found {
            Some(a) => reply.entry(&TTL, &a, 0),
            None => reply.error(libc::ENOENT),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(libc::ENOENT),
        }
    }

    #[allow(clippy::too_many_arguments)] // the trait's signature
    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let Some(a) = self.attr(ino) else {
            return reply.error(libc::ENOENT);
        };
        // A device's size is fixed (the control file takes O_TRUNC from a shell's `>`).
        match size {
            Some(s) if self.device(ino).is_some() && s != a.size => reply.error(libc::EPERM),
            _ => reply.attr(&TTL, &a),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        if self.attr(ino).is_some() && ino != ROOT {
            // Direct I/O: the kernel caches nothing; every read reaches the device.
            reply.opened(0, FOPEN_DIRECT_IO);
        } else {
            reply.error(libc::ENOENT);
        }
    }

    #[allow(clippy::too_many_arguments)] // the trait's signature
    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(libc::EINVAL);
        };
        if self.control && ino == self.control_ino() {
            let text = control::report(&self.devices);
            let bytes = text.as_bytes();
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let end = start.saturating_add(size as usize).min(bytes.len());
            return reply.data(&bytes[start..end]);
        }
        let Some(d) = self.device(ino) else {
            return reply.error(libc::ENOENT);
        };
        let dev = Arc::clone(d);
        d.submit(Box::new(move || match dev.read(offset, size) {
            Ok(buf) => reply.data(&buf),
            Err(e) => reply.error(e),
        }));
    }

    #[allow(clippy::too_many_arguments)] // the trait's signature
    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(libc::EINVAL);
        };
        if self.control && ino == self.control_ino() {
            let text = String::from_utf8_lossy(data);
            return match control::apply(&self.devices, &text) {
                Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
                Err(e) => {
                    tracing::warn!("control: {e}");
                    reply.error(libc::EINVAL)
                }
            };
        }
        let Some(d) = self.device(ino) else {
            return reply.error(libc::ENOENT);
        };
        let dev = Arc::clone(d);
        let data = data.to_vec();
        d.submit(Box::new(move || match dev.write(offset, &data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }));
    }

    fn fsync(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let Some(d) = self.device(ino) else {
            // The control file: nothing to flush.
            return reply.ok();
        };
        let dev = Arc::clone(d);
        d.submit(Box::new(move || match dev.fsync() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }));
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lock: u64, reply: ReplyEmpty) {
        // close(2): nothing is buffered here; durability is fsync's.
        reply.ok();
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        if ino != ROOT {
            return reply.error(libc::ENOTDIR);
        }
        let skip = usize::try_from(offset).unwrap_or(0);
        for (i, (ino, kind, name)) in self.names().into_iter().enumerate().skip(skip) {
            if reply.add(ino, (i + 1) as i64, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}
