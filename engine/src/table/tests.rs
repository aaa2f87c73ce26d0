//! Unit tests of the typed-table layer on memory devices.

use super::*;
use crate::{format, EngineOptions, FormatOptions};
use ectable_devices::{open_backend, BackendKind, BlockDevice, IoBackend, MemDevice};

fn mem_io(mems: &[Arc<MemDevice>]) -> Arc<dyn IoBackend> {
    let devs: Vec<Arc<dyn BlockDevice>> = mems
        .iter()
        .map(|m| m.clone() as Arc<dyn BlockDevice>)
        .collect();
    open_backend(BackendKind::Psync, devs).unwrap()
}

fn fresh() -> (Vec<Arc<MemDevice>>, Arc<Engine>) {
    let mems: Vec<Arc<MemDevice>> = (0..6)
        .map(|i| Arc::new(MemDevice::new(&format!("m{i}"), 8 << 20)))
        .collect();
    let fmt = FormatOptions {
        chunk_size_bytes: 16 << 10,
        segment_size_bytes: 256 << 10,
        ..Default::default()
    };
    format(mem_io(&mems).as_ref(), &fmt).unwrap();
    let e = Arc::new(Engine::open(mem_io(&mems), EngineOptions::default()).unwrap());
    (mems, e)
}

/// A fresh array with typed table "t" of the given primary key.
fn fresh_table(pk: &str) -> (Arc<Engine>, Tables) {
    let (_mems, e) = fresh();
    let t = Tables::open(e.clone()).unwrap();
    t.create_table("t", &Schema::parse(pk).unwrap()).unwrap();
    (e, t)
}

fn reopen(mems: &[Arc<MemDevice>], e: Arc<Engine>, read_only: bool) -> Arc<Engine> {
    e.close().unwrap();
    drop(e);
    let opts = EngineOptions {
        read_only,
        ..Default::default()
    };
    Arc::new(Engine::open(mem_io(mems), opts).unwrap())
}

fn cols(pairs: &[(&str, Value)]) -> Columns {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect()
}

fn k2(region: &str, id: i64) -> Vec<Value> {
    vec![region.into(), id.into()]
}

#[test]
fn create_list_describe_drop_survive_reopen() {
    let (mems, e) = fresh();
    let t = Tables::open(e.clone()).unwrap();
    t.create_table("users", &Schema::parse("id:int64").unwrap())
        .unwrap();
    t.create_table("events", &Schema::parse("region:string,id:int64").unwrap())
        .unwrap();
    assert!(matches!(
        t.create_table("users", &Schema::parse("id:int64").unwrap()),
        Err(Error::TableExists(_))
    ));
    t.put_row("users", &[1.into()], &cols(&[("a", 1.into())]))
        .unwrap();
    drop(t);
    let e = reopen(&mems, e, false);
    let t = Tables::open(e.clone()).unwrap();
    let names: Vec<String> = t.list_tables().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["events", "users"]);
    let d = t.describe_table("users").unwrap();
    assert_eq!((d.schema.to_string(), d.row_count), ("id:int64".into(), 1));
    t.drop_table("users").unwrap();
    assert!(matches!(
        t.describe_table("users"),
        Err(Error::NoSuchTable(_))
    ));
    assert!(matches!(t.drop_table("users"), Err(Error::NoSuchTable(_))));
    // The name is free again, and the new table starts empty.
    t.create_table("users", &Schema::parse("name:string").unwrap())
        .unwrap();
    assert_eq!(t.describe_table("users").unwrap().row_count, 0);
    drop(t);
    let e = reopen(&mems, e, true);
    let t = Tables::open(e).unwrap();
    assert_eq!(
        t.describe_table("users").unwrap().schema.to_string(),
        "name:string"
    );
}

#[test]
fn handles_of_one_engine_share_state() {
    let (_mems, e) = fresh();
    let a = Tables::open(e.clone()).unwrap();
    let b = Tables::open(e.clone()).unwrap();
    a.create_table("t", &Schema::parse("id:int64").unwrap())
        .unwrap();
    assert!(b.schema("t").is_some());
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Tables>();
}

