//! `ecfaultfs`: mounts a fault file system of device files and serves it until SIGINT or
//! SIGTERM; faults are set by writing commands into its control file.

use clap::Parser;
use ectable_faultfs::{Config, FaultFs, CONTROL_NAME};
use nix::sys::signal::{SigSet, Signal};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Serve device files whose reads, writes and fsyncs can be delayed or failed, \
             through FUSE (needs root)",
    after_help = "Fault commands, written into MOUNTPOINT/.faults (one per line):
  DEV delay DURATION        add DURATION to every read and write (0 takes it away)
  DEV eio OFFSET LENGTH     reads touching the range fail with EIO until it is written
  DEV fail-writes on|off    every write fails with EIO
  DEV fail-fsync on|off     every fsync fails with EIO
  DEV dead on|off           every request fails with EIO
  DEV clear                 take every fault away
DEV is a device's name, its index or `all`. Reading .faults prints each device's faults
and counters.

Example:
  ecfaultfs /mnt/ff --backing /var/tmp/ff --devices 6 --size 1G &
  ectable format --devices /mnt/ff/dev0,/mnt/ff/dev1,... --data 4 --parity 2
  echo 'dev3 delay 20ms' > /mnt/ff/.faults
  cat /mnt/ff/.faults"
)]
struct Args {
    /// An empty directory to mount on.
    mountpoint: PathBuf,
    /// Directory of the backing files (created when missing; existing files keep their bytes).
    #[arg(long)]
    backing: PathBuf,
    /// Number of device files (dev0, dev1, ...).
    #[arg(long, default_value_t = 6)]
    devices: usize,
    /// Size of each new device file (existing backing files keep theirs).
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
    size: u64,
    /// Threads serving each device (its queue depth).
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Do not pass fsync on to the backing files.
    #[arg(long)]
    no_sync_backing: bool,
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(s)
        .map_err(|e| format!("{s:?}: {e}"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    if args.devices == 0 || args.devices > 255 {
        eprintln!("ecfaultfs: --devices must be 1 to 255");
        return ExitCode::from(64);
    }
    if args.size == 0 {
        eprintln!("ecfaultfs: --size must not be 0");
        return ExitCode::from(64);
    }
    if let Err(e) = std::fs::create_dir_all(&args.backing) {
        eprintln!("ecfaultfs: cannot create {}: {e}", args.backing.display());
        return ExitCode::FAILURE;
    }
    // SIGINT and SIGTERM are waited for below: block them before any thread starts, so that
    // every thread inherits the mask and none is killed by them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    if let Err(e) = signals.thread_block() {
        eprintln!("ecfaultfs: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }
    let mut config = Config::new(&args.backing, args.devices, args.size);
    config.threads_per_device = args.threads.max(1);
    config.sync_backing = !args.no_sync_backing;
    let fs = match FaultFs::mount(&args.mountpoint, &config) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!(
                "ecfaultfs: cannot mount on {}: {e}",
                args.mountpoint.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let list: Vec<String> = fs.paths().iter().map(|p| p.display().to_string()).collect();
    println!("serving {} device files: {}", fs.len(), list.join(","));
    println!(
        "fault commands: {}",
        fs.mountpoint().join(CONTROL_NAME).display()
    );
    match signals.wait() {
        Ok(sig) => eprintln!("ecfaultfs: {}: unmounting", sig.as_str()),
        Err(e) => eprintln!("ecfaultfs: waiting for a signal failed ({e}): unmounting"),
    }
    drop(fs);
    ExitCode::SUCCESS
}
