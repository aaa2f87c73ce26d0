#!/usr/bin/env bash
# The read-path figures of docs/performance.md ("Read queues"), fio and the engine alternated
# on the same devices for ROUNDS rounds, so that each ratio comes from neighbouring runs.
#   benches/reads.sh D1,D2,D3,D4,D5,D6 [ROUNDS] [OUT_DIR]
# DESTROYS the contents of the six devices. Needs fio.
# Per round: 4 KiB random reads at QD 32 (one job) and 6 jobs x 32, 64 KiB sequential reads
# at 32 per device; fio over exactly the regions ecbench's raw pass reads (--size is shared
# out among the files), ecbench's own raw pass beside it, then the engine.
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
EOF
