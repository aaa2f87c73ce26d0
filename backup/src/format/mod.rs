//! The backup file format, version 1 (byte by byte in docs/backup-format.md):
//!
//! `// file    { header (256 bytes) | block* | trailer (256 bytes) }`
//! `// block   { magic "ECBK" | block_index u32 | record_count u32 | payload_size u32 | crc u32 | payload }`
//! `// row     { table_size u8 | key_size u16 | value_size u32 | table | key | value }`
//! `// change  { lsn u64 | op u8 | table_size u8 | key_size u16 | value_size u32 | table | key | value }`
//!
//! Invariants:
//! - Every byte of a file is covered by a checksum: the header's and the trailer's own
//!   crc32c, and each block's crc32c over its first 16 bytes and its payload, seeded with
//!   the file's backup id (so a block copied in from another backup fails its check).
//! - The trailer is written last. It repeats the header's identity and names the end LSN,
//!   the block and record counts, the file size and a crc32c chained over every block's crc:
//!   a file without a valid trailer exactly at its end is incomplete, never a backup.
//! - No length read from a file is trusted before it is checked against the limits of the
//!   (checksummed) header and the file's size: damage makes an error, never a huge
//!   allocation or a panic.
//! - Full backups hold rows in strictly increasing (table, key) byte order; incrementals hold
//!   changes in strictly increasing LSN order within (start LSN, end LSN].
//! - The reader hands out a block's records only after the block's checksum matched.
//!
//! One file per part of a backup file: `header.rs` (the header and the backup kind),
//! `block.rs` (a block's header fields, its crc, the records it holds), `manifest.rs` (the
//! trailer, and the counts a writer keeps to fill it and a reader keeps to check it),
//! `writer.rs` and `reader.rs`. This file holds the constants they share and the
//! little-endian field helpers.

mod block;
mod header;
mod manifest;
mod reader;
mod writer;

pub use block::{block_payload_limit, Entry};
pub use header::{BackupKind, Header};
pub use manifest::Manifest;
pub use reader::{read_header_and_trailer, Reader};
pub use writer::Writer;

/// The first 8 bytes of every backup file (its header's magic).
pub const HEADER_MAGIC: [u8; 8] = *b"ECTBKUP1";
/// The first 8 bytes of the trailer, the last 256 bytes of a complete file.
pub const TRAILER_MAGIC: [u8; 8] = *b"ECTBEND1";
/// The first 4 bytes of every block.
pub const BLOCK_MAGIC: [u8; 4] = *b"ECBK";
/// The backup format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of the header, at the start of the file.
pub const HEADER_SIZE_BYTES: usize = 256;
/// Bytes of the trailer, at the end of a complete file.
pub const TRAILER_SIZE_BYTES: usize = 256;
/// Bytes of a block's header, before its payload.
pub const BLOCK_HEADER_SIZE_BYTES: usize = 20;
/// A block is closed once its payload reaches this size (a single larger record makes a
/// larger block).
pub const BLOCK_TARGET_BYTES: usize = 1 << 20;
/// The largest block payload limit a header may declare.
pub const MAX_BLOCK_PAYLOAD_LIMIT_BYTES: u32 = 1 << 30;
/// Fixed bytes before a row's table name: table_size u8, key_size u16, value_size u32.
pub const ROW_PREFIX_BYTES: usize = 7;
/// Fixed bytes before a change's table name: lsn u64, op u8, then as a row.
pub const CHANGE_PREFIX_BYTES: usize = 16;
/// Op byte of a change that is a put.
pub const OP_PUT: u8 = 1;
/// Op byte of a change that is a delete (its value size is 0).
pub const OP_DELETE: u8 = 2;

const _: () = assert!(HEADER_SIZE_BYTES == 256 && TRAILER_SIZE_BYTES == 256);
const _: () = assert!(BLOCK_TARGET_BYTES < MAX_BLOCK_PAYLOAD_LIMIT_BYTES as usize);

/// Recomputes every checksum of a backup file image in place, so that changed bytes behind
/// the checksums reach the reader's other checks (the fuzz targets use it): the header's
/// crc; then, from the end of the header while a block magic follows, each block's crc
/// (its payload size clamped to the image); then, when the last bytes hold a trailer magic,
/// the trailer's chained blocks crc and its own crc.
#[cfg(feature = "internals")]
pub fn reseal(b: &mut [u8]) {
    if b.len() < HEADER_SIZE_BYTES {
        return;
    }
    let backup_id = Header::reseal(b);
    let trailer_at = b
        .len()
        .saturating_sub(TRAILER_SIZE_BYTES)
        .max(HEADER_SIZE_BYTES);
    let mut at = HEADER_SIZE_BYTES;
    let mut blocks_crc = 0u32;
    while at + BLOCK_HEADER_SIZE_BYTES <= trailer_at && b[at..at + 4] == BLOCK_MAGIC {
        let declared = get_u32(b, at + block::blk::PAYLOAD_SIZE) as usize;
        let payload = declared.min(trailer_at - at - BLOCK_HEADER_SIZE_BYTES);
        let start = at + BLOCK_HEADER_SIZE_BYTES;
        let crc = block::block_crc(&backup_id, &b[at..start], &b[start..start + payload]);
        put_u32(b, at + block::blk::CRC, crc);
        blocks_crc = crc32c::crc32c_append(blocks_crc, &crc.to_le_bytes());
        at = start + payload;
    }
    if b.len() >= HEADER_SIZE_BYTES + TRAILER_SIZE_BYTES
        && b[trailer_at..trailer_at + 8] == TRAILER_MAGIC
    {
        Manifest::reseal(&mut b[trailer_at..], blocks_crc);
    }
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn get_u16(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(a)
}
fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
fn get_id(b: &[u8], at: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    a
}
