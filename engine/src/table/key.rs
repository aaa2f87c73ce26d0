//! The order-preserving encoding of primary keys: byte order of the encodings equals the
//! typed order of the keys, so the engine's byte-ordered index serves typed range reads.
//!
//! `key = component*` (one per primary-key column, in schema order, no separators):
//! - `int64`: 8 bytes, big-endian, with the sign bit flipped (`v as u64 ^ 1 << 63`), so
//!   `i64::MIN` encodes as `00..00` and `-1 < 0` bytewise.
//! - `string`, `binary`: the bytes with every `0x00` escaped as `0x00 0xFF`, then the
//!   terminator `0x00 0x01`. A shorter value sorts first (`0x00 0x01` is below any escaped
//!   byte that can follow), and an embedded zero sorts below every other byte.
//!
//! Invariants:
//! - For keys `a`, `b` of one schema: `encode(a) < encode(b)` iff `a < b` in the typed order
//!   (int64 numerically, string and binary bytewise, components left to right).
//! - Encodings are prefix-free per component, so the encoding of the first j components of a
//!   key is a byte prefix of the encoding of every key that starts with them (partial keys
//!   serve as range bounds and prefixes).
//! - `decode(encode(k)) == k`; decoding never panics on arbitrary bytes.

// Big-endian is what makes byte order equal numeric order: this module is the one place the
// workspace-wide `big_endian_bytes` lint is allowed, and only for int64 key components.

use super::schema::Schema;
use super::value::{Value, ValueType};
use crate::error::{Error, Result};

const ESCAPE: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;
const SIGN_BIT: u64 = 1 << 63;

fn bad(table: &str, detail: String) -> Error {
    Error::BadPrimaryKey {
        table: table.to_string(),
        detail,
    }
}

/// Appends one component.
fn encode_component(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Int64(i) => {
            #[allow(clippy::big_endian_bytes)] // order-preserving: see the module docs
            let b = ((*i as u64) ^ SIGN_BIT).to_be_bytes();
            out.extend_from_slice(&b);
        }
        Value::String(s) => escape_into(out, s.as_bytes()),
        Value::Binary(b) => escape_into(out, b),
        // Only key types reach here (checked by the callers against the schema).
        Value::Double(_) | Value::Bool(_) => {}
    }
}

fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(ESCAPE);
        }
    }
    out.extend_from_slice(&[0, TERMINATOR]);
}

/// Checks the components against the schema's leading columns.
fn check_components(schema: &Schema, table: &str, key: &[Value]) -> Result<()> {
    for (i, (v, c)) in key.iter().zip(schema.key_columns()).enumerate() {
        if v.value_type() != c.value_type {
            return Err(bad(
                table,
                format!(
                    "component {} ('{}') must be {}, got {} {v}",
                    i + 1,
                    c.name,
                    c.value_type,
                    v.value_type()
                ),
            ));
        }
    }
    Ok(())
}

impl Schema {
    /// The order-preserving encoding of a full primary key (docs/format.md, "Typed tables"):
    /// byte order of encodings equals the typed order of keys.
    pub fn encode_key(&self, key: &[Value]) -> Result<Vec<u8>> {
        encode_key(self, "", key)
    }

    /// Decodes an encoded primary key.
    pub fn decode_key(&self, bytes: &[u8]) -> Result<Vec<Value>> {
        decode_key(self, bytes).map_err(|detail| {
            Error::InvalidArgument(format!("not a primary key of schema {self}: {detail}"))
        })
    }
}

