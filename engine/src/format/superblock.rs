//! The superblock: who this device is and which array it belongs to.
//!
//! `// { magic | version | codec | array | device | slot | n | k | m | C | S | count | cap |
//!      epoch | copy | flags | created | ckpt_segment | ckpt_count | spare_count | ckpt_lsn |
//!      members[64] | rebuild_slot | reserved | rebuild_cursor | sync_floor | resync_from[64] |
//!      reserved | crc }` (docs/format.md, "Superblock", gives every offset)
//!
//! Invariants:
//! - Two copies per device (offsets 0 and 4096), written one at a time with a flush between.
//! - The valid copy with the highest epoch is the truth for that device.

use super::*;

const MAGIC: &[u8; MAGIC_BYTES] = b"ECTSUPR1";
// Field offsets (docs/format.md, "Superblock"; the `*_OFFSET` and `RESYNC_END` names are
// the ones it uses).
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_CODEC: usize = 12;
const OFF_ARRAY: usize = 16;
const OFF_DEVICE: usize = 32;
/// The member entry this device is.
const OFF_DEVICE_SLOT: usize = 48;
/// n, the data-bearing slots.
const OFF_DEVICE_COUNT: usize = 52;
const OFF_DATA_SHARDS: usize = 56;
const OFF_PARITY_SHARDS: usize = 58;
const OFF_CHUNK_SIZE: usize = 60;
const OFF_SEGMENT_SIZE: usize = 64;
/// Device segments per device.
const OFF_SEGMENT_COUNT: usize = 68;
const OFF_DEVICE_CAPACITY: usize = 72;
const OFF_EPOCH: usize = 80;
const OFF_COPY_INDEX: usize = 88;
const OFF_FLAGS: usize = 92;
const OFF_CREATED: usize = 96;
/// First segment id of the newest index checkpoint (0: none).
const OFF_CHECKPOINT_SEGMENT_ID: usize = 104;
const OFF_CHECKPOINT_SEGMENT_COUNT: usize = 112;
/// Hot spares: the member entries n .. n + spare_count.
const OFF_SPARE_COUNT: usize = 116;
const OFF_CHECKPOINT_LSN: usize = 120;
/// members[64], entries of MEMBER_ENTRY_BYTES:
/// { device_uuid | state u8 | reserved, zero }.
const MEMBERS_OFFSET: usize = 128;
const MEMBER_ENTRY_BYTES: usize = 24;
const MEMBER_OFF_DEVICE_UUID: usize = 0;
const MEMBER_OFF_STATE: usize = 16;
const MEMBER_OFF_RESERVED: usize = 17;
/// rebuild_slot + 1 (0: no rebuild in progress).
const REBUILD_OFFSET: usize = MEMBERS_OFFSET + MAX_DEVICES * MEMBER_ENTRY_BYTES;
const OFF_REBUILD_RESERVED: usize = REBUILD_OFFSET + 4;
/// rebuild_cursor: the next segment id to rebuild (0 when there is no rebuild).
const OFF_REBUILD_CURSOR: usize = REBUILD_OFFSET + 8;
/// { sync_floor u64 | resync_from[64] u64 } (docs/format.md, "Stale members").
const SYNC_FLOOR_OFFSET: usize = REBUILD_OFFSET + 16;
const RESYNC_OFFSET: usize = SYNC_FLOOR_OFFSET + 8;
const RESYNC_ENTRY_BYTES: usize = size_of::<u64>();
/// The end of resync_from; reserved bytes, zero, follow up to the crc.
const RESYNC_END: usize = RESYNC_OFFSET + RESYNC_ENTRY_BYTES * MAX_DEVICES;
/// crc32c of [0, OFF_CRC).
const OFF_CRC: usize = SUPERBLOCK_SIZE_BYTES - CRC_BYTES;

