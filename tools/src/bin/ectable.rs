//! `ectable`: the operator CLI.
//!
//! Every command takes the array's devices as `--devices D1,D2,...` (block devices or regular
//! files, in any order: devices are identified by their superblocks). Errors print one line
//! on stderr and exit non-zero; `status` exits like `mdadm --test` (0 healthy, 1 degraded,
//! 2 data unavailable, 4 status unreadable).

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use clap::{Args, Parser, Subcommand};
use ectable_devices::{BackendKind, IoBackend};
use ectable_engine::{format, Engine, EngineOptions, FormatOptions, RebuildOptions, Status};
use ectable_tools::{open_devices, parse_size, row_key, row_value, split_devices};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[path = "../table_cli.rs"]
mod table_cli;

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

#[derive(Args, Clone)]
struct DevicesArg {
    /// The array's devices, comma separated, in any order.
    #[arg(long, value_name = "D1,D2,...")]
    devices: String,
}

#[derive(Args, Clone)]
struct TableArg {
    /// Table name (1..=64 bytes).
    #[arg(long)]
    table: String,
}

#[derive(Args, Clone)]
struct RowsArg {
    #[command(flatten)]
    table: TableArg,
    /// Number of rows (row i has key "row" + i as 12 digits).
    #[arg(long)]
    rows: u64,
    /// Value size in bytes (suffixes allowed).
    #[arg(long, value_parser = size_arg)]
    value_size: u64,
    /// Seed of the values: the same seed gives the same rows.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn size_arg(s: &str) -> std::result::Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

#[derive(Subcommand)]
enum Command {
    /// Format devices as a new array (refuses devices of an existing array without --force).
    Format {
        #[command(flatten)]
        dev: DevicesArg,
        /// Data shards per stripe.
        #[arg(long)]
        k: usize,
        /// Parity shards per stripe (the array survives any m lost devices).
        #[arg(long)]
        m: usize,
        /// Largest chunk (one shard of one stripe), a multiple of 4K.
        #[arg(long, default_value = "64K", value_parser = size_arg)]
        chunk_size: u64,
        /// Segment size per device (unit of allocation); default 8M.
        #[arg(long, value_parser = size_arg)]
        segment_size: Option<u64>,
        /// Hot spares: devices that join the array holding no data, and replace a failed
        /// device (automatically under the automatic recovery policy).
        #[arg(long, value_name = "S1,S2,...")]
        spares: Option<String>,
        /// Create missing regular files of this size.
        #[arg(long, value_parser = size_arg)]
        create_size: Option<u64>,
        /// Overwrite devices that hold another ectable array.
        #[arg(long)]
        force: bool,
        /// Do not ask before overwriting an existing array.
        #[arg(long)]
        yes: bool,
    },
    /// Add a blank device to the array as a hot spare.
    AddSpare {
        #[command(flatten)]
        dev: DevicesArg,
        #[arg(long)]
        spare: PathBuf,
        #[arg(long, value_parser = size_arg)]
        create_size: Option<u64>,
    },
    /// Per-device state, errors, capacity and health (exit 0 healthy, 1 degraded, 2 lost, 4 unreadable).
    Status {
        #[command(flatten)]
        dev: DevicesArg,
        #[arg(long)]
        json: bool,
    },
    /// Write one value (durable when the command returns). On a typed table --key is the
    /// JSON object of the primary key and --value the JSON object of the columns; the row is
    /// replaced.
    Put {
        #[command(flatten)]
        dev: DevicesArg,
        #[command(flatten)]
        table: TableArg,
        #[arg(long)]
        key: String,
        #[arg(long)]
        value: String,
    },
    /// Print one value (exit 1 if the key does not exist); on a typed table --key is the JSON
    /// object of the primary key and the row is printed as a JSON line.
    Get {
        #[command(flatten)]
        dev: DevicesArg,
        #[command(flatten)]
        table: TableArg,
        #[arg(long)]
        key: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete one key (durable when the command returns); on a typed table --key is the
    /// JSON object of the primary key.
    Delete {
        #[command(flatten)]
        dev: DevicesArg,
        #[command(flatten)]
        table: TableArg,
        #[arg(long)]
        key: String,
    },
    /// List keys and values in key order; rows of a typed table as JSON lines, with --from,
    /// --to and --prefix as JSON objects of (the first columns of) the primary key.
    Scan {
        #[command(flatten)]
        dev: DevicesArg,
        #[command(flatten)]
        table: TableArg,
        /// First key (inclusive).
        #[arg(long)]
        from: Option<String>,
        /// Last key (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// Typed tables: only keys starting with these primary-key columns (a JSON object of
        /// the first columns).
        #[arg(long)]
        prefix: Option<String>,
        /// Typed tables: descending key order.
        #[arg(long)]
        reverse: bool,
        #[arg(long, default_value_t = u64::MAX)]
        limit: u64,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Bulk-load deterministic rows (batched and pipelined; durable when it exits).
    Load {
        #[command(flatten)]
        dev: DevicesArg,
        #[command(flatten)]
        rows: RowsArg,
    },
    /// Read every deterministic row back and compare it exactly (exit 1 naming the first bad row).
    Verify {
        #[command(flatten)]
        dev: DevicesArg,
        #[command(flatten)]
        rows: RowsArg,
    },
    /// Import JSON lines {"key": K, "value": V} (strings, or {"$bin": base64}); on a typed
    /// table {"pk": {...}, "cols": {...}}. All or nothing on bad input.
    Import {
        #[command(flatten)]
        dev: DevicesArg,
        #[command(flatten)]
        table: TableArg,
        file: PathBuf,
    },
    /// Export a table as JSON lines in key order ("-" for stdout); rows of a typed table as
    /// {"pk": {...}, "cols": {...}}.
    Export {
        #[command(flatten)]
        dev: DevicesArg,
        #[command(flatten)]
        table: TableArg,
        file: PathBuf,
    },
    /// Replace a device by a new one and rebuild its data onto it (shows the plan and asks
    /// on a terminal unless --yes).
    Replace {
        #[command(flatten)]
        dev: DevicesArg,
        /// The device being replaced (a path; it may be dead or missing).
        #[arg(long)]
        old: String,
        /// The slot the old device held, when it cannot be told from the devices given.
        #[arg(long)]
        old_slot: Option<usize>,
        /// The new device (blank, or any ectable device with --force).
        #[arg(long)]
        new: PathBuf,
        /// Create the new device as a regular file of this size if it does not exist.
        #[arg(long, value_parser = size_arg)]
        create_size: Option<u64>,
        /// Rebuild rate limit in bytes per second read (0: unlimited).
        #[arg(long, default_value = "0", value_parser = size_arg)]
        rate: u64,
        /// Reuse a new device that holds an ectable array.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        yes: bool,
    },
    /// Resume an interrupted rebuild (the device list must include the new device).
    Rebuild {
        #[command(flatten)]
        dev: DevicesArg,
        #[arg(long, default_value = "0", value_parser = size_arg)]
        rate: u64,
    },
    /// Read every live stripe, verify every chunk's checksum and the parity; --repair rewrites bad chunks.
    Scrub {
        #[command(flatten)]
        dev: DevicesArg,
        #[arg(long)]
        repair: bool,
        #[arg(long, default_value = "0", value_parser = size_arg)]
        rate: u64,
        #[arg(long)]
        json: bool,
    },
    /// Reclaim space now: move the live records out of mostly-dead log segments and free
    /// them (the engine also does this in the background).
    Clean {
        #[command(flatten)]
        dev: DevicesArg,
        /// Stop after this many passes (a pass cleans up to 8 segments).
        #[arg(long, default_value_t = 64)]
        max_passes: usize,
        #[arg(long)]
        json: bool,
    },
    /// Back up the array to a file: a full backup (every table as of one LSN, taken while
    /// writes go on), an incremental one (--incremental-from: the changes after a previous
    /// backup), or what the hybrid policy chooses (--auto DIR). See docs/operations.md.
    Backup(Box<ectable_tools::backup::cli::BackupArgs>),
    /// Stop keeping history for incremental backups: the cleaner may then reclaim what the
    /// backup horizon held; the next backup (--auto included) is a full one.
    BackupClearHorizon {
        #[command(flatten)]
        dev: DevicesArg,
    },
    /// Check backup files without restoring them: every checksum, each file's completeness,
    /// and the chain (the full backup first, then its incrementals in order).
    BackupVerify(ectable_tools::backup::cli::VerifyArgs),
    /// Restore a chain (a full backup and incrementals) onto fresh devices of any geometry,
    /// up to --until-lsn; the chain is checked before anything is written.
    Restore(Box<ectable_tools::backup::cli::RestoreArgs>),
    /// Typed tables: create, list, describe, drop (rows: put/get/delete/scan/import/export
    /// with JSON keys and rows).
    Table {
        #[command(subcommand)]
        cmd: table_cli::TableCommand,
    },
    /// Availability and durability model: MTTDL (exact Markov chain), loss within a year,
    /// nines, optional Monte Carlo check; for given k, m or for an array (--devices).
    /// See docs/models.md.
    Model(Box<ModelArgs>),
    /// The whole story on file-backed devices: format RS(4,2) over 6 files, load, verify,
    /// status; then destroy one device, verify degraded, replace it, rebuild, verify.
    Demo {
        /// Directory for the device files (created; old demo files in it are replaced).
        #[arg(long, default_value = "ectable-demo")]
        dir: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        #[arg(long, default_value = "1K", value_parser = size_arg)]
        value_size: u64,
        /// Size of each device file.
        #[arg(long, default_value = "256M", value_parser = size_arg)]
        device_size: u64,
    },
}

/// `ectable model` arguments. Numbers are taken as text and checked by the command itself,
/// so that a bad value (negative, zero, out of range) is a one-line error.
#[derive(Args)]
struct ModelArgs {
    /// Data shards per stripe (k = 1 models (m+1)-way replication).
    #[arg(long, allow_hyphen_values = true)]
    k: Option<String>,
    /// Parity shards per stripe.
    #[arg(long, allow_hyphen_values = true)]
    m: Option<String>,
    /// Devices the stripes are spread over (default k + m; more is declustered).
    #[arg(long, allow_hyphen_values = true)]
    device_count: Option<String>,
    /// Annualised failure rate per device: a percentage (1.5%) or a fraction (0.015).
    #[arg(long, allow_hyphen_values = true, default_value = "1.5%")]
    afr: String,
    /// Mean time to failure per device in hours (instead of --afr).
    #[arg(long, allow_hyphen_values = true)]
    mttf_hours: Option<String>,
    /// Mean time to replace and rebuild one device in a k + m group, hours (suffix d for days).
    #[arg(long, allow_hyphen_values = true)]
    rebuild_hours: Option<String>,
    /// Device capacity (binary suffixes: 16T); bytes rebuilt per failed device.
    #[arg(long, allow_hyphen_values = true)]
    capacity: Option<String>,
    /// Rebuild speed: bytes per second reconstructed onto the new device (200M).
    #[arg(long, allow_hyphen_values = true)]
    rebuild_rate: Option<String>,
    /// Unrecoverable read errors per bit read (1e-15), met by a rebuild with no redundancy left.
    #[arg(long, allow_hyphen_values = true)]
    ure: Option<String>,
    /// Scrub interval in days (latent errors older than a scrub are found and repaired).
    #[arg(long, allow_hyphen_values = true)]
    scrub_days: Option<String>,
    /// Rebuild all failed devices at once (default: one at a time, as ectable does).
    #[arg(long)]
    parallel_repair: bool,
    /// Also run a seeded Monte Carlo simulation.
    #[arg(long)]
    simulate: bool,
    /// Years simulated per trial.
    #[arg(long, allow_hyphen_values = true, default_value = "10")]
    years: String,
    /// Simulation trials.
    #[arg(long, allow_hyphen_values = true, default_value = "1000")]
    trials: String,
    /// Simulation seed.
    #[arg(long, allow_hyphen_values = true, default_value = "1")]
    seed: String,
    /// Read k, m, device count, sizes and live bytes from an array (read-only).
    #[arg(long, value_name = "D1,D2,...")]
    devices: Option<String>,
    #[arg(long)]
    json: bool,
}

fn main() {
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
            eprintln!("ectable: error: {}", one_line(&e));
            let code = if is_status {
                4
            } else if array_changed(&e) {
                EXIT_ARRAY_CHANGED
            } else {
                1
            };
            std::process::exit(code);
        }
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

fn devices(arg: &DevicesArg) -> Result<Vec<PathBuf>> {
    split_devices(&arg.devices)
}

fn open_array(cli_engine: BackendKind, arg: &DevicesArg, read_only: bool) -> Result<Engine> {
    let io = open_devices(&devices(arg)?, None, read_only, cli_engine)?;
    let opts = EngineOptions {
        read_only,
        ..Default::default()
    };
    Engine::open(io, opts).context("opening the array")
}

/// Exit code of a read-only command whose array another process changed under it
/// (`EX_TEMPFAIL` of sysexits.h: try again later).
const EXIT_ARRAY_CHANGED: i32 = 75;

/// Read-only commands start over this many times when the array changes under them.
const READ_ATTEMPTS: usize = 3;

/// Whether the error is the engine's "the array changed under this reader".
fn array_changed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<ectable_engine::Error>(),
            Some(ectable_engine::Error::ArrayChanged { .. })
        )
    })
}

