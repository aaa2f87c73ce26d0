//! The geometry of an array, in one place: built from k, m, the chunk size and the segment
//! size (and, for a new array, the size of its smallest device), validated once, and asked
//! for every derived figure (docs/format.md, "Geometry"). Nothing else in the workspace
//! writes these rules or formulas again.

use super::{
    BLOCK_BYTES, CHUNK_HEADER_SIZE_BYTES, DATA_START_BYTES, MAX_DEVICES, SEGMENT_HEADER_SIZE_BYTES,
};

/// The chunk size `format` uses when none is given.
pub const DEFAULT_CHUNK_SIZE_BYTES: u32 = 64 << 10;
/// The segment size `format` uses when none is given (raised to 16 chunks for large chunks).
pub const DEFAULT_SEGMENT_SIZE_BYTES: u32 = 8 << 20;
/// The smallest chunk: one 4 KiB block (its header and 3.5 KiB of body).
pub const MIN_CHUNK_SIZE_BYTES: u32 = BLOCK_BYTES as u32;
/// The largest chunk.
pub const MAX_CHUNK_SIZE_BYTES: u32 = 4 << 20;

/// Why a geometry is refused: a sentence naming the rule broken and the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutError(pub String);

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LayoutError {}

/// A validated array geometry. Every stripe is k data chunks and m parity chunks of the same
/// height; a chunk is a 512-byte header and a body; a segment is a 4 KiB header followed by
/// stripe positions one chunk apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    k: usize,
    m: usize,
    chunk_bytes: usize,
    segment_bytes: usize,
}

impl Layout {
    /// Validates the coding and chunk geometry. A `segment_size_bytes` of 0 asks for the
    /// default ([`Layout::default_segment_size`]).
    pub fn new(
        k: usize,
        m: usize,
        chunk_size_bytes: u32,
        segment_size_bytes: u32,
    ) -> Result<Layout, LayoutError> {
        if k == 0 || m == 0 {
            return Err(LayoutError(format!(
                "k and m must both be at least 1 (got k={k}, m={m})"
            )));
        }
        if k + m > MAX_DEVICES {
            return Err(LayoutError(format!(
                "stripe width k+m={} exceeds the maximum of {MAX_DEVICES}",
                k + m
            )));
        }
        Layout::check_chunk_size(chunk_size_bytes)?;
        let defaulted = segment_size_bytes == 0;
        let s = if defaulted {
            Layout::default_segment_size(chunk_size_bytes)
        } else {
            segment_size_bytes
        };
        Layout::check_segment_size(s, chunk_size_bytes, defaulted)?;
        Ok(Layout {
            k,
            m,
            chunk_bytes: chunk_size_bytes as usize,
            segment_bytes: s as usize,
        })
    }

    /// A chunk size is a multiple of 4 KiB between 4 KiB and 4 MiB.
    pub fn check_chunk_size(c: u32) -> Result<(), LayoutError> {
        if !(MIN_CHUNK_SIZE_BYTES..=MAX_CHUNK_SIZE_BYTES).contains(&c)
            || !c.is_multiple_of(BLOCK_BYTES as u32)
        {
            return Err(LayoutError(format!(
                "chunk size must be a multiple of 4K between 4K and 4M, got {c}"
            )));
        }
        Ok(())
    }

    /// The default segment size for a chunk size: 8 MiB, or 16 chunks if that is more.
    pub fn default_segment_size(chunk_size_bytes: u32) -> u32 {
        DEFAULT_SEGMENT_SIZE_BYTES.max(16 * chunk_size_bytes)
    }

    /// A segment is its 4 KiB header followed by whole chunk-high stripe positions: its
    /// size must be a multiple of the chunk size and hold at least one stripe. The error
    /// names the rule broken, the numbers, and a size that keeps it.
    pub fn check_segment_size(s: u32, c: u32, defaulted: bool) -> Result<(), LayoutError> {
        let which = if defaulted {
            "the default segment size"
        } else {
            "the segment size"
        };
        if c == 0 || !s.is_multiple_of(c) {
            let c = c.max(1);
            let down = s / c * c;
            let fit = if (down as usize) >= SEGMENT_HEADER_SIZE_BYTES + c as usize {
                down
            } else {
                2 * c
            };
            return Err(LayoutError(format!(
                "{which} {} ({s} bytes) is not a multiple of the chunk size {} ({c} bytes): a segment holds whole chunks; give --segment-size {} ({} chunks), or a chunk size that divides {} (a power of two such as 16K or 64K)",
                size_text(s as u64),
                size_text(c as u64),
                size_text(fit as u64),
                fit / c,
                size_text(s as u64),
            )));
        }
        if (s as usize) < SEGMENT_HEADER_SIZE_BYTES + c as usize {
            return Err(LayoutError(format!(
                "{which} {} ({s} bytes) holds no chunk of {} after the segment's 4K header: it must be at least {} (two chunks)",
                size_text(s as u64),
                size_text(c as u64),
                size_text(2 * c as u64),
            )));
        }
        Ok(())
    }

