//! `ecbench --rw table-put|table-get|table-range|table-mixed`: workloads on the typed-table
//! layer, through the shared setup of `crate::bench::setup`.
//!
//! Rows live in the typed table `ecbench_rows` (primary key `id:int64`) and have 10 typed
//! columns: `c0` int64, `c1` double, `c2` bool, `c3` int64, `c4`..`c6` strings and `c7`..`c9`
//! binaries, the six variable columns sized so that a row takes about `--bs` bytes encoded
//! (`--bs 1K` for the usual ~1 KiB rows).
//!
//! - `table-put`: `put_row` of random rows; a batch of `--iodepth` puts, then one sync; a
//!   put's latency runs from its call to the end of that sync.
//! - `table-get`: `get_rows` of `--iodepth` random rows at once (all device reads in flight
//!   together); each row's latency is the batch's.
//! - `table-range`: range reads of `--range-rows` rows from a random start key; one
//!   operation per range, its bytes the rows' bytes. Each row must have its 10 columns;
//!   with `--range-view` the rows are read in place (`Tables::range_view`) and the job
//!   walks every column of each (as the copy into owned rows does without it).
//! - `table-mixed`: random puts and gets, `--rwmixread` percent gets (default 50/50).
//!
//! Read workloads lay the rows down first when the table does not hold them, then reopen the
//! array so that reads come from the devices.

use crate::bench::args::{BenchArgs, Rw};
use crate::bench::measure::{jobs_pass, Dir, JobResult, Live, Pass, READ, WRITE};
use crate::bench::setup::{self, Plan, Workload};
use crate::row_value;
use anyhow::{bail, Context, Result};
use ectable_devices::IoBackend;
use ectable_engine::format::log_record::encoded_len_padded;
use ectable_engine::table::{Columns, RangeQuery, Schema, Tables, Value};
use ectable_engine::{Engine, EngineOptions, Error as EngineError};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::ops::{Bound, Range};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// The typed table of the table workloads.
pub const ROWS_TABLE: &str = "ecbench_rows";
const COLUMN_COUNT: usize = 10;
/// Encoded bytes of a row besides its six variable payloads: the header, ten names with
/// their tags, the fixed payloads and six length prefixes.
const FIXED_ROW_BYTES: usize = 5 + COLUMN_COUNT * 4 + 8 + 8 + 1 + 8 + 6 * 4;

/// The variable columns' payload size for a row of about `bs` bytes.
fn var_bytes(bs: usize) -> usize {
    bs.saturating_sub(FIXED_ROW_BYTES) / 6
}

/// Row `i` under `seed`: depends only on them.
pub fn make_row(i: u64, seed: u64, bs: usize) -> Columns {
    let v = var_bytes(bs);
    let bytes = row_value(i, seed, 6 * v);
    let mut cols = Columns::new();
    cols.insert("c0".into(), Value::Int64(i as i64));
    cols.insert("c1".into(), Value::Double(i as f64 * 0.5));
    cols.insert("c2".into(), Value::Bool(i & 1 == 0));
    cols.insert("c3".into(), Value::Int64((seed ^ i) as i64));
    for (n, part) in bytes.chunks(v.max(1)).take(6).enumerate() {
        let name = format!("c{}", n + 4);
        let value = if n < 3 {
            Value::String(part.iter().map(|b| char::from(b'a' + b % 26)).collect())
        } else {
            Value::Binary(part.to_vec())
        };
        cols.insert(name, value);
    }
    cols
}

fn key(i: u64) -> Vec<Value> {
    vec![Value::Int64(i as i64)]
}