#[test]
fn rows_conditions_updates() {
    let (_e, t) = fresh_table("region:string,id:int64");
    let k = k2("eu", 7);
    let row = cols(&[
        ("score", 1.5.into()),
        ("ok", true.into()),
        ("tag", "x".into()),
        ("n", 3.into()),
        ("blob", vec![0u8, 1, 2].into()),
    ]);
    t.put_row_if("t", &k, &row, &Condition::RowAbsent).unwrap();
    assert_eq!(
        t.get_row("t", &k).unwrap(),
        Some(Row {
            key: k.clone(),
            columns: row.clone()
        })
    );
    let only = t.get_row_columns("t", &k, &["n", "missing"]).unwrap();
    assert_eq!(only.unwrap().columns, cols(&[("n", 3.into())]));

    // Failed conditions change nothing.
    for cond in [
        Condition::RowAbsent,
        Condition::column_equals("n", 4),
        Condition::column_equals("n", 3.0),
        Condition::column_equals("nope", 3),
    ] {
        let r = t.put_row_if("t", &k, &Columns::new(), &cond);
        assert!(matches!(r, Err(Error::ConditionFailed { .. })), "{cond:?}");
    }
    let r = t.delete_row_if("t", &k2("eu", 8), &Condition::RowExists);
    assert!(matches!(r, Err(Error::ConditionFailed { .. })));
    assert_eq!(t.get_row("t", &k).unwrap().unwrap().columns, row);

    // Update: set some, delete others, under a condition.
    t.update_row_if(
        "t",
        &k,
        &RowUpdate::new().set("n", 4).delete("tag").delete("absent"),
        &Condition::column_equals("n", 3),
    )
    .unwrap();
    let got = t.get_row("t", &k).unwrap().unwrap().columns;
    assert_eq!(got.get("n"), Some(&Value::Int64(4)));
    assert!(!got.contains_key("tag"));
    // Update of an absent row creates it.
    t.update_row("t", &k2("us", 1), &RowUpdate::new().set("a", "b"))
        .unwrap();
    assert!(t.get_row("t", &k2("us", 1)).unwrap().is_some());
    t.delete_row("t", &k).unwrap();
    assert_eq!(t.get_row("t", &k).unwrap(), None);
}

#[test]
fn batches_check_in_order_and_fail_whole() {
    let (_mems, e) = fresh();
    let t = Tables::open(e).unwrap();
    t.create_table("a", &Schema::parse("id:int64").unwrap())
        .unwrap();
    t.create_table("b", &Schema::parse("name:string").unwrap())
        .unwrap();
    let mut b = TableBatch::new();
    b.put_row_if(
        "a",
        &[1.into()],
        &cols(&[("v", 1.into())]),
        &Condition::RowAbsent,
    )
    // Sees the put above.
    .update_row_if(
        "a",
        &[1.into()],
        &RowUpdate::new().set("w", 2),
        &Condition::column_equals("v", 1),
    )
    .put_row("b", &["x".into()], &Columns::new());
    t.write(&b).unwrap();
    assert_eq!(
        t.get_row("a", &[1.into()]).unwrap().unwrap().columns,
        cols(&[("v", 1.into()), ("w", 2.into())])
    );
    // The last operation's condition fails: the first write does not happen either.
    let mut b = TableBatch::new();
    b.put_row("b", &["y".into()], &Columns::new())
        .require("a", &[2.into()], &Condition::RowExists);
    assert!(matches!(t.write(&b), Err(Error::ConditionFailed { .. })));
    assert_eq!(t.get_row("b", &["y".into()]).unwrap(), None);
}

#[test]
fn bad_input_is_typed_and_writes_nothing() {
    let (e, t) = fresh_table("id:int64,name:string");
    let lsn = e.sync().unwrap();
    let ok_key = vec![Value::from(1), Value::from("a")];
    let cases: Vec<(TableBatch, &str)> = vec![
        {
            let mut b = TableBatch::new();
            b.put_row("t", &[1.into()], &Columns::new());
            (b, "BAD_PRIMARY_KEY")
        },
        {
            let mut b = TableBatch::new();
            b.put_row("t", &["a".into(), "a".into()], &Columns::new());
            (b, "BAD_PRIMARY_KEY")
        },
        {
            let mut b = TableBatch::new();
            b.put_row("nope", &ok_key, &Columns::new());
            (b, "NO_SUCH_TABLE")
        },
        {
            let mut b = TableBatch::new();
            b.put_row("$schema", &ok_key, &Columns::new());
            (b, "RESERVED_TABLE_NAME")
        },
        {
            let mut b = TableBatch::new();
            b.put_row("t", &ok_key, &cols(&[("", 1.into())]));
            (b, "BAD_COLUMN")
        },
        {
            let mut b = TableBatch::new();
            b.put_row("t", &ok_key, &cols(&[("id", 1.into())]));
            (b, "BAD_COLUMN")
        },
        {
            let mut b = TableBatch::new();
            b.update_row("t", &ok_key, &RowUpdate::new().set("x", 1).delete("x"));
            (b, "BAD_COLUMN")
        },
        {
            let mut b = TableBatch::new();
            b.put_row("t", &ok_key, &cols(&[("big", vec![7u8; 300_000].into())]));
            (b, "VALUE_TOO_LARGE")
        },
        {
            // Each row fits; together they do not fit one stripe.
            let mut b = TableBatch::new();
            for i in 0..8 {
                b.put_row(
                    "t",
                    &[i.into(), "a".into()],
                    &cols(&[("big", vec![7u8; 40_000].into())]),
                );
            }
            (b, "VALUE_TOO_LARGE")
        },
    ];
    for (b, code) in cases {
        let err = t.write(&b).unwrap_err();
        assert_eq!(err.code(), code, "{err}");
    }
    assert!(matches!(
        t.create_table("$x", &Schema::parse("id:int64").unwrap()),
        Err(Error::ReservedTableName(_))
    ));
    e.put("kv", b"k", b"v").unwrap();
    assert!(matches!(
        t.create_table("kv", &Schema::parse("id:int64").unwrap()),
        Err(Error::WrongTableKind { .. })
    ));
    // Nothing but the one key/value put was appended.
    assert_eq!(e.sync().unwrap(), lsn + 1);
    assert_eq!(e.tables().iter().find(|(n, _)| n == "t"), None);
}