    /// k: data chunks per stripe.
    pub fn k(&self) -> usize {
        self.k
    }
    /// m: parity chunks per stripe.
    pub fn m(&self) -> usize {
        self.m
    }
    /// Stripe width, k + m.
    pub fn w(&self) -> usize {
        self.k + self.m
    }
    /// Chunk size C in bytes (the height of a full stripe).
    pub fn chunk_bytes(&self) -> usize {
        self.chunk_bytes
    }
    /// Device segment size S in bytes.
    pub fn segment_bytes(&self) -> usize {
        self.segment_bytes
    }

    /// The data a stripe of chunk height `height_bytes` holds: k bodies.
    pub fn stripe_payload_at(&self, height_bytes: usize) -> usize {
        self.k * (height_bytes - CHUNK_HEADER_SIZE_BYTES)
    }

    /// The data a full-height stripe holds: k × (chunk − 512). A record (or an atomic batch
    /// of records, padded) must fit in one stripe.
    pub fn stripe_payload(&self) -> usize {
        self.stripe_payload_at(self.chunk_bytes)
    }

    /// The largest record (or batch of padded records) a write may carry.
    pub fn largest_record(&self) -> usize {
        self.stripe_payload()
    }

    /// The largest value one record with a table name and key of these lengths may carry:
    /// its padded record must fit a stripe.
    pub fn largest_value(&self, table_len: usize, key_len: usize) -> usize {
        // The payload is a multiple of 8 (C is a multiple of 4096), so the padded record
        // fits exactly when the unpadded one does.
        self.stripe_payload()
            .saturating_sub(super::log_record::RECORD_HEADER_BYTES + table_len + key_len)
    }

    /// Bytes written to the devices for `data_bytes` of stripe payload: w/k of it.
    pub fn coded_bytes(&self, data_bytes: u64) -> u64 {
        data_bytes * self.w() as u64 / self.k as u64
    }

    /// Stripe payload held by `coded_bytes` written across the devices: k/w of it.
    pub fn data_bytes_of(&self, coded_bytes: u64) -> u64 {
        coded_bytes * self.k as u64 / self.w() as u64
    }

    /// Bytes of a device of `capacity_bytes` after the superblock area (where segments go).
    pub fn data_area_bytes(capacity_bytes: u64) -> u64 {
        capacity_bytes.saturating_sub(DATA_START_BYTES)
    }

    /// Full-height stripe positions in a segment: (segment − 4096) / chunk.
    pub fn stripes_per_segment(&self) -> usize {
        (self.segment_bytes - SEGMENT_HEADER_SIZE_BYTES) / self.chunk_bytes
    }

    /// The data a segment of full-height stripes holds.
    pub fn segment_payload(&self) -> usize {
        self.stripes_per_segment() * self.stripe_payload()
    }

    /// The data a log segment holds: its full-height stripes and, where the segment is not a
    /// whole number of chunks after its header, a shorter stripe in the rest (the log writes
    /// stripes of any height of whole blocks; checkpoints write full-height stripes only).
    pub fn log_segment_payload(&self) -> usize {
        let tail = (self.segment_bytes - SEGMENT_HEADER_SIZE_BYTES) % self.chunk_bytes;
        let short = if tail > CHUNK_HEADER_SIZE_BYTES {
            self.stripe_payload_at(tail)
        } else {
            0
        };
        self.segment_payload() + short
    }

    /// The data space of a segment after its header (where stripes go), in bytes.
    pub fn segment_stripe_space(&self) -> usize {
        self.segment_bytes - SEGMENT_HEADER_SIZE_BYTES
    }

