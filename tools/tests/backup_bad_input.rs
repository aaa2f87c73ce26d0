//! Damaged and mismatched backups are refused, by `backup-verify` and by `restore`, with one
//! error line naming the file and the byte offset, and `restore` then writes nothing: the
//! target array's device files stay byte-identical (with `--force`), and device files it
//! would have created are not created.
//!
//! The files are real backups of real arrays: a full backup of several blocks and two
//! incrementals of array A, a second chain of A, and a chain of array B. The damage: a bit
//! flipped in the header, in every block header and payload, and in the trailer; truncation
//! at many lengths; bytes appended; blocks spliced in from another backup of the same array
//! and of another array; a trailer of another backup; and chains with an incremental missing, repeated or out of order, a chain
//! that starts with an incremental, an incremental of another array, and one of another
//! chain of the same array. Every injected fault is counted as refused by both commands.

mod backup_common;
use backup_common::*;
use std::path::{Path, PathBuf};

struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    full_a: PathBuf,
    i1: PathBuf,
    i2: PathBuf,
    full_a2: PathBuf,
    i2b: PathBuf,
    full_b: PathBuf,
    i_b: PathBuf,
    target: Vec<PathBuf>,
}

fn put(devices: &str, table: &str, key: &str, value: &str) {
    ok(&[
        "put",
        "--devices",
        devices,
        "--table",
        table,
        "--key",
        key,
        "--value",
        value,
    ]);
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let a = format(&dir, "a", 6, 4, 2, "32M");
    let da = join(&a);
    ok(&[
        "load",
        "--devices",
        &da,
        "--table",
        "t",
        "--rows",
        "3000",
        "--value-size",
        "1K",
        "--seed",
        "1",
    ]);
    put(&da, "u", "k1", "v1");
    let bk = |name: &str| dir.join(name);
    let (full_a, i1, i2, full_a2, i2b, full_b, i_b) = (
        bk("fullA.ectb"),
        bk("i1.ectb"),
        bk("i2.ectb"),
        bk("fullA2.ectb"),
        bk("i2b.ectb"),
        bk("fullB.ectb"),
        bk("iB.ectb"),
    );
    ok(&["backup", "--devices", &da, "--to", s(&full_a)]);
    put(&da, "u", "k2", "v2");
    ok(&[
        "delete",
        "--devices",
        &da,
        "--table",
        "t",
        "--key",
        "row000000000007",
    ]);
    ok(&[
        "backup",
        "--devices",
        &da,
        "--to",
        s(&i1),
        "--incremental-from",
        s(&full_a),
    ]);
    put(&da, "u", "k3", "v3");
    ok(&[
        "backup",
        "--devices",
        &da,
        "--to",
        s(&i2),
        "--incremental-from",
        s(&i1),
    ]);
    put(&da, "u", "k4", "v4");
    ok(&["backup", "--devices", &da, "--to", s(&full_a2)]);
    put(&da, "u", "k5", "v5");
    ok(&[
        "backup",
        "--devices",
        &da,
        "--to",
        s(&i2b),
        "--incremental-from",
        s(&full_a2),
    ]);
    let b = format(&dir, "b", 3, 2, 1, "16M");
    let db = join(&b);
    put(&db, "u", "k1", "other array");
    ok(&["backup", "--devices", &db, "--to", s(&full_b)]);
    put(&db, "u", "k2", "other array");
    ok(&[
        "backup",
        "--devices",
        &db,
        "--to",
        s(&i_b),
        "--incremental-from",
        s(&full_b),
    ]);
    // The sound chains verify.
    for chain in [
        vec![&full_a, &i1, &i2],
        vec![&full_a2, &i2b],
        vec![&full_b, &i_b],
    ] {
        let list: Vec<PathBuf> = chain.into_iter().cloned().collect();
        ok(&["backup-verify", &join(&list)]);
    }
    // The restore target: an array the failed restores must leave alone, with --force.
    let target = format(&dir, "r", 3, 2, 1, "8M");
    put(&join(&target), "keep", "me", "intact");
    Setup {
        _dir: tmp,
        dir,
        full_a,
        i1,
        i2,
        full_a2,
        i2b,
        full_b,
        i_b,
        target,
    }
}

