//! The checkpoint payload: the whole index, serialized; written as the data of the stripes
//! of checkpoint segments (docs/format.md, "Index checkpoint").
//!
//! Two encodings, told apart by the magic. Written: the compact one, "ECTCKPT2" (entries
//! grouped by table, keys prefix-compressed against the previous key of the table, numbers
//! as LEB128 varints, the record length stored as its difference from what the table, key
//! and value length give). Read: both, so an array whose newest checkpoint is an
//! "ECTCKPT1" image opens as before.
//!
//! `// v2 { magic | version | reserved | lsn | resume_segment | resume_offset |
//!      resume_ordinal | entry_count | table_count | reserved | tables... | crc }`
//! `// table { table_len u8 | table | entries varint | entries... }`
//! `// entry { shared varint | suffix_len varint | suffix | lsn varint | value_len varint |
//!      segment_id varint | offset/4096 varint | height/4096 varint | ordinal varint |
//!      record_offset/8 varint | record_len - (24 + table_len + key_len + value_len) zigzag
//!      varint | crc u32 }`
//! `// v1 { magic | version | reserved | lsn | resume_segment | resume_offset | resume_ordinal |
//!      entry_count | entries... | crc }`
//! `// v1 entry { table_len u8 | table | key_len u16 | key | lsn u64 | value_len u32 |
//!      segment_id u64 | offset u32 | height u32 | ordinal u32 | record_offset u32 |
//!      record_len u32 | crc u32 }`

use super::*;
use crate::index::{Index, IndexEntry, Place, RecordLoc};

/// Magic of the first checkpoint encoding (fixed-size entries); read, no longer written.
pub const MAGIC_V1: &[u8; 8] = b"ECTCKPT1";
/// Magic of the compact checkpoint encoding, the one written.
pub const MAGIC_V2: &[u8; 8] = b"ECTCKPT2";
const OFF_TABLE_COUNT: usize = 48;
const HEADER_BYTES_V2: usize = 56;
/// A record's header bytes (docs/format.md, "Log record"): its length is this plus the
/// table name, key and value.
const RECORD_HEADER_BYTES: i64 = 24;
const OFF_VERSION: usize = 8;
const OFF_LSN: usize = 16;
const OFF_RESUME_SEGMENT: usize = 24;
const OFF_RESUME_OFFSET: usize = 32;
const OFF_RESUME_ORDINAL: usize = 36;
const OFF_ENTRY_COUNT: usize = 40;
const HEADER_BYTES: usize = 48;

/// Where the log continues after a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    /// The segment the log continues in.
    pub segment_id: u64,
    /// Byte offset in that segment of the first stripe after the checkpoint.
    pub offset: u32,
    /// Ordinal of that stripe in its segment.
    pub ordinal: u32,
}

/// Serializes the index in the compact encoding ("ECTCKPT2"). Returns None if some entry
/// is not on disk yet.
#[cfg(any(test, feature = "internals"))]
pub fn encode(index: &Index, lsn: u64, resume: ResumePoint) -> Option<Vec<u8>> {
    encode_pieces(index, lsn, resume, usize::MAX).map(|p| p.concat())
}

/// [`encode`], the image cut as it is written into pieces of `piece_bytes` (the last one
/// shorter; at least the header's size), so that each piece becomes one stripe's data as it
/// is, and no buffer of the size of the whole image is ever grown (and copied) on the way.
#[cfg(any(test, feature = "internals"))]
pub fn encode_pieces(
    index: &Index,
    lsn: u64,
    resume: ResumePoint,
    piece_bytes: usize,
) -> Option<Vec<Vec<u8>>> {
    let mut out = ImageWriter::new(lsn, resume, piece_bytes);
    let mut tables: Vec<&String> = index.tables.keys().collect();
    tables.sort();
    for t in tables {
        let map = &index.tables[t];
        if map.is_empty() {
            continue;
        }
        out.table(t, map.len() as u64)?;
        for (key, e) in map.iter() {
            out.entry(key, &e)?;
        }
    }
    out.finish()
}

