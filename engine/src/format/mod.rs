//! On-disk structures, one file per structure. `docs/format.md` is the specification; every
//! encoder here writes fixed-size little-endian byte arrays through named offsets, checks
//! its reserved bytes are zero on read, and validates what it decodes (pair assertions).

pub mod checkpoint;
pub mod chunk_header;
pub mod health_block;
pub mod journal;
pub mod layout;
pub mod log_record;
pub mod placement;
pub mod segment_header;
pub mod superblock;

pub use chunk_header::ChunkHeader;
pub use layout::{Layout, LayoutError};
#[cfg_attr(not(feature = "internals"), allow(unused_imports))]
pub use log_record::LogRecord;
pub use log_record::{RecordKind, StripeRecords};
pub use segment_header::{SegmentHeader, SegmentKind};
pub use superblock::{MemberState, Superblock};

/// Format version of every structure but the superblock (segment headers, checkpoints).
pub const FORMAT_VERSION: u32 = 1;
/// The superblock's format version for arrays that keep a sync journal (docs/format.md,
/// "Version changes"). Version 1 superblocks are still read.
pub const FORMAT_VERSION_JOURNAL: u32 = 2;
/// The superblock's format version for arrays whose log stripes may place values on device
/// blocks (docs/format.md, "Values on device blocks"); `format` writes it.
pub const FORMAT_VERSION_PLACED: u32 = 3;
/// The superblock's format version for arrays whose log records are compact (docs/format.md,
/// "Compact records"); placed values and the sync journal as in version 3.
pub const FORMAT_VERSION_COMPACT: u32 = 4;
/// The superblock's format version for arrays whose log records may continue in the next
/// stripe (docs/format.md, "Records that continue in the next stripe"); otherwise as
/// version 4. `format` writes it.
pub const FORMAT_VERSION_CONTINUED: u32 = 5;
/// The superblock's format version whose flags field has a meaning (docs/format.md, "Values
/// that stay inline"): [`SB_FLAG_INLINE_VALUES`]; otherwise as version 5. `format
/// --inline-values` writes it.
pub const FORMAT_VERSION_INLINE: u32 = 6;
/// Superblock flags bit 0 (version 6): the writer keeps every value inline.
pub const SB_FLAG_INLINE_VALUES: u32 = 1;
/// Reed-Solomon GF(2^8), poly 0x11D, systematic Vandermonde (see `codec`).
pub const CODEC_ID_RS_VANDERMONDE: u32 = 1;
/// Start of the segment area on every device.
pub const DATA_START_BYTES: u64 = 1 << 20;
/// Offsets of the two superblock copies.
pub const SUPERBLOCK_OFFSETS: [u64; 2] = [0, 4096];
/// Bytes of one superblock copy.
pub const SUPERBLOCK_SIZE_BYTES: usize = 4096;
/// Bytes of the segment header at the start of each device segment.
pub const SEGMENT_HEADER_SIZE_BYTES: usize = 4096;
/// Bytes of the header at the start of each chunk (the rest of the chunk is its body).
pub const CHUNK_HEADER_SIZE_BYTES: usize = 512;
/// Upper bound on devices per array and on stripe width.
pub const MAX_DEVICES: usize = 64;
/// The unit of device I/O and of stripe heights, in bytes.
pub const BLOCK_BYTES: usize = 4096;

/// Every structure's magic: 8 ASCII bytes at offset 0.
pub(crate) const MAGIC_BYTES: usize = 8;
pub(crate) const UUID_BYTES: usize = 16;
/// The crc32c ending each fixed-size structure (docs/format.md, "Checksums").
pub(crate) const CRC_BYTES: usize = 4;

const _: () = assert!(SUPERBLOCK_SIZE_BYTES.is_multiple_of(BLOCK_BYTES));
const _: () = assert!(SEGMENT_HEADER_SIZE_BYTES.is_multiple_of(BLOCK_BYTES));
const _: () = assert!(DATA_START_BYTES.is_multiple_of(BLOCK_BYTES as u64));

/// Why a structure failed to decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The first 8 bytes are not the structure's magic (not this structure, or never written).
    #[error("bad magic")]
    Magic,
    /// The crc32c stored in the structure does not match its bytes.
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// The crc32c the structure carries.
        stored: u32,
        /// The crc32c of the bytes read.
        computed: u32,
    },
    /// A format version this build does not read.
    #[error("unsupported format version {0}")]
    Version(u32),
    /// A superblock naming a codec id this build does not have.
    #[error("unsupported codec {0}")]
    Codec(u32),
    /// Bytes the format reserves (must be zero) are not zero.
    #[error("reserved bytes are not zero")]
    Reserved,
    /// The named field holds a value out of range or inconsistent with the others.
    #[error("invalid field: {0}")]
    Field(&'static str),
    /// Fewer bytes than the structure needs.
    #[error("truncated")]
    Truncated,
}

