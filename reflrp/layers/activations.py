"""Activations: elementwise (Softmax: per-sample) nonlinearities.  Relevance passes through them unchanged (the
identity rule of the literature for activations: Montavon et al. 2019, "Layer-Wise Relevance Propagation: An
Overview", sec. 10.2; for GELU and SiLU as gates, Achtibat et al. 2024, "AttnLRP", sec. 3.3); Sigmoid, Softmax and
Tanh at the end of a model are output activations (explanations start below them)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np

from reflrp import kernels, validate
from reflrp.errors import ReflrpError
from reflrp.layers.base import Activation, array, config


@dataclass(frozen=True, eq=False, repr=False)
class ReLU(Activation):
    """max(a, 0)."""

    def forward(self, inputs):
        return np.maximum(inputs[0], 0)

    def derivative(self, a):
        return (a > 0).astype(a.dtype)


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

    def derivative(self, a):
        return np.where(a > 0, a.dtype.type(1), a.dtype.type(self.negative_slope))


@dataclass(frozen=True, eq=False, repr=False)
class PReLU(Activation):
    """a for a >= 0, ``weight * a`` otherwise, with a learned slope for every channel (axis 1) or one for all
    (PyTorch ``nn.PReLU``).

    Parameters
    ----------
    weight : ndarray of shape (C,) or (1,)
    """

    weight: np.ndarray = array(ndim=1)

    def output_shape(self, shape):
        if len(self.weight) > 1 and (len(shape) < 1 or shape[0] != len(self.weight)):
            raise ReflrpError(f"PReLU: {len(self.weight)} slopes need {len(self.weight)} channels (axis 1), got "
                              f"per-sample shape {tuple(shape)}")
        return tuple(shape)

    def _slope(self, a):
        return self.weight.reshape((1, -1) + (1,) * (a.ndim - 2)) if len(self.weight) > 1 else self.weight[0]

    def forward(self, inputs):
        (a,) = inputs
        return np.where(a >= 0, a, a * self._slope(a))

    def derivative(self, a):
        return np.where(a > 0, a.dtype.type(1), self._slope(a)).astype(a.dtype, copy=False)


@dataclass(frozen=True, eq=False, repr=False)
class ReLU6(Activation):
    """``min(max(a, 0), 6)`` (PyTorch ``nn.ReLU6``)."""

    def forward(self, inputs):
        return np.clip(inputs[0], 0, 6)

    def derivative(self, a):
        return ((a > 0) & (a < 6)).astype(a.dtype)


@dataclass(frozen=True, eq=False, repr=False)
class Hardsigmoid(Activation):
    """``relu6(a + 3) / 6`` (PyTorch ``nn.Hardsigmoid``); inside a network, usually a gate (squeeze and
    excitation)."""

    def forward(self, inputs):
        (a,) = inputs
        return np.clip(a + 3, 0, 6) / a.dtype.type(6)

    def derivative(self, a):
        # PyTorch's backward multiplies by 1/6 rounded to float32, in float64 too
        return np.where((a > -3) & (a < 3), a.dtype.type(np.float32(1 / 6)), a.dtype.type(0))


@dataclass(frozen=True, eq=False, repr=False)
class Hardswish(Activation):
    """``a * relu6(a + 3) / 6`` (PyTorch ``nn.Hardswish``)."""

    def forward(self, inputs):
        (a,) = inputs
        return a * (np.clip(a + 3, 0, 6) / a.dtype.type(6))

    def derivative(self, a):
        return np.where(a < -3, a.dtype.type(0), np.where(a <= 3, a / a.dtype.type(3) + a.dtype.type(0.5),
                                                          a.dtype.type(1)))


@dataclass(frozen=True, eq=False, repr=False)
class SiLU(Activation):
    """``a * sigmoid(a)`` (PyTorch ``nn.SiLU``, also called swish)."""

    def forward(self, inputs):
        (a,) = inputs
        # a * (0.5 * (1 + tanh(0.5 a))), the same operations in place: one temporary instead of five
        out = np.multiply(0.5, a)
        np.tanh(out, out=out)
        np.add(1.0, out, out=out)
        np.multiply(0.5, out, out=out)
        return np.multiply(a, out, out=out)

    def derivative(self, a):
        sigmoid = 0.5 * (1.0 + np.tanh(0.5 * a))
        return sigmoid * (1.0 + a * (1.0 - sigmoid))


@dataclass(frozen=True, eq=False, repr=False)
class GELU(Activation):
    """``a * Phi(a)``, ``Phi`` the standard normal distribution function (PyTorch ``nn.GELU``).

    Parameters
    ----------
    approximate : "none" or "tanh"
        "none": with the error function; "tanh": ``0.5 a (1 + tanh(sqrt(2 / pi) (a + 0.044715 a^3)))``.
    """

    approximate: str = config(validate.one_of("none", "tanh"), "none")

    def forward(self, inputs):
        (a,) = inputs
        if self.approximate == "none":
            return kernels.gelu(a)
        inner = a.dtype.type(0.7978845608028654) * (a + a.dtype.type(0.044715) * a * a * a)
        return 0.5 * a * (1.0 + np.tanh(inner))

    def derivative(self, a):
        if self.approximate == "none":  # PyTorch's backward: Phi(a) + a phi(a)
            cdf = 0.5 * (1.0 + kernels.erf(a * a.dtype.type(0.7071067811865476)))
            return cdf + a * (np.exp(-0.5 * a * a) * a.dtype.type(0.3989422804014327))
        root = a.dtype.type(0.7978845608028654)
        t = np.tanh(root * (a + a.dtype.type(0.044715) * a * a * a))
        return 0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * root * (1.0 + a.dtype.type(3 * 0.044715) * a * a)


@dataclass(frozen=True, eq=False, repr=False)
class Mish(Activation):
    """``a * tanh(softplus(a))`` with ``softplus(a) = log(1 + exp(a))`` (PyTorch ``nn.Mish``)."""

    def forward(self, inputs):
        (a,) = inputs
        return a * np.tanh(np.logaddexp(a.dtype.type(0), a))

    def derivative(self, a):
        t = np.tanh(np.logaddexp(a.dtype.type(0), a))
        return t + a * (0.5 * (1.0 + np.tanh(0.5 * a))) * (1.0 - t * t)


@dataclass(frozen=True, eq=False, repr=False)
class Tanh(Activation):
    """Hyperbolic tangent.  At the end of a model it is an output activation: explanations start below it."""

    output_activation: ClassVar[bool] = True

    def forward(self, inputs):
        return np.tanh(inputs[0])

    def derivative(self, a):
        t = np.tanh(a)
        return 1.0 - t * t


@dataclass(frozen=True, eq=False, repr=False)
class Sigmoid(Activation):
    """Logistic sigmoid; as the last layer, an output activation: explanations start at the logit below it."""

    output_activation: ClassVar[bool] = True

    def forward(self, inputs):
        return 0.5 * (1.0 + np.tanh(0.5 * inputs[0]))  # no overflow for large |a|

    def derivative(self, a):
        y = self.forward([a])
        return y * (1.0 - y)


@dataclass(frozen=True, eq=False, repr=False)
class Softmax(Activation):
    """Softmax along ``dim`` (counting the batch axis): ``y_i = exp(a_i) / sum_j exp(a_j)``.

    At a model's end it is an output activation (explanations start below it); inside a model (attention) its rule
    is :class:`reflrp.rules.Taylor` (AttnLRP's softmax rule) unless a composite says otherwise.

    Parameters
    ----------
    dim : int
        >= 1 (0 is the batch).
    causal : bool
        Over the last two axes (queries, keys), key ``j`` is hidden from query ``i`` when ``j > i + keys - queries``
        (a decoder's causal mask, PyTorch's ``is_causal=True``): its probability is exactly 0.  Needs ``dim`` to be
        the last axis.
    """

    dim: int = config(partial(validate.integer, minimum=1), 1)
    causal: bool = config(validate.boolean, False)

    role: ClassVar[str] = "softmax"
    output_activation: ClassVar[bool] = True
    pointwise: ClassVar[bool] = False

    def output_shape(self, shape):
        if self.dim > len(shape):
            raise ReflrpError(f"dim {self.dim} is out of range for per-sample shape {tuple(shape)}")
        if self.causal and (self.dim != len(shape) or len(shape) < 2):
            raise ReflrpError(f"a causal softmax runs over the last of (..., queries, keys), but dim is {self.dim} "
                              f"for per-sample shape {tuple(shape)}")
        return tuple(shape)

    def window(self, box, in_shapes):
        return ([box], self) if self.dim == 1 else None  # along channels: each position alone

    def hidden(self, shape):
        """The causal mask for an input of ``shape`` (batch included): True where a key is hidden; None when not
        causal."""
        if not self.causal:
            return None
        queries, keys = shape[-2:]
        return np.arange(keys)[None, :] > np.arange(queries)[:, None] + (keys - queries)

    def forward(self, inputs):
        (a,) = inputs
        hidden = self.hidden(a.shape)
        if hidden is not None:
            a = np.where(hidden, -np.inf, a)
        shifted = a - a.max(axis=self.dim, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=self.dim, keepdims=True)

    def gradient(self, a, r):
        """``J^T r = y * (r - sum(y * r))`` along ``dim``, ``y`` the softmax of ``a`` (rows of samples)."""
        y = self.forward([a])
        return y * (r - (y * r).sum(axis=self.dim, keepdims=True))


__all__ = ["GELU", "Hardsigmoid", "Hardswish", "LeakyReLU", "Mish", "ReLU", "ReLU6", "SiLU", "Sigmoid", "Softmax",
           "Tanh"]
