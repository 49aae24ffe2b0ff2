#!/usr/bin/env python3
"""Data for the person-segmentation student: sources, held-out split, teacher masks, cut-outs,
composites, augmentation, and the two committed eval sets.

    python tools/train/seg/data.py cache      # decode frames, build the cut-out pools -> .cache/seg/
    python tools/train/seg/data.py evalsets   # -> models/eval/seg-teacher/, models/eval/seg-composites/
    python tools/train/seg/data.py preview    # contact sheets of training samples -> .cache/seg/

Sources (all from the data script's cache, see tools/data/fetch.py):
- photos with people: skimage astronaut, camera; opencv messi5, basketball1/2, left01..14 /
  right01..14 (a person holding a calibration chessboard);
- photos without people (backgrounds): the natural photos of both packages (logos, drawings,
  text and synthetic patterns are not used);
- video: opencv vtest.avi (795 frames of pedestrians, 768x576), Megamind.avi (270 frames,
  animated film), tree.avi (68 frames, no people: backgrounds).

Held-out split, by source (nothing below is used in training):
- photos: messi5, basketball1, basketball2, left12-14, right12-14 (people); building, home,
  fruits, leuvenA, leuvenB, butterfly, coffee, motorcycle_left, aero3, squirrel_cls, rocket
  (backgrounds; motorcycle_right is left out of training as well, being the same scene);
- vtest.avi frames 660-794 (training uses 0-639), Megamind.avi frames 230-269 (training 0-209),
  tree.avi frames 58-67 (training 0-49).

Teacher masks are the ported MediaPipe model (port.py; it matches the tflite to < 1e-4). In
training they are computed online on each augmented image (so the target matches the input
exactly); composites take the pasted alpha as their exact target.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
CACHE = Path(os.environ.get("DYSAMPLE_DATA", REPO / ".cache" / "data"))
WORK = CACHE.parent / "seg"
EVAL = REPO / "models" / "eval"
S = 256
cv2.setNumThreads(1)

PERSON_TRAIN = ["skimage/astronaut.png", "skimage/camera.png"] + \
    [f"opencv/{s}{i:02d}.jpg" for s in ("left", "right") for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 11)]
PERSON_HELD = ["opencv/messi5.jpg", "opencv/basketball1.png", "opencv/basketball2.png"] + \
    [f"opencv/{s}{i:02d}.jpg" for s in ("left", "right") for i in (12, 13, 14)]
BG_HELD = ["opencv/building.jpg", "opencv/home.jpg", "opencv/fruits.jpg", "opencv/leuvenA.jpg",
           "opencv/leuvenB.jpg", "opencv/butterfly.jpg", "skimage/coffee.png", "skimage/motorcycle_left.png",
           "opencv/aero3.jpg", "opencv/squirrel_cls.jpg", "skimage/rocket.jpg"]
BG_EXCLUDED = ["skimage/motorcycle_right.png"]  # same scene as a held-out background
BG_TRAIN = ["opencv/Blender_Suzanne1.jpg", "opencv/Blender_Suzanne2.jpg", "opencv/aero1.jpg",
            "opencv/aloeL.jpg", "opencv/aloeR.jpg", "opencv/apple.jpg", "opencv/baboon.jpg", "opencv/blox.jpg",
            "opencv/board.jpg", "opencv/box.png", "opencv/box_in_scene.png", "opencv/chicky_512.png",
            "opencv/ela_original.jpg", "opencv/ela_modified.jpg", "opencv/graf1.png", "opencv/graf3.png",
            "opencv/left.jpg", "opencv/right.jpg", "opencv/licenseplate_motion.jpg", "opencv/orange.jpg",
            "opencv/rubberwhale1.png", "opencv/rubberwhale2.png", "opencv/smarties.png",
            "opencv/starry_night.jpg", "opencv/stuff.jpg", "opencv/sudoku.png", "opencv/text_defocus.jpg",
            "opencv/text_motion.jpg", "skimage/brick.png", "skimage/chelsea.png", "skimage/grass.png",
            "skimage/gravel.png", "skimage/hubble_deep_field.jpg", "skimage/ihc.png", "skimage/moon.png",
            "skimage/retina.jpg"]
VIDEO = {  # name -> (train frames, held-out frames)
    "vtest": (range(0, 640), range(660, 795)),
    "Megamind": (range(0, 210), range(230, 270)),
    "tree": (range(0, 50), range(58, 68)),
}
LICENSES = {
    "skimage": "scikit-image 0.26.0 data (BSD-3-Clause; see the package's LICENSE.txt and skimage/data/README)",
    "opencv": "opencv-doc 4.6.0 examples/data (Debian package; Apache-2.0 / BSD-3-Clause per its copyright file)",
}


# ---------------------------------------------------------------------------------------------
# sources

def imread(rel: str) -> np.ndarray:
    return np.asarray(Image.open(CACHE / rel).convert("RGB"))


def video_frames(name: str, wanted, size=(512, 384)) -> dict[int, np.ndarray]:
    wanted = set(wanted)
    cap = cv2.VideoCapture(str(CACHE / "opencv" / f"{name}.avi"))
    out, i = {}, 0
    while wanted:
        ok, f = cap.read()
        if not ok:
            break
        if i in wanted:
            f = cv2.cvtColor(f, cv2.COLOR_BGR2RGB)
            if size is not None and (f.shape[1], f.shape[0]) != size and f.shape[1] > size[0]:
                f = cv2.resize(f, size, interpolation=cv2.INTER_AREA)
            out[i] = f
            wanted.discard(i)
        i += 1
    return out


def resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    inter = cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=inter)


_teacher = None


def teacher_probs(imgs: np.ndarray) -> np.ndarray:
    """Ported teacher on uint8 [N,256,256,3] (or float [N,3,256,256] torch) -> [N,256,256] f32."""
    global _teacher
    import torch
    sys.path.insert(0, str(HERE))
    from port import teacher_state
    from selfie import build
    if _teacher is None:
        _teacher = build("teacher", teacher_state()).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(imgs), 8):
            x = torch.from_numpy(np.ascontiguousarray(imgs[i:i + 8])).permute(0, 3, 1, 2).float() / 255.0
            out.append(_teacher(x)[:, 0].numpy())
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------------
# cut-outs: crops of people sources where the teacher finds one person confidently

def crop_views(img: np.ndarray, rng, n: int, zoom=(0.35, 1.0)):
    """The whole image plus n random crops (area fraction in zoom, aspect 0.75..1.33), at 256x256."""
    H, W = img.shape[:2]
    views = [resize(img, S, S)]
    for _ in range(n):
        a = rng.uniform(*zoom) * H * W
        r = np.exp(rng.uniform(np.log(0.75), np.log(1.33)))
        h = int(min(H, np.sqrt(a / r)))
        w = int(min(W, h * r * W / H))
        y, x = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
        views.append(resize(img[y:y + h, x:x + w], S, S))
    return views


def cutout(prob: np.ndarray):
    """Alpha of the people a teacher map finds confidently, or None: the components of p > 0.5
    of at least 40 pixels (stray blobs dropped), feathered by the teacher's own soft edge."""
    from scipy import ndimage
    m = prob > 0.5
    frac = m.mean()
    if not 0.01 <= frac <= 0.6:
        return None
    unsure = ((prob > 0.1) & (prob < 0.9)).sum() / max(m.sum(), 1)
    if unsure > 0.5:
        return None
    lab, n = ndimage.label(m)
    sizes = ndimage.sum(m, lab, range(1, n + 1))
    good = [i + 1 for i, s in enumerate(sizes) if s >= max(40, 0.05 * sizes.max())]
    if sum(sizes[i - 1] for i in good) < 0.8 * m.sum():
        return None
    keep = ndimage.binary_dilation(np.isin(lab, good), iterations=3)
    alpha = prob * keep
    # cut-outs cut by the left/right/top border are fragments: keep those mostly inside the view
    border = np.concatenate([m[0], m[:, 0], m[:, -1]]).mean()
    if border > 0.25:
        return None
    return alpha.astype(np.float32)


