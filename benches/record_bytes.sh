#!/usr/bin/env bash
# Device bytes per byte of key and value (docs/performance.md, "Small rows on disk"):
# `ectable load` of about 200 MB of rows (15-byte keys, table "bench") at each value size,
# on a version 5 array (compact records that may continue in the next stripe), a version 4
# one (`format --whole-records`) and a version 3 one (`format --wide-records`), all
# formatted on the same devices. load prints the figure: the chunk bytes the session
# wrote (parity, chunk headers and any checkpoint included) over the rows' key and value
# bytes, plus the CPU time (user + system) of each load.
#   benches/record_bytes.sh D1,D2,D3,D4,D5,D6 [SIZES]       (default sizes: 100 1024 65536)
# DESTROYS the contents of the devices (files are fine: the figure counts bytes, not time).
set -euo pipefail
DEVS=${1:?usage: record_bytes.sh D1,...,D6 [SIZES]}
shift
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(100 1024 65536)
cd "$(dirname "$0")/.."
cargo build --release -q -p ectable-tools --bins
B=target/release
date -u +%Y-%m-%dT%H:%M:%SZ
for size in "${SIZES[@]}"; do
  rows=$((200000000 / (size + 15)))
  for mode in continued whole wide; do
    flag=()
    [ "$mode" = whole ] && flag=(--whole-records)
    [ "$mode" = wide ] && flag=(--wide-records)
    "$B/ectable" format --devices "$DEVS" --k 4 --m 2 --force --yes "${flag[@]}" >/dev/null
    line=$( { /usr/bin/time -f 'cpu %U+%S s' "$B/ectable" load --devices "$DEVS" --table bench \
      --rows "$rows" --value-size "$size" 2>&1 >/dev/null; } | tail -n 2 | tr '\n' ' ')
    printf '%-6s %-10s %s\n' "$size" "$mode" "$line"
  done
done
