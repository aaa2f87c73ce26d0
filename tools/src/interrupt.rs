//! SIGINT and SIGTERM during the CLI's long commands (`load`, `import`, `scrub`, `rebuild`,
//! `replace`, `backup`). Without this a Ctrl-C ended them where they stood: nothing lost
//! that was acknowledged, but the session's device error counts never reached the health
//! blocks, a load did not say which rows were in, and a scrub's findings were gone.
//!
//! [`watch`] installs the handlers for one command: the first signal only sets a flag, which
//! the command checks at its safe points (between rows, between segments); it then stops,
//! closes the array as a finished command does, says what was done and exits 128 + the
//! signal (130 for SIGINT, 143 for SIGTERM), as a shell expects. A second signal ends the
//! process at once with the same code, as a kill would (the array recovers at its next
//! open). Commands that do not call [`watch`] keep the default action.

use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

struct Watch {
    flag: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

static WATCH: OnceLock<Watch> = OnceLock::new();

/// Installs the handlers (once per process) and returns the flag the first signal sets, for
/// the engine's cancel options.
pub fn watch() -> anyhow::Result<Arc<AtomicBool>> {
    if let Some(w) = WATCH.get() {
        return Ok(w.flag.clone());
    }
    let flag = Arc::new(AtomicBool::new(false));
    let signal = Arc::new(AtomicUsize::new(0));
    for sig in [SIGINT, SIGTERM] {
        // A signal ignored when the process started stays ignored: a shell starts the
        // background jobs of a script with SIGINT ignored, so that a Ctrl-C meant for the
        // script does not stop them.
        if ignored_at_start(sig) {
            continue;
        }
        // Registered first, so it runs before the flag is set: with the flag already set
        // (the second signal) it ends the process.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, flag.clone())?;
        signal_hook::flag::register_usize(sig, signal.clone(), sig as usize)?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    let w = WATCH.get_or_init(|| Watch { flag, signal });
    Ok(w.flag.clone())
}

/// Whether `sig`'s disposition is "ignore" (before any handler of ours is installed).
fn ignored_at_start(sig: i32) -> bool {
    // SAFETY: `sigaction` is plain old data, for which all-zero bytes are a valid value.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: with a null new action, sigaction only writes the current disposition into
    // `old`, a live local of the type it expects.
    let rc = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
    rc == 0 && old.sa_sigaction == libc::SIG_IGN
}

/// Whether a watched signal arrived.
pub fn requested() -> bool {
    WATCH.get().is_some_and(|w| w.flag.load(Ordering::SeqCst))
}

/// The signal that arrived (SIGINT when none did).
fn which() -> i32 {
    match WATCH.get().map(|w| w.signal.load(Ordering::SeqCst) as i32) {
        Some(SIGTERM) => SIGTERM,
        _ => SIGINT,
    }
}

/// The signal's name, for messages ("SIGINT").
pub fn name() -> &'static str {
    if which() == SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    }
}

/// The exit code of a command a signal stopped: 128 + the signal.
pub fn exit_code() -> i32 {
    128 + which()
}

/// The error a command a signal stopped returns: `what` says what was done and what stands.
pub fn stopped(what: impl std::fmt::Display) -> anyhow::Error {
    crate::coded!(exit_code(), "interrupted ({}): {what}", name())
}
