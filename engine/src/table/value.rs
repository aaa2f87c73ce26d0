//! Typed values of the table layer: the [`Value`] of a primary-key component or of an
//! attribute column, and the [`ValueType`] tags they carry on disk.
//!
//! Invariants:
//! - Equality is total: doubles compare by their bit pattern, so a row always equals itself
//!   (a stored NaN equals the same NaN) and `0.0` differs from `-0.0`. Conditions
//!   ([`crate::table::Condition::ColumnEquals`]) use this equality.
//! - The numeric tags of [`ValueType`] are part of the on-disk format (docs/format.md,
//!   "Typed tables") and never change meaning.

use std::fmt;

/// The type of a value. Primary-key columns may be [`ValueType::Int64`],
/// [`ValueType::String`] or [`ValueType::Binary`]; attribute columns may be any type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueType {
    /// A signed 64-bit integer (keys order numerically).
    Int64,
    /// An IEEE 754 double (attribute columns only).
    Double,
    /// A boolean (attribute columns only).
    Bool,
    /// UTF-8 text (keys order bytewise).
    String,
    /// Raw bytes (keys order bytewise).
    Binary,
}

impl ValueType {
    /// The on-disk tag.
    pub(crate) fn tag(self) -> u8 {
        match self {
            ValueType::Int64 => 1,
            ValueType::Double => 2,
            ValueType::Bool => 3,
            ValueType::String => 4,
            ValueType::Binary => 5,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<ValueType> {
        Some(match tag {
            1 => ValueType::Int64,
            2 => ValueType::Double,
            3 => ValueType::Bool,
            4 => ValueType::String,
            5 => ValueType::Binary,
            _ => return None,
        })
    }

    /// The name used in schemas and by the CLI: `int64`, `double`, `bool`, `string`, `binary`.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Int64 => "int64",
            ValueType::Double => "double",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Binary => "binary",
        }
    }

    /// Parses a type name (the inverse of [`ValueType::name`]; `int`, `str`, `bytes` and
    /// `float` are accepted as aliases).
    pub fn parse(name: &str) -> Option<ValueType> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "int64" | "int" | "i64" => ValueType::Int64,
            "double" | "float" | "f64" => ValueType::Double,
            "bool" | "boolean" => ValueType::Bool,
            "string" | "str" => ValueType::String,
            "binary" | "bytes" => ValueType::Binary,
            _ => return None,
        })
    }

    /// Whether a primary-key column may have this type.
    pub fn is_key_type(self) -> bool {
        matches!(
            self,
            ValueType::Int64 | ValueType::String | ValueType::Binary
        )
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A typed value: a primary-key component or an attribute column.
///
/// ```
/// use ectable_engine::table::{Value, ValueType};
///
/// let v: Value = 7i64.into();
/// assert_eq!(v, Value::Int64(7));
/// assert_eq!(Value::from("a").value_type(), ValueType::String);
/// assert_eq!(Value::from(1.5), Value::Double(1.5));
/// assert_ne!(Value::Double(0.0), Value::Double(-0.0)); // bitwise equality
/// ```
#[derive(Debug, Clone)]
pub enum Value {
    /// A signed 64-bit integer.
    Int64(i64),
    /// A double; equality is bitwise.
    Double(f64),
    /// A boolean.
    Bool(bool),
    /// UTF-8 text.
    String(String),
    /// Raw bytes.
    Binary(Vec<u8>),
}

impl Value {
    /// Its type.
    pub fn value_type(&self) -> ValueType {
        self.as_value_ref().value_type()
    }

    /// The integer, if this is an `Int64`.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_value_ref().as_i64()
    }

    /// The double, if this is a `Double` (an `Int64` is not converted).
    pub fn as_f64(&self) -> Option<f64> {
        self.as_value_ref().as_f64()
    }

    /// The boolean, if this is a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        self.as_value_ref().as_bool()
    }

    /// The text, if this is a `String`.
    pub fn as_str(&self) -> Option<&str> {
        self.as_value_ref().as_str()
    }

    /// The bytes, if this is a `Binary` (a `String` is not converted).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        self.as_value_ref().as_bytes()
    }

    /// Bytes the value's payload takes (used for size limits and estimates).
    pub(crate) fn payload_len(&self) -> usize {
        match self {
            Value::Int64(_) | Value::Double(_) => 8,
            Value::Bool(_) => 1,
            Value::String(s) => s.len(),
            Value::Binary(b) => b.len(),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.as_value_ref() == other.as_value_ref()
    }
}

impl Value {
    /// The value borrowed, as a [`ValueRef`].
    pub fn as_value_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Int64(v) => ValueRef::Int64(*v),
            Value::Double(v) => ValueRef::Double(*v),
            Value::Bool(v) => ValueRef::Bool(*v),
            Value::String(v) => ValueRef::String(v),
            Value::Binary(v) => ValueRef::Binary(v),
        }
    }
}

