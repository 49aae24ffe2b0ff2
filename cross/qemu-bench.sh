#!/usr/bin/env bash
# qemu-user instruction-count proxy timings of the aarch64 kernels (issue 13): every backend the
# emulated core offers, every precision and layout, shape 64x60x60 x2 lp g4 (a 16th of the reference: emulation is slow), 1 thread.
set -euo pipefail
BIN=${1:?usage: cross/qemu-bench.sh AARCH64_DYSAMPLE_BINARY (e.g. target/aarch64-unknown-linux-gnu/release/dysample from cross/build.sh)}
for cpu in cortex-a72 max; do
  if [ $cpu = cortex-a72 ]; then backends="scalar neon"; else backends="scalar neon neon-dotprod neon-dotprod-fp16"; fi
  for b in $backends; do
    for p in f32 f16 int8; do
      for l in nchw nhwc; do
        out=$(QEMU_CPU=$cpu qemu-aarch64 -L /usr/aarch64-linux-gnu "$BIN" bench --channels 64 --height 60 --width 60 --backend $b --precision $p --layout $l --threads 1 --iters 3 --warmup 1 --json 2>&1 | tail -1)
        echo "$cpu $b $p $l $out"
      done
    done
  done
done
