//! Typed tables on top of the key/value [`Engine`]: schemas with a typed primary key,
//! rows of dynamic typed columns, conditional writes, atomic multi-table batches and typed
//! range reads.
//!
//! The layer stores everything as ordinary key/value records, so the engine's guarantees
//! (checksums, parity, degraded reads, rebuild, crash recovery) cover it unchanged:
//! - the schema of table `T` is the record `("$schema", T)` (bytes in `table/schema.rs`);
//! - row `k` of `T` is the record `(T, encode(k))`, with the order-preserving key encoding
//!   of `table/key.rs` and the row encoding of `table/row.rs`.
//!
//! docs/tables.md explains the choices; docs/format.md ("Typed tables") has the bytes.
//!
//! Invariants:
//! - Every [`TableBatch`] (and every single-row write) becomes one engine [`WriteBatch`]:
//!   after a crash it is wholly present or wholly absent.
//! - Writes through one [`Tables`] are serialized per row (striped locks taken in a fixed
//!   order), so a condition and the write it guards cannot interleave with another write of
//!   the same row through the layer. [`Tables::open`] returns the same shared state for the
//!   same engine, so every handle of one engine is coordinated.
//! - Bad input (unknown table, wrong key arity or type, bad names, oversized rows, failed
//!   conditions) is a typed [`Error`] and nothing of the batch is written.
//! - Schema changes (create, drop) are durable when they return. A drop first marks the
//!   schema record "dropping" (the table disappears for readers and writers), then deletes
//!   the rows, then the schema record; a drop interrupted by a crash is finished by the next
//!   writable [`Tables::open`] (or by `create_table`/`drop_table` of the same name).
//!
//! The layer does not stop plain key/value writes ([`Engine::put`]) to a typed table's
//! records; such a write may make a row undecodable ([`Error::CorruptTableData`]). The CLI
//! refuses them.
//!
//! ```
//! use ectable_devices::{open_backend, BlockDevice, BackendKind, MemDevice};
//! use ectable_engine::table::{Columns, Condition, RangeQuery, Schema, TableBatch, Tables, Value};
//! use ectable_engine::{format, Engine, EngineOptions, Error, FormatOptions};
//! use std::sync::Arc;
//!
//! let devices: Vec<Arc<dyn BlockDevice>> = (0..6)
//!     .map(|i| Arc::new(MemDevice::new(&format!("m{i}"), 8 << 20)) as _)
//!     .collect();
//! let io = open_backend(BackendKind::Psync, devices)?;
//! let fmt = FormatOptions {
//!     chunk_size_bytes: 16 << 10,
//!     segment_size_bytes: 256 << 10,
//!     ..Default::default()
//! };
//! format(io.as_ref(), &fmt)?;
//! let engine = Arc::new(Engine::open(io, EngineOptions::default())?);
//! let tables = Tables::open(engine.clone())?;
//!
//! tables.create_table("users", &Schema::parse("id:int64,name:string")?)?;
//! let mut cols = Columns::new();
//! cols.insert("score".into(), Value::Double(1.5));
//! cols.insert("ok".into(), Value::Bool(true));
//! tables.put_row("users", &[7.into(), "ann".into()], &cols)?;
//!
//! // A conditional write that fails changes nothing.
//! let again = tables.put_row_if("users", &[7.into(), "ann".into()], &cols, &Condition::RowAbsent);
//! assert!(matches!(again, Err(Error::ConditionFailed { .. })));
//!
//! // Batches span tables and commit atomically.
//! tables.create_table("audit", &Schema::parse("seq:int64")?)?;
//! let mut batch = TableBatch::new();
//! batch
//!     .delete_row("users", &[7.into(), "ann".into()])
//!     .put_row("audit", &[1.into()], &Columns::from([("what".into(), "deleted ann".into())]));
//! tables.write(&batch)?;
//! tables.sync()?;
//!
//! let page = tables.range("audit", &RangeQuery::new().reverse(true).limit(10))?;
//! assert_eq!(page.rows.len(), 1);
//! assert_eq!(tables.get_row("users", &[7.into(), "ann".into()])?, None);
//! engine.close()?;
//! # Ok::<(), ectable_engine::Error>(())
//! ```

