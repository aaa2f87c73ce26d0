//! The health block (4096 bytes at device offset 8192), written and read back by the
//! monitor's probes (docs/format.md, "Health block").
//!
//! `// { magic | array | slot u32 | reserved u32 | probe_sequence u64 | unix_nanos u64 |
//!      read_errors u64 | write_errors u64 | checksum_errors u64 | scrub_finished u64 |
//!      scrub_duration u64 | scrub_bytes u64 | scrub_bad u64 | scrub_repaired u64 |
//!      scrub_unrecoverable u64 | scrub_flags u32 | reserved u32 | rebuild_finished u64 |
//!      rebuild_duration u64 | rebuild_scanned u64 | rebuild_chunks u64 | rebuild_bytes u64 |
//!      rebuild_unrecoverable u64 | rebuild_slot u32 | rebuild_flags u32 | reserved | crc }`
//!
//! Besides the probe, the block keeps what must survive a restart and matters to no
//! recovery: the member's error counters over all sessions, and the array's last scrub and
//! last rebuild or resync (the same on every member; the newest wins at open).

use super::{check_trailing_crc, get_u32, get_u64, put_u32, put_u64, seal_trailing_crc};

/// Where the health block sits on every device.
pub const HEALTH_BLOCK_OFFSET: u64 = 8192;
/// Bytes of the health block.
pub const HEALTH_BLOCK_BYTES: usize = 4096;
const MAGIC: &[u8; 8] = b"ECTHLTH1";
const OFF_ARRAY: usize = 8;
const OFF_SLOT: usize = 24;
const OFF_SEQUENCE: usize = 32;
const OFF_UNIX_NANOS: usize = 40;
const OFF_READ_ERRORS: usize = 48;
const OFF_WRITE_ERRORS: usize = 56;
const OFF_CHECKSUM_ERRORS: usize = 64;
const OFF_SCRUB_FINISHED: usize = 72;
const OFF_SCRUB_DURATION: usize = 80;
const OFF_SCRUB_BYTES: usize = 88;
const OFF_SCRUB_BAD: usize = 96;
const OFF_SCRUB_REPAIRED: usize = 104;
const OFF_SCRUB_UNRECOVERABLE: usize = 112;
const OFF_SCRUB_FLAGS: usize = 120;
const SCRUB_FLAG_REPAIR: u32 = 1;
const OFF_REBUILD_FINISHED: usize = 128;
const OFF_REBUILD_DURATION: usize = 136;
const OFF_REBUILD_SCANNED: usize = 144;
const OFF_REBUILD_CHUNKS: usize = 152;
const OFF_REBUILD_BYTES: usize = 160;
const OFF_REBUILD_UNRECOVERABLE: usize = 168;
const OFF_REBUILD_SLOT: usize = 176;
const OFF_REBUILD_FLAGS: usize = 180;
const REBUILD_FLAG_RESYNC: u32 = 1;

/// What a health block keeps across sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HealthRecord {
    /// Read errors seen on the member, all sessions together.
    pub read_errors: u64,
    /// Write and flush errors, all sessions.
    pub write_errors: u64,
    /// Chunks that failed their checksum or identity, all sessions.
    pub checksum_errors: u64,
    /// The array's last completed scrub.
    pub last_scrub: Option<ScrubRecord>,
    /// The array's last completed rebuild or resync of a slot.
    #[cfg_attr(feature = "serde", serde(default))]
    pub last_rebuild: Option<RebuildRecord>,
}

/// A completed rebuild (of a replaced member) or resync (of a stale one), as the health
/// blocks remember it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RebuildRecord {
    /// When it finished, ns since the Unix epoch (never 0).
    pub finished_unix_nanos: u64,
    /// How long the run that finished it took, ns (a rebuild resumed after a restart counts
    /// from the resume).
    pub duration_ns: u64,
    /// Bytes it read.
    pub bytes_scanned: u64,
    /// Chunks it rebuilt and wrote.
    pub chunks_rebuilt: u64,
    /// Bytes of those chunks.
    pub bytes_rebuilt: u64,
    /// Stripes holding live records it could not rebuild.
    pub unrecoverable: u64,
    /// The slot it rebuilt.
    pub slot: u32,
    /// A resync of a stale member (only what it missed) rather than a whole rebuild.
    pub resync: bool,
}

