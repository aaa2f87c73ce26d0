//! The hybrid policy of `ectable backup --auto DIR`: it decides between a full and an
//! incremental backup, names the file so that the chain is plain to see
//! (`c0003-0000-full.ectb`, `c0003-0001-incr.ectb`, ...), writes it atomically, and prunes
//! the chains that fall out of retention.
//!
//! The policy (docs/operations.md, "Backups"): a full backup starts a new chain when there
//! is no chain of this array yet; when this array's newest chain is not a sound chain (a
//! file missing or damaged); when it already holds `full_every` incrementals; when its
//! incrementals together exceed `max_chain_percent` % of its full backup's size; or when the
//! array no longer keeps the history after the chain's end (the engine says
//! `HistoryGone`). Otherwise it takes an incremental after the chain's last file. After a
//! backup, only this array's newest `keep_chains` chains are kept: the chains of another
//! array in the same directory are never deleted (nor extended), only named.
//!
//! Invariants:
//! - Files are complete under their final names (written as `NAME.partial`, fsynced,
//!   renamed); stale `.partial` files of killed runs are removed.
//! - A chain is pruned only after the new backup is durable, newest file first, so a crash
//!   while pruning leaves a shorter chain that still restores, never a chain with a hole.
//! - One `--auto` run at a time per directory: each holds an exclusive lock (flock) on the
//!   directory itself for the whole run, and a second run is refused (`Error::Busy`)
//!   instead of removing the first one's unfinished file as stale. No file is made for it.

use crate::format::{read_header_and_trailer, BackupKind, Manifest};
use crate::take::{sync_dir, take_full, take_incremental, TakeOptions};
use crate::{parse_uuid, uuid_text, Error, Result};
use ectable_engine::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The numbers of the hybrid policy.
#[derive(Debug, Clone, Copy)]
pub struct AutoPolicy {
    /// A chain holds at most this many incrementals; the next backup is a full one.
    pub full_every: u32,
    /// The next backup is a full one once the chain's incrementals exceed this percentage
    /// of its full backup's size.
    pub max_chain_percent: u32,
    /// Chains kept after a backup (the new one included), at least 1.
    pub keep_chains: u32,
}

impl Default for AutoPolicy {
    fn default() -> Self {
        AutoPolicy {
            full_every: 7,
            max_chain_percent: 50,
            keep_chains: 2,
        }
    }
}

/// What `--auto` did.
#[derive(Debug, Clone)]
pub struct AutoOutcome {
    /// The backup file written.
    pub path: PathBuf,
    /// Its manifest (what its trailer says).
    pub manifest: Manifest,
    /// Why this kind of backup was taken.
    pub reason: String,
    /// Files removed by retention.
    pub pruned: Vec<PathBuf>,
}

/// A file of the directory named like a backup of the policy.
#[derive(Debug, Clone)]
struct Named {
    chain: u32,
    seq: u32,
    kind: BackupKind,
    path: PathBuf,
}

/// `c0003-0001-incr.ectb` → (3, 1, incremental).
fn parse_name(name: &str) -> Option<(u32, u32, BackupKind)> {
    let rest = name.strip_prefix('c')?.strip_suffix(".ectb")?;
    let mut parts = rest.split('-');
    let chain = parts.next()?;
    let seq = parts.next()?;
    let kind = match parts.next()? {
        "full" => BackupKind::Full,
        "incr" => BackupKind::Incremental,
        _ => return None,
    };
    if parts.next().is_some() || chain.len() < 4 || seq.len() < 4 {
        return None;
    }
    if !chain.bytes().chain(seq.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((chain.parse().ok()?, seq.parse().ok()?, kind))
}

/// The file name of backup `seq` of chain `chain`.
pub fn file_name(chain: u32, seq: u32, kind: BackupKind) -> String {
    let k = match kind {
        BackupKind::Full => "full",
        BackupKind::Incremental => "incr",
    };
    format!("c{chain:04}-{seq:04}-{k}.ectb")
}

/// Lists the policy's files in `dir` by chain; removes stale `.partial` files.
fn list(dir: &Path) -> Result<BTreeMap<u32, Vec<Named>>> {
    let mut chains: BTreeMap<u32, Vec<Named>> = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, 0, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, 0, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".partial") {
            if parse_name(stem).is_some() {
                // A backup that was killed before it completed.
                let _ = std::fs::remove_file(entry.path());
            }
            continue;
        }
        if let Some((chain, seq, kind)) = parse_name(name) {
            chains.entry(chain).or_default().push(Named {
                chain,
                seq,
                kind,
                path: entry.path(),
            });
        }
    }
    for files in chains.values_mut() {
        files.sort_by_key(|f| f.seq);
    }
    Ok(chains)
}

