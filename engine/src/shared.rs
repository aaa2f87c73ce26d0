//! What every subsystem of an open engine shares: the array, the segment table, the index,
//! the writer's state and its condition variables, the counters, and the locks that order
//! freeing segments against readers and maintenance.

use crate::array::Array;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::log::state::WriterState;
use crate::segments::SegmentInfo;
use crate::space::mailbox::CleanerCtl;
use crate::sync::MutexExt;
use ectable_devices::AlignedBuf;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};

/// Counters the writer and readers keep.
#[derive(Debug, Default)]
pub struct EngineCounters {
    pub records_written: AtomicU64,
    pub stripes_written: AtomicU64,
    pub short_stripes_written: AtomicU64,
    /// Records that continued in the next stripe (format version 5).
    pub records_continued: AtomicU64,
    /// Sync journal entries written (each to m + 1 members).
    pub journal_entries_written: AtomicU64,
    /// The part of `journal_entries_written` a syncing caller wrote from its own thread.
    pub journal_entries_by_caller: AtomicU64,
    pub chunk_bytes_written: AtomicU64,
    pub payload_bytes_written: AtomicU64,
    /// The part of `payload_bytes_written` that index checkpoints wrote.
    pub checkpoint_bytes_written: AtomicU64,
    /// Entries changed while an index checkpoint was taken, kept as they were for its image.
    pub checkpoint_pre_images: AtomicU64,
    pub flush_batches: AtomicU64,
    pub degraded_writes: AtomicU64,
    pub reads: AtomicU64,
    pub degraded_reads: AtomicU64,
    /// Optimistic reads (read queues, streaming scans) whose record moved, or whose bytes
    /// failed the check, while in flight: looked up again.
    pub reads_looked_again: AtomicU64,
    pub read_repairs: AtomicU64,
    pub probes: AtomicU64,
    pub probe_failures: AtomicU64,
    pub superblocks_rewritten: AtomicU64,
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
    /// Held by every change of who holds a slot or is a spare (replace, online, add-spare),
    /// from its checks to its last superblock write, so that two of them never interleave
    /// (an online bringing a member back while the monitor replaces it by a spare).
    pub membership: Mutex<()>,
    /// Held by the monitor for a round of health-block probes, and by `online` while it
    /// judges a member's state: a probe that failed on a device that was out a moment ago
    /// has marked it failed before `online` answers.
    pub probe_round: Mutex<()>,
    /// Held while an index checkpoint is taken and written (checkpoint.rs): one at a time,
    /// so that they are stored in the order of their LSNs.
    pub image_gate: Mutex<()>,
    /// Talks to the cleaner thread.
    pub cleaner: CleanerCtl,
    /// History after this LSN is kept for incremental backups (u64::MAX: no backup chain
    /// registered, nothing kept).
    pub backup_horizon: AtomicU64,
    /// Set once, when an engine thread panics: (thread, what it said). From then on every
    /// call fails with `Error::Poisoned` (docs/design.md, "Worker threads").
    pub poisoned: OnceLock<(String, String)>,
    /// `Engine::close` finished: every call fails with `Error::Closed`.
    pub closed: std::sync::atomic::AtomicBool,
    /// Test hook: workers (bit per [`Worker`]) to panic at their next turn.
    pub test_panic: AtomicU8,
}

/// The engine's worker threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Worker {
    /// Encodes, writes and flushes sealed stripes (group commit).
    Flusher,
    /// Cleans segments and writes periodic checkpoints.
    Cleaner,
    /// Probes devices and runs the recovery policy (rebuild, resync, hot spares).
    Monitor,
}

impl Worker {
    /// The thread's name as [`crate::Error::Poisoned`] reports it: "flusher", "cleaner" or
    /// "monitor".
    pub fn name(self) -> &'static str {
        match self {
            Worker::Flusher => "flusher",
            Worker::Cleaner => "cleaner",
            Worker::Monitor => "monitor",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Worker::Flusher => 1,
            Worker::Cleaner => 2,
            Worker::Monitor => 4,
        }
    }
}

impl Shared {
    pub(crate) fn lock_state(&self) -> std::sync::MutexGuard<'_, WriterState> {
        self.state.locked()
    }

    /// Fails with `Error::Poisoned` once an engine thread has panicked.
    pub(crate) fn check_alive(&self) -> Result<()> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        match self.poisoned.get() {
            None => Ok(()),
            Some((thread, detail)) => Err(Error::Poisoned {
                thread: thread.clone(),
                detail: detail.clone(),
            }),
        }
    }

    /// Latches the panic of `worker` and wakes every waiter (writers waiting for durability
    /// or for space, checkpoints, the cleaner's callers): they see the latch and fail.
    pub(crate) fn poison(&self, worker: Worker, detail: String) {
        if self
            .poisoned
            .set((worker.name().to_string(), detail.clone()))
            .is_ok()
        {
            tracing::error!(
                "the engine's {} thread panicked ({detail}); every call fails from now on: reopen the array",
                worker.name()
            );
        }
        {
            // Under the writer lock, so that no waiter checks the latch and then misses the
            // wake-up.
            let _st = self.lock_state();
            self.durable_cv.notify_all();
            self.work_cv.notify_all();
        }
        self.cleaner.stopped();
    }

    /// Runs the body of worker thread `worker`: a panic poisons the engine instead of
    /// leaving its waiters blocked forever.
    pub(crate) fn run_worker(self: &Arc<Self>, worker: Worker, body: impl FnOnce()) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
        if let Err(p) = r {
            let detail = if let Some(s) = p.downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = p.downcast_ref::<String>() {
                s.clone()
            } else {
                "a panic without a message".to_string()
            };
            self.poison(worker, detail);
        }
    }

    /// Test hook: asks `worker` to panic at its next turn (and wakes it).
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    pub(crate) fn request_test_panic(&self, worker: Worker) {
        self.test_panic.fetch_or(worker.bit(), Ordering::SeqCst);
        let _st = self.lock_state();
        self.work_cv.notify_all();
        drop(_st);
        self.cleaner.request();
    }

    /// A worker's panic point for the test hook: panics if a test asked for it.
    pub(crate) fn test_panic_point(&self, worker: Worker) {
        if self.test_panic.load(Ordering::Relaxed) & worker.bit() != 0 {
            self.test_panic.fetch_and(!worker.bit(), Ordering::SeqCst);
            panic!("test hook: the {} thread panics", worker.name());
        }
    }
}