    /// Offset in the segment of stripe position `ordinal` when every stripe is full height.
    pub fn full_stripe_offset(&self, ordinal: usize) -> usize {
        SEGMENT_HEADER_SIZE_BYTES + ordinal * self.chunk_bytes
    }

    /// Segments needed to hold `bytes` in full-height stripes (at least one).
    pub fn segments_for(&self, bytes: usize) -> usize {
        bytes.div_ceil(self.segment_payload()).max(1)
    }

    /// The smallest device an array of this geometry accepts: the superblock area and two
    /// segments.
    pub fn smallest_device(&self) -> u64 {
        DATA_START_BYTES + 2 * self.segment_bytes as u64
    }

    /// Device segments on a device of `capacity_bytes` (after the superblock area).
    pub fn segments_on(&self, capacity_bytes: u64) -> u32 {
        (capacity_bytes.saturating_sub(DATA_START_BYTES) / self.segment_bytes as u64)
            .min(u32::MAX as u64) as u32
    }

    /// Where device segment `index` starts on every device.
    pub fn device_segment_offset(&self, index: u32) -> u64 {
        DATA_START_BYTES + index as u64 * self.segment_bytes as u64
    }

    /// The chunk height (a multiple of 4 KiB, at least one block) that holds `per_chunk`
    /// bytes of body.
    pub fn chunk_height_for(per_chunk: usize) -> usize {
        ((CHUNK_HEADER_SIZE_BYTES + per_chunk).div_ceil(BLOCK_BYTES) * BLOCK_BYTES).max(BLOCK_BYTES)
    }
}

/// "8M", "64K" or a byte count: sizes in the words of the command line.
fn size_text(b: u64) -> String {
    match b {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}M", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}K", b >> 10),
        b => b.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_geometry_figures() {
        let l = Layout::new(4, 2, DEFAULT_CHUNK_SIZE_BYTES, 0).unwrap();
        assert_eq!(l.segment_bytes(), 8 << 20);
        assert_eq!(l.stripe_payload(), 4 * (65536 - 512));
        assert_eq!(l.stripes_per_segment(), ((8 << 20) - 4096) / 65536);
        assert_eq!(l.segment_payload(), 127 * 4 * 65024);
        // The last 60 KiB after the header take a stripe of 15 blocks in a log segment.
        assert_eq!(l.log_segment_payload(), 127 * 4 * 65024 + 4 * (61440 - 512));
        assert_eq!(l.smallest_device(), (1 << 20) + (16 << 20));
        assert_eq!(l.segments_on((1 << 20) + (24 << 20) + 5), 3);
        assert_eq!(l.segments_for(0), 1);
        assert_eq!(l.segments_for(l.segment_payload() + 1), 2);
        assert_eq!(Layout::chunk_height_for(0), 4096);
        assert_eq!(Layout::chunk_height_for(4096 - 512), 4096);
        assert_eq!(Layout::chunk_height_for(4096 - 511), 8192);
        let (t, k) = (5, 15);
        let v = l.largest_value(t, k);
        assert_eq!(
            crate::format::log_record::encoded_len_padded(t, k, v),
            l.largest_record()
        );
        assert!(crate::format::log_record::encoded_len_padded(t, k, v + 1) > l.largest_record());
        assert_eq!(l.coded_bytes(4000), 6000);
    }

    #[test]
    fn large_chunks_raise_the_default_segment() {
        let l = Layout::new(2, 1, 1 << 20, 0).unwrap();
        assert_eq!(l.segment_bytes(), 16 << 20);
    }

    #[test]
    fn refusals_name_the_rule() {
        assert!(Layout::new(0, 1, 65536, 0)
            .unwrap_err()
            .0
            .contains("at least 1"));
        assert!(Layout::new(60, 5, 65536, 0)
            .unwrap_err()
            .0
            .contains("maximum of 64"));
        assert!(Layout::new(4, 2, 5000, 0)
            .unwrap_err()
            .0
            .contains("multiple of 4K"));
        assert!(Layout::new(4, 2, 8 << 20, 0)
            .unwrap_err()
            .0
            .contains("between 4K and 4M"));
        let e = Layout::new(4, 2, 65536, 100_000).unwrap_err().0;
        assert!(e.contains("not a multiple of the chunk size"), "{e}");
        let e = Layout::new(4, 2, 65536, 65536).unwrap_err().0;
        assert!(e.contains("holds no chunk"), "{e}");
    }
}
