//! ectable's fuzz targets and a driver that runs them on stable Rust.
//!
//! A target is a function of arbitrary bytes that must never panic, hang or allocate without
//! bound, whatever the bytes are (docs/fault-model.md, "Fuzzing"). There is one per decoder of
//! bytes ectable reads from a device or a file (superblock, segment header, chunk header, log
//! record, checkpoint, health block, typed key, row and schema record, backup header, trailer
//! and whole backup file) and one each for the command line and the embedding API. Where a
//! decoder accepts its input, the target also checks that encoding the result gives the same
//! bytes back (a decoder that accepts two spellings of one value is a format bug).
//!
//! Most decoders check a crc first, so random bytes rarely get past it: the targets whose
//! structure carries a crc read the first input byte as a mode, and in the "resealed" mode
//! recompute the crc over the rest before decoding, so that a mutation reaches the checks
//! behind the crc.
//!
//! Two drivers call the same functions: `cargo fuzz` (libFuzzer, coverage-guided, nightly;
//! the package in `fuzz/libfuzzer`) and `ecfuzz` ([`driver`]: seeded mutation of the corpus
//! in `fuzz/corpus`, stable Rust; CI runs every target for a few seconds through it).

pub mod driver;
pub mod input;
pub mod seeds;
pub mod targets;

/// One fuzz target.
pub struct Target {
    /// Its name: the libFuzzer target's name and the corpus directory's.
    pub name: &'static str,
    /// What it feeds.
    pub about: &'static str,
    /// Runs one input; panics on a bug.
    pub run: fn(&[u8]),
    /// Valid inputs to start from (the committed corpus is made from these).
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "superblock",
        about: "the superblock decoder",
        run: targets::format::superblock,
        seeds: seeds::superblock,
    },
    Target {
        name: "segment_header",
        about: "the segment header decoder",
        run: targets::format::segment_header,
        seeds: seeds::segment_header,
    },
    Target {
        name: "chunk_header",
        about: "the chunk header decoder",
        run: targets::format::chunk_header,
        seeds: seeds::chunk_header,
    },
    Target {
        name: "log_record",
        about: "the log record decoder (records back to back, as a chunk's payload holds them)",
        run: targets::format::log_record,
        seeds: seeds::log_record,
    },
    Target {
        name: "stripe_records",
        about: "a log stripe's records with values placed on device blocks (format version 3)",
        run: targets::format::stripe_records,
        seeds: seeds::stripe_records,
    },
    Target {
        name: "continued_records",
        about: "a record that continues in the next stripe (format version 5)",
        run: targets::format::continued_records,
        seeds: seeds::continued_records,
    },
    Target {
        name: "journal_entry",
        about: "the sync journal's entry decoder and ring scan",
        run: targets::format::journal_entry,
        seeds: seeds::journal_entry,
    },
    Target {
        name: "checkpoint",
        about: "the index checkpoint decoder (both encodings)",
        run: targets::format::checkpoint,
        seeds: seeds::checkpoint,
    },
    Target {
        name: "health_block",
        about: "the health block decoder",
        run: targets::format::health_block,
        seeds: seeds::health_block,
    },
    Target {
        name: "table_key",
        about: "the typed primary key decoder, for a schema the input picks",
        run: targets::table::key,
        seeds: seeds::table_key,
    },
    Target {
        name: "table_row",
        about: "the typed row decoder",
        run: targets::table::row,
        seeds: seeds::table_row,
    },
    Target {
        name: "schema_record",
        about: "the schema record decoder",
        run: targets::table::schema_record,
        seeds: seeds::schema_record,
    },
    Target {
        name: "backup_header",
        about: "the backup file header and trailer decoders",
        run: targets::backup::header_and_trailer,
        seeds: seeds::backup_header,
    },
    Target {
        name: "backup_file",
        about: "the backup file reader: header, blocks, records, trailer",
        run: targets::backup::file,
        seeds: seeds::backup_file,
    },
    Target {
        name: "cli",
        about: "the ectable and ecbench command lines, import lines, sizes and schema specs",
        run: targets::cli::cli,
        seeds: seeds::cli,
    },
    Target {
        name: "api",
        about: "the embedding API: a sequence of calls on an engine over memory devices, checked against a model",
        run: targets::api::api,
        seeds: seeds::api,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
