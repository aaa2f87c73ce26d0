//! The segment cleaner: reclaims the space of overwritten and deleted records.
//!
//! A pass picks victim log segments by cost-benefit, moves their live records forward (they
//! are appended again, as moved records, only if the index still names them), makes that
//! durable, and frees the victims. It writes an index checkpoint first only when the victims
//! before the checkpoint in force would give back less than half of what the best victims
//! among all log segments would (`checkpoint_pays`).
//!
//! Invariants:
//! - Victims lie before the resume segment of the checkpoint in force. A victim is freed
//!   once every record in it that the index points at has been moved forward and the moves
//!   are durable (no new checkpoint needed): after a crash, recovery loads the checkpoint,
//!   which may still point into the freed victim, and replays the log from its resume
//!   point, which holds the moved records and every later write or delete of those keys
//!   (everything after the checkpoint's LSN lies after its resume point), so each such
//!   entry is replaced before anything reads it. A segment at or after the resume point is
//!   part of the log recovery replays; it becomes a victim only after a newer checkpoint.
//!   So a delete record needs no keeping once its segment is cleaned: no older version of
//!   its key can come back (recovery never reads the segments that held one).
//! - Frees happen with no read in flight into the segment (the free gate) and no rebuild
//!   or scrub running (the maintenance lock).
//! - A relocated record takes a new LSN: it is appended only if, under the writer lock, its
//!   key's newest entry is still the record being moved, so it never shadows a later write.
//! - Foreground writes may not take the last [`Shared::reserve_segments`] free segments;
//!   the cleaner's relocations and checkpoints may, so a full array can always be cleaned.
//!
//! Policy (LFS cost-benefit, age damped): a victim's score is `(1 - u) * age^0.75 / (1 + u)`,
//! u its live fraction and age the number of log segments written since it
//! ([`AGE_EXPONENT`]); segments with u above
//! `max_live_fraction` are not picked unless the writers are out of space (then any segment
//! with something dead in it is).

use crate::error::{Error, Result};
use crate::format::*;
use crate::log::stripe::{walk_stripes, StripeOutcome};
use crate::log::writer::Relocation;
use crate::shared::Shared;
use crate::sync::{CondvarExt, RwLockExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The power of a segment's age in its cost-benefit score. LFS weighs age linearly; then
/// rows loaded long ago and rarely overwritten make segments whose score keeps growing
/// with the log written since, until they are moved at 90 % live although they stay cold
/// (docs/performance.md, "Cleaning under pressure": with 90 % of the overwrites to a tenth
/// of the rows at 85 % fill, 2.12–2.15 bytes written per byte overwritten with age, 1.99–2.02
/// with age^0.75; uniform overwrites do not move). benches/clean_model.py, which the engine
/// matches within 0.1, finds 0.75 no worse than 1 at 75 %, 85 % and 90 % fill, uniform or
/// skewed, over one loop or three; lower powers gain more over one loop but lose over three.
const AGE_EXPONENT: f64 = 0.75;

/// Records handed to the writer at a time when moving a victim's records.
const RELOCATE_BATCH: usize = 256;

/// How the background cleaner and the periodic checkpoint behave.
#[derive(Debug, Clone)]
pub struct CleanerOptions {
    /// Run the cleaner thread (periodic checkpoints included). Off, space is reclaimed only
    /// by [`crate::Engine::clean`] and checkpoints are written only at close or by
    /// [`crate::Engine::checkpoint`].
    pub enabled: bool,
    /// Start cleaning when fewer than this fraction of all segments (and at least 2) are
    /// free beyond the reserve kept for the cleaner.
    pub start_free_fraction: f64,
    /// Stop cleaning once this fraction of all segments (and at least 3) is free beyond the
    /// reserve again.
    pub target_free_fraction: f64,
    /// Segments with more live data than this fraction are not worth cleaning.
    pub max_live_fraction: f64,
    /// The same for a writer waiting for space on a full array (or an explicit clean): a
    /// segment fuller than this gives back too little for what moving it writes (at 0.98,
    /// a pass writes at most 49 bytes per byte it gains); the writer gets "no space" instead.
    pub urgent_max_live_fraction: f64,
    /// Bytes of live records moved per second at most (0: no limit).
    pub rate_limit_bytes_per_sec: u64,
    /// Write an index checkpoint after this many bytes of log, or an eighth of the usable
    /// capacity if that is less (0: only at close, when cleaning needs one, or on request).
    pub checkpoint_every_bytes: u64,
    /// How often the cleaner thread looks at the free space.
    pub interval: Duration,
}

impl Default for CleanerOptions {
    fn default() -> Self {
        CleanerOptions {
            enabled: true,
            start_free_fraction: 0.005,
            target_free_fraction: 0.01,
            max_live_fraction: 0.95,
            urgent_max_live_fraction: 0.98,
            rate_limit_bytes_per_sec: 0,
            checkpoint_every_bytes: 256 << 20,
            interval: Duration::from_millis(100),
        }
    }
}

/// What one call to [`crate::Engine::clean`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanReport {
    /// Victim segments whose live records were moved forward.
    pub segments_cleaned: u64,
    /// Segments given back to free space (victims, and segments found dead).
    pub segments_freed: u64,
    /// Live records appended again as moved records (those overwritten meanwhile are not).
    pub records_relocated: u64,
    /// Encoded bytes (padded, headers included) of the live records read for moving.
    pub bytes_relocated: u64,
    /// The LSN of the index checkpoint the run wrote first, if it wrote one.
    pub checkpoint_lsn: Option<u64>,
    /// A rebuild or scrub held the array: nothing was cleaned.
    pub paused: bool,
    /// What the backup horizon keeps from the cleaner after the run (set by
    /// [`crate::Engine::clean`]).
    pub held_by_backup_horizon: crate::space::HorizonHold,
}

