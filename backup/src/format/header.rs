//! The header, the first 256 bytes of a backup file (docs/backup-format.md, "Header"): what
//! a backup is, known before its data is read. Its rules are checked before it is written
//! and after it is read.

use super::{get_id, get_u16, get_u32, get_u64, put_u16, put_u32, put_u64};
use super::{
    BLOCK_TARGET_BYTES, FORMAT_VERSION, HEADER_MAGIC, HEADER_SIZE_BYTES,
    MAX_BLOCK_PAYLOAD_LIMIT_BYTES,
};

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

/// Full backup or incremental backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupKind {
    /// Every row of every table as of one LSN; the first file of a chain.
    Full = 1,
    /// Every put and delete after the previous file's end LSN.
    Incremental = 2,
}

impl BackupKind {
    pub(super) fn from_byte(b: u8) -> Option<BackupKind> {
        match b {
            1 => Some(BackupKind::Full),
            2 => Some(BackupKind::Incremental),
            _ => None,
        }
    }

    /// "full" or "incremental".
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
    /// Full or incremental.
    pub kind: BackupKind,
    /// The uuid of the array backed up.
    pub array_id: [u8; 16],
    /// This backup's uuid (random); also seeds every block's crc.
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
    /// When the backup started, in seconds since the Unix epoch.
    pub created_unix_secs: u64,
}

impl Header {
    /// Checks the rules a header must follow (before it is written, and after it is read).
    pub(super) fn check(&self) -> std::result::Result<(), (usize, String)> {
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

    /// The header's 256 bytes, crc sealed.
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

    /// Recomputes the crc of the header at the start of `b` (at least a header long) and
    /// returns the backup id it names.
    #[cfg(feature = "internals")]
    pub(super) fn reseal(b: &mut [u8]) -> [u8; 16] {
        let crc = crc32c::crc32c(&b[..hdr::CRC]);
        put_u32(b, hdr::CRC, crc);
        get_id(b, hdr::BACKUP_ID)
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::format::block_payload_limit;

    /// A header of `kind` that follows the rules (also for the tests of the sibling files).
    pub(in crate::format) fn header(kind: BackupKind) -> Header {
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
    fn header_round_trips_and_every_flipped_bit_is_caught() {
        let h = header(BackupKind::Incremental);
        let b = h.encode();
        assert_eq!(Header::decode(&b).unwrap(), h);
        for bit in 0..HEADER_SIZE_BYTES * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(Header::decode(&c).is_err(), "header bit {bit}");
        }
    }
}
