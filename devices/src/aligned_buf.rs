//! An owned, 4096-byte-aligned buffer for O_DIRECT I/O.
//!
//! Buffers are passed into an I/O by value and handed back with its completion, so the kernel
//! never writes into memory that Rust code can reach at the same time.
//!
//! Read buffers ([`AlignedBuf::for_read`]) go back to a bounded pool when dropped and are
//! handed out again without zeroing: a read overwrites every byte it returns, and a read
//! that transfers less is an error whose buffer nobody looks at (the backends' contract), so
//! the old bytes are never taken for data. Fresh allocations would cost a page fault and a
//! zeroing per 4 KiB of every read (a tenth of a full backup's cycles).
//!
//! Invariants:
//! - `ptr` is aligned to [`ALIGN_BYTES`], points to `capacity` initialised bytes (zeroed at
//!   allocation; a pooled buffer holds what its last use left), and is owned exclusively by
//!   this value (or, once given back, by the pool).
//! - `len <= capacity`; both are multiples of [`ALIGN_BYTES`] except that `len` may be 0.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Mutex;

/// Bytes the read-buffer pool keeps at most.
const POOL_BYTES: usize = 64 << 20;

/// Read buffers given back, by capacity (powers of two): (capacity, buffers).
struct Pool {
    classes: Vec<(usize, Vec<AlignedBuf>)>,
    bytes: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    classes: Vec::new(),
    bytes: 0,
});

/// Alignment of every data-path buffer, offset and length.
pub const ALIGN_BYTES: usize = 4096;

/// An owned, zeroed buffer aligned to [`ALIGN_BYTES`] whose length is a multiple of it: what
/// every O_DIRECT read and write goes through. Derefs to its visible bytes.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    capacity: usize,
    /// Given back to the pool when dropped (a read buffer).
    pooled: bool,
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
            pooled: false,
        }
    }

    /// A buffer of `len` bytes (rounded up to [`ALIGN_BYTES`]) for a read to fill: from the
    /// pool when it holds one of the size class (its bytes are whatever its last use left),
    /// else a new zeroed one. It goes back to the pool when dropped.
    pub fn for_read(len: usize) -> Self {
        let want = len.div_ceil(ALIGN_BYTES) * ALIGN_BYTES;
        let class = want.max(ALIGN_BYTES).next_power_of_two();
        let pooled = POOL.lock().ok().and_then(|mut pool| {
            let (_, bufs) = pool.classes.iter_mut().find(|(c, _)| *c == class)?;
            let b = bufs.pop()?;
            pool.bytes -= class;
            Some(b)
        });
        let mut b = pooled.unwrap_or_else(|| AlignedBuf::new(class));
        b.pooled = true;
        b.len = want;
        b
    }

    /// Gives the allocation to the pool if it has room; then this value no longer owns it.
    fn give_back(&mut self) -> bool {
        let Ok(mut pool) = POOL.lock() else {
            return false;
        };
        if pool.bytes + self.capacity > POOL_BYTES {
            return false;
        }
        pool.bytes += self.capacity;
        let moved = AlignedBuf {
            ptr: self.ptr,
            len: 0,
            capacity: self.capacity,
            pooled: true,
        };
        match pool.classes.iter_mut().find(|(c, _)| *c == self.capacity) {
            Some((_, bufs)) => bufs.push(moved),
            None => pool.classes.push((self.capacity, vec![moved])),
        }
        true
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
        if self.pooled && self.give_back() {
            return; // the pool owns the allocation now
        }
        // SAFETY: ptr was allocated in `new` with exactly this layout, and is freed once: a
        // buffer given to the pool above returned before this, and the pool's own value is
        // the only owner left.
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

    #[test]
    fn read_buffers_are_reused_from_the_pool() {
        let mut a = AlignedBuf::for_read(5000);
        assert_eq!(a.len(), 8192);
        assert_eq!(a.capacity(), 8192);
        a[0] = 7;
        let p = a.as_ptr() as usize;
        drop(a);
        // Another test may take it first; then a new one comes, still aligned and sized.
        let b = AlignedBuf::for_read(8000);
        assert_eq!(b.len(), 8192);
        assert_eq!(b.as_ptr() as usize % ALIGN_BYTES, 0);
        if b.as_ptr() as usize == p {
            assert_eq!(b[0], 7, "a pooled buffer is not zeroed again");
        }
        let c = AlignedBuf::for_read(12 << 10);
        assert_eq!((c.len(), c.capacity()), (12 << 10, 16 << 10));
    }
}
