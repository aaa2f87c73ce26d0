//! An owned, zeroed, 4096-byte-aligned buffer for O_DIRECT I/O.
//!
//! Buffers are passed into an I/O by value and handed back with its completion, so the kernel
//! never writes into memory that Rust code can reach at the same time.
//!
//! Invariants:
//! - `ptr` is aligned to [`ALIGN_BYTES`], points to `capacity` initialised (zeroed at
//!   allocation) bytes, and is owned exclusively by this value.
//! - `len <= capacity`; both are multiples of [`ALIGN_BYTES`] except that `len` may be 0.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Alignment of every data-path buffer, offset and length.
pub const ALIGN_BYTES: usize = 4096;

/// An owned, zeroed buffer aligned to [`ALIGN_BYTES`] whose length is a multiple of it: what
/// every O_DIRECT read and write goes through. Derefs to its visible bytes.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    capacity: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively (like Vec<u8>); moving it to another
// thread moves that ownership, and &AlignedBuf only gives shared access to plain bytes.
unsafe impl Send for AlignedBuf {}
// SAFETY: see above; shared references only allow reads of initialised bytes.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes, rounded up to a multiple of [`ALIGN_BYTES`].
    pub fn new(len: usize) -> Self {
        let capacity = len.div_ceil(ALIGN_BYTES).max(1) * ALIGN_BYTES;
        let layout = Self::layout(capacity);
        // SAFETY: layout has non-zero size (capacity >= ALIGN_BYTES) and a valid power-of-two
        // alignment.
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout);
        };
        AlignedBuf {
            ptr,
            len: capacity.min(len.div_ceil(ALIGN_BYTES) * ALIGN_BYTES),
            capacity,
        }
    }

    /// A zeroed buffer holding a copy of `data`, padded with zeros to the alignment.
    pub fn from_slice(data: &[u8]) -> Self {
        let mut buf = Self::new(data.len());
        buf[..data.len()].copy_from_slice(data);
        buf
    }

    fn layout(capacity: usize) -> Layout {
        match Layout::from_size_align(capacity, ALIGN_BYTES) {
            Ok(l) => l,
            Err(_) => panic!("buffer size {capacity} overflows a Layout"),
        }
    }

    /// The allocated size in bytes (a multiple of [`ALIGN_BYTES`]); the most `set_len` allows.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sets the visible length (a multiple of the alignment, at most the capacity).
    pub fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.capacity && len.is_multiple_of(ALIGN_BYTES),
            "bad AlignedBuf length {len}"
        );
        self.len = len;
    }

    /// The start of the allocation, aligned to [`ALIGN_BYTES`] (for I/O the kernel performs).
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The start of the allocation, writable, aligned to [`ALIGN_BYTES`] (for reads the kernel
    /// fills).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Zeroes the visible bytes.
    pub fn zero(&mut self) {
        self.fill(0);
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr is valid for `capacity >= len` initialised bytes owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref; &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: ptr was allocated in `new` with exactly this layout and is freed once.
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.capacity)) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.len)
    }
}

impl Clone for AlignedBuf {
    fn clone(&self) -> Self {
        let mut b = AlignedBuf::new(self.len);
        b.copy_from_slice(self);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        let b = AlignedBuf::new(5000);
        assert_eq!(b.len(), 8192);
        assert_eq!(b.as_ptr() as usize % ALIGN_BYTES, 0);
        assert!(b.iter().all(|&x| x == 0));
        let c = AlignedBuf::from_slice(b"hello");
        assert_eq!(&c[..5], b"hello");
        assert_eq!(c.len(), 4096);
    }
}
