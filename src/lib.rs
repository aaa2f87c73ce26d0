//! ectable: an embeddable table store on Reed-Solomon coded stripes over raw block devices.
//!
//! This facade re-exports the engine API ([`ectable_engine`]), the device layer
//! ([`devices`]) and the backup library ([`backup`]: the backup file format, full and
//! incremental backups, chain verification and restore) so that an embedding storage node
//! depends on one crate.
//!
//! # Embedding
//!
//! Six files (or block devices) become an RS(4,2) array: any two may be lost. Key/value
//! tables need no declaration; typed tables have a schema with a primary key of 1 to 4
//! columns.
//!
//! ```
//! use ectable::table::{Columns, Schema, Tables, Value};
//! use ectable::{Engine, EngineOptions, FormatOptions};
//! use std::ops::Bound;
//! use std::sync::Arc;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let paths: Vec<_> = (0..6).map(|i| dir.path().join(format!("dev{i}.img"))).collect();
//! let geometry = FormatOptions {
//!     data_shards: 4,
//!     parity_shards: 2,
//!     ..Default::default()
//! };
//! // Formats the six files (created at 64 MiB) the first time, opens them after that.
//! let engine = Arc::new(Engine::open_or_format(
//!     &paths,
//!     &geometry,
//!     Some(64 << 20),
//!     EngineOptions::default(),
//! )?);
//!
//! // Key/value: `put` is acknowledged once appended; `sync` makes it durable (`put_sync`
//! // does both).
//! engine.put("users", b"alice", b"42")?;
//! engine.put_sync("users", b"bob", b"7")?;
//! assert_eq!(engine.get("users", b"alice")?, Some(b"42".to_vec()));
//! let all = engine.scan("users", Bound::Unbounded, Bound::Unbounded, 100)?;
//! assert_eq!(all.len(), 2);
//! // A table that never had a key reads as empty.
//! assert_eq!(engine.get("nobody", b"x")?, None);
//!
//! // Typed tables.
//! let tables = Tables::open(Arc::clone(&engine))?;
//! tables.create_table("events", &Schema::parse("region:string,id:int64")?)?;
//! let mut cols = Columns::new();
//! cols.insert("kind".to_string(), Value::String("login".into()));
//! tables.put_row("events", &["eu".into(), 1.into()], &cols)?;
//! tables.sync()?;
//! let row = tables.get_row("events", &["eu".into(), 1.into()])?.expect("the row");
//! assert_eq!(row.columns["kind"], Value::String("login".into()));
//!
//! // The array's health, as `ectable status` shows it.
//! let status = engine.status();
//! assert_eq!(status.redundancy_left, 2);
//! drop(tables);
//! engine.close()?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

/// The backup library, `ectable_backup` (docs/backup-format.md). It takes the place of the
/// engine's own `backup` module under this name; that module's items an embedder needs
/// (`Change`, `HorizonHold`, `BACKUP_TABLE`) are re-exported at the root.
pub use ectable_backup as backup;
pub use ectable_devices as devices;
pub use ectable_engine::*;
