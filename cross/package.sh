#!/usr/bin/env bash
# Build the `dysample` CLI for 64-bit ARM Linux and pack it as
#   dist/dysample-<version>-aarch64-linux[-<cpu>].tar.gz
#
#   cross/package.sh                      # generic ARMv8.0: runs on Pi 4, Pi 5 and Orin alike
#   TARGET_CPU=cortex-a76 cross/package.sh  # tuned build (see README below); NOT portable downwards
#
# The default is deliberately generic: the int8/fp16 kernels are picked at run time from the
# detected CPU features (neon / neon-dotprod / neon-dotprod-fp16), so one binary is fast everywhere.
# Needs the same toolchain as cross/test-aarch64.sh (rustup target + gcc-aarch64-linux-gnu).
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
version=$(cargo pkgid -p dysample-cli | sed 's/.*[#@]//')
name="dysample-${version}-aarch64-linux${TARGET_CPU:+-${TARGET_CPU}}"
target_dir="${CARGO_TARGET_DIR:-target}"

if [[ -n "${TARGET_CPU:-}" ]]; then
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-cpu=${TARGET_CPU}"
fi
cargo --config cross/aarch64-linux.toml build --release --target "$target" -p dysample-cli --bin dysample

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name" dist
cp "$target_dir/$target/release/dysample" "$stage/$name/"
if command -v aarch64-linux-gnu-strip >/dev/null; then
    aarch64-linux-gnu-strip "$stage/$name/dysample"
fi
for f in LICENSE* README.md; do [[ -e $f ]] && cp "$f" "$stage/$name/"; done

cat > "$stage/$name/README-aarch64.md" <<MD
# dysample ${version} for 64-bit ARM Linux

Static-feature build: ${TARGET_CPU:-generic ARMv8.0 (any 64-bit ARM Linux)}. Needs glibc (Raspberry Pi OS
64-bit, Ubuntu/Debian arm64, NVIDIA JetPack / L4T).

    tar xzf ${name}.tar.gz && cd ${name}
    ./dysample info          # detected CPU features and the kernel backend in use
    ./dysample demo          # small end-to-end run

Kernels are chosen at run time from the CPU features:

| board                         | core        | backend picked        |
|-------------------------------|-------------|-----------------------|
| Raspberry Pi 4                | Cortex-A72  | neon                  |
| Raspberry Pi 5                | Cortex-A76  | neon-dotprod-fp16     |
| Jetson Orin (Nano/NX/AGX)     | Cortex-A78AE| neon-dotprod-fp16     |

Force one with \`DYSAMPLE_BACKEND=neon\` (or \`neon-dotprod\`, \`neon-dotprod-fp16\`, \`scalar\`).

## Building a tuned binary

The release binary is generic on purpose. For a single known board you can let the compiler
schedule for that core (and use its extensions everywhere), at the price of SIGILL on older cores:

    TARGET_CPU=cortex-a72  cross/package.sh   # Raspberry Pi 4   (ARMv8.0 + crc)
    TARGET_CPU=cortex-a76  cross/package.sh   # Raspberry Pi 5   (ARMv8.2: dotprod, fp16)
    TARGET_CPU=cortex-a78ae cross/package.sh  # Jetson Orin      (ARMv8.2: dotprod, fp16)

(equivalently \`RUSTFLAGS="-C target-cpu=..."\`; on the device itself \`-C target-cpu=native\`).
A cortex-a76 / a78ae binary does not run on a Pi 4.
MD

tar -C "$stage" -czf "dist/${name}.tar.gz" "$name"
echo "dist/${name}.tar.gz"
