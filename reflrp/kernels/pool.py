"""Pooling kernels: max, average and adaptive average pooling, each with its exact adjoint, in 1, 2 or 3 spatial
axes.

One definition: the loops run over volumes (N, C, D, H, W); a 2-D input is a volume of depth 1 and a 1-D input a
volume of depth and height 1, so every window is visited in the same (depth, row, column) order whatever the
number of axes.  Every kernel runs over (sample, channel) planes as tasks (see :func:`reflrp._jit.run`): a task
owns its output plane and sums within it in a fixed order, so results do not depend on the thread count or the
batch.  All arithmetic is in the arrays' dtype (float32 sums are float32 sums; docs/conventions.md, "Precision").

Sizes, strides and paddings are tuples with one entry per spatial axis.
"""

from __future__ import annotations

import numpy as np

from reflrp._jit import jit, run


def _volume(a):
    """``a`` (N, C, *spatial) as (N, C, D, H, W), a view."""
    return a.reshape(a.shape[:2] + (1,) * (5 - a.ndim) + a.shape[2:])


def _three(values, fill):
    """Per-axis values for 1 to 3 axes as three, the missing leading axes ``fill``."""
    return (fill,) * (3 - len(values)) + tuple(values)


@jit
def _valid(start, k, size):
    """Window taps ``[lo, hi)`` whose position ``start + tap`` is in ``[0, size)``."""
    return max(0, -start), min(k, size - start)


@jit
def _maxpool_forward_tasks(x, out, index, kd, kh, kw, sd, sh, sw, pd, ph, pw, first, stop):
    c, d, h, w = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    od, oh, ow = out.shape[2], out.shape[3], out.shape[4]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for z in range(od):
            zd0, zd1 = _valid(z * sd - pd, kd, d)
            for y in range(oh):
                y0, y1 = _valid(y * sh - ph, kh, h)
                for xx in range(ow):
                    x0, x1 = _valid(xx * sw - pw, kw, w)
                    best = -np.inf
                    where = -1
                    for i in range(zd0, zd1):
                        iz = z * sd - pd + i
                        for j in range(y0, y1):
                            iy = y * sh - ph + j
                            for k in range(x0, x1):
                                ix = xx * sw - pw + k
                                v = x[b, ch, iz, iy, ix]
                                if where < 0 or v > best:
                                    best = v
                                    where = (iz * h + iy) * w + ix
                    out[b, ch, z, y, xx] = best
                    index[b, ch, z, y, xx] = where


def maxpool_forward(x, kernel, stride, padding, out_size):
    """Max pooling with implicit -inf padding.

    Parameters
    ----------
    x : ndarray of shape (N, C, *spatial), 1 to 3 spatial axes
    kernel, stride, padding, out_size : tuple of int, one per spatial axis

    Returns
    -------
    out : ndarray of shape (N, C, *out_size)
    index : ndarray of int64, shape (N, C, *out_size)
        Flat index of the winner in its input plane (volume): the first maximum in row-major window order.
    """
    n, c = x.shape[0], x.shape[1]
    out = np.empty((n, c, *out_size), dtype=x.dtype)
    index = np.empty((n, c, *out_size), dtype=np.int64)
    run(_maxpool_forward_tasks, n * c, out.size * int(np.prod(kernel)), _volume(x), _volume(out), _volume(index),
        *_three(kernel, 1), *_three(stride, 1), *_three(padding, 0))
    return out, index


