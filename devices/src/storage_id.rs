//! What storage a device path names, whatever the name.
//!
//! The same storage can be reached under several names: two device nodes with the same
//! device number (a `mknod` alias, as in a container's /dev), two paths to one inode (hard
//! links, bind mounts, symlinks), and a loop device together with the regular file it reads
//! and writes. [`StorageId`] identifies the storage behind a name so that an array never lists
//! it twice; loop devices are found through sysfs (`/sys/block/loop*/loop/backing_file`) and
//! matched by the backing file's (device, inode), not by its path, which may be spelled
//! differently.
//!
//! Not covered: overlapping ranges of one disk (a partition and its whole disk). Loop devices
//! over different ranges of one file count as the same storage.

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What identifies the storage behind a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageId {
    /// A block device: its device number (`st_rdev`, the same for every node of it). For a
    /// loop device, also the (`st_dev`, `st_ino`) of its backing file, when it can be found.
    Block {
        /// The device number (`st_rdev`).
        rdev: u64,
        /// A loop device's backing file as (`st_dev`, `st_ino`); None for other block devices,
        /// or when sysfs does not lead to it.
        backing_file: Option<(u64, u64)>,
    },
    /// A regular file: (`st_dev`, `st_ino`), and the device numbers of the loop devices
    /// attached to it when it was looked at.
    File {
        /// The device the file lives on (`st_dev`).
        dev: u64,
        /// The file's inode number (`st_ino`).
        ino: u64,
        /// Device numbers (`st_rdev`) of the loop devices attached to the file.
        loop_devices: Vec<u64>,
    },
    /// Anything else (not a device ectable can use): compared by (`st_dev`, `st_ino`).
    Other {
        /// The device the file lives on (`st_dev`).
        dev: u64,
        /// The file's inode number (`st_ino`).
        ino: u64,
    },
}

impl StorageId {
    /// The identity of an open file or a path's metadata (follows no further names: call it
    /// with the metadata of the file actually opened).
    pub fn from_metadata(meta: &Metadata) -> StorageId {
        let ft = meta.file_type();
        if ft.is_block_device() {
            let rdev = meta.rdev();
            StorageId::Block {
                rdev,
                backing_file: loop_backing_file(rdev)
                    .and_then(|p| std::fs::metadata(p).ok())
                    .map(|m| (m.dev(), m.ino())),
            }
        } else if ft.is_file() {
            StorageId::File {
                dev: meta.dev(),
                ino: meta.ino(),
                loop_devices: loops_backed_by(meta.dev(), meta.ino())
                    .into_iter()
                    .map(|l| l.rdev)
                    .collect(),
            }
        } else {
            StorageId::Other {
                dev: meta.dev(),
                ino: meta.ino(),
            }
        }
    }

    /// The identity of the storage a path names (following symlinks).
    pub fn of_path(path: &Path) -> io::Result<StorageId> {
        Ok(StorageId::from_metadata(&std::fs::metadata(path)?))
    }

    /// Whether two identities name the same storage: the same block device, the same inode,
    /// a loop device and its backing file, or two loop devices over one file.
    pub fn same_storage(&self, other: &StorageId) -> bool {
        use StorageId::*;
        match (self, other) {
            (
                Block {
                    rdev: a,
                    backing_file: fa,
                },
                Block {
                    rdev: b,
                    backing_file: fb,
                },
            ) => a == b || (fa.is_some() && fa == fb),
            (
                File {
                    dev: d1, ino: i1, ..
                },
                File {
                    dev: d2, ino: i2, ..
                },
            ) => (d1, i1) == (d2, i2),
            (
                Block { rdev, backing_file },
                File {
                    dev,
                    ino,
                    loop_devices,
                },
            )
            | (
                File {
                    dev,
                    ino,
                    loop_devices,
                },
                Block { rdev, backing_file },
            ) => *backing_file == Some((*dev, *ino)) || loop_devices.contains(rdev),
            (Other { dev: d1, ino: i1 }, Other { dev: d2, ino: i2 }) => (d1, i1) == (d2, i2),
            _ => false,
        }
    }
}

/// A loop device attached to a file.
#[derive(Debug, Clone)]
pub(crate) struct LoopDevice {
    /// `/dev/<kernel name>`: the name the kernel gives it (a container may call it otherwise).
    pub name: String,
    pub rdev: u64,
}

/// The kernel's encoding of a device number (glibc `makedev`, `major`, `minor`).
pub(crate) fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | ((major & !0xfff) << 32) | (minor & 0xff) | ((minor & !0xff) << 12)
}

