//! `ectable put`, `get`, `delete` and `scan`: one key (or a range of keys) of a key/value
//! table, or of a typed table with JSON keys and rows (`crate::cmd::table`).

use crate::cmd::common::{open_array, with_reader, DevicesArg, TableArg};
use crate::cmd::table as typed;
use crate::node::client::{segment, NodeClient};
use anyhow::Result;
use base64::Engine as _;
use clap::Args;
use ectable_devices::BackendKind;
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::ops::Bound;
use std::sync::Arc;

#[derive(Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub dev: DevicesArg,
    #[command(flatten)]
    pub table: TableArg,
    /// The key (its UTF-8 bytes; typed tables: the primary key as a JSON object).
    #[arg(long)]
    pub key: String,
    /// The value (its UTF-8 bytes; typed tables: the columns as a JSON object).
    #[arg(long)]
    pub value: String,
}

#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub dev: DevicesArg,
    #[command(flatten)]
    pub table: TableArg,
    /// The key (its UTF-8 bytes; typed tables: the primary key as a JSON object).
    #[arg(long)]
    pub key: String,
    /// Print {"key", "value"} as JSON (bytes that are not UTF-8 as {"$bin": base64}).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub dev: DevicesArg,
    #[command(flatten)]
    pub table: TableArg,
    /// The key (its UTF-8 bytes; typed tables: the primary key as a JSON object).
    #[arg(long)]
    pub key: String,
}

#[derive(Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub dev: DevicesArg,
    #[command(flatten)]
    pub table: TableArg,
    /// First key (inclusive).
    #[arg(long)]
    pub from: Option<String>,
    /// Last key (exclusive).
    #[arg(long)]
    pub to: Option<String>,
    /// Typed tables: only keys starting with these primary-key columns (a JSON object of
    /// the first columns).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Typed tables: descending key order.
    #[arg(long)]
    pub reverse: bool,
    /// Print at most this many rows (default: all).
    #[arg(long, default_value_t = u64::MAX, hide_default_value = true)]
    pub limit: u64,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// `ectable put`.
pub fn put(kind: BackendKind, a: &PutArgs) -> Result<i32> {
    let table = &a.table.table;
    typed::refuse_system_write(table)?;
    if let Some(node) = crate::node::client::find(&a.dev)? {
        let lsn = put_via_node(&node, a)?;
        eprintln!("ok (lsn {lsn})");
        return Ok(0);
    }
    let engine = Arc::new(open_array(kind, &a.dev, false)?);
    let tables = typed::open_tables(&engine)?;
    let lsn = match typed::typed(&tables, table) {
        Some(schema) => typed::put(&tables, table, &schema, &a.key, &a.value)?,
        None => engine.put_sync(table, a.key.as_bytes(), a.value.as_bytes())?,
    };
    engine.close()?;
    eprintln!("ok (lsn {lsn})");
    Ok(0)
}