@jit
def _maxpool_adjoint_tasks(s, x, out, index, grid, kd, kh, kw, sd, sh, sw, pd, ph, pw, split_ties, first, stop):
    c, od, oh, ow = s.shape[1], s.shape[2], s.shape[3], s.shape[4]
    d, h, w = x.shape[2], x.shape[3], x.shape[4]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for z in range(od):
            zd0, zd1 = _valid(z * sd - pd, kd, d)
            for y in range(oh):
                y0, y1 = _valid(y * sh - ph, kh, h)
                for xx in range(ow):
                    value = s[b, ch, z, y, xx]
                    if not split_ties:
                        k = index[b, ch, z, y, xx]
                        grid[b, ch, k // (h * w), (k // w) % h, k % w] += value
                        continue
                    x0, x1 = _valid(xx * sw - pw, kw, w)
                    best = out[b, ch, z, y, xx]
                    ties = 0
                    for i in range(zd0, zd1):
                        for j in range(y0, y1):
                            for k in range(x0, x1):
                                if x[b, ch, z * sd - pd + i, y * sh - ph + j, xx * sw - pw + k] == best:
                                    ties += 1
                    share = value / s.dtype.type(ties)
                    for i in range(zd0, zd1):
                        for j in range(y0, y1):
                            for k in range(x0, x1):
                                iz, iy, ix = z * sd - pd + i, y * sh - ph + j, xx * sw - pw + k
                                if x[b, ch, iz, iy, ix] == best:
                                    grid[b, ch, iz, iy, ix] += share


def maxpool_adjoint(s, x, out, index, kernel, stride, padding, split_ties):
    """Route each window's value to its maximum: the transpose of max pooling at fixed winners.

    Parameters
    ----------
    s : ndarray of shape (N, C, *out_size)
    x : ndarray of shape (N, C, *spatial)
        The forward input (read only when ``split_ties``).
    out, index : ndarray of shape (N, C, *out_size)
        Output and winner indices of :func:`maxpool_forward`.
    split_ties : bool
        False: everything goes to the first maximum.  True: split evenly among all positions equal to the
        maximum.

    Returns
    -------
    ndarray shaped like ``x``
    """
    grid = np.zeros(x.shape, dtype=s.dtype)
    work = s.size * (2 * int(np.prod(kernel)) if split_ties else 1)
    run(_maxpool_adjoint_tasks, s.shape[0] * s.shape[1], work, _volume(s), _volume(x), _volume(out), _volume(index),
        _volume(grid), *_three(kernel, 1), *_three(stride, 1), *_three(padding, 0), split_ties)
    return grid


@jit
def _divisor(z, y, xx, zd0, zd1, y0, y1, x0, x1, kd, kh, kw, sd, sh, sw, pd, ph, pw, d, h, w, count_include_pad):
    """The window's divisor: its size clipped to the padded input (narrower only with ``ceil_mode``), or the
    number of its in-bounds positions."""
    if not count_include_pad:
        return (zd1 - zd0) * (y1 - y0) * (x1 - x0)
    return (min(z * sd - pd + kd, d + pd) - (z * sd - pd)) * (min(y * sh - ph + kh, h + ph) - (y * sh - ph)) * \
        (min(xx * sw - pw + kw, w + pw) - (xx * sw - pw))


@jit
def _avgpool_forward_tasks(x, out, kd, kh, kw, sd, sh, sw, pd, ph, pw, count_include_pad, first, stop):
    c, d, h, w = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    od, oh, ow = out.shape[2], out.shape[3], out.shape[4]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for z in range(od):
            zd0, zd1 = _valid(z * sd - pd, kd, d)
            for y in range(oh):
                y0, y1 = _valid(y * sh - ph, kh, h)
                for xx in range(ow):
                    x0, x1 = _valid(xx * sw - pw, kw, w)
                    acc = x.dtype.type(0)
                    for i in range(zd0, zd1):
                        for j in range(y0, y1):
                            row = x[b, ch, z * sd - pd + i, y * sh - ph + j]
                            for k in range(x0, x1):
                                acc += row[xx * sw - pw + k]
                    divisor = _divisor(z, y, xx, zd0, zd1, y0, y1, x0, x1, kd, kh, kw, sd, sh, sw, pd, ph, pw, d, h, w,
                                       count_include_pad)
                    out[b, ch, z, y, xx] = acc / x.dtype.type(divisor)


def avgpool_forward(x, kernel, stride, padding, out_size, count_include_pad):
    """Average pooling with zero padding (PyTorch's ``AvgPool1d/2d/3d``; with ``ceil_mode``, ``out_size`` counts
    the last, partial windows and the divisor of a window that hangs past the padded input is its part inside).

    Parameters
    ----------
    x : ndarray of shape (N, C, *spatial)
    kernel, stride, padding, out_size : tuple of int, one per spatial axis
    count_include_pad : bool
        Divide by the window size (True) or by the number of in-bounds positions (False).

    Returns
    -------
    ndarray of shape (N, C, *out_size)
    """
    n, c = x.shape[0], x.shape[1]
    out = np.empty((n, c, *out_size), dtype=x.dtype)
    run(_avgpool_forward_tasks, n * c, out.size * int(np.prod(kernel)), _volume(x), _volume(out), *_three(kernel, 1),
        *_three(stride, 1), *_three(padding, 0), count_include_pad)
    return out


@jit
def _avgpool_adjoint_tasks(s, grid, kd, kh, kw, sd, sh, sw, pd, ph, pw, count_include_pad, first, stop):
    c, od, oh, ow = s.shape[1], s.shape[2], s.shape[3], s.shape[4]
    d, h, w = grid.shape[2], grid.shape[3], grid.shape[4]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for z in range(od):
            zd0, zd1 = _valid(z * sd - pd, kd, d)
            for y in range(oh):
                y0, y1 = _valid(y * sh - ph, kh, h)
                for xx in range(ow):
                    x0, x1 = _valid(xx * sw - pw, kw, w)
                    divisor = _divisor(z, y, xx, zd0, zd1, y0, y1, x0, x1, kd, kh, kw, sd, sh, sw, pd, ph, pw, d, h, w,
                                       count_include_pad)
                    share = s[b, ch, z, y, xx] / s.dtype.type(divisor)
                    for i in range(zd0, zd1):
                        for j in range(y0, y1):
                            row = grid[b, ch, z * sd - pd + i, y * sh - ph + j]
                            for k in range(x0, x1):
                                row[xx * sw - pw + k] += share


def avgpool_adjoint(s, in_size, kernel, stride, padding, count_include_pad):
    """Exact transpose of :func:`avgpool_forward`.

    Parameters
    ----------
    s : ndarray of shape (N, C, *out_size)
    in_size : tuple of int
        The input's spatial size.

    Returns
    -------
    ndarray of shape (N, C, *in_size)
    """
    grid = np.zeros((*s.shape[:2], *in_size), dtype=s.dtype)
    run(_avgpool_adjoint_tasks, s.shape[0] * s.shape[1], s.size * int(np.prod(kernel)) * 2, _volume(s),
        _volume(grid), *_three(kernel, 1), *_three(stride, 1), *_three(padding, 0), count_include_pad)
    return grid


@jit
def _cell(i, size, out):
    """PyTorch's adaptive window along one axis: ``floor(i*size/out) .. ceil((i+1)*size/out) - 1``."""
    return (i * size) // out, -((-(i + 1) * size) // out)


@jit
def _adaptive_avgpool_forward_tasks(x, out, first, stop):
    c, d, h, w = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    od, oh, ow = out.shape[2], out.shape[3], out.shape[4]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for z in range(od):
            z0, z1 = _cell(z, d, od)
            for y in range(oh):
                y0, y1 = _cell(y, h, oh)
                for xx in range(ow):
                    x0, x1 = _cell(xx, w, ow)
                    acc = x.dtype.type(0)
                    for iz in range(z0, z1):
                        for iy in range(y0, y1):
                            for ix in range(x0, x1):
                                acc += x[b, ch, iz, iy, ix]
                    out[b, ch, z, y, xx] = acc / x.dtype.type((z1 - z0) * (y1 - y0) * (x1 - x0))


def adaptive_avgpool_forward(x, out_size):
    """Adaptive average pooling: output cell ``i`` along an axis of length ``n`` averages positions
    ``floor(i*n/o) .. ceil((i+1)*n/o) - 1`` (PyTorch's windows), the cell the product of its axes' windows.

    Parameters
    ----------
    x : ndarray of shape (N, C, *spatial)
    out_size : tuple of int, one per spatial axis

    Returns
    -------
    ndarray of shape (N, C, *out_size)
    """
    n, c = x.shape[0], x.shape[1]
    out = np.empty((n, c, *out_size), dtype=x.dtype)
    run(_adaptive_avgpool_forward_tasks, n * c, x.size + out.size, _volume(x), _volume(out))
    return out


@jit
def _adaptive_avgpool_adjoint_tasks(s, grid, first, stop):
    c, od, oh, ow = s.shape[1], s.shape[2], s.shape[3], s.shape[4]
    d, h, w = grid.shape[2], grid.shape[3], grid.shape[4]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for z in range(od):
            z0, z1 = _cell(z, d, od)
            for y in range(oh):
                y0, y1 = _cell(y, h, oh)
                for xx in range(ow):
                    x0, x1 = _cell(xx, w, ow)
                    share = s[b, ch, z, y, xx] / s.dtype.type((z1 - z0) * (y1 - y0) * (x1 - x0))
                    for iz in range(z0, z1):
                        for iy in range(y0, y1):
                            for ix in range(x0, x1):
                                grid[b, ch, iz, iy, ix] += share


def adaptive_avgpool_adjoint(s, in_size):
    """Exact transpose of :func:`adaptive_avgpool_forward`.

    Parameters
    ----------
    s : ndarray of shape (N, C, *out_size)
    in_size : tuple of int
        The input's spatial size.

    Returns
    -------
    ndarray of shape (N, C, *in_size)
    """
    grid = np.zeros((*s.shape[:2], *in_size), dtype=s.dtype)
    run(_adaptive_avgpool_adjoint_tasks, s.shape[0] * s.shape[1], grid.size + s.size, _volume(s), _volume(grid))
    return grid


# -- 2-D names (the layers' first callers, and the tests') -----------------------------------------------------


def maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow):
    """:func:`maxpool_forward` of (N, C, H, W)."""
    return maxpool_forward(x, (kh, kw), (sh, sw), (ph, pw), (oh, ow))


def maxpool2d_adjoint(s, x, out, index, kh, kw, sh, sw, ph, pw, split_ties):
    """:func:`maxpool_adjoint` of (N, C, H, W)."""
    return maxpool_adjoint(s, x, out, index, (kh, kw), (sh, sw), (ph, pw), split_ties)


def avgpool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad):
    """:func:`avgpool_forward` of (N, C, H, W)."""
    return avgpool_forward(x, (kh, kw), (sh, sw), (ph, pw), (oh, ow), count_include_pad)


def avgpool2d_adjoint(s, h, w, kh, kw, sh, sw, ph, pw, count_include_pad):
    """:func:`avgpool_adjoint` of (N, C, H, W)."""
    return avgpool_adjoint(s, (h, w), (kh, kw), (sh, sw), (ph, pw), count_include_pad)


def adaptive_avgpool2d_forward(x, oh, ow):
    """:func:`adaptive_avgpool_forward` of (N, C, H, W)."""
    return adaptive_avgpool_forward(x, (oh, ow))


def adaptive_avgpool2d_adjoint(s, h, w):
    """:func:`adaptive_avgpool_adjoint` of (N, C, H, W)."""
    return adaptive_avgpool_adjoint(s, (h, w))
