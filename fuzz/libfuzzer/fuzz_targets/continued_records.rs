#![no_main]
// The target is `ectable_fuzz::target("continued_records")`; see fuzz/src/lib.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(t) = ectable_fuzz::target("continued_records") {
        (t.run)(data)
    }
});
