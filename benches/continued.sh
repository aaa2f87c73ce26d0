#!/usr/bin/env bash
# Records that continue in the next stripe (docs/performance.md, "Records that continue in
# the next stripe"): a version 5 array (the default) against a version 4 one (`format
# --whole-records`) on the same six devices, alternated for ROUNDS rounds: `ectable load` of
# 512 MiB of 64 KiB rows (its time and device bytes per user byte), then ecbench's 64 KiB
# sequential read healthy and with the sixth device left out.
#   benches/continued.sh D1,D2,D3,D4,D5,D6 [ROUNDS] [OUT_DIR]     (default 2 rounds)
# DESTROYS the contents of the devices.
set -euo pipefail
DEVS=${1:?usage: continued.sh D1,...,D6 [ROUNDS] [OUT_DIR]}
ROUNDS=${2:-2}
OUT=${3:-$(mktemp -d)}
IFS=, read -r -a D <<<"$DEVS"
DEG=$(IFS=,; echo "${D[*]:0:5}")
cd "$(dirname "$0")/.."
cargo build --release -q -p ectable-tools --bins
B=target/release
mkdir -p "$OUT"
date -u +%Y-%m-%dT%H:%M:%SZ
for r in $(seq 1 "$ROUNDS"); do
  for mode in v5 v4; do
    flag=()
    [ "$mode" = v4 ] && flag=(--whole-records)
    "$B/ectable" format --devices "$DEVS" --k 4 --m 2 --force --yes "${flag[@]}" >/dev/null
    load=$("$B/ectable" load --devices "$DEVS" --table bench --rows 8192 --value-size 65536 \
      2>&1 >/dev/null | tail -n 1)
    echo "round $r $mode $load"
    "$B/ecbench" --devices "$DEVS" --k 4 --m 2 --force "${flag[@]}" --rw read --bs 64K \
      --iodepth 32 --size 512M --output-format json >"$OUT/healthy_${mode}_$r.json"
    "$B/ecbench" --devices "$DEG" --rw read --bs 64K --iodepth 32 --size 512M \
      --output-format json >"$OUT/degraded_${mode}_$r.json"
    python3 - "$OUT/healthy_${mode}_$r.json" "$OUT/degraded_${mode}_$r.json" "$mode" "$r" <<'PY'
import json, sys
def bw(path):
    return json.load(open(path))["jobs"][0]["read"]["bw_bytes"] / 1e6
h, d = bw(sys.argv[1]), bw(sys.argv[2])
print(f"round {sys.argv[4]} {sys.argv[3]} 64K sequential read: healthy {h:,.0f} MB/s, "
      f"degraded {d:,.0f} MB/s ({d / h:.2f} of healthy)")
PY
  done
done