const _: () = assert!(contiguous(&[
    (OFF_MAGIC, MAGIC_BYTES),
    (OFF_VERSION, size_of::<u32>()),
    (OFF_CODEC, size_of::<u32>()),
    (OFF_ARRAY, UUID_BYTES),
    (OFF_DEVICE, UUID_BYTES),
    (OFF_DEVICE_SLOT, size_of::<u32>()),
    (OFF_DEVICE_COUNT, size_of::<u32>()),
    (OFF_DATA_SHARDS, size_of::<u16>()),
    (OFF_PARITY_SHARDS, size_of::<u16>()),
    (OFF_CHUNK_SIZE, size_of::<u32>()),
    (OFF_SEGMENT_SIZE, size_of::<u32>()),
    (OFF_SEGMENT_COUNT, size_of::<u32>()),
    (OFF_DEVICE_CAPACITY, size_of::<u64>()),
    (OFF_EPOCH, size_of::<u64>()),
    (OFF_COPY_INDEX, size_of::<u32>()),
    (OFF_FLAGS, size_of::<u32>()),
    (OFF_CREATED, size_of::<u64>()),
    (OFF_CHECKPOINT_SEGMENT_ID, size_of::<u64>()),
    (OFF_CHECKPOINT_SEGMENT_COUNT, size_of::<u32>()),
    (OFF_SPARE_COUNT, size_of::<u32>()),
    (OFF_CHECKPOINT_LSN, size_of::<u64>()),
    (MEMBERS_OFFSET, MAX_DEVICES * MEMBER_ENTRY_BYTES),
    (REBUILD_OFFSET, size_of::<u32>()),
    (OFF_REBUILD_RESERVED, size_of::<u32>()),
    (OFF_REBUILD_CURSOR, size_of::<u64>()),
    (SYNC_FLOOR_OFFSET, size_of::<u64>()),
    (RESYNC_OFFSET, MAX_DEVICES * RESYNC_ENTRY_BYTES),
    (RESYNC_END, 0),
]));
const _: () = assert!(contiguous(&[
    (MEMBER_OFF_DEVICE_UUID, UUID_BYTES),
    (MEMBER_OFF_STATE, size_of::<u8>()),
    (MEMBER_OFF_RESERVED, 0),
]));
const _: () = assert!(MEMBER_OFF_RESERVED < MEMBER_ENTRY_BYTES);
// The figures docs/format.md states.
const _: () = assert!(REBUILD_OFFSET == 1664 && RESYNC_END == 2200);
const _: () = assert!(RESYNC_END <= OFF_CRC);

/// A member entry's state in the superblock (its byte on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Not present when the superblocks were written.
    Absent = 0,
    /// In service.
    Online = 1,
    /// Failed: I/O errors past the limits, or a failed write or flush.
    Failed = 2,
    /// A replacement being rebuilt onto.
    Rebuilding = 3,
    /// A hot spare: holds no data until it replaces a failed member.
    Spare = 4,
    /// Slow when last written; each session measures slowness afresh.
    Suspect = 5,
}

impl MemberState {
    fn from_u8(v: u8) -> Result<MemberState, DecodeError> {
        Ok(match v {
            0 => MemberState::Absent,
            1 => MemberState::Online,
            2 => MemberState::Failed,
            3 => MemberState::Rebuilding,
            4 => MemberState::Spare,
            5 => MemberState::Suspect,
            _ => return Err(DecodeError::Field("member state")),
        })
    }
    /// The word `examine` and `status` print (zpool's words: "FAULTED" for failed, "DEGRADED"
    /// for suspect).
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Absent => "ABSENT",
            MemberState::Online => "ONLINE",
            MemberState::Failed => "FAULTED",
            MemberState::Rebuilding => "REBUILDING",
            MemberState::Spare => "SPARE",
            MemberState::Suspect => "DEGRADED",
        }
    }
}

