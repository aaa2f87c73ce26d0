#!/usr/bin/env bash
# Runs ectable's fuzz targets under libFuzzer (cargo fuzz, nightly toolchain), one after the
# other, each until it has used SECONDS of CPU time (user + system, read from /proc, so a run
# at low priority beside other work still gets its full budget), and prints a line per target:
# CPU seconds, wall seconds, executions, coverage reached, crashes. The working corpus grows in fuzz/libfuzzer/corpus/<target>
# (not committed), seeded from the committed fuzz/corpus/<target>; crashing inputs land in
# fuzz/libfuzzer/artifacts/<target> (reproduce one with `ecfuzz repro <target> <file>`).
#
#   fuzz/libfuzzer.sh [SECONDS] [TARGET...]      (default: 60 s, every target)
#
# Needs: rustup's nightly toolchain and `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."
# The kernel schedules a session's processes as one group, and nice works only inside the
# group: a run started in a session of its own (`setsid nice -n 19 ...`) would still take a
# whole core from other sessions' work. Give that session's group the run's niceness.
if [ "$(ps -o sid= -p $$ | tr -d ' ')" = "$$" ] && [ "$(nice)" -gt 0 ]; then
  echo "$(nice)" >/proc/self/autogroup 2>/dev/null || true
fi
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/libfuzzer/Cargo.toml | grep -v '^ectable-libfuzzer$')
fi
cargo +nightly fuzz build --fuzz-dir fuzz/libfuzzer -O
logs=fuzz/libfuzzer/logs
mkdir -p "$logs"
ticks=$(getconf CLK_TCK)
# CPU seconds (user + system) used so far by process $1, or nothing once it is gone.
cpu_of() { awk -v t="$ticks" '{ print int(($14 + $15) / t) }' "/proc/$1/stat" 2>/dev/null; }
printf '%-16s %8s %8s %12s %8s %8s %8s\n' target cpu_s wall_s execs cov features crashes
for t in "${targets[@]}"; do
  work=fuzz/libfuzzer/corpus/$t
  mkdir -p "$work" "fuzz/libfuzzer/artifacts/$t"
  log=$logs/$t.log
  start=$(date +%s)
  # Wall time is only a backstop (20x the budget); the watcher below ends the run with SIGINT
  # (libFuzzer then prints its final stats) once the fuzzing process has had SECONDS of CPU.
  # libFuzzer's timeout counts wall time, so a run paused for a benchmark (SIGSTOP, then
  # SIGCONT) must not call its current input a hang: 20 minutes, not libFuzzer's default.
  cargo +nightly fuzz run --fuzz-dir fuzz/libfuzzer -O "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time=$((seconds * 20)) -timeout=1200 -rss_limit_mb=4096 -max_len=65536 \
    -print_final_stats=1 >"$log" 2>&1 &
  cargo_pid=$!
  used=0
  while kill -0 "$cargo_pid" 2>/dev/null; do
    sleep 5
    fuzzer=$(pgrep -P "$cargo_pid" | head -1 || true)
    [ -n "$fuzzer" ] || continue
    now=$(cpu_of "$fuzzer")
    [ -n "$now" ] && used=$now
    if [ "$used" -ge "$seconds" ]; then
      kill -INT "$fuzzer" 2>/dev/null || true
      break
    fi
  done
  set +e
  wait "$cargo_pid"
  rc=$?
  set -e
  wall=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  # Slow units are reports, not findings; crashes, timeouts, out-of-memory and leaks are.
  crashes=$(find "fuzz/libfuzzer/artifacts/$t" -type f \( -name 'crash-*' -o -name 'timeout-*' \
    -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
  printf '%-16s %8s %8s %12s %8s %8s %8s\n' "$t" "$used" "$wall" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$crashes"
  # The watcher's SIGINT makes libFuzzer exit 72 ("run interrupted") and cargo fuzz exit 1;
  # any other failure without an artifact is worth a look.
  if [ $rc -ne 0 ] && ! grep -q 'libFuzzer: run interrupted' "$log" && [ "$crashes" -eq 0 ]; then
    echo "  libFuzzer exited $rc without an artifact: see $log" >&2
  fi
done
