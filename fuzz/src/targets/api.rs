//! The embedding API: a program of calls (puts, deletes, gets, scans, batches, syncs,
//! checkpoints, cleaning, reopen; typed tables created, written, read, ranged and dropped)
//! that the input spells, on a fresh engine over six memory devices. Table names, keys and
//! values come from the input and reach every limit (empty, too long, not UTF-8, reserved
//! names). Every call must return a value or a typed error; what the key/value calls
//! acknowledged must read back, also after a reopen.

use crate::input::Input;
use ectable_devices::{open_backend, BackendKind, BlockDevice, IoBackend, MemDevice};
use ectable_engine::table::codecs::encode_row;
use ectable_engine::table::{Columns, RangeQuery, Schema, Tables, Value, SCHEMA_TABLE};
use ectable_engine::{
    format, CleanerOptions, Engine, EngineOptions, FormatOptions, WriteBatch, BACKUP_TABLE,
};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, OnceLock};

const DEVICES: usize = 6;
const DEVICE_BYTES: u64 = 8 << 20;
/// Calls per input at most.
const MAX_CALLS: usize = 48;

/// Six memory devices holding a freshly formatted RS(4,2) array: formatted once per process,
/// then copied for each input.
fn devices() -> Vec<Arc<dyn BlockDevice>> {
    static FORMATTED: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let images = FORMATTED.get_or_init(|| {
        let mems: Vec<Arc<MemDevice>> = (0..DEVICES)
            .map(|i| Arc::new(MemDevice::new(&format!("mem{i}"), DEVICE_BYTES)))
            .collect();
        let devs = mems
            .iter()
            .map(|m| m.clone() as Arc<dyn BlockDevice>)
            .collect();
        let io = open_backend(BackendKind::Psync, devs).expect("memory devices open");
        let geometry = FormatOptions {
            data_shards: 4,
            parity_shards: 2,
            chunk_size_bytes: 16 << 10,
            segment_size_bytes: 256 << 10,
            force: false,
            spare_count: 0,
            sync_journal: true,
            inline_values: false,
            wide_records: false,
            whole_records: false,
        };
        format(io.as_ref(), &geometry).expect("memory devices format");
        mems.iter().map(|m| m.snapshot()).collect()
    });
    images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let m = MemDevice::new(&format!("mem{i}"), DEVICE_BYTES);
            m.restore(img);
            Arc::new(m) as Arc<dyn BlockDevice>
        })
        .collect()
}

