#!/usr/bin/env python3
"""Fine-tunes the selfie network with DySample upsamplers (or its bilinear twin) from the
MediaPipe teacher's weights.

    python tools/train/seg/train.py --variant dysample --steps 3000
    python tools/train/seg/train.py --variant bilinear --steps 3000

Data (tools/train/seg/data.py, cache built by ``data.py cache``): each batch is half real photos
and video frames (target: the ported teacher's soft mask on the augmented image = distillation)
and half composites (target: the exact pasted alpha). Both variants draw the identical batch
stream (same seed; the sampler does not depend on the model).
Loss: BCE + soft Dice on P(person). Adam, lr 2e-4 with cosine decay to 0 after a 100-step warm-up;
the DySample offset convs (zero-initialised, so the student starts at the teacher) use 10x the
learning rate. One thread. Checkpoints every --ckpt-every steps to
<cache>/../seg/runs/<variant>/ckpt.pt; re-running the same command resumes from it. The final
state_dict goes to runs/<variant>/final.safetensors and the wall time to runs/<variant>/run.json.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from data import WORK, Sampler  # noqa: E402
from port import teacher_state  # noqa: E402
from selfie import build  # noqa: E402


def loss_fn(p, t):
    p = p.clamp(1e-6, 1 - 1e-6)
    bce = F.binary_cross_entropy(p, t)
    inter = (p * t).sum(dim=(1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum(dim=(1, 2, 3)) + t.sum(dim=(1, 2, 3)) + 1)
    return bce + dice.mean(), bce, dice.mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", choices=["dysample", "bilinear"], required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--offset-lr-mult", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--out", default=None)
    ap.add_argument("--stop-at", type=int, default=None,
                    help="checkpoint and exit at this step (to reproduce a run whose --steps was changed on resume)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out) if a.out else WORK / "runs" / a.variant
    out.mkdir(parents=True, exist_ok=True)

    model = build(a.variant, teacher_state())
    off = [p for n, p in model.named_parameters() if n.split(".")[0] in ("up1", "up2", "up3")]
    rest = [p for n, p in model.named_parameters() if n.split(".")[0] not in ("up1", "up2", "up3")]
    groups = [{"params": rest, "lr": a.lr, "base": a.lr}]
    if off:
        groups.append({"params": off, "lr": a.lr * a.offset_lr_mult, "base": a.lr * a.offset_lr_mult})
    opt = torch.optim.Adam(groups)
    sampler = Sampler(a.seed)
    step, elapsed = 0, 0.0
    ck = out / "ckpt.pt"
    if ck.exists():
        s = torch.load(ck, weights_only=False)
        model.load_state_dict(s["model"]); opt.load_state_dict(s["opt"])
        sampler.rng.bit_generator.state = s["rng"]
        step, elapsed = s["step"], s["elapsed"]
        print(f"resumed at step {step} ({elapsed:.0f} s so far)", flush=True)

    def save():
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "rng": sampler.rng.bit_generator.state,
                    "step": step, "elapsed": elapsed, "args": vars(a)}, out / "ckpt.tmp")
        (out / "ckpt.tmp").replace(ck)

    import signal

    def on_term(*_):
        save()
        print(f"SIGTERM: checkpoint at step {step}", flush=True)
        sys.exit(1)
    signal.signal(signal.SIGTERM, on_term)
    model.train()
    log = open(out / "log.txt", "a")
    log.write(f"start/resume at step {step}: {' '.join(sys.argv[1:])}\n")
    t_last = time.time()
    acc = []
    while step < a.steps:
        warm = min(1.0, (step + 1) / 100)
        cos = 0.5 * (1 + math.cos(math.pi * step / a.steps))
        for g in opt.param_groups:
            g["lr"] = g["base"] * warm * cos
        x, y, is_real = sampler.batch(a.batch)
        p = model(x)
        loss, bce, dice = loss_fn(p, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        now = time.time()
        elapsed += now - t_last
        t_last = now
        acc.append((loss.item(), bce.item(), dice.item()))
        if step % 20 == 0 or step == a.steps:
            m = np.mean(acc, 0)
            acc = []
            msg = (f"step {step} loss {m[0]:.4f} bce {m[1]:.4f} dice {m[2]:.4f} "
                   f"lr {opt.param_groups[0]['lr']:.2e} elapsed {elapsed:.0f}s ({elapsed / step:.2f} s/step avg)")
            print(msg, flush=True)
            log.write(msg + "\n"); log.flush()
        if step % a.ckpt_every == 0 or step == a.steps or step == a.stop_at:
            save()
        if step == a.stop_at:
            print(f"stopped at step {step} (--stop-at)", flush=True)
            return
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "final.safetensors"))
    history = [ln.strip() for ln in open(out / "log.txt") if ln.startswith("start/resume")]
    (out / "run.json").write_text(json.dumps({"variant": a.variant, "steps": a.steps, "batch": a.batch,
                                              "history": history,
                                              "seconds": round(elapsed, 1), "args": vars(a),
                                              "command": "python tools/train/seg/train.py " + " ".join(sys.argv[1:])},
                                             indent=1) + "\n")
    print(f"done: {a.steps} steps in {elapsed:.0f} s", flush=True)


if __name__ == "__main__":
    main()
