#!/usr/bin/env bash
# The raspberry-pi package, end to end under qemu-aarch64: unpacked into an empty directory and
# run from there with nothing of the checkout on its search paths.
#
#   cross/test-package.sh [dist/dysample-<version>-raspberry-pi.tar.gz]
#   QEMU_CPUS="cortex-a72" cross/test-package.sh ...   # one core only
#
# Without an argument it builds the package first (cross/package.sh raspberry-pi). For each
# emulated core in $QEMU_CPUS (default "cortex-a72 max": Raspberry Pi 4 = NEON only, then a
# dotprod + fp16 core) it checks:
#   1. `dysample info` runs and picks the backend that core should get (neon / neon-dotprod-fp16);
#   2. `dysample-demo segment --headless builtin://` writes its frames through the bundled
#      ONNX Runtime (lib/ next to the executable; ORT_DYLIB_PATH unset, no download allowed),
#      in f32 and with the int8 DySample kernels;
#   3. `dysample-calibrate` on a handful of samples (when the workspace has it);
#   4. the int8 DySample layers of models/person-seg (`dysample run --precision int8` with the
#      packaged model.safetensors) give output bytes equal to the x86_64 build's, for every
#      aarch64 backend the core has; the int8 parameters are the x86_64 run's own min/max
#      calibration (--dump-quant), and the aarch64 run's own calibration must reproduce them.
# ORT's aarch64 library needs an ARM /proc/cpuinfo under qemu-user: see cross/qemu-run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
source cross/setup.sh
t_start=$(date +%s)

