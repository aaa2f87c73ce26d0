#!/usr/bin/env bash
# The space-reclamation figures of docs/performance.md (issue 5), in one run.
#   benches/space.sh D1,...,D6 E1,...,E6 [OUT_DIR]
# D: six devices for the overwrite runs (512 MiB each is plenty); E: six devices for the
# reopen runs (at least 1.5 GiB each, for 4 GiB of live data under RS(4,2)).
# DESTROYS the contents of all twelve devices.
# Overwrite: ratios to the fresh-array ingest rate on the same devices in the same run.
set -euo pipefail
SMALL=${1:?usage: space.sh D1,...,D6 E1,...,E6 [OUT_DIR]}
BIG=${2:?usage: space.sh D1,...,D6 E1,...,E6 [OUT_DIR]}
OUT=${3:-space-out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
cargo build --release -q -p ectable-tools --bins
B=target/release
date -u +%Y-%m-%dT%H:%M:%SZ >"$OUT/date"

echo "== overwrite at 50%, 75%, 85% fill: 4 KiB rows, 2 MiB segments, each row overwritten once on average"
# 90% is run on its own below: with 4 KiB rows it runs out of space after a few percent of
# the overwrites (docs/performance.md, "Space reclamation"), and a failed level would cost
# the JSON of the others.
$B/ecbench --devices "$SMALL" --k 4 --m 2 --force --segment-size 2M --rw overwrite --bs 4K \
  --iodepth 256 --fill 0.5,0.75,0.85 --loops 1 --output-format json >"$OUT/overwrite.json" \
  2> >(tee "$OUT/overwrite.txt" >&2)

echo "== overwrite at 90% fill (expected to stop with 'no space left on the array')"
if $B/ecbench --devices "$SMALL" --k 4 --m 2 --force --segment-size 2M --rw overwrite --bs 4K \
  --iodepth 256 --fill 0.9 --loops 1 --output-format json >"$OUT/overwrite_90.json" \
  2> >(tee "$OUT/overwrite_90.txt" >&2); then
  echo "90% fill completed"
else
  echo "90% fill failed (see $OUT/overwrite_90.txt)"
fi

echo "== reopen time with and without a recent checkpoint: 1 GiB and 4 GiB of 4 KiB rows"
for size in 1G 4G; do
  $B/ecbench --devices "$BIG" --k 4 --m 2 --force --rw reopen --bs 4K --iodepth 256 --size $size \
    --output-format json >"$OUT/reopen_$size.json" 2> >(tee "$OUT/reopen_$size.txt" >&2)
done