/// Opens the array read-only and runs `read` on it; when another process changed the array
/// under the reader (`Error::ArrayChanged`), opens it again and starts over, up to
/// [`READ_ATTEMPTS`] times. `read` must write its output only once it has read everything.
fn with_reader<T>(
    kind: BackendKind,
    dev: &DevicesArg,
    mut read: impl FnMut(&Arc<Engine>) -> Result<T>,
) -> Result<T> {
    let mut attempt = 1;
    loop {
        let r = open_array(kind, dev, true).and_then(|e| read(&Arc::new(e)));
        match r {
            Err(e) if attempt < READ_ATTEMPTS && array_changed(&e) => attempt += 1,
            r => return r,
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    let kind = cli.io_engine;
    match cli.command {
        Command::Format {
            dev,
            k,
            m,
            chunk_size,
            segment_size,
            spares,
            create_size,
            force,
            yes,
        } => {
            let mut paths = devices(&dev)?;
            let data_count = paths.len();
            if let Some(sp) = &spares {
                paths.extend(split_devices(sp)?);
            }
            if k == 0 || m == 0 {
                bail!("--k and --m must both be at least 1 (got k={k}, m={m})");
            }
            if segment_size == Some(0) {
                // 0 means "the default" to the engine: a user's 0 is a mistake, not a choice.
                bail!(
                    "--segment-size 0: a segment must hold at least one chunk after its 4K header; leave --segment-size out for the default (8M)"
                );
            }
            if data_count < k + m {
                bail!(
                    "RS({k},{m}) needs at least {} devices, {} given",
                    k + m,
                    data_count
                );
            }
            // Files this command creates are removed again if formatting fails, so a bad
            // command line leaves nothing behind.
            let created: Vec<PathBuf> = match create_size {
                Some(_) => paths.iter().filter(|p| !p.exists()).cloned().collect(),
                None => Vec::new(),
            };
            let cleanup = |created: &[PathBuf]| {
                for p in created {
                    let _ = std::fs::remove_file(p);
                }
            };
            let io = match open_devices(&paths, create_size, false, kind) {
                Ok(io) => io,
                Err(e) => {
                    cleanup(&created);
                    return Err(e);
                }
            };
            if force && !yes && std::io::stdin().is_terminal() {
                confirm(&format!(
                    "Format {} device(s), destroying any ectable array on them?",
                    paths.len()
                ))?;
            }
            let opts = FormatOptions {
                data_shards: k,
                parity_shards: m,
                chunk_size_bytes: u32::try_from(chunk_size)
                    .map_err(|_| anyhow!("chunk size too large"))?,
                segment_size_bytes: match segment_size {
                    Some(s) => u32::try_from(s).map_err(|_| anyhow!("segment size too large"))?,
                    None => 0,
                },
                force,
                spare_count: paths.len() - data_count,
            };
            let info = match format(io.as_ref(), &opts) {
                Ok(info) => info,
                Err(e) => {
                    drop(io);
                    cleanup(&created);
                    return Err(e.into());
                }
            };
            println!(
                "formatted array {} : RS({},{}) over {} devices, chunk {} KiB, {} segments of {} MiB per device",
                ectable_engine::format::uuid_string(&info.array_uuid),
                info.data_shards,
                info.parity_shards,
                info.device_count,
                info.chunk_size_bytes / 1024,
                info.segment_count,
                info.segment_size_bytes >> 20
            );
            Ok(0)
        }
        Command::Status { dev, json } => {
            let engine = open_array(kind, &dev, true)?;
            let st = engine.status();
            if json {
                println!("{}", serde_json::to_string_pretty(&status_json(&st))?);
            } else {
                print_status(&st);
            }
            Ok(status_exit_code(&st))
        }
        Command::Put {
            dev,
            table,
            key,
            value,
        } => {
            table_cli::refuse_system_write(&table.table)?;
            let engine = Arc::new(open_array(kind, &dev, false)?);
            let tables = table_cli::open_tables(&engine)?;
            let lsn = match table_cli::typed(&tables, &table.table) {
                Some(schema) => table_cli::put(&tables, &table.table, &schema, &key, &value)?,
                None => engine.put_sync(&table.table, key.as_bytes(), value.as_bytes())?,
            };
            engine.close()?;
            eprintln!("ok (lsn {lsn})");
            Ok(0)
        }
        Command::Get {
            dev,
            table,
            key,
            json,
        } => with_reader(kind, &dev, |engine| {
            let tables = table_cli::open_tables(engine)?;
            if let Some(schema) = table_cli::typed(&tables, &table.table) {
                return table_cli::get(&tables, &table.table, &schema, &key);
            }
            match engine.get(&table.table, key.as_bytes())? {
                Some(v) => {
                    let mut out = std::io::stdout().lock();
                    if json {
                        writeln!(
                            out,
                            "{}",
                            json!({"key": bytes_json(key.as_bytes()), "value": bytes_json(&v)})
                        )?;
                    } else {
                        out.write_all(&v)?;
                        if std::io::stdout().is_terminal() {
                            writeln!(out)?;
                        }
                    }
                    Ok(0)
                }
                None => bail!("key '{}' not found in table '{}'", key, table.table),
            }
        }),
        Command::Delete { dev, table, key } => {
            table_cli::refuse_system_write(&table.table)?;
            let engine = Arc::new(open_array(kind, &dev, false)?);
            let tables = table_cli::open_tables(&engine)?;
            if let Some(schema) = table_cli::typed(&tables, &table.table) {
                table_cli::delete(&tables, &table.table, &schema, &key)?;
                engine.close()?;
                return Ok(0);
            }
            if engine.get(&table.table, key.as_bytes())?.is_none() {
                bail!("key '{}' not found in table '{}'", key, table.table);
            }
            engine.delete(&table.table, key.as_bytes())?;
            engine.sync()?;
            engine.close()?;
            Ok(0)
        }
        Command::Scan {
            dev,
            table,
            from,
            to,
            prefix,
            reverse,
            limit,
            json,
        } => {
            let engine = Arc::new(open_array(kind, &dev, true)?);
            let tables = table_cli::open_tables(&engine)?;
            if let Some(schema) = table_cli::typed(&tables, &table.table) {
                let args = table_cli::ScanArgs {
                    from: from.as_deref(),
                    to: to.as_deref(),
                    prefix: prefix.as_deref(),
                    reverse,
                    limit,
                };
                let mut out = std::io::stdout().lock();
                table_cli::scan(&tables, &table.table, &schema, &args, &mut out)?;
                out.flush()?;
                return Ok(0);
            }
            if prefix.is_some() || reverse {
                bail!(
                    "--prefix and --reverse work on typed tables ('{}' is a key/value table)",
                    table.table
                );
            }
            let lo = from
                .as_deref()
                .map_or(Bound::Unbounded, |f| Bound::Included(f.as_bytes()));
            let hi = to
                .as_deref()
                .map_or(Bound::Unbounded, |t| Bound::Excluded(t.as_bytes()));
            let rows = engine.scan(
                &table.table,
                lo,
                hi,
                usize::try_from(limit).unwrap_or(usize::MAX),
            )?;
            let mut out = std::io::stdout().lock();
            for (k, v) in rows {
                if json {
                    writeln!(
                        out,
                        "{}",
                        json!({"key": bytes_json(&k), "value": bytes_json(&v)})
                    )?;
                } else {
                    writeln!(
                        out,
                        "{}\t{}",
                        String::from_utf8_lossy(&k),
                        String::from_utf8_lossy(&v)
                    )?;
                }
            }
            Ok(0)
        }
        Command::Load { dev, rows } => {
            table_cli::refuse_system_write(&rows.table.table)?;
            let engine = Arc::new(open_array(kind, &dev, false)?);
            if table_cli::typed(&table_cli::open_tables(&engine)?, &rows.table.table).is_some() {
                bail!(
                    "'{}' is a typed table: load writes key/value rows; use import",
                    rows.table.table
                );
            }
            load(&engine, &rows, "load")?;
            engine.close()?;
            Ok(0)
        }
        Command::Verify { dev, rows } => with_reader(kind, &dev, |engine| {
            verify(engine, &rows, "verify")?;
            Ok(0)
        }),
        Command::Import { dev, table, file } => {
            table_cli::refuse_system_write(&table.table)?;
            let engine = Arc::new(open_array(kind, &dev, false)?);
            let tables = table_cli::open_tables(&engine)?;
            if let Some(schema) = table_cli::typed(&tables, &table.table) {
                let n = table_cli::import(&tables, &table.table, &schema, &file)?;
                engine.close()?;
                eprintln!("imported {n} rows into '{}'", table.table);
                return Ok(0);
            }
            let rows = read_jsonl(&file)?;
            // Check every row against the engine's limits before writing any.
            let limit = engine.max_batch_bytes();
            for (i, (k, v)) in rows.iter().enumerate() {
                if k.is_empty() || k.len() > ectable_engine::MAX_KEY_BYTES {
                    bail!(
                        "{}: line {}: key must be 1..={} bytes",
                        file.display(),
                        i + 1,
                        ectable_engine::MAX_KEY_BYTES
                    );
                }
                if 24 + table.table.len() + k.len() + v.len() > limit {
                    bail!(
                        "{}: line {}: value of {} bytes exceeds the limit of this array",
                        file.display(),
                        i + 1,
                        v.len()
                    );
                }
            }
            // Not atomic: on a failure part-way the rows before it stay, and the error says
            // how many (docs/operations.md).
            for (applied, (k, v)) in rows.iter().enumerate() {
                if let Err(e) = engine.put(&table.table, k, v) {
                    let e = table_cli::import_stopped(
                        &engine,
                        applied,
                        rows.len(),
                        &file,
                        &table.table,
                        e.into(),
                    );
                    let _ = engine.close();
                    return Err(e);
                }
            }
            if let Err(e) = engine.sync() {
                let n = rows.len();
                return Err(table_cli::import_stopped(
                    &engine,
                    n,
                    n,
                    &file,
                    &table.table,
                    e.into(),
                ));
            }
            engine.close()?;
            eprintln!("imported {} rows into '{}'", rows.len(), table.table);
            Ok(0)
        }
        Command::Export { dev, table, file } => {
            // Everything is read before anything is written, so that a read that has to start
            // over (the array changed under it) never leaves half an export behind.
            let (text, n) = with_reader(kind, &dev, |engine| {
                let tables = table_cli::open_tables(engine)?;
                let mut text: Vec<u8> = Vec::new();
                if let Some(schema) = table_cli::typed(&tables, &table.table) {
                    let all = table_cli::ScanArgs {
                        from: None,
                        to: None,
                        prefix: None,
                        reverse: false,
                        limit: u64::MAX,
                    };
                    let n = table_cli::scan(&tables, &table.table, &schema, &all, &mut text)?;
                    return Ok((text, n));
                }
                let rows =
                    engine.scan(&table.table, Bound::Unbounded, Bound::Unbounded, usize::MAX)?;
                for (k, v) in &rows {
                    writeln!(
                        text,
                        "{}",
                        json!({"key": bytes_json(k), "value": bytes_json(v)})
                    )?;
                }
                Ok((text, rows.len() as u64))
            })?;
            let mut out: Box<dyn Write> = if file.as_os_str() == "-" {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(std::io::BufWriter::new(
                    std::fs::File::create(&file)
                        .with_context(|| format!("creating {}", file.display()))?,
                ))
            };
            out.write_all(&text)?;
            out.flush()?;
            eprintln!("exported {n} rows from '{}'", table.table);
            Ok(0)
        }
        Command::Replace {
            dev,
            old,
            old_slot,
            new,
            create_size,
            rate,
            force,
            yes,
        } => replace(
            kind,
            &dev,
            &old,
            old_slot,
            &new,
            create_size,
            rate,
            force,
            yes,
        ),
        Command::AddSpare {
            dev,
            spare,
            create_size,
        } => {
            let mut paths = devices(&dev)?;
            if paths.contains(&spare) {
                bail!("{} is already in --devices", spare.display());
            }
            let probe = ectable_devices::FileDevice::open(
                &spare,
                &ectable_devices::OpenOptions {
                    create_size_bytes: create_size,
                    ..Default::default()
                },
            )
            .with_context(|| format!("opening {}", spare.display()))?;
            if let Some(array) = ectable_engine::array::probe_device(&probe)? {
                bail!(
                    "{}: already holds an ectable array ({array})",
                    spare.display()
                );
            }
            drop(probe);
            paths.push(spare.clone());
            let io = open_devices(&paths, None, false, kind)?;
            let engine = Engine::open(io, EngineOptions::default()).context("opening the array")?;
            engine.add_spare(paths.len() - 1)?;
            engine.close()?;
            println!("{} is a hot spare of the array", spare.display());
            Ok(0)
        }
        Command::Rebuild { dev, rate } => {
            let engine = open_array(kind, &dev, false)?;
            let st = engine.status();
            let mut what: Vec<String> = Vec::new();
            if let Some((slot, _)) = engine.rebuild_in_progress() {
                what.push(format!("rebuild of slot {slot}"));
            }
            let mut absent = Vec::new();
            for d in &st.devices {
                if d.state == "STALE" {
                    what.push(format!(
                        "resync of slot {} ({}) from segment {}",
                        d.slot,
                        d.path.as_deref().unwrap_or("-"),
                        d.resync_from.unwrap_or(0)
                    ));
                } else if d.state == "REMOVED" && d.resync_from.is_some() {
                    absent.push(d.slot);
                }
            }
            if what.is_empty() {
                if absent.is_empty() {
                    println!("nothing to rebuild: every member present is in sync");
                    return Ok(0);
                }
                bail!(
                    "nothing to rebuild here: slot(s) {absent:?} missed writes but are not present; give them back in --devices (they are then resynced) or replace them"
                );
            }
            run_rebuild(&engine, &what.join(", "), rate)?;
            engine.close()?;
            Ok(0)
        }
        Command::Scrub {
            dev,
            repair,
            rate,
            json,
        } => {
            let engine = open_array(kind, &dev, !repair)?;
            let bar = ByteProgress::new("scrub");
            let opts = RebuildOptions {
                rate_limit_bytes_per_sec: rate,
                cancel: None,
            };
            let r = engine.scrub(repair, &opts, &mut |p| bar.update(p))?;
            bar.finish();
            let st = engine.status();
            if json {
                let devices: Vec<Value> = st
                    .devices
                    .iter()
                    .map(|d| json!({"slot": d.slot, "path": d.path, "bad_chunks": r.bad_chunks_per_slot[d.slot]}))
                    .collect();
                println!(
                    "{}",
                    json!({
                        "schema_version": 1,
                        "stripes_checked": r.stripes_checked,
                        "bytes_scanned": r.progress.bytes_scanned,
                        "parity_mismatches": r.parity_mismatches,
                        "chunks_repaired": r.chunks_repaired,
                        "bytes_repaired": r.progress.bytes_rebuilt,
                        "unrecoverable": r.progress.unrecoverable,
                        "devices": devices,
                    })
                );
            } else {
                println!(
                    "scrub: {} stripes checked, {} scanned, {} parity mismatches, {} chunks repaired ({}), {} unrecoverable",
                    r.stripes_checked,
                    human(r.progress.bytes_scanned),
                    r.parity_mismatches,
                    r.chunks_repaired,
                    human(r.progress.bytes_rebuilt),
                    r.progress.unrecoverable.len()
                );
                for d in &st.devices {
                    println!(
                        "  slot {:<3} {:<28} {} bad chunk(s)",
                        d.slot,
                        d.path.clone().unwrap_or_else(|| "-".into()),
                        r.bad_chunks_per_slot[d.slot]
                    );
                }
                for u in &r.progress.unrecoverable {
                    println!("  unrecoverable: {u}");
                }
            }
            if repair {
                engine.close()?;
            }
            let bad: u64 = r.bad_chunks_per_slot.iter().sum();
            Ok(if !r.progress.unrecoverable.is_empty() {
                2
            } else if (bad > 0 && !repair) || r.parity_mismatches > 0 {
                1
            } else {
                0
            })
        }
        Command::Clean {
            dev,
            max_passes,
            json,
        } => {
            let engine = open_array(kind, &dev, false)?;
            let before = engine.status();
            let r = engine.clean(max_passes)?;
            let st = engine.status();
            if json {
                println!(
                    "{}",
                    json!({
                        "schema_version": 1,
                        "segments_cleaned": r.segments_cleaned,
                        "segments_freed": r.segments_freed,
                        "records_moved": r.records_relocated,
                        "bytes_moved": r.bytes_relocated,
                        "checkpoint_lsn": r.checkpoint_lsn,
                        "paused_by_rebuild_or_scrub": r.paused,
                        "held_by_backup_horizon": {
                            "horizon_lsn": r.held_by_backup_horizon.horizon_lsn,
                            "segments": r.held_by_backup_horizon.segments,
                            "bytes": r.held_by_backup_horizon.garbage_bytes,
                        },
                        "free_segments_before": before.free_segments,
                        "free_segments": st.free_segments,
                        "total_segments": st.total_segments,
                        "live_bytes": st.live_bytes,
                        "garbage_bytes": st.garbage_bytes,
                    })
                );
            } else {
                println!(
                    "clean: {} segments cleaned, {} freed; {} records moved ({}); free segments {} -> {} of {}; {} live, {} garbage left",
                    r.segments_cleaned,
                    r.segments_freed,
                    r.records_relocated,
                    human(r.bytes_relocated),
                    before.free_segments,
                    st.free_segments,
                    st.total_segments,
                    human(st.live_bytes),
                    human(st.garbage_bytes)
                );
                if r.paused {
                    println!(
                        "  paused: a rebuild or scrub holds the array; run clean again after it"
                    );
                } else if r.segments_cleaned == 0 && r.held_by_backup_horizon.segments == 0 {
                    println!("  nothing worth cleaning: no segment before the one being written holds enough garbage");
                }
                if let Some(held) = r.held_by_backup_horizon.describe() {
                    println!("  held: {held}");
                }
            }
            engine.close()?;
            Ok(0)
        }
        Command::Backup(args) => ectable_tools::backup::cli::backup(kind, &args),
        Command::BackupClearHorizon { dev } => {
            let engine = open_array(kind, &dev, false)?;
            let held = engine.backup_horizon_hold();
            match engine.backup_horizon() {
                None => println!("backup-clear-horizon: no backup horizon is registered"),
                Some(h) => {
                    engine.clear_backup_horizon()?;
                    println!(
                        "backup-clear-horizon: cleared the horizon at LSN {h}; {} segments ({}) of history are the cleaner's again; the next backup is a full one",
                        held.segments,
                        human(held.garbage_bytes)
                    );
                }
            }
            engine.close()?;
            Ok(0)
        }
        Command::BackupVerify(args) => ectable_tools::backup::cli::verify(&args),
        Command::Restore(args) => ectable_tools::backup::cli::restore(kind, &args),
        Command::Table { cmd } => table_cli::run(kind, cmd),
        Command::Model(args) => model_cmd(kind, &args),
        Command::Demo {
            dir,
            rows,
            value_size,
            device_size,
        } => demo(kind, &dir, rows, value_size, device_size),
    }
}

/// Progress of long work in bytes: a bar on a terminal, a plain line per 10% otherwise.
struct ByteProgress {
    bar: Option<ProgressBar>,
    label: &'static str,
    last_decile: std::cell::Cell<u64>,
    start: Instant,
}

impl ByteProgress {
    fn new(label: &'static str) -> ByteProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let pb = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            pb.set_style(style);
            pb.set_message(label);
            pb
        });
        ByteProgress {
            bar,
            label,
            last_decile: std::cell::Cell::new(0),
            start: Instant::now(),
        }
    }

    fn update(&self, p: &ectable_engine::Progress) {
        match &self.bar {
            Some(b) => {
                // The byte total is an estimate (a rebuild reads only k members, and reads
                // back what it wrote); the bar never runs past it and ends full.
                let total = if p.segments_done == p.segments_total && !p.interrupted {
                    p.bytes_scanned
                } else {
                    p.bytes_total.max(p.bytes_scanned)
                };
                b.set_length(total);
                b.set_position(p.bytes_scanned);
            }
            None => {
                // Progress counts segments, which is exact and ends at 100 %.
                let decile = (p.segments_done as u64 * 10)
                    .checked_div(p.segments_total as u64)
                    .unwrap_or(10);
                if decile > self.last_decile.get() {
                    self.last_decile.set(decile);
                    let secs = self.start.elapsed().as_secs_f64().max(1e-3);
                    eprintln!(
                        "{}: {}% ({} of {} segments, {} scanned at {}/s, {} rebuilt)",
                        self.label,
                        decile * 10,
                        p.segments_done,
                        p.segments_total,
                        human(p.bytes_scanned),
                        human((p.bytes_scanned as f64 / secs) as u64),
                        human(p.bytes_rebuilt)
                    );
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn run_rebuild(engine: &Engine, what: &str, rate: u64) -> Result<()> {
    let bar = ByteProgress::new("rebuild");
    let start = Instant::now();
    let p = engine.rebuild(
        &RebuildOptions {
            rate_limit_bytes_per_sec: rate,
            cancel: None,
        },
        &mut |p| bar.update(p),
    )?;
    bar.finish();
    let secs = start.elapsed().as_secs_f64().max(1e-3);
    eprintln!(
        "{what}: {} segments, {} chunks ({}) rebuilt in {:.1} s ({}/s scanned), {} unrecoverable",
        p.segments_done,
        p.chunks_rebuilt,
        human(p.bytes_rebuilt),
        secs,
        human((p.bytes_scanned as f64 / secs) as u64),
        p.unrecoverable.len()
    );
    if !p.unrecoverable.is_empty() {
        for u in p.unrecoverable.iter().take(20) {
            eprintln!("  unrecoverable: {u}");
        }
        bail!(
            "{} stripe(s) with live data could not be rebuilt",
            p.unrecoverable.len()
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn replace(
    kind: BackendKind,
    dev: &DevicesArg,
    old: &str,
    old_slot: Option<usize>,
    new: &Path,
    create_size: Option<u64>,
    rate: u64,
    force: bool,
    yes: bool,
) -> Result<i32> {
    let mut paths = devices(dev)?;
    let created = create_size.is_some() && !new.exists();
    if created {
        ectable_devices::FileDevice::open(
            new,
            &ectable_devices::OpenOptions {
                create_size_bytes: create_size,
                ..Default::default()
            },
        )
        .with_context(|| format!("creating {}", new.display()))?;
    }
    let old_listed = paths.iter().position(|p| p.as_os_str() == old);
    // A hot spare is usually listed with the devices already.
    let new_index = match paths.iter().position(|p| p == new) {
        Some(i) => i,
        None => {
            paths.push(new.to_path_buf());
            paths.len() - 1
        }
    };
    let new_name = new.display().to_string();
    let open = |paths: &[PathBuf]| -> Result<Engine> {
        let io = open_devices(paths, None, false, kind)?;
        Ok(Engine::open(io, EngineOptions::default())?)
    };
    // The new device may be blank, a hot spare of this array, or (with --force) anything.
    let engine = match open(&paths) {
        Ok(e) => e,
        Err(e) => match e.downcast_ref::<ectable_engine::Error>() {
            Some(
                ectable_engine::Error::ForeignDevice { device, .. }
                | ectable_engine::Error::ReplacedDevice { device, .. },
            ) if *device == new_name => {
                if !force {
                    let what = match e.downcast_ref::<ectable_engine::Error>() {
                        Some(ectable_engine::Error::ReplacedDevice { .. }) => {
                            "was replaced out of this array earlier"
                        }
                        _ => "holds another ectable array",
                    };
                    bail!("{new_name}: {what}; use --force to reuse it");
                }
                let dev = ectable_devices::FileDevice::open(new, &Default::default())?;
                ectable_engine::array::wipe_device(&dev)?;
                drop(dev);
                open(&paths).context("opening the array")?
            }
            _ => return Err(e.context("opening the array")),
        },
    };
    if let Some(s) = engine.slot_of_path(&new_name) {
        if engine.status().devices[s].state == "STALE" {
            bail!(
                "{new_name} is a stale member of the array (slot {s}): it missed writes while it was away; resync it in place with 'ectable rebuild' (only what it missed is rewritten)"
            );
        }
        bail!("{new_name} is already a member of the array");
    }
    let slot = match (old_slot, old_listed.and_then(|_| engine.slot_of_path(old))) {
        (Some(s), _) => s,
        (None, Some(s)) => s,
        (None, None) => match engine.lost_slots().as_slice() {
            [s] => *s,
            [] => bail!(
                "{old} is not a member of this array and no device is missing; give --old-slot"
            ),
            many => bail!(
                "cannot tell which slot {old} held ({} are missing: {many:?}); give --old-slot",
                many.len()
            ),
        },
    };
    println!(
        "plan: rebuild slot {slot} (was {old}) onto {}",
        new.display()
    );
    if !yes && std::io::stdin().is_terminal() {
        if let Err(e) = confirm("Proceed?") {
            if created {
                let _ = std::fs::remove_file(new);
            }
            return Err(e);
        }
    }
    engine.replace(slot, new_index)?;
    run_rebuild(&engine, &format!("rebuild of slot {slot}"), rate)?;
    engine.close()?;
    println!("slot {slot} is online on {}", new.display());
    Ok(0)
}

fn confirm(question: &str) -> Result<()> {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        bail!("cancelled; nothing was written")
    }
}

/// A progress bar on a terminal, hidden otherwise.
fn progress(len: u64, msg: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] [{wide_bar}] {pos}/{len} rows {per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_message(msg.to_string());
    pb
}

fn check_rows(rows: &RowsArg) -> Result<usize> {
    let size = usize::try_from(rows.value_size).map_err(|_| anyhow!("value size too large"))?;
    Ok(size)
}

/// The bulk path: puts without waiting, the writer batches and pipelines stripes; one sync
/// at the end makes everything durable.
fn load(engine: &Engine, rows: &RowsArg, label: &str) -> Result<()> {
    let size = check_rows(rows)?;
    let limit = engine.max_batch_bytes();
    if 24 + rows.table.table.len() + 15 + size > limit {
        bail!("--value-size {size} exceeds the largest value this array holds in one stripe ({} bytes)", limit - 24 - rows.table.table.len() - 15);
    }
    let pb = progress(rows.rows, label);
    let start = Instant::now();
    for i in 0..rows.rows {
        engine.put(
            &rows.table.table,
            &row_key(i),
            &row_value(i, rows.seed, size),
        )?;
        if i % 1024 == 0 {
            pb.set_position(i);
        }
    }
    engine.sync()?;
    pb.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let bytes = rows.rows * rows.value_size;
    eprintln!(
        "{label}: {} rows, {:.1} MiB in {:.2} s ({:.1} MiB/s, {:.0} rows/s), durable",
        rows.rows,
        bytes as f64 / 1048576.0,
        secs,
        bytes as f64 / 1048576.0 / secs.max(1e-9),
        rows.rows as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn verify(engine: &Engine, rows: &RowsArg, label: &str) -> Result<()> {
    let size = check_rows(rows)?;
    let pb = progress(rows.rows, label);
    let start = Instant::now();
    let batch = 256u64;
    let mut i = 0;
    while i < rows.rows {
        let n = batch.min(rows.rows - i);
        let keys: Vec<Vec<u8>> = (i..i + n).map(row_key).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        let values = engine
            .get_many(&rows.table.table, &refs)
            .with_context(|| format!("reading rows {i}..{}", i + n))?;
        for (j, v) in values.into_iter().enumerate() {
            let row = i + j as u64;
            let want = row_value(row, rows.seed, size);
            match v {
                None => bail!(
                    "row {row} (key {}) is missing",
                    String::from_utf8_lossy(&keys[j])
                ),
                Some(v) if v != want => {
                    let at = v
                        .iter()
                        .zip(&want)
                        .position(|(a, b)| a != b)
                        .unwrap_or(v.len().min(want.len()));
                    bail!(
                        "row {row} (key {}) differs: {} bytes read, {} expected, first difference at byte {at}",
                        String::from_utf8_lossy(&keys[j]),
                        v.len(),
                        want.len()
                    )
                }
                Some(_) => {}
            }
        }
        i += n;
        pb.set_position(i);
    }
    pb.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{label}: all {} rows match ({:.0} rows/s, {} reads rebuilt from parity)",
        rows.rows,
        rows.rows as f64 / secs.max(1e-9),
        engine.status().degraded_reads
    );
    Ok(())
}

/// Bytes as JSON: a string when they are UTF-8, else {"$bin": base64}.
fn bytes_json(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({"$bin": base64::engine::general_purpose::STANDARD.encode(b)}),
    }
}

fn json_bytes(v: &Value, what: &str) -> std::result::Result<Vec<u8>, String> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Object(o) if o.len() == 1 && o.contains_key("$bin") => match &o["$bin"] {
            Value::String(b) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| format!("{what}: bad base64: {e}")),
            _ => Err(format!("{what}: $bin must be a base64 string")),
        },
        _ => Err(format!("{what} must be a string or {{\"$bin\": base64}}")),
    }
}

fn read_jsonl(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}: reading line {}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| anyhow!("{}: line {}: invalid JSON: {e}", path.display(), i + 1))?;
        let (Some(k), Some(val)) = (v.get("key"), v.get("value")) else {
            bail!(
                "{}: line {}: expected an object with \"key\" and \"value\"",
                path.display(),
                i + 1
            );
        };
        let k =
            json_bytes(k, "key").map_err(|e| anyhow!("{}: line {}: {e}", path.display(), i + 1))?;
        let val = json_bytes(val, "value")
            .map_err(|e| anyhow!("{}: line {}: {e}", path.display(), i + 1))?;
        rows.push((k, val));
    }
    Ok(rows)
}

/// Members not fully in service (missing, failed, stale, rebuilding, slow or erroring):
/// each counts as a lost device for the headline, the redundancy, the durability estimate
/// and the exit code.
fn out_of_service(st: &Status) -> usize {
    st.devices.iter().filter(|d| !d.in_service).count()
}

fn status_exit_code(st: &Status) -> i32 {
    let lost = out_of_service(st);
    if lost > st.parity_shards {
        2
    } else if lost > 0 {
        1
    } else {
        0
    }
}

fn array_state(st: &Status) -> &'static str {
    match status_exit_code(st) {
        0 => "ONLINE",
        1 => "DEGRADED",
        _ => "UNAVAILABLE",
    }
}

fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

fn print_status(st: &Status) {
    let state = array_state(st);
    let lost = out_of_service(st);
    println!("  array: {}", st.array_uuid);
    println!("  state: {state}");
    let n = st.devices.len();
    let status_line = if lost == 0 {
        format!(
            "all {n} devices online and in sync; any {} may fail without losing data.",
            st.parity_shards
        )
    } else {
        let which: Vec<String> = st
            .devices
            .iter()
            .filter(|d| !d.in_service)
            .map(|d| format!("slot {} {}", d.slot, d.state.to_lowercase()))
            .collect();
        if lost <= st.parity_shards {
            format!(
                "{lost} of {n} devices not in service ({}); any {} more may fail without losing data.",
                which.join(", "),
                st.redundancy_left
            )
        } else {
            format!(
                "{lost} of {n} devices not in service ({}): more than m={}; some data is unavailable.",
                which.join(", "),
                st.parity_shards
            )
        }
    };
    println!(" status: {status_line}");
    for action in status_actions(st) {
        println!(" action: {action}");
    }
    println!("durable: {}", status_durability_line(st));
    println!(
        " layout: RS {}+{} (GF(2^8)/0x11d, Vandermonde-systematic), chunk {} KiB, segment {} MiB, io engine {}",
        st.data_shards,
        st.parity_shards,
        st.chunk_size_bytes / 1024,
        st.segment_size_bytes >> 20,
        st.io_engine
    );
    println!(
        "  space: {} usable of {} raw, {} allocated; {} live, {} garbage; {} of {} segments free ({} kept for the cleaner)",
        human(st.usable_capacity_bytes),
        human(st.raw_capacity_bytes),
        human(st.used_bytes),
        human(st.live_bytes),
        human(st.garbage_bytes),
        st.free_segments,
        st.total_segments,
        st.reserved_segments
    );
    if let Some(held) = st.backup_horizon.describe() {
        println!("   held: {held}");
    }
    println!(
        "   data: {} keys in {} table(s); log at LSN {}; index checkpoint at LSN {}",
        st.keys,
        st.tables,
        st.next_lsn.saturating_sub(1),
        st.checkpoint_lsn
    );
    if st.cleaner.passes + st.cleaner.checkpoints > 0 {
        println!(
            "cleaner: {} passes ({} paused by rebuild/scrub), {} segments freed, {} records moved ({}), {} checkpoints",
            st.cleaner.passes,
            st.cleaner.paused_passes,
            st.cleaner.segments_freed,
            st.cleaner.records_relocated,
            human(st.cleaner.bytes_relocated),
            st.cleaner.checkpoints
        );
    }
    println!(
        "   open: {}replayed {} stripes ({} records) from {} segments{}",
        if st.recovery.checkpoint_lsn > 0 {
            format!(
                "index loaded from the checkpoint at LSN {} ({} keys); ",
                st.recovery.checkpoint_lsn, st.recovery.checkpoint_keys
            )
        } else {
            String::new()
        },
        st.recovery.stripes,
        st.recovery.records,
        st.recovery.segments,
        if st.recovery.discarded_segments + st.recovery.discarded_stripes > 0 {
            format!(
                ", discarded an unacknowledged tail of {} stripe(s)",
                st.recovery.discarded_stripes
            )
        } else {
            String::new()
        }
    );
    if let Some((slot, next)) = st.rebuild {
        println!("   scan: rebuild of slot {slot} in progress (resumes at segment {next}); run 'ectable rebuild' to finish it");
    }
    println!("config:\n");
    println!(
        "  {:<4} {:<28} {:<10} {:>5} {:>6} {:>6} {:>10} {:>5}  NOTE",
        "SLOT", "DEVICE", "STATE", "READ", "WRITE", "CKSUM", "SIZE", "USED"
    );
    for d in &st.devices {
        let used = if d.segment_count > 0 {
            format!("{}%", d.used_segments as u64 * 100 / d.segment_count as u64)
        } else {
            "-".into()
        };
        println!(
            "  {:<4} {:<28} {:<10} {:>5} {:>6} {:>6} {:>10} {:>5}  {}",
            d.slot,
            d.path.clone().unwrap_or_else(|| "-".into()),
            d.state,
            d.read_errors,
            d.write_errors,
            d.checksum_errors,
            if d.capacity_bytes > 0 {
                human(d.capacity_bytes)
            } else {
                "-".into()
            },
            used,
            d.note
        );
    }
    for path in &st.spares {
        println!(
            "  {:<4} {:<28} {:<10} {:>5} {:>6} {:>6} {:>10} {:>5}  hot spare",
            "-", path, "SPARE", "-", "-", "-", "-", "-"
        );
    }
    for (path, why) in &st.unrecognised {
        println!(
            "  {:<4} {:<28} {:<10} {:>5} {:>6} {:>6} {:>10} {:>5}  {}",
            "-", path, "UNKNOWN", "-", "-", "-", "-", "-", why
        );
    }
    let errors: u64 = st
        .devices
        .iter()
        .map(|d| d.read_errors + d.write_errors + d.checksum_errors)
        .sum();
    println!();
    let missed: Vec<String> = st
        .devices
        .iter()
        .filter_map(|d| {
            d.resync_from
                .map(|f| format!("slot {} from segment {f}", d.slot))
        })
        .collect();
    if !missed.is_empty() {
        println!(
            "errors: chunks missed while away, not yet resynced: {}",
            missed.join(", ")
        );
    } else if errors == 0 && st.recovery.degraded_stripes == 0 {
        println!("errors: No known data errors");
        if st.recovery.interrupted_stripes > 0 {
            println!(
                "  note: {} stripe(s) of the last write batch miss chunks an interrupted writer (a killed process or a power cut) never wrote; the next writing command, or 'ectable scrub --repair', rewrites them",
                st.recovery.interrupted_stripes
            );
        }
    } else {
        println!(
            "errors: {errors} device error(s); {} stripe(s) were read degraded at open",
            st.recovery.degraded_stripes
        );
    }
}

