//! Opening an array by the paths of its devices, for embedders that do not build the I/O
//! backend themselves: [`Engine::open_paths`] and [`Engine::open_or_format`].

use crate::array::{examine_device, format, FormatOptions};
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
    /// the devices hold an array (half a set of members is not a blank set) or when they
    /// hold arrays of different ids: [`Error::AlreadyFormatted`] names the first.
    pub fn open_or_format<P: AsRef<Path>>(
        paths: &[P],
        format_opts: &FormatOptions,
        create_size_bytes: Option<u64>,
        opts: EngineOptions,
    ) -> Result<Engine> {
        let blank = {
            match open_io(paths, true, None) {
                Ok(io) => {
                    let mut members = Vec::new();
                    for (p, d) in paths.iter().zip(io.devices()) {
                        if let Some(m) = examine_device(d.as_ref())? {
                            members.push((p.as_ref().display().to_string(), m.array_uuid));
                        }
                    }
                    if members.len() == paths.len() {
                        false
                    } else if let Some((device, array)) = members.into_iter().next() {
                        return Err(Error::AlreadyFormatted { device, array });
                    } else {
                        true
                    }
                }
                // A path that does not exist yet: blank if the others are.
                Err(_) if create_size_bytes.is_some() => {
                    for p in paths {
                        let p = p.as_ref();
                        if !p.exists() {
                            continue;
                        }
                        let dev = FileDevice::open(
                            p,
                            &OpenOptions {
                                read_only: true,
                                ..Default::default()
                            },
                        )?;
                        if let Some(m) = examine_device(&dev)? {
                            return Err(Error::AlreadyFormatted {
                                device: p.display().to_string(),
                                array: m.array_uuid,
                            });
                        }
                    }
                    true
                }
                Err(e) => return Err(e),
            }
        };
        if blank {
            let io = open_io(paths, false, create_size_bytes)?;
            format(io.as_ref(), format_opts)?;
            return Engine::open(io, opts);
        }
        Engine::open_paths(paths, opts)
    }
}
