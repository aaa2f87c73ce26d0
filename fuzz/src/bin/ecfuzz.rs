//! `ecfuzz`: runs ectable's fuzz targets on stable Rust (seeded corpus mutation; see
//! `ectable_fuzz::driver`), reproduces a saved input, and writes the seed corpus.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ectable_fuzz::driver::{artifact_name, corpus, fuzz, run_one};
use ectable_fuzz::{target, Target, TARGETS};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "ecfuzz",
    version,
    about = "Run ectable's fuzz targets on stable Rust (seeded mutation of the corpus)",
    after_help = "The same targets run coverage-guided with `cargo fuzz` (nightly): see \
                  docs/fault-model.md, \"Fuzzing\"."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the targets.
    List,
    /// Fuzz targets (all when none is named); exit 1 when one crashed.
    Run {
        targets: Vec<String>,
        /// Seconds per target.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Seed of the mutations (a run is reproducible from it).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The corpus directory (one subdirectory per target).
        #[arg(long, default_value = "fuzz/corpus")]
        corpus: PathBuf,
        /// Where crashing inputs are written (one subdirectory per target).
        #[arg(long, default_value = "fuzz/artifacts")]
        artifacts: PathBuf,
    },
    /// Run one target on saved inputs (a crash from `run` or from `cargo fuzz`).
    Repro {
        target: String,
        inputs: Vec<PathBuf>,
    },
    /// Write the seeds of every target into the corpus directory.
    WriteSeeds {
        #[arg(long, default_value = "fuzz/corpus")]
        corpus: PathBuf,
    },
}

fn find(name: &str) -> Result<&'static Target> {
    target(name).with_context(|| {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        format!("no fuzz target '{name}' (targets: {})", names.join(", "))
    })
}

fn main() {
    match run(Cli::parse()) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ecfuzz: error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::List => {
            for t in TARGETS {
                println!("{:<16} {}", t.name, t.about);
            }
            Ok(0)
        }
        Cmd::Run {
            targets,
            seconds,
            seed,
            corpus: dir,
            artifacts,
        } => {
            let chosen: Vec<&Target> = if targets.is_empty() {
                TARGETS.iter().collect()
            } else {
                targets.iter().map(|n| find(n)).collect::<Result<_>>()?
            };
            let mut crashed = 0;
            println!(
                "{:<16} {:>10} {:>9} {:>10} {:>8}",
                "target", "execs", "execs/s", "slowest", "crashes"
            );
            for t in chosen {
                let inputs = corpus(t, &dir)
                    .with_context(|| format!("reading the corpus in {}", dir.display()))?;
                let out = fuzz(t, &inputs, seed, Duration::from_secs(seconds));
                println!(
                    "{:<16} {:>10} {:>9.0} {:>8.1}ms {:>8}",
                    t.name,
                    out.execs,
                    out.execs as f64 / out.elapsed.as_secs_f64().max(1e-9),
                    out.slowest.as_secs_f64() * 1e3,
                    out.crashes.len()
                );
                for c in &out.crashes {
                    let d = artifacts.join(t.name);
                    std::fs::create_dir_all(&d)
                        .with_context(|| format!("creating {}", d.display()))?;
                    let path = d.join(artifact_name(&c.input));
                    std::fs::write(&path, &c.input)
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!("  crash: {}", c.message);
                    println!(
                        "  input: {} (ecfuzz repro {} {})",
                        path.display(),
                        t.name,
                        path.display()
                    );
                    crashed += 1;
                }
                if let Some(input) = &out.slow_input {
                    let d = artifacts.join(t.name);
                    std::fs::create_dir_all(&d)?;
                    let path = d.join(format!("slow-{:08x}", crc32c::crc32c(input)));
                    std::fs::write(&path, input)?;
                    println!("  slow input: {}", path.display());
                }
            }
            Ok(i32::from(crashed > 0))
        }
        Cmd::Repro {
            target: name,
            inputs,
        } => {
            let t = find(&name)?;
            if inputs.is_empty() {
                bail!("name at least one input file");
            }
            let mut bad = 0;
            for p in inputs {
                let input =
                    std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
                match run_one(t, &input) {
                    None => println!("{}: ok", p.display()),
                    Some(m) => {
                        println!("{}: crash: {m}", p.display());
                        bad += 1;
                    }
                }
            }
            Ok(i32::from(bad > 0))
        }
        Cmd::WriteSeeds { corpus: dir } => {
            for t in TARGETS {
                let d = dir.join(t.name);
                std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
                for (i, s) in (t.seeds)().iter().enumerate() {
                    let p = d.join(format!("seed-{i:02}"));
                    std::fs::write(&p, s).with_context(|| format!("writing {}", p.display()))?;
                }
                println!("{}: {} seeds", t.name, (t.seeds)().len());
            }
            Ok(0)
        }
    }
}
