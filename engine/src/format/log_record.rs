//! Log records: puts and deletes, each with an LSN and a crc32c.
//!
//! `// { lsn | value_len | key_len | table_len | kind | reserved | crc | table | key | value }`
//!
//! Invariants:
//! - Records start 8-byte aligned in a stripe's data space.
//! - The crc covers the first 20 header bytes, the table name, the key and the value; a placed
//!   record's the same bytes as if it were inline (kind bit 7 clear, value_offset zero).
//! - A placed record (format version 3, kind bit 7) keeps its value on device blocks of the
//!   same stripe, at the position its reserved field names (format/placement.rs).

use super::*;

/// How a version's log records are laid out (docs/format.md, "Log records" for versions 1
/// to 3, "Compact records" for version 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordFormat {
    /// 24-byte header with the LSN; every record stores its table name.
    #[default]
    Wide,
    /// 12-byte header (16 when placed), no LSN, the table name elided after the first
    /// record of a stripe or journal entry when it repeats.
    Compact,
}

impl RecordFormat {
    /// The record layout of an array whose superblock says `format_version`.
    pub fn of_version(format_version: u32) -> RecordFormat {
        if format_version >= FORMAT_VERSION_COMPACT {
            RecordFormat::Compact
        } else {
            RecordFormat::Wide
        }
    }

    /// Bytes of an inline record's header.
    pub fn header_len(self) -> usize {
        match self {
            RecordFormat::Wide => RECORD_HEADER_BYTES,
            RecordFormat::Compact => COMPACT_HEADER_BYTES,
        }
    }

    /// Bytes of a placed record's header (its value_offset included).
    pub fn placed_header_len(self) -> usize {
        match self {
            RecordFormat::Wide => RECORD_HEADER_BYTES,
            RecordFormat::Compact => COMPACT_HEADER_BYTES + 4,
        }
    }

    /// Bytes a record takes in the data space, padding included; `stored_table_len` is 0 for
    /// a compact record whose table name is elided.
    pub fn encoded_len_padded(
        self,
        stored_table_len: usize,
        key_len: usize,
        value_len: usize,
    ) -> usize {
        (self.header_len() + stored_table_len + key_len + value_len)
            .next_multiple_of(RECORD_ALIGN_BYTES)
    }

    /// Padded bytes a record takes in the record area when its value is placed.
    pub fn placed_head_len(self, stored_table_len: usize, key_len: usize) -> usize {
        (self.placed_header_len() + stored_table_len + key_len).next_multiple_of(RECORD_ALIGN_BYTES)
    }

    /// Where the value of the inline record starting at `record[0]` starts, from its start
    /// (None when `record` is too short to hold its header).
    pub fn value_offset(self, record: &[u8]) -> Option<usize> {
        match self {
            RecordFormat::Wide => {
                let h = record.get(..RECORD_HEADER_BYTES)?;
                Some(
                    RECORD_HEADER_BYTES
                        + h[OFF_TABLE_LEN] as usize
                        + get_u16(h, OFF_KEY_LEN) as usize,
                )
            }
            RecordFormat::Compact => {
                let h = record.get(..COMPACT_HEADER_BYTES)?;
                Some(
                    COMPACT_HEADER_BYTES
                        + h[C_OFF_TABLE_LEN] as usize
                        + get_u16(h, C_OFF_KEY_LEN) as usize,
                )
            }
        }
    }
}

/// How a version's log stripes hold records: their layout, and whether values may be placed
/// on device blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StripeFormat {
    /// The records' layout.
    pub records: RecordFormat,
    /// Values may be placed on device blocks (version 3 on).
    pub placed_values: bool,
    /// A record may continue in the next stripe (version 5 on).
    pub continued: bool,
}

impl StripeFormat {
    /// The stripe format of an array whose superblock says `format_version`.
    pub fn of_version(format_version: u32) -> StripeFormat {
        StripeFormat {
            records: RecordFormat::of_version(format_version),
            placed_values: format_version >= FORMAT_VERSION_PLACED,
            continued: format_version >= FORMAT_VERSION_CONTINUED,
        }
    }
}

// Compact record header (docs/format.md, "Compact records").
const C_OFF_KIND: usize = 0;
const C_OFF_TABLE_LEN: usize = 1;
const C_OFF_KEY_LEN: usize = 2;
const C_OFF_VALUE_LEN: usize = 4;
const C_OFF_CRC: usize = 8;
/// A compact placed record's value_offset.
const C_OFF_VALUE_OFFSET: usize = 12;
/// Bytes of a compact inline record's header.
pub const COMPACT_HEADER_BYTES: usize = 12;
const _: () = assert!(contiguous(&[
    (C_OFF_KIND, size_of::<u8>()),
    (C_OFF_TABLE_LEN, size_of::<u8>()),
    (C_OFF_KEY_LEN, size_of::<u16>()),
    (C_OFF_VALUE_LEN, size_of::<u32>()),
    (C_OFF_CRC, CRC_BYTES),
    (C_OFF_VALUE_OFFSET, size_of::<u32>()),
    (COMPACT_HEADER_BYTES + 4, 0),
]));

