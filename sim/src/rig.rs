//! The simulated hardware: memory devices, each behind a fault injector (which remembers the
//! writes no flush has covered, for power loss) and a power switch shared by all of them.

use ectable::devices::{
    open_backend, BackendKind, BlockDevice, DeviceError, FaultyDevice, Geometry, IoBackend,
    MemDevice,
};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

/// The power of the whole machine. Each write or flush uses one unit of `budget`; when none
/// is left the power is off and every operation fails without reaching a device. With no
/// cut planned the budget is `i64::MAX` (never used up), so that an operation racing with
/// the one that used the last unit cannot take the budget gone below zero for "no cut".
#[derive(Debug)]
pub struct Power {
    budget: AtomicI64,
    off: AtomicBool,
}

impl Power {
    fn new() -> Power {
        Power {
            budget: AtomicI64::new(i64::MAX),
            off: AtomicBool::new(false),
        }
    }
    /// The power goes off after `ops` more writes and flushes.
    pub fn cut_after(&self, ops: i64) {
        self.budget.store(ops, Ordering::SeqCst);
        if ops == 0 {
            self.off.store(true, Ordering::SeqCst);
        }
    }
    pub fn is_off(&self) -> bool {
        self.off.load(Ordering::SeqCst)
    }
    fn pass(&self) -> bool {
        if self.is_off() {
            return false;
        }
        if self.budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
            self.off.store(true, Ordering::SeqCst);
            return false;
        }
        true
    }
    fn restore(&self) {
        self.budget.store(i64::MAX, Ordering::SeqCst);
        self.off.store(false, Ordering::SeqCst);
    }
}

struct Switched {
    inner: Arc<FaultyDevice>,
    power: Arc<Power>,
}

/// EIO, as a device whose power is off answers (5 is EIO on Linux).
fn power_off(name: &str, op: &'static str, offset_bytes: u64) -> DeviceError {
    DeviceError::io(name, op, offset_bytes, std::io::Error::from_raw_os_error(5))
}

impl BlockDevice for Switched {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> Result<(), DeviceError> {
        if self.power.is_off() {
            return Err(power_off(self.name(), "read", offset_bytes));
        }
        self.inner.read_at(buf, offset_bytes)
    }
    fn write_at(&self, buf: &[u8], offset_bytes: u64) -> Result<(), DeviceError> {
        if !self.power.pass() {
            return Err(power_off(self.name(), "write", offset_bytes));
        }
        self.inner.write_at(buf, offset_bytes)
    }
    fn sync(&self) -> Result<(), DeviceError> {
        if !self.power.pass() {
            return Err(power_off(self.name(), "flush", 0));
        }
        self.inner.sync()
    }
    fn write_durable_at(&self, buf: &[u8], offset_bytes: u64) -> Result<(), DeviceError> {
        if !self.power.pass() {
            return Err(power_off(self.name(), "durable write", offset_bytes));
        }
        self.inner.write_durable_at(buf, offset_bytes)
    }
}

/// One simulated disk.
#[derive(Clone)]
pub struct Disk {
    pub name: String,
    pub mem: Arc<MemDevice>,
    pub faulty: Arc<FaultyDevice>,
}

pub struct Rig {
    pub power: Arc<Power>,
    pub device_bytes: u64,
    next_name: usize,
    seed: u64,
}

impl Rig {
    pub fn new(seed: u64, device_bytes: u64) -> Rig {
        Rig {
            power: Arc::new(Power::new()),
            device_bytes,
            next_name: 0,
            seed,
        }
    }

    /// A blank disk with a new name.
    pub fn new_disk(&mut self) -> Disk {
        let name = format!("sim{}", self.next_name);
        self.next_name += 1;
        let mem = Arc::new(MemDevice::new(&name, self.device_bytes));
        let faulty = Arc::new(FaultyDevice::new(
            mem.clone() as Arc<dyn BlockDevice>,
            self.seed
                .wrapping_mul(31)
                .wrapping_add(self.next_name as u64),
        ));
        faulty.set_track_unflushed(true);
        Disk { name, mem, faulty }
    }

    /// An I/O backend over `disks`, in that order, behind the power switch.
    pub fn backend(&self, disks: &[&Disk]) -> Result<Arc<dyn IoBackend>, DeviceError> {
        let devs: Vec<Arc<dyn BlockDevice>> = disks.iter().map(|d| self.switched(d)).collect();
        open_backend(BackendKind::Psync, devs)
    }

    /// `disk` behind the power switch: every handle the engine gets, also one handed to a
    /// running engine (a disk brought back with `online`), must be, or a power cut leaves
    /// that disk writable and what the engine writes after the cut reaches it.
    pub fn switched(&self, disk: &Disk) -> Arc<dyn BlockDevice> {
        Arc::new(Switched {
            inner: disk.faulty.clone(),
            power: self.power.clone(),
        })
    }

    /// Power back on after a cut (the crash itself is applied to each disk by the caller).
    pub fn power_on(&self) {
        self.power.restore();
    }
}
