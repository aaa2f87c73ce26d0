#!/usr/bin/env python3
"""Prints the table of docs/performance.md from the JSON files of benches/perf.sh."""
import json, re, sys, os

out = sys.argv[1]
J = lambda n: json.load(open(os.path.join(out, n)))
MB = 1e6
UNITS = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def load_rate(txt, bs):
    """Bytes/s of `ectable load` from its summary line: rows x value size / elapsed time
    (the line's sizes are rounded for people; the row count and duration are exact)."""
    m = re.search(r"(\d+) rows, .*? in ((?:\d+(?:h|ms|us|ns|m|s) ?)+) \(", txt)
    if not m:  # the older line: "N rows, X MiB in S.SS s (R MiB/s, ...)"
        m = re.search(r"([\d.]+) MiB/s", txt)
        return float(m.group(1)) * 1048576 if m else 0
    secs = sum(int(n) * UNITS[u] for n, u in re.findall(r"(\d+)(h|ms|us|ns|m|s)", m.group(2)))
    size = int(bs[:-1]) * 1024
    return int(m.group(1)) * size / secs if secs else 0


print("date:", open(os.path.join(out, "date")).read().strip())
for qd in (32, 192):
    f = J(f"fio_rr_{qd}.json")["jobs"][0]["read"]
    e = J(f"randread_{qd}.json")
    r = e["ectable"]["ratios"]["read"]
    p = e["jobs"][0]["read"]["clat_ns"]["percentile"]
    print(f"randread 4K qd{qd}: fio {f['iops']:.0f} IOPS, raw (ecbench) {r['raw_iops']:.0f} ({r['raw_iops']/f['iops']:.2f} of fio), "
          f"engine {r['engine_iops']:.0f} = {r['iops_engine_to_raw']:.3f} of raw, {r['engine_iops']/f['iops']:.3f} of fio; "
          f"p50 {p['50.000000']/1e3:.0f} us p99 {p['99.000000']/1e3:.0f} us p99.9 {p['99.900000']/1e3:.0f} us")
if os.path.exists(os.path.join(out, "seqread_64K.json")):
    f = J("fio_seqread.json")["jobs"][0]["read"]
    r = J("seqread_64K.json")["ectable"]["ratios"]["read"]
    print(f"seqread 64K qd32/device: fio {f['bw_bytes']/MB:.0f} MB/s, raw (ecbench) {r['raw_bw_bytes']/MB:.0f} MB/s "
          f"({r['raw_bw_bytes']/f['bw_bytes']:.2f} of fio), engine {r['engine_bw_bytes']/MB:.0f} MB/s = "
          f"{r['engine_bw_bytes']/f['bw_bytes']:.3f} of fio")
for bs in ("64K", "16K", "4K", "1K"):
    if not os.path.exists(os.path.join(out, f"write_{bs}.json")):
        continue
    e = J(f"write_{bs}.json")["ectable"]
    r = e["ratios"]["write"]
    txt = open(os.path.join(out, f"load_{bs}.txt")).read()
    load = load_rate(txt, bs)
    rows = (1 << 30) // (int(bs[:-1]) * 1024)
    cpu = re.search(r"cpu ([\d.]+) ([\d.]+)", txt)
    load_cpu = f"{(float(cpu.group(1)) + float(cpu.group(2))) / rows * 1e6:.2f} us" if cpu else "?"
    job = J(f"write_{bs}.json")["jobs"][0]
    ops = job["write"]["total_ios"] or 1
    ebench_cpu = (job["usr_cpu"] + job["sys_cpu"]) / 100 * job["job_runtime"] / 1e3 / ops * 1e6
    print(f"ingest {bs}: raw {r['raw_bw_bytes']/MB:.0f} MB/s, target raw*4/6 {r['target_bw_bytes']/MB:.0f} MB/s; "
          f"ecbench --iodepth 1024 {r['engine_bw_bytes']/MB:.0f} MB/s = {r['engine_to_target']:.3f} of target; "
          f"bulk load {load/MB:.0f} MB/s = {load/r['target_bw_bytes']:.3f} of target; write amp {e.get('write_amplification', 0):.3f}; "
          f"CPU per record: load {load_cpu}, ecbench {ebench_cpu:.2f} us")
if os.path.exists(os.path.join(out, "randread_psync_slow.json")):
    h = J("randread_psync_healthy.json")["jobs"][0]["read"]
    sl = J("randread_psync_slow.json")["jobs"][0]["read"]
    p = lambda r, q: r["clat_ns"]["percentile"][q] / 1e3
    print(f"fail-slow (psync, QD 32, one device 15 ms late): {sl['iops']:.0f} / {h['iops']:.0f} IOPS = {sl['iops']/h['iops']:.3f} of healthy; "
          f"p99 {p(sl, '99.000000'):.0f} / {p(h, '99.000000'):.0f} us = {p(sl, '99.000000')/p(h, '99.000000'):.2f} x healthy; "
          f"p99.9 {p(sl, '99.900000'):.0f} / {p(h, '99.900000'):.0f} us")
def bw(n, d):
    return J(n)["jobs"][0][d]
for kind, d, unit in (("seqread", "read", "bw_bytes"), ("randread", "read", "iops")):
    h, g = bw(f"{kind}_healthy.json", d)[unit], bw(f"{kind}_degraded.json", d)[unit]
    print(f"{kind} degraded/healthy: {g:.0f} / {h:.0f} = {g/h:.3f}")
fw = J("fio_new_write.json")["jobs"][0]["write"]["bw_bytes"]
for size in ("256M", "1G"):
    r = J(f"rebuild_{size}.json")
    print(f"rebuild with {size} of data: {r['rebuild_secs']:.2f} s, {r['rebuilt_bytes']/MB:.0f} MB written at "
          f"{r['rebuild_write_bytes_per_sec']/MB:.0f} MB/s = {r['rebuild_write_bytes_per_sec']/fw:.3f} of the replacement's raw write "
          f"({fw/MB:.0f} MB/s); scanned at {r['rebuild_scan_bytes_per_sec']/MB:.0f} MB/s; foreground reads during rebuild "
          f"{r['read_iops_during_rebuild']} IOPS = {r['ratio']:.3f} of degraded-idle {r['degraded_read_iops']}")
