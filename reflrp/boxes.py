"""Boxes: a rectangular part of one sample's tensor, ``((lo, hi) per axis)`` over the per-sample axes (the channel
axis first), what the receptive cone (:mod:`reflrp.cone`) computes node by node.

A layer answers :meth:`reflrp.layers.base.Layer.window` with the box of each input that the outputs in a box read;
the helpers here are what those answers are built from.
"""

from __future__ import annotations

import numpy as np


def whole(shape):
    """The box of a whole per-sample ``shape``."""
    return tuple((0, int(n)) for n in shape)


def union(a, b):
    """The smallest box holding boxes ``a`` and ``b`` (None stands for nothing)."""
    if a is None:
        return b
    if b is None:
        return a
    return tuple((min(p, q), max(r, s)) for (p, r), (q, s) in zip(a, b))


def sizes(box):
    """The box's extent along each axis."""
    return tuple(hi - lo for lo, hi in box)


def volume(box):
    """The number of positions in the box."""
    return int(np.prod(sizes(box), dtype=np.int64))


def inside(inner, outer):
    """Slices that take box ``inner`` out of an array holding box ``outer`` (batch axis whole)."""
    return (slice(None),) + tuple(slice(lo - base, hi - base) for (lo, hi), (base, _) in zip(inner, outer))


def crop(array, inner, outer):
    """The part ``inner`` of ``array`` (N, *sizes(outer)), which holds box ``outer``; ``array`` itself when the
    boxes are equal, else a C-contiguous copy."""
    if inner == outer:
        return array
    return np.ascontiguousarray(array[inside(inner, outer)])


def embed(array, inner, outer):
    """An array holding box ``outer`` with ``array`` (box ``inner``) in place and +0 elsewhere."""
    if inner == outer:
        return array
    out = np.zeros((len(array), *sizes(outer)), dtype=array.dtype)
    out[inside(inner, outer)] = array
    return out


def pointwise(box, in_shapes, out_shape):
    """Input boxes of a layer whose output at a position reads each input at that position alone, broadcasting as
    numpy does (an axis of size 1 against a larger one is read whole; an input with fewer axes is aligned at the
    last axis, so its box's first axis may be cut, which :func:`reflrp.cone.plan` does not accept); None when an
    input has more axes than the output or does not broadcast."""
    boxes = []
    for shape in in_shapes:
        if len(shape) > len(out_shape):
            return None
        lead = len(out_shape) - len(shape)
        box_k = []
        for n, m, (lo, hi) in zip(shape, out_shape[lead:], box[lead:]):
            if n == m:
                box_k.append((lo, hi))
            elif n == 1:
                box_k.append((0, 1))
            else:
                return None
        boxes.append(tuple(box_k))
    return boxes


def sliding(lo, hi, size, kernel, stride, dilation, before):
    """Along one axis, the inputs that outputs ``lo .. hi - 1`` of a sliding window read (``kernel`` taps
    ``dilation`` apart, ``stride``, ``before`` positions of padding first), clipped to the ``size`` inputs, and
    the padding the cut needs before and after them: ``((in_lo, in_hi), (pad_before, pad_after))``."""
    start = lo * stride - before
    stop = (hi - 1) * stride - before + dilation * (kernel - 1) + 1
    in_lo, in_hi = max(start, 0), min(stop, size)
    return (in_lo, in_hi), (in_lo - start, stop - in_hi)
