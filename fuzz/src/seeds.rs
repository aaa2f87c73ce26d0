//! Valid inputs for every target, built with the encoders (so that they follow the format as
//! it is): the committed corpus in `fuzz/corpus` is made from these (`ecfuzz --write-seeds`),
//! and the mutation driver starts from them.

use crate::targets::format::{HEALTH_ARRAY, HEALTH_SLOT};
use ectable_backup::format::{block_payload_limit, BackupKind, Header, Writer};
use ectable_backup::Change;
use ectable_engine::format::checkpoint::{self, ResumePoint};
use ectable_engine::format::log_record::RecordFormat;
use ectable_engine::format::{
    health_block, ChunkHeader, LogRecord, MemberState, RecordKind, SegmentHeader, SegmentKind,
    Superblock, CHUNK_HEADER_SIZE_BYTES,
};
use ectable_engine::index::{Index, IndexEntry, Place, RecordLoc};
use ectable_engine::table::codecs::{encode_row, encode_schema_record, TableState};
use ectable_engine::table::{Columns, KeyColumn, Schema, Value, ValueType};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// `body` in plain mode and in resealed mode.
fn both_modes(body: &[u8]) -> Vec<Vec<u8>> {
    [0u8, 1]
        .iter()
        .map(|m| {
            let mut v = vec![*m];
            v.extend_from_slice(body);
            v
        })
        .collect()
}

fn a_superblock(slot: u32, rebuild: bool) -> Superblock {
    Superblock {
        array_uuid: [1; 16],
        device_uuid: [2 + slot as u8; 16],
        device_slot: slot,
        device_count: 3,
        data_shards: 2,
        parity_shards: 1,
        chunk_size_bytes: 65536,
        segment_size_bytes: 8 << 20,
        segment_count: 4,
        device_capacity_bytes: 64 << 20,
        epoch: 3,
        copy_index: slot % 2,
        format_version: 2,
        flags: 0,
        created_unix_secs: 1_700_000_000,
        checkpoint_segment_id: if rebuild { 2 } else { 0 },
        checkpoint_segment_count: if rebuild { 1 } else { 0 },
        checkpoint_lsn: if rebuild { 40 } else { 0 },
        rebuild: None,
        members: vec![
            ([2; 16], MemberState::Online),
            ([3; 16], MemberState::Online),
            (
                [4; 16],
                if rebuild {
                    MemberState::Failed
                } else {
                    MemberState::Online
                },
            ),
        ],
        sync_floor: 1,
        resync_from: vec![0, 0, if rebuild { 7 } else { 0 }],
    }
}

pub fn superblock() -> Vec<Vec<u8>> {
    [a_superblock(0, false), a_superblock(2, true)]
        .iter()
        .flat_map(|s| both_modes(&s.encode()))
        .collect()
}

pub fn segment_header() -> Vec<Vec<u8>> {
    let h = SegmentHeader {
        position: 1,
        array_uuid: [1; 16],
        segment_id: 9,
        write_epoch: 2,
        data_shards: 2,
        kind: SegmentKind::Log,
        members: vec![(0, 0), (1, 0), (2, 1)],
    };
    let c = SegmentHeader {
        kind: SegmentKind::Checkpoint,
        ..h.clone()
    };
    [h, c]
        .iter()
        .flat_map(|s| both_modes(&s.encode()))
        .collect()
}

pub fn chunk_header() -> Vec<Vec<u8>> {
    let h = ChunkHeader {
        array_uuid: [1; 16],
        segment_id: 9,
        write_epoch: 2,
        offset_in_segment_bytes: 4096,
        height_bytes: 8192,
        ordinal: 0,
        shard_index: 1,
        width: 3,
        data_shards: 2,
        flags: 0,
        payload_bytes: 100,
        first_lsn: 5,
        last_lsn: 6,
        present_mask: 7,
        committed_lsn: 4,
        tail_bytes: 8,
        body_crcs: vec![7, 8, 9],
    };
    let mut b = vec![0u8; CHUNK_HEADER_SIZE_BYTES];
    h.encode_into(&mut b);
    both_modes(&b)
}

fn records() -> Vec<u8> {
    let mut b = Vec::new();
    for (i, (kind, table, key, value)) in [
        (RecordKind::Put, "t", &b"k"[..], vec![9u8; 40]),
        (RecordKind::Delete, "users", &b"alice"[..], vec![]),
        (RecordKind::Put, "t", &b"a longer key"[..], vec![1u8; 3]),
        (RecordKind::Moved, "t", &b"k"[..], vec![9u8; 40]),
    ]
    .into_iter()
    .enumerate()
    {
        LogRecord {
            lsn: 3 + i as u64,
            kind,
            table: table.into(),
            key: key.to_vec(),
            value,
        }
        .encode_into(&mut b);
    }
    b
}

