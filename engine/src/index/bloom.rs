//! A blocked Bloom filter over a [`super::KeyMap`]'s base keys, so that putting a new key
//! (the common case of a load in random key order) skips the binary search of the base.
//!
//! Each key sets `PROBES` bits inside one 512-bit block (one cache line), so a query costs
//! one memory access. About 10 bits per key give a false-positive rate near 1 %; a false
//! positive only costs the search it would have skipped. There are no false negatives: every
//! key added stays in (dead base slots keep their keys, so they stay too).

/// Bits per key the filter is sized for.
const BITS_PER_KEY: usize = 10;
/// 64-bit words per block (512 bits, one cache line).
const BLOCK_WORDS: usize = 8;
/// Bits set per key.
const PROBES: u32 = 6;

#[derive(Debug, Default)]
pub(super) struct Bloom {
    words: Vec<u64>,
    /// Keys the filter was sized for: past this, it is rebuilt larger.
    capacity: usize,
    /// Keys added so far.
    added: usize,
}

/// A 64-bit hash of a key (8 bytes at a time, then a splitmix64 finish).
pub(super) fn hash(key: &[u8]) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64 ^ key.len() as u64;
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 29;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    }
    h ^= h >> 31;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 32)
}

impl Bloom {
    /// An empty filter for `keys` keys.
    pub(super) fn with_capacity(keys: usize) -> Bloom {
        let blocks = (keys.max(64) * BITS_PER_KEY).div_ceil(BLOCK_WORDS * 64);
        Bloom {
            words: vec![0; blocks * BLOCK_WORDS],
            capacity: keys.max(64),
            added: 0,
        }
    }

    /// Holds as many keys as it was sized for (its false-positive rate rises past this).
    pub(super) fn is_full(&self) -> bool {
        self.added >= self.capacity
    }

    /// The block's first word and the bits of `h` in it.
    fn probes(&self, h: u64) -> (usize, impl Iterator<Item = (usize, u64)>) {
        let blocks = self.words.len() / BLOCK_WORDS;
        // The high half picks the block (multiply-shift, no division); the low half the bits.
        let block = (((h >> 32) * blocks as u64) >> 32) as usize;
        let bits = (0..PROBES).map(move |i| {
            let bit = (h >> (i * 9)) & 511;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        });
        (block * BLOCK_WORDS, bits)
    }

    pub(super) fn add(&mut self, h: u64) {
        self.added += 1;
        let (base, bits) = self.probes(h);
        for (w, m) in bits {
            self.words[base + w] |= m;
        }
    }

    pub(super) fn may_contain(&self, h: u64) -> bool {
        let (base, mut bits) = self.probes(h);
        bits.all(|(w, m)| self.words[base + w] & m != 0)
    }

    /// Heap bytes held.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.words.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let n = 100_000u64;
        let mut b = Bloom::with_capacity(n as usize);
        for i in 0..n {
            b.add(hash(&i.to_le_bytes()));
        }
        assert!((0..n).all(|i| b.may_contain(hash(&i.to_le_bytes()))));
        let fp = (n..2 * n)
            .filter(|i| b.may_contain(hash(&i.to_le_bytes())))
            .count();
        assert!(fp < (n / 40) as usize, "{fp} false positives in {n}");
        assert!(b.bytes() <= (n as usize * BITS_PER_KEY / 8) + 64);
    }
}