/// The crc of a compact record: over its canonical form (the LSN, kind without bit 7, the
/// real table name length, key_len, value_len, then table, key and value).
fn compact_crc(lsn: u64, kind: u8, table: &[u8], key: &[u8], value: &[u8]) -> u32 {
    let mut c = [0u8; 16];
    c[..8].copy_from_slice(&lsn.to_le_bytes());
    c[8] = kind & !KIND_PLACED;
    c[9] = table.len() as u8;
    c[10..12].copy_from_slice(&(key.len() as u16).to_le_bytes());
    c[12..16].copy_from_slice(&(value.len() as u32).to_le_bytes());
    let mut crc = crc32c::crc32c(&c);
    for part in [table, key, value] {
        crc = crc32c::crc32c_append(crc, part);
    }
    crc
}

/// Appends a record in `fmt` (and its padding) to `out`; a compact record leaves its table
/// name out when `elide_table`. Returns its crc, its unpadded length and, when `value_crc`,
/// the crc32c of the value alone (what the index holds once the value is placed).
#[allow(clippy::too_many_arguments)]
pub fn encode_in(
    fmt: RecordFormat,
    lsn: u64,
    kind: RecordKind,
    table: &str,
    key: &[u8],
    value: &[u8],
    elide_table: bool,
    out: &mut Vec<u8>,
) -> (u32, usize) {
    if fmt == RecordFormat::Wide {
        return encode_parts(lsn, kind, table, key, value, out);
    }
    assert!(!table.is_empty() && table.len() <= MAX_TABLE_NAME_BYTES);
    assert!(!key.is_empty() && key.len() <= MAX_KEY_BYTES);
    let stored = if elide_table { 0 } else { table.len() };
    let start = out.len();
    out.reserve(fmt.encoded_len_padded(stored, key.len(), value.len()));
    let crc = compact_crc(lsn, kind as u8, table.as_bytes(), key, value);
    let mut h = [0u8; COMPACT_HEADER_BYTES];
    h[C_OFF_KIND] = kind as u8;
    h[C_OFF_TABLE_LEN] = stored as u8;
    put_u16(&mut h, C_OFF_KEY_LEN, key.len() as u16);
    put_u32(&mut h, C_OFF_VALUE_LEN, value.len() as u32);
    put_u32(&mut h, C_OFF_CRC, crc);
    out.extend_from_slice(&h);
    if !elide_table {
        out.extend_from_slice(table.as_bytes());
    }
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    let len = out.len() - start;
    out.resize(start + len.next_multiple_of(RECORD_ALIGN_BYTES), 0);
    (crc, len)
}

/// `rec` (one unpadded compact inline record whose table name is elided) with the name
/// `table` stored, padded: the first record of a journal entry cut from a stripe. Its crc
/// stays (it covers the name either way).
pub fn with_table_stored(fmt: RecordFormat, rec: &[u8], table: &[u8]) -> Vec<u8> {
    debug_assert_eq!(fmt, RecordFormat::Compact);
    debug_assert_eq!(rec[C_OFF_TABLE_LEN], 0);
    let mut out = Vec::with_capacity((rec.len() + table.len()).next_multiple_of(8));
    out.extend_from_slice(&rec[..COMPACT_HEADER_BYTES]);
    out[C_OFF_TABLE_LEN] = table.len() as u8;
    out.extend_from_slice(table);
    out.extend_from_slice(&rec[COMPACT_HEADER_BYTES..]);
    out.resize(out.len().next_multiple_of(RECORD_ALIGN_BYTES), 0);
    out
}

/// Bytes of a record's fixed header; the table name, key and value follow it.
pub const RECORD_HEADER_BYTES: usize = 24;
/// The longest key, in bytes (keys are 1 to this many bytes).
pub const MAX_KEY_BYTES: usize = 1024;
/// The longest table name, in bytes of UTF-8 (names are 1 to this many bytes).
pub const MAX_TABLE_NAME_BYTES: usize = 64;
// Header field offsets (docs/format.md, "Log records").
const OFF_LSN: usize = 0;
const OFF_VALUE_LEN: usize = 8;
const OFF_KEY_LEN: usize = 12;
/// One byte: the table name's length.
const OFF_TABLE_LEN: usize = 14;
/// One byte: a `RecordKind`.
const OFF_KIND: usize = 15;
/// Reserved, zero; a placed record's value_offset.
const OFF_RESERVED: usize = 16;
/// Kind bit of a record whose value is placed on device blocks (format version 3).
pub const KIND_PLACED: u8 = 0x80;
/// crc32c of [0, OFF_CRC) followed by the table name, key and value.
pub const OFF_CRC: usize = 20;
/// The table name, then the key, then the value follow the header.
pub const OFF_TABLE: usize = RECORD_HEADER_BYTES;
/// Records start at, and are padded to, multiples of this.
const RECORD_ALIGN_BYTES: usize = 8;

const _: () = assert!(contiguous(&[
    (OFF_LSN, size_of::<u64>()),
    (OFF_VALUE_LEN, size_of::<u32>()),
    (OFF_KEY_LEN, size_of::<u16>()),
    (OFF_TABLE_LEN, size_of::<u8>()),
    (OFF_KIND, size_of::<u8>()),
    (OFF_RESERVED, size_of::<u32>()),
    (OFF_CRC, CRC_BYTES),
    (OFF_TABLE, 0),
]));
const _: () = assert!(RECORD_HEADER_BYTES.is_multiple_of(RECORD_ALIGN_BYTES));