def build_cutouts(sources: list[tuple[str, np.ndarray]], rng, views_per: int, zoom):
    imgs, alphas, names = [], [], []
    for name, img in sources:
        vs = crop_views(img, rng, views_per, zoom)
        probs = teacher_probs(np.stack(vs))
        for j, (v, p) in enumerate(zip(vs, probs)):
            a = cutout(p)
            if a is not None:
                imgs.append(v); alphas.append((a * 255 + 0.5).astype(np.uint8)); names.append(f"{name}:{j}")
    return np.stack(imgs), np.stack(alphas), names


def person_sources(split: str, rng):
    """(name, image) people sources of a split; video frames subsampled."""
    ph = PERSON_TRAIN if split == "train" else PERSON_HELD
    out = [(p, imread(p)) for p in ph]
    step = 4 if split == "train" else 5
    for v in ("vtest", "Megamind"):
        fr = VIDEO[v][0 if split == "train" else 1]
        for i, f in video_frames(v, fr[::step]).items():
            out.append((f"{v}.avi#{i}", f))
    return out


def bg_sources(split: str):
    out = [(p, imread(p)) for p in (BG_TRAIN if split == "train" else BG_HELD)]
    fr = VIDEO["tree"][0 if split == "train" else 1]
    for i, f in video_frames("tree", fr[::2] if split == "train" else fr[::3]).items():
        out.append((f"tree.avi#{i}", f))
    return out


