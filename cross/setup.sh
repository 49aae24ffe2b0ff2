#!/usr/bin/env bash
# Installs what cross-building, packaging and the emulated package test need; does nothing for
# what is already there. Source-safe: `source cross/setup.sh` also exports PATH with the venv.
#
#   - rustup targets aarch64-unknown-linux-gnu and x86_64-unknown-linux-gnu
#   - apt: qemu-user (emulation), the arm64 kernel/libc headers (the v4l crate's bindgen step),
#     clang/libclang (bindgen), binutils (readelf for the glibc check), dpkg-deb (.deb checks)
#   - a Python venv ($DYSAMPLE_CROSS_VENV, default ~/.cache/dysample/venv-cross) with pinned
#     ziglang + cargo-zigbuild (links against an old glibc: the 2.31 baseline) and cargo-deb
#     (the author's prebuilt binary as published on PyPI: seconds instead of a ~minutes
#     `cargo install cargo-deb --locked`)
set -euo pipefail
_cross_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.1
CARGO_DEB_VERSION=2.0.0
DYSAMPLE_CROSS_VENV="${DYSAMPLE_CROSS_VENV:-${HOME:-/root}/.cache/dysample/venv-cross}"
export DYSAMPLE_CROSS_VENV

for t in aarch64-unknown-linux-gnu x86_64-unknown-linux-gnu; do
    if ! (cd "$_cross_root" && rustup target list --installed 2>/dev/null) | grep -qx "$t"; then
        echo "cross/setup: rustup target add $t" >&2
        (cd "$_cross_root" && rustup target add "$t")
    fi
done

_need_apt=()
command -v qemu-aarch64 >/dev/null || _need_apt+=(qemu-user)
[ -f /usr/aarch64-linux-gnu/include/linux/videodev2.h ] || _need_apt+=(linux-libc-dev-arm64-cross)
[ -d /usr/aarch64-linux-gnu/lib ] || _need_apt+=(libc6-dev-arm64-cross)
command -v aarch64-linux-gnu-gcc >/dev/null || _need_apt+=(gcc-aarch64-linux-gnu)
command -v clang >/dev/null || _need_apt+=(clang)
ls /usr/lib/*/libclang*.so* >/dev/null 2>&1 || _need_apt+=(libclang-dev)
command -v readelf >/dev/null || _need_apt+=(binutils)
command -v dpkg-deb >/dev/null || _need_apt+=(dpkg)
command -v unshare >/dev/null || _need_apt+=(util-linux)
command -v python3 >/dev/null || _need_apt+=(python3 python3-venv)
python3 -c 'import ensurepip' 2>/dev/null || _need_apt+=(python3-venv)
if [ ${#_need_apt[@]} -gt 0 ]; then
    echo "cross/setup: apt-get install ${_need_apt[*]}" >&2
    _sudo=""; [ "$(id -u)" -ne 0 ] && _sudo=sudo
    $_sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $_sudo apt-get install -y -qq "${_need_apt[@]}" >/dev/null
fi

_venv_ok() {
    [ -x "$DYSAMPLE_CROSS_VENV/bin/python" ] || return 1
    "$DYSAMPLE_CROSS_VENV/bin/python" - "$ZIGLANG_VERSION" "$CARGO_ZIGBUILD_VERSION" "$CARGO_DEB_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
want = dict(zip(["ziglang", "cargo-zigbuild", "cargo-deb"], sys.argv[1:]))
sys.exit(any(version(k) != v for k, v in want.items()))
PY
}
if ! _venv_ok; then
    echo "cross/setup: venv $DYSAMPLE_CROSS_VENV with ziglang==$ZIGLANG_VERSION cargo-zigbuild==$CARGO_ZIGBUILD_VERSION cargo-deb==$CARGO_DEB_VERSION" >&2
    python3 -m venv "$DYSAMPLE_CROSS_VENV"
    "$DYSAMPLE_CROSS_VENV/bin/pip" install -q --disable-pip-version-check \
        "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION" "cargo-deb==$CARGO_DEB_VERSION"
fi
# Appended, not prepended: the venv's python3 (no numpy) must not shadow the system one.
# cargo-zigbuild runs zig as `python -m ziglang` with the interpreter named here.
case ":$PATH:" in *":$DYSAMPLE_CROSS_VENV/bin:"*) ;; *) export PATH="$PATH:$DYSAMPLE_CROSS_VENV/bin" ;; esac
export CARGO_ZIGBUILD_PYTHON_PATH="$DYSAMPLE_CROSS_VENV/bin/python3"
unset _need_apt _sudo _cross_root