/// What a log record does (its kind byte on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Sets the key's value.
    Put = 1,
    /// Removes the key (the value is empty).
    Delete = 2,
    /// A put the cleaner moved forward: the same key and value as an older put, under a new
    /// LSN. Replayed like a put; a backup of changes leaves it out.
    Moved = 3,
}

/// A decoded log record, owning its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Its log sequence number: consecutive over the whole log.
    pub lsn: u64,
    /// Put, delete or moved put.
    pub kind: RecordKind,
    /// The table name (1 to 64 bytes of UTF-8).
    pub table: String,
    /// The key (1 to 1024 bytes).
    pub key: Vec<u8>,
    /// The value (empty for a delete).
    pub value: Vec<u8>,
}

/// Bytes a record occupies, including padding to the next 8-byte boundary.
pub fn encoded_len_padded(table_len: usize, key_len: usize, value_len: usize) -> usize {
    (RECORD_HEADER_BYTES + table_len + key_len + value_len).div_ceil(RECORD_ALIGN_BYTES)
        * RECORD_ALIGN_BYTES
}

/// Appends a record built from its parts (and its padding) to `out`; returns its crc and
/// unpadded length. The write path uses this to avoid building a `LogRecord` first.
pub fn encode_parts(
    lsn: u64,
    kind: RecordKind,
    table: &str,
    key: &[u8],
    value: &[u8],
    out: &mut Vec<u8>,
) -> (u32, usize) {
    let start = write_head(lsn, kind, table, key, value.len(), out);
    out.extend_from_slice(value);
    let mut crc = crc32c::crc32c(&out[start..start + OFF_CRC]);
    crc = crc32c::crc32c_append(crc, &out[start + OFF_TABLE..]);
    finish(out, start, crc)
}

/// Appends a record's header (its crc still zero), table name and key; returns where the
/// record starts.
fn write_head(
    lsn: u64,
    kind: RecordKind,
    table: &str,
    key: &[u8],
    value_len: usize,
    out: &mut Vec<u8>,
) -> usize {
    assert!(!table.is_empty() && table.len() <= MAX_TABLE_NAME_BYTES);
    assert!(!key.is_empty() && key.len() <= MAX_KEY_BYTES);
    let start = out.len();
    let len = RECORD_HEADER_BYTES + table.len() + key.len() + value_len;
    out.reserve(len.next_multiple_of(RECORD_ALIGN_BYTES));
    out.resize(start + RECORD_HEADER_BYTES, 0);
    let h = &mut out[start..];
    put_u64(h, OFF_LSN, lsn);
    put_u32(h, OFF_VALUE_LEN, value_len as u32);
    put_u16(h, OFF_KEY_LEN, key.len() as u16);
    h[OFF_TABLE_LEN] = table.len() as u8;
    h[OFF_KIND] = kind as u8;
    out.extend_from_slice(table.as_bytes());
    out.extend_from_slice(key);
    start
}

/// Stores the crc of the record at `start` (the last one in `out`) and pads it; returns the
/// crc and the unpadded length.
fn finish(out: &mut Vec<u8>, start: usize, crc: u32) -> (u32, usize) {
    put_u32(&mut out[start..], OFF_CRC, crc);
    let len = out.len() - start;
    out.resize(start + len.next_multiple_of(RECORD_ALIGN_BYTES), 0);
    (crc, len)
}

/// The header of `record` (an inline record as [`encode_in`] wrote it in `fmt`) once its
/// value is placed at `value_offset`: kind bit 7 and value_offset set, the crc unchanged (it
/// is defined over the inline form).
pub fn placed_header(fmt: RecordFormat, record: &[u8], value_offset: u32) -> Vec<u8> {
    match fmt {
        RecordFormat::Wide => {
            let mut h = record[..RECORD_HEADER_BYTES].to_vec();
            h[OFF_KIND] |= KIND_PLACED;
            put_u32(&mut h, OFF_RESERVED, value_offset);
            h
        }
        RecordFormat::Compact => {
            let mut h = vec![0u8; COMPACT_HEADER_BYTES + 4];
            h[..COMPACT_HEADER_BYTES].copy_from_slice(&record[..COMPACT_HEADER_BYTES]);
            h[C_OFF_KIND] |= KIND_PLACED;
            put_u32(&mut h, C_OFF_VALUE_OFFSET, value_offset);
            h
        }
    }
}

/// Writes one record, encoded inline as `rec` (without padding; its value the last
/// `value_len` bytes), at `spot` through `put(position, bytes)`: inline as it is, or its
/// header (kind bit 7 and value_offset set, the crc kept), table and key in the record area and its
/// value at the value's spot. Positions not written stay as they were (zero).
pub fn lay_out_record(
    fmt: RecordFormat,
    rec: &[u8],
    spot: super::placement::Spot,
    value_len: usize,
    put: &mut impl FnMut(usize, &[u8]),
) {
    match spot.value_offset {
        None => put(spot.offset, rec),
        Some(v) => {
            let head = rec.len() - value_len;
            let header = placed_header(fmt, rec, v as u32);
            put(spot.offset, &header);
            put(spot.offset + header.len(), &rec[fmt.header_len()..head]);
            put(v, &rec[head..]);
        }
    }
}

