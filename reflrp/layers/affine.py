"""Affine layers ``z = W a + b``: Linear, BatchNorm1d, BatchNorm2d, BatchNorm3d, Scale (the convolutions:
:mod:`reflrp.layers.convolution`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np

from reflrp import kernels, validate
from reflrp.errors import ReflrpError
from reflrp.layers.base import AffineLayer, array, config


@dataclass(frozen=True, eq=False, repr=False)
class Linear(AffineLayer):
    """Dense layer ``a @ weight.T + bias`` over the last axis (PyTorch ``nn.Linear``): a sample of shape
    (..., in_features) becomes (..., out_features), every position on its own (ConvNeXt's and transformers' dense
    layers on (H, W, C) or (tokens, C)).

    Parameters
    ----------
    weight : ndarray of shape (out_features, in_features)
    bias : ndarray of shape (out_features,), optional
    """

    weight: np.ndarray = array(ndim=2)
    bias: np.ndarray | None = array(ndim=1, optional=True)

    combines_features: ClassVar[bool] = True

    def _validate(self):
        _check_bias(self, self.weight.shape[0])

    def affine_parameters(self):
        return self.weight, self.bias

    def output_shape(self, shape):
        if len(shape) == 1 and shape[0] != self.weight.shape[1]:
            raise ReflrpError(f"input has {shape[0]} features, weight expects {self.weight.shape[1]}")
        if not shape or shape[-1] != self.weight.shape[1]:
            raise ReflrpError(f"input has {shape[-1] if shape else 0} features on its last axis (per-sample shape "
                              f"{tuple(shape)}), weight expects {self.weight.shape[1]}; a Linear acts on the last "
                              f"axis: add a Flatten to flatten each sample first")
        return (*shape[:-1], self.weight.shape[0])

    def expand_bias(self, bias, ndim):
        """The bias along the last axis."""
        return bias.reshape((1,) * (ndim - 1) + (-1,))

    def linear(self, inputs, weight=None):
        (a,) = inputs
        weight = self.weight if weight is None else weight
        if a.ndim == 2:
            return kernels.linear_forward(a, weight)
        tokens = a.reshape(len(a), -1, a.shape[-1])
        return kernels.tokens_forward(tokens, weight).reshape(*a.shape[:-1], weight.shape[0])

    def adjoint(self, s, inputs, weight=None):
        weight = self.weight if weight is None else weight
        if s.ndim == 2:
            return [kernels.linear_adjoint(s, weight)]
        tokens = s.reshape(len(s), -1, s.shape[-1])
        return [kernels.tokens_adjoint(tokens, weight).reshape(*s.shape[:-1], weight.shape[1])]


def _check_bias(layer, outputs):
    if layer.bias is not None and layer.bias.shape[0] != outputs:
        raise ReflrpError(f"{type(layer).__name__}: bias has {layer.bias.shape[0]} entries, the layer has {outputs} "
                          f"outputs")


_eps = partial(validate.real, minimum=0.0)


@dataclass(frozen=True, eq=False, repr=False)
class _BatchNorm(AffineLayer, abstract=True):
    """Inference-mode batch normalisation as the affine map ``a * scale + shift`` along axis 1.

    ``scale = weight / sqrt(running_var + eps)`` and ``shift = bias - running_mean * scale`` (``weight`` 1 and
    ``bias`` 0 when not given).  Under an LRP rule the shift is a bias: what it absorbs or injects is recorded
    in the ledger.
    """

    running_mean: np.ndarray = array(ndim=1)
    running_var: np.ndarray = array(ndim=1)
    weight: np.ndarray | None = array(ndim=1, optional=True)
    bias: np.ndarray | None = array(ndim=1, optional=True)
    eps: float = config(_eps, 1e-5)

    normalizes: ClassVar[bool] = True
    pointwise: ClassVar[bool] = True
    _input_ndims: ClassVar[tuple] = ()
    _input_layout: ClassVar[str] = ""

    def _validate(self):
        name, n = type(self).__name__, self.num_features
        for what in ("running_var", "weight", "bias"):
            values = getattr(self, what)
            if values is not None and values.shape[0] != n:
                raise ReflrpError(f"{name}: {what} has {values.shape[0]} entries, running_mean has {n}")
        if np.any(self.running_var + self.eps <= 0):
            raise ReflrpError(f"{name}: running_var + eps must be > 0")
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            finite = np.all(np.isfinite(self.scale)) and np.all(np.isfinite(self.shift))
        if not finite:
            raise ReflrpError(f"{name}: weight / sqrt(running_var + eps) or the shift it gives overflows "
                              f"{self.running_mean.dtype}")

    @property
    def num_features(self):
        return self.running_mean.shape[0]

    @property
    def scale(self):
        """``weight / sqrt(running_var + eps)``, per channel."""
        return self.fused()[0]

    @property
    def shift(self):
        """``bias - running_mean * scale``, per channel."""
        return self.fused()[1]

    def fused(self, weight=None, bias=None, variance=None):
        """The affine map ``(scale, shift)``: ``scale = weight / sqrt(variance + eps)``, ``shift = bias -
        running_mean * scale``, with the layer's own ``weight`` (1 when absent), ``bias`` (0 when absent) and
        ``running_var`` unless others are given.  The one BatchNorm fusion: :attr:`scale`, :attr:`shift`,
        :func:`reflrp.canonize.merge_batchnorm` and rules that modify BatchNorm's own weight all use it."""
        if weight is None:
            weight = np.ones_like(self.running_mean) if self.weight is None else self.weight
        if bias is None:
            bias = np.zeros_like(self.running_mean) if self.bias is None else self.bias
        scale = weight / np.sqrt((self.running_var if variance is None else variance) + self.eps)
        return scale, bias - self.running_mean * scale

    def affine_parameters(self):
        return self.scale, self.shift

    def output_shape(self, shape):
        if len(shape) not in self._input_ndims:
            raise ReflrpError(f"input must be {self._input_layout}, got per-sample shape {tuple(shape)}")
        if shape[0] != self.num_features:
            raise ReflrpError(f"input has {shape[0]} channels, layer has {self.num_features}")
        return tuple(shape)

    def linear(self, inputs, weight=None):
        (a,) = inputs
        return a * self.expand_bias(self.scale if weight is None else weight, a.ndim)

    def adjoint(self, s, inputs, weight=None):
        return [s * self.expand_bias(self.scale if weight is None else weight, s.ndim)]