if [ $# -ge 1 ]; then
    tarball=$(realpath "$1")
else
    tarball=$(DYSAMPLE_DEB_FAST=1 bash cross/package.sh raspberry-pi | grep '\.tar\.gz$')
    tarball=$(realpath "$tarball")
fi
t_pkg=$(date +%s)
name=$(basename "$tarball" .tar.gz)

work=$(mktemp -d "${TMPDIR:-/tmp}/dysample-pkgtest.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "test-package: FAIL: $*" >&2; echo "test-package: ${passed} passed, 1 failed"; exit 1; }
passed=0
ok() { passed=$((passed + 1)); }

# --- the x86_64 reference: the workspace's own dysample, built natively ----------------------
echo "== x86_64 reference (int8 DySample layers of models/person-seg)" >&2
# The binary of tools/test.sh's own x86_64 test build (same flags: a no-op after it), located
# through cargo's artifact messages; DYSAMPLE_X86_DYSAMPLE names another one.
if [ -n "${DYSAMPLE_X86_DYSAMPLE:-}" ]; then
    host_bin=$DYSAMPLE_X86_DYSAMPLE
else
    host_bin=$(nice -n 10 cargo test --release --workspace --all-features --no-run --message-format=json 2>/dev/null |
        python3 -c '
import json, sys
found = []
for line in sys.stdin:  # read to the end: cargo must not die of a closed pipe
    try:
        m = json.loads(line)
    except ValueError:
        continue
    # The binary itself, not its unit-test harness (same target name and kind, profile.test).
    if (m.get("reason") == "compiler-artifact" and m["target"]["name"] == "dysample"
            and "bin" in m["target"]["kind"] and not m["profile"]["test"] and m.get("executable")):
        found.append(m["executable"])
print(found[0] if found else "")
' || true)
fi
[ -n "$host_bin" ] && [ -x "$host_bin" ] || fail "no x86_64 dysample binary (${host_bin:-cargo reported none})"
file "$host_bin" 2>/dev/null | grep -q x86-64 || readelf -h "$host_bin" | grep -q "X86-64" || fail "$host_bin is not an x86_64 binary"
mkdir -p "$work/ref"
# Feature maps at the resolutions the layers see in the 256x256 network: a smooth pattern plus
# noise (float32), fixed seed, written once and read by both architectures.
python3 - "$work/ref" <<'PY'
import sys
import numpy as np
out = sys.argv[1]
rng = np.random.default_rng(20231001)
for layer, c, h in (("up1", 128, 16), ("up2", 24, 32), ("up3", 16, 64)):
    yy, xx = np.meshgrid(np.linspace(0, 3, h), np.linspace(0, 3, h), indexing="ij")
    base = np.stack([np.sin(xx * (1 + k % 5) + yy * (k % 3)) for k in range(c)])[None]
    x = (base + 0.3 * rng.standard_normal(base.shape)).astype(np.float32)
    np.save(f"{out}/{layer}_input.npy", x)
PY
layers=(up1 up2 up3)
for l in "${layers[@]}"; do
    "$host_bin" run --weights models/person-seg/model.safetensors --prefix "$l" --style lp --groups 4 \
        --precision int8 --input "$work/ref/${l}_input.npy" --output "$work/ref/${l}_int8.npy" \
        --dump-quant "$work/ref/${l}_quant.json" 2>/dev/null
    "$host_bin" run --weights models/person-seg/model.safetensors --prefix "$l" --style lp --groups 4 \
        --precision int8 --backend scalar --quant "$work/ref/${l}_quant.json" \
        --input "$work/ref/${l}_input.npy" --output "$work/ref/${l}_int8_scalar.npy" 2>/dev/null
    cmp -s "$work/ref/${l}_int8.npy" "$work/ref/${l}_int8_scalar.npy" ||
        fail "x86_64: $l int8 auto backend and scalar differ"
    ok
done
t_ref=$(date +%s)

for cpu in ${QEMU_CPUS:-cortex-a72 max}; do
    t_cpu=$(date +%s)
    echo "== package under qemu-aarch64, QEMU_CPU=$cpu" >&2
    dir="$work/$cpu"
    mkdir -p "$dir/unpacked" "$dir/run"
    tar -C "$dir/unpacked" -xzf "$tarball"
    pkg="$dir/unpacked/$name"
    # Run from an empty directory, with no ORT override and no fallback download.
    q() { (cd "$dir/run" && env -u ORT_DYLIB_PATH -u DYSAMPLE_MODELS DYSAMPLE_NO_FETCH=1 \
        RUST_LOG=warn,dysample::onnx::runtime=info \
        QEMU_CPU="$cpu" "$root/cross/qemu-run.sh" "$@"); }

    # 1. info
    q "$pkg/dysample" info --json > "$dir/info.json"
    want=$([ "$cpu" = cortex-a72 ] && echo neon || echo neon-dotprod-fp16)
    python3 - "$dir/info.json" "$want" <<'PY' || fail "dysample info ($cpu)"
import json, sys
info = json.load(open(sys.argv[1]))
assert info["arch"] == "aarch64", info["arch"]
assert info["auto_backend"] == sys.argv[2], f"auto backend {info['auto_backend']}, expected {sys.argv[2]}"
print(f"  info: arch {info['arch']}, features {' '.join(info['cpu_features'])}, auto backend {info['auto_backend']}", file=sys.stderr)
PY
    ok
    mapfile -t usable < <(python3 -c 'import json,sys; [print(b["name"]) for b in json.load(open(sys.argv[1]))["backends"] if b["usable"]]' "$dir/info.json")

    # 2. the segmentation demo, headless, builtin:// through the bundled ORT
    for prec in f32 int8; do
        q "$pkg/dysample-demo" segment builtin:// "$dir/run/seg-$prec/" --headless --frames 3 \
            --threads 2 --precision "$prec" --quiet --json > "$dir/seg-$prec.json" 2> "$dir/seg-$prec.log" ||
            { cat "$dir/seg-$prec.log" >&2; fail "dysample-demo segment --precision $prec ($cpu)"; }
        python3 - "$dir/seg-$prec.json" "$dir/run/seg-$prec" "$pkg" "$dir/seg-$prec.log" <<'PY' || fail "demo output ($cpu, $prec)"
import json, sys
from pathlib import Path
import re
summary, out, pkg = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
log = re.sub(r"\x1b\[[0-9;]*m", "", Path(sys.argv[4]).read_text())
s = json.load(open(summary))
pngs = sorted(out.glob("*.png"))
assert len(pngs) == 3, f"{len(pngs)} PNGs in {out}, expected 3"
assert all(p.stat().st_size > 10_000 for p in pngs), "a frame PNG is suspiciously small"
lib = str(pkg / "lib" / "libonnxruntime.so.")
loaded = [l for l in log.splitlines() if "loaded ONNX Runtime" in l]
assert loaded, f"no 'loaded ONNX Runtime' line in the log:\n{log[-2000:]}"
assert lib in loaded[0] and "lib/ next to the executable" in loaded[0], f"not the bundled ORT: {loaded[0]}"
src = loaded[0].split("loaded ONNX Runtime", 1)[1].strip()
print(f"  demo: {len(pngs)} frames, {s.get('precision')} on {s.get('backend')}, ORT {src.replace(str(pkg) + '/', '')}", file=sys.stderr)
PY
        ok
    done

    # 3. calibration (hook: runs once the workspace ships dysample-calibrate)
    if [ -x "$pkg/dysample-calibrate" ]; then
        source cross/test-package-calibrate.sh
    else
        echo "  calibrate: SKIPPED, the package has no dysample-calibrate (calibration/ not merged yet)" >&2
    fi

    # 4. int8 bytes equal to x86_64, every usable aarch64 backend
    for l in "${layers[@]}"; do
        q "$pkg/dysample" run --weights "$pkg/models/person-seg/model.safetensors" --prefix "$l" \
            --style lp --groups 4 --precision int8 --threads 2 --input "$work/ref/${l}_input.npy" \
            --output "$dir/${l}_selfcal.npy" --dump-quant "$dir/${l}_quant.json" 2>/dev/null
        cmp -s "$dir/${l}_quant.json" "$work/ref/${l}_quant.json" ||
            fail "$l: aarch64 min/max calibration differs from x86_64 ($cpu)"
        cmp -s "$dir/${l}_selfcal.npy" "$work/ref/${l}_int8.npy" ||
            fail "$l: aarch64 int8 output differs from x86_64 ($cpu)"
        ok
        for b in "${usable[@]}"; do
            q "$pkg/dysample" run --weights "$pkg/models/person-seg/model.safetensors" --prefix "$l" \
                --style lp --groups 4 --precision int8 --backend "$b" --threads 2 \
                --quant "$work/ref/${l}_quant.json" --input "$work/ref/${l}_input.npy" \
                --output "$dir/${l}_$b.npy" 2>/dev/null
            cmp -s "$dir/${l}_$b.npy" "$work/ref/${l}_int8.npy" ||
                fail "$l: aarch64 backend $b int8 output differs from x86_64 ($cpu)"
            ok
        done
    done
    echo "  int8: ${layers[*]} bytes equal to x86_64 on backends ${usable[*]} ($(stat -c %s "$work/ref/up3_int8.npy") B for up3)" >&2
    echo "  QEMU_CPU=$cpu: $(( $(date +%s) - t_cpu )) s" >&2
done
t_end=$(date +%s)
echo "test-package: ${passed} passed, 0 failed"
echo "test-package: ok ($name): package $((t_pkg - t_start)) s, x86_64 reference $((t_ref - t_pkg)) s, emulated runs $((t_end - t_ref)) s" >&2
