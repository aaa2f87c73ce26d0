//! `ectable`: the operator CLI.
//!
//! Every command takes the array's devices as `--devices D1,D2,...` (block devices or regular
//! files, in any order: devices are identified by their superblocks). Errors print one line
//! on stderr and exit non-zero; `status` exits like `mdadm --test` (0 healthy, 1 degraded,
//! 2 data unavailable, 4 status unreadable).

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use clap::{Args, Parser, Subcommand};
use ectable_devices::{EngineKind, IoEngine};
use ectable_engine::{format, Engine, EngineOptions, FormatOptions, RebuildOptions, Status};
use ectable_tools::{open_devices, parse_size, row_key, row_value, split_devices};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

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
    io_engine: EngineKind,
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
    /// Write one value (durable when the command returns).
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
    /// Print one value (exit 1 if the key does not exist).
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
    /// Delete one key (durable when the command returns).
    Delete {
        #[command(flatten)]
        dev: DevicesArg,
        #[command(flatten)]
        table: TableArg,
        #[arg(long)]
        key: String,
    },
    /// List keys and values in key order.
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
    /// Import JSON lines {"key": K, "value": V} (strings, or {"$bin": base64}); all or nothing on bad input.
    Import {
        #[command(flatten)]
        dev: DevicesArg,
        #[command(flatten)]
        table: TableArg,
        file: PathBuf,
    },
    /// Export a table as JSON lines in key order ("-" for stdout).
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
            std::process::exit(if is_status { 4 } else { 1 });
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

