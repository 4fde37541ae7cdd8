"""Routing: layers that move, copy or drop values without arithmetic; their adjoints route relevance exactly.

Identity, Dropout (inference), Flatten, Reshape, Concat, Crop, Narrow, ZeroPad2d, Pad; the layers that reorder
entries (Permute, Roll) are in :mod:`reflrp.layers.reorder`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np

from reflrp import validate
from reflrp.arrays import unbroadcast
from reflrp.errors import ReflrpError
from reflrp.layers.base import Routing, array, config, spatial


@dataclass(frozen=True, eq=False, repr=False)
class Identity(Routing):
    """The identity."""

    pointwise: ClassVar[bool] = True

    def output_shape(self, shape):
        return tuple(shape)

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        return inputs[0]

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        return [s]


def _probability(value, label):
    value = validate.real(value, label)
    if not 0 <= value < 1:
        raise ReflrpError(f"{label} must be in [0, 1), got {value!r}")
    return value


@dataclass(frozen=True, eq=False, repr=False)
class Dropout(Identity):
    """Dropout at inference: the identity.  ``p`` is kept for the record.

    Parameters
    ----------
    p : float
        In [0, 1).
    """

    p: float = config(_probability, 0.5)


@dataclass(frozen=True, eq=False, repr=False)
class _Reshaping(Routing, abstract=True):
    """Flatten and Reshape: each sample's values in the same order, in a new shape."""

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        (a,) = inputs
        return a.reshape((a.shape[0], *self.output_shape(a.shape[1:])))

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        return [s.reshape((len(s), *inputs[0].shape[1:]))]


@dataclass(frozen=True, eq=False, repr=False)
class Flatten(_Reshaping):
    """Flatten dims ``start_dim`` .. ``end_dim`` (PyTorch ``nn.Flatten``; dims count the batch axis).

    Parameters
    ----------
    start_dim : int
        >= 1 (0 is the batch).
    end_dim : int
        >= start_dim, or negative (counted from the end).
    """

    start_dim: int = config(partial(validate.integer, minimum=1), 1)
    end_dim: int = config(partial(validate.integer, minimum=-validate.MAX_SIZE), -1)

    def _validate(self):
        if 0 <= self.end_dim < self.start_dim:
            raise ReflrpError(f"Flatten: end_dim {self.end_dim} must be >= start_dim {self.start_dim} or negative")

    def output_shape(self, shape):
        full = (1, *shape)
        end = self.end_dim % len(full)
        if not (-len(full) <= self.end_dim < len(full) and self.start_dim <= end):
            raise ReflrpError(f"cannot flatten dims {self.start_dim}..{self.end_dim} of shape {tuple(shape)}")
        merged = int(np.prod(full[self.start_dim : end + 1]))
        return tuple(full[1 : self.start_dim]) + (merged,) + tuple(full[end + 1 :])


def _reshape_target(value, label):
    """A per-sample shape: positive sizes and at most one -1."""
    shape = validate.integers(value, label, minimum=-1)
    if sum(v == -1 for v in shape) > 1 or 0 in shape or not shape:
        raise ReflrpError(f"{label} {shape} must hold positive sizes and at most one -1")
    return shape


