"""LRP's elementwise steps fused into single passes over the arrays, split across threads.

numpy runs ``r / (z + where(z >= 0, eps, -eps))`` as four passes over four arrays, each in one thread; on layers
whose products are cheap (depthwise and 1x1 convolutions, large activations) those passes cost more than the
products.  Each kernel here computes every element by the same IEEE operations, in the same order, as the numpy
expression it replaces (no fastmath, no contraction into fused multiply-adds), so the bits do not change; the
test-suite checks them against the numpy expressions.

Arrays are seen as rows: one row per explanation (``r``, ``s``, ``c``, the result) or per sample (``z``, ``x``);
``sample[m]`` is the sample row of explanation row ``m`` (see :func:`reflrp.steps.rows`).  Tasks are
(row, block of ``_BLOCK`` elements) pairs; each writes only its own block.
"""

from __future__ import annotations

import math

import numpy as np

from reflrp._jit import jit, run

_BLOCK = 1 << 14

#: Stabilizer conventions as the kernels take them (see :mod:`reflrp.stabilize`).
NONE, SIGN, ZERO, PLUS = 0, 1, 2, 3


@jit
def _denominator(v, epsilon, mode):
    """``stabilize(v)``: as :meth:`reflrp.stabilize.Stabilizer.denominator` computes it, in ``v``'s type."""
    if mode == SIGN:
        return v + (epsilon if v >= 0 else -epsilon)
    if mode == ZERO:
        return v + (epsilon if v == 0 else epsilon - epsilon)
    if mode == PLUS:
        return v + epsilon
    return v


@jit
def _block(task, blocks, size):
    """Task ``task``'s row and element range ``[start, stop)`` when each row has ``blocks`` blocks."""
    start = (task % blocks) * _BLOCK
    return task // blocks, start, min(start + _BLOCK, size)


@jit
def _quotient_tasks(r, z, sample, epsilon, mode, s, zeros, first, stop):
    """``s = r / stabilize(z)``, and where the denominator is 0, ``0 / 1`` (+0); ``zeros[task]``: whether the task
    met a zero denominator."""
    size = r.shape[1]
    blocks = (size + _BLOCK - 1) // _BLOCK
    zero, one = s.dtype.type(0), z.dtype.type(1)
    for task in range(first, stop):
        m, start, end = _block(task, blocks, size)
        rr, zz, ss = r[m, start:end], z[sample[m], start:end], s[m, start:end]
        found = 0
        for k in range(end - start):  # over row views, indexed from 0: the loop vectorizes
            d = _denominator(zz[k], epsilon, mode)
            found |= d == 0
            ss[k] = (rr[k] if d != 0 else zero) / (d if d != 0 else one)
        zeros[task] = found != 0


@jit
def _dropped_tasks(r, z, sample, epsilon, mode, dropped, first, stop):
    """``dropped = r`` where the denominator is 0, 0 elsewhere."""
    size = r.shape[1]
    blocks = (size + _BLOCK - 1) // _BLOCK
    for task in range(first, stop):
        m, start, end = _block(task, blocks, size)
        rr, zz, out = r[m, start:end], z[sample[m], start:end], dropped[m, start:end]
        for k in range(end - start):
            out[k] = rr[k] if _denominator(zz[k], epsilon, mode) == 0 else 0


@jit
def _product_tasks(x, c, sample, out, accumulate, plus_zero, first, stop):
    """``out = x * c`` or ``out = out + x * c``, then ``out + 0`` when ``plus_zero`` (-0 becomes +0)."""
    size = c.shape[1]
    blocks = (size + _BLOCK - 1) // _BLOCK
    zero = out.dtype.type(0)
    for task in range(first, stop):
        m, start, end = _block(task, blocks, size)
        xx, cc, oo = x[sample[m], start:end], c[m, start:end], out[m, start:end]
        n = end - start
        if accumulate and plus_zero:
            for k in range(n):
                oo[k] = (oo[k] + xx[k] * cc[k]) + zero
        elif accumulate:
            for k in range(n):
                oo[k] = oo[k] + xx[k] * cc[k]
        elif plus_zero:
            for k in range(n):
                oo[k] = xx[k] * cc[k] + zero
        else:
            for k in range(n):
                oo[k] = xx[k] * cc[k]


@jit
def _signed_parts_tasks(x, positive, negative, first, stop):
    """``positive = max(x, 0)`` and ``negative = min(x, 0)`` as numpy computes them: a zero of either sign gives
    +0, a NaN stays NaN in both."""
    zero = x.dtype.type(0)
    for task in range(first, stop):
        start, end = task * _BLOCK, min((task + 1) * _BLOCK, x.size)
        xx, pp, nn = x[start:end], positive[start:end], negative[start:end]
        for k in range(end - start):
            v = xx[k]
            pp[k] = v if v > 0 or v != v else zero
            nn[k] = v if v < 0 or v != v else zero


