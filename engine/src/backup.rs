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
use crate::space::{horizon_hold, HorizonHold, BACKUP_TABLE, HORIZON_KEY, RESTORE_KEY};
use crate::sync::{MutexExt, RwLockExt};
use std::sync::atomic::Ordering;

/// Rows read per batch of device reads, at most, and value bytes, at most (a batch holds at
/// least one row).
const READ_BATCH: usize = 16384;
const READ_BATCH_BYTES: u64 = 16 << 20;
/// Threads reading batches ahead of a full backup's sink: enough to keep every device busy
/// with the next batches' reads while one batch is handed over.
const READERS: usize = 3;

/// What a full backup hands over per row: (table, key, value).
pub type RowSink<'a> = dyn FnMut(&str, &[u8], &[u8]) -> Result<()> + 'a;
/// The rows of one table in a snapshot, with their index entries.
type TableImage = (String, Vec<(Vec<u8>, IndexEntry)>);

/// One change after an LSN: a put (`value` Some) or a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The LSN of the put or delete.
    pub lsn: u64,
    /// The table it changed.
    pub table: String,
    /// The key it changed.
    pub key: Vec<u8>,
    /// The value put, or None for a delete.
    pub value: Option<Vec<u8>>,
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

    /// Raises the horizon to `lsn` (durably first). Never lowers it, except from "none".
    /// `raise_horizon` after a backup was read whole: when the array cannot take the write
    /// (its writes stopped: more than m devices failed, a full file system under the member
    /// files), the backup is still good, so it is kept; only incremental backups after it
    /// may then be refused (`HistoryGone`: the next `--auto` backup is a full one), which
    /// is safe. This is when a backup matters most.
    fn register_after_backup(&self, lsn: u64) {
        if let Err(e) = self.raise_horizon(lsn) {
            tracing::warn!(
                lsn,
                "the backup is whole, but the array could not record it as the base of \
                 incremental backups ({e}); an incremental after it may be refused"
            );
        }
    }

    fn raise_horizon(&self, lsn: u64) -> Result<()> {
        self.shared.check_alive()?;
        let current = self.shared.backup_horizon.load(Ordering::SeqCst);
        if current != u64::MAX && lsn <= current {
            return Ok(());
        }
        self.put_sync_any(BACKUP_TABLE, HORIZON_KEY, &lsn.to_le_bytes())?;
        self.shared.backup_horizon.store(lsn, Ordering::SeqCst);
        Ok(())
    }

    /// Stops keeping history for incremental backups (the next backup must be a full one).
    pub fn clear_backup_horizon(&self) -> Result<()> {
        self.shared.check_alive()?;
        let _m = self.maintenance();
        self.delete_any(BACKUP_TABLE, HORIZON_KEY)?;
        self.sync()?;
        self.shared.backup_horizon.store(u64::MAX, Ordering::SeqCst);
        Ok(())
    }

    fn maintenance(&self) -> std::sync::MutexGuard<'_, ()> {
        self.shared.maintenance.locked()
    }

    /// A full backup's data: every row of every table (system tables such as `$schema`
    /// included, `$backup` not) exactly as of one LSN, while writes go on. Calls `f(table,
    /// key, value)` in (table, key) order and returns the LSN. With `register`, the array
    /// then keeps the history after that LSN for incremental backups ([`Self::backup_changes`]);
    /// if it cannot record that (its writes stopped), the backup is returned all the same
    /// and a warning logged.
    pub fn backup_full(&self, register: bool, f: &mut RowSink<'_>) -> Result<u64> {
        self.shared.check_alive()?;
        if register && self.shared.array.read_only {
            return Err(Error::ReadOnly);
        }
        let _m = self.maintenance();
        // The image: the index at the durable LSN, with every entry on the devices.
        let (lsn, tables) = self.shared.quiesced(|st| {
            let index = self.shared.index.read_locked();
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
                        .map(|(k, e)| (k.to_vec(), e))
                        .collect();
                    (n.clone(), rows)
                })
                .collect();
            (st.acked_lsn(), tables)
        })?;
        // Batches of rows in (table, key) order, read ahead of the sink by READERS helper
        // threads (batch i by reader i % READERS, each one batch ahead in its channel): the
        // devices have several batches' reads in flight while the sink writes these.
        let mut batches: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
        for (ti, (_, rows)) in tables.iter().enumerate() {
            let mut start = 0;
            while start < rows.len() {
                let (mut end, mut bytes) = (start, 0u64);
                while end < rows.len() && end - start < READ_BATCH && bytes < READ_BATCH_BYTES {
                    bytes += rows[end].1.value_len as u64;
                    end += 1;
                }
                batches.push((ti, start..end));
                start = end;
            }
        }
        let shared = &self.shared;
        type Values = Result<Vec<Option<Vec<u8>>>>;
        std::thread::scope(|s| -> Result<()> {
            let (tables, batches) = (&tables, &batches);
            let mut channels = Vec::with_capacity(READERS);
            for r in 0..READERS {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Values>(1);
                channels.push(rx);
                s.spawn(move || {
                    for (ti, range) in batches.iter().skip(r).step_by(READERS) {
                        let (table, rows) = &tables[*ti];
                        let items: Vec<(&[u8], Option<IndexEntry>)> = rows[range.clone()]
                            .iter()
                            .map(|(k, e)| (k.as_slice(), Some(e.clone())))
                            .collect();
                        let values = {
                            let _gate = shared.free_gate.read_locked();
                            shared.load_values(table, &items)
                        };
                        let failed = values.is_err();
                        // The sink stopped (its error is returned), or this read failed.
                        if tx.send(values).is_err() || failed {
                            break;
                        }
                    }
                });
            }
            for (i, (ti, range)) in batches.iter().enumerate() {
                let (table, rows) = &tables[*ti];
                let values = channels[i % READERS].recv().map_err(|_| {
                    Error::InvalidArgument("backup: a reading thread stopped".into())
                })??;
                for ((k, _), v) in rows[range.clone()].iter().zip(values) {
                    let v = v.ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "backup: row {} of '{table}' vanished from its snapshot",
                            String::from_utf8_lossy(k)
                        ))
                    })?;
                    f(table, k, &v)?;
                }
            }
            // Dropping the receivers ends readers still ahead (after an error of the sink).
            drop(channels);
            Ok(())
        })?;
        if register {
            self.register_after_backup(lsn);
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
        self.shared.check_alive()?;
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
        let end = self.shared.quiesced(|st| st.acked_lsn())?;
        let changes = self.read_changes(from_lsn, end)?;
        for c in &changes {
            f(c)?;
        }
        if register {
            self.register_after_backup(end);
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
            let map = shared.segments.read_locked();
            map.values()
                .filter(|s| s.kind == SegmentKind::Log)
                .filter(|s| st.segment_max_lsn(s.id).is_none_or(|m| m > from))
                .cloned()
                .collect()
        };
        segs.sort_by_key(|s| s.id);
        let mut changes = Vec::new();
        let mut seen = 0u64;
        let mut error = None;
        let sf = array.stripe_format();
        for seg in segs {
            let (bufs, _) = crate::log::segment_read::read_segment(array, &seg);
            // The head of a record that continues in the next stripe (format version 5).
            let mut held: Option<log_record::Held> = None;
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
                    let head = held.take();
                    if g.header.last_lsn <= from
                        || g.header.first_lsn > end
                        || g.header.flags & chunk_header::FLAG_CHECKPOINT != 0
                    {
                        return true;
                    }
                    // A head is a record only when this stripe starts with its tail.
                    let joined = head
                        .as_ref()
                        .and_then(|h| Some((h, h.joined(&g.header, &g.data)?)));
                    let mut continued = match &joined {
                        Some((h, bytes)) => match h.decode(sf.records, bytes) {
                            Ok((rec, _)) => Some(rec),
                            Err(e) => {
                                error.get_or_insert(Error::Corrupt {
                                    device: format!("segment {}", seg.id),
                                    offset_bytes: g.header.offset_in_segment_bytes as u64,
                                    what: "log record continued across stripes",
                                    source: e,
                                });
                                return false;
                            }
                        },
                        None => None,
                    };
                    let mut records = log_record::StripeRecords::in_stripe(sf, &g.header, &g.data);
                    loop {
                        let r = match continued.take() {
                            Some(rec) => Ok(rec),
                            None => match records.next() {
                                Some(r) => r.map(|r| r.rec),
                                None => break,
                            },
                        };
                        let rec = match r {
                            Ok(rec) => rec,
                            Err(e) => {
                                error.get_or_insert(Error::Corrupt {
                                    device: format!("segment {}", seg.id),
                                    offset_bytes: g.header.offset_in_segment_bytes as u64
                                        + records.position() as u64,
                                    what: "log record in a verified stripe",
                                    source: e,
                                });
                                return false;
                            }
                        };
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
                    held = records.held();
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
        self.shared.check_alive()?;
        self.put_sync_any(BACKUP_TABLE, RESTORE_KEY, note.as_bytes())?;
        Ok(())
    }

    /// Clears the restore marker (durably).
    pub fn finish_restore(&self) -> Result<()> {
        self.shared.check_alive()?;
        self.delete_any(BACKUP_TABLE, RESTORE_KEY)?;
        self.sync()?;
        Ok(())
    }

    /// The note of an unfinished restore, if the array holds one.
    pub fn restore_in_progress(&self) -> Result<Option<String>> {
        self.shared.check_alive()?;
        match self.get(BACKUP_TABLE, RESTORE_KEY) {
            Err(Error::NoSuchTable(_)) => Ok(None),
            r => Ok(r?.map(|v| String::from_utf8_lossy(&v).into_owned())),
        }
    }
}
