//! Range reads by primary key, and what reads return: rows, pages, table descriptions.

use super::row::{Columns, StoredColumns};
use super::schema::Schema;
use super::value::Value;
use crate::error::Result;
use crate::log::scan::Scan;
use std::ops::Bound;
use std::sync::Arc;

/// A range read by primary key.
///
/// Bounds and the prefix may be partial keys (the first 1..=n key columns). A partial key
/// stands for all the keys that start with it: `start(Included(p))` begins at the first of
/// them, `start(Excluded(p))` after the last, `end(Included(p))` ends after the last of them
/// and `end(Excluded(p))` before the first. Bounds and prefix combine (intersection).
///
/// ```
/// use ectable_engine::table::{RangeQuery, Value};
/// use std::ops::Bound;
/// // Rows of region "eu" with id >= 100, newest first, 50 at a time.
/// let q = RangeQuery::new()
///     .prefix(vec!["eu".into()])
///     .start(Bound::Included(vec!["eu".into(), 100.into()]))
///     .reverse(true)
///     .limit(50);
/// # let _ = q;
/// ```
#[derive(Debug, Clone)]
pub struct RangeQuery {
    pub(super) start: Bound<Vec<Value>>,
    pub(super) end: Bound<Vec<Value>>,
    pub(super) prefix: Option<Vec<Value>>,
    pub(super) reverse: bool,
    pub(super) limit: usize,
    pub(super) columns: Option<Vec<String>>,
}

impl Default for RangeQuery {
    fn default() -> RangeQuery {
        RangeQuery {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
            prefix: None,
            reverse: false,
            limit: usize::MAX,
            columns: None,
        }
    }
}

impl RangeQuery {
    /// The whole table, forward, no limit, all columns.
    pub fn new() -> RangeQuery {
        RangeQuery::default()
    }

    /// The lower bound (in key order, whatever the direction).
    pub fn start(mut self, bound: Bound<Vec<Value>>) -> RangeQuery {
        self.start = bound;
        self
    }

    /// The upper bound (in key order, whatever the direction).
    pub fn end(mut self, bound: Bound<Vec<Value>>) -> RangeQuery {
        self.end = bound;
        self
    }

    /// Only keys whose first components are `prefix`.
    pub fn prefix(mut self, prefix: Vec<Value>) -> RangeQuery {
        self.prefix = Some(prefix);
        self
    }

    /// Descending key order.
    pub fn reverse(mut self, reverse: bool) -> RangeQuery {
        self.reverse = reverse;
        self
    }

    /// At most this many rows (then [`RangePage::next_start`] says where to resume).
    pub fn limit(mut self, limit: usize) -> RangeQuery {
        self.limit = limit;
        self
    }

    /// Only these columns of each row.
    pub fn columns(mut self, columns: &[&str]) -> RangeQuery {
        self.columns = Some(columns.iter().map(|c| c.to_string()).collect());
        self
    }

    /// Continues after a page: the returned `next_start` becomes the inclusive lower bound
    /// (forward) or upper bound (reverse).
    pub fn resume_from(mut self, next_start: Vec<Value>) -> RangeQuery {
        if self.reverse {
            self.end = Bound::Included(next_start);
        } else {
            self.start = Bound::Included(next_start);
        }
        self
    }
}

/// A row as read: its primary key and (all or the chosen) attribute columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The primary key's values, one per key column in schema order.
    pub key: Vec<Value>,
    /// The attribute columns read, by name.
    pub columns: Columns,
}

/// One page of a range read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePage {
    /// The rows, in key order (descending for a reverse query).
    pub rows: Vec<Row>,
    /// The key of the next row in the query's direction when the limit cut the page short
    /// (give it to [`RangeQuery::resume_from`]); None when the range is exhausted.
    pub next_start: Option<Vec<Value>>,
}

/// A row as a range read with [`Tables::range_view`](super::Tables::range_view) returns it:
/// its primary key, and its attribute columns read in place.
#[derive(Debug, Clone)]
pub struct RowView {
    /// The primary key's values, one per key column in schema order.
    pub key: Vec<Value>,
    /// The attribute columns (all, or those the query chose), checked, read in place.
    pub columns: StoredColumns,
}

/// One page of [`Tables::range_view`](super::Tables::range_view): as [`RangePage`], with
/// rows read in place.
#[derive(Debug, Clone)]
pub struct RangeViewPage {
    /// The rows, in key order (descending for a reverse query).
    pub rows: Vec<RowView>,
    /// As [`RangePage::next_start`].
    pub next_start: Option<Vec<Value>>,
}

/// The rows of [`Tables::range_iter`](super::Tables::range_iter), streamed; see there.
pub struct RangeIter<'t> {
    pub(super) scan: Option<Scan<'t>>,
    pub(super) schema: Arc<Schema>,
    pub(super) table: String,
    pub(super) wanted: Option<Arc<[String]>>,
    /// Rows the query's limit still allows.
    pub(super) left: usize,
}

impl Iterator for RangeIter<'_> {
    type Item = Result<RowView>;

    fn next(&mut self) -> Option<Result<RowView>> {
        if self.left == 0 {
            return None;
        }
        let row = match self.scan.as_mut()?.next()? {
            Ok((k, v)) => super::row_view(&self.schema, &self.table, &k, v, &self.wanted),
            Err(e) => Err(e),
        };
        self.left -= 1;
        if row.is_err() {
            self.scan = None;
        }
        Some(row)
    }
}

/// A typed table as `describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// The table's name.
    pub name: String,
    /// Its schema.
    pub schema: Schema,
    /// Rows it holds now.
    pub row_count: usize,
}
