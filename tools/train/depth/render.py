"""Procedural synthetic RGB-D renderer (numpy, vectorised analytic ray casting).

Every image is a deterministic function of its seed: a pinhole camera (height, pitch, small
roll and field of view drawn at random) looks at a ground plane, a back wall, optional side
walls and ceiling, and a few boxes, spheres and vertical cylinders standing on the ground.
Surfaces carry textures cut from the real photos in the data cache (scikit-image and
opencv-doc photos; never the Middlebury scenes), mapped with world-scaled UVs. Shading is
Lambert with one directional light plus ambient, with cast shadows from the objects.
Colour is shaded from the pixel-centre rays (2x2 supersampling optional, off for the
shipped sets to keep rendering fast); depth is the exact z-depth of the ray through each pixel centre.

Textures are split by photo: the training renders use one set of photos, the eval renders
(another seed range) use a disjoint held-out set (`texture_split`).

    python tools/train/depth/render.py --count 5000 --first-seed 0 --split train \
        --out .cache/depth/train            # -> image.npy (N,H,W,3) u8, depth.npy (N,H,W) f16
    python tools/train/depth/render.py --preview 8 --out /tmp/prev
"""
import argparse
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 192, 256
REPO = Path(__file__).resolve().parents[3]
EXCLUDE = ("motorcycle", "aloe")  # the Middlebury scenes are eval data
SKIP_EXT = (".avi", ".npz", ".txt")


def data_dir():
    return Path(os.environ.get("DYSAMPLE_DATA", REPO / ".cache" / "data"))


def photo_list():
    out = []
    for sub in ("skimage", "opencv"):
        for p in sorted((data_dir() / sub).iterdir()):
            if p.suffix.lower() in SKIP_EXT or any(e in p.name for e in EXCLUDE):
                continue
            if re.fullmatch(r"(left|right)(0[2-9]|1\d)\.jpg", p.name):
                continue  # 26 near-identical chessboard calibration shots; keep left01/right01 only
            out.append(p)
    return out


def texture_split(split):
    """Every 6th photo (sorted by folder/name) is held out for the eval renders."""
    photos = photo_list()
    held = [p for i, p in enumerate(photos) if i % 6 == 3]
    train = [p for i, p in enumerate(photos) if i % 6 != 3]
    return held if split == "eval" else train


def load_textures(split):
    texs = []
    for p in texture_split(split):
        im = Image.open(p).convert("RGB")
        w, h = im.size
        s = 384 / max(w, h)
        if s < 1:
            im = im.resize((max(8, int(w * s)), max(8, int(h * s))), Image.BILINEAR)
        texs.append(np.asarray(im, dtype=np.float32) / 255.0)
    return texs


# ---------------------------------------------------------------- intersections
INF = np.float32(np.inf)


def hit_plane(o, d, n, c):
    """Plane n.p = c; returns t (inf where missed or behind)."""
    nd = d @ n
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (c - o @ n) / nd
    t[~(t > 1e-4)] = INF
    return t


def hit_sphere(o, d, ctr, r):
    oc = o - ctr
    a = np.einsum("ij,ij->i", d, d)
    b = 2 * (d @ oc)
    cc = oc @ oc - r * r
    disc = b * b - 4 * a * cc
    ok = disc >= 0
    sq = np.sqrt(np.where(ok, disc, 0))
    t0 = (-b - sq) / (2 * a)
    t1 = (-b + sq) / (2 * a)
    t = np.where(t0 > 1e-4, t0, t1)
    t[~ok | ~(t > 1e-4)] = INF
    return t


def yaw_mat(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float32)


def hit_box(o, d, ctr, half, R):
    """Oriented box (rotation R about y). Returns t, local-axis index of the hit face, sign."""
    ol = (o - ctr) @ R  # world->local: p_l = R^T (p - c)
    dl = d @ R
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dl
        t1 = (-half - ol) * inv
        t2 = (half - ol) * inv
    tmin = np.minimum(t1, t2)
    tmax = np.maximum(t1, t2)
    tmin = np.nan_to_num(tmin, nan=-np.inf)
    tmax = np.nan_to_num(tmax, nan=np.inf)
    tn = tmin.max(1)
    tf = tmax.min(1)
    axis = tmin.argmax(1)
    ok = (tn <= tf) & (tn > 1e-4)
    t = np.where(ok, tn, INF).astype(np.float32)
    return t, axis, dl, ol


