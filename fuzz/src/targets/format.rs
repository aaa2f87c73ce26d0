//! The decoders of what ectable reads from its devices (docs/format.md): superblock, segment
//! header, chunk header, log records, index checkpoint, health block.

use super::mode;
use ectable_engine::format::checkpoint::{self, ResumePoint};
use ectable_engine::format::log_record::{encode_parts, RecordView, OFF_CRC, OFF_TABLE};
use ectable_engine::format::{
    health_block, seal_trailing_crc, ChunkHeader, SegmentHeader, Superblock,
    CHUNK_HEADER_SIZE_BYTES, SEGMENT_HEADER_SIZE_BYTES, SUPERBLOCK_SIZE_BYTES,
};

/// The input with the trailing crc of its first `size` bytes recomputed, in resealed mode.
fn sealed(data: &[u8], size: usize) -> Vec<u8> {
    let (reseal, body) = mode(data);
    let mut b = body.to_vec();
    if reseal && b.len() >= size {
        seal_trailing_crc(&mut b[..size]);
    }
    b
}

pub fn superblock(data: &[u8]) {
    let b = sealed(data, SUPERBLOCK_SIZE_BYTES);
    if let Ok(sb) = Superblock::decode(&b) {
        assert!(sb.validate().is_ok(), "a decoded superblock validates");
        assert!(
            sb.encode()[..] == b[..SUPERBLOCK_SIZE_BYTES],
            "a superblock re-encodes to the bytes it was decoded from"
        );
    }
}

pub fn segment_header(data: &[u8]) {
    let b = sealed(data, SEGMENT_HEADER_SIZE_BYTES);
    if let Ok(h) = SegmentHeader::decode(&b) {
        assert!(h.validate().is_ok(), "a decoded segment header validates");
        assert!(
            h.encode()[..] == b[..SEGMENT_HEADER_SIZE_BYTES],
            "a segment header re-encodes to the bytes it was decoded from"
        );
    }
}

pub fn chunk_header(data: &[u8]) {
    let b = sealed(data, CHUNK_HEADER_SIZE_BYTES);
    if let Ok(h) = ChunkHeader::decode(&b) {
        assert!(h.validate().is_ok(), "a decoded chunk header validates");
        let mut again = vec![0u8; CHUNK_HEADER_SIZE_BYTES];
        h.encode_into(&mut again);
        assert!(
            again[..] == b[..CHUNK_HEADER_SIZE_BYTES],
            "a chunk header re-encodes to the bytes it was decoded from"
        );
    }
}

/// Records back to back, as a stripe's data holds them: decode one, step over it, go on
/// until one does not decode.
pub fn log_record(data: &[u8]) {
    let (reseal, body) = mode(data);
    let mut b = body.to_vec();
    let mut at = 0;
    while at < b.len() {
        if reseal {
            reseal_record(&mut b[at..]);
        }
        let Ok((view, crc, padded)) = RecordView::decode(&b[at..]) else {
            break;
        };
        let mut again = Vec::new();
        let (crc2, len) = encode_parts(
            view.lsn, view.kind, view.table, view.key, view.value, &mut again,
        );
        assert_eq!(crc, crc2, "a record's crc is the crc its encoding gets");
        assert!(
            again[..len] == b[at..at + len],
            "a log record re-encodes to the bytes it was decoded from"
        );
        assert!(
            padded >= len && padded % 8 == 0 && padded - len < 8,
            "padded length {padded} of a {len}-byte record"
        );
        at += padded;
    }
}