#[test]
fn ranges_bounds_prefix_reverse_resume() {
    let (_e, t) = fresh_table("region:string,id:int64");
    let regions = ["", "a", "a\0", "a\0b", "ab", "b"];
    let ids = [i64::MIN, -5, -1, 0, 1, 42, i64::MAX];
    let mut all = Vec::new();
    for r in regions {
        for i in ids {
            all.push(k2(r, i));
        }
    }
    // Insert in a scrambled order.
    for (n, k) in all.iter().enumerate().rev() {
        t.put_row("t", k, &cols(&[("n", (n as i64).into())]))
            .unwrap();
    }
    let keys = |p: &RangePage| p.rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>();
    let page = t.range("t", &RangeQuery::new()).unwrap();
    assert_eq!(keys(&page), all, "typed order");
    assert_eq!(page.next_start, None);
    let rev = t.range("t", &RangeQuery::new().reverse(true)).unwrap();
    let mut want = all.clone();
    want.reverse();
    assert_eq!(keys(&rev), want);

    // Prefix "a": exactly the 7 keys of region "a" (not "a\0" nor "ab").
    let p = t
        .range("t", &RangeQuery::new().prefix(vec!["a".into()]))
        .unwrap();
    assert_eq!(keys(&p), all[7..14].to_vec());
    // Inclusive and exclusive bounds, full and partial.
    let q = RangeQuery::new()
        .start(Bound::Excluded(k2("a", -1)))
        .end(Bound::Included(vec!["a\0".into()]));
    let got = keys(&t.range("t", &q).unwrap());
    assert_eq!(got, all[10..21].to_vec());
    let q = RangeQuery::new()
        .start(Bound::Excluded(vec!["a".into()]))
        .end(Bound::Excluded(vec!["ab".into()]));
    assert_eq!(keys(&t.range("t", &q).unwrap()), all[14..28].to_vec());
    // Empty and inverted ranges.
    let q = RangeQuery::new()
        .start(Bound::Included(k2("b", 0)))
        .end(Bound::Excluded(k2("a", 0)));
    assert!(t.range("t", &q).unwrap().rows.is_empty());

    // Pages of 4, both directions, reassemble the whole range.
    for reverse in [false, true] {
        let base = RangeQuery::new()
            .prefix(vec!["a\0".into()])
            .reverse(reverse)
            .limit(4)
            .columns(&["n"]);
        let mut q = base.clone();
        let mut seen = Vec::new();
        loop {
            let page = t.range("t", &q).unwrap();
            assert!(page.rows.len() <= 4);
            seen.extend(keys(&page));
            match page.next_start {
                Some(n) => q = base.clone().resume_from(n),
                None => break,
            }
        }
        let mut want = all[14..21].to_vec();
        if reverse {
            want.reverse();
        }
        assert_eq!(seen, want, "reverse={reverse}");
    }
    // Bad bounds are typed errors.
    let q = RangeQuery::new().start(Bound::Included(vec![1.into()]));
    assert!(matches!(t.range("t", &q), Err(Error::BadPrimaryKey { .. })));
    // A table with no rows reads empty.
    t.create_table("empty", &Schema::parse("id:int64").unwrap())
        .unwrap();
    assert!(t
        .range("empty", &RangeQuery::new())
        .unwrap()
        .rows
        .is_empty());
    assert_eq!(t.get_row("empty", &[1.into()]).unwrap(), None);
}