/// A victim and its live bytes.
struct Victim {
    seg: Arc<crate::segments::SegmentInfo>,
    live: u64,
}

/// Picks up to `max` victims by cost-benefit, whose live records fit in `room` bytes.
fn pick_victims(
    shared: &Shared,
    opts: &CleanerOptions,
    max: usize,
    room: u64,
    urgent: bool,
    below: u64,
) -> Vec<Victim> {
    let cap = segment_cap(shared);
    let unreadable = shared.cleaner.lock().unreadable.clone();
    // Log segments before the checkpoint's resume segment (so before the one being written).
    let writing = shared.lock_state().writing_segment();
    let segs: Vec<Arc<crate::segments::SegmentInfo>> = {
        let map = shared.segments.read_locked();
        map.values()
            .filter(|s| s.kind == SegmentKind::Log && s.id < writing.min(below))
            .filter(|s| !unreadable.contains(&s.id))
            .cloned()
            .collect()
    };
    // History a registered backup chain still needs stays.
    let keep: std::collections::HashSet<u64> = {
        let ids: Vec<u64> = segs.iter().map(|s| s.id).collect();
        let ok = crate::space::outside_history(shared, ids.clone());
        ids.into_iter().filter(|id| !ok.contains(id)).collect()
    };
    let segs: Vec<_> = segs.into_iter().filter(|s| !keep.contains(&s.id)).collect();
    let newest = shared.lock_state().next_segment_id();
    let mut scored: Vec<(f64, Victim)> = {
        let index = shared.index.read_locked();
        segs.into_iter()
            .filter_map(|seg| {
                let live = index.live_bytes.get(&seg.id).copied().unwrap_or(0);
                let u = live as f64 / cap as f64;
                let limit = if urgent {
                    opts.urgent_max_live_fraction
                } else {
                    opts.max_live_fraction
                };
                if u > limit {
                    return None;
                }
                let age = (newest.saturating_sub(seg.id) as f64).powf(AGE_EXPONENT);
                Some(((1.0 - u) * age / (1.0 + u), Victim { seg, live }))
            })
            .collect()
    };
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out = Vec::new();
    let mut total = 0;
    for (_, v) in scored {
        if out.len() >= max {
            break;
        }
        if total + v.live > room {
            continue;
        }
        total += v.live;
        out.push(v);
    }
    out
}

