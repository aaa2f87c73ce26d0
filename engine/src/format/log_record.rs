//! Log records: puts and deletes, each with an LSN and a crc32c.
//!
//! `// { lsn | value_len | key_len | table_len | kind | reserved | crc | table | key | value }`
//!
//! Invariants:
//! - Records start 8-byte aligned in a stripe's data space.
//! - The crc covers the first 20 header bytes, the table name, the key and the value.

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
/// Reserved, zero.
const OFF_RESERVED: usize = 16;
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
    assert!(!table.is_empty() && table.len() <= MAX_TABLE_NAME_BYTES);
    assert!(!key.is_empty() && key.len() <= MAX_KEY_BYTES);
    let start = out.len();
    let len = RECORD_HEADER_BYTES + table.len() + key.len() + value.len();
    let padded = len.div_ceil(RECORD_ALIGN_BYTES) * RECORD_ALIGN_BYTES;
    out.reserve(padded);
    out.resize(start + RECORD_HEADER_BYTES, 0);
    {
        let h = &mut out[start..];
        put_u64(h, OFF_LSN, lsn);
        put_u32(h, OFF_VALUE_LEN, value.len() as u32);
        put_u16(h, OFF_KEY_LEN, key.len() as u16);
        h[OFF_TABLE_LEN] = table.len() as u8;
        h[OFF_KIND] = kind as u8;
    }
    out.extend_from_slice(table.as_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    let mut crc = crc32c::crc32c(&out[start..start + OFF_CRC]);
    crc = crc32c::crc32c_append(crc, &out[start + OFF_TABLE..]);
    put_u32(&mut out[start..], OFF_CRC, crc);
    out.resize(start + padded, 0);
    (crc, len)
}

impl LogRecord {
    /// Bytes of the encoded record without its padding to 8 bytes.
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
    /// length.
    pub fn decode(b: &'a [u8]) -> Result<(RecordView<'a>, u32, usize), DecodeError> {
        if b.len() < RECORD_HEADER_BYTES {
            return Err(DecodeError::Truncated);
        }
        let lsn = get_u64(b, OFF_LSN);
        let value_len = get_u32(b, OFF_VALUE_LEN) as usize;
        let key_len = get_u16(b, OFF_KEY_LEN) as usize;
        let table_len = b[OFF_TABLE_LEN] as usize;
        let kind = match b[OFF_KIND] {
            1 => RecordKind::Put,
            2 => RecordKind::Delete,
            3 => RecordKind::Moved,
            _ => return Err(DecodeError::Field("record kind")),
        };
        if get_u32(b, OFF_RESERVED) != 0 {
            return Err(DecodeError::Reserved);
        }
        if key_len == 0
            || key_len > MAX_KEY_BYTES
            || table_len == 0
            || table_len > MAX_TABLE_NAME_BYTES
        {
            return Err(DecodeError::Field("record lengths"));
        }
        let total = RECORD_HEADER_BYTES + table_len + key_len + value_len;
        if b.len() < total {
            return Err(DecodeError::Truncated);
        }
        let stored = get_u32(b, OFF_CRC);
        let computed = crc32c::crc32c_append(crc32c::crc32c(&b[..OFF_CRC]), &b[OFF_TABLE..total]);
        if stored != computed {
            return Err(DecodeError::Checksum { stored, computed });
        }
        let t0 = OFF_TABLE;
        let table = std::str::from_utf8(&b[t0..t0 + table_len])
            .map_err(|_| DecodeError::Field("table name utf-8"))?;
        let k0 = t0 + table_len;
        let v0 = k0 + key_len;
        let view = RecordView {
            lsn,
            kind,
            table,
            key: &b[k0..v0],
            value: &b[v0..total],
        };
        Ok((
            view,
            stored,
            total.div_ceil(RECORD_ALIGN_BYTES) * RECORD_ALIGN_BYTES,
        ))
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