def hit_cyl(o, d, base, r, h):
    """Vertical cylinder with base centre `base` (on y), radius r, height h, top cap."""
    ox, oz = o[0] - base[0], o[2] - base[2]
    dx, dz = d[:, 0], d[:, 2]
    a = dx * dx + dz * dz
    b = 2 * (ox * dx + oz * dz)
    c = ox * ox + oz * oz - r * r
    disc = b * b - 4 * a * c
    ok = (disc >= 0) & (a > 1e-12)
    sq = np.sqrt(np.where(ok, disc, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = (-b - sq) / (2 * a)
    y0 = o[1] + t0 * d[:, 1]
    side = ok & (t0 > 1e-4) & (y0 >= base[1]) & (y0 <= base[1] + h)
    ts = np.where(side, t0, INF)
    # top cap
    with np.errstate(divide="ignore", invalid="ignore"):
        tc = (base[1] + h - o[1]) / d[:, 1]
    px = ox + tc * dx
    pz = oz + tc * dz
    cap = (tc > 1e-4) & (px * px + pz * pz <= r * r) & np.isfinite(tc)
    tc = np.where(cap, tc, INF)
    t = np.minimum(ts, tc).astype(np.float32)
    is_cap = tc < ts
    return t, is_cap


# ---------------------------------------------------------------- scene
def make_scene(rng, ntex):
    sc = {}
    sc["fov"] = np.deg2rad(rng.uniform(45, 80))  # horizontal
    sc["cam_h"] = float(np.exp(rng.uniform(np.log(0.3), np.log(3.0))))
    sc["pitch"] = np.deg2rad(rng.uniform(-8, 40))  # down positive
    sc["roll"] = np.deg2rad(rng.normal(0, 3))
    surfaces = []

    def tex(scale_lo, scale_hi):
        return dict(tex=int(rng.integers(ntex)), scale=float(np.exp(rng.uniform(np.log(scale_lo), np.log(scale_hi)))),
                    off=rng.uniform(0, 1000, 2), tint=rng.uniform(0.6, 1.2, 3), flat=rng.random() < 0.1,
                    flatcol=rng.uniform(0.15, 0.95, 3), rot=rng.uniform(0, 2 * np.pi))

    surfaces.append(dict(kind="plane", n=np.array([0, 1, 0], np.float32), c=0.0, **tex(1, 6)))  # ground
    zb = float(np.exp(rng.uniform(np.log(3), np.log(40))))
    a = rng.uniform(-0.5, 0.5)
    surfaces.append(dict(kind="plane", n=np.array([np.sin(a), 0, np.cos(a)], np.float32), c=zb, **tex(2, 10)))
    for sgn in (-1, 1):
        if rng.random() < 0.4:
            xs = float(rng.uniform(1.0, 6.0))
            b = rng.uniform(-0.25, 0.25)
            n = np.array([sgn * np.cos(b), 0, np.sin(b)], np.float32)
            surfaces.append(dict(kind="plane", n=n, c=xs, **tex(0.5, 4)))
    if rng.random() < 0.15:
        surfaces.append(dict(kind="plane", n=np.array([0, 1, 0], np.float32), c=sc["cam_h"] + rng.uniform(0.3, 2.5),
                             **tex(0.5, 4)))
    nobj = int(rng.integers(0, 11))
    zmax = min(zb * 0.9, 20.0)
    tanh = np.tan(sc["fov"] / 2)
    for _ in range(nobj):
        z = float(np.exp(rng.uniform(np.log(0.8), np.log(max(zmax, 1.0)))))
        x = float(rng.uniform(-1.2, 1.2) * z * tanh)
        k = rng.choice(["box", "sphere", "cyl"], p=[0.45, 0.3, 0.25])
        size = float(np.exp(rng.uniform(np.log(0.15), np.log(1.5)))) * (0.5 + 0.5 * z / 4) ** 0.5
        t = tex(0.3, 2.0)
        if k == "box":
            half = np.array([size * rng.uniform(0.4, 1.2), size * rng.uniform(0.3, 1.5), size * rng.uniform(0.4, 1.2)],
                            np.float32)
            yb = 0.0 if rng.random() < 0.85 else rng.uniform(0.2, 1.5)
            ctr = np.array([x, yb + half[1], z + half[2]], np.float32)
            surfaces.append(dict(kind="box", ctr=ctr, half=half, R=yaw_mat(rng.uniform(0, np.pi)), **t))
        elif k == "sphere":
            r = size * rng.uniform(0.4, 0.9)
            yb = 0.0 if rng.random() < 0.8 else rng.uniform(0.2, 1.5)
            surfaces.append(dict(kind="sphere", ctr=np.array([x, yb + r, z + r], np.float32), r=float(r), **t))
        else:
            r = size * rng.uniform(0.2, 0.6)
            h = size * rng.uniform(0.8, 3.0)
            surfaces.append(dict(kind="cyl", base=np.array([x, 0, z + r], np.float32), r=float(r), h=float(h), **t))
    el = np.deg2rad(rng.uniform(20, 80))
    az = rng.uniform(0, 2 * np.pi)
    sc["light"] = np.array([np.cos(el) * np.cos(az), np.sin(el), np.cos(el) * np.sin(az)], np.float32)
    sc["ambient"] = float(rng.uniform(0.2, 0.5))
    sc["kd"] = float(rng.uniform(0.5, 1.0))
    sc["light_col"] = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    sc["fog"] = float(rng.uniform(15, 80)) if rng.random() < 0.25 else 0.0
    sc["fog_col"] = rng.uniform(0.5, 0.9, 3).astype(np.float32)
    sc["noise"] = float(rng.uniform(0, 0.03)) if rng.random() < 0.4 else 0.0
    sc["surfaces"] = surfaces
    return sc


def camera_rays(sc, h, w, sub):
    """Ray directions with camera-frame z = 1 (so t is z-depth). `sub` = offsets in pixels."""
    f = (w / 2) / np.tan(sc["fov"] / 2)
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    out = []
    for dy, dx in sub:
        xc = (xs + 0.5 + dx - w / 2) / f
        yc = -(ys + 0.5 + dy - h / 2) / f
        out.append(np.stack([xc, yc, np.ones_like(xc)], -1).reshape(-1, 3))
    dc = np.concatenate(out)
    p, r = sc["pitch"], sc["roll"]
    Rr = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]], np.float32)
    Rp = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]], np.float32)
    return (dc @ (Rp @ Rr).T).astype(np.float32)


