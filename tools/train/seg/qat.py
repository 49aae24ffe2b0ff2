#!/usr/bin/env python3
"""Quantization-aware fine-tuning of the DySample person segmenter for `dysample-calibrate --target cpu`.

    python tools/train/seg/qat.py train --run NAME [--loss task|distill|mixed] [--lr 3e-5] [--steps 300]
    python tools/train/seg/qat.py export --run NAME[,NAME...] [--step N]   # -> models/person-seg/qat/
    python tools/train/seg/qat.py measure                                   # -> models/person-seg/qat/metrics.json

The fake quantization mirrors what the QDQ writer (calibration/src/graph.rs Plan, qdq.rs) does
to the exported ONNX graph of this network:
- weights: Conv per output channel symmetric, ConvTranspose (`segment`) per tensor, both to
  ±63 (`--weight-range reduced`, the cpu default; max|w| / 63, rounded half away from zero as
  the tool does); Conv biases as int32 in the scale w_scale·x_scale; straight-through estimator;
- activations: per-tensor asymmetric uint8 (range widened to include 0, zero point rounded),
  on every input and output of Conv / ConvTranspose / Add / Mul / Sigmoid, a Relu that alone
  follows such a node folded into its quantizer (so the quantizer sees the Relu's output), the
  Pad output in front of each asymmetric-padded Conv, the input of each DySample (whose int8
  output keeps the input's scale and zero point: its output is fake-quantized with them). A
  consumer reads the quantized value when it is itself quantized or its producer is
  (HardSwish and ReduceMean are not quantized ops). The head (the final Sigmoid) and the
  logits feeding only it stay float. Quantize as ONNX Runtime's QuantizeLinear: x / s, half to
  even, clamp; straight-through inside the range, no gradient where it clamps.
- DySample's own arithmetic stays float (the SDK int8 DySample is not where the loss is).
Checked (qat_check.py) against the tool's QDQ model run by ONNX Runtime with graph
optimizations off (Q/DQ as float ops): per-tensor SQNR against float agrees within 1.3 dB at
all 108 quantized tensors (0.5 dB at 90), the largest gaps in the squeeze-excite gates; the
output masks agree with float at 0.904 IoU here against 0.890 there (slightly optimistic).

Ranges (--ranges calib, the default): the tool's own measurement, percentile 0.01 / 99.99 over
all calibration images (models/calib/person-seg) at once on the float model, re-measured every
--recalib-every steps and frozen from --freeze-at on, so that training sees the ranges the tool
will pick. --ranges ema: an EMA (momentum 0.9) of per-batch percentiles of the training batches
instead (first from --init-batches float batches), frozen at --freeze-at.

Data and optimizer follow train.py (half real frames, half composites; Adam; the offset convs at
10x the rate), lr --lr with a 20-step warm-up and cosine decay to 0. Loss BCE + soft Dice
against: --loss task, train.py's targets (the teacher's mask / the pasted alpha); --loss
distill, the output of the float --init model on the same batch (self-distillation: the int8
model learns to reproduce the float one); mixed, their mean.

Validation (every --ckpt-every steps, val.json): the real images behind models/calib/person-seg
are held out of this fine-tuning (teacher-mask IoU of the float and the fake-quantized model,
the latter with ranges re-measured on them as the tool does; agreement with the --init float
model), plus 32 fixed composites drawn with seed 1000 from the training cut-outs and
backgrounds. `export` picks the step by SELECTION below. The eval sets (models/eval/) are
never read here except by `measure`, which only reports. One torch thread. Runs go to
<cache>/../seg/runs/<run>/ (ckpt.pt, resumed by re-running the same command; log.txt, val.json,
step_<N>.safetensors at each validation, run.json).
"""
from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE))
from data import WORK, Sampler, teacher_probs  # noqa: E402
from selfie import build  # noqa: E402
from train import loss_fn  # noqa: E402

CALIB = REPO / "models" / "calib" / "person-seg"
SHIPPED = REPO / "models" / "person-seg" / "model.safetensors"
W_QMAX = 63          # --weight-range reduced
PCT = 0.9999         # --method percentile (99.99)
Q_KINDS = {"conv", "tconv", "add", "mul", "sigmoid"}  # graph.rs CPU_OPS as exported here


