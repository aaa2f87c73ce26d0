//! `ectable table ...` and the typed-table forms of `put`, `get`, `delete`, `scan`,
//! `import` and `export` (called by `crate::cmd::kv` and `crate::cmd::bulk`).
//!
//! On a typed table, rows are JSON lines, one row a line:
//! `{"pk": {"id": 7, "name": "a"}, "cols": {"score": 1.5, "ok": true, "tag": "x", "n": 3}}`.
//! A JSON integer is an int64, any other number a double, `{"$bin": "<base64>"}` a binary
//! value; doubles JSON cannot write (NaN, infinities) are `{"$double": "NaN" | "inf" |
//! "-inf"}`. Keys (`--key`, `--from`, `--to`, `--prefix`) are the JSON object of the primary
//! key; bounds and prefixes may give only its first columns.
//!
//! Invariants:
//! - Every input is parsed and checked against the schema before anything is written; a bad
//!   line of an import names its line and writes nothing.
//! - Output is in primary-key order (or reverse with `--reverse`), with the primary-key
//!   columns in schema order.

use crate::cmd::common::{open_array, DevicesArg, TableArg};
use crate::term;
use anyhow::{Context, Result};
use base64::Engine as _;
use clap::Subcommand;
use ectable_devices::BackendKind;
use ectable_engine::table::{
    Columns, Condition, RangeQuery, Row, Schema, TableBatch, TableInfo, Tables, Value, ValueRef,
};
use ectable_engine::{Engine, Error as EngineError};
use serde_json::{json, Map, Value as Json};
use std::io::{BufRead, Write};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum TableCommand {
    /// Create a typed table: a primary key of 1 to 4 columns, each int64, string or binary.
    Create {
        #[command(flatten)]
        dev: DevicesArg,
        #[command(flatten)]
        table: TableArg,
        /// The primary key, in order: name:type,... (for example id:int64,name:string).
        #[arg(long, value_name = "COL:TYPE,...")]
        pk: String,
    },
    /// List the typed tables with their primary keys and row counts (and name the plain
    /// key/value tables; `--json` lists the typed ones only).
    List {
        #[command(flatten)]
        dev: DevicesArg,
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a typed table's primary key and row count.
    Describe {
        #[command(flatten)]
        dev: DevicesArg,
        #[command(flatten)]
        table: TableArg,
        /// Print the description as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop a typed table and all its rows (asks on a terminal unless --yes).
    Drop {
        #[command(flatten)]
        dev: DevicesArg,
        #[command(flatten)]
        table: TableArg,
        /// Drop without asking (for scripts).
        #[arg(long)]
        yes: bool,
    },
}

/// Opens the typed-table layer over an opened array.
pub fn open_tables(engine: &Arc<Engine>) -> Result<Tables> {
    Tables::open(engine.clone()).context("loading the table schemas")
}

/// The schema when `table` is a typed table.
pub fn typed(tables: &Tables, table: &str) -> Option<Schema> {
    tables.schema(table)
}

/// Refuses plain key/value writes to system tables (names starting with '$').
pub fn refuse_system_write(table: &str) -> Result<()> {
    if table.starts_with('$') {
        return Err(EngineError::ReservedTableName(table.to_string()).into());
    }
    Ok(())
}

pub fn run(kind: BackendKind, cmd: TableCommand) -> Result<i32> {
    match cmd {
        TableCommand::Create { dev, table, pk } => {
            // Checked before the array is opened: a bad command line touches nothing.
            let schema = Schema::parse(&pk).context("--pk")?;
            if table.table.starts_with('$') {
                return Err(EngineError::ReservedTableName(table.table).into());
            }
            crate::node::client::refuse_if_served(&dev, crate::node::client::USE_THE_API)?;
            let engine = Arc::new(open_array(kind, &dev, false)?);
            let tables = open_tables(&engine)?;
            tables.create_table(&table.table, &schema)?;
            engine.close()?;
            eprintln!("created table '{}' ({schema})", table.table);
            Ok(0)
        }
        TableCommand::List { dev, json } => {
            let engine = Arc::new(open_array(kind, &dev, true)?);
            let tables = open_tables(&engine)?;
            let list = tables.list_tables();
            let mut out = std::io::stdout().lock();
            if json {
                let v: Vec<Json> = list.iter().map(info_json).collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                let mut t = term::table(&["TABLE", "PRIMARY KEY", "ROWS"], &[2]);
                for i in &list {
                    t.add_row(vec![
                        i.name.to_string(),
                        i.schema.to_string(),
                        i.row_count.to_string(),
                    ]);
                }
                if !list.is_empty() {
                    for line in term::table_lines(&t, "") {
                        writeln!(out, "{line}")?;
                    }
                }
                // Tables written by plain put/load/import are not typed: named here, so that
                // an array holding only those does not look empty.
                let plain: Vec<String> = engine
                    .tables()
                    .into_iter()
                    .filter(|(n, _)| !n.starts_with('$') && list.iter().all(|i| &i.name != n))
                    .map(|(n, keys)| format!("{n} ({keys} keys)"))
                    .collect();
                if list.is_empty() {
                    writeln!(out, "no typed tables")?;
                }
                if !plain.is_empty() {
                    writeln!(out, "key/value tables (not typed): {}", plain.join(", "))?;
                }
            }
            Ok(0)
        }
        TableCommand::Describe { dev, table, json } => {
            let engine = Arc::new(open_array(kind, &dev, true)?);
            let tables = open_tables(&engine)?;
            let i = tables.describe_table(&table.table)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info_json(&i))?);
            } else {
                println!("table:       {}", i.name);
                for (n, c) in i.schema.key_columns().iter().enumerate() {
                    println!("key column {}: {} {}", n + 1, c.name, c.value_type);
                }
                println!("rows:        {}", i.row_count);
            }
            Ok(0)
        }
        TableCommand::Drop { dev, table, yes } => {
            crate::node::client::refuse_if_served(&dev, crate::node::client::USE_THE_API)?;
            let engine = Arc::new(open_array(kind, &dev, false)?);
            let tables = open_tables(&engine)?;
            let info = tables.describe_table(&table.table)?;
            if term::should_ask(yes) {
                term::confirm(&format!(
                    "Drop table '{}' and its {} row(s)?",
                    info.name, info.row_count
                ))?;
            }
            tables.drop_table(&table.table)?;
            engine.close()?;
            eprintln!("dropped table '{}' ({} rows)", info.name, info.row_count);
            Ok(0)
        }
    }
}

