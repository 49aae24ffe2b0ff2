#!/usr/bin/env bash
# One command per package: a tarball and a .deb with every binary and cdylib of the workspace,
# the shipped models, licences (ours and every third-party one), a README, man pages and
# --help docs, checked against the target's glibc baseline.
#
#   cross/package.sh raspberry-pi   # aarch64, glibc <= 2.31, ONNX Runtime 1.31.1 (PyPI aarch64 CPU) in lib/
#   cross/package.sh jetson         # aarch64, glibc <= 2.31, no ORT: JetPack's onnxruntime-gpu is found via python3
#   cross/package.sh x86_64-linux   # x86_64,  glibc <= 2.28, ONNX Runtime 1.31.1 (PyPI x86_64 CPU) in lib/
#
# Writes dist/dysample-<version>-<target>.tar.gz, dist/<deb name>_<version>-1_<arch>.deb and
# dist/dysample-<version>-<target>.glibc.txt (the readelf report of the check).
# DYSAMPLE_DEB_FAST=1 compresses the .deb faster (larger; CI uses it). Installs what it
# needs first (cross/setup.sh). CARGO_TARGET_DIR is honoured. Wheels are cached in
# $DYSAMPLE_CACHE (default ~/.cache/dysample).
#
# Tarball layout (unpack anywhere, run in place):
#   dysample  dysample-demo  [dysample-calibrate ...]   the binaries
#   lib/       libonnxruntime.so.1.31.1 (raspberry-pi, x86_64-linux) and the workspace's cdylibs;
#              the SDK's loader looks in lib/ next to the executable
#   models/    person-seg, depth (the files each model.json lists, and reference/input_0.npy +
#              output_0.npy, the f32 reference pair)
#   licenses/  ours, third-party Rust crates, the models' sources, ONNX Runtime's
#   doc/       README-<board>.md guide, demo.md, onnx.md, <binary>.md (--help of every subcommand)
#   man/man1/  man pages from --help
# The .deb puts the same tree in /usr/lib/dysample/ with /usr/bin wrappers, man pages in
# /usr/share/man and the docs and licences in /usr/share/doc/<package>/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
board="${1:?usage: cross/package.sh raspberry-pi|jetson|x86_64-linux}"
source cross/setup.sh
source cross/targets.sh
cross_target "$board"
t0=$(date +%s)

version=$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "dysample-cli"))')
name="dysample-${version}-${board}"
cache="${DYSAMPLE_CACHE:-${HOME:-/root}/.cache/dysample}"
mkdir -p dist "$cache/wheels"
stage="$root/dist/stage/$name"
rm -rf "$stage" "dist/stage/deb-$board"
mkdir -p "$stage"/{lib,models,licenses,doc,man/man1}

# --- binaries and cdylibs -----------------------------------------------------------------
mapfile -t arts < <(bash cross/build.sh "$board")
[ ${#arts[@]} -gt 0 ] || { echo "package: the build produced no artefacts" >&2; exit 1; }
case "$TRIPLE" in
    aarch64-*) strip_tool=aarch64-linux-gnu-strip runner="$root/cross/qemu-run.sh" ;;
    *) strip_tool=strip runner="" ;;
esac
command -v "$strip_tool" >/dev/null || { echo "package: $strip_tool not found (binutils)" >&2; exit 1; }
bins=() libs=() packages=()
for a in "${arts[@]}"; do
    case "$a" in
        *.so) cp "$a" "$stage/lib/"; libs+=("$(basename "$a")") ;;
        *) cp "$a" "$stage/"; bins+=("$(basename "$a")") ;;
    esac
done
# Debug line tables go (the profile keeps them for perf work); symbol names stay for backtraces.
for f in "${bins[@]/#/$stage/}" "${libs[@]/#/$stage/lib/}"; do
    [ -n "$f" ] && "$strip_tool" --strip-debug "$f"
