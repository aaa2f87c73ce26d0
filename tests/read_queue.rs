//! `Engine::read_queue`: point reads kept in flight and handed back as each completes
//! (docs/design.md, "Read queues"). The queue returns exactly what `get` returns for every
//! kind of key, on the psync and the io_uring engine; reads in flight while the cleaner
//! moves records and frees and reuses their segments come back right (the optimistic
//! read's check, then a fresh lookup); bad blocks and missing devices are read around as
//! on the ordinary path, and more losses than m give typed errors, never wrong bytes.

mod common;
use common::*;
use ectable::devices::{open_backend, BackendKind, BlockDevice, MemDevice};
use ectable::{format, Engine, EngineOptions, Error};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

fn key(i: u64) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

/// Reads `keys` through a queue `depth` deep; returns each key's outcome by its index.
fn read_all(
    e: &Engine,
    table: &str,
    keys: &[Vec<u8>],
    depth: usize,
) -> HashMap<usize, Result<Option<Vec<u8>>, Error>> {
    let mut q = e.read_queue::<usize>(table);
    let mut out = HashMap::new();
    let mut next = 0;
    loop {
        while next < keys.len() && q.len() < depth {
            q.submit(&keys[next], next).unwrap();
            next += 1;
        }
        let Some((i, got)) = q.next_done() else { break };
        assert!(out.insert(i, got).is_none(), "read {i} handed back twice");
    }
    assert_eq!(out.len(), keys.len(), "every read handed back once");
    out
}

/// On-disk, in-memory (unsynced), deleted and absent keys, read through a queue, give what
/// `get` gives.
fn every_kind_of_key(e: &Engine) {
    for i in 0..400 {
        e.put("t", &key(i), &value_for(i, 5, 700 + (i as usize % 5) * 900))
            .unwrap();
    }
    for i in 0..40 {
        e.delete("t", &key(i * 10)).unwrap();
    }
    e.sync().unwrap();
    // Not synced: served from the writer's buffers (or from disk once flushed).
    for i in 400..450 {
        e.put("t", &key(i), &value_for(i, 5, 3000)).unwrap();
    }
    let keys: Vec<Vec<u8>> = (0..500).map(key).collect();
    for depth in [1, 7, 64] {
        let got = read_all(e, "t", &keys, depth);
        for (i, k) in keys.iter().enumerate() {
            let want = e.get("t", k).unwrap();
            let have = got[&i].as_ref().unwrap();
            assert_eq!(have, &want, "key {i} at depth {depth}");
            let expect_present = i < 450 && !(i < 400 && i % 10 == 0);
            assert_eq!(have.is_some(), expect_present, "key {i}");
        }
    }
    // A table that never had a key reads like an emptied one; a bad key is refused at once.
    assert_eq!(
        read_all(e, "none", &keys[..3], 2)[&0].as_ref().unwrap(),
        &None
    );
    let mut q = e.read_queue::<()>("t");
    assert!(matches!(q.submit(&[], ()), Err(Error::BadKey { .. })));
    assert!(q.is_empty());
}

#[test]
fn a_queue_returns_what_get_returns_on_the_psync_engine() {
    let (_mems, faulty) = mem_devices(6, 16 << 20, 3);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Engine::open(io, EngineOptions::default()).unwrap();
    every_kind_of_key(&e);
    e.close().unwrap();
}

#[test]
fn a_queue_returns_what_get_returns_on_the_io_uring_engine() {
    let dir = tempfile::tempdir().unwrap();
    let paths = file_paths(dir.path(), 6);
    format_files(&paths, 32 << 20, 4, 2, BackendKind::Uring);
    let e = open_engine_on(open_files(&paths, None, BackendKind::Uring));
    every_kind_of_key(&e);
    // After a reopen every record is on disk: the queue's reads all go to the devices.
    e.close().unwrap();
    drop(e);
    let e = open_engine_on(open_files(&paths, None, BackendKind::Uring));
    let before = e.status().degraded_reads;
    every_kind_of_key(&e);
    assert_eq!(
        e.status().degraded_reads,
        before,
        "a healthy array reads directly"
    );
    e.close().unwrap();
}