fn open_array(cli_engine: EngineKind, arg: &DevicesArg, read_only: bool) -> Result<Engine> {
    let io = open_devices(&devices(arg)?, None, read_only, cli_engine)?;
    let opts = EngineOptions {
        read_only,
        ..Default::default()
    };
    Engine::open(io, opts).context("opening the array")
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
            let engine = open_array(kind, &dev, false)?;
            let lsn = engine.put_sync(&table.table, key.as_bytes(), value.as_bytes())?;
            engine.close()?;
            eprintln!("ok (lsn {lsn})");
            Ok(0)
        }
        Command::Get {
            dev,
            table,
            key,
            json,
        } => {
            let engine = open_array(kind, &dev, true)?;
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
        }
        Command::Delete { dev, table, key } => {
            let engine = open_array(kind, &dev, false)?;
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
            limit,
            json,
        } => {
            let engine = open_array(kind, &dev, true)?;
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
            let engine = open_array(kind, &dev, false)?;
            load(&engine, &rows, "load")?;
            engine.close()?;
            Ok(0)
        }
        Command::Verify { dev, rows } => {
            let engine = open_array(kind, &dev, true)?;
            verify(&engine, &rows, "verify")?;
            Ok(0)
        }
        Command::Import { dev, table, file } => {
            let rows = read_jsonl(&file)?;
            let engine = open_array(kind, &dev, false)?;
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
            for (k, v) in &rows {
                engine.put(&table.table, k, v)?;
            }
            engine.sync()?;
            engine.close()?;
            eprintln!("imported {} rows into '{}'", rows.len(), table.table);
            Ok(0)
        }
        Command::Export { dev, table, file } => {
            let engine = open_array(kind, &dev, true)?;
            let rows = engine.scan(&table.table, Bound::Unbounded, Bound::Unbounded, usize::MAX)?;
            let mut out: Box<dyn Write> = if file.as_os_str() == "-" {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(std::io::BufWriter::new(
                    std::fs::File::create(&file)
                        .with_context(|| format!("creating {}", file.display()))?,
                ))
            };
            for (k, v) in &rows {
                writeln!(
                    out,
                    "{}",
                    json!({"key": bytes_json(k), "value": bytes_json(v)})
                )?;
            }
            out.flush()?;
            eprintln!("exported {} rows from '{}'", rows.len(), table.table);
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
            let Some((slot, _)) = engine.rebuild_in_progress() else {
                println!("no rebuild in progress");
                return Ok(0);
            };
            run_rebuild(&engine, slot, rate)?;
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
                b.set_length(p.bytes_total);
                b.set_position(p.bytes_scanned);
            }
            None => {
                let decile = (p.bytes_scanned * 10)
                    .checked_div(p.bytes_total)
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

fn run_rebuild(engine: &Engine, slot: usize, rate: u64) -> Result<()> {
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
        "rebuild of slot {slot}: {} segments, {} chunks ({}) rebuilt in {:.1} s ({}/s scanned), {} unrecoverable",
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
    kind: EngineKind,
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
            Some(ectable_engine::Error::ForeignDevice { device, .. }) if *device == new_name => {
                if !force {
                    bail!("{new_name}: holds another ectable array; use --force to reuse it");
                }
                let dev = ectable_devices::FileDevice::open(new, &Default::default())?;
                ectable_engine::array::wipe_device(&dev)?;
                drop(dev);
                open(&paths).context("opening the array")?
            }
            _ => return Err(e.context("opening the array")),
        },
    };
    if engine.slot_of_path(&new_name).is_some() {
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
    run_rebuild(&engine, slot, rate)?;
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

fn status_exit_code(st: &Status) -> i32 {
    let lost = st
        .devices
        .iter()
        .filter(|d| d.state == "FAULTED" || d.state == "REMOVED")
        .count();
    if lost > st.parity_shards {
        2
    } else if lost > 0 || st.devices.iter().any(|d| d.state != "ONLINE") {
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
    let lost = st
        .devices
        .iter()
        .filter(|d| d.state == "FAULTED" || d.state == "REMOVED")
        .count();
    println!("  array: {}", st.array_uuid);
    println!("  state: {state}");
    let status_line = if lost == 0 {
        format!(
            "all {} devices online; any {} may fail without losing data.",
            st.devices.len(),
            st.parity_shards
        )
    } else if lost <= st.parity_shards {
        format!(
            "{lost} of {} devices unavailable; every stripe is readable with {} parity shard(s) to spare.",
            st.devices.len(),
            st.redundancy_left
        )
    } else {
        format!(
            "{lost} of {} devices unavailable: more than m={}; some data is unavailable.",
            st.devices.len(),
            st.parity_shards
        )
    };
    println!(" status: {status_line}");
    if lost > 0 {
        println!(" action: Bring the missing device(s) back, or replace them.");
    }
    println!(
        " layout: RS {}+{} (GF(2^8)/0x11d, Vandermonde-systematic), chunk {} KiB, segment {} MiB, io engine {}",
        st.data_shards,
        st.parity_shards,
        st.chunk_size_bytes / 1024,
        st.segment_size_bytes >> 20,
        st.io_engine
    );
    println!(
        "  space: {} usable of {} raw, {} allocated; {} keys in {} table(s); log at LSN {}",
        human(st.usable_capacity_bytes),
        human(st.raw_capacity_bytes),
        human(st.used_bytes),
        st.keys,
        st.tables,
        st.next_lsn.saturating_sub(1)
    );
    println!(
        "   open: replayed {} stripes ({} records) from {} segments{}",
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
    if errors == 0 && st.recovery.degraded_stripes == 0 {
        println!("errors: No known data errors");
    } else {
        println!(
            "errors: {errors} device error(s); {} stripe(s) were read degraded at open",
            st.recovery.degraded_stripes
        );
    }
}

fn status_json(st: &Status) -> Value {
    let mut checks = Vec::new();
    for d in &st.devices {
        if d.state == "FAULTED" || d.state == "REMOVED" {
            checks.push(json!({"code": "DEVICE_FAULTED", "severity": "warn",
                "message": format!("slot {} ({}) is {}", d.slot, d.path.clone().unwrap_or_default(), d.state)}));
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
        "capacity": {
            "raw_bytes": st.raw_capacity_bytes,
            "usable_bytes": st.usable_capacity_bytes,
            "allocated_bytes": st.used_bytes,
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
            "discarded_stripes": st.recovery.discarded_stripes,
            "bytes_read": st.recovery.bytes_read,
        },
        "devices": st.devices.iter().map(|d| json!({
            "slot": d.slot,
            "path": d.path,
            "uuid": d.device_uuid,
            "state": d.state,
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

fn demo(kind: EngineKind, dir: &Path, rows: u64, value_size: u64, device_size: u64) -> Result<i32> {
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
    let io: Arc<dyn IoEngine> = open_devices(&paths, Some(device_size), false, kind)?;
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