@jit
def _finite_tasks(x, largest, finite, first, stop):
    for task in range(first, stop):
        start, end = task * _BLOCK, min((task + 1) * _BLOCK, x.size)
        xx = x[start:end]
        bad = 0
        for k in range(end - start):
            bad |= not abs(xx[k]) <= largest  # false for infinities and NaN
        finite[task] = bad == 0


def as_rows(a, count):
    """``a`` as a C-contiguous (count, size) array (a view when it is contiguous; any count, 0 too)."""
    return np.ascontiguousarray(a).reshape(count, _row_size(a))


def _row_size(a):
    return math.prod(a.shape[1:])


def sample_rows(sample, explanations, samples):
    """The sample row of each explanation row, checked: the kernels index with it unchecked."""
    rows = np.arange(explanations) if sample is None else np.asarray(sample, dtype=np.int64)
    if rows.shape != (explanations,) or (explanations and not 0 <= rows.min() <= rows.max() < samples):
        raise ValueError(f"sample must give one of {samples} sample rows for each of {explanations} explanations")
    return rows


def _tasks(rows, size):
    return rows * -(-size // _BLOCK)


def quotient(r, z, epsilon, mode, sample=None):
    """``s = r / stabilize(z[sample])`` in one pass, and the relevance of units whose denominator is 0.

    Parameters
    ----------
    r : ndarray (M, ...)
        One row per explanation.
    z : ndarray (N, ...)
        One row per sample, each shaped like a row of ``r``.
    epsilon : scalar of ``z``'s dtype
    mode : int
        :data:`NONE` (no stabilizer), :data:`SIGN`, :data:`ZERO` or :data:`PLUS`.
    sample : ndarray of int (M,), optional
        The sample of each explanation (default: explanation ``m`` is sample ``m``).

    Returns
    -------
    s : ndarray shaped like ``r`` (0 where the denominator is 0)
    dropped : ndarray shaped like ``r`` (``r`` where the denominator is 0, else 0), or None when no
        denominator is 0
    """
    m = len(r)
    sample = sample_rows(sample, m, len(z))
    r2, z2 = as_rows(r, m), as_rows(z, len(z))
    if r2.shape[1] != z2.shape[1]:
        raise ValueError(f"rows of r {r.shape[1:]} and z {z.shape[1:]} differ")
    s = np.empty(r2.shape, dtype=np.result_type(r, z))
    tasks = _tasks(m, r2.shape[1])
    zeros = np.zeros(tasks, dtype=np.bool_)
    run(_quotient_tasks, tasks, r2.size, r2, z2, sample, epsilon, mode, s, zeros)
    if not zeros.any():
        return s.reshape(r.shape), None
    dropped = np.empty(r2.shape, dtype=r.dtype)
    run(_dropped_tasks, tasks, r2.size, r2, z2, sample, epsilon, mode, dropped)
    return s.reshape(r.shape), dropped.reshape(r.shape)


def sum_of_products(xs, cs, sample=None, plus_zero=False):
    """``xs[0][sample] * cs[0] + xs[1][sample] * cs[1] + ...``, added left to right (then ``+ 0.0`` when
    ``plus_zero``: -0 becomes +0), one pass per term.

    Parameters
    ----------
    xs : list of ndarray
        One row per sample.
    cs : iterable of ndarray, as many as ``xs``
        One row per explanation, rows shaped like those of ``xs``; taken one at a time (a generator computes
        each only when it is added).
    """
    out = None
    for k, (x, c) in enumerate(zip(xs, cs, strict=True)):
        m = len(c)
        if out is None:
            shape, samples, sample = c.shape, len(x), sample_rows(sample, m, len(x))
            out = np.empty((m, _row_size(c)), dtype=np.result_type(x, c))
        if c.shape != shape or len(x) != samples or _row_size(x) != out.shape[1]:
            raise ValueError(f"term {k}: x {x.shape} and c {c.shape} do not match the first term's rows {shape}")
        run(_product_tasks, _tasks(m, out.shape[1]), out.size, as_rows(x, len(x)), as_rows(c, m), sample, out, k > 0,
            plus_zero and k == len(xs) - 1)
    return out.reshape(shape)


def signed_parts(x):
    """``(max(x, 0), min(x, 0))`` in one pass, bit for bit as ``numpy.maximum(x, 0)`` and
    ``numpy.minimum(x, 0)``."""
    flat = np.ascontiguousarray(x).reshape(-1)
    positive, negative = np.empty_like(flat), np.empty_like(flat)
    run(_signed_parts_tasks, -(-flat.size // _BLOCK), flat.size, flat, positive, negative)
    return positive.reshape(x.shape), negative.reshape(x.shape)


def all_finite(x):
    """Whether no element of ``x`` is infinite or NaN (``numpy.all(numpy.isfinite(x))`` without its temporary)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    tasks = -(-flat.size // _BLOCK)
    finite = np.zeros(tasks, dtype=np.bool_)
    run(_finite_tasks, tasks, flat.size, flat, np.finfo(flat.dtype).max, finite)
    return bool(finite.all())


__all__ = ["NONE", "PLUS", "SIGN", "ZERO", "all_finite", "as_rows", "quotient", "sample_rows", "signed_parts",
           "sum_of_products"]