/// What the operator should do, one line per kind of trouble, naming the command.
fn status_actions(st: &Status) -> Vec<String> {
    let slots = |f: &dyn Fn(&ectable_engine::DeviceStatus) -> bool| -> Vec<usize> {
        st.devices.iter().filter(|d| f(d)).map(|d| d.slot).collect()
    };
    let mut out = Vec::new();
    let gone = slots(&|d| d.state == "REMOVED" || d.state == "FAULTED");
    if !gone.is_empty() {
        out.push(format!(
            "Bring the missing device(s) of slot(s) {gone:?} back (what they missed is then resynced by 'ectable rebuild'), or replace them: 'ectable replace --old <device> --new <device>'."
        ));
    }
    let stale = slots(&|d| d.state == "STALE");
    if !stale.is_empty() {
        out.push(format!(
            "Slot(s) {stale:?} missed writes while away: resync them in place with 'ectable rebuild' (only the segments written since)."
        ));
    }
    if st.devices.iter().any(|d| d.state == "REBUILDING") {
        out.push("A rebuild is unfinished: run 'ectable rebuild' to finish it.".into());
    }
    let slow = slots(&|d| d.state == "DEGRADED");
    if !slow.is_empty() {
        out.push(format!(
            "Slot(s) {slow:?} are slow or suspect: check them, and replace them if it lasts."
        ));
    }
    let erroring = slots(&|d| d.state == "ONLINE" && !d.in_service);
    if !erroring.is_empty() {
        out.push(format!(
            "Slot(s) {erroring:?} returned errors: run 'ectable scrub --repair' and watch them."
        ));
    }
    out
}

