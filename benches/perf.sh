#!/usr/bin/env bash
# The figures of docs/performance.md, in one run on one set of devices.
#   benches/perf.sh D1,D2,D3,D4,D5,D6 SPARE [OUT_DIR]
# DESTROYS the contents of all seven devices. Needs fio (apt-get install fio).
# Every engine figure is a ratio against the raw devices measured in the same run. Each ecbench
# run writes its JSON and, beside it, a chart (NAME.svg) of throughput and latency.
set -euo pipefail
DEVS=${1:?usage: perf.sh D1,...,D6 SPARE [OUT_DIR]}
NEW=${2:?usage: perf.sh D1,...,D6 SPARE [OUT_DIR]}
OUT=${3:-perf-out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
cargo build --release -q -p ectable-tools --bins
cargo build --release -q --example rebuild_under_load
B=target/release
IFS=, read -r -a D <<<"$DEVS"
FIO_FILES=$(echo "$DEVS" | tr , :)
date -u +%Y-%m-%dT%H:%M:%SZ >"$OUT/date"

# fio's --size is shared out among the files: 64 MiB per device is the region ecbench's raw
# pass reads for a 256 MiB data set of 4 KiB rows (coded x 1.5 over six devices), 86 MiB
# the one for 512 MiB of 64 KiB sequential reads.
echo "== fio reference: 4K random reads over the region ecbench's raw pass uses (QD 32: one job; QD 192: six jobs of 32), and 64K sequential reads at 32 per device"
fio --name=rr --filename="$FIO_FILES" --ioengine=io_uring --direct=1 --rw=randread --bs=4k \
  --iodepth=32 --offset=1M --size=$((64 * ${#D[@]}))M --runtime=8 --time_based --output-format=json >"$OUT/fio_rr_32.json"
fio --name=rr --filename="$FIO_FILES" --ioengine=io_uring --direct=1 --rw=randread --bs=4k \
  --iodepth=32 --numjobs=6 --group_reporting --offset=1M --size=$((64 * ${#D[@]}))M --runtime=8 --time_based \
  --output-format=json >"$OUT/fio_rr_192.json"
fio --name=sr --filename="$FIO_FILES" --ioengine=io_uring --direct=1 --rw=read --bs=64k \
  --iodepth=$((32 * ${#D[@]})) --offset=1M --size=$((86 * ${#D[@]}))M --runtime=8 --time_based \
  --output-format=json >"$OUT/fio_seqread.json"

echo "== ingest: engine vs raw sequential write (ecbench keeps 1024 puts in flight), then the bulk path"
for bs in 64K 16K 4K 1K; do
  $B/ecbench --devices "$DEVS" --k 4 --m 2 --force --rw write --bs $bs --iodepth 1024 --size 1G \
    --compare-raw --output-format json --chart "$OUT/write_$bs.svg" >"$OUT/write_$bs.json"
  rows=$(( (1 << 30) / $(numfmt --from=iec "$bs") ))
  : >"$OUT/load_$bs.txt"
  $B/ectable format --devices "$DEVS" --k 4 --m 2 --force --yes >/dev/null
  # CPU time of the whole process (user, system), next to its rate.
  /usr/bin/time -f "cpu %U %S" -a -o "$OUT/load_$bs.txt" \
    $B/ectable load --devices "$DEVS" --table bulk --rows $rows --value-size $bs 2>>"$OUT/load_$bs.txt"
done

echo "== 4K random point reads: engine vs raw at the same queue depth"
$B/ecbench --devices "$DEVS" --k 4 --m 2 --force --rw randread --bs 4K --iodepth 32 --size 256M \
  --runtime 8s --compare-raw --output-format json --chart "$OUT/randread_32.svg" >"$OUT/randread_32.json"
$B/ecbench --devices "$DEVS" --k 4 --m 2 --force --rw randread --bs 4K --iodepth 32 --numjobs 6 \
  --size 256M --runtime 8s --compare-raw --output-format json --chart "$OUT/randread_192.svg" >"$OUT/randread_192.json"
echo "== 64K sequential reads: engine vs raw, 32 in flight per device"
$B/ecbench --devices "$DEVS" --k 4 --m 2 --force --rw read --bs 64K --iodepth 32 --size 512M \
  --compare-raw --output-format json --chart "$OUT/seqread_64K.svg" >"$OUT/seqread_64K.json"

echo "== fail-slow: 4K point reads at QD 32 on the psync engine, healthy, then with ${D[2]} answering 15 ms late"
$B/ecbench --devices "$DEVS" --k 4 --m 2 --force --rw randread --bs 4K --iodepth 32 --size 256M \
  --runtime 8s --io-engine psync --output-format json --chart "$OUT/randread_psync_healthy.svg" >"$OUT/randread_psync_healthy.json"
$B/ecbench --devices "$DEVS" --k 4 --m 2 --force --rw randread --bs 4K --iodepth 32 --size 256M \
  --runtime 8s --slow-device 2:15ms --output-format json --chart "$OUT/randread_psync_slow.svg" >"$OUT/randread_psync_slow.json"

echo "== degraded reads: the same array with ${D[5]} left out"
HEALTHY="$DEVS"
DEGRADED=$(IFS=,; echo "${D[*]:0:5}")
$B/ecbench --devices "$HEALTHY" --k 4 --m 2 --force --rw read --bs 64K --size 512M --output-format json --chart "$OUT/seqread_healthy.svg" >"$OUT/seqread_healthy.json"
$B/ecbench --devices "$DEGRADED" --rw read --bs 64K --size 512M --output-format json --chart "$OUT/seqread_degraded.svg" >"$OUT/seqread_degraded.json"
$B/ecbench --devices "$HEALTHY" --rw randread --bs 4K --iodepth 32 --size 512M --runtime 8s --output-format json --chart "$OUT/randread_healthy.svg" >"$OUT/randread_healthy.json"
$B/ecbench --devices "$DEGRADED" --rw randread --bs 4K --iodepth 32 --size 512M --runtime 8s --output-format json --chart "$OUT/randread_degraded.svg" >"$OUT/randread_degraded.json"

echo "== rebuild: replacement raw write bandwidth, then rebuild with foreground reads, two data sizes"
fio --name=w --filename="$NEW" --ioengine=io_uring --direct=1 --rw=write --bs=1M --iodepth=8 \
  --runtime=6 --time_based --output-format=json >"$OUT/fio_new_write.json"
for size in 256M 1G; do
  $B/ecbench --devices "$HEALTHY" --k 4 --m 2 --force --rw randread --bs 4K --iodepth 32 --size $size \
    --runtime 2s --output-format json >/dev/null
  dd if=/dev/zero of="$NEW" bs=1M count=2 oflag=direct conv=notrunc status=none
  target/release/examples/rebuild_under_load "$DEGRADED" "$NEW" 0 >"$OUT/rebuild_$size.json"
done
python3 benches/perf_summary.py "$OUT"