pub fn log_record() -> Vec<Vec<u8>> {
    both_modes(&records())
}

/// A 16 KiB stripe of k = 2 laid out as the writer does: two values placed on blocks, the
/// others inline; once with wide records (format version 3) and once with compact ones
/// (version 4: the table name stored in the first record only, the fuzz target's first LSN
/// 3).
pub fn stripe_records() -> Vec<Vec<u8>> {
    let mut out = stripe_records_in(RecordFormat::Wide);
    out.extend(stripe_records_in(RecordFormat::Compact));
    out
}

fn stripe_records_in(fmt: RecordFormat) -> Vec<Vec<u8>> {
    use ectable_engine::format::log_record::{encode_in, lay_out_record};
    use ectable_engine::format::placement::Packer;
    let (h, k) = (16384usize, 2usize);
    let mut data = vec![0u8; k * (h - CHUNK_HEADER_SIZE_BYTES)];
    let mut packer = Packer::new(k, h);
    for (i, (kind, value)) in [
        (RecordKind::Put, vec![3u8; 4096]),
        (RecordKind::Put, vec![4u8; 40]),
        (RecordKind::Delete, vec![]),
        (RecordKind::Moved, vec![5u8; 7712]),
        (RecordKind::Put, vec![6u8; 5000]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rec = Vec::new();
        let key = [b'k', i as u8];
        let elide = fmt == RecordFormat::Compact && i > 0;
        let (_, len) = encode_in(fmt, 3 + i as u64, kind, "t", &key, &value, elide, &mut rec);
        let stored = if elide { 0 } else { 1 };
        let spot = packer
            .add(
                rec.len(),
                fmt.placed_head_len(stored, key.len()),
                (kind != RecordKind::Delete).then_some(value.len()),
            )
            .expect("fits");
        lay_out_record(fmt, &rec[..len], spot, value.len(), &mut |at, b| {
            data[at..at + b.len()].copy_from_slice(b)
        });
    }
    assert_eq!(packer.placed(), 2);
    let compact = if fmt == RecordFormat::Compact {
        0x80
    } else {
        0
    };
    let mut body = vec![(h / 4096 - 1) as u8, (k - 1) as u8 | compact];
    body.extend_from_slice(&(packer.area_end() as u32).to_le_bytes());
    body.extend_from_slice(&data);
    both_modes(&body)
}

pub fn journal_entry() -> Vec<Vec<u8>> {
    let e = ectable_engine::format::journal::JournalEntry {
        array_uuid: [1; 16],
        write_epoch: 4,
        first_lsn: 3,
        last_lsn: 6,
        payload: records(),
    };
    both_modes(&e.encode())
}

pub fn checkpoint() -> Vec<Vec<u8>> {
    let mut index = Index::default();
    for i in 0..20u32 {
        let loc = RecordLoc {
            segment_id: 3 + u64::from(i % 3),
            offset_in_segment_bytes: 4096 * (i % 5),
            height_bytes: 8192,
            ordinal: i % 4,
            record_offset: 64 * i,
            record_len: 40 + i,
            crc: 0xdead_0000 + i,
        };
        let table = if i % 2 == 0 { "t" } else { "users" };
        index.put(
            table,
            format!("key{i}").as_bytes(),
            IndexEntry {
                lsn: u64::from(i) + 1,
                value_len: i,
                place: Place::Disk(loc),
            },
        );
    }
    let resume = ResumePoint {
        segment_id: 5,
        offset: 8192,
        ordinal: 2,
    };
    let mut out = Vec::new();
    let encodings = [
        checkpoint::encode(&index, 20, resume),
        checkpoint::encode_v1(&index, 20, resume),
        checkpoint::encode(&Index::default(), 0, resume),
    ];
    for b in encodings.into_iter().flatten() {
        out.extend(both_modes(&b));
    }
    out
}

pub fn health_block() -> Vec<Vec<u8>> {
    let plain = health_block::HealthRecord::default();
    let kept = health_block::HealthRecord {
        read_errors: 3,
        write_errors: 1,
        checksum_errors: 9,
        last_scrub: Some(health_block::ScrubRecord {
            finished_unix_nanos: 1_700_000_000_000_000_000,
            duration_ns: 4_000_000_000,
            bytes_scanned: 1 << 30,
            bad_chunks: 2,
            chunks_repaired: 2,
            unrecoverable: 0,
            repair: true,
        }),
        last_rebuild: Some(health_block::RebuildRecord {
            finished_unix_nanos: 1_700_000_100_000_000_000,
            duration_ns: 9_000_000_000,
            bytes_scanned: 4 << 30,
            chunks_rebuilt: 16_384,
            bytes_rebuilt: 1 << 30,
            unrecoverable: 0,
            slot: 2,
            resync: false,
        }),
    };
    let mut out = both_modes(&health_block::encode(
        &HEALTH_ARRAY,
        HEALTH_SLOT,
        5,
        77,
        &plain,
    ));
    out.extend(both_modes(&health_block::encode(
        &HEALTH_ARRAY,
        HEALTH_SLOT,
        6,
        78,
        &kept,
    )));
    out
}

/// The prefix with which `pick_schema` reads `types` back.
fn schema_prefix(types: &[u8]) -> Vec<u8> {
    let mut v = vec![(types.len() - 1) as u8, 0];
    v.extend_from_slice(types);
    v
}

pub fn table_key() -> Vec<Vec<u8>> {
    let cases: [(&[u8], Vec<Value>); 3] = [
        (&[0], vec![Value::Int64(-5)]),
        (
            &[1, 0],
            vec![Value::String("ab\0c".into()), Value::Int64(7)],
        ),
        (
            &[2, 1, 0, 2],
            vec![
                Value::Binary(vec![0, 1, 0, 255]),
                Value::String(String::new()),
                Value::Int64(i64::MAX),
                Value::Binary(vec![]),
            ],
        ),
    ];
    cases
        .iter()
        .map(|(types, key)| {
            let schema = Schema::new(
                types
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let ty =
                            [ValueType::Int64, ValueType::String, ValueType::Binary][*t as usize];
                        KeyColumn::new(&format!("c{i}"), ty)
                    })
                    .collect(),
            )
            .expect("seed schema");
            let mut v = schema_prefix(types);
            v.extend(schema.encode_key(key).expect("seed key"));
            v
        })
        .collect()
}

