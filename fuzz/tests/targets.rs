//! Every fuzz target, on its committed corpus and then on seeded mutations for a few seconds
//! each (`ECTABLE_FUZZ_SECONDS`, default 3): no input may make a target panic. The long runs
//! are `cargo fuzz` and `ecfuzz run` (docs/fault-model.md, "Fuzzing").

use ectable_fuzz::driver::{corpus, fuzz};
use ectable_fuzz::TARGETS;
use std::path::Path;
use std::time::Duration;

fn corpus_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus"))
}

#[test]
fn every_target_has_a_committed_corpus() {
    for t in TARGETS {
        let d = corpus_dir().join(t.name);
        let n = std::fs::read_dir(&d)
            .map(|r| r.count())
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        assert!(n > 0, "{} is empty", d.display());
    }
}

#[test]
fn no_target_panics_on_its_corpus_or_seeded_mutations() {
    let seconds: u64 = std::env::var("ECTABLE_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut failures = Vec::new();
    for t in TARGETS {
        let inputs = corpus(t, corpus_dir()).expect("the corpus reads");
        let out = fuzz(t, &inputs, 20261203, Duration::from_secs(seconds));
        println!(
            "{:<16} {:>9} execs, slowest {:.1} ms",
            t.name,
            out.execs,
            out.slowest.as_secs_f64() * 1e3
        );
        assert!(
            out.execs as usize > inputs.len(),
            "{}: no mutated input ran",
            t.name
        );
        for c in out.crashes {
            failures.push(format!(
                "{}: {} (input of {} bytes: {:02x?})",
                t.name,
                c.message,
                c.input.len(),
                &c.input[..c.input.len().min(64)]
            ));
        }
    }
    assert!(failures.is_empty(), "crashes:\n{}", failures.join("\n"));
}
