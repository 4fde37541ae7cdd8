"""The ledger's per-sample sums in float64, split across threads, in numpy's summation order.

``np.sum(x.reshape(n, -1), axis=1, dtype=np.float64)`` is what the ledger has always been made of, and its bits
are in the stored digests.  numpy computes it in one thread, and for float32 it first casts each row to float64
in buffers of 8192 elements; on an EfficientNet at batch 16 these sums took an eighth of an explanation.  The
kernels here compute the same numbers by the same operations in the same order (tests check them against a
slow twin and the stored digests), with the pieces of each row summed in parallel:

* **pairwise summation** (numpy's ``pairwise_sum``): fewer than 8 values are added one by one starting from 0;
  up to 128 values go to 8 running sums, combined as ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))``, then the
  values past the last multiple of 8 are added one by one; longer runs split into halves (the first a multiple of
  8 long) summed the same way and added;
* **float64 rows** are one pairwise sum each, added to 0;
* **float32 rows** are cast and summed in pieces of 8192 values (numpy's buffer size), each piece a pairwise sum,
  added one after the other to 0.

Tasks are (row, piece) pairs, each writing its own partial sum; then each row's partials are combined in the
order above, so the result depends neither on the thread count nor on the other rows.  Arrays of fewer than
:data:`_SMALL` values are summed by numpy itself, which is as quick there: the same numbers either way.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from reflrp._jit import jit, run
from reflrp.kernels.fused import as_rows, sample_rows

_PIECE = 8192  # numpy's default buffer size: a float32 row is cast and summed this many values at a time
_UNROLLED = 128  # numpy's PW_BLOCKSIZE: runs up to this long use 8 running sums
# Below this many values numpy's own sum (one thread, SIMD) is as quick as the kernels (measured on ConvNeXt-Tiny at
# batch 1 and a small ViT); the kernels pay on large batches, where their fused sums save whole passes.  Both give
# the same bits.
_SMALL = 1 << 21


@jit
def _run(v, start, n):
    """numpy's sum of a run of at most 128 values ``v[start:start + n]``, each cast to float64: one by one from 0
    below 8 values, else 8 running sums combined pairwise and the rest added one by one."""
    if n < 8:
        total = 0.0
        for k in range(start, start + n):
            total += np.float64(v[k])
        return total
    r0, r1, r2, r3 = np.float64(v[start]), np.float64(v[start + 1]), np.float64(v[start + 2]), \
        np.float64(v[start + 3])
    r4, r5, r6, r7 = np.float64(v[start + 4]), np.float64(v[start + 5]), np.float64(v[start + 6]), \
        np.float64(v[start + 7])
    end = start + n - n % 8
    for k in range(start + 8, end, 8):
        r0 += np.float64(v[k])
        r1 += np.float64(v[k + 1])
        r2 += np.float64(v[k + 2])
        r3 += np.float64(v[k + 3])
        r4 += np.float64(v[k + 4])
        r5 += np.float64(v[k + 5])
        r6 += np.float64(v[k + 6])
        r7 += np.float64(v[k + 7])
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for k in range(end, start + n):
        total += np.float64(v[k])
    return total


@jit
def _tree(v, n, leaf, pieces):
    """The pairwise tree over ``n`` values: halves (the first a multiple of 8 long) until nodes of at most
    ``leaf`` values, each node the sum of its halves.  A leaf is :func:`_run` of ``v[start:start + size]``, or
    with ``pieces`` the next entry of ``v`` (leaves in order).  Evaluated with an explicit stack: numba cannot
    load recursive functions from its cache."""
    if n <= leaf:
        return v[0] if pieces else _run(v, 0, n)
    starts, sizes = np.empty(128, dtype=np.int64), np.empty(128, dtype=np.int64)
    opened = np.zeros(128, dtype=np.bool_)
    sums = np.empty(128, dtype=np.float64)
    depth, count, position = 1, 0, 0
    starts[0], sizes[0] = 0, n
    while depth:
        top = depth - 1
        size = sizes[top]
        if size <= leaf:  # a leaf: its sum on the value stack
            sums[count] = v[position] if pieces else _run(v, starts[top], size)
            position += 1
            count += 1
            depth -= 1
        elif opened[top]:  # both halves done: their sum replaces them
            sums[count - 2] = sums[count - 2] + sums[count - 1]
            count -= 1
            opened[top] = False
            depth -= 1
        else:  # split: the second half below the first on the stack, so the first is done first
            half = size // 2
            half -= half % 8
            opened[top] = True
            starts[depth], sizes[depth] = starts[top] + half, size - half
            starts[depth + 1], sizes[depth + 1] = starts[top], half
            opened[depth] = opened[depth + 1] = False
            depth += 2
    return sums[0]


# What a piece task sums: a row of ``a``; ``a - b[sample] * c`` (the stabilizer's residual); ``a * b[0]`` (a row
# scaled element by element: the bias's share).  Each value is computed in the arrays' dtype, then cast.
PLAIN, RESIDUAL, SCALED = 0, 1, 2


@jit
def _all_zero(x):
    """Whether every value of ``x`` is 0 (it stops at the first that is not)."""
    for k in range(len(x)):
        if x[k] != 0:
            return False
    return True


@jit
def _all_finite(x):
    for k in range(len(x)):
        if x[k] - x[k] != 0:  # NaN for an infinity or a NaN
            return False
    return True


@jit
def _piece_tasks(mode, a, b, c, sample, starts, lengths, partial, magnitude, first, stop):
    """Tasks are (row, piece) pairs: ``partial[row, piece]`` = the pairwise sum of the piece's values (``mode``)
    as float64, and with ``magnitude`` (two rows of ``partial`` per row of ``a``) ``partial[n + row, piece]``
    that of their absolute values.

    A piece whose values are all zero (``a`` all zero, and for the residual ``c`` too, with ``b`` finite: a
    pixel's relevance far from its receptive field) is given +0 without summing: its exact sum is a zero, and a
    zero of either sign added to a running total leaves every non-zero total as it is, while a zero total becomes
    +0 when added to the first 0 anyway; so no bit of any row's result changes."""
    pieces = len(starts)
    n = a.shape[0]
    values = np.empty(_PIECE, dtype=np.float64)
    for task in range(first, stop):
        row, piece = task // pieces, task % pieces
        start, length = starts[piece], lengths[piece]
        aa = a[row, start:start + length]
        if _all_zero(aa) and (mode != RESIDUAL or (_all_zero(c[row, start:start + length]) and
                                                   _all_finite(b[sample[row], start:start + length]))):
            partial[row, piece] = 0.0
            if magnitude:
                partial[n + row, piece] = 0.0
            continue
        if mode == RESIDUAL:
            bb, cc = b[sample[row], start:start + length], c[row, start:start + length]
            for k in range(length):
                values[k] = aa[k] - bb[k] * cc[k]
        elif mode == SCALED:
            bb = b[0, start:start + length]
            for k in range(length):
                values[k] = aa[k] * bb[k]
        else:  # summed where it lies
            partial[row, piece] = _tree(aa, length, _UNROLLED, False)
            if magnitude:
                for k in range(length):
                    values[k] = abs(np.float64(aa[k]))
                partial[n + row, piece] = _tree(values, length, _UNROLLED, False)
            continue
        partial[row, piece] = _tree(values, length, _UNROLLED, False)
        if magnitude:
            for k in range(length):
                values[k] = abs(values[k])
            partial[n + row, piece] = _tree(values, length, _UNROLLED, False)


@jit
def _totals(partial, size, chained, out):
    """Each row's partials combined: one after the other from 0 (``chained``), or along the pairwise tree."""
    for row in range(partial.shape[0]):
        total = 0.0
        if chained:
            for piece in range(partial.shape[1]):
                total += partial[row, piece]
        else:
            total += _tree(partial[row], size, _PIECE, True)
        out[row] = total


@functools.lru_cache(maxsize=256)
def _pieces(size, chained):
    """``(starts, lengths)`` of the pieces a row of ``size`` values is summed in: consecutive pieces of
    :data:`_PIECE` values (``chained``), or the nodes of the pairwise tree no longer than that, in order."""
    if chained:
        starts = list(range(0, size, _PIECE)) or [0]
        return np.array(starts, dtype=np.int64), np.array([min(_PIECE, size - s) for s in starts], dtype=np.int64)
    found = []

    def walk(start, n):
        if n <= _PIECE:
            found.append((start, n))
            return
        half = n // 2 - (n // 2) % 8
        walk(start, half)
        walk(start + half, n - half)

    walk(0, size)
    return np.array([s for s, _ in found], dtype=np.int64), np.array([n for _, n in found], dtype=np.int64)


def _numpy_sums(values, magnitude=False):
    """What the kernels compute, by numpy itself: below :data:`_SMALL` values it is the quicker of the two."""
    values = values.reshape(len(values), math.prod(values.shape[1:]))
    sums = np.sum(values, axis=1, dtype=np.float64)
    return (sums, np.sum(np.abs(values), axis=1, dtype=np.float64)) if magnitude else sums


def _sums(mode, a, b, c, sample, magnitude=False):
    n, size = a.shape
    chained = a.dtype == np.float32
    starts, lengths = _pieces(size, chained)
    partial = np.empty(((2 if magnitude else 1) * n, len(starts)), dtype=np.float64)
    if n:
        run(_piece_tasks, n * len(starts), n * size, mode, a, b, c, sample, starts, lengths, partial, magnitude)
    out = np.empty(len(partial), dtype=np.float64)
    _totals(partial, size, chained, out)
    return (out[:n], out[n:]) if magnitude else out


def _floats(*arrays):
    """Refuse what is not float32 or float64 (before any kernel reads it)."""
    for x in arrays:
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"the ledger's sums take float32 or float64 arrays, not {x.dtype}")


