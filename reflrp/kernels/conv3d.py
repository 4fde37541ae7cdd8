"""3-D convolution and its exact adjoint, computed by the 2-D kernels of :mod:`reflrp.kernels.conv`.

A 3-D convolution of (N, C, D, H, W) is computed as 2-D convolutions: output slice z of sample b is the 2-D
convolution of the "depth window" V[b, z] of shape (C * kd, H, W), whose channel (c, i) is the input slice
x[b, c, z * sd - pf + i * dd] (zero outside the volume), with the weight (O, C/g, kd, kh, kw) read as
(O, C/g * kd, kh, kw): the column matrix of V[b, z] holds the rows (c, i, j, k), the 3-D weight's own order, so
each output is one product over all of its C/g * kd * kh * kw taps.  Every (b, z) is one 2-D sample to the 2-D
kernels, whose bits do not depend on the batch; windows are formed for a chunk of slices at a time.
"""

from __future__ import annotations

import numpy as np

from reflrp._jit import jit, run
from reflrp.kernels.conv import conv2d_adjoint, conv2d_forward_many, conv_output_size

# Depth windows formed at once stay below this many bytes (each is kd/sd times its share of the input).
_WINDOW_BYTES = 1 << 26


@jit
def _depth_windows_tasks(x, windows, z0, kd, sd, pf, dd, first, stop):
    """Task ``(b, c)`` fills channel ``(c, i)`` of the windows of output slices ``z0 ..`` of sample ``b``."""
    n, c, d = x.shape[0], x.shape[1], x.shape[2]
    nz = windows.shape[0] // n
    for task in range(first, stop):
        b, ch = task // c, task % c
        for z in range(nz):
            for i in range(kd):
                depth = (z0 + z) * sd - pf + i * dd
                target = windows[b * nz + z, ch * kd + i]
                if 0 <= depth < d:
                    target[:, :] = x[b, ch, depth]
                else:
                    target[:, :] = 0


@jit
def _depth_scatter_tasks(windows, out, z0, kd, sd, pf, dd, first, stop):
    """The transpose of :func:`_depth_windows_tasks`: task ``(b, c)`` adds the windows' channels ``(c, i)`` into
    ``out[b, c]``, slices in order, then taps (a fixed order of sums)."""
    n, c, d = out.shape[0], out.shape[1], out.shape[2]
    nz = windows.shape[0] // n
    for task in range(first, stop):
        b, ch = task // c, task % c
        for z in range(nz):
            for i in range(kd):
                depth = (z0 + z) * sd - pf + i * dd
                if 0 <= depth < d:
                    out[b, ch, depth] += windows[b * nz + z, ch * kd + i]


def _depth_chunks(n, c, kd, od, h, w, itemsize):
    """Output slices ``(z0, z1)`` whose depth windows for the whole batch are formed at once."""
    per_slice = n * c * kd * h * w * itemsize
    step = max(1, min(od, _WINDOW_BYTES // max(1, per_slice)))
    return [(z0, min(od, z0 + step)) for z0 in range(0, od, step)]


def conv3d_forward_many(x, weights, stride, padding, dilation, groups):
    """Bias-free 3-D convolutions of one input with several weights of one shape (as PyTorch ``conv3d``).

    Parameters
    ----------
    x : ndarray of shape (N, C, D, H, W)
    weights : list of ndarray of shape (O, C // groups, kd, kh, kw)
    stride, dilation : tuple of int (3,)
    padding : tuple of int (6,)
        (front, back, top, bottom, left, right) zero padding.
    groups : int

    Returns
    -------
    list of ndarray of shape (N, O, od, oh, ow), one per weight
    """
    n, c, d, h, w = x.shape
    o, cg, kd, kh, kw = weights[0].shape
    od, oh, ow = (conv_output_size(size, k, s, padding[2 * axis] + padding[2 * axis + 1], dil)
                  for axis, (size, k, s, dil) in enumerate(zip((d, h, w), (kd, kh, kw), stride, dilation)))
    flat = [weight.reshape(o, cg * kd, kh, kw) for weight in weights]
    x = np.ascontiguousarray(x)
    outs = [np.empty((n, o, od, oh, ow), dtype=x.dtype) for _ in weights]
    for z0, z1 in _depth_chunks(n, c, kd, od, h, w, x.itemsize):
        windows = np.empty((n * (z1 - z0), c * kd, h, w), dtype=x.dtype)
        run(_depth_windows_tasks, n * c, windows.size, x, windows, z0, kd, stride[0], padding[0], dilation[0])
        pieces = conv2d_forward_many(windows, flat, stride[1:], padding[2:], dilation[1:], groups)
        for out, piece in zip(outs, pieces):
            out[:, :, z0:z1] = piece.reshape(n, z1 - z0, *piece.shape[1:]).transpose(0, 2, 1, 3, 4)
    return outs


def conv3d_forward(x, weight, stride, padding, dilation, groups):
    """:func:`conv3d_forward_many` with one weight."""
    return conv3d_forward_many(x, [weight], stride, padding, dilation, groups)[0]


def conv3d_adjoint(s, weight, input_dhw, stride, padding, dilation, groups):
    """Exact transpose of :func:`conv3d_forward`.

    Parameters
    ----------
    s : ndarray of shape (N, O, od, oh, ow)
    weight : ndarray of shape (O, C // groups, kd, kh, kw)
    input_dhw : tuple of int (3,)

    Returns
    -------
    ndarray of shape (N, C, D, H, W)
    """
    n, o, od, oh, ow = s.shape
    _, cg, kd, kh, kw = weight.shape
    c = cg * groups
    d, h, w = input_dhw
    flat = weight.reshape(o, cg * kd, kh, kw)
    out = np.zeros((n, c, d, h, w), dtype=s.dtype)
    for z0, z1 in _depth_chunks(n, c, kd, od, h, w, s.itemsize):
        piece = np.ascontiguousarray(s[:, :, z0:z1].transpose(0, 2, 1, 3, 4)).reshape(n * (z1 - z0), o, oh, ow)
        windows = conv2d_adjoint(piece, flat, (h, w), stride[1:], padding[2:], dilation[1:], groups)
        run(_depth_scatter_tasks, n * c, windows.size, windows, out, z0, kd, stride[0], padding[0], dilation[0])
    return out


__all__ = ["conv3d_adjoint", "conv3d_forward", "conv3d_forward_many"]
