//! ectable-engine: an embeddable key/value table store on Reed-Solomon coded stripes.
//!
//! The engine is generic over the devices of an [`ectable_devices::IoBackend`]; it never
//! opens a file itself. See `docs/format.md` for the on-disk format and `docs/design.md` for
//! the module map.
//!
//! Typed tables (schemas with a typed primary key, rows of typed columns, conditional writes,
//! atomic multi-table batches, range reads) are built on this key/value API in [`table`].
//!
//! ```no_run
//! use ectable_devices::{open_backend, BackendKind, FileDevice, OpenOptions as DevOpen, BlockDevice};
//! use ectable_engine::{format, Engine, EngineOptions, FormatOptions};
//! use std::sync::Arc;
//!
//! let devices: Vec<Arc<dyn BlockDevice>> = (0..6)
//!     .map(|i| {
//!         let opts = DevOpen { create_size_bytes: Some(256 << 20), ..Default::default() };
//!         Arc::new(FileDevice::open(format!("/tmp/ect{i}").as_ref(), &opts).unwrap()) as _
//!     })
//!     .collect();
//! let io = open_backend(BackendKind::Auto, devices).unwrap();
//! format(io.as_ref(), &FormatOptions::default()).unwrap();
//! let engine = Engine::open(io, EngineOptions::default()).unwrap();
//! engine.put("users", b"alice", b"42").unwrap();
//! engine.sync().unwrap();
//! assert_eq!(engine.get("users", b"alice").unwrap(), Some(b"42".to_vec()));
//! ```

pub mod array;
pub mod backup;
mod checkpoint;
pub mod cleaner;
pub mod codec;
mod engine;
pub mod error;
pub mod format;
pub mod health;
pub mod index;
mod log;
mod prober;
mod reader;
pub mod rebuild;
pub mod recovery;
pub mod segments;
pub mod table;

pub use array::{format, ArrayInfo, FormatOptions};
pub use backup::{Change, HorizonHold, BACKUP_TABLE};
pub use cleaner::{CleanReport, CleanerOptions, CleanerStats};
pub use engine::{DeviceStatus, Engine, EngineOptions, Status, WriteBatch};
pub use error::{Error, Result};
pub use format::log_record::{MAX_KEY_BYTES, MAX_TABLE_NAME_BYTES};
pub use health::{DetectionMode, HealthPolicy};
pub use prober::RecoveryPolicy;
pub use rebuild::{Progress, RebuildOptions, ScrubReport};
pub use recovery::RecoveryStats;
pub use table::{
    Columns, Condition, KeyColumn, RangePage, RangeQuery, Row, RowUpdate, Schema, TableBatch,
    TableInfo, Tables, Value, ValueType,
};

pub(crate) fn validate_name_key(table: &str, key: &[u8]) -> Result<()> {
    if table.is_empty() || table.len() > MAX_TABLE_NAME_BYTES {
        return Err(Error::BadTableName {
            name: table.to_string(),
            max: MAX_TABLE_NAME_BYTES,
        });
    }
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(Error::BadKey {
            got: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    Ok(())
}