/// Moves the live records of one victim forward. Returns (records, bytes) moved, or None if
/// some stripe of it could not be read (its records stay where they are).
fn relocate_segment(
    shared: &Shared,
    victim: &Victim,
    limiter: &mut RateLimiter,
) -> Result<Option<(u64, u64)>> {
    let array = &shared.array;
    let seg = &victim.seg;
    if victim.live == 0 {
        // Nothing live to move: the checkpoint that ends the pass frees it.
        return Ok(Some((0, 0)));
    }
    let (bufs, _) = crate::log::segment_read::read_segment(array, seg);
    let mut live: Vec<Relocation> = Vec::new();
    let mut unreadable = false;
    // The head of a record that continues in the next stripe (format version 5).
    let mut held: Option<log_record::Held> = None;
    let sf = array.stripe_format();
    {
        let index = shared.index.read_locked();
        let is_live = |rec: &log_record::RecordView<'_>| {
            rec.kind != RecordKind::Delete
                && index
                    .get(rec.table, rec.key)
                    .is_some_and(|e| e.lsn == rec.lsn && e.place.segment_id() == seg.id)
        };
        walk_stripes(
            array,
            seg,
            &bufs,
            (SEGMENT_HEADER_SIZE_BYTES, 0),
            usize::MAX,
            true,
            |offset, _, _, outcome| match outcome {
                StripeOutcome::Good(g) => {
                    let relocation = |rec: &log_record::RecordView<'_>| Relocation {
                        table: rec.table.to_string(),
                        key: rec.key.to_vec(),
                        value: rec.value.to_vec(),
                        lsn: rec.lsn,
                    };
                    // A head is a record only when this stripe starts with its tail.
                    if let Some(h) = held.take() {
                        if let Some(joined) = h.joined(&g.header, &g.data) {
                            if let Ok((rec, _)) = h.decode(sf.records, &joined) {
                                if is_live(&rec) {
                                    live.push(relocation(&rec));
                                }
                            }
                        }
                    }
                    let mut records = log_record::StripeRecords::in_stripe(sf, &g.header, &g.data);
                    for r in records.by_ref() {
                        let Ok(r) = r else { break };
                        if is_live(&r.rec) {
                            live.push(relocation(&r.rec));
                        }
                    }
                    held = records.held();
                    true
                }
                StripeOutcome::Incomplete { detail, .. } => {
                    tracing::warn!(
                        "cleaner: segment {} stripe at {offset} unreadable ({detail}); \
                         leaving the segment in place",
                        seg.id
                    );
                    unreadable = true;
                    false
                }
                StripeOutcome::Empty => false,
            },
        );
    }
    if unreadable {
        shared.cleaner.lock().unreadable.push(seg.id);
        return Ok(None);
    }
    let (mut records, mut bytes) = (0u64, 0u64);
    for batch in live.chunks(RELOCATE_BATCH) {
        let batch_bytes: u64 = batch
            .iter()
            .map(|r| {
                log_record::encoded_len_padded(r.table.len(), r.key.len(), r.value.len()) as u64
            })
            .sum();
        limiter.take(batch_bytes);
        records += shared.relocate(batch)? as u64;
        bytes += batch_bytes;
    }
    Ok(Some((records, bytes)))
}

/// Paces relocation to a byte rate.
struct RateLimiter {
    rate: u64,
    start: Instant,
    taken: u64,
}

impl RateLimiter {
    fn new(rate: u64) -> RateLimiter {
        RateLimiter {
            rate,
            start: Instant::now(),
            taken: 0,
        }
    }

