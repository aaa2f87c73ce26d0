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

use crate::{Error, Result};
use ectable_engine::encoded_len_padded;
use ectable_engine::{Change, BACKUP_TABLE, MAX_KEY_BYTES, MAX_TABLE_NAME_BYTES};
use std::collections::BTreeSet;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

pub const HEADER_MAGIC: [u8; 8] = *b"ECTBKUP1";
pub const TRAILER_MAGIC: [u8; 8] = *b"ECTBEND1";
pub const BLOCK_MAGIC: [u8; 4] = *b"ECBK";
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_SIZE_BYTES: usize = 256;
pub const TRAILER_SIZE_BYTES: usize = 256;
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
/// Op byte of a change.
pub const OP_PUT: u8 = 1;
pub const OP_DELETE: u8 = 2;

const _: () = assert!(HEADER_SIZE_BYTES == 256 && TRAILER_SIZE_BYTES == 256);
const _: () = assert!(BLOCK_TARGET_BYTES < MAX_BLOCK_PAYLOAD_LIMIT_BYTES as usize);

/// Byte offsets of the header's fields.
mod hdr {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const KIND: usize = 10;
    pub const RESERVED_1: usize = 11;
    pub const HEADER_SIZE: usize = 12;
    pub const ARRAY_ID: usize = 16;
    pub const BACKUP_ID: usize = 32;
    pub const BASE_ID: usize = 48;
    pub const CHAIN_ID: usize = 64;
    pub const CHAIN_INDEX: usize = 80;
    pub const BLOCK_LIMIT: usize = 84;
    pub const START_LSN: usize = 88;
    pub const CREATED: usize = 96;
    pub const RESERVED_2: usize = 104;
    pub const CRC: usize = 252;
}

/// Byte offsets of the trailer's fields.
mod trl {
    pub const MAGIC: usize = 0;
    pub const KIND: usize = 8;
    pub const RESERVED_1: usize = 9;
    pub const CHAIN_INDEX: usize = 12;
    pub const ARRAY_ID: usize = 16;
    pub const BACKUP_ID: usize = 32;
    pub const BASE_ID: usize = 48;
    pub const CHAIN_ID: usize = 64;
    pub const START_LSN: usize = 80;
    pub const END_LSN: usize = 88;
    pub const BLOCK_COUNT: usize = 96;
    pub const RECORD_COUNT: usize = 104;
    pub const PUT_COUNT: usize = 112;
    pub const DELETE_COUNT: usize = 120;
    pub const TABLE_COUNT: usize = 128;
    pub const PAYLOAD_BYTES: usize = 136;
    pub const FILE_SIZE: usize = 144;
    pub const LARGEST_RECORD: usize = 152;
    pub const BLOCKS_CRC: usize = 156;
    pub const FINISHED: usize = 160;
    pub const ENGINE_BYTES: usize = 168;
    pub const RESERVED_2: usize = 176;
    pub const CRC: usize = 252;
}

/// Byte offsets of a block header's fields.
mod blk {
    pub const MAGIC: usize = 0;
    pub const INDEX: usize = 4;
    pub const RECORD_COUNT: usize = 8;
    pub const PAYLOAD_SIZE: usize = 12;
    pub const CRC: usize = 16;
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

/// Full backup or incremental backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupKind {
    Full = 1,
    Incremental = 2,
}

impl BackupKind {
    fn from_byte(b: u8) -> Option<BackupKind> {
        match b {
            1 => Some(BackupKind::Full),
            2 => Some(BackupKind::Incremental),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BackupKind::Full => "full",
            BackupKind::Incremental => "incremental",
        }
    }
}

/// The header: what a backup is, known before its data is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub kind: BackupKind,
    pub array_id: [u8; 16],
    pub backup_id: [u8; 16],
    /// The backup this incremental follows (zero for a full backup).
    pub base_backup_id: [u8; 16],
    /// The backup id of the chain's full backup (a full backup's own id).
    pub chain_id: [u8; 16],
    /// 0 for the full backup, i for the i-th incremental after it.
    pub chain_index: u32,
    /// The largest block payload the file may hold.
    pub block_payload_limit_bytes: u32,
    /// 0 for a full backup; the base's end LSN for an incremental.
    pub start_lsn: u64,
    pub created_unix_secs: u64,
}

impl Header {
    /// Checks the rules a header must follow (before it is written, and after it is read).
    fn check(&self) -> std::result::Result<(), (usize, String)> {
        match self.kind {
            BackupKind::Full => {
                if self.base_backup_id != [0; 16] {
                    return Err((hdr::BASE_ID, "a full backup with a base backup id".into()));
                }
                if self.chain_id != self.backup_id {
                    return Err((
                        hdr::CHAIN_ID,
                        "a full backup whose chain id is not its own id".into(),
                    ));
                }
                if self.chain_index != 0 || self.start_lsn != 0 {
                    return Err((
                        hdr::CHAIN_INDEX,
                        "a full backup with a chain index or start LSN".into(),
                    ));
                }
            }
            BackupKind::Incremental => {
                if self.base_backup_id == [0; 16] || self.chain_id == self.backup_id {
                    return Err((hdr::BASE_ID, "an incremental backup without a base".into()));
                }
                if self.chain_index == 0 {
                    return Err((
                        hdr::CHAIN_INDEX,
                        "an incremental backup with chain index 0".into(),
                    ));
                }
            }
        }
        if self.block_payload_limit_bytes < BLOCK_TARGET_BYTES as u32
            || self.block_payload_limit_bytes > MAX_BLOCK_PAYLOAD_LIMIT_BYTES
        {
            return Err((
                hdr::BLOCK_LIMIT,
                format!(
                    "block payload limit {} outside {}..={}",
                    self.block_payload_limit_bytes,
                    BLOCK_TARGET_BYTES,
                    MAX_BLOCK_PAYLOAD_LIMIT_BYTES
                ),
            ));
        }
        Ok(())
    }

