//! Helpers shared by the integration tests: arrays on memory, files and loop devices.
#![allow(dead_code)]

use ectable::devices::{
    open_engine, BlockDevice, EngineKind, FaultyDevice, FileDevice, IoEngine, MemDevice,
    OpenOptions,
};
use ectable::{format, Engine, EngineOptions, FormatOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// Both I/O engines, so that every scenario runs on each.
pub const ENGINES: [EngineKind; 2] = [EngineKind::Uring, EngineKind::Psync];

pub fn fmt_opts(k: usize, m: usize) -> FormatOptions {
    FormatOptions { data_shards: k, parity_shards: m, chunk_size_bytes: 16 << 10, segment_size_bytes: 256 << 10, force: false }
}

/// n memory devices wrapped in fault injectors.
pub fn mem_devices(n: usize, size: u64, seed: u64) -> (Vec<Arc<MemDevice>>, Vec<Arc<FaultyDevice>>) {
    let mems: Vec<Arc<MemDevice>> = (0..n).map(|i| Arc::new(MemDevice::new(&format!("mem{i}"), size))).collect();
    let faulty = mems
        .iter()
        .enumerate()
        .map(|(i, m)| Arc::new(FaultyDevice::new(m.clone() as Arc<dyn BlockDevice>, seed.wrapping_add(i as u64))))
        .collect();
    (mems, faulty)
}

pub fn io_of(faulty: &[Arc<FaultyDevice>]) -> Arc<dyn IoEngine> {
    let devs: Vec<Arc<dyn BlockDevice>> = faulty.iter().map(|f| f.clone() as Arc<dyn BlockDevice>).collect();
    open_engine(EngineKind::Psync, devs).expect("psync engine")
}

pub fn file_paths(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n).map(|i| dir.join(format!("dev{i}.img"))).collect()
}

pub fn open_files(paths: &[PathBuf], create_size: Option<u64>, kind: EngineKind) -> Arc<dyn IoEngine> {
    let devs: Vec<Arc<dyn BlockDevice>> = paths
        .iter()
        .map(|p| {
            let o = OpenOptions { create_size_bytes: create_size, ..Default::default() };
            Arc::new(FileDevice::open(p, &o).expect("open device")) as Arc<dyn BlockDevice>
        })
        .collect();
    open_engine(kind, devs).expect("io engine")
}

pub fn open_engine_on(io: Arc<dyn IoEngine>) -> Engine {
    Engine::open(io, EngineOptions::default()).expect("open engine")
}

pub fn format_files(paths: &[PathBuf], size: u64, k: usize, m: usize, kind: EngineKind) {
    let io = open_files(paths, Some(size), kind);
    format(io.as_ref(), &fmt_opts(k, m)).expect("format");
}

/// Deterministic value for row i under `seed`.
pub fn value_for(i: u64, seed: u64, len: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether loop-device tests must run (CI) rather than skip.
pub fn loop_required() -> bool {
    std::env::var("ECTABLE_REQUIRE_LOOP").is_ok_and(|v| v == "1")
}

/// A loop device attached by this test, detached on drop (also when the test fails).
pub struct LoopDevice {
    pub path: String,
    pub backing: PathBuf,
}

impl LoopDevice {
    pub fn attach(backing: &Path, size: u64) -> LoopDevice {
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(backing).expect("backing file");
        f.set_len(size).expect("size backing file");
        let out = Command::new("losetup").args(["-f", "--show", "--direct-io=on"]).arg(backing).output().expect("run losetup");
        let out = if out.status.success() {
            out
        } else {
            Command::new("losetup").args(["-f", "--show"]).arg(backing).output().expect("run losetup")
        };
        assert!(out.status.success(), "losetup failed: {}", String::from_utf8_lossy(&out.stderr));
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        LoopDevice { path, backing: backing.to_path_buf() }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.backing).status();
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
    }
}

/// Returns false (and prints why) when loop devices cannot be used here; panics when CI
/// requires them.
pub fn loop_devices_available(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(!loop_required(), "{test}: ECTABLE_REQUIRE_LOOP=1 but not running as root");
    eprintln!("SKIP {test}: loop devices need root");
    false
}