fn status_json(st: &Status) -> Value {
    let mut checks = Vec::new();
    for d in &st.devices {
        if d.state == "FAULTED" || d.state == "REMOVED" {
            checks.push(json!({"code": "DEVICE_FAULTED", "severity": "warn",
                "message": format!("slot {} ({}) is {}", d.slot, d.path.clone().unwrap_or_default(), d.state)}));
        }
        if d.state == "STALE" {
            checks.push(json!({"code": "DEVICE_STALE", "severity": "warn",
                "message": format!("slot {} ({}) missed writes from segment {} on; run 'ectable rebuild'", d.slot, d.path.clone().unwrap_or_default(), d.resync_from.unwrap_or(0))}));
        }
        if d.checksum_errors > 0 {
            checks.push(json!({"code": "CHECKSUM_ERRORS", "severity": "warn",
                "message": format!("slot {} has {} checksum errors", d.slot, d.checksum_errors)}));
        }
    }
    json!({
        "schema_version": 1,
        "array_uuid": st.array_uuid,
        "state": array_state(st),
        "epoch": st.epoch,
        "layout": {
            "data_shards": st.data_shards,
            "parity_shards": st.parity_shards,
            "stripe_unit_bytes": st.chunk_size_bytes,
            "segment_size_bytes": st.segment_size_bytes,
            "codec": "rs-gf256-0x11d-vandermonde",
        },
        "redundancy_left": st.redundancy_left,
        "actions": status_actions(st),
        "durability_estimate": status_durability_json(st),
        "capacity": {
            "raw_bytes": st.raw_capacity_bytes,
            "usable_bytes": st.usable_capacity_bytes,
            "allocated_bytes": st.used_bytes,
            "live_bytes": st.live_bytes,
            "garbage_bytes": st.garbage_bytes,
            "free_segments": st.free_segments,
            "total_segments": st.total_segments,
            "reserved_segments": st.reserved_segments,
            "backup_horizon_lsn": st.backup_horizon.horizon_lsn,
            "held_by_backup_horizon_segments": st.backup_horizon.segments,
            "held_by_backup_horizon_bytes": st.backup_horizon.garbage_bytes,
        },
        "checkpoint_lsn": st.checkpoint_lsn,
        "cleaner": {
            "passes": st.cleaner.passes,
            "paused_passes": st.cleaner.paused_passes,
            "segments_cleaned": st.cleaner.segments_cleaned,
            "segments_freed": st.cleaner.segments_freed,
            "records_moved": st.cleaner.records_relocated,
            "bytes_moved": st.cleaner.bytes_relocated,
            "checkpoints": st.cleaner.checkpoints,
        },
        "keys": st.keys,
        "tables": st.tables,
        "lsn": st.next_lsn.saturating_sub(1),
        "io_engine": st.io_engine,
        "scan": st.rebuild.map(|(slot, next)| json!({"kind": "rebuild", "state": "interrupted", "slot": slot, "next_segment_id": next})),
        "read_repairs": st.read_repairs,
        "degraded_reads": st.degraded_reads,
        "recovery": {
            "segments": st.recovery.segments,
            "stripes": st.recovery.stripes,
            "records": st.recovery.records,
            "degraded_stripes": st.recovery.degraded_stripes,
            "interrupted_stripes": st.recovery.interrupted_stripes,
            "discarded_stripes": st.recovery.discarded_stripes,
            "checkpoint_lsn": st.recovery.checkpoint_lsn,
            "checkpoint_keys": st.recovery.checkpoint_keys,
            "bytes_read": st.recovery.bytes_read,
        },
        "devices": st.devices.iter().map(|d| json!({
            "slot": d.slot,
            "path": d.path,
            "uuid": d.device_uuid,
            "state": d.state,
            "in_service": d.in_service,
            "resync_from_segment": d.resync_from,
            "note": d.note,
            "errors": {"read": d.read_errors, "write": d.write_errors, "checksum": d.checksum_errors},
            "size_bytes": d.capacity_bytes,
            "used_segments": d.used_segments,
            "segment_count": d.segment_count,
        })).collect::<Vec<_>>(),
        "spares": st.spares,
        "unrecognised": st.unrecognised.iter().map(|(p, w)| json!({"path": p, "reason": w})).collect::<Vec<_>>(),
        "checks": checks,
    })
}