def round_away(v: torch.Tensor) -> torch.Tensor:
    """Rust's f32::round (half away from zero), used by the tool for weights, zero points, biases."""
    return torch.sign(v) * torch.floor(v.abs() + 0.5)


def affine(lo: torch.Tensor, hi: torch.Tensor):
    """sdk::quant::affine_from_range, asymmetric; returns (scale, uint8 zero point)."""
    lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
    span = hi - lo
    if float(span) <= 0:
        return torch.tensor(1.0), torch.tensor(128, dtype=torch.int32)
    scale = span / 255.0
    zp = torch.clamp(round_away(-128.0 - lo / scale), -128, 127)
    return scale.float(), (zp + 128).to(torch.int32)


def percentiles(x: torch.Tensor):
    v = x.detach().flatten()
    n = v.numel()
    k = max(1, int(math.ceil((1 - PCT) * n)))
    lo = torch.kthvalue(v, k).values
    hi = torch.kthvalue(v, n - k + 1).values
    return lo, hi


class ActQ(nn.Module):
    """Per-tensor asymmetric uint8 fake quantizer with a percentile observer."""

    def __init__(self):
        super().__init__()
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(0.0))
        self.register_buffer("seen", torch.tensor(0))
        self.observe = True
        self.enabled = True
        self.momentum = 0.9
        self.fixed = None  # (scale, zp) overriding the observer (validation with re-measured ranges)

    def update(self, x):
        lo, hi = percentiles(x)
        if int(self.seen) == 0:
            self.lo.copy_(lo); self.hi.copy_(hi)
        else:
            m = self.momentum
            self.lo.mul_(m).add_((1 - m) * lo); self.hi.mul_(m).add_((1 - m) * hi)
        self.seen += 1

    def params(self):
        return self.fixed if self.fixed is not None else affine(self.lo, self.hi)

    def forward(self, x, params=None):
        if self.observe and params is None:
            self.update(x)
        if not self.enabled:
            return x
        s, z = params if params is not None else self.params()
        return fake_quant(x, s, z.float(), 0.0, 255.0)


def fake_quant(x, s, z, qmin: float, qmax: float):
    """Q → DQ as ONNX Runtime's QuantizeLinear computes it (x / s, rounded half to even,
    clamped), straight-through inside the range, zero gradient where it clamps.
    (torch.fake_quantize_* multiply by 1/s, which rounds some near-ties the other way.)"""
    q = torch.round(x.detach() / s) + z
    inside = (q >= qmin) & (q <= qmax)
    y = (q.clamp(qmin, qmax) - z) * s
    return x * inside + (y - x * inside).detach()


def fq_weight(w: torch.Tensor, per_channel: bool):
    """Symmetric ±63 weights (qdq.rs channel_scales_in / quantize_weight_in: max|w| / 63,
    round half away from zero), straight-through; returns (weight, scales)."""
    wd = w.detach()
    m = wd.abs().flatten(1).amax(1) if per_channel else wd.abs().max().reshape(1)
    s = torch.where(m > 0, m / W_QMAX, torch.ones_like(m))
    sb = s.view(-1, *([1] * (w.dim() - 1))) if per_channel else s
    q = round_away(wd / sb).clamp(-W_QMAX, W_QMAX)
    return w + (q * sb - w).detach(), (s if per_channel else s[0])