/// Encodes a full primary key: exactly one value per key column, of its type, and at most
/// [`crate::MAX_KEY_BYTES`] encoded bytes.
pub(crate) fn encode_key(schema: &Schema, table: &str, key: &[Value]) -> Result<Vec<u8>> {
    let n = schema.key_columns().len();
    if key.len() != n {
        return Err(bad(
            table,
            format!(
                "the primary key ({schema}) has {n} column(s), got {} value(s)",
                key.len()
            ),
        ));
    }
    check_components(schema, table, key)?;
    let mut out = Vec::with_capacity(key.iter().map(|v| v.payload_len() + 2).sum());
    for v in key {
        encode_component(&mut out, v);
    }
    if out.len() > crate::MAX_KEY_BYTES {
        return Err(bad(
            table,
            format!(
                "the encoded primary key takes {} bytes, the limit is {}",
                out.len(),
                crate::MAX_KEY_BYTES
            ),
        ));
    }
    Ok(out)
}

/// Encodes the first 1..=n components of a key (a range bound or prefix).
pub(crate) fn encode_prefix(schema: &Schema, table: &str, key: &[Value]) -> Result<Vec<u8>> {
    let n = schema.key_columns().len();
    if key.is_empty() || key.len() > n {
        return Err(bad(
            table,
            format!(
                "a key bound or prefix has 1 to {n} leading component(s) of ({schema}), got {}",
                key.len()
            ),
        ));
    }
    check_components(schema, table, key)?;
    let mut out = Vec::new();
    for v in key {
        encode_component(&mut out, v);
    }
    Ok(out)
}

/// Decodes a full key of `schema`.
pub(crate) fn decode_key(schema: &Schema, bytes: &[u8]) -> std::result::Result<Vec<Value>, String> {
    // No key longer than the encoder writes (found by the `table_key` fuzz target under
    // libFuzzer: a 1,680-byte key decoded that could never have been stored).
    if bytes.len() > crate::MAX_KEY_BYTES {
        return Err(format!(
            "{} bytes is longer than a primary key can be ({})",
            bytes.len(),
            crate::MAX_KEY_BYTES
        ));
    }
    let mut at = 0usize;
    let mut out = Vec::with_capacity(schema.key_columns().len());
    for c in schema.key_columns() {
        match c.value_type {
            ValueType::Int64 => {
                let b: [u8; 8] = bytes
                    .get(at..at + 8)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| format!("key ends inside int64 column '{}'", c.name))?;
                #[allow(clippy::big_endian_bytes)] // order-preserving: see the module docs
                let u = u64::from_be_bytes(b);
                out.push(Value::Int64((u ^ SIGN_BIT) as i64));
                at += 8;
            }
            ValueType::String | ValueType::Binary => {
                let mut v = Vec::new();
                loop {
                    let Some(&b) = bytes.get(at) else {
                        return Err(format!("key ends inside column '{}'", c.name));
                    };
                    at += 1;
                    if b != 0 {
                        v.push(b);
                        continue;
                    }
                    match bytes.get(at) {
                        Some(&ESCAPE) => v.push(0),
                        Some(&TERMINATOR) => {
                            at += 1;
                            break;
                        }
                        _ => return Err(format!("bad escape in column '{}'", c.name)),
                    }
                    at += 1;
                }
                out.push(if c.value_type == ValueType::String {
                    Value::String(
                        String::from_utf8(v)
                            .map_err(|_| format!("string column '{}' is not UTF-8", c.name))?,
                    )
                } else {
                    Value::Binary(v)
                });
            }
            other => return Err(format!("column '{}' has non-key type {other}", c.name)),
        }
    }
    if at != bytes.len() {
        return Err(format!("{} bytes follow the key", bytes.len() - at));
    }
    Ok(out)
}

