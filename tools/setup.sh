#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine; does nothing for what is already there.
#   - the aarch64 Rust target, cross gcc and qemu-user (aarch64 tests under emulation)
#   - Python onnxruntime==1.31.1 (its libonnxruntime.so runs the ONNX tests) and numpy
#   - for the demo apps: libclang (the v4l crate's bindgen step), the X11 libraries minifb
#     loads, and Xvfb + xwd for the window screenshot test
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    echo "setup: rustup target add aarch64-unknown-linux-gnu" >&2
    rustup target add aarch64-unknown-linux-gnu
fi

need_apt=()
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu)
[ -d /usr/aarch64-linux-gnu/lib ] || need_apt+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
command -v clang >/dev/null || need_apt+=(clang)
ls /usr/lib/*/libclang*.so* >/dev/null 2>&1 || need_apt+=(libclang-dev)
for lib in x11:libX11.so xcursor:libXcursor.so xrandr:libXrandr.so xi:libXi.so xkbcommon:libxkbcommon.so; do
    ls /usr/lib/*/"${lib#*:}" >/dev/null 2>&1 || need_apt+=("lib${lib%%:*}-dev")
done
command -v Xvfb >/dev/null || need_apt+=(xvfb)
command -v xwd >/dev/null || need_apt+=(x11-apps)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: apt-get install ${need_apt[*]}" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! python3 -c 'import onnxruntime, numpy, sys; sys.exit(onnxruntime.__version__ != "1.31.1")' 2>/dev/null; then
    echo "setup: pip install onnxruntime==1.31.1 numpy" >&2
    python3 -m pip install -q --disable-pip-version-check onnxruntime==1.31.1 numpy
fi