/// Block start offsets of a backup file, walked from its headers.
fn blocks(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 256;
    while &bytes[at..at + 4] == b"ECBK" {
        let size = u32::from_le_bytes(bytes[at + 12..at + 16].try_into().unwrap()) as usize;
        out.push((at, size));
        at += 20 + size;
    }
    assert_eq!(
        &bytes[at..at + 8],
        b"ECTBEND1",
        "the walk ended off the trailer"
    );
    assert_eq!(at + 256, bytes.len());
    out
}

/// Both `backup-verify` and `restore` refuse the chain `files`, naming `bad` and an offset
/// in `offsets`; the restore target is unchanged. Returns the error line.
fn refused(
    st: &Setup,
    files: &[PathBuf],
    bad: &Path,
    offsets: std::ops::Range<u64>,
    what: &str,
) -> String {
    let list = join(files);
    let out = ectable(&["backup-verify", &list]);
    let line = error_line(&out);
    let at = error_offset(&line, bad);
    assert!(
        offsets.contains(&at),
        "{what}: verify names byte {at}, expected {offsets:?}: {line}"
    );
    let before = digest(&st.target);
    let out = ectable(&[
        "restore",
        "--devices",
        &join(&st.target),
        "--k",
        "2",
        "--m",
        "1",
        "--from",
        &list,
        "--force",
        "--yes",
    ]);
    let line2 = error_line(&out);
    let at2 = error_offset(&line2, bad);
    assert_eq!(
        at, at2,
        "{what}: verify and restore name different offsets: {line} / {line2}"
    );
    assert_eq!(
        digest(&st.target),
        before,
        "{what}: a refused restore changed the target devices"
    );
    line
}

/// A restore that would create its devices creates none of them.
fn refused_creates_nothing(st: &Setup, files: &[PathBuf], what: &str) {
    let fresh = devs(&st.dir, "fresh", 3);
    let out = ectable(&[
        "restore",
        "--devices",
        &join(&fresh),
        "--k",
        "2",
        "--m",
        "1",
        "--from",
        &join(files),
        "--create-size",
        "8M",
    ]);
    error_line(&out);
    assert!(
        fresh.iter().all(|p| !p.exists()),
        "{what}: a refused restore created device files"
    );
}

