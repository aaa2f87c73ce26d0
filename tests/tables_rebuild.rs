//! Typed tables survive a device replacement: RS(4,2) on memory devices holds two typed
//! tables; a device dies, a fresh device takes its slot and is rebuilt; then, with the dead
//! device gone, the schemas (stored as records of the system table `$schema`) and every row
//! read back exactly, with no degraded read; and a table dropped after the rebuild stays
//! dropped across a reopen.

mod common;
use common::*;
use ectable::devices::{open_backend, BackendKind, BlockDevice, FaultyDevice, MemDevice};
use ectable::table::{Columns, RangeQuery, Schema, Tables, Value};
use ectable::{format, Engine, EngineOptions, RebuildOptions};
use std::sync::Arc;

fn row(i: i64) -> Columns {
    Columns::from([
        ("n".to_string(), Value::Int64(i)),
        ("half".to_string(), Value::Double(i as f64 / 2.0)),
        ("even".to_string(), Value::Bool(i % 2 == 0)),
        ("tag".to_string(), Value::from(format!("tag-{i}"))),
        (
            "blob".to_string(),
            Value::Binary(value_for(i as u64, 3, 100 + (i as usize * 97) % 3000)),
        ),
    ])
}

fn key(t: &str, i: i64) -> Vec<Value> {
    match t {
        "users" => vec![Value::Int64(i - 100)],
        _ => vec![Value::from(format!("r{}", i % 3)), Value::Int64(i)],
    }
}

fn engine_over(devs: Vec<Arc<dyn BlockDevice>>, read_only: bool) -> Arc<Engine> {
    let io = open_backend(BackendKind::Psync, devs).unwrap();
    let opts = EngineOptions {
        read_only,
        ..Default::default()
    };
    Arc::new(Engine::open(io, opts).unwrap())
}

fn verify(t: &Tables) {
    for (name, spec) in [("users", "id:int64"), ("events", "region:string,seq:int64")] {
        let info = t.describe_table(name).unwrap();
        assert_eq!(info.schema.to_string(), spec);
        assert_eq!(info.row_count, 300);
        let page = t.range(name, &RangeQuery::new()).unwrap();
        assert_eq!(page.rows.len(), 300);
        for i in 0..300 {
            let r = t.get_row(name, &key(name, i)).unwrap();
            assert_eq!(r.map(|r| r.columns), Some(row(i)), "{name} row {i}");
        }
    }
}

#[test]
fn schemas_and_rows_survive_replace_and_rebuild() {
    let (_mems, faulty) = mem_devices(6, 8 << 20, 31);
    format(io_of(&faulty).as_ref(), &fmt_opts(4, 2)).unwrap();
    {
        let e = Arc::new(open_engine_on(io_of(&faulty)));
        let t = Tables::open(e.clone()).unwrap();
        t.create_table("users", &Schema::parse("id:int64").unwrap())
            .unwrap();
        t.create_table("events", &Schema::parse("region:string,seq:int64").unwrap())
            .unwrap();
        for i in 0..300 {
            for name in ["users", "events"] {
                t.put_row(name, &key(name, i), &row(i)).unwrap();
            }
        }
        e.close().unwrap();
    }
    faulty[3].set_failed(true);
    let fresh = Arc::new(FaultyDevice::new(
        Arc::new(MemDevice::new("fresh", 8 << 20)),
        99,
    ));
    let mut devs: Vec<Arc<dyn BlockDevice>> = faulty
        .iter()
        .map(|f| f.clone() as Arc<dyn BlockDevice>)
        .collect();
    devs.push(fresh.clone());
    {
        let e = engine_over(devs, false);
        e.replace(3, 6).unwrap();
        let p = e.rebuild(&RebuildOptions::default(), &mut |_| {}).unwrap();
        assert!(p.unrecoverable.is_empty(), "{:?}", p.unrecoverable);
        e.close().unwrap();
    }
    let mut healthy: Vec<Arc<dyn BlockDevice>> = faulty
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, f)| f.clone() as Arc<dyn BlockDevice>)
        .collect();
    healthy.push(fresh);
    {
        let e = engine_over(healthy.clone(), false);
        let t = Tables::open(e.clone()).unwrap();
        verify(&t);
        assert_eq!(e.status().degraded_reads, 0, "rebuilt chunks must be whole");
        t.drop_table("events").unwrap();
        e.close().unwrap();
    }
    let e = engine_over(healthy, true);
    let t = Tables::open(e.clone()).unwrap();
    let names: Vec<String> = t.list_tables().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["users"]);
    assert!(!e.tables().iter().any(|(n, _)| n == "events"));
}
