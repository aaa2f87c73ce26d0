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

use super::value::{Value, ValueRef, ValueType};
use std::collections::BTreeMap;
use std::sync::Arc;

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
    let mut out = Columns::new();
    walk(bytes, |name, v| {
        if is_wanted(wanted, name) {
            out.insert(name.to_string(), v.to_value());
        }
    })?;
    Ok(out)
}

fn is_wanted(wanted: Option<&[String]>, name: &str) -> bool {
    wanted.is_none_or(|w| w.iter().any(|c| c == name))
}

/// Bytes before the first column: the format version and the column count.
const ROW_HEADER_BYTES: usize = 5;

/// Checks a stored row through (everything `decode` promises) and calls `f` with each
/// column in stored order. Returns the number of columns stored.
fn walk<'a>(
    bytes: &'a [u8],
    mut f: impl FnMut(&'a str, ValueRef<'a>),
) -> std::result::Result<usize, String> {
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
    let mut last: Option<&str> = None;
    for _ in 0..count {
        let (name, v) = read_column::<true>(&mut r)?;
        if name.is_empty() || last.is_some_and(|l| l >= name) {
            return Err(format!("column {name:?} is out of order or repeated"));
        }
        last = Some(name);
        f(name, v);
    }
    r.finish()?;
    Ok(count)
}

/// Reads the column at the cursor, its value borrowed from the bytes, with every check but
/// the order of names (the caller's). `CHECKED = false` only for bytes `walk` has checked
/// through before: their names and texts are then taken as UTF-8 without a second look.
fn read_column<'a, const CHECKED: bool>(
    r: &mut Reader<'a>,
) -> std::result::Result<(&'a str, ValueRef<'a>), String> {
    let len = r.u8()? as usize;
    let name = utf8::<CHECKED>(r.take(len)?).ok_or("a column name is not UTF-8")?;
    let tag = r.u8()?;
    let ty = ValueType::from_tag(tag).ok_or_else(|| format!("unknown type tag {tag}"))?;
    let v = match ty {
        ValueType::Int64 => ValueRef::Int64(i64::from_le_bytes(r.array()?)),
        ValueType::Double => ValueRef::Double(f64::from_bits(u64::from_le_bytes(r.array()?))),
        ValueType::Bool => match r.u8()? {
            0 => ValueRef::Bool(false),
            1 => ValueRef::Bool(true),
            b => return Err(format!("bool column {name:?} holds {b}")),
        },
        ValueType::String => {
            let len = r.u32()? as usize;
            ValueRef::String(
                utf8::<CHECKED>(r.take(len)?)
                    .ok_or_else(|| format!("string column {name:?} is not UTF-8"))?,
            )
        }
        ValueType::Binary => {
            let len = r.u32()? as usize;
            ValueRef::Binary(r.take(len)?)
        }
    };
    Ok((name, v))
}

/// `bytes` as text: checked, or with `CHECKED = false` taken as the UTF-8 an earlier check
/// found them to be.
fn utf8<const CHECKED: bool>(bytes: &[u8]) -> Option<&str> {
    if CHECKED {
        std::str::from_utf8(bytes).ok()
    } else {
        // SAFETY: only `ColumnIter` reads with CHECKED = false, over the bytes a
        // `StoredColumns` owns and never changes, which `walk` checked through when it was
        // made, with the same `read_column` at the same offsets: these exact bytes passed
        // `from_utf8` then.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    }
}

/// A row's attribute columns as stored, checked through once when read and then read in
/// place: iterating over them or looking one up allocates nothing, where [`Columns`] holds
/// a `String` per name and per text value. What a range read returns with
/// [`Tables::range_view`](super::Tables::range_view).
///
/// ```
/// use ectable_engine::table::{Columns, StoredColumns, Value, ValueRef};
///
/// let mut cols = Columns::new();
/// cols.insert("n".into(), Value::Int64(4));
/// cols.insert("tag".into(), Value::from("red"));
/// // The stored form (docs/format.md, "Typed tables"): version 1, two columns, then
/// // "n" int64 (tag 1) and "tag" string (tag 4) in name order.
/// let mut bytes = vec![1, 2, 0, 0, 0];
/// bytes.extend([1, b'n', 1, 4, 0, 0, 0, 0, 0, 0, 0]);
/// bytes.extend([3, b't', b'a', b'g', 4, 3, 0, 0, 0, b'r', b'e', b'd']);
/// let stored = StoredColumns::parse(bytes).unwrap();
/// assert_eq!(stored.get("tag"), Some(ValueRef::String("red")));
/// assert_eq!(stored.iter().map(|(name, _)| name).collect::<Vec<_>>(), ["n", "tag"]);
/// assert!(stored == cols);
/// assert_eq!(stored.to_columns(), cols);
/// assert!(StoredColumns::parse(vec![1, 9, 0, 0, 0]).is_err()); // 9 columns in 0 bytes
/// ```
#[derive(Debug, Clone)]
pub struct StoredColumns {
    bytes: Vec<u8>,
    /// The columns a projection keeps (None: all).
    wanted: Option<Arc<[String]>>,
    /// Columns stored, and those of them the projection keeps.
    stored: usize,
    len: usize,
}

impl StoredColumns {
    /// Checks a stored row's bytes (the encoding `codecs::encode_row` writes) and keeps them.
    pub fn parse(bytes: Vec<u8>) -> std::result::Result<StoredColumns, String> {
        StoredColumns::with_projection(bytes, None)
    }

    /// As `parse`, showing only the columns named in `wanted`.
    pub(crate) fn with_projection(
        bytes: Vec<u8>,
        wanted: Option<Arc<[String]>>,
    ) -> std::result::Result<StoredColumns, String> {
        let mut len = 0;
        let stored = walk(&bytes, |name, _| {
            len += usize::from(is_wanted(wanted.as_deref(), name));
        })?;
        Ok(StoredColumns {
            bytes,
            wanted,
            stored,
            len,
        })
    }

    /// The columns, in name order.
    pub fn iter(&self) -> ColumnIter<'_> {
        ColumnIter {
            r: Reader {
                bytes: &self.bytes,
                at: ROW_HEADER_BYTES,
            },
            left: self.stored,
            wanted: self.wanted.as_deref(),
        }
    }

    /// The column named `name`, if the row has it (and a projection keeps it).
    pub fn get(&self, name: &str) -> Option<ValueRef<'_>> {
        // Names are stored in increasing order: stop at the first one past `name`.
        self.iter()
            .take_while(|(n, _)| *n <= name)
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// How many columns `iter` yields.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when `iter` yields nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// An owned copy of the columns `iter` yields.
    pub fn to_columns(&self) -> Columns {
        self.iter()
            .map(|(n, v)| (n.to_string(), v.to_value()))
            .collect()
    }
}

