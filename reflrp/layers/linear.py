"""Parameter-free linear maps that are not pooling: Upsample, Add and Mean."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np

from reflrp import kernels, validate
from reflrp.errors import ReflrpError
from reflrp.layers.base import LinearOperator, config

_mode = partial(validate.choice, options=("nearest", "linear", "bilinear", "trilinear"))
_LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}  # PyTorch's name of linear interpolation, by axes


def _factors(value, label):
    """An int (both axes of an image) or one int per spatial axis (1 to 3)."""
    if validate.is_integer(value):
        return validate.pair(value, label, minimum=1)
    if not (isinstance(value, (tuple, list)) and 1 <= len(value) <= 3):
        raise ReflrpError(f"{label} must be an integer (an image's two axes) or one integer per spatial axis (1 to "
                          f"3), got {value!r}")
    return validate.integers(value, label, len(value), minimum=1)


def _part(value, label):
    """None, or per spatial axis ``(offset, size, lo, hi)``: this layer computes outputs ``lo .. hi - 1`` of the
    upsampling of an input of ``size`` positions, reading them from a part of it that starts at ``offset``."""
    if value is None:
        return None
    if not (isinstance(value, (tuple, list)) and 1 <= len(value) <= 3
            and all(isinstance(v, (tuple, list)) and len(v) == 4 for v in value)):
        raise ReflrpError(f"{label} must be None or one (offset, size, lo, hi) per spatial axis, got {value!r}")
    return tuple(validate.integers(v, label, 4, minimum=0) for v in value)


@dataclass(frozen=True, eq=False, repr=False)
class Upsample(LinearOperator):
    """Upsampling by integer factors (PyTorch ``nn.Upsample`` with ``scale_factor``), in 1 to 3 spatial axes.

    Parameters
    ----------
    scale_factor : int or tuple of int
        An int scales both axes of an image; a tuple has one factor per spatial axis: ``(2,)`` for a signal,
        ``(2, 2, 2)`` for a volume.
    mode : "nearest", "linear", "bilinear" or "trilinear"
        The linear modes by PyTorch's names for 1, 2 and 3 axes.
    align_corners : bool
        Linear modes only, as PyTorch.
    part : None or tuple of (offset, size, lo, hi)
        Compute only outputs ``lo .. hi - 1`` along each spatial axis of the upsampling of an input of ``size``
        positions, from the part of that input that starts at ``offset`` (what the receptive cone cuts the layer
        to, :meth:`window`); None: the whole upsampling.
    """

    scale_factor: tuple = config(_factors)
    mode: str = config(_mode, "nearest")
    align_corners: bool = config(validate.boolean, False)
    part: tuple | None = config(_part, None)

    def _validate(self):
        dims = len(self.scale_factor)
        if self.part is not None:
            if len(self.part) != dims:
                raise ReflrpError(f"Upsample: part has {len(self.part)} axes, scale_factor {self.scale_factor} has "
                                  f"{dims}")
            for (offset, size, lo, hi), k in zip(self.part, self.scale_factor):
                if not (offset < size and lo < hi <= size * k):
                    raise ReflrpError(f"Upsample: part {self.part} is not a part of the upsampling")
        if self.mode == "nearest" and self.align_corners:
            raise ReflrpError("Upsample: align_corners applies to the linear modes only")
        if self.mode != "nearest" and self.mode != _LINEAR_MODES[dims]:
            raise ReflrpError(f"Upsample: mode={self.mode!r} needs {list(_LINEAR_MODES.values()).index(self.mode) + 1} "
                              f"spatial axes; scale_factor {self.scale_factor} has {dims} (mode="
                              f"'{_LINEAR_MODES[dims]}' for {dims})")

    def output_shape(self, shape):
        dims = len(self.scale_factor)
        if len(shape) != 1 + dims:
            layout = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}[dims]
            raise ReflrpError(f"input must be {layout} for scale_factor {self.scale_factor}, got per-sample shape "
                              f"{tuple(shape)} (give one factor per spatial axis)")
        if self.part is None:
            return (shape[0], *(n * k for n, k in zip(shape[1:], self.scale_factor)))
        for n, table in zip(shape[1:], self._tables((1, *shape), np.float64)):
            if table[0].min() < 0:
                raise ReflrpError(f"part {self.part} reads positions before its offset")
            if table[1].max() >= n:
                raise ReflrpError(f"input of per-sample shape {tuple(shape)} is smaller than the part {self.part} "
                                  f"reads")
        return (shape[0], *(hi - lo for _, _, lo, hi in self.part))

    def window(self, box, in_shapes):
        (shape,) = in_shapes
        if self.part is not None:
            return None
        spans, part = [], []
        for (lo, hi), n, k in zip(box[1:], shape[1:], self.scale_factor):
            first, second, _, _ = self._axis_table(n, k, np.float64)
            spans.append((int(first[lo:hi].min()), int(second[lo:hi].max()) + 1))
            part.append((spans[-1][0], n, lo, hi))
        return [(box[0], *spans)], self.reconfigured(part=tuple(part))

    def _axis_table(self, size, factor, dtype):
        """Source indices and weights along one axis (PyTorch's source-index formulas)."""
        out = np.arange(size * factor)
        if self.mode == "nearest":
            first = out // factor
            return first, first, np.ones(out.size, dtype), np.zeros(out.size, dtype)
        if self.align_corners:
            ratio = (size - 1) / (size * factor - 1) if size * factor > 1 else 0.0
            src = ratio * out
        else:
            src = np.maximum((out + 0.5) / factor - 0.5, 0.0)
        first = np.floor(src).astype(np.int64)
        second = np.minimum(first + 1, size - 1)
        frac = src - first
        return first, second, (1.0 - frac).astype(dtype), frac.astype(dtype)

    def _tables(self, shape, dtype):
        if self.part is None:
            return [self._axis_table(n, k, dtype) for n, k in zip(shape[2:], self.scale_factor)]
        tables = []
        for (offset, size, lo, hi), k in zip(self.part, self.scale_factor):
            first, second, w_first, w_second = self._axis_table(size, k, dtype)
            tables.append((first[lo:hi] - offset, second[lo:hi] - offset, w_first[lo:hi], w_second[lo:hi]))
        return tables

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        (a,) = inputs
        return kernels.upsample_forward(a, self._tables(a.shape, a.dtype))

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        shape = inputs[0].shape
        return [kernels.upsample_adjoint(s, shape[2:], self._tables(shape, s.dtype))]


@dataclass(frozen=True, eq=False, repr=False)
class Add(LinearOperator):
    """Elementwise sum of two or more inputs of equal shape (a residual connection)."""

    n_inputs: ClassVar[int | None] = None
    pointwise: ClassVar[bool] = True

    def output_shape(self, *shapes):
        if len(shapes) < 2:
            raise ReflrpError(f"Add needs at least two inputs, got {len(shapes)}")
        for k, shape in enumerate(shapes[1:], start=1):
            if tuple(shape) != tuple(shapes[0]):
                raise ReflrpError(f"input {k} has shape {tuple(shape)}, input 0 has {tuple(shapes[0])}")
        return tuple(shapes[0])

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        total = inputs[0]
        for a in inputs[1:]:
            total = total + a
        return total

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        return [s for _ in inputs]


@dataclass(frozen=True, eq=False, repr=False)
class Mean(LinearOperator):
    """The mean over ``dims`` (non-batch axes, counting the batch axis), as ``torch.mean(x, dims, keepdim)``: a
    transformer's mean over its tokens.  (The mean over every spatial axis of an image is an adaptive average
    pooling to 1.)

    Parameters
    ----------
    dims : tuple of int
        >= 1, distinct.
    keepdim : bool
    """

    dims: tuple = config(partial(validate.integers, minimum=1))
    keepdim: bool = config(validate.boolean, False)

    def _validate(self):
        if not self.dims or len(set(self.dims)) != len(self.dims):
            raise ReflrpError(f"Mean: dims must be distinct non-batch axes, got {self.dims}")

    def output_shape(self, shape):
        if max(self.dims) > len(shape):
            raise ReflrpError(f"dims {self.dims} are out of range for per-sample shape {tuple(shape)}")
        kept = [1 if k + 1 in self.dims else n for k, n in enumerate(shape)]
        return tuple(kept) if self.keepdim else tuple(n for k, n in enumerate(shape) if k + 1 not in self.dims)

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        return inputs[0].mean(axis=self.dims, keepdims=self.keepdim)

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        shape = inputs[0].shape[1:]
        count = int(np.prod([shape[d - 1] for d in self.dims]))
        kept = s.reshape((len(s), *(1 if k + 1 in self.dims else n for k, n in enumerate(shape))))
        return [np.broadcast_to(kept / s.dtype.type(count), (len(s), *shape)).copy()]


__all__ = ["Add", "Mean", "Upsample"]
