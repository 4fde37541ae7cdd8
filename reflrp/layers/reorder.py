"""Layers that reorder the entries of one sample: Permute (axes) and Roll (cyclic shifts along axes).  Each is a
permutation, so its adjoint is the inverse permutation and relevance moves with its values, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.layers.base import Routing, config


def _permutation(value, label):
    """A permutation of 0 .. n-1 that keeps the batch axis first."""
    dims = validate.integers(value, label, minimum=0)
    if sorted(dims) != list(range(len(dims))) or len(dims) < 2 or dims[0] != 0:
        raise ReflrpError(f"{label} must be a permutation of 0 .. n-1 that keeps the batch axis 0 first, got {dims}")
    return dims


@dataclass(frozen=True, eq=False, repr=False)
class Permute(Routing):
    """Reorder axes (PyTorch ``torch.permute``; ``dims`` count the batch axis, which stays first).

    ``Permute((0, 2, 3, 1))`` turns NCHW into NHWC: how imported channels-last models (Keras) keep their own layout
    at their inputs and outputs.

    Parameters
    ----------
    dims : tuple of int
        A permutation of ``0 .. n-1`` with ``dims[0] == 0``.
    """

    dims: tuple = config(_permutation)

    def output_shape(self, shape):
        if len(shape) + 1 != len(self.dims):
            raise ReflrpError(f"dims {self.dims} permute {len(self.dims)} axes, the input has {len(shape) + 1} "
                              f"(per-sample shape {tuple(shape)})")
        full = (None, *shape)
        return tuple(full[d] for d in self.dims[1:])

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        return np.ascontiguousarray(np.transpose(inputs[0], self.dims))

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        return [np.ascontiguousarray(np.transpose(s, np.argsort(self.dims)))]


def _axes(value, label):
    dims = validate.integers(value, label, minimum=1)
    if len(set(dims)) != len(dims) or not dims:
        raise ReflrpError(f"{label} must name distinct axes >= 1 (0 is the batch), got {dims}")
    return dims


@dataclass(frozen=True, eq=False, repr=False)
class Roll(Routing):
    """Cyclic shifts (PyTorch ``torch.roll(x, shifts, dims)``; ``dims`` count the batch axis and may not name it):
    along each axis ``dims[k]``, entry ``i`` moves to ``(i + shifts[k]) mod n``.  Swin's shifted windows.

    Parameters
    ----------
    shifts : tuple of int
        One per axis, of either sign.
    dims : tuple of int
        Distinct axes >= 1.
    """

    shifts: tuple = config(validate.integers)
    dims: tuple = config(_axes)

    def _validate(self):
        if len(self.shifts) != len(self.dims):
            raise ReflrpError(f"Roll: {len(self.shifts)} shifts for {len(self.dims)} dims")

    def output_shape(self, shape):
        if max(self.dims) > len(shape):
            raise ReflrpError(f"dims {self.dims} are out of range for per-sample shape {tuple(shape)}")
        return tuple(shape)

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        return np.roll(inputs[0], self.shifts, self.dims)

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        return [np.roll(s, tuple(-k for k in self.shifts), self.dims)]


__all__ = ["Permute", "Roll"]