def trace(sc, o, d, full=True):
    n = d.shape[0]
    tbest = np.full(n, INF, np.float32)
    sid = np.full(n, -1, np.int32)
    extra = {}
    for i, s in enumerate(sc["surfaces"]):
        if s["kind"] == "plane":
            t = hit_plane(o, d, s["n"], s["c"])
        elif s["kind"] == "sphere":
            t = hit_sphere(o, d, s["ctr"], s["r"])
        elif s["kind"] == "box":
            t, axis, dl, ol = hit_box(o, d, s["ctr"], s["half"], s["R"])
            extra[i] = (axis, dl, ol)
        else:
            t, is_cap = hit_cyl(o, d, s["base"], s["r"], s["h"])
            extra[i] = is_cap
        m = t < tbest
        tbest[m] = t[m]
        sid[m] = i
    if not full:
        return tbest, sid
    return tbest, sid, extra


def shade(sc, texs, o, d, tbest, sid, extra):
    n = d.shape[0]
    p = o + d * np.where(np.isfinite(tbest), tbest, 0)[:, None]
    nrm = np.zeros((n, 3), np.float32)
    uv = np.zeros((n, 2), np.float32)
    for i, s in enumerate(sc["surfaces"]):
        m = sid == i
        if not m.any():
            continue
        pm = p[m]
        if s["kind"] == "plane":
            nn = s["n"]
            nrm[m] = nn
            a1 = np.cross(nn, [0, 0, 1] if abs(nn[2]) < 0.9 else [1, 0, 0]).astype(np.float32)
            a1 /= np.linalg.norm(a1)
            a2 = np.cross(nn, a1)
            uv[m] = np.stack([pm @ a1, pm @ a2], -1)
        elif s["kind"] == "sphere":
            q = (pm - s["ctr"]) / s["r"]
            nrm[m] = q
            uv[m] = np.stack([np.arctan2(q[:, 0], q[:, 2]) * s["r"], np.arccos(np.clip(q[:, 1], -1, 1)) * s["r"]], -1)
        elif s["kind"] == "box":
            axis, dl, ol = extra[i]
            pl = (pm - s["ctr"]) @ s["R"]
            ax = axis[m]
            nl = np.zeros_like(pl)
            nl[np.arange(len(ax)), ax] = np.sign(pl[np.arange(len(ax)), ax])
            nrm[m] = nl @ s["R"].T
            u = np.where(ax == 0, pl[:, 2], pl[:, 0])
            v = np.where(ax == 1, pl[:, 2], pl[:, 1])
            uv[m] = np.stack([u + ax * 3.1, v], -1)
        else:
            is_cap = extra[i][m]
            q = pm - s["base"]
            side_n = np.stack([q[:, 0], np.zeros_like(q[:, 0]), q[:, 2]], -1) / s["r"]
            nrm[m] = np.where(is_cap[:, None], np.array([0, 1, 0], np.float32), side_n)
            uv[m] = np.where(is_cap[:, None], np.stack([q[:, 0], q[:, 2]], -1),
                             np.stack([np.arctan2(q[:, 0], q[:, 2]) * s["r"], q[:, 1]], -1))
    # face the camera
    flip = np.einsum("ij,ij->i", nrm, d) > 0
    nrm[flip] *= -1
    # albedo
    alb = np.zeros((n, 3), np.float32)
    for i, s in enumerate(sc["surfaces"]):
        m = sid == i
        if not m.any():
            continue
        if s["flat"]:
            alb[m] = s["flatcol"]
            continue
        tx = texs[s["tex"]]
        th, tw = tx.shape[:2]
        c, sn = np.cos(s["rot"]), np.sin(s["rot"])
        u0, v0 = uv[m, 0], uv[m, 1]
        u = (c * u0 - sn * v0) / s["scale"] * max(th, tw) + s["off"][0]
        v = (sn * u0 + c * v0) / s["scale"] * max(th, tw) + s["off"][1]
        # mirrored repeat
        iu = np.floor(u).astype(np.int64) % (2 * tw)
        iv = np.floor(v).astype(np.int64) % (2 * th)
        iu = np.where(iu >= tw, 2 * tw - 1 - iu, iu)
        iv = np.where(iv >= th, 2 * th - 1 - iv, iv)
        alb[m] = tx[iv, iu] * s["tint"]
    # shadows from objects
    L = sc["light"]
    lit = np.ones(n, np.float32)
    po = p + nrm * 1e-3
    for i, s in enumerate(sc["surfaces"]):
        if s["kind"] == "plane":
            continue
        if s["kind"] == "sphere":
            oc = po - s["ctr"]
            b = oc @ L
            cc = np.einsum("ij,ij->i", oc, oc) - s["r"] ** 2
            disc = b * b - cc
            hit = (disc >= 0) & (-b + np.sqrt(np.maximum(disc, 0)) > 1e-4) & (cc > 0)
        elif s["kind"] == "box":
            ol = (po - s["ctr"]) @ s["R"]
            dl = L @ s["R"]
            with np.errstate(divide="ignore", invalid="ignore"):
                t1 = (-s["half"] - ol) / dl
                t2 = (s["half"] - ol) / dl
            tn = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf).max(1)
            tf = np.nan_to_num(np.maximum(t1, t2), nan=np.inf).min(1)
            hit = (tn <= tf) & (tn > 1e-4)
        else:
            t, _ = hit_cyl_many(po, L, s["base"], s["r"], s["h"])
            hit = np.isfinite(t)
        hit &= sid != i
        lit[hit] = 0
    ndl = np.clip(nrm @ L, 0, None) * lit
    col = alb * (sc["ambient"] + sc["kd"] * ndl[:, None] * sc["light_col"])
    if sc["fog"] > 0:
        z = np.where(np.isfinite(tbest), tbest, 1e3)
        fa = np.exp(-z / sc["fog"])[:, None]
        col = col * fa + sc["fog_col"] * (1 - fa)
    return col


