//! Availability and durability models (pure functions, no I/O), for `ectable model` and the
//! durability estimate of `ectable status`.
//!
//! Every formula here is described, with its assumptions, limits and references, in
//! `docs/models.md`. Units are explicit in the names: probabilities are fractions in `[0, 1]`,
//! rates are per hour, times are in hours unless the name says years, sizes are in bytes and
//! unrecoverable-read-error (URE) rates are per *bit* read.
//!
//! The main pieces:
//! - the seed formulas: replica and RS(k,m) availability, partitioned placement, failure
//!   detection, backup recovery;
//! - [`mttdl_hours`]: the exact mean time to data loss of an RS(k,m) group from a
//!   continuous-time Markov chain, solved by Gaussian elimination, and
//!   [`loss_probability`]: the exact probability of data loss within a time, by the matrix
//!   exponential of the chain's generator;
//! - [`simulate`]: a seeded Monte Carlo simulation of the same failure/rebuild process, with
//!   95 % confidence intervals, to check the analysis.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::fmt;

/// Hours in a (Julian) year: 365.25 × 24. AFRs are per year of this length.
pub const HOURS_PER_YEAR: f64 = 8766.0;

/// The largest parity count the Markov chain accepts (the chain has m + 2 states).
pub const MAX_MODEL_PARITY: usize = 64;

/// An invalid model input (the message names the input and the accepted range).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelError(pub String);

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ModelError {}

/// Result of the model functions.
pub type ModelResult<T> = std::result::Result<T, ModelError>;

fn invalid<T>(msg: String) -> ModelResult<T> {
    Err(ModelError(msg))
}

fn check_probability(name: &str, p: f64) -> ModelResult<()> {
    if !(0.0..=1.0).contains(&p) {
        return invalid(format!("{name} must be a probability in [0, 1] (got {p})"));
    }
    Ok(())
}

fn check_non_negative(name: &str, x: f64) -> ModelResult<()> {
    if !x.is_finite() || x < 0.0 {
        return invalid(format!("{name} must be a finite number >= 0 (got {x})"));
    }
    Ok(())
}

