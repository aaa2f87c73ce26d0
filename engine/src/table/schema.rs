//! Table schemas: the typed primary key of a table, and its record in the system table
//! `$schema`.
//!
//! A schema names 1 to 4 primary-key columns, each `int64`, `string` or `binary`.
//! Attribute columns are dynamic and not part of the schema.
//!
//! Invariants:
//! - A [`Schema`] value is always valid: [`Schema::new`] and [`Schema::parse`] check the
//!   column count, names and types, and decoding a stored record checks them again.
//! - The schema record has no checksum of its own: the log record that holds it carries a
//!   crc32c, checked on every read.

use super::value::ValueType;
use crate::error::{Error, Result};
use std::fmt;

/// The system table that holds one schema record per typed table (key: the table name).
pub const SCHEMA_TABLE: &str = "$schema";
/// The most primary-key columns a table may have.
pub const MAX_KEY_COLUMNS: usize = 4;
/// The longest primary-key column name, in bytes.
pub const MAX_KEY_COLUMN_NAME_BYTES: usize = 64;
/// The longest attribute column name, in bytes.
pub const MAX_COLUMN_NAME_BYTES: usize = 255;

const SCHEMA_FORMAT_VERSION: u8 = 1;

/// One primary-key column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyColumn {
    /// The column's name (1 to 64 bytes).
    pub name: String,
    /// Its type: int64, string or binary.
    pub value_type: ValueType,
}

impl KeyColumn {
    /// A column named `name` of type `value_type` (checked by [`Schema::new`], not here).
    pub fn new(name: &str, value_type: ValueType) -> KeyColumn {
        KeyColumn {
            name: name.to_string(),
            value_type,
        }
    }
}

/// The primary key of a typed table: 1 to 4 typed columns, compared in order.
///
/// ```
/// use ectable_engine::table::{Schema, ValueType};
///
/// let s = Schema::parse("id:int64,name:string").unwrap();
/// assert_eq!(s.key_columns().len(), 2);
/// assert_eq!(s.key_columns()[1].value_type, ValueType::String);
/// assert_eq!(s.to_string(), "id:int64,name:string");
/// assert!(Schema::parse("x:double").is_err()); // not a key type
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schema {
    key_columns: Vec<KeyColumn>,
}

impl Schema {
    /// A schema of these primary-key columns, checked.
    pub fn new(key_columns: Vec<KeyColumn>) -> Result<Schema> {
        let bad = |why: String| Err(Error::InvalidSchema(why));
        if key_columns.is_empty() || key_columns.len() > MAX_KEY_COLUMNS {
            return bad(format!(
                "a primary key has 1 to {MAX_KEY_COLUMNS} columns, got {}",
                key_columns.len()
            ));
        }
        for (i, c) in key_columns.iter().enumerate() {
            check_key_column_name(&c.name).map_err(Error::InvalidSchema)?;
            if !c.value_type.is_key_type() {
                return bad(format!(
                    "primary-key column '{}' has type {}: key columns are int64, string or binary",
                    c.name, c.value_type
                ));
            }
            if key_columns[..i].iter().any(|p| p.name == c.name) {
                return bad(format!("primary-key column '{}' is named twice", c.name));
            }
        }
        Ok(Schema { key_columns })
    }

    /// Parses `name:type,name:type,...` (types `int64`, `string`, `binary`).
    pub fn parse(spec: &str) -> Result<Schema> {
        let mut cols = Vec::new();
        for part in spec.split(',') {
            let part = part.trim();
            let Some((name, ty)) = part.split_once(':') else {
                return Err(Error::InvalidSchema(format!(
                    "'{part}' is not name:type (for example id:int64,name:string)"
                )));
            };
            let value_type = ValueType::parse(ty).ok_or_else(|| {
                Error::InvalidSchema(format!(
                    "column '{}': unknown type '{}' (key columns are int64, string or binary)",
                    name.trim(),
                    ty.trim()
                ))
            })?;
            cols.push(KeyColumn::new(name.trim(), value_type));
        }
        Schema::new(cols)
    }

    /// The primary-key columns, in key order.
    pub fn key_columns(&self) -> &[KeyColumn] {
        &self.key_columns
    }

    /// The position of a primary-key column.
    pub fn key_column_index(&self, name: &str) -> Option<usize> {
        self.key_columns.iter().position(|c| c.name == name)
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.key_columns.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{}", c.name, c.value_type)?;
        }
        Ok(())
    }
}

/// Primary-key column names are identifiers: 1..=64 bytes of ASCII letters, digits, `_`,
/// `-` and `.` (so that `name:type,...` and JSON keys express them without quoting).
fn check_key_column_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_KEY_COLUMN_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "primary-key column name '{name}' must be 1..={MAX_KEY_COLUMN_NAME_BYTES} bytes of \
             ASCII letters, digits, '_', '-' or '.'"
        ))
    }
}

