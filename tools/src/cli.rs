//! The `ectable` command line: its parser ([`Cli`]) and the dispatch to the commands of
//! [`crate::cmd`] ([`run`]). The binary only sets up logging and turns the result into an
//! exit code; the fuzz targets parse command lines through the same [`Cli`].

use crate::backup::cli::{BackupArgs, RestoreArgs, VerifyArgs};
use crate::cmd::{
    bulk, clean, common, demo, docs, examine, format, kv, model, online, rebuild, status, table,
};
use clap::{CommandFactory, Parser, Subcommand};
use ectable_devices::BackendKind;

#[derive(Parser)]
#[command(
    name = "ectable",
    version,
    about = "Operate an ectable array: Reed-Solomon coded table storage over raw devices",
    after_help = "Sizes accept binary suffixes (4K = 4096, 64K, 1M, 2G).\n\
                  Start with `ectable demo` to see the whole story on file-backed devices."
)]
pub struct Cli {
    /// I/O engine: auto (io_uring when available), uring, or psync.
    #[arg(long, global = true, default_value = "auto")]
    pub io_engine: BackendKind,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The I/O deadline: a member that holds a read or write longer is failed and the array
    /// goes on without it (docs/operations.md, "A device that stops answering"); at least
    /// 1s, 0 waits for ever. Also bounds the superblock reads outside the array (`examine`,
    /// a new device's check).
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s",
          env = "ECTABLE_IO_TIMEOUT", value_parser = crate::deadline::io_timeout_arg)]
    pub io_timeout: std::time::Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Format devices as a new array (refuses devices of an existing array without --force).
    Format(format::FormatArgs),
    /// Add a blank device to the array as a hot spare.
    AddSpare(format::AddSpareArgs),
    /// Per-device state, errors, capacity and health (exit 0 healthy, 1 degraded, writes failing or bad chunks the last scrub did not repair or a hot spare missing, 2 lost, 4 unreadable).
    Status(status::StatusArgs),
    /// Which arrays' members are among these devices, and the --devices list of each
    /// (exit 0 when members were found, 1 when none).
    Examine(examine::ExamineArgs),
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
    /// Resume an interrupted rebuild (the device list must include the new device) and
    /// resync the stale members present.
    Rebuild(rebuild::RebuildArgs),
    /// Bring a member that failed back into service once its device works again (also
    /// under a new name: give the device as it is named now) and resync what it missed;
    /// through a running node without downtime.
    Online(online::OnlineArgs),
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
    /// Make the running node on these devices close the array and open it again, after a
    /// failure that stopped its writes has been put right (devices back, room given).
    Reopen(common::DevicesArg),
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
    /// Run a storage node over the array: hold its devices, serve the HTTP API (key/value
    /// and typed tables, administration) and /metrics, run scheduled scrubs and backups;
    /// stops cleanly on SIGTERM. See docs/node.md.
    Serve(Box<crate::node::ServeArgs>),
    /// Availability and durability model: MTTDL (exact Markov chain), loss within a year,
    /// nines, optional Monte Carlo check; for given k, m or for an array (--devices).
    /// See docs/models.md.
    Model(Box<model::ModelArgs>),
    /// The whole story on file-backed devices: format RS(4,2) over 6 files, load, verify,
    /// status; then destroy one device, verify degraded, replace it, rebuild, verify.
    Demo(demo::DemoArgs),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell), e.g.
    /// `ectable completions bash > /etc/bash_completion.d/ectable`.
    Completions(docs::CompletionsArgs),
    /// Print the man page (ectable.1), or with --dir write one per command.
    Man(docs::ManArgs),
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let kind = cli.io_engine;
    crate::deadline::set_io_timeout(Some(cli.io_timeout).filter(|t| !t.is_zero()));
    match cli.command {
        Command::Format(a) => format::run(kind, &a),
        Command::AddSpare(a) => format::add_spare(kind, &a),
        Command::Status(a) => status::run(kind, &a),
        Command::Examine(a) => examine::run(&a),
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
        Command::Online(a) => online::online(kind, &a),
        Command::Scrub(a) => rebuild::scrub(kind, &a),
        Command::Clean(a) => clean::clean(kind, &a),
        Command::Backup(a) => crate::backup::cli::backup(kind, &a),
        Command::BackupClearHorizon(dev) => clean::clear_backup_horizon(kind, &dev),
        Command::Reopen(dev) => crate::cmd::reopen::reopen(&dev),
        Command::BackupVerify(a) => crate::backup::cli::verify(&a),
        Command::Restore(a) => crate::backup::cli::restore(kind, &a),
        Command::Table { cmd } => table::run(kind, cmd),
        Command::Model(a) => model::run(kind, &a),
        Command::Serve(a) => crate::node::serve(kind, &a),
        Command::Demo(a) => demo::run(kind, &a),
        Command::Completions(a) => docs::completions(&a, Cli::command()),
        Command::Man(a) => docs::man(&a, Cli::command()),
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every option and argument of every command says what it does in `--help` (an option
    /// listed with no text leaves the operator guessing).
    #[test]
    fn every_option_of_every_command_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && !arg.is_hide_set() && arg.get_help().is_none() {
                    missing.push(format!("{path} --{}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "ectable", &mut missing);
        use clap::Args;
        let ecbench = crate::bench::args::BenchArgs::augment_args(clap::Command::new("ecbench"));
        walk(&ecbench, "ecbench", &mut missing);
        assert!(missing.is_empty(), "options without help: {missing:?}");
    }
}
