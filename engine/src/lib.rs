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

#![warn(missing_docs)]

// The public API is what is re-exported below, and the typed tables (`table`). The other
// modules are private. With the `internals` feature (the tools' `dump` and ecbench, the
// fuzz targets and the codec and index benchmarks), the on-disk structures (`format`),
// the codec and the in-memory index are reachable too; they are not part of the stable API.
mod array;
mod backup;
mod checkpoint;
mod cleaner;
#[cfg(feature = "internals")]
pub mod codec;
#[cfg(not(feature = "internals"))]
mod codec;
mod engine;
mod error;
mod events;
#[cfg(feature = "internals")]
pub mod format;
#[cfg(not(feature = "internals"))]
mod format;
mod health;
#[cfg(feature = "internals")]
pub mod index;
#[cfg(not(feature = "internals"))]
mod index;
mod log;
mod metrics;
mod ops;
mod paths;
mod prober;
mod reader;
mod rebuild;
mod recovery;
mod sampler;
mod segments;
mod shared;
mod space;
mod status;
mod sync;
pub mod table;

pub use array::{
    examine_device, examine_devices, format, probe_device, wipe_device, ArrayInfo, FormatOptions,
    MemberInfo,
};
pub use backup::{Change, RowSink};
pub use cleaner::{CleanReport, CleanerOptions};
pub use ectable_devices::{
    bucket_upper_seconds, DeviceIoSnapshot, HistogramSnapshot, LATENCY_BUCKETS,
};
pub use engine::{Engine, EngineOptions, WriteBatch};
pub use error::{Error, Result};
pub use events::{DeviceEvent, DeviceEventKind};
pub use format::health_block::{HealthRecord, RebuildRecord, ScrubRecord};
pub use format::layout::{
    Layout, LayoutError, DEFAULT_CHUNK_SIZE_BYTES, DEFAULT_SEGMENT_SIZE_BYTES,
};
pub use format::log_record::{encoded_len_padded, MAX_KEY_BYTES, MAX_TABLE_NAME_BYTES};
pub use format::{new_uuid, uuid_string, DecodeError};
pub use health::{DetectionMode, HealthPolicy, DEFAULT_IO_TIMEOUT};
pub use log::read_queue::{ReadDone, ReadQueue};
pub use log::scan::Scan;
pub use metrics::{Activity, DeviceMetrics, Metrics};
pub use ops::ActivityKind;
pub use prober::RecoveryPolicy;
pub use rebuild::{Holding, Online, Progress, RebuildOptions, ScrubReport};
pub use recovery::RecoveryStats;
pub use shared::Worker;
pub use space::mailbox::CleanerStats;
pub use space::{HorizonHold, BACKUP_TABLE};
pub use status::{ArrayState, BackingFs, DeviceState, DeviceStatus, ScanProgress, Status};
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
