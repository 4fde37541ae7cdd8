"""Convolutions, affine layers ``z = W * a + b``: Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d,
ConvTranspose3d.

Conv2d and Conv3d (and their transposes) are one definition for any number of spatial axes (``_dims``): their sizes,
paddings and checks are written once.  The kernels compute 2-D directly, 1-D (Conv1d) as 2-D of height 1 and 3-D
as 2-D with the depth taps read as channels (:mod:`reflrp.kernels.conv3d`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np

from reflrp import boxes, kernels, validate
from reflrp.errors import ReflrpError
from reflrp.layers.affine import _check_bias
from reflrp.layers.base import AffineLayer, array, config

_pair1 = partial(validate.pair, minimum=1)
_triple1 = partial(validate.triple, minimum=1)
_positive = partial(validate.integer, minimum=1)


def _sides(sizes, dims):
    """A padding check: an int, one int per axis (``sizes``), or a (before, after) pair per axis in axis order,
    ``(top, bottom, left, right)`` in 2-D (what the receptive cone cuts a layer with)."""

    def check(value, label):
        if isinstance(value, (tuple, list)) and len(value) == 2 * dims:
            return validate.integers(value, label, 2 * dims, minimum=0)
        return sizes(value, label)

    return check


def _padding(sizes, what, dims):
    """A convolution's padding check: :func:`_sides`, "same" or "valid"."""
    sides = _sides(sizes, dims)

    def check(value, label):
        if isinstance(value, str) and value in ("same", "valid"):
            return value
        if isinstance(value, str):
            raise ReflrpError(f"{label} must be an int, a {what}, 'same' or 'valid', got {value!r}")
        return sides(value, label)

    return check


_conv_padding = _padding(validate.pair, "pair", 2)
_conv3d_padding = _padding(validate.triple, "triple", 3)


def _pads(padding, dims):
    """Padding before and after each axis, from one int per axis or from (before, after) pairs."""
    return tuple(padding) if len(padding) == 2 * dims else tuple(p for p in padding for _ in range(2))


def _row(values, fill):
    """1-D geometry as 2-D of height 1."""
    return (fill, *values)


def _conv1d_forward_many(x, weights, stride, padding, dilation, groups):
    outs = kernels.conv2d_forward_many(x[:, :, None], [w[:, :, None] for w in weights], _row(stride, 1),
                                       (0, 0, *padding), _row(dilation, 1), groups)
    return [out[:, :, 0] for out in outs]


def _conv1d_forward(x, weight, stride, padding, dilation, groups):
    return _conv1d_forward_many(x, [weight], stride, padding, dilation, groups)[0]


def _conv1d_adjoint(s, weight, size, stride, padding, dilation, groups):
    return kernels.conv2d_adjoint(s[:, :, None], weight[:, :, None], (1, *size), _row(stride, 1), (0, 0, *padding),
                                  _row(dilation, 1), groups)[:, :, 0]


#: The kernels of each number of spatial axes: (forward, forward with several weights, adjoint); 1-D runs on the
#: 2-D kernels at height 1.
_KERNELS = {1: (_conv1d_forward, _conv1d_forward_many, _conv1d_adjoint),
            2: (kernels.conv2d_forward, kernels.conv2d_forward_many, kernels.conv2d_adjoint),
            3: (kernels.conv3d_forward, kernels.conv3d_forward_many, kernels.conv3d_adjoint)}


def _spatial_size(shape):
    return "x".join(str(k) for k in shape)


