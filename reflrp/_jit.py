"""The one place where numba compiler options live.

Every kernel in :mod:`reflrp.kernels` is compiled through :func:`jit`: disk cache on, ``fastmath`` off (a
reference engine keeps IEEE rounding), ``nogil`` on.  ``parallel=True`` is only ever used for loops whose
iterations own their output slots, so results do not depend on the thread count.

Threading layer: numba's default ``omp`` layer competes with OpenBLAS's own threads inside one process (a
convolution measured 5x slower here).  Unless the user chose a layer (``NUMBA_THREADING_LAYER``), reflrp
asks numba for its ``workqueue`` layer before any parallel kernel has run.  This affects speed only: the
kernels give the same bits under every layer.
"""

from __future__ import annotations

import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "workqueue"

prange = numba.prange


def jit(parallel: bool = False):
    """Compile a kernel: ``cache=True``, ``fastmath=False``, ``nogil=True``, ``parallel`` as asked."""

    def decorate(function):
        return numba.njit(cache=True, fastmath=False, nogil=True, parallel=parallel)(function)

    return decorate
