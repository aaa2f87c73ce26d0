#!/usr/bin/env bash
# The read-path figures of docs/performance.md ("Read queues"), fio and the engine alternated
# on the same devices for ROUNDS rounds, so that each ratio comes from neighbouring runs.
#   benches/reads.sh D1,D2,D3,D4,D5,D6 [ROUNDS] [OUT_DIR]
# DESTROYS the contents of the six devices. Needs fio.
# Per round: 4 KiB random reads at QD 32 (one job) and 6 jobs x 32, 64 KiB sequential reads
# at 32 per device; fio over exactly the regions ecbench's raw pass reads (--size is shared
# out among the files), ecbench's own raw pass beside it, then the engine. Then the same
# reads with the sixth device left out (against the healthy array), ranges of 100 typed
# rows, and point reads with one device 15 ms late (psync engine, against healthy).
set -euo pipefail
DEVS=${1:?usage: reads.sh D1,...,D6 [ROUNDS] [OUT_DIR]}
ROUNDS=${2:-3}
OUT=${3:-reads-out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
cargo build --release -q -p ectable-tools --bins
B=target/release
IFS=, read -r -a D <<<"$DEVS"
N=${#D[@]}
FIO_FILES=$(echo "$DEVS" | tr , :)
DEGRADED=$(IFS=,; echo "${D[*]:0:5}")
date -u +%Y-%m-%dT%H:%M:%SZ >"$OUT/date"
fio_rr() { # name extra-args...
  local name=$1
  shift
  fio --name=rr --filename="$FIO_FILES" --ioengine=io_uring --direct=1 --rw=randread --bs=4k \
    --iodepth=32 --offset=1M --size=$((64 * N))M --runtime=8 --time_based --group_reporting \
    "$@" --output-format=json >"$OUT/$name.json"
}
fio_sr() {
  fio --name=sr --filename="$FIO_FILES" --ioengine=io_uring --direct=1 --rw=read --bs=64k \
    --iodepth=$((32 * N)) --offset=1M --size=$((86 * N))M --runtime=8 --time_based \
    --output-format=json >"$OUT/$1.json"
}
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r"
  fio_rr "fio_rr32_$r"
  $B/ecbench --devices "$DEVS" --k 4 --m 2 --force --rw randread --bs 4K --iodepth 32 --size 256M \
    --runtime 8s --time_based --compare-raw --output-format json >"$OUT/rr32_$r.json"
  fio_rr "fio_rr192_$r" --numjobs=6
  $B/ecbench --devices "$DEVS" --k 4 --m 2 --force --rw randread --bs 4K --iodepth 32 --numjobs 6 \
    --size 256M --runtime 8s --time_based --compare-raw --output-format json >"$OUT/rr192_$r.json"
  fio_sr "fio_sr_$r"
  $B/ecbench --devices "$DEVS" --k 4 --m 2 --force --rw read --bs 64K --iodepth 32 --size 512M \
    --compare-raw --output-format json >"$OUT/sr_$r.json"
  # Degraded: the same data set with the sixth device left out, against the healthy array.
  $B/ecbench --devices "$DEVS" --rw randread --bs 4K --iodepth 32 --size 256M --runtime 8s \
    --time_based --output-format json >"$OUT/rrh_$r.json"
  $B/ecbench --devices "$DEGRADED" --rw randread --bs 4K --iodepth 32 --size 256M --runtime 8s \
    --time_based --output-format json >"$OUT/rrd_$r.json"
  $B/ecbench --devices "$DEVS" --k 4 --m 2 --force --rw read --bs 64K --iodepth 32 --size 512M \
    --output-format json >"$OUT/srh_$r.json"
  $B/ecbench --devices "$DEGRADED" --rw read --bs 64K --iodepth 32 --size 512M \
    --output-format json >"$OUT/srd_$r.json"
  # Ranges of 100 typed rows of ~1 KiB, one job: row bytes against fio's sequential read.
  $B/ecbench --devices "$DEVS" --k 4 --m 2 --force --rw table-range --bs 1K --size 256M \
    --runtime 8s --output-format json >"$OUT/range_$r.json"
  # The same, read in place (Tables::range_view).
  $B/ecbench --devices "$DEVS" --rw table-range --range-view --bs 1K --size 256M \
    --runtime 8s --output-format json >"$OUT/rangev_$r.json"
  # Fail-slow: the psync engine, healthy, then with the third device 15 ms late.
  $B/ecbench --devices "$DEVS" --k 4 --m 2 --force --rw randread --bs 4K --iodepth 32 --size 256M \
    --runtime 8s --time_based --io-engine psync --output-format json >"$OUT/slowh_$r.json"
  $B/ecbench --devices "$DEVS" --k 4 --m 2 --force --rw randread --bs 4K --iodepth 32 --size 256M \
    --runtime 8s --time_based --io-engine psync --slow-device 2:15ms --output-format json \
    >"$OUT/slows_$r.json"
done
python3 - "$OUT" "$ROUNDS" <<'EOF'
import json, os, sys
out, rounds = sys.argv[1], int(sys.argv[2])
J = lambda n: json.load(open(os.path.join(out, n + ".json")))
def fio(n):
    r = J(n)["jobs"][0]["read"]
    return r["iops"], r["bw_bytes"], r["clat_ns"]["percentile"]["99.000000"] / 1e3
def eng(n):
    e = J(n)
    r = e["ectable"]["ratios"]["read"]
    p99 = e["jobs"][0]["read"]["clat_ns"]["percentile"]["99.000000"] / 1e3
    return r, p99
print("date:", open(os.path.join(out, "date")).read().strip())
for i in range(1, rounds + 1):
    for name, label in (("rr32", "4K random, QD 32"), ("rr192", "4K random, 6 x 32")):
        fi, _, fp99 = fio(f"fio_{name}_{i}")
        r, p99 = eng(f"{name}_{i}")
        print(f"round {i} {label}: fio {fi:,.0f} IOPS p99 {fp99:,.0f} us | ecbench raw {r['raw_iops']:,.0f} "
              f"({r['raw_iops'] / fi:.2f} of fio) | engine {r['engine_iops']:,.0f} p99 {p99:,.0f} us = "
              f"{r['engine_iops'] / fi:.3f} of fio, p99 {p99 / fp99:.2f} x fio's")
    _, fbw, _ = fio(f"fio_sr_{i}")
    r, _ = eng(f"sr_{i}")
    print(f"round {i} 64K sequential: fio {fbw / 1e6:,.0f} MB/s | ecbench raw {r['raw_bw_bytes'] / 1e6:,.0f} "
          f"({r['raw_bw_bytes'] / fbw:.2f} of fio) | engine {r['engine_bw_bytes'] / 1e6:,.0f} = "
          f"{r['engine_bw_bytes'] / fbw:.3f} of fio")
    def run(n):
        r = J(n)["jobs"][0]["read"]
        p = r["clat_ns"]["percentile"]
        return r["iops"], r["bw_bytes"], p["50.000000"] / 1e3, p["99.000000"] / 1e3
    h, d = run(f"rrh_{i}"), run(f"rrd_{i}")
    print(f"round {i} degraded 4K random QD 32: {d[0]:,.0f} of {h[0]:,.0f} IOPS = {d[0] / h[0]:.3f} of healthy")
    h, d = run(f"srh_{i}"), run(f"srd_{i}")
    print(f"round {i} degraded 64K sequential: {d[1] / 1e6:,.0f} of {h[1] / 1e6:,.0f} MB/s = {d[1] / h[1]:.3f} of healthy")
    for n, how in (("range", "copied into owned rows"), ("rangev", "read in place")):
        g = run(f"{n}_{i}")
        print(f"round {i} ranges of 100 typed rows, {how}: {g[0]:,.0f} ranges/s, {g[1] / 1e6:,.0f} MB/s "
              f"of rows = {g[1] / fbw:.3f} of fio's sequential read, p99 {g[3]:,.0f} us")
    h, s = run(f"slowh_{i}"), run(f"slows_{i}")
    print(f"round {i} fail-slow (psync): {s[0]:,.0f} / {h[0]:,.0f} IOPS = {s[0] / h[0]:.2f}, "
          f"p50 {s[2]:,.0f} / {h[2]:,.0f} us, p99 {s[3]:,.0f} / {h[3]:,.0f} us = {s[3] / h[3]:.2f} x healthy")
EOF
