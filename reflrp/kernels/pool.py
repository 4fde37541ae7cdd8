"""Pooling kernels: max, average and adaptive average pooling, each with its exact adjoint.

Every kernel runs over (sample, channel) planes as tasks (see :func:`reflrp._jit.run`): a task owns its output
plane and sums within it in a fixed order, so results do not depend on the thread count or the batch.  All
arithmetic is in the arrays' dtype (float32 sums are float32 sums; docs/conventions.md, "Precision").
"""

from __future__ import annotations

import numpy as np

from reflrp._jit import jit, run


@jit
def _maxpool2d_forward_tasks(x, out, index, kh, kw, sh, sw, ph, pw, first, stop):
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for y in range(oh):
            for xx in range(ow):
                best = -np.inf
                where = -1
                for i in range(kh):
                    iy = y * sh - ph + i
                    if iy < 0 or iy >= h:
                        continue
                    for j in range(kw):
                        ix = xx * sw - pw + j
                        if ix < 0 or ix >= w:
                            continue
                        v = x[b, ch, iy, ix]
                        if where < 0 or v > best:
                            best = v
                            where = iy * w + ix
                out[b, ch, y, xx] = best
                index[b, ch, y, xx] = where


def maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow):
    """Max pooling with implicit -inf padding.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    kh, kw, sh, sw, ph, pw : int
        Kernel size, stride and padding.
    oh, ow : int
        Output height and width.

    Returns
    -------
    out : ndarray of shape (N, C, oh, ow)
    index : ndarray of int64, shape (N, C, oh, ow)
        Flat index ``y * W + x`` of the winner in its input plane: the first maximum in row-major window order.
    """
    n, c = x.shape[0], x.shape[1]
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    index = np.empty((n, c, oh, ow), dtype=np.int64)
    run(_maxpool2d_forward_tasks, n * c, out.size * kh * kw, x, out, index, kh, kw, sh, sw, ph, pw)
    return out, index


@jit
def _maxpool2d_adjoint_tasks(s, x, out, index, grid, kh, kw, sh, sw, ph, pw, split_ties, first, stop):
    c, oh, ow = s.shape[1], s.shape[2], s.shape[3]
    h, w = x.shape[2], x.shape[3]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for y in range(oh):
            for xx in range(ow):
                value = s[b, ch, y, xx]
                if not split_ties:
                    k = index[b, ch, y, xx]
                    grid[b, ch, k // w, k % w] += value
                    continue
                best = out[b, ch, y, xx]
                ties = 0
                for i in range(kh):
                    iy = y * sh - ph + i
                    if iy < 0 or iy >= h:
                        continue
                    for j in range(kw):
                        ix = xx * sw - pw + j
                        if ix >= 0 and ix < w and x[b, ch, iy, ix] == best:
                            ties += 1
                share = value / s.dtype.type(ties)
                for i in range(kh):
                    iy = y * sh - ph + i
                    if iy < 0 or iy >= h:
                        continue
                    for j in range(kw):
                        ix = xx * sw - pw + j
                        if ix >= 0 and ix < w and x[b, ch, iy, ix] == best:
                            grid[b, ch, iy, ix] += share


def maxpool2d_adjoint(s, x, out, index, kh, kw, sh, sw, ph, pw, split_ties):
    """Route each window's value to its maximum: the transpose of max pooling at fixed winners.

    Parameters
    ----------
    s : ndarray of shape (N, C, oh, ow)
    x : ndarray of shape (N, C, H, W)
        The forward input (used only when ``split_ties``).
    out, index : ndarray of shape (N, C, oh, ow)
        Output and winner indices of :func:`maxpool2d_forward`.
    split_ties : bool
        False: everything goes to the first maximum.  True: split evenly among all positions equal to the
        maximum.

    Returns
    -------
    ndarray of shape (N, C, H, W)
    """
    n, c = s.shape[0], s.shape[1]
    grid = np.zeros((n, c, x.shape[2], x.shape[3]), dtype=s.dtype)
    work = s.size * (2 * kh * kw if split_ties else 1)
    run(_maxpool2d_adjoint_tasks, n * c, work, s, x, out, index, grid, kh, kw, sh, sw, ph, pw, split_ties)
    return grid


@jit
def _avgpool2d_forward_tasks(x, out, kh, kw, sh, sw, ph, pw, count_include_pad, first, stop):
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for y in range(oh):
            for xx in range(ow):
                acc = x.dtype.type(0)
                count = 0
                for i in range(kh):
                    iy = y * sh - ph + i
                    if iy < 0 or iy >= h:
                        continue
                    for j in range(kw):
                        ix = xx * sw - pw + j
                        if ix >= 0 and ix < w:
                            acc += x[b, ch, iy, ix]
                            count += 1
                # count_include_pad: the window clipped to the padded input (narrower only with ceil_mode)
                divisor = (min(y * sh - ph + kh, h + ph) - (y * sh - ph)) * \
                    (min(xx * sw - pw + kw, w + pw) - (xx * sw - pw)) if count_include_pad else count
                out[b, ch, y, xx] = acc / x.dtype.type(divisor)


def avgpool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad):
    """Average pooling with zero padding (PyTorch's ``AvgPool2d``; with ``ceil_mode``, ``oh`` and ``ow`` count the
    last, partial windows and the divisor of a window that hangs past the padded input is its part inside).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    count_include_pad : bool
        Divide by the window size (True) or by the number of in-bounds positions (False).

    Returns
    -------
    ndarray of shape (N, C, oh, ow)
    """
    n, c = x.shape[0], x.shape[1]
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    run(_avgpool2d_forward_tasks, n * c, out.size * kh * kw, x, out, kh, kw, sh, sw, ph, pw, count_include_pad)
    return out