#[test]
fn reads_in_flight_while_the_cleaner_frees_and_reuses_segments_come_back_right() {
    // Small devices and segments: overwrites fill the array, so the cleaner moves records and
    // frees segments the writer then reuses while the queue's reads are in flight.
    let (_mems, faulty) = mem_devices(6, 10 << 20, 11);
    let io = io_of(&faulty);
    let mut opts = fmt_opts(4, 2);
    opts.segment_size_bytes = 256 << 10;
    format(io.as_ref(), &opts).unwrap();
    let e = Arc::new(Engine::open(io, EngineOptions::default()).unwrap());
    const KEYS: u64 = 300;
    const LEN: usize = 2000;
    // A value names its key and version: any version of the right key is a right answer.
    let value = |i: u64, ver: u64| versioned_value(i, ver, 11, LEN);
    for i in 0..KEYS {
        e.put("t", &key(i), &value(i, 0)).unwrap();
    }
    e.sync().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (e, stop) = (e.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut ver = 1u64;
            while !stop.load(Ordering::Relaxed) {
                for i in 0..KEYS {
                    e.put("t", &key(i), &value(i, ver)).unwrap();
                }
                e.sync().unwrap();
                e.clean(4).unwrap();
                ver += 1;
            }
            ver
        })
    };
    let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    let mut rounds = 0;
    while e.cleaner_stats().segments_freed < 40 || rounds < 20 {
        for (i, got) in read_all(&e, "t", &keys, 32) {
            let v = got.unwrap().expect("every key exists");
            assert_eq!(v.len(), LEN, "key {i}");
            let (k, ver) = version_of(&v);
            assert_eq!(k, i as u64, "a read of key {i} returned key {k}'s value");
            assert_eq!(v, value(k, ver), "key {i} version {ver}: wrong bytes");
        }
        rounds += 1;
        assert!(rounds < 5000, "the cleaner freed too few segments");
    }
    stop.store(true, Ordering::Relaxed);
    let versions = writer.join().unwrap();
    assert!(
        versions > 2,
        "the writer overwrote every key more than once"
    );
    assert!(e.cleaner_stats().segments_freed >= 40);
    eprintln!(
        "{rounds} rounds of {KEYS} queued reads, {} segments freed, {} reads looked up again",
        e.cleaner_stats().segments_freed,
        e.status().reads_looked_again
    );
    e.close().unwrap();
}

/// A memory device whose next `n` reads wait until released: reads held in flight.
struct Holding {
    inner: Arc<MemDevice>,
    hold: Arc<(Mutex<(usize, bool)>, Condvar)>,
}

