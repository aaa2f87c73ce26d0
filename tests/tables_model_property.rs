//! Typed tables against an in-memory model: random sequences of table operations (puts,
//! updates, deletes, conditional writes, multi-table batches, point reads, range reads with
//! bounds, prefixes, both directions and pagination, drop and re-create) run on RS(4,2) over
//! memory devices, interleaved with reopens and with device losses (a reopen with one device
//! left out, or failing every request with EIO, so that reads are rebuilt from parity). After
//! every step the engine's answers must equal the model's; after every reopen and loss, the
//! whole content of every table must.
//!
//! The model orders keys by their typed values (int64 numerically, string and binary
//! bytewise), independently of the byte encoding the engine uses, so the range results also
//! check that the encoding preserves order.

mod common;
use common::*;
use ectable::devices::{FaultyDevice, IoBackend};
use ectable::table::{
    Columns, Condition, RangePage, RangeQuery, Row, RowUpdate, Schema, TableBatch, Tables, Value,
};
use ectable::{format, Engine, EngineOptions, Error};
use proptest::prelude::*;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

const TABLES: [(&str, &str); 3] = [
    ("a", "id:int64"),
    ("b", "s:string,n:int64"),
    ("c", "h:binary,s:string"),
];

// ---------------------------------------------------------------------------------------
// The model.

fn cmp_val(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Int64(x), Value::Int64(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Binary(x), Value::Binary(y)) => x.cmp(y),
        _ => panic!("keys of one table have one type per column: {a:?} {b:?}"),
    }
}

/// Typed comparison of the first `min(len)` components.
fn cmp_prefix(key: &[Value], p: &[Value]) -> Ordering {
    for (a, b) in key.iter().zip(p) {
        let o = cmp_val(a, b);
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MKey(Vec<Value>);

impl Ord for MKey {
    fn cmp(&self, other: &MKey) -> Ordering {
        cmp_prefix(&self.0, &other.0).then(self.0.len().cmp(&other.0.len()))
    }
}

impl PartialOrd for MKey {
    fn partial_cmp(&self, other: &MKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

type Model = BTreeMap<&'static str, BTreeMap<MKey, Columns>>;

fn holds(cond: &Condition, row: Option<&Columns>) -> bool {
    match cond {
        Condition::RowExists => row.is_some(),
        Condition::RowAbsent => row.is_none(),
        Condition::ColumnEquals { column, value } => {
            row.and_then(|r| r.get(column)).is_some_and(|v| v == value)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Operations.

#[derive(Debug, Clone)]
enum Write {
    Put(Columns),
    Update(Columns, Vec<String>),
    Delete,
    Check,
}

#[derive(Debug, Clone)]
struct WriteOp {
    table: usize,
    key: Vec<Value>,
    write: Write,
    cond: Option<Condition>,
}

#[derive(Debug, Clone)]
enum Op {
    Batch(Vec<WriteOp>),
    Get {
        table: usize,
        key: Vec<Value>,
        columns: Option<Vec<String>>,
    },
    Range {
        table: usize,
        start: Bound<Vec<Value>>,
        end: Bound<Vec<Value>>,
        prefix: Option<Vec<Value>>,
        reverse: bool,
        limit: usize,
    },
    Sync,
    Reopen,
    /// Reopen read-only with device `slot` lost (left out, or failing with EIO), check
    /// everything, then reopen whole.
    DeviceLoss {
        slot: usize,
        eio: bool,
    },
    DropCreate(usize),
}

fn int_s() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..3),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(-1i64 << 40)
    ]
    .prop_map(Value::Int64)
}

fn str_s() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(""),
        Just("a"),
        Just("a\0"),
        Just("a\0b"),
        Just("ab"),
        Just("b"),
        Just("\u{e9}")
    ]
    .prop_map(Value::from)
}

fn bin_s() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(vec![]),
        Just(vec![0u8]),
        Just(vec![0u8, 0]),
        Just(vec![0u8, 0xFF]),
        Just(vec![1u8]),
        Just(vec![0xFFu8]),
    ]
    .prop_map(Value::Binary)
}

