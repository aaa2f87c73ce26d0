//! Device events: each change of a member's state, handed to every subscriber
//! ([`crate::Engine::subscribe_events`]) as well as logged. A subscriber that went away is
//! dropped at the next event; sending never blocks the engine (the channels are unbounded:
//! a few events per device failure, not per I/O).

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::SystemTime;

/// What happened to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum DeviceEventKind {
    /// The device failed (I/O errors, a failed probe or flush): out of service.
    Failed,
    /// Its latency stood out from the others' for long enough: suspect, reads avoid it.
    Slow,
    /// It is no longer slow.
    NoLongerSlow,
    /// A new device took the slot (replace, or a hot spare by the recovery policy); the
    /// rebuild of its data is pending.
    Replaced,
    /// The slot's rebuild or resync finished: the member is in service again.
    Rebuilt,
    /// A blank device joined as a hot spare.
    SpareAdded,
    /// A member that had failed or was missing is in service again (`online`); its resync
    /// is pending.
    Online,
}

impl DeviceEventKind {
    /// A short name: "failed", "slow", "no-longer-slow", "replaced", "rebuilt", "spare-added",
    /// "online".
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceEventKind::Failed => "failed",
            DeviceEventKind::Slow => "slow",
            DeviceEventKind::NoLongerSlow => "no-longer-slow",
            DeviceEventKind::Replaced => "replaced",
            DeviceEventKind::Rebuilt => "rebuilt",
            DeviceEventKind::SpareAdded => "spare-added",
            DeviceEventKind::Online => "online",
        }
    }
}

/// One change of a member's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEvent {
    /// The slot (for a spare added: the spare's entry, ≥ n).
    pub slot: usize,
    /// The device's name (its path), as the engine opened it.
    pub device: String,
    /// What happened.
    pub kind: DeviceEventKind,
    /// Why, for people (the error that failed it, the device it replaced, ...).
    pub detail: String,
    /// When.
    pub at: SystemTime,
}

/// The subscribers.
#[derive(Default)]
pub(crate) struct Events {
    subscribers: Mutex<Vec<Sender<DeviceEvent>>>,
}

impl Events {
    pub fn subscribe(&self) -> Receiver<DeviceEvent> {
        let (tx, rx) = channel();
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        rx
    }

    pub fn emit(&self, slot: usize, device: String, kind: DeviceEventKind, detail: String) {
        let mut subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        if subs.is_empty() {
            return;
        }
        let e = DeviceEvent {
            slot,
            device,
            kind,
            detail,
            at: SystemTime::now(),
        };
        subs.retain(|s| s.send(e.clone()).is_ok());
    }
}
