#!/usr/bin/env bash
# Long fuzzing runs (outside CI): each named target (default: all) until 10 M executions or
# $FUZZ_SECONDS (default 1800), whichever comes first, growing a local corpus in corpus/<target>
# (seeded from seeds/<target>). Prints one summary line per target; logs in logs/<target>.log.
# Crashes land in artifacts/<target>/ and stop that target with a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
secs=${FUZZ_SECONDS:-1800}
runs=${FUZZ_RUNS:-10000000}
if [ $# -gt 0 ]; then targets=("$@"); else
    targets=(npy safetensors quant_json onnx_graph model_json video_frames image_file); fi
mkdir -p logs
cargo fuzz build >/dev/null 2>&1 || cargo fuzz build
status=0
for t in "${targets[@]}"; do
    mkdir -p corpus/"$t"
    cp -n seeds/"$t"/* corpus/"$t"/ 2>/dev/null || true
    start=$(date +%s)
    if cargo fuzz run "$t" corpus/"$t" -- -max_total_time="$secs" -runs="$runs" \
        -rss_limit_mb=2048 -max_len=1048576 -timeout=10 -print_final_stats=1 \
        >logs/"$t".log 2>&1; then res="no crash"; else res="FAILED (see logs/$t.log)"; status=1; fi
    n=$(grep -o 'stat::number_of_executed_units: *[0-9]*' logs/"$t".log | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' logs/"$t".log | tail -1 || true)
    echo "fuzz $t: $n executions in $(( $(date +%s) - start )) s, $cov, corpus $(ls corpus/"$t" | wc -l) files: $res"
done
exit $status
