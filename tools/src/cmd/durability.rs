//! What `ectable status` and `ectable model` both know about an array's durability: its
//! facts (k, m, devices, how many are out of service, sizes), the estimate `status` shows
//! under fixed assumptions, and how the numbers are printed (formulas in docs/models.md).

use crate::models::{self, DurabilityEstimate, DurabilityParams, RepairModel};
use ectable_engine::Status;
use serde_json::{json, Value};

/// `ectable status` assumptions: AFR per device and hours to replace and rebuild a device.
const STATUS_AFR: f64 = 0.02;
const STATUS_REBUILD_HOURS: f64 = 24.0;

/// Members not fully in service (missing, failed, stale, rebuilding, slow or erroring):
/// each counts as a lost device for the headline, the redundancy, the durability estimate
/// and the exit code.
pub fn out_of_service(st: &Status) -> usize {
    st.devices.iter().filter(|d| !d.in_service).count()
}

/// What `model` knows about an array opened with --devices.
pub struct ArrayFacts {
    pub k: usize,
    pub m: usize,
    pub devices: usize,
    pub start_failed: usize,
    pub lost: usize,
    pub capacity_bytes: u64,
    pub live_bytes_per_device: u64,
}

pub fn array_facts(st: &Status) -> ArrayFacts {
    let lost = out_of_service(st);
    ArrayFacts {
        k: st.data_shards,
        m: st.parity_shards,
        devices: st.devices.len(),
        start_failed: st
            .parity_shards
            .saturating_sub(st.redundancy_left)
            .max(lost.min(st.parity_shards)),
        lost,
        capacity_bytes: st
            .devices
            .iter()
            .map(|d| d.capacity_bytes)
            .max()
            .unwrap_or(0),
        live_bytes_per_device: st
            .devices
            .iter()
            .map(|d| d.used_segments as u64 * st.segment_size_bytes as u64)
            .max()
            .unwrap_or(0),
    }
}

/// A number in 3 significant places, in scientific notation when far from 1.
pub fn sci(x: f64) -> String {
    if x.is_infinite() {
        "inf".into()
    } else if x == 0.0 {
        "0".into()
    } else if (0.01..1e6).contains(&x.abs()) {
        format!("{x:.3}")
    } else {
        format!("{x:.3e}")
    }
}

pub fn nines_text(n: f64) -> String {
    if n.is_infinite() {
        "inf".into()
    } else {
        format!("{n:.2}")
    }
}

/// The durability estimate `ectable status` shows: the array's k, m, n and redundancy left,
/// with the default assumptions [`STATUS_AFR`] and [`STATUS_REBUILD_HOURS`].
pub fn status_durability(st: &Status) -> Option<DurabilityEstimate> {
    let f = array_facts(st);
    if f.k == 0 || f.lost > f.m || f.devices < f.k + f.m {
        return None;
    }
    let params = DurabilityParams {
        k: f.k,
        m: f.m,
        devices: f.devices,
        failure_rate_per_hour: models::afr_to_rate(STATUS_AFR).ok()?,
        rebuild_hours: STATUS_REBUILD_HOURS,
        critical_rebuild_loss_probability: 0.0,
        repair: RepairModel::Serial,
    };
    models::estimate(&params, f.start_failed).ok()
}

/// The `durable:` line of `ectable status`.
pub fn status_durability_line(st: &Status) -> String {
    let assumptions = format!(
        "assuming AFR {}%, {} h to replace and rebuild a device, independent failures; \
         'ectable model' for more",
        STATUS_AFR * 100.0,
        STATUS_REBUILD_HOURS
    );
    if out_of_service(st) > st.parity_shards {
        return "data may be unavailable now (more than m devices not in service)".into();
    }
    match status_durability(st) {
        Some(e) => format!(
            "{} nines/year (P(loss within 1 year) {}), expected {} years to first loss{}; {}",
            nines_text(e.durability_nines_1y),
            sci(e.loss_probability_1y),
            sci(e.mttdl_years),
            if e.start_failed > 0 {
                format!(
                    ", lowered: {} device(s) of redundancy already used",
                    e.start_failed
                )
            } else {
                String::new()
            },
            assumptions
        ),
        None => "not available".into(),
    }
}

/// `durability_estimate` of `ectable status --json`.
pub fn status_durability_json(st: &Status) -> Value {
    match status_durability(st) {
        Some(e) => json!({
            "redundancy_left": st.redundancy_left,
            "start_failed": e.start_failed,
            "assumed_afr": STATUS_AFR,
            "assumed_rebuild_hours": STATUS_REBUILD_HOURS,
            "rebuild_hours_effective": e.effective_rebuild_hours,
            "loss_probability_1y": e.loss_probability_1y,
            "durability_nines_1y": e.durability_nines_1y,
            "expected_years_to_first_loss": e.mttdl_years,
        }),
        None => Value::Null,
    }
}
