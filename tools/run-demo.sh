#!/usr/bin/env bash
# The README's main command: builds and runs the camera demo, `segment` on the first camera or
# the built-in clip unless other arguments are given (they go to `dysample-demo`).
# On a fresh machine it installs libclang first (the v4l camera crate generates its bindings
# with it at build time); where that cannot be installed it builds without the v4l2 source
# (files, builtin:// and the window still work) and says so. ONNX Runtime is found or fetched
# by dysample-demo itself.
set -euo pipefail
cd "$(dirname "$0")/.."
have_libclang() { ls /usr/lib/*/libclang*.so* /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; }
features=()
if ! have_libclang; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    if [ -z "$SUDO" ] || command -v sudo >/dev/null; then
        echo "run-demo: apt-get install libclang-dev (the v4l camera crate needs it to build)" >&2
        { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libclang-dev; } >/dev/null 2>&1 || true
    fi
fi
if ! have_libclang; then
    echo "run-demo: no libclang: building without the v4l2 camera source (files, builtin:// and the window work)" >&2
    features=(--no-default-features --features window)
fi
[ $# -gt 0 ] || set -- segment
exec cargo run --release -p dysample-demo "${features[@]}" -- "$@"
