//! ecsim: runs the seeded fault simulator (sim/src/lib.rs) for one seed, a number of seeds,
//! or a number of minutes, and prints per fault class what was injected, detected and
//! repaired, and how many acknowledged writes were lost (always 0, or the run fails).

use clap::Parser;
use ectable_sim::crash_states::{enumerate, CrashConfig, CrashReport};
use ectable_sim::{run, Config, Report, CLASSES};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Seeded fault simulator: the real engine over memory devices, a random workload and a random
/// schedule of faults and operator actions, the oracle checked after every step.
#[derive(Parser, Debug)]
#[command(name = "ecsim", version)]
struct Args {
    /// The first seed (the next runs use seed+1, seed+2, ...). Default: from the clock.
    #[arg(long)]
    seed: Option<u64>,
    /// Steps per seed.
    #[arg(long, default_value_t = 300)]
    steps: u64,
    /// Seeds to run (ignored with --minutes).
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Run seed after seed for this long (a soak), then report the totals.
    #[arg(long)]
    minutes: Option<f64>,
    /// Data shards.
    #[arg(long, default_value_t = 4)]
    k: usize,
    /// Parity shards.
    #[arg(long, default_value_t = 2)]
    m: usize,
    /// Run each seed this many times (the engine's thread timing differs between runs: a
    /// failure that needs one timing shows in some runs of its seed, not all).
    #[arg(long, default_value_t = 1)]
    repeat: u64,
    /// Instead of the simulation: record a workload of this many operations over six
    /// recording devices (RS(4,2); --k and --m do not apply) and open every crash state
    /// its trace allows at evenly spread cut points
    /// (up to --states), checking each against what was acknowledged before the cut.
    #[arg(long)]
    crash_states: Option<usize>,
    /// Crash states opened at most per seed (with --crash-states).
    #[arg(long, default_value_t = 1_200)]
    states: u64,
    /// Print every step.
    #[arg(long, short)]
    verbose: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.k == 0 || args.m == 0 || args.k + args.m > 16 {
        eprintln!("ecsim: --k and --m must be at least 1, and k + m at most 16");
        return ExitCode::from(2);
    }
    let first = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let started = Instant::now();
    if let Some(ops) = args.crash_states {
        return crash_states(
            first,
            args.seeds,
            ops,
            args.states,
            deadline_of(&args),
            started,
        );
    }
    let deadline = args
        .minutes
        .map(|m| Duration::from_secs_f64(m.max(0.0) * 60.0));
    let mut total = Report::default();
    let mut seeds = 0u64;
    loop {
        let seed = first.wrapping_add(seeds);
        match deadline {
            Some(d) if started.elapsed() >= d => break,
            None if seeds >= args.seeds => break,
            _ => {}
        }
        let cfg = Config {
            seed,
            steps: args.steps,
            data_shards: args.k,
            parity_shards: args.m,
            verbose: args.verbose,
            ..Default::default()
        };
        for attempt in 0..args.repeat.max(1) {
            match run(&cfg) {
                Ok(r) => total.add(&r),
                Err(f) => {
                    eprintln!("ecsim: FAILED (run {} of this seed)\n{f}", attempt + 1);
                    return ExitCode::from(1);
                }
            }
        }
        seeds += 1;
    }
    print_report(first, seeds, started.elapsed(), &total);
    ExitCode::SUCCESS
}

fn print_report(first: u64, seeds: u64, took: Duration, r: &Report) {
    println!(
        "ecsim: seeds {first}..{} ({seeds} seeds, {} steps) in {:.1} s: all passed",
        first.wrapping_add(seeds),
        r.steps,
        took.as_secs_f64()
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9}",
        "fault class", "injected", "detected", "repaired"
    );
    for c in CLASSES {
        let n = r.classes.get(c).copied().unwrap_or_default();
        println!(
            "{c:<22} {:>9} {:>9} {:>9}",
            n.injected, n.detected, n.repaired
        );
    }
    println!(
        "writes acknowledged {}, reads checked {}, full-state checks {}, opens {}",
        r.writes_acknowledged, r.reads_checked, r.full_checks, r.opens
    );
    println!(
        "crash states reopened {}: in-doubt writes kept {}, lost {} (both allowed)",
        r.crash_states, r.in_doubt_kept, r.in_doubt_lost
    );
    println!("acknowledged writes lost: {}", r.acknowledged_lost);
}

fn deadline_of(args: &Args) -> Option<Duration> {
    args.minutes
        .map(|m| Duration::from_secs_f64(m.max(0.0) * 60.0))
}

/// `--crash-states`: one enumeration per seed, until --seeds or --minutes.
fn crash_states(
    first: u64,
    seeds: u64,
    ops: usize,
    states: u64,
    deadline: Option<Duration>,
    started: Instant,
) -> ExitCode {
    let mut total = CrashReport::default();
    let mut done = 0u64;
    loop {
        match deadline {
            Some(d) if started.elapsed() >= d => break,
            None if done >= seeds => break,
            _ => {}
        }
        let seed = first.wrapping_add(done);
        let cfg = CrashConfig {
            seed,
            ops,
            max_states: states,
            ..Default::default()
        };
        match enumerate(&cfg) {
            Ok(r) => total.add(&r),
            Err(why) => {
                eprintln!("ecsim: crash state FAILED, seed {seed} ({ops} operations): {why}");
                return ExitCode::from(1);
            }
        }
        done += 1;
    }
    println!(
        "ecsim: crash states of {done} recorded workloads (seeds {first}..{}) in {:.1} s",
        first.wrapping_add(done),
        started.elapsed().as_secs_f64()
    );
    println!(
        "trace events {}, cut points {}, crash states opened {} ({} while a checkpoint or \
         the cleaner was writing)",
        total.events, total.cut_points, total.states, total.during_checkpoint_or_cleaning
    );
    println!(
        "states that kept some in-doubt writes {}, that lost some {} (both allowed)",
        total.in_doubt_kept, total.in_doubt_lost
    );
    println!("acknowledged writes lost: 0, failed recoveries: 0");
    ExitCode::SUCCESS
}