impl BlockDevice for Holding {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn geometry(&self) -> ectable_devices::Geometry {
        self.inner.geometry()
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<(), ectable_devices::DeviceError> {
        let (lock, cv) = &*self.hold;
        let mut g = lock.lock().unwrap();
        if g.0 > 0 {
            g.0 -= 1;
            cv.notify_all();
            while !g.1 {
                g = cv.wait(g).unwrap();
            }
        }
        drop(g);
        self.inner.read_at(buf, off)
    }
    fn write_at(&self, buf: &[u8], off: u64) -> Result<(), ectable_devices::DeviceError> {
        self.inner.write_at(buf, off)
    }
    fn sync(&self) -> Result<(), ectable_devices::DeviceError> {
        self.inner.sync()
    }
}

type Hold = Arc<(Mutex<(usize, bool)>, Condvar)>;

/// Lets held reads go when dropped, however the test ends.
struct Release(Hold);

impl Drop for Release {
    fn drop(&mut self) {
        self.0 .0.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.0 .1.notify_all();
    }
}

/// Six small holding devices, formatted with small segments (the writer reuses freed space
/// soon).
fn holding_array() -> (Hold, Arc<dyn ectable::devices::IoBackend>) {
    let hold: Hold = Arc::new((Mutex::new((0usize, false)), Condvar::new()));
    let devs: Vec<Arc<dyn BlockDevice>> = (0..6)
        .map(|i| {
            Arc::new(Holding {
                inner: Arc::new(MemDevice::new(&format!("mem{i}"), 6 << 20)),
                hold: hold.clone(),
            }) as Arc<dyn BlockDevice>
        })
        .collect();
    let io = open_backend(BackendKind::Psync, devs).unwrap();
    let mut opts = fmt_opts(4, 2);
    opts.segment_size_bytes = 256 << 10;
    format(io.as_ref(), &opts).unwrap();
    (hold, io)
}

/// Once the held reads are all waiting: new versions of keys 0..n, the old versions'
/// segment cleaned and freed, and the array filled until it is full, so the freed segment is
/// written again under the held reads. Returns the segments freed.
fn overwrite_free_and_reuse(e: &Engine, hold: &Hold, n: u64) -> u64 {
    {
        let (lock, cv) = &**hold;
        let mut g = lock.lock().unwrap();
        while g.0 > 0 {
            g = cv.wait(g).unwrap();
        }
    }
    for i in 0..n {
        e.put("t", &key(i), &value_for(i + 1000, 1, 2000)).unwrap();
    }
    // Past the first segment, so that it can be cleaned.
    let mut j = 0u64;
    while j < 400 {
        e.put("fill", &j.to_le_bytes(), &value_for(j, 2, 8000))
            .unwrap();
        j += 1;
    }
    e.sync().unwrap();
    e.clean(8).unwrap();
    let freed = e.cleaner_stats().segments_freed;
    assert!(freed > 0, "the cleaner freed the first versions' segment");
    loop {
        match e.put("fill", &j.to_le_bytes(), &value_for(j, 2, 8000)) {
            Ok(_) => j += 1,
            Err(Error::NoSpace(_)) => break,
            Err(other) => panic!("filling: {other}"),
        }
    }
    e.sync().unwrap();
    freed
}

#[test]
fn a_read_held_in_flight_while_its_segment_is_freed_and_reused_reads_the_record_again() {
    let (hold, io) = holding_array();
    let e = Arc::new(Engine::open(io.clone(), EngineOptions::default()).unwrap());
    const N: u64 = 16;
    for i in 0..N {
        e.put("t", &key(i), &value_for(i, 1, 2000)).unwrap();
    }
    e.sync().unwrap();
    // The queue's reads of the first versions start and wait on the devices.
    *hold.0.lock().unwrap() = (N as usize, false);
    // Held reads are let go however the test ends (the queue waits for them when dropped).
    let release = Release(hold.clone());
    let mut q = e.read_queue::<u64>("t");
    for i in 0..N {
        q.submit(&key(i), i).unwrap();
    }
    let freed = overwrite_free_and_reuse(&e, &hold, N);
    drop(release);
    // A read that started before the overwrite may return either version (it is concurrent
    // with it); never anything else.
    let (mut old, mut new) = (0, 0);
    while let Some((i, got)) = q.next_done() {
        let v = got.unwrap().unwrap();
        if v == value_for(i, 1, 2000) {
            old += 1;
        } else {
            assert_eq!(v, value_for(i + 1000, 1, 2000), "key {i}: neither version");
            new += 1;
        }
    }
    assert_eq!(old + new, N);
    let again = e.status().reads_looked_again;
    eprintln!("{old} old, {new} new versions, {again} looked again, {freed} segments freed");
    assert!(
        again >= 1,
        "no read found its segment reused ({freed} segments freed)"
    );
    drop(q);
    e.close().unwrap();
}

#[test]
fn a_streaming_scan_whose_page_read_is_held_while_its_segment_is_reused_reads_the_rows_again() {
    let (hold, io) = holding_array();
    let eopts = EngineOptions {
        cleaner: ectable::CleanerOptions {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let e = Arc::new(Engine::open(io.clone(), eopts).unwrap());
    const N: u64 = 16;
    for i in 0..N {
        e.put("t", &key(i), &value_for(i, 1, 2000)).unwrap();
    }
    e.sync().unwrap();
    // The scan's first page read waits on the device; meanwhile another thread writes new
    // versions, cleans the old segment, frees it and fills the array, then lets it go.
    *hold.0.lock().unwrap() = (1, false);
    let other = {
        let (e, hold) = (e.clone(), hold.clone());
        std::thread::spawn(move || {
            let _release = Release(hold.clone());
            overwrite_free_and_reuse(&e, &hold, N);
        })
    };
    let rows: Vec<(Vec<u8>, Vec<u8>)> = e
        .scan_iter("t", std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    other.join().unwrap();
    assert_eq!(rows.len() as u64, N);
    for (i, (k, v)) in rows.iter().enumerate() {
        let i = i as u64;
        assert_eq!(k, &key(i));
        assert!(
            *v == value_for(i, 1, 2000) || *v == value_for(i + 1000, 1, 2000),
            "row {i}: neither version"
        );
    }
    let again = e.status().reads_looked_again;
    assert!(again >= 1, "no row found its segment reused");
    eprintln!("scan: {again} rows looked up again");
    e.close().unwrap();
}

#[test]
fn a_queue_reads_around_bad_blocks_and_missing_devices_and_never_returns_wrong_bytes() {
    let (_mems, faulty) = mem_devices(6, 16 << 20, 21);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Engine::open(io.clone(), EngineOptions::default()).unwrap();
    for i in 0..300 {
        e.put("t", &key(i), &value_for(i, 21, 4096)).unwrap();
    }
    e.close().unwrap();
    drop(e);
    let e = Engine::open(io, EngineOptions::default()).unwrap();
    let keys: Vec<Vec<u8>> = (0..300).map(key).collect();
    let check = |e: &Engine| {
        for (i, got) in read_all(e, "t", &keys, 32) {
            assert_eq!(
                got.unwrap().unwrap(),
                value_for(i as u64, 21, 4096),
                "key {i}"
            );
        }
    };
    // Latent sector errors over most of one device's data region: those reads fail and the
    // records come back rebuilt (and the chunks repaired).
    let start = ectable::format::DATA_START_BYTES;
    faulty[2].add_read_error_range(start..start + (4 << 20));
    let eio = faulty[2].counters().eio_reads;
    check(&e);
    assert!(
        faulty[2].counters().eio_reads > eio,
        "the bad blocks were read"
    );
    assert!(e.status().degraded_reads > 0);
    faulty[2].clear_error_ranges();
    // Silent corruption on another device: every read of it returns flipped bits.
    faulty[4].set_corrupt_read_probability(1.0);
    check(&e);
    faulty[4].set_corrupt_read_probability(0.0);
    // Two devices gone: records on them are rebuilt from k others.
    faulty[0].set_failed(true);
    faulty[5].set_failed(true);
    let degraded = e.status().degraded_reads;
    check(&e);
    assert!(e.status().degraded_reads > degraded);
    // A third: more than m lost. Every read either returns the right bytes (its stripe
    // still has k good chunks) or a typed error naming lost data or the devices.
    faulty[3].set_failed(true);
    let (mut good, mut lost) = (0, 0);
    for (i, got) in read_all(&e, "t", &keys, 32) {
        match got {
            Ok(Some(v)) => {
                assert_eq!(v, value_for(i as u64, 21, 4096), "key {i}");
                good += 1;
            }
            Ok(None) => panic!("key {i} reported absent"),
            Err(Error::DataLost { .. }) | Err(Error::Device(_)) => lost += 1,
            Err(other) => panic!("key {i}: untyped failure {other}"),
        }
    }
    assert!(
        lost > 0,
        "three devices lost and every read succeeded ({good})"
    );
}

/// A sequential read through a queue with a device missing reads each degraded stripe once:
/// the records beside a rebuilt one are taken from the rows the rebuild read and decoded
/// (docs/design.md, "Read queues"), where `get` rebuilds each record from its own rows and
/// reads its neighbours again. Every value comes back right, also while a surviving device
/// returns flipped bits now and then. On a version 4 array: a record that continues in the
/// next stripe (version 5) is rebuilt part by part, never through a window, and values the
/// size of a chunk would mostly continue.
#[test]
fn a_sequential_read_with_a_device_missing_reads_each_degraded_stripe_once() {
    let (_mems, faulty) = mem_devices(6, 32 << 20, 31);
    let io = io_of(&faulty);
    let opts = ectable::FormatOptions {
        whole_records: true,
        ..fmt_opts(4, 2)
    };
    format(io.as_ref(), &opts).unwrap();
    let e = Engine::open(io, EngineOptions::default()).unwrap();
    // A value the size of a chunk spans two chunks, as 64 KiB values do at the default
    // geometry.
    let (n, len) = (240u64, 16usize << 10);
    for i in 0..n {
        e.put("t", &key(i), &value_for(i, 31, len)).unwrap();
    }
    e.close().unwrap();
    drop(e);
    let e = Engine::open(
        io_subset(&faulty, &[0, 2, 3, 4, 5]),
        EngineOptions::default(),
    )
    .unwrap();
    let keys: Vec<Vec<u8>> = (0..n).map(key).collect();
    let seen = || faulty.iter().map(|f| f.read_bytes_seen()).sum::<u64>();
    let before = seen();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            e.get("t", k).unwrap().unwrap(),
            value_for(i as u64, 31, len)
        );
    }
    let one_by_one = seen() - before;
    for depth in [1, 32] {
        let (before, degraded) = (seen(), e.status().degraded_reads);
        for (i, got) in read_all(&e, "t", &keys, depth) {
            assert_eq!(
                got.unwrap().unwrap(),
                value_for(i as u64, 31, len),
                "key {i}"
            );
        }
        let queued = seen() - before;
        let per = |b: u64| b as f64 / (n * len as u64) as f64;
        eprintln!(
            "depth {depth}: {:.2} device bytes per value byte through the queue, {:.2} by get",
            per(queued),
            per(one_by_one)
        );
        assert!(
            e.status().degraded_reads > degraded,
            "depth {depth}: nothing degraded"
        );
        assert!(
            queued * 10 < one_by_one * 8,
            "depth {depth}: the queue read {queued} bytes, one key at a time {one_by_one}"
        );
    }
    faulty[3].set_corrupt_read_probability(0.05);
    for (i, got) in read_all(&e, "t", &keys, 32) {
        assert_eq!(
            got.unwrap().unwrap(),
            value_for(i as u64, 31, len),
            "key {i}"
        );
    }
    assert!(
        faulty[3].counters().corrupted_reads > 0,
        "no corruption injected"
    );
}

/// `next_done_before` (a caller that paces its submissions, as ecbench's `--rate_iops`)
/// returns at its deadline when no read has completed by then, with the read still in
/// flight, and hands the read back with its value once it completes.
#[test]
fn next_done_before_returns_at_its_deadline_and_keeps_the_read_in_flight() {
    use std::time::{Duration, Instant};
    let (_mems, faulty) = mem_devices(6, 16 << 20, 3);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Engine::open(io.clone(), EngineOptions::default()).unwrap();
    for i in 0..20 {
        e.put("t", &key(i), &value_for(i, 9, 4096)).unwrap();
    }
    e.close().unwrap();
    drop(e);
    // Reopened, so that the reads go to the devices; every device equally late (none is
    // singled out as slow).
    let e = Engine::open(io, EngineOptions::default()).unwrap();
    let delay = Duration::from_millis(300);
    for f in &faulty {
        f.set_delay(delay);
    }
    let mut q = e.read_queue::<u64>("t");
    q.submit(&key(7), 7).unwrap();
    let t0 = Instant::now();
    assert!(q.next_done_before(t0 + Duration::from_millis(5)).is_none());
    assert!(
        t0.elapsed() < delay / 2,
        "returned with the read, not at the deadline: {:?}",
        t0.elapsed()
    );
    assert_eq!(q.len(), 1, "the read stays in flight");
    let (tag, got) = q
        .next_done_before(Instant::now() + Duration::from_secs(30))
        .expect("the read completes before this deadline");
    assert_eq!(tag, 7);
    assert_eq!(got.unwrap(), Some(value_for(7, 9, 4096)));
    assert!(t0.elapsed() >= delay, "the device's delay fired");
    assert!(q.next_done_before(Instant::now()).is_none() && q.is_empty());
    for f in &faulty {
        f.set_delay(Duration::ZERO);
    }
    e.close().unwrap();
}

/// A record rebuilt from other chunks reads one chunk more than it needs and decodes from
/// the first k that arrive: with the record's own device left out and any one of the other
/// five devices 400 ms late, the queued read comes back long before that device answers,
/// with the record's bytes. (Reading exactly k chunks, four of the five cases wait for the
/// late device.)
#[test]
fn a_rebuilt_read_does_not_wait_for_its_slowest_chunk() {
    rebuilt_read_does_not_wait_for_its_slowest_chunk(false);
}

/// The same through `Engine::get`, which rebuilds a single record with a spare read too.
#[test]
fn a_rebuilt_get_does_not_wait_for_its_slowest_chunk() {
    rebuilt_read_does_not_wait_for_its_slowest_chunk(true);
}

fn rebuilt_read_does_not_wait_for_its_slowest_chunk(through_get: bool) {
    use std::time::{Duration, Instant};
    let (_mems, faulty) = mem_devices(6, 16 << 20, 5);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let e = Engine::open(io, EngineOptions::default()).unwrap();
    for i in 0..60 {
        e.put("t", &key(i), &value_for(i, 4, 4096)).unwrap();
    }
    e.close().unwrap();
    drop(e);
    // Device 0 left out: a record whose chunk is on it is rebuilt from the other five.
    let rest: Vec<Arc<dyn BlockDevice>> = faulty[1..]
        .iter()
        .map(|f| f.clone() as Arc<dyn BlockDevice>)
        .collect();
    let io = open_backend(BackendKind::Psync, rest).unwrap();
    let opts = EngineOptions {
        read_only: true,
        ..Default::default()
    };
    let e = Engine::open(io, opts).unwrap();
    let read = |i: u64| {
        let (got, took) = if through_get {
            let t0 = Instant::now();
            (e.get("t", &key(i)), t0.elapsed())
        } else {
            // (Dropping the queue waits for its spare read: timed before that.)
            let mut q = e.read_queue::<u64>("t");
            q.submit(&key(i), i).unwrap();
            let t0 = Instant::now();
            let got = q.next_done().expect("one read in flight").1;
            (got, t0.elapsed())
        };
        assert_eq!(got.unwrap(), Some(value_for(i, 4, 4096)), "key {i}");
        took
    };
    let degraded = (0..60)
        .find(|&i| {
            let before = e.status().degraded_reads;
            read(i);
            e.status().degraded_reads > before
        })
        .expect("some record lies on the device left out");
    let delay = Duration::from_millis(400);
    for slow in &faulty[1..] {
        let seen = slow.reads_seen();
        slow.set_delay(delay);
        let took = read(degraded);
        slow.set_delay(Duration::ZERO);
        assert!(
            slow.reads_seen() > seen,
            "the rebuild read the late device too"
        );
        assert!(
            took < delay / 2,
            "the rebuilt read waited for the late device: {took:?}"
        );
    }
    e.close().unwrap();
}
