//! fio's per-job logs of the measured engine pass (`--write_lat_log`, `--write_bw_log`,
//! `--write_iops_log`, `--log_avg_msec`), in fio's format so that fio's plotting and parsing
//! tools read them: one line per entry, `time, value, direction, block size, offset`, time
//! in ms since the measured part of the pass began, direction 0 for reads and 1 for writes.
//!
//! - Without `--log_avg_msec` (0): one line per operation at its completion. Latency logs
//!   give its latency in ns (`_lat` and `_clat` the same, since ecbench does not split off
//!   a submission latency, and `_slat` 0); the bandwidth log its bytes over its latency,
//!   computed as fio does (bytes x 10^6 / latency in ns); the IOPS log 1. The block-size
//!   column is the operation's bytes, the offset 0 (an engine operation has no device
//!   offset).
//! - With `--log_avg_msec N`: per window of N ms and direction that completed something, one
//!   line at the window's end: mean latency in ns, bandwidth in KiB/s, operations per
//!   second; block size and offset 0, as fio writes them.

use crate::bench::args::BenchArgs;
use crate::bench::measure::{IoLogEntry, Pass};
use anyhow::{Context, Result};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

#[derive(Clone, Copy)]
enum Kind {
    Lat,
    Slat,
    Bw,
    Iops,
}

/// Writes the logs the command line asks for, one set per job; returns their paths.
pub fn write(cli: &BenchArgs, pass: &Pass) -> Result<Vec<PathBuf>> {
    let mut files: Vec<(String, Kind)> = Vec::new();
    if let Some(p) = &cli.write_lat_log {
        files.push((format!("{p}_lat"), Kind::Lat));
        files.push((format!("{p}_clat"), Kind::Lat));
        files.push((format!("{p}_slat"), Kind::Slat));
    }
    if let Some(p) = &cli.write_bw_log {
        files.push((format!("{p}_bw"), Kind::Bw));
    }
    if let Some(p) = &cli.write_iops_log {
        files.push((format!("{p}_iops"), Kind::Iops));
    }
    let mut written = Vec::new();
    for (j, dirs) in pass.job_logs.iter().enumerate() {
        let lines = entries(dirs, cli.log_avg_msec);
        for (stem, kind) in &files {
            let path = PathBuf::from(format!("{stem}.{}.log", j + 1));
            let f = std::fs::File::create(&path)
                .with_context(|| format!("creating the log {}", path.display()))?;
            let mut w = BufWriter::new(f);
            for e in &lines {
                let value = match kind {
                    Kind::Lat => e.lat_ns,
                    Kind::Slat => 0,
                    Kind::Bw => e.bw,
                    Kind::Iops => e.iops,
                };
                writeln!(w, "{}, {value}, {}, {}, 0", e.at_ms, e.dir, e.bs)
                    .with_context(|| format!("writing the log {}", path.display()))?;
            }
            w.flush()
                .with_context(|| format!("writing the log {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// One line of a log, with the value of each kind.
#[derive(Debug, PartialEq)]
struct Line {
    at_ms: u64,
    dir: usize,
    bs: u64,
    lat_ns: u64,
    bw: u64,
    iops: u64,
}

/// The lines of one job's logs, in time order (reads before writes at the same time).
fn entries(dirs: &[Vec<IoLogEntry>; 2], avg_ms: u64) -> Vec<Line> {
    let mut out = Vec::new();
    match std::num::NonZeroU64::new(avg_ms) {
        None => {
            for (dir, log) in dirs.iter().enumerate() {
                out.extend(log.iter().map(|&(at_ms, ns, bytes)| Line {
                    at_ms,
                    dir,
                    bs: bytes,
                    lat_ns: ns,
                    bw: bytes.saturating_mul(1_000_000) / ns.max(1),
                    iops: 1,
                }));
            }
        }
        Some(avg) => {
            let avg_ms = avg.get();
            for (dir, log) in dirs.iter().enumerate() {
                // Per window: (operations, bytes, latency sum).
                let mut windows: std::collections::BTreeMap<u64, (u64, u64, u128)> =
                    Default::default();
                for &(at_ms, ns, bytes) in log {
                    let w = windows.entry(at_ms / avg_ms).or_default();
                    w.0 += 1;
                    w.1 += bytes;
                    w.2 += u128::from(ns);
                }
                out.extend(windows.into_iter().map(|(w, (ops, bytes, lat))| Line {
                    at_ms: (w + 1) * avg_ms,
                    dir,
                    bs: 0,
                    lat_ns: (lat / u128::from(ops)) as u64,
                    bw: bytes * 1000 / avg_ms / 1024,
                    iops: ops * 1000 / avg_ms,
                }));
            }
        }
    }
    out.sort_by_key(|l| (l.at_ms, l.dir));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_io_and_averaged_lines_follow_fio() {
        let dirs = [
            vec![(0, 42_966, 4096), (3, 1_000, 4096)],
            vec![(1, 2_000, 8192)],
        ];
        let per_io = entries(&dirs, 0);
        assert_eq!(per_io.len(), 3);
        // fio's own figure for a 4 KiB read completing in 42,966 ns.
        assert_eq!(
            (per_io[0].bw, per_io[0].iops, per_io[0].bs),
            (95_331, 1, 4096)
        );
        assert_eq!((per_io[1].at_ms, per_io[1].dir), (1, 1));
        let avg = entries(&dirs, 200);
        assert_eq!(avg.len(), 2);
        assert_eq!(avg[0].at_ms, 200);
        assert_eq!(avg[0].lat_ns, (42_966 + 1_000) / 2);
        assert_eq!(avg[0].iops, 10);
        assert_eq!(avg[0].bw, 8192 * 5 / 1024);
        assert_eq!((avg[1].dir, avg[1].bs), (1, 0));
    }
}
