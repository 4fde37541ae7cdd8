"""Depthwise convolutions (one input channel per group: MobileNet, EfficientNet, ConvNeXt) and their exact
adjoints, by direct loops rather than as thousands of one-row products.

Two layouts, one set of bits.  Each output sums its taps in the order (i, j), starting from 0, padding included
(adjoint: each input sums what the taps send it in the order (i, j)); both kernels keep that order, so they give
the same bits, and which one runs is a matter of speed only:

* *channels last* (one input channel per output channel): a task copies a block of channels of one sample into a
  padded (row, column, channel) buffer, and every tap becomes a multiply-add along the channels, which vectorizes
  however small the planes are (ConvNeXt's 7x7 taps on its 7x7 to 28x28 planes, EfficientNet's late layers);
* *phases* (any number of outputs per input channel): a task takes one plane, split into its stride phases so
  that every tap is one long contiguous multiply-add over all output rows at once.

Tasks own whole output planes (adjoint: input planes), so results do not depend on the batch or on the thread
count.
"""

from __future__ import annotations

import numpy as np

from reflrp._jit import jit, run
from reflrp.kernels.rows import copy_row, zero_row

# A channels-last task's two buffers (padded input and accumulated output) take at most this many bytes, so that
# they stay in the core's cache, and hold between _MIN_CHANNELS and _MAX_CHANNELS channels; planes too large for
# _MIN_CHANNELS channels run on the phase kernel (measured on ConvNeXt's and EfficientNet's layers, float32: channels
# last 1.5-4x faster on 7x7 to 28x28 planes, up to 6x slower on 56x56 and larger).
_BLOCK_BYTES = 1 << 18
_MIN_CHANNELS, _MAX_CHANNELS = 32, 64


@jit
def _phases(plane, phases, pt, pl):
    """``phases[r, q, y, x] = plane[y * sh + r - pt, x * sw + q - pl]`` (0 outside the plane), ``sh, sw`` the
    first two axes of ``phases``: the strided input split into contiguous phase planes."""
    sh, sw, hq, wq = phases.shape
    h, w = plane.shape
    for r in range(sh):
        for q in range(sw):
            for y in range(hq):
                row = y * sh + r - pt
                target = phases[r, q, y]
                if row < 0 or row >= h:
                    zero_row(target)
                    continue
                for x in range(wq):
                    column = x * sw + q - pl
                    target[x] = plane[row, column] if 0 <= column < w else 0


@jit
def _unphase(phases, plane, pt, pl):
    """The transpose of :func:`_phases` for positions inside the plane: ``plane[...] = phases[...]``."""
    sh, sw, hq, wq = phases.shape
    h, w = plane.shape
    for r in range(sh):
        for q in range(sw):
            for y in range(hq):
                row = y * sh + r - pt
                if row < 0 or row >= h:
                    continue
                for x in range(wq):
                    column = x * sw + q - pl
                    if 0 <= column < w:
                        plane[row, column] = phases[r, q, y, x]