class QATSelfie(nn.Module):
    """SelfieSeg (dysample variant) with the QDQ model's fake quantizers."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        ops = base.ops
        self.ops = ops
        out_id = base.output_id
        cons = defaultdict(list)
        prod = {}
        for i, op in enumerate(ops):
            for t in op["in"]:
                cons[t].append(i)
            prod[op["out"]] = i
        head = {i for i, op in enumerate(ops) if op["out"] == out_id}
        qop = {i for i, op in enumerate(ops) if op["op"] in Q_KINDS and i not in head}
        folded = {}  # relu op -> quantized producer
        for i in qop:
            o = ops[i]["out"]
            if o != out_id and len(cons[o]) == 1 and ops[cons[o][0]]["op"] == "relu":
                folded[cons[o][0]] = i
        fold_src = set(folded.values())
        qset = set()
        padq = set()  # quantized ops whose activation input is a Pad node's output
        for i in sorted(qop):
            op = ops[i]
            ins = op["in"][:1] if op["op"] in ("conv", "tconv", "sigmoid") else op["in"]
            for t in ins:
                if op["op"] == "conv" and len(set(op["pad"])) > 1:
                    padq.add(i)
                else:
                    qset.add(t)
            if i in fold_src:
                continue
            o = op["out"]
            if o != out_id and not all(c in head for c in cons[o]):
                qset.add(o)
        for r, p in folded.items():
            qset.add(ops[r]["out"])
        ups = [i for i, op in enumerate(ops) if op["op"] == "up"]
        for i in ups:
            qset.add(ops[i]["in"][0])
        # a tensor's producer, with folded Relus standing for their conv
        qprod = {t: (i in qop or i in folded) for t, i in prod.items()}
        self.qop, self.folded, self.fold_src, self.head, self.padq = qop, folded, fold_src, head, padq
        self.qset, self.qprod, self.ups = qset, qprod, set(ups)
        self.dy_out = {ops[i]["out"]: ops[i]["in"][0] for i in ups}
        self.q = nn.ModuleDict({f"t{t}": ActQ() for t in sorted(qset)})
        self.qpad = nn.ModuleDict({f"pad{i}": ActQ() for i in sorted(padq)})
        self.quant = True
        self.trace = None

    def quantizers(self):
        return list(self.q.values()) + list(self.qpad.values())

    def set_mode(self, quant: bool, observe: bool):
        self.quant = quant
        for q in self.quantizers():
            q.enabled = quant
            q.observe = observe

    def forward(self, x):
        ops, b = self.ops, self.base
        t = {b.input_id: x.contiguous()}
        tq = {}

        def fq(tid):
            if tid not in tq:
                v = t[tid]
                if tid in self.dy_out:  # SDK int8 DySample: output in its input's affine
                    src = self.q[f"t{self.dy_out[tid]}"]
                    tq[tid] = src(v, src.params()) if self.quant else v
                else:
                    tq[tid] = self.q[f"t{tid}"](v)
            return tq[tid]

        def read(tid, i):
            if tid in self.dy_out:
                return fq(tid)
            if tid in self.qset and (i in self.qop or i in self.ups or self.qprod.get(tid, False)):
                return fq(tid)
            return t[tid]

        for i, op in enumerate(ops):
            kind = op["op"]
            if kind == "relu" and i in self.folded:
                # folded: the producer's quantizer is this Relu's (lo = 0 clamps like the Relu)
                y = F.relu(t[op["in"][0]])
                t[op["out"]] = y
                continue
            if i in self.padq:  # the Pad node reads like any unquantized consumer
                tid = op["in"][0]
                a = fq(tid) if tid in self.qset and self.qprod.get(tid, False) else t[tid]
            else:
                a = read(op["in"][0], i)
            if kind in ("conv", "tconv"):
                m = getattr(b, op["name"])
                w, ws = fq_weight(m.weight, per_channel=(kind == "conv")) if self.quant else (m.weight, None)
                bias = m.bias
                if kind == "conv":
                    p = op["pad"]
                    if i in self.padq:
                        a = F.pad(a, (p[2], p[3], p[0], p[1]))
                        a = self.qpad[f"pad{i}"](a)
                        pad = 0
                    else:
                        pad = p[0]
                    if self.quant and bias is not None:
                        qa = self.qpad[f"pad{i}"] if i in self.padq else self.q[f"t{op['in'][0]}"]
                        bs = (ws * qa.params()[0]).detach()
                        bq = (round_away(bias.detach().double() / bs.double()) * bs.double()).float()
                        bias = bias + (bq - bias).detach()
                    y = F.conv2d(a, w, bias, stride=op["stride"], padding=pad, groups=op["groups"])
                else:
                    y = F.conv_transpose2d(a, w, bias, stride=op["stride"])
            elif kind == "relu":
                y = F.relu(a)
            elif kind == "hswish":
                y = F.hardswish(a)
            elif kind == "sigmoid":
                y = torch.sigmoid(a)
            elif kind == "gap":
                y = a.mean(dim=(2, 3), keepdim=True)
            elif kind == "add":
                y = a + read(op["in"][1], i)
            elif kind == "mul":
                y = a * read(op["in"][1], i)
            elif kind == "up":
                y = getattr(b, op["name"])(a)
            else:
                raise ValueError(kind)
            t[op["out"]] = y
        if self.trace is not None:  # debugging: the float and the quantized tensors
            self.trace.update(float=t, quant=tq)
        return t[b.output_id]


# ---------------------------------------------------------------------------------------------
# validation on the calibration images (held out of this fine-tuning)

def calib_set():
    from PIL import Image
    man = json.loads((CALIB / "manifest.json").read_text())
    imgs = np.stack([np.asarray(Image.open(CALIB / s["image"]).convert("RGB")) for s in man["samples"]])
    origins = [s["origin"].split("train.npz:", 1)[1] for s in man["samples"]]
    return imgs, origins


def to_x(imgs):
    return torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float() / 255.0


def iou(p, t):
    P, T = p > 0.5, t > 0.5
    return float((P & T).sum() / max((P | T).sum(), 1))


def measure_ranges(qm: QATSelfie, x: torch.Tensor):
    """(lo, hi) of every quantizer as dysample-calibrate measures them: the percentiles over all
    images at once, on the float model."""
    vals = defaultdict(list)
    qs = dict(qm.q.items()) | dict(qm.qpad.items())
    hooks = {}
    for name, q in qs.items():
        def f(v, params=None, _n=name, _q=q):
            if params is None:
                vals[_n].append(v.detach().flatten())
            return v
        hooks[name] = f
    for n, q in qs.items():
        q.forward = hooks[n]  # an instance attribute over the class's forward
    try:
        with torch.no_grad():
            for i in range(0, len(x), 8):
                qm.quant = False
                qm(x[i:i + 8])
    finally:
        for q in qs.values():
            del q.forward
    return {n: percentiles(torch.cat(v)) for n, v in vals.items()}


def tool_ranges(qm: QATSelfie, x: torch.Tensor):
    return {n: affine(lo, hi) for n, (lo, hi) in measure_ranges(qm, x).items()}


def set_ranges(qm: QATSelfie, x: torch.Tensor):
    """Loads the tool-measured ranges into the quantizers' buffers."""
    r = measure_ranges(qm, x)
    for n, q in (dict(qm.q.items()) | dict(qm.qpad.items())).items():
        if n in r:
            q.lo.copy_(r[n][0]); q.hi.copy_(r[n][1]); q.seen.fill_(1)


