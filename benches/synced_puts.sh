#!/usr/bin/env bash
# Synced puts against fio's 4 KiB write+fsync at QD 1, in one run on the same devices
# (issue 12, item 2; docs/performance.md, "Synced puts"):
#   fio   --rw=write --bs=4k --iodepth=1 --fsync=1 on the first device (the reference), and
#         --sync=dsync (RWF_DSYNC writes) for comparison;
#   fio   the journal's own pattern, the floor for one writer: one 8 KiB RWF_DSYNC write to
#         each of three devices, submitted together and all awaited (a 4 KiB value's entry
#         is two blocks, written to m + 1 = 3 members);
#   ecbench --rw write --bs 4K --iodepth 1 with 1 and with 16 writers (--numjobs), on a
#         version 2 array (the sync journal) and on a version 1 array (--no-sync-journal:
#         every sync writes a short stripe on all six devices).
#   benches/synced_puts.sh D1,D2,D3,D4,D5,D6 [ROUNDS] [OUT_DIR]
# DESTROYS the contents of the six devices.
set -euo pipefail
DEVS=${1:?usage: synced_puts.sh D1,...,D6 [ROUNDS] [OUT_DIR]}
ROUNDS=${2:-3}
OUT=${3:-synced-puts-out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
cargo build --release -q -p ectable-tools --bins
B=target/release
FIRST=${DEVS%%,*}
IFS=, read -r -a D <<<"$DEVS"
THREE="${D[0]}:${D[1]}:${D[2]}"
date -u +%Y-%m-%dT%H:%M:%SZ | tee "$OUT/date"
fio_rate() { # $1 = name, rest: fio options
  local name=$1
  shift
  fio --name="$name" --filename="$FIRST" --rw=write --bs=4k --iodepth=1 --direct=1 \
    --ioengine=io_uring --size=64M --runtime=6 --time_based "$@" --output-format=json \
    >"$OUT/$name.json"
}
bench() { # $1 = name, rest: ecbench options
  local name=$1
  shift
  $B/ecbench --devices "$DEVS" --k 4 --m 2 --force --rw write --bs 4K --iodepth 1 \
    --size 1G --runtime 6s --group_reporting --output-format json "$@" >"$OUT/$name.json"
}
for r in $(seq 1 "$ROUNDS"); do
  fio_rate "r$r-fio-fsync" --fsync=1
  fio_rate "r$r-fio-dsync" --sync=dsync
  fio --name="r$r-fio-journal" --filename="$THREE" --rw=write --bs=8k --iodepth=3 \
    --iodepth_batch_submit=3 --iodepth_batch_complete_min=3 --file_service_type=roundrobin \
    --direct=1 --sync=dsync --ioengine=io_uring --size=64M --runtime=6 --time_based \
    --output-format=json >"$OUT/r$r-fio-journal.json"
  bench "r$r-journal-1" --numjobs 1
  bench "r$r-journal-16" --numjobs 16
  bench "r$r-stripes-1" --numjobs 1 --no-sync-journal
  bench "r$r-stripes-16" --numjobs 16 --no-sync-journal
done
python3 - "$OUT" "$ROUNDS" <<'EOF'
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(n):
    return json.load(open(f"{out}/{n}.json"))
def iops_p(n):
    w = load(n)["jobs"][0]["write"]
    pct = w["clat_ns"]["percentile"]
    return w["iops"], pct["50.000000"] / 1e3, pct["99.000000"] / 1e3
print("| round | fio fsync IOPS | fio dsync IOPS | journal floor (3 × 8 KiB dsync) | journal, 1 writer | journal, 16 | short stripes, 1 | short stripes, 16 |")
print("|---|---|---|---|---|---|---|---|")
for r in range(1, rounds + 1):
    f, _, _ = iops_p(f"r{r}-fio-fsync")
    d, _, _ = iops_p(f"r{r}-fio-dsync")
    j, _, _ = iops_p(f"r{r}-fio-journal")
    j /= 3  # three writes per entry
    one, _, _ = iops_p(f"r{r}-journal-1")
    cells = []
    for n in ("journal-1", "journal-16", "stripes-1", "stripes-16"):
        i, p50, p99 = iops_p(f"r{r}-{n}")
        cells.append(f"{i:,.0f} = **{i / f:.2f}** × (p50 {p50:.0f} µs, p99 {p99:.0f} µs)")
    floor = f"{j:,.0f} = {j / f:.2f} × (1 writer at {one / j:.2f} of it)"
    print(f"| {r} | {f:,.0f} | {d:,.0f} | {floor} | " + " | ".join(cells) + " |")
EOF