/// A completed scrub, as the health blocks remember it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ScrubRecord {
    /// When it finished, ns since the Unix epoch (never 0).
    pub finished_unix_nanos: u64,
    /// How long it ran, ns.
    pub duration_ns: u64,
    /// Bytes it read.
    pub bytes_scanned: u64,
    /// Bad chunks it found (all members).
    pub bad_chunks: u64,
    /// Chunks it rewrote.
    pub chunks_repaired: u64,
    /// Stripes it could not rebuild.
    pub unrecoverable: u64,
    /// It ran with repair.
    pub repair: bool,
}

/// A health block naming the array, the slot, the probe's sequence number and its time,
/// with what it keeps across sessions.
pub fn encode(
    array: &[u8; 16],
    slot: u32,
    sequence: u64,
    unix_nanos: u64,
    record: &HealthRecord,
) -> [u8; HEALTH_BLOCK_BYTES] {
    let mut b = [0u8; HEALTH_BLOCK_BYTES];
    b[0..OFF_ARRAY].copy_from_slice(MAGIC);
    b[OFF_ARRAY..OFF_SLOT].copy_from_slice(array);
    put_u32(&mut b, OFF_SLOT, slot);
    put_u64(&mut b, OFF_SEQUENCE, sequence);
    put_u64(&mut b, OFF_UNIX_NANOS, unix_nanos);
    put_u64(&mut b, OFF_READ_ERRORS, record.read_errors);
    put_u64(&mut b, OFF_WRITE_ERRORS, record.write_errors);
    put_u64(&mut b, OFF_CHECKSUM_ERRORS, record.checksum_errors);
    if let Some(s) = record.last_scrub.filter(|s| s.finished_unix_nanos != 0) {
        put_u64(&mut b, OFF_SCRUB_FINISHED, s.finished_unix_nanos);
        put_u64(&mut b, OFF_SCRUB_DURATION, s.duration_ns);
        put_u64(&mut b, OFF_SCRUB_BYTES, s.bytes_scanned);
        put_u64(&mut b, OFF_SCRUB_BAD, s.bad_chunks);
        put_u64(&mut b, OFF_SCRUB_REPAIRED, s.chunks_repaired);
        put_u64(&mut b, OFF_SCRUB_UNRECOVERABLE, s.unrecoverable);
        put_u32(
            &mut b,
            OFF_SCRUB_FLAGS,
            if s.repair { SCRUB_FLAG_REPAIR } else { 0 },
        );
    }
    if let Some(r) = record.last_rebuild.filter(|r| r.finished_unix_nanos != 0) {
        put_u64(&mut b, OFF_REBUILD_FINISHED, r.finished_unix_nanos);
        put_u64(&mut b, OFF_REBUILD_DURATION, r.duration_ns);
        put_u64(&mut b, OFF_REBUILD_SCANNED, r.bytes_scanned);
        put_u64(&mut b, OFF_REBUILD_CHUNKS, r.chunks_rebuilt);
        put_u64(&mut b, OFF_REBUILD_BYTES, r.bytes_rebuilt);
        put_u64(&mut b, OFF_REBUILD_UNRECOVERABLE, r.unrecoverable);
        put_u32(&mut b, OFF_REBUILD_SLOT, r.slot);
        put_u32(
            &mut b,
            OFF_REBUILD_FLAGS,
            if r.resync { REBUILD_FLAG_RESYNC } else { 0 },
        );
    }
    seal_trailing_crc(&mut b);
    b
}

