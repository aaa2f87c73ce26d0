#!/usr/bin/env bash
# The backup figures of docs/performance.md (issue 7), in one run on one set of devices.
#   benches/backup.sh D1,...,D6 R1,...,R6 [OUT_DIR] [ROWS]
# D: the source array's six devices; R: six devices to restore onto. DESTROYS both sets.
# Full backup rate against the raw sequential read rate of D (dd, O_DIRECT, all six at
# once, over the region the array uses), restore rate against the engine's own ingest rate (ectable load) on the same
# devices, and incremental size and time for 1% and 10% of the rows changed.
set -euo pipefail
SRC=${1:?usage: backup.sh D1,...,D6 R1,...,R6 [OUT_DIR] [ROWS]}
DST=${2:?usage: backup.sh D1,...,D6 R1,...,R6 [OUT_DIR] [ROWS]}
OUT=${3:-backup-out}
ROWS=${4:-400000}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
cargo build --release -q -p ectable-tools --bins
E=target/release/ectable
date -u +%Y-%m-%dT%H:%M:%SZ >"$OUT/date"
now() { date +%s.%N; }
IFS=, read -r -a D <<<"$SRC"

echo "== ingest: $ROWS rows of 1 KiB"
$E format --devices "$SRC" --k 4 --m 2 --force --yes >/dev/null
t0=$(now); $E load --devices "$SRC" --table t --rows "$ROWS" --value-size 1K 2>"$OUT/load.txt"; t1=$(now)
echo "ingest_bytes $((ROWS * 1024)) secs $(echo "$t1 - $t0" | bc)" | tee "$OUT/ingest.txt"

echo "== raw sequential read of the region the array uses (all six devices at once, O_DIRECT)"
# After the load, so that the region holds real data (sparse files or fresh loop devices
# would read holes at memory speed): the first RAW_MIB MiB of every device.
RAW_MIB=${RAW_MIB:-192}
t0=$(now)
for d in "${D[@]}"; do dd if="$d" of=/dev/null bs=1M count="$RAW_MIB" iflag=direct status=none & done
wait
t1=$(now)
echo "raw_read_bytes $((RAW_MIB * 1048576 * ${#D[@]})) secs $(echo "$t1 - $t0" | bc)" | tee "$OUT/raw.txt"

rm -f "$OUT"/*.ectb
echo "== full backup"
t0=$(now); $E backup --devices "$SRC" --to "$OUT/full.ectb" 2>/dev/null; t1=$(now)
echo "full_bytes $(stat -c %s "$OUT/full.ectb") secs $(echo "$t1 - $t0" | bc)" | tee "$OUT/full.txt"

echo "== incremental after 1% of the rows changed"
$E load --devices "$SRC" --table t --rows $((ROWS / 100)) --value-size 1K --seed 2 2>/dev/null
t0=$(now); $E backup --devices "$SRC" --to "$OUT/inc1.ectb" --incremental-from "$OUT/full.ectb" 2>/dev/null; t1=$(now)
echo "inc1_bytes $(stat -c %s "$OUT/inc1.ectb") secs $(echo "$t1 - $t0" | bc)" | tee "$OUT/inc1.txt"

echo "== incremental after 10% of the rows changed"
$E load --devices "$SRC" --table t --rows $((ROWS / 10)) --value-size 1K --seed 3 2>/dev/null
t0=$(now); $E backup --devices "$SRC" --to "$OUT/inc10.ectb" --incremental-from "$OUT/inc1.ectb" 2>/dev/null; t1=$(now)
echo "inc10_bytes $(stat -c %s "$OUT/inc10.ectb") secs $(echo "$t1 - $t0" | bc)" | tee "$OUT/inc10.txt"

echo "== restore of the chain onto the second set, RS(4,2)"
t0=$(now)
$E restore --devices "$DST" --k 4 --m 2 --force --yes --from "$OUT/full.ectb,$OUT/inc1.ectb,$OUT/inc10.ectb" 2>/dev/null
t1=$(now)
echo "restore_bytes $((ROWS * 1024)) secs $(echo "$t1 - $t0" | bc)" | tee "$OUT/restore.txt"
$E verify --devices "$DST" --table t --rows $((ROWS / 10)) --value-size 1K --seed 3 2>&1 | tail -1
