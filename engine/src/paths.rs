//! Opening an array by the paths of its devices, for embedders that do not build the I/O
//! backend themselves: [`Engine::open_paths`] and [`Engine::open_or_format`].

use crate::array::{format, FormatOptions};
use crate::engine::{Engine, EngineOptions};
use crate::error::{Error, Result};
use ectable_devices::{open_backend, BackendKind, BlockDevice, FileDevice, IoBackend, OpenOptions};
use std::path::Path;
use std::sync::Arc;

fn open_io<P: AsRef<Path>>(
    paths: &[P],
    read_only: bool,
    create_size_bytes: Option<u64>,
) -> Result<Arc<dyn IoBackend>> {
    if paths.is_empty() {
        return Err(Error::InvalidArgument("no device paths given".into()));
    }
    let mut devices: Vec<Arc<dyn BlockDevice>> = Vec::with_capacity(paths.len());
    for p in paths {
        let opts = OpenOptions {
            read_only,
            create_size_bytes,
            ..Default::default()
        };
        devices.push(Arc::new(FileDevice::open(p.as_ref(), &opts)?));
    }
    Ok(open_backend(BackendKind::Auto, devices)?)
}

impl Engine {
    /// Opens the array whose devices (block devices or regular files, in any order) are at
    /// `paths`, on io_uring where the kernel allows it (`ECTABLE_IO_ENGINE=psync` forces
    /// pread/pwrite). Read-only when `opts.read_only`.
    pub fn open_paths<P: AsRef<Path>>(paths: &[P], opts: EngineOptions) -> Result<Engine> {
        let io = open_io(paths, opts.read_only, None)?;
        Engine::open(io, opts)
    }

    /// Opens the array at `paths`, or, when none of them holds an ectable array yet, formats
    /// one there with `format` first (regular files that do not exist are created at
    /// `create_size_bytes` when it is given). Refuses, writing nothing, when only some of
    /// the devices hold an array (half a set of members is not a blank set):
    /// [`Error::AlreadyFormatted`] names the first. Members of different arrays are refused
    /// by the open, as [`Engine::open_paths`] refuses them.
    pub fn open_or_format<P: AsRef<Path>>(
        paths: &[P],
        format_opts: &FormatOptions,
        create_size_bytes: Option<u64>,
        opts: EngineOptions,
    ) -> Result<Engine> {
        // Each path that exists, read-only: a member of some array, or blank. A path that
        // does not exist is blank when it may be created; else opening it reports it.
        let mut members = Vec::new();
        for p in paths {
            let p = p.as_ref();
            if !p.exists() && create_size_bytes.is_some() {
                continue;
            }
            let ro = OpenOptions {
                read_only: true,
                ..Default::default()
            };
            // With the array's I/O deadline: a device that stopped answering fails the open.
            let dev: std::sync::Arc<dyn ectable_devices::BlockDevice> =
                std::sync::Arc::new(FileDevice::open(p, &ro)?);
            if let Some(sb) = crate::array::newest_superblock_within(&dev, opts.health.io_timeout)?
            {
                members.push((
                    p.display().to_string(),
                    crate::format::uuid_string(&sb.array_uuid),
                ));
            }
        }
        if members.len() == paths.len() {
            return Engine::open_paths(paths, opts);
        }
        if let Some((device, array)) = members.into_iter().next() {
            return Err(Error::AlreadyFormatted { device, array });
        }
        let io = open_io(paths, false, create_size_bytes)?;
        format(io.as_ref(), format_opts)?;
        Engine::open(io, opts)
    }
}