/// A full key (`n` = column count) or a leading part of one, of table `t`.
fn key_s(t: usize, n: usize) -> BoxedStrategy<Vec<Value>> {
    let comps: Vec<BoxedStrategy<Value>> = match t {
        0 => vec![int_s().boxed()],
        1 => vec![str_s().boxed(), int_s().boxed()],
        _ => vec![bin_s().boxed(), str_s().boxed()],
    };
    comps.into_iter().take(n).collect::<Vec<_>>().boxed()
}

fn arity(t: usize) -> usize {
    if t == 0 {
        1
    } else {
        2
    }
}

fn partial_key_s(t: usize) -> BoxedStrategy<Vec<Value>> {
    (1..=arity(t)).prop_flat_map(move |n| key_s(t, n)).boxed()
}

fn value_s() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-2i64..3).prop_map(Value::Int64),
        prop_oneof![Just(0.0f64), Just(-0.0), Just(1.5), Just(f64::NAN)].prop_map(Value::Double),
        any::<bool>().prop_map(Value::Bool),
        str_s(),
        bin_s(),
        // Now and then a large value, so that rows span more of a stripe.
        (1usize..6000).prop_map(|n| Value::Binary(vec![0xA5; n])),
    ]
}

const COLS: [&str; 5] = ["c0", "c1", "c2", "c3", "c4"];

fn col_s() -> impl Strategy<Value = String> {
    (0..COLS.len()).prop_map(|i| COLS[i].to_string())
}

fn cols_s() -> impl Strategy<Value = Columns> {
    proptest::collection::btree_map(col_s(), value_s(), 0..4)
}

fn cond_s() -> impl Strategy<Value = Option<Condition>> {
    prop_oneof![
        4 => Just(None),
        1 => Just(Some(Condition::RowExists)),
        1 => Just(Some(Condition::RowAbsent)),
        2 => (col_s(), value_s()).prop_map(|(column, value)| Some(Condition::ColumnEquals { column, value })),
    ]
}

fn write_op_s() -> impl Strategy<Value = WriteOp> {
    (0..TABLES.len()).prop_flat_map(|t| {
        let write = prop_oneof![
            4 => cols_s().prop_map(Write::Put),
            2 => (cols_s(), proptest::collection::vec(col_s(), 0..3)).prop_map(|(set, del)| {
                let del = del.into_iter().filter(|d| !set.contains_key(d)).collect();
                Write::Update(set, del)
            }),
            2 => Just(Write::Delete),
            1 => Just(Write::Check),
        ];
        (key_s(t, arity(t)), write, cond_s()).prop_map(move |(key, write, cond)| {
            let cond = match write {
                Write::Check => cond.or(Some(Condition::RowExists)),
                _ => cond,
            };
            WriteOp {
                table: t,
                key,
                write,
                cond,
            }
        })
    })
}

fn bound_s(t: usize) -> impl Strategy<Value = Bound<Vec<Value>>> {
    prop_oneof![
        2 => Just(Bound::Unbounded),
        1 => partial_key_s(t).prop_map(Bound::Included),
        1 => partial_key_s(t).prop_map(Bound::Excluded),
    ]
}

fn op_s() -> impl Strategy<Value = Op> {
    let range = (0..TABLES.len()).prop_flat_map(|t| {
        (
            bound_s(t),
            bound_s(t),
            proptest::option::weighted(0.3, partial_key_s(t)),
            any::<bool>(),
            prop_oneof![Just(usize::MAX), 0usize..5],
        )
            .prop_map(move |(start, end, prefix, reverse, limit)| Op::Range {
                table: t,
                start,
                end,
                prefix,
                reverse,
                limit,
            })
    });
    let get = (0..TABLES.len()).prop_flat_map(|t| {
        (
            key_s(t, arity(t)),
            proptest::option::weighted(0.3, proptest::collection::vec(col_s(), 0..3)),
        )
            .prop_map(move |(key, columns)| Op::Get {
                table: t,
                key,
                columns,
            })
    });
    prop_oneof![
        10 => write_op_s().prop_map(|w| Op::Batch(vec![w])),
        3 => proptest::collection::vec(write_op_s(), 2..5).prop_map(Op::Batch),
        4 => get,
        4 => range,
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        1 => (0usize..6, any::<bool>()).prop_map(|(slot, eio)| Op::DeviceLoss { slot, eio }),
        1 => (0..TABLES.len()).prop_map(Op::DropCreate),
    ]
}

