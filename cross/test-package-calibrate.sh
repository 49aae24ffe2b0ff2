# Sourced by cross/test-package.sh inside its per-core loop (uses q, pkg, dir, work, host_bin,
# cpu, fail, ok): dysample-calibrate from the package, under qemu, on a handful of samples.
#
# Samples: the committed calibration set models/calib/person-seg (training-split images,
# disjoint from the eval sets); without it, the first frames of the demo's builtin:// clip
# (apps/video/assets/builtin.avi, an MJPEG AVI: each frame is a JPEG).
# Then the int8 CPU model it wrote runs on both architectures: ONNX Runtime's int8 kernels
# (QLinearConv, ...) and the SDK's int8 DySample node must give the same output bytes.

if [ -d models/calib/person-seg ]; then
    calib_data="$root/models/calib/person-seg"
else
    calib_data="$work/calib-images"
fi
if [ ! -d "$calib_data" ]; then
    python3 - apps/video/assets/builtin.avi "$work/calib-images" 6 <<'PY'
import struct, sys
from pathlib import Path
avi, out, n = Path(sys.argv[1]).read_bytes(), Path(sys.argv[2]), int(sys.argv[3])
out.mkdir(parents=True)
i = count = 0
while count < n:
    i = avi.find(b"00dc", i)
    if i < 0:
        sys.exit(f"{sys.argv[1]}: only {count} MJPEG frames found")
    size = struct.unpack("<I", avi[i + 4:i + 8])[0]
    frame = avi[i + 8:i + 8 + size]
    i += 8
    if frame[:2] == b"\xff\xd8":
        (out / f"frame{count:02d}.jpg").write_bytes(frame)
        count += 1
PY
fi

calib="$dir/calib"
q "$pkg/dysample-calibrate" --model "$pkg/models/person-seg" --data "$calib_data" \
    --samples 4 --method minmax --target cpu,sdk --out "$calib" --threads 2 --quiet \
    > "$dir/calibrate.log" 2>&1 || { tail -20 "$dir/calibrate.log" >&2; fail "dysample-calibrate ($cpu)"; }
[ -s "$calib/model_int8.onnx" ] || fail "dysample-calibrate wrote no model_int8.onnx ($cpu): $(ls "$calib" 2>&1)"
ok
echo "  calibrate: 4 samples of $(basename "$calib_data"), minmax -> $(cd "$calib" && ls | tr '\n' ' ')" >&2

# The same int8 model, the same input, on both architectures.
input="$pkg/models/person-seg/reference/input_0.npy"
q "$pkg/dysample" onnx run "$calib/model_int8.onnx" --input "$input" --output "$dir/int8_model_a64.npy" \
    --threads 2 2> "$dir/int8_model_a64.log" || { cat "$dir/int8_model_a64.log" >&2; fail "onnx run model_int8.onnx ($cpu)"; }
if [ ! -s "$work/int8_model_x86_$cpu.npy" ]; then
    "$host_bin" onnx run "$calib/model_int8.onnx" --input "$input" --output "$work/int8_model_x86_$cpu.npy" \
        --threads 2 2>/dev/null || fail "x86_64 onnx run model_int8.onnx"
fi
cmp -s "$dir/int8_model_a64.npy" "$work/int8_model_x86_$cpu.npy" ||
    fail "int8 model_int8.onnx: aarch64 output bytes differ from x86_64 ($cpu): $(python3 -c '
import numpy as np, sys
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
d = np.abs(a - b)
print(f"{(d > 0).sum()} of {d.size} values differ, max |diff| {d.max():.3g}")' "$dir/int8_model_a64.npy" "$work/int8_model_x86_$cpu.npy")"
ok
echo "  int8 model: model_int8.onnx output bytes equal to x86_64 ($(stat -c %s "$dir/int8_model_a64.npy") B)" >&2
