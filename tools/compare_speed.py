#!/usr/bin/env python3
"""Side-by-side speed of one DySample layer: PyTorch fp32, onnxruntime, and `dysample bench`.

What it measures
  One DySample layer (default: the paper's reference shape, x2 upsampling of a 256-channel
  120x120 map, batch 1, style lp, groups 4), once without and once with dyscope, timed with
  2 threads in every implementation:
    * PyTorch   tools/dysample_torch.py `DySample`, weights `randomize(layer, 0.3)`, fp32,
                torch.set_num_threads(2), under torch.inference_mode();
    * onnxruntime  the same layer exported with standard ops (torch.onnx.export, dynamo=False,
                opset 17, IR version lowered to 10), CPU provider, intra_op_num_threads=2,
                inter_op_num_threads=1;
    * dysample  `target/release/dysample bench --threads 2 --json` in f32, f16 and int8, layouts
                nchw and nhwc, backend auto (the backend it picked is recorded).
  Only the layer call is timed (no conversions, no process start-up).

  The machine may be noisy, so the implementations are interleaved: every round runs each of
  them for a short burst (warm-up, then timed iterations), in an order rotated from round to
  round. The table reports the median over all timed iterations of all rounds, the p10-p90
  spread, the speed-up against PyTorch fp32 of the same dyscope setting, and the ratio to the
  memory floor: reading the input once and writing the output once (f32: 4 bytes per element,
  f16: 2, int8: 1; the PyTorch and onnxruntime rows use f32) at the copy bandwidth measured here
  with numpy: np.copyto of a 256 MiB array by 1 thread and split between 2 threads (numpy
  releases the GIL), best of several tries before and after the rounds, the faster of the two.

  PyTorch and onnxruntime each run in their own worker process (started with `spawn`, so the
  onnxruntime worker never loads torch), which makes "peak RSS" each implementation's own peak
  (VmHWM), interpreter and libraries included. dysample's peak RSS is that of its bench process.
  Before timing, the onnxruntime output is checked against PyTorch's (max |diff| / max |y| must
  be <= 1e-4); a mismatch is printed and makes the script exit with status 1.

How to run (on your own machine; CI has no PyTorch)
  pip install torch onnx onnxruntime numpy
  cargo build --release -p dysample-cli
  python3 tools/compare_speed.py                       # full run, reference shape, ~2-3 minutes
  python3 tools/compare_speed.py --quick               # fewer rounds and iterations
  python3 tools/compare_speed.py --channels 64 --height 64 --width 64 --scale 4 --style pl --groups 2
  python3 tools/compare_speed.py --json-out speed.json # also save the raw numbers

  Output: a header line (date, CPU, threads, versions, dysample backend), the memory floor, the
  agreement check, then a markdown table on stdout. Progress goes to stderr.
"""
import argparse
import concurrent.futures
import datetime
import json
import multiprocessing as mp
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
import warnings

TOOLS = pathlib.Path(__file__).resolve().parent
REPO = TOOLS.parent
THREADS = 2
SEED = 0
RANDOM_STD = 0.3
CHECK_TOL = 1e-4
PRECISIONS = ("f32", "f16", "int8")
LAYOUTS = ("nchw", "nhwc")
ELEM_BYTES = {"f32": 4, "f16": 2, "int8": 1}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def require(module, what):
    try:
        return __import__(module)
    except ImportError as e:
        sys.exit(
            f"error: tools/compare_speed.py needs {what} ({e}).\n"
            "Install the comparison's Python dependencies with:  pip install torch onnx onnxruntime numpy\n"
            "(This script is for measuring by hand; CI does not run it.)"
        )