// ---------------------------------------------------------------------------------------
// The system under test.

struct Sut {
    faulty: Vec<Arc<FaultyDevice>>,
    engine: Arc<Engine>,
    tables: Tables,
}

fn io_all(faulty: &[Arc<FaultyDevice>]) -> Arc<dyn IoBackend> {
    io_subset(faulty, &(0..faulty.len()).collect::<Vec<_>>())
}

fn open(io: Arc<dyn IoBackend>, read_only: bool) -> (Arc<Engine>, Tables) {
    let opts = EngineOptions {
        read_only,
        ..Default::default()
    };
    let engine = Arc::new(Engine::open(io, opts).expect("open engine"));
    let tables = Tables::open(engine.clone()).expect("open tables");
    (engine, tables)
}

impl Sut {
    fn new(seed: u64) -> Sut {
        let (_mems, faulty) = mem_devices(6, 16 << 20, seed);
        format(io_all(&faulty).as_ref(), &fmt_opts(4, 2)).expect("format");
        let (engine, tables) = open(io_all(&faulty), false);
        for (name, spec) in TABLES {
            tables
                .create_table(name, &Schema::parse(spec).expect("schema"))
                .expect("create");
        }
        Sut {
            faulty,
            engine,
            tables,
        }
    }

    fn close(&mut self) {
        self.engine.close().expect("close");
    }

    fn reopen_with(&mut self, io: Arc<dyn IoBackend>, read_only: bool) {
        self.close();
        let (engine, tables) = open(io, read_only);
        self.engine = engine;
        self.tables = tables;
    }
}

fn expected_range(
    rows: &BTreeMap<MKey, Columns>,
    start: &Bound<Vec<Value>>,
    end: &Bound<Vec<Value>>,
    prefix: &Option<Vec<Value>>,
    reverse: bool,
) -> Vec<Row> {
    let mut out: Vec<Row> = rows
        .iter()
        .filter(|(k, _)| match start {
            Bound::Unbounded => true,
            Bound::Included(p) => cmp_prefix(&k.0, p) != Ordering::Less,
            Bound::Excluded(p) => cmp_prefix(&k.0, p) == Ordering::Greater,
        })
        .filter(|(k, _)| match end {
            Bound::Unbounded => true,
            Bound::Included(p) => cmp_prefix(&k.0, p) != Ordering::Greater,
            Bound::Excluded(p) => cmp_prefix(&k.0, p) == Ordering::Less,
        })
        .filter(|(k, _)| {
            prefix
                .as_ref()
                .is_none_or(|p| cmp_prefix(&k.0, p) == Ordering::Equal)
        })
        .map(|(k, c)| Row {
            key: k.0.clone(),
            columns: c.clone(),
        })
        .collect();
    if reverse {
        out.reverse();
    }
    out
}

/// Every table's whole content, by range read and by point reads.
fn check_all(sut: &Sut, model: &Model, ctx: &str) {
    for (t, (name, _)) in TABLES.iter().enumerate() {
        let rows = &model[name];
        let page = sut
            .tables
            .range(name, &RangeQuery::new())
            .unwrap_or_else(|e| panic!("{ctx}: range of {name}: {e}"));
        let want = expected_range(rows, &Bound::Unbounded, &Bound::Unbounded, &None, false);
        assert_eq!(page.rows, want, "{ctx}: content of table {name}");
        let keys: Vec<Vec<Value>> = rows.keys().map(|k| k.0.clone()).collect();
        let got = sut
            .tables
            .get_rows(name, &keys)
            .unwrap_or_else(|e| panic!("{ctx}: get_rows of {name}: {e}"));
        for ((k, c), g) in rows.iter().zip(got) {
            assert_eq!(g.map(|r| r.columns), Some(c.clone()), "{ctx}: {name} {k:?}");
        }
        let info = sut.tables.describe_table(name).expect("describe");
        assert_eq!(info.row_count, rows.len(), "{ctx}: row count of {name}");
        assert_eq!(info.schema.to_string(), TABLES[t].1);
    }
}

