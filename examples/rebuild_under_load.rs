//! Foreground reads while a rebuild runs, in one process: measures 4 KiB random-read IOPS
//! on the degraded array, then again while the lost device is rebuilt onto a replacement
//! at the given rate limit, and reports the rebuild's own rate.
//!
//! Run: `cargo run --release --example rebuild_under_load -- D1,D2,D3,D4,D5 NEW [RATE_BYTES_PER_SEC]`
//! where D1..D5 are the surviving devices of a formatted, loaded array (table "ecbench",
//! rows as `ecbench` lays them down) and NEW is a blank device of the same size.

use ectable::devices::{open_backend, BackendKind, BlockDevice, FileDevice, OpenOptions};
use ectable::{Engine, EngineOptions, RebuildOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn key(i: u64) -> Vec<u8> {
    format!("row{i:012}").into_bytes()
}

fn read_for(e: &Engine, rows: u64, until: &dyn Fn() -> bool, max: Duration) -> (u64, Duration) {
    let start = Instant::now();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut ops = 0u64;
    while !until() && start.elapsed() < max {
        let keys: Vec<Vec<u8>> = (0..32)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                key(x % rows)
            })
            .collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        let got = e.get_many("ecbench", &refs).expect("read");
        assert!(got.iter().all(|v| v.is_some()), "a row is missing");
        ops += refs.len() as u64;
    }
    (ops, start.elapsed())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(list), Some(new)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: rebuild_under_load D1,D2,... NEW [RATE_BYTES_PER_SEC]");
        std::process::exit(2);
    };
    let rate: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut paths: Vec<String> = list.split(',').map(String::from).collect();
    paths.push(new.clone());
    let devs: Vec<Arc<dyn BlockDevice>> = paths
        .iter()
        .map(|p| {
            Arc::new(FileDevice::open(p.as_ref(), &OpenOptions::default()).expect("open device"))
                as Arc<dyn BlockDevice>
        })
        .collect();
    let engine = Arc::new(
        Engine::open(
            open_backend(BackendKind::Auto, devs).expect("engine"),
            EngineOptions::default(),
        )
        .expect("open"),
    );
    let rows = engine
        .tables()
        .iter()
        .find(|(t, _)| t == "ecbench")
        .map(|(_, n)| *n as u64)
        .expect("table ecbench");
    let slot = *engine
        .lost_slots()
        .first()
        .expect("one device must be missing");
    let never = || false;
    let (ops, t) = read_for(&engine, rows, &never, Duration::from_secs(5));
    let degraded_iops = ops as f64 / t.as_secs_f64();
    engine.replace(slot, paths.len() - 1).expect("replace");
    let done = Arc::new(AtomicBool::new(false));
    let (e2, d2) = (engine.clone(), done.clone());
    let rebuild = std::thread::spawn(move || {
        let start = Instant::now();
        let p = e2
            .rebuild(
                &RebuildOptions {
                    rate_limit_bytes_per_sec: rate,
                    cancel: None,
                },
                &mut |_| {},
            )
            .expect("rebuild");
        d2.store(true, Ordering::SeqCst);
        (p, start.elapsed())
    });
    let until = || done.load(Ordering::SeqCst);
    let (ops, t) = read_for(&engine, rows, &until, Duration::from_secs(600));
    let (p, rebuild_time) = rebuild.join().expect("rebuild thread");
    let during_iops = ops as f64 / t.as_secs_f64();
    println!(
        "{{\"rows\": {rows}, \"rate_limit_bytes_per_sec\": {rate}, \"degraded_read_iops\": {degraded_iops:.0}, \
         \"read_iops_during_rebuild\": {during_iops:.0}, \"ratio\": {:.3}, \"rebuild_secs\": {:.2}, \
         \"rebuilt_bytes\": {}, \"scanned_bytes\": {}, \"rebuild_write_bytes_per_sec\": {:.0}, \"rebuild_scan_bytes_per_sec\": {:.0}}}",
        during_iops / degraded_iops,
        rebuild_time.as_secs_f64(),
        p.bytes_rebuilt,
        p.bytes_scanned,
        p.bytes_rebuilt as f64 / rebuild_time.as_secs_f64(),
        p.bytes_scanned as f64 / rebuild_time.as_secs_f64()
    );
    engine.close().expect("close");
}