    pub fn encode(&self) -> [u8; HEADER_SIZE_BYTES] {
        let mut b = [0u8; HEADER_SIZE_BYTES];
        b[hdr::MAGIC..hdr::MAGIC + 8].copy_from_slice(&HEADER_MAGIC);
        put_u16(&mut b, hdr::VERSION, FORMAT_VERSION);
        b[hdr::KIND] = self.kind as u8;
        put_u32(&mut b, hdr::HEADER_SIZE, HEADER_SIZE_BYTES as u32);
        b[hdr::ARRAY_ID..hdr::ARRAY_ID + 16].copy_from_slice(&self.array_id);
        b[hdr::BACKUP_ID..hdr::BACKUP_ID + 16].copy_from_slice(&self.backup_id);
        b[hdr::BASE_ID..hdr::BASE_ID + 16].copy_from_slice(&self.base_backup_id);
        b[hdr::CHAIN_ID..hdr::CHAIN_ID + 16].copy_from_slice(&self.chain_id);
        put_u32(&mut b, hdr::CHAIN_INDEX, self.chain_index);
        put_u32(&mut b, hdr::BLOCK_LIMIT, self.block_payload_limit_bytes);
        put_u64(&mut b, hdr::START_LSN, self.start_lsn);
        put_u64(&mut b, hdr::CREATED, self.created_unix_secs);
        assert!(b[hdr::RESERVED_1] == 0 && b[hdr::RESERVED_2..hdr::CRC].iter().all(|x| *x == 0));
        let crc = crc32c::crc32c(&b[..hdr::CRC]);
        put_u32(&mut b, hdr::CRC, crc);
        b
    }

    /// Decodes and checks a header; errors carry the offset of the offending field.
    pub fn decode(b: &[u8; HEADER_SIZE_BYTES]) -> std::result::Result<Header, (usize, String)> {
        if b[hdr::MAGIC..hdr::MAGIC + 8] != HEADER_MAGIC {
            return Err((
                hdr::MAGIC,
                "not an ectable backup file (bad magic; expected \"ECTBKUP1\")".into(),
            ));
        }
        let stored = get_u32(b, hdr::CRC);
        let computed = crc32c::crc32c(&b[..hdr::CRC]);
        if stored != computed {
            return Err((
                hdr::CRC,
                format!(
                    "header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                ),
            ));
        }
        let version = get_u16(b, hdr::VERSION);
        if version != FORMAT_VERSION {
            return Err((
                hdr::VERSION,
                format!("format version {version} is not supported (this ectable reads version {FORMAT_VERSION})"),
            ));
        }
        let size = get_u32(b, hdr::HEADER_SIZE);
        if size as usize != HEADER_SIZE_BYTES {
            return Err((
                hdr::HEADER_SIZE,
                format!("header size {size}, expected 256"),
            ));
        }
        if b[hdr::RESERVED_1] != 0 || b[hdr::RESERVED_2..hdr::CRC].iter().any(|x| *x != 0) {
            return Err((hdr::RESERVED_2, "reserved header bytes are not zero".into()));
        }
        let kind = BackupKind::from_byte(b[hdr::KIND])
            .ok_or_else(|| (hdr::KIND, format!("unknown backup kind {}", b[hdr::KIND])))?;
        let h = Header {
            kind,
            array_id: get_id(b, hdr::ARRAY_ID),
            backup_id: get_id(b, hdr::BACKUP_ID),
            base_backup_id: get_id(b, hdr::BASE_ID),
            chain_id: get_id(b, hdr::CHAIN_ID),
            chain_index: get_u32(b, hdr::CHAIN_INDEX),
            block_payload_limit_bytes: get_u32(b, hdr::BLOCK_LIMIT),
            start_lsn: get_u64(b, hdr::START_LSN),
            created_unix_secs: get_u64(b, hdr::CREATED),
        };
        h.check()?;
        Ok(h)
    }
}

/// The trailer: the manifest of a complete backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub kind: BackupKind,
    pub chain_index: u32,
    pub array_id: [u8; 16],
    pub backup_id: [u8; 16],
    pub base_backup_id: [u8; 16],
    pub chain_id: [u8; 16],
    pub start_lsn: u64,
    /// The LSN the backup reaches: a full backup is the state as of this LSN; an
    /// incremental holds the changes with LSN in (start_lsn, end_lsn].
    pub end_lsn: u64,
    pub block_count: u64,
    /// Rows (full) or changes (incremental).
    pub record_count: u64,
    pub put_count: u64,
    pub delete_count: u64,
    /// Distinct tables among the records.
    pub table_count: u64,
    /// Sum of the block payload sizes.
    pub payload_bytes: u64,
    /// The file's size, trailer included.
    pub file_size_bytes: u64,
    /// The largest record as the engine stores it (padded), for a restore's size check.
    pub largest_record_bytes: u32,
    /// crc32c chained over the crc of every block, in order.
    pub blocks_crc: u32,
    pub finished_unix_secs: u64,
    /// Sum of the engine's padded record sizes of the puts: what restoring them writes.
    pub engine_bytes: u64,
}

