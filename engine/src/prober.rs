//! Active detection: a thread that, at an interval, writes a health block on every device,
//! reads it back and checks it. A device whose probe fails (I/O error, short transfer, or a
//! block that does not read back as written) is failed; probe latency feeds the slowness
//! detector like normal traffic. Stops when the engine closes.

use crate::format::health_block::{self as probe, HEALTH_BLOCK_OFFSET};
use crate::shared::Shared;
use crate::sync::{CondvarExt, MutexExt};
use ectable_devices::{AlignedBuf, IoOp};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Tells the prober to stop, and wakes it.
#[derive(Default)]
pub(crate) struct StopSignal {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl StopSignal {
    pub fn stop(&self) {
        *self.stopped.locked() = true;
        self.cv.notify_all();
    }

    /// Sleeps for `d` or until stopped; returns true when stopped.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = std::time::Instant::now() + d;
        let mut g = self.stopped.locked();
        while !*g {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            g = self.cv.waited_timeout(g, left);
        }
        *g
    }
}

/// One round of probes over every present, not failed device. Returns the slots that failed.
pub(crate) fn probe_once(shared: &Shared, sequence: u64) -> Vec<usize> {
    let _round = shared.probe_round.locked();
    let a = &shared.array;
    // Counted when the round starts, so that status never shows a probe failure before the
    // probe that found it.
    shared.counters.probes.fetch_add(1, Ordering::Relaxed);
    let slots: Vec<(usize, usize)> = (0..a.n())
        .filter_map(|s| a.device_of_slot(s as u32).map(|d| (s, d)))
        .collect();
    let mut failed = Vec::new();
    for (slot, why) in a.probe_health_blocks(&slots, sequence) {
        shared
            .counters
            .probe_failures
            .fetch_add(1, Ordering::Relaxed);
        a.mark_failed(slot, &format!("prober: {why}"));
        failed.push(slot);
    }
    a.persist_if_dirty();
    mend_superblocks(shared);
    failed
}

/// Reads every member's two superblock copies and rewrites the superblocks when one is not
/// what the array last wrote (a stray or lost write over it): the session keeps the device
/// states in memory, so without this a member whose copies were both spoiled would be left
/// out at the next open, even after a crash that gives no clean close a chance to write them.
fn mend_superblocks(shared: &Shared) {
    let a = &shared.array;
    if a.read_only {
        return;
    }
    let bad = a.check_superblocks();
    if bad.is_empty() {
        return;
    }
    let what: Vec<String> = bad
        .iter()
        .map(|b| format!("entry {} copy {}: {}", b.entry, b.copy, b.why))
        .collect();
    tracing::warn!(
        "prober: {} bad superblock copies ({}); rewriting the superblocks",
        bad.len(),
        what.join("; ")
    );
    shared
        .counters
        .superblocks_rewritten
        .fetch_add(1, Ordering::Relaxed);
    if let Err(e) = a.persist(|_| {}) {
        tracing::warn!("prober: could not rewrite the superblocks: {e}");
    }
}

/// Writes every present, writable member's health block with what it keeps across sessions
/// (its error counters, the last scrub), without reading it back: at close, once the monitor
/// thread (whose probes read their blocks back) has stopped.
pub(crate) fn write_kept(shared: &Shared) {
    let a = &shared.array;
    if a.read_only {
        return;
    }
    let nanos = crate::array::now_unix_nanos();
    // Only the blocks whose record changed this session: a session that changed nothing
    // (a refused command) writes nothing. A member that failed this session gets its block
    // too, best effort: it may be back next time (a file system that had filled up, a
    // cable), and its errors must not vanish from `status` with it (a dead one fails this
    // write as it fails every other).
    let mut slots = Vec::new();
    let writes: Vec<IoOp> = (0..a.n())
        .filter_map(|s| {
            let d = a.present_device(s)?;
            let rec = a.health_record(s);
            if a.kept.locked().get(s) == Some(&rec) {
                return None;
            }
            let block = probe::encode(&a.sb.array_uuid, s as u32, 0, nanos, &rec);
            slots.push((s, rec));
            Some(IoOp::write(
                d,
                HEALTH_BLOCK_OFFSET,
                AlignedBuf::from_slice(&block),
            ))
        })
        .collect();
    for (c, (s, rec)) in a.io.execute(writes).into_iter().zip(slots) {
        match c.result {
            Ok(()) => a.kept.locked()[s] = rec,
            Err(e) if a.is_failed(s) => {
                tracing::debug!("health block of a failed member not written: {e}")
            }
            Err(e) => tracing::warn!("health block not written: {e}"),
        }
    }
}

