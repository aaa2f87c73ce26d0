//! Values on device blocks (format version 3): which values a log stripe places on whole
//! device blocks of a data body, where, and whether a stripe's records still fit
//! (docs/format.md, "Values on device blocks").
//!
//! Invariants:
//! - A placed value starts on a device block and stays within one body.
//! - The record area grows upwards from position 0; placed values go downwards from the
//!   top of the last data body, and the two never overlap.

use super::{BLOCK_BYTES, CHUNK_HEADER_SIZE_BYTES};

/// Where a body's first whole device block starts within the body: the chunk header takes
/// the first 512 bytes of the chunk's first block.
pub const BODY_FIRST_BLOCK: usize = BLOCK_BYTES - CHUNK_HEADER_SIZE_BYTES;

/// Whether the writer places a value of this length on device blocks: at least a block,
/// and at most 1/16 of it padding to whole blocks.
pub fn placeable(value_len: usize) -> bool {
    value_len >= BLOCK_BYTES
        && value_len.next_multiple_of(BLOCK_BYTES) - value_len <= value_len / 16
}

/// Whole device blocks in one body of a chunk `height` bytes high.
pub fn blocks_per_body(height: usize) -> usize {
    height.saturating_sub(BLOCK_BYTES) / BLOCK_BYTES
}

/// Whether `offset..offset + len` (data-space positions, `len ≥ 1`) is a run of whole
/// device blocks of one body of `body_len` bytes (`len` rounded up to blocks).
pub fn on_blocks_of_one_body(offset: usize, len: usize, body_len: usize) -> bool {
    let within = offset % body_len;
    len >= 1
        && within >= BODY_FIRST_BLOCK
        && (within - BODY_FIRST_BLOCK).is_multiple_of(BLOCK_BYTES)
        && within + len.next_multiple_of(BLOCK_BYTES) <= body_len
}

/// Plans one stripe, record by record: the record area from position 0 upwards, placed
/// values from the top of the last data body downwards, body by body.
#[derive(Clone, Debug)]
pub struct Packer {
    body_len: usize,
    per_body: usize,
    /// The body values go into now, and how many of its blocks below them are free.
    shard: usize,
    free_blocks: usize,
    /// End of the record area.
    area: usize,
    /// Start of the lowest placed value (the data space's end when none is).
    floor: usize,
    placed: usize,
}

/// Where one record goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spot {
    /// Position of the record (header, table, key and, if not placed, value).
    pub offset: usize,
    /// Position of its value when placed on device blocks.
    pub value_offset: Option<usize>,
}

impl Packer {
    /// An empty stripe of `k` data bodies at `height`.
    pub fn new(k: usize, height: usize) -> Packer {
        let body_len = height - CHUNK_HEADER_SIZE_BYTES;
        let per_body = blocks_per_body(height);
        Packer {
            body_len,
            per_body,
            shard: k - 1,
            free_blocks: per_body,
            area: 0,
            floor: k * body_len,
            placed: 0,
        }
    }

    /// Adds a record: `full` is its padded length inline, `head` its padded length when its
    /// value is placed (header, table and key), `value_len` the value's length for a put or
    /// a moved put (None for a delete). None when it does not fit.
    pub fn add(&mut self, full: usize, head: usize, value_len: Option<usize>) -> Option<Spot> {
        let offset = self.area;
        if let Some(v) = value_len.filter(|&v| placeable(v)) {
            let b = v.div_ceil(BLOCK_BYTES);
            if b <= self.per_body {
                let (mut shard, mut free) = (self.shard, self.free_blocks);
                while free < b && shard > 0 {
                    shard -= 1;
                    free = self.per_body;
                }
                if free >= b {
                    let pos = shard * self.body_len + BODY_FIRST_BLOCK + (free - b) * BLOCK_BYTES;
                    if offset + head <= pos {
                        self.shard = shard;
                        self.free_blocks = free - b;
                        self.floor = pos;
                        self.area += head;
                        self.placed += 1;
                        return Some(Spot {
                            offset,
                            value_offset: Some(pos),
                        });
                    }
                }
            }
        }
        if offset + full <= self.floor {
            self.area += full;
            return Some(Spot {
                offset,
                value_offset: None,
            });
        }
        None
    }

    /// Values placed so far.
    pub fn placed(&self) -> usize {
        self.placed
    }

    /// End of the record area (the stripe's payload_bytes).
    pub fn area_end(&self) -> usize {
        self.area
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_values_are_placed() {
        assert!(!placeable(4095));
        assert!(placeable(4096));
        assert!(!placeable(4097));
        // 480 bytes of padding is at most a sixteenth of 7712; 492 is more than one of 7700.
        assert!(placeable(7712));
        assert!(!placeable(7700));
        assert!(placeable(60 * 1024));
        assert_eq!(blocks_per_body(4096), 0);
        assert_eq!(blocks_per_body(65536), 15);
    }

    /// Sixty 4 KiB values with 50-byte heads fill a 64 KiB stripe of k = 4: fifteen blocks
    /// per body, every value on its own device block, the heads in the first body.
    #[test]
    fn a_full_stripe_of_block_values() {
        let (k, h) = (4, 65536);
        let mut p = Packer::new(k, h);
        let mut spots = Vec::new();
        while let Some(s) = p.add(4144, 56, Some(4096)) {
            spots.push(s);
        }
        assert_eq!(spots.len(), 60);
        assert_eq!(p.placed(), 60);
        let body = h - 512;
        let mut seen = std::collections::HashSet::new();
        for (i, s) in spots.iter().enumerate() {
            assert_eq!(s.offset, i * 56);
            let v = s.value_offset.expect("placed");
            assert!(on_blocks_of_one_body(v, 4096, body), "{v}");
            // Its device offset (chunk start + 512 + position within the body) is aligned.
            assert_eq!((512 + v % body) % 4096, 0);
            assert!(seen.insert(v));
            assert!(v >= p.area_end());
        }
        // Values go downwards.
        assert!(spots
            .windows(2)
            .all(|w| w[1].value_offset.unwrap() + 4096 <= w[0].value_offset.unwrap()));
    }

    /// Values that do not fit on blocks any more go inline; small records always inline.
    #[test]
    fn inline_when_blocks_run_out() {
        let mut p = Packer::new(1, 16384);
        let a = p.add(4144, 56, Some(4096)).unwrap();
        let b = p.add(4144, 56, Some(4096)).unwrap();
        let c = p.add(4144, 56, Some(4096)).unwrap();
        assert!(a.value_offset.is_some() && b.value_offset.is_some());
        // Three blocks in a 16 KiB body; the third value would overlap the record area.
        assert_eq!(c.value_offset, Some(BODY_FIRST_BLOCK));
        assert!(p.add(4144, 56, Some(4096)).is_none());
        let mut q = Packer::new(2, 8192);
        let s = q.add(128, 128, Some(100)).unwrap();
        assert_eq!(
            s,
            Spot {
                offset: 0,
                value_offset: None
            }
        );
    }
}
