"""Time to first explanation in a fresh process: cold (empty numba cache: every kernel compiles) and warm
(kernels loaded from the disk cache).

    python bench/startup.py [--repeat 3]

Each measurement is a new Python process that imports reflrp, loads the shipped U-Net, and explains one pixel
with EpsilonGammaBox; the wall time of the whole process is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

SCRIPT = """
import reflrp
from reflrp import composites, models, targets
from reflrp.digits import make_digits
model = models.digits_unet()
x, _ = make_digits(1, seed=3)
e = reflrp.explain(model, x, targets.Pixel((0, 5, 5)), composites.EpsilonGammaBox(0.0, 1.0))
assert abs(e.ledger.closure(relative=True)).max() < 1e-12
"""


def run(cache_dir):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", SCRIPT], check=True, env={**os.environ, "NUMBA_CACHE_DIR": cache_dir})
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cold, warm = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(run(cache))
            warm.append(run(cache))
    baseline = [run_plain() for _ in range(args.repeat)]
    for label, times in (("cold (empty numba cache)", cold), ("warm (numba cache on disk)", warm),
                         ("python + numpy + numba import alone", baseline)):
        print(f"{label}: median {statistics.median(times):.2f} s, range {min(times):.2f}-{max(times):.2f} s "
              f"over {args.repeat} runs")


def run_plain():
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import numpy, numba"], check=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