mod batch;
mod key;
mod query;
mod row;
mod schema;
mod value;

use crate::sync::{MutexExt, RwLockExt};
pub use batch::{Condition, RowUpdate, TableBatch};
use batch::{Op, OpKind};
pub use query::{RangeIter, RangePage, RangeQuery, RangeViewPage, Row, RowView, TableInfo};
pub use row::{ColumnIter, Columns, StoredColumns};
pub use schema::{
    KeyColumn, Schema, MAX_COLUMN_NAME_BYTES, MAX_KEY_COLUMNS, MAX_KEY_COLUMN_NAME_BYTES,
    SCHEMA_TABLE,
};
pub use value::{Value, ValueRef, ValueType};

/// The byte encodings of rows and schema records, reachable for the fuzz targets (the
/// `internals` feature); not part of the stable API.
#[cfg(feature = "internals")]
pub mod codecs {
    pub use super::row::{decode as decode_row, encode as encode_row};
    pub use super::schema::{
        decode_record as decode_schema_record, encode_record as encode_schema_record, TableState,
    };
}

use crate::error::{Error, Result};
use crate::format::log_record::encoded_len_padded;
use crate::{Engine, WriteBatch};
use schema::{check_column_name, check_table_name, TableState};
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use value::key_display;

/// Row locks: writes of rows hashing to different stripes run in parallel.
const ROW_LOCK_STRIPES: usize = 64;
/// Values fetched per engine call in range reads and drops.
const READ_CHUNK: usize = 256;

#[derive(Default)]
struct Catalog {
    live: BTreeMap<String, Arc<Schema>>,
    /// Tables whose drop started and has not finished.
    dropping: BTreeMap<String, Schema>,
}

struct Inner {
    engine: Arc<Engine>,
    catalog: RwLock<Catalog>,
    /// Held shared by row writes, exclusively by create and drop.
    ddl: RwLock<()>,
    row_locks: Vec<Mutex<()>>,
}

/// One shared state per engine, so that every `Tables` of an engine is coordinated.
type Registry = Vec<(Weak<Engine>, Weak<Inner>)>;
static REGISTRY: Mutex<Registry> = Mutex::new(Vec::new());

/// The typed-table handle: cheap to clone, `Send + Sync`, shared by all threads.
///
/// See the [module docs](self) for an example.
#[derive(Clone)]
pub struct Tables {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.locked()
}

impl Tables {
    /// The typed-table layer of `engine`: loads the schemas, and (when the engine is
    /// writable) finishes any drop a crash interrupted. Every call for the same engine
    /// returns a handle to the same shared state.
    pub fn open(engine: Arc<Engine>) -> Result<Tables> {
        let mut reg = lock(&REGISTRY);
        reg.retain(|(e, i)| e.strong_count() > 0 && i.strong_count() > 0);
        let existing = reg
            .iter()
            .find(|(e, _)| std::ptr::eq(e.as_ptr(), Arc::as_ptr(&engine)))
            .and_then(|(_, i)| i.upgrade());
        if let Some(inner) = existing {
            return Ok(Tables { inner });
        }
        let catalog = load_catalog(&engine)?;
        let inner = Arc::new(Inner {
            engine: engine.clone(),
            catalog: RwLock::new(catalog),
            ddl: RwLock::new(()),
            row_locks: (0..ROW_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        });
        reg.push((Arc::downgrade(&engine), Arc::downgrade(&inner)));
        drop(reg);
        let tables = Tables { inner };
        tables.finish_interrupted_drops()?;
        Ok(tables)
    }

    /// The engine underneath.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    fn catalog(&self) -> crate::sync::ReadGuard<'_, Catalog> {
        self.inner.catalog.read_locked()
    }

