"""Elementwise functions numpy does not have: the Gauss error function, and GELU with it.

Each element is computed on its own by the same code (``math.erf``), so results do not depend on the batch, the
array's length or the thread count.  Tasks are rows of the flattened array (see :func:`reflrp._jit.run`).
"""

from __future__ import annotations

import math

import numpy as np

from reflrp._jit import jit, run

_ROW = 4096


@jit
def _gelu_tasks(x, out, first, stop):
    half = x.dtype.type(0.5)
    one = x.dtype.type(1.0)
    root_half = x.dtype.type(0.7071067811865476)
    for row in range(first, stop):
        for k in range(row * _ROW, min((row + 1) * _ROW, x.size)):
            v = x[k]
            out[k] = half * v * (one + x.dtype.type(math.erf(v * root_half)))


@jit
def _erf_tasks(x, out, first, stop):
    for row in range(first, stop):
        for k in range(row * _ROW, min((row + 1) * _ROW, x.size)):
            out[k] = x.dtype.type(math.erf(x[k]))


def _elementwise(tasks, x):
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    run(tasks, -(-flat.size // _ROW), flat.size * 8, flat, out)
    return out.reshape(x.shape)


def erf(x):
    """The Gauss error function elementwise (``math.erf``; for GELU's derivative).

    Parameters
    ----------
    x : ndarray, float32 or float64

    Returns
    -------
    ndarray shaped like ``x``
    """
    return _elementwise(_erf_tasks, x)


def gelu(x):
    """``x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2)))`` elementwise (PyTorch's ``GELU()``, exact form).

    Parameters
    ----------
    x : ndarray, float32 or float64, C-contiguous

    Returns
    -------
    ndarray shaped like ``x``
    """
    return _elementwise(_gelu_tasks, x)


__all__ = ["erf", "gelu"]
