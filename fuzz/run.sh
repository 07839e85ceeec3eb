#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) and prints, per
# target, the executions and the findings (crash, timeout, leak and
# out-of-memory inputs, left in artifacts/<target>/).
#
#   fuzz/run.sh 600            # ten minutes each, one target at a time
#   JOBS=2 fuzz/run.sh 600     # two targets at once (one per core)
#   fuzz/run.sh 60 wire_frames request_path   # only these targets
#
# A finding is fixed in the code, then kept: copy the input to
# regressions/<target>/ and `cargo test -p outpost-invariants` replays it
# in every CI run. CI never runs the fuzzers themselves.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
jobs="${JOBS:-1}"

# cargo-fuzz and libFuzzer need a nightly toolchain; cargo-fuzz is built
# once into the same cache as the CI's tools.
tools="$HOME/.cache/outpost-tools"
export PATH="$tools/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz --version 0.13.2 --root "$tools"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/outpost-fuzz}"

# Debug assertions on: an integer overflow is a finding. No sanitizer:
# the code under test is safe Rust, and plain builds run several times
# more inputs per second.
flags=(--debug-assertions --sanitizer none)
cargo +nightly fuzz build "${flags[@]}"

# Every corpus starts from the platform's own encodings.
(cd .. && CARGO_TARGET_DIR="${MAIN_TARGET_DIR:-$HOME/.cache/outpost-target}" \
  cargo run -q -p outpost-invariants --example seeds -- fuzz/corpus)

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
mkdir -p logs

one() {
  local t="$1"
  mkdir -p "corpus/$t" "artifacts/$t"
  # -timeout: an input taking 10 s is a finding; -rss_limit_mb: so is one
  # needing 2 GiB.
  cargo +nightly fuzz run "${flags[@]}" "$t" "corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"logs/$t.log" 2>&1 || true
}

running=0
for t in "${targets[@]}"; do
  one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

printf '%-20s %14s %10s %9s\n' target executions exec/s findings
for t in "${targets[@]}"; do
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -1)
  found=$(find "artifacts/$t" -type f | wc -l)
  printf '%-20s %14s %10s %9s\n' "$t" "${execs:-?}" "${rate:-?}" "$found"
done
