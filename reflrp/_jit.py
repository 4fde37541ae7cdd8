"""The one place where numba compiler options and kernel threading live.

Compilation (:func:`jit`): ``fastmath`` off (a reference engine keeps IEEE rounding), ``nogil`` on, the disk cache
on (see :mod:`reflrp._cache` for where it goes).  Kernels are compiled *serial*: reflrp never uses numba's
``parallel=True`` and never starts numba's threading layer.

Threading (:func:`run`): a parallel kernel takes a range ``[first, stop)`` of tasks (for example the
(sample, channel) planes of its output) as its two last arguments, and each task writes only its own slots of
the output.  :func:`run` splits the tasks into contiguous parts, hands all parts but the first to a small pool of
reflrp's own threads and runs the first in the calling thread.  Because kernels release the GIL, the parts run
at the same time.  So:

* importing or using reflrp changes no process-wide setting (numba's threading layer stays the caller's choice
  and is never started by reflrp);
* any number of caller threads may explain at once (numba's ``workqueue`` layer aborts the process when two
  threads enter parallel code; reflrp's kernels never enter it);
* idle pool threads sleep on a queue: they do not spin against BLAS's own threads between kernels;
* a task is computed by the same code in the same order however the tasks are split, so results do not depend
  on the thread count.

Thread count: ``NUMBA_NUM_THREADS`` (numba's environment variable, default: the CPU count), capped by the CPUs
this process may run on.  Kernels whose work is too small to pay for a hand-off run in the calling thread.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

try:
    import numba
except ValueError as error:  # numba reads its settings from the environment when it is first imported
    raise ImportError(f"numba refused to start: {error} (reflrp's kernels need numba; check the NUMBA_* environment "
                      f"variables, e.g. NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS')!r} must be a whole "
                      f"number >= 1)") from error

from reflrp._cache import enable_cache

# Below this many inner-loop iterations per part, handing a part to another thread costs more than it saves.
MIN_WORK_PER_PART = 1 << 15


def _thread_count():
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(int(numba.config.NUMBA_NUM_THREADS), available))


THREADS = _thread_count()

_pool_lock = threading.Lock()
_pool = None
_pool_pid = None


def _executor():
    """reflrp's worker threads, created on first use (and again in a forked child, whose threads are gone)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=THREADS - 1, thread_name_prefix="reflrp-kernel")
            _pool_pid = os.getpid()
        return _pool


def jit(function):
    """Compile a kernel: serial, ``nogil=True``, ``fastmath=False``, cached on disk where the user can write."""
    return enable_cache(numba.njit(cache=False, fastmath=False, nogil=True)(function))


def run(kernel, tasks, work, *args):
    """``kernel(*args, first, stop)`` over ``tasks`` tasks, split across threads.

    Parameters
    ----------
    kernel : compiled function
        Takes ``*args`` then the task range ``first, stop``; task ``t`` writes only its own output slots.
    tasks : int
        Number of tasks.
    work : int
        Total inner-loop iterations (decides whether splitting pays).
    """
    parts = min(THREADS, tasks, max(1, work // MIN_WORK_PER_PART))
    if parts <= 1:
        kernel(*args, 0, tasks)
        return
    bounds = [tasks * k // parts for k in range(parts + 1)]
    job = [kernel, args]  # emptied at the end: a part cancelled while queued must not keep the arrays alive
    try:
        pool = _executor()
        futures = [(pool.submit(_part, job, bounds[k], bounds[k + 1]), k) for k in range(1, parts)]
    except RuntimeError:  # the interpreter is shutting down: no new threads; same tasks, same bits
        kernel(*args, 0, tasks)
        return
    try:
        kernel(*args, bounds[0], bounds[1])
        for future, k in futures:
            if future.cancel():  # still queued behind other callers' parts: run it here rather than wait
                kernel(*args, bounds[k], bounds[k + 1])
            else:
                future.result()
    finally:
        job.clear()


def _part(job, first, stop):
    kernel, args = job
    kernel(*args, first, stop)
