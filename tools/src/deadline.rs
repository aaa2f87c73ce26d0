//! The I/O deadline of the arrays this process opens (`ectable --io-timeout`, docs/operations.md,
//! "A device that stops answering"): every command that opens an array gives it to the
//! engine, and the superblock reads of `examine` wait no longer than it either. One value per
//! process: the command line sets it before the command runs.

use ectable_engine::{EngineOptions, DEFAULT_IO_TIMEOUT};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The deadline in milliseconds; 0 for none.
static IO_TIMEOUT_MS: AtomicU64 = AtomicU64::new(DEFAULT_IO_TIMEOUT.as_millis() as u64);

/// Sets the deadline of the arrays this process opens from now on (`None`: wait for ever).
pub fn set_io_timeout(timeout: Option<Duration>) {
    let ms = timeout.map_or(0, |t| {
        u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)
    });
    IO_TIMEOUT_MS.store(ms, Relaxed);
}

/// The deadline of the arrays this process opens (`None`: none).
pub fn io_timeout() -> Option<Duration> {
    match IO_TIMEOUT_MS.load(Relaxed) {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    }
}

/// The engine's options for a command of this process: the defaults, with this process's
/// deadline.
pub fn engine_options(read_only: bool) -> EngineOptions {
    let mut opts = EngineOptions {
        read_only,
        ..Default::default()
    };
    opts.health.io_timeout = io_timeout();
    opts
}

/// clap's parser of `--io-timeout`: a duration of at least 1 s, or 0 for none.
pub fn io_timeout_arg(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 30s, 2m; 0 for none)"))?;
    if d < Duration::from_secs(1) {
        return Err(
            "must be at least 1s (or 0 for none): shorter would fail members that are only busy"
                .into(),
        );
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_argument_takes_zero_or_at_least_a_second() {
        assert_eq!(io_timeout_arg("0"), Ok(Duration::ZERO));
        assert_eq!(io_timeout_arg("5s"), Ok(Duration::from_secs(5)));
        assert!(io_timeout_arg("500ms").is_err());
        assert!(io_timeout_arg("soon").is_err());
    }
}
