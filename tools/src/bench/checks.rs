//! What ecbench checks before it writes anything (the layout, the devices' sizes, that they
//! hold no array unless `--force`), and how many puts an array has room for.

use anyhow::{anyhow, bail, Result};
use ectable_devices::IoBackend;
use ectable_engine::{Layout, Status};

/// How long the check waits for a device's superblocks: one that does not answer is named
/// rather than waited for (the engine's default I/O deadline).
const CHECK_DEADLINE: std::time::Duration = ectable_engine::DEFAULT_IO_TIMEOUT;

/// Refuses devices that hold an ectable superblock (of this build's formats or a newer
/// one), unless forced. The superblocks are read through the I/O engine with a deadline.
pub fn check_devices_free(io: &dyn IoBackend, force: bool) -> Result<()> {
    let before = io.io_timeout();
    io.set_io_timeout(Some(
        before.map_or(CHECK_DEADLINE, |t| t.min(CHECK_DEADLINE)),
    ));
    let found = ectable_engine::examine_devices(io);
    io.set_io_timeout(before);
    for (r, d) in found.into_iter().zip(io.devices().iter()) {
        let name = d.name();
        let held = match r {
            Ok(info) => info.map(|m| format!("an ectable array ({})", m.array_uuid)),
            Err(ectable_engine::Error::UnknownFormat { version, .. }) => Some(format!(
                "an ectable superblock of format version {version}, which this build does not read"
            )),
            Err(e) => return Err(anyhow!(e).context(format!("{name}: reading its superblock"))),
        };
        if let (Some(what), false) = (held, force) {
            bail!("{name}: already holds {what}; use --force to overwrite it");
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

impl Geometry {
    /// The engine's view of this geometry (default segment size), if it is valid.
    pub fn layout(&self) -> Option<Layout> {
        Layout::new(self.k, self.m, u32::try_from(self.chunk).ok()?, 0).ok()
    }
}

/// The checks that need no device: done before any file is created.
pub fn check_layout(n: usize, k: usize, m: usize, chunk: u64, rec: usize) -> Result<()> {
    if k + m > n || n > 64 {
        bail!(
            "RS({k},{m}) needs between {} and 64 devices, {n} given",
            k + m
        );
    }
    let layout = u32::try_from(chunk)
        .ok()
        .and_then(|c| Layout::new(k, m, c, 0).ok())
        .ok_or_else(|| {
            anyhow!("--chunk-size must be a multiple of 4K between 4K and 4M, got {chunk}")
        })?;
    let limit = layout.largest_record();
    if rec > limit {
        bail!("--bs: a record of {rec} bytes does not fit a stripe of RS({k},{m}) (limit {limit})");
    }
    Ok(())
}

pub fn check_geometry(io: &dyn IoBackend, k: usize, m: usize, chunk: u64) -> Result<Geometry> {
    let need = u32::try_from(chunk)
        .ok()
        .and_then(|c| Layout::new(k, m, c, 0).ok())
        .map_or(0, |l| l.smallest_device());
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
    let Ok(layout) = Layout::new(
        st.data_shards,
        st.parity_shards,
        st.chunk_size_bytes,
        st.segment_size_bytes,
    ) else {
        return 0;
    };
    let (k, c, s) = (
        layout.k() as u64,
        layout.chunk_bytes() as u64,
        layout.segment_bytes() as u64,
    );
    let free = st.usable_capacity_bytes.saturating_sub(st.used_bytes) / (k * s);
    let free_segments = free.saturating_sub(1);
    let height_total = free_segments * (layout.segment_stripe_space() as u64).saturating_sub(c);
    let (rec, g) = (rec as u64, group.max(1) as u64);
    let per_stripe = (layout.stripe_payload() as u64 / rec).max(1);
    let short = (g % per_stripe) * rec;
    let short_h = if short > 0 {
        Layout::chunk_height_for(short.div_ceil(k) as usize) as u64
    } else {
        0
    };
    let group_h = (g / per_stripe) * c + short_h;
    height_total / group_h.max(1) * g * 95 / 100
}