#[test]
fn damaged_and_mismatched_backups_are_refused_before_anything_is_written() {
    let st = setup();
    let original = std::fs::read(&st.full_a).unwrap();
    let layout = blocks(&original);
    assert!(
        layout.len() >= 3,
        "the full backup should span several blocks: {layout:?}"
    );
    let size = original.len();
    let bad = st.dir.join("bad.ectb");
    let mut faults = 0;

    // Bit flips: header, every block header and payload, trailer.
    let mut flips: Vec<(usize, std::ops::Range<u64>)> = Vec::new();
    for off in [0, 8, 10, 12, 17, 40, 50, 70, 81, 86, 90, 100, 200, 252, 255] {
        flips.push((off, 0..256));
    }
    for (start, len) in &layout {
        let block = *start as u64..*start as u64 + 20;
        for d in [0, 5, 9, 13, 17, 20, 20 + len / 2, 19 + len] {
            flips.push((start + d, block.clone()));
        }
    }
    let trailer = (size - 256) as u64..size as u64;
    for d in [
        0, 8, 13, 20, 40, 60, 70, 85, 90, 100, 110, 120, 130, 140, 150, 153, 157, 165, 170, 200,
        252,
    ] {
        flips.push((size - 256 + d, trailer.clone()));
    }
    for (i, (off, expect)) in flips.iter().enumerate() {
        let mut b = original.clone();
        b[*off] ^= 1 << (i % 8);
        std::fs::write(&bad, &b).unwrap();
        refused(
            &st,
            std::slice::from_ref(&bad),
            &bad,
            expect.clone(),
            &format!("bit flip at byte {off}"),
        );
        faults += 1;
    }
    // The same in an incremental, and within a chain: the chain fails at the damaged file.
    let inc = std::fs::read(&st.i1).unwrap();
    for off in [30, 256 + 3, 256 + 25, inc.len() - 100] {
        let mut b = inc.clone();
        b[off] ^= 0x10;
        std::fs::write(&bad, &b).unwrap();
        let files = vec![st.full_a.clone(), bad.clone(), st.i2.clone()];
        refused(
            &st,
            &files,
            &bad,
            0..inc.len() as u64,
            &format!("incremental bit flip at {off}"),
        );
        faults += 1;
    }

    // Truncation at many lengths, and bytes after the trailer.
    let (b1, b1_len) = layout[1];
    for len in [
        0,
        1,
        100,
        255,
        256,
        257,
        270,
        276,
        300,
        b1,
        b1 + 3,
        b1 + 20,
        b1 + 20 + b1_len / 2,
        size - 256,
        size - 255,
        size - 1,
    ] {
        std::fs::write(&bad, &original[..len]).unwrap();
        let line = refused(
            &st,
            std::slice::from_ref(&bad),
            &bad,
            0..size as u64,
            &format!("truncated to {len}"),
        );
        assert!(line.contains("incomplete"), "truncated to {len}: {line}");
        faults += 1;
    }
    let mut longer = original.clone();
    longer.extend_from_slice(b"tail");
    std::fs::write(&bad, &longer).unwrap();
    let line = refused(
        &st,
        std::slice::from_ref(&bad),
        &bad,
        size as u64..size as u64 + 1,
        "appended bytes",
    );
    assert!(line.contains("follow the trailer"), "{line}");
    faults += 1;

    // Splices: the second half of another backup of the same array after this one's first
    // block; this backup's blocks under another backup's trailer.
    let other = std::fs::read(&st.full_a2).unwrap();
    let other_layout = blocks(&other);
    let mut spliced = original[..b1].to_vec();
    spliced.extend_from_slice(&other[other_layout[1].0..]);
    std::fs::write(&bad, &spliced).unwrap();
    let line = refused(
        &st,
        std::slice::from_ref(&bad),
        &bad,
        b1 as u64..b1 as u64 + 20,
        "spliced blocks",
    );
    assert!(line.contains("checksum mismatch"), "{line}");
    faults += 1;
    // Array A's header in front of array B's blocks and trailer.
    let b_bytes = std::fs::read(&st.full_b).unwrap();
    let mut spliced = original[..256].to_vec();
    spliced.extend_from_slice(&b_bytes[256..]);
    std::fs::write(&bad, &spliced).unwrap();
    let line = refused(
        &st,
        std::slice::from_ref(&bad),
        &bad,
        256..276,
        "another array's blocks",
    );
    assert!(line.contains("checksum mismatch"), "{line}");
    faults += 1;
    let mut spliced = original[..size - 256].to_vec();
    spliced.extend_from_slice(&other[other.len() - 256..]);
    std::fs::write(&bad, &spliced).unwrap();
    refused(
        &st,
        std::slice::from_ref(&bad),
        &bad,
        trailer.clone(),
        "another backup's trailer",
    );
    faults += 1;
    refused_creates_nothing(&st, std::slice::from_ref(&bad), "another backup's trailer");

    // Chains: missing, repeated and reordered incrementals, a chain that does not start with
    // its full backup, another array's incremental, another chain's incremental, two fulls.
    let (fa, i1, i2) = (&st.full_a, &st.i1, &st.i2);
    let cases: Vec<(Vec<&PathBuf>, &PathBuf, u64, &str)> = vec![
        (vec![fa, i2], i2, 48, "missing"),
        (vec![fa, i2, i1], i2, 48, "out of order"),
        (vec![fa, i1, i1], i1, 48, "out of order"),
        (vec![i1, i2], i1, 10, "from its full backup"),
        (vec![fa, &st.i_b], &st.i_b, 16, "array"),
        (vec![fa, i1, &st.i2b], &st.i2b, 64, "chain"),
        (vec![fa, &st.full_a2], &st.full_a2, 10, "full backup"),
    ];
    for (chain, culprit, at, needle) in cases {
        let files: Vec<PathBuf> = chain.into_iter().cloned().collect();
        let line = refused(&st, &files, culprit, at..at + 1, needle);
        assert!(
            line.contains("broken chain") && line.contains(needle),
            "{line}"
        );
        faults += 1;
        refused_creates_nothing(&st, &files, needle);
    }

    // The target still holds what it held.
    let out = ok(&[
        "get",
        "--devices",
        &join(&st.target),
        "--table",
        "keep",
        "--key",
        "me",
    ]);
    assert_eq!(out, "intact");
    eprintln!("{faults} damaged or mismatched backups refused by backup-verify and restore");
    assert!(faults >= 80, "too few faults injected: {faults}");
}