pub fn info_json(i: &TableInfo) -> Json {
    let pk: Vec<Json> = i
        .schema
        .key_columns()
        .iter()
        .map(|c| json!({"name": c.name, "type": c.value_type.name()}))
        .collect();
    json!({"table": i.name, "primary_key": pk, "rows": i.row_count})
}

// ---------------------------------------------------------------------------------------
// Values and rows as JSON.

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A typed value as JSON (see the module docs).
pub fn value_json(v: ValueRef<'_>) -> Json {
    match v {
        ValueRef::Int64(i) => json!(i),
        ValueRef::Double(d) => match serde_json::Number::from_f64(d) {
            Some(n) => Json::Number(n),
            None if d.is_nan() => json!({"$double": "NaN"}),
            None if d > 0.0 => json!({"$double": "inf"}),
            None => json!({"$double": "-inf"}),
        },
        ValueRef::Bool(b) => json!(b),
        ValueRef::String(s) => json!(s),
        ValueRef::Binary(b) => json!({"$bin": b64().encode(b)}),
    }
}

/// A JSON value as a typed value (see the module docs).
pub fn json_value(v: &Json, what: &str) -> Result<Value, String> {
    match v {
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Value::Int64(i))
            } else if n.is_u64() {
                Err(format!("{what}: integer {n} is out of the int64 range"))
            } else {
                n.as_f64()
                    .map(Value::Double)
                    .ok_or_else(|| format!("{what}: number {n} is not representable"))
            }
        }
        Json::Bool(b) => Ok(Value::Bool(*b)),
        Json::String(s) => Ok(Value::String(s.clone())),
        Json::Object(o) if o.len() == 1 && o.contains_key("$bin") => match &o["$bin"] {
            Json::String(s) => b64()
                .decode(s)
                .map(Value::Binary)
                .map_err(|e| format!("{what}: bad base64 in $bin: {e}")),
            _ => Err(format!("{what}: $bin must be a base64 string")),
        },
        Json::Object(o) if o.len() == 1 && o.contains_key("$double") => {
            match o["$double"].as_str() {
                Some("NaN") => Ok(Value::Double(f64::NAN)),
                Some("inf") => Ok(Value::Double(f64::INFINITY)),
                Some("-inf") => Ok(Value::Double(f64::NEG_INFINITY)),
                _ => Err(format!(
                    "{what}: $double must be \"NaN\", \"inf\" or \"-inf\""
                )),
            }
        }
        Json::Null => Err(format!(
            "{what}: null is not a value (leave the column out)"
        )),
        _ => Err(format!(
            "{what}: expected a number, bool, string, {{\"$bin\": base64}} or {{\"$double\": ...}}"
        )),
    }
}