def peak_rss_mib():
    """VmHWM of the calling process, in MiB (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def utc_date():
    try:
        return subprocess.run(["date", "-u"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return datetime.datetime.now(datetime.timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y")


def git_rev():
    """Short commit of the checkout the binary was presumably built from, '+dirty' if modified."""
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Worker processes. They are started with `spawn`, so they import only what they use.


def _timed_burst(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return times


def _serve(conn, fn):
    conn.send(("ready", None))
    while True:
        msg = conn.recv()
        if msg[0] == "burst":
            conn.send(("times", _timed_burst(fn, msg[1], msg[2])))
        elif msg[0] == "rss":
            conn.send(("rss", peak_rss_mib()))
        else:
            break


def torch_worker(conn, layer_cfg, state, x):
    import torch

    sys.path.insert(0, str(TOOLS))
    from dysample_torch import DySample

    torch.set_num_threads(THREADS)
    layer = DySample(**layer_cfg).eval()
    layer.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    xt = torch.from_numpy(x)

    def fn():
        with torch.inference_mode():
            layer(xt)

    _serve(conn, fn)


def ort_worker(conn, model_bytes, x):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def fn():
        sess.run(None, {name: x})

    _serve(conn, fn)


class Worker:
    def __init__(self, ctx, target, args):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child,) + args, daemon=True)
        self.proc.start()
        child.close()
        tag, _ = self.conn.recv()
        assert tag == "ready"

    def burst(self, warmup, iters):
        self.conn.send(("burst", warmup, iters))
        return self.conn.recv()[1]

    def rss(self):
        self.conn.send(("rss",))
        return self.conn.recv()[1]

    def stop(self):
        self.conn.send(("stop",))
        self.proc.join(timeout=10)


# ---------------------------------------------------------------------------------------------
# dysample bench


def dysample_bench(exe, shape_flags, precision, layout, warmup, processes):
    """One burst of `dysample bench`: `processes` runs of 3 timed iterations each.

    bench --json reports min, p10, median, p90 and max; with 3 iterations those are exactly the
    three sorted times, so every timed iteration is recovered and pooled like the others."""
    times, rss, backend = [], None, None
    for _ in range(processes):
        cmd = [str(exe), "bench", *shape_flags, "--precision", precision, "--layout", layout,
               "--backend", "auto", "--threads", str(THREADS), "--warmup", str(warmup), "--iters", "3", "--json"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"error: `{' '.join(cmd)}` failed ({r.returncode}):\n{r.stderr.strip()}")
        j = json.loads(r.stdout.strip().splitlines()[-1])
        assert j["iters"] == 3
        times += [j["min_ms"], j["median_ms"], j["max_ms"]]
        if j.get("peak_rss_mib") is not None:
            rss = max(rss or 0.0, j["peak_rss_mib"])
        backend = j["backend"]
    return times, rss, backend


# ---------------------------------------------------------------------------------------------
# Memory floor


def copy_bandwidth(np, mib=256, reps=6):
    """Best (read + written bytes) / s of np.copyto of a `mib` MiB float32 array, done by 1 thread
    and split between THREADS threads (numpy releases the GIL while copying), the two alternating.
    Returns {threads: bytes/s}."""
    n = mib * (1 << 20) // 4
    src = np.ones(n, dtype=np.float32)
    dst = np.zeros(n, dtype=np.float32)  # zeros may be lazily mapped: fault it in before timing
    np.copyto(dst, src)
    best = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=THREADS) as pool:
        for _ in range(reps):
            for k in (1, THREADS):
                bounds = [(i * n // k, (i + 1) * n // k) for i in range(k)]
                t = time.perf_counter()
                list(pool.map(lambda b: np.copyto(dst[b[0]:b[1]], src[b[0]:b[1]]), bounds))
                best[k] = max(best.get(k, 0.0), 2 * src.nbytes / (time.perf_counter() - t))
    return best


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", type=int, default=256)
    ap.add_argument("--height", type=int, default=120)
    ap.add_argument("--width", type=int, default=120)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--style", choices=("lp", "pl"), default="lp")
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="2 rounds of short bursts, to try the script out")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 5, --quick 2)")
    ap.add_argument("--dysample", type=pathlib.Path, help="the dysample binary (default: $CARGO_TARGET_DIR or target/ + release/dysample)")
    ap.add_argument("--json-out", type=pathlib.Path, help="also write every raw number to this JSON file")
    a = ap.parse_args()

    np = require("numpy", "numpy")
    torch = require("torch", "PyTorch")
    onnx = require("onnx", "the onnx package")
    ort = require("onnxruntime", "onnxruntime")
    sys.path.insert(0, str(TOOLS))
    from dysample_torch import DySample, randomize

    exe = a.dysample or pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "dysample"
    if not exe.is_file():
        sys.exit(f"error: no dysample binary at {exe}; build it with `cargo build --release -p dysample-cli` "
                 "(or pass --dysample PATH)")

    rounds = a.rounds or (2 if a.quick else 5)
    warmup = 1 if a.quick else 2
    py_iters = 3 if a.quick else 6  # timed iterations per burst, PyTorch and onnxruntime
    dy_procs = 1 if a.quick else 2  # bench processes per burst, 3 timed iterations each
    torch.set_num_threads(THREADS)

    log(f"measuring copy bandwidth (numpy, 256 MiB, 1 and {THREADS} threads) ...")
    bws = copy_bandwidth(np)

    shape = dict(channels=a.channels, height=a.height, width=a.width)
    n_in = a.channels * a.height * a.width
    n_out = n_in * a.scale * a.scale

    ctx = mp.get_context("spawn")
    workers, checks, settings = {}, {}, (False, True)
    tmp = tempfile.TemporaryDirectory()
    for ds in settings:
        log(f"dyscope={ds}: building the PyTorch layer, exporting to ONNX, checking agreement ...")
        cfg = dict(in_channels=a.channels, scale=a.scale, style=a.style, groups=a.groups, dyscope=ds)
        torch.manual_seed(SEED)
        layer = randomize(DySample(**cfg), RANDOM_STD, generator=torch.Generator().manual_seed(SEED)).eval()
        x = torch.randn(1, a.channels, a.height, a.width, generator=torch.Generator().manual_seed(SEED + 1))
        with torch.inference_mode():
            y_ref = layer(x).numpy()
        path = pathlib.Path(tmp.name) / f"dysample_dyscope{int(ds)}.onnx"
        with warnings.catch_warnings():  # the legacy exporter's deprecation and tracer warnings
            warnings.simplefilter("ignore")
            torch.onnx.export(layer, (x,), str(path), opset_version=17, dynamo=False,
                              input_names=["input"], output_names=["output"])
        model = onnx.load(str(path))
        model.ir_version = 10  # onnxruntime 1.31 rejects the IR version torch writes
        model_bytes = model.SerializeToString()
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = THREADS, 1
        sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
        y_ort = sess.run(None, {"input": x.numpy()})[0]
        rel = float(np.abs(y_ort - y_ref).max() / np.abs(y_ref).max())
        checks[ds] = dict(max_abs_diff_over_max_abs=rel, ok=bool(y_ort.shape == y_ref.shape and rel <= CHECK_TOL),
                          shape=list(y_ref.shape), ops=sorted({n.op_type for n in model.graph.node}))
        del sess, y_ort, y_ref
        state = {k: v.detach().numpy().copy() for k, v in layer.state_dict().items()}
        xn = x.numpy().copy()
        workers[("pytorch", ds)] = Worker(ctx, torch_worker, (cfg, state, xn))
        workers[("onnxruntime", ds)] = Worker(ctx, ort_worker, (model_bytes, xn))

    # Every implementation x setting; rows of the table in this order.
    impls = []
    for ds in settings:
        impls += [("pytorch", "f32", "nchw", ds), ("onnxruntime", "f32", "nchw", ds)]
        impls += [("dysample", p, l, ds) for p in PRECISIONS for l in LAYOUTS]
    res = {k: dict(times=[], rss=None, backend=None) for k in impls}
    shape_flags = ["--channels", str(a.channels), "--height", str(a.height), "--width", str(a.width),
                   "--scale", str(a.scale), "--style", a.style, "--groups", str(a.groups)]

    t0 = time.perf_counter()
    for r in range(rounds):
        log(f"round {r + 1}/{rounds} ({time.perf_counter() - t0:.0f} s so far)")
        order = impls[r * len(impls) // rounds:] + impls[: r * len(impls) // rounds]
        for k in order:
            impl, prec, layout, ds = k
            if impl == "dysample":
                flags = shape_flags + (["--dyscope"] if ds else [])
                times, rss, backend = dysample_bench(exe, flags, prec, layout, warmup, dy_procs)
                res[k]["times"] += times
                res[k]["backend"] = backend
                if rss is not None:
                    res[k]["rss"] = max(res[k]["rss"] or 0.0, rss)
            else:
                res[k]["times"] += workers[(impl, ds)].burst(warmup, py_iters)
    for (impl, ds), w in workers.items():
        res[(impl, "f32", "nchw", ds)]["rss"] = w.rss()
        w.stop()
    tmp.cleanup()
    elapsed = time.perf_counter() - t0

    # Bandwidth again after the rounds (the machine may have been busier before): keep the best.
    for k, v in copy_bandwidth(np).items():
        bws[k] = max(bws[k], v)
    bw = max(bws.values())
    floor_ms = {p: ELEM_BYTES[p] * (n_in + n_out) / bw * 1e3 for p in PRECISIONS}

    # Statistics.
    for k, v in res.items():
        t = np.asarray(v["times"])
        v["median_ms"], v["p10_ms"], v["p90_ms"] = (float(np.percentile(t, q)) for q in (50, 10, 90))
    backends = sorted({v["backend"] for k, v in res.items() if k[0] == "dysample"})

    # Report.
    built = datetime.datetime.fromtimestamp(exe.stat().st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cfg_s = f"C={a.channels} {a.height}x{a.width} x{a.scale} style={a.style} groups={a.groups} batch=1"
    print(f"**DySample speed** — {utc_date()} — CPU: {cpu_model()} ({os.cpu_count()} logical CPUs) — "
          f"threads: {THREADS} — torch {torch.__version__}, onnxruntime {ort.__version__}, "
          f"numpy {np.__version__} — dysample backend: {', '.join(backends)} (binary built {built}, checkout now {git_rev()}) — {cfg_s}")
    print()
    print(f"Memory floor (input read once + output written once) at {bw / 1e9:.1f} GB/s copy bandwidth "
          f"(best numpy copyto of 256 MiB, counting read + written bytes: 1 thread {bws[1] / 1e9:.1f} GB/s, "
          f"{THREADS} threads {bws[THREADS] / 1e9:.1f} GB/s; measured before and after the rounds): "
          + ", ".join(f"{p} {floor_ms[p]:.2f} ms ({ELEM_BYTES[p] * (n_in + n_out) / 1e6:.1f} MB)" for p in PRECISIONS))
    print()
    for ds in settings:
        c = checks[ds]
        print(f"Check, dyscope={'on' if ds else 'off'}: onnxruntime vs PyTorch fp32, max|Δ| / max|y| = "
              f"{c['max_abs_diff_over_max_abs']:.2e} (≤ {CHECK_TOL:g}: {'ok' if c['ok'] else 'MISMATCH'}); "
              f"exported ops: {', '.join(c['ops'])}")
    print()
    print(f"{rounds} interleaved rounds; per round and implementation a burst of {warmup} warm-up + "
          f"{py_iters} timed iterations (dysample: {dy_procs} bench process{'es' if dy_procs > 1 else ''} × ({warmup} warm-up + 3 timed)); "
          f"median and p10–p90 over all timed iterations; timing took {elapsed:.0f} s.")
    print()
    print("| implementation | precision | layout | dyscope | median ms | p10–p90 ms | vs PyTorch fp32 | × memory floor | peak RSS MiB |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for k in impls:
        impl, prec, layout, ds = k
        v = res[k]
        base = res[("pytorch", "f32", "nchw", ds)]["median_ms"]
        name = {"pytorch": "PyTorch", "onnxruntime": "onnxruntime (CPU EP)"}.get(impl, f"dysample ({v['backend']})")
        rss = f"{v['rss']:.0f}" if v["rss"] is not None else "n/a"
        print(f"| {name} | {prec} | {layout} | {'on' if ds else 'off'} | {v['median_ms']:.2f} | "
              f"{v['p10_ms']:.2f}–{v['p90_ms']:.2f} | {base / v['median_ms']:.2f}× | "
              f"{v['median_ms'] / floor_ms[prec]:.1f}× | {rss} |")
    print()
    print("vs PyTorch fp32: speed-up over PyTorch with the same dyscope setting (higher is faster). "
          "× memory floor: median / floor of the row's precision (1× = memory-bound ideal). "
          "Peak RSS: PyTorch and onnxruntime rows are whole worker processes (interpreter and libraries included).")

    if a.json_out:
        out = dict(
            date=utc_date(), cpu=cpu_model(), logical_cpus=os.cpu_count(), threads=THREADS,
            versions=dict(torch=torch.__version__, onnxruntime=ort.__version__, onnx=onnx.__version__,
                          numpy=np.__version__, python=platform.python_version()),
            dysample=str(exe), dysample_built=built, dysample_backends=backends, checkout=git_rev(),
            shape=dict(batch=1, **shape, scale=a.scale, style=a.style, groups=a.groups),
            rounds=rounds, warmup=warmup, py_iters_per_burst=py_iters, dysample_processes_per_burst=dy_procs,
            copy_bandwidth_bytes_per_s={f"threads_{k}": v for k, v in bws.items()}, floor_bandwidth_bytes_per_s=bw,
            memory_floor_ms=floor_ms, checks={("dyscope" if ds else "static"): c for ds, c in checks.items()},
            results=[dict(implementation=k[0], precision=k[1], layout=k[2], dyscope=k[3], **res[k]) for k in impls],
        )
        a.json_out.write_text(json.dumps(out, indent=1) + "\n")
        log(f"wrote {a.json_out}")

    if not all(c["ok"] for c in checks.values()):
        sys.exit("error: onnxruntime and PyTorch outputs disagree (see the Check lines above)")


if __name__ == "__main__":
    main()
