//! The primary-key encoding preserves order: for random schemas of 1 to 4 key columns
//! (int64, string, binary) and random keys, with the edge values that break naive
//! encodings (negative and extreme ints, empty strings, embedded zero bytes, 0xFF bytes,
//! one key a prefix of another), the byte order of the encodings equals the typed order of
//! the keys, and every encoding decodes back to its key. Wrong arity and types are typed
//! errors.

use ectable::table::{KeyColumn, Schema, Value, ValueType};
use ectable::Error;
use proptest::prelude::*;
use std::cmp::Ordering;

fn typed_cmp(x: &[Value], y: &[Value]) -> Ordering {
    for (a, b) in x.iter().zip(y) {
        let o = match (a, b) {
            (Value::Int64(a), Value::Int64(b)) => a.cmp(b),
            (Value::String(a), Value::String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Binary(a), Value::Binary(b)) => a.cmp(b),
            _ => panic!("one schema, one type per column"),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn type_s() -> impl Strategy<Value = ValueType> {
    prop_oneof![
        Just(ValueType::Int64),
        Just(ValueType::String),
        Just(ValueType::Binary)
    ]
}

fn component_s(t: ValueType) -> BoxedStrategy<Value> {
    match t {
        ValueType::Int64 => prop_oneof![
            Just(i64::MIN),
            Just(i64::MIN + 1),
            Just(-1i64),
            Just(0i64),
            Just(1i64),
            Just(i64::MAX),
            -300i64..300,
            any::<i64>(),
        ]
        .prop_map(Value::Int64)
        .boxed(),
        ValueType::String => proptest::collection::vec(
            prop_oneof![
                Just('\0'),
                Just('\u{1}'),
                Just('a'),
                Just('\u{7f}'),
                Just('\u{ff}'),
                Just('\u{10ffff}'),
                any::<char>()
            ],
            0..5,
        )
        .prop_map(|c| Value::String(c.into_iter().collect()))
        .boxed(),
        _ => proptest::collection::vec(
            prop_oneof![
                Just(0u8),
                Just(1u8),
                Just(0xFEu8),
                Just(0xFFu8),
                any::<u8>()
            ],
            0..5,
        )
        .prop_map(Value::Binary)
        .boxed(),
    }
}

/// A schema and several keys of it.
fn case_s() -> impl Strategy<Value = (Schema, Vec<Vec<Value>>)> {
    proptest::collection::vec(type_s(), 1..=4).prop_flat_map(|types| {
        let cols: Vec<KeyColumn> = types
            .iter()
            .enumerate()
            .map(|(i, t)| KeyColumn::new(&format!("k{i}"), *t))
            .collect();
        let schema = Schema::new(cols).expect("valid schema");
        let key = types.iter().map(|t| component_s(*t)).collect::<Vec<_>>();
        (Just(schema), proptest::collection::vec(key, 2..12))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn encoded_order_is_typed_order((schema, keys) in case_s()) {
        let enc: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| schema.encode_key(k).expect("encode"))
            .collect();
        for (k, e) in keys.iter().zip(&enc) {
            prop_assert_eq!(&schema.decode_key(e).expect("decode"), k);
        }
        for i in 0..keys.len() {
            for j in 0..keys.len() {
                prop_assert_eq!(
                    enc[i].cmp(&enc[j]),
                    typed_cmp(&keys[i], &keys[j]),
                    "keys {:?} and {:?}", &keys[i], &keys[j]
                );
            }
        }
        // Sorting by bytes sorts by typed value.
        let mut by_bytes: Vec<(Vec<u8>, Vec<Value>)> = enc.into_iter().zip(keys.clone()).collect();
        by_bytes.sort_by(|a, b| a.0.cmp(&b.0));
        let mut by_type = keys;
        by_type.sort_by(|a, b| typed_cmp(a, b));
        let sorted: Vec<Vec<Value>> = by_bytes.into_iter().map(|(_, k)| k).collect();
        prop_assert_eq!(sorted, by_type);
    }
}

#[test]
fn wrong_arity_and_types_are_typed_errors() {
    let s = Schema::parse("id:int64,name:string").unwrap();
    for key in [
        vec![Value::Int64(1)],
        vec![Value::Int64(1), Value::from("a"), Value::from("b")],
        vec![Value::from("a"), Value::from("b")],
        vec![Value::Int64(1), Value::Binary(vec![1])],
        vec![Value::Int64(1), Value::Double(1.0)],
    ] {
        assert!(
            matches!(s.encode_key(&key), Err(Error::BadPrimaryKey { .. })),
            "{key:?}"
        );
    }
    assert!(s.decode_key(&[1, 2, 3]).is_err());
}