/// One device's superblock (docs/format.md, "Superblock"): the array's geometry, the member
/// list and states, the checkpoint in force and the rebuild and resync records. Two copies
/// sit at offsets 0 and 4096; the one with the higher epoch is current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// The array's uuid (random at format).
    pub array_uuid: [u8; 16],
    /// This device's uuid (random at format or when it joins).
    pub device_uuid: [u8; 16],
    /// The member entry this device is: below n a data slot, at or above n a spare.
    pub device_slot: u32,
    /// n, the data-bearing members (1 to 64).
    pub device_count: u32,
    /// k, the data chunks per stripe.
    pub data_shards: u16,
    /// m, the parity chunks per stripe (k + m ≤ n).
    pub parity_shards: u16,
    /// Chunk size C in bytes.
    pub chunk_size_bytes: u32,
    /// Device segment size S in bytes.
    pub segment_size_bytes: u32,
    /// Device segments per device.
    pub segment_count: u32,
    /// This device's capacity in bytes when this copy was written.
    pub device_capacity_bytes: u64,
    /// Raised by every superblock rewrite; the highest among the devices is the array's.
    pub epoch: u64,
    /// Which of the two copies this is: 0 (offset 0) or 1 (offset 4096).
    pub copy_index: u32,
    /// 1, or 2 when the array keeps a sync journal (docs/format.md, "Version changes").
    pub format_version: u32,
    /// No flag is defined: always 0.
    pub flags: u32,
    /// When the array was formatted, in seconds since the Unix epoch.
    pub created_unix_secs: u64,
    /// First segment id of the newest index checkpoint (0: none); its segments have
    /// consecutive ids.
    pub checkpoint_segment_id: u64,
    /// How many segments that checkpoint takes (0 exactly when there is none).
    pub checkpoint_segment_count: u32,
    /// Every record with an LSN up to this one is in the checkpoint.
    pub checkpoint_lsn: u64,
    /// A rebuild in progress: (slot being rebuilt, next segment id to rebuild).
    pub rebuild: Option<(u32, u64)>,
    /// (device_uuid, state) per slot: `device_count` data-bearing slots, then the hot
    /// spares (state Spare), one entry each.
    pub members: Vec<([u8; 16], MemberState)>,
    /// Every write after this copy lies in segments with id ≥ this (0: unknown).
    pub sync_floor: u64,
    /// Per member entry: 0 when in sync, else the first segment id it may have missed
    /// writes in (a stale member, to be resynced). Same length as `members`.
    pub resync_from: Vec<u64>,
}

impl Superblock {
    /// The stripe width, k + m.
    pub fn width(&self) -> usize {
        // In usize: two u16 fields read from a device can overflow a u16 sum (found by the
        // `superblock` fuzz target; a release build wrapped to a small width).
        self.data_shards as usize + self.parity_shards as usize
    }