/// The probe sequence and the kept record of an intact health block of this array and slot.
/// A block written before the counters existed reads as zero counters and no scrub.
pub fn decode_record(b: &[u8], array: &[u8; 16], slot: u32) -> Option<(u64, HealthRecord)> {
    let seq = decode(b, array, slot)?;
    let finished = get_u64(b, OFF_SCRUB_FINISHED);
    let rebuilt = get_u64(b, OFF_REBUILD_FINISHED);
    Some((
        seq,
        HealthRecord {
            read_errors: get_u64(b, OFF_READ_ERRORS),
            write_errors: get_u64(b, OFF_WRITE_ERRORS),
            checksum_errors: get_u64(b, OFF_CHECKSUM_ERRORS),
            last_scrub: (finished != 0).then(|| ScrubRecord {
                finished_unix_nanos: finished,
                duration_ns: get_u64(b, OFF_SCRUB_DURATION),
                bytes_scanned: get_u64(b, OFF_SCRUB_BYTES),
                bad_chunks: get_u64(b, OFF_SCRUB_BAD),
                chunks_repaired: get_u64(b, OFF_SCRUB_REPAIRED),
                unrecoverable: get_u64(b, OFF_SCRUB_UNRECOVERABLE),
                repair: get_u32(b, OFF_SCRUB_FLAGS) & SCRUB_FLAG_REPAIR != 0,
            }),
            last_rebuild: (rebuilt != 0).then(|| RebuildRecord {
                finished_unix_nanos: rebuilt,
                duration_ns: get_u64(b, OFF_REBUILD_DURATION),
                bytes_scanned: get_u64(b, OFF_REBUILD_SCANNED),
                chunks_rebuilt: get_u64(b, OFF_REBUILD_CHUNKS),
                bytes_rebuilt: get_u64(b, OFF_REBUILD_BYTES),
                unrecoverable: get_u64(b, OFF_REBUILD_UNRECOVERABLE),
                slot: get_u32(b, OFF_REBUILD_SLOT),
                resync: get_u32(b, OFF_REBUILD_FLAGS) & REBUILD_FLAG_RESYNC != 0,
            }),
        },
    ))
}

/// The probe sequence in a health block, if it is intact and names this array and slot.
pub fn decode(b: &[u8], array: &[u8; 16], slot: u32) -> Option<u64> {
    let b = b.get(..HEALTH_BLOCK_BYTES)?;
    (&b[0..OFF_ARRAY] == MAGIC
        && &b[OFF_ARRAY..OFF_SLOT] == array
        && get_u32(b, OFF_SLOT) == slot
        && check_trailing_crc(b).is_ok())
    .then(|| get_u64(b, OFF_SEQUENCE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_identity() {
        let a = [7u8; 16];
        let rec = HealthRecord {
            read_errors: 1,
            write_errors: 2,
            checksum_errors: 3,
            last_scrub: Some(ScrubRecord {
                finished_unix_nanos: 5,
                duration_ns: 6,
                bytes_scanned: 7,
                bad_chunks: 8,
                chunks_repaired: 9,
                unrecoverable: 10,
                repair: true,
            }),
            last_rebuild: Some(RebuildRecord {
                finished_unix_nanos: 11,
                duration_ns: 12,
                bytes_scanned: 13,
                chunks_rebuilt: 14,
                bytes_rebuilt: 15,
                unrecoverable: 16,
                slot: 5,
                resync: true,
            }),
        };
        let b = encode(&a, 3, 42, 1_000, &rec);
        assert_eq!(decode(&b, &a, 3), Some(42));
        assert_eq!(decode_record(&b, &a, 3), Some((42, rec)));
        let plain = encode(&a, 3, 1, 1, &HealthRecord::default());
        assert_eq!(
            decode_record(&plain, &a, 3),
            Some((1, HealthRecord::default()))
        );
        assert_eq!(decode(&b, &a, 4), None);
        assert_eq!(decode(&b, &[8u8; 16], 3), None);
        let mut c = b;
        c[OFF_SEQUENCE] ^= 1;
        assert_eq!(decode(&c, &a, 3), None);
    }
}
