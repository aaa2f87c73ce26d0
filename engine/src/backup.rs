//! What backups need from the engine: a consistent image of every row at one LSN, the
//! changes after an LSN in LSN order, the backup horizon that makes the cleaner keep that
//! history, and the marker of a restore in progress. The backup file format and the
//! commands are in the tools crate (docs/backup-format.md).
//!
//! Invariants:
//! - With a horizon H registered, the cleaner never cleans or frees a log segment holding a
//!   record with LSN > H, so every record after H is on the devices: the changes after any
//!   X ≥ H are complete, and [`Engine::backup_changes`] checks it (the LSNs it read must be
//!   exactly X+1..=end).
//! - The horizon only moves forward, and is raised only after the backup that needs it has
//!   read its data: it is stored durably (system table `$backup`, key `horizon`) before
//!   the in-memory value the cleaner reads is raised. Registering holds the maintenance
//!   lock, so no cleaning pass runs between the image and the registration.
//! - Both readers hold the maintenance lock for their run: no segment is freed (or reused)
//!   under them; the cleaner pauses meanwhile.
//! - Moved records (the cleaner's) and the `$backup` table are not changes.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::format::*;
use crate::index::IndexEntry;
use crate::log::stripe::{walk_stripes, StripeOutcome};
use crate::log::writer::{Shared, WriterState};
use std::sync::atomic::Ordering;

/// The system table of backup state.
pub const BACKUP_TABLE: &str = "$backup";
const HORIZON_KEY: &[u8] = b"horizon";
const RESTORE_KEY: &[u8] = b"restore";
/// Rows read per batch of device reads.
const READ_BATCH: usize = 256;

/// What a full backup hands over per row: (table, key, value).
pub type RowSink<'a> = dyn FnMut(&str, &[u8], &[u8]) -> Result<()> + 'a;
/// The rows of one table in a snapshot, with their index entries.
type TableImage = (String, Vec<(Vec<u8>, IndexEntry)>);

/// One change after an LSN: a put (`value` Some) or a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub lsn: u64,
    pub table: String,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// The segments among `ids` the cleaner may clean or free: those holding no record after
/// the backup horizon.
pub(crate) fn outside_history(shared: &Shared, ids: Vec<u64>) -> Vec<u64> {
    let h = shared.backup_horizon.load(Ordering::SeqCst);
    if h == u64::MAX {
        return ids;
    }
    let st = shared.lock_state();
    ids.into_iter()
        .filter(|id| st.segment_max_lsn.get(id).is_some_and(|m| *m <= h))
        .collect()
}

/// Space the backup horizon keeps from the cleaner: log segments (other than the one being
/// written) holding a record after the horizon, and the bytes in them no row needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HorizonHold {
    /// The horizon (LSN), or None when no backup chain is registered.
    pub horizon_lsn: Option<u64>,
    /// Segments held that hold garbage.
    pub segments: usize,
    /// Their garbage: what cleaning them would give back.
    pub garbage_bytes: u64,
}

impl HorizonHold {
    /// "held by the backup horizon (LSN H): N segments, X MiB of garbage; a new backup
    /// raises the horizon, or clear it", or None when it holds nothing.
    pub fn describe(&self) -> Option<String> {
        let h = self.horizon_lsn?;
        (self.segments > 0).then(|| {
            format!(
                "{} segments ({:.1} MiB of garbage) held by the backup horizon (LSN {h}): \
                 the next backup raises it, or clearing it (Engine::clear_backup_horizon, \
                 `ectable backup-clear-horizon`) releases them (the next backup is then a \
                 full one)",
                self.segments,
                self.garbage_bytes as f64 / (1u64 << 20) as f64
            )
        })
    }
}

/// What the horizon holds now (see [`HorizonHold`]). Takes the segment table and the index
/// for reading; the caller may hold the writer state (`st`), never the index.
pub(crate) fn horizon_hold(shared: &Shared, st: &WriterState) -> HorizonHold {
    let h = shared.backup_horizon.load(Ordering::SeqCst);
    if h == u64::MAX {
        return HorizonHold::default();
    }
    let mut writing = st.next_segment_id;
    if let Some(c) = &st.cursor {
        writing = writing.min(c.segment.id);
    }
    if let Some(o) = &st.open {
        writing = writing.min(o.segment.id);
    }
    let cap = crate::cleaner::segment_data_capacity(&shared.array);
    let held: Vec<u64> = shared
        .segments
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .filter(|s| s.kind == SegmentKind::Log && s.id < writing)
        .filter(|s| st.segment_max_lsn.get(&s.id).is_none_or(|m| *m > h))
        .map(|s| s.id)
        .collect();
    let index = shared.index.read().unwrap_or_else(|p| p.into_inner());
    let mut out = HorizonHold {
        horizon_lsn: Some(h),
        ..HorizonHold::default()
    };
    for id in held {
        let garbage = cap.saturating_sub(index.live_bytes.get(&id).copied().unwrap_or(0));
        if garbage > 0 {
            out.segments += 1;
            out.garbage_bytes += garbage;
        }
    }
    out
}