/// Writes an image entry by entry, so that it can be taken a slice of the index at a time
/// (`crate::checkpoint` does, with the index unlocked between slices): a table's entry count
/// first, then its entries in key order. Every method returns None when the image would
/// not be what docs/format.md describes (an entry not on disk, a location off its alignment,
/// an entry newer than the image's LSN, keys out of order, a table with fewer or more
/// entries than it announced): a bug, and the caller writes no checkpoint.
pub struct ImageWriter {
    out: Pieces,
    piece_bytes: usize,
    lsn: u64,
    count: u64,
    table_count: u32,
    table_len: usize,
    /// Entries the current table announced and has not written yet.
    left: u64,
    prev: Vec<u8>,
    /// Bytes of the table names and keys written, as [`Index::name_bytes`] counts them.
    name_bytes: u64,
}

impl ImageWriter {
    /// Begins the image of the index as of `lsn`, cut into pieces of `piece_bytes`.
    pub fn new(lsn: u64, resume: ResumePoint, piece_bytes: usize) -> ImageWriter {
        let piece_bytes = piece_bytes.max(HEADER_BYTES_V2);
        let mut out = Pieces::new(piece_bytes);
        out.extend(&encode_header(MAGIC_V2, HEADER_BYTES_V2, lsn, resume));
        ImageWriter {
            out,
            piece_bytes,
            lsn,
            count: 0,
            table_count: 0,
            table_len: 0,
            left: 0,
            prev: Vec::new(),
            name_bytes: 0,
        }
    }

    /// Begins a table of `entries` entries (at least one; names in ascending order).
    pub fn table(&mut self, name: &str, entries: u64) -> Option<()> {
        if self.left != 0 || entries == 0 || name.is_empty() || name.len() > 255 {
            return None;
        }
        self.table_count += 1;
        self.table_len = name.len();
        self.left = entries;
        self.prev.clear();
        self.out.extend(&[name.len() as u8]);
        self.out.extend(name.as_bytes());
        self.out.varint(entries);
        Some(())
    }

    /// Writes the current table's next entry.
    pub fn entry(&mut self, key: &[u8], e: &IndexEntry) -> Option<()> {
        let Place::Disk(loc) = &e.place else {
            return None;
        };
        let first = self.prev.is_empty();
        if self.left == 0 || e.lsn > self.lsn || key.is_empty() || (!first && key <= &self.prev[..])
        {
            return None;
        }
        // Stripes lie on 4 KiB boundaries and have 4 KiB multiples as heights; records
        // start on 8-byte boundaries of the data space (docs/format.md).
        if loc.offset_in_segment_bytes % 4096 != 0
            || loc.height_bytes % 4096 != 0
            || loc.record_offset % 8 != 0
        {
            return None;
        }
        self.left -= 1;
        let out = &mut self.out;
        let shared = self
            .prev
            .iter()
            .zip(key)
            .take_while(|(a, b)| a == b)
            .count();
        out.varint(shared as u64);
        out.varint((key.len() - shared) as u64);
        out.extend(&key[shared..]);
        self.prev.clear();
        self.prev.extend_from_slice(key);
        out.varint(e.lsn);
        out.varint(e.value_len as u64);
        out.varint(loc.segment_id);
        out.varint((loc.offset_in_segment_bytes / 4096) as u64);
        out.varint((loc.height_bytes / 4096) as u64);
        out.varint(loc.ordinal as u64);
        out.varint((loc.record_offset / 8) as u64);
        let expected =
            RECORD_HEADER_BYTES + (self.table_len + key.len()) as i64 + e.value_len as i64;
        out.varint(zigzag(loc.record_len as i64 - expected));
        out.extend(&loc.crc.to_le_bytes());
        self.count += 1;
        self.name_bytes += (self.table_len + key.len()) as u64;
        Some(())
    }

    /// Entries written so far.
    pub fn entries(&self) -> u64 {
        self.count
    }

    /// Bytes of the table names and keys written so far (a name counted per entry).
    pub fn name_bytes(&self) -> u64 {
        self.name_bytes
    }

