//! Blocks and the records they hold (docs/backup-format.md, "Blocks"): the offsets of a
//! block header's fields, the block crc (seeded with the file's backup id), the largest
//! payload a writer needs, and [`Entry`], one record as a reader hands it out.

use super::{BLOCK_TARGET_BYTES, CHANGE_PREFIX_BYTES, MAX_BLOCK_PAYLOAD_LIMIT_BYTES};
use ectable_engine::{Change, MAX_KEY_BYTES, MAX_TABLE_NAME_BYTES};

/// Byte offsets of a block header's fields.
pub(super) mod blk {
    pub const MAGIC: usize = 0;
    pub const INDEX: usize = 4;
    pub const RECORD_COUNT: usize = 8;
    pub const PAYLOAD_SIZE: usize = 12;
    pub const CRC: usize = 16;
}

/// One record of a backup: a row of a full backup, or a change of an incremental.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A row of a full backup: the row's value as of the backup's LSN.
    Row {
        /// The table.
        table: String,
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// A put or delete of an incremental backup, with its LSN.
    Change(Change),
}

/// The crc of a block: over its first 16 bytes and its payload, seeded with the file's
/// backup id.
pub(super) fn block_crc(backup_id: &[u8; 16], head: &[u8], payload: &[u8]) -> u32 {
    let seed = crc32c::crc32c(backup_id);
    crc32c::crc32c_append(crc32c::crc32c_append(seed, &head[..blk::CRC]), payload)
}

/// The largest block payload a writer needs for records of at most `max_value_bytes`.
pub fn block_payload_limit(max_value_bytes: usize) -> u32 {
    let worst = BLOCK_TARGET_BYTES
        + CHANGE_PREFIX_BYTES
        + MAX_TABLE_NAME_BYTES
        + MAX_KEY_BYTES
        + max_value_bytes;
    u32::try_from(worst)
        .unwrap_or(u32::MAX)
        .min(MAX_BLOCK_PAYLOAD_LIMIT_BYTES)
}
