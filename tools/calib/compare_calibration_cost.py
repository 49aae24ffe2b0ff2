#!/usr/bin/env python3
"""Calibration cost: dysample-calibrate against ONNX Runtime's quantize_static, side by side on
the same model, data and method, for 100 and 1,000 samples: wall time and peak memory (max RSS
of the child process, from /usr/bin/time -v). Not part of CI (minutes of CPU).

    python3 tools/calib/compare_calibration_cost.py [--model models/person-seg] [--counts 100 1000]
        [--methods minmax entropy] [--threads 2]

The samples are the committed calibration images (models/calib/<model>/) repeated with
deterministic changes (flips, shifts, brightness) and stored preprocessed as .npy, so both tools
read identical tensors. Both calibrate the lowered graph (standard ops; plain onnxruntime cannot
load the custom op), per-channel int8 weights, uint8 activations, QDQ.
"""
import argparse, json, os, re, subprocess, sys, tempfile, time
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ORT_SIDE = r'''
import sys, glob, numpy as np, onnx, time
from onnxruntime.quantization import quantize_static, CalibrationDataReader, QuantFormat, QuantType, CalibrationMethod
src, out, data, method = sys.argv[1:5]
files = sorted(glob.glob(data + "/*.npy"))
class R(CalibrationDataReader):
    def __init__(s): s.it = iter(files)
    def get_next(s):
        f = next(s.it, None)
        return None if f is None else {"input": np.load(f)}
m = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}[method]
quantize_static(src, out, R(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=m)
'''


def peak_and_time(cmd, env=None):
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    return dt, rss / 1024


def make_samples(src_dir, n, out, h, w):
    from PIL import Image
    imgs = sorted(f for f in os.listdir(src_dir) if f.endswith(".jpg"))
    rng = np.random.default_rng(0)
    for k in range(n):
        im = np.asarray(Image.open(os.path.join(src_dir, imgs[k % len(imgs)])).convert("RGB").resize((w, h)), dtype=np.float32) / 255
        if (k // len(imgs)) % 2:
            im = im[:, ::-1]
        im = np.roll(im, int(rng.integers(-8, 9)), axis=1)
        im = np.clip(im * rng.uniform(0.8, 1.2), 0, 1)
        np.save(os.path.join(out, f"{k:05d}.npy"), np.ascontiguousarray(im.transpose(2, 0, 1)[None]).astype(np.float32))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/person-seg")
    ap.add_argument("--counts", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--methods", nargs="+", default=["minmax", "entropy"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "dysample-calibrate"))
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args()
    mdir = os.path.join(ROOT, a.model)
    mj = json.load(open(os.path.join(mdir, "model.json")))
    h, w = mj["input"]["height"], mj["input"]["width"]
    name = os.path.basename(mdir.rstrip("/"))
    lowered = os.path.join(mdir, mj["files"]["onnx_lowered"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # ORT's quantizer wants IR <= 10 and weights as initializers; give it the same graph
        # dysample-calibrate sees (f16 weights + Cast folded into f32 initializers).
        import onnx
        from onnx import numpy_helper
        m = onnx.load(lowered)
        inits = {i.name: i for i in m.graph.initializer}
        keep = []
        for n in m.graph.node:
            if n.op_type == "Cast" and n.input[0] in inits:
                m.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(inits[n.input[0]]).astype(np.float32), n.output[0]))
            else:
                keep.append(n)
        del m.graph.node[:]
        m.graph.node.extend(keep)
        m.ir_version = 10
        src = os.path.join(tmp, "model_f32.onnx")
        onnx.save(m, src)
        for n in a.counts:
            data = os.path.join(tmp, f"data{n}")
            os.makedirs(data)
            make_samples(os.path.join(ROOT, "models", "calib", name), n, data, h, w)
            for method in a.methods:
                out = os.path.join(tmp, f"ours_{n}_{method}")
                dt, rss = peak_and_time([a.bin, "--model", src, "--model-json", os.path.join(mdir, "model.json"), "--data", data,
                                         "--method", method, "--target", "cpu", "--out", out, "--threads", str(a.threads), "--quiet"])
                rows.append(("dysample-calibrate", method, n, dt, rss))
                env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
                dt, rss = peak_and_time([a.python, "-c", ORT_SIDE, src, os.path.join(tmp, f"ort_{n}_{method}.onnx"), data, method], env=env)
                rows.append(("onnxruntime quantize_static", method, n, dt, rss))
                print(rows[-2], rows[-1], flush=True)
    print(f"\nmodel {a.model} (lowered graph), {a.threads} threads\n")
    print("| tool | method | samples | seconds | peak RSS MiB |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.1f} | {r[4]:.0f} |")


if __name__ == "__main__":
    main()
