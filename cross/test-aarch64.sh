#!/usr/bin/env bash
# Build and run the SDK and conformance tests for aarch64 under qemu-user.
#
#   QEMU_CPU=cortex-a72 cross/test-aarch64.sh   # Raspberry Pi 4: NEON only
#   QEMU_CPU=max        cross/test-aarch64.sh   # + dotprod + fp16 (Pi 5 / Orin class)
#
# Extra arguments go to `cargo test` (e.g. a test-name filter after `--`).
# CARGO_TARGET_DIR is honoured. Tests use the `test` profile (opt-level 2), since qemu is slow.
set -euo pipefail
cd "$(dirname "$0")/.."

export QEMU_CPU="${QEMU_CPU:-max}"
# qemu-user reads QEMU_CPU itself; the runner line in the config stays CPU-agnostic.
echo "== aarch64 tests under qemu-user, QEMU_CPU=${QEMU_CPU}" >&2

cargo --config cross/aarch64-linux.toml test \
    --target aarch64-unknown-linux-gnu \
    -p dysample -p dysample-conformance "$@"
