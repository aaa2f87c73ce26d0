//! [`Reader`]: streams a backup file in, one block in memory at a time, and checks
//! everything as it goes (docs/backup-format.md, "What a reader checks, and how an error
//! reads"); [`read_header_and_trailer`] reads a file's ends only.

use super::block::{blk, block_crc, Entry};
use super::header::{BackupKind, Header};
use super::manifest::{trl, Manifest, Tally};
use super::{
    get_u16, get_u32, get_u64, BLOCK_HEADER_SIZE_BYTES, BLOCK_MAGIC, CHANGE_PREFIX_BYTES,
    HEADER_SIZE_BYTES, OP_DELETE, OP_PUT, ROW_PREFIX_BYTES, TRAILER_MAGIC, TRAILER_SIZE_BYTES,
};
use crate::{Error, Result};
use ectable_engine::{Change, BACKUP_TABLE, MAX_KEY_BYTES, MAX_TABLE_NAME_BYTES};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Streams a backup file in, checking everything as it goes: [`Reader::next_entry`] hands
/// out records until the trailer, which it checks against everything read.
pub struct Reader {
    path: PathBuf,
    input: Box<dyn Read + Send>,
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
        Reader::start(
            path,
            Box::new(BufReader::with_capacity(1 << 20, file)),
            file_size,
        )
    }

    /// Reads a backup file image held in memory (`name` is what errors call it): the same
    /// checks as [`Reader::open`], for the fuzz targets and for tools that got the bytes
    /// elsewhere.
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<Reader> {
        let file_size = bytes.len() as u64;
        Reader::start(name, Box::new(std::io::Cursor::new(bytes)), file_size)
    }

    fn start(path: &Path, input: Box<dyn Read + Send>, file_size: u64) -> Result<Reader> {
        let mut r = Reader {
            path: path.to_path_buf(),
            input,
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

    /// The file's header, read and checked when the file was opened.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The file's path, as given to `open`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the file read so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The file's size in bytes when it was opened.
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
    // The reader buffered the file's start; its end is read through a second handle.
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, 0, e))?;
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
    use crate::format::header::tests::header;
    use crate::format::Writer;

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
        // Every fifth bit (the header and trailer tests, in header.rs and manifest.rs, take
        // every bit of those).
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
}