fn check_positive(name: &str, x: f64) -> ModelResult<()> {
    if !x.is_finite() || x <= 0.0 {
        return invalid(format!("{name} must be a finite number > 0 (got {x})"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The seed formulas.
// ---------------------------------------------------------------------------------------

/// Availability of K full replicas, each independently up with probability `a`:
/// A = 1 − (1 − a)^K (the data is available while at least one replica is up).
pub fn replica_availability(a: f64, copies: u32) -> ModelResult<f64> {
    check_probability("replica availability a", a)?;
    if copies == 0 {
        return invalid("the number of replicas K must be at least 1".into());
    }
    Ok(1.0 - replica_unavailability(a, copies))
}

/// (1 − a)^K, computed directly so that small unavailabilities keep their precision.
pub fn replica_unavailability(a: f64, copies: u32) -> f64 {
    (1.0 - a).powi(copies as i32)
}

/// The binomial coefficient C(n, r) as an f64 (exact for the sizes used here, n ≤ 256).
pub fn binomial(n: usize, r: usize) -> f64 {
    if r > n {
        return 0.0;
    }
    let r = r.min(n - r);
    let mut c = 1.0f64;
    for i in 0..r {
        c = c * (n - i) as f64 / (i + 1) as f64;
    }
    c.round()
}

fn check_geometry(k: usize, m: usize) -> ModelResult<()> {
    if k == 0 {
        return invalid("k (data shards) must be at least 1".into());
    }
    if k + m > 256 {
        return invalid(format!(
            "k + m must be at most 256 for RS over GF(2^8) (got {})",
            k + m
        ));
    }
    Ok(())
}

/// Unavailability of an RS(k,m) stripe whose k + m shards are each independently up with
/// probability `a`: P(fewer than k shards up) = Σ_{u=0}^{k−1} C(k+m, u) a^u (1 − a)^(k+m−u).
pub fn rs_unavailability(a: f64, k: usize, m: usize) -> ModelResult<f64> {
    check_probability("shard availability a", a)?;
    check_geometry(k, m)?;
    let w = k + m;
    let mut sum = 0.0;
    for up in 0..k {
        sum += binomial(w, up) * a.powi(up as i32) * (1.0 - a).powi((w - up) as i32);
    }
    Ok(sum.clamp(0.0, 1.0))
}

/// Availability of an RS(k,m) stripe: P(at least k of the k + m shards up)
/// = Σ_{u=k}^{k+m} C(k+m, u) a^u (1 − a)^(k+m−u). The stripe survives any m losses.
pub fn rs_availability(a: f64, k: usize, m: usize) -> ModelResult<f64> {
    check_probability("shard availability a", a)?;
    check_geometry(k, m)?;
    let w = k + m;
    let mut sum = 0.0;
    for up in k..=w {
        sum += binomial(w, up) * a.powi(up as i32) * (1.0 - a).powi((w - up) as i32);
    }
    Ok(sum.clamp(0.0, 1.0))
}

/// Partitioned placement: the data set is split into P partitions, each stored on its own
/// (RS or replica) group with availability `partition_availability[i]`; the whole data set
/// is available only if *every* partition is: A = Π A_i.
pub fn partitioned_availability(partition_availability: &[f64]) -> ModelResult<f64> {
    if partition_availability.is_empty() {
        return invalid("partitioned placement needs at least one partition".into());
    }
    let mut prod = 1.0;
    for (i, &a) in partition_availability.iter().enumerate() {
        check_probability(&format!("availability of partition {i}"), a)?;
        prod *= a;
    }
    Ok(prod)
}

/// P identical partitions of availability `a`: A = a^P.
pub fn partitioned_availability_uniform(a: f64, partitions: u32) -> ModelResult<f64> {
    check_probability("partition availability a", a)?;
    if partitions == 0 {
        return invalid("the number of partitions P must be at least 1".into());
    }
    Ok(a.powi(partitions as i32))
}

/// The *wrong* formula sometimes used for partitions, 1 − (1 − a)^P, which treats the
/// partitions as redundant copies of each other. Kept only so the documentation and tests
/// can show how far off it is; do not use it.
pub fn partitions_as_copies_wrong(a: f64, partitions: u32) -> f64 {
    1.0 - (1.0 - a).powi(partitions as i32)
}

/// Probability that a failure occurring at rate `rate_per_hour` (exponential) happens — and
/// so is detected by a check run every `interval_hours` — within one interval:
/// D = 1 − e^(−λt).
pub fn detection_probability(rate_per_hour: f64, interval_hours: f64) -> ModelResult<f64> {
    check_non_negative("failure rate λ (per hour)", rate_per_hour)?;
    check_non_negative("interval t (hours)", interval_hours)?;
    Ok(-(-rate_per_hour * interval_hours).exp_m1())
}

/// Recovery probability from `n` independent full backups, each restorable with
/// probability `r`: R = 1 − (1 − r)^n.
pub fn backup_full_recovery(r: f64, n: u32) -> ModelResult<f64> {
    check_probability("backup restore probability r", r)?;
    Ok(1.0 - (1.0 - r).powi(n as i32))
}

/// Recovery probability of one full + incremental chain: a restore to the latest point
/// needs the full (probability `r_full`) and *every* one of the `incrementals` after it
/// (each `r_incremental`): R = r_full · r_incremental^j.
pub fn backup_chain_recovery(
    r_full: f64,
    r_incremental: f64,
    incrementals: u32,
) -> ModelResult<f64> {
    check_probability("full backup restore probability", r_full)?;
    check_probability("incremental backup restore probability", r_incremental)?;
    Ok(r_full * r_incremental.powi(incrementals as i32))
}

/// Recovery probability from `chains` independent full + incremental chains (restoring to
/// the latest point of any one of them): R = 1 − (1 − r_full · r_inc^j)^chains.
pub fn backup_chains_recovery(
    r_full: f64,
    r_incremental: f64,
    incrementals: u32,
    chains: u32,
) -> ModelResult<f64> {
    let one = backup_chain_recovery(r_full, r_incremental, incrementals)?;
    Ok(1.0 - (1.0 - one).powi(chains as i32))
}

/// "Nines" of a probability of success whose complement (failure probability) is `q`:
/// −log10(q). Infinite when q = 0.
pub fn nines(failure_probability: f64) -> f64 {
    if failure_probability <= 0.0 {
        f64::INFINITY
    } else {
        -failure_probability.log10()
    }
}

// ---------------------------------------------------------------------------------------
// Rates and derived inputs.
// ---------------------------------------------------------------------------------------

/// Per-device failure rate λ (per hour) from an annualised failure rate (the probability
/// of failing within a year, a fraction in [0, 1)): λ = −ln(1 − AFR) / 8766 h.
pub fn afr_to_rate(afr: f64) -> ModelResult<f64> {
    if !afr.is_finite() || !(0.0..1.0).contains(&afr) {
        return invalid(format!(
            "AFR must be at least 0% and below 100% (got {}%)",
            afr * 100.0
        ));
    }
    Ok(-(-afr).ln_1p() / HOURS_PER_YEAR)
}

/// Per-device failure rate λ (per hour) from a mean time to failure in hours: λ = 1/MTTF.
pub fn mttf_to_rate(mttf_hours: f64) -> ModelResult<f64> {
    check_positive("MTTF (hours)", mttf_hours)?;
    Ok(1.0 / mttf_hours)
}

/// Probability that reading `bytes` bytes meets at least one unrecoverable read error when
/// each *bit* read fails independently with probability `ure_per_bit`:
/// P = 1 − (1 − ure)^(8·B).
pub fn ure_probability(ure_per_bit: f64, bytes: f64) -> ModelResult<f64> {
    check_probability("URE rate (per bit read)", ure_per_bit)?;
    check_non_negative("bytes read", bytes)?;
    if ure_per_bit >= 1.0 {
        return Ok(if bytes > 0.0 { 1.0 } else { 0.0 });
    }
    Ok(-(8.0 * bytes * (-ure_per_bit).ln_1p()).exp_m1())
}

/// Reference exposure for latent errors: the URE rate given is taken to describe data that
/// has gone this long without being read (no scrub): one year.
pub const URE_REFERENCE_EXPOSURE_HOURS: f64 = HOURS_PER_YEAR;

/// Effective URE rate when the array is scrubbed every `scrub_interval_hours`: latent errors
/// accumulate linearly with the time since the data was last verified; at a random rebuild
/// the data's mean unverified age is T/2, against the reference exposure of one year, so
/// ure_eff = ure · min(1, (T/2) / 8766 h). Without scrubbing the full rate applies.
pub fn scrub_effective_ure(
    ure_per_bit: f64,
    scrub_interval_hours: Option<f64>,
) -> ModelResult<f64> {
    check_probability("URE rate (per bit read)", ure_per_bit)?;
    match scrub_interval_hours {
        None => Ok(ure_per_bit),
        Some(t) => {
            check_non_negative("scrub interval (hours)", t)?;
            Ok(ure_per_bit * (t / 2.0 / URE_REFERENCE_EXPOSURE_HOURS).min(1.0))
        }
    }
}

/// Declustered rebuild time: when the stripes of an RS(k,m) code are spread over n > k + m
/// devices, every survivor holds a share of the lost device's stripes and the rebuild work
/// is spread over them, so the rebuild time scales by (k + m)/n.
pub fn declustered_rebuild_hours(base_hours: f64, k: usize, m: usize, devices: usize) -> f64 {
    if devices <= k + m || devices == 0 {
        base_hours
    } else {
        base_hours * (k + m) as f64 / devices as f64
    }
}

// ---------------------------------------------------------------------------------------
// The Markov chain.
// ---------------------------------------------------------------------------------------

/// How failed devices are repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairModel {
    /// One device is rebuilt at a time (rate μ in every degraded state): what ectable does
    /// (`replace`/`rebuild` work on one slot), and the conservative choice.
    Serial,
    /// Every failed device is rebuilt at once (rate i·μ with i devices failed).
    Parallel,
}

/// Inputs of the durability model of one RS(k,m) group.
#[derive(Debug, Clone, PartialEq)]
pub struct DurabilityParams {
    /// Data shards per stripe (k ≥ 1; k = 1 is (m + 1)-way replication).
    pub k: usize,
    /// Parity shards per stripe (data is lost at m + 1 concurrent device failures).
    pub m: usize,
    /// Devices the stripes are spread over (n ≥ k + m; n > k + m is declustered).
    pub devices: usize,
    /// Per-device failure rate λ, per hour.
    pub failure_rate_per_hour: f64,
    /// Mean time to rebuild one device in a group of k + m devices, in hours (detection
    /// and replacement delays included); declustering shortens it by (k + m)/n.
    pub rebuild_hours: f64,
    /// Probability that a rebuild in the critical state (m devices failed, no redundancy
    /// left) meets an unrecoverable read error and so loses data (see [`ure_probability`]).
    pub critical_rebuild_loss_probability: f64,
    pub repair: RepairModel,
}

impl DurabilityParams {
    /// A plain group: n = k + m, serial repair, no URE.
    pub fn new(k: usize, m: usize, failure_rate_per_hour: f64, rebuild_hours: f64) -> Self {
        DurabilityParams {
            k,
            m,
            devices: k + m,
            failure_rate_per_hour,
            rebuild_hours,
            critical_rebuild_loss_probability: 0.0,
            repair: RepairModel::Serial,
        }
    }

    pub fn validate(&self) -> ModelResult<()> {
        check_geometry(self.k, self.m)?;
        if self.m > MAX_MODEL_PARITY {
            return invalid(format!(
                "m must be at most {MAX_MODEL_PARITY} for the Markov model (got {})",
                self.m
            ));
        }
        if self.devices < self.k + self.m {
            return invalid(format!(
                "RS({},{}) needs at least {} devices (got {})",
                self.k,
                self.m,
                self.k + self.m,
                self.devices
            ));
        }
        check_non_negative("failure rate (per hour)", self.failure_rate_per_hour)?;
        check_positive("rebuild time (hours)", self.rebuild_hours)?;
        check_probability(
            "critical rebuild loss probability",
            self.critical_rebuild_loss_probability,
        )?;
        Ok(())
    }

    /// Rebuild time after declustering, hours.
    pub fn effective_rebuild_hours(&self) -> f64 {
        declustered_rebuild_hours(self.rebuild_hours, self.k, self.m, self.devices)
    }

    /// Repair rate μ = 1 / effective rebuild time, per hour.
    pub fn repair_rate(&self) -> f64 {
        1.0 / self.effective_rebuild_hours()
    }

    /// Rates out of state `i` (i devices failed, 0 ≤ i ≤ m): (failure rate to i + 1,
    /// successful repair rate to i − 1, repair-to-loss rate).
    fn rates(&self, i: usize) -> (f64, f64, f64) {
        let lambda = (self.devices - i) as f64 * self.failure_rate_per_hour;
        let mu = if i == 0 {
            0.0
        } else {
            match self.repair {
                RepairModel::Serial => self.repair_rate(),
                RepairModel::Parallel => i as f64 * self.repair_rate(),
            }
        };
        if i == self.m && i > 0 {
            let p = self.critical_rebuild_loss_probability;
            (lambda, mu * (1.0 - p), mu * p)
        } else {
            (lambda, mu, 0.0)
        }
    }

    /// The generator matrix Q of the chain over states 0..=m + 1 (m + 1 absorbing: loss).
    pub fn generator(&self) -> Vec<Vec<f64>> {
        let s = self.m + 2;
        let mut q = vec![vec![0.0; s]; s];
        for i in 0..=self.m {
            let (up, down, lost) = self.rates(i);
            q[i][i + 1] += up;
            if i > 0 {
                q[i][i - 1] += down;
            }
            q[i][self.m + 1] += lost;
            q[i][i] = -(up + down + lost);
        }
        q
    }
}

/// Solves A x = b by Gaussian elimination with partial pivoting (A square, small, dense).
fn solve_linear(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> ModelResult<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
            .unwrap_or(col);
        if a[pivot][col] == 0.0 || !a[pivot][col].is_finite() {
            return invalid("the Markov chain's linear system is singular".into());
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (top, bottom) = a.split_at_mut(col + 1);
        let pivot_row = &top[col];
        for (r, row) in bottom.iter_mut().enumerate() {
            let f = row[col] / pivot_row[col];
            if f != 0.0 {
                for (x, y) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                    *x -= f * y;
                }
                b[col + 1 + r] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let mut s = b[row];
        for c in row + 1..n {
            s -= a[row][c] * x[c];
        }
        x[row] = s / a[row][row];
    }
    Ok(x)
}

/// Exact mean time to data loss, in hours, from every start state: element i is the MTTDL
/// with i devices already failed (0 ≤ i ≤ m).
///
/// This is the exact solution of the linear system −Q_T · T = 1 over the transient states,
/// computed in a cancellation-free order: the chain is a birth–death chain whose only exits
/// to loss are from state m, so with D_i the expected time to first move from state i up to
/// i + 1 (or to loss, from state m),
/// D_0 = 1/λ_0, D_i = (1 + μ_i·D_{i−1}) / λ_i for 0 < i < m,
/// D_m = (1 + μ_m(1 − p)·D_{m−1}) / (λ_m + μ_m·p), and T_j = Σ_{i=j}^{m} D_i.
/// Every term is positive, so the result keeps full precision even when μ/λ is 10⁶ and
/// m is large — plain Gaussian elimination ([`mttdl_hours_gaussian`]) loses a factor of
/// about μ/λ of precision per state there.
pub fn mttdl_hours_all(p: &DurabilityParams) -> ModelResult<Vec<f64>> {
    p.validate()?;
    let s = p.m + 1;
    if p.failure_rate_per_hour == 0.0 {
        return Ok(vec![f64::INFINITY; s]);
    }
    let mut d = vec![0.0f64; s];
    for i in 0..s {
        let (up, down, lost) = p.rates(i);
        let prev = if i == 0 { 0.0 } else { d[i - 1] };
        d[i] = (1.0 + down * prev) / (up + lost);
    }
    let mut t = vec![0.0f64; s];
    let mut acc = 0.0;
    for i in (0..s).rev() {
        acc += d[i];
        t[i] = acc;
    }
    Ok(t)
}

/// The same MTTDL (from every start state) by dense Gaussian elimination with partial
/// pivoting on −Q_T · T = 1. Exact in exact arithmetic; in floating point it is a
/// cross-check for well-conditioned chains (repair not many orders of magnitude faster
/// than failure), not the production solver.
pub fn mttdl_hours_gaussian(p: &DurabilityParams) -> ModelResult<Vec<f64>> {
    p.validate()?;
    let s = p.m + 1;
    if p.failure_rate_per_hour == 0.0 {
        return Ok(vec![f64::INFINITY; s]);
    }
    let q = p.generator();
    let a: Vec<Vec<f64>> = (0..s).map(|i| (0..s).map(|j| -q[i][j]).collect()).collect();
    solve_linear(a, vec![1.0; s])
}

/// Exact mean time to data loss in hours, starting with `start_failed` devices failed.
pub fn mttdl_hours(p: &DurabilityParams, start_failed: usize) -> ModelResult<f64> {
    if start_failed > p.m {
        return Ok(0.0);
    }
    Ok(mttdl_hours_all(p)?[start_failed])
}

/// The classic closed-form approximation (accurate when repair is much faster than
/// failure, μ ≫ nλ, and without URE): MTTDL ≈ μ^m · c / (λ^(m+1) · Π_{i=0}^{m} (n − i)),
/// with c = 1 for serial repair and c = m! for parallel repair.
pub fn mttdl_approx_hours(p: &DurabilityParams) -> ModelResult<f64> {
    p.validate()?;
    if p.failure_rate_per_hour == 0.0 {
        return Ok(f64::INFINITY);
    }
    let mu = p.repair_rate();
    let lambda = p.failure_rate_per_hour;
    let mut t = 1.0 / (p.devices as f64 * lambda);
    for i in 1..=p.m {
        let repair = match p.repair {
            RepairModel::Serial => mu,
            RepairModel::Parallel => i as f64 * mu,
        };
        t *= repair / ((p.devices - i) as f64 * lambda);
    }
    Ok(t)
}

fn mat_mul(a: &[Vec<f64>], b: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = a.len();
    let mut c = vec![vec![0.0; n]; n];
    for i in 0..n {
        for l in 0..n {
            let x = a[i][l];
            if x != 0.0 {
                for j in 0..n {
                    c[i][j] += x * b[l][j];
                }
            }
        }
    }
    c
}

/// exp(Q·t) by scaling and squaring with a Taylor series.
fn expm(q: &[Vec<f64>], t: f64) -> Vec<Vec<f64>> {
    let n = q.len();
    let norm = q
        .iter()
        .map(|r| r.iter().map(|x| x.abs()).sum::<f64>())
        .fold(0.0, f64::max)
        * t;
    let mut squarings = 0u32;
    let mut h = t;
    let mut scaled = norm;
    while scaled > 0.25 && squarings < 200 {
        h /= 2.0;
        scaled /= 2.0;
        squarings += 1;
    }
    let qh: Vec<Vec<f64>> = q
        .iter()
        .map(|r| r.iter().map(|x| x * h).collect())
        .collect();
    let mut result: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
        .collect();
    let mut term = result.clone();
    for order in 1..=30 {
        term = mat_mul(&term, &qh);
        let inv = 1.0 / order as f64;
        let mut small = true;
        for i in 0..n {
            for j in 0..n {
                term[i][j] *= inv;
                result[i][j] += term[i][j];
                if term[i][j].abs() > 1e-300 && term[i][j].abs() > result[i][j].abs() * 1e-18 {
                    small = false;
                }
            }
        }
        if small {
            break;
        }
    }
    for _ in 0..squarings {
        result = mat_mul(&result, &result);
    }
    result
}

/// Exact probability of data loss within `hours`, starting with `start_failed` devices
/// failed: the absorbing-state entry of exp(Q·t).
pub fn loss_probability(p: &DurabilityParams, start_failed: usize, hours: f64) -> ModelResult<f64> {
    p.validate()?;
    check_non_negative("time horizon (hours)", hours)?;
    if start_failed > p.m {
        return Ok(1.0);
    }
    if p.failure_rate_per_hour == 0.0 || hours == 0.0 {
        return Ok(0.0);
    }
    let q = p.generator();
    let e = expm(&q, hours);
    Ok(e[start_failed][p.m + 1].clamp(0.0, 1.0))
}

/// The numbers an operator reads: exact MTTDL, the approximation, loss within one year,
/// nines, and the seed-formula availability with a = MTTF/(MTTF + MTTR).
#[derive(Debug, Clone, PartialEq)]
pub struct DurabilityEstimate {
    pub start_failed: usize,
    pub failure_rate_per_hour: f64,
    pub effective_rebuild_hours: f64,
    pub mttdl_hours: f64,
    pub mttdl_years: f64,
    pub mttdl_approx_years: f64,
    pub loss_probability_1y: f64,
    /// −log10(P(loss within one year)).
    pub durability_nines_1y: f64,
    /// Per-device availability a = MTTF / (MTTF + MTTR).
    pub device_availability: f64,
    /// P(at least k of k + m devices up) with that a (the seed's binomial formula).
    pub availability: f64,
    pub availability_nines: f64,
}

/// Computes the [`DurabilityEstimate`] of `p` starting with `start_failed` devices failed.
pub fn estimate(p: &DurabilityParams, start_failed: usize) -> ModelResult<DurabilityEstimate> {
    let mttdl = mttdl_hours(p, start_failed)?;
    let approx = mttdl_approx_hours(p)?;
    let loss = loss_probability(p, start_failed, HOURS_PER_YEAR)?;
    let mttr = p.effective_rebuild_hours();
    let device_availability = if p.failure_rate_per_hour == 0.0 {
        1.0
    } else {
        let mttf = 1.0 / p.failure_rate_per_hour;
        mttf / (mttf + mttr)
    };
    let unavail = rs_unavailability(device_availability, p.k, p.m)?;
    Ok(DurabilityEstimate {
        start_failed,
        failure_rate_per_hour: p.failure_rate_per_hour,
        effective_rebuild_hours: mttr,
        mttdl_hours: mttdl,
        mttdl_years: mttdl / HOURS_PER_YEAR,
        mttdl_approx_years: approx / HOURS_PER_YEAR,
        loss_probability_1y: loss,
        durability_nines_1y: nines(loss),
        device_availability,
        availability: 1.0 - unavail,
        availability_nines: nines(unavail),
    })
}

// ---------------------------------------------------------------------------------------
// Monte Carlo simulation.
// ---------------------------------------------------------------------------------------

/// Inputs of [`simulate`].
#[derive(Debug, Clone, PartialEq)]
pub struct SimParams {
    pub durability: DurabilityParams,
    /// Years simulated per trial.
    pub years: f64,
    /// Independent trials (arrays).
    pub trials: u64,
    pub seed: u64,
}

/// What [`simulate`] observed.
#[derive(Debug, Clone, PartialEq)]
pub struct SimReport {
    pub trials: u64,
    pub array_years: f64,
    pub device_failures: u64,
    pub rebuilds: u64,
    /// Losses from m + 1 concurrent failures plus losses from URE in a critical rebuild.
    pub losses: u64,
    pub ure_losses: u64,
    /// Losses per array-year (→ 1/MTTDL), with a 95 % Poisson score interval.
    pub losses_per_year: f64,
    pub losses_per_year_ci95: (f64, f64),
    /// Trials with at least one loss within the horizon, and that fraction with a 95 %
    /// Wilson interval (→ P(loss within `years`)).
    pub trials_with_loss: u64,
    pub p_loss: f64,
    pub p_loss_ci95: (f64, f64),
}

const Z95: f64 = 1.959_963_984_540_054;

/// 95 % score interval for a Poisson rate from `count` events over `exposure`.
pub fn poisson_ci95(count: u64, exposure: f64) -> (f64, f64) {
    let l = count as f64;
    let z2 = Z95 * Z95;
    let centre = l + z2 / 2.0;
    let half = Z95 * (l + z2 / 4.0).sqrt();
    (
        ((centre - half) / exposure).max(0.0),
        (centre + half) / exposure,
    )
}

/// 95 % Wilson score interval for a binomial proportion of `successes` in `n`.
pub fn wilson_ci95(successes: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n_f = n as f64;
    let p = successes as f64 / n_f;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = Z95 * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    let lo = if successes == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if successes == n {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    (lo, hi)
}

fn exp_sample(rng: &mut SmallRng, rate: f64) -> f64 {
    if rate <= 0.0 {
        return f64::INFINITY;
    }
    let u: f64 = rng.random::<f64>();
    -(1.0 - u).ln() / rate
}

/// Seeded Monte Carlo simulation of device failures (exponential lifetimes), rebuilds
/// (exponential durations with the model's mean, serial or parallel as configured) and
/// URE during critical rebuilds. After a loss the array is restored as new and the trial
/// goes on, so losses per array-year estimate 1/MTTDL.
pub fn simulate(sp: &SimParams) -> ModelResult<SimReport> {
    let p = &sp.durability;
    p.validate()?;
    check_positive("simulated years", sp.years)?;
    if sp.trials == 0 {
        return invalid("the number of trials must be at least 1".into());
    }
    let mut rng = SmallRng::seed_from_u64(sp.seed);
    let n = p.devices;
    let horizon = sp.years * HOURS_PER_YEAR;
    let lambda = p.failure_rate_per_hour;
    let mu = p.repair_rate();
    let mut r = SimReport {
        trials: sp.trials,
        array_years: sp.years * sp.trials as f64,
        device_failures: 0,
        rebuilds: 0,
        losses: 0,
        ure_losses: 0,
        losses_per_year: 0.0,
        losses_per_year_ci95: (0.0, 0.0),
        trials_with_loss: 0,
        p_loss: 0.0,
        p_loss_ci95: (0.0, 0.0),
    };
    // Per device: the time of its next event (failure when up, rebuild end when failed and
    // being rebuilt, infinity when failed and waiting for the serial rebuild slot).
    let mut next = vec![0.0f64; n];
    let mut failed = vec![false; n];
    let mut waiting: Vec<usize> = Vec::new();
    for _ in 0..sp.trials {
        let mut t = 0.0;
        let mut lost_in_trial = false;
        let reset = |t: f64, rng: &mut SmallRng, next: &mut [f64], failed: &mut [bool]| {
            for d in 0..n {
                failed[d] = false;
                next[d] = t + exp_sample(rng, lambda);
            }
        };
        reset(t, &mut rng, &mut next, &mut failed);
        waiting.clear();
        loop {
            let (dev, when) = next
                .iter()
                .copied()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or((0, f64::INFINITY));
            if when > horizon {
                break;
            }
            t = when;
            let failed_count = failed.iter().filter(|&&f| f).count();
            if !failed[dev] {
                r.device_failures += 1;
                failed[dev] = true;
                if failed_count + 1 > p.m {
                    r.losses += 1;
                    lost_in_trial = true;
                    waiting.clear();
                    reset(t, &mut rng, &mut next, &mut failed);
                    continue;
                }
                let rebuilding = failed_count - waiting.len();
                if p.repair == RepairModel::Parallel || rebuilding == 0 {
                    next[dev] = t + exp_sample(&mut rng, mu);
                } else {
                    next[dev] = f64::INFINITY;
                    waiting.push(dev);
                }
            } else {
                // A rebuild finished.
                r.rebuilds += 1;
                if failed_count == p.m
                    && p.m > 0
                    && rng.random::<f64>() < p.critical_rebuild_loss_probability
                {
                    r.losses += 1;
                    r.ure_losses += 1;
                    lost_in_trial = true;
                    waiting.clear();
                    reset(t, &mut rng, &mut next, &mut failed);
                    continue;
                }
                failed[dev] = false;
                next[dev] = t + exp_sample(&mut rng, lambda);
                if !waiting.is_empty() {
                    let w = waiting.remove(0);
                    next[w] = t + exp_sample(&mut rng, mu);
                }
            }
        }
        if lost_in_trial {
            r.trials_with_loss += 1;
        }
    }
    r.losses_per_year = r.losses as f64 / r.array_years;
    r.losses_per_year_ci95 = poisson_ci95(r.losses, r.array_years);
    r.p_loss = r.trials_with_loss as f64 / sp.trials as f64;
    r.p_loss_ci95 = wilson_ci95(r.trials_with_loss, sp.trials);
    Ok(r)
}

#[cfg(test)]
mod tests;
