//! `ecbench`: a fio-style benchmark of the ectable engine.
//!
//! It runs one workload (sequential or random reads or writes, or a random mix) through the
//! engine's public API and reports bandwidth, IOPS and completion-latency percentiles in fio's
//! layout and with fio's JSON field names. With `--compare-raw` it first measures the same
//! access pattern straight on the raw devices, through the same `IoBackend`, so that every
//! engine figure comes with its ratio to the physical limit measured in the same run
//! (docs/performance.md, "How a result is measured"). EC-specific figures go in a top-level `"ectable"`
//! object of the JSON output.
//!
//! Invariants:
//! - Nothing is written to a device before the command line, the geometry and the devices'
//!   superblocks have been checked; a device of an existing array is never overwritten
//!   without `--force`.
//! - The raw pass destroys device contents, so it runs first, and only when ecbench formats
//!   the devices itself afterwards (`--k/--m`).
//! - Bad input and device errors end with one line `ecbench: error: ...` and a non-zero exit;
//!   nothing a user or a device controls reaches an `unwrap`.
//!
//! This file parses the command line and dispatches to the workloads of
//! `ectable_tools::bench`.

use clap::Parser;
use ectable_tools::bench;
use ectable_tools::bench::args::{BenchArgs, Rw};
use std::io::Write as _;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Sizes take binary suffixes like fio (4K = 4096). --size is the total of all jobs: the bytes to \
write, or the data set to read. Read workloads lay down rows row_key(i) of --bs bytes in table \
'ecbench' first when the array does not hold them, then reopen the array so that reads come from \
the devices. With --runtime only, reads use a data set of 64 MiB and writes go on until the time \
is up or the array is full (every write is a new row, so there is nothing to reclaim: \
--rw overwrite measures the cleaner).

--compare-raw first measures the same pattern on the raw devices through the same I/O engine \
(O_DIRECT, no flushes, like fio direct=1), from --numjobs threads like fio's jobs, each with \
its own queue: sequential = blocks of max(chunk size, bs) with iodepth in flight per job on \
every device; random = bs blocks at 4K-aligned offsets over all devices, iodepth in flight per \
job, over the span the data set takes on each device. Regions of regular files that are still sparse are written once before they are \
measured. The raw pass destroys the devices' contents, so it needs --k/--m: the array is \
formatted after it. Writes are compared with raw bandwidth x k/(k+m), the limit of coded writes.";

#[derive(Parser, Debug)]
#[command(
    name = "ecbench",
    version,
    about = "fio-style benchmark of the ectable engine"
)]
#[command(after_help = AFTER_HELP, args_override_self = true)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

/// The command line, with a job file's options put in front when one is named.
fn command_line() -> Result<Cli, clap::Error> {
    use clap::CommandFactory;
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let probe = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(&argv)
        .ok();
    let job_file = probe.and_then(|m| m.get_one::<std::path::PathBuf>("job_file").cloned());
    let Some(file) = job_file else {
        return Cli::try_parse_from(argv);
    };
    match bench::jobfile::expand(&Cli::command(), &file, &argv) {
        Ok(full) => Cli::try_parse_from(full),
        Err(e) => Err(Cli::command().error(clap::error::ErrorKind::InvalidValue, e)),
    }
}

fn main() -> ExitCode {
    ectable_tools::term::default_sigpipe();
    let cli = match command_line() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
            if matches!(e.kind(), DisplayHelp | DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // clap's message spans several lines (usage, tips): keep its first paragraph.
            let text = e.to_string();
            let para: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let msg = para.join(" ");
            let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
            let _ = writeln!(std::io::stderr(), "ecbench: error: {msg}");
            return ExitCode::from(2);
        }
    };
    // Engine warnings (a slow device, a failed flush) go to stderr, above the progress line.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(ectable_tools::term::LogWriter)
        .with_ansi(ectable_tools::term::log_colours())
        .init();
    let args = &cli.args;
    let result = match args.rw {
        Rw::Overwrite | Rw::Reopen => bench::space::run(args),
        Rw::TablePut | Rw::TableGet | Rw::TableRange | Rw::TableMixed => bench::tables::run(args),
        _ => bench::kv::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "ecbench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
