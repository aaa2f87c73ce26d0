//! `ectable model`: availability and durability of an RS(k,m) array, for given k, m or for
//! an array (`--devices`): MTTDL from the exact Markov chain, loss within a year, nines, and
//! an optional Monte Carlo check (formulas and assumptions in docs/models.md).

use crate::cmd::common::{open_array, DevicesArg};
use crate::cmd::durability::{array_facts, nines_text, sci};
use crate::models::{self, DurabilityEstimate, DurabilityParams, RepairModel, SimParams};
use crate::{parse_size, term};
use anyhow::{Context, Result};
use clap::Args;
use ectable_devices::BackendKind;
use serde_json::{json, Value};

/// `ectable model` arguments. Numbers are taken as text and checked by the command itself,
/// so that a bad value (negative, zero, out of range) is a one-line error.
#[derive(Args)]
pub struct ModelArgs {
    /// Data shards per stripe (k = 1 models (m+1)-way replication).
    #[arg(long, allow_hyphen_values = true)]
    pub k: Option<String>,
    /// Parity shards per stripe.
    #[arg(long, allow_hyphen_values = true)]
    pub m: Option<String>,
    /// Devices the stripes are spread over (default k + m; more is declustered).
    #[arg(long, allow_hyphen_values = true)]
    pub device_count: Option<String>,
    /// Annualised failure rate per device: a percentage (1.5%) or a fraction (0.015).
    #[arg(long, allow_hyphen_values = true, default_value = "1.5%")]
    pub afr: String,
    /// Mean time to failure per device in hours (instead of --afr).
    #[arg(long, allow_hyphen_values = true)]
    pub mttf_hours: Option<String>,
    /// Mean time to replace and rebuild one device in a k + m group, hours (suffix d for days).
    #[arg(long, allow_hyphen_values = true)]
    pub rebuild_hours: Option<String>,
    /// Device capacity (binary suffixes: 16T); bytes rebuilt per failed device.
    #[arg(long, allow_hyphen_values = true)]
    pub capacity: Option<String>,
    /// Rebuild speed: bytes per second reconstructed onto the new device (200M).
    #[arg(long, allow_hyphen_values = true)]
    pub rebuild_rate: Option<String>,
    /// Unrecoverable read errors per bit read (1e-15), met by a rebuild with no redundancy left.
    #[arg(long, allow_hyphen_values = true)]
    pub ure: Option<String>,
    /// Scrub interval in days (latent errors older than a scrub are found and repaired).
    #[arg(long, allow_hyphen_values = true)]
    pub scrub_days: Option<String>,
    /// Rebuild all failed devices at once (default: one at a time, as ectable does).
    #[arg(long)]
    pub parallel_repair: bool,
    /// Also run a seeded Monte Carlo simulation.
    #[arg(long)]
    pub simulate: bool,
    /// Years simulated per trial.
    #[arg(long, allow_hyphen_values = true, default_value = "10")]
    pub years: String,
    /// Simulation trials.
    #[arg(long, allow_hyphen_values = true, default_value = "1000")]
    pub trials: String,
    /// Simulation seed.
    #[arg(long, allow_hyphen_values = true, default_value = "1")]
    pub seed: String,
    /// Read k, m, device count, sizes and live bytes from an array (read-only).
    #[arg(long, value_name = "D1,D2,...")]
    pub devices: Option<String>,
    /// Print the model's figures as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Rebuild speed assumed when an array is modelled without --rebuild-rate: the engine does
/// not record a measured rebuild rate yet.
const DEFAULT_REBUILD_RATE: u64 = 100 << 20;

fn parse_count(name: &str, s: &str) -> Result<usize> {
    let v: i64 = s.trim().parse().map_err(|_| {
        crate::coded!(
            crate::exit::USAGE,
            "{name} must be a whole number (got '{s}')"
        )
    })?;
    if v < 0 {
        crate::fail!(crate::exit::USAGE, "{name} must not be negative (got {v})");
    }
    usize::try_from(v)
        .map_err(|_| crate::coded!(crate::exit::USAGE, "{name} is too large (got {v})"))
}

fn parse_number(name: &str, s: &str) -> Result<f64> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| crate::coded!(crate::exit::USAGE, "{name} must be a number (got '{s}')"))?;
    if !v.is_finite() {
        crate::fail!(
            crate::exit::USAGE,
            "{name} must be a finite number (got '{s}')"
        );
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
        crate::fail!(crate::exit::USAGE, "{name} must not be negative (got {s})");
    }
    if v == 0.0 {
        crate::fail!(
            crate::exit::USAGE,
            "{name} must be greater than zero (got {s})"
        );
    }
    Ok(v)
}

