"""Parameter-free linear maps that are not pooling: Upsample and Add."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np

from reflrp import kernels, validate
from reflrp.errors import ReflrpError
from reflrp.layers.base import LinearOperator, config, spatial

_mode = partial(validate.choice, options=("nearest", "bilinear"))


@dataclass(frozen=True, eq=False, repr=False)
class Upsample(LinearOperator):
    """Upsampling by an integer factor (PyTorch ``nn.Upsample`` with ``scale_factor``).

    Parameters
    ----------
    scale_factor : int or pair of int
    mode : "nearest" or "bilinear"
    align_corners : bool
        Bilinear only, as PyTorch.
    """

    scale_factor: tuple = config(partial(validate.pair, minimum=1))
    mode: str = config(_mode, "nearest")
    align_corners: bool = config(validate.boolean, False)

    def _validate(self):
        if self.mode == "nearest" and self.align_corners:
            raise ReflrpError("Upsample: align_corners applies to mode='bilinear' only")

    def output_shape(self, shape):
        spatial(shape)
        return (shape[0], shape[1] * self.scale_factor[0], shape[2] * self.scale_factor[1])

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
        rows = self._axis_table(shape[2], self.scale_factor[0], dtype)
        cols = self._axis_table(shape[3], self.scale_factor[1], dtype)
        return (*rows, *cols)

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        (a,) = inputs
        return kernels.upsample2d_forward(a, *self._tables(a.shape, a.dtype))

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        shape = inputs[0].shape
        return [kernels.upsample2d_adjoint(s, shape[2], shape[3], *self._tables(shape, s.dtype))]


@dataclass(frozen=True, eq=False, repr=False)
class Add(LinearOperator):
    """Elementwise sum of two or more inputs of equal shape (a residual connection)."""

    n_inputs: ClassVar[int | None] = None

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


__all__ = ["Add", "Upsample"]
