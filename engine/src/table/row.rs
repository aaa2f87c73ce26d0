//! The stored form of a row's attribute columns (the value of the row's key/value record).
//!
//! `row = { format_version:u8 = 1 | column_count:u32 | column* }`,
//! `column = { name_len:u8 | name | type_tag:u8 | payload }`, with every integer
//! little-endian and the payload by type: `int64` 8 bytes (two's complement), `double` 8
//! bytes (IEEE 754 bits), `bool` 1 byte (0 or 1), `string` and `binary` `{ len:u32 | bytes }`.
//!
//! Invariants:
//! - Columns are stored in strictly increasing name order (names are unique), so one row
//!   has exactly one encoding.
//! - Decoding checks everything it reads (version, counts, lengths, UTF-8, order, tags, bool
//!   bytes, no trailing bytes) and never panics; the record's crc32c has already been checked
//!   by the engine, so a failure here means the record was not written by this layer.

use super::value::{Value, ValueType};
use std::collections::BTreeMap;

const ROW_FORMAT_VERSION: u8 = 1;

/// A row's attribute columns, by name.
pub type Columns = BTreeMap<String, Value>;

/// Bytes `columns` take encoded.
pub(crate) fn encoded_len(columns: &Columns) -> usize {
    5 + columns
        .iter()
        .map(|(n, v)| {
            2 + n.len()
                + match v {
                    Value::String(_) | Value::Binary(_) => 4 + v.payload_len(),
                    _ => v.payload_len(),
                }
        })
        .sum::<usize>()
}

/// Encodes columns whose names and sizes were checked by the caller (names 1..=255 bytes,
/// strings and binaries below 4 GiB).
pub fn encode(columns: &Columns) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(columns));
    out.push(ROW_FORMAT_VERSION);
    out.extend_from_slice(&(columns.len() as u32).to_le_bytes());
    for (name, v) in columns {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(v.value_type().tag());
        match v {
            Value::Int64(i) => out.extend_from_slice(&i.to_le_bytes()),
            Value::Double(d) => out.extend_from_slice(&d.to_bits().to_le_bytes()),
            Value::Bool(b) => out.push(u8::from(*b)),
            Value::String(s) => {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Binary(b) => {
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    out
}

/// Decodes a row; with `wanted`, keeps only those columns.
pub fn decode(bytes: &[u8], wanted: Option<&[String]>) -> std::result::Result<Columns, String> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != ROW_FORMAT_VERSION {
        return Err(format!("unknown row format version {version}"));
    }
    let count = r.u32()? as usize;
    // Each column takes at least 3 bytes: a count beyond that is damage, not a huge row.
    if count > r.remaining() / 3 {
        return Err(format!(
            "row claims {count} columns in {} bytes",
            bytes.len()
        ));
    }
    let mut out = Columns::new();
    let mut last: Option<&str> = None;
    for _ in 0..count {
        let len = r.u8()? as usize;
        let name = std::str::from_utf8(r.take(len)?)
            .map_err(|_| "a column name is not UTF-8".to_string())?;
        if name.is_empty() || last.is_some_and(|l| l >= name) {
            return Err(format!("column {name:?} is out of order or repeated"));
        }
        last = Some(name);
        let tag = r.u8()?;
        let ty = ValueType::from_tag(tag).ok_or_else(|| format!("unknown type tag {tag}"))?;
        let v = match ty {
            ValueType::Int64 => Value::Int64(i64::from_le_bytes(r.array()?)),
            ValueType::Double => Value::Double(f64::from_bits(u64::from_le_bytes(r.array()?))),
            ValueType::Bool => match r.u8()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(format!("bool column {name:?} holds {b}")),
            },
            ValueType::String => {
                let len = r.u32()? as usize;
                Value::String(
                    std::str::from_utf8(r.take(len)?)
                        .map_err(|_| format!("string column {name:?} is not UTF-8"))?
                        .to_string(),
                )
            }
            ValueType::Binary => {
                let len = r.u32()? as usize;
                Value::Binary(r.take(len)?.to_vec())
            }
        };
        if wanted.is_none_or(|w| w.iter().any(|c| c == name)) {
            out.insert(name.to_string(), v);
        }
    }
    r.finish()?;
    Ok(out)
}

/// A bounds-checked cursor over bytes read from a device.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    pub(crate) fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| format!("truncated: {n} bytes wanted at offset {}", self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let s = self.take(N)?;
        s.try_into().map_err(|_| "short read".to_string())
    }

    pub(crate) fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn finish(&self) -> std::result::Result<(), String> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(format!("{n} unexpected bytes at the end")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value_strategy() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::Int64),
            any::<f64>().prop_map(Value::Double),
            any::<bool>().prop_map(Value::Bool),
            ".{0,20}".prop_map(Value::String),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::Binary),
        ]
    }

    proptest! {
        #[test]
        fn rows_round_trip(cols in proptest::collection::btree_map("[a-z]{1,6}", value_strategy(), 0..8)) {
            let enc = encode(&cols);
            prop_assert_eq!(enc.len(), encoded_len(&cols));
            prop_assert_eq!(decode(&enc, None).unwrap(), cols.clone());
            let wanted: Vec<String> = cols.keys().take(2).cloned().collect();
            let part = decode(&enc, Some(&wanted)).unwrap();
            prop_assert_eq!(part.len(), wanted.len());
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&b, None);
        }
    }

    #[test]
    fn damage_is_an_error() {
        let mut cols = Columns::new();
        cols.insert("a".into(), Value::Bool(true));
        cols.insert("b".into(), Value::from("x"));
        let enc = encode(&cols);
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut], None).is_err(), "cut at {cut}");
        }
        let mut bad_bool = enc.clone();
        bad_bool[8] = 2; // "a"'s bool byte: version, count(4), len, 'a', tag, value
        assert!(decode(&bad_bool, None).is_err());
    }
}