    /// The copy's 4096 bytes (codec id and spare count filled in), crc sealed. Panics if the
    /// superblock is invalid.
    pub fn encode(&self) -> [u8; SUPERBLOCK_SIZE_BYTES] {
        self.validate().expect("encoding an invalid superblock");
        let mut b = [0u8; SUPERBLOCK_SIZE_BYTES];
        b[OFF_MAGIC..OFF_MAGIC + MAGIC_BYTES].copy_from_slice(MAGIC);
        put_u32(&mut b, OFF_VERSION, self.format_version);
        put_u32(&mut b, OFF_CODEC, CODEC_ID_RS_VANDERMONDE);
        b[OFF_ARRAY..OFF_ARRAY + UUID_BYTES].copy_from_slice(&self.array_uuid);
        b[OFF_DEVICE..OFF_DEVICE + UUID_BYTES].copy_from_slice(&self.device_uuid);
        put_u32(&mut b, OFF_DEVICE_SLOT, self.device_slot);
        put_u32(&mut b, OFF_DEVICE_COUNT, self.device_count);
        put_u16(&mut b, OFF_DATA_SHARDS, self.data_shards);
        put_u16(&mut b, OFF_PARITY_SHARDS, self.parity_shards);
        put_u32(&mut b, OFF_CHUNK_SIZE, self.chunk_size_bytes);
        put_u32(&mut b, OFF_SEGMENT_SIZE, self.segment_size_bytes);
        put_u32(&mut b, OFF_SEGMENT_COUNT, self.segment_count);
        put_u64(&mut b, OFF_DEVICE_CAPACITY, self.device_capacity_bytes);
        put_u64(&mut b, OFF_EPOCH, self.epoch);
        put_u32(&mut b, OFF_COPY_INDEX, self.copy_index);
        put_u32(&mut b, OFF_FLAGS, self.flags);
        put_u64(&mut b, OFF_CREATED, self.created_unix_secs);
        put_u64(
            &mut b,
            OFF_CHECKPOINT_SEGMENT_ID,
            self.checkpoint_segment_id,
        );
        put_u32(
            &mut b,
            OFF_CHECKPOINT_SEGMENT_COUNT,
            self.checkpoint_segment_count,
        );
        put_u32(
            &mut b,
            OFF_SPARE_COUNT,
            (self.members.len() - self.device_count as usize) as u32,
        );
        put_u64(&mut b, OFF_CHECKPOINT_LSN, self.checkpoint_lsn);
        for (i, (uuid, state)) in self.members.iter().enumerate() {
            let o = MEMBERS_OFFSET + i * MEMBER_ENTRY_BYTES;
            b[o + MEMBER_OFF_DEVICE_UUID..o + MEMBER_OFF_DEVICE_UUID + UUID_BYTES]
                .copy_from_slice(uuid);
            b[o + MEMBER_OFF_STATE] = *state as u8;
        }
        if let Some((slot, next)) = self.rebuild {
            put_u32(&mut b, REBUILD_OFFSET, slot + 1);
            put_u64(&mut b, OFF_REBUILD_CURSOR, next);
        }
        put_u64(&mut b, SYNC_FLOOR_OFFSET, self.sync_floor);
        for (i, from) in self.resync_from.iter().enumerate() {
            put_u64(&mut b, RESYNC_OFFSET + RESYNC_ENTRY_BYTES * i, *from);
        }
        seal_trailing_crc(&mut b);
        b
    }

