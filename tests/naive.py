"""Slow, obviously correct references: explicit loops and dense matrices, no reflrp kernels.

Every fast path in reflrp is compared against one of these in float64.
"""

from __future__ import annotations

import itertools

import numpy as np


def conv2d(x, weight, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """PyTorch's Conv2d (cross-correlation), bias-free, by explicit loops over every output and tap."""
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    pt, pb, pl, pr = pads
    xp = np.zeros((n, c, h + pt + pb, w + pl + pr))
    xp[:, :, pt : pt + h, pl : pl + w] = x
    oh = (h + pt + pb - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + pl + pr - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    og = o // groups
    out = np.zeros((n, o, oh, ow))
    for oc, y, xx in itertools.product(range(o), range(oh), range(ow)):
        g = oc // og
        for ci, i, j in itertools.product(range(cg), range(kh), range(kw)):
            out[:, oc, y, xx] += (
                weight[oc, ci, i, j]
                * xp[:, g * cg + ci, y * stride[0] + i * dilation[0], xx * stride[1] + j * dilation[1]]
            )
    return out


def conv3d(x, weight, stride=(1, 1, 1), pads=(0,) * 6, dilation=(1, 1, 1), groups=1):
    """PyTorch's Conv3d (cross-correlation), bias-free, by explicit loops over every output and tap."""
    n, c, d, h, w = x.shape
    o, cg, kd, kh, kw = weight.shape
    pf, pk, pt, pb, pl, pr = pads
    xp = np.zeros((n, c, d + pf + pk, h + pt + pb, w + pl + pr))
    xp[:, :, pf : pf + d, pt : pt + h, pl : pl + w] = x
    od, oh, ow = ((size - dil * (k - 1) - 1) // st + 1
                  for size, k, st, dil in zip(xp.shape[2:], (kd, kh, kw), stride, dilation))
    og = o // groups
    out = np.zeros((n, o, od, oh, ow))
    for oc, z, y, xx in itertools.product(range(o), range(od), range(oh), range(ow)):
        g = oc // og
        for ci, i, j, k in itertools.product(range(cg), range(kd), range(kh), range(kw)):
            out[:, oc, z, y, xx] += weight[oc, ci, i, j, k] * xp[
                :, g * cg + ci, z * stride[0] + i * dilation[0], y * stride[1] + j * dilation[1],
                xx * stride[2] + k * dilation[2]]
    return out


def conv_transpose3d(x, weight, stride=(1, 1, 1), padding=(0, 0, 0), output_padding=(0, 0, 0), dilation=(1, 1, 1),
                     groups=1):
    """PyTorch's ConvTranspose3d, bias-free: every input scatters ``x * w`` onto the output grid."""
    n, c = x.shape[:2]
    _, og, kd, kh, kw = weight.shape
    cg = c // groups
    size = [(m - 1) * st - 2 * p + dil * (k - 1) + op + 1
            for m, st, p, dil, k, op in zip(x.shape[2:], stride, padding, dilation, (kd, kh, kw), output_padding)]
    full = np.zeros((n, og * groups, *(m + 2 * p for m, p in zip(size, padding))))
    for ci, z, y, xx in itertools.product(range(c), *(range(m) for m in x.shape[2:])):
        g = ci // cg
        for j, i, jj, k in itertools.product(range(og), range(kd), range(kh), range(kw)):
            full[:, g * og + j, z * stride[0] + i * dilation[0], y * stride[1] + jj * dilation[1],
                 xx * stride[2] + k * dilation[2]] += x[:, ci, z, y, xx] * weight[ci, j, i, jj, k]
    return full[:, :, padding[0]:padding[0] + size[0], padding[1]:padding[1] + size[1],
                padding[2]:padding[2] + size[2]]


def conv_transpose2d(x, weight, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), dilation=(1, 1), groups=1):
    """PyTorch's ConvTranspose2d, bias-free: every input scatters ``x * w`` onto the output grid."""
    n, c, h, w = x.shape
    _, og, kh, kw = weight.shape
    cg = c // groups
    oh = (h - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kh - 1) + output_padding[0] + 1
    ow = (w - 1) * stride[1] - 2 * padding[1] + dilation[1] * (kw - 1) + output_padding[1] + 1
    out = np.zeros((n, og * groups, oh, ow))
    for ci, y, xx, j, i, jj in itertools.product(range(c), range(h), range(w), range(og), range(kh), range(kw)):
        g = ci // cg
        oy = y * stride[0] - padding[0] + i * dilation[0]
        ox = xx * stride[1] - padding[1] + jj * dilation[1]
        if 0 <= oy < oh and 0 <= ox < ow:
            out[:, g * og + j, oy, ox] += x[:, ci, y, xx] * weight[ci, j, i, jj]
    return out


def windows(h, w, kernel, stride, padding):
    """For every output cell, the in-bounds input positions of its window in row-major order."""
    oh = (h + 2 * padding[0] - kernel[0]) // stride[0] + 1
    ow = (w + 2 * padding[1] - kernel[1]) // stride[1] + 1
    cells = {}
    for y, xx in itertools.product(range(oh), range(ow)):
        cells[y, xx] = [
            (y * stride[0] - padding[0] + i, xx * stride[1] - padding[1] + j)
            for i, j in itertools.product(range(kernel[0]), range(kernel[1]))
            if 0 <= y * stride[0] - padding[0] + i < h and 0 <= xx * stride[1] - padding[1] + j < w
        ]
    return oh, ow, cells


def maxpool2d(x, kernel, stride, padding):
    """Max pooling; also returns, per output, the first maximum's (row, col) in row-major window order."""
    n, c, h, w = x.shape
    oh, ow, cells = windows(h, w, kernel, stride, padding)
    out = np.zeros((n, c, oh, ow))
    winner = {}
    for b, ch, (cell, positions) in itertools.product(range(n), range(c), cells.items()):
        vals = [x[b, ch, p, q] for p, q in positions]
        k = int(np.argmax(vals))  # numpy's argmax returns the first maximum
        out[b, ch, cell[0], cell[1]] = vals[k]
        winner[b, ch, cell[0], cell[1]] = positions[k]
    return out, winner


def avgpool2d(x, kernel, stride, padding, count_include_pad=True):
    n, c, h, w = x.shape
    oh, ow, cells = windows(h, w, kernel, stride, padding)
    out = np.zeros((n, c, oh, ow))
    for (y, xx), positions in cells.items():
        divisor = kernel[0] * kernel[1] if count_include_pad else len(positions)
        for p, q in positions:
            out[:, :, y, xx] += x[:, :, p, q] / divisor
    return out


def adaptive_avgpool2d(x, size):
    n, c, h, w = x.shape
    out = np.zeros((n, c, *size))
    for y, xx in itertools.product(range(size[0]), range(size[1])):
        y0, y1 = (y * h) // size[0], -(-((y + 1) * h) // size[0])
        x0, x1 = (xx * w) // size[1], -(-((xx + 1) * w) // size[1])
        out[:, :, y, xx] = x[:, :, y0:y1, x0:x1].mean(axis=(2, 3))
    return out


def upsample2d(x, factor, mode, align_corners=False):
    """PyTorch's nearest / bilinear upsampling, written from its source-index formulas."""
    n, c, h, w = x.shape
    oh, ow = h * factor[0], w * factor[1]
    out = np.zeros((n, c, oh, ow))

    def source(dst, size, f):
        if mode == "nearest":
            return min(dst // f, size - 1), min(dst // f, size - 1), 1.0
        if align_corners:
            src = (size - 1) / (size * f - 1) * dst if size * f > 1 else 0.0
        else:
            src = max((dst + 0.5) / f - 0.5, 0.0)
        lo = int(np.floor(src))
        hi = min(lo + 1, size - 1)
        return lo, hi, 1.0 - (src - lo)

    for y, xx in itertools.product(range(oh), range(ow)):
        y0, y1, wy = source(y, h, factor[0])
        x0, x1, wx = source(xx, w, factor[1])
        out[:, :, y, xx] = (
            wy * wx * x[:, :, y0, x0]
            + wy * (1 - wx) * x[:, :, y0, x1]
            + (1 - wy) * wx * x[:, :, y1, x0]
            + (1 - wy) * (1 - wx) * x[:, :, y1, x1]
        )
    return out


def matrix(fn, in_shape):
    """The dense matrix (outputs x inputs) of a linear map ``fn`` on one sample of shape ``in_shape``."""
    size = int(np.prod(in_shape))
    basis = np.eye(size).reshape((size, *in_shape))
    return fn(basis).reshape(size, -1).T


def layer_fn(layer, weight):
    """The bias-free map of a reflrp affine layer with ``weight``, written with the loops above."""
    name = type(layer).__name__
    if name == "Linear":
        return lambda a: a @ weight.T
    if name == "Conv1d":
        left, right = layer._as_2d()[1][2:]
        return lambda a: conv2d(a[:, :, None, :], weight[:, :, None, :], (1, layer.stride), (0, 0, left, right),
                                (1, layer.dilation), layer.groups)[:, :, 0, :]
    if name == "Conv2d":
        return lambda a: conv2d(a, weight, layer.stride, layer.pads, layer.dilation, layer.groups)
    if name == "Conv3d":
        return lambda a: conv3d(a, weight, layer.stride, layer.pads, layer.dilation, layer.groups)
    if name == "ConvTranspose3d":
        return lambda a: conv_transpose3d(
            a, weight, layer.stride, layer.padding, layer.output_padding, layer.dilation, layer.groups
        )
    if name == "ConvTranspose2d":
        return lambda a: conv_transpose2d(
            a, weight, layer.stride, layer.padding, layer.output_padding, layer.dilation, layer.groups
        )
    if name.startswith("BatchNorm"):
        return lambda a: a * weight.reshape((1, -1) + (1,) * (a.ndim - 2))
    if name == "Scale":
        return lambda a: a * weight
    raise TypeError(name)


def bias_vector(layer, bias, out_shape):
    """The bias broadcast over one sample's output, flattened."""
    if bias is None:
        return np.zeros(int(np.prod(out_shape)))
    if type(layer).__name__ in ("Linear", "Scale"):  # aligned at the last axis
        return np.broadcast_to(bias, out_shape).ravel()
    return np.broadcast_to(bias.reshape((-1,) + (1,) * (len(out_shape) - 1)), out_shape).ravel()


def stab(z, eps, mode="sign"):
    """``z + eps * sign(z)`` with ``sign(0) = +1``; ``mode="zero"``: ``z + eps * [z == 0]``."""
    if mode == "zero":
        return z + eps * (z == 0)
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def spread(contributions, r, denominator):
    """``r_in_i = sum_j C_ji r_j / denominator_j``, units with a zero denominator passing nothing."""
    share = np.divide(r, denominator, out=np.zeros_like(r), where=denominator != 0)
    return contributions.T @ share


def pairwise_sum(values):
    """numpy's pairwise summation of ``values`` (float64), written out: fewer than 8 one by one from 0; up to 128
    with 8 running sums combined as ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then the rest one by one;
    longer runs as the sum of their halves, the first a multiple of 8 long."""
    values = [float(v) for v in values]
    n = len(values)
    if n < 8:
        total = 0.0
        for v in values:
            total += v
        return total
    if n <= 128:
        r = values[:8]
        stop = n - n % 8
        for k in range(8, stop, 8):
            r = [r[j] + values[k + j] for j in range(8)]
        total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for v in values[stop:]:
            total += v
        return total
    half = n // 2 - (n // 2) % 8
    return pairwise_sum(values[:half]) + pairwise_sum(values[half:])


def row_sum(row):
    """One row's sum as the ledger takes it (numpy's ``sum(dtype=float64)``): a float64 row pairwise; a float32 row
    in pieces of 8192 values (numpy's buffer), each pairwise, added one after the other to 0."""
    if row.dtype == np.float64:
        return 0.0 + pairwise_sum(row)
    total = 0.0
    for start in range(0, len(row), 8192):
        total += pairwise_sum(row[start:start + 8192])
    return total
