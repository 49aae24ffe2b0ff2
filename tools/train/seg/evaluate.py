#!/usr/bin/env python3
"""Segmentation metrics of models/SPEC.md (iou, miou, boundary_f) in numpy, for PyTorch models.

    python tools/train/seg/evaluate.py metrics [--write]   # pytorch_f32 + bilinear_pytorch_f32 rows
                                                           # of models/person-seg/model.json, and the
                                                           # teacher (the port) as a reference
    python tools/train/seg/evaluate.py start               # how close the zero-offset DySample
                                                           # student starts to the teacher
    python tools/train/seg/evaluate.py compare             # per-group IoU, bootstrap interval of
                                                           # the DySample - bilinear difference,
                                                           # size of the learned offsets

Definitions (SPEC.md): P = prob > threshold, T = target >= 128.
iou = sum_i |P∩T| / sum_i |P∪T| over the set; miou = mean of that and the same for background;
boundary_f per image then averaged: boundary = pixels with M = 1 and a 4-neighbour inside the
image with M = 0; r = ceil(0.008 * sqrt(H^2 + W^2)); precision = share of predicted boundary
pixels within Euclidean distance r of a target boundary pixel, recall the converse,
F = 2PR / (P + R) (0 if P + R = 0); both boundaries empty: 1; one empty: 0.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE))
EVAL = REPO / "models" / "eval"
MODEL_DIR = REPO / "models" / "person-seg"
SETS = ["seg-teacher", "seg-composites"]


def load_set(name: str):
    d = EVAL / name
    man = json.loads((d / "manifest.json").read_text())
    imgs, tgts = [], []
    for s in man["samples"]:
        imgs.append(np.asarray(Image.open(d / s["image"]).convert("RGB")))
        tgts.append(np.asarray(Image.open(d / s["target"]).convert("L")))
    return np.stack(imgs), np.stack(tgts), man


def boundary(m: np.ndarray) -> np.ndarray:
    """Pixels with m = 1 that have a 4-neighbour inside the image with m = 0."""
    b = np.zeros_like(m)
    b[1:, :] |= m[1:, :] & ~m[:-1, :]
    b[:-1, :] |= m[:-1, :] & ~m[1:, :]
    b[:, 1:] |= m[:, 1:] & ~m[:, :-1]
    b[:, :-1] |= m[:, :-1] & ~m[:, 1:]
    return b


def boundary_f(p: np.ndarray, t: np.ndarray) -> float:
    H, W = p.shape
    r = math.ceil(0.008 * math.sqrt(H * H + W * W))
    bp, bt = boundary(p), boundary(t)
    np_, nt = bp.sum(), bt.sum()
    if np_ == 0 and nt == 0:
        return 1.0
    if np_ == 0 or nt == 0:
        return 0.0
    dt = ndimage.distance_transform_edt(~bt)  # distance to the nearest target boundary pixel
    dp = ndimage.distance_transform_edt(~bp)
    prec = float((dt[bp] <= r).mean())
    rec = float((dp[bt] <= r).mean())
    return 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)


def seg_metrics(probs: np.ndarray, targets: np.ndarray, threshold: float = 0.5) -> dict:
    P = probs > threshold
    T = targets >= 128
    i1, u1 = (P & T).sum(), (P | T).sum()
    i0, u0 = (~P & ~T).sum(), (~P | ~T).sum()
    iou = i1 / u1 if u1 else 1.0
    biou = i0 / u0 if u0 else 1.0
    bf = float(np.mean([boundary_f(p, t) for p, t in zip(P, T)]))
    return {"iou": round(float(iou), 6), "miou": round(float((iou + biou) / 2), 6), "boundary_f": round(bf, 6)}


def predict(model, imgs: np.ndarray) -> np.ndarray:
    import torch
    out = []
    with torch.no_grad():
        for i in range(0, len(imgs), 8):
            x = torch.from_numpy(imgs[i:i + 8]).permute(0, 3, 1, 2).float().contiguous() / 255.0
            out.append(model(x)[:, 0].numpy())
    return np.concatenate(out)


def state_from_onnx(path: Path) -> dict:
    """A state_dict from an exported ONNX file's initializers (named after the parameters;
    '_f16' marks those stored as float16 + Cast)."""
    import onnx
    import torch
    from onnx import numpy_helper
    sd = {}
    for init in onnx.load(str(path)).graph.initializer:
        name = init.name[:-4] if init.name.endswith("_f16") else init.name
        if name.endswith((".weight", ".bias")):
            sd[name] = torch.from_numpy(numpy_helper.to_array(init).astype(np.float32))
    return sd


def load_model(variant: str, path: Path | None):
    """variant 'teacher' (the port), or 'dysample'/'bilinear' from a .safetensors or .onnx file."""
    from safetensors.torch import load_file
    from port import teacher_state
    from selfie import build
    if variant == "teacher":
        return build("teacher", teacher_state()).eval()
    m = build(variant)
    if str(path).endswith(".onnx"):
        sd = state_from_onnx(path)
    else:
        sd = {k: v.float() for k, v in load_file(str(path)).items()}
    m.load_state_dict(sd, strict=True)
    return m.eval()


def cmd_metrics(a):
    import torch
    torch.set_num_threads(1)
    rows = {"pytorch_f32": ("dysample", MODEL_DIR / "model.safetensors"),
            "bilinear_pytorch_f32": ("bilinear", MODEL_DIR / "bilinear" / "model.onnx"),
            "teacher_pytorch_f32": ("teacher", None)}
    if a.checkpoints:
        rows["pytorch_f32"] = ("dysample", Path(a.checkpoints) / "dysample" / "final.safetensors")
        rows["bilinear_pytorch_f32"] = ("bilinear", Path(a.checkpoints) / "bilinear" / "final.safetensors")
    # the shipped weights are the trained ones rounded to float16 values (export.py)
    res = {s: {} for s in SETS}
    for s in SETS:
        imgs, tgts, _ = load_set(s)
        for row, (v, p) in rows.items():
            res[s][row] = seg_metrics(predict(load_model(v, p), imgs), tgts)
            print(s, row, res[s][row], flush=True)
    if a.write:
        mj = MODEL_DIR / "model.json"
        j = json.loads(mj.read_text())
        for s in SETS:
            j.setdefault("metrics", {}).setdefault(s, {})
            for row in ("pytorch_f32", "bilinear_pytorch_f32"):
                j["metrics"][s][row] = res[s][row]
        mj.write_text(json.dumps(j, indent=2) + "\n")
        print("wrote", mj)
    return res


def cmd_start(a):
    """Zero-offset DySample student (teacher weights) vs the teacher on both eval sets."""
    import torch
    from port import teacher_state
    from selfie import build
    torch.set_num_threads(1)
    ts = teacher_state()
    teacher, student = build("teacher", ts).eval(), build("dysample", ts).eval()
    for s in SETS:
        imgs, _, _ = load_set(s)
        pt, ps = predict(teacher, imgs), predict(student, imgs)
        d = np.abs(pt - ps)
        print(f"{s}: {len(imgs)} images, max|student-teacher| {d.max():.3e}, mean {d.mean():.3e}, "
              f"mask pixels differing (p>0.5) {int(((pt > 0.5) != (ps > 0.5)).sum())}")


def group_of(origin: str) -> str:
    if origin.startswith("vtest"):
        return "vtest whole frames" if "whole" in origin else "vtest crops"
    if origin.startswith("Megamind"):
        return "Megamind"
    if "no person" in origin:
        return "photos without people"
    return "photos with people"


def cmd_compare(a):
    """Per-group IoU (seg-teacher), a paired bootstrap over images of the DySample - bilinear IoU
    difference, and how far the trained DySample layers moved their sample points."""
    import torch
    torch.set_num_threads(1)
    models = {"teacher": load_model("teacher", None),
              "dysample": load_model("dysample", MODEL_DIR / "model.safetensors"),
              "bilinear": load_model("bilinear", MODEL_DIR / "bilinear" / "model.onnx")}
    rng = np.random.default_rng(0)
    for s in SETS:
        imgs, tgts, man = load_set(s)
        T = tgts >= 128
        P = {k: predict(m, imgs) > 0.5 for k, m in models.items()}
        iu = {k: (np.array([(p & t).sum() for p, t in zip(P[k], T)]),
                  np.array([(p | t).sum() for p, t in zip(P[k], T)])) for k in P}
        if s == "seg-teacher":
            groups = [group_of(x["origin"]) for x in json.loads((EVAL / s / "provenance.json").read_text())] \
                if (EVAL / s / "provenance.json").exists() else [group_of(x["origin"]) for x in man["samples"]]
            for g in dict.fromkeys(groups):
                idx = [i for i, x in enumerate(groups) if x == g]
                row = {k: iu[k][0][idx].sum() / max(iu[k][1][idx].sum(), 1) for k in ("dysample", "bilinear")}
                frac = T[idx].mean()
                print(f"{s} {g:24s} n={len(idx):2d} teacher person px {100 * frac:5.2f}%  "
                      f"IoU vs teacher: dysample {row['dysample']:.4f} bilinear {row['bilinear']:.4f}")
        n = len(imgs)
        diffs = []
        for _ in range(2000):
            b = rng.integers(0, n, n)
            d = iu["dysample"][0][b].sum() / iu["dysample"][1][b].sum() - iu["bilinear"][0][b].sum() / iu["bilinear"][1][b].sum()
            diffs.append(d)
        lo, hi = np.percentile(diffs, [2.5, 97.5])
        full = iu["dysample"][0].sum() / iu["dysample"][1].sum() - iu["bilinear"][0].sum() / iu["bilinear"][1].sum()
        print(f"{s}: IoU(dysample) - IoU(bilinear) = {100 * full:+.2f} points, paired bootstrap 95% interval "
              f"[{100 * lo:+.2f}, {100 * hi:+.2f}] over {n} images")
        # learned offsets: |offset - init_pos| in low-resolution pixels, per DySample layer
        offs = {}
        hooks = []
        for name in ("up1", "up2", "up3"):
            layer = getattr(models["dysample"], name)

            def hook(mod, inp, out, name=name):
                x = inp[0]
                o = mod.offset(x) * 0.25  # the learned part; init_pos excluded
                offs.setdefault(name, []).append(o.abs().flatten())
            hooks.append(layer.register_forward_hook(hook))
        predict(models["dysample"], imgs[:16])
        for h in hooks:
            h.remove()
        print(s, "learned DySample offsets |offset| in input pixels (16 images): " + ", ".join(
            f"{k}: mean {torch.cat(v).mean():.3f} p99 {torch.quantile(torch.cat(v)[:1000000], 0.99):.3f}"
            for k, v in offs.items()))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("metrics")
    m.add_argument("--write", action="store_true", help="write the rows into models/person-seg/model.json")
    m.add_argument("--checkpoints", help="evaluate <dir>/{dysample,bilinear}/final.safetensors instead")
    sub.add_parser("start")
    sub.add_parser("compare")
    a = ap.parse_args()
    {"metrics": cmd_metrics, "start": cmd_start, "compare": cmd_compare}[a.cmd](a)