/// A primary key (or, with `partial`, its first columns) from its JSON object.
pub fn json_key(
    schema: &Schema,
    v: &Json,
    what: &str,
    partial: bool,
) -> Result<Vec<Value>, String> {
    let Json::Object(o) = v else {
        return Err(format!(
            "{what} must be a JSON object of the primary key ({schema}), e.g. {}",
            example_key(schema)
        ));
    };
    let cols = schema.key_columns();
    if let Some(unknown) = o.keys().find(|k| schema.key_column_index(k).is_none()) {
        return Err(format!(
            "{what}: '{unknown}' is not a primary-key column ({schema})"
        ));
    }
    let n = o.len();
    if n == 0 || (!partial && n != cols.len()) {
        let missing: Vec<&str> = cols
            .iter()
            .filter(|c| !o.contains_key(&c.name))
            .map(|c| c.name.as_str())
            .collect();
        return Err(format!(
            "{what}: the primary key ({schema}) needs {}",
            missing.join(", ")
        ));
    }
    let mut key = Vec::with_capacity(n);
    for c in &cols[..n] {
        let Some(j) = o.get(&c.name) else {
            return Err(format!(
                "{what}: a partial key gives the first primary-key columns in order ({schema}); '{}' is missing",
                c.name
            ));
        };
        let v = json_value(j, &format!("{what}: column '{}'", c.name))?;
        if v.value_type() != c.value_type {
            return Err(format!(
                "{what}: column '{}' is {}, got {} {}",
                c.name,
                c.value_type,
                v.value_type(),
                j
            ));
        }
        key.push(v);
    }
    Ok(key)
}

fn example_key(schema: &Schema) -> String {
    let parts: Vec<String> = schema
        .key_columns()
        .iter()
        .map(|c| {
            let v = match c.value_type.name() {
                "int64" => "7".to_string(),
                "string" => "\"a\"".to_string(),
                _ => "{\"$bin\": \"AAE=\"}".to_string(),
            };
            format!("\"{}\": {v}", c.name)
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

pub fn json_columns(v: &Json, what: &str) -> Result<Columns, String> {
    let Json::Object(o) = v else {
        return Err(format!("{what} must be a JSON object of columns"));
    };
    o.iter()
        .map(|(k, v)| Ok((k.clone(), json_value(v, &format!("{what}: column '{k}'"))?)))
        .collect()
}

/// One row line: `{"pk": {...}, "cols": {...}}`, key columns in schema order.
pub fn row_line(schema: &Schema, row: &Row) -> String {
    let columns = row
        .columns
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_value_ref()));
    row_line_of(schema, &row.key, columns)
}

/// [`row_line`] of a key and columns however they are held.
pub fn row_line_of<'a>(
    schema: &Schema,
    key: &[Value],
    columns: impl Iterator<Item = (&'a str, ValueRef<'a>)>,
) -> String {
    let mut pk = String::from("{");
    for (i, (c, v)) in schema.key_columns().iter().zip(key).enumerate() {
        if i > 0 {
            pk.push(',');
        }
        pk.push_str(&Json::String(c.name.clone()).to_string());
        pk.push(':');
        pk.push_str(&value_json(v.as_value_ref()).to_string());
    }
    pk.push('}');
    let cols: Map<String, Json> = columns
        .map(|(k, v)| (k.to_string(), value_json(v)))
        .collect();
    format!("{{\"pk\":{pk},\"cols\":{}}}", Json::Object(cols))
}

