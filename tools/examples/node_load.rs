//! Load through a storage node against the same workload embedded in-process
//! (docs/performance.md, "The storage node"). `benches/node_load.sh` runs both on the same
//! devices in one run.
//!
//!   node_load embedded --devices D1,... --mode put|get --connections N --seconds S --value-size B
//!   node_load node --url http://127.0.0.1:7070 --pid PID --mode put|get ...
//!
//! Puts are durable when acknowledged in both (`put_sync` embedded, the node's default);
//! gets read keys the put phase wrote (`--keys K`: keys 0..K). Prints one JSON line: the
//! operations per second, p50/p99 latency, and CPU time per operation of this process and,
//! for the node, of the node's process (from /proc).

use anyhow::{bail, Context, Result};
use ectable_devices::BackendKind;
use ectable_engine::{Engine, EngineOptions};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    target: String,
    devices: String,
    url: String,
    pid: Option<i32>,
    mode: String,
    connections: usize,
    seconds: u64,
    value_size: usize,
    keys: u64,
}

fn parse() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let target = it.next().context("embedded or node")?;
    let mut a = Args {
        target,
        devices: String::new(),
        url: String::new(),
        pid: None,
        mode: "put".into(),
        connections: 16,
        seconds: 10,
        value_size: 4096,
        keys: 20_000,
    };
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--devices" => a.devices = v,
            "--url" => a.url = v,
            "--pid" => a.pid = Some(v.parse()?),
            "--mode" => a.mode = v,
            "--connections" => a.connections = v.parse()?,
            "--seconds" => a.seconds = v.parse()?,
            "--value-size" => a.value_size = v.parse()?,
            "--keys" => a.keys = v.parse()?,
            f => bail!("unknown flag {f}"),
        }
    }
    if a.mode != "put" && a.mode != "get" {
        bail!("--mode put or get");
    }
    Ok(a)
}

/// User + system CPU seconds of process `pid` (this process when None).
fn cpu_seconds(pid: Option<i32>) -> f64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = text.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf with a valid name has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (n(11) + n(12)) / ticks
}

fn key(i: u64) -> String {
    format!("k{i:012}")
}

fn value(i: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    for (j, b) in v.iter_mut().enumerate() {
        *b = (i as usize).wrapping_mul(31).wrapping_add(j) as u8;
    }
    v
}

/// Runs `op(connection, i)` from `connections` threads for `seconds`; (ops, latencies).
fn drive(
    connections: usize,
    seconds: u64,
    op: Arc<dyn Fn(usize, u64) -> Result<()> + Send + Sync>,
) -> Result<(u64, hdrhistogram::Histogram<u64>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(Mutex::new(hdrhistogram::Histogram::<u64>::new(3)?));
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let (stop, next, hist, op) = (stop.clone(), next.clone(), hist.clone(), op.clone());
            std::thread::spawn(move || -> Result<()> {
                let mut local = hdrhistogram::Histogram::<u64>::new(3)?;
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    op(c, i)?;
                    local.record(t.elapsed().as_micros() as u64)?;
                }
                hist.lock().unwrap_or_else(|p| p.into_inner()).add(&local)?;
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
    }
    let ops = next.load(Ordering::Relaxed);
    let h = hist.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok((ops, h))
}

fn main() -> Result<()> {
    let a = parse()?;
    let (len, keys) = (a.value_size, a.keys.max(1));
    let put = a.mode == "put";
    let op: Arc<dyn Fn(usize, u64) -> Result<()> + Send + Sync> = match a.target.as_str() {
        "embedded" => {
            let paths = ectable_tools::split_devices(&a.devices)?;
            let io = ectable_tools::open_devices(&paths, None, false, BackendKind::Auto)?;
            let e = Arc::new(Engine::open(io, EngineOptions::default())?);
            Arc::new(move |_, i| {
                if put {
                    e.put_sync("load", key(i).as_bytes(), &value(i, len))?;
                } else {
                    let k = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % keys;
                    e.get("load", key(k).as_bytes())?
                        .context("a key the put phase wrote")?;
                }
                Ok(())
            })
        }
        "node" => {
            let base = a.url.trim_end_matches('/').to_string();
            let agents: Vec<ureq::Agent> = (0..a.connections)
                .map(|_| {
                    ureq::Agent::config_builder()
                        .http_status_as_error(true)
                        .build()
                        .into()
                })
                .collect();
            Arc::new(move |c, i| {
                if put {
                    agents[c]
                        .put(format!("{base}/v1/kv/load/{}", key(i)))
                        .send(&value(i, len)[..])?;
                } else {
                    let k = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % keys;
                    let mut r = agents[c]
                        .get(format!("{base}/v1/kv/load/{}", key(k)))
                        .call()?;
                    r.body_mut().read_to_vec()?;
                }
                Ok(())
            })
        }
        t => bail!("unknown target {t} (embedded or node)"),
    };
    let (cpu0, node0) = (cpu_seconds(None), a.pid.map(|p| cpu_seconds(Some(p))));
    let start = Instant::now();
    let (ops, h) = drive(a.connections, a.seconds, op)?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(None) - cpu0;
    let node_cpu = a
        .pid
        .map(|p| cpu_seconds(Some(p)))
        .zip(node0)
        .map(|(x, y)| x - y);
    println!(
        "{}",
        serde_json::json!({
            "target": a.target,
            "mode": a.mode,
            "connections": a.connections,
            "value_size": len,
            "ops": ops,
            "seconds": wall,
            "ops_per_sec": ops as f64 / wall,
            "p50_us": h.value_at_quantile(0.5),
            "p99_us": h.value_at_quantile(0.99),
            "client_cpu_us_per_op": cpu * 1e6 / ops.max(1) as f64,
            "node_cpu_us_per_op": node_cpu.map(|c| c * 1e6 / ops.max(1) as f64),
        })
    );
    Ok(())
}
