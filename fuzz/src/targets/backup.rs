//! The backup file format (docs/backup-format.md): header, trailer and the reader of a
//! whole file.

use super::mode;
use ectable_backup::format::{reseal, Header, Manifest, Reader, HEADER_SIZE_BYTES};
use std::path::Path;

/// A header (the first 256 bytes) and a trailer (the next 256), each decoded on its own;
/// in resealed mode with their crcs recomputed.
pub fn header_and_trailer(data: &[u8]) {
    let (seal, body) = mode(data);
    let mut b = body.to_vec();
    b.resize(2 * HEADER_SIZE_BYTES, 0);
    if seal {
        // A header followed by a trailer is a valid image shape for `reseal`.
        reseal(&mut b);
    }
    let (h, t) = b.split_at(HEADER_SIZE_BYTES);
    if let Ok(header) = Header::decode(h.try_into().expect("256 bytes")) {
        assert!(
            header.encode()[..] == *h,
            "a header re-encodes to the bytes it was decoded from"
        );
    }
    if let Ok(m) = Manifest::decode(t.try_into().expect("256 bytes")) {
        assert!(
            m.encode()[..] == *t,
            "a trailer re-encodes to the bytes it was decoded from"
        );
    }
}

/// A whole backup file image through the reader: every record, then the trailer's check.
pub fn file(data: &[u8]) {
    let (seal, body) = mode(data);
    let mut b = body.to_vec();
    if seal {
        reseal(&mut b);
    }
    let Ok(mut r) = Reader::from_bytes(Path::new("fuzz-input"), b) else {
        return;
    };
    // A record takes at least 7 bytes: the reader cannot hand out more records than that.
    let most = r.file_size() / 7 + 1;
    let mut n = 0u64;
    while let Ok(Some(_)) = r.next_entry() {
        n += 1;
        assert!(n <= most, "more records than the file can hold");
    }
}
