//! A fuzz driver on stable Rust: seeded mutation of a corpus, no coverage feedback. It
//! finds what random damage finds (which is most of what a decoder's bounds checks are
//! for) and is exactly reproducible from its seed; `cargo fuzz` (libFuzzer, coverage-guided)
//! runs the same targets for the long runs.
//!
//! Each input runs under `catch_unwind`; a panic is a crash, kept with its message and the
//! input. Inputs slower than [`SLOW_INPUT`] are reported too (a hang shows as a run that does
//! not end).

use crate::Target;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// An input slower than this is reported.
pub const SLOW_INPUT: Duration = Duration::from_secs(2);
/// Mutated inputs are cut to this size.
pub const MAX_INPUT_BYTES: usize = 64 << 10;
/// The pool of inputs to mutate holds at most this many.
const MAX_POOL: usize = 2048;

/// An input that made a target panic.
#[derive(Debug, Clone)]
pub struct Crash {
    pub input: Vec<u8>,
    pub message: String,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub execs: u64,
    pub elapsed: Duration,
    pub crashes: Vec<Crash>,
    /// The slowest input's time, and the input when it was slower than [`SLOW_INPUT`].
    pub slowest: Duration,
    pub slow_input: Option<Vec<u8>>,
}

static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);
static QUIET_HOOK: Once = Once::new();

thread_local! {
    /// Whether this thread is running a target (its panics are the driver's to report).
    static IN_TARGET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Panics inside targets are caught and reported by the driver: the hook keeps the message
/// instead of printing it. Other panics go to the hook that was there before.
fn install_quiet_hook() {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_TARGET.with(|t| t.get()) {
                return previous(info);
            }
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "panic".to_string()
            };
            if let Ok(mut m) = PANIC_MESSAGE.lock() {
                *m = Some(format!("{msg}{at}"));
            }
        }));
    });
}

/// Runs one input; the panic message if it panicked.
pub fn run_one(t: &Target, input: &[u8]) -> Option<String> {
    install_quiet_hook();
    IN_TARGET.with(|f| f.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| (t.run)(input)));
    IN_TARGET.with(|f| f.set(false));
    match result {
        Ok(()) => None,
        Err(_) => Some(
            PANIC_MESSAGE
                .lock()
                .ok()
                .and_then(|mut m| m.take())
                .unwrap_or_else(|| "panic".into()),
        ),
    }
}

/// The committed corpus of `t` (files in `dir/<name>`, sorted by name) after its seeds.
pub fn corpus(t: &Target, dir: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let mut out = (t.seeds)();
    let d = dir.join(t.name);
    if d.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&d)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            out.push(std::fs::read(f)?);
        }
    }
    Ok(out)
}

/// Runs every corpus input, then mutated ones until `budget` is spent.
pub fn fuzz(t: &Target, corpus: &[Vec<u8>], seed: u64, budget: Duration) -> Outcome {
    let start = Instant::now();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut pool: Vec<Vec<u8>> = corpus.to_vec();
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let mut out = Outcome::default();
    let exec = |input: &[u8], out: &mut Outcome| {
        let t0 = Instant::now();
        let crashed = run_one(t, input);
        let took = t0.elapsed();
        out.execs += 1;
        if took > out.slowest {
            out.slowest = took;
            if took > SLOW_INPUT {
                out.slow_input = Some(input.to_vec());
            }
        }
        if let Some(message) = crashed {
            if !out.crashes.iter().any(|c| c.message == message) {
                out.crashes.push(Crash {
                    input: input.to_vec(),
                    message,
                });
            }
            return false;
        }
        true
    };
    for input in corpus {
        exec(input, &mut out);
    }
    while start.elapsed() < budget {
        let base = &pool[rng.random_range(0..pool.len())];
        let other = &pool[rng.random_range(0..pool.len())];
        let input = mutate(&mut rng, base, other);
        if exec(&input, &mut out) && rng.random_ratio(1, 64) {
            // Keep some mutants, so that damage can pile up over generations.
            if pool.len() < MAX_POOL {
                pool.push(input);
            } else {
                let i = rng.random_range(corpus.len().min(pool.len() - 1)..pool.len());
                pool[i] = input;
            }
        }
    }
    out.elapsed = start.elapsed();
    out
}

/// Values that sit on the edges of lengths and counts.
const INTERESTING: [u64; 12] = [
    0,
    1,
    2,
    7,
    8,
    0x7f,
    0x80,
    0xff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    u64::MAX,
];

/// One to eight stacked random edits of `base` (`other` for splices).
pub fn mutate(rng: &mut SmallRng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..rng.random_range(1..=8) {
        let len = b.len();
        match rng.random_range(0..9) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                b[i] = rng.random();
            }
            2 if len > 0 => {
                // An interesting value, 1, 2, 4 or 8 bytes wide, little-endian.
                let width = 1 << rng.random_range(0..4);
                let v = INTERESTING[rng.random_range(0..INTERESTING.len())];
                let v = if rng.random() {
                    v
                } else {
                    v.wrapping_add(rng.random_range(0..16))
                };
                let i = rng.random_range(0..len);
                for (j, byte) in v.to_le_bytes().iter().take(width).enumerate() {
                    if let Some(x) = b.get_mut(i + j) {
                        *x = *byte;
                    }
                }
            }
            3 => {
                let i = rng.random_range(0..=len);
                let n = rng.random_range(1..=32);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                b.splice(i..i, bytes);
            }
            4 if len > 0 => {
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(64));
                b.drain(i..i + n);
            }
            5 if len > 0 => {
                // Copy a run of the input over another place of it.
                let from = rng.random_range(0..len);
                let to = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - from).min(len - to).min(256));
                let run = b[from..from + n].to_vec();
                b[to..to + n].copy_from_slice(&run);
            }
            6 if !other.is_empty() => {
                // Splice: a head of this input and a tail of another.
                let i = rng.random_range(0..=len);
                let j = rng.random_range(0..other.len());
                b.truncate(i);
                b.extend_from_slice(&other[j..]);
            }
            7 if len > 0 => {
                b.truncate(rng.random_range(0..len));
            }
            _ => {
                let i = rng.random_range(0..=len);
                let n = rng.random_range(1..=64);
                let byte = rng.random();
                b.splice(i..i, std::iter::repeat_n(byte, n));
            }
        }
    }
    b.truncate(MAX_INPUT_BYTES);
    b
}

/// The file name a crash is kept under: its crc, so that one input is kept once.
pub fn artifact_name(input: &[u8]) -> String {
    format!("crash-{:08x}", crc32c::crc32c(input))
}