def hit_cyl_many(po, L, base, r, h):
    """Cylinder test for many origins and one direction (shadow rays)."""
    ox, oz = po[:, 0] - base[0], po[:, 2] - base[2]
    dx, dz = L[0], L[2]
    a = dx * dx + dz * dz
    b = 2 * (ox * dx + oz * dz)
    c = ox * ox + oz * oz - r * r
    disc = b * b - 4 * a * c
    ok = (disc >= 0) & (a > 1e-12)
    sq = np.sqrt(np.where(ok, disc, 0))
    t0 = (-b - sq) / (2 * a + 1e-12)
    t1 = (-b + sq) / (2 * a + 1e-12)
    y0 = po[:, 1] + t0 * L[1]
    y1 = po[:, 1] + t1 * L[1]
    # hit if the segment [t0,t1] (t>0) overlaps the slab y in [base, base+h]
    inside0 = ok & (t0 > 1e-4) & (y0 >= base[1]) & (y0 <= base[1] + h)
    inside1 = ok & (t1 > 1e-4) & (y1 >= base[1]) & (y1 <= base[1] + h)
    tc = (base[1] + h - po[:, 1]) / L[1]
    px, pz = ox + tc * dx, oz + tc * dz
    cap = (tc > 1e-4) & (px * px + pz * pz <= r * r)
    hit = inside0 | inside1 | cap
    return np.where(hit, 1.0, np.inf), None


