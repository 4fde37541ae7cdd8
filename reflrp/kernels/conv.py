"""2-D convolution and its exact adjoint: numba im2col / col2im around a BLAS product; depthwise convolutions (one
input channel per group) by direct numba loops (:mod:`reflrp.kernels.depthwise`).  3-D convolutions run on these
kernels (:mod:`reflrp.kernels.conv3d`).

Layouts follow PyTorch: input (N, C, H, W), weight (O, C/groups, kh, kw).  The product is taken one sample
and one group at a time (``numpy.matmul`` over stacked matrices issues one GEMM per matrix), and on large layers
one slab of output rows at a time (:func:`_slabs`, chosen from one sample's geometry alone), so every sample
is computed by the same BLAS calls whatever the batch holds: results do not depend on batch composition.
OpenBLAS splits GEMM across threads along the output dimensions, never along the summed one; the test-suite
checks that the bits do not change with the BLAS thread count.
"""

from __future__ import annotations

import numpy as np

from reflrp._jit import jit, run
from reflrp.kernels import depthwise
from reflrp.kernels.rows import copy_row, zero_row

# Samples per im2col chunk are chosen so that one chunk's column matrix stays below this many bytes.
_CHUNK_BYTES = 1 << 24
# A sample whose column matrix is larger than this is unfolded and multiplied in slabs of output rows of about
# this size, so that the product reads each slab while it is still in cache (measured on the 3x128x128 U-Net,
# float32: forward and adjoint products of its 128x128 layers 1.3-2x faster; a slab in L2 was slower than one in
# L3).  A slab is at least _MIN_SLAB_COLUMNS windows wide: narrower products run below BLAS's rate.
_SLAB_BYTES = 1 << 22
_MIN_SLAB_COLUMNS = 1024


@jit
def _valid_range(pad, tap, dilation, stride, size, out):
    """Output positions ``o`` in [lo, hi) whose input ``o * stride - pad + tap * dilation`` is in [0, size)."""
    offset = tap * dilation - pad
    lo = 0 if offset >= 0 else (-offset + stride - 1) // stride
    hi = 0 if size - offset <= 0 else (size - offset + stride - 1) // stride
    return min(lo, out), max(min(hi, out), min(lo, out))


@jit
def _im2col_tap_flat(plane, dst_row, y_lo, y_hi, x_lo, x_hi, row_offset, column_offset, ow, y0, y1):
    """One tap's row of columns when stride is 1 and rows of windows are as long as rows of the input: the
    valid windows read one contiguous run of the flattened ``plane``, copied at once (a copy per window row
    costs more than the copy itself on narrow layers); then the padding positions are set to 0."""
    h, w = plane.shape
    flat = plane.reshape(h * w)
    lo, hi = max(y_lo, y0), min(y_hi, y1)
    if hi <= lo:
        zero_row(dst_row)
        return
    d0, d1 = (lo - y0) * ow, (hi - y0) * ow
    zero_row(dst_row[:d0])
    zero_row(dst_row[d1:])
    s0 = (lo + row_offset) * w + column_offset  # where window row lo, column 0 reads (maybe outside the plane)
    t0, t1 = max(0, -s0), max(0, min(d1 - d0, h * w - s0))
    t0 = min(t0, t1)
    zero_row(dst_row[d0:d0 + t0])
    copy_row(dst_row[d0 + t0:d0 + t1], flat[s0 + t0:s0 + t1])
    zero_row(dst_row[d0 + t1:d1])
    for y in range(lo, hi):  # columns that fall in the left or right padding read a neighbouring row: zero them
        row = dst_row[(y - y0) * ow:(y - y0 + 1) * ow]
        zero_row(row[:x_lo])
        zero_row(row[x_hi:])


