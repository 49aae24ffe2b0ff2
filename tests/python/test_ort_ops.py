#!/usr/bin/env python3
"""libdysample_ort_ops.so in the Python onnxruntime wheel, against the expected outputs the Rust
path is tested against:

- f32 and f16 single-layer models and the whole network in tests/fixtures/onnx, against their
  PyTorch-made expected .npy (same tolerances as apps/cli/tests/onnx_cli.rs);
- int8 one-node models and QDQ sandwiches, against the SDK's own bytes (written by
  sdk/ort-ops/tests/python.rs into --cases, with a cases.json manifest);
- errors come back as Python exceptions with a one-line message naming the node;
- the DySample nodes run on the CPU EP (ORT's profiler), also from several threads at once.

Run by `cargo test -p dysample-ort-ops` (sdk/ort-ops/tests/python.rs), or by hand:
    python3 tests/python/test_ort_ops.py --lib target/release/libdysample_ort_ops.so \
        --fixtures tests/fixtures/onnx [--cases DIR]
Exit status 0 when every check holds; each failure is printed.
"""

import argparse
import json
import os
import sys
import tempfile
import threading

import numpy as np
import onnxruntime as ort

F32_TOL = 1e-5
F16_TOL = 1e-3
FAILURES = []


def check(cond, what):
    if cond:
        print(f"ok    {what}")
    else:
        print(f"FAIL  {what}")
        FAILURES.append(what)


def session(lib, model, threads=2, profile_dir=None):
    so = ort.SessionOptions()
    so.register_custom_ops_library(lib)
    so.intra_op_num_threads = threads
    so.log_severity_level = 4  # errors come back as exceptions; keep stderr quiet
    if profile_dir:
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(profile_dir, "profile")
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def run(sess, x):
    inp = sess.get_inputs()[0]
    if inp.type == "tensor(float16)":
        x = x.astype(np.float16)
    return sess.run(None, {inp.name: x})[0]


def max_rel(a, b):
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def spinning_entry(lib):
    key = "session.intra_op.allow_spinning"
    so = ort.SessionOptions()
    so.register_custom_ops_library(lib)
    check(so.get_session_config_entry(key) == "0", "registration turns intra-op spinning off")
    so = ort.SessionOptions()
    so.add_session_config_entry(key, "1")
    so.register_custom_ops_library(lib)
    check(so.get_session_config_entry(key) == "1", "a host's own spinning entry is kept")


def float_fixtures(lib, fx):
    for name in ["lp_static", "lp_dyscope", "pl_static", "pl_dyscope"]:
        s = session(lib, os.path.join(fx, f"layer_{name}.onnx"))
        x = np.load(os.path.join(fx, f"layer_{name}_input.npy"))
        want = np.load(os.path.join(fx, f"layer_{name}_expected.npy"))
        y = run(s, x)
        check(y.dtype == np.float32 and y.shape == want.shape, f"f32 {name}: shape {y.shape}")
        d = max_rel(y, want)
        check(d <= F32_TOL, f"f32 {name}: max rel diff {d:.2e} <= {F32_TOL}")
    s = session(lib, os.path.join(fx, "layer_f16.onnx"))
    check(s.get_inputs()[0].type == "tensor(float16)", "f16 model takes float16")
    y = run(s, np.load(os.path.join(fx, "layer_f16_input.npy")))
    want = np.load(os.path.join(fx, "layer_f16_expected.npy"))
    d = max_rel(y, want)
    check(y.dtype == np.float16 and d <= F16_TOL, f"f16 layer: max rel diff {d:.2e} <= {F16_TOL}")
    # The whole network (convs + DySample nodes), at two input sizes.
    s = session(lib, os.path.join(fx, "net.onnx"))
    for suffix in ["", "2"]:
        x = np.load(os.path.join(fx, f"net_input{suffix}.npy"))
        want = np.load(os.path.join(fx, f"net_expected{suffix}.npy"))
        d = max_rel(run(s, x), want)
        check(d <= F32_TOL, f"net{suffix} {x.shape}: max rel diff {d:.2e} <= {F32_TOL}")


def int8_cases(lib, cases):
    with open(os.path.join(cases, "cases.json")) as f:
        manifest = json.load(f)
    for c in manifest["cases"]:
        s = session(lib, os.path.join(cases, c["model"]), threads=c.get("threads", 2))
        x = np.load(os.path.join(cases, c["input"]))
        want = np.load(os.path.join(cases, c["expected"]))
        y = run(s, x)
        if c["kind"] == "int8":
            check(
                y.dtype == np.int8 and x.dtype == np.int8 and np.array_equal(y, want),
                f"int8 {c['name']}: bytes equal the SDK's",
            )
        else:
            same = y.dtype == np.float32 and y.shape == want.shape and np.array_equal(
                y.view(np.uint32), want.view(np.uint32)
            )
            check(same, f"qdq {c['name']}: bits equal the SDK's quantize->int8->dequantize")
    return manifest