def build_cache():
    """Decoded training frames + the training cut-out pool -> WORK/train.npz."""
    WORK.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    real = {}
    for p in PERSON_TRAIN:
        real[p] = imread(p)
    for v in ("vtest", "Megamind"):
        for i, f in video_frames(v, VIDEO[v][0][::2]).items():
            real[f"{v}.avi#{i}"] = f
    bgs = dict(bg_sources("train"))
    srcs = person_sources("train", rng)
    ci, ca, cn = build_cutouts(srcs, rng, views_per=6, zoom=(0.15, 0.9))
    for p in ("vtest", "Megamind", ""):
        print(p or "photos", sum(1 for n in cn if n.startswith(p)) if p else sum(1 for n in cn if not n.startswith(("vtest", "Megamind"))))
    print(f"train: {len(real)} real images, {len(bgs)} backgrounds, {len(ci)} cut-outs from {len(srcs)} sources")
    np.savez(WORK / "train.npz", cut_img=ci, cut_alpha=ca, cut_name=np.array(cn),
             **{f"real/{k}": v for k, v in real.items()}, **{f"bg/{k}": v for k, v in bgs.items()})


def load_cache():
    z = np.load(WORK / "train.npz")
    real = [z[k] for k in z.files if k.startswith("real/")]
    bgs = [z[k] for k in z.files if k.startswith("bg/")]
    names = [str(n) for n in z["cut_name"]]
    groups = [[i for i, n in enumerate(names) if n.startswith(p)] for p in ("vtest", "Megamind")]
    groups.append([i for i, n in enumerate(names) if not n.startswith(("vtest", "Megamind"))])
    return real, bgs, z["cut_img"], z["cut_alpha"], [g for g in groups if g]


# ---------------------------------------------------------------------------------------------
# augmentation and composites

def random_crop(img, rng, zoom=(0.3, 1.0)):
    H, W = img.shape[:2]
    a = rng.uniform(*zoom) * H * W
    r = np.exp(rng.uniform(np.log(0.6), np.log(1.66)))
    h = int(np.clip(np.sqrt(a / r), 16, H))
    w = int(np.clip(h * r * W / H, 16, W))
    y, x = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
    out = resize(img[y:y + h, x:x + w], S, S)
    return out[:, ::-1] if rng.random() < 0.5 else out


def colour_jitter(img, rng, strength=1.0):
    f = img.astype(np.float32)
    f = f * rng.uniform(1 - 0.4 * strength, 1 + 0.4 * strength)            # brightness
    m = f.mean()
    f = (f - m) * rng.uniform(1 - 0.4 * strength, 1 + 0.4 * strength) + m  # contrast
    g = f.mean(axis=2, keepdims=True)
    f = (f - g) * rng.uniform(1 - 0.5 * strength, 1 + 0.5 * strength) + g  # saturation
    f = f * rng.uniform(1 - 0.08 * strength, 1 + 0.08 * strength, size=3)  # white balance
    return np.clip(f, 0, 255).astype(np.uint8)