@dataclass(frozen=True, eq=False, repr=False)
class Reshape(_Reshaping):
    """Reshape each sample to ``shape`` (one entry may be -1).

    Parameters
    ----------
    shape : tuple of int
        Per-sample shape (the batch axis is kept).
    """

    shape: tuple = config(_reshape_target)

    def output_shape(self, shape):
        size = int(np.prod(shape))
        known = int(np.prod([v for v in self.shape if v != -1]))
        target = tuple(size // known if v == -1 else v for v in self.shape)
        if int(np.prod(target)) != size:
            raise ReflrpError(f"cannot reshape per-sample shape {tuple(shape)} to {self.shape}")
        return target


@dataclass(frozen=True, eq=False, repr=False)
class Concat(Routing):
    """Concatenate inputs along ``axis`` (counting the batch axis, so ``axis=1`` is channels).

    Parameters
    ----------
    axis : int
        >= 1.
    """

    axis: int = config(partial(validate.integer, minimum=1), 1)

    n_inputs: ClassVar[int | None] = None

    def output_shape(self, *shapes):
        if len(shapes) < 2:
            raise ReflrpError(f"Concat needs at least two inputs, got {len(shapes)}")
        k = self.axis - 1
        first = tuple(shapes[0])
        if k >= len(first):
            raise ReflrpError(f"axis {self.axis} is out of range for inputs of per-sample shape {first}")
        for i, shape in enumerate(shapes[1:], start=1):
            shape = tuple(shape)
            if len(shape) != len(first) or shape[:k] + shape[k + 1 :] != first[:k] + first[k + 1 :]:
                raise ReflrpError(
                    f"input {i} has shape {shape}, input 0 has {first}: they must agree except along axis "
                    f"{self.axis}"
                )
        return first[:k] + (sum(s[k] for s in shapes),) + first[k + 1 :]

    def window(self, box, in_shapes):
        if self.axis != 1:
            return None
        return [((0, shape[0]), *box[1:]) for shape in in_shapes], self

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        return np.concatenate(inputs, axis=self.axis)

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        bounds = np.cumsum([a.shape[self.axis] for a in inputs])[:-1]
        return [np.ascontiguousarray(part) for part in np.split(s, bounds, axis=self.axis)]


@dataclass(frozen=True, eq=False, repr=False)
class ConstantConcat(Routing):
    """Concatenate a learned constant and the input along ``axis`` (a vision transformer's class token before its
    patch tokens: ``torch.cat([class_token.expand(n, -1, -1), x], dim=1)``).

    The relevance that reaches the constant's positions has nowhere to go: the ledger records it as dropped (what
    the class token absorbs).

    Parameters
    ----------
    value : ndarray
        One sample's constant: the input's per-sample shape except along ``axis``.
    axis : int
        >= 1 (counting the batch axis).
    position : 0 or 1
        The constant before (0) or after (1) the input.
    """

    value: np.ndarray = array(ndim=None)
    axis: int = config(partial(validate.integer, minimum=1), 1)
    position: int = config(partial(validate.integer, minimum=0, maximum=1), 0)

    def output_shape(self, shape):
        shape, k = tuple(shape), self.axis - 1
        constant = self.value.shape
        others = constant[:k] + constant[k + 1:] == shape[:k] + shape[k + 1:]
        if k >= len(shape) or len(constant) != len(shape) or not others:
            raise ReflrpError(f"the constant of shape {constant} does not fit the input's per-sample shape {shape} "
                              f"except along axis {self.axis}")
        return shape[:k] + (shape[k] + constant[k],) + shape[k + 1:]

    def _parts(self, a, constant):
        parts = [np.broadcast_to(constant, (len(a), *constant.shape)), a]
        return np.concatenate(parts if self.position == 0 else parts[::-1], axis=self.axis)

    def forward(self, inputs):
        return self._parts(inputs[0], self.value.astype(inputs[0].dtype))

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        return self._parts(inputs[0], np.zeros_like(self.value, dtype=inputs[0].dtype))

    def _split(self, s):
        size = self.value.shape[self.axis - 1]
        cut = size if self.position == 0 else s.shape[self.axis] - size
        first, second = np.split(s, [cut], axis=self.axis)
        return (first, second) if self.position == 0 else (second, first)  # (the constant's part, the input's)

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        return [np.ascontiguousarray(self._split(s)[1])]

    def lost(self, s):
        return np.ascontiguousarray(self._split(s)[0])


def _cropping(value, label):
    """Keras Cropping2D's argument, as ((top, bottom), (left, right))."""
    if validate.is_integer(value):
        value = ((value, value), (value, value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(validate.is_integer(v) for v in value):
        value = ((value[0], value[0]), (value[1], value[1]))
    if not (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, (tuple, list)) and len(v) == 2 for v in value)):
        raise ReflrpError(f"{label} must be an int, (h, w) or ((top, bottom), (left, right)) as Keras' Cropping2D, "
                          f"got {value!r}")
    return tuple(validate.integers(v, label, 2, minimum=0) for v in value)


@dataclass(frozen=True, eq=False, repr=False)
class Crop(Routing):
    """Crop the spatial border (Keras ``Cropping2D``); relevance at cropped-away positions is exactly 0.

    Parameters
    ----------
    cropping : int, (h, w) or ((top, bottom), (left, right))
    """

    cropping: tuple = config(_cropping)

    @property
    def sides(self):
        """(top, bottom, left, right)."""
        (t, b), (l, r) = self.cropping
        return (t, b, l, r)

    def output_shape(self, shape):
        spatial(shape)
        t, b, l, r = self.sides
        h, w = shape[1] - t - b, shape[2] - l - r
        if h < 1 or w < 1:
            raise ReflrpError(f"cropping {self.cropping} leaves nothing of a {shape[1]}x{shape[2]} input")
        return (shape[0], h, w)

    def window(self, box, in_shapes):
        (channels, (y0, y1), (x0, x1)), (t, _, l, _) = box, self.sides
        return [(channels, (y0 + t, y1 + t), (x0 + l, x1 + l))], Identity()  # the box, shifted: nothing is cropped

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        (a,) = inputs
        t, b, l, r = self.sides
        return np.ascontiguousarray(a[:, :, t : a.shape[2] - b, l : a.shape[3] - r])

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        t, b, l, r = self.sides
        return [np.pad(s, ((0, 0), (0, 0), (t, b), (l, r)))]


@dataclass(frozen=True, eq=False, repr=False)
class Narrow(Routing):
    """``length`` entries of axis ``axis`` from ``start`` (PyTorch ``x.narrow(axis, start, length)``, a slice
    ``x[:, a:b]`` with step 1, one part of ``chunk`` or ``split``); relevance at the positions left out is exactly 0.

    Parameters
    ----------
    axis : int
        >= 1 (0 is the batch).
    start, length : int
    """

    axis: int = config(partial(validate.integer, minimum=1))
    start: int = config(partial(validate.integer, minimum=0))
    length: int = config(partial(validate.integer, minimum=1))

    def output_shape(self, shape):
        if self.axis > len(shape):
            raise ReflrpError(f"axis {self.axis} is out of range for per-sample shape {tuple(shape)}")
        if self.start + self.length > shape[self.axis - 1]:
            raise ReflrpError(f"entries {self.start} to {self.start + self.length - 1} of axis {self.axis} do not "
                              f"exist in per-sample shape {tuple(shape)}")
        return tuple(self.length if k == self.axis - 1 else n for k, n in enumerate(shape))

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        (a,) = inputs
        index = (slice(None),) * self.axis + (slice(self.start, self.start + self.length),)
        return np.ascontiguousarray(a[index])

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        size = inputs[0].shape[self.axis]
        widths = [(0, 0)] * s.ndim
        widths[self.axis] = (self.start, size - self.start - self.length)
        return [np.pad(s, widths)]


@dataclass(frozen=True, eq=False, repr=False)
class Expand(Routing):
    """Copies along axes of size 1, to one sample's ``shape`` (PyTorch ``x.expand(...)`` of a computed tensor:
    grouped-query attention repeating key and value heads); relevance at the copies adds up.

    Parameters
    ----------
    shape : tuple of int
        The per-sample output shape; the input's axes are 1 or equal to it.
    """

    shape: tuple = config(partial(validate.integers, minimum=1))

    def output_shape(self, shape):
        if len(shape) != len(self.shape) or any(n not in (1, m) for n, m in zip(shape, self.shape)):
            raise ReflrpError(f"cannot expand per-sample shape {tuple(shape)} to {self.shape}")
        return self.shape

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        (a,) = inputs
        return np.ascontiguousarray(np.broadcast_to(a, (len(a), *self.shape)))

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        return [unbroadcast(s, inputs[0].shape[1:])]


def _zero_padding(value, label):
    """PyTorch ZeroPad2d's argument, as (left, right, top, bottom)."""
    if validate.is_integer(value):
        value = (value,) * 4
    return validate.integers(value, f"{label} (an int or (left, right, top, bottom))", 4, minimum=0)


@dataclass(frozen=True, eq=False, repr=False)
class ZeroPad2d(Routing):
    """Zero padding (PyTorch ``nn.ZeroPad2d``): an int, or (left, right, top, bottom) as PyTorch.

    Relevance arriving at padded positions has nowhere to go: the ledger records it as dropped.
    """

    padding: tuple = config(_zero_padding)

    def output_shape(self, shape):
        spatial(shape)
        l, r, t, b = self.padding
        return (shape[0], shape[1] + t + b, shape[2] + l + r)

    def window(self, box, in_shapes):
        (shape,) = in_shapes
        l, r, t, b = self.padding
        spans, sides, grown = [], [], [box[0]]
        for (lo, hi), before, n in zip(box[1:], (t, l), shape[1:]):
            # a box in the padding alone grows to the nearest input row (column): a cut reads at least one
            in_lo = min(max(lo - before, 0), n - 1)
            in_hi = max(min(hi - before, n), in_lo + 1)
            out_lo, out_hi = min(lo, in_lo + before), max(hi, in_hi + before)
            spans.append((in_lo, in_hi))
            sides.append((in_lo + before - out_lo, out_hi - before - in_hi))
            grown.append((out_lo, out_hi))
        (t, b), (l, r) = sides
        return [(box[0], *spans)], ZeroPad2d((l, r, t, b)), tuple(grown)

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        l, r, t, b = self.padding
        return np.pad(inputs[0], ((0, 0), (0, 0), (t, b), (l, r)))

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        l, r, t, b = self.padding
        return [np.ascontiguousarray(s[:, :, t : s.shape[2] - b, l : s.shape[3] - r])]

    def lost(self, s):
        l, r, t, b = self.padding
        border = s.copy()
        border[:, :, t : s.shape[2] - b, l : s.shape[3] - r] = 0
        return border


def _pad_widths(value, label):
    """PyTorch ``F.pad``'s ``pad``: (left, right) pairs from the last axis backward, non-negative."""
    if not (isinstance(value, (tuple, list)) and value and len(value) % 2 == 0):
        raise ReflrpError(f"{label} must be (left, right) pairs from the last axis backward, as F.pad's pad, got "
                          f"{value!r}")
    return validate.integers(value, label, minimum=0)


@dataclass(frozen=True, eq=False, repr=False)
class Pad(Routing):
    """Padding of the last ``len(padding) // 2`` axes (PyTorch ``F.pad``): with zeros (``"constant"``) or with
    copies of the edge (``"replicate"``), in any number of axes.  Relevance at zero-padded positions has nowhere
    to go (the ledger's dropped); a replicated position's relevance returns to the edge it copies.

    Parameters
    ----------
    padding : tuple of int
        (left, right) pairs from the last axis backward, as F.pad's ``pad``.
    mode : "constant" or "replicate"
    """

    padding: tuple = config(_pad_widths)
    mode: str = config(partial(validate.choice, options=("constant", "replicate")), "constant")

    def _widths(self, ndim):
        """np.pad's widths for an array of ``ndim`` axes (batch first)."""
        pairs = [tuple(self.padding[k:k + 2]) for k in range(0, len(self.padding), 2)][::-1]
        return [(0, 0)] * (ndim - len(pairs)) + pairs

    def output_shape(self, shape):
        if len(self.padding) // 2 > len(shape):
            raise ReflrpError(f"pads {len(self.padding) // 2} axes, the per-sample shape {tuple(shape)} has "
                              f"{len(shape)}")
        return tuple(n + a + b for n, (a, b) in zip(shape, self._widths(len(shape))))

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        (a,) = inputs
        return np.pad(a, self._widths(a.ndim), mode="constant" if self.mode == "constant" else "edge")

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        r = s
        for axis, (before, after) in enumerate(self._widths(s.ndim)):
            if not before and not after:
                continue
            n = r.shape[axis] - before - after
            inner = np.take(r, range(before, before + n), axis=axis)  # a copy
            if self.mode == "replicate":  # the copies' relevance back to the edges they copy, axis by axis
                first = [slice(None)] * r.ndim
                first[axis] = slice(0, 1)
                inner[tuple(first)] += np.take(r, range(0, before), axis=axis).sum(axis=axis, keepdims=True)
                first[axis] = slice(n - 1, n)
                inner[tuple(first)] += np.take(r, range(before + n, r.shape[axis]), axis=axis).sum(
                    axis=axis, keepdims=True)
            r = inner
        return [np.ascontiguousarray(r)]

    def lost(self, s):
        if self.mode == "replicate":
            return None
        border = s.copy()
        border[tuple(slice(a, n - b) for n, (a, b) in zip(s.shape, self._widths(s.ndim)))] = 0
        return border


__all__ = ["Concat", "ConstantConcat", "Crop", "Dropout", "Expand", "Flatten", "Identity", "Narrow", "Pad", "Reshape",
           "ZeroPad2d"]
