#!/usr/bin/env python3
"""Writes the committed calibration sets models/calib/person-seg/ and models/calib/depth/
from the training caches (run by hand after tools/train/*: `python tools/calib/make_calib_sets.py`).

Both sets are drawn from the *training* side of each model's split, so they share nothing with
the eval sets in models/eval/ (which are built from the held-out side):
- person-seg: real frames/photos of the training split in .cache/seg/train.npz (`real/...` keys:
  vtest.avi frames < 660, Megamind.avi frames < 230, opencv left/right01-11, skimage photos;
  the eval sets use vtest 660-794, Megamind 230-269, left/right12-14, messi5, basketball1/2)
  and training backgrounds (`bg/...` keys; the eval composites use the held-out backgrounds).
- depth: training renders of tools/train/depth/render.py (seeds 0..4999, textures from
  texture_split('train')); the eval renders use seeds 1000000.. and the held-out textures.
  Middlebury's two scenes (Motorcycle, Aloe) are photos the renders never show whole.

Images are stretched to the model's input size (as model.json's resize says) and stored as
JPEG quality 90 to keep each set under 0.6 MB; manifest.json records each image's origin.
"""
import argparse, io, json, os, sys
import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def save(img: np.ndarray, path: str, w: int, h: int) -> int:
    im = Image.fromarray(img).convert("RGB")
    if im.size != (w, h):
        im = im.resize((w, h), Image.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return len(buf.getvalue())


def write(name, items, w, h, source, cache):
    out = os.path.join(ROOT, "models", "calib", name)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        if f.endswith(".jpg"):
            os.remove(os.path.join(out, f))
    samples, total = [], 0
    for k, (origin, img) in enumerate(items):
        fn = f"{k:04d}.jpg"
        total += save(img, os.path.join(out, fn), w, h)
        samples.append({"image": fn, "origin": origin})
    man = {"schema": 1, "name": f"{name}-calib", "source": source, "cache": cache,
           "size": [w, h], "storage": "JPEG quality 90, stretched to the model input size", "samples": samples}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1)
    print(f"{out}: {len(items)} images, {total / 1e6:.3f} MB")
    assert total < 600_000, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=os.path.join(ROOT, ".cache"), help="the training cache (.cache of the checkout that trained)")
    ap.add_argument("--count", type=int, default=24)
    a = ap.parse_args()
    seg = np.load(os.path.join(a.cache, "seg", "train.npz"))
    keys = [k for k in seg.files if k.startswith("real/")]
    bgs = [k for k in seg.files if k.startswith("bg/")]
    # Held-out frames must not appear: the training cache holds only the training split.
    for k in keys:
        if "#" in k:
            v, fr = k[len("real/"):].split("#")
            assert (v == "vtest.avi" and int(fr) < 660) or (v == "Megamind.avi" and int(fr) < 230), k
    n_bg = a.count // 6
    pick = [keys[i] for i in np.linspace(0, len(keys) - 1, a.count - n_bg).astype(int)]
    pick += [bgs[i] for i in np.linspace(0, len(bgs) - 1, n_bg).astype(int)]
    write("person-seg", [(f"train.npz:{k}", seg[k]) for k in pick], 256, 256,
          "training-split real frames/photos and backgrounds of the person-seg student (tools/train/seg/data.py), disjoint from models/eval/seg-*",
          ".cache/seg/train.npz")
    dimg = np.load(os.path.join(a.cache, "depth", "train", "image.npy"), mmap_mode="r")
    seeds = np.linspace(0, len(dimg) - 1, a.count).astype(int)
    write("depth", [(f"render seed {s} (training split)", np.asarray(dimg[s])) for s in seeds], 256, 192,
          "training renders of tools/train/depth/render.py (seeds 0..4999, training textures), disjoint from models/eval/depth-synthetic (seeds 1000000.., held-out textures) and models/eval/middlebury",
          ".cache/depth/train/image.npy")


if __name__ == "__main__":
    sys.exit(main())
