//! The chunk header: the identity of one shard of one stripe, and the crcs of all its
//! stripe's bodies.
//!
//! `// { magic | array | segment_id | epoch | offset | height | ordinal | shard | width | k |
//!      flags | payload | first_lsn | last_lsn | present | committed | reserved | body_crcs[64] |
//!      reserved | crc }`
//!
//! Invariants:
//! - A chunk is trusted only if its identity equals what the placement function expects at
//!   the place it was read from (catches lost and misdirected writes).
//! - Its body crc is held by every other chunk of the stripe too (checksum outside itself).

use super::*;

const MAGIC: &[u8; 8] = b"ECTCHNK1";
const CRCS_OFFSET: usize = 128;
/// Chunk flag: the stripe's data space holds checkpoint bytes.
pub const FLAG_CHECKPOINT: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkHeader {
    pub array_uuid: [u8; 16],
    pub segment_id: u64,
    pub write_epoch: u64,
    pub offset_in_segment_bytes: u32,
    pub height_bytes: u32,
    pub ordinal: u32,
    pub shard_index: u16,
    pub width: u16,
    pub data_shards: u16,
    /// Bit 0: the data space holds checkpoint bytes, not log records.
    pub flags: u16,
    pub payload_bytes: u32,
    pub first_lsn: u64,
    pub last_lsn: u64,
    pub present_mask: u64,
    /// Every LSN up to this one was durable (acknowledgeable) when this stripe was written.
    pub committed_lsn: u64,
    /// One crc per shard, `width` entries.
    pub body_crcs: Vec<u32>,
}

/// The fields all chunks of one stripe share; equal keys mean the chunks agree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StripeKey {
    pub flags: u16,
    pub write_epoch: u64,
    pub height_bytes: u32,
    pub payload_bytes: u32,
    pub first_lsn: u64,
    pub last_lsn: u64,
    pub present_mask: u64,
    pub committed_lsn: u64,
    pub body_crcs: Vec<u32>,
}

impl ChunkHeader {
    pub fn stripe_key(&self) -> StripeKey {
        StripeKey {
            flags: self.flags,
            write_epoch: self.write_epoch,
            height_bytes: self.height_bytes,
            payload_bytes: self.payload_bytes,
            first_lsn: self.first_lsn,
            last_lsn: self.last_lsn,
            present_mask: self.present_mask,
            committed_lsn: self.committed_lsn,
            body_crcs: self.body_crcs.clone(),
        }
    }

    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn body_len(&self) -> usize {
        self.height_bytes as usize - CHUNK_HEADER_SIZE_BYTES
    }

    pub fn encode_into(&self, b: &mut [u8]) {
        self.validate().expect("encoding an invalid chunk header");
        let b = &mut b[..CHUNK_HEADER_SIZE_BYTES];
        b.fill(0);
        b[0..8].copy_from_slice(MAGIC);
        b[8..24].copy_from_slice(&self.array_uuid);
        put_u64(b, 24, self.segment_id);
        put_u64(b, 32, self.write_epoch);
        put_u32(b, 40, self.offset_in_segment_bytes);
        put_u32(b, 44, self.height_bytes);
        put_u32(b, 48, self.ordinal);
        put_u16(b, 52, self.shard_index);
        put_u16(b, 54, self.width);
        put_u16(b, 56, self.data_shards);
        put_u16(b, 58, self.flags);
        put_u32(b, 60, self.payload_bytes);
        put_u64(b, 64, self.first_lsn);
        put_u64(b, 72, self.last_lsn);
        put_u64(b, 80, self.present_mask);
        put_u64(b, 88, self.committed_lsn);
        for (i, crc) in self.body_crcs.iter().enumerate() {
            put_u32(b, CRCS_OFFSET + 4 * i, *crc);
        }
        seal_trailing_crc(b);
    }

    pub fn decode(b: &[u8]) -> Result<ChunkHeader, DecodeError> {
        if b.len() < CHUNK_HEADER_SIZE_BYTES {
            return Err(DecodeError::Truncated);
        }
        let b = &b[..CHUNK_HEADER_SIZE_BYTES];
        if &b[0..8] != MAGIC {
            return Err(DecodeError::Magic);
        }
        check_trailing_crc(b)?;
        let width = get_u16(b, 54);
        if width == 0 || width as usize > MAX_DEVICES {
            return Err(DecodeError::Field("width"));
        }
        let crcs_end = CRCS_OFFSET + 4 * width as usize;
        if !all_zero(&b[96..128]) || !all_zero(&b[crcs_end..CHUNK_HEADER_SIZE_BYTES - 4]) {
            return Err(DecodeError::Reserved);
        }
        let h = ChunkHeader {
            array_uuid: get_uuid(b, 8),
            segment_id: get_u64(b, 24),
            write_epoch: get_u64(b, 32),
            offset_in_segment_bytes: get_u32(b, 40),
            height_bytes: get_u32(b, 44),
            ordinal: get_u32(b, 48),
            shard_index: get_u16(b, 52),
            width,
            data_shards: get_u16(b, 56),
            flags: get_u16(b, 58),
            payload_bytes: get_u32(b, 60),
            first_lsn: get_u64(b, 64),
            last_lsn: get_u64(b, 72),
            present_mask: get_u64(b, 80),
            committed_lsn: get_u64(b, 88),
            body_crcs: (0..width as usize)
                .map(|i| get_u32(b, CRCS_OFFSET + 4 * i))
                .collect(),
        };
        h.validate()?;
        Ok(h)
    }

