//! ecbench's command line: the options of every workload (fio's names where fio has them),
//! the workloads (`--rw`) and the parsers of sizes and times.

use crate::parse_size;
use clap::{Args, ValueEnum};
use ectable_devices::BackendKind;
use std::time::Duration;

// ecbench's options (the binary adds its name, version, about and after-help text; a doc
// comment here would replace its about line).
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A fio job file: a [global] section and one job section whose options ecbench
    /// supports (fio's names; the section name is the job's name). Options given on the
    /// command line take precedence over the file's.
    #[arg(value_name = "JOBFILE")]
    pub job_file: Option<std::path::PathBuf>,
    /// Devices or regular files, comma or colon separated (fio: --filename).
    #[arg(long, alias = "filename", value_name = "D1,D2,...", required = true)]
    pub devices: String,
    /// Data shards: format the devices as RS(k,m) first.
    #[arg(long, requires = "m", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub k: Option<u16>,
    /// Parity shards (with --k).
    #[arg(long, requires = "k", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub m: Option<u16>,
    /// Chunk size when formatting [default: 64K].
    #[arg(long, value_name = "SIZE", value_parser = size_arg, requires = "k")]
    pub chunk_size: Option<u64>,
    /// Create missing regular files of this size (only when formatting).
    #[arg(long, value_name = "SIZE", value_parser = size_arg, requires = "k")]
    pub create_size: Option<u64>,
    /// Format devices that already hold an ectable array.
    #[arg(long)]
    pub force: bool,
    /// Format without the sync journal (a version 1 array: synced writes take short
    /// stripes), to compare the two.
    #[arg(long, requires = "k")]
    pub no_sync_journal: bool,
    /// Format with every value inline (a version 6 array, as `ectable format
    /// --inline-values`), to compare with values placed on device blocks.
    #[arg(long, requires = "k")]
    pub inline_values: bool,
    /// Format with version 3's wide log records (as `ectable format --wide-records`), to
    /// compare with compact records.
    #[arg(long, requires = "k", conflicts_with_all = ["inline_values", "no_sync_journal"])]
    pub wide_records: bool,
    /// Format with every record inside one stripe (a version 4 array, as `ectable format
    /// --whole-records`), to compare with records that continue in the next stripe.
    #[arg(long, requires = "k", conflicts_with_all = ["inline_values", "no_sync_journal", "wide_records"])]
    pub whole_records: bool,
    /// Workload (randrw = random reads and writes, rw = sequential ones, see --rwmixread).
    #[arg(long, value_enum, required = true)]
    pub rw: Rw,
    /// Percentage of reads in a mixed workload.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub rwmixread: u8,
    /// Value size of one operation (4K = 4096).
    #[arg(long, default_value = "4K", value_name = "SIZE", value_parser = size_arg)]
    pub bs: u64,
    /// Operations in flight per job.
    ///
    /// Reads: each job keeps iodepth reads in flight through Engine::read_queue, submitting
    /// the next as each completes (as fio keeps its queue full); a read's latency runs from
    /// its submission to its completion.
    ///
    /// Writes: each job keeps up to iodepth puts in flight, in up to 8 groups of equal size:
    /// it issues a group's puts without waiting (the engine packs them into stripes and its
    /// flusher writes full stripes in the background), and once 8 groups are in flight waits
    /// until the oldest is durable (Engine::wait_durable), so the devices never idle between
    /// groups. A write's latency runs from its put until its group was durable. --iodepth 1
    /// puts and waits one at a time: durable synchronous puts.
    ///
    /// Mixed: per batch the puts go first, then the reads in one get_many, then one sync.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub iodepth: u32,
    /// Total bytes to write, or the size of the data set to read.
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub size: Option<u64>,
    /// Time limit (seconds by default; 500ms, 10s, 2m are accepted).
    #[arg(long, value_name = "TIME", value_parser = runtime_arg)]
    pub runtime: Option<Duration>,
    /// Run for the whole --runtime, going over the data set again (fio: time_based).
    #[arg(long = "time-based", alias = "time_based", requires = "runtime")]
    pub time_based: bool,
    /// Cap each job at this many operations per second (fio: rate_iops): a read is
    /// submitted when it is due (job start + n / rate), or as soon as a slot of --iodepth
    /// frees if it is late; its latency still runs from its submission. Read workloads
    /// (read, randread) and their raw pass. Below the devices' limit this measures latency
    /// at a fixed load instead of at a full queue.
    #[arg(long = "rate-iops", alias = "rate_iops", value_name = "IOPS",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub rate_iops: Option<u64>,
    /// Threads issuing the workload against the one engine (they share --size).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub numjobs: u32,
    /// Seed of the data set's values and of random offsets (fio: randseed).
    #[arg(long, alias = "randseed", default_value_t = 1)]
    pub seed: u64,
    /// I/O engine: auto, uring (io_uring) or psync.
    #[arg(long, alias = "ioengine", default_value = "auto", value_parser = engine_arg)]
    pub io_engine: BackendKind,
    /// Measure the same pattern on the raw devices first and print engine/raw ratios.
    #[arg(long)]
    pub compare_raw: bool,
    /// Compare every value read with the data set's (read and randread).
    #[arg(long)]
    pub verify: bool,
    /// Output format: json+ adds fio's latency histogram (clat_ns.bins) to json.
    #[arg(long, value_enum, default_value = "normal")]
    pub output_format: OutputFormat,
    /// Run the workload this long before counting anything (fio: ramp_time).
    #[arg(long = "ramp-time", alias = "ramp_time", value_name = "TIME", value_parser = runtime_arg)]
    pub ramp_time: Option<Duration>,
    /// Start of the data set, in bytes of values: rows from OFFSET / bs on (fio: the I/O
    /// region's start in the file). The raw pass starts OFFSET / devices later on each device.
    #[arg(long, value_name = "SIZE", value_parser = offset_arg, default_value = "0")]
    pub offset: u64,
    /// Completion-latency percentiles to report, colon separated, at most 20
    /// (fio: percentile_list) [default: fio's 17, 1 to 99.99].
    #[arg(long = "percentile-list", alias = "percentile_list", value_name = "P:P:...",
          value_parser = percentile_list_arg)]
    pub percentile_list: Option<PercentileList>,
    /// Print the figures so far this often while the run goes on (fio: status-interval).
    #[arg(long = "status-interval", alias = "status_interval", value_name = "TIME",
          value_parser = runtime_arg)]
    pub status_interval: Option<Duration>,
    /// Write fio's latency logs PREFIX_lat.N.log, PREFIX_clat.N.log and PREFIX_slat.N.log
    /// (one per job N) of the measured engine pass (fio: write_lat_log).
    #[arg(long = "write-lat-log", alias = "write_lat_log", value_name = "PREFIX")]
    pub write_lat_log: Option<String>,
    /// Write fio's bandwidth log PREFIX_bw.N.log (fio: write_bw_log).
    #[arg(long = "write-bw-log", alias = "write_bw_log", value_name = "PREFIX")]
    pub write_bw_log: Option<String>,
    /// Write fio's IOPS log PREFIX_iops.N.log (fio: write_iops_log).
    #[arg(
        long = "write-iops-log",
        alias = "write_iops_log",
        value_name = "PREFIX"
    )]
    pub write_iops_log: Option<String>,
    /// Average the logs over windows of this many milliseconds; 0 logs every operation
    /// (fio: log_avg_msec).
    #[arg(
        long = "log-avg-msec",
        alias = "log_avg_msec",
        value_name = "MSEC",
        default_value_t = 0
    )]
    pub log_avg_msec: u64,
    /// Draw throughput over time and the latency distribution into this SVG file (engine
    /// and raw pass side by side with --compare-raw). Throughput is then sampled every
    /// 100 ms instead of every second.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<std::path::PathBuf>,
    /// Write the report to this file instead of stdout (fio's --output).
    #[arg(long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Job name shown in the report.
    #[arg(long, default_value = "ecbench")]
    pub name: String,
    /// For fio compatibility: all I/O is O_DIRECT, so only 1 is accepted.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=1))]
    pub direct: Option<u8>,
    /// For fio compatibility: the jobs are always reported as one group.
    #[arg(long = "group-reporting", alias = "group_reporting")]
    pub group_reporting: bool,
    /// --rw overwrite: fill levels, fractions of the usable capacity.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.75,0.9")]
    pub fill: Vec<f64>,
    /// --rw overwrite: rows overwritten, as a multiple of the rows loaded.
    #[arg(long, default_value_t = 2.0)]
    pub loops: f64,
    /// Segment size when formatting [default: 8M].
    #[arg(long, value_name = "SIZE", value_parser = size_arg, requires = "k")]
    pub segment_size: Option<u64>,
    /// --rw overwrite: which rows are overwritten (fio: random_distribution): `random`
    /// (uniform), or `zoned:A/S:A/S...`, A percent of the writes to the next S percent of
    /// the rows (`zoned:90/10:10/90`: 90 % of the writes to the first 10 % of the rows).
    #[arg(
        long,
        alias = "random_distribution",
        default_value = "random",
        value_name = "DIST",
        value_parser = distribution_arg
    )]
    pub random_distribution: Distribution,
    /// Make one device slow for the measured pass (after the data set is laid down):
    /// IDX:DELAY, e.g. 2:15ms, every request to device IDX of --devices then waits DELAY
    /// first (the project's fault-injecting device; it needs the psync I/O engine, which
    /// is then chosen). For the fail-slow figure: compare with a run without it.
    #[arg(long, value_name = "IDX:DELAY", value_parser = slow_device_arg)]
    pub slow_device: Option<(usize, Duration)>,
    /// --rw table-range: rows per range read.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub range_rows: u32,
    /// --rw table-range: read each range with `Tables::range_view`, which checks every
    /// row and then reads its columns in place, instead of `Tables::range`, which copies
    /// them into a map of owned names and values. Either way every column of every row is
    /// read.
    #[arg(long)]
    pub range_view: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rw {
    Write,
    Read,
    Randread,
    Randwrite,
    /// Random reads and writes (--rwmixread percent reads); `mixed` is an older name.
    #[value(name = "randrw", alias = "mixed")]
    Mixed,
    /// Sequential reads and writes over the data set (--rwmixread percent reads).
    #[value(name = "rw", alias = "readwrite")]
    Readwrite,
    /// Space reclamation: fill a fresh array to each --fill level, then overwrite random
    /// rows --loops times the data; rates against the fresh-array ingest, write
    /// amplification. Needs --k/--m (formats the devices for each level).
    Overwrite,
    /// Reopen time for --size bytes of values, with and without a recent checkpoint. Needs
    /// --k/--m.
    Reopen,
    /// Typed tables: put_row of random rows of 10 columns, ~--bs bytes each.
    TablePut,
    /// Typed tables: get_rows of --iodepth random rows at once.
    TableGet,
    /// Typed tables: range reads of --range-rows rows from random start keys.
    TableRange,
    /// Typed tables: random puts and gets, --rwmixread percent gets.
    TableMixed,
}

