#!/usr/bin/env python3
"""Exports the trained person-segmentation student and its bilinear twin to models/person-seg/.

    python tools/train/seg/export.py [--runs <cache>/../seg/runs]

Writes model.safetensors (the state_dict), model.onnx (every DySample as one ai.dysample::DySample
node, via tools/python/dysample_export), model_lowered.onnx (`dysample onnx lower`),
bilinear/model.onnx (evaluate.py reads the twin's weights from it), reference/input_{0,1}.npy and
output_{0,1}.npy (PyTorch f32 on the first image of seg-composites and of seg-teacher), and
model.json without metrics (evaluate.py and `dysample eval --write` fill those).

Weights are rounded to float16 values before anything is written (the teacher's weights were
stored as fp16 already); the safetensors files hold them as f16 (lossless), the ONNX files hold
f32 initializers by default; with --f16-onnx the initializers of standard convolutions are
stored as f16 followed by a Cast (computation stays f32, values identical).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE))
from data import WORK  # noqa: E402
from evaluate import load_set  # noqa: E402
from selfie import build  # noqa: E402

OUT = REPO / "models" / "person-seg"
CLI = Path(os.environ.get("DYSAMPLE_CLI", REPO / "target" / "release" / "dysample"))
ORT_LIB = os.environ.get("ORT_LIB", "/work/venv-torch/lib/python3.11/site-packages/onnxruntime/capi/"
                                    "libonnxruntime.so.1.31.1")


def f16_round(sd):
    return {k: (v.half().float() if v.is_floating_point() else v) for k, v in sd.items()}


def load(variant, path):
    from safetensors.torch import load_file
    m = build(variant)
    m.load_state_dict(f16_round(load_file(str(path))), strict=True)
    return m.eval()


def f16_initializers(path: Path):
    """Stores float initializers consumed only by standard Conv/ConvTranspose nodes as f16 + Cast."""
    import onnx
    from onnx import helper, numpy_helper
    proto = onnx.load(str(path))
    g = proto.graph
    users = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    new_init, casts = [], []
    for init in g.initializer:
        us = users.get(init.name, [])
        if init.data_type == onnx.TensorProto.FLOAT and us and all(
                u.domain in ("", "ai.onnx") and u.op_type in ("Conv", "ConvTranspose") for u in us):
            a = numpy_helper.to_array(init)
            assert np.array_equal(a.astype(np.float16).astype(np.float32), a), init.name
            h = numpy_helper.from_array(a.astype(np.float16), init.name + "_f16")
            new_init.append(h)
            casts.append(helper.make_node("Cast", [h.name], [init.name], to=onnx.TensorProto.FLOAT,
                                          name=init.name + "_cast"))
        else:
            new_init.append(init)
    del g.initializer[:]
    g.initializer.extend(new_init)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def cmd_of(runinfo, v):
    """The training command(s) of a run, as resumed (train.py logs each start/resume)."""
    hist = runinfo[v].get("history") or []
    cmds = []
    for h in hist:
        args = h.split(": ", 1)[1].split(" (")[0]
        if "stopped at step" in h:
            args += " --stop-at " + h.split("stopped at step ")[1].split()[0]
        cmds.append("python tools/train/seg/train.py " + args)
    return " && ".join(cmds) if cmds else runinfo[v]["command"]


def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return s.run(None, {"input": x})[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default=str(WORK / "runs"))
    ap.add_argument("--f16-onnx", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from dysample_export import export
    from safetensors.torch import save_file

    runs = Path(a.runs)
    (OUT / "bilinear").mkdir(parents=True, exist_ok=True)
    (OUT / "reference").mkdir(parents=True, exist_ok=True)
    student = load("dysample", runs / "dysample" / "final.safetensors")
    twin = load("bilinear", runs / "bilinear" / "final.safetensors")
    save_file({k: v.half().contiguous() for k, v in student.state_dict().items()}, str(OUT / "model.safetensors"))
    (OUT / "bilinear" / "model.safetensors").unlink(missing_ok=True)  # the twin's weights are in its ONNX
    x0 = torch.zeros(1, 3, 256, 256)
    found = export(student, (x0,), str(OUT / "model.onnx"), input_names=["input"], output_names=["output"])
    export(twin, (x0,), str(OUT / "bilinear" / "model.onnx"), input_names=["input"], output_names=["output"])
    print("DySample layers:", found)
    subprocess.run([str(CLI), "onnx", "lower", str(OUT / "model.onnx"), str(OUT / "model_lowered.onnx")], check=True)
    if a.f16_onnx:
        for p in (OUT / "model.onnx", OUT / "model_lowered.onnx", OUT / "bilinear" / "model.onnx"):
            f16_initializers(p)

    # reference inputs/outputs: first image of each eval set
    refs = []
    for k, s in enumerate(["seg-composites", "seg-teacher"]):
        imgs, _, man = load_set(s)
        x = np.ascontiguousarray(imgs[:1].transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
        with torch.no_grad():
            y = student(torch.from_numpy(x)).numpy()
        np.save(OUT / "reference" / f"input_{k}.npy", x)
        np.save(OUT / "reference" / f"output_{k}.npy", y)
        refs.append(f"{s}/{man['samples'][0]['image']}")
        with torch.no_grad():
            yb = twin(torch.from_numpy(x)).numpy()
        d_low = np.abs(ort_run(OUT / "model_lowered.onnx", x) - y).max()
        d_bil = np.abs(ort_run(OUT / "bilinear" / "model.onnx", x) - yb).max()
        tmp = OUT / "reference" / f".ort_{k}.npy"
        subprocess.run([str(CLI), "onnx", "run", str(OUT / "model.onnx"), "--input", str(OUT / "reference" / f"input_{k}.npy"),
                        "--output", str(tmp), "--threads", "1", "--ort-lib", ORT_LIB], check=True,
                       stdout=subprocess.DEVNULL)
        d_cus = np.abs(np.load(tmp) - y).max()
        tmp.unlink()
        print(f"reference {k} ({refs[-1]}): max|ORT custom op - PyTorch| {d_cus:.2e}, "
              f"max|ORT lowered - PyTorch| {d_low:.2e}, max|ORT bilinear twin - PyTorch twin| {d_bil:.2e}")

    runinfo = {v: json.loads((runs / v / "run.json").read_text()) for v in ("dysample", "bilinear")}
    mj = OUT / "model.json"
    old = json.loads(mj.read_text()) if mj.exists() else {}
    j = {
        "schema": 1,
        "name": "person-seg",
        "task": "segmentation",
        "description": "Person/background segmentation at 256x256: MediaPipe's selfie-segmentation network with its "
                       "three bilinear x2 upsamplers replaced by DySample (lp, 4 groups), fine-tuned by distillation "
                       "and on composites",
        "files": {"onnx": "model.onnx", "onnx_lowered": "model_lowered.onnx", "safetensors": "model.safetensors",
                  "onnx_bilinear": "bilinear/model.onnx"},
        "input": {"name": "input", "layout": "NCHW", "height": 256, "width": 256, "color": "RGB",
                  "resize": "stretch", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
        "output": {"name": "output", "height": 256, "width": 256, "channels": 1, "kind": "probability"},
        "threshold": 0.5,
        "classes": [{"name": "background", "color": [0, 0, 0]}, {"name": "person", "color": [255, 64, 160]}],
        "dysample_layers": found,
        "source": "MediaPipe selfie_segmentation (mediapipe==0.10.21 wheel), fine-tuned",
        "license": "Apache-2.0 (the MediaPipe model and this fine-tune). Training/eval images: scikit-image data "
                   "(BSD-3-Clause), opencv-doc examples/data (Apache-2.0 / BSD-3-Clause per its Debian copyright "
                   "file; Megamind.avi is a film clip redistributed there, used here for research/eval only)",
        "training": {
            "command": "python3 tools/data/fetch.py && python tools/train/seg/port.py convert && "
                       "python tools/train/seg/data.py cache && "
                       + " && ".join(f"({cmd_of(runinfo, v)})" for v in ("dysample", "bilinear"))
                       + " && python tools/train/seg/export.py" + (" --f16-onnx" if a.f16_onnx else ""),
            "seconds": runinfo["dysample"]["seconds"],
            "machine": "2-vCPU x86_64 VM shared with other jobs, torch 1 thread per run; the DySample run and the "
                       f"bilinear twin ran in parallel ({runinfo['dysample']['steps']} steps of batch "
                       f"{runinfo['dysample']['batch']} each; the twin took {runinfo['bilinear']['seconds']:.0f} s)",
        },
        "metrics": old.get("metrics", {}),
    }
    mj.write_text(json.dumps(j, indent=2) + "\n")
    sizes = {str(p.relative_to(OUT)): p.stat().st_size for p in sorted(OUT.rglob("*")) if p.is_file()}
    print(json.dumps(sizes, indent=1), "total", sum(sizes.values()))


if __name__ == "__main__":
    main()
