"""Train the depth model (DySample decoder) or its bilinear twin on the synthetic RGB-D renders.

Recipe (identical for both variants): phase 1 at 96x128 (renders area-downsampled 2x, target
inverse depth averaged per 2x2 cell) for --steps steps, then phase 2 at the full 192x256 for
--ft-steps steps. Adam, linear warm-up + cosine LR over both phases, batch --batch.
Loss: MiDaS-style scale-and-shift-invariant loss on inverse depth: prediction and target
disparity are each normalised per image by median / mean absolute deviation, L1 of the
residual, plus a 4-scale gradient-matching term on the residual (weight 0.5). (A variant with
per-image least-squares alignment of the prediction, align_lsq, learned much more slowly in
a 25-step overfit test, so it is not used.) Augmentation: horizontal flip, brightness / contrast /
saturation / per-channel gain jitter, occasional grey, occasional blur.
Data sampling and augmentation are a function of (seed, step), so a resumed run is the run.

    python tools/train/depth/render.py --count 5000 --first-seed 0 --split train --out .cache/depth/train
    python tools/train/depth/train.py --variant dysample --out .cache/depth/run_dysample
    python tools/train/depth/train.py --variant bilinear --out .cache/depth/run_bilinear
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model as M  # noqa: E402

REPO = M.REPO


def load_data(path):
    im = np.load(path / "image.npy", mmap_mode="r")
    dp = np.load(path / "depth.npy", mmap_mode="r")
    done = np.load(path / "done.npy")
    n = int(done.sum())
    assert done[:n].all(), "render incomplete"
    img = torch.from_numpy(np.ascontiguousarray(im[:n]))  # N,H,W,3 u8
    disp = torch.from_numpy(1.0 / np.ascontiguousarray(dp[:n]).astype(np.float32))  # N,H,W
    return img, disp


def half_res(img_u8, disp):
    x = img_u8.permute(0, 3, 1, 2).float()
    x = F.avg_pool2d(x, 2).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    d = F.avg_pool2d(disp[:, None], 2)[:, 0].contiguous()
    return x, d


def augment(x, g, gen):
    """x: B,3,H,W in [0,1]; g: B,H,W disparity."""
    B = x.shape[0]
    r = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    flip = r(B) < 0.5
    x = torch.where(flip.view(B, 1, 1, 1), x.flip(-1), x)
    g = torch.where(flip.view(B, 1, 1), g.flip(-1), g)
    bright = 0.7 + 0.6 * r(B, 1, 1, 1)
    contrast = 0.7 + 0.6 * r(B, 1, 1, 1)
    gains = 0.85 + 0.3 * r(B, 3, 1, 1)
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    x = x * bright * gains
    sat = 0.6 + 0.8 * r(B, 1, 1, 1)
    grey = x.mean(1, keepdim=True)
    sat = torch.where(r(B, 1, 1, 1) < 0.1, torch.zeros_like(sat), sat)
    x = grey + (x - grey) * sat
    blur = r(B) < 0.2
    if blur.any():
        k = torch.tensor([1.0, 2.0, 1.0]) / 4
        k2 = (k[:, None] * k[None, :]).view(1, 1, 3, 3).repeat(3, 1, 1, 1)
        xb = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k2, groups=3)
        x = torch.where(blur.view(B, 1, 1, 1), xb, x)
    return x.clamp(0, 1), g


def align_lsq(d, g, m):
    """Per-image least-squares s, t minimising sum_m (s d + t - g)^2. Shapes B,N.
    Centred sums (the raw normal equations cancel badly in float32)."""
    n = m.sum(1).clamp(min=1)
    md = (d * m).sum(1) / n
    mg = (g * m).sum(1) / n
    dc = (d - md[:, None]) * m
    gc = (g - mg[:, None]) * m
    s = (dc * gc).sum(1) / (dc * dc).sum(1).clamp(min=1e-12)
    t = mg - s * md
    return s, t


def _norm_med_mad(z, m):
    """Per-image (z - median) / mean|z - median| over the valid mask m (B,N float)."""
    if bool((m > 0).all()):
        med = z.median(1).values
    else:
        med = torch.stack([z[i][m[i] > 0].median() for i in range(z.shape[0])])
    zc = z - med[:, None]
    mad = (zc.abs() * m).sum(1) / m.sum(1).clamp(min=1)
    return zc / mad.clamp(min=1e-6)[:, None]


def ssi_loss(pred, g, valid, grad_w=0.5, scales=4):
    """MiDaS-style scale-and-shift-invariant loss in inverse depth. pred, g, valid: B,H,W.
    Prediction and target are each aligned by their per-image median and mean absolute
    deviation (MiDaS L_ssi with median/MAD alignment, no trimming); L1 of the residual plus a
    4-scale gradient-matching term on the residual. Returns (total, ssi, grad)."""
    B, H, W = pred.shape
    m = valid.float().view(B, -1)
    res = (_norm_med_mad(pred.reshape(B, -1), m) - _norm_med_mad(g.reshape(B, -1), m)) * m
    ssi = res.abs().sum() / m.sum().clamp(min=1)
    R = res.view(B, H, W)
    mm = valid.float()
    gl = 0.0
    for k in range(scales):
        st = 2 ** k
        Rk, mk = R[:, ::st, ::st], mm[:, ::st, ::st]
        gx = (Rk[:, :, 1:] - Rk[:, :, :-1]).abs() * mk[:, :, 1:] * mk[:, :, :-1]
        gy = (Rk[:, 1:, :] - Rk[:, :-1, :]).abs() * mk[:, 1:, :] * mk[:, :-1, :]
        gl = gl + (gx.sum() + gy.sum()) / mk.sum().clamp(min=1)
    return ssi + grad_w * gl, ssi, gl


def lr_at(step, total, base, warm=200):
    if step < warm:
        return base * (step + 1) / warm
    p = (step - warm) / max(1, total - warm)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", choices=["dysample", "bilinear"], required=True)
    ap.add_argument("--data", default=str(REPO / ".cache" / "depth" / "train"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1500, help="phase 1 steps at 96x128")
    ap.add_argument("--ft-steps", type=int, default=80, help="phase 2 steps at 192x256")
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--max-steps-now", type=int, default=0, help="stop after this many steps (timing)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    img, disp = load_data(Path(a.data))
    img_lo, disp_lo = half_res(img, disp)
    N = img.shape[0]
    print(f"data {N} images", flush=True)

    net = M.DepthNet(a.variant, pretrained=True)
    enc_p = list(net.encoder.parameters())
    dec_p = list(net.decoder.parameters())
    opt = torch.optim.Adam([{"params": enc_p, "lr_mul": 0.3}, {"params": dec_p, "lr_mul": 1.0}], lr=a.lr)
    total = a.steps + a.ft_steps
    step, elapsed = 0, 0.0
    ck = out / "ckpt.pt"
    if ck.exists():
        st = torch.load(ck, map_location="cpu")
        net.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, elapsed = st["step"], st["elapsed"]
        print(f"resumed at step {step}, {elapsed:.0f}s so far", flush=True)
    mean = torch.tensor(M.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(M.STD).view(1, 3, 1, 1)
    log = open(out / "log.txt", "a")
    net.train()
    t_last = time.time()
    run_steps = 0
    while step < total:
        gen = torch.Generator().manual_seed(a.seed * 1_000_003 + step)
        idx = torch.randint(0, N, (a.batch,), generator=gen)
        if step < a.steps:
            xb, gb = img_lo[idx], disp_lo[idx]
        else:
            xb, gb = img[idx], disp[idx]
        x = xb.permute(0, 3, 1, 2).float() / 255
        x, g = augment(x, gb.clone(), gen)
        valid = torch.isfinite(g) & (g > 0)
        lr = lr_at(step, total, a.lr)
        for pg in opt.param_groups:
            pg["lr"] = lr * pg["lr_mul"]
        pred = net((x - mean) / std)[:, 0]
        loss, ssi, gl = ssi_loss(pred, g, valid)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        run_steps += 1
        now = time.time()
        elapsed += now - t_last
        t_last = now
        if step % 20 == 0:
            msg = f"step {step}/{total} loss {loss.item():.4f} ssi {ssi.item():.4f} grad {gl.item():.4f} lr {lr:.2e} {elapsed:.0f}s"
            print(msg, flush=True)
            log.write(msg + "\n")
            log.flush()
        if step % a.ckpt_every == 0 or step == total:
            torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed}, ck.with_suffix(".tmp"))
            ck.with_suffix(".tmp").replace(ck)
        if a.max_steps_now and run_steps >= a.max_steps_now:
            print(f"timing: {elapsed / max(step, 1):.3f}s/step", flush=True)
            return
    net.eval()
    torch.save(net.state_dict(), out / "final.pt")
    cmd = "python tools/train/depth/train.py " + " ".join(sys.argv[1:])
    json.dump({"command": cmd, "seconds": round(elapsed), "steps": a.steps, "ft_steps": a.ft_steps, "batch": a.batch},
              open(out / "train_info.json", "w"), indent=1)
    print(f"done {total} steps in {elapsed:.0f}s", flush=True)


if __name__ == "__main__":
    main()
