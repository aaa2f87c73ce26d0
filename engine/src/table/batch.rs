//! What a write asks for: conditions on a row's current state, partial row updates, and
//! batches of writes across tables committed together.

use super::row::Columns;
use super::value::Value;
use std::collections::BTreeSet;

/// What a write requires of the row's current state.
///
/// Conditions are checked in batch order against the state left by the batch's earlier
/// operations. A condition that does not hold fails the whole batch with
/// [`Error::ConditionFailed`](crate::Error::ConditionFailed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The row exists.
    RowExists,
    /// The row does not exist.
    RowAbsent,
    /// The row exists and has the column, with exactly this value (type and value; doubles
    /// compare bitwise). A missing row or column fails the condition.
    ColumnEquals {
        /// The attribute column's name.
        column: String,
        /// The value it must hold.
        value: Value,
    },
}

impl Condition {
    /// `ColumnEquals` from anything that converts to a [`Value`].
    pub fn column_equals(column: &str, value: impl Into<Value>) -> Condition {
        Condition::ColumnEquals {
            column: column.to_string(),
            value: value.into(),
        }
    }
}

/// A partial row change: set some columns, delete others (applied atomically by
/// [`Tables::update_row`](super::Tables::update_row)). An update of a row that does not exist creates it (guard it
/// with [`Condition::RowExists`] to refuse that).
///
/// ```
/// use ectable_engine::table::RowUpdate;
/// let u = RowUpdate::new().set("score", 2.5).set("tag", "x").delete("old");
/// assert!(!u.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowUpdate {
    pub(super) set: Columns,
    pub(super) delete: BTreeSet<String>,
}

impl RowUpdate {
    /// An update that changes nothing.
    pub fn new() -> RowUpdate {
        RowUpdate::default()
    }

    /// Sets a column (replacing its value and type).
    pub fn set(mut self, column: &str, value: impl Into<Value>) -> RowUpdate {
        self.set.insert(column.to_string(), value.into());
        self
    }

    /// Deletes a column (nothing happens if the row does not have it).
    pub fn delete(mut self, column: &str) -> RowUpdate {
        self.delete.insert(column.to_string());
        self
    }

    /// Whether it neither sets nor deletes a column.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty()
    }

    pub(super) fn apply(&self, columns: &mut Columns) {
        for c in &self.delete {
            columns.remove(c);
        }
        for (c, v) in &self.set {
            columns.insert(c.clone(), v.clone());
        }
    }
}

#[derive(Debug, Clone)]
pub(super) enum OpKind {
    Put(Columns),
    Update(RowUpdate),
    Delete,
    /// Only a condition: writes nothing.
    Check,
}

#[derive(Debug, Clone)]
pub(super) struct Op {
    pub(super) table: String,
    pub(super) key: Vec<Value>,
    pub(super) kind: OpKind,
    pub(super) condition: Option<Condition>,
}

/// Writes across tables committed together: after a crash, wholly present or wholly absent.
/// The batch must fit one stripe ([`Engine::max_batch_bytes`](crate::Engine::max_batch_bytes)); a larger one is refused
/// with [`Error::ValueTooLarge`](crate::Error::ValueTooLarge) before anything is written.
#[derive(Debug, Clone, Default)]
pub struct TableBatch {
    pub(super) ops: Vec<Op>,
}

impl TableBatch {
    /// An empty batch.
    pub fn new() -> TableBatch {
        TableBatch::default()
    }

    fn push(
        &mut self,
        table: &str,
        key: &[Value],
        kind: OpKind,
        condition: Option<&Condition>,
    ) -> &mut TableBatch {
        self.ops.push(Op {
            table: table.to_string(),
            key: key.to_vec(),
            kind,
            condition: condition.cloned(),
        });
        self
    }

    /// Replaces the row (all its columns) with `columns`.
    pub fn put_row(&mut self, table: &str, key: &[Value], columns: &Columns) -> &mut Self {
        self.push(table, key, OpKind::Put(columns.clone()), None)
    }

    /// [`TableBatch::put_row`] if `condition` holds.
    pub fn put_row_if(
        &mut self,
        table: &str,
        key: &[Value],
        columns: &Columns,
        condition: &Condition,
    ) -> &mut Self {
        self.push(table, key, OpKind::Put(columns.clone()), Some(condition))
    }

    /// Sets and deletes some columns of the row.
    pub fn update_row(&mut self, table: &str, key: &[Value], update: &RowUpdate) -> &mut Self {
        self.push(table, key, OpKind::Update(update.clone()), None)
    }

    /// [`TableBatch::update_row`] if `condition` holds.
    pub fn update_row_if(
        &mut self,
        table: &str,
        key: &[Value],
        update: &RowUpdate,
        condition: &Condition,
    ) -> &mut Self {
        self.push(table, key, OpKind::Update(update.clone()), Some(condition))
    }

    /// Deletes the row (nothing happens if it does not exist).
    pub fn delete_row(&mut self, table: &str, key: &[Value]) -> &mut Self {
        self.push(table, key, OpKind::Delete, None)
    }

    /// [`TableBatch::delete_row`] if `condition` holds.
    pub fn delete_row_if(
        &mut self,
        table: &str,
        key: &[Value],
        condition: &Condition,
    ) -> &mut Self {
        self.push(table, key, OpKind::Delete, Some(condition))
    }

    /// Requires `condition` of a row without writing it (the batch fails if it does not
    /// hold).
    pub fn require(&mut self, table: &str, key: &[Value], condition: &Condition) -> &mut Self {
        self.push(table, key, OpKind::Check, Some(condition))
    }

    /// The number of operations added (checks included).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no operation was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
