//! The chunk header: the identity of one shard of one stripe, and the crcs of all its
//! stripe's bodies.
//!
//! `// { magic | array | segment_id | epoch | offset | height | ordinal | shard | width | k |
//!      flags | payload | first_lsn | last_lsn | present | committed | tail | reserved |
//!      body_crcs[64] |
//!      reserved | crc }`
//!
//! Invariants:
//! - A chunk is trusted only if its identity equals what the placement function expects at
//!   the place it was read from (catches lost and misdirected writes).
//! - Its body crc is held by every other chunk of the stripe too (checksum outside itself).

use super::*;

const MAGIC: &[u8; MAGIC_BYTES] = b"ECTCHNK1";
// Field offsets (docs/format.md, "Chunk").
const OFF_MAGIC: usize = 0;
const OFF_ARRAY: usize = 8;
const OFF_SEGMENT_ID: usize = 24;
const OFF_WRITE_EPOCH: usize = 32;
const OFF_OFFSET_IN_SEGMENT: usize = 40;
const OFF_HEIGHT: usize = 44;
/// The stripe's ordinal in its segment.
const OFF_ORDINAL: usize = 48;
const OFF_SHARD_INDEX: usize = 52;
const OFF_WIDTH: usize = 54;
const OFF_DATA_SHARDS: usize = 56;
const OFF_FLAGS: usize = 58;
const OFF_PAYLOAD_BYTES: usize = 60;
const OFF_FIRST_LSN: usize = 64;
const OFF_LAST_LSN: usize = 72;
const OFF_PRESENT_MASK: usize = 80;
const OFF_COMMITTED_LSN: usize = 88;
/// Bytes that end a record continued from the previous stripe (format version 5).
const OFF_TAIL_BYTES: usize = 96;
/// Reserved, zero, up to the body crcs.
const OFF_RESERVED: usize = 100;
/// body_crcs[64], one per shard; the entries at and after the width are zero, and so is
/// everything after them up to the crc.
const OFF_BODY_CRCS: usize = 128;
const BODY_CRC_BYTES: usize = size_of::<u32>();
/// crc32c of [0, OFF_CRC).
const OFF_CRC: usize = CHUNK_HEADER_SIZE_BYTES - CRC_BYTES;

const _: () = assert!(contiguous(&[
    (OFF_MAGIC, MAGIC_BYTES),
    (OFF_ARRAY, UUID_BYTES),
    (OFF_SEGMENT_ID, size_of::<u64>()),
    (OFF_WRITE_EPOCH, size_of::<u64>()),
    (OFF_OFFSET_IN_SEGMENT, size_of::<u32>()),
    (OFF_HEIGHT, size_of::<u32>()),
    (OFF_ORDINAL, size_of::<u32>()),
    (OFF_SHARD_INDEX, size_of::<u16>()),
    (OFF_WIDTH, size_of::<u16>()),
    (OFF_DATA_SHARDS, size_of::<u16>()),
    (OFF_FLAGS, size_of::<u16>()),
    (OFF_PAYLOAD_BYTES, size_of::<u32>()),
    (OFF_FIRST_LSN, size_of::<u64>()),
    (OFF_LAST_LSN, size_of::<u64>()),
    (OFF_PRESENT_MASK, size_of::<u64>()),
    (OFF_COMMITTED_LSN, size_of::<u64>()),
    (OFF_TAIL_BYTES, size_of::<u32>()),
    (OFF_RESERVED, 0),
]));
const _: () = assert!(OFF_RESERVED < OFF_BODY_CRCS);
const _: () = assert!(OFF_BODY_CRCS + MAX_DEVICES * BODY_CRC_BYTES <= OFF_CRC);
const _: () = assert!(OFF_CRC == 508);
/// Chunk flag: the stripe's data space holds checkpoint bytes.
pub const FLAG_CHECKPOINT: u16 = 1;
/// Chunk flag (format version 5): the stripe's last record continues at the start of the
/// next stripe of the segment (docs/format.md, "Records that continue in the next stripe").
pub const FLAG_CONTINUES: u16 = 2;

