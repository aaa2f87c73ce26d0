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

const MAGIC: &[u8; 8] = b"ECTSEGH1";

/// What a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// Log stripes (records).
    Log = 0,
    /// Part of an index checkpoint.
    Checkpoint = 1,
}
const MEMBERS_OFFSET: usize = 56;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    pub position: u16,
    pub array_uuid: [u8; 16],
    pub segment_id: u64,
    pub write_epoch: u64,
    pub data_shards: u16,
    pub kind: SegmentKind,
    /// (device_slot, device_segment_index) per member position.
    pub members: Vec<(u32, u32)>,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_SIZE_BYTES] {
        self.validate().expect("encoding an invalid segment header");
        let mut b = [0u8; SEGMENT_HEADER_SIZE_BYTES];
        b[0..8].copy_from_slice(MAGIC);
        put_u32(&mut b, 8, FORMAT_VERSION);
        put_u16(&mut b, 12, self.position);
        put_u16(&mut b, 14, self.members.len() as u16);
        b[16..32].copy_from_slice(&self.array_uuid);
        put_u64(&mut b, 32, self.segment_id);
        put_u64(&mut b, 40, self.write_epoch);
        put_u16(&mut b, 48, self.data_shards);
        b[50] = self.kind as u8;
        for (i, (slot, dseg)) in self.members.iter().enumerate() {
            put_u32(&mut b, MEMBERS_OFFSET + i * 8, *slot);
            put_u32(&mut b, MEMBERS_OFFSET + i * 8 + 4, *dseg);
        }
        seal_trailing_crc(&mut b);
        b
    }

    pub fn decode(b: &[u8]) -> Result<SegmentHeader, DecodeError> {
        if b.len() < SEGMENT_HEADER_SIZE_BYTES {
            return Err(DecodeError::Truncated);
        }
        let b = &b[..SEGMENT_HEADER_SIZE_BYTES];
        if &b[0..8] != MAGIC {
            return Err(DecodeError::Magic);
        }
        check_trailing_crc(b)?;
        let version = get_u32(b, 8);
        if version != FORMAT_VERSION {
            return Err(DecodeError::Version(version));
        }
        let w = get_u16(b, 14) as usize;
        if w == 0 || w > MAX_DEVICES {
            return Err(DecodeError::Field("width"));
        }
        let end = MEMBERS_OFFSET + w * 8;
        if !all_zero(&b[51..56]) || !all_zero(&b[end..SEGMENT_HEADER_SIZE_BYTES - 4]) {
            return Err(DecodeError::Reserved);
        }
        let members = (0..w)
            .map(|i| {
                (
                    get_u32(b, MEMBERS_OFFSET + i * 8),
                    get_u32(b, MEMBERS_OFFSET + i * 8 + 4),
                )
            })
            .collect();
        let h = SegmentHeader {
            position: get_u16(b, 12),
            array_uuid: get_uuid(b, 16),
            segment_id: get_u64(b, 32),
            write_epoch: get_u64(b, 40),
            data_shards: get_u16(b, 48),
            kind: match b[50] {
                0 => SegmentKind::Log,
                1 => SegmentKind::Checkpoint,
                _ => return Err(DecodeError::Field("segment kind")),
            },
            members,
        };
        h.validate()?;
        Ok(h)
    }

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