impl Engine {
    /// What the backup horizon keeps from the cleaner now.
    pub fn backup_horizon_hold(&self) -> HorizonHold {
        let st = self.shared.lock_state();
        horizon_hold(&self.shared, &st)
    }

    /// The LSN after which the array keeps all history for incremental backups, if a backup
    /// chain is registered.
    pub fn backup_horizon(&self) -> Option<u64> {
        let h = self.shared.backup_horizon.load(Ordering::SeqCst);
        (h != u64::MAX).then_some(h)
    }

    /// Loads the horizon and checks for an unfinished restore (at open).
    pub(crate) fn load_backup_state(&self, allow_incomplete_restore: bool) -> Result<()> {
        let get = |key: &[u8]| match self.get(BACKUP_TABLE, key) {
            Err(Error::NoSuchTable(_)) => Ok(None),
            r => r,
        };
        if let Some(v) = get(HORIZON_KEY)? {
            let b: [u8; 8] = v
                .as_slice()
                .try_into()
                .map_err(|_| Error::CorruptTableData {
                    table: BACKUP_TABLE.into(),
                    detail: format!("horizon of {} bytes", v.len()),
                })?;
            self.shared
                .backup_horizon
                .store(u64::from_le_bytes(b), Ordering::SeqCst);
        }
        if !allow_incomplete_restore {
            if let Some(v) = get(RESTORE_KEY)? {
                return Err(Error::RestoreIncomplete {
                    started: String::from_utf8_lossy(&v).into_owned(),
                });
            }
        }
        Ok(())
    }

    /// Raises the horizon to `lsn` (durably first). Never lowers it, except from "none".
    fn raise_horizon(&self, lsn: u64) -> Result<()> {
        let current = self.shared.backup_horizon.load(Ordering::SeqCst);
        if current != u64::MAX && lsn <= current {
            return Ok(());
        }
        self.put_sync(BACKUP_TABLE, HORIZON_KEY, &lsn.to_le_bytes())?;
        self.shared.backup_horizon.store(lsn, Ordering::SeqCst);
        Ok(())
    }

    /// Stops keeping history for incremental backups (the next backup must be a full one).
    pub fn clear_backup_horizon(&self) -> Result<()> {
        let _m = self.maintenance();
        self.delete(BACKUP_TABLE, HORIZON_KEY)?;
        self.sync()?;
        self.shared.backup_horizon.store(u64::MAX, Ordering::SeqCst);
        Ok(())
    }

