"""The GEMM floor: the time of the products an explanation needs, taken alone, and reflrp's time as a multiple of it.

    python bench/floor.py                  # every benchmark model this venv builds, float32 and float64, batch 1
    python bench/floor.py --models seed_unet --repeat 1

The torchvision and segmentation-models-pytorch models (ResNet-50, EfficientNet-B0, ConvNeXt-Tiny, the smp U-Net)
need the peers venv (``nox -s bench`` runs this script there when it exists); elsewhere they are skipped, said so.

Every product reflrp takes goes through ``numpy.matmul`` (convolutions per sample and slab, dense layers per
sample).  The script records each call of one explanation (and of one forward pass): the operands' shapes, strides
and dtype, and the output's.  It then replays exactly those products, with the same BLAS in the same process, on
fresh operands of the same layouts (a transposed weight stays a transposed view), back to back: that sum is the
floor, the time the machine needs for the products this explanation is made of, with their own shapes (not the
machine's peak GFLOP/s).  The rest of reflrp's time is everything else (unfolding, elementwise steps, the ledger).
Medians of ``--repeat`` interleaved rounds; writes ``bench/results/floor.md``.
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
from models import MODELS, MODERN, available, imported  # noqa: E402
from suite import RULES, WHOLE, machine, write_table  # noqa: E402

import reflrp  # noqa: E402
from reflrp import targets  # noqa: E402


def _layout(array):
    return array.shape, array.strides, array.dtype


def record(run):
    """The ``numpy.matmul`` calls of ``run()``: a list of (first operand, second operand, output or None)
    layouts."""
    matmul, calls = np.matmul, []

    def recording(a, b, *args, out=None, **kwargs):
        calls.append((_layout(a), _layout(b), None if out is None else _layout(out)))
        return matmul(a, b, *args, out=out, **kwargs)

    np.matmul = recording
    try:
        run()
    finally:
        np.matmul = matmul
    return calls


def _fresh(layout, rng):
    """An array of ``layout``'s shape, strides and dtype over a fresh buffer of random numbers."""
    shape, strides, dtype = layout
    itemsize = np.dtype(dtype).itemsize
    extent = 1 + sum((n - 1) * s // itemsize for n, s in zip(shape, strides) if n > 0)
    buffer = rng.standard_normal(max(extent, 1)).astype(dtype)
    return np.lib.stride_tricks.as_strided(buffer, shape=shape, strides=strides)


def replay(calls, seed=0):
    """A function taking the recorded products back to back on fresh operands (made once, outside the timing)."""
    rng = np.random.default_rng(seed)
    operands = [(_fresh(a, rng), _fresh(b, rng), None if out is None else _fresh(out, rng)) for a, b, out in calls]

    def run():
        for a, b, out in operands:
            if out is None:
                np.matmul(a, b)
            else:
                np.matmul(a, b, out=out)
    return run


def flops(calls):
    """Multiply-adds of the recorded products, times two."""
    total = 0
    for (a_shape, _, _), (b_shape, _, _), _ in calls:
        batch = np.broadcast_shapes(a_shape[:-2], b_shape[:-2]) if len(a_shape) > 2 or len(b_shape) > 2 else ()
        total += 2 * int(np.prod(batch, dtype=np.int64)) * a_shape[-2] * a_shape[-1] * b_shape[-1]
    return total


def median_times(functions, repeat):
    """Median seconds of each function, measured in interleaved rounds (one warm call each first)."""
    for f in functions:
        f()
    times = [[] for _ in functions]
    for _ in range(repeat):
        for k, f in enumerate(functions):
            start = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=["unet128", "vgg16", "unet3d_64", *MODERN])
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "float64"], default=["float32", "float64"])
    parser.add_argument("--rules", nargs="+", choices=list(RULES), default=["Epsilon", "EpsilonPlus"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "floor.md"))
    args = parser.parse_args(argv)
    head = ["model", "dtype", "what", "reflrp ms", "products", "GFLOP", "floor ms", "floor GFLOP/s", "reflrp / floor"]
    rows = []
    print(machine())
    print(" | ".join(head))
    for name in args.models:
        if name in MODERN and not available(name):
            print(f"{name}: skipped (needs torchvision and segmentation-models-pytorch: the peers venv)")
            continue
        for dtype in args.dtypes:
            _, x, graph, index = imported(name, dtype)
            xs = x.numpy()
            cases = [("forward", functools.partial(graph.forward, xs))]
            cases += [(rule, functools.partial(reflrp.explain, graph, xs, targets.Index(index), RULES[rule](),
                                               **WHOLE))
                      for rule in args.rules]
            if WHOLE and len(index) > 1:  # a pixel: its explanation on the receptive cone, and that cone's products
                cases += [(f"{rule}, cone", functools.partial(reflrp.explain, graph, xs, targets.Index(index),
                                                             RULES[rule](), cone=True))
                          for rule in args.rules]
            for what, run in cases:
                calls = record(run)
                ours, floor = median_times([run, replay(calls)], args.repeat)
                work = flops(calls)
                row = [name, dtype, what, f"{ours * 1e3:.1f}", len(calls), f"{work / 1e9:.2f}", f"{floor * 1e3:.1f}",
                       f"{work / floor / 1e9:.0f}", f"{ours / floor:.2f}"]
                rows.append(row)
                print(" | ".join(str(cell) for cell in row), flush=True)
    write_table(args.out, "The GEMM floor",
                "`python bench/floor.py` (batch 1; medians of interleaved rounds). products = numpy.matmul calls of "
                "one forward pass or explanation; floor = the same products replayed back to back on fresh operands "
                "of the same layouts; reflrp / floor = how far the whole computation is from its products alone.",
                head, rows)


if __name__ == "__main__":
    main()