impl PartialEq<Columns> for StoredColumns {
    fn eq(&self, other: &Columns) -> bool {
        self.len == other.len()
            && self
                .iter()
                .all(|(n, v)| other.get(n).is_some_and(|o| v == *o))
    }
}

impl<'a> IntoIterator for &'a StoredColumns {
    type Item = (&'a str, ValueRef<'a>);
    type IntoIter = ColumnIter<'a>;
    fn into_iter(self) -> ColumnIter<'a> {
        self.iter()
    }
}

/// The columns of a [`StoredColumns`], in name order: (name, value).
#[derive(Debug, Clone)]
pub struct ColumnIter<'a> {
    r: Reader<'a>,
    left: usize,
    wanted: Option<&'a [String]>,
}

impl<'a> Iterator for ColumnIter<'a> {
    type Item = (&'a str, ValueRef<'a>);
    fn next(&mut self) -> Option<(&'a str, ValueRef<'a>)> {
        while self.left > 0 {
            self.left -= 1;
            // The bytes were checked through when the row was read: a failure here cannot
            // happen, and would end the iteration rather than panic.
            let (name, v) = read_column::<false>(&mut self.r).ok()?;
            if is_wanted(self.wanted, name) {
                return Some((name, v));
            }
        }
        None
    }
}

/// A bounds-checked cursor over bytes read from a device.
#[derive(Debug, Clone)]
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

        #[test]
        fn stored_columns_read_what_decode_reads(cols in proptest::collection::btree_map("[a-z]{1,6}", value_strategy(), 0..8)) {
            let enc = encode(&cols);
            let s = StoredColumns::parse(enc.clone()).unwrap();
            prop_assert!(s == cols);
            prop_assert_eq!(s.len(), cols.len());
            prop_assert_eq!(s.to_columns(), cols.clone());
            for (n, v) in &cols {
                prop_assert!(s.get(n) == Some(v.as_value_ref()));
            }
            prop_assert!(s.get("zzzzzzz").is_none());
            let wanted: Vec<String> = cols.keys().skip(1).step_by(2).cloned().collect();
            let part = StoredColumns::with_projection(enc.clone(), Some(wanted.clone().into())).unwrap();
            prop_assert_eq!(part.to_columns(), decode(&enc, Some(&wanted)).unwrap());
            prop_assert_eq!(part.len(), wanted.len());
        }

        #[test]
        fn stored_columns_refuse_what_decode_refuses(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(StoredColumns::parse(b.clone()).map(|s| s.to_columns()), decode(&b, None));
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
            assert!(
                StoredColumns::parse(enc[..cut].to_vec()).is_err(),
                "cut at {cut}"
            );
        }
        let mut bad_bool = enc.clone();
        bad_bool[8] = 2; // "a"'s bool byte: version, count(4), len, 'a', tag, value
        assert!(decode(&bad_bool, None).is_err());
    }
}