    fn catalog_mut(&self) -> crate::sync::WriteGuard<'_, Catalog> {
        self.inner.catalog.write_locked()
    }

    /// The schema of a live table.
    fn live_schema(&self, table: &str) -> Result<Arc<Schema>> {
        self.catalog()
            .live
            .get(table)
            .cloned()
            .ok_or_else(|| Error::NoSuchTable(table.to_string()))
    }

    /// The schema of a typed table, or None when `table` is not one.
    pub fn schema(&self, table: &str) -> Option<Schema> {
        self.catalog().live.get(table).map(|s| (**s).clone())
    }

    fn finish_interrupted_drops(&self) -> Result<()> {
        let names: Vec<String> = self.catalog().dropping.keys().cloned().collect();
        if names.is_empty() {
            return Ok(());
        }
        let _ddl = self.inner.ddl.write_locked();
        for name in names {
            match self.finish_drop(&name) {
                Ok(()) => {}
                // A read-only engine leaves the drop to the next writable open; the table is
                // invisible meanwhile.
                Err(Error::ReadOnly) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Creates a typed table; durable when it returns.
    ///
    /// Errors: [`Error::ReservedTableName`] for names starting with `$`,
    /// [`Error::BadTableName`], [`Error::TableExists`], and [`Error::WrongTableKind`] when
    /// the name holds key/value data.
    pub fn create_table(&self, name: &str, schema: &Schema) -> Result<()> {
        check_table_name(name)?;
        let _ddl = self.inner.ddl.write_locked();
        if self.catalog().live.contains_key(name) {
            return Err(Error::TableExists(name.to_string()));
        }
        if self.catalog().dropping.contains_key(name) {
            self.finish_drop(name)?;
        }
        if key_count(&self.inner.engine, name) > 0 {
            return Err(Error::WrongTableKind {
                table: name.to_string(),
                detail: "holds key/value data: a typed table needs an unused name".to_string(),
            });
        }
        let rec = schema::encode_record(schema, TableState::Live);
        self.inner
            .engine
            .put_sync_any(SCHEMA_TABLE, name.as_bytes(), &rec)?;
        self.catalog_mut()
            .live
            .insert(name.to_string(), Arc::new(schema.clone()));
        Ok(())
    }

    /// Drops a typed table and all its rows; durable when it returns. See the module docs
    /// for what a crash in the middle leaves.
    pub fn drop_table(&self, name: &str) -> Result<()> {
        check_table_name(name)?;
        let _ddl = self.inner.ddl.write_locked();
        let live = self.catalog().live.get(name).cloned();
        match live {
            Some(schema) => {
                let rec = schema::encode_record(&schema, TableState::Dropping);
                self.inner
                    .engine
                    .put_sync_any(SCHEMA_TABLE, name.as_bytes(), &rec)?;
                let mut cat = self.catalog_mut();
                cat.live.remove(name);
                cat.dropping.insert(name.to_string(), (*schema).clone());
            }
            None if self.catalog().dropping.contains_key(name) => {}
            None => return Err(Error::NoSuchTable(name.to_string())),
        }
        self.finish_drop(name)
    }

    /// Deletes the rows of a table marked dropping, then its schema record. The caller
    /// holds the DDL lock.
    fn finish_drop(&self, name: &str) -> Result<()> {
        let engine = &self.inner.engine;
        let limit = engine.max_batch_bytes();
        loop {
            let keys: Vec<Vec<u8>> = entries_in_range(engine, name, None, None, READ_CHUNK, false)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            if keys.is_empty() {
                break;
            }
            let mut batch = WriteBatch::new();
            let mut bytes = 0;
            for k in &keys {
                let b = encoded_len_padded(name.len(), k.len(), 0);
                if !batch.is_empty() && bytes + b > limit {
                    engine.write_batch(&batch)?;
                    batch = WriteBatch::new();
                    bytes = 0;
                }
                batch.delete(name, k);
                bytes += b;
            }
            engine.write_batch(&batch)?;
        }
        engine.sync()?;
        engine.delete_any(SCHEMA_TABLE, name.as_bytes())?;
        engine.sync()?;
        self.catalog_mut().dropping.remove(name);
        Ok(())
    }

    /// The typed tables, by name.
    pub fn list_tables(&self) -> Vec<TableInfo> {
        let live: Vec<(String, Arc<Schema>)> = self
            .catalog()
            .live
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        live.into_iter()
            .map(|(name, schema)| TableInfo {
                row_count: key_count(&self.inner.engine, &name),
                name,
                schema: (*schema).clone(),
            })
            .collect()
    }

    /// One typed table's schema and row count.
    pub fn describe_table(&self, name: &str) -> Result<TableInfo> {
        let schema = self.live_schema(name)?;
        Ok(TableInfo {
            name: name.to_string(),
            schema: (*schema).clone(),
            row_count: key_count(&self.inner.engine, name),
        })
    }

    /// Replaces a row; durable after [`Tables::sync`].
    pub fn put_row(&self, table: &str, key: &[Value], columns: &Columns) -> Result<u64> {
        self.write(TableBatch::new().put_row(table, key, columns))
    }

    /// Replaces a row if `condition` holds ([`Error::ConditionFailed`] otherwise).
    pub fn put_row_if(
        &self,
        table: &str,
        key: &[Value],
        columns: &Columns,
        condition: &Condition,
    ) -> Result<u64> {
        self.write(TableBatch::new().put_row_if(table, key, columns, condition))
    }

    /// Sets and deletes columns of a row, atomically (creating the row if it is absent).
    pub fn update_row(&self, table: &str, key: &[Value], update: &RowUpdate) -> Result<u64> {
        self.write(TableBatch::new().update_row(table, key, update))
    }

    /// [`Tables::update_row`] if `condition` holds.
    pub fn update_row_if(
        &self,
        table: &str,
        key: &[Value],
        update: &RowUpdate,
        condition: &Condition,
    ) -> Result<u64> {
        self.write(TableBatch::new().update_row_if(table, key, update, condition))
    }

    /// Deletes a row (nothing happens if it does not exist).
    pub fn delete_row(&self, table: &str, key: &[Value]) -> Result<u64> {
        self.write(TableBatch::new().delete_row(table, key))
    }

    /// Deletes a row if `condition` holds.
    pub fn delete_row_if(&self, table: &str, key: &[Value], condition: &Condition) -> Result<u64> {
        self.write(TableBatch::new().delete_row_if(table, key, condition))
    }

    /// Waits until every write so far is durable; returns the durable LSN.
    pub fn sync(&self) -> Result<u64> {
        self.inner.engine.sync()
    }

    /// Checks a batch without writing it: tables, keys, column names and, for puts and
    /// deletes, the size against the one-stripe limit. Returns the bytes its puts and
    /// deletes take in the log (updates count their set columns only: their size depends on
    /// the stored row).
    pub fn validate(&self, batch: &TableBatch) -> Result<usize> {
        let prepared = self.prepare(batch)?;
        let bytes = prepared.iter().map(|p| p.estimated_bytes).sum();
        let limit = self.inner.engine.max_batch_bytes();
        if bytes > limit {
            return Err(Error::ValueTooLarge {
                record_bytes: bytes,
                limit_bytes: limit,
            });
        }
        Ok(bytes)
    }

    /// Checks everything that does not depend on stored rows.
    fn prepare<'a>(&self, batch: &'a TableBatch) -> Result<Vec<Prepared<'a>>> {
        let mut out = Vec::with_capacity(batch.ops.len());
        for op in &batch.ops {
            let table = op.table.as_str();
            check_table_name(table)?;
            let schema = self.live_schema(table)?;
            let enc_key = key::encode_key(&schema, table, &op.key)?;
            let check_cols = |names: &mut dyn Iterator<Item = &String>| -> Result<()> {
                for n in names {
                    check_attribute_name(&schema, table, n)?;
                }
                Ok(())
            };
            let mut estimated = 0;
            match &op.kind {
                OpKind::Put(cols) => {
                    check_cols(&mut cols.keys())?;
                    check_values(table, cols)?;
                    estimated = row::encoded_len(cols);
                }
                OpKind::Update(u) => {
                    check_cols(&mut u.set.keys())?;
                    check_cols(&mut u.delete.iter())?;
                    check_values(table, &u.set)?;
                    if let Some(c) = u.delete.iter().find(|c| u.set.contains_key(*c)) {
                        return Err(Error::BadColumn {
                            table: table.to_string(),
                            detail: format!("column '{c}' is both set and deleted"),
                        });
                    }
                    estimated = row::encoded_len(&u.set);
                }
                OpKind::Delete | OpKind::Check => {}
            }
            if let Some(Condition::ColumnEquals { column, value }) = &op.condition {
                check_cols(&mut std::iter::once(column))?;
                check_values(table, &Columns::from([(column.clone(), value.clone())]))?;
            }
            let estimated_bytes = match op.kind {
                OpKind::Check => 0,
                _ => encoded_len_padded(table.len(), enc_key.len(), estimated),
            };
            out.push(Prepared {
                op,
                enc_key,
                estimated_bytes,
            });
        }
        Ok(out)
    }

    /// Commits a batch atomically: all its conditions hold and all its writes are appended
    /// as one engine batch, or it fails with a typed error and nothing is written. Durable
    /// after [`Tables::sync`]. Returns the LSN of the batch's last record.
    pub fn write(&self, batch: &TableBatch) -> Result<u64> {
        if batch.ops.is_empty() {
            return self.inner.engine.write_batch(&WriteBatch::new());
        }
        // Shared: no create or drop runs while the batch checks and writes.
        let _ddl = self.inner.ddl.read_locked();
        let prepared = self.prepare(batch)?;
        let mut stripes: Vec<usize> = prepared
            .iter()
            .map(|p| lock_stripe(&p.op.table, &p.enc_key))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        // In increasing order, so that two batches never wait for each other.
        let _rows: Vec<MutexGuard<'_, ()>> = stripes
            .iter()
            .map(|&s| lock(&self.inner.row_locks[s]))
            .collect();

        // The state each touched row has after the batch's operations so far.
        let mut state: HashMap<(&str, &[u8]), Option<Columns>> = HashMap::new();
        let mut written: Vec<(&str, &[u8])> = Vec::new();
        for p in &prepared {
            let (table, k) = (p.op.table.as_str(), p.enc_key.as_slice());
            let needs_state = p.op.condition.is_some() || matches!(p.op.kind, OpKind::Update(_));
            let current = match state.get(&(table, k)) {
                Some(s) => Some(s.clone()),
                None if needs_state => Some(self.read_row(table, k, None)?),
                None => None,
            };
            if let (Some(cond), Some(cur)) = (&p.op.condition, &current) {
                check_condition(cond, cur.as_ref()).map_err(|detail| Error::ConditionFailed {
                    table: table.to_string(),
                    key: key_display(&p.op.key),
                    detail,
                })?;
            }
            let next = match &p.op.kind {
                OpKind::Put(cols) => Some(cols.clone()),
                OpKind::Delete => None,
                OpKind::Update(u) => {
                    let mut cols = current.flatten().unwrap_or_default();
                    u.apply(&mut cols);
                    Some(cols)
                }
                OpKind::Check => {
                    if let Some(cur) = current {
                        state.insert((table, k), cur);
                    }
                    continue;
                }
            };
            if !written.contains(&(table, k)) {
                written.push((table, k));
            }
            state.insert((table, k), next);
        }
        let mut wb = WriteBatch::new();
        for (table, k) in written {
            match state.get(&(table, k)) {
                Some(Some(cols)) => wb.put(table, k, &row::encode(cols)),
                _ => wb.delete(table, k),
            };
        }
        self.inner.engine.write_batch(&wb)
    }

    /// Reads and decodes one stored row (None: absent).
    fn read_row(
        &self,
        table: &str,
        k: &[u8],
        wanted: Option<&[String]>,
    ) -> Result<Option<Columns>> {
        match self.inner.engine.get(table, k) {
            Ok(Some(v)) => decode_row(table, &v, wanted).map(Some),
            Ok(None) | Err(Error::NoSuchTable(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a row with all its columns.
    pub fn get_row(&self, table: &str, key: &[Value]) -> Result<Option<Row>> {
        self.get_row_inner(table, key, None)
    }

    /// Reads a row with only the chosen columns (those it has).
    pub fn get_row_columns(
        &self,
        table: &str,
        key: &[Value],
        columns: &[&str],
    ) -> Result<Option<Row>> {
        let wanted: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        self.get_row_inner(table, key, Some(&wanted))
    }

    fn get_row_inner(
        &self,
        table: &str,
        key: &[Value],
        wanted: Option<&[String]>,
    ) -> Result<Option<Row>> {
        let schema = self.live_schema(table)?;
        let k = key::encode_key(&schema, table, key)?;
        Ok(self.read_row(table, &k, wanted)?.map(|columns| Row {
            key: key.to_vec(),
            columns,
        }))
    }

    /// Reads several rows of one table with all their device reads in flight together.
    pub fn get_rows(&self, table: &str, keys: &[Vec<Value>]) -> Result<Vec<Option<Row>>> {
        let schema = self.live_schema(table)?;
        let enc: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| key::encode_key(&schema, table, k))
            .collect::<Result<_>>()?;
        let refs: Vec<&[u8]> = enc.iter().map(Vec::as_slice).collect();
        let values = match self.inner.engine.get_many(table, &refs) {
            Ok(v) => v,
            Err(Error::NoSuchTable(_)) => vec![None; keys.len()],
            Err(e) => return Err(e),
        };
        keys.iter()
            .zip(values)
            .map(|(k, v)| {
                v.map(|v| {
                    decode_row(table, &v, None).map(|columns| Row {
                        key: k.clone(),
                        columns,
                    })
                })
                .transpose()
            })
            .collect()
    }

    /// Reads rows in primary-key order (or reverse), within the query's bounds and prefix,
    /// at most `limit` of them.
    pub fn range(&self, table: &str, q: &RangeQuery) -> Result<RangePage> {
        let wanted = q.columns.as_deref();
        let (rows, next_start) = self.range_with(table, q, |schema, k, v| {
            Ok(Row {
                key: decode_key(schema, table, k)?,
                columns: decode_row(table, &v, wanted)?,
            })
        })?;
        Ok(RangePage { rows, next_start })
    }

    /// As [`range`](Self::range), but each row's columns are checked and then read in place
    /// ([`StoredColumns`]) instead of copied into a [`Columns`] map: no allocation per column,
    /// for callers that read many rows and look at their columns once.
    pub fn range_view(&self, table: &str, q: &RangeQuery) -> Result<RangeViewPage> {
        let wanted: Option<Arc<[String]>> = q.columns.as_deref().map(Into::into);
        let (rows, next_start) = self.range_with(table, q, |schema, k, v| {
            row_view(schema, table, k, v, &wanted)
        })?;
        Ok(RangeViewPage { rows, next_start })
    }

    /// The rows of a range query streamed, in key order (or reverse), read in place as
    /// [`range_view`](Self::range_view) reads them: the index is listed a page at a time and
    /// the next pages' reads are in flight while the caller takes this page's rows (as
    /// [`Engine::scan_iter`]), so a range of any length is read in bounded memory at the
    /// devices' pace. The query's limit and columns apply. Not a snapshot: each row is its
    /// key's value at some moment during the read (a row deleted meanwhile may be left out).
    /// An error ends the iteration. Use it on the thread that made it; for a short page,
    /// `range_view` reads only the rows it returns.
    pub fn range_iter(&self, table: &str, q: &RangeQuery) -> Result<RangeIter<'_>> {
        let schema = self.live_schema(table)?;
        let wanted: Option<Arc<[String]>> = q.columns.as_deref().map(Into::into);
        let scan = match byte_bounds(&schema, table, q)? {
            None => None,
            Some((lo, hi)) => {
                let from = lo.as_deref().map_or(Bound::Unbounded, Bound::Included);
                let to = hi.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                let engine = &self.inner.engine;
                let scan = match q.reverse {
                    true => engine.scan_iter_rev(table, from, to)?,
                    false => engine.scan_iter(table, from, to)?,
                };
                Some(scan.limit(q.limit))
            }
        };
        Ok(RangeIter {
            scan,
            schema,
            table: table.to_string(),
            wanted,
            left: q.limit,
        })
    }

    /// A range read's rows, each made by `row` from its encoded key and value, and the
    /// key to resume from.
    fn range_with<R>(
        &self,
        table: &str,
        q: &RangeQuery,
        mut row: impl FnMut(&Schema, &[u8], Vec<u8>) -> Result<R>,
    ) -> Result<(Vec<R>, Option<Vec<Value>>)> {
        let schema = self.live_schema(table)?;
        let Some((lo, hi)) = byte_bounds(&schema, table, q)? else {
            return Ok((Vec::new(), None));
        };
        let engine = &self.inner.engine;
        engine.shared.check_alive()?;
        let mut entries = entries_in_range(
            engine,
            table,
            lo.as_deref(),
            hi.as_deref(),
            q.limit.saturating_add(1),
            q.reverse,
        );
        let next_start = match entries.len() > q.limit {
            true => match entries.pop() {
                Some((k, _)) => Some(decode_key(&schema, table, &k)?),
                None => None,
            },
            false => None,
        };
        let mut rows = Vec::with_capacity(entries.len());
        // The rows' reads in pages, the next page's in flight while this one is decoded; a
        // row deleted since its key was listed is skipped.
        let mut pages: std::collections::VecDeque<_> = Default::default();
        let mut rest = entries.into_iter().peekable();
        loop {
            while pages.len() < 2 && rest.peek().is_some() {
                let page: Vec<_> = rest.by_ref().take(READ_CHUNK).collect();
                pages.push_back(engine.shared.start_load(page));
            }
            let Some(page) = pages.pop_front() else { break };
            for (k, v) in engine.shared.finish_load(table, page)? {
                rows.push(row(&schema, &k, v)?);
            }
        }
        Ok((rows, next_start))
    }
}

/// One operation of a batch, checked.
struct Prepared<'a> {
    op: &'a Op,
    enc_key: Vec<u8>,
    estimated_bytes: usize,
}

fn check_attribute_name(schema: &Schema, table: &str, name: &str) -> Result<()> {
    let bad = |detail: String| Error::BadColumn {
        table: table.to_string(),
        detail,
    };
    check_column_name(name).map_err(bad)?;
    if schema.key_column_index(name).is_some() {
        return Err(bad(format!(
            "'{name}' is a primary-key column; attribute columns need other names"
        )));
    }
    Ok(())
}

fn check_values(table: &str, cols: &Columns) -> Result<()> {
    for (name, v) in cols {
        if v.payload_len() > u32::MAX as usize {
            return Err(Error::BadColumn {
                table: table.to_string(),
                detail: format!("column '{name}' holds {} bytes", v.payload_len()),
            });
        }
    }
    Ok(())
}

/// Whether `cond` holds for a row's current columns (None: the row is absent); the reason
/// when it does not.
fn check_condition(cond: &Condition, row: Option<&Columns>) -> std::result::Result<(), String> {
    match (cond, row) {
        (Condition::RowExists, Some(_)) | (Condition::RowAbsent, None) => Ok(()),
        (Condition::RowExists, None) => Err("the row does not exist".into()),
        (Condition::RowAbsent, Some(_)) => Err("the row exists".into()),
        (Condition::ColumnEquals { column, .. }, None) => Err(format!(
            "the row does not exist (condition on column '{column}')"
        )),
        (Condition::ColumnEquals { column, value }, Some(cols)) => match cols.get(column) {
            None => Err(format!("the row has no column '{column}'")),
            Some(v) if v == value => Ok(()),
            Some(v) => Err(format!(
                "column '{column}' is {} {v}, the condition wants {} {value}",
                v.value_type(),
                value.value_type()
            )),
        },
    }
}

fn decode_row(table: &str, bytes: &[u8], wanted: Option<&[String]>) -> Result<Columns> {
    row::decode(bytes, wanted).map_err(|detail| corrupt_row(table, detail))
}

/// A row read in place from its encoded key and stored value.
fn row_view(
    schema: &Schema,
    table: &str,
    key: &[u8],
    value: Vec<u8>,
    wanted: &Option<Arc<[String]>>,
) -> Result<RowView> {
    Ok(RowView {
        key: decode_key(schema, table, key)?,
        columns: StoredColumns::with_projection(value, wanted.clone())
            .map_err(|detail| corrupt_row(table, detail))?,
    })
}

fn corrupt_row(table: &str, detail: String) -> Error {
    Error::CorruptTableData {
        table: table.to_string(),
        detail,
    }
}

fn decode_key(schema: &Schema, table: &str, bytes: &[u8]) -> Result<Vec<Value>> {
    key::decode_key(schema, bytes).map_err(|detail| Error::CorruptTableData {
        table: table.to_string(),
        detail: format!("primary key: {detail}"),
    })
}

fn lock_stripe(table: &str, key: &[u8]) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    table.hash(&mut h);
    key.hash(&mut h);
    (h.finish() % ROW_LOCK_STRIPES as u64) as usize
}