impl LogRecord {
    /// Bytes of the encoded record without its padding to 8 bytes.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn encoded_len(&self) -> usize {
        RECORD_HEADER_BYTES + self.table.len() + self.key.len() + self.value.len()
    }

    /// Appends the record (and its padding) to `out`.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        encode_parts(
            self.lsn,
            self.kind,
            &self.table,
            &self.key,
            &self.value,
            out,
        );
    }

    /// Decodes the record at the start of `b`; returns it, its crc and its padded length.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn decode(b: &[u8]) -> Result<(LogRecord, u32, usize), DecodeError> {
        let (v, crc, len) = RecordView::decode(b)?;
        let rec = LogRecord {
            lsn: v.lsn,
            kind: v.kind,
            table: v.table.to_string(),
            key: v.key.to_vec(),
            value: v.value.to_vec(),
        };
        Ok((rec, crc, len))
    }
}

/// A verified record borrowed from the bytes it was decoded from (no copies: the read path
/// checks records against the index this way and copies only the value it returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Its log sequence number.
    pub lsn: u64,
    /// Put, delete or moved put.
    pub kind: RecordKind,
    /// The table name.
    pub table: &'a str,
    /// The key.
    pub key: &'a [u8],
    /// The value (empty for a delete).
    pub value: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// Decodes and checks the record at the start of `b`; returns it, its crc and its padded
    /// length. A placed record (kind bit 7) is refused here: [`StripeRecords`] decodes those.
    pub fn decode(b: &'a [u8]) -> Result<(RecordView<'a>, u32, usize), DecodeError> {
        decode_wide(b, None).map(|d| (d.view, d.crc, d.padded))
    }

    /// Decodes and checks the inline record at the start of `b` in `fmt`: a compact record
    /// has the LSN `lsn` and, when its name is elided, the table `prev_table` (a Wide
    /// record carries both). Returns it, its crc and its padded length.
    pub fn decode_in(
        fmt: RecordFormat,
        b: &'a [u8],
        lsn: u64,
        prev_table: Option<&'a str>,
    ) -> Result<(RecordView<'a>, u32, usize), DecodeError> {
        decode_at(fmt, b, lsn, prev_table, None).map(|d| (d.view, d.crc, d.padded))
    }
}

/// A record [`decode_at`] found.
struct Decoded<'a> {
    view: RecordView<'a>,
    crc: u32,
    /// Its length in the record area, without and with padding.
    len: usize,
    padded: usize,
    /// Its value's position when placed.
    value_at: Option<usize>,
}

/// Decodes the record at the start of `b` in `fmt` (see [`RecordView::decode_in`]).
fn decode_at<'a>(
    fmt: RecordFormat,
    b: &'a [u8],
    lsn: u64,
    prev_table: Option<&'a str>,
    placed: Option<&PlacedValues<'a>>,
) -> Result<Decoded<'a>, DecodeError> {
    match fmt {
        RecordFormat::Wide => decode_wide(b, placed),
        RecordFormat::Compact => decode_compact(b, lsn, prev_table, placed),
    }
}

/// The placed value at `value_at` of `value_len` bytes, checked against the rules of
/// docs/format.md, "Values on device blocks".
fn placed_value<'a>(
    p: &PlacedValues<'a>,
    value_at: usize,
    value_len: usize,
) -> Result<&'a [u8], DecodeError> {
    if value_at < p.payload
        || value_at.saturating_add(value_len.next_multiple_of(BLOCK_BYTES)) > p.floor
        || !super::placement::on_blocks_of_one_body(value_at, value_len, p.body_len)
    {
        return Err(DecodeError::Field("placed value offset"));
    }
    let end = value_at + value_len;
    let padded = value_at + value_len.next_multiple_of(BLOCK_BYTES);
    if p.data.len() < padded {
        return Err(DecodeError::Truncated);
    }
    if p.data[end..padded].iter().any(|&x| x != 0) {
        return Err(DecodeError::Field("placed value padding"));
    }
    Ok(&p.data[value_at..end])
}

/// A record's kind byte: its kind, and whether kind bit 7 (a placed value) is set, which only
/// a stripe that may place values allows (`placed_allowed`); deletes are never placed.
fn kind_of(byte: u8, placed_allowed: bool) -> Result<(RecordKind, bool), DecodeError> {
    let is_placed = byte & KIND_PLACED != 0 && placed_allowed;
    let kind = match byte & !(if is_placed { KIND_PLACED } else { 0 }) {
        1 => RecordKind::Put,
        2 if !is_placed => RecordKind::Delete,
        3 => RecordKind::Moved,
        _ => return Err(DecodeError::Field("record kind")),
    };
    Ok((kind, is_placed))
}

