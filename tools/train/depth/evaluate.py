"""Depth metrics of models/SPEC.md in numpy: absrel and delta1 after per-image least-squares
scale-and-shift alignment in inverse depth (disparity), invalid pixels masked.

Rows: pytorch_f32 (models/depth/model.safetensors in the DySample model) and
bilinear_pytorch_f32 (the bilinear twin's weights, kept at models/depth/bilinear/ only as the
ONNX file, so here from the export's state_dict: .cache/depth/export/bilinear.safetensors or
a checkpoint given with --bilinear). Also two trivial baselines under the same alignment:
`constant` (any constant prediction) and `ramp` (inverse depth = row index: "lower in the
image = nearer").

    python tools/train/depth/evaluate.py                      # prints the table
    python tools/train/depth/evaluate.py --write models/depth/model.json
    python tools/train/depth/evaluate.py --sets .cache/depth/eval_big   # extra, uncommitted set
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[3]
DEFAULT_SETS = [REPO / "models" / "eval" / "depth-synthetic", REPO / "models" / "eval" / "middlebury"]


def load_set(d):
    d = Path(d)
    man = json.load(open(d / "manifest.json"))
    kind = man["target_kind"]
    out = []
    for s in man["samples"]:
        img = np.asarray(Image.open(d / s["image"]).convert("RGB"))
        tgt = np.load(d / s["target"]).astype(np.float64)
        assert tgt.shape == img.shape[:2], (s, tgt.shape, img.shape)
        out.append((s["id"], img, tgt))
    return man["name"], kind, out


def resize_bilinear(p, h, w):
    """Half-pixel-centre bilinear resize (edge clamped), numpy."""
    H, W = p.shape
    if (H, W) == (h, w):
        return p
    ys = np.clip((np.arange(h) + 0.5) * H / h - 0.5, 0, H - 1)
    xs = np.clip((np.arange(w) + 0.5) * W / w - 0.5, 0, W - 1)
    y0 = np.floor(ys).astype(int); x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, H - 1); x1 = np.minimum(x0 + 1, W - 1)
    fy = (ys - y0)[:, None]; fx = (xs - x0)[None, :]
    top = p[y0][:, x0] * (1 - fx) + p[y0][:, x1] * fx
    bot = p[y1][:, x0] * (1 - fx) + p[y1][:, x1] * fx
    return top * (1 - fy) + bot * fy


def image_metrics(pred, tgt, kind):
    """Returns (absrel, delta1) for one image per SPEC.md."""
    pred = resize_bilinear(np.asarray(pred, np.float64), *tgt.shape)
    V = np.isfinite(tgt) & (tgt > 0)
    g = (1.0 / tgt[V]) if kind == "depth" else tgt[V]
    d = pred[V]
    A = np.stack([d, np.ones_like(d)], 1)
    (s, t), *_ = np.linalg.lstsq(A, g, rcond=None)
    eps = 1e-3 * g.max()
    a = np.maximum(s * d + t, eps)
    absrel = np.mean(np.abs(1 / a - 1 / g) / (1 / g))
    delta1 = np.mean(np.maximum(g / a, a / g) < 1.25)
    return absrel, delta1


def set_metrics(preds, samples, kind):
    r = np.array([image_metrics(p, t, kind) for p, (_, _, t) in zip(preds, samples)])
    return {"absrel": float(r[:, 0].mean()), "delta1": float(r[:, 1].mean())}


def preprocess(img):
    import model as M
    x = (img.astype(np.float32) / 255 - np.array(M.MEAN, np.float32)) / np.array(M.STD, np.float32)
    return x.transpose(2, 0, 1)[None].copy()


def load_torch(kind, path):
    import torch
    import model as M
    from safetensors.torch import load_file
    torch.set_num_threads(1)
    net = M.DepthNet(kind, pretrained=False)
    sd = load_file(path) if str(path).endswith(".safetensors") else torch.load(path, map_location="cpu")
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
    net.load_state_dict(sd, strict=True)
    return net.eval()


def torch_preds(net, samples):
    import torch
    out = []
    with torch.no_grad():
        for _, img, _ in samples:
            out.append(net(torch.from_numpy(preprocess(img)))[0, 0].numpy())
    return out


def baseline_preds(samples, which):
    out = []
    for _, img, _ in samples:
        h, w = img.shape[:2]
        if which == "constant":
            out.append(np.ones((h, w)))
        else:
            out.append(np.repeat(((np.arange(h) + 0.5) / h)[:, None], w, 1))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", nargs="*", default=[str(s) for s in DEFAULT_SETS])
    ap.add_argument("--model", default=str(REPO / "models" / "depth" / "model.safetensors"))
    ap.add_argument("--bilinear", default=str(REPO / ".cache" / "depth" / "export" / "bilinear.safetensors"))
    ap.add_argument("--write", help="model.json to fill rows pytorch_f32 / bilinear_pytorch_f32 of")
    ap.add_argument("--json-out", help="also dump all figures (incl. baselines) here")
    a = ap.parse_args()
    nets = {"pytorch_f32": load_torch("dysample", a.model), "bilinear_pytorch_f32": load_torch("bilinear", a.bilinear)}
    res = {}
    for sd in a.sets:
        name, kind, samples = load_set(sd)
        res[name] = {}
        for row, net in nets.items():
            res[name][row] = set_metrics(torch_preds(net, samples), samples, kind)
        for b in ("constant", "ramp"):
            res[name]["baseline_" + b] = set_metrics(baseline_preds(samples, b), samples, kind)
        for row, m in res[name].items():
            print(f"{name:22s} n={len(samples):3d} {row:22s} absrel {m['absrel']:.4f} delta1 {m['delta1']:.4f}")
    if a.json_out:
        json.dump(res, open(a.json_out, "w"), indent=1)
    if a.write:
        mj = json.load(open(a.write))
        mets = mj.setdefault("metrics", {})
        for name, rows in res.items():
            for row in ("pytorch_f32", "bilinear_pytorch_f32"):
                mets.setdefault(name, {})[row] = {k: round(v, 6) for k, v in rows[row].items()}
        json.dump(mj, open(a.write, "w"), indent=1)
        print("wrote", a.write)


if __name__ == "__main__":
    main()