    fn maintenance(&self) -> std::sync::MutexGuard<'_, ()> {
        self.shared
            .maintenance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// A full backup's data: every row of every table (system tables such as `$schema`
    /// included, `$backup` not) exactly as of one LSN, while writes go on. Calls `f(table,
    /// key, value)` in (table, key) order and returns the LSN. With `register`, the array
    /// then keeps the history after that LSN for incremental backups ([`Self::backup_changes`]).
    pub fn backup_full(&self, register: bool, f: &mut RowSink<'_>) -> Result<u64> {
        if register && self.shared.array.read_only {
            return Err(Error::ReadOnly);
        }
        let _m = self.maintenance();
        // The image: the index at the durable LSN, with every entry on the devices.
        let (lsn, tables) = crate::checkpoint::quiesced(&self.shared, |st| {
            let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
            let mut names: Vec<&String> = index
                .tables
                .iter()
                .filter(|(n, t)| n.as_str() != BACKUP_TABLE && !t.is_empty())
                .map(|(n, _)| n)
                .collect();
            names.sort();
            let tables: Vec<TableImage> = names
                .into_iter()
                .map(|n| {
                    let rows = index.tables[n]
                        .iter()
                        .map(|(k, e)| (k.clone(), e.clone()))
                        .collect();
                    (n.clone(), rows)
                })
                .collect();
            (st.durable_lsn, tables)
        })?;
        for (table, rows) in &tables {
            for chunk in rows.chunks(READ_BATCH) {
                let items: Vec<(&[u8], Option<IndexEntry>)> = chunk
                    .iter()
                    .map(|(k, e)| (k.as_slice(), Some(e.clone())))
                    .collect();
                let values = {
                    let _gate = self
                        .shared
                        .free_gate
                        .read()
                        .unwrap_or_else(|p| p.into_inner());
                    self.load_values(table, &items)?
                };
                for ((k, _), v) in chunk.iter().zip(values) {
                    let v = v.ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "backup: row {} of '{table}' vanished from its snapshot",
                            String::from_utf8_lossy(k)
                        ))
                    })?;
                    f(table, k, &v)?;
                }
            }
        }
        if register {
            self.raise_horizon(lsn)?;
        }
        Ok(lsn)
    }

    /// An incremental backup's data: every put and delete after `from_lsn` up to now, in LSN
    /// order (`f` is called for each), read from the log while writes go on. Returns the
    /// LSN it reaches. Fails with [`Error::HistoryGone`] unless a backup chain registered a
    /// horizon at or before `from_lsn` (the cleaner may have discarded what came after).
    /// With `register`, the horizon moves up to the returned LSN.
    pub fn backup_changes(
        &self,
        from_lsn: u64,
        register: bool,
        f: &mut dyn FnMut(&Change) -> Result<()>,
    ) -> Result<u64> {
        if register && self.shared.array.read_only {
            return Err(Error::ReadOnly);
        }
        let _m = self.maintenance();
        let h = self.shared.backup_horizon.load(Ordering::SeqCst);
        if h == u64::MAX {
            return Err(Error::HistoryGone {
                from_lsn,
                why: "no backup chain is registered on this array, so the cleaner keeps no history"
                    .into(),
            });
        }
        if from_lsn < h {
            return Err(Error::HistoryGone {
                from_lsn,
                why: format!("the array keeps the history after LSN {h} only"),
            });
        }
        let end = crate::checkpoint::quiesced(&self.shared, |st| st.durable_lsn)?;
        let changes = self.read_changes(from_lsn, end)?;
        for c in &changes {
            f(c)?;
        }
        if register {
            self.raise_horizon(end)?;
        }
        Ok(end)
    }

    /// Reads the records with LSN in (from, end] from every log segment that may hold one,
    /// checks none is missing, and returns the changes among them in LSN order.
    fn read_changes(&self, from: u64, end: u64) -> Result<Vec<Change>> {
        let shared = &self.shared;
        let array = &shared.array;
        let mut segs: Vec<std::sync::Arc<crate::segments::SegmentInfo>> = {
            let st = shared.lock_state();
            let map = shared.segments.read().unwrap_or_else(|p| p.into_inner());
            map.values()
                .filter(|s| s.kind == SegmentKind::Log)
                .filter(|s| st.segment_max_lsn.get(&s.id).is_none_or(|m| *m > from))
                .cloned()
                .collect()
        };
        segs.sort_by_key(|s| s.id);
        let mut changes = Vec::new();
        let mut seen = 0u64;
        let mut error = None;
        for seg in segs {
            let (bufs, _) = crate::log::segment_read::read_segment(array, &seg);
            walk_stripes(
                array,
                &seg,
                &bufs,
                (SEGMENT_HEADER_SIZE_BYTES, 0),
                usize::MAX,
                true,
                |_, _, _, outcome| {
                    let StripeOutcome::Good(g) = outcome else {
                        // Unreadable, or nothing more in this segment: anything of the range
                        // lost here shows as a missing LSN below.
                        return false;
                    };
                    if g.header.last_lsn <= from
                        || g.header.first_lsn > end
                        || g.header.flags & chunk_header::FLAG_CHECKPOINT != 0
                    {
                        return true;
                    }
                    let payload = g.header.payload_bytes as usize;
                    let mut pos = 0;
                    while pos < payload {
                        let (rec, _, len) =
                            match log_record::RecordView::decode(&g.data[pos..payload]) {
                                Ok(x) => x,
                                Err(e) => {
                                    error.get_or_insert(Error::Corrupt {
                                        device: format!("segment {}", seg.id),
                                        offset_bytes: g.header.offset_in_segment_bytes as u64
                                            + pos as u64,
                                        what: "log record in a verified stripe",
                                        source: e,
                                    });
                                    return false;
                                }
                            };
                        pos += len;
                        if rec.lsn <= from || rec.lsn > end {
                            continue;
                        }
                        seen += 1;
                        if rec.kind == RecordKind::Moved || rec.table == BACKUP_TABLE {
                            continue;
                        }
                        changes.push(Change {
                            lsn: rec.lsn,
                            table: rec.table.to_string(),
                            key: rec.key.to_vec(),
                            value: (rec.kind == RecordKind::Put).then(|| rec.value.to_vec()),
                        });
                    }
                    true
                },
            );
            if let Some(e) = error.take() {
                return Err(e);
            }
        }
        changes.sort_by_key(|c| c.lsn);
        // Every LSN of the range must have been read exactly once (each record has its own).
        if seen != end.saturating_sub(from) {
            return Err(Error::HistoryGone {
                from_lsn: from,
                why: format!(
                    "{} of the {} records after it up to LSN {end} could be read",
                    seen,
                    end.saturating_sub(from)
                ),
            });
        }
        Ok(changes)
    }

    /// Marks the array as holding a restore in progress: until [`Self::finish_restore`],
    /// opening it fails with [`Error::RestoreIncomplete`] (unless
    /// `EngineOptions::allow_incomplete_restore`). `note` says what is being restored.
    pub fn begin_restore(&self, note: &str) -> Result<()> {
        self.put_sync(BACKUP_TABLE, RESTORE_KEY, note.as_bytes())?;
        Ok(())
    }

    /// Clears the restore marker (durably).
    pub fn finish_restore(&self) -> Result<()> {
        self.delete(BACKUP_TABLE, RESTORE_KEY)?;
        self.sync()?;
        Ok(())
    }

    /// The note of an unfinished restore, if the array holds one.
    pub fn restore_in_progress(&self) -> Result<Option<String>> {
        match self.get(BACKUP_TABLE, RESTORE_KEY) {
            Err(Error::NoSuchTable(_)) => Ok(None),
            r => Ok(r?.map(|v| String::from_utf8_lossy(&v).into_owned())),
        }
    }
}
