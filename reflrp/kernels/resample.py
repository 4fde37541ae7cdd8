"""Separable two-tap resampling (nearest and bilinear upsampling) and its exact adjoint.

Each output row y reads input rows ``row0[y]`` and ``row1[y]`` with weights ``wrow0[y]`` and ``wrow1[y]``
(nearest: the same row twice with weights 1 and 0); columns alike.  The tables are computed by the layer;
the kernels only apply them.  Tasks are (sample, channel) planes (see :func:`reflrp._jit.run`).
"""

from __future__ import annotations

import numpy as np

from reflrp._jit import jit, run


@jit
def _upsample2d_forward_tasks(x, out, row0, row1, wrow0, wrow1, col0, col1, wcol0, wcol1, first, stop):
    c = x.shape[1]
    oh, ow = out.shape[2], out.shape[3]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for y in range(oh):
            r0 = row0[y]
            r1 = row1[y]
            for xx in range(ow):
                c0 = col0[xx]
                c1 = col1[xx]
                top = wcol0[xx] * x[b, ch, r0, c0] + wcol1[xx] * x[b, ch, r0, c1]
                bottom = wcol0[xx] * x[b, ch, r1, c0] + wcol1[xx] * x[b, ch, r1, c1]
                out[b, ch, y, xx] = wrow0[y] * top + wrow1[y] * bottom


def upsample2d_forward(x, row0, row1, wrow0, wrow1, col0, col1, wcol0, wcol1):
    """Apply the interpolation tables.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    row0, row1 : ndarray of int64, shape (oh,)
    wrow0, wrow1 : ndarray of shape (oh,), same dtype as ``x``
    col0, col1 : ndarray of int64, shape (ow,)
    wcol0, wcol1 : ndarray of shape (ow,), same dtype as ``x``

    Returns
    -------
    ndarray of shape (N, C, oh, ow)
    """
    n, c = x.shape[0], x.shape[1]
    out = np.empty((n, c, row0.shape[0], col0.shape[0]), dtype=x.dtype)
    tables = (row0, row1, wrow0, wrow1, col0, col1, wcol0, wcol1)
    run(_upsample2d_forward_tasks, n * c, out.size * 4, x, out, *tables)
    return out


@jit
def _upsample2d_adjoint_tasks(s, grid, row0, row1, wrow0, wrow1, col0, col1, wcol0, wcol1, first, stop):
    c, oh, ow = s.shape[1], s.shape[2], s.shape[3]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for y in range(oh):
            r0 = row0[y]
            r1 = row1[y]
            for xx in range(ow):
                c0 = col0[xx]
                c1 = col1[xx]
                v = s[b, ch, y, xx]
                top = wrow0[y] * v
                bottom = wrow1[y] * v
                grid[b, ch, r0, c0] += wcol0[xx] * top
                grid[b, ch, r0, c1] += wcol1[xx] * top
                grid[b, ch, r1, c0] += wcol0[xx] * bottom
                grid[b, ch, r1, c1] += wcol1[xx] * bottom


def upsample2d_adjoint(s, h, w, row0, row1, wrow0, wrow1, col0, col1, wcol0, wcol1):
    """Exact transpose of :func:`upsample2d_forward`.

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
    tables = (row0, row1, wrow0, wrow1, col0, col1, wcol0, wcol1)
    run(_upsample2d_adjoint_tasks, n * c, s.size * 4, s, grid, *tables)
    return grid
