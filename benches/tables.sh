#!/usr/bin/env bash
# The typed-table figures of docs/performance.md (issue 4): ecbench's table workloads on
# RS(4,2) over six devices, then RocksDB's db_bench on btrfs raid6 (data and metadata) over
# the same six devices, in one run.
#   benches/tables.sh D1,D2,D3,D4,D5,D6 [OUT_DIR]
# DESTROYS the contents of all six devices (block devices, e.g. 1.5 GiB loop devices).
# Needs db_bench (Debian: apt-get install rocksdb-tools), btrfs-progs and wipefs; runs as
# root (mkfs, mount).
#
# Both sides: rows of ~1 KiB (ecbench: 10 typed columns; db_bench: 16-byte keys, 1024-byte
# values, no compression), a data set of NKEYS rows, THREADS client threads, RUNTIME
# seconds per measured workload. Order on each side:
#   put      fresh store, random keys in [0, NKEYS), every put durable before the next
#            (ecbench --iodepth 1: put_row + sync; db_bench fillrandom --sync=1)
#   put/64   the same, durable in groups of 64 (ecbench --iodepth 64: 64 put_rows, one
#            sync; db_bench fillrandom --batch_size=64 --sync=1: one synced WriteBatch)
#   load     fresh store, NKEYS rows in key order, durable every 1024 rows (not timed
#            against anything; it lays the data set down for the reads)
#   get      random point reads, one at a time per thread
#   get/32   random point reads, 32 at once per thread (ecbench get_rows of 32 keys;
#            db_bench multireadrandom --batch_size=32, MultiGet)
#   range    a range of RANGE_ROWS rows from a random start key (db_bench seekrandom
#            --seek_nexts=RANGE_ROWS); range_view the same with the rows read in place
#            (ecbench --range-view, Tables::range_view)
#   mixed    50% gets, 50% puts, every put durable (ecbench table-mixed --iodepth 1;
#            db_bench readrandomwriterandom --readwritepercent=50 --sync=1)
# benches/tables_summary.py OUT_DIR prints the side-by-side table from the outputs.
set -euo pipefail
DEVS=${1:?usage: tables.sh D1,...,D6 [OUT_DIR]}
OUT=$(mkdir -p "${2:-tables-out}" && cd "${2:-tables-out}" && pwd)
NKEYS=${NKEYS:-524288}   # 512 MiB of 1 KiB rows
THREADS=${THREADS:-4}
RUNTIME=${RUNTIME:-25}
RANGE_ROWS=${RANGE_ROWS:-100}
cd "$(dirname "$0")/.."
IFS=, read -r -a D <<<"$DEVS"
[ "${#D[@]}" -eq 6 ] || { echo "give six devices" >&2; exit 2; }
for d in "${D[@]}"; do
  [ -b "$d" ] || { echo "$d: not a block device" >&2; exit 2; }
done
DB_BENCH=${DB_BENCH:-$(command -v db_bench || command -v rocksdb_db_bench || true)}
[ -n "$DB_BENCH" ] || { echo "db_bench not found (apt-get install rocksdb-tools)" >&2; exit 2; }
command -v mkfs.btrfs >/dev/null || { echo "mkfs.btrfs not found (apt-get install btrfs-progs)" >&2; exit 2; }
cargo build --release -q -p ectable-tools --bins
B=target/release
MNT=""
cleanup() {
  if [ -n "$MNT" ]; then
    mountpoint -q "$MNT" && umount "$MNT"
    rmdir "$MNT"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
  date -u +%Y-%m-%dT%H:%M:%SZ
  uptime
  echo "devices: $DEVS"
  lsblk -b -n -o NAME,SIZE "${D[@]}" 2>/dev/null || true
  echo "db_bench: $("$DB_BENCH" --version 2>&1 | head -1)"
  echo "nkeys=$NKEYS threads=$THREADS runtime=${RUNTIME}s range_rows=$RANGE_ROWS"
} >"$OUT/setup.txt"
cat "$OUT/setup.txt"