impl Rw {
    /// The pattern's name: fio's (`randrw`, `rw`, ...), ecbench's own for the table and
    /// space workloads.
    pub fn name(self) -> &'static str {
        match self {
            Rw::Write => "write",
            Rw::Read => "read",
            Rw::Randread => "randread",
            Rw::Randwrite => "randwrite",
            Rw::Mixed => "randrw",
            Rw::Readwrite => "rw",
            Rw::Overwrite => "overwrite",
            Rw::Reopen => "reopen",
            Rw::TablePut => "table-put",
            Rw::TableGet => "table-get",
            Rw::TableRange => "table-range",
            Rw::TableMixed => "table-mixed",
        }
    }
    pub fn random(self) -> bool {
        matches!(
            self,
            Rw::Randread
                | Rw::Randwrite
                | Rw::Mixed
                | Rw::TablePut
                | Rw::TableGet
                | Rw::TableRange
                | Rw::TableMixed
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Normal,
    Json,
    /// json with fio's latency histogram: `clat_ns.bins`.
    #[value(name = "json+")]
    JsonPlus,
}

/// Percentiles to report (`--percentile_list`), each in (0, 100].
#[derive(Debug, Clone, PartialEq)]
pub struct PercentileList(pub Vec<f64>);

pub fn percentile_list_arg(s: &str) -> Result<PercentileList, String> {
    let mut v = Vec::new();
    for part in s.split(':') {
        let p: f64 = part
            .trim()
            .parse()
            .map_err(|_| format!("'{part}' is not a percentile (give e.g. 50:99:99.9)"))?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(format!("percentile {part} must lie in (0, 100]"));
        }
        v.push(p);
    }
    if v.len() > 20 {
        return Err(format!(
            "{} percentiles given; fio takes at most 20",
            v.len()
        ));
    }
    Ok(PercentileList(v))
}

