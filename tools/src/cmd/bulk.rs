//! `ectable load` and `verify` (deterministic rows, the bulk path and its check), `import`
//! and `export` (JSON lines; typed tables through `crate::cmd::table`).

use crate::cmd::common::{open_array, with_reader, DevicesArg, RowsArg, TableArg};
use crate::cmd::kv::{bytes_json, json_bytes};
use crate::cmd::table as typed;
use crate::{row_key, row_value, term};
use anyhow::{Context, Result};
use clap::Args;
use ectable_devices::BackendKind;
use ectable_engine::Engine;
use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub dev: DevicesArg,
    #[command(flatten)]
    pub rows: RowsArg,
}

#[derive(Args)]
pub struct FileArgs {
    #[command(flatten)]
    pub dev: DevicesArg,
    #[command(flatten)]
    pub table: TableArg,
    /// The JSON-lines file: read by import, written by export (export: `-` for stdout).
    pub file: PathBuf,
}

/// `ectable load`.
pub fn load_cmd(kind: BackendKind, a: &LoadArgs) -> Result<i32> {
    let table = &a.rows.table.table;
    typed::refuse_system_write(table)?;
    crate::node::client::refuse_if_served(&a.dev, crate::node::client::USE_THE_API)?;
    let engine = Arc::new(open_array(kind, &a.dev, false)?);
    refuse_typed(&engine, table, "load writes key/value rows; use import")?;
    load(&engine, &a.rows, "load")?;
    engine.close()?;
    Ok(0)
}

/// `load` and `verify` work on key/value tables only: a typed table is refused by name.
fn refuse_typed(engine: &Arc<Engine>, table: &str, why: &str) -> Result<()> {
    if typed::typed(&typed::open_tables(engine)?, table).is_some() {
        crate::fail!(crate::exit::DATA, "'{table}' is a typed table: {why}");
    }
    Ok(())
}

/// `ectable verify`.
pub fn verify_cmd(kind: BackendKind, a: &LoadArgs) -> Result<i32> {
    with_reader(kind, &a.dev, |engine| {
        refuse_typed(
            engine,
            &a.rows.table.table,
            "verify compares the key/value rows load writes; use export",
        )?;
        verify(engine, &a.rows, "verify")?;
        Ok(0)
    })
}

fn value_size(rows: &RowsArg) -> Result<usize> {
    usize::try_from(rows.value_size)
        .map_err(|_| crate::coded!(crate::exit::USAGE, "value size too large"))
}

/// A load that failed at row `i` (out of space, a write refused): what it wrote before that
/// row is made durable if it can be, and the error says so, and how to go on.
fn load_stopped(
    engine: &Engine,
    rows: &RowsArg,
    label: &str,
    i: u64,
    e: anyhow::Error,
) -> anyhow::Error {
    let durable = typed::sync_after_stop(engine);
    let table = &rows.table.table;
    let written = match i {
        0 => format!("no row was written to table '{table}'"),
        _ => format!(
            "rows 0 to {} are in table '{table}' ({durable}), the other {} were not written",
            i - 1,
            rows.rows - i
        ),
    };
    e.context(format!(
        "{label} stopped after {i} of {} rows: {written}",
        rows.rows
    ))
}

