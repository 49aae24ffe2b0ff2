#!/usr/bin/env bash
# Issue 13: one DySample layer through ONNX Runtime (custom op; ORT's own profiler) against the
# SDK's own `dysample bench` of the *same* layer and input (`bench --save-onnx` writes both),
# NCHW f32/f16/int8, interleaved rounds. Also the lowered (GridSample) form of the f32 node.
#   tools/one_node_bench.sh [DIR] [THREADS] [ROUNDS]     (after cargo build --release)
# f16 runs the f32 node with --dysample-precision f16 (conversions at the node's edges, inside
# its time); int8 is QuantizeLinear -> int8 node -> DequantizeLinear (the Q/DQ show separately).
set -euo pipefail
cd "$(dirname "$0")/.."
M=${1:-/tmp/one-node}
T=${2:-2}
R=${3:-3}
D=target/release/dysample
for p in f32 f16 int8; do
  $D bench --layout nchw --precision $p --iters 1 --warmup 0 --threads 1 --save-onnx "$M/$p" >/dev/null
done
$D onnx lower "$M/f32/layer.onnx" "$M/lowered.onnx" >/dev/null
for r in $(seq "$R"); do
  for p in f32 f16 int8; do
    dp=$p; [ "$p" = int8 ] && dp=f32
    a=$($D bench --layout nchw --precision $p --threads "$T" --iters 30 --warmup 5 --json | tail -1)
    b=$($D onnx bench "$M/$p/layer.onnx" --input "$M/$p/input.npy" --dysample-precision $dp \
        --threads "$T" --iters 30 --warmup 5 --profile-runs 10 --json | tail -1)
    echo "round $r $p SDK $a"
    echo "round $r $p ORT $b"
  done
  c=$($D onnx bench "$M/lowered.onnx" --input "$M/f32/input.npy" --threads "$T" --iters 10 \
      --warmup 2 --profile-runs 3 --json | tail -1)
  echo "round $r f32 LOWERED $c"
done
