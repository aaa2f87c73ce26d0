#!/usr/bin/env bash
# Puts and gets through a storage node (`ectable serve`, HTTP, many connections) against the
# same workload embedded in-process, on the same devices in one run (docs/performance.md,
# "The storage node").
#   benches/node_load.sh D1,D2,D3,D4,D5,D6 [CONNECTIONS] [SECONDS] [VALUE_SIZE] [OUT_DIR]
# DESTROYS the contents of the six devices.
# Order: format; embedded puts (durable when acknowledged: put_sync), embedded gets of the
# keys written; then a node on the same devices, puts (durable: the node's default) and
# gets over HTTP. Each phase prints one JSON line (tools/examples/node_load.rs): operations
# per second, p50/p99 latency, CPU time per operation of the client and of the node.
set -euo pipefail
DEVS=${1:?usage: node_load.sh D1,...,D6 [CONNECTIONS] [SECONDS] [VALUE_SIZE] [OUT_DIR]}
CONN=${2:-16}
SECS=${3:-10}
VSIZE=${4:-4096}
OUT=${5:-node-load-out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
cargo build --release -q -p ectable-tools --bins --example node_load
B=target/release
L=$B/examples/node_load
KEYS=20000
date -u +%Y-%m-%dT%H:%M:%SZ >"$OUT/date"
$B/ectable format --devices "$DEVS" --k 4 --m 2 --force --yes >/dev/null
common=(--connections "$CONN" --seconds "$SECS" --value-size "$VSIZE" --keys "$KEYS")
$L embedded --devices "$DEVS" --mode put "${common[@]}" | tee "$OUT/embedded-put.json"
$L embedded --devices "$DEVS" --mode get "${common[@]}" | tee "$OUT/embedded-get.json"
export ECTABLE_RUN_DIR="$OUT/run"
$B/ectable serve --devices "$DEVS" --listen 127.0.0.1:0 >"$OUT/node.out" 2>"$OUT/node.err" &
NODE=$!
trap 'kill -TERM $NODE 2>/dev/null || true; wait $NODE 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q 'listening on' "$OUT/node.out" && break
  sleep 0.1
done
URL="http://$(sed -n 's/.*listening on //p' "$OUT/node.out")"
$L node --url "$URL" --pid "$NODE" --mode put "${common[@]}" | tee "$OUT/node-put.json"
$L node --url "$URL" --pid "$NODE" --mode get "${common[@]}" | tee "$OUT/node-get.json"
python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
r = {n: json.load(open(f"{out}/{n}.json")) for n in ["embedded-put", "embedded-get", "node-put", "node-get"]}
for mode in ["put", "get"]:
    e, n = r[f"embedded-{mode}"], r[f"node-{mode}"]
    print(f"{mode}: embedded {e['ops_per_sec']:.0f}/s (p99 {e['p99_us']} us, {e['client_cpu_us_per_op']:.1f} us CPU/op); "
          f"node {n['ops_per_sec']:.0f}/s (p99 {n['p99_us']} us, node {n['node_cpu_us_per_op']:.1f} + client "
          f"{n['client_cpu_us_per_op']:.1f} us CPU/op); node/embedded {n['ops_per_sec'] / e['ops_per_sec']:.2f}")
EOF