/// The bulk path: puts without waiting, the writer batches and pipelines stripes; one sync
/// at the end makes everything durable, in stripes: a load short of half a stripe would
/// otherwise be acknowledged by the sync journal and its stripe written only at close,
/// after the device bytes are counted.
pub fn load(engine: &Engine, rows: &RowsArg, label: &str) -> Result<()> {
    let size = value_size(rows)?;
    let largest = engine.layout().largest_value(rows.table.table.len(), 15);
    if size > largest {
        crate::fail!(crate::exit::USAGE, "--value-size {size} exceeds the largest value this array holds in one stripe ({largest} bytes)");
    }
    crate::interrupt::watch()?;
    let pb = term::RowProgress::new(rows.rows, label);
    let start = Instant::now();
    for i in 0..rows.rows {
        if i % 1024 == 0 && crate::interrupt::requested() {
            let e = crate::interrupt::stopped(
                "the array is closed cleanly; a load again writes the same rows",
            );
            return Err(load_stopped(engine, rows, label, i, e));
        }
        if let Err(e) = engine.put(
            &rows.table.table,
            &row_key(i),
            &row_value(i, rows.seed, size),
        ) {
            return Err(load_stopped(engine, rows, label, i, e.into()));
        }
        if i % 1024 == 0 {
            pb.set(i);
        }
    }
    engine.sync_into_stripes()?;
    pb.finish();
    let elapsed = start.elapsed();
    let bytes = rows.rows * rows.value_size;
    // Device bytes this session wrote (chunks: parity, chunk headers and checkpoints
    // included) per byte of key and value loaded.
    let user = rows.rows * (row_key(0).len() as u64 + rows.value_size);
    let device = engine.status().chunk_bytes_written as f64 / user.max(1) as f64;
    eprintln!(
        "{label}: {} rows, {} in {} ({}, {:.0} rows/s), durable; {device:.3} device bytes per byte of key and value",
        rows.rows,
        term::bytes(bytes),
        term::duration(elapsed),
        term::rate(bytes, elapsed),
        rows.rows as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}

/// Reads every deterministic row back and compares it exactly; fails naming the first bad
/// row.
pub fn verify(engine: &Engine, rows: &RowsArg, label: &str) -> Result<()> {
    let size = value_size(rows)?;
    let pb = term::RowProgress::new(rows.rows, label);
    let start = Instant::now();
    let batch = 256u64;
    let mut i = 0;
    while i < rows.rows {
        let n = batch.min(rows.rows - i);
        let keys: Vec<Vec<u8>> = (i..i + n).map(row_key).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        let values = engine
            .get_many(&rows.table.table, &refs)
            .with_context(|| format!("reading rows {i}..{}", i + n))?;
        for (j, v) in values.into_iter().enumerate() {
            let row = i + j as u64;
            let want = row_value(row, rows.seed, size);
            match v {
                None => crate::fail!(
                    crate::exit::NO,
                    "row {row} (key {}) is missing",
                    String::from_utf8_lossy(&keys[j])
                ),
                Some(v) if v != want => {
                    let at = v
                        .iter()
                        .zip(&want)
                        .position(|(a, b)| a != b)
                        .unwrap_or(v.len().min(want.len()));
                    crate::fail!(crate::exit::NO,
                        "row {row} (key {}) differs: {} bytes read, {} expected, first difference at byte {at}",
                        String::from_utf8_lossy(&keys[j]),
                        v.len(),
                        want.len()
                    )
                }
                Some(_) => {}
            }
        }
        i += n;
        pb.set(i);
    }
    pb.finish();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{label}: all {} rows match ({:.0} rows/s, {} reads rebuilt from parity)",
        rows.rows,
        rows.rows as f64 / secs.max(1e-9),
        engine.status().degraded_reads
    );
    Ok(())
}

/// `ectable import`: all or nothing on bad input; not atomic on a write failure part-way.
pub fn import(kind: BackendKind, a: &FileArgs) -> Result<i32> {
    let (table, file) = (&a.table.table, &a.file);
    typed::refuse_system_write(table)?;
    crate::node::client::refuse_if_served(&a.dev, crate::node::client::USE_THE_API)?;
    let engine = Arc::new(open_array(kind, &a.dev, false)?);
    let tables = typed::open_tables(&engine)?;
    if let Some(schema) = typed::typed(&tables, table) {
        let n = typed::import(&tables, table, &schema, file)?;
        engine.close()?;
        eprintln!("imported {n} rows into '{table}'");
        return Ok(0);
    }
    let rows = read_jsonl(file)?;
    // Check every row against the engine's limits before writing any.
    let layout = engine.layout();
    for (i, (k, v)) in rows.iter().enumerate() {
        if k.is_empty() || k.len() > ectable_engine::MAX_KEY_BYTES {
            crate::fail!(
                crate::exit::DATA,
                "{}: line {}: key must be 1..={} bytes",
                file.display(),
                i + 1,
                ectable_engine::MAX_KEY_BYTES
            );
        }
        if v.len() > layout.largest_value(table.len(), k.len()) {
            crate::fail!(
                crate::exit::DATA,
                "{}: line {}: value of {} bytes exceeds the limit of this array",
                file.display(),
                i + 1,
                v.len()
            );
        }
    }
    // Not atomic: on a failure part-way the rows before it stay, and the error says
    // how many (docs/operations.md).
    crate::interrupt::watch()?;
    let pb = term::RowProgress::new(rows.len() as u64, "import");
    for (applied, (k, v)) in rows.iter().enumerate() {
        if applied % 1024 == 0 {
            pb.set(applied as u64);
            if crate::interrupt::requested() {
                let e = crate::interrupt::stopped(
                    "the array is closed cleanly; an import again writes the same rows",
                );
                let e = typed::import_stopped(&engine, applied, rows.len(), file, table, e);
                let _ = engine.close();
                return Err(e);
            }
        }
        if let Err(e) = engine.put(table, k, v) {
            let e = typed::import_stopped(&engine, applied, rows.len(), file, table, e.into());
            let _ = engine.close();
            return Err(e);
        }
    }
    if let Err(e) = engine.sync() {
        let n = rows.len();
        return Err(typed::import_stopped(&engine, n, n, file, table, e.into()));
    }
    pb.finish();
    engine.close()?;
    eprintln!("imported {} rows into '{table}'", rows.len());
    Ok(0)
}

