#!/usr/bin/env bash
# The fail-slow figures of docs/performance.md ("Reads under a fail-slow device"): 4 KiB
# point reads with one device 15 ms late against the healthy array, on the same devices and
# in the same round, at a full queue (QD 32, closed loop) and at fixed loads below the
# devices' limit (--rate_iops: a quarter and a half of the healthy closed-loop IOPS of the
# same round, still at most 32 in flight). Beside each pair, the same reads with that device
# left out altogether (the array opened without it): what reading around it costs at best.
# Every run reads 2 s before it counts (--ramp_time): the figures are the steady state, not
# the first tenth of a second, in which reads still wait for the slow device until the
# engine goes around it (their 15 ms show in a run without the ramp as its p99.9).
#   benches/fail_slow.sh D1,D2,D3,D4,D5,D6 [ROUNDS] [OUT_DIR]
# DESTROYS the contents of the six devices. The slow device needs the psync engine, so every
# run here uses it.
set -euo pipefail
DEVS=${1:?usage: fail_slow.sh D1,...,D6 [ROUNDS] [OUT_DIR]}
ROUNDS=${2:-3}
OUT=${3:-fail-slow-out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
cargo build --release -q -p ectable-tools --bins
B=target/release
date -u +%Y-%m-%dT%H:%M:%SZ >"$OUT/date"
IFS=, read -r -a D <<<"$DEVS"
WITHOUT=$(IFS=,; echo "${D[*]:0:2},${D[*]:3}")
reads() { # devices name extra-args...
  local devs=$1 name=$2
  shift 2
  $B/ecbench --devices "$devs" --rw randread --bs 4K --iodepth 32 --size 256M --runtime 8s \
    --ramp_time 2s --time_based --io-engine psync "$@" --output-format json >"$OUT/$name.json"
}
run() { reads "$DEVS" "$@" --k 4 --m 2 --force; }
# The array the last run left, opened without its third device.
missing() { reads "$WITHOUT" "$@"; }
iops() { python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['jobs'][0]['read']['iops']))" "$1"; }
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r"
  run "h_$r"
  run "s_$r" --slow-device 2:15ms
  missing "m_$r"
  full=$(iops "$OUT/h_$r.json")
  for pct in 25 50; do
    rate=$((full * pct / 100))
    run "h${pct}_$r" --rate_iops "$rate"
    run "s${pct}_$r" --rate_iops "$rate" --slow-device 2:15ms
    missing "m${pct}_$r" --rate_iops "$rate"
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, os, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def run(n):
    r = json.load(open(os.path.join(out, n + ".json")))["jobs"][0]["read"]
    p = r["clat_ns"]["percentile"]
    return r["iops"], p["50.000000"] / 1e3, p["99.000000"] / 1e3, p["99.900000"] / 1e3
print("date:", open(os.path.join(out, "date")).read().strip())
for i in range(1, rounds + 1):
    for tag, label in (("", "QD 32, closed loop"), ("25", "25% of healthy IOPS"), ("50", "50% of healthy IOPS")):
        h, s, m = run(f"h{tag}_{i}"), run(f"s{tag}_{i}"), run(f"m{tag}_{i}")
        print(f"round {i} {label}: IOPS {s[0]:,.0f} / {h[0]:,.0f} = {s[0] / h[0]:.2f}; p50 {s[1]:,.0f} / {h[1]:,.0f} us; "
              f"p99 {s[2]:,.0f} / {h[2]:,.0f} us = {s[2] / h[2]:.2f} x healthy; p99.9 {s[3]:,.0f} / {h[3]:,.0f} us; "
              f"device left out: IOPS {m[0] / h[0]:.2f}, p99 {m[2]:,.0f} us = {m[2] / h[2]:.2f} x healthy")
PY