def degrade(img, rng):
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.6))
    if rng.random() < 0.3:
        img = np.clip(img + rng.normal(0, rng.uniform(2, 10), img.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.15:
        img = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    return img


def paste(bg, alpha_tgt, img, alpha, rng, scale=(0.35, 1.05)):
    """Pastes a cut-out (256x256 image + uint8 alpha) at a random scale/position onto bg."""
    a = alpha.astype(np.float32) / 255
    ys, xs = np.nonzero(a > 0.02)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    im, a = img[y0:y1, x0:x1], a[y0:y1, x0:x1]
    if rng.random() < 0.5:
        im, a = im[:, ::-1], a[:, ::-1]
    h, w = a.shape
    s = rng.uniform(*scale) * S / max(h, w)
    nh, nw = max(4, int(h * s)), max(4, int(w * s))
    im = cv2.resize(np.ascontiguousarray(im), (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    a = cv2.resize(np.ascontiguousarray(a), (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    im = colour_jitter(im, rng, 0.5)
    # position: anywhere, up to 30% outside left/right, standing on or above the bottom edge
    x = int(rng.uniform(-0.3 * nw, S - 0.7 * nw))
    y = int(rng.uniform(max(0, S - nh) * 0.3, S - 0.75 * nh)) if nh < S else int(rng.uniform(0, 0.25 * nh))
    bx0, by0 = max(x, 0), max(y, 0)
    bx1, by1 = min(x + nw, S), min(y + nh, S)
    if bx1 <= bx0 or by1 <= by0:
        return bg, alpha_tgt
    sa = a[by0 - y:by1 - y, bx0 - x:bx1 - x, None]
    si = im[by0 - y:by1 - y, bx0 - x:bx1 - x].astype(np.float32)
    out = bg.astype(np.float32)
    out[by0:by1, bx0:bx1] = sa * si + (1 - sa) * out[by0:by1, bx0:bx1]
    t = alpha_tgt.copy()
    t[by0:by1, bx0:bx1] = sa[..., 0] + (1 - sa[..., 0]) * t[by0:by1, bx0:bx1]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), t


def composite(bgs, cut_img, cut_alpha, groups, rng, scale=(0.35, 1.05)):
    """groups: lists of cut-out indices (photos / vtest / Megamind), chosen uniformly first."""
    bg = colour_jitter(random_crop(bgs[rng.integers(len(bgs))], rng, (0.2, 1.0)), rng)
    t = np.zeros((S, S), np.float32)
    img = bg
    for _ in range(1 if rng.random() < 0.7 else 2):
        g = groups[rng.integers(len(groups))]
        k = g[rng.integers(len(g))]
        img, t = paste(img, t, cut_img[k], cut_alpha[k], rng, scale)
    return img, t


class Sampler:
    """Training batches: half real images (target: the teacher on the augmented image, before
    blur/noise), half composites (target: the exact pasted alpha)."""

    def __init__(self, seed: int, p_real: float = 0.5):
        self.rng = np.random.default_rng(seed)
        self.real, self.bgs, self.ci, self.ca, self.groups = load_cache()
        self.p_real = p_real

    def batch(self, n: int):
        import torch
        imgs, tg, is_real = [], [], []
        for _ in range(n):
            if self.rng.random() < self.p_real:
                im = colour_jitter(random_crop(self.real[self.rng.integers(len(self.real))], self.rng), self.rng)
                imgs.append(im); tg.append(None); is_real.append(True)
            else:
                im, t = composite(self.bgs, self.ci, self.ca, self.groups, self.rng)
                imgs.append(im); tg.append(t); is_real.append(False)
        real_idx = [i for i, r in enumerate(is_real) if r]
        if real_idx:
            tp = teacher_probs(np.stack([imgs[i] for i in real_idx]))
            for j, i in enumerate(real_idx):
                tg[i] = tp[j]
        imgs = [degrade(im, self.rng) for im in imgs]
        x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float().contiguous() / 255.0
        y = torch.from_numpy(np.stack(tg))[:, None].clamp(0, 1)
        return x, y, torch.tensor(is_real)


# ---------------------------------------------------------------------------------------------
# eval sets

PNG_BUDGET = 22 * 1024  # bytes per eval image: keeps models/eval/seg-* within 2.5 MB


def png_bytes(img: np.ndarray) -> bytes:
    b = io.BytesIO()
    Image.fromarray(img).save(b, "PNG", optimize=True)
    return b.getvalue()


def fit_png(img: np.ndarray):
    """The image as an RGB PNG of at most PNG_BUDGET bytes: unchanged if it fits, else reduced
    to the largest median-cut palette (no dithering) that fits. Returns (stored image, bytes, colours)."""
    data = png_bytes(img)
    if len(data) <= PNG_BUDGET:
        return img, data, 0
    pil = Image.fromarray(img)
    for q in (192, 128, 96, 64, 48, 40, 32, 28, 24, 20, 16, 12, 8):
        j = np.asarray(pil.quantize(q, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).convert("RGB"))
        data = png_bytes(j)
        if len(data) <= PNG_BUDGET:
            return j, data, q
    return j, data, q


def write_set(name: str, kind: str, items, source: str, license: str, extra: dict):
    d = EVAL / name
    (d / "image").mkdir(parents=True, exist_ok=True)
    (d / "target").mkdir(parents=True, exist_ok=True)
    samples = []
    for k, it in enumerate(items):
        sid = f"{k + 1:04d}"
        (d / "image" / f"{sid}.png").write_bytes(it["png"])
        Image.fromarray(it["target"]).save(d / "target" / f"{sid}.png", optimize=True)
        samples.append({"id": sid, "image": f"image/{sid}.png", "target": f"target/{sid}.png",
                        "origin": it["origin"], "colours": it["colours"]})
    man = {"schema": 1, "name": name, "task": "segmentation", "kind": kind, "source": source,
           "license": license, **extra, "samples": samples}
    (d / "manifest.json").write_text(json.dumps(man, indent=1) + "\n")
    size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
    print(f"{name}: {len(samples)} samples, {size / 1024:.0f} KiB")


def build_evalsets():
    rng = np.random.default_rng(8)
    # --- seg-teacher: held-out real frames/photos, target = teacher mask on the stored image
    views = []
    vt = video_frames("vtest", range(660, 795, 1), size=None)
    keys = sorted(vt)
    for i in keys[::17]:  # 8 whole frames, stretched to 256x256 as the model is deployed
        views.append((f"vtest.avi#{i} whole frame", resize(vt[i], S, S)))
    for i in keys[8::17]:  # 8 zoomed crops (half the frame's width and height, random place)
        f = vt[i]
        H, W = f.shape[:2]
        y, x = rng.integers(0, H // 2 + 1), rng.integers(0, W // 2 + 1)
        views.append((f"vtest.avi#{i} crop x{x} y{y} {W // 2}x{H // 2}", resize(f[y:y + H // 2, x:x + W // 2], S, S)))
    mm = video_frames("Megamind", range(230, 270, 4), size=None)
    for i in sorted(mm):
        views.append((f"Megamind.avi#{i} whole frame", resize(mm[i], S, S)))
    for p in PERSON_HELD:
        views.append((f"{p} whole image", resize(imread(p), S, S)))
    for p in ["opencv/building.jpg", "opencv/fruits.jpg", "skimage/coffee.png", "opencv/butterfly.jpg",
              "opencv/leuvenA.jpg", "skimage/rocket.jpg"]:
        views.append((f"{p} whole image (no person)", resize(imread(p), S, S)))
    items = []
    stored = []
    for origin, img in views:
        j, data, q = fit_png(img)
        stored.append(j)
        items.append({"origin": origin, "png": data, "colours": q})
    probs = teacher_probs(np.stack(stored))
    for it, p in zip(items, probs):
        it["target"] = np.where(p > 0.5, 255, 0).astype(np.uint8)
    write_set("seg-teacher", "teacher", items,
              "held-out real frames and photos: vtest.avi frames 660-794, Megamind.avi frames 230-269, "
              "photos messi5, basketball1/2, left12-14, right12-14 (people) and building, fruits, coffee, "
              "butterfly, leuvenA, rocket (no people); target = the MediaPipe selfie teacher (PyTorch port of "
              "selfie_segmentation.tflite from mediapipe==0.10.21) thresholded at 0.5 on the stored image",
              "images: " + LICENSES["opencv"] + "; " + LICENSES["skimage"] +
              "; Megamind.avi is a film clip distributed in opencv-doc (see its copyright file); "
              "targets: made by an Apache-2.0 model",
              {"storage": "images at 256x256, whole frames stretched; RGB PNG, reduced to the largest "
                          "median-cut palette (no dithering) that fits 22 KiB where needed ('colours', 0 = "
                          "unchanged); the teacher ran on the stored image"})
    # --- seg-composites: held-out cut-outs on held-out backgrounds, target = exact pasted alpha
    srcs = person_sources("held", rng)
    ci, ca, cn = build_cutouts(srcs, rng, views_per=5, zoom=(0.15, 0.9))
    bgs = bg_sources("held")
    print(f"held-out: {len(ci)} cut-outs from {len(srcs)} sources, {len(bgs)} backgrounds")
    # spread the cut-outs over their sources so one source does not dominate
    src_of = np.array([n.split(":")[0].split("#")[0] for n in cn])
    items = []
    uniq = sorted(set(src_of))
    for k in range(60):
        bname, bg = bgs[k % len(bgs)]
        bimg = colour_jitter(random_crop(bg, rng, (0.3, 1.0)), rng, 0.5)
        t = np.zeros((S, S), np.float32)
        img = bimg
        used = []
        for _ in range(1 if rng.random() < 0.75 else 2):
            s = uniq[rng.integers(len(uniq))]
            cand = np.nonzero(src_of == s)[0]
            c = cand[rng.integers(len(cand))]
            img, t = paste(img, t, ci[c], ca[c], rng)
            used.append(cn[c])
        j, data, q = fit_png(img)
        items.append({"origin": f"background {bname}; cut-outs {', '.join(used)}", "png": data, "colours": q,
                      "target": np.where(t >= 0.5, 255, 0).astype(np.uint8)})
    write_set("seg-composites", "composite", items,
              "held-out composites: person cut-outs (image x teacher alpha, largest confident component) from "
              "messi5, basketball1/2, left/right12-14, vtest.avi frames 660-794, Megamind.avi frames 230-269, "
              "pasted onto held-out backgrounds (building, home, fruits, leuvenA/B, butterfly, coffee, "
              "motorcycle_left, aero3, squirrel_cls, rocket, tree.avi frames 58-67); target = the pasted alpha >= 0.5",
              "images: " + LICENSES["opencv"] + "; " + LICENSES["skimage"] +
              "; Megamind.avi is a film clip distributed in opencv-doc (see its copyright file)",
              {"storage": "RGB PNG 256x256, reduced to the largest median-cut palette (no dithering) that fits "
                          "22 KiB where needed ('colours', 0 = unchanged); targets exact for the stored image"})


def preview():
    s = Sampler(0)
    x, y, r = s.batch(16)
    tiles = []
    for i in range(16):
        im = (x[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        m = (y[i, 0].numpy() * 255).astype(np.uint8)
        ov = im.copy(); ov[..., 0] = np.maximum(ov[..., 0], m)
        tiles.append(np.concatenate([im, ov], 1))
    rows = [np.concatenate(tiles[i:i + 4], 1) for i in range(0, 16, 4)]
    Image.fromarray(np.concatenate(rows, 0)).resize((1024, 512)).save(WORK / "preview.png")
    z = np.load(WORK / "train.npz")
    ci, ca = z["cut_img"], z["cut_alpha"]
    idx = np.linspace(0, len(ci) - 1, 32).astype(int)
    t = [np.concatenate([ci[i], np.repeat(ca[i][..., None], 3, 2)], 0) for i in idx]
    Image.fromarray(np.concatenate(t, 1)).resize((32 * 96, 192)).save(WORK / "cutouts.png")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["cache", "evalsets", "preview"])
    a = ap.parse_args()
    {"cache": build_cache, "evalsets": build_evalsets, "preview": preview}[a.cmd]()
