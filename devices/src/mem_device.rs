//! An in-memory device for tests and crash simulation.

use crate::block_device::check_request;
use crate::{BlockDevice, DeviceError, Geometry};
use std::sync::Mutex;

/// A zero-filled device in memory (tests and crash-state images): 4096-byte sectors, no file
/// descriptor (so it runs on the psync backend), and `sync` does nothing.
pub struct MemDevice {
    name: String,
    data: Mutex<Vec<u8>>,
    capacity_bytes: u64,
}

impl MemDevice {
    /// A zeroed device of `capacity_bytes` bytes named `name`.
    pub fn new(name: &str, capacity_bytes: u64) -> MemDevice {
        MemDevice {
            name: name.to_string(),
            data: Mutex::new(vec![0; capacity_bytes as usize]),
            capacity_bytes,
        }
    }

    /// A copy of the whole contents (for crash-state snapshots).
    pub fn snapshot(&self) -> Vec<u8> {
        self.lock().clone()
    }

    /// Replaces the whole contents.
    pub fn restore(&self, image: &[u8]) {
        let mut d = self.lock();
        d.copy_from_slice(image);
    }

    /// Writes bytes directly, bypassing alignment checks (to plant corruption).
    pub fn poke(&self, offset_bytes: u64, bytes: &[u8]) {
        let mut d = self.lock();
        let o = offset_bytes as usize;
        d[o..o + bytes.len()].copy_from_slice(bytes);
    }

    /// A copy of `len` bytes at `offset_bytes`, bypassing alignment checks (panics past the end).
    pub fn peek(&self, offset_bytes: u64, len: usize) -> Vec<u8> {
        let d = self.lock();
        let o = offset_bytes as usize;
        d[o..o + len].to_vec()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A panic while holding this lock can only come from a test's own assertion; the
        // bytes are still consistent, so keep going.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BlockDevice for MemDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn geometry(&self) -> Geometry {
        Geometry {
            sector_size_bytes: 4096,
            capacity_bytes: self.capacity_bytes,
        }
    }
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> Result<(), DeviceError> {
        check_request(self, "read", offset_bytes, buf.len())?;
        let d = self.lock();
        let o = offset_bytes as usize;
        buf.copy_from_slice(&d[o..o + buf.len()]);
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset_bytes: u64) -> Result<(), DeviceError> {
        check_request(self, "write", offset_bytes, buf.len())?;
        let mut d = self.lock();
        let o = offset_bytes as usize;
        d[o..o + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn sync(&self) -> Result<(), DeviceError> {
        Ok(())
    }
}
