#!/usr/bin/env bash
# Issue 13: one DySample node through ONNX Runtime (custom op, ORT's own profiler) against the
# SDK's own bench of the same layer, NCHW f32/f16/int8, 2 threads, interleaved rounds.
set -euo pipefail
M=$(realpath "${1:?usage: tools/one_node_bench.sh DIR (from tools/make_one_node_model.py DIR; then dysample onnx lower DIR/one.onnx DIR/one_lowered.onnx)}")
cd "$(dirname "$0")/.."
D=target/release/dysample
for r in 1 2 3; do
  for p in f32 f16 int8; do
    a=$($D bench --layout nchw --precision $p --threads 2 --iters 40 --warmup 5 --json | tail -1)
    b=$($D onnx bench $M/one.onnx --input $M/x.npy --dysample-precision $p --threads 2 --iters 40 --warmup 5 --profile-runs 10 --json | tail -1)
    echo "round $r $p SDK $a"
    echo "round $r $p ORT $b"
  done
  c=$($D onnx bench $M/one_lowered.onnx --input $M/x.npy --threads 2 --iters 10 --warmup 2 --profile-runs 3 --json | tail -1)
  echo "round $r f32 LOWERED $c"
done
