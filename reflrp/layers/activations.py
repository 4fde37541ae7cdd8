"""Activations: elementwise (Softmax: per-sample) nonlinearities.  Relevance passes through them unchanged;
Sigmoid, Softmax and Tanh at the end of a model are output activations (explanations start below them)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.layers.base import Activation, config


@dataclass(frozen=True, eq=False, repr=False)
class ReLU(Activation):
    """max(a, 0)."""

    def forward(self, inputs):
        return np.maximum(inputs[0], 0)


@dataclass(frozen=True, eq=False, repr=False)
class LeakyReLU(Activation):
    """a for a >= 0, ``negative_slope * a`` otherwise.

    Parameters
    ----------
    negative_slope : float
    """

    negative_slope: float = config(validate.real, 0.01)

    def forward(self, inputs):
        (a,) = inputs
        return np.where(a >= 0, a, a * a.dtype.type(self.negative_slope))


@dataclass(frozen=True, eq=False, repr=False)
class Tanh(Activation):
    """Hyperbolic tangent.  At the end of a model it is an output activation: explanations start below it."""

    output_activation: ClassVar[bool] = True

    def forward(self, inputs):
        return np.tanh(inputs[0])


@dataclass(frozen=True, eq=False, repr=False)
class Sigmoid(Activation):
    """Logistic sigmoid; as the last layer, an output activation: explanations start at the logit below it."""

    output_activation: ClassVar[bool] = True

    def forward(self, inputs):
        return 0.5 * (1.0 + np.tanh(0.5 * inputs[0]))  # no overflow for large |a|


@dataclass(frozen=True, eq=False, repr=False)
class Softmax(Activation):
    """Softmax along ``dim`` (counting the batch axis).  Only allowed as a model's output activation.

    Parameters
    ----------
    dim : int
        >= 1 (0 is the batch).
    """

    dim: int = config(partial(validate.integer, minimum=1), 1)

    output_activation: ClassVar[bool] = True
    output_only: ClassVar[bool] = True

    def output_shape(self, shape):
        if self.dim > len(shape):
            raise ReflrpError(f"dim {self.dim} is out of range for per-sample shape {tuple(shape)}")
        return tuple(shape)

    def forward(self, inputs):
        (a,) = inputs
        shifted = a - a.max(axis=self.dim, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=self.dim, keepdims=True)


__all__ = ["LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh"]
