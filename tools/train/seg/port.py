#!/usr/bin/env python3
"""Ports MediaPipe's selfie_segmentation.tflite to PyTorch and checks the port against the tflite.

    python tools/train/seg/port.py convert   # -> tools/train/seg/selfie_graph.json (architecture,
                                             #    committed) + <cache>/../seg/teacher.safetensors
    python tools/train/seg/port.py verify    # port vs. the real tflite run by mediapipe's own
                                             #    calculator graph (venv /work/venv-mp)

The tflite is read with the flatbuffer schema shipped in the mediapipe wheel
(<cache>/mediapipe/schema_py_generated.py). Weights are stored as fp16 and widened by DEQUANTIZE
ops; the widening is exact, so the port holds the same f32 values the interpreter computes with.

Layouts: CONV_2D kernels are [O, H, W, I] (-> torch [O, I, H, W]); DEPTHWISE_CONV_2D kernels are
[1, H, W, C] (-> [C, 1, H, W]); MediaPipe's Convolution2DTransposeBias takes its kernel as input 1
with layout [O, H, W, I] and its bias as input 2 (-> ConvTranspose2d [I, O, H, W]); its custom
options are TfLiteTransposeConvParams {padding, stride_w, stride_h} = {SAME, 2, 2}: a 2x2 kernel
with stride 2 writes each output pixel exactly once, so SAME needs no padding.
SAME padding of CONV_2D / DEPTHWISE_CONV_2D: total = max((ceil(n/s) - 1) * s + k - n, 0), the
smaller half before, the larger after (asymmetric for stride 2 on even sizes).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
CACHE = Path(os.environ.get("DYSAMPLE_DATA", REPO / ".cache" / "data"))
TFLITE = CACHE / "mediapipe" / "selfie_segmentation.tflite"
TEACHER_ST = CACHE.parent / "seg" / "teacher.safetensors"
GRAPH_JSON = HERE / "selfie_graph.json"
MP_PYTHON = os.environ.get("MP_PYTHON", "/work/venv-mp/bin/python")


def read_tflite(path: Path = TFLITE):
    sys.path.insert(0, str(CACHE / "mediapipe"))
    import schema_py_generated as S

    buf = path.read_bytes()
    m = S.Model.GetRootAsModel(buf, 0)
    names = {v: k for k, v in S.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    codes = []
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        b = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        codes.append("CUSTOM:" + oc.CustomCode().decode() if b == S.BuiltinOperator.CUSTOM else names[b])
    g = m.Subgraphs(0)
    np_type = {S.TensorType.FLOAT16: np.float16, S.TensorType.FLOAT32: np.float32,
               S.TensorType.INT32: np.int32}

    def shape(t):
        return [int(v) for v in g.Tensors(t).ShapeAsNumpy()]

    def const(t):
        T = g.Tensors(t)
        data = m.Buffers(T.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data is None:
            return None
        return np.frombuffer(data.tobytes(), dtype=np_type[T.Type()]).reshape(shape(t))

    def tname(t):
        return g.Tensors(t).Name().decode()

    consts = {}  # tensor id -> f32 numpy (constants, incl. DEQUANTIZE outputs)
    ops = []
    weights = {}
    inp, out = g.Inputs(0), g.Outputs(0)

    def value(t):
        if t in consts:
            return consts[t]
        c = const(t)
        assert c is not None, f"tensor {t} {tname(t)} is not constant"
        return c.astype(np.float32)

    def same_pad(n, k, s):
        o = math.ceil(n / s)
        tot = max((o - 1) * s + k - n, 0)
        return tot // 2, tot - tot // 2

    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        kind = codes[op.OpcodeIndex()]
        ins = [op.Inputs(j) for j in range(op.InputsLength())]
        outs = [op.Outputs(j) for j in range(op.OutputsLength())]
        bo = op.BuiltinOptions()
        if kind == "DEQUANTIZE":
            c = const(ins[0])
            consts[outs[0]] = c.astype(np.float32)  # fp16 -> f32 is exact
            continue
        act = 0
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            dw = kind == "DEPTHWISE_CONV_2D"
            o = (S.DepthwiseConv2DOptions if dw else S.Conv2DOptions)()
            o.Init(bo.Bytes, bo.Pos)
            assert o.DilationHFactor() == 1 and o.DilationWFactor() == 1
            assert o.StrideH() == o.StrideW()
            w = value(ins[1])
            b = value(ins[2])
            n, h, wd, cin = shape(ins[0])
            s = o.StrideH()
            if dw:
                assert o.DepthMultiplier() == 1
                k = w.shape[1]
                tw = w.transpose(3, 0, 1, 2)  # [1,H,W,C] -> [C,1,H,W]
                groups, cout = cin, w.shape[3]
            else:
                k = w.shape[1]
                tw = w.transpose(0, 3, 1, 2)  # [O,H,W,I] -> [O,I,H,W]
                groups, cout = 1, w.shape[0]
            assert w.shape[1] == w.shape[2]
            if o.Padding() == S.Padding.SAME:
                pt, pb = same_pad(h, k, s)
                pl, pr = same_pad(wd, k, s)
            else:
                pt = pb = pl = pr = 0
            name = tname(outs[0]).split("/")[0]
            weights[name + ".weight"] = np.ascontiguousarray(tw)
            weights[name + ".bias"] = b
            ops.append({"op": "conv", "name": name, "in": [ins[0]], "out": outs[0], "cin": cin,
                        "cout": cout, "k": k, "stride": s, "groups": groups, "pad": [pt, pb, pl, pr]})
            act = o.FusedActivationFunction()
        elif kind in ("RELU", "HARD_SWISH", "LOGISTIC"):
            ops.append({"op": {"RELU": "relu", "HARD_SWISH": "hswish", "LOGISTIC": "sigmoid"}[kind],
                        "in": [ins[0]], "out": outs[0]})
        elif kind == "AVERAGE_POOL_2D":
            o = S.Pool2DOptions()
            o.Init(bo.Bytes, bo.Pos)
            _, h, wd, _ = shape(ins[0])
            assert (o.FilterHeight(), o.FilterWidth()) == (h, wd) and o.Padding() == S.Padding.VALID
            assert shape(outs[0])[1:3] == [1, 1]
            ops.append({"op": "gap", "in": [ins[0]], "out": outs[0]})
            act = o.FusedActivationFunction()
        elif kind in ("ADD", "MUL"):
            o = (S.AddOptions if kind == "ADD" else S.MulOptions)()
            o.Init(bo.Bytes, bo.Pos)
            ops.append({"op": kind.lower(), "in": ins, "out": outs[0]})
            act = o.FusedActivationFunction()
        elif kind == "RESIZE_BILINEAR":
            o = S.ResizeBilinearOptions()
            o.Init(bo.Bytes, bo.Pos)
            assert not o.AlignCorners() and o.HalfPixelCenters()
            n, h, wd, c = shape(ins[0])
            size = const(ins[1]).tolist()
            assert size == [2 * h, 2 * wd], size
            k = sum(1 for x in ops if x["op"] == "up") + 1
            ops.append({"op": "up", "name": f"up{k}", "in": [ins[0]], "out": outs[0], "channels": c})
        elif kind == "CUSTOM:Convolution2DTransposeBias":
            params = np.frombuffer(bytes(op.CustomOptionsAsNumpy()), dtype=np.int32).tolist()
            assert params == [1, 2, 2], params  # {kTfLitePaddingSame, stride_w 2, stride_h 2}
            w = value(ins[1])  # [O, H, W, I]
            b = value(ins[2])
            assert w.shape[1:3] == (2, 2)
            name = tname(outs[0]).split("/")[0]
            weights[name + ".weight"] = np.ascontiguousarray(w.transpose(3, 0, 1, 2))  # [I,O,H,W]
            weights[name + ".bias"] = b
            ops.append({"op": "tconv", "name": name, "in": [ins[0]], "out": outs[0],
                        "cin": int(w.shape[3]), "cout": int(w.shape[0]), "k": 2, "stride": 2})
        else:
            raise ValueError(f"op {i}: {kind} not supported")
        assert act == 0, f"op {i}: fused activation {act} not handled"
    graph = {"source": "mediapipe==0.10.21 mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
             "input": inp, "output": out, "ops": ops}
    return graph, weights


def convert():
    from safetensors.numpy import save_file

    graph, weights = read_tflite()
    GRAPH_JSON.write_text(json.dumps(graph, indent=None, separators=(",", ":")) + "\n")
    TEACHER_ST.parent.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(TEACHER_ST))
    n = sum(v.size for v in weights.values())
    print(f"{len(graph['ops'])} ops, {len(weights)} tensors, {n} parameters -> {GRAPH_JSON}, {TEACHER_ST}")


def teacher_state():
    """The ported teacher weights as a torch state_dict (converting first if needed)."""
    from safetensors.torch import load_file

    if not TEACHER_ST.exists() or not GRAPH_JSON.exists():
        convert()
    return load_file(str(TEACHER_ST))


def tflite_probs(images: np.ndarray) -> np.ndarray:
    """Runs the real tflite through mediapipe (venv-mp) on uint8 [N,256,256,3] RGB images;
    returns [N,256,256] float32 probabilities."""
    with tempfile.TemporaryDirectory() as d:
        np.save(f"{d}/in.npy", images)
        subprocess.run([MP_PYTHON, str(HERE / "mp_teacher.py"), f"{d}/in.npy", f"{d}/out.npy"],
                       check=True)
        return np.load(f"{d}/out.npy")


def verify_images():
    """Real photos and video frames at 256x256 (stretched, like the model's input)."""
    from PIL import Image
    import cv2

    out, names = [], []
    for p in ["skimage/astronaut.png", "skimage/coffee.png", "skimage/chelsea.png", "opencv/messi5.jpg",
              "opencv/baboon.jpg", "opencv/home.jpg", "skimage/camera.png", "opencv/starry_night.jpg"]:
        im = Image.open(CACHE / p).convert("RGB").resize((256, 256), Image.BILINEAR)
        out.append(np.asarray(im)); names.append(p)
    for vid, frames in [("opencv/vtest.avi", [0, 200, 400, 600]), ("opencv/Megamind.avi", [10, 100, 200])]:
        cap = cv2.VideoCapture(str(CACHE / vid))
        i = 0
        want = set(frames)
        while want:
            ok, f = cap.read()
            if not ok:
                break
            if i in want:
                f = cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2RGB), (256, 256), interpolation=cv2.INTER_AREA)
                out.append(f); names.append(f"{vid}#{i}"); want.discard(i)
            i += 1
    return np.stack(out), names