@dataclass(frozen=True, eq=False, repr=False)
class _Convolution(AffineLayer, abstract=True):
    """What every convolution shares, for ``_dims`` spatial axes: weight (two channel axes, then the kernel), bias,
    stride, dilation, groups, channel checks."""

    weight: np.ndarray = array(ndim=4)
    bias: np.ndarray | None = array(ndim=1, optional=True)
    stride: tuple = config(_pair1, 1, kw_only=True)
    dilation: tuple = config(_pair1, 1, kw_only=True)
    groups: int = config(_positive, 1, kw_only=True)

    combines_features: ClassVar[bool] = True

    _dims: ClassVar[int] = 2
    _grouped_axis: ClassVar[str] = ""  # what weight.shape[0] counts: groups must divide it

    def _validate(self):
        if self.weight.shape[0] % self.groups:
            raise ReflrpError(f"{type(self).__name__}: {self._grouped_axis} {self.weight.shape[0]} is not divisible "
                              f"by groups {self.groups}")
        _check_bias(self, self.out_channels)

    def affine_parameters(self):
        return self.weight, self.bias

    def _check_channels(self, shape):
        if len(shape) != 1 + self._dims:
            axes = ("D, H, W", "H, W")[3 - self._dims] if self._dims > 1 else "L"
            raise ReflrpError(f"input must be (N, C, {axes}), got per-sample shape {tuple(shape)}")
        if shape[0] != self.in_channels:
            raise ReflrpError(f"input has {shape[0]} channels, weight expects {self.in_channels}")

    def _kernels(self):
        return _KERNELS[self._dims]


@dataclass(frozen=True, eq=False, repr=False)
class _Volume(_Convolution, abstract=True):
    """The fields of a convolution in three axes: a 5-D weight, stride and dilation an int or a triple."""

    weight: np.ndarray = array(ndim=5)
    bias: np.ndarray | None = array(ndim=1, optional=True)
    stride: tuple = config(_triple1, 1, kw_only=True)
    dilation: tuple = config(_triple1, 1, kw_only=True)

    _dims: ClassVar[int] = 3


