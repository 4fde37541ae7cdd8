"""Normalisations whose statistics come from the input itself (LayerNorm, GroupNorm, RMSNorm), without their affine
part.

The normalisation ``(a - mean(a)) / sqrt(var(a) + eps)`` is not a fixed map: its statistics depend on the input.
Its rule is the identity (relevance passes through it unchanged: Ali et al. (2022), "XAI for Transformers: Better
Explanations through Conservative Propagation", ICML, sec. 4; Achtibat et al. (2024), "AttnLRP", sec. 3.3), and a
learned affine part is a layer of its own after it (:class:`~reflrp.layers.Scale` with its bias), so that rules
apply to it and its bias shows in the ledger.  Importers split PyTorch's ``LayerNorm`` that way.

A library that back-propagates a normalisation as its gradient (Zennit: no rule for it) is reproduced by
:class:`~reflrp.rules.Gradient`, which applies the normalisation's Jacobian transposed (:meth:`LayerNorm.gradient`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.layers.base import Layer, config


@dataclass(frozen=True, eq=False, repr=False)
class LayerNorm(Layer):
    """``(a - mean) / sqrt(var + eps)`` over the last ``len(normalized_shape)`` axes of each sample (PyTorch
    ``nn.LayerNorm`` without its ``weight`` and ``bias``: a following :class:`~reflrp.layers.Scale` holds them).

    Parameters
    ----------
    normalized_shape : tuple of int
        The trailing axes normalised together.
    eps : float
        > 0.
    """

    normalized_shape: tuple = config(partial(validate.integers, minimum=1))
    eps: float = config(partial(validate.real, above=0.0), 1e-5)

    role: ClassVar[str] = "normalization"

    def output_shape(self, shape):
        trailing = tuple(shape[len(shape) - len(self.normalized_shape):])
        if len(shape) < len(self.normalized_shape) or trailing != self.normalized_shape:
            raise ReflrpError(f"normalizes the trailing axes {self.normalized_shape}, but the input's per-sample "
                              f"shape is {tuple(shape)}")
        return tuple(shape)

    def forward(self, inputs):
        (a,) = inputs
        axes = tuple(range(a.ndim - len(self.normalized_shape), a.ndim))
        centred = a - a.mean(axis=axes, keepdims=True)
        variance = (centred * centred).mean(axis=axes, keepdims=True)
        return centred / np.sqrt(variance + a.dtype.type(self.eps))

    def gradient(self, a, r):
        """``J^T r``: the normalisation's Jacobian at ``a`` (rows of samples) transposed, applied to ``r``."""
        n = int(np.prod(self.normalized_shape))
        return _gradient(a.reshape(-1, n), r.reshape(-1, n), self.eps).reshape(r.shape)

    def adjoint_held(self, s, a):
        """The transpose of ``x -> (x - mean(x)) / sigma`` with ``sigma`` held at its value for ``a`` (rows of
        samples), applied to ``s``: ``(s - mean(s)) / sigma``."""
        n = int(np.prod(self.normalized_shape))
        return _centred_adjoint(s.reshape(-1, n), a.reshape(-1, n), self.eps).reshape(s.shape)


@dataclass(frozen=True, eq=False, repr=False)
class GroupNorm(Layer):
    """``(a - mean) / sqrt(var + eps)`` over each group of ``num_channels / num_groups`` channels and all positions
    of one sample (PyTorch ``nn.GroupNorm`` without its ``weight`` and ``bias``: a following
    :class:`~reflrp.layers.Scale` holds them); the identity rule, as :class:`LayerNorm`.

    Parameters
    ----------
    num_groups : int
        Divides the channels (axis 1).
    eps : float
        > 0.
    """

    num_groups: int = config(partial(validate.integer, minimum=1))
    eps: float = config(partial(validate.real, above=0.0), 1e-5)

    role: ClassVar[str] = "normalization"

    def output_shape(self, shape):
        if not shape or shape[0] % self.num_groups:
            raise ReflrpError(f"{self.num_groups} groups do not divide the {shape[0] if shape else 0} channels of "
                              f"per-sample shape {tuple(shape)}")
        return tuple(shape)

    def forward(self, inputs):
        (a,) = inputs
        grouped = a.reshape(len(a), self.num_groups, -1)
        centred = grouped - grouped.mean(axis=2, keepdims=True)
        variance = (centred * centred).mean(axis=2, keepdims=True)
        return (centred / np.sqrt(variance + a.dtype.type(self.eps))).reshape(a.shape)

    def gradient(self, a, r):
        """``J^T r``: the normalisation's Jacobian at ``a`` (rows of samples) transposed, applied to ``r``."""
        groups = (len(r), self.num_groups, -1)
        return _gradient(a.reshape(groups), r.reshape(groups), self.eps).reshape(r.shape)

    def adjoint_held(self, s, a):
        """As :meth:`LayerNorm.adjoint_held`, per group."""
        groups = (len(s), self.num_groups, -1)
        return _centred_adjoint(s.reshape(groups), a.reshape(groups), self.eps).reshape(s.shape)