fn table_job(t: &Tables, p: &Plan, live: &Live, job: usize) -> JobResult {
    let start = Instant::now();
    let mut rng = SmallRng::seed_from_u64(p.seed ^ (job as u64 + 1).wrapping_mul(0x9E37_79B9));
    let jobs = p.numjobs as u64;
    let quota = p
        .op_limit
        .map(|l| l / jobs + u64::from((job as u64) < l % jobs));
    // One row per job, its id column changed per put: the row's bytes come from the seed,
    // so building it stays out of the measured figures.
    let mut row = make_row(u64::MAX - job as u64, p.seed, p.bs);
    let (mut dirs, mut notes, mut done) = (Dir::pair(), Vec::new(), 0u64);
    loop {
        let n = quota.map_or(p.iodepth as u64, |q| (q - done).min(p.iodepth as u64));
        let late = p.deadline.is_some_and(|d| start.elapsed() >= d);
        if n == 0 || late || live.stop.load(Ordering::Relaxed) {
            break;
        }
        let (mut reads, mut writes) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let i = p.base + rng.random_range(0..p.nkeys);
            let read =
                p.read_pct == 100 || (p.read_pct > 0 && rng.random_range(0..100) < p.read_pct);
            if read {
                reads.push(i);
            } else {
                writes.push(i);
            }
        }
        let mut started = Vec::with_capacity(writes.len());
        for &i in &writes {
            if live.writes_issued.fetch_add(1, Ordering::Relaxed) >= p.max_write_ops {
                notes.push("stopped early: the array is nearly full".to_string());
                break;
            }
            row.insert("c0".into(), Value::Int64(i as i64));
            let t0 = Instant::now();
            match t.put_row(ROWS_TABLE, &key(i), &row) {
                Ok(_) => started.push(t0),
                Err(EngineError::NoSpace(why)) => {
                    notes.push(format!("stopped early: {why}"));
                    break;
                }
                Err(e) => return Err(e).context(format!("put_row of row {i}")),
            }
        }
        if !reads.is_empty() && p.rw == Rw::TableRange {
            for &i in &reads {
                let q = RangeQuery::new()
                    .start(Bound::Included(key(i)))
                    .limit(p.range_rows);
                let t0 = Instant::now();
                // Rows read and, per row, the columns seen.
                let columns: Vec<usize> = if p.range_view {
                    let page = t.range_view(ROWS_TABLE, &q).context("range read")?;
                    page.rows.iter().map(|r| r.columns.iter().count()).collect()
                } else {
                    let page = t.range(ROWS_TABLE, &q).context("range read")?;
                    page.rows.iter().map(|r| r.columns.len()).collect()
                };
                let lat = t0.elapsed();
                let want = p.range_rows.min((p.base + p.nkeys - i) as usize);
                if columns.len() != want {
                    bail!(
                        "range from row {i} returned {} rows, expected {want}",
                        columns.len()
                    );
                }
                if let Some(n) = columns.iter().find(|n| **n != COLUMN_COUNT) {
                    bail!(
                        "range from row {i} returned a row of {n} columns, expected {COLUMN_COUNT}"
                    );
                }
                dirs[READ].record(lat, (columns.len() * p.bs) as u64, live, READ);
            }
        } else if !reads.is_empty() {
            let keys: Vec<Vec<Value>> = reads.iter().map(|&i| key(i)).collect();
            let t0 = Instant::now();
            let rows = t.get_rows(ROWS_TABLE, &keys).context("get_rows")?;
            let lat = t0.elapsed();
            for (&i, r) in reads.iter().zip(rows) {
                let Some(r) = r else {
                    bail!("row {i} is missing from table '{ROWS_TABLE}'")
                };
                if p.verify && p.rw == Rw::TableGet && r.columns != make_row(i, p.seed, p.bs) {
                    bail!("row {i} read back other columns than were written (--verify)");
                }
                dirs[READ].record(lat, p.bs as u64, live, READ);
            }
        }
        if !started.is_empty() {
            t.sync().context("sync")?;
            let t1 = Instant::now();
            for t0 in &started {
                dirs[WRITE].record(t1 - *t0, p.bs as u64, live, WRITE);
            }
        }
        if started.len() < writes.len() {
            live.stop.store(true, Ordering::Relaxed);
        }
        done += n;
    }
    Ok((dirs, notes))
}

/// True when the table holds the data set (a few rows, first and last included, exact).
fn rows_present(t: &Tables, rows: Range<u64>, bs: usize, seed: u64) -> Result<bool> {
    if t.schema(ROWS_TABLE).is_none() {
        return Ok(false);
    }
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xDA7A);
    let mut probe = vec![
        rows.start,
        rows.end - 1,
        rows.start + (rows.end - rows.start) / 2,
    ];
    probe.extend((0..5).map(|_| rng.random_range(rows.clone())));
    for i in probe {
        match t.get_row(ROWS_TABLE, &key(i)) {
            Ok(Some(r)) if r.columns == make_row(i, seed, bs) => {}
            Ok(_) => return Ok(false),
            Err(e) => return Err(e).context("checking the data set"),
        }
    }
    Ok(true)
}