impl Manifest {
    pub fn encode(&self) -> [u8; TRAILER_SIZE_BYTES] {
        let mut b = [0u8; TRAILER_SIZE_BYTES];
        b[trl::MAGIC..trl::MAGIC + 8].copy_from_slice(&TRAILER_MAGIC);
        b[trl::KIND] = self.kind as u8;
        put_u32(&mut b, trl::CHAIN_INDEX, self.chain_index);
        b[trl::ARRAY_ID..trl::ARRAY_ID + 16].copy_from_slice(&self.array_id);
        b[trl::BACKUP_ID..trl::BACKUP_ID + 16].copy_from_slice(&self.backup_id);
        b[trl::BASE_ID..trl::BASE_ID + 16].copy_from_slice(&self.base_backup_id);
        b[trl::CHAIN_ID..trl::CHAIN_ID + 16].copy_from_slice(&self.chain_id);
        put_u64(&mut b, trl::START_LSN, self.start_lsn);
        put_u64(&mut b, trl::END_LSN, self.end_lsn);
        put_u64(&mut b, trl::BLOCK_COUNT, self.block_count);
        put_u64(&mut b, trl::RECORD_COUNT, self.record_count);
        put_u64(&mut b, trl::PUT_COUNT, self.put_count);
        put_u64(&mut b, trl::DELETE_COUNT, self.delete_count);
        put_u64(&mut b, trl::TABLE_COUNT, self.table_count);
        put_u64(&mut b, trl::PAYLOAD_BYTES, self.payload_bytes);
        put_u64(&mut b, trl::FILE_SIZE, self.file_size_bytes);
        put_u32(&mut b, trl::LARGEST_RECORD, self.largest_record_bytes);
        put_u32(&mut b, trl::BLOCKS_CRC, self.blocks_crc);
        put_u64(&mut b, trl::FINISHED, self.finished_unix_secs);
        put_u64(&mut b, trl::ENGINE_BYTES, self.engine_bytes);
        assert!(
            b[trl::RESERVED_1..trl::RESERVED_1 + 3]
                .iter()
                .all(|x| *x == 0)
                && b[trl::RESERVED_2..trl::CRC].iter().all(|x| *x == 0)
        );
        let crc = crc32c::crc32c(&b[..trl::CRC]);
        put_u32(&mut b, trl::CRC, crc);
        b
    }

    /// Decodes a trailer and checks its own checksum; errors carry the field's offset.
    pub fn decode(b: &[u8; TRAILER_SIZE_BYTES]) -> std::result::Result<Manifest, (usize, String)> {
        if b[trl::MAGIC..trl::MAGIC + 8] != TRAILER_MAGIC {
            return Err((
                trl::MAGIC,
                "bad trailer magic (expected \"ECTBEND1\")".into(),
            ));
        }
        let stored = get_u32(b, trl::CRC);
        let computed = crc32c::crc32c(&b[..trl::CRC]);
        if stored != computed {
            return Err((
                trl::CRC,
                format!(
                    "trailer checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                ),
            ));
        }
        if b[trl::RESERVED_1..trl::RESERVED_1 + 3]
            .iter()
            .any(|x| *x != 0)
            || b[trl::RESERVED_2..trl::CRC].iter().any(|x| *x != 0)
        {
            return Err((
                trl::RESERVED_2,
                "reserved trailer bytes are not zero".into(),
            ));
        }
        let kind = BackupKind::from_byte(b[trl::KIND])
            .ok_or_else(|| (trl::KIND, format!("unknown backup kind {}", b[trl::KIND])))?;
        Ok(Manifest {
            kind,
            chain_index: get_u32(b, trl::CHAIN_INDEX),
            array_id: get_id(b, trl::ARRAY_ID),
            backup_id: get_id(b, trl::BACKUP_ID),
            base_backup_id: get_id(b, trl::BASE_ID),
            chain_id: get_id(b, trl::CHAIN_ID),
            start_lsn: get_u64(b, trl::START_LSN),
            end_lsn: get_u64(b, trl::END_LSN),
            block_count: get_u64(b, trl::BLOCK_COUNT),
            record_count: get_u64(b, trl::RECORD_COUNT),
            put_count: get_u64(b, trl::PUT_COUNT),
            delete_count: get_u64(b, trl::DELETE_COUNT),
            table_count: get_u64(b, trl::TABLE_COUNT),
            payload_bytes: get_u64(b, trl::PAYLOAD_BYTES),
            file_size_bytes: get_u64(b, trl::FILE_SIZE),
            largest_record_bytes: get_u32(b, trl::LARGEST_RECORD),
            blocks_crc: get_u32(b, trl::BLOCKS_CRC),
            finished_unix_secs: get_u64(b, trl::FINISHED),
            engine_bytes: get_u64(b, trl::ENGINE_BYTES),
        })
    }

    /// The first difference between the trailer's copy of the identity and the header: the
    /// field's offset within the trailer and a description.
    fn identity_mismatch(&self, h: &Header) -> Option<(usize, &'static str)> {
        if self.kind != h.kind {
            Some((trl::KIND, "kind"))
        } else if self.chain_index != h.chain_index {
            Some((trl::CHAIN_INDEX, "chain index"))
        } else if self.array_id != h.array_id {
            Some((trl::ARRAY_ID, "array id"))
        } else if self.backup_id != h.backup_id {
            Some((trl::BACKUP_ID, "backup id"))
        } else if self.base_backup_id != h.base_backup_id {
            Some((trl::BASE_ID, "base backup id"))
        } else if self.chain_id != h.chain_id {
            Some((trl::CHAIN_ID, "chain id"))
        } else if self.start_lsn != h.start_lsn {
            Some((trl::START_LSN, "start LSN"))
        } else {
            None
        }
    }
}

/// One record of a backup: a row of a full backup, or a change of an incremental.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Row {
        table: String,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Change(Change),
}

/// Counts kept while writing and while reading, so that the reader can compare its own
/// with the trailer's.
#[derive(Debug, Default, Clone)]
struct Tally {
    block_count: u64,
    record_count: u64,
    put_count: u64,
    delete_count: u64,
    tables: BTreeSet<String>,
    payload_bytes: u64,
    largest_record_bytes: u32,
    blocks_crc: u32,
    engine_bytes: u64,
}