pub fn parse_json(text: &str, what: &str) -> Result<Json> {
    serde_json::from_str(text)
        .map_err(|e| crate::coded!(crate::exit::DATA, "{what}: invalid JSON: {e}"))
}

/// Parses one row line of `import` (`{"pk": {...}, "cols": {...}}`).
pub fn parse_row(schema: &Schema, line: &str) -> Result<(Vec<Value>, Columns), String> {
    let v: Json = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Json::Object(o) = &v else {
        return Err("expected an object {\"pk\": {...}, \"cols\": {...}}".into());
    };
    if let Some(k) = o.keys().find(|k| *k != "pk" && *k != "cols") {
        return Err(format!(
            "unexpected field '{k}' (a row has \"pk\" and \"cols\")"
        ));
    }
    let pk = o
        .get("pk")
        .ok_or_else(|| "missing \"pk\" (the primary key object)".to_string())?;
    let key = json_key(schema, pk, "pk", false)?;
    let cols = match o.get("cols") {
        None => Columns::new(),
        Some(c) => json_columns(c, "cols")?,
    };
    Ok((key, cols))
}

// ---------------------------------------------------------------------------------------
// The row commands on typed tables.

pub fn put(tables: &Tables, table: &str, schema: &Schema, key: &str, value: &str) -> Result<u64> {
    let key = json_key(schema, &parse_json(key, "--key")?, "--key", false)
        .map_err(|e| crate::coded!(crate::exit::DATA, "{e}"))?;
    let cols = json_columns(
        &parse_json(value, "--value")?,
        "--value (on a typed table, the JSON object of the columns)",
    )
    .map_err(|e| crate::coded!(crate::exit::DATA, "{e}"))?;
    let lsn = tables.put_row(table, &key, &cols)?;
    tables.sync()?;
    Ok(lsn)
}

pub fn get(tables: &Tables, table: &str, schema: &Schema, key: &str) -> Result<i32> {
    let key = json_key(schema, &parse_json(key, "--key")?, "--key", false)
        .map_err(|e| crate::coded!(crate::exit::DATA, "{e}"))?;
    match tables.get_row(table, &key)? {
        Some(row) => {
            println!("{}", row_line(schema, &row));
            Ok(0)
        }
        None => crate::fail!(
            crate::exit::NO,
            "row {} not found in table '{table}'",
            key_json_text(schema, &key)
        ),
    }
}

pub fn delete(tables: &Tables, table: &str, schema: &Schema, key: &str) -> Result<()> {
    let key = json_key(schema, &parse_json(key, "--key")?, "--key", false)
        .map_err(|e| crate::coded!(crate::exit::DATA, "{e}"))?;
    match tables.delete_row_if(table, &key, &Condition::RowExists) {
        Ok(_) => {}
        Err(EngineError::ConditionFailed { .. }) => crate::fail!(
            crate::exit::NO,
            "row {} not found in table '{table}'",
            key_json_text(schema, &key)
        ),
        Err(e) => return Err(e.into()),
    }
    tables.sync()?;
    Ok(())
}

