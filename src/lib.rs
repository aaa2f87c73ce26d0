//! ectable: an embeddable table store on Reed-Solomon coded stripes over raw block devices.
//!
//! This facade re-exports the engine API ([`ectable_engine`]), the device layer
//! ([`devices`]) and the backup library ([`backup`]: the backup file format, full and
//! incremental backups, chain verification and restore) so that an embedding storage node
//! depends on one crate.

/// The backup library, `ectable_backup` (docs/backup-format.md). It takes the place of the
/// engine's own `backup` module under this name; that module's items an embedder needs
/// (`Change`, `HorizonHold`, `BACKUP_TABLE`) are re-exported at the root.
pub use ectable_backup as backup;
pub use ectable_devices as devices;
pub use ectable_engine::*;