def row_sums(x, magnitude=False):
    """``np.sum(x.reshape(len(x), -1), axis=1, dtype=np.float64)``, bit for bit; with ``magnitude`` also the
    sums of ``abs(x)`` from the same pass: ``(sums, magnitudes)``.  ``x`` float32 or float64."""
    _floats(x)
    if x.size < _SMALL:
        return _numpy_sums(x, magnitude)
    x = as_rows(x, len(x))
    return _sums(PLAIN, x, x, x, np.zeros(len(x), dtype=np.int64), magnitude)


def residual_sums(r, z, s, sample=None):
    """``row_sums(r - z[sample] * s)`` without the difference as an array (``r`` and ``s`` one row per
    explanation, ``z`` one per sample, all of one dtype)."""
    m = len(r)
    if s.shape != r.shape or z.shape[1:] != r.shape[1:] or not r.dtype == z.dtype == s.dtype:
        raise ValueError(f"r {r.shape} {r.dtype}, z {z.shape} {z.dtype} and s {s.shape} {s.dtype} do not have rows "
                         f"of one shape and dtype")
    _floats(r)
    rows = sample_rows(sample, m, len(z))
    if r.size < _SMALL:
        return _numpy_sums(r - (z if sample is None and len(z) == m else z[rows]) * s)
    return _sums(RESIDUAL, as_rows(r, m), as_rows(z, len(z)), as_rows(s, m), rows)


def scaled_sums(s, factor):
    """``row_sums(s * factor)`` without the product as an array; ``factor`` of ``s``'s dtype, broadcast to one
    row of ``s`` (a bias expanded over a layer's output)."""
    if factor.dtype != s.dtype:
        raise ValueError(f"factor {factor.dtype} and s {s.dtype} differ in dtype")
    _floats(s)
    if s.size < _SMALL:
        return _numpy_sums(s * np.broadcast_to(factor, (1, *s.shape[1:])))
    row = as_rows(np.broadcast_to(factor, (1, *s.shape[1:])), 1)
    s = as_rows(s, len(s))
    return _sums(SCALED, s, row, s, np.zeros(len(s), dtype=np.int64))
