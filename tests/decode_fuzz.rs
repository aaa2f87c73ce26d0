//! Bad input on the devices: random bytes, and every valid structure with random bytes
//! changed, fed to every decoder (superblock, segment header, chunk header, log record,
//! checkpoint). Decoders return a typed error or a value that passes validation; they never
//! panic. (The unit tests next to each decoder flip every single byte of a valid encoding.)

use ectable::format::{
    ChunkHeader, LogRecord, MemberState, RecordKind, SegmentHeader, SegmentKind, Superblock,
};
use proptest::prelude::*;

fn superblock() -> Superblock {
    Superblock {
        array_uuid: [1; 16],
        device_uuid: [2; 16],
        device_slot: 0,
        device_count: 2,
        data_shards: 1,
        parity_shards: 1,
        chunk_size_bytes: 65536,
        segment_size_bytes: 8 << 20,
        segment_count: 4,
        device_capacity_bytes: 64 << 20,
        epoch: 3,
        copy_index: 0,
        flags: 0,
        created_unix_secs: 1,
        checkpoint_segment_id: 0,
        checkpoint_segment_count: 0,
        checkpoint_lsn: 0,
        rebuild: None,
        members: vec![
            ([2; 16], MemberState::Online),
            ([3; 16], MemberState::Online),
        ],
        sync_floor: 1,
        resync_from: vec![0, 0],
    }
}

fn mutate(mut b: Vec<u8>, edits: &[(usize, u8)]) -> Vec<u8> {
    for &(i, v) in edits {
        let n = b.len();
        b[i % n] = v;
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..5000)) {
        let _ = Superblock::decode(&bytes);
        let _ = SegmentHeader::decode(&bytes);
        let _ = ChunkHeader::decode(&bytes);
        let _ = LogRecord::decode(&bytes);
    }

    #[test]
    fn mutated_structures_never_panic(edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let sb = mutate(superblock().encode().to_vec(), &edits);
        if let Ok(d) = Superblock::decode(&sb) {
            prop_assert!(d.validate().is_ok());
        }
        let seg = SegmentHeader {
            position: 1,
            array_uuid: [1; 16],
            segment_id: 9,
            write_epoch: 2,
            data_shards: 1,
            kind: SegmentKind::Log,
            members: vec![(0, 0), (1, 0)],
        };
        let sh = mutate(seg.encode().to_vec(), &edits);
        if let Ok(d) = SegmentHeader::decode(&sh) {
            prop_assert!(d.validate().is_ok());
        }
        let ch = ChunkHeader {
            array_uuid: [1; 16],
            segment_id: 9,
            write_epoch: 2,
            offset_in_segment_bytes: 4096,
            height_bytes: 8192,
            ordinal: 0,
            shard_index: 1,
            width: 2,
            data_shards: 1,
            flags: 0,
            payload_bytes: 100,
            first_lsn: 5,
            last_lsn: 6,
            present_mask: 3,
            committed_lsn: 4,
            body_crcs: vec![7, 8],
        };
        let mut cb = vec![0u8; 512];
        ch.encode_into(&mut cb);
        if let Ok(d) = ChunkHeader::decode(&mutate(cb, &edits)) {
            prop_assert!(d.validate().is_ok());
        }
        let rec = LogRecord { lsn: 3, kind: RecordKind::Put, table: "t".into(), key: b"k".to_vec(), value: vec![9; 40] };
        let mut rb = Vec::new();
        rec.encode_into(&mut rb);
        let _ = LogRecord::decode(&mutate(rb, &edits));
    }
}