/// `ectable export`: everything is read before anything is written, so that a read that has
/// to start over (the array changed under it) never leaves half an export behind.
pub fn export(kind: BackendKind, a: &FileArgs) -> Result<i32> {
    let (table, file) = (&a.table.table, &a.file);
    // Standard output, and a FILE that is not a regular file (a pipe, /dev/null), are
    // written in place; a regular file through FILE.partial.
    let to_stdout = file.as_os_str() == "-";
    let in_place = to_stdout || std::fs::metadata(file).is_ok_and(|m| !m.is_file());
    // Rows go out as they are read (a table larger than memory exports in bounded memory).
    // When another process changes the array under the reader, the read starts over
    // (with_reader): a file is written again from its start; rows already on standard
    // output (or in a pipe) cannot be taken back, so then the export stops with an error
    // instead.
    //
    // A file is written as FILE.partial and renamed over FILE only when every row is in it, so
    // a failed export leaves FILE as it was.
    let partial = {
        let mut name = file.clone().into_os_string();
        name.push(".partial");
        PathBuf::from(name)
    };
    let mut wrote_in_place = false;
    let exported = with_reader(kind, &a.dev, |engine| {
        if wrote_in_place {
            return Err(crate::coded!(
                crate::exit::TEMPFAIL,
                "the array changed while it was being exported to {} (another process is \
                 writing to it); the rows written so far are not one view of the table: run \
                 the export again",
                if to_stdout {
                    "standard output".to_string()
                } else {
                    file.display().to_string()
                }
            ));
        }
        let mut out: Box<dyn Write> = if to_stdout {
            wrote_in_place = true;
            Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
        } else if in_place {
            wrote_in_place = true;
            Box::new(std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(file)
                    .with_context(|| format!("opening {}", file.display()))?,
            ))
        } else {
            Box::new(std::io::BufWriter::new(
                std::fs::File::create(&partial)
                    .with_context(|| format!("creating {}", partial.display()))?,
            ))
        };
        let tables = typed::open_tables(engine)?;
        // The index knows how many rows the table holds now: progress in percent.
        let rows_now = engine
            .tables()
            .into_iter()
            .find_map(|(name, n)| (name == *table).then_some(n as u64))
            .unwrap_or(0);
        let pb = term::RowProgress::new(rows_now, "export");
        let n = if let Some(schema) = typed::typed(&tables, table) {
            let all = typed::ScanArgs {
                from: None,
                to: None,
                prefix: None,
                reverse: false,
                limit: u64::MAX,
            };
            typed::scan(&tables, table, &schema, &all, &mut out, Some(&pb))?
        } else {
            let mut n = 0u64;
            for row in engine.scan_iter(table, Bound::Unbounded, Bound::Unbounded)? {
                let (k, v) = row?;
                writeln!(
                    out,
                    "{}",
                    json!({"key": bytes_json(&k), "value": bytes_json(&v)})
                )?;
                n += 1;
                if n.is_multiple_of(4096) {
                    pb.set(n);
                }
            }
            n
        };
        pb.set(n);
        pb.finish();
        out.flush()?;
        Ok(n)
    });
    let n = match exported {
        Ok(n) if !in_place => match std::fs::rename(&partial, file) {
            Ok(()) => n,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e).with_context(|| {
                    format!("renaming {} to {}", partial.display(), file.display())
                });
            }
        },
        Ok(n) => n,
        Err(e) => {
            if !in_place {
                let _ = std::fs::remove_file(&partial);
            }
            // A failed write of the output (its file system full, a closed pipe) names
            // where it was going; the engine's errors say what they are themselves.
            if e.downcast_ref::<std::io::Error>().is_none() {
                return Err(e);
            }
            return Err(e.context(if to_stdout {
                "writing the export to standard output".to_string()
            } else if in_place {
                format!("writing the export to {}", file.display())
            } else {
                format!(
                    "writing the export to {} (the file is left as it was)",
                    file.display()
                )
            }));
        }
    };
    eprintln!("exported {n} rows from '{table}'");
    Ok(0)
}

/// Parses one line of `import` on a key/value table: `{"key": K, "value": V}`, each a
/// string or `{"$bin": base64}`.
pub fn parse_kv_line(line: &str) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let (Some(k), Some(val)) = (v.get("key"), v.get("value")) else {
        return Err("expected an object with \"key\" and \"value\"".into());
    };
    Ok((json_bytes(k, "key")?, json_bytes(val, "value")?))
}

/// Reads JSON lines {"key": K, "value": V}; every line is checked, naming the first bad one.
fn read_jsonl(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}: reading line {}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let (k, val) = parse_kv_line(&line).map_err(|e| {
            crate::coded!(crate::exit::DATA, "{}: line {}: {e}", path.display(), i + 1)
        })?;
        rows.push((k, val));
    }
    Ok(rows)
}