@dataclass(frozen=True, eq=False, repr=False)
class RMSNorm(Layer):
    """``a / sqrt(mean(a^2) + eps)`` over the last ``len(normalized_shape)`` axes of each sample (PyTorch
    ``nn.RMSNorm`` and Llama's RMSNorm without their ``weight``: a following :class:`~reflrp.layers.Scale` holds
    it); the identity rule, as :class:`LayerNorm`.

    Parameters
    ----------
    normalized_shape : tuple of int
        The trailing axes normalised together.
    eps : float
        > 0 (PyTorch's ``eps=None`` is the machine epsilon of the input's dtype; importers resolve it).
    """

    normalized_shape: tuple = config(partial(validate.integers, minimum=1))
    eps: float = config(partial(validate.real, above=0.0), 1e-6)

    role: ClassVar[str] = "normalization"

    output_shape = LayerNorm.output_shape

    def forward(self, inputs):
        (a,) = inputs
        axes = tuple(range(a.ndim - len(self.normalized_shape), a.ndim))
        return a / np.sqrt((a * a).mean(axis=axes, keepdims=True) + a.dtype.type(self.eps))

    def gradient(self, a, r):
        """``J^T r = (r - y mean(r y)) / rms``: the normalisation's Jacobian at ``a`` transposed, applied to ``r``."""
        n = int(np.prod(self.normalized_shape))
        a2, r2 = a.reshape(-1, n), r.reshape(-1, n)
        rms = np.sqrt((a2 * a2).mean(axis=-1, keepdims=True) + a.dtype.type(self.eps))
        y = a2 / rms
        return ((r2 - y * (r2 * y).mean(axis=-1, keepdims=True)) / rms).reshape(r.shape)

    def adjoint_held(self, s, a):
        """The transpose of ``x -> x / rms`` with ``rms`` held at its value for ``a``, applied to ``s``."""
        n = int(np.prod(self.normalized_shape))
        a2 = a.reshape(-1, n)
        rms = np.sqrt((a2 * a2).mean(axis=-1, keepdims=True) + a.dtype.type(self.eps))
        return (s.reshape(-1, n) / rms).reshape(s.shape)


def _centred_adjoint(s, a, eps):
    """``(s - mean(s)) / sigma`` over the last axis, ``sigma = sqrt(var(a) + eps)``."""
    centred = a - a.mean(axis=-1, keepdims=True)
    sigma = np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + a.dtype.type(eps))
    return (s - s.mean(axis=-1, keepdims=True)) / sigma


def _gradient(a, r, eps):
    """``J^T r`` for ``y = (a - mean(a)) / s``, ``s = sqrt(var(a) + eps)``, over the last axis:
    ``dy_i/da_j = (delta_ij - 1/n - y_i y_j / n) / s``, so ``J^T r = (r - mean(r) - y mean(r y)) / s``."""
    centred = a - a.mean(axis=-1, keepdims=True)
    s = np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + a.dtype.type(eps))
    y = centred / s
    return (r - r.mean(axis=-1, keepdims=True) - y * (r * y).mean(axis=-1, keepdims=True)) / s


__all__ = ["GroupNorm", "LayerNorm", "RMSNorm"]
