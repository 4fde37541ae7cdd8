"""The one timing helper of the benchmarks."""

from __future__ import annotations

import statistics
import time


def timed(fn, repeat, warm=True):
    """``(median, min, max)`` seconds of ``fn()`` over ``repeat`` runs, after one warm-up run if ``warm`` (JIT
    compilation and caches)."""
    if warm:
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times)
