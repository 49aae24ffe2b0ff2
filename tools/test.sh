#!/usr/bin/env bash
# Runs every test: lints, the x86_64 suite (all backends this CPU has), and the aarch64 suite
# under qemu twice (Raspberry Pi 4 = NEON only, then dotprod + fp16). Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh

echo "== clippy (warnings are errors)" >&2
cargo clippy --workspace --all-targets --all-features --release -- -D warnings

echo "== rustdoc (warnings are errors)" >&2
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --release

echo "== x86_64 tests" >&2
cargo test --workspace --all-features --release

# Fuzz smoke test: every target for 5 s on its seeds (libFuzzer through cargo-fuzz; stable
# rustc with RUSTC_BOOTSTRAP=1, see fuzz/README.md). Costs ~25 s of fuzzing plus, the first
# time, installing cargo-fuzz (~3 min) and an ASan build of the SDK and its dependencies
# (measured 16 min on 2 cores shared with a test build). DYSAMPLE_SKIP_FUZZ=1 skips it.
if [ -z "${DYSAMPLE_SKIP_FUZZ:-}" ]; then
    echo "== fuzz smoke (5 s per target)" >&2
    bash fuzz/run.sh 5
fi

for cpu in cortex-a72 max; do
    QEMU_CPU=$cpu bash cross/test-aarch64.sh --release
done

# ---- packaging and the packaged stack under emulation (issue 11, cross/README.md) -------------
# Builds the raspberry-pi package (every workspace binary and cdylib for aarch64, linked against
# glibc 2.31 with cargo-zigbuild and checked with readelf; tarball and .deb), unpacks it into an
# empty directory and runs it under qemu-aarch64 as a Cortex-A72 and as a dotprod + fp16 core:
# `dysample info`, the segmentation demo on builtin:// through the bundled ONNX Runtime,
# dysample-calibrate, and int8 DySample outputs byte-equal to the x86_64 build's.
# cross/setup.sh installs what it needs (apt qemu/headers, a venv with zig, cargo-zigbuild and
# cargo-deb: ~30 s the first time). Cost: see cross/README.md ("CI cost").
# DYSAMPLE_SKIP_PACKAGE=1 skips it.
if [ -z "${DYSAMPLE_SKIP_PACKAGE:-}" ]; then
    echo "== raspberry-pi package under qemu-aarch64 (cortex-a72, max)" >&2
    bash cross/test-package.sh
fi
# ---- end of the packaging block ----------------------------------------------------------------
echo "== all test suites passed" >&2