/// The 512-byte header at the start of every chunk (docs/format.md, "Chunk"): where the chunk
/// belongs, the stripe's shape and LSN range, and the crc32c of every body of the stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkHeader {
    /// The array the chunk belongs to.
    pub array_uuid: [u8; 16],
    /// The segment (and generation) the stripe was written in.
    pub segment_id: u64,
    /// The array's epoch when the stripe was encoded (the same in all its chunks).
    pub write_epoch: u64,
    /// Byte offset of the stripe within its device segments (a multiple of 4096, at least 4096).
    pub offset_in_segment_bytes: u32,
    /// Height of the stripe in bytes: header plus body, a multiple of 4096.
    pub height_bytes: u32,
    /// Index of the stripe in its segment (0, 1, 2...): rotates the shards over the members.
    pub ordinal: u32,
    /// Which shard this chunk holds: 0..k data, k..w parity.
    pub shard_index: u16,
    /// w = k + m, the chunks per stripe.
    pub width: u16,
    /// k, the data chunks per stripe.
    pub data_shards: u16,
    /// Bit 0: the data space holds checkpoint bytes, not log records.
    pub flags: u16,
    /// Bytes of the stripe's data space in use (log records padded to 8 bytes, or checkpoint
    /// bytes).
    pub payload_bytes: u32,
    /// LSN of the stripe's first record (a checkpoint stripe: the checkpoint's LSN).
    pub first_lsn: u64,
    /// LSN of the stripe's last record.
    pub last_lsn: u64,
    /// Bit j set when shard j was written (its member was online).
    pub present_mask: u64,
    /// Every LSN up to this one was durable (acknowledgeable) when this stripe was written.
    pub committed_lsn: u64,
    /// Bytes at the start of the data space that end the record continued from the previous
    /// stripe, whose LSN is `first_lsn` (format version 5; 0 otherwise).
    pub tail_bytes: u32,
    /// One crc per shard, `width` entries.
    pub body_crcs: Vec<u32>,
}

/// The fields all chunks of one stripe share; equal keys mean the chunks agree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StripeKey {
    /// Bit 0: the data space holds checkpoint bytes.
    pub flags: u16,
    /// The array's epoch when the stripe was encoded.
    pub write_epoch: u64,
    /// Height of the stripe in bytes.
    pub height_bytes: u32,
    /// Bytes of the stripe's data space in use.
    pub payload_bytes: u32,
    /// LSN of the stripe's first record.
    pub first_lsn: u64,
    /// LSN of the stripe's last record.
    pub last_lsn: u64,
    /// Bit j set when shard j was written.
    pub present_mask: u64,
    /// Every LSN up to this one was durable when the stripe was written.
    pub committed_lsn: u64,
    /// Bytes that end the record continued from the previous stripe.
    pub tail_bytes: u32,
    /// crc32c of each shard's body, `width` entries.
    pub body_crcs: Vec<u32>,
}