    /// Ends the image: the counts into the header, the crc after the last byte.
    pub fn finish(self) -> Option<Vec<Vec<u8>>> {
        if self.left != 0 {
            return None;
        }
        let mut pieces = self.out.finish();
        if let Some(first) = pieces.first_mut() {
            put_u64(first, OFF_ENTRY_COUNT, self.count);
            put_u32(first, OFF_TABLE_COUNT, self.table_count);
        }
        let crc = pieces
            .iter()
            .fold(0, |crc, p| crc32c::crc32c_append(crc, p));
        let mut out = Pieces::resume(pieces, self.piece_bytes);
        out.extend(&crc.to_le_bytes());
        Some(out.finish())
    }
}

/// Bytes written into pieces of a fixed size, a new piece begun when one is full.
struct Pieces {
    size: usize,
    done: Vec<Vec<u8>>,
    cur: Vec<u8>,
}

impl Pieces {
    fn new(size: usize) -> Pieces {
        Pieces {
            size,
            done: Vec::new(),
            cur: Vec::with_capacity(size.min(1 << 20)),
        }
    }

    /// Goes on writing after the pieces `finish` gave.
    fn resume(mut done: Vec<Vec<u8>>, size: usize) -> Pieces {
        let cur = match done.last() {
            Some(last) if last.len() < size => done.pop().unwrap_or_default(),
            _ => Vec::with_capacity(size.min(1 << 20)),
        };
        Pieces { size, done, cur }
    }

    fn extend(&mut self, mut b: &[u8]) {
        while !b.is_empty() {
            if self.cur.len() == self.size {
                let next = Vec::with_capacity(self.size.min(1 << 20));
                self.done.push(std::mem::replace(&mut self.cur, next));
            }
            let n = b.len().min(self.size - self.cur.len());
            self.cur.extend_from_slice(&b[..n]);
            b = &b[n..];
        }
    }