pub fn table_row() -> Vec<Vec<u8>> {
    let mut cols = Columns::new();
    cols.insert("age".into(), Value::Int64(42));
    cols.insert("bin".into(), Value::Binary(vec![1, 2, 3]));
    cols.insert("ok".into(), Value::Bool(true));
    cols.insert("score".into(), Value::Double(2.5));
    cols.insert("name".into(), Value::String("alice".into()));
    vec![encode_row(&cols), encode_row(&Columns::new())]
}

pub fn schema_record() -> Vec<Vec<u8>> {
    let s = Schema::parse("id:int64,name:string,blob:binary").expect("seed schema");
    vec![
        encode_schema_record(&s, TableState::Live),
        encode_schema_record(&s, TableState::Dropping),
    ]
}

fn a_backup_header(kind: BackupKind) -> Header {
    let full = kind == BackupKind::Full;
    Header {
        kind,
        array_id: [1; 16],
        backup_id: [2; 16],
        base_backup_id: if full { [0; 16] } else { [3; 16] },
        chain_id: if full { [2; 16] } else { [3; 16] },
        chain_index: if full { 0 } else { 1 },
        block_payload_limit_bytes: block_payload_limit(4096),
        start_lsn: if full { 0 } else { 10 },
        created_unix_secs: 1_700_000_000,
    }
}

/// A small full backup and a small incremental one, as files hold them.
fn backup_files() -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    let mut w = Writer::new(Vec::new(), a_backup_header(BackupKind::Full)).expect("seed header");
    for (t, k, v) in [("t", "a", "1"), ("t", "b", "22"), ("users", "alice", "42")] {
        w.push_row(t, k.as_bytes(), v.as_bytes()).expect("seed row");
    }
    files.push(w.finish(10).expect("seed backup").0);
    let mut w =
        Writer::new(Vec::new(), a_backup_header(BackupKind::Incremental)).expect("seed header");
    for (lsn, value) in [(11, Some(b"3".to_vec())), (12, None)] {
        let c = Change {
            lsn,
            table: "t".into(),
            key: b"a".to_vec(),
            value,
        };
        w.push_change(&c).expect("seed change");
    }
    files.push(w.finish(12).expect("seed backup").0);
    files
}

