//! [`Writer`]: streams a backup file out in one pass (docs/backup-format.md): the header at
//! once, the records into blocks, the trailer (the manifest) last.

use super::block::{blk, block_crc};
use super::header::{BackupKind, Header};
use super::manifest::{Manifest, Tally};
use super::{
    put_u32, BLOCK_HEADER_SIZE_BYTES, BLOCK_MAGIC, BLOCK_TARGET_BYTES, CHANGE_PREFIX_BYTES,
    HEADER_SIZE_BYTES, OP_DELETE, OP_PUT, ROW_PREFIX_BYTES, TRAILER_SIZE_BYTES,
};
use ectable_engine::{Change, MAX_KEY_BYTES, MAX_TABLE_NAME_BYTES};
use std::io::Write;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::header::tests::header;
    use crate::format::{read_header_and_trailer, Entry, Reader};

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