fn demo(
    kind: BackendKind,
    dir: &Path,
    rows: u64,
    value_size: u64,
    device_size: u64,
) -> Result<i32> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let paths: Vec<PathBuf> = (0..6).map(|i| dir.join(format!("dev{i}.img"))).collect();
    for p in paths
        .iter()
        .chain(std::iter::once(&dir.join("dev3-new.img")))
    {
        if p.exists() {
            std::fs::remove_file(p).with_context(|| format!("removing old {}", p.display()))?;
        }
    }
    let list = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    println!(
        "== ectable demo: RS(4,2) over 6 file-backed devices in {}\n",
        dir.display()
    );
    println!(
        "$ ectable format --devices {list} --k 4 --m 2 --create-size {}M",
        device_size >> 20
    );
    let io: Arc<dyn IoBackend> = open_devices(&paths, Some(device_size), false, kind)?;
    let info = format(io.as_ref(), &FormatOptions::default())?;
    println!(
        "formatted array {}: {} segments of {} MiB per device\n",
        ectable_engine::format::uuid_string(&info.array_uuid),
        info.segment_count,
        info.segment_size_bytes >> 20
    );
    let dev = DevicesArg {
        devices: list.clone(),
    };
    let rows_arg = RowsArg {
        table: TableArg {
            table: "demo".into(),
        },
        rows,
        value_size,
        seed: 42,
    };
    {
        println!("$ ectable load --devices ... --table demo --rows {rows} --value-size {value_size} --seed 42");
        let engine = Engine::open(io, EngineOptions::default())?;
        load(&engine, &rows_arg, "load")?;
        engine.close()?;
    }
    println!("\n$ ectable verify --devices ... --table demo --rows {rows} --value-size {value_size} --seed 42");
    let engine = open_array(kind, &dev, true)?;
    verify(&engine, &rows_arg, "verify")?;
    println!("\n$ ectable status --devices ...");
    print_status(&engine.status());
    drop(engine);

    // A device dies: its file is gone.
    let dead = paths[3].clone();
    println!("\n== a device dies: {} is deleted", dead.display());
    std::fs::remove_file(&dead).with_context(|| format!("removing {}", dead.display()))?;
    let survivors: Vec<PathBuf> = paths.iter().filter(|p| **p != dead).cloned().collect();
    let survivors_list = survivors
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let degraded = DevicesArg {
        devices: survivors_list.clone(),
    };
    println!("\n$ ectable status --devices (the five left)");
    let engine = open_array(kind, &degraded, true)?;
    print_status(&engine.status());
    println!("\n$ ectable verify ... (degraded: rows on the lost device are rebuilt from parity)");
    verify(&engine, &rows_arg, "verify")?;
    drop(engine);

    let new = dir.join("dev3-new.img");
    if new.exists() {
        std::fs::remove_file(&new)?;
    }
    println!(
        "\n$ ectable replace --devices (the five left) --old {} --new {} --create-size {}M",
        dead.display(),
        new.display(),
        device_size >> 20
    );
    replace(
        kind,
        &degraded,
        &dead.display().to_string(),
        None,
        &new,
        Some(device_size),
        0,
        false,
        true,
    )?;
    let mut healed = survivors.clone();
    healed.insert(3, new.clone());
    let healed_list = healed
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let healed_dev = DevicesArg {
        devices: healed_list,
    };
    println!("\n$ ectable verify --devices (five old + the new one)");
    let engine = open_array(kind, &healed_dev, true)?;
    verify(&engine, &rows_arg, "verify")?;
    println!("\n$ ectable status --devices ...");
    print_status(&engine.status());
    println!(
        "\nThe device files stay in {} (dev3-new.img replaced dev3.img) for you to try the other commands on.",
        dir.display()
    );
    Ok(0)
}

