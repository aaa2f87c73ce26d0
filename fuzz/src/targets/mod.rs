//! The fuzz targets, by the part of ectable they feed.

pub mod api;
pub mod backup;
pub mod cli;
pub mod format;
pub mod table;

/// Splits off the mode byte: whether to recompute checksums before decoding (see the crate
/// docs), and the bytes to decode.
pub(crate) fn mode(data: &[u8]) -> (bool, &[u8]) {
    match data.split_first() {
        Some((m, rest)) => (m & 1 == 1, rest),
        None => (false, data),
    }
}
