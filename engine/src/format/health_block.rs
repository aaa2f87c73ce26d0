//! The health block (4096 bytes at device offset 8192), written and read back by the
//! monitor's probes (docs/format.md, "Health block").
//!
//! `// { magic | array | slot u32 | reserved u32 | probe_sequence u64 | unix_nanos u64 |
//!      reserved | crc }`

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

/// A health block naming the array, the slot, the probe's sequence number and its time.
pub fn encode(
    array: &[u8; 16],
    slot: u32,
    sequence: u64,
    unix_nanos: u64,
) -> [u8; HEALTH_BLOCK_BYTES] {
    let mut b = [0u8; HEALTH_BLOCK_BYTES];
    b[0..OFF_ARRAY].copy_from_slice(MAGIC);
    b[OFF_ARRAY..OFF_SLOT].copy_from_slice(array);
    put_u32(&mut b, OFF_SLOT, slot);
    put_u64(&mut b, OFF_SEQUENCE, sequence);
    put_u64(&mut b, OFF_UNIX_NANOS, unix_nanos);
    seal_trailing_crc(&mut b);
    b
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
        let b = encode(&a, 3, 42, 1_000);
        assert_eq!(decode(&b, &a, 3), Some(42));
        assert_eq!(decode(&b, &a, 4), None);
        assert_eq!(decode(&b, &[8u8; 16], 3), None);
        let mut c = b;
        c[OFF_SEQUENCE] ^= 1;
        assert_eq!(decode(&c, &a, 3), None);
    }
}
