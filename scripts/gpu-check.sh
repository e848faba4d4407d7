#!/usr/bin/env bash
# The checks of the `cuda` feature that need an NVIDIA GPU, in one command:
#
#   bash scripts/gpu-check.sh [OUT_DIR]        (default target/gpu-check)
#
# Needs the NVIDIA driver, Rust, and ../shared (models, references). NVRTC comes from the CUDA
# toolkit when it is installed, else from NVIDIA's wheel (fetched here). A Vulkan driver for
# the NVIDIA GPU is optional: with one, CUDA is compared against wgpu on the same GPU.
# Every result goes to OUT_DIR; summary.md collects the figures.
#
#   1. tests/cuda_device.rs: every kernel against the CPU reference; tiny.en against the HF
#      reference (encoder output, logits, greedy tokens) with CUDA graphs and with plain
#      launches, 1 and 8 steps per host synchronisation; no device objects on the hot path.
#   2. jfk with tiny.en through the transcriber: CUDA's text (plain and with timestamps)
#      identical to wgpu's.
#   3. Decode speed, batch 1, for random models of tiny.en's and large-v3's dimensions (the
#      same weights on every backend): CUDA graphs, CUDA plain launches, wgpu.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/gpu-check}
export WHISPER_WGPU_OFFLINE=1
mkdir -p "$out"
log() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)" | tee -a "$out/log.txt"; }

log "device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/device.txt" || true

if ! ldconfig -p | grep -q 'libnvrtc\.so'; then
    nvrtc=target/nvrtc-cu12
    if [ ! -e "$nvrtc/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" ]; then
        python3 -m pip install --quiet --disable-pip-version-check --target "$nvrtc" 'nvidia-cuda-nvrtc-cu12==12.8.*'
    fi
    export LD_LIBRARY_PATH="$PWD/$nvrtc/nvidia/cuda_nvrtc/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

log "build"
cargo build --release --features cuda --example transcribe --example bench --example random_model
cargo test --features cuda --no-run --test cuda --test cuda_device

log "device tests"
# A failure is reported in the summary; the measurements below still run.
WHISPER_WGPU_REQUIRE_NVRTC=1 cargo test --features cuda --test cuda --test cuda_device -- --test-threads 1 --nocapture \
    2>&1 | tee "$out/tests.txt" || echo "DEVICE TESTS FAILED (see tests.txt)" | tee -a "$out/tests.txt"

bin=target/release/examples
tiny=../shared/models/whisper-tiny.en
log "jfk: CUDA against wgpu"
have_wgpu=1
for backend in cuda wgpu; do
    for mode in plain timestamps; do
        flag=(); [ "$mode" = timestamps ] && flag=(--timestamps)
        if ! "$bin/transcribe" examples/jfk.wav --model "$tiny" --backend "$backend" "${flag[@]}" \
            >"$out/jfk-$backend-$mode.txt" 2>"$out/jfk-$backend-$mode.err"; then
            echo "$backend failed: $(tail -n 1 "$out/jfk-$backend-$mode.err")"
            [ "$backend" = wgpu ] && have_wgpu=0
            [ "$backend" = cuda ] && exit 1
        fi
    done
done
cat "$out/jfk-cuda-plain.txt" "$out/jfk-cuda-timestamps.txt"
jfk="not compared (no wgpu adapter)"
if [ "$have_wgpu" = 1 ]; then
    if cmp -s "$out/jfk-cuda-plain.txt" "$out/jfk-wgpu-plain.txt" && cmp -s "$out/jfk-cuda-timestamps.txt" "$out/jfk-wgpu-timestamps.txt"; then
        jfk="identical to wgpu (plain and with timestamps)"
    else
        jfk="DIFFERS from wgpu (see jfk-*.txt)"
    fi
fi
echo "jfk: $jfk"

log "decode speed"
for shape in tiny.en large-v3; do
    dir=target/random-$shape
    [ -e "$dir/model.safetensors" ] || "$bin/random_model" --shape "$shape" --out "$dir"
    WHISPER_WGPU_CUDA_GRAPHS=1 "$bin/bench" --model "$dir" --backend cuda --steps 200 --steps-per-submit 8 \
        --json "$out/bench-$shape-cuda-graphs.json" | tee "$out/bench-$shape-cuda-graphs.txt"
    WHISPER_WGPU_CUDA_GRAPHS=0 "$bin/bench" --model "$dir" --backend cuda --steps 200 --steps-per-submit 8 \
        --json "$out/bench-$shape-cuda-plain.json" | tee "$out/bench-$shape-cuda-plain.txt"
    if [ "$have_wgpu" = 1 ]; then
        "$bin/bench" --model "$dir" --backend wgpu --steps 200 --steps-per-submit 8 \
            --json "$out/bench-$shape-wgpu.json" | tee "$out/bench-$shape-wgpu.txt" || true
    fi
done

log "per-kernel device time (large-v3 shape, CUDA events)"
"$bin/bench" --model target/random-large-v3 --backend cuda --steps 40 --encoder-runs 1 --profile \
    >"$out/profile-large-v3-cuda.txt" 2>&1 || echo "profile failed (see profile-large-v3-cuda.txt)"

log "summary"
{
    echo "# cuda feature: GPU check ($(date -u +%FT%TZ))"
    echo
    echo "device: $(tail -n +2 "$out/device.txt" 2>/dev/null | head -n 1)"
    echo
    echo "device tests: $(grep -E '^test result|FAILED' "$out/tests.txt" | tr '\n' ' ')"
    echo
    echo "jfk (tiny.en): $jfk"
    echo
    echo "| model | backend | encoder ms | decode ms/token | tokens/s (bs1) | host us/token |"
    echo "|---|---|---|---|---|---|"
    for shape in tiny.en large-v3; do
        for b in cuda-graphs cuda-plain wgpu; do
            f="$out/bench-$shape-$b.json"
            [ -e "$f" ] || continue
            python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))[0]
print("| %s (random) | %s | %.0f | %.3f | %.1f | %.1f |" % (sys.argv[2], sys.argv[3], r["encoder_ms"],
      r["decode_ms_per_token"], r["tokens_per_s"], r["host_us_per_token"]))' "$f" "$shape" "$b"
        done
    done
} | tee "$out/summary.md"
