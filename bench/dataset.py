"""Throughput of explain_dataset: one process, and a dask.distributed LocalCluster with 1 and 2 worker processes.

    python bench/dataset.py [--samples 2048] [--chunk 64]

The seed U-Net (28x28 digits) with EpsilonGammaBox; samples per second, best of --repeat runs.  Workers run with one
kernel thread each (NUMBA_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1), so 2 workers use the 2 cores of this project's
machines the way 1 process with 2 threads would.
"""

from __future__ import annotations

import argparse
import time

import dask
import dask.array as da

import reflrp
from reflrp import composites, targets
from reflrp.digits import make_digits


def rate(run, n, repeat):
    run()  # warm-up: compilation, scattering the model, worker imports
    best = min(_timed(run) for _ in range(repeat))
    return n / best


def _timed(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    model = reflrp.load(reflrp.models.DIGITS_UNET_FILE)
    x = make_digits(args.samples, seed=0)[0]
    rules, target = composites.EpsilonGammaBox(0.0, 1.0), targets.Index((0, 6, 6))

    def local():
        reflrp.explain_dataset(model, x, target, rules, batch_size=args.chunk, progress=False)

    print(f"{args.samples} samples of the seed U-Net, EpsilonGammaBox, chunks of {args.chunk}")
    print(f"  one process (2 kernel threads):   {rate(local, args.samples, args.repeat):8.0f} samples/s")
    env = {"NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    # untrimmed first: a nanny that sets MALLOC_TRIM_THRESHOLD_ leaves it in this process's environment
    for trim, label in ((None, "MALLOC_TRIM_THRESHOLD_ unset"), (65536, "MALLOC_TRIM_THRESHOLD_=65536 (default)")):
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": trim}):
            for workers in (1, 2):
                with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env=env) as cluster, Client(cluster):
                    lazy = reflrp.explain_dataset(model, da.from_array(x, chunks=args.chunk), target, rules)
                    speed = rate(lambda lazy=lazy: lazy.relevance.compute(), args.samples, args.repeat)
                    print(f"  LocalCluster, {workers} worker(s), {label}: {speed:8.0f} samples/s")


if __name__ == "__main__":
    main()
