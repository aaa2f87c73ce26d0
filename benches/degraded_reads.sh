#!/usr/bin/env bash
# Degraded reads against healthy ones on the same devices, in neighbouring runs (issue 13,
# item 5; docs/performance.md "Degraded sequential reads").
#   benches/degraded_reads.sh D1,...,D6 [ROUNDS] [OUT_DIR] [OTHER_ECBENCH]
# DESTROYS the contents of the six devices. Per round and binary (this build, then
# OTHER_ECBENCH if given, e.g. an older build to compare with): 64 KiB sequential reads at
# QD 32 for 8 s over 512 MiB and 4 KiB random reads at QD 32 for 8 s over 256 MiB, each on a freshly
# loaded array of all six devices, then the same reads with the sixth device left out.
set -euo pipefail
DEVS=${1:?usage: degraded_reads.sh D1,...,D6 [ROUNDS] [OUT_DIR] [OTHER_ECBENCH]}
ROUNDS=${2:-3}
OUT=${3:-degraded-out}
OTHER=${4:-}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
cargo build --release -q -p ectable-tools --bins
IFS=, read -r -a D <<<"$DEVS"
DEGRADED=$(IFS=,; echo "${D[*]:0:5}")
date -u +%Y-%m-%dT%H:%M:%SZ >"$OUT/date"
# Bytes read so far from the six devices (block devices only: from /proc/diskstats).
read_bytes() {
  local names
  names=$(for d in "${D[@]}"; do basename "$(readlink -f "$d")"; done | paste -sd'|')
  awk -v re="^($names)\$" '$3 ~ re { s += $6 } END { printf "%.0f\n", s * 512 }' /proc/diskstats
}
bins=("new:${CARGO_TARGET_DIR:-target}/release/ecbench")
[ -n "$OTHER" ] && bins+=("other:$OTHER")
for r in $(seq 1 "$ROUNDS"); do
  for nb in "${bins[@]}"; do
    name=${nb%%:*}
    b=${nb#*:}
    echo "== round $r, $name"
    "$b" --devices "$DEVS" --k 4 --m 2 --force --rw read --bs 64K --iodepth 32 --size 512M \
      --runtime 8s --time_based \
      --output-format json >"$OUT/seq_h_${name}_$r.json"
    before=$(read_bytes)
    "$b" --devices "$DEGRADED" --rw read --bs 64K --iodepth 32 --size 512M \
      --runtime 8s --time_based \
      --output-format json >"$OUT/seq_d_${name}_$r.json"
    echo $(($(read_bytes) - before)) >"$OUT/seq_d_${name}_$r.bytes"
    "$b" --devices "$DEVS" --k 4 --m 2 --force --rw randread --bs 4K --iodepth 32 --size 256M \
      --runtime 8s --time_based --output-format json >"$OUT/rnd_h_${name}_$r.json"
    "$b" --devices "$DEGRADED" --rw randread --bs 4K --iodepth 32 --size 256M --runtime 8s \
      --time_based --output-format json >"$OUT/rnd_d_${name}_$r.json"
  done
done
python3 - "$OUT" "$ROUNDS" "${bins[@]%%:*}" <<'PY'
import json, os, sys
out, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def job(n):
    return json.load(open(os.path.join(out, n + ".json")))["jobs"][0]["read"]
print(f"{'round':>5} {'binary':>6} {'seq healthy MB/s':>17} {'degraded':>9} {'ratio':>6} "
      f"{'B/B':>5} {'rnd healthy IOPS':>17} {'degraded':>9} {'ratio':>6}")
# B/B: device bytes read per value byte in the degraded sequential run (its open included).
for r in range(1, rounds + 1):
    for n in names:
        sh, sd = job(f"seq_h_{n}_{r}")["bw_bytes"], job(f"seq_d_{n}_{r}")["bw_bytes"]
        rh, rd = job(f"rnd_h_{n}_{r}")["iops"], job(f"rnd_d_{n}_{r}")["iops"]
        dev = int(open(os.path.join(out, f"seq_d_{n}_{r}.bytes")).read())
        per = dev / job(f"seq_d_{n}_{r}")["io_bytes"]
        print(f"{r:>5} {n:>6} {sh / 1e6:>17,.0f} {sd / 1e6:>9,.0f} {sd / sh:>6.3f} {per:>5.2f} "
              f"{rh:>17,.0f} {rd:>9,.0f} {rd / rh:>6.3f}")
PY
