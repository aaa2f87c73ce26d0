#!/usr/bin/env bash
# The write-path figures of docs/performance.md that benches/perf.sh does not print:
# index memory per key (examples/index_memory, memory devices) and reopen time with and
# without a recent checkpoint for 1 KiB rows (ecbench --rw reopen on the given devices).
#   benches/write_path.sh D1,D2,D3,D4,D5,D6 [KEYS] [REOPEN_SIZE] [OUT_DIR]
# KEYS defaults to 10000000 (about 14 GB of RAM for the memory devices), REOPEN_SIZE to 1G.
# DESTROYS the contents of the six devices.
set -euo pipefail
DEVS=${1:?usage: write_path.sh D1,...,D6 [KEYS] [REOPEN_SIZE] [OUT_DIR]}
KEYS=${2:-10000000}
SIZE=${3:-1G}
OUT=${4:-write-path-out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
cargo build --release -q -p ectable-tools --bins
cargo build --release -q --example index_memory
date -u +%Y-%m-%dT%H:%M:%SZ | tee "$OUT/date"
for order in random seq; do
  target/release/examples/index_memory "$KEYS" 16 $order | tee "$OUT/index_memory_$order.json"
done
target/release/ecbench --devices "$DEVS" --k 4 --m 2 --force --rw reopen --bs 1K --iodepth 1024 \
  --size "$SIZE" --output-format json >"$OUT/reopen.json" 2> >(tee "$OUT/reopen.txt" >&2)