@jit
def _im2col2d_tasks(x, cols, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, y0, y1, first, stop):
    """Tasks ``first .. stop - 1`` of :func:`im2col2d`: task ``(b, ch, i)`` fills the ``kw`` rows of kernel row
    ``i`` of channel ``ch`` of sample ``b``, for output rows ``y0 .. y1 - 1``.  Inner loops run over row views with
    a loop index (no negative-index handling), so they vectorize."""
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    flat = sh == 1 and sw == 1 and w == ow  # window rows are consecutive input rows, as long as them
    for task in range(first, stop):
        b = task // (c * kh)
        ch = (task // kh) % c
        i = task % kh
        y_lo, y_hi = _valid_range(pt, i, dh, sh, h, oh)
        for j in range(kw):
            dst_row = cols[b, (ch * kh + i) * kw + j]
            x_lo, x_hi = _valid_range(pl, j, dw, sw, w, ow)
            if flat:
                _im2col_tap_flat(x[b, ch], dst_row, y_lo, y_hi, x_lo, x_hi, i * dh - pt, j * dw - pl, ow, y0, y1)
                continue
            n = x_hi - x_lo
            start = x_lo * sw - pl + j * dw
            for y in range(y0, y1):
                dst = dst_row[(y - y0) * ow:(y - y0 + 1) * ow]
                if y < y_lo or y >= y_hi:
                    for k in range(ow):
                        dst[k] = 0
                    continue
                src = x[b, ch, y * sh - pt + i * dh]
                for k in range(x_lo):
                    dst[k] = 0
                inner = dst[x_lo:x_hi]
                if sw == 1:
                    src = src[start:start + n]
                    for k in range(n):
                        inner[k] = src[k]
                else:
                    for k in range(n):
                        inner[k] = src[start + k * sw]
                for k in range(x_hi, ow):
                    dst[k] = 0


def im2col2d(x, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, rows=None):
    """Gather convolution windows into columns.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    kh, kw, sh, sw, pt, pl, dh, dw : int
        Kernel size, stride, top/left padding and dilation.
    oh, ow : int
        Output height and width.
    rows : (int, int), optional
        Only the windows of output rows ``y0 .. y1 - 1`` (default: all).

    Returns
    -------
    cols : ndarray of shape (N, C * kh * kw, (y1 - y0) * ow)
        ``cols[n, (c*kh + i)*kw + j, (y - y0)*ow + x]`` is the input under tap (i, j) of window (y, x), 0 in
        padding.
    """
    x = np.ascontiguousarray(x)
    n, c = x.shape[0], x.shape[1]
    y0, y1 = (0, oh) if rows is None else rows
    cols = np.empty((n, c * kh * kw, (y1 - y0) * ow), dtype=x.dtype)
    run(_im2col2d_tasks, n * c * kh, cols.size, x, cols, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, y0, y1)
    return cols


@jit
def _col2im2d_tasks(cols, out, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, y0, y1, first, stop):
    """Tasks ``first .. stop - 1`` of :func:`col2im2d`: task ``(b, ch)`` adds the windows of output rows
    ``y0 .. y1 - 1`` into plane ``out[b, ch]``, taps in order, then rows, then columns (inner loops over row
    views, so they vectorize without changing any sum)."""
    c, h, w = out.shape[1], out.shape[2], out.shape[3]
    for plane in range(first, stop):
        b = plane // c
        ch = plane % c
        for i in range(kh):
            y_lo, y_hi = _valid_range(pt, i, dh, sh, h, oh)
            y_lo, y_hi = max(y_lo, y0), min(y_hi, y1)
            for j in range(kw):
                src_row = cols[b, (ch * kh + i) * kw + j]
                x_lo, x_hi = _valid_range(pl, j, dw, sw, w, ow)
                n = x_hi - x_lo
                start = x_lo * sw - pl + j * dw
                for y in range(y_lo, y_hi):
                    dst = out[b, ch, y * sh - pt + i * dh]
                    src = src_row[(y - y0) * ow + x_lo:(y - y0) * ow + x_hi]
                    if sw == 1:
                        dst = dst[start:start + n]
                        for k in range(n):
                            dst[k] += src[k]
                    else:
                        for k in range(n):
                            dst[start + k * sw] += src[k]


def col2im2d(cols, out, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, rows=None):
    """Scatter-add columns onto the input grid ``out``: the exact transpose of :func:`im2col2d`.

    Parameters
    ----------
    cols : ndarray of shape (N, C * kh * kw, (y1 - y0) * ow)
    out : C-contiguous ndarray of shape (N, C, H, W)
        Added to in place (pass zeros for the transpose itself).
    rows : (int, int), optional
        The output rows ``y0 .. y1 - 1`` whose windows ``cols`` holds (default: all).

    Returns
    -------
    out
        Each (sample, channel) plane is owned by one task and summed in a fixed order (taps, then rows, then
        columns), so the result does not depend on the thread count.
    """
    y0, y1 = (0, oh) if rows is None else rows
    run(_col2im2d_tasks, out.shape[0] * out.shape[1], cols.size, cols, out, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow,
        y0, y1)
    return out


def _is_depthwise(cg, groups):
    """One input channel per group, several groups: a convolution of each channel on its own (MobileNet,
    EfficientNet, ConvNeXt), computed directly rather than as thousands of one-row products."""
    return cg == 1 and groups > 1


def conv_output_size(size, kernel, stride, pad_total, dilation):
    """Output length of a convolution along one axis (PyTorch's formula)."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def _slabs(n, k, oh, ow, itemsize):
    """The pieces a convolution is computed in: ``(start, stop, y0, y1)``, samples ``start .. stop - 1`` and output
    rows ``y0 .. y1 - 1``, each unfolded into a ``k x (y1 - y0) * ow`` column matrix per sample.

    The rows of a slab depend only on one sample's geometry (never on the batch), and each product is one sample
    and one slab: a sample's bits do not depend on what else is in the batch.
    """
    sample_bytes = k * oh * ow * itemsize
    if sample_bytes <= _SLAB_BYTES:
        step = max(1, _CHUNK_BYTES // max(1, sample_bytes))
        return [(start, min(n, start + step), 0, oh) for start in range(0, n, step)]
    rows = min(oh, max(1, _SLAB_BYTES // (k * ow * itemsize), -(-_MIN_SLAB_COLUMNS // ow)))
    return [(b, b + 1, y0, min(oh, y0 + rows)) for b in range(n) for y0 in range(0, oh, rows)]


def _is_pointwise(kh, kw, stride, padding):
    """A 1x1 convolution with stride 1 and no padding: its column matrix is its input, reshaped."""
    return kh == kw == 1 and tuple(stride) == (1, 1) and not any(padding)


def _all_zero(a):
    """Whether a slab of relevance can be skipped (a function of its own, so tests can turn skipping off)."""
    return not a.any()


def conv2d_forward(x, weight, stride, padding, dilation, groups):
    """Bias-free 2-D convolution (cross-correlation, as PyTorch).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    weight : ndarray of shape (O, C // groups, kh, kw)
    stride, dilation : tuple of int (2,)
    padding : tuple of int (4,)
        (top, bottom, left, right) zero padding.
    groups : int

    Returns
    -------
    ndarray of shape (N, O, oh, ow)
    """
    return conv2d_forward_many(x, [weight], stride, padding, dilation, groups)[0]


def conv2d_forward_many(x, weights, stride, padding, dilation, groups):
    """:func:`conv2d_forward` of one input with several weights of one shape, unfolding the input once: the
    same products, so each result has the bits of its own :func:`conv2d_forward` call.

    Returns
    -------
    list of ndarray of shape (N, O, oh, ow), one per weight
    """
    n, c, h, w = x.shape
    o, cg, kh, kw = weights[0].shape
    oh = conv_output_size(h, kh, stride[0], padding[0] + padding[1], dilation[0])
    ow = conv_output_size(w, kw, stride[1], padding[2] + padding[3], dilation[1])
    og = o // groups
    if _is_depthwise(cg, groups):
        return depthwise.forward_many(x, weights, stride, padding, dilation, oh, ow)
    w2s = [weight.reshape(groups, og, cg * kh * kw) for weight in weights]
    outs = [np.empty((n, groups, og, oh * ow), dtype=x.dtype) for _ in weights]
    geometry = (kh, kw, stride[0], stride[1], padding[0], padding[2], dilation[0], dilation[1], oh, ow)
    pointwise = _is_pointwise(kh, kw, stride, padding)
    for start, stop, y0, y1 in _slabs(n, c * kh * kw, oh, ow, x.itemsize):
        if pointwise:  # the columns are the input itself: the same numbers without a copy
            cols = np.ascontiguousarray(x[start:stop]).reshape(stop - start, c, h * w)[:, :, y0 * ow:y1 * ow]
        else:
            cols = im2col2d(x[start:stop], *geometry, rows=(y0, y1))
        cols = cols.reshape(stop - start, groups, cg * kh * kw, (y1 - y0) * ow)
        for w2, out in zip(w2s, outs):
            np.matmul(w2[None], cols, out=out[start:stop, :, :, y0 * ow:y1 * ow])
    return [out.reshape(n, o, oh, ow) for out in outs]


def conv2d_adjoint(s, weight, input_hw, stride, padding, dilation, groups):
    """Exact transpose of :func:`conv2d_forward` (the gradient with respect to the input).

    Parameters
    ----------
    s : ndarray of shape (N, O, oh, ow)
    weight : ndarray of shape (O, C // groups, kh, kw)
    input_hw : tuple of int (2,)
        Height and width of the forward input; with ``stride > 1`` several input sizes give the same output.

    Returns
    -------
    ndarray of shape (N, C, H, W)
    """
    n, o, oh, ow = s.shape
    _, cg, kh, kw = weight.shape
    og = o // groups
    c = cg * groups
    h, w = input_hw
    if _is_depthwise(cg, groups):
        return depthwise.adjoint(s, weight, c, (h, w), stride, padding, dilation)
    # a transposed view: BLAS reads it in place (copying a 512x4608 weight took longer than the product)
    w2t = weight.reshape(groups, og, cg * kh * kw).transpose(0, 2, 1)
    s = np.ascontiguousarray(s)
    out = np.zeros((n, c, h, w), dtype=s.dtype)
    geometry = (kh, kw, stride[0], stride[1], padding[0], padding[2], dilation[0], dilation[1], oh, ow)
    for start, stop, y0, y1 in _slabs(n, c * kh * kw, oh, ow, s.itemsize):
        if _all_zero(s[start:stop, :, y0:y1]):
            # the product is +0 everywhere and adding it changes no bit of out (whose zeros are +0): skipped.
            # The relevance of one output pixel reaches only a few slabs of the layers near the output.
            continue
        s2 = s[start:stop, :, y0:y1].reshape(stop - start, groups, og, (y1 - y0) * ow)  # a view
        cols = np.matmul(w2t[None], s2).reshape(stop - start, c * kh * kw, (y1 - y0) * ow)
        col2im2d(cols, out[start:stop], *geometry, rows=(y0, y1))  # slab after slab: a fixed order of sums
    return out
