//! What ecbench checks before it writes anything (the layout, the devices' sizes, that they
//! hold no array unless `--force`), and how many puts an array has room for.

use crate::bench::units::MIB;
use anyhow::{bail, Context, Result};
use ectable_devices::{IoBackend, IoOp};
use ectable_engine::format::{uuid_string, Superblock, DATA_START_BYTES};
use ectable_engine::Status;

/// Refuses devices that hold an ectable superblock, unless forced.
pub fn check_devices_free(io: &dyn IoBackend, force: bool) -> Result<()> {
    let ops = (0..io.devices().len())
        .map(|d| IoOp::read(d, 0, 8192))
        .collect();
    for c in io.execute(ops) {
        let name = io.devices()[c.op.device_index].name().to_string();
        c.result
            .with_context(|| format!("{name}: reading its superblock"))?;
        let sb = Superblock::decode(&c.op.buf[..4096])
            .or_else(|_| Superblock::decode(&c.op.buf[4096..8192]));
        if let (Ok(sb), false) = (sb, force) {
            let uuid = uuid_string(&sb.array_uuid);
            bail!("{name}: already holds an ectable array ({uuid}); use --force to overwrite it");
        }
    }
    Ok(())
}

/// What the array will be: checked against what `format` refuses before the raw pass runs.
#[derive(Clone, Copy)]
pub struct Geometry {
    pub k: usize,
    pub m: usize,
    pub chunk: u64,
    /// Capacity of the smallest device.
    pub cap: u64,
}

/// The checks that need no device: done before any file is created.
pub fn check_layout(n: usize, k: usize, m: usize, chunk: u64, rec: usize) -> Result<()> {
    if k + m > n || n > 64 {
        bail!(
            "RS({k},{m}) needs between {} and 64 devices, {n} given",
            k + m
        );
    }
    if chunk & 4095 != 0 || !(4096..=4 * MIB).contains(&chunk) {
        bail!("--chunk-size must be a multiple of 4K between 4K and 4M, got {chunk}");
    }
    // geometry: the largest record a stripe holds (also in `write_capacity` below).
    let limit = k * (chunk as usize - 512);
    if rec > limit {
        bail!("--bs: a record of {rec} bytes does not fit a stripe of RS({k},{m}) (limit {limit})");
    }
    Ok(())
}

pub fn check_geometry(io: &dyn IoBackend, k: usize, m: usize, chunk: u64) -> Result<Geometry> {
    // geometry: the devices' data area (also in `crate::bench::raw`, `crate::bench::setup`).
    let need = DATA_START_BYTES + 2 * (8 * MIB).max(16 * chunk);
    let cap = io
        .devices()
        .iter()
        .map(|d| d.geometry().capacity_bytes)
        .min()
        .unwrap_or(0);
    if cap < need {
        bail!("devices too small: {cap} bytes, RS({k},{m}) with {chunk}-byte chunks needs {need}");
    }
    Ok(Geometry { k, m, chunk, cap })
}

/// Puts of `rec`-byte records the array has room for when synced every `group` puts: each
/// group fills whole stripes plus one short stripe (docs/format.md, "short stripes"). One
/// segment stays free for the index checkpoint the engine writes when it closes.
pub fn write_capacity(st: &Status, rec: usize, group: usize) -> u64 {
    let (k, c, s) = (
        st.data_shards as u64,
        st.chunk_size_bytes as u64,
        st.segment_size_bytes as u64,
    );
    let free = st.usable_capacity_bytes.saturating_sub(st.used_bytes) / (k * s);
    let free_segments = free.saturating_sub(1);
    let height_total = free_segments * s.saturating_sub(4096 + c);
    let (rec, g) = (rec as u64, group.max(1) as u64);
    // geometry: records per stripe (also in `check_layout` above).
    let per_stripe = (k * (c - 512) / rec).max(1);
    let short = (g % per_stripe) * rec;
    let short_h = if short > 0 {
        (512 + short.div_ceil(k)).div_ceil(4096) * 4096
    } else {
        0
    };
    let group_h = (g / per_stripe) * c + short_h;
    height_total / group_h.max(1) * g * 95 / 100
}