    /// A LEB128 varint (as [`get_varint`] reads it).
    fn varint(&mut self, mut v: u64) {
        let mut buf = [0u8; 10];
        let mut n = 0;
        while v >= 0x80 {
            buf[n] = (v as u8) | 0x80;
            v >>= 7;
            n += 1;
        }
        buf[n] = v as u8;
        self.extend(&buf[..=n]);
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        if !self.cur.is_empty() {
            self.done.push(self.cur);
        }
        self.done
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Reads a LEB128 varint of at most 10 bytes from `b[*pos..end]`.
fn get_varint(b: &[u8], pos: &mut usize, end: usize) -> std::result::Result<u64, DecodeError> {
    let mut v = 0u64;
    for i in 0..10 {
        if *pos >= end {
            return Err(DecodeError::Truncated);
        }
        let byte = b[*pos];
        *pos += 1;
        if i == 9 && byte > 1 {
            return Err(DecodeError::Field("varint"));
        }
        v |= ((byte & 0x7f) as u64) << (7 * i);
        if byte < 0x80 {
            // The shortest form only: an encoding is canonical, so that one index has one
            // checkpoint (a trailing zero byte was found by the `checkpoint` fuzz target).
            if byte == 0 && i > 0 {
                return Err(DecodeError::Field("varint"));
            }
            return Ok(v);
        }
    }
    Err(DecodeError::Field("varint"))
}

fn get_varint_u32(
    b: &[u8],
    pos: &mut usize,
    end: usize,
    scale: u32,
    what: &'static str,
) -> std::result::Result<u32, DecodeError> {
    let v = get_varint(b, pos, end)?;
    u32::try_from(v)
        .ok()
        .and_then(|v| v.checked_mul(scale))
        .ok_or(DecodeError::Field(what))
}

/// Serializes the index in the first encoding ("ECTCKPT1"), which decode still reads.
#[cfg(any(test, feature = "internals"))]
pub fn encode_v1(index: &Index, lsn: u64, resume: ResumePoint) -> Option<Vec<u8>> {
    let mut out = encode_header(MAGIC_V1, HEADER_BYTES, lsn, resume);
    let mut count = 0u64;
    let mut tables: Vec<&String> = index.tables.keys().collect();
    tables.sort();
    for t in tables {
        for (key, e) in index.tables[t].iter() {
            let Place::Disk(loc) = &e.place else {
                return None;
            };
            out.push(t.len() as u8);
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(&(key.len() as u16).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&e.lsn.to_le_bytes());
            out.extend_from_slice(&e.value_len.to_le_bytes());
            out.extend_from_slice(&loc.segment_id.to_le_bytes());
            for v in [
                loc.offset_in_segment_bytes,
                loc.height_bytes,
                loc.ordinal,
                loc.record_offset,
                loc.record_len,
                loc.crc,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            count += 1;
        }
    }
    put_u64(&mut out, OFF_ENTRY_COUNT, count);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Some(out)
}

/// Decodes and verifies a checkpoint of either encoding (live bytes counted in version 1's
/// record lengths; the engine uses [`decode_in`]).
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub fn decode(b: &[u8]) -> std::result::Result<(Index, u64, ResumePoint), DecodeError> {
    decode_in(b, log_record::RecordFormat::Wide)
}

/// [`decode`] for an array whose records are in `fmt`: the index counts live bytes in that
/// format's record lengths.
pub fn decode_in(
    b: &[u8],
    fmt: log_record::RecordFormat,
) -> std::result::Result<(Index, u64, ResumePoint), DecodeError> {
    if b.len() < HEADER_BYTES + 4 {
        return Err(DecodeError::Truncated);
    }
    let index = Index::for_records(fmt);
    match &b[0..8] {
        m if m == MAGIC_V2 => decode_v2(b, index),
        m if m == MAGIC_V1 => decode_v1(b, index),
        _ => Err(DecodeError::Magic),
    }
}

/// The header fields both encodings share (the entry count is filled in at the end).
fn encode_header(magic: &[u8; 8], bytes: usize, lsn: u64, resume: ResumePoint) -> Vec<u8> {
    let mut out = vec![0u8; bytes];
    out[0..8].copy_from_slice(magic);
    put_u32(&mut out, OFF_VERSION, FORMAT_VERSION);
    put_u64(&mut out, OFF_LSN, lsn);
    put_u64(&mut out, OFF_RESUME_SEGMENT, resume.segment_id);
    put_u32(&mut out, OFF_RESUME_OFFSET, resume.offset);
    put_u32(&mut out, OFF_RESUME_ORDINAL, resume.ordinal);
    out
}

/// The header fields both encodings share, checked.
fn decode_header(b: &[u8]) -> std::result::Result<(u64, ResumePoint), DecodeError> {
    check_trailing_crc(b)?;
    if get_u32(b, OFF_VERSION) != FORMAT_VERSION {
        return Err(DecodeError::Version(get_u32(b, OFF_VERSION)));
    }
    if get_u32(b, 12) != 0 {
        return Err(DecodeError::Reserved);
    }
    let lsn = get_u64(b, OFF_LSN);
    let resume = ResumePoint {
        segment_id: get_u64(b, OFF_RESUME_SEGMENT),
        offset: get_u32(b, OFF_RESUME_OFFSET),
        ordinal: get_u32(b, OFF_RESUME_ORDINAL),
    };
    Ok((lsn, resume))
}

/// The longest record a stripe can hold: a stripe's data is at most `MAX_DEVICES` chunks of
/// the largest chunk size.
const MAX_RECORD_BYTES: u64 = super::layout::MAX_CHUNK_SIZE_BYTES as u64 * MAX_DEVICES as u64;

/// Checks what an entry's fields must satisfy whatever the encoding: names within the
/// limits of a log record, a record long enough to hold its value, inside a stripe. (A
/// checkpoint whose crc matched can still hold such an entry if it was written by a broken
/// build; it must give an error, not an index entry the read path cannot use.)
fn check_entry(
    table: &str,
    key: &[u8],
    value_len: u32,
    loc: &RecordLoc,
) -> Result<(), DecodeError> {
    if table.is_empty()
        || table.len() > log_record::MAX_TABLE_NAME_BYTES
        || key.is_empty()
        || key.len() > log_record::MAX_KEY_BYTES
    {
        return Err(DecodeError::Field("checkpoint entry name"));
    }
    let len = u64::from(loc.record_len);
    // A value placed on device blocks (format version 3): the entry names the value alone.
    let placed = value_len == loc.record_len
        && loc.height_bytes as usize > CHUNK_HEADER_SIZE_BYTES
        && super::placement::on_blocks_of_one_body(
            loc.record_offset as usize,
            value_len as usize,
            loc.height_bytes as usize - CHUNK_HEADER_SIZE_BYTES,
        );
    // An inline record is at least its value, key and the shortest header (a compact record
    // whose table name is elided: docs/format.md, "Compact records").
    let shortest = log_record::COMPACT_HEADER_BYTES + key.len();
    if (!placed && u64::from(value_len) + shortest as u64 > len)
        || u64::from(loc.record_offset) + len > MAX_RECORD_BYTES
    {
        return Err(DecodeError::Field("checkpoint entry length"));
    }
    Ok(())
}

fn decode_v2(
    b: &[u8],
    mut index: Index,
) -> std::result::Result<(Index, u64, ResumePoint), DecodeError> {
    if b.len() < HEADER_BYTES_V2 + 4 {
        return Err(DecodeError::Truncated);
    }
    let (lsn, resume) = decode_header(b)?;
    if get_u32(b, OFF_TABLE_COUNT + 4) != 0 {
        return Err(DecodeError::Reserved);
    }
    let count = get_u64(b, OFF_ENTRY_COUNT);
    let table_count = get_u32(b, OFF_TABLE_COUNT);
    let end = b.len() - 4;
    let mut pos = HEADER_BYTES_V2;
    let mut decoded = 0u64;
    let mut prev_table: Option<String> = None;
    for _ in 0..table_count {
        if pos >= end {
            return Err(DecodeError::Truncated);
        }
        let tl = b[pos] as usize;
        pos += 1;
        if tl == 0 || pos + tl > end {
            return Err(DecodeError::Field("table"));
        }
        let table = std::str::from_utf8(&b[pos..pos + tl])
            .map_err(|_| DecodeError::Field("table"))?
            .to_string();
        pos += tl;
        if prev_table.as_ref().is_some_and(|p| *p >= table) {
            return Err(DecodeError::Field("table order"));
        }
        let n = get_varint(b, &mut pos, end)?;
        if n == 0 || n > count - decoded {
            return Err(DecodeError::Field("table entry count"));
        }
        let mut key: Vec<u8> = Vec::new();
        for i in 0..n {
            let shared = get_varint(b, &mut pos, end)? as usize;
            let suffix = get_varint(b, &mut pos, end)? as usize;
            if shared > key.len() || suffix > end - pos || (i == 0 && shared != 0) {
                return Err(DecodeError::Field("key"));
            }
            // The shared prefix is the longest one (canonical, as the encoder writes it).
            if suffix > 0 && shared < key.len() && b[pos] == key[shared] {
                return Err(DecodeError::Field("key prefix"));
            }
            let mut next = Vec::with_capacity(shared + suffix);
            next.extend_from_slice(&key[..shared]);
            next.extend_from_slice(&b[pos..pos + suffix]);
            pos += suffix;
            // Keys are strictly increasing within a table, and never empty.
            if next.is_empty() || (i > 0 && next <= key) {
                return Err(DecodeError::Field("key order"));
            }
            key = next;
            let e_lsn = get_varint(b, &mut pos, end)?;
            let value_len = get_varint_u32(b, &mut pos, end, 1, "value length")?;
            let segment_id = get_varint(b, &mut pos, end)?;
            let offset = get_varint_u32(b, &mut pos, end, 4096, "offset")?;
            let height = get_varint_u32(b, &mut pos, end, 4096, "height")?;
            let ordinal = get_varint_u32(b, &mut pos, end, 1, "ordinal")?;
            let record_offset = get_varint_u32(b, &mut pos, end, 8, "record offset")?;
            let expected = RECORD_HEADER_BYTES + (tl + key.len()) as i64 + value_len as i64;
            // The difference is stored; one that overflows the sum is damage, as is a sum
            // outside u32 (found by the `checkpoint` fuzz target under libFuzzer).
            let record_len = expected
                .checked_add(unzigzag(get_varint(b, &mut pos, end)?))
                .and_then(|l| u32::try_from(l).ok())
                .ok_or(DecodeError::Field("record length"))?;
            if pos + 4 > end {
                return Err(DecodeError::Truncated);
            }
            let crc = get_u32(b, pos);
            pos += 4;
            if e_lsn > lsn || e_lsn == 0 {
                return Err(DecodeError::Field("checkpoint entry"));
            }
            let loc = RecordLoc {
                segment_id,
                offset_in_segment_bytes: offset,
                height_bytes: height,
                ordinal,
                record_offset,
                record_len,
                crc,
            };
            check_entry(&table, &key, value_len, &loc)?;
            index.put(
                &table,
                &key,
                IndexEntry {
                    lsn: e_lsn,
                    value_len,
                    place: Place::Disk(loc),
                },
            );
        }
        decoded += n;
        prev_table = Some(table);
    }
    if decoded != count || pos != end {
        return Err(DecodeError::Field("checkpoint length"));
    }
    Ok((index, lsn, resume))
}

fn decode_v1(
    b: &[u8],
    mut index: Index,
) -> std::result::Result<(Index, u64, ResumePoint), DecodeError> {
    let (lsn, resume) = decode_header(b)?;
    let count = get_u64(b, OFF_ENTRY_COUNT);
    let end = b.len() - 4;
    let mut pos = HEADER_BYTES;
    let need = |pos: usize, n: usize| {
        if pos + n <= end {
            Ok(())
        } else {
            Err(DecodeError::Truncated)
        }
    };
    for _ in 0..count {
        need(pos, 1)?;
        let tl = b[pos] as usize;
        pos += 1;
        need(pos, tl + 2)?;
        let table = std::str::from_utf8(&b[pos..pos + tl])
            .map_err(|_| DecodeError::Field("table"))?
            .to_string();
        pos += tl;
        let kl = get_u16(b, pos) as usize;
        pos += 2;
        need(pos, kl + 8 + 4 + 8 + 24)?;
        let key = b[pos..pos + kl].to_vec();
        pos += kl;
        let e_lsn = get_u64(b, pos);
        let value_len = get_u32(b, pos + 8);
        let segment_id = get_u64(b, pos + 12);
        let f = |i: usize| get_u32(b, pos + 20 + 4 * i);
        let loc = RecordLoc {
            segment_id,
            offset_in_segment_bytes: f(0),
            height_bytes: f(1),
            ordinal: f(2),
            record_offset: f(3),
            record_len: f(4),
            crc: f(5),
        };
        pos += 44;
        if e_lsn > lsn || table.is_empty() || key.is_empty() {
            return Err(DecodeError::Field("checkpoint entry"));
        }
        check_entry(&table, &key, value_len, &loc)?;
        index.put(
            &table,
            &key,
            IndexEntry {
                lsn: e_lsn,
                value_len,
                place: Place::Disk(loc),
            },
        );
    }
    if pos != end {
        return Err(DecodeError::Field("checkpoint length"));
    }
    Ok((index, lsn, resume))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: u32) -> Index {
        let mut index = Index::default();
        for i in 0..n {
            let (table, key) = if i % 2 == 0 {
                ("a", format!("row{i:012}").into_bytes())
            } else {
                ("bb", (i * 7919).to_le_bytes().to_vec())
            };
            let value_len = 7 + i % 5000;
            let loc = RecordLoc {
                segment_id: 3 + (i as u64) * 1_000_003,
                offset_in_segment_bytes: 4096 * (1 + i % 300),
                height_bytes: 4096 * (1 + i % 16),
                ordinal: i,
                record_offset: 8 * i,
                // One record with an unexpected length: stored as a difference.
                record_len: (24 + table.len() + key.len()) as u32 + value_len - u32::from(i == 5),
                crc: i.wrapping_mul(0x9E37_79B9),
            };
            index.put(
                table,
                &key,
                IndexEntry {
                    lsn: i as u64 + 1 + ((i as u64) << 40),
                    value_len,
                    place: Place::Disk(loc),
                },
            );
        }
        index
    }

    #[test]
    fn an_image_cut_into_pieces_is_the_image() {
        let resume = ResumePoint {
            segment_id: 9,
            offset: 4096,
            ordinal: 1,
        };
        for index in [sample(0), sample(1), sample(3000)] {
            let whole = encode(&index, 1 << 60, resume).unwrap();
            for size in [
                1,
                56,
                57,
                100,
                4096,
                whole.len() - 1,
                whole.len(),
                whole.len() + 1,
            ] {
                let pieces = encode_pieces(&index, 1 << 60, resume, size).unwrap();
                let size = size.max(HEADER_BYTES_V2);
                let (last, full) = pieces.split_last().unwrap();
                assert!(full.iter().all(|p| p.len() == size), "size {size}");
                assert!(!last.is_empty() && last.len() <= size, "size {size}");
                assert_eq!(pieces.concat(), whole, "size {size}");
            }
            if let Err(e) = decode(&whole) {
                panic!("{} entries: {e:?}", index.key_count());
            }
        }
    }

    fn entries(index: &Index) -> Vec<(String, Vec<u8>, IndexEntry)> {
        let mut tables: Vec<&String> = index.tables.keys().collect();
        tables.sort();
        let mut out = Vec::new();
        for t in tables {
            for (k, e) in index.tables[t].iter() {
                out.push((t.clone(), k.to_vec(), e));
            }
        }
        out
    }

    /// An entry whose crc matched but whose lengths cannot be (a value longer than its
    /// record, a record beyond any stripe) is an error, not an index entry: found by the
    /// `checkpoint` fuzz target (the index's packing asserted on such a length).
    #[test]
    fn overlong_varints_are_refused() {
        for (bytes, want) in [
            (&[0x05][..], Ok(5)),
            (&[0x85, 0x01][..], Ok(133)),
            (&[0x00][..], Ok(0)),
            (&[0x85, 0x00][..], Err(DecodeError::Field("varint"))),
            (&[0x80, 0x80, 0x00][..], Err(DecodeError::Field("varint"))),
        ] {
            let mut pos = 0;
            assert_eq!(
                get_varint(bytes, &mut pos, bytes.len()),
                want,
                "{bytes:02x?}"
            );
        }
    }

    /// An index of one entry, table "t", key "k", LSN 1, its record on disk.
    fn one_entry(value_len: u32, record_offset: u32, record_len: u32) -> Index {
        let mut index = Index::default();
        let loc = RecordLoc {
            segment_id: 3,
            offset_in_segment_bytes: 4096,
            height_bytes: 8192,
            ordinal: 0,
            record_offset,
            record_len,
            crc: 7,
        };
        let place = Place::Disk(loc);
        let entry = IndexEntry {
            lsn: 1,
            value_len,
            place,
        };
        index.put("t", b"k", entry);
        index
    }

    /// An entry's record length is stored as its difference from the length the entry's
    /// other fields give; a difference near 2^63 must be refused, not overflow the sum
    /// (a panic in a debug build; found by the `checkpoint` fuzz target under libFuzzer).
    #[test]
    fn a_record_length_difference_that_overflows_is_refused() {
        let resume = ResumePoint {
            segment_id: 9,
            offset: 4096,
            ordinal: 0,
        };
        // The length the entry's fields give (table "t", key "k"): stored as difference 0.
        let record_len = RECORD_HEADER_BYTES as u32 + 1 + 1 + 10;
        let index = one_entry(10, 0, record_len);
        let mut b = encode(&index, 1, resume).expect("every entry is on disk");
        // The entry ends with its difference (0: one byte), its record crc and the image's
        // crc. Put the largest positive difference there, a 10-byte varint, and reseal.
        let at = b.len() - 9;
        assert_eq!(
            b[at], 0,
            "the difference of a record of the expected length"
        );
        let big: [u8; 10] = [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
        b.splice(at..at + 1, big);
        let n = b.len();
        let crc = crc32c::crc32c(&b[..n - 4]);
        b[n - 4..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&b).err(), Some(DecodeError::Field("record length")));
    }

    #[test]
    fn entries_with_impossible_lengths_are_refused() {
        let resume = ResumePoint {
            segment_id: 9,
            offset: 4096,
            ordinal: 0,
        };
        for (value_len, record_offset, record_len) in [(5000, 0, 100), (10, 1 << 28, 64)] {
            let index = one_entry(value_len, record_offset, record_len);
            for b in [encode(&index, 1, resume), encode_v1(&index, 1, resume)] {
                let b = b.expect("every entry is on disk");
                assert_eq!(
                    decode(&b).err(),
                    Some(DecodeError::Field("checkpoint entry length")),
                    "value {value_len}, record at {record_offset} of {record_len} bytes"
                );
            }
        }
    }

    #[test]
    fn both_encodings_round_trip_and_reject_every_flipped_bit() {
        let index = sample(50);
        let resume = ResumePoint {
            segment_id: 9,
            offset: 12288,
            ordinal: 2,
        };
        let lsn = 60 + (50u64 << 40);
        let v2 = encode(&index, lsn, resume).unwrap();
        let v1 = encode_v1(&index, lsn, resume).unwrap();
        assert_eq!(&v2[..8], b"ECTCKPT2");
        assert!(v2.len() * 2 < v1.len(), "{} vs {}", v2.len(), v1.len());
        for b in [&v2, &v1] {
            let (d, l, r) = decode(b).unwrap();
            assert_eq!((l, r), (lsn, resume));
            assert_eq!(entries(&d), entries(&index));
            for i in 0..b.len() {
                let mut c = b.clone();
                c[i] ^= 1;
                assert!(decode(&c).is_err(), "flip at {i}");
            }
            assert!(decode(&b[..b.len() - 1]).is_err());
        }
    }

    #[test]
    fn compact_entries_of_sequential_keys_take_about_a_third() {
        // What ecbench's rows look like: 15-byte keys in order, 4 KiB values.
        let mut index = Index::default();
        for i in 0..10_000u32 {
            let key = format!("row{:012}", i * 3);
            index.put(
                "bench",
                key.as_bytes(),
                IndexEntry {
                    lsn: 5_000_000 + i as u64 * 17,
                    value_len: 4096,
                    place: Place::Disk(RecordLoc {
                        segment_id: 200 + (i as u64 % 250),
                        offset_in_segment_bytes: 4096 + 65536 * (i % 31),
                        height_bytes: 65536,
                        ordinal: i % 31,
                        record_offset: 4144 * (i % 62),
                        record_len: 24 + 5 + 15 + 4096,
                        crc: i.wrapping_mul(0x9E37_79B9),
                    }),
                },
            );
        }
        let resume = ResumePoint {
            segment_id: 451,
            offset: 4096,
            ordinal: 0,
        };
        let v2 = encode(&index, 6_000_000, resume).unwrap();
        let v1 = encode_v1(&index, 6_000_000, resume).unwrap();
        let per_entry = (v2.len() - HEADER_BYTES_V2) as f64 / 10_000.0;
        eprintln!("{per_entry} bytes per entry (v1: {})", v1.len() / 10_000);
        assert!(
            per_entry < 24.0,
            "{per_entry} bytes per entry (v1: {})",
            v1.len() / 10_000
        );
    }

    #[test]
    fn out_of_order_or_inconsistent_images_are_refused() {
        let index = sample(4);
        let resume = ResumePoint {
            segment_id: 9,
            offset: 4096,
            ordinal: 0,
        };
        let good = encode(&index, 1 << 50, resume).unwrap();
        // An entry count that disagrees with the tables, resealed with a valid crc.
        let mut c = good.clone();
        put_u64(&mut c, OFF_ENTRY_COUNT, 5);
        seal_trailing_crc(&mut c);
        assert!(decode(&c).is_err());
        // A checkpoint LSN below an entry's.
        let mut c = good.clone();
        put_u64(&mut c, OFF_LSN, 1);
        seal_trailing_crc(&mut c);
        assert!(decode(&c).is_err());
        // An unknown magic.
        let mut c = good;
        c[7] = b'9';
        seal_trailing_crc(&mut c);
        assert_eq!(decode(&c).err(), Some(DecodeError::Magic));
    }
}