fn decode_compact<'a>(
    b: &'a [u8],
    lsn: u64,
    prev_table: Option<&'a str>,
    placed: Option<&PlacedValues<'a>>,
) -> Result<Decoded<'a>, DecodeError> {
    if b.len() < COMPACT_HEADER_BYTES {
        return Err(DecodeError::Truncated);
    }
    let value_len = get_u32(b, C_OFF_VALUE_LEN) as usize;
    let key_len = get_u16(b, C_OFF_KEY_LEN) as usize;
    let stored_table = b[C_OFF_TABLE_LEN] as usize;
    let (kind, is_placed) = kind_of(b[C_OFF_KIND], placed.is_some())?;
    if key_len == 0 || key_len > MAX_KEY_BYTES || stored_table > MAX_TABLE_NAME_BYTES {
        return Err(DecodeError::Field("record lengths"));
    }
    if kind == RecordKind::Delete && value_len != 0 {
        return Err(DecodeError::Field("record lengths"));
    }
    let header = if is_placed {
        COMPACT_HEADER_BYTES + 4
    } else {
        COMPACT_HEADER_BYTES
    };
    let head = header + stored_table + key_len;
    let total = head + if is_placed { 0 } else { value_len };
    if b.len() < total {
        return Err(DecodeError::Truncated);
    }
    let table = match stored_table {
        0 => prev_table.ok_or(DecodeError::Field(
            "elided table name with no record before",
        ))?,
        n => std::str::from_utf8(&b[header..header + n])
            .map_err(|_| DecodeError::Field("table name utf-8"))?,
    };
    let value_at = is_placed.then(|| get_u32(b, C_OFF_VALUE_OFFSET) as usize);
    let value = match (placed, value_at) {
        (Some(p), Some(at)) => placed_value(p, at, value_len)?,
        _ => &b[head..total],
    };
    let key = &b[header + stored_table..head];
    let stored = get_u32(b, C_OFF_CRC);
    let computed = compact_crc(lsn, b[C_OFF_KIND], table.as_bytes(), key, value);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    Ok(Decoded {
        view: RecordView {
            lsn,
            kind,
            table,
            key,
            value,
        },
        crc: stored,
        len: total,
        padded: total.next_multiple_of(RECORD_ALIGN_BYTES),
        value_at,
    })
}

/// Where a placed record's value may be: the whole data space, the record area's end, the
/// body length, and the lowest placed value before it.
struct PlacedValues<'a> {
    data: &'a [u8],
    payload: usize,
    body_len: usize,
    floor: usize,
}

/// Decodes the Wide record at the start of `b`; `placed` allows a placed record and says
/// where its value may lie.
fn decode_wide<'a>(
    b: &'a [u8],
    placed: Option<&PlacedValues<'a>>,
) -> Result<Decoded<'a>, DecodeError> {
    {
        if b.len() < RECORD_HEADER_BYTES {
            return Err(DecodeError::Truncated);
        }
        let lsn = get_u64(b, OFF_LSN);
        let value_len = get_u32(b, OFF_VALUE_LEN) as usize;
        let key_len = get_u16(b, OFF_KEY_LEN) as usize;
        let table_len = b[OFF_TABLE_LEN] as usize;
        let (kind, is_placed) = kind_of(b[OFF_KIND], placed.is_some())?;
        let value_at = get_u32(b, OFF_RESERVED) as usize;
        if !is_placed && value_at != 0 {
            return Err(DecodeError::Reserved);
        }
        if key_len == 0
            || key_len > MAX_KEY_BYTES
            || table_len == 0
            || table_len > MAX_TABLE_NAME_BYTES
        {
            return Err(DecodeError::Field("record lengths"));
        }
        let head = RECORD_HEADER_BYTES + table_len + key_len;
        let total = head + if is_placed { 0 } else { value_len };
        if b.len() < total {
            return Err(DecodeError::Truncated);
        }
        let value = match placed.filter(|_| is_placed) {
            Some(p) => placed_value(p, value_at, value_len)?,
            None => &b[head..total],
        };
        let stored = get_u32(b, OFF_CRC);
        // A placed record's crc is the one it had inline: kind bit 7 and value_offset are
        // left out (a wrong value_offset finds other bytes, which this crc refuses).
        let mut h = [0u8; OFF_CRC];
        h.copy_from_slice(&b[..OFF_CRC]);
        if is_placed {
            h[OFF_KIND] &= !KIND_PLACED;
            put_u32(&mut h, OFF_RESERVED, 0);
        }
        let computed = crc32c::crc32c_append(
            crc32c::crc32c_append(crc32c::crc32c(&h), &b[OFF_TABLE..head]),
            value,
        );
        if stored != computed {
            return Err(DecodeError::Checksum { stored, computed });
        }
        let t0 = OFF_TABLE;
        let table = std::str::from_utf8(&b[t0..t0 + table_len])
            .map_err(|_| DecodeError::Field("table name utf-8"))?;
        let k0 = t0 + table_len;
        let view = RecordView {
            lsn,
            kind,
            table,
            key: &b[k0..head],
            value,
        };
        Ok(Decoded {
            view,
            crc: stored,
            len: total,
            padded: total.next_multiple_of(RECORD_ALIGN_BYTES),
            value_at: is_placed.then_some(value_at),
        })
    }
}

/// The head of a record that continues in the next stripe (format version 5), as a walker
/// holds it until it reads that stripe (docs/format.md, "Records that continue in the next
/// stripe").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The record's LSN (the head stripe's last_lsn).
    pub lsn: u64,
    /// Its position in the head stripe's data space.
    pub offset: usize,
    /// Its bytes from there to the end of that data space.
    pub bytes: Vec<u8>,
    /// The table of the record before it in the head stripe (a compact record's elided name).
    pub prev_table: Option<String>,
}