/// Whether `table` is a typed table of the node's array.
fn node_typed(node: &NodeClient, table: &str) -> Result<bool> {
    match node.get(&format!("/v1/tables/{}", segment(table))) {
        Ok(_) => Ok(true),
        Err(e)
            if crate::exit::code_of(&e) == crate::exit::DATA
                || e.to_string().contains("no such table") =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

fn put_via_node(node: &NodeClient, a: &PutArgs) -> Result<u64> {
    let table = &a.table.table;
    let r = if node_typed(node, table)? {
        let pk = typed::parse_json(&a.key, "--key")?;
        let cols = typed::parse_json(&a.value, "--value")?;
        node.post_put_row(table, &json!({"pk": pk, "cols": cols}))?
    } else {
        node.put_bytes(
            &format!("/v1/kv/{}/{}", segment(table), segment(&a.key)),
            a.value.as_bytes(),
        )?
    };
    Ok(r["lsn"].as_u64().unwrap_or(0))
}

/// `ectable get`.
pub fn get(kind: BackendKind, a: &GetArgs) -> Result<i32> {
    let (table, key) = (&a.table.table, &a.key);
    with_reader(kind, &a.dev, |engine| {
        let tables = typed::open_tables(engine)?;
        if let Some(schema) = typed::typed(&tables, table) {
            return typed::get(&tables, table, &schema, key);
        }
        match engine.get(table, key.as_bytes())? {
            Some(v) => {
                let mut out = std::io::stdout().lock();
                if a.json {
                    writeln!(
                        out,
                        "{}",
                        json!({"key": bytes_json(key.as_bytes()), "value": bytes_json(&v)})
                    )?;
                } else {
                    out.write_all(&v)?;
                    if std::io::stdout().is_terminal() {
                        writeln!(out)?;
                    }
                }
                Ok(0)
            }
            None => crate::fail!(crate::exit::NO, "{}", not_found(engine, table, key)),
        }
    })
}

/// Why a key/value `get` found nothing: the key is not in the table, or the array has no
/// such table at all (a mistyped name), then with the tables it has.
pub(crate) fn not_found(engine: &ectable_engine::Engine, table: &str, key: &str) -> String {
    let tables = engine.tables();
    if tables.iter().any(|(t, _)| t == table) {
        return format!("key '{key}' not found in table '{table}'");
    }
    let names: Vec<&str> = tables
        .iter()
        .map(|(t, _)| t.as_str())
        .filter(|t| !t.starts_with('$'))
        .collect();
    let has = if names.is_empty() {
        "no tables".to_string()
    } else {
        format!("tables {}", names.join(", "))
    };
    format!("key '{key}' not found: the array has no table '{table}' (it has {has})")
}

/// `ectable delete`.
pub fn delete(kind: BackendKind, a: &DeleteArgs) -> Result<i32> {
    let (table, key) = (&a.table.table, &a.key);
    typed::refuse_system_write(table)?;
    if let Some(node) = crate::node::client::find(&a.dev)? {
        if node_typed(&node, table)? {
            let pk = typed::parse_json(key, "--key")?;
            let r = node.post(
                &format!("/v1/tables/{}/rows/delete", segment(table)),
                &json!({"pk": pk, "if": "exists"}),
            );
            if let Err(e) = &r {
                if crate::exit::code_of(e) == crate::exit::NO {
                    crate::fail!(crate::exit::NO, "row {pk} not found in table '{table}'");
                }
            }
            r?;
            return Ok(0);
        }
        let path = format!("/v1/kv/{}/{}", segment(table), segment(key));
        if let Err(e) = node.get_bytes(&path) {
            if crate::exit::code_of(&e) == crate::exit::NO {
                crate::fail!(
                    crate::exit::NO,
                    "key '{}' not found in table '{}'",
                    key,
                    table
                );
            }
            return Err(e);
        }
        node.delete(&path)?;
        return Ok(0);
    }
    let engine = Arc::new(open_array(kind, &a.dev, false)?);
    let tables = typed::open_tables(&engine)?;
    if let Some(schema) = typed::typed(&tables, table) {
        typed::delete(&tables, table, &schema, key)?;
        engine.close()?;
        return Ok(0);
    }
    if engine.get(table, key.as_bytes())?.is_none() {
        crate::fail!(
            crate::exit::NO,
            "key '{}' not found in table '{}'",
            key,
            table
        );
    }
    engine.delete(table, key.as_bytes())?;
    engine.sync()?;
    engine.close()?;
    Ok(0)
}

/// `ectable scan`.
pub fn scan(kind: BackendKind, a: &ScanArgs) -> Result<i32> {
    let table = &a.table.table;
    let engine = Arc::new(open_array(kind, &a.dev, true)?);
    let _findings = crate::cmd::common::RecordFindings(engine.clone());
    let tables = typed::open_tables(&engine)?;
    if let Some(schema) = typed::typed(&tables, table) {
        let args = typed::ScanArgs {
            from: a.from.as_deref(),
            to: a.to.as_deref(),
            prefix: a.prefix.as_deref(),
            reverse: a.reverse,
            limit: a.limit,
        };
        let mut out = std::io::stdout().lock();
        typed::scan(&tables, table, &schema, &args, &mut out, None)?;
        out.flush()?;
        return Ok(0);
    }
    if a.prefix.is_some() || a.reverse {
        crate::fail!(
            crate::exit::USAGE,
            "--prefix and --reverse work on typed tables ('{table}' is a key/value table)"
        );
    }
    let lo = a
        .from
        .as_deref()
        .map_or(Bound::Unbounded, |f| Bound::Included(f.as_bytes()));
    let hi =
        a.to.as_deref()
            .map_or(Bound::Unbounded, |t| Bound::Excluded(t.as_bytes()));
    let rows = engine.scan(
        table,
        lo,
        hi,
        usize::try_from(a.limit).unwrap_or(usize::MAX),
    )?;
    let mut out = std::io::stdout().lock();
    for (k, v) in rows {
        if a.json {
            writeln!(
                out,
                "{}",
                json!({"key": bytes_json(&k), "value": bytes_json(&v)})
            )?;
        } else {
            writeln!(
                out,
                "{}\t{}",
                String::from_utf8_lossy(&k),
                String::from_utf8_lossy(&v)
            )?;
        }
    }
    Ok(0)
}

/// Bytes as JSON: a string when they are UTF-8, else {"$bin": base64}.
pub fn bytes_json(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({"$bin": base64::engine::general_purpose::STANDARD.encode(b)}),
    }
}

/// The bytes of a JSON string or {"$bin": base64}.
pub fn json_bytes(v: &Value, what: &str) -> std::result::Result<Vec<u8>, String> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Object(o) if o.len() == 1 && o.contains_key("$bin") => match &o["$bin"] {
            Value::String(b) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| format!("{what}: bad base64: {e}")),
            _ => Err(format!("{what}: $bin must be a base64 string")),
        },
        _ => Err(format!("{what} must be a string or {{\"$bin\": base64}}")),
    }
}