pub(crate) fn major(rdev: u64) -> u64 {
    ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)
}

pub(crate) fn minor(rdev: u64) -> u64 {
    (rdev & 0xff) | ((rdev >> 12) & !0xff)
}

/// The kernel name of a block device (`loop0`, `sda`), from `/sys/dev/block/M:m`.
pub(crate) fn kernel_name(rdev: u64) -> Option<String> {
    let link =
        std::fs::read_link(format!("/sys/dev/block/{}:{}", major(rdev), minor(rdev))).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

/// Reads a loop device's `loop/backing_file` attribute: the backing file's path, without the
/// " (deleted)" mark of an unlinked file. None when the device is no loop device or is not
/// attached.
fn read_backing_file(sysfs_dir: &Path) -> Option<PathBuf> {
    let s = std::fs::read_to_string(sysfs_dir.join("loop/backing_file")).ok()?;
    let s = s.trim_end_matches('\n');
    let s = s.strip_suffix(" (deleted)").unwrap_or(s);
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// Whether the loop device with this device number is attached to a file that has since
/// been deleted (sysfs marks its path " (deleted)").
pub(crate) fn loop_backing_file_deleted(rdev: u64) -> bool {
    std::fs::read_to_string(sysfs_dir(rdev).join("loop/backing_file"))
        .is_ok_and(|s| s.trim_end_matches('\n').ends_with(" (deleted)"))
}

/// The sysfs directory of the block device with this device number.
fn sysfs_dir(rdev: u64) -> PathBuf {
    PathBuf::from(format!("/sys/dev/block/{}:{}", major(rdev), minor(rdev)))
}

/// The backing file of the loop device with this device number, if it is an attached loop
/// device.
pub(crate) fn loop_backing_file(rdev: u64) -> Option<PathBuf> {
    read_backing_file(&sysfs_dir(rdev))
}

/// The loop devices attached to the file (`st_dev`, `st_ino`), found through sysfs and
/// compared by the backing file's device and inode (its path may be spelled differently).
pub(crate) fn loops_backed_by(dev: u64, ino: u64) -> Vec<LoopDevice> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let dir = e.path();
        let Some(backing) = read_backing_file(&dir) else {
            continue;
        };
        let Ok(m) = std::fs::metadata(&backing) else {
            continue;
        };
        if (m.dev(), m.ino()) != (dev, ino) {
            continue;
        }
        let Some(rdev) = std::fs::read_to_string(dir.join("dev"))
            .ok()
            .and_then(|s| parse_dev(s.trim()))
        else {
            continue;
        };
        found.push(LoopDevice {
            name: format!("/dev/{name}"),
            rdev,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// Parses sysfs's "major:minor".
fn parse_dev(s: &str) -> Option<u64> {
    let (a, b) = s.split_once(':')?;
    Some(makedev(a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_numbers_round_trip() {
        for (ma, mi) in [(7, 0), (7, 300), (259, 1), (4095, 1 << 19), (8, 17)] {
            let d = makedev(ma, mi);
            assert_eq!((major(d), minor(d)), (ma, mi));
        }
        assert_eq!(parse_dev("7:3"), Some(makedev(7, 3)));
        assert_eq!(parse_dev("x"), None);
    }

    #[test]
    fn same_storage_rules() {
        let blk = |rdev, b| StorageId::Block {
            rdev,
            backing_file: b,
        };
        let file = |dev, ino, loops: Vec<u64>| StorageId::File {
            dev,
            ino,
            loop_devices: loops,
        };
        assert!(blk(1, None).same_storage(&blk(1, None)));
        assert!(!blk(1, None).same_storage(&blk(2, None)));
        assert!(blk(1, Some((5, 6))).same_storage(&blk(2, Some((5, 6)))));
        assert!(!blk(1, None).same_storage(&blk(2, None)));
        assert!(file(5, 6, vec![]).same_storage(&file(5, 6, vec![9])));
        assert!(!file(5, 6, vec![]).same_storage(&file(5, 7, vec![])));
        assert!(blk(1, Some((5, 6))).same_storage(&file(5, 6, vec![])));
        assert!(file(5, 6, vec![]).same_storage(&blk(1, Some((5, 6)))));
        assert!(file(5, 7, vec![1]).same_storage(&blk(1, None)));
        assert!(!file(5, 7, vec![2]).same_storage(&blk(1, Some((5, 6)))));
        // A block device number never equals a file's (device, inode) by accident.
        assert!(!blk(5, None).same_storage(&file(5, 0, vec![])));
    }
}