    fn take(&mut self, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        self.taken += bytes;
        let due = Duration::from_secs_f64(self.taken as f64 / self.rate as f64);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

/// One cleaning pass over at most `max_victims` segments. See the module documentation.
pub(crate) fn clean_pass(
    shared: &Shared,
    opts: &CleanerOptions,
    max_victims: usize,
    asked: bool,
) -> Result<CleanReport> {
    let mut report = CleanReport::default();
    let Ok(_maintenance) = shared.maintenance.try_lock() else {
        report.paused = true;
        shared.cleaner.lock().stats.paused_passes += 1;
        return Ok(report);
    };
    let array = &shared.array;
    let cap = segment_cap(shared);
    let ckpt = shared.keep_for(crate::space::Room::Cleaner);
    let room = || {
        // The free segments beyond the checkpoint's, and what is left of the segment being
        // written, less what records leave unused at stripe ends (about a record per stripe).
        let (left, tail) = {
            let st = shared.lock_state();
            let tail = st.cursor().map_or(0, |c| {
                (array.segment_size() as u64).saturating_sub(c.offset as u64) * cap
                    / array.layout.segment_stripe_space() as u64
            });
            (st.free().allocatable(array.w()), tail)
        };
        let avg_record = {
            let index = shared.index.read_locked();
            index.total_live_bytes() / (index.key_count() as u64).max(1)
        };
        let stripe = array.max_stripe_payload() as u64;
        let waste = avg_record.max(4096).min(stripe / 2);
        (left.saturating_sub(ckpt) as u64 * cap + tail) / stripe * (stripe - waste)
    };
    // Out of space for a writer that waits for it, or for an explicit `clean`: any segment
    // with something dead in it is worth cleaning, and the pass writes alone (appends would
    // fill the segments it takes from the reserve). Not for the background cleaner on its
    // own: a full array whose garbage is spread thin would be rewritten again and again to
    // gather it, with nobody waiting for the room.
    let urgent = asked && free_beyond_reserve(shared).0 < 1.0;
    let _exclusive = urgent.then(|| shared.exclusive_appends());
    let resume = || shared.cleaner.resume_segment();
    let mut victims = pick_victims(shared, opts, max_victims, room(), urgent, resume());
    if written_since_checkpoint(shared)
        && checkpoint_pays(
            shared,
            opts,
            max_victims,
            room(),
            gain(cap, &victims),
            urgent,
        )
    {
        // The segments written since the checkpoint in force would give back much more than
        // those before it: a new checkpoint makes them victims too (and frees those already
        // dead).
        report.checkpoint_lsn = crate::checkpoint::write_online(shared)?;
        report.segments_freed += crate::space::free_dead_segments_locked(shared, resume()) as u64;
        victims = pick_victims(shared, opts, max_victims, room(), urgent, resume());
    }
    if victims.is_empty() {
        return Ok(finish(shared, report));
    }
    let mut limiter = RateLimiter::new(opts.rate_limit_bytes_per_sec);
    for v in &victims {
        match relocate_segment(shared, v, &mut limiter) {
            Ok(Some((records, bytes))) => {
                report.segments_cleaned += 1;
                report.records_relocated += records;
                report.bytes_relocated += bytes;
            }
            Ok(None) => {}
            // Foreground writes may take all but the reserve while the pass runs, so the room
            // the victims were picked for can be gone before the last of them is moved. Stop
            // there: what moved is made durable below and the victims it emptied are freed; the
            // next pass picks again with the room there is then.
            Err(Error::NoSpace(why)) => {
                tracing::debug!(
                    "cleaner: pass stopped after {} victims: {why}",
                    report.segments_cleaned
                );
                break;
            }
            Err(e) => return Err(e),
        }
    }
    // The moved records must be durable before their old places may be reused.
    shared.sync_all()?;
    report.segments_freed += crate::space::free_dead_segments_locked(shared, resume()) as u64;
    Ok(finish(shared, report))
}

/// Whether a checkpoint is worth its writes before this pass: the victims before the
/// resume point give back less than half of what the best victims among all log segments
/// would in the same room (under uniform overwrites the segments written since the checkpoint are
/// the most live ones, so a checkpoint per pass would only add its own writes: at 85 % fill
/// they were a third of everything written).
fn checkpoint_pays(
    shared: &Shared,
    opts: &CleanerOptions,
    max_victims: usize,
    room: u64,
    eligible_gain: u64,
    urgent: bool,
) -> bool {
    let cap = segment_cap(shared);
    let all = pick_victims(shared, opts, max_victims, room, urgent, u64::MAX);
    eligible_gain * 2 < gain(cap, &all)
}

/// The record bytes a log segment holds, which live fractions are measured against.
fn segment_cap(shared: &Shared) -> u64 {
    (shared.array.layout.log_segment_payload() as u64).max(1)
}

/// Bytes the victims would give back: what their segments hold beyond their live records.
fn gain(cap: u64, victims: &[Victim]) -> u64 {
    victims.iter().map(|v| cap.saturating_sub(v.live)).sum()
}

/// Whether log segments other than the one being written lie at or after the resume
/// segment of the checkpoint in force.
fn written_since_checkpoint(shared: &Shared) -> bool {
    let resume = shared.cleaner.resume_segment();
    let current = shared.lock_state().cursor_segment();
    shared
        .segments
        .read_locked()
        .values()
        .any(|s| s.kind == SegmentKind::Log && s.id >= resume && s.id < current)
}

fn finish(shared: &Shared, report: CleanReport) -> CleanReport {
    let mut s = shared.cleaner.lock();
    if report.segments_cleaned + report.segments_freed > 0 || report.checkpoint_lsn.is_some() {
        s.stats.passes += 1;
    }
    s.stats.segments_cleaned += report.segments_cleaned;
    s.stats.segments_freed += report.segments_freed;
    s.stats.records_relocated += report.records_relocated;
    s.stats.bytes_relocated += report.bytes_relocated;
    report
}

/// Free segments beyond the reserve, and the number of segments the fraction options are
/// fractions of.
fn free_beyond_reserve(shared: &Shared) -> (f64, f64) {
    let a = &shared.array;
    let total = (a.segment_count() as usize * a.n() / a.w()).max(1);
    let left = shared.lock_state().free().allocatable(a.w());
    let reserve = shared.reserve_segments();
    (left.saturating_sub(reserve) as f64, total as f64)
}

/// Whether free space is below the level `fraction` (of all segments, and at least `floor`
/// segments) above the reserve.
fn below(shared: &Shared, fraction: f64, floor: f64) -> bool {
    let (free, total) = free_beyond_reserve(shared);
    free < (fraction * total).max(floor)
}

/// Log bytes after which a checkpoint is due: the option, but at most an eighth of the
/// usable capacity, so that small arrays checkpoint often enough to have victims.
fn checkpoint_due_bytes(shared: &Shared, opts: &CleanerOptions) -> u64 {
    let a = &shared.array;
    let usable = a.layout.segment_payload() as u64
        * (a.segment_count() as u64 * a.n() as u64 / a.w() as u64);
    let last = shared.cleaner.last_checkpoint().bytes;
    opts.checkpoint_every_bytes
        .min(usable / 8)
        .max(last.saturating_mul(CHECKPOINT_SPACING))
        .max(1)
}

/// A periodic checkpoint waits for at least this many times its own size of log, so that
/// checkpoints stay a small part of what is written (1/16) when the index is large against
/// the array (at 85 % fill of 4 KiB rows, a checkpoint every eighth of the array was a third
/// of all writes).
const CHECKPOINT_SPACING: u64 = 16;

/// The cleaner thread: cleans when free space runs low or a writer asks, and writes a
/// checkpoint after every `checkpoint_every_bytes` of log.
pub(crate) fn run(shared: Arc<Shared>, opts: CleanerOptions) {
    {
        let mut s = shared.cleaner.lock();
        s.running = true;
    }
    loop {
        let requested = {
            let mut s = shared.cleaner.lock();
            if !s.stop && !s.requested {
                s = shared.cleaner.cv.waited_timeout(s, opts.interval);
            }
            if s.stop {
                break;
            }
            s.in_cycle = true;
            std::mem::take(&mut s.requested)
        };
        shared.test_panic_point(crate::shared::Worker::Cleaner);
        let mut freed = 0;
        let low = below(&shared, opts.start_free_fraction, 2.0);
        if requested || low {
            // Clean until the target is met or a pass achieves nothing.
            for _ in 0..64 {
                match clean_pass(&shared, &opts, 8, requested) {
                    Ok(r) => {
                        freed += r.segments_freed;
                        if r.paused
                            || (r.segments_freed == 0 && r.segments_cleaned == 0)
                            || !below(&shared, opts.target_free_fraction, 3.0)
                        {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("cleaner pass failed: {e}");
                        break;
                    }
                }
                if shared.cleaner.lock().stop {
                    break;
                }
            }
        }
        // Also while cleaning runs without end (a full array under overwrites): reopen time
        // follows the log written since the last checkpoint.
        if opts.checkpoint_every_bytes > 0 {
            let written = shared
                .counters
                .payload_bytes_written
                .load(Ordering::Relaxed);
            let at = shared.cleaner.payload_at_checkpoint.load(Ordering::SeqCst);
            if written.saturating_sub(at) >= checkpoint_due_bytes(&shared, &opts) {
                if let Err(e) = crate::checkpoint::write_online(&shared) {
                    tracing::warn!("periodic checkpoint failed: {e}");
                }
            }
        }
        let mut s = shared.cleaner.lock();
        s.generation += 1;
        s.in_cycle = false;
        s.last_freed = freed;
        shared.cleaner.cv.notify_all();
    }
    let mut s = shared.cleaner.lock();
    s.running = false;
    s.in_cycle = false;
    shared.cleaner.cv.notify_all();
}