/// The smallest byte string greater than every string that starts with `prefix`, or None
/// when there is none (the prefix is empty or all `0xFF`).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xFF {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Ordering;

    fn schema() -> Schema {
        Schema::parse("a:int64,b:string,c:binary").unwrap()
    }

    /// What decodes encodes again: a key longer than the encoder allows is refused by both.
    #[test]
    fn keys_longer_than_the_limit_are_refused_both_ways() {
        let s = Schema::parse("b:binary").unwrap();
        let mut bytes = vec![7u8; crate::MAX_KEY_BYTES + 10];
        bytes.extend_from_slice(&[0, TERMINATOR]);
        let err = s.decode_key(&bytes).unwrap_err().to_string();
        assert!(err.contains("longer than a primary key can be"), "{err}");
        assert!(s
            .encode_key(&[Value::Binary(vec![7; crate::MAX_KEY_BYTES + 10])])
            .is_err());
        // At the limit, both work.
        let v = vec![Value::Binary(vec![7; crate::MAX_KEY_BYTES - 2])];
        let enc = s.encode_key(&v).unwrap();
        assert_eq!(enc.len(), crate::MAX_KEY_BYTES);
        assert_eq!(s.decode_key(&enc).unwrap(), v);
    }

    /// The typed order of keys of `schema()`.
    fn typed_cmp(x: &[Value], y: &[Value]) -> Ordering {
        for (a, b) in x.iter().zip(y) {
            let o = match (a, b) {
                (Value::Int64(a), Value::Int64(b)) => a.cmp(b),
                (Value::String(a), Value::String(b)) => a.as_bytes().cmp(b.as_bytes()),
                (Value::Binary(a), Value::Binary(b)) => a.cmp(b),
                _ => unreachable!("one schema"),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        x.len().cmp(&y.len())
    }

    fn key_strategy() -> impl Strategy<Value = Vec<Value>> {
        let int = prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(-1i64),
            Just(0i64),
            -3i64..3,
            any::<i64>()
        ];
        let string = proptest::collection::vec(
            prop_oneof![
                Just('\0'),
                Just('a'),
                Just('b'),
                Just('\u{ff}'),
                any::<char>()
            ],
            0..4,
        )
        .prop_map(|cs| cs.into_iter().collect::<String>());
        let bin = proptest::collection::vec(
            prop_oneof![Just(0u8), Just(1u8), Just(0xFFu8), any::<u8>()],
            0..4,
        );
        (int, string, bin)
            .prop_map(|(a, b, c)| vec![Value::Int64(a), Value::String(b), Value::Binary(c)])
    }

    proptest! {
        #[test]
        fn byte_order_is_typed_order(x in key_strategy(), y in key_strategy()) {
            let s = schema();
            let (ex, ey) = (encode_key(&s, "t", &x).unwrap(), encode_key(&s, "t", &y).unwrap());
            prop_assert_eq!(ex.cmp(&ey), typed_cmp(&x, &y));
            prop_assert_eq!(decode_key(&s, &ex).unwrap(), x.clone());
            // Every leading part of a key is a byte prefix of its encoding.
            for j in 1..=3 {
                let p = encode_prefix(&s, "t", &x[..j]).unwrap();
                prop_assert!(ex.starts_with(&p));
                if let Some(succ) = prefix_successor(&p) {
                    prop_assert!(ex < succ);
                    // Keys after the prefix group sort at or after the successor.
                    if typed_cmp(&y[..j], &x[..j]) == Ordering::Greater {
                        prop_assert!(ey >= succ);
                    }
                }
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode_key(&schema(), &b);
        }
    }

    #[test]
    fn wrong_arity_type_and_size_are_typed_errors() {
        let s = schema();
        let e = encode_key(&s, "t", &[Value::Int64(1)]);
        assert!(matches!(e, Err(Error::BadPrimaryKey { .. })), "{e:?}");
        let e = encode_key(
            &s,
            "t",
            &[Value::from("x"), Value::from("y"), Value::from(vec![1u8])],
        );
        assert!(matches!(e, Err(Error::BadPrimaryKey { .. })), "{e:?}");
        let big = "x".repeat(2000);
        let e = encode_key(&s, "t", &[Value::Int64(1), big.into(), vec![].into()]);
        assert!(matches!(e, Err(Error::BadPrimaryKey { .. })), "{e:?}");
        assert!(encode_prefix(&s, "t", &[]).is_err());
    }

    #[test]
    fn successor() {
        assert_eq!(prefix_successor(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_successor(&[]), None);
    }
}