impl Tally {
    fn record(&mut self, table: &str, key_len: usize, value: Option<usize>) {
        self.record_count += 1;
        match value {
            Some(v) => {
                self.put_count += 1;
                let padded = encoded_len_padded(table.len(), key_len, v);
                self.engine_bytes += padded as u64;
                self.largest_record_bytes = self
                    .largest_record_bytes
                    .max(u32::try_from(padded).unwrap_or(u32::MAX));
            }
            None => {
                self.delete_count += 1;
                let padded = encoded_len_padded(table.len(), key_len, 0);
                self.largest_record_bytes = self
                    .largest_record_bytes
                    .max(u32::try_from(padded).unwrap_or(u32::MAX));
            }
        }
        if !self.tables.contains(table) {
            self.tables.insert(table.to_string());
        }
    }

    fn block(&mut self, payload_bytes: usize, crc: u32) {
        self.block_count += 1;
        self.payload_bytes += payload_bytes as u64;
        self.blocks_crc = crc32c::crc32c_append(self.blocks_crc, &crc.to_le_bytes());
    }
}

/// The crc of a block: over its first 16 bytes and its payload, seeded with the file's
/// backup id.
fn block_crc(backup_id: &[u8; 16], head: &[u8], payload: &[u8]) -> u32 {
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

/// Streams a backup out: the header at once, records into blocks of about
/// [`BLOCK_TARGET_BYTES`], the trailer at [`Writer::finish`].
pub struct Writer<W: Write> {
    out: W,
    header: Header,
    block: Vec<u8>,
    block_records: u32,
    tally: Tally,
    written_bytes: u64,
    last_lsn: u64,
}

impl<W: Write> Writer<W> {
    /// Writes the header. Refuses a header that breaks the rules (`InvalidInput`).
    pub fn new(mut out: W, header: Header) -> std::io::Result<Writer<W>> {
        if let Err((_, e)) = header.check() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("backup writer given a bad header: {e}"),
            ));
        }
        out.write_all(&header.encode())?;
        Ok(Writer {
            out,
            last_lsn: header.start_lsn,
            header,
            block: Vec::with_capacity(BLOCK_TARGET_BYTES + 4096),
            block_records: 0,
            tally: Tally::default(),
            written_bytes: HEADER_SIZE_BYTES as u64,
        })
    }

    /// Bytes written so far (header and closed blocks).
    pub fn written_bytes(&self) -> u64 {
        self.written_bytes
    }

    /// Refuses a record of the other kind of backup.
    fn check_kind(&self, kind: BackupKind) -> std::io::Result<()> {
        if self.header.kind != kind {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "a record of a {} backup given to the writer of a {} backup",
                    kind.name(),
                    self.header.kind.name()
                ),
            ));
        }
        Ok(())
    }

    fn check_fits(
        &self,
        prefix: usize,
        table: &str,
        key: &[u8],
        value_len: usize,
    ) -> std::io::Result<usize> {
        let len = prefix + table.len() + key.len() + value_len;
        if table.is_empty()
            || table.len() > MAX_TABLE_NAME_BYTES
            || key.is_empty()
            || key.len() > MAX_KEY_BYTES
            || len > self.header.block_payload_limit_bytes as usize
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "record of table '{table}' ({} key bytes, {value_len} value bytes) does not fit a backup block",
                    key.len()
                ),
            ));
        }
        Ok(len)
    }

    /// Closes the block if the next record of `len` bytes would take it past the limit.
    fn make_room(&mut self, len: usize) -> std::io::Result<()> {
        if !self.block.is_empty()
            && (self.block.len() >= BLOCK_TARGET_BYTES
                || self.block.len() + len > self.header.block_payload_limit_bytes as usize)
        {
            self.flush_block()?;
        }
        Ok(())
    }

    /// Adds a row of a full backup (rows come in (table, key) order).
    pub fn push_row(&mut self, table: &str, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        self.check_kind(BackupKind::Full)?;
        let len = self.check_fits(ROW_PREFIX_BYTES, table, key, value.len())?;
        self.make_room(len)?;
        let b = &mut self.block;
        b.push(table.len() as u8);
        b.extend_from_slice(&(key.len() as u16).to_le_bytes());
        b.extend_from_slice(&(value.len() as u32).to_le_bytes());
        b.extend_from_slice(table.as_bytes());
        b.extend_from_slice(key);
        b.extend_from_slice(value);
        self.block_records += 1;
        self.tally.record(table, key.len(), Some(value.len()));
        Ok(())
    }

    /// Adds a change of an incremental backup (changes come in LSN order).
    pub fn push_change(&mut self, c: &Change) -> std::io::Result<()> {
        self.check_kind(BackupKind::Incremental)?;
        if c.lsn <= self.last_lsn {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "change at LSN {} after LSN {}: out of order",
                    c.lsn, self.last_lsn
                ),
            ));
        }
        let value_len = c.value.as_ref().map_or(0, Vec::len);
        let len = self.check_fits(CHANGE_PREFIX_BYTES, &c.table, &c.key, value_len)?;
        self.make_room(len)?;
        let b = &mut self.block;
        b.extend_from_slice(&c.lsn.to_le_bytes());
        b.push(if c.value.is_some() { OP_PUT } else { OP_DELETE });
        b.push(c.table.len() as u8);
        b.extend_from_slice(&(c.key.len() as u16).to_le_bytes());
        b.extend_from_slice(&(value_len as u32).to_le_bytes());
        b.extend_from_slice(c.table.as_bytes());
        b.extend_from_slice(&c.key);
        if let Some(v) = &c.value {
            b.extend_from_slice(v);
        }
        self.block_records += 1;
        self.last_lsn = c.lsn;
        self.tally
            .record(&c.table, c.key.len(), c.value.as_ref().map(Vec::len));
        Ok(())
    }

    fn flush_block(&mut self) -> std::io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let index = u32::try_from(self.tally.block_count).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "more than 2^32 blocks")
        })?;
        let mut head = [0u8; BLOCK_HEADER_SIZE_BYTES];
        head[blk::MAGIC..blk::MAGIC + 4].copy_from_slice(&BLOCK_MAGIC);
        put_u32(&mut head, blk::INDEX, index);
        put_u32(&mut head, blk::RECORD_COUNT, self.block_records);
        put_u32(&mut head, blk::PAYLOAD_SIZE, self.block.len() as u32);
        let crc = block_crc(&self.header.backup_id, &head, &self.block);
        put_u32(&mut head, blk::CRC, crc);
        self.out.write_all(&head)?;
        self.out.write_all(&self.block)?;
        self.written_bytes += (BLOCK_HEADER_SIZE_BYTES + self.block.len()) as u64;
        self.tally.block(self.block.len(), crc);
        self.block.clear();
        self.block_records = 0;
        Ok(())
    }

    /// Writes the last block and the trailer; returns the output (flushed, not fsynced) and
    /// the manifest.
    pub fn finish(mut self, end_lsn: u64) -> std::io::Result<(W, Manifest)> {
        if end_lsn < self.last_lsn {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "end LSN {end_lsn} before the last change at {}",
                    self.last_lsn
                ),
            ));
        }
        self.flush_block()?;
        let h = &self.header;
        let t = &self.tally;
        let m = Manifest {
            kind: h.kind,
            chain_index: h.chain_index,
            array_id: h.array_id,
            backup_id: h.backup_id,
            base_backup_id: h.base_backup_id,
            chain_id: h.chain_id,
            start_lsn: h.start_lsn,
            end_lsn,
            block_count: t.block_count,
            record_count: t.record_count,
            put_count: t.put_count,
            delete_count: t.delete_count,
            table_count: t.tables.len() as u64,
            payload_bytes: t.payload_bytes,
            file_size_bytes: self.written_bytes + TRAILER_SIZE_BYTES as u64,
            largest_record_bytes: t.largest_record_bytes,
            blocks_crc: t.blocks_crc,
            finished_unix_secs: crate::now_unix_secs(),
            engine_bytes: t.engine_bytes,
        };
        self.out.write_all(&m.encode())?;
        self.out.flush()?;
        Ok((self.out, m))
    }
}

