"""The elementwise product of two inputs (a gate times a signal: squeeze-and-excitation, gated units)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np

from reflrp import validate
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

    def output_shape(self, *shapes):
        try:
            return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))
        except ValueError:
            raise ReflrpError(f"inputs of shapes {', '.join(str(tuple(s)) for s in shapes)} do not broadcast "
                              f"together") from None

    def forward(self, inputs):
        return np.multiply(inputs[0], inputs[1])


__all__ = ["Multiply"]
