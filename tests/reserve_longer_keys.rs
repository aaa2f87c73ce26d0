//! The room kept for the next checkpoint is estimated from the newest checkpoint's bytes
//! per key; when the keys then grow longer with no checkpoint in between, the estimate must
//! grow with them, so that the next checkpoint always fits in what was kept.

mod common;
use common::*;
use ectable::{format, CleanerOptions, Engine, EngineOptions};

#[test]
fn the_checkpoint_estimate_follows_longer_keys() {
    let (_mems, faulty) = mem_devices(6, 16 << 20, 3);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    let opts = EngineOptions {
        // No checkpoint but the ones this test asks for.
        cleaner: CleanerOptions {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let e = Engine::open(io.clone(), opts.clone()).unwrap();
    // Short keys in order, which the compact encoding shrinks to a few bytes each.
    for i in 0..20_000u64 {
        e.put("t", format!("s{i:06}").as_bytes(), b"v").unwrap();
    }
    e.checkpoint().unwrap();
    let short = e.status().checkpoint_estimate_bytes;
    // The same number of keys again, 200 bytes each and varied (little to share).
    for i in 0..20_000u64 {
        e.delete("t", format!("s{i:06}").as_bytes()).unwrap();
        let mut k = value_for(i, 9, 200);
        k[0] = b'L';
        e.put("t", &k, b"v").unwrap();
    }
    e.sync().unwrap();
    let estimate = e.status().checkpoint_estimate_bytes;
    assert!(
        estimate > 5 * short,
        "estimate {estimate} after the keys grew (was {short})"
    );
    // What the next checkpoint really takes: no more than the estimate.
    let written_before = e.status().checkpoint_bytes_written;
    e.checkpoint().unwrap();
    let st = e.status();
    let payload = st.checkpoint_bytes_written - written_before;
    assert!(payload > 20_000 * 200, "{payload}");
    assert!(
        payload <= estimate,
        "the checkpoint took {payload} bytes, the reserve kept room for {estimate}"
    );
    // And after a reopen the estimate comes from the checkpoint loaded.
    e.close().unwrap();
    let e = Engine::open(io, opts).unwrap();
    let again = e.status().checkpoint_estimate_bytes;
    assert!(
        again >= payload && again <= estimate + estimate / 4,
        "{again} vs {payload}"
    );
}