impl ChunkHeader {
    /// The fields this chunk must share with the other chunks of its stripe.
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
            tail_bytes: self.tail_bytes,
            body_crcs: self.body_crcs.clone(),
        }
    }

    /// The stripe's last record continues in the next stripe of the segment.
    pub fn continues(&self) -> bool {
        self.flags & FLAG_CONTINUES != 0
    }

    /// Bytes of the chunk's body: its height less the header.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn body_len(&self) -> usize {
        self.height_bytes as usize - CHUNK_HEADER_SIZE_BYTES
    }

    /// Writes the header, crc sealed, into the first 512 bytes of `b`. Panics if the header is
    /// invalid ([`ChunkHeader::validate`]) or `b` is shorter.
    pub fn encode_into(&self, b: &mut [u8]) {
        self.validate().expect("encoding an invalid chunk header");
        let b = &mut b[..CHUNK_HEADER_SIZE_BYTES];
        b.fill(0);
        b[OFF_MAGIC..OFF_MAGIC + MAGIC_BYTES].copy_from_slice(MAGIC);
        b[OFF_ARRAY..OFF_ARRAY + UUID_BYTES].copy_from_slice(&self.array_uuid);
        put_u64(b, OFF_SEGMENT_ID, self.segment_id);
        put_u64(b, OFF_WRITE_EPOCH, self.write_epoch);
        put_u32(b, OFF_OFFSET_IN_SEGMENT, self.offset_in_segment_bytes);
        put_u32(b, OFF_HEIGHT, self.height_bytes);
        put_u32(b, OFF_ORDINAL, self.ordinal);
        put_u16(b, OFF_SHARD_INDEX, self.shard_index);
        put_u16(b, OFF_WIDTH, self.width);
        put_u16(b, OFF_DATA_SHARDS, self.data_shards);
        put_u16(b, OFF_FLAGS, self.flags);
        put_u32(b, OFF_PAYLOAD_BYTES, self.payload_bytes);
        put_u64(b, OFF_FIRST_LSN, self.first_lsn);
        put_u64(b, OFF_LAST_LSN, self.last_lsn);
        put_u64(b, OFF_PRESENT_MASK, self.present_mask);
        put_u64(b, OFF_COMMITTED_LSN, self.committed_lsn);
        put_u32(b, OFF_TAIL_BYTES, self.tail_bytes);
        for (i, crc) in self.body_crcs.iter().enumerate() {
            put_u32(b, OFF_BODY_CRCS + BODY_CRC_BYTES * i, *crc);
        }
        seal_trailing_crc(b);
    }

    /// Decodes and validates the first 512 bytes of `b`: magic, crc, reserved bytes and the
    /// field rules of docs/format.md (the placement is the caller's to check).
    pub fn decode(b: &[u8]) -> Result<ChunkHeader, DecodeError> {
        if b.len() < CHUNK_HEADER_SIZE_BYTES {
            return Err(DecodeError::Truncated);
        }
        let b = &b[..CHUNK_HEADER_SIZE_BYTES];
        if &b[OFF_MAGIC..OFF_MAGIC + MAGIC_BYTES] != MAGIC {
            return Err(DecodeError::Magic);
        }
        check_trailing_crc(b)?;
        let width = get_u16(b, OFF_WIDTH);
        if width == 0 || width as usize > MAX_DEVICES {
            return Err(DecodeError::Field("width"));
        }
        let crcs_end = OFF_BODY_CRCS + BODY_CRC_BYTES * width as usize;
        if !all_zero(&b[OFF_RESERVED..OFF_BODY_CRCS]) || !all_zero(&b[crcs_end..OFF_CRC]) {
            return Err(DecodeError::Reserved);
        }
        let h = ChunkHeader {
            array_uuid: get_uuid(b, OFF_ARRAY),
            segment_id: get_u64(b, OFF_SEGMENT_ID),
            write_epoch: get_u64(b, OFF_WRITE_EPOCH),
            offset_in_segment_bytes: get_u32(b, OFF_OFFSET_IN_SEGMENT),
            height_bytes: get_u32(b, OFF_HEIGHT),
            ordinal: get_u32(b, OFF_ORDINAL),
            shard_index: get_u16(b, OFF_SHARD_INDEX),
            width,
            data_shards: get_u16(b, OFF_DATA_SHARDS),
            flags: get_u16(b, OFF_FLAGS),
            payload_bytes: get_u32(b, OFF_PAYLOAD_BYTES),
            first_lsn: get_u64(b, OFF_FIRST_LSN),
            last_lsn: get_u64(b, OFF_LAST_LSN),
            present_mask: get_u64(b, OFF_PRESENT_MASK),
            committed_lsn: get_u64(b, OFF_COMMITTED_LSN),
            tail_bytes: get_u32(b, OFF_TAIL_BYTES),
            body_crcs: (0..width as usize)
                .map(|i| get_u32(b, OFF_BODY_CRCS + BODY_CRC_BYTES * i))
                .collect(),
        };
        h.validate()?;
        Ok(h)
    }

    /// Checks the field rules of docs/format.md, "Chunk" ([`DecodeError::Field`] names the
    /// first broken one).
    pub fn validate(&self) -> Result<(), DecodeError> {
        let w = self.width as usize;
        let k = self.data_shards as usize;
        if w == 0 || w > MAX_DEVICES || k == 0 || k > w || self.body_crcs.len() != w {
            return Err(DecodeError::Field("width/data_shards"));
        }
        if self.flags & !(FLAG_CHECKPOINT | FLAG_CONTINUES) != 0
            || self.flags == FLAG_CHECKPOINT | FLAG_CONTINUES
        {
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
        let tail = self.tail_bytes as usize;
        if tail > 0
            && (self.flags & FLAG_CHECKPOINT != 0
                || tail > h - CHUNK_HEADER_SIZE_BYTES
                || tail.next_multiple_of(8) > self.payload_bytes as usize
                || (self.continues() && self.last_lsn == self.first_lsn))
        {
            return Err(DecodeError::Field("tail_bytes"));
        }
        if self.continues() && self.payload_bytes as usize != k * (h - CHUNK_HEADER_SIZE_BYTES) {
            return Err(DecodeError::Field(
                "payload_bytes of a stripe that continues",
            ));
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
            tail_bytes: 0,
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
            tail_bytes: 0,
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

    /// Format version 5's fields: `tail_bytes` at 96, the `continues` flag, and their rules.
    #[test]
    fn continuation_fields_round_trip_and_are_checked() {
        let h = ChunkHeader {
            array_uuid: [7; 16],
            segment_id: 9,
            write_epoch: 2,
            offset_in_segment_bytes: 4096 * 3,
            height_bytes: 65536,
            ordinal: 4,
            shard_index: 1,
            width: 6,
            data_shards: 4,
            flags: FLAG_CONTINUES,
            payload_bytes: 4 * (65536 - 512),
            first_lsn: 10,
            last_lsn: 12,
            present_mask: 0x3f,
            committed_lsn: 5,
            tail_bytes: 0x0102,
            body_crcs: vec![1, 2, 3, 4, 5, 6],
        };
        let mut b = [0u8; CHUNK_HEADER_SIZE_BYTES];
        h.encode_into(&mut b);
        assert_eq!(&b[96..100], &[0x02, 0x01, 0, 0]);
        assert_eq!(&b[58..60], &[0x02, 0]);
        let d = ChunkHeader::decode(&b).unwrap();
        assert!(d.continues());
        assert_eq!(d, h);
        let refused = |f: &dyn Fn(&mut ChunkHeader)| {
            let mut x = h.clone();
            f(&mut x);
            x.validate().is_err()
        };
        // The tail lies in data shard 0's body, inside the payload.
        assert!(refused(&|x| x.tail_bytes = 65536 - 511));
        assert!(refused(&|x| x.payload_bytes = 0x100));
        // A stripe that both ends a record and continues one holds one of its own.
        assert!(refused(&|x| x.last_lsn = 10));
        // A checkpoint stripe neither continues nor has a tail.
        assert!(refused(&|x| x.flags = FLAG_CONTINUES | FLAG_CHECKPOINT));
        assert!(refused(&|x| x.flags = FLAG_CHECKPOINT));
        assert!(refused(&|x| x.flags = 4));
        // A stripe that continues fills its data space.
        assert!(refused(&|x| x.payload_bytes -= 8));
        assert!(!refused(&|x| x.tail_bytes = 65536 - 512));
    }
}