/// A byte offset: like a size, but 0 is allowed.
pub fn offset_arg(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

pub fn size_arg(s: &str) -> Result<u64, String> {
    match parse_size(s) {
        Ok(0) => Err("must be greater than zero".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

/// Which rows a random workload touches: uniformly, or fio's `zoned` form (each zone a
/// share of the accesses and of the rows, zones taken in order from the first row).
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    Uniform,
    /// (percent of the accesses, percent of the rows), both summing to 100.
    Zoned(Vec<(f64, f64)>),
}

impl Distribution {
    /// A row in 0..n for the uniform draw `r` in [0, 1) and the draw `within` in [0, 1).
    pub fn pick(&self, n: u64, r: f64, within: f64) -> u64 {
        let Distribution::Zoned(zones) = self else {
            return ((r * n as f64) as u64).min(n.saturating_sub(1));
        };
        let (mut acc, mut start) = (0.0, 0.0);
        for (i, (a, s)) in zones.iter().enumerate() {
            acc += a / 100.0;
            if r < acc || i + 1 == zones.len() {
                let lo = (start / 100.0 * n as f64) as u64;
                let hi = (((start + s) / 100.0 * n as f64) as u64).clamp(lo + 1, n.max(1));
                return (lo + (within * (hi - lo) as f64) as u64).min(hi - 1);
            }
            start += s;
        }
        0
    }

    pub fn name(&self) -> String {
        match self {
            Distribution::Uniform => "random".into(),
            Distribution::Zoned(z) => {
                let parts: Vec<String> = z.iter().map(|(a, s)| format!("{a}/{s}")).collect();
                format!("zoned:{}", parts.join(":"))
            }
        }
    }
}

pub fn distribution_arg(s: &str) -> Result<Distribution, String> {
    if s == "random" {
        return Ok(Distribution::Uniform);
    }
    let Some(rest) = s.strip_prefix("zoned:") else {
        return Err(format!(
            "'{s}': give 'random' or 'zoned:A/S:A/S...' (A percent of the accesses to S percent \
             of the rows)"
        ));
    };
    let mut zones = Vec::new();
    for part in rest.split(':') {
        let (a, z) = part
            .split_once('/')
            .ok_or_else(|| format!("zone '{part}': give ACCESS%/SIZE%, e.g. 90/10"))?;
        let a: f64 = a
            .parse()
            .map_err(|_| format!("zone '{part}': bad access percentage"))?;
        let z: f64 = z
            .parse()
            .map_err(|_| format!("zone '{part}': bad size percentage"))?;
        if !((0.0..=100.0).contains(&a) && z > 0.0 && z <= 100.0) {
            return Err(format!(
                "zone '{part}': percentages must lie in 0..100 (size above 0)"
            ));
        }
        zones.push((a, z));
    }
    let (sa, sz): (f64, f64) = zones
        .iter()
        .fold((0.0, 0.0), |(x, y), (a, z)| (x + a, y + z));
    if (sa - 100.0).abs() > 1e-6 || (sz - 100.0).abs() > 1e-6 {
        return Err(format!(
            "'{s}': the access percentages sum to {sa} and the sizes to {sz}; both must be 100"
        ));
    }
    Ok(Distribution::Zoned(zones))
}

pub fn slow_device_arg(s: &str) -> Result<(usize, Duration), String> {
    let (idx, delay) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}': give IDX:DELAY, e.g. 2:15ms"))?;
    let idx = idx
        .parse()
        .map_err(|_| format!("'{s}': the device index '{idx}' is not a number"))?;
    Ok((idx, runtime_arg(delay)?))
}

pub fn engine_arg(s: &str) -> Result<BackendKind, String> {
    s.parse()
}

/// Parses fio-style times: seconds by default, or with a unit (us, ms, s, m, h).
pub fn runtime_arg(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().map_err(|_| format!("invalid time '{s}'"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" | "sec" => 1.0,
        "ms" | "msec" => 1e-3,
        "us" | "usec" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown time unit '{other}' (us, ms, s, m, h)")),
    };
    match v * scale {
        secs if secs > 0.0 && secs < 1e7 => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!("time '{s}' must be greater than zero")),
    }
}

impl BenchArgs {
    /// The percentiles to report: `--percentile_list`, or fio's default list.
    pub fn percentiles(&self) -> Vec<f64> {
        match &self.percentile_list {
            Some(PercentileList(v)) => v.clone(),
            None => crate::bench::measure::PERCENTILES.to_vec(),
        }
    }

    /// Whether any of fio's per-I/O logs is asked for.
    pub fn logs(&self) -> bool {
        self.write_lat_log.is_some() || self.write_bw_log.is_some() || self.write_iops_log.is_some()
    }

    /// How the measured passes are measured.
    pub fn measure_cfg(&self) -> crate::bench::measure::MeasureCfg {
        crate::bench::measure::MeasureCfg {
            ramp: self.ramp_time.unwrap_or_default(),
            // A chart of a run of a few seconds needs more than a point a second.
            tick: self
                .chart
                .as_ref()
                .map(|_| std::time::Duration::from_millis(100)),
            log_ios: self.logs(),
            status_every: self.status_interval,
            status_json: self.output_format != OutputFormat::Normal,
        }
    }

    /// Percentage of the workload's operations that are reads.
    pub fn read_pct(&self) -> u8 {
        match self.rw {
            Rw::Read | Rw::Randread => 100,
            Rw::Write | Rw::Randwrite | Rw::Overwrite | Rw::Reopen | Rw::TablePut => 0,
            Rw::TableGet | Rw::TableRange => 100,
            Rw::Mixed | Rw::Readwrite | Rw::TableMixed => self.rwmixread,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_parse_like_fio() {
        assert_eq!(runtime_arg("10").ok(), Some(Duration::from_secs(10)));
        assert_eq!(runtime_arg("10s").ok(), Some(Duration::from_secs(10)));
        assert_eq!(runtime_arg("500ms").ok(), Some(Duration::from_millis(500)));
        assert_eq!(runtime_arg("2m").ok(), Some(Duration::from_secs(120)));
        assert!(runtime_arg("0").is_err() && runtime_arg("5x").is_err());
        assert!(runtime_arg("").is_err() && runtime_arg("nan").is_err());
    }

    #[test]
    fn zoned_distribution_sends_its_share_to_each_zone() {
        let d = distribution_arg("zoned:90/10:10/90").unwrap();
        assert_eq!(d.name(), "zoned:90/10:10/90");
        let n = 1000u64;
        let mut hot = 0;
        let steps = 10_000;
        for i in 0..steps {
            let r = (i as f64 + 0.5) / steps as f64;
            let within = ((i * 7919) % steps) as f64 / steps as f64;
            let row = d.pick(n, r, within);
            assert!(row < n);
            if row < 100 {
                hot += 1;
            }
        }
        assert_eq!(hot, 9000);
        assert_eq!(Distribution::Uniform.pick(n, 0.9999999, 0.0), 999);
        for bad in [
            "zoned:90/10",
            "zoned:50/50:60/50",
            "zoned:x/10:100/90",
            "pareto:1.2",
        ] {
            assert!(distribution_arg(bad).is_err(), "{bad}");
        }
    }
}
