#!/usr/bin/env bash
# Reproduces the fault table in figures of docs/fault-model.md: the simulator's CI seeds,
# a soak, crash states, and every fuzz target under the stable driver; prints markdown.
#
#   sim/fault-table.sh [SOAK_MINUTES] [CRASH_MINUTES] [FUZZ_SECONDS_PER_TARGET] [SEED] [JOBS]
#
# Defaults: 20 minutes of soak, 10 of crash states, 60 s per fuzz target, seed 5000, and
# crash-state workloads enumerated on 1 thread (JOBS).
# The coverage-guided fuzz figures come from fuzz/libfuzzer.sh (nightly toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."
soak=${1:-20}
crash=${2:-10}
fuzz=${3:-60}
seed=${4:-5000}
jobs=${5:-1}
cargo build --release -q -p ectable-sim -p ectable-fuzz
echo "Date: $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores."
echo
echo "\`ecsim --fault-table --minutes $soak --crash-minutes $crash --seed $seed --jobs $jobs\`"
echo
./target/release/ecsim --fault-table --minutes "$soak" --crash-minutes "$crash" --seed "$seed" --jobs "$jobs"
echo
echo "\`ecfuzz run --seconds $fuzz\` (stable driver, seeded mutation, seed 1):"
echo
echo '```'
./target/release/ecfuzz run --seconds "$fuzz" --artifacts fuzz/artifacts
echo '```'
