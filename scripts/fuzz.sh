#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time and prints a log line per target (time,
# executions, crashes). Needs a nightly toolchain and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz
# Usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET (default 180)] [TARGET ...]
# Seeds come from ../shared (WAV samples, model headers) and tests' regression inputs; crashing
# inputs land in fuzz/artifacts/TARGET/ (add each as a regression test once fixed).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-180}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(wav safetensors ct2)
shared=../../shared

seed() {
    local t=$1 dir=corpus/$1
    mkdir -p "$dir"
    case $t in
    wav)
        # Real files are large; their first 8 KiB (header and some data) are the useful part.
        for f in "$shared"/samples/*.wav ../examples/jfk.wav; do
            [ -f "$f" ] && head -c 8192 "$f" >"$dir/$(basename "$f")"
        done ;;
    safetensors)
        # config.json, NUL, then the start of model.safetensors (its header).
        for m in "$shared"/models/*/; do
            [ -f "$m/config.json" ] && [ -f "$m/model.safetensors" ] || continue
            { cat "$m/config.json"; printf '\0'; head -c 16384 "$m/model.safetensors"; } >"$dir/$(basename "$m")"
        done ;;
    ct2) ;;
    esac
    # Regression inputs kept by the test suite.
    if [ -d ../tests/fuzz_regressions/$t ]; then cp ../tests/fuzz_regressions/$t/* "$dir"/ 2>/dev/null || true; fi
}

for t in "${targets[@]}"; do
    seed "$t"
    cargo +nightly fuzz build -O "$t" 2>&1 | tail -n 1
    log=$(mktemp)
    start=$(date +%s)
    set +e
    # -rss_limit_mb: a reader that allocates from a header's claim shows up as a crash.
    cargo +nightly fuzz run -O "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    crashes=$({ find artifacts/"$t" -type f 2>/dev/null || true; } | wc -l)
    printf 'fuzz %-12s %5ss  %10s execs  exit %d  artifacts %d\n' "$t" "$(( $(date +%s) - start ))" "$execs" "$rc" "$crashes"
    [ $rc -eq 0 ] || tail -n 40 "$log"
    rm -f "$log"
done