    pub fn validate(&self) -> Result<(), DecodeError> {
        let w = self.width as usize;
        let k = self.data_shards as usize;
        if w == 0 || w > MAX_DEVICES || k == 0 || k > w || self.body_crcs.len() != w {
            return Err(DecodeError::Field("width/data_shards"));
        }
        if self.flags & !FLAG_CHECKPOINT != 0 {
            return Err(DecodeError::Field("flags"));
        }
        if self.shard_index as usize >= w {
            return Err(DecodeError::Field("shard_index"));
        }
        let h = self.height_bytes as usize;
        if h < BLOCK_BYTES || !h.is_multiple_of(BLOCK_BYTES) {
            return Err(DecodeError::Field("height_bytes"));
        }
        if !(self.offset_in_segment_bytes as usize).is_multiple_of(BLOCK_BYTES)
            || (self.offset_in_segment_bytes as usize) < SEGMENT_HEADER_SIZE_BYTES
        {
            return Err(DecodeError::Field("offset_in_segment_bytes"));
        }
        if self.payload_bytes as usize > k * (h - CHUNK_HEADER_SIZE_BYTES) {
            return Err(DecodeError::Field("payload_bytes"));
        }
        if self.last_lsn < self.first_lsn || self.first_lsn == 0 {
            return Err(DecodeError::Field("lsn range"));
        }
        if self.committed_lsn >= self.first_lsn {
            return Err(DecodeError::Field("committed_lsn"));
        }
        if w < 64 && self.present_mask >> w != 0 {
            return Err(DecodeError::Field("present_mask"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_single_byte_corruption() {
        let h = ChunkHeader {
            array_uuid: [7; 16],
            segment_id: 9,
            write_epoch: 2,
            offset_in_segment_bytes: 4096 * 3,
            height_bytes: 65536,
            ordinal: 4,
            shard_index: 5,
            width: 6,
            data_shards: 4,
            flags: 1,
            payload_bytes: 1000,
            first_lsn: 10,
            last_lsn: 20,
            present_mask: 0x3f,
            committed_lsn: 5,
            body_crcs: vec![1, 2, 3, 4, 5, 6],
        };
        let mut b = [0u8; CHUNK_HEADER_SIZE_BYTES];
        h.encode_into(&mut b);
        assert_eq!(ChunkHeader::decode(&b).unwrap(), h);
        for i in 0..b.len() {
            let mut c = b;
            c[i] ^= 0x10;
            assert!(ChunkHeader::decode(&c).is_err(), "flip at {i} not detected");
        }
    }

    /// The encoded bytes, as the encoder wrote them before its offsets were named: every
    /// field at its docs/format.md offset ("Chunk"), zero elsewhere.
    #[test]
    fn encoding_is_pinned() {
        let h = ChunkHeader {
            array_uuid: std::array::from_fn(|i| 0x10 + i as u8),
            segment_id: 0x0102_0304_0506_0708,
            write_epoch: 0x1112_1314_1516_1718,
            offset_in_segment_bytes: 0x0003_3000,
            height_bytes: 0x0004_0000,
            ordinal: 0x2122_2324,
            shard_index: 5,
            width: 7,
            data_shards: 3,
            flags: FLAG_CHECKPOINT,
            payload_bytes: 0x000b_c0d8,
            first_lsn: 0x3132_3334_3536_3738,
            last_lsn: 0x4142_4344_4546_4748,
            present_mask: 0x55,
            committed_lsn: 0x2122_2324_2526_2728,
            body_crcs: (0..7).map(|i| 0xa1a2_a3a0 + i).collect(),
        };
        let mut b = [0u8; CHUNK_HEADER_SIZE_BYTES];
        h.encode_into(&mut b);
        let expected = bytes_from_spans(
            CHUNK_HEADER_SIZE_BYTES,
            &[
                (0, "45435443484e4b31"),                  // magic
                (8, "1011121314151617 18191a1b1c1d1e1f"), // array_uuid
                (24, "0807060504030201"),                 // segment_id
                (32, "1817161514131211"),                 // write_epoch
                (40, "00300300"),                         // offset_in_segment_bytes
                (44, "00000400"),                         // height_bytes
                (48, "24232221"),                         // ordinal
                (52, "0500"),                             // shard_index
                (54, "0700"),                             // width
                (56, "0300"),                             // data_shards
                (58, "0100"),                             // flags
                (60, "d8c00b00"),                         // payload_bytes
                (64, "3837363534333231"),                 // first_lsn
                (72, "4847464544434241"),                 // last_lsn
                (80, "5500000000000000"),                 // present_mask
                (88, "2827262524232221"),                 // committed_lsn
                (
                    128,
                    "a0a3a2a1a1a3a2a1 a2a3a2a1a3a3a2a1 a4a3a2a1a5a3a2a1 a6a3a2a1",
                ), // body_crcs[0..7]
                (508, "e5a15ceb"),                        // crc
            ],
        );
        assert!(b[..] == expected[..], "encoded:\n{}", spans_of(&b));
        assert_eq!(ChunkHeader::decode(&b).unwrap(), h);
    }
}