impl Held {
    /// The whole record's bytes when the stripe `header` describes (the next one of the
    /// segment; its data space `data`) starts with this record's tail; None when it does
    /// not (the held record is then not a record: its tail was never written).
    pub fn joined(&self, header: &ChunkHeader, data: &[u8]) -> Option<Vec<u8>> {
        if header.tail_bytes == 0 || header.first_lsn != self.lsn {
            return None;
        }
        let tail = data.get(..header.tail_bytes as usize)?;
        let mut b = Vec::with_capacity(self.bytes.len() + tail.len());
        b.extend_from_slice(&self.bytes);
        b.extend_from_slice(tail);
        Some(b)
    }

    /// Decodes the whole record `joined` gave, in `fmt`: it must fill those bytes exactly.
    /// Returns it and its crc.
    pub fn decode<'a>(
        &'a self,
        fmt: RecordFormat,
        joined: &'a [u8],
    ) -> Result<(RecordView<'a>, u32), DecodeError> {
        let d = decode_at(fmt, joined, self.lsn, self.prev_table.as_deref(), None)?;
        if d.len != joined.len() {
            return Err(DecodeError::Field(
                "length of a record continued across stripes",
            ));
        }
        Ok((d.view, d.crc))
    }
}

/// One record of a log stripe, as [`StripeRecords`] yields it.
#[derive(Debug, Clone, Copy)]
pub struct StripeRecord<'a> {
    /// The record, its value taken where it lies.
    pub rec: RecordView<'a>,
    /// Its position in the data space.
    pub offset: usize,
    /// The record's own crc.
    pub crc: u32,
    /// Its length in the record area, without padding.
    pub len: usize,
    /// Its value's position when the value is placed on device blocks.
    pub value_offset: Option<usize>,
}

impl StripeRecord<'_> {
    /// What an index entry for this record holds: (record_offset, record_len, crc). For a
    /// placed value, the value itself: its position, its length and its own crc32c
    /// (docs/format.md, "Values on device blocks").
    pub fn index_loc(&self) -> (u32, u32, u32) {
        match self.value_offset {
            Some(v) => (
                v as u32,
                self.rec.value.len() as u32,
                crc32c::crc32c(self.rec.value),
            ),
            None => (self.offset as u32, self.len as u32, self.crc),
        }
    }
}

/// The records of a log stripe's data space, in order (docs/format.md, "Log records" and
/// "Values on device blocks"). Stops after the first record that does not decode.
pub struct StripeRecords<'a> {
    fmt: RecordFormat,
    /// The LSN of the next record (compact records do not store it).
    lsn: u64,
    prev_table: Option<&'a str>,
    data: &'a [u8],
    pos: usize,
    placed: Option<PlacedValues<'a>>,
    payload: usize,
    failed: bool,
    /// The LSN of the last record when it continues in the next stripe (format version 5):
    /// the walk stops before it, and [`StripeRecords::held`] hands its head over.
    head_lsn: Option<u64>,
    /// A continuation in a stripe of a version that has none: reported as the first item.
    refused: bool,
}

impl<'a> StripeRecords<'a> {
    /// The records of `data` (the k data bodies of a stripe `height` bytes high, in shard
    /// order) up to `payload` bytes, in `fmt`, the first with LSN `first_lsn`;
    /// `placed_values` when the array's format allows placed values (version 3 on).
    pub fn new(
        fmt: RecordFormat,
        first_lsn: u64,
        data: &'a [u8],
        payload: usize,
        height: usize,
        placed_values: bool,
    ) -> Self {
        StripeRecords {
            fmt,
            lsn: first_lsn,
            prev_table: None,
            data,
            pos: 0,
            placed: (placed_values && height > CHUNK_HEADER_SIZE_BYTES).then(|| PlacedValues {
                data,
                payload,
                body_len: height - CHUNK_HEADER_SIZE_BYTES,
                floor: data.len(),
            }),
            payload: payload.min(data.len()),
            failed: false,
            head_lsn: None,
            refused: false,
        }
    }

    /// The records of the log stripe `header` describes, its data space `data`. In format
    /// version 5 the walk starts after a tail (the end of a record continued from the
    /// previous stripe, which [`Held::joined`] completes) and stops before a head (the
    /// start of the last record, when it continues: [`StripeRecords::held`]); such a stripe
    /// holds no placed value. A continuation in an older version is corruption: the walk
    /// yields an error first.
    pub fn in_stripe(sf: StripeFormat, header: &ChunkHeader, data: &'a [u8]) -> Self {
        let tail = header.tail_bytes as usize;
        let continued = tail > 0 || header.continues();
        let mut r = StripeRecords::new(
            sf.records,
            header.first_lsn + u64::from(tail > 0),
            data,
            header.payload_bytes as usize,
            header.height_bytes as usize,
            sf.placed_values && !continued,
        );
        r.pos = tail.next_multiple_of(RECORD_ALIGN_BYTES);
        r.head_lsn = header.continues().then_some(header.last_lsn);
        r.refused = continued && !sf.continued;
        r
    }

