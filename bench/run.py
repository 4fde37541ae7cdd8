"""Benchmarks, measured side by side in one run and reported as ratios (never asserted in tests).

    nox -s bench            # or: python bench/run.py [--repeat 5]

Reports which BLAS kernel ran (threadpoolctl): this machine may set OPENBLAS_CORETYPE, which changes BLAS speed.
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
from threadpoolctl import threadpool_info
from timing import timed

import reflrp
from reflrp import composites


def best_of(fn, repeat):
    return timed(fn, repeat)[1]


def conv_cases(repeat):
    rng = np.random.default_rng(0)
    try:
        import torch
    except ImportError:
        torch = None
    print(f"{'case':36s} {'reflrp GFLOP/s':>15s} {'torch GFLOP/s':>14s} {'ratio':>6s}")
    for dtype in (np.float32, np.float64):
        for n, c, o, hw, k in ((8, 64, 64, 56, 3), (32, 16, 32, 28, 3), (4, 128, 128, 28, 3)):
            x = rng.normal(size=(n, c, hw, hw)).astype(dtype)
            w = rng.normal(size=(o, c, k, k)).astype(dtype)
            layer = reflrp.Conv2d(w, padding=k // 2)
            flops = 2 * n * o * hw * hw * c * k * k
            s = np.ones((n, o, hw, hw), dtype)
            ours_f = flops / best_of(partial(layer.linear, [x], w), repeat) / 1e9
            ours_a = flops / best_of(partial(layer.adjoint, s, [x], w), repeat) / 1e9
            line_f = f"conv fwd {np.dtype(dtype).name} n{n} c{c} o{o} {hw}x{hw}"
            line_a = line_f.replace("fwd", "adj")
            if torch is not None:
                tx, tw, ts = (torch.from_numpy(v) for v in (x, w, s))
                conv = partial(torch.nn.functional.conv2d, tx, tw, padding=k // 2)
                grad = partial(torch.nn.grad.conv2d_input, tx.shape, tw, ts, padding=k // 2)
                with torch.no_grad():
                    th_f = flops / best_of(conv, repeat) / 1e9
                    th_a = flops / best_of(grad, repeat) / 1e9
                print(f"{line_f:36s} {ours_f:15.1f} {th_f:14.1f} {ours_f / th_f:6.2f}")
                print(f"{line_a:36s} {ours_a:15.1f} {th_a:14.1f} {ours_a / th_a:6.2f}")
            else:
                print(f"{line_f:36s} {ours_f:15.1f} {'-':>14s}")
                print(f"{line_a:36s} {ours_a:15.1f} {'-':>14s}")


def explain_case(repeat):
    rng = np.random.default_rng(1)
    layers = [reflrp.Conv2d(rng.normal(size=(32, 3, 3, 3)), rng.normal(size=32), padding=1), reflrp.ReLU(),
              reflrp.MaxPool2d(2),
              reflrp.Conv2d(rng.normal(size=(64, 32, 3, 3)) / 10, rng.normal(size=64), padding=1), reflrp.ReLU(),
              reflrp.AdaptiveAvgPool2d(1), reflrp.Flatten(), reflrp.Linear(rng.normal(size=(10, 64)))]
    model = reflrp.Sequential(layers)
    x = rng.uniform(size=(16, 3, 64, 64))
    for name, composite in (("EpsilonPlus", composites.EpsilonPlus()),
                            ("EpsilonGammaBox", composites.EpsilonGammaBox(0.0, 1.0))):
        t = best_of(lambda c=composite: reflrp.explain(model, x, 0, c), repeat)
        forward = best_of(lambda: model(x), repeat)
        print(f"explain {name:16s} 16x3x64x64: {t * 1e3:7.1f} ms = {t / forward:5.1f} forward passes")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            print(f"BLAS: {info.get('internal_api')} {info.get('version')} kernel={info.get('architecture')} "
                  f"threads={info.get('num_threads')}")
    conv_cases(args.repeat)
    explain_case(args.repeat)


if __name__ == "__main__":
    main()
