"""Kernel and explanation times at 1 and 2 threads, and throughput of concurrent callers.

    python bench/threads.py            # runs itself in fresh processes with NUMBA_NUM_THREADS=1 and 2

Each configuration runs in its own process (thread counts are read when reflrp starts).  Medians of
``--repeat`` runs, milliseconds.  ``--layer omp`` also measures under numba's OpenMP threading layer, which a
caller's process may have chosen (reflrp's kernels do not depend on it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
from timing import timed

import reflrp
from reflrp import composites


def median_ms(fn, repeat):
    return timed(fn, repeat)[0] * 1e3


def cases():
    rng = np.random.default_rng(0)
    found = {}
    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        x = rng.normal(size=(8, 64, 56, 56)).astype(dtype)
        w = rng.normal(size=(64, 64, 3, 3)).astype(dtype)
        conv = reflrp.Conv2d(w, padding=1)
        found[f"conv fwd {name} 8x64x56x56"] = partial(conv.linear, [x], w)
        found[f"conv adj {name} 8x64x56x56"] = partial(conv.adjoint, x, [x], w)
        avg, mx, up = reflrp.AvgPool2d(3, 2, 1), reflrp.MaxPool2d(2), reflrp.Upsample(2, mode="bilinear")
        half = np.ascontiguousarray(x[:, :, ::2, ::2])
        found[f"avgpool fwd+adj {name}"] = lambda avg=avg, x=x: avg.adjoint(avg.forward([x]), [x])
        found[f"maxpool fwd+route {name}"] = lambda mx=mx, x=x: mx.adjoint(mx.forward([x]), [x])
        found[f"upsample fwd+adj {name}"] = lambda up=up, h=half: up.adjoint(up.forward([h]), [h])
    model = reflrp.Sequential([
        reflrp.Conv2d(rng.normal(size=(32, 3, 3, 3)), rng.normal(size=32), padding=1), reflrp.ReLU(),
        reflrp.MaxPool2d(2),
        reflrp.Conv2d(rng.normal(size=(64, 32, 3, 3)) / 10, rng.normal(size=64), padding=1), reflrp.ReLU(),
        reflrp.AdaptiveAvgPool2d(1), reflrp.Flatten(), reflrp.Linear(rng.normal(size=(10, 64))),
    ])
    x = rng.uniform(size=(16, 3, 64, 64))
    found["explain EpsilonPlus 16x3x64x64"] = partial(reflrp.explain, model, x, 0, composites.EpsilonPlus())
    return found, (model, x)


def concurrent_ms(model, x, callers, repeat):
    """Median wall time of ``callers`` threads each explaining the batch once."""
    rule = composites.EpsilonPlus()

    def batch():
        with ThreadPoolExecutor(callers) as pool:
            list(pool.map(lambda _: reflrp.explain(model, x, 0, rule), range(callers)))

    return median_ms(batch, repeat)


def child(repeat, concurrent):
    found, (model, x) = cases()
    result = {name: median_ms(fn, repeat) for name, fn in found.items()}
    if concurrent:
        result["4 concurrent callers, explain"] = concurrent_ms(model, x, 4, repeat)
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--layer", default=None, help="also run under this NUMBA_THREADING_LAYER")
    parser.add_argument("--no-concurrent", action="store_true", help="skip the concurrent callers")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.repeat, not args.no_concurrent)
    configs = [("1 thread", {"NUMBA_NUM_THREADS": "1"}), ("2 threads", {"NUMBA_NUM_THREADS": "2"})]
    if args.layer:
        configs.append((f"2 threads, {args.layer}", {"NUMBA_NUM_THREADS": "2", "NUMBA_THREADING_LAYER": args.layer}))
    results = {}
    for label, env in configs:
        flags = ["--child", "--repeat", str(args.repeat)] + (["--no-concurrent"] if args.no_concurrent else [])
        out = subprocess.run([sys.executable, __file__, *flags],
                             env={**os.environ, **env}, capture_output=True, text=True)
        results[label] = json.loads(out.stdout) if out.returncode == 0 else None
        if out.returncode:
            print(f"{label}: failed ({out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
    names = next(r for r in results.values() if r)
    print(f"{'case (median ms)':34s}" + "".join(f"{label:>20s}" for label in results))
    for name in names:
        cells = "".join(f"{(r or {}).get(name, float('nan')):20.2f}" for r in results.values())
        print(f"{name:34s}{cells}")


if __name__ == "__main__":
    main()
