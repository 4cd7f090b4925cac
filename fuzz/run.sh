#!/usr/bin/env bash
# Bounded coverage-guided fuzzing of every target (cargo-fuzz / libFuzzer).
#
#   bash fuzz/run.sh [SECONDS_PER_TARGET]     (default 60)
#
# Each target starts from its committed seed corpus (fuzz/corpus/<target>/, read only: new
# inputs go to a scratch copy) and runs for SECONDS; any crash, panic, failed assertion,
# input slower than FUZZ_INPUT_TIMEOUT seconds (a hang) or RSS over FUZZ_RSS_MB fails the
# script, and the reproducer is kept in fuzz/artifacts/<target>/.
#
# Stable Rust: cargo-fuzz needs -Z flags, so RUSTC_BOOTSTRAP=1. The sanitizer defaults to
# AddressSanitizer (FUZZ_SANITIZER=address); FUZZ_SANITIZER=none fuzzes faster.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET="${1:-60}"
SANITIZER="${FUZZ_SANITIZER:-address}"
INPUT_TIMEOUT="${FUZZ_INPUT_TIMEOUT:-10}"
RSS_MB="${FUZZ_RSS_MB:-2048}"
TARGETS=(${FUZZ_TARGETS:-parse_authorization layer_headers keys_file})
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version

echo "== building fuzz targets (sanitizer: $SANITIZER)"
cargo fuzz build -O -s "$SANITIZER"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
summary=()
for t in "${TARGETS[@]}"; do
  echo "== fuzzing $t for ${SECONDS_PER_TARGET}s"
  mkdir -p "$scratch/$t" "artifacts/$t"
  log="$scratch/$t.log"
  status=0
  # Hard wall-clock bound on top of libFuzzer's own, in case the process itself wedges.
  timeout --signal=KILL $((SECONDS_PER_TARGET + 120)) \
    cargo fuzz run -O -s "$SANITIZER" "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -timeout="$INPUT_TIMEOUT" \
      -rss_limit_mb="$RSS_MB" -print_final_stats=1 \
      -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log"
    echo "FAIL: fuzz target $t (exit $status); reproducer(s) in fuzz/artifacts/$t/:"
    ls -l "artifacts/$t/" || true
    exit 1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || true)
  ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || true)
  corp=$(echo "$last" | grep -o 'corp: [0-9]*' | grep -o '[0-9]*' || true)
  rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  line="$t: ${execs:-?} execs in ${SECONDS_PER_TARGET}s, cov ${cov:-?} edges, ft ${ft:-?} features, corpus ${corp:-?} inputs, peak RSS ${rss:-?} MB"
  echo "   $line"
  summary+=("$line")
done
echo "== fuzz summary (sanitizer: $SANITIZER)"
printf '  %s\n' "${summary[@]}"
echo "fuzz: ${#summary[@]} targets, no crash, panic or hang"