/// The array a chain's files are backups of, from the first file that reads (None: none
/// reads).
fn owner(files: &[Named]) -> Option<[u8; 16]> {
    files.iter().find_map(|f| {
        read_header_and_trailer(&f.path)
            .ok()
            .map(|(_, m)| m.array_id)
    })
}

/// The newest chain, if it is one this array can extend: its last file and why not
/// otherwise.
fn extendable(
    files: &[Named],
    array_id: &[u8; 16],
    policy: &AutoPolicy,
) -> std::result::Result<(PathBuf, u32), String> {
    let mut manifests: Vec<Manifest> = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let want_kind = if i == 0 {
            BackupKind::Full
        } else {
            BackupKind::Incremental
        };
        if f.seq as usize != i || f.kind != want_kind {
            return Err(format!(
                "chain {} is not complete ({} is missing)",
                f.chain,
                file_name(f.chain, i as u32, want_kind)
            ));
        }
        let (_, m) = read_header_and_trailer(&f.path)
            .map_err(|e| format!("chain {} has a bad file: {e}", f.chain))?;
        if m.kind != want_kind || m.chain_index != f.seq {
            return Err(format!(
                "{} does not hold what its name says",
                f.path.display()
            ));
        }
        if let Some(prev) = manifests.last() {
            if m.base_backup_id != prev.backup_id || m.start_lsn != prev.end_lsn {
                return Err(format!(
                    "{} does not follow the file before it",
                    f.path.display()
                ));
            }
        }
        manifests.push(m);
    }
    let full = &manifests[0];
    if full.array_id != *array_id {
        return Err(format!(
            "chain {} is a backup of another array ({})",
            files[0].chain,
            uuid_text(&full.array_id)
        ));
    }
    let incrementals = (manifests.len() - 1) as u64;
    if incrementals >= u64::from(policy.full_every) {
        return Err(format!(
            "chain {} holds {incrementals} incrementals (--full-every {})",
            files[0].chain, policy.full_every
        ));
    }
    let incr_bytes: u64 = manifests[1..].iter().map(|m| m.file_size_bytes).sum();
    if incr_bytes.saturating_mul(100)
        > full
            .file_size_bytes
            .saturating_mul(u64::from(policy.max_chain_percent))
    {
        return Err(format!(
            "the incrementals of chain {} ({} bytes) exceed {}% of its full backup ({} bytes)",
            files[0].chain, incr_bytes, policy.max_chain_percent, full.file_size_bytes
        ));
    }
    let last = &files[files.len() - 1];
    Ok((last.path.clone(), last.seq + 1))
}