SUB = [(-0.25, -0.25), (-0.25, 0.25), (0.25, -0.25), (0.25, 0.25)]


def render(seed, texs, h=H, w=W, ss=False):
    """Colour is 2x2 supersampled when `ss`, else shaded from the pixel-centre rays. Returns (image u8 (h,w,3), depth f32 (h,w)). Depth is z-depth in metres (finite everywhere)."""
    rng = np.random.default_rng(seed)
    sc = make_scene(rng, len(texs))
    o = np.array([0, sc["cam_h"], 0], np.float32)
    dc = camera_rays(sc, h, w, [(0, 0)])
    t, sid, extra = trace(sc, o, dc)
    depth = t.reshape(h, w)
    if ss:
        d = camera_rays(sc, h, w, SUB)
        t, sid, extra = trace(sc, o, d)
        col = shade(sc, texs, o, d, t, sid, extra).reshape(4, h, w, 3).mean(0)
    else:
        col = shade(sc, texs, o, dc, t, sid, extra).reshape(h, w, 3)
    if sc["noise"] > 0:
        col = col + rng.normal(0, sc["noise"], col.shape).astype(np.float32)
    img = (np.clip(col, 0, 1) * 255 + 0.5).astype(np.uint8)
    return img, depth


def depth_vis(depth):
    inv = 1 / depth
    inv = (inv - inv.min()) / max(inv.max() - inv.min(), 1e-9)
    return (inv * 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--split", choices=["train", "eval"], default="train")
    ap.add_argument("--out", required=True)
    ap.add_argument("--preview", type=int, default=0, help="write N preview PNGs instead")
    a = ap.parse_args()
    texs = load_textures(a.split)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.preview:
        for k in range(a.preview):
            img, dep = render(a.first_seed + k, texs)
            dv = np.repeat(depth_vis(dep)[..., None], 3, -1)
            Image.fromarray(np.concatenate([img, dv], 1)).save(out / f"prev_{a.first_seed + k}.png")
        return
    # resumable memmaps
    imf, dpf, donef = out / "image.npy", out / "depth.npy", out / "done.npy"
    if not imf.exists():
        np.lib.format.open_memmap(imf, "w+", np.uint8, (a.count, H, W, 3))
        np.lib.format.open_memmap(dpf, "w+", np.float16, (a.count, H, W))
        np.save(donef, np.zeros(a.count, bool))
    ims = np.load(imf, mmap_mode="r+")
    dps = np.load(dpf, mmap_mode="r+")
    done = np.load(donef)
    t0 = time.time()
    k0 = 0
    for k in range(a.count):
        if done[k]:
            continue
        img, dep = render(a.first_seed + k, texs)
        ims[k] = img
        dps[k] = np.minimum(dep, 60000)
        done[k] = True
        k0 += 1
        if k0 % 100 == 0:
            ims.flush(); dps.flush(); np.save(donef, done)
            print(f"{k + 1}/{a.count} {(time.time() - t0) / k0 * 1000:.0f} ms/img", flush=True)
    ims.flush(); dps.flush(); np.save(donef, done)
    print(f"done {a.count} in {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
