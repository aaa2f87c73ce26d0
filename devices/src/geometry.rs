//! Device geometry: capacity and logical sector size.

/// What a device reports about itself.
///
/// Block devices are asked with `BLKGETSIZE64`/`BLKSSZGET`; regular files report their length
/// and a 4096-byte sector (the engine never issues smaller I/O).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Logical sector size in bytes (4096 for regular files).
    pub sector_size_bytes: u32,
    /// Usable size of the device in bytes.
    pub capacity_bytes: u64,
}
