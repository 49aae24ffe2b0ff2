#!/usr/bin/env bash
# Builds every binary and cdylib of the workspace for one package target, linked against an old
# glibc with cargo-zigbuild, and writes the list of artefacts (one path a line) to stdout.
#
#   cross/build.sh raspberry-pi|jetson|x86_64-linux [extra cargo args]
#
# "Every" is read from `cargo metadata`: each workspace member with a bin or cdylib target is
# built, so a crate that lands later (dysample-calibrate, the custom-op library) is picked up
# without editing this file. CARGO_TARGET_DIR is honoured; artefacts land in
# $CARGO_TARGET_DIR/<triple>/release/ (zigbuild drops the .2.31 suffix there).
set -euo pipefail
cd "$(dirname "$0")/.."
source cross/setup.sh >&2
source cross/targets.sh
cross_target "${1:?usage: cross/build.sh raspberry-pi|jetson|x86_64-linux}"
shift

# Workspace members that ship something: name<TAB>kinds.
mapfile -t pkgs < <(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
m = json.load(sys.stdin)
members = set(m["workspace_members"])
for p in m["packages"]:
    if p["id"] in members and any(set(t["kind"]) & {"bin", "cdylib"} for t in p["targets"]):
        print(p["name"])
')
[ ${#pkgs[@]} -gt 0 ] || { echo "cross/build: no workspace member has a bin or cdylib target" >&2; exit 1; }
echo "cross/build: ${TRIPLE}.${GLIBC}: ${pkgs[*]}" >&2

# bindgen (the v4l crate's v4l2-sys-mit) runs libclang for the target: cargo-zigbuild hands it
# `zig cc`'s include paths (BINDGEN_EXTRA_CLANG_ARGS), i.e. zig's bundled glibc-2.31 and Linux
# UAPI headers for the target, so linux/videodev2.h is the target's, not the host's.

args=()
for p in "${pkgs[@]}"; do args+=(-p "$p"); done
json=$(mktemp)
trap 'rm -f "$json"' EXIT
nice -n 10 cargo zigbuild --release --target "${TRIPLE}.${GLIBC}" "${args[@]}" \
    --message-format=json-render-diagnostics "$@" > "$json"

# Executables and cdylibs of workspace packages (path+file:// ids), as cargo reports them.
python3 - "$json" <<'PY'
import json, sys
seen = set()
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") != "compiler-artifact" or not msg["package_id"].startswith("path+file://"):
        continue
    kinds = set(msg["target"]["kind"])
    files = []
    if "bin" in kinds and msg.get("executable"):
        files.append(msg["executable"])
    if "cdylib" in kinds:
        files += [f for f in msg["filenames"] if f.endswith(".so")]
    for f in files:
        if f not in seen:
            seen.add(f)
            print(f)
PY