#[test]
fn range_views_read_what_ranges_read() {
    let (e, t) = fresh_table("id:int64");
    for i in 0..300i64 {
        let mut c = cols(&[
            ("a", i.into()),
            ("b", (i as f64 / 3.0).into()),
            ("c", (i % 2 == 0).into()),
            ("d", format!("text {i}").into()),
            ("e", vec![i as u8; (i % 7) as usize].into()),
        ]);
        if i % 5 == 0 {
            c.remove("c"); // rows need not have the same columns
        }
        t.put_row("t", &[i.into()], &c).unwrap();
    }
    let queries = [
        RangeQuery::new(),
        RangeQuery::new().reverse(true).limit(7),
        RangeQuery::new()
            .start(Bound::Excluded(vec![10.into()]))
            .limit(40)
            .columns(&["c", "e", "no such column"]),
        RangeQuery::new().start(Bound::Included(vec![1000.into()])),
    ];
    for q in &queries {
        let page = t.range("t", q).unwrap();
        let view = t.range_view("t", q).unwrap();
        assert_eq!(view.next_start, page.next_start);
        assert_eq!(view.rows.len(), page.rows.len());
        for (v, r) in view.rows.iter().zip(&page.rows) {
            assert_eq!(v.key, r.key);
            assert!(v.columns == r.columns, "{:?}: {:?}", q, v.key);
            assert_eq!(v.columns.len(), r.columns.len());
            assert_eq!(v.columns.to_columns(), r.columns);
            for (name, value) in &r.columns {
                assert!(v.columns.get(name) == Some(value.as_value_ref()));
            }
        }
    }
    // With the projection, a column left out is not there to look up.
    let q = RangeQuery::new().limit(1).columns(&["d"]);
    let view = t.range_view("t", &q).unwrap();
    assert_eq!(view.rows[0].columns.get("a"), None);
    assert_eq!(
        view.rows[0].columns.get("d"),
        Some(ValueRef::String("text 0"))
    );

    // A stored value that is not a row's encoding is a typed error, as for `range`.
    e.put(
        "t",
        &key::encode_key(&t.live_schema("t").unwrap(), "t", &[5.into()]).unwrap(),
        b"\x01\x09",
    )
    .unwrap();
    let q = RangeQuery::new().limit(10);
    assert!(matches!(
        t.range("t", &q),
        Err(Error::CorruptTableData { .. })
    ));
    assert!(matches!(
        t.range_view("t", &q),
        Err(Error::CorruptTableData { .. })
    ));
}