@jit
def _avgpool2d_adjoint_tasks(s, grid, kh, kw, sh, sw, ph, pw, count_include_pad, first, stop):
    c, oh, ow = s.shape[1], s.shape[2], s.shape[3]
    h, w = grid.shape[2], grid.shape[3]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for y in range(oh):
            for xx in range(ow):
                count = 0
                for i in range(kh):
                    iy = y * sh - ph + i
                    if iy < 0 or iy >= h:
                        continue
                    for j in range(kw):
                        ix = xx * sw - pw + j
                        if ix >= 0 and ix < w:
                            count += 1
                # count_include_pad: the window clipped to the padded input (narrower only with ceil_mode)
                divisor = (min(y * sh - ph + kh, h + ph) - (y * sh - ph)) * \
                    (min(xx * sw - pw + kw, w + pw) - (xx * sw - pw)) if count_include_pad else count
                share = s[b, ch, y, xx] / s.dtype.type(divisor)
                for i in range(kh):
                    iy = y * sh - ph + i
                    if iy < 0 or iy >= h:
                        continue
                    for j in range(kw):
                        ix = xx * sw - pw + j
                        if ix >= 0 and ix < w:
                            grid[b, ch, iy, ix] += share


def avgpool2d_adjoint(s, h, w, kh, kw, sh, sw, ph, pw, count_include_pad):
    """Exact transpose of :func:`avgpool2d_forward`.

    Parameters
    ----------
    s : ndarray of shape (N, C, oh, ow)
    h, w : int
        Input height and width.

    Returns
    -------
    ndarray of shape (N, C, H, W)
    """
    n, c = s.shape[0], s.shape[1]
    grid = np.zeros((n, c, h, w), dtype=s.dtype)
    run(_avgpool2d_adjoint_tasks, n * c, s.size * kh * kw * 2, s, grid, kh, kw, sh, sw, ph, pw, count_include_pad)
    return grid


@jit
def _adaptive_avgpool2d_forward_tasks(x, out, first, stop):
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for y in range(oh):
            y0 = (y * h) // oh
            y1 = -((-(y + 1) * h) // oh)
            for xx in range(ow):
                x0 = (xx * w) // ow
                x1 = -((-(xx + 1) * w) // ow)
                acc = x.dtype.type(0)
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        acc += x[b, ch, iy, ix]
                out[b, ch, y, xx] = acc / x.dtype.type((y1 - y0) * (x1 - x0))


def adaptive_avgpool2d_forward(x, oh, ow):
    """Adaptive average pooling: output cell (i, j) averages rows floor(i*H/oh) .. ceil((i+1)*H/oh) - 1 and
    the columns alike (PyTorch's windows).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)

    Returns
    -------
    ndarray of shape (N, C, oh, ow)
    """
    n, c = x.shape[0], x.shape[1]
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    run(_adaptive_avgpool2d_forward_tasks, n * c, x.size + out.size, x, out)
    return out


@jit
def _adaptive_avgpool2d_adjoint_tasks(s, grid, first, stop):
    c, oh, ow = s.shape[1], s.shape[2], s.shape[3]
    h, w = grid.shape[2], grid.shape[3]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for y in range(oh):
            y0 = (y * h) // oh
            y1 = -((-(y + 1) * h) // oh)
            for xx in range(ow):
                x0 = (xx * w) // ow
                x1 = -((-(xx + 1) * w) // ow)
                share = s[b, ch, y, xx] / s.dtype.type((y1 - y0) * (x1 - x0))
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        grid[b, ch, iy, ix] += share


def adaptive_avgpool2d_adjoint(s, h, w):
    """Exact transpose of :func:`adaptive_avgpool2d_forward`.

    Parameters
    ----------
    s : ndarray of shape (N, C, oh, ow)
    h, w : int
        Input height and width.

    Returns
    -------
    ndarray of shape (N, C, H, W)
    """
    n, c = s.shape[0], s.shape[1]
    grid = np.zeros((n, c, h, w), dtype=s.dtype)
    run(_adaptive_avgpool2d_adjoint_tasks, n * c, grid.size + s.size, s, grid)
    return grid
