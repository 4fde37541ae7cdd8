"""Products of two inputs: elementwise (a gate times a signal: squeeze-and-excitation, gated units) and the
matrix product of two activations (attention's ``q @ k.T`` and ``attention @ v``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np

from reflrp import validate
from reflrp.arrays import unbroadcast
from reflrp.errors import ReflrpError
from reflrp.layers.base import Layer, config, optional


@dataclass(frozen=True, eq=False, repr=False)
class Multiply(Layer):
    """``a_0 * a_1``, broadcasting one sample's shapes as numpy and PyTorch do (``x * gate`` with a gate of shape
    (C, 1, 1) in squeeze-and-excitation blocks).  Neither linear nor affine: its own rules
    (:class:`reflrp.rules.Product`) decide how relevance is shared.

    Parameters
    ----------
    gate : 0, 1 or None
        Which input is a gate (a sigmoid-like factor in [0, 1] that modulates the other, the signal); None when
        neither is.  Importers mark it when exactly one input comes from a Sigmoid or Hardsigmoid.
    """

    gate: int | None = config(optional(partial(validate.integer, minimum=0, maximum=1)), None)

    role: ClassVar[str] = "product"
    n_inputs: ClassVar[int] = 2
    contracts: ClassVar[bool] = False
    pointwise: ClassVar[bool] = True

    def output_shape(self, *shapes):
        try:
            return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))
        except ValueError:
            raise ReflrpError(f"inputs of shapes {', '.join(str(tuple(s)) for s in shapes)} do not broadcast "
                              f"together") from None

    def forward(self, inputs):
        return np.multiply(inputs[0], inputs[1])

    def partials(self, s, inputs):
        """``[s * a_1, s * a_0]`` summed back to each input's shape: the adjoint of the product in each factor with
        the other held fixed (``inputs`` one row per row of ``s``)."""
        a, b = inputs
        return [unbroadcast(s * b, a.shape[1:]), unbroadcast(s * a, b.shape[1:])]


@dataclass(frozen=True, eq=False, repr=False)
class MatMul(Layer):
    """``a_0 @ a_1`` over the last two axes of each sample (PyTorch ``torch.matmul`` of two activations: attention's
    ``q @ k.transpose(-2, -1)`` and ``attention @ v``): per-sample shapes (..., n, k) and (..., k, m) with equal
    leading axes (heads) give (..., n, m).  One product per sample and leading index, so a sample's bits do not
    depend on the batch.  Bilinear, not linear: its rule (:class:`reflrp.rules.Product`) shares each output's
    relevance among its contributions ``a_0[i, j] a_1[j, k]`` and decides how each contribution's share is split
    between its two factors.

    Parameters
    ----------
    gate : 0, 1 or None
        Which input is a gate (attention probabilities, which weigh the other input's values); None when neither
        is.  Importers mark the input made by a Softmax.
    """

    gate: int | None = config(optional(partial(validate.integer, minimum=0, maximum=1)), None)

    role: ClassVar[str] = "product"
    n_inputs: ClassVar[int] = 2
    contracts: ClassVar[bool] = True  # an output sums several contributions

    def output_shape(self, *shapes):
        a, b = (tuple(s) for s in shapes)
        if len(a) < 2 or len(b) < 2 or a[:-2] != b[:-2] or a[-1] != b[-2]:
            raise ReflrpError(f"cannot multiply per-sample shapes {a} and {b}: they must be (..., n, k) and "
                              f"(..., k, m) with the same leading axes")
        return (*a[:-1], b[-1])

    def forward(self, inputs):
        return np.matmul(inputs[0], inputs[1])

    def partials(self, s, inputs):
        """``[s @ a_1.T, a_0.T @ s]``: the adjoint of the product in each factor with the other held fixed
        (``inputs`` one row per row of ``s``)."""
        a, b = inputs
        return [np.matmul(s, np.swapaxes(b, -1, -2)), np.matmul(np.swapaxes(a, -1, -2), s)]


__all__ = ["MatMul", "Multiply"]