/// Streams a backup file in, checking everything as it goes: [`Reader::next_entry`] hands
/// out records until the trailer, which it checks against everything read.
pub struct Reader {
    path: PathBuf,
    input: BufReader<std::fs::File>,
    file_size: u64,
    pos: u64,
    header: Header,
    block: Vec<u8>,
    /// File offset of the current block's payload.
    block_payload_offset: u64,
    cursor: usize,
    records_left: u32,
    tally: Tally,
    last_key: Option<(String, Vec<u8>)>,
    last_lsn: u64,
    manifest: Option<Manifest>,
}

impl Reader {
    /// Opens a backup file and checks its header.
    pub fn open(path: &Path) -> Result<Reader> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, 0, e))?;
        let file_size = file.metadata().map_err(|e| Error::io(path, 0, e))?.len();
        let mut r = Reader {
            path: path.to_path_buf(),
            input: BufReader::with_capacity(1 << 20, file),
            file_size,
            pos: 0,
            header: Header {
                kind: BackupKind::Full,
                array_id: [0; 16],
                backup_id: [0; 16],
                base_backup_id: [0; 16],
                chain_id: [0; 16],
                chain_index: 0,
                block_payload_limit_bytes: 0,
                start_lsn: 0,
                created_unix_secs: 0,
            },
            block: Vec::new(),
            block_payload_offset: 0,
            cursor: 0,
            records_left: 0,
            tally: Tally::default(),
            last_key: None,
            last_lsn: 0,
            manifest: None,
        };
        if file_size < HEADER_SIZE_BYTES as u64 {
            return Err(r.incomplete(
                file_size,
                format!(
                    "the file is {file_size} bytes long, shorter than a backup header ({HEADER_SIZE_BYTES} bytes)"
                ),
            ));
        }
        let mut b = [0u8; HEADER_SIZE_BYTES];
        r.read_exact(&mut b, "the header")?;
        r.header = Header::decode(&b).map_err(|(at, d)| r.corrupt(at as u64, d))?;
        r.last_lsn = r.header.start_lsn;
        Ok(r)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the file read so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// The manifest, once the trailer was read and checked.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    fn corrupt(&self, offset_bytes: u64, detail: String) -> Error {
        Error::corrupt(&self.path, offset_bytes, detail)
    }

    fn incomplete(&self, offset_bytes: u64, detail: String) -> Error {
        Error::incomplete(&self.path, offset_bytes, detail)
    }

    /// Reads exactly `buf.len()` bytes at the current position (the caller checked that the
    /// file holds them).
    fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        if self.pos + buf.len() as u64 > self.file_size {
            return Err(self.incomplete(
                self.pos,
                format!(
                    "{what} needs {} bytes, but the file ends at byte {}",
                    buf.len(),
                    self.file_size
                ),
            ));
        }
        self.input
            .read_exact(buf)
            .map_err(|e| Error::io(&self.path, self.pos, e))?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// The next record, or None after the trailer was read and found to match.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        loop {
            if self.manifest.is_some() {
                return Ok(None);
            }
            if self.records_left > 0 {
                return self.decode_record().map(Some);
            }
            if self.cursor != self.block.len() {
                return Err(self.corrupt(
                    self.block_payload_offset + self.cursor as u64,
                    format!(
                        "block {}: {} bytes after its last record",
                        self.tally.block_count.saturating_sub(1),
                        self.block.len() - self.cursor
                    ),
                ));
            }
            self.next_block_or_trailer()?;
        }
    }

    fn next_block_or_trailer(&mut self) -> Result<()> {
        let start = self.pos;
        if start == self.file_size {
            return Err(self.incomplete(
                start,
                format!(
                    "the file ends after {} block(s) without its trailer (an interrupted or truncated backup)",
                    self.tally.block_count
                ),
            ));
        }
        let mut magic = [0u8; 4];
        self.read_exact(&mut magic, "the next block or the trailer")?;
        if magic == BLOCK_MAGIC {
            self.read_block(start, magic)
        } else if magic == TRAILER_MAGIC[..4] {
            self.read_trailer(start, magic)
        } else {
            Err(self.corrupt(
                start,
                format!(
                    "expected block {} or the trailer, found bytes {:02x} {:02x} {:02x} {:02x}",
                    self.tally.block_count, magic[0], magic[1], magic[2], magic[3]
                ),
            ))
        }
    }

    fn read_block(&mut self, start: u64, magic: [u8; 4]) -> Result<()> {
        let mut head = [0u8; BLOCK_HEADER_SIZE_BYTES];
        head[..4].copy_from_slice(&magic);
        self.read_exact(&mut head[4..], "a block header")?;
        let index = get_u32(&head, blk::INDEX);
        let record_count = get_u32(&head, blk::RECORD_COUNT);
        let payload_size = get_u32(&head, blk::PAYLOAD_SIZE);
        let stored = get_u32(&head, blk::CRC);
        let expected_index = self.tally.block_count;
        if payload_size == 0 || payload_size > self.header.block_payload_limit_bytes {
            return Err(self.corrupt(
                start + blk::PAYLOAD_SIZE as u64,
                format!(
                    "block {expected_index}: payload size {payload_size} outside 1..={} (damaged block header)",
                    self.header.block_payload_limit_bytes
                ),
            ));
        }
        let end = self.pos + u64::from(payload_size);
        if end > self.file_size {
            return Err(self.incomplete(
                start,
                format!(
                    "block {expected_index}: its payload of {payload_size} bytes runs past the end of the file at byte {} (truncated file or damaged block header)",
                    self.file_size
                ),
            ));
        }
        let mut payload = std::mem::take(&mut self.block);
        payload.clear();
        payload.resize(payload_size as usize, 0);
        self.read_exact(&mut payload, "a block payload")?;
        let computed = block_crc(&self.header.backup_id, &head, &payload);
        if computed != stored {
            return Err(self.corrupt(
                start,
                format!(
                    "block {expected_index} ({payload_size} bytes of payload at byte {}): checksum mismatch (stored {stored:#010x}, computed {computed:#010x})",
                    start + BLOCK_HEADER_SIZE_BYTES as u64
                ),
            ));
        }
        if u64::from(index) != expected_index {
            return Err(self.corrupt(
                start + blk::INDEX as u64,
                format!("block index {index} where block {expected_index} belongs (a block is missing or out of place)"),
            ));
        }
        if record_count == 0 {
            return Err(self.corrupt(
                start + blk::RECORD_COUNT as u64,
                format!("block {expected_index} holds no records"),
            ));
        }
        self.tally.block(payload.len(), computed);
        self.block = payload;
        self.block_payload_offset = start + BLOCK_HEADER_SIZE_BYTES as u64;
        self.cursor = 0;
        self.records_left = record_count;
        Ok(())
    }

    fn decode_record(&mut self) -> Result<Entry> {
        let at = self.block_payload_offset + self.cursor as u64;
        let rest = &self.block[self.cursor..];
        let block_index = self.tally.block_count.saturating_sub(1);
        let short = |what: &str| {
            format!(
                "block {block_index}: record cut short ({what}); {} record(s) of the block left",
                self.records_left
            )
        };
        let (lsn, op, prefix) = match self.header.kind {
            BackupKind::Full => (0, OP_PUT, ROW_PREFIX_BYTES),
            BackupKind::Incremental => {
                if rest.len() < CHANGE_PREFIX_BYTES {
                    return Err(self.corrupt(at, short("header")));
                }
                (get_u64(rest, 0), rest[8], CHANGE_PREFIX_BYTES)
            }
        };
        if rest.len() < prefix {
            return Err(self.corrupt(at, short("header")));
        }
        let sizes = &rest[prefix - ROW_PREFIX_BYTES..prefix];
        let table_size = sizes[0] as usize;
        let key_size = get_u16(sizes, 1) as usize;
        let value_size = get_u32(sizes, 3) as usize;
        if table_size == 0 || table_size > MAX_TABLE_NAME_BYTES {
            return Err(self.corrupt(
                at,
                format!("block {block_index}: table name of {table_size} bytes"),
            ));
        }
        if key_size == 0 || key_size > MAX_KEY_BYTES {
            return Err(self.corrupt(at, format!("block {block_index}: key of {key_size} bytes")));
        }
        let len = prefix + table_size + key_size;
        if rest.len() < len || rest.len() - len < value_size {
            return Err(self.corrupt(at, short("data")));
        }
        let table = std::str::from_utf8(&rest[prefix..prefix + table_size])
            .map_err(|_| self.corrupt(at, format!("block {block_index}: table name is not UTF-8")))?
            .to_string();
        if table == BACKUP_TABLE {
            return Err(self.corrupt(
                at,
                format!("block {block_index}: a record of the system table {BACKUP_TABLE}, which backups never hold"),
            ));
        }
        let key = rest[prefix + table_size..len].to_vec();
        let value = rest[len..len + value_size].to_vec();
        let entry = match self.header.kind {
            BackupKind::Full => {
                if let Some((t, k)) = &self.last_key {
                    if (t.as_bytes(), k.as_slice()) >= (table.as_bytes(), key.as_slice()) {
                        return Err(self.corrupt(
                            at,
                            format!("block {block_index}: rows out of (table, key) order"),
                        ));
                    }
                }
                self.last_key = Some((table.clone(), key.clone()));
                self.tally.record(&table, key.len(), Some(value.len()));
                Entry::Row { table, key, value }
            }
            BackupKind::Incremental => {
                if lsn <= self.last_lsn {
                    return Err(self.corrupt(
                        at,
                        format!(
                            "block {block_index}: change at LSN {lsn} after LSN {} (out of order or before the start LSN)",
                            self.last_lsn
                        ),
                    ));
                }
                let value = match op {
                    OP_PUT => Some(value),
                    OP_DELETE if value_size == 0 => None,
                    OP_DELETE => {
                        return Err(
                            self.corrupt(at, format!("block {block_index}: a delete with a value"))
                        )
                    }
                    other => {
                        return Err(self.corrupt(
                            at,
                            format!("block {block_index}: unknown change op {other}"),
                        ))
                    }
                };
                self.last_lsn = lsn;
                self.tally
                    .record(&table, key.len(), value.as_ref().map(Vec::len));
                Entry::Change(Change {
                    lsn,
                    table,
                    key,
                    value,
                })
            }
        };
        self.cursor += len + value_size;
        self.records_left -= 1;
        Ok(entry)
    }

    fn read_trailer(&mut self, start: u64, magic: [u8; 4]) -> Result<()> {
        let mut b = [0u8; TRAILER_SIZE_BYTES];
        b[..4].copy_from_slice(&magic);
        self.read_exact(&mut b[4..], "the trailer")?;
        let at = |field: usize| start + field as u64;
        let m = Manifest::decode(&b).map_err(|(f, d)| self.corrupt(at(f), d))?;
        if let Some((f, what)) = m.identity_mismatch(&self.header) {
            return Err(self.corrupt(
                at(f),
                format!(
                    "the trailer's {what} differs from the header's (a trailer of another backup?)"
                ),
            ));
        }
        let t = &self.tally;
        let checks: [(usize, &str, u64, u64); 8] = [
            (
                trl::BLOCK_COUNT,
                "block count",
                m.block_count,
                t.block_count,
            ),
            (
                trl::RECORD_COUNT,
                "record count",
                m.record_count,
                t.record_count,
            ),
            (trl::PUT_COUNT, "put count", m.put_count, t.put_count),
            (
                trl::DELETE_COUNT,
                "delete count",
                m.delete_count,
                t.delete_count,
            ),
            (
                trl::TABLE_COUNT,
                "table count",
                m.table_count,
                t.tables.len() as u64,
            ),
            (
                trl::PAYLOAD_BYTES,
                "payload bytes",
                m.payload_bytes,
                t.payload_bytes,
            ),
            (
                trl::BLOCKS_CRC,
                "chained block crc",
                u64::from(m.blocks_crc),
                u64::from(t.blocks_crc),
            ),
            (
                trl::ENGINE_BYTES,
                "engine bytes",
                m.engine_bytes,
                t.engine_bytes,
            ),
        ];
        for (field, what, says, found) in checks {
            if says != found {
                return Err(self.corrupt(
                    at(field),
                    format!("the trailer's {what} is {says}, but the file holds {found} (blocks missing or added?)"),
                ));
            }
        }
        if m.largest_record_bytes != t.largest_record_bytes {
            return Err(self.corrupt(
                at(trl::LARGEST_RECORD),
                format!(
                    "the trailer's largest record is {} bytes, but the file's is {}",
                    m.largest_record_bytes, t.largest_record_bytes
                ),
            ));
        }
        if m.kind == BackupKind::Full && m.delete_count != 0 {
            return Err(self.corrupt(at(trl::DELETE_COUNT), "a full backup with deletes".into()));
        }
        if m.end_lsn < self.last_lsn {
            return Err(self.corrupt(
                at(trl::END_LSN),
                format!(
                    "end LSN {} before the last change at LSN {}",
                    m.end_lsn, self.last_lsn
                ),
            ));
        }
        if m.file_size_bytes != self.pos {
            return Err(self.corrupt(
                at(trl::FILE_SIZE),
                format!(
                    "the trailer says the file is {} bytes, but the trailer ends at byte {}",
                    m.file_size_bytes, self.pos
                ),
            ));
        }
        if self.file_size != self.pos {
            return Err(self.corrupt(
                self.pos,
                format!("{} bytes follow the trailer", self.file_size - self.pos),
            ));
        }
        self.manifest = Some(m);
        Ok(())
    }

    /// Reads to the end, checking everything; returns the manifest.
    pub fn verify_to_end(&mut self, progress: &mut dyn FnMut(u64)) -> Result<Manifest> {
        let mut last_report = 0u64;
        while self.next_entry()?.is_some() {
            if self.pos - last_report >= (1 << 20) {
                last_report = self.pos;
                progress(self.pos);
            }
        }
        progress(self.pos);
        self.manifest
            .clone()
            .ok_or_else(|| self.incomplete(self.pos, "no trailer".into()))
    }
}

