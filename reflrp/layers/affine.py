"""Affine layers ``z = W a + b``: Linear, Conv1d, Conv2d, ConvTranspose2d, BatchNorm1d, BatchNorm2d, Scale."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np

from reflrp import kernels, validate
from reflrp.errors import ReflrpError
from reflrp.layers.base import AffineLayer, array, config, spatial

_pair1 = partial(validate.pair, minimum=1)
_positive = partial(validate.integer, minimum=1)


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


def _conv_padding(value, label):
    """An int, a pair, "same" or "valid"."""
    if isinstance(value, str) and value in ("same", "valid"):
        return value
    if isinstance(value, str):
        raise ReflrpError(f"{label} must be an int, a pair, 'same' or 'valid', got {value!r}")
    return validate.pair(value, label)


@dataclass(frozen=True, eq=False, repr=False)
class _Convolution(AffineLayer, abstract=True):
    """What Conv2d and ConvTranspose2d share: 4-D weight, bias, stride, dilation, groups, channel checks."""

    weight: np.ndarray = array(ndim=4)
    bias: np.ndarray | None = array(ndim=1, optional=True)
    stride: tuple = config(_pair1, 1, kw_only=True)
    dilation: tuple = config(_pair1, 1, kw_only=True)
    groups: int = config(_positive, 1, kw_only=True)

    combines_features: ClassVar[bool] = True

    _grouped_axis: ClassVar[str] = ""  # what weight.shape[0] counts: groups must divide it

    def _validate(self):
        if self.weight.shape[0] % self.groups:
            raise ReflrpError(f"{type(self).__name__}: {self._grouped_axis} {self.weight.shape[0]} is not divisible "
                              f"by groups {self.groups}")
        _check_bias(self, self.out_channels)

    def affine_parameters(self):
        return self.weight, self.bias

    def _check_channels(self, shape):
        spatial(shape)
        if shape[0] != self.in_channels:
            raise ReflrpError(f"input has {shape[0]} channels, weight expects {self.in_channels}")


@dataclass(frozen=True, eq=False, repr=False)
class Conv2d(_Convolution):
    """2-D convolution (PyTorch ``nn.Conv2d``, cross-correlation).

    Parameters
    ----------
    weight : ndarray of shape (out_channels, in_channels // groups, kh, kw)
    bias : ndarray of shape (out_channels,), optional
    stride, dilation : int or pair of int
    padding : int, pair of int, "same" or "valid"
        Zero padding.  "same" (stride 1 only) puts an odd extra row/column at the bottom/right, as PyTorch.
    groups : int
    """

    padding: tuple | str = config(_conv_padding, 0, kw_only=True)

    _grouped_axis: ClassVar[str] = "out_channels"

    def _validate(self):
        super()._validate()
        if self.padding == "same" and self.stride != (1, 1):
            raise ReflrpError(f"Conv2d: padding='same' needs stride 1, got stride {self.stride}")

    @property
    def in_channels(self):
        return self.weight.shape[1] * self.groups

    @property
    def out_channels(self):
        return self.weight.shape[0]

    @property
    def pads(self):
        """Zero padding as (top, bottom, left, right); PyTorch's "same" puts the odd pixel at the bottom/right."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            total = [d * (k - 1) for k, d in zip(self.weight.shape[2:], self.dilation)]
            return (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)
        ph, pw = self.padding
        return (ph, ph, pw, pw)

    def output_shape(self, shape):
        self._check_channels(shape)
        kh, kw = self.weight.shape[2:]
        pt, pb, pl, pr = self.pads
        oh = kernels.conv.conv_output_size(shape[1], kh, self.stride[0], pt + pb, self.dilation[0])
        ow = kernels.conv.conv_output_size(shape[2], kw, self.stride[1], pl + pr, self.dilation[1])
        if oh < 1 or ow < 1:
            raise ReflrpError(f"input of size {shape[1]}x{shape[2]} is smaller than the (dilated) kernel")
        return (self.out_channels, oh, ow)

    def linear(self, inputs, weight=None):
        (a,) = inputs
        weight = self.weight if weight is None else weight
        return kernels.conv2d_forward(a, weight, self.stride, self.pads, self.dilation, self.groups)

    def linear_many(self, inputs, weights):
        (a,) = inputs
        return kernels.conv2d_forward_many(a, weights, self.stride, self.pads, self.dilation, self.groups)

    def adjoint(self, s, inputs, weight=None):
        weight = self.weight if weight is None else weight
        input_hw = inputs[0].shape[2:]
        return [kernels.conv2d_adjoint(s, weight, input_hw, self.stride, self.pads, self.dilation, self.groups)]


@dataclass(frozen=True, eq=False, repr=False)
class ConvTranspose2d(_Convolution):
    """Transposed 2-D convolution (PyTorch ``nn.ConvTranspose2d``): the adjoint of a ``Conv2d``.

    Parameters
    ----------
    weight : ndarray of shape (in_channels, out_channels // groups, kh, kw)
        IOHW, as PyTorch.
    bias : ndarray of shape (out_channels,), optional
    stride, padding, output_padding, dilation : int or pair of int
        Output size ``(H - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``.
    groups : int
    """

    padding: tuple = config(validate.pair, 0, kw_only=True)
    output_padding: tuple = config(validate.pair, 0, kw_only=True)

    _grouped_axis: ClassVar[str] = "in_channels"

    def _validate(self):
        super()._validate()
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= max(s, d):
                raise ReflrpError(f"ConvTranspose2d: output_padding {op} must be smaller than stride or dilation")

    @property
    def in_channels(self):
        return self.weight.shape[0]

    @property
    def out_channels(self):
        return self.weight.shape[1] * self.groups

    @property
    def pads(self):
        """The padding of the convolution this layer transposes, as (top, bottom, left, right)."""
        return (self.padding[0], self.padding[0], self.padding[1], self.padding[1])

    def output_shape(self, shape):
        self._check_channels(shape)
        size = [
            (n - 1) * s - 2 * p + d * (k - 1) + op + 1
            for n, s, p, d, k, op in zip(
                shape[1:], self.stride, self.padding, self.dilation, self.weight.shape[2:], self.output_padding
            )
        ]
        if min(size) < 1:
            raise ReflrpError(f"output size {size[0]}x{size[1]} is empty: padding too large")
        return (self.out_channels, size[0], size[1])

    def linear(self, inputs, weight=None):
        (a,) = inputs
        weight = self.weight if weight is None else weight
        out_hw = self.output_shape(a.shape[1:])[1:]
        return kernels.conv2d_adjoint(a, weight, out_hw, self.stride, self.pads, self.dilation, self.groups)

    def adjoint(self, s, inputs, weight=None):
        weight = self.weight if weight is None else weight
        c = kernels.conv2d_forward(s, weight, self.stride, self.pads, self.dilation, self.groups)
        h, w = inputs[0].shape[2:]
        # with output_padding >= stride (allowed when dilation is larger) the convolution reaches past the input
        return [c if c.shape[2:] == (h, w) else np.ascontiguousarray(c[:, :, :h, :w])]


def _single(value, label, minimum=0):
    """An int, or PyTorch's 1-tuple of an int."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    return validate.integer(value, label, minimum=minimum)


def _conv1d_padding(value, label):
    if isinstance(value, str):
        return _conv_padding(value, label)
    return _single(value, label)


@dataclass(frozen=True, eq=False, repr=False)
class Conv1d(AffineLayer):
    """1-D convolution (PyTorch ``nn.Conv1d``), computed by the 2-D kernels on (N, C, 1, L).

    Parameters
    ----------
    weight : ndarray of shape (out_channels, in_channels // groups, k)
    bias : ndarray of shape (out_channels,), optional
    stride, dilation : int
    padding : int, "same" or "valid"
    groups : int
    """

    weight: np.ndarray = array(ndim=3)
    bias: np.ndarray | None = array(ndim=1, optional=True)
    stride: int = config(partial(_single, minimum=1), 1, kw_only=True)
    padding: int | str = config(_conv1d_padding, 0, kw_only=True)
    dilation: int = config(partial(_single, minimum=1), 1, kw_only=True)
    groups: int = config(_positive, 1, kw_only=True)

    combines_features: ClassVar[bool] = True

    def _validate(self):
        if self.weight.shape[0] % self.groups:
            raise ReflrpError(f"Conv1d: out_channels {self.weight.shape[0]} is not divisible by groups {self.groups}")
        _check_bias(self, self.weight.shape[0])
        if self.padding == "same" and self.stride != 1:
            raise ReflrpError(f"Conv1d: padding='same' needs stride 1, got stride {self.stride}")

    def _as_2d(self):
        """The equivalent Conv2d arguments (H = 1): stride, pads, dilation."""
        if self.padding == "valid":
            left = right = 0
        elif self.padding == "same":
            total = self.dilation * (self.weight.shape[2] - 1)
            left, right = total // 2, total - total // 2
        else:
            left = right = self.padding
        return (1, self.stride), (0, 0, left, right), (1, self.dilation)

    def affine_parameters(self):
        return self.weight, self.bias

    def output_shape(self, shape):
        if len(shape) != 2:
            raise ReflrpError(f"input must be (N, C, L), got per-sample shape {tuple(shape)}")
        in_channels = self.weight.shape[1] * self.groups
        if shape[0] != in_channels:
            raise ReflrpError(f"input has {shape[0]} channels, weight expects {in_channels}")
        _, pads, _ = self._as_2d()
        length = kernels.conv.conv_output_size(shape[1], self.weight.shape[2], self.stride, pads[2] + pads[3],
                                               self.dilation)
        if length < 1:
            raise ReflrpError(f"input of length {shape[1]} is shorter than the (dilated) kernel")
        return (self.weight.shape[0], length)

    def linear(self, inputs, weight=None):
        (a,) = inputs
        weight = self.weight if weight is None else weight
        stride, pads, dilation = self._as_2d()
        out = kernels.conv2d_forward(a[:, :, None, :], weight[:, :, None, :], stride, pads, dilation, self.groups)
        return out[:, :, 0, :]

    def adjoint(self, s, inputs, weight=None):
        weight = self.weight if weight is None else weight
        stride, pads, dilation = self._as_2d()
        c = kernels.conv2d_adjoint(s[:, :, None, :], weight[:, :, None, :], (1, inputs[0].shape[2]), stride, pads,
                                   dilation, self.groups)
        return [c[:, :, 0, :]]


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

    def linear(self, inputs, weight=None):
        (a,) = inputs
        return a * (self.weight if weight is None else weight)

    def adjoint(self, s, inputs, weight=None):
        return [s * (self.weight if weight is None else weight)]


__all__ = ["BatchNorm1d", "BatchNorm2d", "Conv1d", "Conv2d", "ConvTranspose2d", "Linear", "Scale"]