    /// Decodes and validates one copy: magic, crc, version, codec, reserved bytes and the field
    /// rules of docs/format.md.
    pub fn decode(b: &[u8]) -> Result<Superblock, DecodeError> {
        if b.len() < SUPERBLOCK_SIZE_BYTES {
            return Err(DecodeError::Truncated);
        }
        let b = &b[..SUPERBLOCK_SIZE_BYTES];
        if &b[OFF_MAGIC..OFF_MAGIC + MAGIC_BYTES] != MAGIC {
            return Err(DecodeError::Magic);
        }
        check_trailing_crc(b)?;
        let version = get_u32(b, OFF_VERSION);
        if !(FORMAT_VERSION..=FORMAT_VERSION_INLINE).contains(&version) {
            return Err(DecodeError::Version(version));
        }
        let codec = get_u32(b, OFF_CODEC);
        if codec != CODEC_ID_RS_VANDERMONDE {
            return Err(DecodeError::Codec(codec));
        }
        let device_count = get_u32(b, OFF_DEVICE_COUNT);
        if device_count == 0 || device_count as usize > MAX_DEVICES {
            return Err(DecodeError::Field("device_count"));
        }
        let spare_count = get_u32(b, OFF_SPARE_COUNT);
        if device_count as usize + spare_count as usize > MAX_DEVICES {
            return Err(DecodeError::Field("spare_count"));
        }
        let entries = device_count as usize + spare_count as usize;
        let mut members = Vec::with_capacity(entries);
        for i in 0..MAX_DEVICES {
            let o = MEMBERS_OFFSET + i * MEMBER_ENTRY_BYTES;
            if !all_zero(&b[o + MEMBER_OFF_RESERVED..o + MEMBER_ENTRY_BYTES]) {
                return Err(DecodeError::Reserved);
            }
            if i < entries {
                members.push((
                    get_uuid(b, o + MEMBER_OFF_DEVICE_UUID),
                    MemberState::from_u8(b[o + MEMBER_OFF_STATE])?,
                ));
            } else if !all_zero(&b[o..o + MEMBER_ENTRY_BYTES]) {
                return Err(DecodeError::Field("member beyond the spares"));
            }
        }
        if get_u32(b, OFF_REBUILD_RESERVED) != 0 {
            return Err(DecodeError::Reserved);
        }
        let rebuild = match get_u32(b, REBUILD_OFFSET) {
            0 => {
                if get_u64(b, OFF_REBUILD_CURSOR) != 0 {
                    return Err(DecodeError::Reserved);
                }
                None
            }
            s => Some((s - 1, get_u64(b, OFF_REBUILD_CURSOR))),
        };
        let resync_from: Vec<u64> = (0..entries)
            .map(|i| get_u64(b, RESYNC_OFFSET + RESYNC_ENTRY_BYTES * i))
            .collect();
        if !all_zero(&b[RESYNC_OFFSET + RESYNC_ENTRY_BYTES * entries..RESYNC_END]) {
            return Err(DecodeError::Field("resync entry beyond the members"));
        }
        if !all_zero(&b[RESYNC_END..OFF_CRC]) {
            return Err(DecodeError::Reserved);
        }
        let sb = Superblock {
            array_uuid: get_uuid(b, OFF_ARRAY),
            device_uuid: get_uuid(b, OFF_DEVICE),
            device_slot: get_u32(b, OFF_DEVICE_SLOT),
            device_count,
            data_shards: get_u16(b, OFF_DATA_SHARDS),
            parity_shards: get_u16(b, OFF_PARITY_SHARDS),
            chunk_size_bytes: get_u32(b, OFF_CHUNK_SIZE),
            segment_size_bytes: get_u32(b, OFF_SEGMENT_SIZE),
            segment_count: get_u32(b, OFF_SEGMENT_COUNT),
            device_capacity_bytes: get_u64(b, OFF_DEVICE_CAPACITY),
            epoch: get_u64(b, OFF_EPOCH),
            copy_index: get_u32(b, OFF_COPY_INDEX),
            format_version: version,
            flags: get_u32(b, OFF_FLAGS),
            created_unix_secs: get_u64(b, OFF_CREATED),
            checkpoint_segment_id: get_u64(b, OFF_CHECKPOINT_SEGMENT_ID),
            checkpoint_segment_count: get_u32(b, OFF_CHECKPOINT_SEGMENT_COUNT),
            checkpoint_lsn: get_u64(b, OFF_CHECKPOINT_LSN),
            rebuild,
            members,
            sync_floor: get_u64(b, SYNC_FLOOR_OFFSET),
            resync_from,
        };
        sb.validate()?;
        Ok(sb)
    }

