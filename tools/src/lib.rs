//! The `ectable` CLI and the `ecbench` benchmark, as a library: the binaries only parse
//! the command line and call a command of [`cmd`] or a workload of [`bench`](mod@bench). Here: opening
//! device lists, fio-style size parsing, and the deterministic rows of `load`/`verify` and
//! of ecbench's data sets.

pub mod backup;
pub mod bench;
pub mod cli;
pub mod cmd;
pub mod deadline;
pub mod exit;
pub mod interrupt;
pub mod models;
pub mod node;
pub mod term;

use anyhow::{Context, Result};
use ectable_devices::{
    open_backend, BackendKind, BlockDevice, FileDevice, IoBackend, OpenOptions, StorageId,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Parses a size with binary suffixes the way fio does: `4K` and `4k` are 4096 bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let cfg = parse_size::Config::new().with_binary();
    cfg.parse_size(s.trim())
        .map_err(|e| crate::coded!(crate::exit::USAGE, "invalid size '{s}': {e}"))
}

/// Splits `--devices a,b,c` (also accepts fio's `a:b:c`).
pub fn split_devices(list: &str) -> Result<Vec<PathBuf>> {
    let sep = if list.contains(',') { ',' } else { ':' };
    let paths: Vec<PathBuf> = list
        .split(sep)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect();
    if paths.is_empty() {
        crate::fail!(
            crate::exit::USAGE,
            "--devices needs at least one device path"
        );
    }
    Ok(paths)
}

/// Refuses a device list that names the same storage twice, naming both paths: two nodes of
/// one block device, two paths to one file, a loop device and the file backing it
/// (`StorageId::same_storage`). Run before opening: the second open would wait for the
/// first one's write lock, or be refused as in use. Paths that cannot be examined are left
/// to the open, which reports them.
pub fn refuse_same_storage(paths: &[PathBuf]) -> Result<()> {
    let mut seen: Vec<(StorageId, &PathBuf)> = Vec::new();
    for p in paths {
        let Ok(id) = StorageId::of_path(p) else {
            continue;
        };
        if let Some((_, first)) = seen.iter().find(|(i, _)| i.same_storage(&id)) {
            crate::fail!(
                crate::exit::USAGE,
                "the same device is listed twice: {} and {}",
                first.display(),
                p.display()
            );
        }
        seen.push((id, p));
    }
    Ok(())
}

/// Device files a formatting command created: removed again when the guard is dropped,
/// unless the command kept them (a failed or refused format leaves nothing behind).
pub struct CreatedFiles(Vec<PathBuf>);