def run(qm, x, quant, fixed=None):
    qs = dict(qm.q.items()) | dict(qm.qpad.items())
    qm.set_mode(quant, observe=False)
    for n, q in qs.items():
        q.fixed = fixed.get(n) if fixed else None
    try:
        with torch.no_grad():
            return torch.cat([qm(x[i:i + 8]) for i in range(0, len(x), 8)])[:, 0].numpy()
    finally:
        for q in qs.values():
            q.fixed = None


def validate(qm, x, tgt, init_f32, cx, ct):
    """x, tgt: the calibration images and the teacher's masks; init_f32: the --init float model's
    output on them; cx, ct: fixed composites (training cut-outs and backgrounds, seed 1000) and
    their alphas. The int8 rows use ranges re-measured on x, as the tool measures them."""
    f32 = run(qm, x, False)
    own = run(qm, x, True)
    r = tool_ranges(qm, x)
    tool = run(qm, x, True, r)
    return {"iou_f32": iou(f32, tgt), "iou_int8_train_ranges": iou(own, tgt), "iou_int8_tool_ranges": iou(tool, tgt),
            "agree_int8_tool_vs_f32": iou(tool, f32 > 0.5), "agree_int8_tool_vs_init_f32": iou(tool, init_f32 > 0.5),
            "composites_iou_f32": iou(run(qm, cx, False), ct), "composites_iou_int8_tool_ranges": iou(run(qm, cx, True, r), ct)}


