//! The `backup`, `backup-verify` and `restore` commands of `ectable`: argument parsing,
//! confirmation, progress on stderr and the output (the prompt, the bar and the byte sizes
//! are `crate::term`'s). The work itself (the file format, taking backups, the hybrid
//! policy, verifying and restoring chains) is the library `ectable_backup`
//! (docs/backup-format.md); its typed errors become the CLI's one-line messages through
//! `anyhow`.

pub mod cli;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
