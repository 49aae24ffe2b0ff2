#!/usr/bin/env bash
# Fill every metric row of models/depth/model.json (models/SPEC.md):
# PyTorch rows with tools/train/depth/evaluate.py, the ONNX Runtime / SDK rows with `dysample eval`.
#   bash tools/train/depth/metrics.sh        (after tools/train/depth/export.py)
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=${PY:-/work/venv-torch/bin/python}
CLI=${CLI:-target/release/dysample}
ORT=${ORT_LIB:-/work/venv-torch/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1}
"$PY" tools/train/depth/evaluate.py --write models/depth/model.json --json-out .cache/depth/export/py_metrics.json
for set in depth-synthetic middlebury; do
  for row in ort_custom_f32 sdk_f16 sdk_int8_minmax ort_lowered_f32 bilinear_ort_f32; do
    "$CLI" eval --model models/depth --set models/eval/$set --threads 1 --ort-lib "$ORT" --write $row
  done
  "$CLI" eval --model models/depth --set models/eval/$set --threads 1 --ort-lib "$ORT" --check pytorch_f32
done
