//! The segment header: which w device segments form a segment.
//!
//! `// { magic | version | position | width | array | segment_id | epoch | k | kind | reserved |
//!      members[w] | reserved | crc }`
//!
//! Invariants:
//! - Every member carries the whole member list, so one readable member names the segment.
//! - segment_id only grows over the life of the array; it doubles as the generation of the
//!   device segments it uses.

use super::*;

const MAGIC: &[u8; MAGIC_BYTES] = b"ECTSEGH1";
// Field offsets (docs/format.md, "Segment header").
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
/// This device segment's position in the segment, 0..width.
const OFF_POSITION: usize = 12;
const OFF_WIDTH: usize = 14;
const OFF_ARRAY: usize = 16;
const OFF_SEGMENT_ID: usize = 32;
const OFF_WRITE_EPOCH: usize = 40;
const OFF_DATA_SHARDS: usize = 48;
/// One byte: a `SegmentKind`.
const OFF_KIND: usize = 50;
/// Reserved, zero, up to the members.
const OFF_RESERVED: usize = 51;
/// members[width], then reserved bytes, zero, up to the crc.
const OFF_MEMBERS: usize = 56;
/// A member: { device_slot u32 | device_segment_index u32 }.
const MEMBER_BYTES: usize = 8;
const MEMBER_OFF_SLOT: usize = 0;
const MEMBER_OFF_SEGMENT_INDEX: usize = 4;
/// crc32c of [0, OFF_CRC).
const OFF_CRC: usize = SEGMENT_HEADER_SIZE_BYTES - CRC_BYTES;

const _: () = assert!(contiguous(&[
    (OFF_MAGIC, MAGIC_BYTES),
    (OFF_VERSION, size_of::<u32>()),
    (OFF_POSITION, size_of::<u16>()),
    (OFF_WIDTH, size_of::<u16>()),
    (OFF_ARRAY, UUID_BYTES),
    (OFF_SEGMENT_ID, size_of::<u64>()),
    (OFF_WRITE_EPOCH, size_of::<u64>()),
    (OFF_DATA_SHARDS, size_of::<u16>()),
    (OFF_KIND, size_of::<u8>()),
    (OFF_RESERVED, 0),
]));
const _: () = assert!(OFF_RESERVED < OFF_MEMBERS);
const _: () = assert!(contiguous(&[
    (MEMBER_OFF_SLOT, size_of::<u32>()),
    (MEMBER_OFF_SEGMENT_INDEX, size_of::<u32>()),
    (MEMBER_BYTES, 0),
]));
const _: () = assert!(OFF_MEMBERS + MAX_DEVICES * MEMBER_BYTES <= OFF_CRC);

/// What a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// Log stripes (records).
    Log = 0,
    /// Part of an index checkpoint.
    Checkpoint = 1,
}

/// The 4096-byte header at the start of each device segment (docs/format.md, "Segment
/// header"): which segment it is and every member of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    /// This device segment's position in the segment's member list (0..w).
    pub position: u16,
    /// The array the segment belongs to.
    pub array_uuid: [u8; 16],
    /// The segment's id (at least 1), also its generation: a reused device segment gets a new one.
    pub segment_id: u64,
    /// The array's epoch in the session that allocated the segment.
    pub write_epoch: u64,
    /// k, the data chunks per stripe.
    pub data_shards: u16,
    /// Log or index checkpoint.
    pub kind: SegmentKind,
    /// (device_slot, device_segment_index) per member position.
    pub members: Vec<(u32, u32)>,
}