@jit
def _phases_forward_tasks(x, weight, out, multiplier, sh, sw, pt, pl, dh, dw, first, stop):
    """Tasks are (sample, output channel) pairs; each writes its own output plane, tap after tap.

    The input plane is split into its stride phases (:func:`_phases`), each as wide as the output plus the
    kernel's reach: then every tap is one long contiguous multiply-add over all output rows at once (the columns
    beyond the output are computed and dropped)."""
    n_out, kh, kw = weight.shape[0], weight.shape[2], weight.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    hq, wq = oh + ((kh - 1) * dh) // sh, ow + ((kw - 1) * dw) // sw
    span = (oh - 1) * wq + ow
    for task in range(first, stop):
        b, o = task // n_out, task % n_out
        phases = np.empty((sh, sw, hq, wq), dtype=x.dtype)
        _phases(x[b, o // multiplier], phases, pt, pl)
        wide = np.zeros(oh * wq, dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                tap = weight[o, 0, i, j]
                flat = phases[(i * dh) % sh, (j * dw) % sw].reshape(hq * wq)
                shift = ((i * dh) // sh) * wq + (j * dw) // sw
                source = flat[shift:shift + span]  # indexed from 0: the loop vectorizes
                for k in range(span):
                    wide[k] += tap * source[k]
        for oy in range(oh):
            copy_row(out[b, o, oy], wide[oy * wq:oy * wq + ow])


@jit
def _phases_adjoint_tasks(s, weight, out, multiplier, sh, sw, pt, pl, dh, dw, first, stop):
    """Tasks are (sample, input channel) pairs; each writes its own input plane: the forward's phases, transposed,
    summed over the channel's outputs in order and each output's taps in the order (i, j)."""
    channels, kh, kw = out.shape[1], weight.shape[2], weight.shape[3]
    oh, ow = s.shape[2], s.shape[3]
    hq, wq = oh + ((kh - 1) * dh) // sh, ow + ((kw - 1) * dw) // sw
    span = (oh - 1) * wq + ow
    for task in range(first, stop):
        b, c = task // channels, task % channels
        phases = np.zeros((sh, sw, hq, wq), dtype=s.dtype)
        wide = np.zeros(oh * wq, dtype=s.dtype)
        for o in range(c * multiplier, (c + 1) * multiplier):
            for oy in range(oh):
                copy_row(wide[oy * wq:oy * wq + ow], s[b, o, oy])  # the columns beyond the output stay zero
            for i in range(kh):
                for j in range(kw):
                    tap = weight[o, 0, i, j]
                    flat = phases[(i * dh) % sh, (j * dw) % sw].reshape(hq * wq)
                    shift = ((i * dh) // sh) * wq + (j * dw) // sw
                    target = flat[shift:shift + span]  # indexed from 0: the loop vectorizes
                    for k in range(span):
                        target[k] += tap * wide[k]
        _unphase(phases, out[b, c], pt, pl)


@jit
def _taps(weight, c0, cb):
    """``taps[i, j, ch] = weight[c0 + ch, 0, i, j]``: a block's taps, channels last."""
    kh, kw = weight.shape[2], weight.shape[3]
    taps = np.empty((kh, kw, cb), dtype=weight.dtype)
    for ch in range(cb):
        for i in range(kh):
            for j in range(kw):
                taps[i, j, ch] = weight[c0 + ch, 0, i, j]
    return taps


@jit
def _gather(planes, buffer, top, left):
    """``buffer[y + top, x + left, ch] = planes[ch, y, x]`` wherever that lies inside ``buffer``: planes to
    channels last."""
    height, width = buffer.shape[0], buffer.shape[1]
    for ch in range(planes.shape[0]):
        for y in range(max(0, -top), min(planes.shape[1], height - top)):
            row, plane_row = buffer[y + top], planes[ch, y]
            for x in range(max(0, -left), min(planes.shape[2], width - left)):
                row[x + left, ch] = plane_row[x]


@jit
def _scatter(buffer, planes, top, left):
    """The reverse of :func:`_gather`: ``planes[ch, y, x] = buffer[y + top, x + left, ch]``."""
    height, width = buffer.shape[0], buffer.shape[1]
    for ch in range(planes.shape[0]):
        for y in range(max(0, -top), min(planes.shape[1], height - top)):
            row, plane_row = buffer[y + top], planes[ch, y]
            for x in range(max(0, -left), min(planes.shape[2], width - left)):
                plane_row[x] = row[x + left, ch]


@jit
def _sweep(taps, padded, acc, sh, sw, dh, dw, forward):
    """Every tap (i, j) in order over every output (oy, ox): forward, ``acc[oy, ox] += tap * padded[oy * sh + i * dh,
    ox * sw + j * dw]``; adjoint (``forward`` False), the transpose, ``padded[...] += tap * acc[oy, ox]``.  The
    multiply-adds run along the channels (the innermost loop vectorizes)."""
    kh, kw, width = taps.shape[0], taps.shape[1], taps.shape[2]
    oh, ow = acc.shape[0], acc.shape[1]
    for i in range(kh):
        for j in range(kw):
            tap = taps[i, j]
            for oy in range(oh):
                padded_row, acc_row = padded[oy * sh + i * dh], acc[oy]
                for ox in range(ow):
                    near, far = acc_row[ox], padded_row[ox * sw + j * dw]
                    target, source = (near, far) if forward else (far, near)
                    for ch in range(width):
                        target[ch] += tap[ch] * source[ch]


@jit
def _channels_last_tasks(source, weight, out, cb, sh, sw, pt, pl, dh, dw, forward, first, stop):
    """Tasks are (sample, block of ``cb`` channels); each writes its block's planes of ``out``.  Forward: the
    block's input is copied into a zero-padded (row, column, channel) buffer and each output accumulates its taps
    in the order (i, j), padding included.  Adjoint (``source`` the relevance, ``out`` the input's shape): every
    input sums what the taps send it in the order (i, j), in the padded buffer whose inside is the result."""
    c = source.shape[1] if forward else out.shape[1]
    kh, kw = weight.shape[2], weight.shape[3]
    oh, ow = (out.shape[2], out.shape[3]) if forward else (source.shape[2], source.shape[3])
    hp, wp = (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1  # the padded rows read
    blocks = (c + cb - 1) // cb
    for task in range(first, stop):
        b, c0 = task // blocks, (task % blocks) * cb
        width = min(cb, c - c0)
        padded = np.zeros((hp, wp, width), dtype=source.dtype)
        acc = np.zeros((oh, ow, width), dtype=source.dtype)
        if forward:
            _gather(source[b, c0:c0 + width], padded, pt, pl)
        else:
            _gather(source[b, c0:c0 + width], acc, 0, 0)
        _sweep(_taps(weight, c0, width), padded, acc, sh, sw, dh, dw, forward)
        if forward:
            _scatter(acc, out[b, c0:c0 + width], 0, 0)
        else:
            _scatter(padded, out[b, c0:c0 + width], pt, pl)


def _channels_last_block(kh, kw, oh, ow, stride, dilation, itemsize):
    """Channels per channels-last task, from one sample's geometry alone; 0 where the planes are too large."""
    hp, wp = (oh - 1) * stride[0] + (kh - 1) * dilation[0] + 1, (ow - 1) * stride[1] + (kw - 1) * dilation[1] + 1
    channels = _BLOCK_BYTES // ((hp * wp + oh * ow) * itemsize)
    return min(_MAX_CHANNELS, channels) if channels >= _MIN_CHANNELS else 0


def forward_many(x, weights, stride, padding, dilation, oh, ow):
    """Depthwise convolutions of ``x`` (N, C, H, W) with each weight (O, 1, kh, kw), ``O`` a multiple of ``C``;
    ``padding`` (top, bottom, left, right).  One (N, O, oh, ow) array per weight."""
    n, c = x.shape[0], x.shape[1]
    o, _, kh, kw = weights[0].shape
    x = np.ascontiguousarray(x)
    outs = [np.zeros((n, o, oh, ow), dtype=x.dtype) for _ in weights]
    geometry = (stride[0], stride[1], padding[0], padding[2], dilation[0], dilation[1])
    work = n * o * oh * ow * kh * kw
    cb = _channels_last_block(kh, kw, oh, ow, stride, dilation, x.itemsize) if o == c else 0
    for weight, out in zip(weights, outs):
        weight = np.ascontiguousarray(weight)
        if cb:
            run(_channels_last_tasks, n * -(-c // cb), work, x, weight, out, cb, *geometry, True)
        else:
            run(_phases_forward_tasks, n * o, work, x, weight, out, o // c, *geometry)
    return outs


def adjoint(s, weight, channels, input_hw, stride, padding, dilation):
    """The exact transpose of :func:`forward_many` for one weight: ``s`` (N, O, oh, ow) -> (N, channels, H, W)."""
    n, o, oh, ow = s.shape
    kh, kw = weight.shape[2], weight.shape[3]
    s, weight = np.ascontiguousarray(s), np.ascontiguousarray(weight)
    out = np.zeros((n, channels, *input_hw), dtype=s.dtype)
    geometry = (stride[0], stride[1], padding[0], padding[2], dilation[0], dilation[1])
    work = n * o * oh * ow * kh * kw
    cb = _channels_last_block(kh, kw, oh, ow, stride, dilation, s.itemsize) if o == channels else 0
    if cb:
        run(_channels_last_tasks, n * -(-channels // cb), work, s, weight, out, cb, *geometry, False)
    else:
        run(_phases_adjoint_tasks, n * channels, work, s, weight, out, o // channels, *geometry)
    return out