pub(crate) fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn get_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
pub(crate) fn get_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
pub(crate) fn get_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}
pub(crate) fn get_uuid(b: &[u8], off: usize) -> [u8; UUID_BYTES] {
    let mut a = [0u8; UUID_BYTES];
    a.copy_from_slice(&b[off..off + UUID_BYTES]);
    a
}
pub(crate) fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// True when each `(offset, size)` field ends where the next one starts (no gap, no
/// overlap): the `const _: () = assert!(..)` layout checks next to each structure use it.
pub(crate) const fn contiguous(fields: &[(usize, usize)]) -> bool {
    let mut i = 1;
    while i < fields.len() {
        if fields[i - 1].0 + fields[i - 1].1 != fields[i].0 {
            return false;
        }
        i += 1;
    }
    true
}

/// Checks the trailing crc32c of a fixed-size structure whose last `CRC_BYTES` bytes hold
/// the crc of everything before them.
pub(crate) fn check_trailing_crc(b: &[u8]) -> Result<(), DecodeError> {
    let off_crc = b.len() - CRC_BYTES;
    let stored = get_u32(b, off_crc);
    let computed = crc32c::crc32c(&b[..off_crc]);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    Ok(())
}

/// Writes into the last 4 bytes of `b` the crc32c of everything before them (the inverse of
/// the check every decoder makes).
pub fn seal_trailing_crc(b: &mut [u8]) {
    let off_crc = b.len() - CRC_BYTES;
    let crc = crc32c::crc32c(&b[..off_crc]);
    put_u32(b, off_crc, crc);
}

/// Formats a 16-byte uuid in the usual 8-4-4-4-12 hex form.
pub fn uuid_string(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A random version-4 uuid.
pub fn new_uuid() -> [u8; 16] {
    let mut u: [u8; 16] = rand::random();
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// The bytes of a `len`-byte encoding that is zero outside `spans`, each span an offset and
/// hex digits (whitespace ignored). The tests that pin a structure's encoded bytes compare
/// against these; `spans_of` prints an encoding in the same form.
#[cfg(test)]
pub(crate) fn bytes_from_spans(len: usize, spans: &[(usize, &str)]) -> Vec<u8> {
    let mut b = vec![0u8; len];
    for (off, hex) in spans {
        let digits: Vec<u8> = hex.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
        assert_eq!(digits.len() % 2, 0, "odd hex digits at {off}");
        for (i, pair) in digits.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).unwrap();
            b[off + i] = u8::from_str_radix(s, 16).unwrap();
        }
    }
    b
}

/// The non-zero runs of `b` as `(offset, "hex"),` lines (runs closer than 8 zero bytes are
/// merged; 8 bytes per group).
#[cfg(test)]
pub(crate) fn spans_of(b: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == 0 {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1;
        while end < b.len() && b[end..].iter().take(8).any(|&x| x != 0) {
            end += 1;
        }
        let groups: Vec<String> = b[start..end]
            .chunks(8)
            .map(|c| c.iter().map(|x| format!("{x:02x}")).collect())
            .collect();
        out.push_str(&format!("({start}, \"{}\"),\n", groups.join(" ")));
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-at-a-time CRC-32C as docs/format.md ("Checksums") defines it: reflected
    /// polynomial 0x82F63B78, register initialised to all ones, inverted at the end.
    fn reference_crc32c(data: &[u8]) -> u32 {
        let mut reg = 0xFFFF_FFFFu32;
        for &byte in data {
            reg ^= byte as u32;
            for _ in 0..8 {
                reg = if reg & 1 != 0 {
                    (reg >> 1) ^ 0x82F6_3B78
                } else {
                    reg >> 1
                };
            }
        }
        !reg
    }

    #[test]
    fn crc32c_is_the_standard_castagnoli_crc() {
        // The standard check value, through the helpers every fixed-size structure uses.
        let mut b = [0u8; 13];
        b[..9].copy_from_slice(b"123456789");
        seal_trailing_crc(&mut b);
        assert_eq!(get_u32(&b, 9), 0xE306_9283);
        assert_eq!(&b[9..], &0xE306_9283u32.to_le_bytes());
        check_trailing_crc(&b).expect("sealed crc checks");
        b[0] ^= 1;
        assert!(check_trailing_crc(&b).is_err());
        // The `0` passed to crc32c_append is "no bytes yet", not the register value; a crc
        // over two pieces (a log record's) is the crc of their concatenation.
        assert_eq!(crc32c::crc32c_append(0, b"123456789"), 0xE306_9283);
        assert_eq!(
            crc32c::crc32c_append(crc32c::crc32c(b"1234"), b"56789"),
            0xE306_9283
        );
        assert_eq!(reference_crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c::crc32c(&[]), 0);
        // And the helper agrees with the definition on other inputs.
        for len in [1usize, 7, 20, 508, 4092] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let mut sealed = data.clone();
            sealed.extend_from_slice(&[0; 4]);
            seal_trailing_crc(&mut sealed);
            assert_eq!(
                get_u32(&sealed, len),
                reference_crc32c(&data),
                "length {len}"
            );
        }
    }
}
