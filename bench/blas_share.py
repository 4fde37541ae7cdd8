"""How much of an explanation is spent inside BLAS products: the floor that faster glue cannot go below.

    python bench/blas_share.py                         # the U-Net 128 and VGG-16, float32 and float64, batch 1
    python bench/blas_share.py --models seed_unet --repeat 1

Every product reflrp takes goes through ``numpy.matmul`` (convolutions per sample and slab, dense layers per
sample).  This script times one explanation as it is, then again with ``numpy.matmul`` wrapped by a timer, and
prints the medians: the time inside products and its share of the whole.  Compared with another library's whole
explanation (the Zennit column of ``bench/suite.py``), the products' time says how close to it any
implementation with these products can get (docs/speed.md, "Where the goals stand").
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import MODELS, imported  # noqa: E402
from suite import RULES, WHOLE  # noqa: E402

import reflrp  # noqa: E402
from reflrp import targets  # noqa: E402


def blas_share(explain, repeat):
    """``(whole, inside products)`` median seconds of ``explain()``."""
    matmul = np.matmul
    spent = [0.0]

    def timed_matmul(*args, **kwargs):
        start = time.perf_counter()
        try:
            return matmul(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    explain()
    wholes, insides = [], []
    try:
        for _ in range(repeat):  # interleaved, so both see the same minutes of a noisy machine
            np.matmul = matmul
            start = time.perf_counter()
            explain()
            wholes.append(time.perf_counter() - start)
            np.matmul, spent[0] = timed_matmul, 0.0
            explain()
            insides.append(spent[0])
    finally:
        np.matmul = matmul
    return statistics.median(wholes), statistics.median(insides)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=["unet128", "vgg16"])
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "float64"], default=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print("model | dtype | rules | explanation ms | inside BLAS products ms | share")
    for name in args.models:
        for dtype in args.dtypes:
            _, x, graph, index = imported(name, dtype)
            xs = x.numpy()
            for rule_name, make in RULES.items():
                explain = functools.partial(reflrp.explain, graph, xs, targets.Index(index), make(), **WHOLE)
                whole, inside = blas_share(explain, args.repeat)
                print(f"{name} | {dtype} | {rule_name} | {whole * 1e3:.1f} | {inside * 1e3:.1f} | "
                      f"{inside / whole:.0%}", flush=True)


if __name__ == "__main__":
    main()
