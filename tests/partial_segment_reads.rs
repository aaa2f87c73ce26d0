//! A latent sector error anywhere in a member's segment must cost only the chunks it covers,
//! not the member's whole segment: recovery, scrub and rebuild read a segment member in one
//! request, and one bad range used to fail all of it. With m members missing as well, every
//! stripe of that segment then had k − 1 chunks and the open failed with "data lost",
//! although the bad range lay in a part of the segment nothing had been written to (found
//! by the simulator, seed 2330166: a latent error about 100 KiB past the stripe the log
//! needed).
//!
//! Oracle: after a power cut, with two members left out and bad sectors in the unwritten
//! tail of every device segment of a third, the array opens and every acknowledged row
//! reads back; the bad ranges were read (the fault fired).

mod common;
use common::power_switch::{no_cleaner, session};
use common::*;
use ectable::devices::FaultyDevice;
use ectable::format::DATA_START_BYTES;
use ectable::{format, Engine, EngineOptions};
use std::sync::Arc;

const SIZE: u64 = 16 << 20;

#[test]
fn a_bad_range_in_a_segments_unwritten_tail_costs_no_chunk_before_it() {
    let mems = memory_devices(6, SIZE);
    let opts = fmt_opts(4, 2);
    format(io_of(&wrap(&mems, 1)).as_ref(), &opts).expect("format");
    // Stripes in the first log segment, well short of its end; no checkpoint (no cleaner,
    // and the power is cut instead of a close), so the open replays the log from its start.
    let (e, power) = session(&mems, 2, no_cleaner());
    let mut rows = Rows::new();
    for i in 0..120u64 {
        let key = format!("row{i:04}").into_bytes();
        let value = value_for(i, 71, 2000);
        e.put("t", &key, &value).expect("put");
        rows.insert(key, value);
    }
    e.sync().expect("sync");
    power.cut();
    drop(e);

    // Bad sectors in the last 4 KiB of every device segment of member 3; members 0 and 5
    // left out.
    let faulty: Vec<Arc<FaultyDevice>> = wrap(&mems, 3);
    let seg = opts.segment_size_bytes as u64;
    let segments = (SIZE - DATA_START_BYTES) / seg;
    for i in 1..=segments {
        let end = DATA_START_BYTES + i * seg;
        faulty[3].add_read_error_range(end - 4096..end);
    }
    let e = Engine::open(
        io_subset(&faulty, &[1, 2, 3, 4]),
        EngineOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .expect("open with two members out and bad sectors past the log on a third");
    assert!(
        faulty[3].counters().eio_reads > 0,
        "the bad sectors were never read: the test tests nothing"
    );
    check_rows(&e, "t", &rows, "two members out, bad tail on a third");
}