fn lay_down_rows(t: &Tables, rows: Range<u64>, bs: usize, seed: u64) -> Result<Pass> {
    let put = |i: u64| {
        let row = make_row(i, seed, bs);
        let t0 = Instant::now();
        t.put_row(ROWS_TABLE, &key(i), &row)?;
        Ok(t0.elapsed())
    };
    setup::lay_down_measured(rows, bs, put, || Ok(t.sync().map(|_| ())?))
}

/// Runs a typed-table workload.
pub fn run(cli: &BenchArgs) -> Result<()> {
    setup::run::<TablesWorkload>(cli)
}

/// The array opened for a typed-table workload (the tables are dropped before the engine).
struct TablesWorkload {
    tables: Tables,
    engine: Arc<Engine>,
}

impl Workload for TablesWorkload {
    const TABLE: &'static str = ROWS_TABLE;
    const RECORD: &'static str = "row";
    const RAW_NEEDS_FORMAT: &'static str =
        "--compare-raw needs --k and --m: the raw pass destroys the devices' contents";
    const SEGMENT_SIZE: bool = true;

    fn check_bs(bs: usize) -> Result<()> {
        if var_bytes(bs) == 0 {
            bail!(
                "--bs {bs}: a table row of 10 columns needs at least {} bytes",
                FIXED_ROW_BYTES + 6
            );
        }
        Ok(())
    }

    fn record_bytes(bs: usize) -> usize {
        encoded_len_padded(ROWS_TABLE.len(), 8, bs)
    }

    fn open(io: &Arc<dyn IoBackend>, read_only: bool) -> Result<Self> {
        let opts = EngineOptions {
            read_only,
            ..Default::default()
        };
        let engine = Arc::new(
            Engine::open(io.clone(), opts)
                .context("opening the array (give --k and --m to format the devices first)")?,
        );
        let tables = Tables::open(engine.clone()).context("loading the table schemas")?;
        Ok(TablesWorkload { tables, engine })
    }

    fn engine(&self) -> &Engine {
        &self.engine
    }

    fn prepare(&self) -> Result<()> {
        if self.tables.schema(ROWS_TABLE).is_none() {
            let schema = Schema::parse("id:int64").context("schema")?;
            self.tables
                .create_table(ROWS_TABLE, &schema)
                .context("creating the benchmark table")?;
        }
        Ok(())
    }

    fn present(&self, rows: Range<u64>, bs: usize, seed: u64) -> Result<bool> {
        rows_present(&self.tables, rows, bs, seed)
    }

    fn lay_down(&self, rows: Range<u64>, bs: usize, seed: u64) -> Result<Pass> {
        lay_down_rows(&self.tables, rows, bs, seed)
    }

    fn pass(&self, p: &Plan) -> Result<Pass> {
        let mut pass = jobs_pass(
            p.rw.name(),
            (p.op_limit, p.deadline),
            &p.measure,
            p.numjobs,
            |live, j| table_job(&self.tables, p, live, j),
        )?;
        let bs = p.bs;
        pass.notes.push(match p.rw {
            Rw::TableRange => format!(
                "table workload: typed table '{ROWS_TABLE}' (id:int64), rows of {COLUMN_COUNT} columns, \
                 ~{bs} bytes each; one read = a range of {} rows{}",
                p.range_rows,
                if p.range_view { ", read in place (range_view)" } else { "" }
            ),
            _ => format!(
                "table workload: typed table '{ROWS_TABLE}' (id:int64), rows of {COLUMN_COUNT} columns, \
                 ~{bs} bytes each"
            ),
        });
        Ok(pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_ten_columns_of_about_bs_bytes() {
        for bs in [256usize, 1024, 4096] {
            let row = make_row(3, 1, bs);
            assert_eq!(row.len(), COLUMN_COUNT);
            let enc: usize = 5 + row
                .iter()
                .map(|(n, v)| {
                    2 + n.len()
                        + match v {
                            Value::String(s) => 4 + s.len(),
                            Value::Binary(b) => 4 + b.len(),
                            Value::Bool(_) => 1,
                            _ => 8,
                        }
                })
                .sum::<usize>();
            assert!(enc <= bs && enc + 6 >= bs, "bs {bs}: {enc}");
            assert_eq!(make_row(3, 1, bs), row, "deterministic");
        }
    }
}