def verify():
    import torch
    sys.path.insert(0, str(HERE))
    from selfie import build

    torch.set_num_threads(1)
    imgs, names = verify_images()
    ref = tflite_probs(imgs)
    model = build("teacher", teacher_state()).eval()
    with torch.no_grad():
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0
        got = torch.cat([model(x[i:i + 1]) for i in range(len(x))])[:, 0].numpy()
    d = np.abs(got - ref)
    pm, rm = got > 0.5, ref > 0.5
    inter, union = (pm & rm).sum(), (pm | rm).sum()
    print(f"{'image':28s} {'max|d|':>9s} {'mean|d|':>9s} {'IoU':>7s} {'person%':>7s}")
    for i, n in enumerate(names):
        u = (pm[i] | rm[i]).sum()
        iou = (pm[i] & rm[i]).sum() / u if u else 1.0
        print(f"{n:28s} {d[i].max():9.2e} {d[i].mean():9.2e} {iou:7.5f} {100 * rm[i].mean():6.1f}%")
    print(f"ALL {len(names)} images: max|d| {d.max():.3e}  mean|d| {d.mean():.3e}  "
          f"mask IoU (p>0.5, pooled) {inter / union:.6f}  mask pixels differing {(pm != rm).sum()}")
    return d.max(), d.mean(), inter / union


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["convert", "verify"])
    a = ap.parse_args()
    convert() if a.cmd == "convert" else verify()
