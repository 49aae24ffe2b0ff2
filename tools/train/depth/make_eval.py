"""Build the committed depth eval sets (models/eval/depth-synthetic, models/eval/middlebury).

depth-synthetic: renders of seeds 1_000_000 + k (training uses seeds 0..4999) with the held-out
texture photos (render.texture_split("eval"), disjoint from the training textures). Targets are
z-depth in metres, float32 rounded to float16 precision and back (exactly representable in f16).
The committed count is small to fit the size budget (an uncompressed 192x256 f32 .npy is
196 KB); `--big N` additionally writes N more renders of the same seed range (not committed)
to .cache/depth/eval_big/ for a larger Python-only figure.

middlebury: the two real Middlebury scenes shipped in the packages (never used in training):
scikit-image motorcycle_left.png + motorcycle_disp.npz (float disparity, inf = invalid) and
opencv-doc aloeL.jpg + aloeGT.png (8-bit disparity, 0 = unknown). The image is resized
(stretch) to 256x192 with PIL bilinear (antialiased); the disparity is block-averaged: each
output cell is the mean of the valid source pixels whose centres fall in it, invalid (0)
where none does. Only relative disparity matters (the metric aligns scale and shift), so the
horizontal stretch factor and the GT PNG's scale are left in.

    python tools/train/depth/make_eval.py --count 7 --big 200   # big: seeds 1_001_000.., uncommitted
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render as R  # noqa: E402

REPO = R.REPO
H, W = R.H, R.W
EVAL_SEED0 = 1_000_000


def block_mean(disp, valid, h, w):
    hs, ws = disp.shape
    ry = np.minimum(((np.arange(hs) + 0.5) * h / hs).astype(np.int64), h - 1)
    rx = np.minimum(((np.arange(ws) + 0.5) * w / ws).astype(np.int64), w - 1)
    cell = (ry[:, None] * w + rx[None, :]).ravel()
    v = valid.ravel()
    s = np.bincount(cell[v], weights=disp.ravel()[v].astype(np.float64), minlength=h * w)
    c = np.bincount(cell[v], minlength=h * w)
    out = np.where(c > 0, s / np.maximum(c, 1), 0.0)
    return out.reshape(h, w).astype(np.float32)


def write_synth(dst, count, first, name="depth-synthetic"):
    texs = R.load_textures("eval")
    (dst / "image").mkdir(parents=True, exist_ok=True)
    (dst / "target").mkdir(parents=True, exist_ok=True)
    samples = []
    for k in range(count):
        seed = first + k
        img, dep = R.render(seed, texs)
        sid = f"{seed}"
        Image.fromarray(img).save(dst / "image" / f"{sid}.png", optimize=True)
        np.save(dst / "target" / f"{sid}.npy", dep.astype(np.float16).astype(np.float32))
        samples.append({"id": sid, "image": f"image/{sid}.png", "target": f"target/{sid}.npy"})
    if True:
        man = {
            "schema": 1, "name": name, "task": "depth", "kind": "synthetic", "target_kind": "depth",
            "source": ("Procedural renders by tools/train/depth/render.py (seeds %d..%d; training uses seeds 0..4999) "
                       "with textures from the held-out photo split (every 6th of the scikit-image / opencv-doc photos, "
                       "texture_split('eval'); the training renders never use these photos). Targets: exact z-depth in "
                       "metres from the ray casting, rounded to float16 precision, stored as float32. "
                       "Made by tools/train/depth/make_eval.py." % (first, first + count - 1)),
            "license": ("Renders: same licence as the texture photos (scikit-image BSD-3-Clause data, "
                        "opencv-doc Apache-2.0 / BSD-3-Clause); see .cache/data/LICENSES."),
            "held_out_textures": [p.name for p in R.texture_split("eval")],
            "samples": samples,
        }
        json.dump(man, open(dst / "manifest.json", "w"), indent=1)


def write_middlebury(dst):
    d = R.data_dir()
    (dst / "image").mkdir(parents=True, exist_ok=True)
    (dst / "target").mkdir(parents=True, exist_ok=True)
    samples = []
    # motorcycle
    im = Image.open(d / "skimage" / "motorcycle_left.png").convert("RGB")
    disp = np.load(d / "skimage" / "motorcycle_disp.npz")["arr_0"].astype(np.float32)
    valid = np.isfinite(disp) & (disp > 0)
    scenes = [("motorcycle", im, disp, valid)]
    im = Image.open(d / "opencv" / "aloeL.jpg").convert("RGB")
    gt = np.asarray(Image.open(d / "opencv" / "aloeGT.png")).astype(np.float32)
    scenes.append(("aloe", im, gt, gt > 0))
    for name, im, disp, valid in scenes:
        assert disp.shape == (im.size[1], im.size[0]), (name, disp.shape, im.size)
        im.resize((W, H), Image.BILINEAR).save(dst / "image" / f"{name}.png", optimize=True)
        np.save(dst / "target" / f"{name}.npy", block_mean(disp, valid, H, W))
        samples.append({"id": name, "image": f"image/{name}.png", "target": f"target/{name}.npy"})
    man = {
        "schema": 1, "name": "middlebury", "task": "depth", "kind": "middlebury", "target_kind": "disparity",
        "source": ("Two Middlebury stereo scenes with ground-truth disparity: 'Motorcycle' (Middlebury 2014, "
                   "Scharstein et al., GCPR 2014) as shipped in the scikit-image 0.26 wheel (motorcycle_left.png, "
                   "motorcycle_disp.npz, inf = invalid), and 'Aloe' (Middlebury 2006, Scharstein & Pal, CVPR 2007) as "
                   "shipped in Debian opencv-doc 4.6.0 examples/data (aloeL.jpg, aloeGT.png, 8-bit disparity, "
                   "0 = unknown). Left image stretched to 256x192 (PIL bilinear); disparity block-averaged over valid "
                   "source pixels per output cell, 0 where a cell has none. 2 real scenes: a sanity check, not a "
                   "benchmark. Never used in training. Made by tools/train/depth/make_eval.py."),
        "license": ("Redistributed within scikit-image (BSD-3-Clause) and opencv-doc (Apache-2.0 / BSD-3-Clause); "
                    "the Middlebury stereo pages ask users to cite the dataset papers."),
        "samples": samples,
    }
    json.dump(man, open(dst / "manifest.json", "w"), indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=7)
    ap.add_argument("--big", type=int, default=0)
    a = ap.parse_args()
    write_synth(REPO / "models" / "eval" / "depth-synthetic", a.count, EVAL_SEED0)
    write_middlebury(REPO / "models" / "eval" / "middlebury")
    if a.big:
        write_synth(REPO / ".cache" / "depth" / "eval_big", a.big, EVAL_SEED0 + 1000, "depth-synthetic-big")


if __name__ == "__main__":
    main()