// ---------------------------------------------------------------------------------------
// `ectable model` and the durability line of `ectable status` (formulas in docs/models.md).
// ---------------------------------------------------------------------------------------

/// Rebuild speed assumed when an array is modelled without --rebuild-rate: the engine does
/// not record a measured rebuild rate yet.
const DEFAULT_REBUILD_RATE: u64 = 100 << 20;
/// `ectable status` assumptions: AFR per device and hours to replace and rebuild a device.
const STATUS_AFR: f64 = 0.02;
const STATUS_REBUILD_HOURS: f64 = 24.0;

fn parse_count(name: &str, s: &str) -> Result<usize> {
    let v: i64 = s
        .trim()
        .parse()
        .map_err(|_| anyhow!("{name} must be a whole number (got '{s}')"))?;
    if v < 0 {
        bail!("{name} must not be negative (got {v})");
    }
    usize::try_from(v).map_err(|_| anyhow!("{name} is too large (got {v})"))
}

fn parse_number(name: &str, s: &str) -> Result<f64> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| anyhow!("{name} must be a number (got '{s}')"))?;
    if !v.is_finite() {
        bail!("{name} must be a finite number (got '{s}')");
    }
    Ok(v)
}

/// "1.5%" → 0.015; "0.015" → 0.015.
fn parse_fraction(name: &str, s: &str) -> Result<f64> {
    let t = s.trim();
    match t.strip_suffix('%') {
        Some(p) => Ok(parse_number(name, p)? / 100.0),
        None => parse_number(name, t),
    }
}

/// Hours: "24", "24h", "2d". Negative and zero are errors.
fn parse_hours(name: &str, s: &str) -> Result<f64> {
    let t = s.trim();
    let (num, mult) = if let Some(d) = t.strip_suffix('d') {
        (d, 24.0)
    } else if let Some(h) = t.strip_suffix('h') {
        (h, 1.0)
    } else {
        (t, 1.0)
    };
    let v = parse_number(name, num)? * mult;
    if v < 0.0 {
        bail!("{name} must not be negative (got {s})");
    }
    if v == 0.0 {
        bail!("{name} must be greater than zero (got {s})");
    }
    Ok(v)
}

fn parse_positive_size(name: &str, s: &str) -> Result<u64> {
    if s.trim().starts_with('-') {
        bail!("{name} must not be negative (got {s})");
    }
    let v = parse_size(s).with_context(|| name.to_string())?;
    if v == 0 {
        bail!("{name} must be greater than zero");
    }
    Ok(v)
}

/// What `model` knows about an array opened with --devices.
struct ArrayFacts {
    k: usize,
    m: usize,
    devices: usize,
    start_failed: usize,
    lost: usize,
    capacity_bytes: u64,
    live_bytes_per_device: u64,
}

fn lost_devices(st: &Status) -> usize {
    out_of_service(st)
}

fn array_facts(st: &Status) -> ArrayFacts {
    let lost = lost_devices(st);
    ArrayFacts {
        k: st.data_shards,
        m: st.parity_shards,
        devices: st.devices.len(),
        start_failed: st
            .parity_shards
            .saturating_sub(st.redundancy_left)
            .max(lost.min(st.parity_shards)),
        lost,
        capacity_bytes: st
            .devices
            .iter()
            .map(|d| d.capacity_bytes)
            .max()
            .unwrap_or(0),
        live_bytes_per_device: st
            .devices
            .iter()
            .map(|d| d.used_segments as u64 * st.segment_size_bytes as u64)
            .max()
            .unwrap_or(0),
    }
}

fn sci(x: f64) -> String {
    if x.is_infinite() {
        "inf".into()
    } else if x == 0.0 {
        "0".into()
    } else if (0.01..1e6).contains(&x.abs()) {
        format!("{x:.3}")
    } else {
        format!("{x:.3e}")
    }
}

fn nines_text(n: f64) -> String {
    if n.is_infinite() {
        "inf".into()
    } else {
        format!("{n:.2}")
    }
}

fn scenario_json(name: &str, e: &ectable_tools::models::DurabilityEstimate) -> Value {
    json!({
        "name": name,
        "start_failed": e.start_failed,
        "rebuild_hours_effective": e.effective_rebuild_hours,
        "mttdl_hours": e.mttdl_hours,
        "mttdl_years": e.mttdl_years,
        "expected_years_to_first_loss": e.mttdl_years,
        "mttdl_approx_years": e.mttdl_approx_years,
        "loss_probability_1y": e.loss_probability_1y,
        "durability_nines_1y": e.durability_nines_1y,
        "device_availability": e.device_availability,
        "availability": e.availability,
        "availability_nines": e.availability_nines,
    })
}

