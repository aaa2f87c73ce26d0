#!/usr/bin/env bash
# The space-reclamation figures of docs/performance.md (issue 5), in one run.
#   benches/space.sh D1,...,D6 E1,...,E6 [OUT_DIR]
# D: six devices for the overwrite runs (512 MiB each is plenty); E: six devices for the
# reopen runs (at least 1.5 GiB each, for 4 GiB of live data under RS(4,2)).
# DESTROYS the contents of all twelve devices.
# Overwrite: ratios to the fresh-array ingest rate on the same devices in the same run, and
# the write amplification (log bytes per user byte, checkpoints included and also shown
# apart; device bytes, parity included).
set -euo pipefail
SMALL=${1:?usage: space.sh D1,...,D6 E1,...,E6 [OUT_DIR]}
BIG=${2:?usage: space.sh D1,...,D6 E1,...,E6 [OUT_DIR]}
OUT=${3:-space-out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
cargo build --release -q -p ectable-tools --bins
B=target/release
date -u +%Y-%m-%dT%H:%M:%SZ >"$OUT/date"

echo "== overwrite at 50%, 75%, 85%, 90% fill: 4 KiB rows, 2 MiB segments (255 segments), each row overwritten once on average, uniformly"
$B/ecbench --devices "$SMALL" --k 4 --m 2 --force --segment-size 2M --rw overwrite --bs 4K \
  --iodepth 256 --fill 0.5,0.75,0.85,0.9 --loops 1 --output-format json >"$OUT/overwrite.json" \
  2> >(tee "$OUT/overwrite.txt" >&2)

echo "== the same at 75% and 85% with 90% of the overwrites to 10% of the rows"
$B/ecbench --devices "$SMALL" --k 4 --m 2 --force --segment-size 2M --rw overwrite --bs 4K \
  --iodepth 256 --fill 0.75,0.85 --loops 1 --random-distribution zoned:90/10:10/90 \
  --output-format json >"$OUT/overwrite_skewed.json" 2> >(tee "$OUT/overwrite_skewed.txt" >&2)

echo "== reopen time with and without a recent checkpoint: 1 GiB and 4 GiB of 4 KiB rows"
for size in 1G 4G; do
  $B/ecbench --devices "$BIG" --k 4 --m 2 --force --rw reopen --bs 4K --iodepth 256 --size $size \
    --output-format json >"$OUT/reopen_$size.json" 2> >(tee "$OUT/reopen_$size.txt" >&2)
done
