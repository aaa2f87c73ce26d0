//! Choosing and opening an I/O backend (the layer above both backends).

use crate::{BlockDevice, DeviceError, IoBackend, PsyncBackend, UringBackend};
use std::sync::Arc;

/// Which backend to run the devices on (fio's `ioengine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// io_uring when every device has a file descriptor and the kernel allows it, else psync.
    #[default]
    Auto,
    /// io_uring ([`UringBackend`]); fails to open where io_uring is blocked or a device has no
    /// file descriptor.
    Uring,
    /// pread/pwrite on a worker pool ([`PsyncBackend`]); works with every device.
    Psync,
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(BackendKind::Auto),
            "uring" | "io_uring" => Ok(BackendKind::Uring),
            "psync" => Ok(BackendKind::Psync),
            other => Err(format!(
                "unknown io engine '{other}' (expected auto, uring or psync)"
            )),
        }
    }
}

/// Opens the backend of `kind` over `devices`. `ECTABLE_IO_ENGINE` (uring|psync) overrides
/// `Auto`, so whole test suites can be run on either engine.
pub fn open_backend(
    kind: BackendKind,
    devices: Vec<Arc<dyn BlockDevice>>,
) -> Result<Arc<dyn IoBackend>, DeviceError> {
    let kind = match (kind, std::env::var("ECTABLE_IO_ENGINE").ok().as_deref()) {
        (BackendKind::Auto, Some(v)) => v.parse().map_err(DeviceError::Backend)?,
        (k, _) => k,
    };
    match kind {
        BackendKind::Psync => Ok(Arc::new(PsyncBackend::new(devices))),
        BackendKind::Uring => Ok(Arc::new(UringBackend::new(devices)?)),
        BackendKind::Auto => {
            if devices.iter().any(|d| d.raw_fd().is_none()) {
                return Ok(Arc::new(PsyncBackend::new(devices)));
            }
            match UringBackend::new(devices.clone()) {
                Ok(e) => Ok(Arc::new(e)),
                Err(e) => {
                    tracing::warn!("io_uring unavailable ({e}); using the psync backend");
                    Ok(Arc::new(PsyncBackend::new(devices)))
                }
            }
        }
    }
}