/// The scrub this session ran, if any: the last scrub, unless the health blocks already
/// held it at open.
fn session_scrub(shared: &Shared) -> Option<probe::ScrubRecord> {
    let a = &shared.array;
    let s = (*a.last_scrub.locked())?;
    let at_open = a.kept.locked().iter().any(|k| k.last_scrub == Some(s));
    (!at_open).then_some(s)
}

/// Whether a read-only session met device errors or ran a scrub: what [`record_findings`]
/// records.
pub(crate) fn has_findings(shared: &Shared) -> bool {
    session_scrub(shared).is_some()
        || shared.array.counters.iter().any(|c| {
            c.read_errors.load(Ordering::Relaxed) + c.checksum_errors.load(Ordering::Relaxed) > 0
        })
}

/// Records what a read-only session found in the members' health blocks, through `writable`
/// handles the caller opened for writing (which hold the storage against every writer): the
/// read and checksum errors it met are added to each member's counters as its block holds
/// them now (not as they were at open: a writer may have run since), and a scrub it ran
/// becomes the array's last scrub where it is newer. A read-only session writes nothing
/// through its own handles, so without this a `status` after a plain scrub or a read that
/// rebuilt chunks from parity would show none of it (docs/operations.md, "Errors a
/// read-only command finds"). A handle whose superblock does not name this array's member of
/// the slot it is given for (its path names another device by now) is passed over and not
/// written; so are members that fail the read or the write. A member's block that does not
/// check counts as zero counters and no scrub, as at open. Returns the members recorded.
pub(crate) fn record_findings(
    shared: &Shared,
    writable: &[(usize, Arc<dyn ectable_devices::BlockDevice>)],
) -> usize {
    let a = &shared.array;
    if !has_findings(shared) {
        return 0;
    }
    let scrub = session_scrub(shared);
    let nanos = crate::array::now_unix_nanos();
    let mut recorded = 0;
    for (slot, dev) in writable {
        let Some(c) = a.counters.get(*slot) else {
            continue;
        };
        // The path may name another device by now (a disk swapped, a loop device attached
        // to another file): write only onto this array's member of this slot.
        match crate::array::newest_superblock(&**dev) {
            Ok(Some(sb)) if sb.array_uuid == a.sb.array_uuid && sb.device_slot == *slot as u32 => {}
            _ => {
                tracing::warn!(
                    "{}: not this array's member of slot {slot} any more; its health block is left alone",
                    dev.name()
                );
                continue;
            }
        }
        let mut buf = AlignedBuf::new(probe::HEALTH_BLOCK_BYTES);
        let current = match dev.read_at(&mut buf, HEALTH_BLOCK_OFFSET) {
            // A block that does not check counts as zero counters and no scrub, as at open.
            Ok(()) => probe::decode_record(&buf, &a.sb.array_uuid, *slot as u32)
                .map(|(_, r)| r)
                .unwrap_or_default(),
            Err(e) => {
                tracing::debug!("health block of slot {slot} not read: {e}");
                continue;
            }
        };
        let mut rec = current;
        rec.read_errors += c.read_errors.load(Ordering::Relaxed);
        rec.checksum_errors += c.checksum_errors.load(Ordering::Relaxed);
        if let Some(s) = scrub {
            if rec
                .last_scrub
                .is_none_or(|k| k.finished_unix_nanos < s.finished_unix_nanos)
            {
                rec.last_scrub = Some(s);
            }
        }
        if rec == current {
            continue;
        }
        let block = probe::encode(&a.sb.array_uuid, *slot as u32, 0, nanos, &rec);
        // O_DIRECT: the bytes go from an aligned buffer.
        match dev.write_durable_at(&AlignedBuf::from_slice(&block), HEALTH_BLOCK_OFFSET) {
            Ok(()) => recorded += 1,
            Err(e) => tracing::warn!("health block of slot {slot} not written: {e}"),
        }
    }
    recorded
}

/// What to do when a device is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryPolicy {
    /// Nothing: the operator runs `ectable replace`.
    #[default]
    Manual,
    /// Propose the plan (replace the lost device by a hot spare) in the log and in status;
    /// the operator confirms it with `ectable replace`.
    SemiAutomatic,
    /// Replace a lost device by a hot spare and rebuild at once.
    Automatic,
}