fn parse_positive_size(name: &str, s: &str) -> Result<u64> {
    if s.trim().starts_with('-') {
        crate::fail!(crate::exit::USAGE, "{name} must not be negative (got {s})");
    }
    let v = parse_size(s).with_context(|| name.to_string())?;
    if v == 0 {
        crate::fail!(crate::exit::USAGE, "{name} must be greater than zero");
    }
    Ok(v)
}

fn scenario_json(name: &str, e: &DurabilityEstimate) -> Value {
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

/// `ectable model`.
pub fn run(kind: BackendKind, a: &ModelArgs) -> Result<i32> {
    let facts = match &a.devices {
        Some(list) => {
            if a.k.is_some() || a.m.is_some() || a.device_count.is_some() {
                crate::fail!(
                    crate::exit::USAGE,
                    "give either --devices or --k/--m/--device-count, not both"
                );
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
                a.k.as_deref().ok_or_else(|| {
                    crate::coded!(crate::exit::USAGE, "--k is required (or --devices)")
                })?,
            )?;
            let m = parse_count(
                "--m",
                a.m.as_deref().ok_or_else(|| {
                    crate::coded!(crate::exit::USAGE, "--m is required (or --devices)")
                })?,
            )?;
            let n = match &a.device_count {
                Some(s) => parse_count("--device-count", s)?,
                None => k + m,
            };
            (k, m, n)
        }
    };
    if k == 0 {
        crate::fail!(crate::exit::USAGE, "--k must be at least 1 (got 0)");
    }
    if n < k + m {
        crate::fail!(
            crate::exit::USAGE,
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
                crate::fail!(
                    crate::exit::USAGE,
                    "--afr must not be negative (got {})",
                    a.afr
                );
            }
            if afr >= 1.0 {
                crate::fail!(
                    crate::exit::USAGE,
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
                term::bytes(DEFAULT_REBUILD_RATE)
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
                crate::fail!(
                    crate::exit::USAGE,
                    "--ure must be a rate per bit in [0, 1) (got {s})"
                );
            }
            Some(u)
        }
        None => None,
    };
    let scrub_hours = match &a.scrub_days {
        Some(s) => Some(parse_number("--scrub-days", s)?)
            .map(|d| {
                if d <= 0.0 {
                    crate::fail!(
                        crate::exit::USAGE,
                        "--scrub-days must be greater than zero (got {s})"
                    );
                }
                Ok::<f64, anyhow::Error>(d * 24.0)
            })
            .transpose()?,
        None => None,
    };
    if scrub_hours.is_some() && ure.is_none() {
        crate::fail!(
            crate::exit::USAGE,
            "--scrub-days needs --ure (the scrub interval scales the latent error rate)"
        );
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
            _ => crate::fail!(
                crate::exit::USAGE,
                "give --rebuild-hours, or --capacity and --rebuild-rate (the rebuild time)"
            ),
        };
        let p_ure = match (ure_eff, bytes) {
            (Some(u), Some(b)) => models::ure_probability(u, k as f64 * *b as f64)?,
            (Some(_), None) => crate::fail!(
                crate::exit::USAGE,
                "--ure needs --capacity (the bytes a rebuild reads)"
            ),
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
        crate::fail!(
            crate::exit::USAGE,
            "nothing to model: give --rebuild-hours or --capacity and --rebuild-rate"
        );
    };

    let sim = if a.simulate {
        let years = parse_number("--years", &a.years)?;
        if years <= 0.0 {
            crate::fail!(
                crate::exit::USAGE,
                "--years must be greater than zero (got {})",
                a.years
            );
        }
        let trials = parse_count("--trials", &a.trials)? as u64;
        if trials == 0 {
            crate::fail!(crate::exit::USAGE, "--trials must be at least 1");
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
    let header = [
        "SCENARIO",
        "REBUILD",
        "DECLUST",
        "P(URE)",
        "MTTDL (years)",
        "approx noURE",
        "P(loss/1y)",
        "NINES/1y",
        "AVAIL 9s",
    ];
    let mut table = term::table(&header, &[1, 2, 3, 4, 5, 6, 7, 8]);
    for (name, hours, p_ure, e) in &rows {
        table.add_row(vec![
            name.clone(),
            format!("{hours:.2}h"),
            format!("{:.2}h", e.effective_rebuild_hours),
            sci(*p_ure),
            sci(e.mttdl_years),
            sci(e.mttdl_approx_years),
            sci(e.loss_probability_1y),
            nines_text(e.durability_nines_1y),
            nines_text(e.availability_nines),
        ]);
    }
    for line in term::table_lines(&table, "  ") {
        println!("{line}");
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