/// A value borrowed from where it lies (a stored row read in place, see
/// [`StoredColumns`](super::StoredColumns)): the same types as [`Value`], without owning
/// the text or bytes.
///
/// ```
/// use ectable_engine::table::{Value, ValueRef};
///
/// let v = Value::from("ann");
/// assert_eq!(v.as_value_ref(), ValueRef::String("ann"));
/// assert_eq!(ValueRef::String("ann").to_value(), v);
/// assert!(ValueRef::Int64(4) == Value::Int64(4));
/// ```
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    /// A signed 64-bit integer.
    Int64(i64),
    /// A double; equality is bitwise, as for [`Value`].
    Double(f64),
    /// A boolean.
    Bool(bool),
    /// UTF-8 text.
    String(&'a str),
    /// Raw bytes.
    Binary(&'a [u8]),
}

impl<'a> ValueRef<'a> {
    /// Its type.
    pub fn value_type(&self) -> ValueType {
        match self {
            ValueRef::Int64(_) => ValueType::Int64,
            ValueRef::Double(_) => ValueType::Double,
            ValueRef::Bool(_) => ValueType::Bool,
            ValueRef::String(_) => ValueType::String,
            ValueRef::Binary(_) => ValueType::Binary,
        }
    }

    /// An owned copy.
    pub fn to_value(&self) -> Value {
        match *self {
            ValueRef::Int64(v) => Value::Int64(v),
            ValueRef::Double(v) => Value::Double(v),
            ValueRef::Bool(v) => Value::Bool(v),
            ValueRef::String(v) => Value::String(v.to_string()),
            ValueRef::Binary(v) => Value::Binary(v.to_vec()),
        }
    }

    /// The integer, if this is an `Int64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ValueRef::Int64(v) => Some(*v),
            _ => None,
        }
    }

    /// The double, if this is a `Double` (an `Int64` is not converted).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ValueRef::Double(v) => Some(*v),
            _ => None,
        }
    }

    /// The boolean, if this is a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ValueRef::Bool(v) => Some(*v),
            _ => None,
        }
    }

    /// The text, if this is a `String`.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            ValueRef::String(v) => Some(v),
            _ => None,
        }
    }

    /// The bytes, if this is a `Binary` (a `String` is not converted).
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            ValueRef::Binary(v) => Some(v),
            _ => None,
        }
    }
}

impl PartialEq for ValueRef<'_> {
    fn eq(&self, other: &ValueRef<'_>) -> bool {
        match (self, other) {
            (ValueRef::Int64(a), ValueRef::Int64(b)) => a == b,
            (ValueRef::Double(a), ValueRef::Double(b)) => a.to_bits() == b.to_bits(),
            (ValueRef::Bool(a), ValueRef::Bool(b)) => a == b,
            (ValueRef::String(a), ValueRef::String(b)) => a == b,
            (ValueRef::Binary(a), ValueRef::Binary(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for ValueRef<'_> {}

impl PartialEq<Value> for ValueRef<'_> {
    fn eq(&self, other: &Value) -> bool {
        *self == other.as_value_ref()
    }
}

impl From<ValueRef<'_>> for Value {
    fn from(v: ValueRef<'_>) -> Value {
        v.to_value()
    }
}

impl Eq for Value {}

impl fmt::Display for Value {
    /// A compact, unambiguous rendering for messages: `7`, `1.5`, `true`, `"a"`, `0x00ff`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int64(v) => write!(f, "{v}"),
            Value::Double(v) => write!(f, "{v:?}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::String(v) => write!(f, "{v:?}"),
            Value::Binary(v) => {
                f.write_str("0x")?;
                for b in v {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int64(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::Int64(i64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Double(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::String(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::String(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Binary(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Binary(v.to_vec())
    }
}

/// Renders a primary key for messages: `(7, "a")`.
pub(crate) fn key_display(key: &[Value]) -> String {
    let parts: Vec<String> = key.iter().map(|v| v.to_string()).collect();
    format!("({})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_names_parse() {
        for t in [
            ValueType::Int64,
            ValueType::Double,
            ValueType::Bool,
            ValueType::String,
            ValueType::Binary,
        ] {
            assert_eq!(ValueType::from_tag(t.tag()), Some(t));
            assert_eq!(ValueType::parse(t.name()), Some(t));
        }
        assert_eq!(ValueType::from_tag(0), None);
        assert_eq!(ValueType::parse("decimal"), None);
    }

    #[test]
    fn doubles_compare_bitwise() {
        assert_eq!(Value::Double(f64::NAN), Value::Double(f64::NAN));
        assert_ne!(Value::Double(0.0), Value::Double(-0.0));
        assert_ne!(Value::Int64(1), Value::Double(1.0));
    }
}