    /// The head of the stripe's last record when it continues in the next stripe, once the
    /// walk has reached it (None before, or when the stripe does not continue).
    pub fn held(&self) -> Option<Held> {
        (self.head_lsn == Some(self.lsn) && !self.failed && self.pos < self.payload).then(|| Held {
            lsn: self.lsn,
            offset: self.pos,
            bytes: self.data[self.pos..self.payload].to_vec(),
            prev_table: self.prev_table.map(str::to_string),
        })
    }

    /// The records of a journal entry's payload (no placed values), the first with LSN
    /// `first_lsn`.
    pub fn plain(fmt: RecordFormat, first_lsn: u64, payload: &'a [u8]) -> Self {
        StripeRecords::new(fmt, first_lsn, payload, payload.len(), 0, false)
    }

    /// Position of the next record (where decoding stopped, after an error).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for StripeRecords<'a> {
    type Item = Result<StripeRecord<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.refused {
            self.refused = false;
            self.failed = true;
            return Some(Err(DecodeError::Field(
                "a record continued across stripes in a format version without them",
            )));
        }
        if self.failed || self.pos >= self.payload || self.head_lsn == Some(self.lsn) {
            return None;
        }
        let b = &self.data[self.pos..self.payload];
        match decode_at(self.fmt, b, self.lsn, self.prev_table, self.placed.as_ref()) {
            Ok(d) => {
                let offset = self.pos;
                self.pos += d.padded;
                self.lsn = d.view.lsn.saturating_add(1);
                self.prev_table = Some(d.view.table);
                if let (Some(p), Some(v)) = (self.placed.as_mut(), d.value_at) {
                    p.floor = v;
                }
                Some(Ok(StripeRecord {
                    rec: d.view,
                    offset,
                    crc: d.crc,
                    len: d.len,
                    value_offset: d.value_at,
                }))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let r = LogRecord {
            lsn: 77,
            kind: RecordKind::Put,
            table: "t".into(),
            key: b"key".to_vec(),
            value: vec![0, 1, 2, 255],
        };
        let mut b = Vec::new();
        r.encode_into(&mut b);
        assert_eq!(b.len() % 8, 0);
        let (d, _, len) = LogRecord::decode(&b).unwrap();
        assert_eq!(d, r);
        assert_eq!(len, b.len());
        for i in 0..r.encoded_len() {
            let mut c = b.clone();
            c[i] ^= 4;
            assert!(LogRecord::decode(&c).is_err(), "flip at {i} not detected");
        }
    }

    /// The encoded bytes of three records (padding included), as the encoder wrote them
    /// before its offsets were named: docs/format.md, "Log records".
    #[test]
    fn encoding_is_pinned() {
        let mut b = Vec::new();
        let put = encode_parts(
            0x0102_0304_0506_0708,
            RecordKind::Put,
            "tbl",
            b"k\x01",
            &[0xde, 0xad, 0xbe, 0xef, 0x99],
            &mut b,
        );
        let del = encode_parts(
            0x0102_0304_0506_0709,
            RecordKind::Delete,
            "t",
            b"k",
            &[],
            &mut b,
        );
        let moved = encode_parts(
            0x0102_0304_0506_070a,
            RecordKind::Moved,
            "moved",
            &[0x5a; 9],
            &[0x77; 19],
            &mut b,
        );
        let expected = bytes_from_spans(
            136,
            &[
                (0, "0807060504030201"),                           // put: lsn
                (8, "05000000"),                                   // value_len
                (12, "0200"),                                      // key_len
                (14, "03"),                                        // table_len
                (15, "01"),                                        // kind
                (20, "65ce8d49"),                                  // crc
                (24, "74626c"),                                    // table
                (27, "6b01"),                                      // key
                (29, "deadbeef99"),                                // value
                (40, "0907060504030201"),                          // delete: lsn
                (52, "0100"),                                      // key_len
                (54, "01"),                                        // table_len
                (55, "02"),                                        // kind
                (60, "16fca043"),                                  // crc
                (64, "74"),                                        // table
                (65, "6b"),                                        // key
                (72, "0a07060504030201"),                          // moved: lsn
                (80, "13000000"),                                  // value_len
                (84, "0900"),                                      // key_len
                (86, "05"),                                        // table_len
                (87, "03"),                                        // kind
                (92, "0fde87e2"),                                  // crc
                (96, "6d6f766564"),                                // table
                (101, "5a5a5a5a5a5a5a5a 5a"),                      // key
                (110, "7777777777777777 7777777777777777 777777"), // value
            ],
        );
        assert!(
            b == expected,
            "encoded ({} bytes):\n{}",
            b.len(),
            spans_of(&b)
        );
        let mut o = 0;
        for (crc, len) in [put, del, moved] {
            let (_, c, padded) = RecordView::decode(&b[o..]).unwrap();
            assert_eq!((c, padded), (crc, len.div_ceil(8) * 8));
            o += padded;
        }
        assert_eq!(o, b.len());
    }

    const C: RecordFormat = RecordFormat::Compact;

    /// Three compact records, the second and third in the first one's table (elided).
    fn compact_three() -> (Vec<u8>, Vec<(u32, usize)>) {
        let mut b = Vec::new();
        let put = encode_in(
            C,
            100,
            RecordKind::Put,
            "bench",
            b"k1",
            &[1, 2, 3],
            false,
            &mut b,
        );
        let del = encode_in(
            C,
            101,
            RecordKind::Delete,
            "bench",
            b"k2",
            &[],
            true,
            &mut b,
        );
        let moved = encode_in(
            C,
            102,
            RecordKind::Moved,
            "bench",
            b"k3",
            &[9; 20],
            true,
            &mut b,
        );
        (b, vec![put, del, moved])
    }

    /// docs/format.md, "Compact records", byte by byte.
    #[test]
    fn compact_encoding_is_pinned() {
        let (b, lens) = compact_three();
        assert_eq!(lens.iter().map(|l| l.1).collect::<Vec<_>>(), [22, 14, 34]);
        let crc = |i: usize| hex(&lens[i].0.to_le_bytes());
        let (c0, c1, c2) = (crc(0), crc(1), crc(2));
        let expected = bytes_from_spans(
            24 + 16 + 40,
            &[
                (0, "01"),          // put: kind
                (1, "05"),          // table_len
                (2, "0200"),        // key_len
                (4, "03000000"),    // value_len
                (8, &c0),           // crc
                (12, "62656e6368"), // "bench"
                (17, "6b31"),       // key
                (19, "010203"),     // value
                (24, "02"),         // delete: kind, table elided
                (26, "0200"),
                (28, "00000000"),
                (32, &c1),
                (36, "6b32"),
                (40, "03"), // moved: kind
                (42, "0200"),
                (44, "14000000"),
                (48, &c2),
                (52, "6b33"),
                (54, "0909090909090909 0909090909090909 09090909"),
            ],
        );
        assert!(b == expected, "encoded:\n{}", spans_of(&b));
        // The crc is over the canonical form: LSN, kind, the real table length, lengths,
        // then table, key and value.
        let mut canon = Vec::new();
        canon.extend_from_slice(&101u64.to_le_bytes());
        canon.extend_from_slice(&[2, 5, 2, 0, 0, 0, 0, 0]);
        canon.extend_from_slice(b"benchk2");
        assert_eq!(lens[1].0, crc32c::crc32c(&canon));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn compact_records_decode_in_order_with_implicit_lsns_and_tables() {
        let (b, lens) = compact_three();
        let recs: Vec<_> = StripeRecords::plain(C, 100, &b)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(recs.len(), 3);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.rec.lsn, 100 + i as u64);
            assert_eq!(r.rec.table, "bench");
            assert_eq!((r.crc, r.len), lens[i]);
        }
        assert_eq!(recs[1].rec.kind, RecordKind::Delete);
        assert_eq!(recs[2].rec.value, &[9; 20]);
        // Another first LSN: every crc fails (the LSN is bound in).
        assert!(StripeRecords::plain(C, 101, &b).next().unwrap().is_err());
        // A point read of the second record needs the table and LSN it was asked for.
        let at = recs[1].offset;
        let one = &b[at..at + recs[1].len];
        let (v, crc, _) = RecordView::decode_in(C, one, 101, Some("bench")).unwrap();
        assert_eq!((v.key, crc), (&b"k2"[..], lens[1].0));
        assert!(RecordView::decode_in(C, one, 101, Some("other")).is_err());
        assert!(RecordView::decode_in(C, one, 102, Some("bench")).is_err());
        assert!(RecordView::decode_in(C, one, 101, None).is_err());
        // Any flipped bit of a record is refused.
        for i in 0..b.len() {
            let in_record = recs
                .iter()
                .any(|r| (r.offset..r.offset + r.len).contains(&i));
            if !in_record {
                continue;
            }
            let mut c = b.clone();
            c[i] ^= 0x10;
            let all: Result<Vec<_>, _> = StripeRecords::plain(C, 100, &c).collect();
            assert!(
                all.map_or(true, |v| v
                    .iter()
                    .map(|r| r.rec)
                    .ne(recs.iter().map(|r| r.rec))),
                "flip at {i} not detected"
            );
        }
    }