fn load_catalog(engine: &Engine) -> Result<Catalog> {
    let records = match engine.scan(SCHEMA_TABLE, Bound::Unbounded, Bound::Unbounded, usize::MAX) {
        Ok(r) => r,
        Err(Error::NoSuchTable(_)) => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut cat = Catalog::default();
    for (name, rec) in records {
        let name = String::from_utf8(name).map_err(|_| Error::CorruptTableData {
            table: SCHEMA_TABLE.to_string(),
            detail: "a schema record's key is not UTF-8".into(),
        })?;
        let (schema, state) =
            schema::decode_record(&rec).map_err(|detail| Error::CorruptTableData {
                table: name.clone(),
                detail: format!("schema record: {detail}"),
            })?;
        match state {
            TableState::Live => {
                cat.live.insert(name, Arc::new(schema));
            }
            TableState::Dropping => {
                cat.dropping.insert(name, schema);
            }
        }
    }
    Ok(cat)
}

// ---------------------------------------------------------------------------------------
// Read-only hooks into the engine's index: the only places this module looks past the
// engine's public API. Range reads list keys with their index entries in either direction,
// then read the values with those entries (`start_load` / `finish_load`), so that a page's
// keys are what decides where the next page starts.

/// Keys of `table` in `[lo, hi)` (None: unbounded) with their index entries, ascending or
/// descending, at most `limit`.
/// A query's bounds as encoded keys, the lower inclusive and the upper exclusive (None:
/// unbounded); None when no key lies between them.
type ByteBounds = (Option<Vec<u8>>, Option<Vec<u8>>);

fn byte_bounds(schema: &Schema, table: &str, q: &RangeQuery) -> Result<Option<ByteBounds>> {
    let mut lo: Vec<Option<Vec<u8>>> = Vec::new();
    let mut hi: Vec<Option<Vec<u8>>> = Vec::new();
    match &q.start {
        Bound::Unbounded => {}
        Bound::Included(p) => lo.push(Some(key::encode_prefix(schema, table, p)?)),
        Bound::Excluded(p) => match key::prefix_successor(&key::encode_prefix(schema, table, p)?) {
            Some(s) => lo.push(Some(s)),
            None => return Ok(None),
        },
    }
    match &q.end {
        Bound::Unbounded => {}
        Bound::Included(p) => {
            hi.push(key::prefix_successor(&key::encode_prefix(
                schema, table, p,
            )?));
        }
        Bound::Excluded(p) => hi.push(Some(key::encode_prefix(schema, table, p)?)),
    }
    if let Some(p) = &q.prefix {
        let e = key::encode_prefix(schema, table, p)?;
        hi.push(key::prefix_successor(&e));
        lo.push(Some(e));
    }
    let lo = lo.into_iter().flatten().max();
    let hi = hi.into_iter().flatten().min();
    match (&lo, &hi) {
        (Some(l), Some(h)) if l >= h => Ok(None),
        _ => Ok(Some((lo, hi))),
    }
}

fn entries_in_range(
    engine: &Engine,
    table: &str,
    lo: Option<&[u8]>,
    hi: Option<&[u8]>,
    limit: usize,
    reverse: bool,
) -> Vec<(Vec<u8>, crate::index::IndexEntry)> {
    if let (Some(l), Some(h)) = (lo, hi) {
        if l >= h {
            return Vec::new(); // an empty or inverted range
        }
    }
    let index = engine.shared.index.read_locked();
    let Some(t) = index.tables.get(table) else {
        return Vec::new();
    };
    let lo = lo.map_or(Bound::Unbounded, Bound::Included);
    let hi = hi.map_or(Bound::Unbounded, Bound::Excluded);
    if reverse {
        t.range_rev(lo, hi)
            .take(limit)
            .map(|(k, e)| (k.to_vec(), e))
            .collect()
    } else {
        t.range(lo, hi)
            .take(limit)
            .map(|(k, e)| (k.to_vec(), e))
            .collect()
    }
}

/// Keys `table` holds.
fn key_count(engine: &Engine, table: &str) -> usize {
    let index = engine.shared.index.read_locked();
    index.tables.get(table).map_or(0, |t| t.len())
}

#[cfg(test)]
mod tests;
