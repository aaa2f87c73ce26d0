//! Measures the index's memory per key: loads N keys into an array on memory devices and
//! counts the heap bytes the engine holds afterwards (a counting global allocator), minus
//! what it held empty.
//!
//! Run: `cargo run --release --example index_memory -- 10000000 16 random`
//! (number of keys, key length in bytes, `seq` or `random` key order). Random keys are 16
//! hex digits of a bijection of the key number (so the key length is 16 in that mode); each
//! value is 100 bytes. Prints JSON: keys, key bytes, order, the heap bytes held after every
//! entry points at disk, and per key; also the load time, the most heap an explicit
//! checkpoint of that index takes on top, per key, and its time, and the longest put of a
//! writer thread while a second checkpoint runs (against the longest in a calm second).
//! The load itself reports its longest put and how many puts took over 100 ms: a put that
//! makes a table's key map fold its delta waits for the fold.

use ectable::devices::{open_backend, BackendKind, BlockDevice, MemDevice};
use ectable::{format, Engine, EngineOptions, FormatOptions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// The most LIVE has been since it was last reset.
static PEAK: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size() as isize, Ordering::Relaxed) + l.size() as isize;
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: p was allocated by System.alloc with layout l.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let key_len: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    let random = args.get(3).is_some_and(|s| s == "random");
    let key_len = if random { 16 } else { key_len };
    // About 36 device bytes per 100-byte row per device at RS(4,2), plus checkpoints. The
    // devices are zeroed lazily, so untouched capacity costs nothing.
    let device_bytes = (256u64 << 20).max(n * 200);
    let devs: Vec<Arc<dyn BlockDevice>> = (0..6)
        .map(|i| Arc::new(MemDevice::new(&format!("m{i}"), device_bytes)) as Arc<dyn BlockDevice>)
        .collect();
    let io = open_backend(BackendKind::Psync, devs).expect("engine");
    format(io.as_ref(), &FormatOptions::default()).expect("format");
    let engine = Engine::open(io, EngineOptions::default()).expect("open");
    engine.put("t", b"warmup", b"x").expect("put");
    engine.sync().expect("sync");
    let before = LIVE.load(Ordering::Relaxed);
    let start = std::time::Instant::now();
    let (mut longest_load_put, mut slow_load_puts) = (std::time::Duration::ZERO, 0u64);
    for i in 0..n {
        let key = if random {
            format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).into_bytes()
        } else {
            let mut key = format!("{i:0width$}", width = key_len).into_bytes();
            key.truncate(key_len.max(1));
            key
        };
        let t0 = std::time::Instant::now();
        engine.put("t", &key, &[0u8; 100]).expect("put");
        let took = t0.elapsed();
        longest_load_put = longest_load_put.max(took);
        slow_load_puts += u64::from(took > std::time::Duration::from_millis(100));
    }
    engine.sync().expect("sync");
    let load = start.elapsed();
    // Let the flusher switch the last entries from memory to disk locations, and a periodic
    // checkpoint that may be under way (it builds its payload in memory) finish: wait until
    // the heap holds still for a second.
    let mut after = LIVE.load(Ordering::Relaxed);
    for _ in 0..120 {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let now = LIVE.load(Ordering::Relaxed);
        if now == after {
            break;
        }
        after = now;
    }
    let per_key = (after - before) as f64 / n as f64;
    // What a checkpoint of this index holds on top, at its peak: one more write (so that
    // there is something new to checkpoint), then an explicit checkpoint.
    engine.put("t", b"~after", b"x").expect("put");
    engine.sync().expect("sync");
    let held = LIVE.load(Ordering::Relaxed);
    PEAK.store(held, Ordering::Relaxed);
    let ck_start = std::time::Instant::now();
    engine.checkpoint().expect("checkpoint");
    let ck_secs = ck_start.elapsed().as_secs_f64();
    let ck_peak = (PEAK.load(Ordering::Relaxed) - held) as f64 / n as f64;
    // How long a writer waits while a checkpoint takes its image: one thread puts (without
    // syncing) while another checkpoints; the longest put, against the longest before.
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Puts new keys until told to stop; returns the longest put.
    let put_until_stopped = |prefix: &str| {
        let (mut longest, mut i) = (std::time::Duration::ZERO, 0u64);
        while !stop.load(Ordering::Relaxed) {
            let t0 = std::time::Instant::now();
            engine
                .put("t", format!("{prefix}{i:012}").as_bytes(), &[1u8; 100])
                .expect("put");
            longest = longest.max(t0.elapsed());
            i += 1;
        }
        longest
    };
    let (calm, during) = std::thread::scope(|s| {
        let writer = s.spawn(|| put_until_stopped("~w"));
        std::thread::sleep(std::time::Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        let calm = writer.join().expect("writer");
        stop.store(false, Ordering::Relaxed);
        let writer = s.spawn(|| put_until_stopped("~x"));
        std::thread::sleep(std::time::Duration::from_millis(100));
        engine.checkpoint().expect("checkpoint");
        stop.store(true, Ordering::Relaxed);
        (calm, writer.join().expect("writer"))
    });
    println!(
        "{{\"keys\": {n}, \"key_bytes\": {key_len}, \"order\": \"{}\", \"index_bytes\": {}, \"bytes_per_key\": {per_key:.1}, \"load_secs\": {:.2}, \"longest_put_ms_load\": {:.1}, \"puts_over_100ms_load\": {slow_load_puts}, \"checkpoint_peak_extra_bytes_per_key\": {ck_peak:.1}, \"checkpoint_secs\": {ck_secs:.2}, \"longest_put_ms_calm\": {:.1}, \"longest_put_ms_during_checkpoint\": {:.1}}}",
        if random { "random" } else { "seq" },
        after - before,
        load.as_secs_f64(),
        longest_load_put.as_secs_f64() * 1e3,
        calm.as_secs_f64() * 1e3,
        during.as_secs_f64() * 1e3
    );
}
