//! The control file's command language: one command per line, written into `.faults` in the
//! mount (`echo 'dev3 delay 5ms' > MNT/.faults`); reading the file reports every device.
//!
//! ```text
//! DEV delay DURATION        add DURATION to every read and write (0 takes it away)
//! DEV eio OFFSET LENGTH     reads touching the range fail with EIO until it is written
//! DEV fail-writes on|off    every write fails with EIO
//! DEV fail-fsync on|off     every fsync fails with EIO
//! DEV dead on|off           every request fails with EIO
//! DEV clear                 take every fault away
//! ```
//!
//! DEV is a device's name, its index, or `all`. Sizes take binary suffixes (4K = 4096, 1M,
//! 1MiB), durations
//! humantime's forms (500us, 5ms, 1s).

use crate::device::Device;
use std::fmt::Write as _;
use std::sync::Arc;

/// Applies every line of `text`; the first bad line stops it with an error naming it (the
/// lines before it are applied).
pub(crate) fn apply(devices: &[Arc<Device>], text: &str) -> Result<(), String> {
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        apply_line(devices, line).map_err(|e| format!("{line:?}: {e}"))?;
    }
    Ok(())
}

fn apply_line(devices: &[Arc<Device>], line: &str) -> Result<(), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (dev, cmd, args) = match words.as_slice() {
        [dev, cmd, args @ ..] => (*dev, *cmd, args),
        _ => return Err("expected: DEVICE COMMAND [ARGUMENTS]".into()),
    };
    let targets: Vec<&Arc<Device>> = if dev == "all" {
        devices.iter().collect()
    } else if let Some(d) = devices.iter().find(|d| d.name == dev) {
        vec![d]
    } else if let Some(d) = dev.parse::<usize>().ok().and_then(|i| devices.get(i)) {
        vec![d]
    } else {
        let names: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
        return Err(format!(
            "no device {dev:?} (devices: {}, or an index, or all)",
            names.join(", ")
        ));
    };
    let on_off = |args: &[&str]| match args {
        ["on"] => Ok(true),
        ["off"] => Ok(false),
        _ => Err(format!("{cmd} takes on or off")),
    };
    match cmd {
        "delay" => {
            let [d] = args else {
                return Err("delay takes one duration (5ms, 500us, 0)".into());
            };
            let d = if *d == "0" {
                std::time::Duration::ZERO
            } else {
                humantime::parse_duration(d).map_err(|e| format!("delay {d:?}: {e}"))?
            };
            targets.iter().for_each(|t| t.faults.set_delay(d));
        }
        "eio" => {
            let [off, len] = args else {
                return Err("eio takes an offset and a length".into());
            };
            let sizes = parse_size::Config::new().with_binary();
            let off = sizes
                .parse_size(off)
                .map_err(|e| format!("offset {off:?}: {e}"))?;
            let len = sizes
                .parse_size(len)
                .map_err(|e| format!("length {len:?}: {e}"))?;
            let end = off
                .checked_add(len)
                .ok_or_else(|| "offset + length overflows".to_string())?;
            if len == 0 {
                return Err("the length must not be 0".into());
            }
            targets
                .iter()
                .for_each(|t| t.faults.add_read_error(off..end));
        }
        "fail-writes" => {
            let v = on_off(args)?;
            targets.iter().for_each(|t| t.faults.set_fail_writes(v));
        }
        "fail-fsync" => {
            let v = on_off(args)?;
            targets.iter().for_each(|t| t.faults.set_fail_fsync(v));
        }
        "dead" => {
            let v = on_off(args)?;
            targets.iter().for_each(|t| t.faults.set_dead(v));
        }
        "clear" if args.is_empty() => targets.iter().for_each(|t| t.faults.clear()),
        _ => {
            return Err(format!(
                "unknown command {cmd:?} (delay, eio, fail-writes, fail-fsync, dead, clear)"
            ))
        }
    }
    Ok(())
}

/// A line per device: its faults and what fired.
pub(crate) fn report(devices: &[Arc<Device>]) -> String {
    let mut s = String::new();
    for d in devices {
        let f = &d.faults;
        let c = f.counters();
        let mut faults = Vec::new();
        if !f.delay().is_zero() {
            faults.push(format!("delay={}", humantime::format_duration(f.delay())));
        }
        for r in f.read_errors() {
            faults.push(format!("eio={}+{}", r.start, r.end - r.start));
        }
        if f.fails_writes() {
            faults.push("fail-writes".into());
        }
        if f.fails_fsync() {
            faults.push("fail-fsync".into());
        }
        if f.is_dead() {
            faults.push("dead".into());
        }
        let faults = if faults.is_empty() {
            "none".to_string()
        } else {
            faults.join(",")
        };
        let _ = writeln!(
            s,
            "{} size={} faults={faults} reads={} writes={} fsyncs={} delayed={} eio_reads={} \
             eio_writes={} failed_fsyncs={} remapped_bytes={}",
            d.name,
            d.size,
            c.reads,
            c.writes,
            c.fsyncs,
            c.delayed_ops,
            c.eio_reads,
            c.eio_writes,
            c.failed_fsyncs,
            c.remapped_bytes
        );
    }
    s
}