fn key_json_text(schema: &Schema, key: &[Value]) -> String {
    let line = row_line(
        schema,
        &Row {
            key: key.to_vec(),
            columns: Columns::new(),
        },
    );
    // {"pk":{...},"cols":{}} -> {...}
    line.strip_prefix("{\"pk\":")
        .and_then(|s| s.strip_suffix(",\"cols\":{}}"))
        .unwrap_or(&line)
        .to_string()
}

/// Options of `scan` on a typed table.
pub struct ScanArgs<'a> {
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub prefix: Option<&'a str>,
    pub reverse: bool,
    pub limit: u64,
}

/// Rows in key order as JSON lines; `--from` inclusive, `--to` exclusive (partial keys
/// allowed). Streams (`Tables::range_iter`: pages of the index, the next pages' reads in
/// flight, rows read in place), so a large table is never held in memory at once. `progress`
/// is told the rows written so far now and then.
pub fn scan(
    tables: &Tables,
    table: &str,
    schema: &Schema,
    a: &ScanArgs<'_>,
    out: &mut dyn Write,
    progress: Option<&crate::term::RowProgress>,
) -> Result<u64> {
    let bound = |text: Option<&str>, what: &str| -> Result<Option<Vec<Value>>> {
        text.map(|t| {
            json_key(schema, &parse_json(t, what)?, what, true)
                .map_err(|e| crate::coded!(crate::exit::DATA, "{e}"))
        })
        .transpose()
    };
    let mut q = RangeQuery::new().reverse(a.reverse);
    if let Some(f) = bound(a.from, "--from")? {
        q = q.start(Bound::Included(f));
    }
    if let Some(t) = bound(a.to, "--to")? {
        q = q.end(Bound::Excluded(t));
    }
    if let Some(p) = bound(a.prefix, "--prefix")? {
        q = q.prefix(p);
    }
    let mut printed = 0u64;
    let mut last: Option<Vec<Value>> = None;
    for row in tables.range_iter(table, &q)? {
        let row = row?;
        if printed == a.limit {
            // Cut by --limit: say how to go on (forward from this row, backward before the
            // last one printed: --to is exclusive).
            let (flag, key) = match (a.reverse, last) {
                (false, _) => ("--from", row.key),
                (true, Some(l)) => ("--to", l),
                (true, None) => break,
            };
            eprintln!(
                "more rows follow; continue with {flag} '{}'",
                key_json_text(schema, &key)
            );
            break;
        }
        writeln!(out, "{}", row_line_of(schema, &row.key, row.columns.iter()))?;
        printed += 1;
        if let Some(pb) = progress.filter(|_| printed.is_multiple_of(4096)) {
            pb.set(printed);
        }
        last = Some(row.key);
    }
    Ok(printed)
}

/// Imports row lines: every line is parsed and checked first (a bad line writes nothing),
/// then the rows are written in batches that each fit a stripe, and synced.
pub fn import(tables: &Tables, table: &str, schema: &Schema, file: &Path) -> Result<usize> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut rows: Vec<(Vec<Value>, Columns, usize)> = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let at = || format!("{}: line {}", file.display(), i + 1);
        let line = line.with_context(at)?;
        if line.trim().is_empty() {
            continue;
        }
        let (key, cols) = parse_row(schema, &line)
            .map_err(|e| crate::coded!(crate::exit::DATA, "{}: {e}", at()))?;
        let bytes = tables
            .validate(TableBatch::new().put_row(table, &key, &cols))
            .map_err(|e| crate::coded!(crate::exit::DATA, "{}: {e}", at()))?;
        rows.push((key, cols, bytes));
    }
    let limit = tables.engine().max_batch_bytes();
    let mut batch = TableBatch::new();
    let (mut bytes, mut in_batch, mut applied) = (0, 0, 0);
    let total = rows.len();
    let stopped = |applied, e: EngineError| {
        import_stopped(tables.engine(), applied, total, file, table, e.into())
    };
    crate::interrupt::watch()?;
    for (key, cols, b) in &rows {
        if !batch.is_empty() && bytes + b > limit {
            tables.write(&batch).map_err(|e| stopped(applied, e))?;
            applied += in_batch;
            batch = TableBatch::new();
            (bytes, in_batch) = (0, 0);
            if crate::interrupt::requested() {
                let e = crate::interrupt::stopped(
                    "the array is closed cleanly; an import again writes the same rows",
                );
                return Err(import_stopped(
                    tables.engine(),
                    applied,
                    total,
                    file,
                    table,
                    e,
                ));
            }
        }
        batch.put_row(table, key, cols);
        bytes += b;
        in_batch += 1;
    }
    tables.write(&batch).map_err(|e| stopped(applied, e))?;
    tables.sync().map_err(|e| stopped(total, e))?;
    Ok(total)
}