pub fn backup_header() -> Vec<Vec<u8>> {
    backup_files()
        .iter()
        .flat_map(|f| {
            let mut b = f[..256].to_vec();
            b.extend_from_slice(&f[f.len() - 256..]);
            both_modes(&b)
        })
        .collect()
}

pub fn backup_file() -> Vec<Vec<u8>> {
    backup_files().iter().flat_map(|f| both_modes(f)).collect()
}

fn mode_and(mode: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(rest);
    v
}

/// A command line as the `cli` target reads it: the mode, then the arguments split by NUL.
fn args(mode: u8, args: &[&str]) -> Vec<u8> {
    mode_and(mode, args.join("\0").as_bytes())
}

pub fn cli() -> Vec<Vec<u8>> {
    let mut out = vec![
        args(0, &["status", "--devices", "/d/a,/d/b,/d/c"]),
        args(
            0,
            &[
                "format",
                "--devices",
                "a,b,c",
                "--k",
                "2",
                "--m",
                "1",
                "--chunk-size",
                "64K",
            ],
        ),
        args(
            0,
            &[
                "table",
                "create",
                "users",
                "--devices",
                "a,b",
                "--key",
                "id:int64,name:string",
            ],
        ),
        args(0, &["model", "--k", "4", "--m", "2"]),
        args(
            1,
            &[
                "--rw",
                "randread",
                "--bs",
                "4K",
                "--iodepth",
                "32",
                "--devices",
                "a:b:c",
            ],
        ),
        args(
            1,
            &[
                "--rw",
                "table-mixed",
                "--slow-device",
                "2:15ms",
                "--runtime",
                "10s",
            ],
        ),
        mode_and(3, br#"{"key": "a", "value": {"$bin": "AAEC"}}"#),
        mode_and(
            4,
            &[
                16, 0, 4, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 16, 0, 0, 8, b'6', b'4', b'K',
            ],
        ),
        mode_and(4, &[[0u8; 20].as_slice(), b"id:int64,name:string"].concat()),
    ];
    let mut typed = vec![2u8];
    typed.extend(schema_prefix(&[0, 1]));
    typed.extend_from_slice(
        br#"{"pk": {"c0": 1, "c1": "x"}, "cols": {"a": 1.5, "b": {"$bin": "AA=="}}}"#,
    );
    out.push(typed);
    out
}

/// Programs of calls: a few written out, the rest from a fixed seed.
pub fn api() -> Vec<Vec<u8>> {
    let mut out = vec![
        // put t/k, reopen, get t/k.
        vec![0, 0, 1, 3, 1, 107, 1, 3, 1, 118, 9, 3, 0, 1, 3, 1, 107],
        // create a typed table, put a row, range it.
        vec![
            10, 3, 1, 0, 0, 0, 11, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 14, 3, 0, 0, 0, 5, 0,
        ],
    ];
    let mut rng = SmallRng::seed_from_u64(7);
    for len in [64, 128, 256, 512, 1024] {
        out.push((0..len).map(|_| rng.random()).collect());
    }
    out
}

/// Two version 5 stripes (k = 2, 8 KiB high): three records, the last continuing into the
/// second stripe by 1,000 bytes; with its name elided and stored.
pub fn continued_records() -> Vec<Vec<u8>> {
    use ectable_engine::format::log_record::{encode_in, RecordFormat};
    let (h, k) = (8192usize, 2usize);
    let space = k * (h - CHUNK_HEADER_SIZE_BYTES);
    let mut out = Vec::new();
    for elide_last in [true, false] {
        let mut data = Vec::new();
        encode_in(
            RecordFormat::Compact,
            1,
            RecordKind::Put,
            "t",
            b"a",
            &[1u8; 3000],
            false,
            &mut data,
        );
        encode_in(
            RecordFormat::Compact,
            2,
            RecordKind::Delete,
            "t",
            b"b",
            &[],
            true,
            &mut data,
        );
        let room = space - data.len();
        let value = vec![7u8; room + 1000 - 12 - 1 - usize::from(!elide_last)];
        let (_, len) = encode_in(
            RecordFormat::Compact,
            3,
            RecordKind::Put,
            "t",
            b"c",
            &value,
            elide_last,
            &mut data,
        );
        let start = data.len() - len.next_multiple_of(8);
        let tail = start + len - space;
        let mut body = vec![(k - 1) as u8, (h / 4096 - 1) as u8, 2];
        body.extend_from_slice(&(tail as u16).to_le_bytes());
        body.extend_from_slice(&data[..space]);
        body.extend_from_slice(&data[space..start + len]);
        out.extend(both_modes(&body));
    }
    out
}
