"""Separable two-tap resampling (nearest and (bi/tri)linear upsampling) and its exact adjoint, in 1 to 3 spatial
axes.

Each output slice z reads input slices ``dep0[z]`` and ``dep1[z]`` with weights ``wdep0[z]`` and ``wdep1[z]``,
each output row y input rows ``row0[y]`` and ``row1[y]`` with weights ``wrow0[y]`` and ``wrow1[y]`` (nearest: the
same row twice with weights 1 and 0), columns alike.  The tables are computed by the layer; the kernels only apply
them.  Inputs are volumes (N, C, D, H, W); an image is one of depth 1, whose depth table (weights 1 and 0) is
skipped, so images are computed exactly as by two-axis loops.  Tasks are (sample, channel) planes (see
:func:`reflrp._jit.run`).
"""

from __future__ import annotations

import numpy as np

from reflrp._jit import jit, run


@jit
def _plane(x, b, ch, z, y, xx, row0, row1, wrow0, wrow1, col0, col1, wcol0, wcol1):
    """The two-axis interpolation of slice ``z`` at output (y, xx)."""
    r0, r1, c0, c1 = row0[y], row1[y], col0[xx], col1[xx]
    top = wcol0[xx] * x[b, ch, z, r0, c0] + wcol1[xx] * x[b, ch, z, r0, c1]
    bottom = wcol0[xx] * x[b, ch, z, r1, c0] + wcol1[xx] * x[b, ch, z, r1, c1]
    return wrow0[y] * top + wrow1[y] * bottom


@jit
def _upsample_forward_tasks(x, out, dep0, dep1, wdep0, wdep1, row0, row1, wrow0, wrow1, col0, col1, wcol0, wcol1,
                            first, stop):
    c = x.shape[1]
    od, oh, ow = out.shape[2], out.shape[3], out.shape[4]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for z in range(od):
            for y in range(oh):
                for xx in range(ow):
                    near = _plane(x, b, ch, dep0[z], y, xx, row0, row1, wrow0, wrow1, col0, col1, wcol0, wcol1)
                    if wdep1[z] == 0 and wdep0[z] == 1:  # one slice (nearest, or an image): itself
                        out[b, ch, z, y, xx] = near
                        continue
                    far = _plane(x, b, ch, dep1[z], y, xx, row0, row1, wrow0, wrow1, col0, col1, wcol0, wcol1)
                    out[b, ch, z, y, xx] = wdep0[z] * near + wdep1[z] * far


def _volume(a):
    """``a`` (N, C, *spatial) as (N, C, D, H, W), a view."""
    return a.reshape(a.shape[:2] + (1,) * (5 - a.ndim) + a.shape[2:])


def upsample_forward(x, tables):
    """Apply the interpolation tables.

    Parameters
    ----------
    x : ndarray of shape (N, C, *spatial), 1 to 3 spatial axes
    tables : sequence of (first, second, w_first, w_second), one per spatial axis
        ``first``, ``second``: int64 source indices per output position; ``w_*``: their weights, in ``x``'s dtype.

    Returns
    -------
    ndarray of shape (N, C, *output sizes)
    """
    n, c = x.shape[0], x.shape[1]
    out = np.empty((n, c, *(len(t[0]) for t in tables)), dtype=x.dtype)
    run(_upsample_forward_tasks, n * c, out.size * 8, _volume(x), _volume(out), *_three(tables, x.dtype))
    return out


def _three(tables, dtype):
    """The tables of 1 to 3 axes as three, missing leading axes the identity of length 1."""
    one = (np.zeros(1, np.int64), np.zeros(1, np.int64), np.ones(1, dtype), np.zeros(1, dtype))
    return [a for table in (one,) * (3 - len(tables)) + tuple(tables) for a in table]


@jit
def _scatter_plane(grid, v, b, ch, z, y, xx, row0, row1, wrow0, wrow1, col0, col1, wcol0, wcol1):
    """The transpose of :func:`_plane`: ``v`` spread onto slice ``z``."""
    r0, r1, c0, c1 = row0[y], row1[y], col0[xx], col1[xx]
    top = wrow0[y] * v
    bottom = wrow1[y] * v
    grid[b, ch, z, r0, c0] += wcol0[xx] * top
    grid[b, ch, z, r0, c1] += wcol1[xx] * top
    grid[b, ch, z, r1, c0] += wcol0[xx] * bottom
    grid[b, ch, z, r1, c1] += wcol1[xx] * bottom


@jit
def _upsample_adjoint_tasks(s, grid, dep0, dep1, wdep0, wdep1, row0, row1, wrow0, wrow1, col0, col1, wcol0, wcol1,
                            first, stop):
    c, od, oh, ow = s.shape[1], s.shape[2], s.shape[3], s.shape[4]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for z in range(od):
            one = wdep1[z] == 0 and wdep0[z] == 1
            for y in range(oh):
                for xx in range(ow):
                    v = s[b, ch, z, y, xx]
                    if one:
                        _scatter_plane(grid, v, b, ch, dep0[z], y, xx, row0, row1, wrow0, wrow1, col0, col1, wcol0,
                                       wcol1)
                        continue
                    _scatter_plane(grid, wdep0[z] * v, b, ch, dep0[z], y, xx, row0, row1, wrow0, wrow1, col0, col1,
                                   wcol0, wcol1)
                    _scatter_plane(grid, wdep1[z] * v, b, ch, dep1[z], y, xx, row0, row1, wrow0, wrow1, col0, col1,
                                   wcol0, wcol1)


def upsample_adjoint(s, in_size, tables):
    """Exact transpose of :func:`upsample_forward`.

    Parameters
    ----------
    s : ndarray of shape (N, C, *output sizes)
    in_size : tuple of int
        The input's spatial size.

    Returns
    -------
    ndarray of shape (N, C, *in_size)
    """
    n, c = s.shape[0], s.shape[1]
    grid = np.zeros((n, c, *in_size), dtype=s.dtype)
    run(_upsample_adjoint_tasks, n * c, s.size * 8, _volume(s), _volume(grid), *_three(tables, s.dtype))
    return grid


def upsample2d_forward(x, row0, row1, wrow0, wrow1, col0, col1, wcol0, wcol1):
    """:func:`upsample_forward` of (N, C, H, W) with the row and column tables."""
    return upsample_forward(x, ((row0, row1, wrow0, wrow1), (col0, col1, wcol0, wcol1)))


def upsample2d_adjoint(s, h, w, row0, row1, wrow0, wrow1, col0, col1, wcol0, wcol1):
    """:func:`upsample_adjoint` of (N, C, H, W) with the row and column tables."""
    return upsample_adjoint(s, (h, w), ((row0, row1, wrow0, wrow1), (col0, col1, wcol0, wcol1)))
