//! What every subsystem of an open engine shares: the array, the segment table, the index,
//! the writer's state and its condition variables, the counters, and the locks that order
//! freeing segments against readers and maintenance.

use crate::array::Array;
use crate::index::Index;
use crate::log::state::WriterState;
use crate::segments::SegmentInfo;
use crate::space::mailbox::CleanerCtl;
use ectable_devices::AlignedBuf;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, RwLock};

/// Counters the writer and readers keep.
#[derive(Debug, Default)]
pub struct EngineCounters {
    pub records_written: AtomicU64,
    pub stripes_written: AtomicU64,
    pub short_stripes_written: AtomicU64,
    pub chunk_bytes_written: AtomicU64,
    pub payload_bytes_written: AtomicU64,
    pub flush_batches: AtomicU64,
    pub degraded_writes: AtomicU64,
    pub reads: AtomicU64,
    pub degraded_reads: AtomicU64,
    pub read_repairs: AtomicU64,
    pub probes: AtomicU64,
    pub probe_failures: AtomicU64,
}

pub(crate) struct Shared {
    pub array: Array,
    pub segments: RwLock<HashMap<u64, Arc<SegmentInfo>>>,
    pub index: RwLock<Index>,
    pub state: Mutex<WriterState>,
    pub work_cv: Condvar,
    pub durable_cv: Condvar,
    pub counters: EngineCounters,
    pub min_write_shards: usize,
    pub max_batch_stripes: usize,
    /// Chunk-size buffers handed back by completed writes, reused by the encoder so the hot
    /// path neither allocates nor zeroes whole chunks.
    pub chunk_pool: Mutex<Vec<AlignedBuf>>,
    /// Readers hold it shared from the index lookup to the end of their device reads; freeing
    /// segments holds it exclusively, so no read ever lands in a segment reused meanwhile.
    pub free_gate: RwLock<()>,
    /// Held by rebuild and scrub for their whole run, and by the cleaner and checkpoints
    /// while they free segments, so no segment is freed under a rebuild or scrub.
    pub maintenance: Mutex<()>,
    /// Talks to the cleaner thread.
    pub cleaner: CleanerCtl,
    /// History after this LSN is kept for incremental backups (u64::MAX: no backup chain
    /// registered, nothing kept).
    pub backup_horizon: AtomicU64,
}

impl Shared {
    pub(crate) fn lock_state(&self) -> std::sync::MutexGuard<'_, WriterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
