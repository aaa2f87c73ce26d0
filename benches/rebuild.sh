#!/usr/bin/env bash
# Rebuild and scrub against what the shared disk allows (docs/performance.md, "Rebuild").
#   benches/rebuild.sh D1,...,D6 SPARE [ROUNDS] [OUT_DIR]
# DESTROYS the contents of all seven devices. Needs fio.
# Loads 1 GiB of 4 KiB rows, then per round: fio's sequential read over the five members that
# survive (R) and sequential write on the device that replaces the sixth (W), a replace of
# the sixth by that device (the two swap roles every round), and the bound 1 / (k/R + 1/W):
# every rebuilt byte costs k bytes read and one written. Then fio's sequential read of all
# six and a scrub, against it.
set -euo pipefail
DEVS=${1:?usage: rebuild.sh D1,...,D6 SPARE [ROUNDS] [OUT_DIR]}
SPARE=${2:?usage: rebuild.sh D1,...,D6 SPARE [ROUNDS] [OUT_DIR]}
ROUNDS=${3:-3}
OUT=${4:-rebuild-out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
cargo build --release -q -p ectable-tools --bins
B=target/release
IFS=, read -r -a D <<<"$DEVS"
date -u +%Y-%m-%dT%H:%M:%SZ | tee "$OUT/date"
$B/ectable format --devices "$DEVS" --k 4 --m 2 --force --yes >/dev/null
$B/ectable load --devices "$DEVS" --table bulk --rows 262144 --value-size 4K 2>&1 | tail -1
fio_bw() { # rw files -> MB/s
  fio --name=x --filename="$2" --ioengine=io_uring --direct=1 --rw="$1" --bs=1M --iodepth=8 \
    --size=1200M --output-format=json | python3 -c "import json,sys; j=json.load(sys.stdin)['jobs'][0]; print(j['$1' if '$1'=='read' else 'write']['bw_bytes']/1e6)"
}
SURVIVORS=$(IFS=:; echo "${D[*]:0:5}")
OLD=${D[5]}
NEW=$SPARE
for r in $(seq 1 "$ROUNDS"); do
  R=$(fio_bw read "$SURVIVORS")
  W=$(fio_bw write "$NEW")
  MEMBERS=$(IFS=,; echo "${D[*]:0:5}"),$OLD
  LINE=$( { /usr/bin/time -f "cpu %U %S" $B/ectable replace --devices "$MEMBERS,$NEW" --old "$OLD" --new "$NEW" \
    --yes --force 2>&1; } | grep -E "rebuilt in|^cpu")
  python3 - "$R" "$W" "$LINE" "$r" <<'EOF'
import re, sys
R, W, line, r = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
m = re.search(r"\(([\d.]+) MiB\) rebuilt in ((?:\d+(?:ms|s|m) ?)+)", line)
secs = sum(int(n) * {"m": 60, "s": 1, "ms": 1e-3}[u] for n, u in re.findall(r"(\d+)(ms|s|m)\b", m.group(2)))
mb = float(m.group(1)) * 1048576 / 1e6
bound = 1 / (4 / R + 1 / W)
cpu = re.search(r"cpu ([\d.]+) ([\d.]+)", line)
print(f"round {r} rebuild: R {R:,.0f} MB/s, W {W:,.0f} MB/s, bound {bound:,.0f} MB/s; "
      f"{mb:,.1f} MB in {secs:.2f} s = {mb / secs:,.0f} MB/s = {mb / secs / bound:.2f} of the bound; "
      f"cpu user {cpu.group(1)} s, system {cpu.group(2)} s")
EOF
  T=$OLD
  OLD=$NEW
  NEW=$T
done
MEMBERS=$(IFS=,; echo "${D[*]:0:5}"),$OLD
ALL=$(echo "$MEMBERS" | tr , :)
for r in $(seq 1 "$ROUNDS"); do
  R6=$(fio_bw read "$ALL")
  LINE=$($B/ectable scrub --devices "$MEMBERS" 2>&1 | grep -E "scrub: 100%" | tail -1)
  echo "round $r scrub: fio sequential read of the six ${R6} MB/s; $LINE"
done
