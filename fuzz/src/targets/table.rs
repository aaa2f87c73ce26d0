//! The decoders of typed tables' bytes (docs/format.md, "Typed tables"): primary keys, rows,
//! schema records.

use crate::input::Input;
use ectable_engine::table::codecs::{
    decode_row, decode_schema_record, encode_row, encode_schema_record,
};
use ectable_engine::table::{KeyColumn, Schema, StoredColumns, ValueType};

/// The key schema the first bytes of the input pick: one to four columns of key types.
pub fn pick_schema(input: &mut Input) -> Schema {
    let n = 1 + input.below(4);
    let cols = (0..n)
        .map(|i| {
            let ty = match input.u8() % 3 {
                0 => ValueType::Int64,
                1 => ValueType::String,
                _ => ValueType::Binary,
            };
            KeyColumn::new(&format!("c{i}"), ty)
        })
        .collect();
    // Four named columns of key types always make a valid schema.
    Schema::new(cols).expect("a schema of 1-4 key columns")
}

pub fn key(data: &[u8]) {
    let mut input = Input::new(data);
    let schema = pick_schema(&mut input);
    let bytes = input.rest();
    if let Ok(values) = schema.decode_key(bytes) {
        let again = schema
            .encode_key(&values)
            .expect("a decoded key encodes again");
        assert!(
            again == bytes,
            "a key re-encodes to the bytes it was decoded from"
        );
    }
}

pub fn row(data: &[u8]) {
    // The in-place reader accepts exactly what the copying decoder accepts, and reads the same.
    let stored = StoredColumns::parse(data.to_vec());
    assert_eq!(
        stored.is_ok(),
        decode_row(data, None).is_ok(),
        "the in-place reader and the decoder agree on whether a row is valid"
    );
    if let Ok(cols) = decode_row(data, None) {
        assert!(
            encode_row(&cols) == data,
            "a row re-encodes to the bytes it was decoded from"
        );
        let names: Vec<String> = cols.keys().take(2).cloned().collect();
        let some = decode_row(data, Some(&names)).expect("a row that decodes decodes in part");
        assert_eq!(some.len(), names.len(), "the columns asked for");
        let stored = stored.expect("checked above");
        assert!(
            stored == cols,
            "the in-place reader reads the decoded columns"
        );
        assert_eq!(stored.iter().count(), cols.len());
        for (name, value) in &cols {
            assert!(stored.get(name) == Some(value.as_value_ref()));
        }
    }
}

pub fn schema_record(data: &[u8]) {
    if let Ok((schema, state)) = decode_schema_record(data) {
        assert!(
            encode_schema_record(&schema, state) == data,
            "a schema record re-encodes to the bytes it was decoded from"
        );
    }
}