impl RecoveryPolicy {
    /// Its name as `ectable serve --recovery` takes it: "manual", "semi-automatic",
    /// "automatic".
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryPolicy::Manual => "manual",
            RecoveryPolicy::SemiAutomatic => "semi-automatic",
            RecoveryPolicy::Automatic => "automatic",
        }
    }
}

impl std::str::FromStr for RecoveryPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "manual" => Ok(RecoveryPolicy::Manual),
            "semi-automatic" | "semi" => Ok(RecoveryPolicy::SemiAutomatic),
            "automatic" | "auto" => Ok(RecoveryPolicy::Automatic),
            o => Err(format!(
                "unknown recovery policy '{o}' (manual, semi-automatic, automatic)"
            )),
        }
    }
}

/// The monitor thread: probes (Active and Hybrid detection) and applies the recovery policy.
pub(crate) fn run(
    shared: Arc<Shared>,
    ops: &crate::ops::OpMetrics,
    stop: Arc<StopSignal>,
    cancel: Arc<std::sync::atomic::AtomicBool>,
    recovery: RecoveryPolicy,
) {
    let mut sequence = 0u64;
    let mut proposed: Vec<usize> = Vec::new();
    let mut proposed_resync = false;
    loop {
        if stop.sleep(shared.array.policy.probe_interval) {
            return;
        }
        shared.test_panic_point(crate::shared::Worker::Monitor);
        if shared.array.policy.mode != crate::health::DetectionMode::Passive {
            sequence += 1;
            probe_once(&shared, sequence);
        }
        if recovery == RecoveryPolicy::Manual {
            continue;
        }
        let opts = crate::rebuild::RebuildOptions {
            rate_limit_bytes_per_sec: 0,
            cancel: Some(cancel.clone()),
        };
        // Recorded as the running activity, as an operator's rebuild is: status shows its
        // progress instead of asking for an 'ectable rebuild' the monitor is doing.
        let rebuild = || {
            let running = ops.begin_if_idle(crate::ops::ActivityKind::Rebuild);
            shared.rebuild(&opts, &mut |p| {
                if running.is_some() {
                    ops.progress(p);
                }
            })
        };
        // A stale member that is present (it came back) is resynced in place: only the
        // segments written while it was away.
        let stale_present = shared
            .stale_slots()
            .iter()
            .any(|(s, _)| shared.array.device_of_slot(*s as u32).is_some());
        if recovery == RecoveryPolicy::SemiAutomatic && stale_present && !proposed_resync {
            proposed_resync = true;
            tracing::warn!("proposed: resync the stale member(s); confirm with 'ectable rebuild'");
        }
        if recovery == RecoveryPolicy::Automatic
            && (shared.rebuild_in_progress().is_some() || stale_present)
        {
            if let Err(e) = rebuild() {
                tracing::error!("automatic rebuild failed: {e}");
            }
            continue;
        }
        let lost = shared.lost_slots();
        let Some(&slot) = lost.first() else { continue };
        let Some(&spare) = shared.spare_devices().first() else {
            continue;
        };
        let spare_name = shared.array.io.devices()[spare].name().to_string();
        match recovery {
            RecoveryPolicy::Automatic => {
                tracing::warn!(slot, spare = %spare_name, "replacing the lost device by a hot spare");
                let r = shared
                    .replace_if_lost(slot, spare)
                    .and_then(|replaced| replaced.then(rebuild).transpose());
                match r {
                    Ok(None) => {
                        tracing::warn!(slot, "the lost device came back meanwhile; not replaced")
                    }
                    Ok(Some(p)) => tracing::warn!(
                        slot,
                        chunks = p.chunks_rebuilt,
                        interrupted = p.interrupted,
                        "automatic rebuild done"
                    ),
                    Err(e) => tracing::error!("automatic replacement failed: {e}"),
                }
            }
            RecoveryPolicy::SemiAutomatic if !proposed.contains(&slot) => {
                proposed.push(slot);
                tracing::warn!(
                    "proposed: replace slot {slot} ({}) by hot spare {spare_name}; confirm with \
                     'ectable replace --old <device> --old-slot {slot} --new {spare_name}'",
                    shared.array.slot_name(slot)
                );
            }
            _ => {}
        }
    }
}