fn apply_batch(sut: &Sut, model: &mut Model, ops: &[WriteOp], ctx: &str) {
    // The model's verdict, computed on a copy.
    let mut after = model.clone();
    let mut ok = true;
    for w in ops {
        let name = TABLES[w.table].0;
        let rows = after.get_mut(name).expect("table");
        let k = MKey(w.key.clone());
        if let Some(c) = &w.cond {
            if !holds(c, rows.get(&k)) {
                ok = false;
                break;
            }
        }
        match &w.write {
            Write::Put(cols) => {
                rows.insert(k, cols.clone());
            }
            Write::Update(set, del) => {
                let row = rows.entry(k).or_default();
                for d in del {
                    row.remove(d);
                }
                for (c, v) in set {
                    row.insert(c.clone(), v.clone());
                }
            }
            Write::Delete => {
                rows.remove(&k);
            }
            Write::Check => {}
        }
    }
    let mut batch = TableBatch::new();
    for w in ops {
        let name = TABLES[w.table].0;
        match (&w.write, &w.cond) {
            (Write::Put(c), None) => batch.put_row(name, &w.key, c),
            (Write::Put(c), Some(cond)) => batch.put_row_if(name, &w.key, c, cond),
            (Write::Update(set, del), cond) => {
                let mut u = RowUpdate::new();
                for (c, v) in set {
                    u = u.set(c, v.clone());
                }
                for d in del {
                    u = u.delete(d);
                }
                match cond {
                    None => batch.update_row(name, &w.key, &u),
                    Some(cond) => batch.update_row_if(name, &w.key, &u, cond),
                }
            }
            (Write::Delete, None) => batch.delete_row(name, &w.key),
            (Write::Delete, Some(cond)) => batch.delete_row_if(name, &w.key, cond),
            (Write::Check, cond) => {
                batch.require(name, &w.key, cond.as_ref().unwrap_or(&Condition::RowExists))
            }
        };
    }
    match sut.tables.write(&batch) {
        Ok(_) => {
            assert!(
                ok,
                "{ctx}: the batch was written but a condition fails in the model"
            );
            *model = after;
        }
        Err(Error::ConditionFailed { .. }) => {
            assert!(
                !ok,
                "{ctx}: the batch failed a condition the model says holds"
            );
        }
        // Several large values may not fit one stripe: refused whole, like a failed condition.
        Err(Error::ValueTooLarge { .. }) => {}
        Err(e) => panic!("{ctx}: batch failed: {e}"),
    }
}

