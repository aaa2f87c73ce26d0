#!/usr/bin/env bash
# 4 KiB point reads against fio, and optionally against an older ecbench binary, alternated
# on the same devices for ROUNDS rounds (docs/performance.md, "Values on device blocks").
#   benches/point_reads.sh D1,D2,D3,D4,D5,D6 [ROUNDS] [OUT_DIR] [OLD_ECBENCH]
# DESTROYS the contents of the six devices. Needs fio.
# Per round and queue depth (32 from one job, 6 jobs x 32): fio over the regions ecbench's
# raw pass reads, then the engine (ecbench --compare-raw, which formats the array with its
# own binary's format version), then the old binary if given. Also reports the device
# bytes the engine read per get (from /proc/diskstats), so that a 4 KiB value read as one
# 4 KiB block shows.
set -euo pipefail
DEVS=${1:?usage: point_reads.sh D1,...,D6 [ROUNDS] [OUT_DIR] [OLD_ECBENCH]}
ROUNDS=${2:-3}
OUT=${3:-point-reads-out}
OLD=${4:-}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
cargo build --release -q -p ectable-tools --bins
B=target/release
IFS=, read -r -a D <<<"$DEVS"
N=${#D[@]}
FIO_FILES=$(echo "$DEVS" | tr , :)
date -u +%Y-%m-%dT%H:%M:%SZ >"$OUT/date"
sectors_read() { # total sectors read from the devices so far
  local t=0
  for d in "${D[@]}"; do
    t=$((t + $(awk -v n="$(basename "$d")" '$3 == n {print $6}' /proc/diskstats)))
  done
  echo "$t"
}
fio_rr() { # name extra-args...
  local name=$1
  shift
  fio --name=rr --filename="$FIO_FILES" --ioengine=io_uring --direct=1 --rw=randread --bs=4k \
    --iodepth=32 --offset=1M --size=$((64 * N))M --runtime=8 --time_based --group_reporting \
    "$@" --output-format=json >"$OUT/$name.json"
}
eng() { # name binary jobs
  local name=$1 bin=$2 jobs=$3
  # Load first (not counted), then read with the device counters around the read pass.
  "$bin" --devices "$DEVS" --k 4 --m 2 --force --rw randread --bs 4K --iodepth 32 \
    --numjobs "$jobs" --size 256M --runtime 1s --time_based --output-format json >/dev/null
  local s0
  s0=$(sectors_read)
  "$bin" --devices "$DEVS" --rw randread --bs 4K --iodepth 32 --numjobs "$jobs" --size 256M \
    --runtime 8s --time_based --group_reporting --output-format json >"$OUT/$name.json"
  echo $(( ($(sectors_read) - s0) * 512 )) >"$OUT/$name.bytes"
}
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r"
  for jobs in 1 6; do
    if [ "$jobs" = 1 ]; then fio_rr "fio_${jobs}_$r"; else fio_rr "fio_${jobs}_$r" --numjobs=6; fi
    eng "new_${jobs}_$r" "$B/ecbench" "$jobs"
    if [ -n "$OLD" ]; then eng "old_${jobs}_$r" "$OLD" "$jobs"; fi
  done
done
python3 - "$OUT" "$ROUNDS" "$OLD" <<'PY'
import json, os, sys
out, rounds, old = sys.argv[1], int(sys.argv[2]), sys.argv[3]
J = lambda n: json.load(open(os.path.join(out, n + ".json")))
def run(n):
    r = J(n)["jobs"][0]["read"]
    ios = sum(j["read"]["total_ios"] for j in J(n)["jobs"])
    b = int(open(os.path.join(out, n + ".bytes")).read())
    return r["iops"], r["clat_ns"]["percentile"]["99.000000"] / 1e3, b / max(ios, 1)
print("date:", open(os.path.join(out, "date")).read().strip())
for i in range(1, rounds + 1):
    for jobs, label in ((1, "QD 32"), (6, "6 x 32")):
        f = J(f"fio_{jobs}_{i}")["jobs"][0]["read"]
        fi, fp = f["iops"], f["clat_ns"]["percentile"]["99.000000"] / 1e3
        line = f"round {i} 4K random {label}: fio {fi:,.0f} IOPS p99 {fp:,.0f} us"
        for tag in ("new", "old") if old else ("new",):
            e, p, b = run(f"{tag}_{jobs}_{i}")
            line += f" | {tag} {e:,.0f} = {e / fi:.3f} of fio, p99 {p:,.0f} us = {p / fp:.2f} x, {b:,.0f} B/get"
        print(line)
PY