    #[test]
    fn a_journal_entry_starts_with_a_stored_table_name() {
        let (b, lens) = compact_three();
        // The second record alone, as a journal entry cut there would begin.
        let second = &b[24..24 + lens[1].1];
        assert!(StripeRecords::plain(C, 101, &b[24..])
            .next()
            .unwrap()
            .is_err());
        let named = with_table_stored(C, second, b"bench");
        assert_eq!(named.len(), (lens[1].1 + 5).next_multiple_of(8));
        let mut entry = named.clone();
        entry.extend_from_slice(&b[40..]);
        let recs: Vec<_> = StripeRecords::plain(C, 101, &entry)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].crc, lens[1].0);
        assert_eq!(recs[1].rec.table, "bench");
    }

    #[test]
    fn compact_lengths() {
        // The row issue 12 measures: a 15-byte key and a 100-byte value in a stored or an
        // elided table name of 5 bytes.
        assert_eq!(C.encoded_len_padded(5, 15, 100), 136);
        assert_eq!(C.encoded_len_padded(0, 15, 100), 128);
        assert_eq!(RecordFormat::Wide.encoded_len_padded(5, 15, 100), 144);
        assert_eq!(C.placed_head_len(0, 15), 32);
        assert_eq!(RecordFormat::of_version(4), C);
        assert_eq!(RecordFormat::of_version(3), RecordFormat::Wide);
    }
}
