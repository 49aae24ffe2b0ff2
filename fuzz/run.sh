#!/usr/bin/env bash
# Builds every fuzz target and runs each for $1 seconds (default 5) on a scratch copy of its
# seeds. Fails on any crash, leak, timeout or out-of-memory. Extra arguments go to libFuzzer.
# Stable toolchain: RUSTC_BOOTSTRAP=1 lets rustc accept cargo-fuzz's -Z flags (see README.md).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-5}
shift || true
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=(npy safetensors quant_json onnx_graph model_json video_frames image_file)
cargo fuzz build
for t in "${targets[@]}"; do
    corpus=$(mktemp -d)
    cp seeds/"$t"/* "$corpus"/
    log=$(mktemp)
    if ! cargo fuzz run "$t" "$corpus" -- -max_total_time="$secs" \
        -rss_limit_mb=2048 -max_len=1048576 -timeout=10 -print_final_stats=1 "$@" >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz target $t FAILED (artifacts in fuzz/artifacts/$t)" >&2
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz $t: $runs executions in ${secs}s, no crash" >&2
    rm -rf "$corpus" "$log"
done
