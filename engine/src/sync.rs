//! Locks without std's poisoning, in one place.
//!
//! A panic in an engine thread poisons the *engine* (docs/design.md, "Worker threads"): the
//! panic is latched, every waiter is woken and every call fails with `Error::Poisoned` from
//! then on, so whatever state the panicking thread left behind is never used to acknowledge
//! anything. std's per-lock poisoning would only add a second, scattered error path, so the
//! engine's locks ignore it, here and nowhere else.
//!
//! Debug builds also refuse a second guard of one `RwLock` on one thread (see `Held`): with
//! std's lock it deadlocks once a writer waits between the two (docs/design.md, "Worker
//! threads").

use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// Between the slices of a long walk under a shared `RwLock` guard. std's lock hands a
/// released lock to whoever asks first: a reader that asks again at once takes it back
/// before the writer the release woke gets to run, so a loop of short read-locked slices
/// keeps writers out as long as one long hold would (measured at 10 M keys: a put waited
/// 1.4 s behind a checkpoint's slices of 4 ms). Sleeping a moment lets the woken writer in.
pub(crate) fn let_writers_in() {
    std::thread::sleep(Duration::from_micros(50));
}

pub(crate) trait MutexExt<T> {
    /// Locks, whether or not a thread panicked while holding the lock.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> MutexExt<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) trait RwLockExt<T> {
    /// Takes the lock shared, whether or not a writer panicked.
    fn read_locked(&self) -> ReadGuard<'_, T>;
    /// Takes the lock exclusively, whether or not a holder panicked.
    fn write_locked(&self) -> WriteGuard<'_, T>;
}

impl<T> RwLockExt<T> for RwLock<T> {
    fn read_locked(&self) -> ReadGuard<'_, T> {
        let held = Held::take(self);
        ReadGuard {
            guard: self.read().unwrap_or_else(|p| p.into_inner()),
            _held: held,
        }
    }
    fn write_locked(&self) -> WriteGuard<'_, T> {
        let held = Held::take(self);
        WriteGuard {
            guard: self.write().unwrap_or_else(|p| p.into_inner()),
            _held: held,
        }
    }
}

/// A shared guard of one of the engine's `RwLock`s.
pub(crate) struct ReadGuard<'a, T> {
    guard: RwLockReadGuard<'a, T>,
    _held: Held,
}

/// An exclusive guard of one of the engine's `RwLock`s.
pub(crate) struct WriteGuard<'a, T> {
    guard: RwLockWriteGuard<'a, T>,
    _held: Held,
}

impl<T> std::ops::Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

// Debug builds: the engine's `RwLock`s this thread holds a guard of. A second guard of the
// same lock on one thread, even two shared ones, deadlocks as soon as a writer waits
// between the two (std's `RwLock` lets no new reader in while a writer waits), which a test
// meets once in many runs; a debug build panics at the second guard instead, every time.
// Release builds keep nothing.
#[cfg(debug_assertions)]
thread_local! {
    static HELD: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// This thread's registration of a guard (debug builds; nothing in release builds).
pub(crate) struct Held(#[cfg(debug_assertions)] usize);

impl Held {
    fn take<T>(lock: &RwLock<T>) -> Held {
        #[cfg(debug_assertions)]
        {
            let addr = lock as *const RwLock<T> as usize;
            HELD.with(|h| {
                let mut h = h.borrow_mut();
                assert!(
                    !h.contains(&addr),
                    "a second guard of one RwLock on one thread: it deadlocks once a writer \
                     waits between the two"
                );
                h.push(addr);
            });
            Held(addr)
        }
        #[cfg(not(debug_assertions))]
        {
            let _ = lock;
            Held()
        }
    }
}

#[cfg(debug_assertions)]
impl Drop for Held {
    fn drop(&mut self) {
        let _ = HELD.try_with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|a| *a == self.0) {
                h.swap_remove(i);
            }
        });
    }
}

pub(crate) trait CondvarExt {
    /// Waits for a notification (or a spurious wake-up).
    fn waited<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T>;
    /// Waits for a notification or until `timeout` passed.
    fn waited_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> MutexGuard<'a, T>;
}

impl CondvarExt for Condvar {
    fn waited<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.wait(guard).unwrap_or_else(|p| p.into_inner())
    }
    fn waited_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> MutexGuard<'a, T> {
        match self.wait_timeout(guard, timeout) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        }
    }
}