    /// Structural checks shared by encode and decode.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let k = self.data_shards as usize;
        let w = self.width();
        if k == 0 || w > self.device_count as usize || w > MAX_DEVICES {
            return Err(DecodeError::Field("geometry"));
        }
        let n = self.device_count as usize;
        if self.members.len() < n || self.members.len() > MAX_DEVICES {
            return Err(DecodeError::Field("members"));
        }
        if self.device_slot as usize >= self.members.len() {
            return Err(DecodeError::Field("device_slot"));
        }
        for (i, (_, state)) in self.members.iter().enumerate() {
            if (i >= n) != (*state == MemberState::Spare) {
                return Err(DecodeError::Field("spare entries"));
            }
        }
        let (c, s) = (self.chunk_size_bytes, self.segment_size_bytes);
        if super::Layout::check_chunk_size(c).is_err() {
            return Err(DecodeError::Field("chunk_size_bytes"));
        }
        if super::Layout::check_segment_size(s, c, false).is_err() {
            return Err(DecodeError::Field("segment_size_bytes"));
        }
        // Flags have a meaning only from version 6 on, and only bit 0 has one.
        let known_flags = match self.format_version >= FORMAT_VERSION_INLINE {
            true => SB_FLAG_INLINE_VALUES,
            false => 0,
        };
        if self.copy_index > 1 || self.flags & !known_flags != 0 {
            return Err(DecodeError::Field("copy_index/flags"));
        }
        if (self.checkpoint_segment_id == 0) != (self.checkpoint_segment_count == 0) {
            return Err(DecodeError::Field("checkpoint"));
        }
        if self
            .rebuild
            .is_some_and(|(slot, _)| slot >= self.device_count)
        {
            return Err(DecodeError::Field("rebuild slot"));
        }
        if self.resync_from.len() != self.members.len() {
            return Err(DecodeError::Field("resync entries"));
        }
        if self.members[self.device_slot as usize].0 != self.device_uuid {
            return Err(DecodeError::Field("own member entry"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_width_beyond_u16_is_refused_not_wrapped() {
        let mut sb = sample();
        sb.data_shards = u16::MAX;
        sb.parity_shards = 2;
        assert_eq!(sb.width(), 65_537);
        assert_eq!(sb.validate(), Err(DecodeError::Field("geometry")));
    }

    pub(crate) fn sample() -> Superblock {
        Superblock {
            array_uuid: [1; 16],
            device_uuid: [2; 16],
            device_slot: 1,
            device_count: 3,
            data_shards: 2,
            parity_shards: 1,
            chunk_size_bytes: 65536,
            segment_size_bytes: 8 << 20,
            segment_count: 10,
            device_capacity_bytes: 100 << 20,
            epoch: 7,
            copy_index: 1,
            format_version: 1,
            flags: 0,
            created_unix_secs: 1234,
            checkpoint_segment_id: 3,
            checkpoint_segment_count: 2,
            checkpoint_lsn: 99,
            rebuild: Some((2, 17)),
            members: vec![
                ([9; 16], MemberState::Online),
                ([2; 16], MemberState::Online),
                ([3; 16], MemberState::Failed),
                ([4; 16], MemberState::Spare),
            ],
            sync_floor: 12,
            resync_from: vec![0, 0, 5, 0],
        }
    }

    /// Flags mean something only in version 6, and only bit 0 (docs/format.md, "Values that
    /// stay inline"): a copy that sets another bit, or bit 0 in an older version, is refused.
    #[test]
    fn only_version_6_may_say_values_stay_inline() {
        for (version, flags, ok) in [
            (6, SB_FLAG_INLINE_VALUES, true),
            (6, 0, true),
            (5, SB_FLAG_INLINE_VALUES, false),
            (1, SB_FLAG_INLINE_VALUES, false),
            (6, 2, false),
            (6, SB_FLAG_INLINE_VALUES | 1 << 31, false),
            (7, 0, false),
        ] {
            // The encoder refuses invalid copies; the bytes are patched as a device could
            // hold them, with a good crc.
            let mut b = sample().encode();
            put_u32(&mut b, OFF_VERSION, version);
            put_u32(&mut b, OFF_FLAGS, flags);
            seal_trailing_crc(&mut b);
            let got = Superblock::decode(&b);
            assert_eq!(
                got.is_ok(),
                ok,
                "version {version} flags {flags:#x}: {got:?}"
            );
            if let Ok(sb) = &got {
                assert_eq!((sb.format_version, sb.flags), (version, flags));
                assert_eq!(sb.encode(), b, "encodes back to the same bytes");
            }
            if version == 7 {
                assert_eq!(got, Err(DecodeError::Version(7)));
            }
        }
    }

    #[test]
    fn round_trip() {
        let sb = sample();
        assert_eq!(Superblock::decode(&sb.encode()).unwrap(), sb);
    }

    #[test]
    fn every_single_byte_corruption_is_detected() {
        let good = sample().encode();
        for i in 0..SUPERBLOCK_SIZE_BYTES {
            let mut b = good;
            b[i] ^= 0x01;
            assert!(
                Superblock::decode(&b).is_err(),
                "flip at byte {i} not detected"
            );
        }
    }

    /// The encoded bytes, as the encoder wrote them before its offsets were named: every
    /// field at its docs/format.md offset ("Superblock"), zero elsewhere.
    #[test]
    fn encoding_is_pinned() {
        let sb = Superblock {
            array_uuid: std::array::from_fn(|i| 0x10 + i as u8),
            device_uuid: std::array::from_fn(|i| 0x20 + i as u8),
            device_slot: 1,
            device_count: 3,
            data_shards: 2,
            parity_shards: 1,
            chunk_size_bytes: 65536,
            segment_size_bytes: 8 << 20,
            segment_count: 0x0001_0203,
            device_capacity_bytes: 0x0123_4567_89ab_cdef,
            epoch: 0x1112_1314_1516_1718,
            copy_index: 1,
            format_version: 1,
            flags: 0,
            created_unix_secs: 0x2122_2324_2526_2728,
            checkpoint_segment_id: 0x3132_3334_3536_3738,
            checkpoint_segment_count: 0x0000_0102,
            checkpoint_lsn: 0x4142_4344_4546_4748,
            rebuild: Some((2, 0x5152_5354_5556_5758)),
            members: vec![
                ([0x91; 16], MemberState::Online),
                (
                    std::array::from_fn(|i| 0x20 + i as u8),
                    MemberState::Suspect,
                ),
                ([0x93; 16], MemberState::Rebuilding),
                ([0x94; 16], MemberState::Spare),
            ],
            sync_floor: 0x6162_6364_6566_6768,
            resync_from: vec![0, 0x7172_7374_7576_7778, 5, 0x8182_8384_8586_8788],
        };
        let b = sb.encode();
        let expected = bytes_from_spans(
            SUPERBLOCK_SIZE_BYTES,
            &[
                (0, "4543545355505231"),                    // magic
                (8, "01000000"),                            // format_version
                (12, "01000000"),                           // codec_id
                (16, "1011121314151617 18191a1b1c1d1e1f"),  // array_uuid
                (32, "2021222324252627 28292a2b2c2d2e2f"),  // device_uuid
                (48, "01000000"),                           // device_slot
                (52, "03000000"),                           // device_count
                (56, "0200"),                               // data_shards
                (58, "0100"),                               // parity_shards
                (60, "00000100"),                           // chunk_size_bytes
                (64, "00008000"),                           // segment_size_bytes
                (68, "03020100"),                           // segment_count
                (72, "efcdab8967452301"),                   // device_capacity_bytes
                (80, "1817161514131211"),                   // epoch
                (88, "01000000"),                           // copy_index
                (96, "2827262524232221"),                   // created_unix_secs
                (104, "3837363534333231"),                  // checkpoint_segment_id
                (112, "02010000"),                          // checkpoint_segment_count
                (116, "01000000"),                          // spare_count
                (120, "4847464544434241"),                  // checkpoint_lsn
                (128, "9191919191919191 9191919191919191"), // members[0].device_uuid
                (144, "01"),                                // members[0].state
                (152, "2021222324252627 28292a2b2c2d2e2f"), // members[1].device_uuid
                (168, "05"),                                // members[1].state
                (176, "9393939393939393 9393939393939393"), // members[2].device_uuid
                (192, "03"),                                // members[2].state
                (200, "9494949494949494 9494949494949494"), // members[3].device_uuid
                (216, "04"),                                // members[3].state
                (1664, "03000000"),                         // rebuild_slot + 1
                (1672, "5857565554535251"),                 // rebuild_cursor
                (1680, "6867666564636261"),                 // sync_floor
                (1696, "7877767574737271"),                 // resync_from[1]
                (1704, "0500000000000000"),                 // resync_from[2]
                (1712, "8887868584838281"),                 // resync_from[3]
                (4092, "9c9678d7"),                         // crc
            ],
        );
        assert!(b[..] == expected[..], "encoded:\n{}", spans_of(&b));
        assert_eq!(Superblock::decode(&b).unwrap(), sb);
    }
}
