//! `ectable`: the operator CLI.
//!
//! Every command takes the array's devices as `--devices D1,D2,...` (block devices or regular
//! files, in any order: devices are identified by their superblocks). Errors print one line
//! on stderr and exit non-zero; `status` exits like `mdadm --test` (0 healthy, 1 degraded,
//! 2 data unavailable, 4 status unreadable).
//!
//! This file parses the command line and dispatches; each command is a module of
//! `ectable_tools::cmd`.

use clap::{Parser, Subcommand};
use ectable_devices::BackendKind;
use ectable_tools::backup::cli::{BackupArgs, RestoreArgs, VerifyArgs};
use ectable_tools::cmd::{bulk, clean, common, demo, format, kv, model, rebuild, status, table};

#[derive(Parser)]
#[command(
    name = "ectable",
    version,
    about = "Operate an ectable array: Reed-Solomon coded table storage over raw devices",
    after_help = "Sizes accept binary suffixes (4K = 4096, 64K, 1M, 2G).\n\
                  Start with `ectable demo` to see the whole story on file-backed devices."
)]
struct Cli {
    /// I/O engine: auto (io_uring when available), uring, or psync.
    #[arg(long, global = true, default_value = "auto")]
    io_engine: BackendKind,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Format devices as a new array (refuses devices of an existing array without --force).
    Format(format::FormatArgs),
    /// Add a blank device to the array as a hot spare.
    AddSpare(format::AddSpareArgs),
    /// Per-device state, errors, capacity and health (exit 0 healthy, 1 degraded, 2 lost, 4 unreadable).
    Status(status::StatusArgs),
    /// Write one value (durable when the command returns). On a typed table --key is the
    /// JSON object of the primary key and --value the JSON object of the columns; the row is
    /// replaced.
    Put(kv::PutArgs),
    /// Print one value (exit 1 if the key does not exist); on a typed table --key is the JSON
    /// object of the primary key and the row is printed as a JSON line.
    Get(kv::GetArgs),
    /// Delete one key (durable when the command returns); on a typed table --key is the
    /// JSON object of the primary key.
    Delete(kv::DeleteArgs),
    /// List keys and values in key order; rows of a typed table as JSON lines, with --from,
    /// --to and --prefix as JSON objects of (the first columns of) the primary key.
    Scan(kv::ScanArgs),
    /// Bulk-load deterministic rows (batched and pipelined; durable when it exits).
    Load(bulk::LoadArgs),
    /// Read every deterministic row back and compare it exactly (exit 1 naming the first bad row).
    Verify(bulk::LoadArgs),
    /// Import JSON lines {"key": K, "value": V} (strings, or {"$bin": base64}); on a typed
    /// table {"pk": {...}, "cols": {...}}. All or nothing on bad input.
    Import(bulk::FileArgs),
    /// Export a table as JSON lines in key order ("-" for stdout); rows of a typed table as
    /// {"pk": {...}, "cols": {...}}.
    Export(bulk::FileArgs),
    /// Replace a device by a new one and rebuild its data onto it (shows the plan and asks
    /// on a terminal unless --yes).
    Replace(rebuild::ReplaceArgs),
    /// Resume an interrupted rebuild (the device list must include the new device).
    Rebuild(rebuild::RebuildArgs),
    /// Read every live stripe, verify every chunk's checksum and the parity; --repair rewrites bad chunks.
    Scrub(rebuild::ScrubArgs),
    /// Reclaim space now: move the live records out of mostly-dead log segments and free
    /// them (the engine also does this in the background).
    Clean(clean::CleanArgs),
    /// Back up the array to a file: a full backup (every table as of one LSN, taken while
    /// writes go on), an incremental one (--incremental-from: the changes after a previous
    /// backup), or what the hybrid policy chooses (--auto DIR). See docs/operations.md.
    Backup(Box<BackupArgs>),
    /// Stop keeping history for incremental backups: the cleaner may then reclaim what the
    /// backup horizon held; the next backup (--auto included) is a full one.
    BackupClearHorizon(common::DevicesArg),
    /// Check backup files without restoring them: every checksum, each file's completeness,
    /// and the chain (the full backup first, then its incrementals in order).
    BackupVerify(VerifyArgs),
    /// Restore a chain (a full backup and incrementals) onto fresh devices of any geometry,
    /// up to --until-lsn; the chain is checked before anything is written.
    Restore(Box<RestoreArgs>),
    /// Typed tables: create, list, describe, drop (rows: put/get/delete/scan/import/export
    /// with JSON keys and rows).
    Table {
        #[command(subcommand)]
        cmd: table::TableCommand,
    },
    /// Availability and durability model: MTTDL (exact Markov chain), loss within a year,
    /// nines, optional Monte Carlo check; for given k, m or for an array (--devices).
    /// See docs/models.md.
    Model(Box<model::ModelArgs>),
    /// The whole story on file-backed devices: format RS(4,2) over 6 files, load, verify,
    /// status; then destroy one device, verify degraded, replace it, rebuild, verify.
    Demo(demo::DemoArgs),
}

fn main() {
    ectable_tools::term::default_sigpipe();
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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

fn run(cli: Cli) -> anyhow::Result<i32> {
    let kind = cli.io_engine;
    match cli.command {
        Command::Format(a) => format::run(kind, &a),
        Command::AddSpare(a) => format::add_spare(kind, &a),
        Command::Status(a) => status::run(kind, &a),
        Command::Put(a) => kv::put(kind, &a),
        Command::Get(a) => kv::get(kind, &a),
        Command::Delete(a) => kv::delete(kind, &a),
        Command::Scan(a) => kv::scan(kind, &a),
        Command::Load(a) => bulk::load_cmd(kind, &a),
        Command::Verify(a) => bulk::verify_cmd(kind, &a),
        Command::Import(a) => bulk::import(kind, &a),
        Command::Export(a) => bulk::export(kind, &a),
        Command::Replace(a) => rebuild::replace(kind, &a),
        Command::Rebuild(a) => rebuild::rebuild(kind, &a),
        Command::Scrub(a) => rebuild::scrub(kind, &a),
        Command::Clean(a) => clean::clean(kind, &a),
        Command::Backup(a) => ectable_tools::backup::cli::backup(kind, &a),
        Command::BackupClearHorizon(dev) => clean::clear_backup_horizon(kind, &dev),
        Command::BackupVerify(a) => ectable_tools::backup::cli::verify(&a),
        Command::Restore(a) => ectable_tools::backup::cli::restore(kind, &a),
        Command::Table { cmd } => table::run(kind, cmd),
        Command::Model(a) => model::run(kind, &a),
        Command::Demo(a) => demo::run(kind, &a),
    }
}
