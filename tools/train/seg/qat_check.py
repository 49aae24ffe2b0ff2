#!/usr/bin/env python3
"""Checks qat.py's fake quantization against the QDQ model dysample-calibrate writes.

    dysample-calibrate --model models/person-seg --data models/calib/person-seg --samples 24 \\
        --method percentile --target cpu --out /tmp/calib-shipped --threads 2
    python tools/train/seg/qat_check.py /tmp/calib-shipped [--model models/person-seg] \\
        [--ops-lib target/release/libdysample_ort_ops.so]

Runs the tool's model_int8.onnx in ONNX Runtime with graph optimizations off (every Q/DQ a
float op, so the graph's own quantization is what runs; DySample on the SDK int8 kernels via
the custom-op library) and qat.py's simulation with the ranges it measures the tool's way, on 8
of the calibration images, and prints per quantized tensor the SQNR of each against the float
model, plus the tensors whose ranges differ from the tool's ranges.json by more than 2 % in
scale or 1 in zero point. Also the output: mask IoU against the teacher and the float model.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE))
import qat  # noqa: E402

SKIP = {"Constant", "Cast", "ConstantOfShape", "Concat", "Reshape", "Slice", "Transpose"}
KIND = {"conv": "Conv", "tconv": "ConvTranspose", "relu": "Relu", "hswish": "HardSwish", "sigmoid": "Sigmoid",
        "gap": "ReduceMean", "add": "Add", "mul": "Mul", "up": "DySample"}


def onnx_names(qm, model_onnx: Path) -> dict:
    """qat.py quantizer key -> ONNX tensor name: the export keeps the module's op order."""
    nodes = [n for n in onnx.load(str(model_onnx)).graph.node if n.op_type not in SKIP]
    names, k = {f"t{qm.base.input_id}": "input"}, 0
    for i, op in enumerate(qm.ops):
        if op["op"] == "conv" and i in qm.padq:
            if nodes[k].op_type != "Pad":
                raise SystemExit(f"op {i}: expected Pad, found {nodes[k].op_type}")
            names[f"pad{i}"] = nodes[k].output[0]
            k += 1
        n = nodes[k]
        k += 1
        if n.op_type != KIND[op["op"]]:
            raise SystemExit(f"op {i} ({op['op']}): the ONNX graph has {n.op_type} there")
        names[f"t{op['out']}"] = n.output[0]
    return names


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("calib_out", help="the tool's --out folder (model_int8.onnx, ranges.json)")
    ap.add_argument("--model", default=str(REPO / "models" / "person-seg"))
    ap.add_argument("--ops-lib", default="/work/target-calib/release/libdysample_ort_ops.so")
    a = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(a.calib_out)
    qm = qat.QATSelfie(qat.load_base(Path(a.model) / "model.safetensors"))
    imgs, _ = qat.calib_set()
    x = qat.to_x(imgs)
    names = onnx_names(qm, Path(a.model) / "model.onnx")
    fixed = qat.tool_ranges(qm, x)
    tool = json.load(open(out / "ranges.json"))["tensors"]
    bad = [(names[k], float(s), int(z) - 128, tool[names[k]]["affine"]) for k, (s, z) in fixed.items()
           if names[k] in tool and (abs(float(s) - tool[names[k]]["affine"]["scale"]) > 0.02 * float(s)
                                    or abs(int(z) - 128 - tool[names[k]]["affine"]["zero_point"]) > 1)]
    missing = sorted(set(tool) - {names[k] for k in fixed} - {v for v in names.values() if "DySample" in v})
    print(f"{len(fixed)} quantizers; ranges differing from ranges.json: {len(bad)}; in ranges.json only: {missing}")
    for b in bad:
        print("  ", b)

    m = onnx.load(str(out / "model_int8.onnx"))
    have = {o for n in m.graph.node for o in n.output}
    want = [(k, n + "/dq") for k, n in names.items() if n + "/dq" in have and k.startswith("t")]
    for _, c in want:
        m.graph.output.append(onnx.ValueInfoProto(name=c))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.register_custom_ops_library(a.ops_lib)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    acc, ys = {}, {"ort": [], "sim": [], "f32": []}
    for i in range(0, len(x), 3):
        xi = x[i:i + 1]
        outs = dict(zip([o.name for o in s.get_outputs()], s.run(None, {"input": xi.numpy()})))
        qm.trace = {}
        ys["f32"].append(qat.run(qm, xi, False))
        fl = {k: v.numpy() for k, v in qm.trace["float"].items()}
        qm.trace = {}
        ys["sim"].append(qat.run(qm, xi, True, fixed))
        ys["ort"].append(outs[s.get_outputs()[0].name][:, 0])
        for key, c in want:
            f, e = fl[int(key[1:])], acc.setdefault(key, [0.0, 0.0, 0.0, c])
            e[0] += float(((outs[c] - f) ** 2).sum())
            e[1] += float(((qm.trace["quant"][int(key[1:])].numpy() - f) ** 2).sum())
            e[2] += float((f ** 2).sum())
    qm.trace = None
    db = lambda p, e: 10 * np.log10(p / max(e, 1e-30))  # noqa: E731
    worst = 0.0
    print("per-tensor SQNR against the float model (8 calibration images): ORT (no graph optimizations) / qat.py")
    for key, (eo, es, p, c) in acc.items():
        d = db(p, es) - db(p, eo)
        worst = max(worst, abs(d))
        print(f"  {c:44s} {db(p, eo):6.2f} dB  {db(p, es):6.2f} dB  ({d:+.2f})")
    ort_y, sim_y, f32 = (np.concatenate(ys[k]) for k in ("ort", "sim", "f32"))
    tgt = qat.teacher_probs(imgs[::3])
    print(f"largest SQNR difference {worst:.2f} dB over {len(acc)} tensors")
    print(f"output mask IoU vs teacher: float {qat.iou(f32, tgt):.4f}  ORT QDQ {qat.iou(ort_y, tgt):.4f}  "
          f"qat.py {qat.iou(sim_y, tgt):.4f}; vs float: ORT {qat.iou(ort_y, f32 > 0.5):.4f}  "
          f"qat.py {qat.iou(sim_y, f32 > 0.5):.4f}")


if __name__ == "__main__":
    main()
