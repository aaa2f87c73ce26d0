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

/// Where a record's value starts, from the start of the record, given its header.
pub(crate) fn value_offset(header: &[u8; RECORD_HEADER_BYTES]) -> usize {
    RECORD_HEADER_BYTES + header[OFF_TABLE_LEN] as usize + get_u16(header, OFF_KEY_LEN) as usize
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

/// Appends a record like [`encode_parts`] and returns its crc, its unpadded length and the
/// crc32c of its value alone (what the index holds once the value is placed on device
/// blocks).
pub fn encode_parts_split(
    lsn: u64,
    kind: RecordKind,
    table: &str,
    key: &[u8],
    value: &[u8],
    out: &mut Vec<u8>,
) -> (u32, usize, u32) {
    // Two passes over the value: crc32c_combine would save one, but costs far more than a
    // pass over a few KiB with the CPU's crc instruction.
    let (crc, len) = encode_parts(lsn, kind, table, key, value, out);
    (crc, len, crc32c::crc32c(value))
}

/// The header of `record` (an inline record as [`encode_parts`] wrote it) once its value is
/// placed at `value_offset`: kind bit 7 and value_offset set, the crc unchanged (it is
/// defined over the inline form's header).
pub fn placed_header(record: &[u8], value_offset: u32) -> [u8; RECORD_HEADER_BYTES] {
    let mut h = [0u8; RECORD_HEADER_BYTES];
    h.copy_from_slice(&record[..RECORD_HEADER_BYTES]);
    h[OFF_KIND] |= KIND_PLACED;
    put_u32(&mut h, OFF_RESERVED, value_offset);
    h
}

/// Writes one record, encoded inline as `rec` (without padding; its value the last
/// `value_len` bytes), at `spot` through `put(position, bytes)`: inline as it is, or its
/// header (kind bit 7 and value_offset set, the crc kept), table and key in the record area and its
/// value at the value's spot. Positions not written stay as they were (zero).
pub fn lay_out_record(
    rec: &[u8],
    spot: super::placement::Spot,
    value_len: usize,
    put: &mut impl FnMut(usize, &[u8]),
) {
    match spot.value_offset {
        None => put(spot.offset, rec),
        Some(v) => {
            let head = rec.len() - value_len;
            let header = placed_header(rec, v as u32);
            put(spot.offset, &header);
            put(spot.offset + header.len(), &rec[header.len()..head]);
            put(v, &rec[head..]);
        }
    }
}

/// Padded bytes a record takes in the record area when its value is placed.
pub fn placed_head_len(table_len: usize, key_len: usize) -> usize {
    (RECORD_HEADER_BYTES + table_len + key_len).next_multiple_of(RECORD_ALIGN_BYTES)
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
        decode_at(b, None).map(|(v, crc, len, _)| (v, crc, len))
    }
}

/// Where a placed record's value may be: the whole data space, the record area's end, the
/// body length, and the lowest placed value before it.
struct PlacedValues<'a> {
    data: &'a [u8],
    payload: usize,
    body_len: usize,
    floor: usize,
}

/// Decodes the record at the start of `b`; `placed` allows a placed record and says where
/// its value may lie. Returns the record, its crc, its padded length in `b` and its value's
/// position if placed.
fn decode_at<'a>(
    b: &'a [u8],
    placed: Option<&PlacedValues<'a>>,
) -> Result<(RecordView<'a>, u32, usize, Option<usize>), DecodeError> {
    {
        if b.len() < RECORD_HEADER_BYTES {
            return Err(DecodeError::Truncated);
        }
        let lsn = get_u64(b, OFF_LSN);
        let value_len = get_u32(b, OFF_VALUE_LEN) as usize;
        let key_len = get_u16(b, OFF_KEY_LEN) as usize;
        let table_len = b[OFF_TABLE_LEN] as usize;
        let is_placed = b[OFF_KIND] & KIND_PLACED != 0 && placed.is_some();
        let kind = match b[OFF_KIND] & !(if is_placed { KIND_PLACED } else { 0 }) {
            1 => RecordKind::Put,
            2 if !is_placed => RecordKind::Delete,
            3 => RecordKind::Moved,
            _ => return Err(DecodeError::Field("record kind")),
        };
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
            Some(p) => {
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
                &p.data[value_at..end]
            }
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
        Ok((
            view,
            stored,
            total.div_ceil(RECORD_ALIGN_BYTES) * RECORD_ALIGN_BYTES,
            is_placed.then_some(value_at),
        ))
    }
}

/// One record of a log stripe, as [`StripeRecords`] yields it.
#[derive(Debug, Clone, Copy)]
pub struct StripeRecord<'a> {
    /// The record, its value taken where it lies.
    pub rec: RecordView<'a>,
    /// Its position in the data space.
    pub offset: usize,
    /// The record's own crc (header offset 20).
    pub crc: u32,
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
            None => (
                self.offset as u32,
                (RECORD_HEADER_BYTES
                    + self.rec.table.len()
                    + self.rec.key.len()
                    + self.rec.value.len()) as u32,
                self.crc,
            ),
        }
    }
}

/// The records of a log stripe's data space, in order (docs/format.md, "Log records" and
/// "Values on device blocks"). Stops after the first record that does not decode.
pub struct StripeRecords<'a> {
    data: &'a [u8],
    pos: usize,
    placed: Option<PlacedValues<'a>>,
    payload: usize,
    failed: bool,
}

impl<'a> StripeRecords<'a> {
    /// The records of `data` (the k data bodies of a stripe `height` bytes high, in shard
    /// order) up to `payload` bytes; `placed_values` when the array's format allows placed
    /// values (version 3).
    pub fn new(data: &'a [u8], payload: usize, height: usize, placed_values: bool) -> Self {
        StripeRecords {
            data,
            pos: 0,
            placed: placed_values.then(|| PlacedValues {
                data,
                payload,
                body_len: height - CHUNK_HEADER_SIZE_BYTES,
                floor: data.len(),
            }),
            payload: payload.min(data.len()),
            failed: false,
        }
    }

    /// Position of the next record (where decoding stopped, after an error).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for StripeRecords<'a> {
    type Item = Result<StripeRecord<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.payload {
            return None;
        }
        match decode_at(&self.data[self.pos..self.payload], self.placed.as_ref()) {
            Ok((rec, crc, padded_len, value_offset)) => {
                let offset = self.pos;
                self.pos += padded_len;
                if let (Some(p), Some(v)) = (self.placed.as_mut(), value_offset) {
                    p.floor = v;
                }
                Some(Ok(StripeRecord {
                    rec,
                    offset,
                    crc,
                    value_offset,
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
}