/// Makes what a bulk command wrote before it stopped durable if it can: "durable", or why
/// that is not known.
pub fn sync_after_stop(engine: &Engine) -> String {
    match engine.sync() {
        Ok(_) => "durable".to_string(),
        Err(s) => format!("not known to be durable: {s}"),
    }
}

/// The error of an import that failed part-way, saying what it applied: an import is not
/// atomic (it writes stripe-sized batches), so the rows before the failure stay in the
/// table; they are made durable here (docs/operations.md, `import`).
pub fn import_stopped(
    engine: &Engine,
    applied: usize,
    total: usize,
    file: &Path,
    table: &str,
    e: anyhow::Error,
) -> anyhow::Error {
    let durable = sync_after_stop(engine);
    e.context(format!(
        "import stopped after {applied} of {total} rows: the first {applied} rows of {} are in table '{table}' ({durable}), the other {} were not written",
        file.display(),
        total - applied
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_json() {
        for v in [
            Value::Int64(-7),
            Value::Int64(i64::MIN),
            Value::Double(1.5),
            Value::Double(1.0),
            Value::Double(f64::NAN),
            Value::Double(f64::NEG_INFINITY),
            Value::Bool(true),
            Value::from("a\0b"),
            Value::Binary(vec![0, 255]),
        ] {
            let j = value_json(v.as_value_ref());
            let text = j.to_string();
            let back = json_value(&serde_json::from_str(&text).unwrap(), "v").unwrap();
            assert_eq!(back, v, "{text}");
        }
        assert!(json_value(&json!(null), "v").is_err());
        assert!(json_value(&json!([1]), "v").is_err());
        assert!(json_value(&json!(u64::MAX), "v").is_err());
    }

    #[test]
    fn row_lines_parse_and_print() {
        let s = Schema::parse("id:int64,name:string").unwrap();
        let line = r#"{"pk": {"name": "a", "id": 7}, "cols": {"score": 1.5, "ok": true, "tag": "x", "n": 3}}"#;
        let (key, cols) = parse_row(&s, line).unwrap();
        assert_eq!(key, vec![Value::Int64(7), Value::from("a")]);
        assert_eq!(cols.get("n"), Some(&Value::Int64(3)));
        assert_eq!(cols.get("score"), Some(&Value::Double(1.5)));
        let out = row_line(&s, &Row { key, columns: cols });
        assert_eq!(
            out,
            r#"{"pk":{"id":7,"name":"a"},"cols":{"n":3,"ok":true,"score":1.5,"tag":"x"}}"#
        );
        for bad in [
            r#"{"pk": {"id": 7}}"#,
            r#"{"pk": {"id": "7", "name": "a"}}"#,
            r#"{"pk": {"id": 7, "name": "a", "x": 1}}"#,
            r#"{"pk": {"id": 7.5, "name": "a"}}"#,
            r#"{"pk": {"id": 7, "name": "a"}, "cols": {"x": null}}"#,
            r#"{"pk": {"id": 7, "name": "a"}, "extra": 1}"#,
            r#"[1]"#,
        ] {
            assert!(parse_row(&s, bad).is_err(), "{bad}");
        }
        // Partial keys give leading columns only.
        assert!(json_key(&s, &json!({"id": 1}), "k", true).is_ok());
        assert!(json_key(&s, &json!({"name": "a"}), "k", true).is_err());
    }
}