#[test]
fn range_iter_streams_what_range_view_pages() {
    let (e, t) = fresh_table("g:int64,id:int64");
    // More rows than one page of the streaming scan, in two key groups.
    let n = crate::log::scan::PAGE_ROWS as i64 * 2 + 100;
    for i in 0..n {
        let c = cols(&[("v", i.into()), ("s", format!("{i:05}").into())]);
        t.put_row("t", &[(i % 2).into(), i.into()], &c).unwrap();
    }
    let queries = [
        RangeQuery::new(),
        RangeQuery::new().reverse(true),
        RangeQuery::new().prefix(vec![1.into()]).columns(&["s"]),
        RangeQuery::new()
            .start(Bound::Excluded(vec![0.into(), 10.into()]))
            .end(Bound::Included(vec![1.into(), 7.into()]))
            .reverse(true)
            .limit(2500),
        RangeQuery::new().limit(3),
        // Empty, and inverted.
        RangeQuery::new().prefix(vec![2.into()]),
        RangeQuery::new()
            .start(Bound::Included(vec![1.into()]))
            .end(Bound::Excluded(vec![0.into()])),
    ];
    for q in &queries {
        let streamed: Vec<RowView> = t.range_iter("t", q).unwrap().map(Result::unwrap).collect();
        // The same rows, paged 1,000 at a time.
        let mut paged: Vec<RowView> = Vec::new();
        let mut page_q = q.clone().limit(q.limit.min(1000));
        loop {
            let page = t.range_view("t", &page_q).unwrap();
            paged.extend(page.rows);
            match page.next_start {
                Some(next) if paged.len() < q.limit => {
                    let left = q.limit - paged.len();
                    page_q = q.clone().resume_from(next).limit(left.min(1000));
                }
                _ => break,
            }
        }
        assert_eq!(streamed.len(), paged.len(), "{q:?}");
        for (s, p) in streamed.iter().zip(&paged) {
            assert_eq!(s.key, p.key);
            assert!(s.columns == p.columns.to_columns());
        }
    }
    assert_eq!(
        t.range_iter("t", &RangeQuery::new()).unwrap().count() as i64,
        n
    );
    // A limit also bounds what is read: not a whole page, nor the pages ahead.
    let reads = || {
        e.shared
            .counters
            .reads
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = reads();
    let q = RangeQuery::new().reverse(true).limit(3);
    assert_eq!(t.range_iter("t", &q).unwrap().count(), 3);
    assert!(
        reads() - before <= 3,
        "{} reads for 3 rows",
        reads() - before
    );
    // A bad bound is refused when the iterator is made.
    let q = RangeQuery::new().start(Bound::Included(vec!["x".into()]));
    assert!(matches!(
        t.range_iter("t", &q),
        Err(Error::BadPrimaryKey { .. })
    ));
    // A stored value that is not a row: the error, then the end.
    e.put(
        "t",
        &key::encode_key(&t.live_schema("t").unwrap(), "t", &[0.into(), 4.into()]).unwrap(),
        b"\x01\x09",
    )
    .unwrap();
    let mut it = t.range_iter("t", &RangeQuery::new()).unwrap();
    let got: Vec<bool> = it.by_ref().take(4).map(|r| r.is_ok()).collect();
    // Rows (0, 0) and (0, 2), then the damaged (0, 4), then nothing.
    assert_eq!(got, [true, true, false]);
    assert!(it.next().is_none());
}

#[test]
fn interrupted_drop_is_finished_by_the_next_open() {
    let (mems, e) = fresh();
    let t = Tables::open(e.clone()).unwrap();
    let s = Schema::parse("id:int64").unwrap();
    t.create_table("t", &s).unwrap();
    for i in 0..50 {
        t.put_row("t", &[i.into()], &cols(&[("v", i.into())]))
            .unwrap();
    }
    t.sync().unwrap();
    drop(t);
    // What a crash right after the drop's first step leaves: the mark, all the rows.
    e.put_sync_any(
        SCHEMA_TABLE,
        b"t",
        &schema::encode_record(&s, TableState::Dropping),
    )
    .unwrap();
    let e = reopen(&mems, e, true);
    // Read-only: the table is gone for readers, the rows are still there.
    let t = Tables::open(e.clone()).unwrap();
    assert!(t.list_tables().is_empty());
    assert!(matches!(
        t.get_row("t", &[1.into()]),
        Err(Error::NoSuchTable(_))
    ));
    assert_eq!(
        e.tables(),
        vec![("$schema".to_string(), 1), ("t".into(), 50)]
    );
    drop(t);
    let e = reopen(&mems, e, false);
    let t = Tables::open(e.clone()).unwrap();
    assert!(t.list_tables().is_empty());
    assert!(e.tables().is_empty(), "{:?}", e.tables());
}

#[test]
fn concurrent_writers_lose_no_update() {
    let (_mems, e) = fresh();
    let t = Tables::open(e).unwrap();
    t.create_table("c", &Schema::parse("id:int64").unwrap())
        .unwrap();
    t.put_row("c", &[0.into()], &cols(&[("n", 0.into())]))
        .unwrap();
    let (threads, rounds) = (4i64, 50i64);
    let winners: i64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|w| {
                let t = t.clone();
                s.spawn(move || {
                    for _ in 0..rounds {
                        // Optimistic increment: retried until the guarded write wins.
                        loop {
                            let row = t.get_row("c", &[0.into()]).unwrap().unwrap();
                            let n = row.columns["n"].as_i64().unwrap();
                            let r = t.update_row_if(
                                "c",
                                &[0.into()],
                                &RowUpdate::new().set("n", n + 1),
                                &Condition::column_equals("n", n),
                            );
                            match r {
                                Ok(_) => break,
                                Err(Error::ConditionFailed { .. }) => continue,
                                Err(e) => panic!("{e}"),
                            }
                        }
                        // Unconditional updates of disjoint columns of one row.
                        t.update_row("c", &[1.into()], &RowUpdate::new().set(&format!("w{w}"), w))
                            .unwrap();
                    }
                    // Exactly one creator wins.
                    let r = t.put_row_if("c", &[2.into()], &Columns::new(), &Condition::RowAbsent);
                    i64::from(r.is_ok())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(winners, 1);
    let n = t.get_row("c", &[0.into()]).unwrap().unwrap().columns["n"].clone();
    assert_eq!(n, Value::Int64(threads * rounds));
    let row1 = t.get_row("c", &[1.into()]).unwrap().unwrap();
    assert_eq!(row1.columns.len(), threads as usize);
}