# ---------------------------------------------------------------------------------------------

def load_base(path):
    from safetensors.torch import load_file
    m = build("dysample")
    m.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()}, strict=True)
    return m


def train(a):
    torch.set_num_threads(1)
    out = WORK / "runs" / a.run
    out.mkdir(parents=True, exist_ok=True)
    qm = QATSelfie(load_base(REPO / a.init))
    b = qm.base
    off = [p for n, p in b.named_parameters() if n.split(".")[0] in ("up1", "up2", "up3")]
    rest = [p for n, p in b.named_parameters() if n.split(".")[0] not in ("up1", "up2", "up3")]
    opt = torch.optim.Adam([{"params": rest, "lr": a.lr, "base": a.lr},
                            {"params": off, "lr": a.lr * a.offset_lr_mult, "base": a.lr * a.offset_lr_mult}])
    sampler = Sampler(a.seed)
    # hold the calibration images' sources out of this fine-tuning: they are its validation set
    cimgs, origins = calib_set()
    z = np.load(WORK / "train.npz")
    real_names = [k for k in z.files if k.startswith("real/")]
    held = set(o for o in origins if o.startswith("real/"))
    sampler.real = [r for r, n in zip(sampler.real, real_names) if n not in held]
    bgs_names = [k for k in z.files if k.startswith("bg/")]
    held_bg = set(o for o in origins if o.startswith("bg/"))
    sampler.bgs = [r for r, n in zip(sampler.bgs, bgs_names) if n not in held_bg]
    print(f"held out {len(held)} real images and {len(held_bg)} backgrounds (the calibration set); "
          f"{len(sampler.real)} real, {len(sampler.bgs)} backgrounds left", flush=True)
    fp32 = load_base(REPO / a.init).eval() if a.loss != "task" else None
    vx = to_x(cimgs)
    vt = teacher_probs(cimgs)
    with torch.no_grad():
        v_init = load_base(REPO / a.init).eval()(vx)[:, 0].numpy()
    cs = Sampler(1000)  # fixed validation composites (not drawn by the training stream)
    cs.real = sampler.real
    cs.bgs = sampler.bgs
    cs.p_real = 0.0
    cx, ct, _ = cs.batch(32)
    ct = ct[:, 0].numpy()

    step, elapsed = 0, 0.0
    ck = out / "ckpt.pt"
    vals = json.loads((out / "val.json").read_text()) if (out / "val.json").exists() else []
    if ck.exists():
        s = torch.load(ck, weights_only=False)
        qm.load_state_dict(s["model"]); opt.load_state_dict(s["opt"])
        sampler.rng.bit_generator.state = s["rng"]
        step, elapsed = s["step"], s["elapsed"]
        print(f"resumed at step {step} ({elapsed:.0f} s so far)", flush=True)
    elif a.ranges == "ema":
        # the ranges first from float batches, as the tool measures them on the float model
        qm.set_mode(False, True)
        with torch.no_grad():
            for _ in range(a.init_batches):
                x, _, _ = sampler.batch(a.batch)
                qm(x)
    if not ck.exists():
        if a.ranges == "calib":
            set_ranges(qm, vx)
        v = validate(qm, vx, vt, v_init, cx, ct)
        v["step"] = 0
        vals.append(v)
        print("step 0 validation", json.dumps(v), flush=True)

    def save():
        torch.save({"model": qm.state_dict(), "opt": opt.state_dict(), "rng": sampler.rng.bit_generator.state,
                    "step": step, "elapsed": elapsed, "args": vars(a)}, out / "ckpt.tmp")
        (out / "ckpt.tmp").replace(ck)
        (out / "val.json").write_text(json.dumps(vals, indent=1) + "\n")

    def on_term(*_):
        save()
        print(f"SIGTERM: checkpoint at step {step}", flush=True)
        sys.exit(1)
    signal.signal(signal.SIGTERM, on_term)
    log = open(out / "log.txt", "a")
    log.write(f"start/resume at step {step}: {' '.join(sys.argv[1:])}\n")
    t_last = time.time()
    acc = []
    from safetensors.torch import save_file
    while step < a.steps:
        if a.ranges == "calib" and step < a.freeze_at and step % a.recalib_every == 0 and step > 0:
            set_ranges(qm, vx)
        qm.set_mode(True, a.ranges == "ema" and step < a.freeze_at)
        qm.train()
        warm = min(1.0, (step + 1) / 20)
        cos = 0.5 * (1 + math.cos(math.pi * step / a.steps))
        for g in opt.param_groups:
            g["lr"] = g["base"] * warm * cos
        x, y, _ = sampler.batch(a.batch)
        if fp32 is not None:  # self-distillation: the int8 model learns the shipped float model's output
            with torch.no_grad():
                y = fp32(x) if a.loss == "distill" else 0.5 * (y + fp32(x))
        p = qm(x)
        loss, bce, dice = loss_fn(p, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        now = time.time()
        elapsed += now - t_last
        acc.append((loss.item(), bce.item(), dice.item()))
        if step % 10 == 0 or step == a.steps:
            m = np.mean(acc, 0)
            acc = []
            msg = (f"step {step} loss {m[0]:.4f} bce {m[1]:.4f} dice {m[2]:.4f} lr {opt.param_groups[0]['lr']:.2e} "
                   f"elapsed {elapsed:.0f}s ({elapsed / step:.2f} s/step avg)")
            print(msg, flush=True)
            log.write(msg + "\n"); log.flush()
        if step % a.ckpt_every == 0 or step == a.steps:
            v = validate(qm, vx, vt, v_init, cx, ct)
            v["step"] = step
            vals.append(v)
            msg = f"step {step} validation {json.dumps(v)}"
            print(msg, flush=True)
            log.write(msg + "\n"); log.flush()
            save_file({k: w.detach().contiguous() for k, w in b.state_dict().items()}, str(out / f"step_{step}.safetensors"))
            save()
        t_last = time.time()  # validation time is not training time
    history = [ln.strip() for ln in open(out / "log.txt") if ln.startswith("start/resume")]
    best = max(vals, key=lambda v: v["iou_int8_tool_ranges"])
    (out / "run.json").write_text(json.dumps({
        "steps": a.steps, "batch": a.batch, "seconds": round(elapsed, 1), "s_per_step": round(elapsed / max(step, 1), 2),
        "args": vars(a), "history": history, "best_step_by_validation": best["step"],
        "command": "python tools/train/seg/qat.py " + " ".join(sys.argv[1:])}, indent=1) + "\n")
    print(f"done: {a.steps} steps in {elapsed:.0f} s; best validation step {best['step']}: {json.dumps(best)}", flush=True)


SELECTION = ("the largest min(teacher-mask IoU of the fake-quantized model on the calibration images - that of "
             "the --init float model, composite IoU of the fake-quantized model on the 32 validation composites - that "
             "of the --init float model), over every validated step of the runs given; int8 with ranges re-measured "
             "as the tool does; no eval-set data")


def score(v, v0):
    return min(v["iou_int8_tool_ranges"] - v0["iou_f32"],
               v["composites_iou_int8_tool_ranges"] - v0["composites_iou_f32"])


def export(a):
    """The chosen step, f16-rounded, as models/person-seg/qat/ (export.py's recipe: f16
    safetensors, custom-op ONNX with f16 conv initializers + Cast, the lowered ONNX)."""
    import os
    import subprocess
    sys.path.insert(0, str(REPO / "tools" / "python"))
    from dysample_export import export as onnx_export
    from export import f16_initializers, f16_round, ort_run
    from safetensors.torch import load_file, save_file
    torch.set_num_threads(1)
    cands = []
    for r in a.run.split(","):
        vals = json.loads((WORK / "runs" / r / "val.json").read_text())
        v0 = next(v for v in vals if v["step"] == 0)
        cands += [(score(v, v0), r, v) for v in vals if v["step"] > 0 and (a.step is None or v["step"] == a.step)]
    for sc, r, v in sorted(cands, key=lambda c: c[0]):
        print(f"{r} step {v['step']}: score {sc:+.4f}")
    _, run_name, chosen = max(cands, key=lambda c: c[0])
    step = chosen["step"]
    run_dir = WORK / "runs" / run_name
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    m = build("dysample")
    m.load_state_dict(f16_round(load_file(str(run_dir / f"step_{step}.safetensors"))), strict=True)
    m.eval()
    save_file({k: v.half().contiguous() for k, v in m.state_dict().items()}, str(out / "model.safetensors"))
    found = onnx_export(m, (torch.zeros(1, 3, 256, 256),), str(out / "model.onnx"), input_names=["input"],
                        output_names=["output"])
    cli = Path(os.environ.get("DYSAMPLE_CLI", "/work/target-calib/release/dysample"))
    subprocess.run([str(cli), "onnx", "lower", str(out / "model.onnx"), str(out / "model_lowered.onnx")], check=True)
    for p in (out / "model.onnx", out / "model_lowered.onnx"):
        f16_initializers(p)
    # fidelity on a calibration image (not an eval image)
    cimgs, _ = calib_set()
    x = to_x(cimgs[:1]).numpy()
    with torch.no_grad():
        y = m(torch.from_numpy(x)).numpy()
    d_low = float(np.abs(ort_run(out / "model_lowered.onnx", x) - y).max())
    print(f"max|ORT lowered - PyTorch| on calib image 0: {d_low:.2e}")
    shipped = json.loads((REPO / "models" / "person-seg" / "model.json").read_text())
    old = json.loads((out / "model.json").read_text()) if (out / "model.json").exists() else {}
    prev = json.loads((out / "training.json").read_text()) if (out / "training.json").exists() else {}
    j = {k: v for k, v in shipped.items() if k not in ("metrics", "training")}
    j["name"] = "person-seg-qat"
    j["description"] = ("person-seg (MediaPipe selfie segmentation with DySample upsamplers) after quantization-aware "
                        "fine-tuning for dysample-calibrate --target cpu (±63 per-channel weights, uint8 per-tensor "
                        "activations); float model, to be calibrated like person-seg")
    j["files"] = {"onnx": "model.onnx", "onnx_lowered": "model_lowered.onnx", "safetensors": "model.safetensors"}
    j["dysample_layers"] = found
    j["source"] = "models/person-seg fine-tuned with tools/train/seg/qat.py"
    trains = []
    for r in a.run.split(","):
        rj = WORK / "runs" / r / "run.json"
        hist = json.loads(rj.read_text())["history"] if rj.exists() else []
        trains += ["python tools/train/seg/qat.py " + h.split(": ", 1)[1] for h in hist]
    command = ("DYSAMPLE_DATA=<cache> " + " && ".join(trains)
               + f" && python tools/train/seg/qat.py export --run {a.run}" + (f" --step {a.step}" if a.step is not None else ""))
    j["training"] = {"command": command, "seconds": info.get("seconds"),
                     "machine": "2-vCPU x86_64 VM shared with other jobs, torch 1 thread"}
    # what model.json's schema has no field for
    (out / "training.json").write_text(json.dumps({
        "run": run_name, "step": step, "command": command, "history": info.get("history", []),
        "seconds": info.get("seconds"), "s_per_step": info.get("s_per_step"), "args": info.get("args"),
        "selected_by": SELECTION if a.step is None else f"--step {a.step} given", "candidates": [{"run": r, "step": v["step"], "score": round(sc, 5)}
                                                 for sc, r, v in sorted(cands, key=lambda c: -c[0])],
        "validation": chosen, "validation_step0": next(v for v in json.loads(
            (run_dir / "val.json").read_text()) if v["step"] == 0)}, indent=1) + "\n")
    # the rows of an earlier export belong to other weights: keep them only for the same run and step
    j["metrics"] = old.get("metrics", {}) if (prev.get("run"), prev.get("step")) == (run_name, step) else {}
    (out / "model.json").write_text(json.dumps(j, indent=2) + "\n")
    print(f"exported step {step} -> {out}")


def measure(a):
    """Runs dysample-calibrate --target cpu --no-fusion (the plan the fine-tune simulates) on the
    shipped model and on models/person-seg/qat and writes models/person-seg/qat/metrics.json."""
    import os
    import subprocess
    tool = os.environ.get("DYSAMPLE_CALIBRATE", str(REPO / "target/release/dysample-calibrate"))
    res = {"tool": "dysample-calibrate --target cpu (percentile, --weight-range reduced = ±63, 24 calibration "
                   "samples); IoU/mIoU/boundary F of models/SPEC.md", "models": {}}
    for key, mdir in (("original", "models/person-seg"), ("qat", a.model)):
        out = Path(a.out) / key
        cmd = [tool, "--model", mdir, "--data", "models/calib/person-seg", "--samples", "24", "--method", "percentile",
               "--target", "cpu", "--no-fusion", "--out", str(out), "--threads", "2", "--report",
               "--eval-set", "models/eval/seg-teacher", "--eval-set", "models/eval/seg-composites"]
        t0 = time.time()
        subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        r = json.loads((out / "report.json").read_text())
        rows = defaultdict(dict)
        for e in r["eval"]:
            rows[e["set"]][e["row"]] = {k: round(v, 6) for k, v in e["metrics"].items()}
        res["models"][key] = {"command": " ".join(cmd), "seconds": round(time.time() - t0, 1), "eval": rows,
                              "calibration_agreement_drop": r["agreement_drop"]["all_int8"],
                              "output_sqnr_db": r["output_sqnr_db"]}
    o, q = res["models"]["original"]["eval"], res["models"]["qat"]["eval"]
    res["summary"] = {s: {"original_fp32": o[s]["fp32"]["iou"], "original_int8": o[s]["int8_all"]["iou"],
                          "qat_fp32": q[s]["fp32"]["iou"], "qat_int8": q[s]["int8_all"]["iou"],
                          "qat_int8_minus_original_fp32_pt": round(100 * (q[s]["int8_all"]["iou"] - o[s]["fp32"]["iou"]), 2),
                          "qat_int8_minus_qat_fp32_pt": round(100 * (q[s]["int8_all"]["iou"] - q[s]["fp32"]["iou"]), 2)}
                      for s in o}
    dst = Path(a.metrics)
    dst.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res["summary"], indent=1))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--run", default="qat")
    t.add_argument("--init", default=str(SHIPPED.relative_to(REPO)))
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=3e-5)
    t.add_argument("--offset-lr-mult", type=float, default=10.0)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--freeze-at", type=int, default=100)
    t.add_argument("--init-batches", type=int, default=4)
    t.add_argument("--ranges", choices=["calib", "ema"], default="calib",
                   help="calib: the tool's percentile ranges measured on the float model over the calibration "
                        "images, re-measured every --recalib-every steps until --freeze-at; ema: EMA of per-batch "
                        "percentiles of the training batches")
    t.add_argument("--recalib-every", type=int, default=25)
    t.add_argument("--loss", choices=["task", "distill", "mixed"], default="task",
                   help="task: train.py's targets (teacher masks / composite alphas); distill: the output of the "
                        "float --init model on the same batch; mixed: the mean of the two targets")
    t.add_argument("--ckpt-every", type=int, default=50)
    e = sub.add_parser("export")
    e.add_argument("--run", default="qat", help="a run, or runs separated by commas: the best validated step of "
                                                 "them all is exported")
    e.add_argument("--step", type=int, default=None, help="default: the best validation step")
    e.add_argument("--out", default=str(REPO / "models" / "person-seg" / "qat"))
    mm = sub.add_parser("measure")
    mm.add_argument("--out", default="/tmp/qat-calib")
    mm.add_argument("--model", default="models/person-seg/qat")
    mm.add_argument("--metrics", default=str(REPO / "models" / "person-seg" / "qat" / "metrics.json"))
    a = ap.parse_args()
    if a.cmd == "train":
        train(a)
    elif a.cmd == "export":
        export(a)
    else:
        measure(a)


if __name__ == "__main__":
    main()