/// Attribute column names: 1..=255 bytes of UTF-8 without control characters.
pub(crate) fn check_column_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > MAX_COLUMN_NAME_BYTES {
        return Err(format!(
            "column name must be 1..={MAX_COLUMN_NAME_BYTES} bytes, got {} bytes",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("column name {name:?} holds a control character"));
    }
    Ok(())
}

/// Typed table names: 1..=64 bytes of UTF-8 without control characters, not starting with
/// `$` (reserved for system tables).
pub(crate) fn check_table_name(name: &str) -> Result<()> {
    if name.starts_with('$') {
        return Err(Error::ReservedTableName(name.to_string()));
    }
    if name.is_empty()
        || name.len() > crate::MAX_TABLE_NAME_BYTES
        || name.chars().any(char::is_control)
    {
        return Err(Error::BadTableName {
            name: name.to_string(),
            max: crate::MAX_TABLE_NAME_BYTES,
        });
    }
    Ok(())
}

/// The life of a table as its schema record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableState {
    /// The table is in use.
    Live = 1,
    /// A drop started: the table is gone for readers and writers; its rows are being
    /// deleted, and the schema record goes last.
    Dropping = 2,
}

/// Encodes a schema record.
///
/// `{ format_version:u8 = 1 | state:u8 | key_column_count:u8 | key_column* }`,
/// `key_column = { name_len:u8 | name | type_tag:u8 }`.
pub fn encode_record(schema: &Schema, state: TableState) -> Vec<u8> {
    let mut out = vec![
        SCHEMA_FORMAT_VERSION,
        state as u8,
        schema.key_columns.len() as u8,
    ];
    for c in &schema.key_columns {
        // Names are at most 64 bytes (checked by Schema::new).
        out.push(c.name.len() as u8);
        out.extend_from_slice(c.name.as_bytes());
        out.push(c.value_type.tag());
    }
    out
}

/// Decodes and checks a schema record.
pub fn decode_record(bytes: &[u8]) -> std::result::Result<(Schema, TableState), String> {
    let mut r = super::row::Reader::new(bytes);
    let version = r.u8()?;
    if version != SCHEMA_FORMAT_VERSION {
        return Err(format!("unknown schema format version {version}"));
    }
    let state = match r.u8()? {
        1 => TableState::Live,
        2 => TableState::Dropping,
        s => return Err(format!("unknown table state {s}")),
    };
    let count = r.u8()? as usize;
    let mut cols = Vec::with_capacity(count.min(MAX_KEY_COLUMNS));
    for _ in 0..count {
        let len = r.u8()? as usize;
        let name = std::str::from_utf8(r.take(len)?)
            .map_err(|_| "a key column name is not UTF-8".to_string())?;
        let tag = r.u8()?;
        let ty = ValueType::from_tag(tag).ok_or_else(|| format!("unknown type tag {tag}"))?;
        cols.push(KeyColumn::new(name, ty));
    }
    r.finish()?;
    let schema = Schema::new(cols).map_err(|e| e.to_string())?;
    Ok((schema, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_parse_print_and_round_trip() {
        let s = Schema::parse(" id : int64 , name:string,h:binary").unwrap();
        assert_eq!(s.to_string(), "id:int64,name:string,h:binary");
        for state in [TableState::Live, TableState::Dropping] {
            let rec = encode_record(&s, state);
            assert_eq!(decode_record(&rec).unwrap(), (s.clone(), state));
        }
    }

    #[test]
    fn invalid_schemas_are_refused() {
        for spec in [
            "",
            "id",
            "id:int64,id:string",
            "a:int64,b:int64,c:int64,d:int64,e:int64",
            "x:double",
            "x:bool",
            "x:uuid",
            "bad name:int64",
            ":int64",
        ] {
            assert!(
                matches!(Schema::parse(spec), Err(Error::InvalidSchema(_))),
                "{spec:?} was accepted"
            );
        }
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let rec = encode_record(&Schema::parse("id:int64").unwrap(), TableState::Live);
        for cut in 0..rec.len() {
            assert!(decode_record(&rec[..cut]).is_err());
        }
        let mut long = rec.clone();
        long.push(0);
        assert!(decode_record(&long).is_err());
        let mut bad = rec;
        bad[0] = 9;
        assert!(decode_record(&bad).is_err());
    }

    #[test]
    fn table_names() {
        assert!(matches!(
            check_table_name("$x"),
            Err(Error::ReservedTableName(_))
        ));
        assert!(matches!(
            check_table_name(""),
            Err(Error::BadTableName { .. })
        ));
        assert!(check_table_name("users").is_ok());
    }
}