@dataclass(frozen=True, eq=False, repr=False)
class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) at inference (PyTorch ``nn.BatchNorm1d``, ``eval()``).

    Parameters
    ----------
    running_mean, running_var : ndarray of shape (C,)
    weight, bias : ndarray of shape (C,), optional
        PyTorch's affine parameters (gamma and beta).
    eps : float
    """

    _input_ndims: ClassVar[tuple] = (1, 2)
    _input_layout: ClassVar[str] = "(N, C) or (N, C, L)"


@dataclass(frozen=True, eq=False, repr=False)
class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W) at inference (PyTorch ``nn.BatchNorm2d``, ``eval()``).

    Parameters are those of :class:`BatchNorm1d`.
    """

    _input_ndims: ClassVar[tuple] = (3,)
    _input_layout: ClassVar[str] = "(N, C, H, W)"


@dataclass(frozen=True, eq=False, repr=False)
class BatchNorm3d(_BatchNorm):
    """Batch normalisation over (N, C, D, H, W) at inference (PyTorch ``nn.BatchNorm3d``, ``eval()``).

    Parameters are those of :class:`BatchNorm1d`.
    """

    _input_ndims: ClassVar[tuple] = (4,)
    _input_layout: ClassVar[str] = "(N, C, D, H, W)"


@dataclass(frozen=True, eq=False, repr=False)
class Scale(AffineLayer):
    """``a * weight + bias``: a learned elementwise scale and shift, broadcast against one sample (a parameter
    times a tensor in PyTorch, e.g. ConvNeXt's layer scale of shape (C, 1, 1); LayerNorm's affine part along the
    last axis).

    Parameters
    ----------
    weight : ndarray
        Broadcastable to one sample's shape without enlarging it.
    bias : ndarray, optional
        Broadcastable likewise.
    """

    weight: np.ndarray = array(ndim=None)
    bias: np.ndarray | None = array(ndim=None, optional=True)

    def _validate(self):
        if self.bias is not None:
            try:
                np.broadcast_shapes(self.weight.shape, self.bias.shape)
            except ValueError:
                raise ReflrpError(f"Scale: bias of shape {self.bias.shape} does not broadcast with weight of shape "
                                  f"{self.weight.shape}") from None

    def affine_parameters(self):
        return self.weight, self.bias

    def expand_bias(self, bias, ndim):
        """The bias broadcast against one sample, aligned at its last axis (as the weight is)."""
        return bias.reshape((1,) * (ndim - bias.ndim) + bias.shape)

    def output_shape(self, shape):
        shape = tuple(shape)
        for what, values in (("weight", self.weight), ("bias", self.bias)):
            try:
                fits = values is None or np.broadcast_shapes(values.shape, shape) == shape
            except ValueError:
                fits = False
            if not fits:
                raise ReflrpError(f"{what} of shape {values.shape} does not broadcast to the input {shape}")
        return shape

    def window(self, box, in_shapes):
        (shape,) = in_shapes
        for values in (self.weight, self.bias):  # aligned at the last axis: only the channel axis may vary
            if values is not None and any(n > 1 for n in values.shape[max(0, values.ndim - len(shape) + 1):]):
                return None
        return [box], self

    def linear(self, inputs, weight=None):
        (a,) = inputs
        return a * (self.weight if weight is None else weight)

    def adjoint(self, s, inputs, weight=None):
        return [s * (self.weight if weight is None else weight)]


__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Linear", "Scale"]
