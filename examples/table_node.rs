//! A storage node embedding ectable's typed tables: it opens (formatting on first start) an
//! RS(4,2) array on six file-backed devices, and serves requests from several worker threads
//! through one shared [`Tables`] handle:
//!
//! - `users` (`id:int64`): accounts, created only if absent (`Condition::RowAbsent`);
//! - `orders` (`user:int64,seq:int64`): a user's orders, next to each other in key order.
//!
//! Placing an order is one atomic batch across both tables: insert the order row and bump the
//! user's `orders` counter, guarded by the counter's current value (optimistic concurrency:
//! a worker that loses the race retries with the new value). Afterwards the node lists a
//! user's orders with a paginated prefix range read, newest first, closes, reopens, and
//! checks that every counter equals the number of orders stored.
//!
//! Run: `cargo run --release --example table_node -- [DIR]` (default: a temporary directory).

use ectable::devices::{open_backend, BackendKind, BlockDevice, FileDevice, OpenOptions};
use ectable::table::{Columns, Condition, RangeQuery, Schema, TableBatch, Tables, Value};
use ectable::{format, Engine, EngineOptions, Error, FormatOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const USERS: i64 = 20;
const WORKERS: i64 = 4;
const ORDERS_PER_WORKER: i64 = 200;

fn open_node(dir: &Path) -> Result<(Arc<Engine>, Tables), Error> {
    let paths: Vec<PathBuf> = (0..6).map(|i| dir.join(format!("dev{i}.img"))).collect();
    let fresh = !paths[0].exists();
    let devices: Vec<Arc<dyn BlockDevice>> = paths
        .iter()
        .map(|p| {
            let opts = OpenOptions {
                create_size_bytes: fresh.then_some(64 << 20),
                ..Default::default()
            };
            FileDevice::open(p, &opts).map(|d| Arc::new(d) as Arc<dyn BlockDevice>)
        })
        .collect::<Result<_, _>>()?;
    let io = open_backend(BackendKind::Auto, devices)?;
    if fresh {
        let opts = FormatOptions {
            chunk_size_bytes: 16 << 10,
            ..Default::default()
        };
        format(io.as_ref(), &opts)?;
    }
    let engine = Arc::new(Engine::open(io, EngineOptions::default())?);
    let tables = Tables::open(engine.clone())?;
    for (name, pk) in [("users", "id:int64"), ("orders", "user:int64,seq:int64")] {
        match tables.create_table(name, &Schema::parse(pk)?) {
            Ok(()) | Err(Error::TableExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((engine, tables))
}

/// Creates the account unless it exists.
fn create_user(t: &Tables, id: i64) -> Result<(), Error> {
    let row = Columns::from([
        ("name".to_string(), Value::from(format!("user-{id}"))),
        ("orders".to_string(), Value::Int64(0)),
    ]);
    match t.put_row_if("users", &[id.into()], &row, &Condition::RowAbsent) {
        Ok(_) | Err(Error::ConditionFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Places an order: the order row and the user's counter change together, or not at all.
/// Returns how many times the worker lost a race and retried.
fn place_order(t: &Tables, user: i64, amount: f64) -> Result<u32, Error> {
    for retries in 0.. {
        let count = t
            .get_row_columns("users", &[user.into()], &["orders"])?
            .and_then(|r| r.columns.get("orders").and_then(Value::as_i64))
            .unwrap_or(0);
        let order = Columns::from([
            ("amount".to_string(), Value::Double(amount)),
            ("paid".to_string(), Value::Bool(false)),
        ]);
        let bump = ectable::table::RowUpdate::new().set("orders", count + 1);
        let mut batch = TableBatch::new();
        batch
            .put_row_if(
                "orders",
                &[user.into(), (count + 1).into()],
                &order,
                &Condition::RowAbsent,
            )
            .update_row_if(
                "users",
                &[user.into()],
                &bump,
                &Condition::column_equals("orders", count),
            );
        match t.write(&batch) {
            Ok(_) => return Ok(retries),
            Err(Error::ConditionFailed { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp;
    let dir = match std::env::args().nth(1) {
        Some(d) => PathBuf::from(d),
        None => {
            tmp = std::env::temp_dir().join(format!("ectable-node-{}", std::process::id()));
            std::fs::create_dir_all(&tmp)?;
            tmp.clone()
        }
    };
    let (engine, tables) = open_node(&dir)?;
    for id in 0..USERS {
        create_user(&tables, id)?;
    }
    let retries: u32 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let t = tables.clone();
                s.spawn(move || -> Result<u32, Error> {
                    let mut retries = 0;
                    for i in 0..ORDERS_PER_WORKER {
                        let user = (w * 7 + i * 3) % USERS;
                        retries += place_order(&t, user, (i as f64) * 1.25)?;
                    }
                    Ok(retries)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::InvalidArgument("a worker panicked".into())))
            })
            .sum::<Result<u32, Error>>()
    })?;
    tables.sync()?;
    println!(
        "placed {} orders from {WORKERS} workers ({retries} optimistic retries)",
        WORKERS * ORDERS_PER_WORKER
    );

    // User 3's orders, newest first, 10 per page.
    let base = RangeQuery::new()
        .prefix(vec![3.into()])
        .reverse(true)
        .limit(10)
        .columns(&["amount"]);
    let (mut q, mut pages, mut rows) = (base.clone(), 0, 0);
    loop {
        let page = tables.range("orders", &q)?;
        pages += 1;
        rows += page.rows.len();
        match page.next_start {
            Some(next) => q = base.clone().resume_from(next),
            None => break,
        }
    }
    println!("user 3 has {rows} orders ({pages} pages of at most 10)");
    engine.close()?;
    drop((tables, engine));

    // Restart: every counter equals the orders stored.
    let (engine, tables) = open_node(&dir)?;
    let mut total = 0;
    for id in 0..USERS {
        let user = tables.get_row("users", &[id.into()])?.ok_or("user lost")?;
        let count = user
            .columns
            .get("orders")
            .and_then(Value::as_i64)
            .unwrap_or(-1);
        let stored = tables
            .range("orders", &RangeQuery::new().prefix(vec![id.into()]))?
            .rows
            .len() as i64;
        assert_eq!(count, stored, "user {id}");
        total += stored;
    }
    println!("after restart: {total} orders, every counter matches");
    for info in tables.list_tables() {
        println!(
            "  table {:<8} ({}) {} rows",
            info.name, info.schema, info.row_count
        );
    }
    engine.close()?;
    if std::env::args().nth(1).is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
