#!/usr/bin/env bash
# Runs ectable's fuzz targets under libFuzzer (cargo fuzz, nightly toolchain), one after the
# other, each for SECONDS of one core, and prints a line per target: CPU seconds, executions,
# coverage reached, crashes. The working corpus grows in fuzz/libfuzzer/corpus/<target>
# (not committed), seeded from the committed fuzz/corpus/<target>; crashing inputs land in
# fuzz/libfuzzer/artifacts/<target> (reproduce one with `ecfuzz repro <target> <file>`).
#
#   fuzz/libfuzzer.sh [SECONDS] [TARGET...]      (default: 60 s, every target)
#
# Needs: rustup's nightly toolchain and `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/libfuzzer/Cargo.toml | grep -v '^ectable-libfuzzer$')
fi
cargo +nightly fuzz build --fuzz-dir fuzz/libfuzzer -O
logs=fuzz/libfuzzer/logs
mkdir -p "$logs"
printf '%-16s %8s %12s %8s %8s %8s\n' target cpu_s execs cov features crashes
for t in "${targets[@]}"; do
  work=fuzz/libfuzzer/corpus/$t
  mkdir -p "$work" "fuzz/libfuzzer/artifacts/$t"
  log=$logs/$t.log
  set +e
  cargo +nightly fuzz run --fuzz-dir fuzz/libfuzzer -O "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  crashes=$(find "fuzz/libfuzzer/artifacts/$t" -type f | wc -l)
  printf '%-16s %8s %12s %8s %8s %8s\n' "$t" "$seconds" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$crashes"
  if [ $rc -ne 0 ] && [ "$crashes" -eq 0 ]; then
    echo "  libFuzzer exited $rc without an artifact: see $log" >&2
  fi
done