fn run(ops: &[Op], seed: u64) {
    let mut sut = Sut::new(seed);
    let mut model: Model = TABLES.iter().map(|(n, _)| (*n, BTreeMap::new())).collect();
    for (i, op) in ops.iter().enumerate() {
        let ctx = format!("op #{i} {op:?}");
        match op {
            Op::Batch(w) => apply_batch(&sut, &mut model, w, &ctx),
            Op::Get {
                table,
                key,
                columns,
            } => {
                let name = TABLES[*table].0;
                let got = match columns {
                    None => sut.tables.get_row(name, key),
                    Some(c) => {
                        let refs: Vec<&str> = c.iter().map(String::as_str).collect();
                        sut.tables.get_row_columns(name, key, &refs)
                    }
                }
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                let want = model[name].get(&MKey(key.clone())).map(|c| {
                    c.iter()
                        .filter(|(n, _)| columns.as_ref().is_none_or(|w| w.contains(n)))
                        .map(|(n, v)| (n.clone(), v.clone()))
                        .collect::<Columns>()
                });
                assert_eq!(got.map(|r| r.columns), want, "{ctx}");
            }
            Op::Range {
                table,
                start,
                end,
                prefix,
                reverse,
                limit,
            } => {
                let name = TABLES[*table].0;
                let want = expected_range(&model[name], start, end, prefix, *reverse);
                let mut q = RangeQuery::new()
                    .start(start.clone())
                    .end(end.clone())
                    .reverse(*reverse)
                    .limit(*limit);
                if let Some(p) = prefix {
                    q = q.prefix(p.clone());
                }
                // Page through with the limit; limit 0 never progresses, read one page only.
                let mut got: Vec<Row> = Vec::new();
                let mut pages = 0;
                let mut cur = q.clone();
                loop {
                    let RangePage { rows, next_start } = sut
                        .tables
                        .range(name, &cur)
                        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    assert!(rows.len() <= *limit, "{ctx}: page over the limit");
                    got.extend(rows);
                    pages += 1;
                    match next_start {
                        Some(n) if *limit > 0 => {
                            assert_eq!(
                                Some(&n),
                                want.get(got.len()).map(|r| &r.key),
                                "{ctx}: next start"
                            );
                            cur = q.clone().resume_from(n);
                        }
                        Some(_) => break,
                        None => break,
                    }
                    assert!(pages <= want.len() + 1, "{ctx}: pagination does not end");
                }
                if *limit == 0 {
                    assert!(got.is_empty());
                } else {
                    assert_eq!(got, want, "{ctx}");
                }
            }
            Op::Sync => {
                sut.tables.sync().expect("sync");
            }
            Op::Reopen => {
                let io = io_all(&sut.faulty);
                sut.reopen_with(io, false);
                check_all(&sut, &model, &ctx);
            }
            Op::DeviceLoss { slot, eio } => {
                let io = if *eio {
                    sut.faulty[*slot].set_failed(true);
                    io_all(&sut.faulty)
                } else {
                    let keep: Vec<usize> = (0..6).filter(|s| s != slot).collect();
                    io_subset(&sut.faulty, &keep)
                };
                sut.reopen_with(io, true);
                check_all(&sut, &model, &ctx);
                sut.faulty[*slot].set_failed(false);
                let io = io_all(&sut.faulty);
                sut.reopen_with(io, false);
                check_all(&sut, &model, &ctx);
            }
            Op::DropCreate(t) => {
                let (name, spec) = TABLES[*t];
                sut.tables.drop_table(name).expect("drop");
                assert!(matches!(
                    sut.tables.get_row(name, &model_any_key(*t)),
                    Err(Error::NoSuchTable(_))
                ));
                sut.tables
                    .create_table(name, &Schema::parse(spec).expect("schema"))
                    .expect("create again");
                model.insert(name, BTreeMap::new());
            }
        }
    }
    // Finally: everything survives a last reopen.
    let io = io_all(&sut.faulty);
    sut.reopen_with(io, false);
    check_all(&sut, &model, "final reopen");
    sut.close();
}

fn model_any_key(t: usize) -> Vec<Value> {
    match t {
        0 => vec![Value::Int64(0)],
        1 => vec![Value::from(""), Value::Int64(0)],
        _ => vec![Value::Binary(vec![]), Value::from("")],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn table_operations_match_the_model(ops in proptest::collection::vec(op_s(), 1..60), seed in any::<u64>()) {
        run(&ops, seed);
    }
}

/// Reads of a dead device are rebuilt from parity: with a device failing every request, a
/// fixed workload reads back whole, and the engine counts degraded reads.
#[test]
fn degraded_reads_are_counted() {
    let ops: Vec<Op> = (0..40)
        .map(|i| {
            Op::Batch(vec![WriteOp {
                table: 0,
                key: vec![Value::Int64(i)],
                write: Write::Put(Columns::from([(
                    "v".to_string(),
                    Value::Binary(vec![i as u8; 3000]),
                )])),
                cond: None,
            }])
        })
        .collect();
    let mut sut = Sut::new(5);
    let mut model: Model = TABLES.iter().map(|(n, _)| (*n, BTreeMap::new())).collect();
    for op in &ops {
        let Op::Batch(w) = op else { unreachable!() };
        apply_batch(&sut, &mut model, w, "load");
    }
    sut.faulty[1].set_failed(true);
    let io = io_all(&sut.faulty);
    sut.reopen_with(io, true);
    check_all(&sut, &model, "device 1 failing");
    assert!(sut.engine.status().degraded_reads > 0);
    sut.close();
}