impl CreatedFiles {
    /// The files among `paths` that opening them with `create_size_bytes` will create
    /// (none without it). Take it before the open.
    pub fn to_be_made(paths: &[PathBuf], create_size_bytes: Option<u64>) -> CreatedFiles {
        CreatedFiles(match create_size_bytes {
            Some(_) => paths.iter().filter(|p| !p.exists()).cloned().collect(),
            None => Vec::new(),
        })
    }
    /// The array is on them now: they stay.
    pub fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for CreatedFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Opens the devices a command is about to format, creating the files that do not exist
/// when `create_size_bytes` is given; the guard removes those again unless kept.
pub fn open_for_format(
    paths: &[PathBuf],
    create_size_bytes: Option<u64>,
    kind: BackendKind,
) -> Result<(Arc<dyn IoBackend>, CreatedFiles)> {
    let created = CreatedFiles::to_be_made(paths, create_size_bytes);
    let io = open_devices(paths, create_size_bytes, false, kind)?;
    Ok((io, created))
}

/// `--preallocate`: every regular file among `paths` gets all its blocks now, so that a file
/// system that fills up later cannot fail the array's writes (docs/operations.md, "Sparse
/// member files"). Block devices are left as they are. Says how much it allocated. Called
/// before anything is written to the devices.
pub fn preallocate(paths: &[PathBuf]) -> Result<()> {
    let mut total = 0u64;
    for p in paths {
        match ectable_devices::preallocate_file(p) {
            Ok(n) => total += n.unwrap_or(0),
            Err(e) if e.class() == ectable_devices::ErrorClass::NoSpace => crate::fail!(
                crate::exit::CANT_CREATE,
                "{}: cannot preallocate it: its file system has not room for the member files \
                 ({e}); nothing was written to the devices",
                p.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("preallocating {}", p.display())),
        }
    }
    eprintln!("preallocated {} for the member files", term::bytes(total));
    Ok(())
}

/// Opens a device a command adds to an array that exists (a replacement or a hot spare):
/// created as a sparse file of `create_size_bytes` when missing, and with `preallocate`
/// given all its blocks before anything is written to it (as `format --preallocate`). A
/// file created here is removed again when the preallocation fails.
pub fn open_added_device(
    path: &Path,
    create_size_bytes: Option<u64>,
    preallocate: bool,
) -> Result<FileDevice> {
    let created = create_size_bytes.is_some() && !path.exists();
    if create_size_bytes.is_none() && path.symlink_metadata().is_err() {
        crate::fail!(
            crate::exit::NO_INPUT,
            "{} does not exist: give its size to create it as a file (--create-size, or \
             \"create_size\" in a request to a node), or name a device that is there",
            path.display()
        );
    }
    let opts = OpenOptions {
        create_size_bytes,
        ..Default::default()
    };
    let dev =
        FileDevice::open(path, &opts).with_context(|| format!("opening {}", path.display()))?;
    if preallocate {
        if let Err(e) = crate::preallocate(&[path.to_path_buf()]) {
            drop(dev);
            if created {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    }
    Ok(dev)
}

/// Opens every device of a list and the I/O backend over them.
pub fn open_devices(
    paths: &[PathBuf],
    create_size_bytes: Option<u64>,
    read_only: bool,
    kind: BackendKind,
) -> Result<Arc<dyn IoBackend>> {
    refuse_same_storage(paths)?;
    let mut devices: Vec<Arc<dyn BlockDevice>> = Vec::with_capacity(paths.len());
    for p in paths {
        if create_size_bytes.is_none() && !p.exists() {
            crate::fail!(
                crate::exit::NO_INPUT,
                "{}: no such device or file",
                p.display()
            );
        }
        let opts = OpenOptions {
            read_only,
            create_size_bytes,
            ..Default::default()
        };
        let dev = FileDevice::open(p, &opts).with_context(|| format!("opening {}", p.display()))?;
        devices.push(Arc::new(dev));
    }
    let io = open_backend(kind, devices).context("starting the I/O engine")?;
    io.set_io_timeout(deadline::io_timeout());
    Ok(io)
}

/// Key of deterministic row `i`: depends only on `i`.
pub fn row_key(i: u64) -> Vec<u8> {
    format!("row{i:012}").into_bytes()
}

/// Value of deterministic row `i` under `seed`: `len` pseudo-random bytes.
pub fn row_value(i: u64, seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let x0 = (i.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ seed
            .wrapping_add(0x632B_E59B_D9B4_E019)
            .wrapping_mul(0xD1B5_4A32_D192_ED03);
    // splitmix64: word n is the mix of x0 + (n + 1) * gamma, so the words are independent of
    // each other and the loop pipelines (the load tools generate every value they write).
    let word = |n: usize| {
        let mut z = x0.wrapping_add((n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)).to_le_bytes()
    };
    let mut chunks = out.chunks_exact_mut(8);
    let mut n = 0;
    for c in &mut chunks {
        c.copy_from_slice(&word(n));
        n += 1;
    }
    let rest = chunks.into_remainder();
    let take = rest.len();
    rest.copy_from_slice(&word(n)[..take]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_binary_like_fio() {
        assert_eq!(parse_size("4k").unwrap(), 4096);
        assert_eq!(parse_size("4K").unwrap(), 4096);
        assert_eq!(parse_size("1M").unwrap(), 1 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert!(parse_size("12x").is_err());
    }

    #[test]
    fn rows_are_deterministic() {
        assert_eq!(row_value(5, 1, 100), row_value(5, 1, 100));
        assert_ne!(row_value(5, 1, 100), row_value(5, 2, 100));
        assert_ne!(row_value(5, 1, 100), row_value(6, 1, 100));
        assert_eq!(row_key(3), b"row000000000003");
    }

    /// The values are what arrays loaded by earlier versions hold: `verify` must keep
    /// accepting them. This is the original one-word-at-a-time generator.
    fn row_value_reference(i: u64, seed: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut x = (i.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ seed
                .wrapping_add(0x632B_E59B_D9B4_E019)
                .wrapping_mul(0xD1B5_4A32_D192_ED03);
        while out.len() < len {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let bytes = z.to_le_bytes();
            let take = (len - out.len()).min(8);
            out.extend_from_slice(&bytes[..take]);
        }
        out
    }

    #[test]
    fn row_values_did_not_change() {
        for len in [0, 1, 7, 8, 9, 100, 1024, 4099] {
            for (i, seed) in [(0, 0), (5, 1), (u64::MAX, 7), (123_456, u64::MAX)] {
                assert_eq!(
                    row_value(i, seed, len),
                    row_value_reference(i, seed, len),
                    "{i} {seed} {len}"
                );
            }
        }
    }
}