echo "== (a) ectable: RS(4,2) over the six devices, typed rows of ~1 KiB"
wipefs -a -q "${D[@]}"
ec() { # NAME ARGS...: one ecbench run, JSON kept, the text report on stderr
  local name=$1; shift
  echo "-- ecbench $name"
  $B/ecbench --devices "$DEVS" --bs 1K --size $((NKEYS * 1024)) --numjobs "$THREADS" \
    --runtime "${RUNTIME}s" --time-based --range-rows "$RANGE_ROWS" --output-format json "$@" >"$OUT/ectable_$name.json"
  python3 - "$OUT/ectable_$name.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
for d in ("read", "write"):
    x = j[d]
    if x["total_ios"]:
        p = x["clat_ns"]["percentile"]
        print(f"   {d}: {x['iops']:.0f} ops/s, p50 {p['50.000000']/1e3:.0f} us, p99 {p['99.000000']/1e3:.0f} us")
EOF
}
ec put --k 4 --m 2 --force --rw table-put --iodepth 1
ec put64 --k 4 --m 2 --force --rw table-put --iodepth 64
# Formats again and lays the data set down (rows in key order, a sync every 1024 rows).
ec get --k 4 --m 2 --force --rw table-get --iodepth 1
ec get32 --rw table-get --iodepth 32
ec range --rw table-range --iodepth 1
ec range_view --rw table-range --iodepth 1 --range-view
ec mixed --rw table-mixed --rwmixread 50 --iodepth 1

echo "== (b) RocksDB: btrfs raid6 (data and metadata) over the same six devices"
wipefs -a -q "${D[@]}"
mkfs.btrfs -f -q -d raid6 -m raid6 "${D[@]}" >"$OUT/mkfs_btrfs.txt" 2>&1
MNT=$(mktemp -d /tmp/ectable-btrfs.XXXXXX)
mount -t btrfs "${D[0]}" "$MNT"
btrfs filesystem usage "$MNT" >"$OUT/btrfs_usage.txt" 2>&1 || true
findmnt -n -o OPTIONS "$MNT" >"$OUT/btrfs_mount_options.txt"
DB="$MNT/db"
# Direct I/O for reads and for flush/compaction writes (checked below); the WAL is
# buffered and made durable by fsync when --sync=1. 8 MiB block cache (db_bench's
# default), no compression (ectable does not compress), 16-byte keys.
COMMON=(--db="$DB" --num="$NKEYS" --key_size=16 --value_size=1024 --compression_type=none
  --cache_size=8388608 --use_direct_reads=1 --use_direct_io_for_flush_and_compaction=1
  --histogram=1 --seed=1)
rb() { # NAME ARGS...
  local name=$1; shift
  echo "-- db_bench $name"
  "$DB_BENCH" "${COMMON[@]}" "$@" >"$OUT/rocksdb_$name.txt" 2>&1 || {
    echo "db_bench $name failed:"; tail -20 "$OUT/rocksdb_$name.txt"; return 1; }
  grep -E '^[a-z]+ +:' "$OUT/rocksdb_$name.txt" | sed 's/^/   /'
}
rb put --benchmarks=fillrandom --threads="$THREADS" --duration="$RUNTIME" --sync=1 --batch_size=1
rb put64 --benchmarks=fillrandom --threads="$THREADS" --duration="$RUNTIME" --sync=1 --batch_size=64
rb load --benchmarks=fillseq,flush,waitforcompaction,levelstats --threads=1 --sync=1 --batch_size=1024
rb get --benchmarks=readrandom --use_existing_db=1 --threads="$THREADS" --duration="$RUNTIME"
rb get32 --benchmarks=multireadrandom --use_existing_db=1 --threads="$THREADS" --duration="$RUNTIME" \
  --batch_size=32 --multiread_batched=1
rb range --benchmarks=seekrandom --use_existing_db=1 --threads="$THREADS" --duration="$RUNTIME" \
  --seek_nexts="$RANGE_ROWS"
rb mixed --benchmarks=readrandomwriterandom --use_existing_db=1 --threads="$THREADS" \
  --duration="$RUNTIME" --readwritepercent=50 --sync=1
# Did direct I/O take effect? RocksDB logs the options it ran with.
grep -hE 'use_direct_(reads|io_for_flush_and_compaction)' "$DB/LOG" | head -2 >"$OUT/rocksdb_direct_io.txt" || true
du -sh "$DB" >"$OUT/rocksdb_du.txt" 2>&1 || true

echo "== (c) clean up"
umount "$MNT"
rmdir "$MNT"
MNT=""
wipefs -a -q "${D[@]}"
uptime >>"$OUT/setup.txt"
python3 benches/tables_summary.py "$OUT"
