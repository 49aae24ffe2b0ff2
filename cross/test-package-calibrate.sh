# Sourced by cross/test-package.sh inside its per-core loop (uses q, pkg, dir, work, host_bin,
# cpu, fail, ok): dysample-calibrate from the package, under qemu, on a handful of samples.
#
# Samples: the committed calibration set models/calib/person-seg (training-split images,
# disjoint from the eval sets); without it, the first frames of the demo's builtin:// clip
# (apps/video/assets/builtin.avi, an MJPEG AVI: each frame is a JPEG).
# Then: the calibrated SDK int8 parameters on both architectures (bytes must be equal), and
# the whole int8 CPU model (see (b) below for what is and is not enforced).

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

# (a) The calibrated SDK parameters (--target sdk) on the int8 DySample layers: output bytes
#     equal to the x86_64 build's with the same parameters (the SDK's int8 is bit-exact across
#     architectures and backends by design).
for l in "${layers[@]}"; do
    qj="$calib/sdk/$l.quant.json"
    [ -s "$qj" ] || fail "dysample-calibrate wrote no $qj ($cpu)"
    q "$pkg/dysample" run --weights "$pkg/models/person-seg/model.safetensors" --prefix "$l" \
        --style lp --groups 4 --precision int8 --threads 2 --quant "$qj" \
        --input "$work/ref/${l}_input.npy" --output "$dir/${l}_calib_a64.npy" 2>/dev/null ||
        fail "$l: dysample run --quant $qj ($cpu)"
    "$host_bin" run --weights models/person-seg/model.safetensors --prefix "$l" --style lp --groups 4 \
        --precision int8 --quant "$qj" --input "$work/ref/${l}_input.npy" \
        --output "$dir/${l}_calib_x86.npy" 2>/dev/null || fail "$l: x86_64 dysample run --quant $qj"
    cmp -s "$dir/${l}_calib_a64.npy" "$dir/${l}_calib_x86.npy" ||
        fail "$l: calibrated int8 output differs between aarch64 and x86_64 ($cpu)"
    ok
done
echo "  int8 (calibrated): ${layers[*]} with $calib/sdk/*.quant.json bytes equal to x86_64" >&2

# (b) The whole int8 CPU model (ONNX Runtime's QLinearConv & co. plus the SDK's int8 DySample
#     node) on person-seg's reference frame. Between aarch64 cores its bytes must not change (the cortex-a72 run
#     is the reference for the max run). Against x86_64 they do differ: ONNX Runtime's int8
#     kernels are not bit-exact across architectures (only the SDK's are), so that comparison
#     is printed, not enforced.
# The input: person-seg's committed reference frame (a real picture, preprocessed).
frame="$pkg/models/person-seg/reference/input_0.npy"
# One model for every core: the first core's (calibrations on different cores may legitimately
# pick other ranges, since ONNX Runtime's f32 kernels round differently per ISA).
if [ ! -s "$work/model_int8.onnx" ]; then
    cp "$calib/model_int8.onnx" "$work/model_int8.onnx"
elif cmp -s "$calib/model_int8.onnx" "$work/model_int8.onnx"; then
    echo "  calibrate: model_int8.onnx identical to the first core's" >&2
else
    echo "  calibrate: model_int8.onnx differs from the first core's (ranges from f32 activations)" >&2
fi
q "$pkg/dysample" onnx run "$work/model_int8.onnx" --input "$frame" --output "$dir/int8_model.npy" \
    --threads 2 2> "$dir/int8_model.log" || { cat "$dir/int8_model.log" >&2; fail "onnx run model_int8.onnx ($cpu)"; }
if [ -s "$work/int8_model_first_core.npy" ]; then
    cmp -s "$dir/int8_model.npy" "$work/int8_model_first_core.npy" ||
        fail "model_int8.onnx: output bytes differ between the emulated aarch64 cores ($cpu)"
    ok
    echo "  int8 model: model_int8.onnx output bytes equal to the first core's" >&2
else
    cp "$dir/int8_model.npy" "$work/int8_model_first_core.npy"
fi
"$host_bin" onnx run "$work/model_int8.onnx" --input "$frame" --output "$dir/int8_model_x86.npy" \
    --threads 2 2>/dev/null || fail "x86_64 onnx run model_int8.onnx"
echo "  int8 model vs x86_64 (not enforced): $(python3 -c '
import numpy as np, sys
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
d = np.abs(a - b)
print(f"{(d > 0).sum()} of {d.size} values differ, mean |diff| {d.mean():.2g}, max {d.max():.3g}")' "$dir/int8_model.npy" "$dir/int8_model_x86.npy")" >&2