fn options() -> EngineOptions {
    EngineOptions {
        // Cleaning runs when the program says so, not on a thread's timing.
        cleaner: CleanerOptions {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn open(devs: &[Arc<dyn BlockDevice>]) -> (Arc<Engine>, Tables) {
    let io: Arc<dyn IoBackend> =
        open_backend(BackendKind::Psync, devs.to_vec()).expect("memory devices open");
    let engine = Arc::new(Engine::open(io, options()).expect("a formatted array opens"));
    let tables = Tables::open(engine.clone()).expect("tables open");
    (engine, tables)
}

/// A table name: mostly one of a few (so that calls meet), sometimes the reserved ones,
/// sometimes whatever the input says.
fn table_name(input: &mut Input) -> String {
    match input.u8() % 8 {
        0..=2 => "t".into(),
        3 => "users".into(),
        4 => SCHEMA_TABLE.into(),
        5 => BACKUP_TABLE.into(),
        6 => "x".repeat(input.below(80)),
        _ => input.text(80),
    }
}

/// Bytes: literal from the input, or one byte repeated up to `max_repeat` times.
fn blob(input: &mut Input, max_repeat: usize) -> Vec<u8> {
    if input.u8().is_multiple_of(4) {
        vec![input.u8(); input.below(max_repeat + 1)]
    } else {
        input.bytes(24).to_vec()
    }
}

fn value(input: &mut Input) -> Value {
    match input.u8() % 5 {
        0 => Value::Int64(input.u64() as i64),
        1 => Value::Double(f64::from_bits(input.u64())),
        2 => Value::Bool(input.u8() & 1 == 1),
        3 => Value::String(input.text(24)),
        _ => Value::Binary(blob(input, 2000)),
    }
}

fn values(input: &mut Input) -> Vec<Value> {
    (0..input.below(5)).map(|_| value(input)).collect()
}

fn columns(input: &mut Input) -> Columns {
    (0..input.below(4))
        .map(|_| (input.text(12), value(input)))
        .collect()
}

fn bound(input: &mut Input) -> Bound<Vec<u8>> {
    match input.u8() % 3 {
        0 => Bound::Unbounded,
        1 => Bound::Included(blob(input, 8)),
        _ => Bound::Excluded(blob(input, 8)),
    }
}

fn typed_bound(input: &mut Input) -> Bound<Vec<Value>> {
    match input.u8() % 3 {
        0 => Bound::Unbounded,
        1 => Bound::Included(values(input)),
        _ => Bound::Excluded(values(input)),
    }
}

/// What the key/value calls acknowledged, per (table, key).
#[derive(Default)]
struct Model {
    rows: BTreeMap<(String, Vec<u8>), Vec<u8>>,
    /// Tables a typed call touched: their raw contents are the typed layer's business.
    typed: BTreeSet<String>,
}

impl Model {
    fn check(&self, engine: &Engine, when: &str) {
        for ((t, k), v) in &self.rows {
            if self.typed.contains(t) {
                continue;
            }
            let got = engine.get(t, k).expect("an acknowledged key reads");
            assert!(
                got.as_deref() == Some(&v[..]),
                "{when}: table {t:?} key {k:?}: acknowledged value not read back"
            );
        }
    }
}

pub fn api(data: &[u8]) {
    let devs = devices();
    let (mut engine, mut tables) = open(&devs);
    let mut model = Model::default();
    let mut input = Input::new(data);
    for _ in 0..MAX_CALLS {
        if input.is_empty() {
            break;
        }
        match input.u8() % 16 {
            0 | 1 => {
                let (t, k, v) = (
                    table_name(&mut input),
                    blob(&mut input, 1100),
                    blob(&mut input, 40_000),
                );
                if engine.put(&t, &k, &v).is_ok() {
                    model.rows.insert((t, k), v);
                }
            }
            2 => {
                let (t, k) = (table_name(&mut input), blob(&mut input, 1100));
                if engine.delete(&t, &k).is_ok() {
                    model.rows.remove(&(t, k));
                }
            }
            3 => {
                let (t, k) = (table_name(&mut input), blob(&mut input, 1100));
                // A get, or the same read through a read queue.
                let got = if input.u8() & 1 == 0 {
                    engine.get(&t, &k)
                } else {
                    let mut q = engine.read_queue::<u8>(&t);
                    q.submit(&k, 7).and_then(|()| {
                        let (tag, got) = q.next_done().expect("a submitted read comes back");
                        assert_eq!(tag, 7, "the read's own tag");
                        assert!(q.next_done().is_none(), "one read, one outcome");
                        got
                    })
                };
                if let Ok(got) = got {
                    if !model.typed.contains(&t) {
                        let want = model.rows.get(&(t.clone(), k.clone()));
                        assert!(
                            got.as_ref() == want,
                            "get {t:?} {k:?}: {got:?}, acknowledged {want:?}"
                        );
                    }
                }
            }
            4 => {
                let t = table_name(&mut input);
                let (from, to) = (bound(&mut input), bound(&mut input));
                let limit = input.below(64);
                if input.u8().is_multiple_of(4) {
                    // Streaming, either way: the model's rows within the bounds, in order.
                    let reverse = input.u8() & 1 == 1;
                    let it = match reverse {
                        false => engine.scan_iter(&t, as_ref(&from), as_ref(&to)),
                        true => engine.scan_iter_rev(&t, as_ref(&from), as_ref(&to)),
                    };
                    let rows = it.and_then(|it| it.collect::<ectable_engine::Result<Vec<_>>>());
                    let ours = !model.typed.contains(&t) && !t.starts_with('$');
                    if let (Ok(mut rows), true) = (rows, ours) {
                        if reverse {
                            rows.reverse();
                        }
                        let in_bounds = |k: &[u8]| {
                            RangeBounds::<[u8]>::contains(&(as_ref(&from), as_ref(&to)), k)
                        };
                        let want: Vec<(Vec<u8>, Vec<u8>)> = model
                            .rows
                            .iter()
                            .filter(|((mt, k), _)| *mt == t && in_bounds(k))
                            .map(|((_, k), v)| (k.clone(), v.clone()))
                            .collect();
                        assert!(
                            rows == want,
                            "streaming scan of {t:?}: not the model's rows"
                        );
                    }
                } else if let Ok(rows) = engine.scan(&t, as_ref(&from), as_ref(&to), limit) {
                    assert!(
                        rows.len() <= limit.max(1) || limit == 0,
                        "scan returned more than its limit"
                    );
                    assert!(
                        rows.windows(2).all(|w| w[0].0 < w[1].0),
                        "scan in key order"
                    );
                }
            }
            5 => {
                let mut batch = WriteBatch::new();
                let mut puts = Vec::new();
                for _ in 0..input.below(6) {
                    let (t, k) = (table_name(&mut input), blob(&mut input, 1100));
                    if input.u8() & 1 == 0 {
                        let v = blob(&mut input, 20_000);
                        batch.put(&t, &k, &v);
                        puts.push((t, k, Some(v)));
                    } else {
                        batch.delete(&t, &k);
                        puts.push((t, k, None));
                    }
                }
                if engine.write_batch(&batch).is_ok() {
                    for (t, k, v) in puts {
                        match v {
                            Some(v) => model.rows.insert((t, k), v),
                            None => model.rows.remove(&(t, k)),
                        };
                    }
                }
            }
            6 => {
                let _ = engine.sync();
            }
            7 => {
                let _ = engine.checkpoint();
            }
            8 => {
                let _ = engine.clean(1);
            }
            9 => {
                drop(tables);
                engine.close().expect("close");
                drop(engine);
                (engine, tables) = open(&devs);
                model.check(&engine, "after reopen");
            }
            10 => {
                let t = table_name(&mut input);
                let schema = if input.u8() & 1 == 0 {
                    Schema::parse(&input.text(40))
                } else {
                    Ok(super::table::pick_schema(&mut input))
                };
                model.typed.insert(t.clone());
                if let Ok(s) = schema {
                    let _ = tables.create_table(&t, &s);
                }
            }
            11 | 12 => {
                let t = table_name(&mut input);
                model.typed.insert(t.clone());
                let (key, cols) = (values(&mut input), columns(&mut input));
                if tables.put_row(&t, &key, &cols).is_ok() {
                    let row = tables.get_row(&t, &key).expect("a row just written reads");
                    let row = row.expect("a row just written is there");
                    assert!(
                        encode_row(&row.columns) == encode_row(&cols),
                        "a row reads back as written"
                    );
                }
            }
            13 => {
                let t = table_name(&mut input);
                model.typed.insert(t.clone());
                let key = values(&mut input);
                if input.u8() & 1 == 0 {
                    let _ = tables.get_row(&t, &key);
                } else if tables.delete_row(&t, &key).is_ok() {
                    assert!(
                        matches!(tables.get_row(&t, &key), Ok(None)),
                        "a deleted row is gone"
                    );
                }
            }
            14 => {
                let t = table_name(&mut input);
                model.typed.insert(t.clone());
                let mut q = RangeQuery::new()
                    .start(typed_bound(&mut input))
                    .end(typed_bound(&mut input))
                    .reverse(input.u8() & 1 == 1)
                    .limit(input.below(40));
                if input.u8().is_multiple_of(4) {
                    q = q.prefix(values(&mut input));
                }
                let _ = tables.range(&t, &q);
            }
            _ => {
                let t = table_name(&mut input);
                model.typed.insert(t.clone());
                let _ = tables.drop_table(&t);
            }
        }
    }
    model.check(&engine, "at the end");
    drop(tables);
    let _ = engine.close();
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included(v) => Bound::Included(v),
        Bound::Excluded(v) => Bound::Excluded(v),
    }
}
