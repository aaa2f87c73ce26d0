//! The trailer, the last 256 bytes of a complete backup file (docs/backup-format.md,
//! "Trailer"): the [`Manifest`]; and `Tally`, the counts a writer keeps to fill it and a
//! reader keeps to check it.

use super::header::{BackupKind, Header};
use super::{get_id, get_u32, get_u64, put_u32, put_u64, TRAILER_MAGIC, TRAILER_SIZE_BYTES};
use ectable_engine::encoded_len_padded;
use std::collections::BTreeSet;

/// Byte offsets of the trailer's fields.
pub(super) mod trl {
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

/// The trailer: the manifest of a complete backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Full or incremental (as the header).
    pub kind: BackupKind,
    /// 0 for the full backup, i for the i-th incremental after it (as the header).
    pub chain_index: u32,
    /// The uuid of the array backed up (as the header).
    pub array_id: [u8; 16],
    /// This backup's uuid (as the header).
    pub backup_id: [u8; 16],
    /// The backup this incremental follows; zero for a full backup (as the header).
    pub base_backup_id: [u8; 16],
    /// The backup id of the chain's full backup (as the header).
    pub chain_id: [u8; 16],
    /// 0 for a full backup; the base's end LSN for an incremental (as the header).
    pub start_lsn: u64,
    /// The LSN the backup reaches: a full backup is the state as of this LSN; an
    /// incremental holds the changes with LSN in (start_lsn, end_lsn].
    pub end_lsn: u64,
    /// Blocks in the file.
    pub block_count: u64,
    /// Rows (full) or changes (incremental).
    pub record_count: u64,
    /// Puts among the records (a full backup: every row).
    pub put_count: u64,
    /// Deletes among the records (0 for a full backup).
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
    /// When the backup was complete, in seconds since the Unix epoch.
    pub finished_unix_secs: u64,
    /// Sum of the engine's padded record sizes of the puts: what restoring them writes.
    pub engine_bytes: u64,
}

impl Manifest {
    /// The trailer's 256 bytes, crc sealed.
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

    /// Sets the blocks crc of the trailer `b` (a trailer long) and recomputes its own crc.
    #[cfg(feature = "internals")]
    pub(super) fn reseal(b: &mut [u8], blocks_crc: u32) {
        put_u32(b, trl::BLOCKS_CRC, blocks_crc);
        let crc = crc32c::crc32c(&b[..trl::CRC]);
        put_u32(b, trl::CRC, crc);
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
    pub(super) fn identity_mismatch(&self, h: &Header) -> Option<(usize, &'static str)> {
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

/// Counts kept while writing and while reading, so that the reader can compare its own
/// with the trailer's.
#[derive(Debug, Default, Clone)]
pub(super) struct Tally {
    pub(super) block_count: u64,
    pub(super) record_count: u64,
    pub(super) put_count: u64,
    pub(super) delete_count: u64,
    pub(super) tables: BTreeSet<String>,
    pub(super) payload_bytes: u64,
    pub(super) largest_record_bytes: u32,
    pub(super) blocks_crc: u32,
    pub(super) engine_bytes: u64,
}

impl Tally {
    pub(super) fn record(&mut self, table: &str, key_len: usize, value: Option<usize>) {
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

    pub(super) fn block(&mut self, payload_bytes: usize, crc: u32) {
        self.block_count += 1;
        self.payload_bytes += payload_bytes as u64;
        self.blocks_crc = crc32c::crc32c_append(self.blocks_crc, &crc.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::header::tests::header;
    use crate::format::Writer;
    use ectable_engine::Change;

    #[test]
    fn trailer_round_trips_and_every_flipped_bit_is_caught() {
        let h = header(BackupKind::Incremental);
        let mut w = Writer::new(Vec::new(), h).unwrap();
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
}
