#!/usr/bin/env python3
"""Prints the side-by-side table of docs/performance.md (issue 4) from the outputs of
benches/tables.sh: ops/s and p50/p99 latency of ecbench's table workloads and db_bench's."""
import json, os, re, sys

out = sys.argv[1]
WORKLOADS = [  # (name, what the ectable side measures, db_bench histogram(s))
    ("put", ["write"], ["write"]),
    ("put64", ["write"], ["write"]),
    ("get", ["read"], ["read"]),
    ("get32", ["read"], ["read"]),
    ("range", ["read"], ["seek"]),
    ("range_view", ["read"], ["seek"]),
    ("mixed", ["read", "write"], ["read", "write"]),
]


def ectable(name):
    path = os.path.join(out, f"ectable_{name}.json")
    if not os.path.exists(path):
        return None
    j = json.load(open(path))
    job = j["jobs"][0]
    res = {"ops": 0.0}
    for d in ("read", "write"):
        x = job[d]
        if x["total_ios"]:
            p = x["clat_ns"]["percentile"]
            res["ops"] += x["iops"]
            res[d] = (x["iops"], p["50.000000"] / 1e3, p["99.000000"] / 1e3)
    res["laydown_ms"] = j["ectable"]["dataset"]["laydown_ms"]
    res["rows"] = j["ectable"]["dataset"]["rows"]
    return res


def rocksdb(name):
    path = os.path.join(out, f"rocksdb_{name}.txt")
    if not os.path.exists(path):
        return None
    txt = open(path).read()
    res = {}
    m = re.search(r"^\w+\s+:\s+([\d.]+) micros/op\s+(\d+) ops/sec", txt, re.M)
    if m:
        res["ops"] = float(m.group(2))
    for h in re.finditer(
        r"Microseconds per (\w+):\nCount: (\d+).*?\n.*?\nPercentiles: P50: ([\d.]+) P75: [\d.]+ P99: ([\d.]+)",
        txt,
        re.S,
    ):
        res[h.group(1)] = (int(h.group(2)), float(h.group(3)), float(h.group(4)))
    return res


print("date:", open(os.path.join(out, "setup.txt")).readline().strip())
print(f"{'workload':11} | {'ectable ops/s':>13} | {'p50 / p99 us':>16} | {'RocksDB ops/s':>13} | {'p50 / p99 us':>16}")
for name, edirs, rdirs in WORKLOADS:
    # Ranges read in place are set against the same db_bench run as the other ranges.
    e, r = ectable(name), rocksdb({"range_view": "range"}.get(name, name))
    for ed, rd in zip(edirs, rdirs):
        label = name if len(edirs) == 1 else f"{name} {ed}"
        eo = el = ro = rl = "-"
        if e and ed in e:
            eo = f"{e[ed][0]:.0f}"
            el = f"{e[ed][1]:.0f} / {e[ed][2]:.0f}"
        if r and rd in r:
            ro = f"{r['ops']:.0f}" if len(rdirs) == 1 else f"({r[rd][0]} ops)"
            rl = f"{r[rd][1]:.0f} / {r[rd][2]:.0f}"
        print(f"{label:11} | {eo:>13} | {el:>16} | {ro:>13} | {rl:>16}")
    if len(edirs) > 1:
        print(f"{name + ' all':11} | {e['ops'] if e else 0:>13.0f} | {'':>16} | {(r or {}).get('ops', 0):>13.0f} |")
e = ectable("get")
if e:
    print(f"ectable load: {e['rows']} rows laid down in {e['laydown_ms'] / 1e3:.1f} s "
          f"= {e['rows'] / max(e['laydown_ms'], 1) * 1e3:.0f} rows/s")
r = rocksdb("load")
if r and "ops" in r:
    print(f"RocksDB load (fillseq): {r['ops']:.0f} rows/s")
