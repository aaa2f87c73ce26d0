//! The `backup`, `backup-verify` and `restore` commands of `ectable`: argument parsing,
//! confirmation, progress on stderr and the output. The work itself (the file format,
//! taking backups, the hybrid policy, verifying and restoring chains) is the library
//! `ectable_backup` (docs/backup-format.md); its typed errors become the CLI's one-line
//! messages through `anyhow`.

pub mod cli;
pub mod progress;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Bytes for people: `1.5 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}