/// Takes the backup the policy calls for into `dir` and prunes old chains.
pub fn take_auto(
    engine: &Engine,
    dir: &Path,
    policy: &AutoPolicy,
    opts: &mut TakeOptions<'_>,
) -> Result<AutoOutcome> {
    if policy.keep_chains == 0 {
        return Err(Error::InvalidArgument(
            "--keep-chains must be at least 1".into(),
        ));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{}: is not a directory; the policy's backups go into a directory",
            dir.display()
        )));
    }
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, 0, e))?;
    }
    let lock = std::fs::File::open(dir).map_err(|e| Error::io(dir, 0, e))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(Error::Busy {
                dir: dir.to_path_buf(),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(dir, 0, e)),
    }
    let status = engine.status();
    let array_id = parse_uuid(&status.array_uuid).ok_or_else(|| {
        Error::InvalidArgument(format!("array id {} is not a uuid", status.array_uuid))
    })?;
    let chains = list(dir)?;
    let next_chain = chains.keys().next_back().map_or(Ok(0), |n| {
        n.checked_add(1)
            .ok_or_else(|| Error::InvalidArgument("chain numbers exhausted".into()))
    })?;
    // Whose each chain is: another array's chains (two arrays given one directory, or the
    // array before a restore made this one) are left alone, never extended or pruned.
    let owners: BTreeMap<u32, Option<[u8; 16]>> =
        chains.iter().map(|(n, f)| (*n, owner(f))).collect();
    let others: Vec<String> = owners
        .iter()
        .filter_map(|(n, o)| match o {
            Some(a) if *a != array_id => Some(format!("{n} (array {})", uuid_text(a))),
            _ => None,
        })
        .collect();
    // This array's newest chain, or the newest with no file that reads (a sound chain of
    // this array is never taken for it: it is not sound).
    let newest = chains
        .iter()
        .rev()
        .find(|(n, _)| owners[n].is_none_or(|a| a == array_id));
    let plan = match newest {
        None => Err("no backup chain of this array in the directory yet".to_string()),
        Some((_, files)) => extendable(files, &array_id, policy),
    };
    let (path, manifest, mut reason) = match plan {
        Ok((base, seq)) => {
            let chain = newest.map_or(0, |(n, _)| *n);
            let path = dir.join(file_name(chain, seq, BackupKind::Incremental));
            match take_incremental(engine, &base, &path, opts) {
                Ok(m) => (
                    path,
                    m,
                    format!("incremental number {seq} of chain {chain}"),
                ),
                Err(Error::HistoryGone { from_lsn, why, .. }) => {
                    let path = dir.join(file_name(next_chain, 0, BackupKind::Full));
                    let m = take_full(engine, &path, opts)?;
                    (
                        path,
                        m,
                        format!("full: the array no longer keeps the history after LSN {from_lsn} ({why})"),
                    )
                }
                Err(e) => return Err(e),
            }
        }
        Err(why) => {
            let path = dir.join(file_name(next_chain, 0, BackupKind::Full));
            let m = take_full(engine, &path, opts)?;
            (path, m, format!("full: {why}"))
        }
    };
    // Retention: this array's newest `keep_chains` chains stay (the new backup's among
    // them); older ones go, and so do older chains no file of which reads. Another array's
    // chains stay.
    let mut pruned = Vec::new();
    let chains = list(dir)?;
    let ours = |n: &u32| match owners.get(n) {
        Some(Some(a)) => *a == array_id,
        Some(None) => false,
        None => true, // the new backup's chain
    };
    let keep_from = chains
        .keys()
        .filter(|n| ours(n))
        .rev()
        .nth(policy.keep_chains as usize - 1)
        .copied()
        .unwrap_or(0);
    for (n, files) in &chains {
        let unreadable = matches!(owners.get(n), Some(None));
        if *n >= keep_from || !(ours(n) || unreadable) {
            continue;
        }
        for f in files.iter().rev() {
            std::fs::remove_file(&f.path).map_err(|e| Error::io(&f.path, 0, e))?;
            pruned.push(f.path.clone());
        }
    }
    if !pruned.is_empty() {
        sync_dir(&path)?;
    }
    if !others.is_empty() {
        reason.push_str(&format!(
            "; the directory also holds chain(s) {} of another array, left alone (give each array a directory of its own)",
            others.join(", ")
        ));
    }
    Ok(AutoOutcome {
        path,
        manifest,
        reason,
        pruned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for (c, s, k) in [
            (0, 0, BackupKind::Full),
            (3, 12, BackupKind::Incremental),
            (12345, 1, BackupKind::Incremental),
        ] {
            assert_eq!(parse_name(&file_name(c, s, k)), Some((c, s, k)));
        }
        for bad in [
            "c1-0000-full.ectb",
            "c0001-0000-full.ectb.partial",
            "c0001-0000-fall.ectb",
            "x0001-0000-full.ectb",
            "c0001-000a-incr.ectb",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
