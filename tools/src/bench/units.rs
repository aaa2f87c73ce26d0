//! Numbers as fio prints them (its `num2str`: at most 4 significant digits, a unit prefix
//! and no space), so that ecbench's report reads like fio's. These are fio's layout, not
//! general-purpose sizes: everything else prints sizes with `crate::term`.

/// One mebibyte.
pub const MIB: u64 = 1 << 20;

/// fio's num2str: at most 4 significant digits with a unit prefix.
fn num2str(v: f64, base: f64, units: &[&str]) -> String {
    let (mut v, mut u) = (v, 0);
    while v >= 10000.0 && u + 1 < units.len() {
        v /= base;
        u += 1;
    }
    let prec = match (u, v) {
        (0, _) => 0,
        (_, v) if v < 10.0 => 2,
        (_, v) if v < 100.0 => 1,
        _ => 0,
    };
    format!("{v:.prec$}{}", units[u])
}

/// Bytes in binary units: `11.1MiB`.
pub fn human_bin(v: f64) -> String {
    num2str(v, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB"])
}

/// Bytes in decimal units: `11.6MB`.
pub fn human_dec(v: f64) -> String {
    num2str(v, 1000.0, &["B", "kB", "MB", "GB", "TB"])
}

/// A count: `385k`.
pub fn human_count(v: f64) -> String {
    num2str(v, 1000.0, &["", "k", "M", "G"])
}

/// A latency in nanoseconds: `1.25ms`, `12.5us`, `800ns`.
pub fn human_ns(ns: u64) -> String {
    match ns {
        n if n >= 1_000_000 => format!("{:.2}ms", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}us", n as f64 / 1e3),
        n => format!("{n}ns"),
    }
}

/// fio's choice of latency unit for a range of nanosecond values (stat.c).
pub fn lat_unit(min: u64, max: u64) -> (&'static str, f64) {
    match (min, max) {
        (a, b) if a > 2_000_000 && b > 99_999_999 => ("msec", 1e6),
        (a, b) if a > 2000 && b > 99_999 => ("usec", 1e3),
        _ => ("nsec", 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_fio() {
        assert_eq!(human_bin(11.1 * 1048576.0), "11.1MiB");
        assert_eq!(human_bin(4096.0), "4096B");
        assert_eq!(human_count(2844.0), "2844");
        assert_eq!(human_count(385_000.0), "385k");
        assert_eq!(lat_unit(400_000, 9_000_000), ("usec", 1e3));
    }
}