def errors(lib, fx, cases_manifest, cases):
    for model, needles in [
        ("bad_attr_scale.onnx", ["DySample node", "'scale'"]),
        ("bad_attr_style.onnx", ["DySample node", "'style'"]),
        ("bad_missing_initializer.onnx", ["DySample node", "initializer"]),
    ]:
        try:
            session(lib, os.path.join(fx, model))
            check(False, f"{model}: refused")
        except Exception as e:  # onnxruntime raises its own exception types
            msg = str(e)
            check(all(n in msg for n in needles) and "\n" not in msg.strip(),
                  f"{model}: one-line error naming the node: {msg.strip()[:160]}")
    for bad in cases_manifest.get("bad", []):
        try:
            session(lib, os.path.join(cases, bad["model"]))
            check(False, f"{bad['model']}: refused")
        except Exception as e:
            msg = str(e)
            check(all(n in msg for n in bad["needles"]) and "\n" not in msg.strip(),
                  f"{bad['model']}: one-line error: {msg.strip()[:160]}")
    # A bad input shape at run time (the model leaves C open): the kernel's error, not a crash.
    for c in cases_manifest.get("open_channels", []):
        s = session(lib, os.path.join(cases, c["model"]))
        x = np.zeros((1, c["channels"] + 1, 4, 4), {"int8": np.int8}.get(c["kind"], np.float32))
        try:
            s.run(None, {s.get_inputs()[0].name: x})
            check(False, f"{c['model']}: wrong channel count refused")
        except Exception as e:
            msg = str(e).strip()
            check("DySample node 'dysample'" in msg and "channels" in msg and "\n" not in msg,
                  f"{c['model']}: wrong channel count at run time: {msg[:160]}")


def placement_and_threads(lib, fx, cases_manifest, cases):
    models = [os.path.join(fx, "layer_lp_dyscope.onnx")]
    models += [os.path.join(cases, c["model"]) for c in cases_manifest["cases"][:2]]
    for model in models:
        with tempfile.TemporaryDirectory() as d:
            s = session(lib, model, profile_dir=d)
            inp = s.get_inputs()[0]
            # Fixed dims as the model says; symbolic ones: batch 2, 5x6.
            shape = [v if isinstance(v, int) else d for v, d in zip(inp.shape, [2, 0, 5, 6])]
            dtype = {"tensor(float)": np.float32, "tensor(int8)": np.int8,
                     "tensor(float16)": np.float16}[inp.type]
            s.run(None, {inp.name: np.ones(shape, dtype)})
            with open(s.end_profiling()) as f:
                events = json.load(f)
            ran = {(e["args"]["op_name"], e["args"]["provider"]) for e in events
                   if e.get("cat") == "Node" and "op_name" in e.get("args", {})}
            check(("DySample", "CPUExecutionProvider") in ran,
                  f"{os.path.basename(model)}: DySample ran on the CPU EP ({sorted(ran)})")
    # Several sessions at once (ORT releases the GIL): they share the library's pool.
    s = session(lib, os.path.join(fx, "net.onnx"))
    x = np.load(os.path.join(fx, "net_input.npy"))
    want = np.load(os.path.join(fx, "net_expected.npy"))
    results = [None] * 4

    def work(i):
        results[i] = max(max_rel(run(s, x), want) for _ in range(5))

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check(all(r is not None and r <= F32_TOL for r in results),
          f"4 threads x 5 runs of net.onnx on one session: max rel diffs {results}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lib", required=True, help="path of libdysample_ort_ops.so")
    ap.add_argument("--fixtures", required=True, help="tests/fixtures/onnx")
    ap.add_argument("--cases", help="int8 cases written by sdk/ort-ops/tests/python.rs")
    a = ap.parse_args()
    lib = os.path.abspath(a.lib)
    print(f"onnxruntime {ort.__version__}, numpy {np.__version__}, library {lib}")
    spinning_entry(lib)
    float_fixtures(lib, a.fixtures)
    manifest = {"cases": []}
    if a.cases:
        manifest = int8_cases(lib, a.cases)
        check(len(manifest["cases"]) > 0, f"{len(manifest['cases'])} int8/qdq cases")
    errors(lib, a.fixtures, manifest, a.cases)
    if a.cases:
        placement_and_threads(lib, a.fixtures, manifest, a.cases)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
