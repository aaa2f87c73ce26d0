//! `ectable`: the operator CLI.
//!
//! Every command takes the array's devices as `--devices D1,D2,...` (block devices or regular
//! files, in any order: devices are identified by their superblocks). Errors print one line
//! on stderr and exit with the code of their class (`ectable_tools::exit`, the same for every
//! command: 1 a negative answer, 64 a bad command line, 69 data unavailable, 74 an I/O
//! error, ...); `status` exits like `mdadm --detail --test` (0 healthy, 1 degraded, 2 data
//! unavailable, 4 status unreadable).
//!
//! The command line and the dispatch are `ectable_tools::cli`; each command is a module of
//! `ectable_tools::cmd`.

use clap::Parser;
use ectable_tools::cli::{run, Cli, Command};
use ectable_tools::cmd::common;

fn main() {
    ectable_tools::term::default_sigpipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; a bad command line is a usage
            // error with its own exit code (not clap's 2, which `status` uses for "data
            // unavailable").
            let _ = e.print();
            std::process::exit(if e.use_stderr() {
                ectable_tools::exit::USAGE
            } else {
                ectable_tools::exit::OK
            });
        }
    };
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // stderr, with the progress bars lifted while a line is written; colours only on a
        // terminal (a node's log goes to a file or the journal).
        .with_writer(ectable_tools::term::LogWriter)
        .with_ansi(ectable_tools::term::log_colours())
        .init();
    let is_status = matches!(cli.command, Command::Status { .. });
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ectable: error: {}", common::one_line(&e));
            std::process::exit(common::error_exit_code(&e, is_status));
        }
    }
}