/// A log stripe's data space as format version 3 or 4 lets it hold records (values placed
/// on device blocks; compact records in version 4): `[height / 4096 − 1 | k − 1, bit 7 set
/// for compact records | payload_bytes u32]`, then the data space; the first record's LSN
/// is 3. Every record decoded re-encodes to its bytes, and a placed value lies where the
/// format allows (docs/format.md, "Values on device blocks" and "Compact records").
pub fn stripe_records(data: &[u8]) {
    use ectable_engine::format::log_record::{
        encode_in, placed_header, RecordFormat, StripeRecords,
    };
    use ectable_engine::format::placement::on_blocks_of_one_body;
    const FIRST_LSN: u64 = 3;
    let (reseal, body) = mode(data);
    let Some((head, rest)) = body.split_first_chunk::<6>() else {
        return;
    };
    let h = (1 + head[0] as usize % 16) * 4096;
    let k = 1 + (head[1] & 0x7f) as usize % 4;
    let fmt = if head[1] & 0x80 != 0 {
        RecordFormat::Compact
    } else {
        RecordFormat::Wide
    };
    let payload = u32::from_le_bytes([head[2], head[3], head[4], head[5]]) as usize;
    let body_len = h - CHUNK_HEADER_SIZE_BYTES;
    let mut d = rest.to_vec();
    d.resize(k * body_len, 0);
    if reseal {
        match fmt {
            RecordFormat::Wide => reseal_stripe(&mut d, payload),
            RecordFormat::Compact => reseal_compact(&mut d, payload, FIRST_LSN),
        }
    }
    let mut prev_table: Option<&str> = None;
    for r in StripeRecords::new(fmt, FIRST_LSN, &d, payload, h, true) {
        let Ok(r) = r else { break };
        let v = r.rec;
        let mut again = Vec::new();
        let elided = fmt == RecordFormat::Compact && d[r.offset + 1] == 0;
        assert!(
            !elided || prev_table == Some(v.table),
            "an elided name is the previous one"
        );
        prev_table = Some(v.table);
        let (crc, len) = encode_in(
            fmt, v.lsn, v.kind, v.table, v.key, v.value, elided, &mut again,
        );
        let value_crc = crc32c::crc32c(v.value);
        match r.value_offset {
            None => {
                assert_eq!(crc, r.crc, "an inline record's crc is its encoding's");
                assert!(
                    again[..len] == d[r.offset..r.offset + len],
                    "inline record re-encodes"
                );
            }
            Some(at) => {
                assert!(
                    at >= payload.min(d.len()),
                    "a placed value above the record area"
                );
                assert!(on_blocks_of_one_body(at, v.value.len(), body_len));
                let header = placed_header(fmt, &again[..len], at as u32);
                assert_eq!(crc, r.crc, "a placed record keeps its inline form's crc");
                assert!(
                    header[..] == d[r.offset..r.offset + header.len()],
                    "placed header"
                );
                assert_eq!(r.index_loc(), (at as u32, v.value.len() as u32, value_crc));
            }
        }
    }
}

/// A sync journal entry (and, on the same bytes, the scan of a ring): decode, and a decoded
/// entry re-encodes to its header and records (the zero tail is not checked by the crc).
pub fn journal_entry(data: &[u8]) {
    use ectable_engine::format::journal::{JournalEntry, ENTRY_HEADER_BYTES};
    let (reseal, body) = mode(data);
    let mut b = body.to_vec();
    if reseal && b.len() >= ENTRY_HEADER_BYTES {
        // The crc covers the header before it and the payload its length field declares.
        let p = u32::from_le_bytes([b[48], b[49], b[50], b[51]]) as usize;
        if ENTRY_HEADER_BYTES + p <= b.len() {
            let crc = crc32c::crc32c_append(
                crc32c::crc32c(&b[..60]),
                &b[ENTRY_HEADER_BYTES..ENTRY_HEADER_BYTES + p],
            );
            b[60..64].copy_from_slice(&crc.to_le_bytes());
        }
    }
    use ectable_engine::format::log_record::RecordFormat;
    for fmt in [RecordFormat::Wide, RecordFormat::Compact] {
        if let Ok(e) = JournalEntry::decode(&b, fmt) {
            let again = e.encode();
            let used = ENTRY_HEADER_BYTES + e.payload.len();
            assert!(
                again[..used] == b[..used],
                "a journal entry re-encodes to the bytes it was decoded from"
            );
            assert!(e.first_lsn >= 1 && e.last_lsn >= e.first_lsn);
        }
        for (off, e) in JournalEntry::scan_ring(&b, fmt) {
            assert!(off % 4096 == 0 && off + e.encode().len() <= b.len());
        }
    }
}