/// Reads only a file's header and trailer (not its blocks): enough to know what a complete
/// backup is and to name it as the base of the next one. The blocks are checked by
/// [`crate::verify_chain`].
pub fn read_header_and_trailer(path: &Path) -> Result<(Header, Manifest)> {
    let r = Reader::open(path)?;
    let header = r.header.clone();
    let size = r.file_size;
    let min = (HEADER_SIZE_BYTES + TRAILER_SIZE_BYTES) as u64;
    if size < min {
        return Err(r.incomplete(
            size,
            format!("the file is {size} bytes long, too short to hold a trailer (an interrupted or truncated backup)"),
        ));
    }
    let start = size - TRAILER_SIZE_BYTES as u64;
    let mut file = r.input.into_inner();
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(start))
        .map_err(|e| Error::io(path, start, e))?;
    let mut b = [0u8; TRAILER_SIZE_BYTES];
    file.read_exact(&mut b)
        .map_err(|e| Error::io(path, start, e))?;
    if b[..8] != TRAILER_MAGIC {
        return Err(Error::incomplete(
            path,
            start,
            "no trailer at the end of the file (an interrupted or truncated backup)".into(),
        ));
    }
    let corrupt = |offset_bytes: u64, detail: String| Error::corrupt(path, offset_bytes, detail);
    let m = Manifest::decode(&b).map_err(|(f, d)| corrupt(start + f as u64, d))?;
    if let Some((f, what)) = m.identity_mismatch(&header) {
        return Err(corrupt(
            start + f as u64,
            format!("the trailer's {what} differs from the header's"),
        ));
    }
    if m.file_size_bytes != size {
        return Err(corrupt(
            start + trl::FILE_SIZE as u64,
            format!(
                "the trailer says the file is {} bytes, it is {size}",
                m.file_size_bytes
            ),
        ));
    }
    Ok((header, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: BackupKind) -> Header {
        let id = ectable_engine::new_uuid();
        Header {
            kind,
            array_id: [7; 16],
            backup_id: id,
            base_backup_id: if kind == BackupKind::Full {
                [0; 16]
            } else {
                [9; 16]
            },
            chain_id: if kind == BackupKind::Full {
                id
            } else {
                [9; 16]
            },
            chain_index: if kind == BackupKind::Full { 0 } else { 1 },
            block_payload_limit_bytes: block_payload_limit(300_000),
            start_lsn: if kind == BackupKind::Full { 0 } else { 10 },
            created_unix_secs: 1,
        }
    }

    #[test]
    fn header_and_trailer_round_trip_and_every_flipped_bit_is_caught() {
        let h = header(BackupKind::Incremental);
        let b = h.encode();
        assert_eq!(Header::decode(&b).unwrap(), h);
        for bit in 0..HEADER_SIZE_BYTES * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(Header::decode(&c).is_err(), "header bit {bit}");
        }
        let mut w = Writer::new(Vec::new(), h.clone()).unwrap();
        w.push_change(&Change {
            lsn: 11,
            table: "t".into(),
            key: b"k".to_vec(),
            value: None,
        })
        .unwrap();
        let (bytes, m) = w.finish(12).unwrap();
        let t: [u8; TRAILER_SIZE_BYTES] = bytes[bytes.len() - TRAILER_SIZE_BYTES..]
            .try_into()
            .unwrap();
        assert_eq!(Manifest::decode(&t).unwrap(), m);
        for bit in 0..TRAILER_SIZE_BYTES * 8 {
            let mut c = t;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(Manifest::decode(&c).is_err(), "trailer bit {bit}");
        }
    }

    /// Reads a whole file; Err on the first problem.
    fn read_all(path: &Path) -> Result<Vec<Entry>> {
        let mut r = Reader::open(path)?;
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            out.push(e);
        }
        Ok(out)
    }

    #[test]
    fn flipped_bits_and_every_truncation_of_a_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.ectb");
        let h = header(BackupKind::Incremental);
        let mut w = Writer::new(Vec::new(), h).unwrap();
        for lsn in 11..20u64 {
            w.push_change(&Change {
                lsn,
                table: format!("t{}", lsn % 3),
                key: vec![lsn as u8, 0],
                value: (lsn % 4 != 0).then(|| vec![lsn as u8; lsn as usize]),
            })
            .unwrap();
        }
        let (bytes, _) = w.finish(25).unwrap();
        std::fs::write(&good, &bytes).unwrap();
        assert_eq!(read_all(&good).unwrap().len(), 9);
        let bad = dir.path().join("bad.ectb");
        // Every fifth bit (the header and trailer tests above take every bit of those).
        for bit in (0..bytes.len() * 8).step_by(5) {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            std::fs::write(&bad, &b).unwrap();
            assert!(read_all(&bad).is_err(), "bit {bit} flipped went unnoticed");
        }
        for len in 0..bytes.len() {
            std::fs::write(&bad, &bytes[..len]).unwrap();
            match read_all(&bad) {
                Err(Error::Incomplete { .. }) => {}
                other => panic!("truncated to {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn writer_output_reads_back_with_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.ectb");
        let h = header(BackupKind::Full);
        let f = std::fs::File::create(&path).unwrap();
        let mut w = Writer::new(std::io::BufWriter::new(f), h).unwrap();
        let big = vec![5u8; 200_000];
        let mut rows = Vec::new();
        for i in 0..40u32 {
            let key = format!("k{i:03}").into_bytes();
            let value = if i % 7 == 0 {
                big.clone()
            } else {
                vec![i as u8; i as usize]
            };
            w.push_row("t", &key, &value).unwrap();
            rows.push(Entry::Row {
                table: "t".into(),
                key,
                value,
            });
        }
        let (_, m) = w.finish(99).unwrap();
        assert!(m.block_count > 1, "{m:?}");
        let mut r = Reader::open(&path).unwrap();
        let mut got = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            got.push(e);
        }
        assert_eq!(got, rows);
        assert_eq!(r.manifest(), Some(&m));
        let (_, m2) = read_header_and_trailer(&path).unwrap();
        assert_eq!(m2, m);
    }
}