@dataclass(frozen=True, eq=False, repr=False)
class _Forward(_Convolution, abstract=True):
    """A convolution (cross-correlation, as PyTorch) in ``_dims`` spatial axes: Conv2d, Conv3d."""

    padding: tuple | str = config(_conv_padding, 0, kw_only=True)

    _grouped_axis: ClassVar[str] = "out_channels"

    def _validate(self):
        super()._validate()
        if self.padding == "same" and self.stride != (1,) * self._dims:
            raise ReflrpError(f"{type(self).__name__}: padding='same' needs stride 1, got stride {self.stride}")

    @property
    def in_channels(self):
        return self.weight.shape[1] * self.groups

    @property
    def out_channels(self):
        return self.weight.shape[0]

    @property
    def pads(self):
        """Zero padding before and after each spatial axis: (top, bottom, left, right) in 2-D, (front, back, top,
        bottom, left, right) in 3-D; PyTorch's "same" puts the odd pixel after."""
        if self.padding == "valid":
            return (0,) * (2 * self._dims)
        if self.padding == "same":
            totals = [d * (k - 1) for k, d in zip(self.weight.shape[2:], self.dilation)]
            return tuple(p for total in totals for p in (total // 2, total - total // 2))
        return _pads(self.padding, self._dims)

    def output_shape(self, shape):
        self._check_channels(shape)
        pads = self.pads
        size = tuple(kernels.conv.conv_output_size(n, k, s, pads[2 * axis] + pads[2 * axis + 1], d)
                     for axis, (n, k, s, d) in enumerate(zip(shape[1:], self.weight.shape[2:], self.stride,
                                                             self.dilation)))
        if min(size) < 1:
            raise ReflrpError(f"input of size {_spatial_size(shape[1:])} is smaller than the (dilated) kernel")
        return (self.out_channels, *size)

    def window(self, box, in_shapes):
        (shape,) = in_shapes
        if box[0] != (0, self.out_channels):
            return None
        spans, pads = [], []
        for axis, (lo, hi) in enumerate(box[1:]):
            span, sides = boxes.sliding(lo, hi, shape[1 + axis], self.weight.shape[2 + axis], self.stride[axis],
                                        self.dilation[axis], self.pads[2 * axis])
            if span[1] <= span[0]:  # outputs that read padding alone
                return None
            spans.append(span)
            pads.extend(sides)
        return [((0, shape[0]), *spans)], self.reconfigured(padding=tuple(pads))

    def linear(self, inputs, weight=None):
        (a,) = inputs
        weight = self.weight if weight is None else weight
        return self._kernels()[0](a, weight, self.stride, self.pads, self.dilation, self.groups)

    def linear_many(self, inputs, weights):
        (a,) = inputs
        return self._kernels()[1](a, weights, self.stride, self.pads, self.dilation, self.groups)

    def adjoint(self, s, inputs, weight=None):
        weight = self.weight if weight is None else weight
        return [self._kernels()[2](s, weight, inputs[0].shape[2:], self.stride, self.pads, self.dilation,
                                   self.groups)]


@dataclass(frozen=True, eq=False, repr=False)
class Conv2d(_Forward):
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


@dataclass(frozen=True, eq=False, repr=False)
class Conv3d(_Volume, _Forward):
    """3-D convolution (PyTorch ``nn.Conv3d``, cross-correlation): :class:`Conv2d` with a depth axis.

    Parameters
    ----------
    weight : ndarray of shape (out_channels, in_channels // groups, kd, kh, kw)
    bias : ndarray of shape (out_channels,), optional
    stride, dilation : int or triple of int
    padding : int, triple of int, "same" or "valid"
    groups : int
    """

    padding: tuple | str = config(_conv3d_padding, 0, kw_only=True)


@dataclass(frozen=True, eq=False, repr=False)
class _Transposed(_Convolution, abstract=True):
    """A transposed convolution in ``_dims`` spatial axes, the adjoint of a convolution: ConvTranspose2d,
    ConvTranspose3d."""

    padding: tuple = config(_sides(validate.pair, 2), 0, kw_only=True)
    output_padding: tuple = config(validate.pair, 0, kw_only=True)

    _grouped_axis: ClassVar[str] = "in_channels"

    def _validate(self):
        super()._validate()
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= max(s, d):
                raise ReflrpError(f"{type(self).__name__}: output_padding {op} must be smaller than stride or "
                                  f"dilation")

    @property
    def in_channels(self):
        return self.weight.shape[0]

    @property
    def out_channels(self):
        return self.weight.shape[1] * self.groups

    @property
    def pads(self):
        """The padding of the convolution this layer transposes, before and after each spatial axis."""
        return _pads(self.padding, self._dims)

    def output_shape(self, shape):
        self._check_channels(shape)
        pads = self.pads
        size = [
            (n - 1) * s - pads[2 * axis] - pads[2 * axis + 1] + d * (k - 1) + op + 1
            for axis, (n, s, d, k, op) in enumerate(zip(
                shape[1:], self.stride, self.dilation, self.weight.shape[2:], self.output_padding
            ))
        ]
        if min(size) < 1:
            raise ReflrpError(f"output size {_spatial_size(size)} is empty: padding too large")
        return (self.out_channels, *size)

    def window(self, box, in_shapes):
        (shape,) = in_shapes
        if box[0] != (0, self.out_channels):
            return None
        spans, pads, extra = [], [], []
        for axis, (lo, hi) in enumerate(box[1:]):
            cut = _transposed_axis(lo, hi, shape[1 + axis], self.weight.shape[2 + axis], self.stride[axis],
                                   self.dilation[axis], self.pads[2 * axis])
            if cut is None:
                return None
            spans.append(cut[0])
            pads.extend(cut[1])
            extra.append(cut[2])
        return [((0, shape[0]), *spans)], self.reconfigured(padding=tuple(pads), output_padding=tuple(extra))

    def linear(self, inputs, weight=None):
        (a,) = inputs
        weight = self.weight if weight is None else weight
        out_size = self.output_shape(a.shape[1:])[1:]
        return self._kernels()[2](a, weight, out_size, self.stride, self.pads, self.dilation, self.groups)

    def adjoint(self, s, inputs, weight=None):
        weight = self.weight if weight is None else weight
        c = self._kernels()[0](s, weight, self.stride, self.pads, self.dilation, self.groups)
        size = inputs[0].shape[2:]
        # with output_padding >= stride (allowed when dilation is larger) the convolution reaches past the input
        return [c if c.shape[2:] == size else np.ascontiguousarray(c[(slice(None), slice(None),
                                                                     *(slice(0, k) for k in size))])]


def _transposed_axis(lo, hi, size, kernel, stride, dilation, before):
    """Along one axis, the cut of a transposed convolution for outputs ``lo .. hi - 1``: the inputs ``(i_lo,
    i_hi)`` that reach them, and the padding (before, after) and output padding that make the cut compute exactly
    ``hi - lo`` outputs from them; None when no such cut exists.

    Input ``i`` reaches outputs ``i * stride - before + t * dilation`` for taps ``t``: the cut is the convolution
    it transposes, run on the outputs ``lo .. hi - 1`` with the padding that keeps every input's taps in place."""
    span = dilation * (kernel - 1)
    first = max(0, -(-(lo + before - span) // stride))  # the first input whose taps reach ``lo``
    i_lo = min(first, (lo + before) // stride)  # none after the first output: the padding before is >= 0
    i_hi = min(size, (hi - 1 + before) // stride + 1)
    if i_lo < 0 or i_hi <= i_lo:
        return None
    pad_before = before + lo - i_lo * stride
    short = (i_hi - i_lo - 1) * stride + span + 1 - (hi - lo) - pad_before  # padding after that fits exactly
    if short >= 0:
        return (i_lo, i_hi), (pad_before, short), 0
    if -short < stride:  # the last outputs lie past every tap: output padding, as the whole layer has
        return (i_lo, i_hi), (pad_before, 0), -short
    return None


@dataclass(frozen=True, eq=False, repr=False)
class ConvTranspose2d(_Transposed):
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


@dataclass(frozen=True, eq=False, repr=False)
class ConvTranspose1d(_Transposed):
    """Transposed 1-D convolution (PyTorch ``nn.ConvTranspose1d``): the adjoint of a ``Conv1d``, on the 2-D
    kernels at height 1.

    Parameters
    ----------
    weight : ndarray of shape (in_channels, out_channels // groups, k)
    bias : ndarray of shape (out_channels,), optional
    stride, padding, output_padding, dilation : int (stored as 1-tuples, as PyTorch)
    groups : int
    """

    weight: np.ndarray = array(ndim=3)
    bias: np.ndarray | None = array(ndim=1, optional=True)
    stride: tuple = config(partial(validate.single, minimum=1), 1, kw_only=True)
    dilation: tuple = config(partial(validate.single, minimum=1), 1, kw_only=True)
    padding: tuple = config(_sides(validate.single, 1), 0, kw_only=True)
    output_padding: tuple = config(validate.single, 0, kw_only=True)

    _dims: ClassVar[int] = 1


@dataclass(frozen=True, eq=False, repr=False)
class ConvTranspose3d(_Volume, _Transposed):
    """Transposed 3-D convolution (PyTorch ``nn.ConvTranspose3d``): the adjoint of a ``Conv3d``.

    Parameters
    ----------
    weight : ndarray of shape (in_channels, out_channels // groups, kd, kh, kw)
    bias : ndarray of shape (out_channels,), optional
    stride, padding, output_padding, dilation : int or triple of int
    groups : int
    """

    padding: tuple = config(_sides(validate.triple, 3), 0, kw_only=True)
    output_padding: tuple = config(validate.triple, 0, kw_only=True)


def _single(value, label, minimum=0):
    """An int, or PyTorch's 1-tuple of an int, as an int."""
    return validate.single(value, label, minimum)[0]


def _conv1d_padding(value, label):
    if isinstance(value, str):
        return _conv_padding(value, label)
    if isinstance(value, (tuple, list)) and len(value) == 2:  # (before, after), as the receptive cone cuts it
        return validate.integers(value, label, 2, minimum=0)
    return _single(value, label)


@dataclass(frozen=True, eq=False, repr=False)
class Conv1d(AffineLayer):
    """1-D convolution (PyTorch ``nn.Conv1d``), computed by the 2-D kernels on (N, C, 1, L).

    Parameters
    ----------
    weight : ndarray of shape (out_channels, in_channels // groups, k)
    bias : ndarray of shape (out_channels,), optional
    stride, dilation : int
    padding : int, (left, right), "same" or "valid"
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
        elif isinstance(self.padding, tuple):
            left, right = self.padding
        else:
            left = right = self.padding
        return (1, self.stride), (0, 0, left, right), (1, self.dilation)

    def affine_parameters(self):
        return self.weight, self.bias

    def window(self, box, in_shapes):
        (shape,), ((lo, hi),) = in_shapes, box[1:]
        if box[0] != (0, self.weight.shape[0]):
            return None
        _, pads, _ = self._as_2d()
        span, sides = boxes.sliding(lo, hi, shape[1], self.weight.shape[2], self.stride, self.dilation, pads[2])
        if span[1] <= span[0]:
            return None
        return [((0, shape[0]), span)], self.reconfigured(padding=sides)

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


__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]
