#!/usr/bin/env python3
"""A/B timing of `dysample bench` binaries, interleaved so the machine's noise hits all alike.

    python3 tools/ab_bench.py ROUNDS "BENCH ARGS" BIN_A BIN_B [...]

Each round runs every binary once (`bench ARGS --iters 15 --json`) in turn; the summary per
binary is the min and the median of its round medians. A "binary" may be a wrapper script (for
example one that adds `--backend avx512`). If /tmp/cpu.lock exists, each run holds it (flock),
so builds started by other jobs through the same lock cannot overlap a measurement.

Example (how the A/B figures in the commit messages were taken):
    cp target/release/dysample /tmp/before   # ... change, rebuild ...
    python3 tools/ab_bench.py 5 "--channels 256 --height 120 --width 120 --scale 2 --style lp \\
        --groups 4 --threads 2 --precision int8 --layout nhwc" /tmp/before target/release/dysample
"""
import fcntl
import json
import os
import statistics
import subprocess
import sys


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    rounds, args, bins = int(sys.argv[1]), sys.argv[2].split(), sys.argv[3:]
    res = {b: [] for b in bins}
    lock_path = "/tmp/cpu.lock"
    for _ in range(rounds):
        for b in bins:
            cmd = [b, "bench", *args, "--iters", "15", "--json"]
            if os.path.exists(lock_path):
                with open(lock_path) as lk:
                    fcntl.flock(lk, fcntl.LOCK_EX)
                    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            else:
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            res[b].append(json.loads(out.strip().splitlines()[-1])["median_ms"])
    for b in bins:
        v = res[b]
        runs = " ".join(f"{x:.2f}" for x in v)
        print(f"{b}: min {min(v):.3f} ms, median {statistics.median(v):.3f} ms  ({runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