done
# Which workspace packages shipped (for the licence walk).
mapfile -t packages < <(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
m = json.load(sys.stdin)
members = set(m["workspace_members"])
for p in m["packages"]:
    if p["id"] in members and any(set(t["kind"]) & {"bin", "cdylib"} for t in p["targets"]):
        print(p["name"])
')

# --- ONNX Runtime ---------------------------------------------------------------------------
if [ -n "$ORT_WHEEL_PLATFORM" ]; then
    whl=$(ls "$cache/wheels"/onnxruntime-"${ORT_VERSION}"-cp311-cp311-"${ORT_WHEEL_PLATFORM}".whl 2>/dev/null || true)
    if [ -z "$whl" ]; then
        echo "package: pip download onnxruntime==${ORT_VERSION} (${ORT_WHEEL_PLATFORM})" >&2
        python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
            --platform "$ORT_WHEEL_PLATFORM" --python-version 3.11 \
            "onnxruntime==${ORT_VERSION}" -d "$cache/wheels"
        whl=$(ls "$cache/wheels"/onnxruntime-"${ORT_VERSION}"-cp311-cp311-"${ORT_WHEEL_PLATFORM}".whl)
    fi
    tmpw=$(mktemp -d)
    python3 - "$whl" "$tmpw" "$ORT_VERSION" <<'PY'
import sys, zipfile
whl, out, ver = sys.argv[1:]
want = {f"onnxruntime/capi/libonnxruntime.so.{ver}", "onnxruntime/LICENSE",
        "onnxruntime/ThirdPartyNotices.txt", "onnxruntime/Privacy.md"}
with zipfile.ZipFile(whl) as z:
    missing = want - set(z.namelist())
    if missing:
        sys.exit(f"package: {whl} lacks {sorted(missing)}")
    for n in want:
        z.extract(n, out)
PY
    install -m 0755 "$tmpw/onnxruntime/capi/libonnxruntime.so.${ORT_VERSION}" "$stage/lib/"
    mkdir -p "$stage/licenses/onnxruntime"
    cp "$tmpw"/onnxruntime/{LICENSE,ThirdPartyNotices.txt,Privacy.md} "$stage/licenses/onnxruntime/"
    echo "onnxruntime ${ORT_VERSION} from $(basename "$whl") (PyPI), CPU execution provider" \
        > "$stage/licenses/onnxruntime/SOURCE"
    rm -rf "$tmpw"
fi

# --- models ---------------------------------------------------------------------------------
for mj in models/*/model.json; do
    m=$(basename "$(dirname "$mj")")
    python3 - "$mj" "$stage/models/$m" <<'PY'
import json, shutil, sys
from pathlib import Path
mj, dest = Path(sys.argv[1]), Path(sys.argv[2])
src = mj.parent
# The reference input/output pair lets a user check a board's runtime against the f32 result.
files = {"model.json", "README.md", "reference/input_0.npy", "reference/output_0.npy"}
def walk(v):
    if isinstance(v, str):
        files.add(v)
    elif isinstance(v, dict):
        for x in v.values(): walk(x)
    elif isinstance(v, list):
        for x in v: walk(x)
walk(json.load(open(mj)).get("files", {}))
for f in sorted(files):
    p = (src / f).resolve()
    if not p.is_relative_to(src.resolve()):
        sys.exit(f"package: {mj}: file entry {f!r} leaves the model folder")
    if not p.is_file():
        if f == "README.md" or f.startswith("reference/"):
            continue
        sys.exit(f"package: {mj}: listed file {f!r} does not exist")
    (dest / f).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(p, dest / f)
PY
done

# --- licences -------------------------------------------------------------------------------
cp LICENSE-MIT LICENSE-APACHE "$stage/licenses/"
cp -r cross/licenses/models "$stage/licenses/models"
python3 cross/licenses.py --triple "$TRIPLE" --out "$stage/licenses/rust" "${packages[@]}"

# --- docs -----------------------------------------------------------------------------------
python3 cross/helpdoc.py --out "$stage/man" ${runner:+--runner "$runner"} "${bins[@]/#/$stage/}"
mv "$stage"/man/*.md "$stage/doc/"
cp docs/demo.md docs/onnx.md "$stage/doc/"
case "$board" in
    raspberry-pi) cp docs/raspberry-pi.md "$stage/doc/" ; guide=doc/raspberry-pi.md ;;
    jetson) cp docs/jetson.md "$stage/doc/" ; guide=doc/jetson.md ;;
    *) guide=doc/demo.md ;;
esac
{
    echo "# DySample SDK ${version} — ${board}"
    echo
    echo "${BOARD}. Built for \`${TRIPLE}\`; every binary and library here needs at most"
    echo "glibc ${GLIBC} (checked with \`readelf -V\` when the package was made)."
    echo
    echo "Guide: [\`${guide}\`](${guide}). Command reference: \`doc/<program>.md\` and \`man/man1/\`."
    echo
    echo '```sh'
    echo "tar xzf ${name}.tar.gz && cd ${name}"
    echo "./dysample info                                   # CPU features, kernel backend, ONNX Runtime found"
    echo "./dysample-demo segment --headless builtin://     # the person-segmentation demo on the built-in clip"
    echo "./dysample-demo segment /dev/video0 display://0   # a USB camera in a window"
    echo '```'
    echo
    echo "| file | what |"
    echo "|---|---|"
    for b in "${bins[@]}"; do
        echo "| \`$b\` | $(sed -n '/^```text$/{n;p;q}' "$stage/doc/$b.md") |"
    done
    for l in $(ls "$stage/lib"); do echo "| \`lib/$l\` | $( [[ $l == libonnxruntime* ]] && echo "ONNX Runtime ${ORT_VERSION} (CPU), loaded at run time" || echo "workspace cdylib") |"; done
    echo "| \`models/\` | $(ls "$stage/models" | tr '\n' ' ')(ONNX, lowered ONNX, safetensors; see each README.md) |"
    echo "| \`licenses/\` | ours (MIT OR Apache-2.0), \`rust/\` (every linked crate), \`models/\`$( [ -n "$ORT_WHEEL_PLATFORM" ] && echo ", \`onnxruntime/\`") |"
    echo
    if [ -z "$ORT_WHEEL_PLATFORM" ]; then
        echo "No ONNX Runtime is bundled: the programs load JetPack's \`onnxruntime-gpu\` Python package"
        echo "(found with \`python3 -I\`), or the library named by \`--ort-lib\` / \`ORT_DYLIB_PATH\`."
    else
        echo "ONNX Runtime is found in \`lib/\` first. For another build (e.g. \`onnxruntime-gpu\`), pass"
        echo "\`--ort-lib PATH\` or set \`ORT_DYLIB_PATH\`."
    fi
} > "$stage/README.md"

# --- glibc baseline -------------------------------------------------------------------------
report="dist/${name}.glibc.txt"
bash cross/check-glibc.sh "$GLIBC" "$stage" > "$report"
grep -E '^(== |glibc:)' "$report" >&2

# --- tarball --------------------------------------------------------------------------------
tar -C dist/stage --owner=0 --group=0 --numeric-owner -czf "dist/${name}.tar.gz" "$name"

# --- .deb (cargo-deb on a generated manifest whose assets are the staged tree) ----------------
debdir="$root/dist/stage/deb-$board"
mkdir -p "$debdir/wrappers" "$debdir/man"
: > "$debdir/lib.rs"
assets=()
asset() { assets+=("[\"$1\", \"$2\", \"$3\"]"); }
while IFS= read -r -d '' f; do
    rel=${f#"$stage"/}
    case "$rel" in
        man/*|doc/*|licenses/*|README.md) continue ;;
    esac
    mode=644; [ -x "$f" ] && mode=755
    asset "$f" "usr/lib/dysample/$rel" "$mode"
done < <(find "$stage" -type f -print0 | sort -z)
for b in "${bins[@]}"; do
    # exec keeps /proc/self/exe = /usr/lib/dysample/<bin>, so lib/ and models/ next to it are found.
    printf '#!/bin/sh\nexec /usr/lib/dysample/%s "$@"\n' "$b" > "$debdir/wrappers/$b"
    asset "$debdir/wrappers/$b" "usr/bin/$b" 755
    gzip -9n < "$stage/man/man1/$b.1" > "$debdir/man/$b.1.gz"
    asset "$debdir/man/$b.1.gz" "usr/share/man/man1/$b.1.gz" 644
done
while IFS= read -r -d '' f; do
    rel=${f#"$stage"/}
    asset "$f" "usr/share/doc/${DEB_NAME}/$rel" 644
done < <(find "$stage/doc" "$stage/licenses" "$stage/README.md" -type f -print0 | sort -z)
# Debian dependencies from what the ELF files load (NEEDED); a library we cannot map fails here.
depends="libc6 (>= ${GLIBC})"
needed=$(find "$stage" -type f -exec sh -c 'head -c4 "$1" | grep -q ELF && readelf -d "$1"' _ {} \; |
    awk '/NEEDED/ {gsub(/[][]/, "", $NF); print $NF}' | sort -u)
for lib in $needed; do
    case "$lib" in
        libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|librt.so.1|ld-linux-*.so.*) ;;
        libstdc++.so.6) depends+=", libstdc++6" ;;
        libgcc_s.so.1) depends+=", libgcc-s1 | libgcc1" ;;
        libonnxruntime.so*) ;;
        *) [ -e "$stage/lib/$lib" ] || { echo "package: no Debian package known for NEEDED $lib" >&2; exit 1; } ;;
    esac
done
echo "package: Depends: $depends" >&2
case "$board" in
    jetson)
        conflicts='conflicts = "dysample"'
        recommends='recommends = "python3"'
        desc="No ONNX Runtime inside: install JetPack's onnxruntime-gpu wheel (see /usr/share/doc/${DEB_NAME}/doc/jetson.md)." ;;
    *)
        conflicts='conflicts = "dysample-jetson"'
        recommends=''
        desc="Bundles ONNX Runtime ${ORT_VERSION} (CPU) in /usr/lib/dysample/lib." ;;
esac
{
    cat <<TOML
[package]
name = "${DEB_NAME}"
version = "${version}"
edition = "2021"
license = "MIT OR Apache-2.0"
description = "DySample SDK: dynamic upsampling kernels, ONNX Runtime custom op, camera demos (${board})"
authors = ["The DySample SDK authors"]
publish = false

[lib]
path = "lib.rs"

[workspace]

[package.metadata.deb]
maintainer = "The DySample SDK authors"
copyright = "2026, The DySample SDK authors; third-party licences in /usr/share/doc/${DEB_NAME}/licenses"
license-file = ["${root}/LICENSE-APACHE", "0"]
depends = "${depends}"
${recommends}
${conflicts}
section = "science"
priority = "optional"
extended-description = """\\
DySample dynamic upsampling (ICCV 2023) on the CPU: the dysample CLI, the dysample-demo camera \\
apps (person segmentation, depth) and every other workspace binary, with the person-seg and depth \\
models, built for ${TRIPLE} with glibc <= ${GLIBC}. ${desc}"""
assets = [
TOML
    printf '    %s,\n' "${assets[@]}"
    echo "]"
} > "$debdir/Cargo.toml"
deb_out="dist/${DEB_NAME}_${version}-1_${DEB_ARCH}.deb"
rm -f "$deb_out"
t_deb=$(date +%s)
(cd "$debdir" && cargo deb --manifest-path "$debdir/Cargo.toml" --no-build --no-strip \
    ${DYSAMPLE_DEB_FAST:+--fast} --target "$TRIPLE" --output "$root/$deb_out" -q)
echo "package: cargo deb $(( $(date +%s) - t_deb )) s${DYSAMPLE_DEB_FAST:+ (--fast)}" >&2
dpkg-deb --info "$deb_out" >/dev/null

# --- sizes ----------------------------------------------------------------------------------
t1=$(date +%s)
echo "package ${board}: $((t1 - t0)) s" >&2
printf '%-48s %10s\n' "$(basename "$stage")/ (unpacked)" "$(du -sb "$stage" | cut -f1)" >&2
for f in "${bins[@]/#/$stage/}" "$stage"/lib/*; do
    [ -e "$f" ] && printf '  %-46s %10s\n' "${f#"$stage"/}" "$(stat -c %s "$f")" >&2
done
printf '  %-46s %10s\n' models/ "$(du -sb "$stage/models" | cut -f1)" licenses/ "$(du -sb "$stage/licenses" | cut -f1)" >&2
printf '%-48s %10s\n' "dist/${name}.tar.gz" "$(stat -c %s "dist/${name}.tar.gz")" "$deb_out" "$(stat -c %s "$deb_out")" >&2
echo "dist/${name}.tar.gz"
echo "$deb_out"
