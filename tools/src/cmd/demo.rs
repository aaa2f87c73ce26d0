//! `ectable demo`: the whole story on six file-backed devices: format RS(4,2), load,
//! verify, status; then one device file is deleted, status and a degraded verify are shown,
//! the device is replaced and rebuilt, and everything verifies again.

use crate::cmd::bulk::{load, verify};
use crate::cmd::common::{open_array, size_arg, DevicesArg, RowsArg, TableArg};
use crate::cmd::rebuild::{self, ReplaceArgs};
use crate::cmd::status::print_status;
use crate::open_devices;
use anyhow::{Context, Result};
use clap::Args;
use ectable_devices::{BackendKind, IoBackend};
use ectable_engine::{format, Engine, FormatOptions};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub struct DemoArgs {
    /// Directory for the device files (created; an earlier demo's files in it are replaced,
    /// files of the same names in a directory the demo did not make are refused).
    #[arg(long, default_value = "ectable-demo")]
    pub dir: PathBuf,
    /// Rows to load.
    #[arg(long, default_value_t = 100_000)]
    pub rows: u64,
    /// Bytes per value (1K, 4K, 64K ... are accepted).
    #[arg(long, default_value = "1K", value_parser = size_arg)]
    pub value_size: u64,
    /// Size of each device file.
    #[arg(long, default_value = "256M", value_parser = size_arg)]
    pub device_size: u64,
}

/// The file that marks a directory as the demo's own: the files of an earlier demo in it
/// may be replaced.
const MARKER: &str = ".ectable-demo";

/// Makes `dir` (if needed) and removes an earlier demo's `files` from it, or refuses with
/// nothing removed: files of those names in a directory the demo did not make may be
/// someone's array (`--dir` pointed at the wrong place), and files another process holds
/// (a node serving the earlier demo's array) are in use.
fn clear_old_demo(dir: &std::path::Path, files: &[PathBuf]) -> Result<()> {
    let present: Vec<&PathBuf> = files
        .iter()
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .collect();
    let marker = dir.join(MARKER);
    if let Some(first) = present.first() {
        if !marker.exists() {
            crate::fail!(
                crate::exit::CANT_CREATE,
                "{} is there, and {} has no {MARKER} file ('ectable demo' marks its own \
                 directory): nothing was removed; if it is an older demo's, remove it \
                 yourself, else give --dir a new or empty directory",
                first.display(),
                dir.display()
            );
        }
    }
    let mut held = Vec::new();
    for p in &present {
        let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
        match f.try_lock() {
            Ok(()) => held.push(f),
            Err(std::fs::TryLockError::WouldBlock) => crate::fail!(
                crate::exit::TEMPFAIL,
                "{} is in use by another process (a node or a command on the earlier demo's \
                 array?): nothing was removed; stop it, or give --dir another directory",
                p.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", p.display()))
            }
        }
    }
    for p in &present {
        std::fs::remove_file(p).with_context(|| format!("removing old {}", p.display()))?;
    }
    drop(held);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        &marker,
        "made by 'ectable demo': its device files here are replaced by the next demo\n",
    )
    .with_context(|| format!("writing {}", marker.display()))?;
    Ok(())
}

/// `ectable demo`.
pub fn run(kind: BackendKind, a: &DemoArgs) -> Result<i32> {
    let (dir, rows, value_size, device_size) =
        (a.dir.as_path(), a.rows, a.value_size, a.device_size);
    let paths: Vec<PathBuf> = (0..6).map(|i| dir.join(format!("dev{i}.img"))).collect();
    let mut files = paths.clone();
    files.push(dir.join("dev3-new.img"));
    clear_old_demo(dir, &files)?;
    let list = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    println!(
        "== ectable demo: RS(4,2) over 6 file-backed devices in {}\n",
        dir.display()
    );
    // Small demo devices get segments small enough for 64 or more a device (the default
    // 8 MiB gives 256 MiB files 31, few for the cleaner: `format` warns of that), so that
    // the files left behind take the other commands (overwrites, cleaning) well.
    let defaults = FormatOptions::default();
    let default_segment =
        ectable_engine::format::Layout::default_segment_size(defaults.chunk_size_bytes);
    let segment = crate::cmd::format::roomy_segment_size(
        device_size.saturating_sub(1 << 20),
        defaults.chunk_size_bytes,
    )
    .min(default_segment as u64);
    let segment_arg = if segment < default_segment as u64 {
        match segment % (1 << 20) {
            0 => format!(" --segment-size {}M", segment >> 20),
            _ => format!(" --segment-size {}K", segment >> 10),
        }
    } else {
        String::new()
    };
    println!(
        "$ ectable format --devices {list} --k 4 --m 2 --create-size {}M{segment_arg}",
        device_size >> 20
    );
    let io: Arc<dyn IoBackend> = open_devices(&paths, Some(device_size), false, kind)?;
    let opts = FormatOptions {
        segment_size_bytes: segment as u32,
        ..defaults
    };
    let info = format(io.as_ref(), &opts)?;
    println!(
        "formatted array {}: {} segments of {} per device\n",
        ectable_engine::format::uuid_string(&info.array_uuid),
        info.segment_count,
        crate::term::bytes(info.segment_size_bytes as u64)
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
        let engine = Engine::open(io, crate::deadline::engine_options(false))?;
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
    let replace = ReplaceArgs {
        dev: degraded,
        old: dead.display().to_string(),
        old_slot: None,
        new: new.clone(),
        create_size: Some(device_size),
        preallocate: false,
        rate: 0,
        force: false,
        yes: true,
    };
    rebuild::replace(kind, &replace)?;
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