/// Recomputes the crc of every record of the record area `[0, payload)` whose declared
/// lengths fit, its value taken where the header says (inline, or at value_offset when kind
/// bit 7 is set).
fn reseal_stripe(d: &mut [u8], payload: usize) {
    let mut at = 0;
    while at + OFF_TABLE <= payload.min(d.len()) {
        let b = &d[at..];
        let value_len = u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize;
        let head = OFF_TABLE + b[14] as usize + u16::from_le_bytes([b[12], b[13]]) as usize;
        let placed = b[15] & 0x80 != 0;
        let vo = u32::from_le_bytes([b[16], b[17], b[18], b[19]]) as usize;
        let (len, value) = if placed {
            (head, vo..vo.saturating_add(value_len))
        } else {
            (head + value_len, at + head..at + head + value_len)
        };
        if at + head > d.len() || value.end > d.len() {
            return;
        }
        // A placed record's crc is over its inline form's header: kind bit 7 and
        // value_offset left out.
        let mut h = [0u8; OFF_CRC];
        h.copy_from_slice(&d[at..at + OFF_CRC]);
        if placed {
            h[15] &= 0x7f;
            h[16..20].fill(0);
        }
        let crc = crc32c::crc32c_append(
            crc32c::crc32c_append(crc32c::crc32c(&h), &d[at + OFF_TABLE..at + head]),
            &d[value],
        );
        d[at + OFF_CRC..at + OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
        at += len.next_multiple_of(8);
    }
}

/// Like [`reseal_stripe`] for compact records: each record's crc over its canonical form
/// (LSN from `first_lsn` on, the table name stored or the previous record's).
fn reseal_compact(d: &mut [u8], payload: usize, first_lsn: u64) {
    let (mut at, mut lsn) = (0usize, first_lsn);
    let mut prev: Option<std::ops::Range<usize>> = None;
    while at + 12 <= payload.min(d.len()) {
        let b = &d[at..];
        let placed = b[0] & 0x80 != 0;
        let header = if placed { 16 } else { 12 };
        let stored = b[1] as usize;
        let key_len = u16::from_le_bytes([b[2], b[3]]) as usize;
        let value_len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
        let table = match (stored, &prev) {
            (0, Some(p)) => p.clone(),
            (0, None) => return,
            (n, _) => at + header..at + header + n,
        };
        let head = header + stored + key_len;
        let value = if placed {
            let vo = u32::from_le_bytes([b[12], b[13], b[14], b[15]]) as usize;
            vo..vo.saturating_add(value_len)
        } else {
            at + head..at + head + value_len
        };
        if at + head > d.len() || value.end > d.len() {
            return;
        }
        let mut canon = lsn.to_le_bytes().to_vec();
        canon.extend_from_slice(&[
            b[0] & 0x7f,
            table.len() as u8,
            b[2],
            b[3],
            b[4],
            b[5],
            b[6],
            b[7],
        ]);
        let mut crc = crc32c::crc32c(&canon);
        for part in [table.clone(), at + header + stored..at + head, value] {
            crc = crc32c::crc32c_append(crc, &d[part]);
        }
        d[at + 8..at + 12].copy_from_slice(&crc.to_le_bytes());
        prev = Some(table);
        lsn += 1;
        at += (if placed { head } else { head + value_len }).next_multiple_of(8);
    }
}

/// Recomputes the crc of the record at the start of `b` when its declared lengths fit.
fn reseal_record(b: &mut [u8]) {
    if b.len() < OFF_TABLE {
        return;
    }
    let value_len = u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize;
    let key_len = u16::from_le_bytes([b[12], b[13]]) as usize;
    let total = OFF_TABLE + b[14] as usize + key_len + value_len;
    if total <= b.len() {
        let crc = crc32c::crc32c_append(crc32c::crc32c(&b[..OFF_CRC]), &b[OFF_TABLE..total]);
        b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

pub fn checkpoint(data: &[u8]) {
    let (reseal, body) = mode(data);
    let mut b = body.to_vec();
    if reseal && b.len() >= 4 {
        seal_trailing_crc(&mut b);
    }
    if let Ok((index, lsn, resume)) = checkpoint::decode(&b) {
        // The current encoding is canonical: encoding what was decoded gives the same bytes.
        if b.starts_with(checkpoint::MAGIC_V2) {
            let again = checkpoint::encode(&index, lsn, resume);
            assert!(
                again.as_deref() == Some(&b[..]),
                "a checkpoint re-encodes to the bytes it was decoded from"
            );
        }
        let _: ResumePoint = resume;
    }
}

/// The array id and slot the health block target's seeds name.
pub const HEALTH_ARRAY: [u8; 16] = [7; 16];
pub const HEALTH_SLOT: u32 = 3;

pub fn health_block(data: &[u8]) {
    let b = sealed(data, health_block::HEALTH_BLOCK_BYTES);
    let _ = health_block::decode(&b, &HEALTH_ARRAY, HEALTH_SLOT);
    if let Some((seq, rec)) = health_block::decode_record(&b, &HEALTH_ARRAY, HEALTH_SLOT) {
        // What decodes re-encodes to a block that decodes the same.
        let again = health_block::encode(&HEALTH_ARRAY, HEALTH_SLOT, seq, 0, &rec);
        assert_eq!(
            health_block::decode_record(&again, &HEALTH_ARRAY, HEALTH_SLOT),
            Some((seq, rec))
        );
    }
    let _ = health_block::decode(&b, &[0; 16], 0);
}

/// Two stripes of a format version 5 log whose first ends with a record that continues in
/// the second (docs/format.md, "Records that continue in the next stripe"): `[k − 1 |
/// height / 4096 − 1 | last_lsn − 1 of the first stripe u8 | tail_bytes u16]`, then the
/// first stripe's data space, then the second's first bytes. The first stripe's records
/// have the LSNs 1 … last_lsn, the last of them continued. Walking both never panics; a
/// continued record that decodes re-encodes to the bytes it was joined from.
pub fn continued_records(data: &[u8]) {
    use ectable_engine::format::chunk_header::FLAG_CONTINUES;
    use ectable_engine::format::log_record::{
        encode_in, RecordFormat, StripeFormat, StripeRecords,
    };
    let (_, body) = mode(data);
    let Some((head, rest)) = body.split_first_chunk::<5>() else {
        return;
    };
    let k = 1 + head[0] as usize % 4;
    let h = (1 + head[1] as usize % 16) * 4096;
    let last_lsn = 1 + head[2] as u64;
    let tail_bytes = u16::from_le_bytes([head[3], head[4]]) as u32;
    let space = k * (h - CHUNK_HEADER_SIZE_BYTES);
    let mut first = rest.to_vec();
    first.resize(space, 0);
    let second = rest.get(space..).unwrap_or_default();
    let header =
        |flags: u16, first_lsn: u64, last_lsn: u64, payload: usize, tail: u32| ChunkHeader {
            array_uuid: [1; 16],
            segment_id: 1,
            write_epoch: 1,
            offset_in_segment_bytes: 4096,
            height_bytes: h as u32,
            ordinal: 0,
            shard_index: 0,
            width: k as u16 + 1,
            data_shards: k as u16,
            flags,
            payload_bytes: payload as u32,
            first_lsn,
            last_lsn,
            present_mask: 0,
            committed_lsn: 0,
            tail_bytes: tail,
            body_crcs: vec![0; k + 1],
        };
    let sf = StripeFormat::of_version(5);
    let first_header = header(FLAG_CONTINUES, 1, last_lsn, space, 0);
    let mut records = StripeRecords::in_stripe(sf, &first_header, &first);
    for r in records.by_ref() {
        if r.is_err() {
            return;
        }
    }
    let Some(held) = records.held() else { return };
    assert_eq!(held.lsn, last_lsn, "the held record is the stripe's last");
    let payload = (tail_bytes as usize).next_multiple_of(8).max(8);
    let next = header(0, last_lsn, last_lsn, payload, tail_bytes);
    let mut tail_data = second.to_vec();
    tail_data.resize(payload.max(tail_data.len()), 0);
    let Some(joined) = held.joined(&next, &tail_data) else {
        return;
    };
    assert_eq!(joined.len(), held.bytes.len() + tail_bytes as usize);
    if let Ok((rec, crc)) = held.decode(RecordFormat::Compact, &joined) {
        let elided = joined[1] == 0;
        let mut again = Vec::new();
        let (crc2, len) = encode_in(
            RecordFormat::Compact,
            rec.lsn,
            rec.kind,
            rec.table,
            rec.key,
            rec.value,
            elided,
            &mut again,
        );
        assert_eq!(crc, crc2, "a continued record's crc is its encoding's");
        assert!(again[..len] == joined[..], "a continued record re-encodes");
    }
}
