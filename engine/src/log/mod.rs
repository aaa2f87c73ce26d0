//! The log: where the next stripe goes, whole-segment reads, stripe reading and assembly,
//! the group-commit writer, and repairing the replayed log before a session's first write.

pub(crate) mod cursor;
pub(crate) mod flusher;
pub(crate) mod journal;
pub(crate) mod read;
pub(crate) mod read_queue;
pub(crate) mod repair;
pub(crate) mod scan;
pub(crate) mod segment_read;
pub(crate) mod state;
pub(crate) mod stripe;
pub(crate) mod writer;