fn model_cmd(kind: BackendKind, a: &ModelArgs) -> Result<i32> {
    use ectable_tools::models::{self, DurabilityParams, RepairModel, SimParams};

    let facts = match &a.devices {
        Some(list) => {
            if a.k.is_some() || a.m.is_some() || a.device_count.is_some() {
                bail!("give either --devices or --k/--m/--device-count, not both");
            }
            let dev = DevicesArg {
                devices: list.clone(),
            };
            let engine = open_array(kind, &dev, true)?;
            Some(array_facts(&engine.status()))
        }
        None => None,
    };
    let (k, m, n) = match &facts {
        Some(f) => (f.k, f.m, f.devices),
        None => {
            let k = parse_count(
                "--k",
                a.k.as_deref()
                    .ok_or_else(|| anyhow!("--k is required (or --devices)"))?,
            )?;
            let m = parse_count(
                "--m",
                a.m.as_deref()
                    .ok_or_else(|| anyhow!("--m is required (or --devices)"))?,
            )?;
            let n = match &a.device_count {
                Some(s) => parse_count("--device-count", s)?,
                None => k + m,
            };
            (k, m, n)
        }
    };
    if k == 0 {
        bail!("--k must be at least 1 (got 0)");
    }
    if n < k + m {
        bail!(
            "RS({k},{m}) needs at least {} devices (--device-count {n})",
            k + m
        );
    }
    let (lambda, afr_text) = match &a.mttf_hours {
        Some(s) => {
            let mttf = parse_hours("--mttf-hours", s)?;
            (models::mttf_to_rate(mttf)?, format!("MTTF {mttf} h"))
        }
        None => {
            let afr = parse_fraction("--afr", &a.afr)?;
            if afr < 0.0 {
                bail!("--afr must not be negative (got {})", a.afr);
            }
            if afr >= 1.0 {
                bail!(
                    "--afr must be below 100% (got {}; write 1.5% or 0.015)",
                    a.afr
                );
            }
            (
                models::afr_to_rate(afr)?,
                format!("AFR {:.3}%", afr * 100.0),
            )
        }
    };
    let capacity = match &a.capacity {
        Some(s) => Some(parse_positive_size("--capacity", s)?),
        None => facts.as_ref().map(|f| f.capacity_bytes).filter(|&c| c > 0),
    };
    let rate = match &a.rebuild_rate {
        Some(s) => Some(parse_positive_size("--rebuild-rate", s)?),
        None => None,
    };
    let given_hours = match &a.rebuild_hours {
        Some(s) => Some(parse_hours("--rebuild-hours", s)?),
        None => None,
    };
    let mut notes: Vec<String> = Vec::new();
    // Scenarios: (name, bytes rebuilt per device, start state).
    let mut scenarios: Vec<(&str, Option<u64>, usize)> = Vec::new();
    match &facts {
        Some(f) => {
            scenarios.push(("now", Some(f.live_bytes_per_device), f.start_failed));
            scenarios.push(("full", capacity, 0));
            if f.lost > m {
                notes.push(format!(
                    "{} devices are lost, more than m={m}: data is unavailable now",
                    f.lost
                ));
            }
        }
        None => scenarios.push(("model", capacity, 0)),
    }
    let rate_used = match (rate, &facts, given_hours) {
        (Some(r), _, _) => Some(r),
        (None, Some(_), None) => {
            notes.push(format!(
                "rebuild rate {}/s assumed (default): the array does not record a measured \
                 rebuild rate yet; give --rebuild-rate to change it",
                human(DEFAULT_REBUILD_RATE)
            ));
            Some(DEFAULT_REBUILD_RATE)
        }
        _ => rate,
    };
    if given_hours.is_none() && rate_used.is_some() {
        notes.push(
            "rebuild time = bytes / rate only (at least one minute); add detection and \
             replacement delays with --rebuild-hours"
                .into(),
        );
    }
    let ure = match &a.ure {
        Some(s) => {
            let u = parse_number("--ure", s)?;
            if !(0.0..1.0).contains(&u) {
                bail!("--ure must be a rate per bit in [0, 1) (got {s})");
            }
            Some(u)
        }
        None => None,
    };
    let scrub_hours = match &a.scrub_days {
        Some(s) => Some(parse_number("--scrub-days", s)?)
            .map(|d| {
                if d <= 0.0 {
                    bail!("--scrub-days must be greater than zero (got {s})");
                }
                Ok(d * 24.0)
            })
            .transpose()?,
        None => None,
    };
    if scrub_hours.is_some() && ure.is_none() {
        bail!("--scrub-days needs --ure (the scrub interval scales the latent error rate)");
    }
    let ure_eff = match ure {
        Some(u) => Some(models::scrub_effective_ure(u, scrub_hours)?),
        None => None,
    };
    let repair = if a.parallel_repair {
        RepairModel::Parallel
    } else {
        RepairModel::Serial
    };

    let mut rows = Vec::new();
    let mut rows_json = Vec::new();
    let mut first_params: Option<DurabilityParams> = None;
    for (name, bytes, start) in &scenarios {
        let rebuild_hours = match (given_hours, bytes, rate_used) {
            (Some(h), _, _) => h,
            (None, Some(b), Some(r)) => {
                // A device's rebuild in a k + m group; declustering is applied by the model.
                // An empty array rebuilds in the time of one segment at least (one minute).
                (*b as f64 / r as f64 / 3600.0).max(1.0 / 60.0)
            }
            (None, None, Some(_)) if facts.is_some() => continue,
            _ => bail!("give --rebuild-hours, or --capacity and --rebuild-rate (the rebuild time)"),
        };
        let p_ure = match (ure_eff, bytes) {
            (Some(u), Some(b)) => models::ure_probability(u, k as f64 * *b as f64)?,
            (Some(_), None) => bail!("--ure needs --capacity (the bytes a rebuild reads)"),
            (None, _) => 0.0,
        };
        let params = DurabilityParams {
            k,
            m,
            devices: n,
            failure_rate_per_hour: lambda,
            rebuild_hours,
            critical_rebuild_loss_probability: p_ure,
            repair,
        };
        let e = models::estimate(&params, *start)?;
        let mut j = scenario_json(name, &e);
        j["rebuild_hours"] = json!(rebuild_hours);
        j["rebuild_bytes_per_device"] = json!(bytes);
        j["p_ure_critical_rebuild"] = json!(p_ure);
        rows_json.push(j);
        rows.push((name.to_string(), rebuild_hours, p_ure, e));
        if first_params.is_none() {
            first_params = Some(params);
        }
    }
    let Some(params) = first_params else {
        bail!("nothing to model: give --rebuild-hours or --capacity and --rebuild-rate");
    };

    let sim = if a.simulate {
        let years = parse_number("--years", &a.years)?;
        if years <= 0.0 {
            bail!("--years must be greater than zero (got {})", a.years);
        }
        let trials = parse_count("--trials", &a.trials)? as u64;
        if trials == 0 {
            bail!("--trials must be at least 1");
        }
        let seed = parse_count("--seed", &a.seed)? as u64;
        let sp = SimParams {
            durability: params.clone(),
            years,
            trials,
            seed,
        };
        let r = models::simulate(&sp)?;
        let analytic_rate = models::HOURS_PER_YEAR / models::mttdl_hours(&params, 0)?;
        let analytic_p = models::loss_probability(&params, 0, years * models::HOURS_PER_YEAR)?;
        Some((r, analytic_rate, analytic_p, years, trials, seed))
    } else {
        None
    };

    let repair_text = match repair {
        RepairModel::Serial => "serial repair (one device at a time, as ectable rebuilds)",
        RepairModel::Parallel => "parallel repair (all failed devices at once)",
    };
    if a.json {
        let out = json!({
            "schema_version": 1,
            "k": k,
            "m": m,
            "devices": n,
            "inputs": {
                "failure": afr_text,
                "failure_rate_per_hour": lambda,
                "mttf_hours": 1.0 / lambda,
                "repair": match repair { RepairModel::Serial => "serial", RepairModel::Parallel => "parallel" },
                "rebuild_hours_given": given_hours,
                "rebuild_rate_bytes_per_sec": rate_used,
                "capacity_bytes": capacity,
                "ure_per_bit": ure,
                "ure_effective_per_bit": ure_eff,
                "scrub_days": scrub_hours.map(|h| h / 24.0),
            },
            "scenarios": rows_json,
            "simulation": sim.as_ref().map(|(r, rate, p, years, trials, seed)| json!({
                "years": years,
                "trials": trials,
                "seed": seed,
                "array_years": r.array_years,
                "device_failures": r.device_failures,
                "rebuilds": r.rebuilds,
                "losses": r.losses,
                "ure_losses": r.ure_losses,
                "losses_per_year": r.losses_per_year,
                "losses_per_year_ci95": [r.losses_per_year_ci95.0, r.losses_per_year_ci95.1],
                "analytic_losses_per_year": rate,
                "trials_with_loss": r.trials_with_loss,
                "p_loss": r.p_loss,
                "p_loss_ci95": [r.p_loss_ci95.0, r.p_loss_ci95.1],
                "analytic_p_loss": p,
            })),
            "notes": notes,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    let layout = if k == 1 {
        format!("{}-way replication (RS(1,{m}))", m + 1)
    } else {
        format!("RS({k},{m})")
    };
    println!(
        "{layout} over {n} devices: survives any {m} device loss(es); raw/usable {:.2}x",
        (k + m) as f64 / k as f64
    );
    println!(
        "  failures: {afr_text} per device = {} /h (MTTF {:.0} h), independent, exponential",
        sci(lambda),
        1.0 / lambda
    );
    println!("  repair:   {repair_text}");
    if let Some(u) = ure {
        println!(
            "  URE:      {} /bit{}; a rebuild with no redundancy left reads k x the rebuilt bytes",
            sci(u),
            match (scrub_hours, ure_eff) {
                (Some(h), Some(e)) => format!(
                    ", scrub every {} days -> effective {} /bit",
                    h / 24.0,
                    sci(e)
                ),
                _ => ", no scrub".into(),
            }
        );
    }
    println!();
    println!(
        "  {:<8} {:>9} {:>9} {:>10} {:>14} {:>14} {:>12} {:>9} {:>9}",
        "SCENARIO",
        "REBUILD",
        "DECLUST",
        "P(URE)",
        "MTTDL (years)",
        "approx noURE",
        "P(loss/1y)",
        "NINES/1y",
        "AVAIL 9s"
    );
    for (name, hours, p_ure, e) in &rows {
        println!(
            "  {:<8} {:>8.2}h {:>8.2}h {:>10} {:>14} {:>14} {:>12} {:>9} {:>9}",
            name,
            hours,
            e.effective_rebuild_hours,
            sci(*p_ure),
            sci(e.mttdl_years),
            sci(e.mttdl_approx_years),
            sci(e.loss_probability_1y),
            nines_text(e.durability_nines_1y),
            nines_text(e.availability_nines)
        );
    }
    if let Some((_, _, _, e)) = rows.first() {
        println!();
        println!(
            "  expected years to first loss: {} ({}); durability {} nines per year{}",
            sci(e.mttdl_years),
            rows[0].0,
            nines_text(e.durability_nines_1y),
            if e.start_failed > 0 {
                format!(" (starting with {} device(s) already lost)", e.start_failed)
            } else {
                String::new()
            }
        );
    }
    if let Some((r, rate, p, years, trials, seed)) = &sim {
        println!(
            "  simulation: {trials} trials x {years} years (seed {seed}): {} device failures, \
             {} losses ({} from URE)",
            r.device_failures, r.losses, r.ure_losses
        );
        println!(
            "    losses per array-year {} [95% CI {} .. {}]; analytic 1/MTTDL {}",
            sci(r.losses_per_year),
            sci(r.losses_per_year_ci95.0),
            sci(r.losses_per_year_ci95.1),
            sci(*rate)
        );
        println!(
            "    P(loss within {years} years) {} [95% CI {} .. {}]; analytic {}",
            sci(r.p_loss),
            sci(r.p_loss_ci95.0),
            sci(r.p_loss_ci95.1),
            sci(*p)
        );
    }
    for n in &notes {
        println!("  note: {n}");
    }
    println!("  (formulas and assumptions: docs/models.md)");
    Ok(0)
}

/// The durability estimate `ectable status` shows: the array's k, m, n and redundancy left,
/// with the default assumptions [`STATUS_AFR`] and [`STATUS_REBUILD_HOURS`].
fn status_durability(st: &Status) -> Option<ectable_tools::models::DurabilityEstimate> {
    use ectable_tools::models::{self, DurabilityParams, RepairModel};
    let f = array_facts(st);
    if f.k == 0 || f.lost > f.m || f.devices < f.k + f.m {
        return None;
    }
    let params = DurabilityParams {
        k: f.k,
        m: f.m,
        devices: f.devices,
        failure_rate_per_hour: models::afr_to_rate(STATUS_AFR).ok()?,
        rebuild_hours: STATUS_REBUILD_HOURS,
        critical_rebuild_loss_probability: 0.0,
        repair: RepairModel::Serial,
    };
    models::estimate(&params, f.start_failed).ok()
}

fn status_durability_line(st: &Status) -> String {
    let assumptions = format!(
        "assuming AFR {}%, {} h to replace and rebuild a device, independent failures; \
         'ectable model' for more",
        STATUS_AFR * 100.0,
        STATUS_REBUILD_HOURS
    );
    if lost_devices(st) > st.parity_shards {
        return "data may be unavailable now (more than m devices not in service)".into();
    }
    match status_durability(st) {
        Some(e) => format!(
            "{} nines/year (P(loss within 1 year) {}), expected {} years to first loss{}; {}",
            nines_text(e.durability_nines_1y),
            sci(e.loss_probability_1y),
            sci(e.mttdl_years),
            if e.start_failed > 0 {
                format!(
                    ", lowered: {} device(s) of redundancy already used",
                    e.start_failed
                )
            } else {
                String::new()
            },
            assumptions
        ),
        None => "not available".into(),
    }
}

fn status_durability_json(st: &Status) -> Value {
    match status_durability(st) {
        Some(e) => json!({
            "redundancy_left": st.redundancy_left,
            "start_failed": e.start_failed,
            "assumed_afr": STATUS_AFR,
            "assumed_rebuild_hours": STATUS_REBUILD_HOURS,
            "rebuild_hours_effective": e.effective_rebuild_hours,
            "loss_probability_1y": e.loss_probability_1y,
            "durability_nines_1y": e.durability_nines_1y,
            "expected_years_to_first_loss": e.mttdl_years,
        }),
        None => Value::Null,
    }
}