impl SegmentHeader {
    /// The header's 4096 bytes, crc sealed. Panics if the header is invalid.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_SIZE_BYTES] {
        self.validate().expect("encoding an invalid segment header");
        let mut b = [0u8; SEGMENT_HEADER_SIZE_BYTES];
        b[OFF_MAGIC..OFF_MAGIC + MAGIC_BYTES].copy_from_slice(MAGIC);
        put_u32(&mut b, OFF_VERSION, FORMAT_VERSION);
        put_u16(&mut b, OFF_POSITION, self.position);
        put_u16(&mut b, OFF_WIDTH, self.members.len() as u16);
        b[OFF_ARRAY..OFF_ARRAY + UUID_BYTES].copy_from_slice(&self.array_uuid);
        put_u64(&mut b, OFF_SEGMENT_ID, self.segment_id);
        put_u64(&mut b, OFF_WRITE_EPOCH, self.write_epoch);
        put_u16(&mut b, OFF_DATA_SHARDS, self.data_shards);
        b[OFF_KIND] = self.kind as u8;
        for (i, (slot, dseg)) in self.members.iter().enumerate() {
            let o = OFF_MEMBERS + i * MEMBER_BYTES;
            put_u32(&mut b, o + MEMBER_OFF_SLOT, *slot);
            put_u32(&mut b, o + MEMBER_OFF_SEGMENT_INDEX, *dseg);
        }
        seal_trailing_crc(&mut b);
        b
    }

    /// Decodes and validates the first 4096 bytes of `b`: magic, crc, version, reserved bytes
    /// and field rules (whether it belongs to this array and place is the caller's to check).
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, DecodeError> {
        if b.len() < SEGMENT_HEADER_SIZE_BYTES {
            return Err(DecodeError::Truncated);
        }
        let b = &b[..SEGMENT_HEADER_SIZE_BYTES];
        if &b[OFF_MAGIC..OFF_MAGIC + MAGIC_BYTES] != MAGIC {
            return Err(DecodeError::Magic);
        }
        check_trailing_crc(b)?;
        let version = get_u32(b, OFF_VERSION);
        if version != FORMAT_VERSION {
            return Err(DecodeError::Version(version));
        }
        let w = get_u16(b, OFF_WIDTH) as usize;
        if w == 0 || w > MAX_DEVICES {
            return Err(DecodeError::Field("width"));
        }
        let end = OFF_MEMBERS + w * MEMBER_BYTES;
        if !all_zero(&b[OFF_RESERVED..OFF_MEMBERS]) || !all_zero(&b[end..OFF_CRC]) {
            return Err(DecodeError::Reserved);
        }
        let members = (0..w)
            .map(|i| {
                let o = OFF_MEMBERS + i * MEMBER_BYTES;
                (
                    get_u32(b, o + MEMBER_OFF_SLOT),
                    get_u32(b, o + MEMBER_OFF_SEGMENT_INDEX),
                )
            })
            .collect();
        let h = SegmentHeader {
            position: get_u16(b, OFF_POSITION),
            array_uuid: get_uuid(b, OFF_ARRAY),
            segment_id: get_u64(b, OFF_SEGMENT_ID),
            write_epoch: get_u64(b, OFF_WRITE_EPOCH),
            data_shards: get_u16(b, OFF_DATA_SHARDS),
            kind: match b[OFF_KIND] {
                0 => SegmentKind::Log,
                1 => SegmentKind::Checkpoint,
                _ => return Err(DecodeError::Field("segment kind")),
            },
            members,
        };
        h.validate()?;
        Ok(h)
    }

    /// Checks the field rules of docs/format.md, "Segment header" ([`DecodeError::Field`] names
    /// the first broken one).
    pub fn validate(&self) -> Result<(), DecodeError> {
        let w = self.members.len();
        if w == 0 || w > MAX_DEVICES {
            return Err(DecodeError::Field("width"));
        }
        if self.position as usize >= w {
            return Err(DecodeError::Field("position"));
        }
        if self.data_shards == 0 || self.data_shards as usize > w {
            return Err(DecodeError::Field("data_shards"));
        }
        if self.segment_id == 0 {
            return Err(DecodeError::Field("segment_id"));
        }
        let mut slots: Vec<u32> = self.members.iter().map(|m| m.0).collect();
        slots.sort_unstable();
        slots.dedup();
        if slots.len() != w {
            return Err(DecodeError::Field("members repeat a device"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_single_byte_corruption() {
        let h = SegmentHeader {
            position: 2,
            array_uuid: [5; 16],
            segment_id: 42,
            write_epoch: 3,
            data_shards: 4,
            kind: SegmentKind::Checkpoint,
            members: vec![(0, 1), (1, 1), (2, 3), (3, 0), (4, 1), (5, 2)],
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b).unwrap(), h);
        for i in 0..b.len() {
            let mut c = b;
            c[i] ^= 0x80;
            assert!(
                SegmentHeader::decode(&c).is_err(),
                "flip at {i} not detected"
            );
        }
    }

    /// The encoded bytes, as the encoder wrote them before its offsets were named: every
    /// field at its docs/format.md offset ("Segment header"), zero elsewhere.
    #[test]
    fn encoding_is_pinned() {
        let h = SegmentHeader {
            position: 3,
            array_uuid: std::array::from_fn(|i| 0x10 + i as u8),
            segment_id: 0x0102_0304_0506_0708,
            write_epoch: 0x1112_1314_1516_1718,
            data_shards: 3,
            kind: SegmentKind::Checkpoint,
            members: (0..5u32)
                .map(|i| (0x2122_2320 + i, 0x3132_3330 + i))
                .collect(),
        };
        let b = h.encode();
        let expected = bytes_from_spans(
            SEGMENT_HEADER_SIZE_BYTES,
            &[
                (0, "4543545345474831"),                   // magic
                (8, "01000000"),                           // format_version
                (12, "0300"),                              // position
                (14, "0500"),                              // width
                (16, "1011121314151617 18191a1b1c1d1e1f"), // array_uuid
                (32, "0807060504030201"),                  // segment_id
                (40, "1817161514131211"),                  // write_epoch
                (48, "0300"),                              // data_shards
                (50, "01"),                                // kind
                (56, "2023222130333231"),                  // members[0]
                (64, "2123222131333231"),                  // members[1]
                (72, "2223222132333231"),                  // members[2]
                (80, "2323222133333231"),                  // members[3]
                (88, "2423222134333231"),                  // members[4]
                (4092, "558456fe"),                        // crc
            ],
        );
        assert!(b[..] == expected[..], "encoded:\n{}", spans_of(&b));
        assert_eq!(SegmentHeader::decode(&b).unwrap(), h);
    }
}
