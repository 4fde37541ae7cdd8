"""Pooling in 1, 2 or 3 spatial axes: average and adaptive average pooling (parameter-free linear maps) and max
pooling (selection).

One definition per kind for every number of axes (``_dims``): sizes, ``ceil_mode`` and checks are written once,
and the kernels (:mod:`reflrp.kernels.pool`) loop over volumes, a 2-D input being one of depth 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from reflrp import boxes, kernels, validate
from reflrp.errors import ReflrpError
from reflrp.layers.base import Layer, LinearOperator, config, optional

_LAYOUT = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


_SIZES = {1: validate.single, 2: validate.pair, 3: validate.triple}  # an int, or one per axis


def _sizes(dims, minimum=0):
    return partial(_SIZES[dims], minimum=minimum)


def _pooled(n, k, s, p, ceil_mode):
    """PyTorch's pooled size: with ``ceil_mode`` a last, partial window counts, unless it starts beyond the input
    and its left padding."""
    size = (n + 2 * p - k + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (size - 1) * s >= n + p:
        size -= 1
    return size


def _check_layout(dims, shape):
    if len(shape) != 1 + dims:
        raise ReflrpError(f"input must be {_LAYOUT[dims]}, got per-sample shape {tuple(shape)}")


@dataclass(frozen=True, eq=False, repr=False)
class _Window(Layer, abstract=True):
    """A sliding window in ``_dims`` axes: kernel_size, stride (default: kernel_size), padding of at most half the
    kernel, and ``ceil_mode`` (a last, partial window counts, as in PyTorch)."""

    kernel_size: tuple = config(_sizes(2, 1))
    stride: tuple | None = config(optional(_sizes(2, 1)), None)
    padding: tuple = config(_sizes(2), 0)
    ceil_mode: bool = config(validate.boolean, False, kw_only=True)

    _dims: ClassVar[int] = 2

    def _validate(self):
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel_size)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ReflrpError(f"{type(self).__name__}: padding {self.padding} must be at most half of kernel_size "
                              f"{self.kernel_size}")

    def output_shape(self, shape):
        _check_layout(self._dims, shape)
        size = [_pooled(n, k, s, p, self.ceil_mode) for n, p, k, s in zip(shape[1:], self.padding, self.kernel_size,
                                                                          self.stride)]
        if min(size) < 1:
            raise ReflrpError(f"input of size {'x'.join(map(str, shape[1:]))} is smaller than the kernel")
        return (shape[0], *size)

    def window(self, box, in_shapes):
        (shape,) = in_shapes
        spans = []
        for axis, (lo, hi) in enumerate(box[1:]):
            span, sides = boxes.sliding(lo, hi, shape[1 + axis], self.kernel_size[axis], self.stride[axis], 1,
                                        self.padding[axis])
            if sides != (0, 0):  # windows reaching into the padding, or past the input (ceil_mode)
                return None
            spans.append(span)
        return [(box[0], *spans)], self.reconfigured(padding=0, ceil_mode=False)

    def _window(self, input_shape):
        """Kernel size, stride and padding as the kernels take them, then the output's spatial size."""
        return self.kernel_size, self.stride, self.padding, self.output_shape(input_shape[1:])[1:]


@dataclass(frozen=True, eq=False, repr=False)
class _Window1(_Window, abstract=True):
    """A window along one axis: the arguments of the 2-D windows, one int each."""

    kernel_size: tuple = config(_sizes(1, 1))
    stride: tuple | None = config(optional(_sizes(1, 1)), None)
    padding: tuple = config(_sizes(1), 0)

    _dims: ClassVar[int] = 1


@dataclass(frozen=True, eq=False, repr=False)
class _Window3(_Window, abstract=True):
    """A window in three axes: the arguments of the 2-D windows, an int or a triple each."""

    kernel_size: tuple = config(_sizes(3, 1))
    stride: tuple | None = config(optional(_sizes(3, 1)), None)
    padding: tuple = config(_sizes(3), 0)

    _dims: ClassVar[int] = 3


@dataclass(frozen=True, eq=False, repr=False)
class _AvgPool(_Window, LinearOperator, abstract=True):
    """Average pooling: the mean of each window, zero padding counted or not (``count_include_pad``)."""

    count_include_pad: bool = config(validate.boolean, True)

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        (a,) = inputs
        return kernels.avgpool_forward(a, *self._window(a.shape), self.count_include_pad)

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        shape = inputs[0].shape
        kernel, stride, padding, _ = self._window(shape)
        return [kernels.avgpool_adjoint(s, shape[2:], kernel, stride, padding, self.count_include_pad)]


@dataclass(frozen=True, eq=False, repr=False)
class AvgPool2d(_AvgPool):
    """Average pooling (PyTorch ``nn.AvgPool2d``).

    Parameters
    ----------
    kernel_size : int or pair
    stride : int or pair, optional
        Defaults to ``kernel_size``.
    padding : int or pair
        Zero padding, at most half the kernel size.
    count_include_pad : bool
        Divide by the window size within the padded input (default) or by the in-bounds count.
    ceil_mode : bool
        Count a last, partial window (keyword only).
    """


@dataclass(frozen=True, eq=False, repr=False)
class AvgPool1d(_Window1, _AvgPool):
    """Average pooling of (N, C, L) (PyTorch ``nn.AvgPool1d``); the arguments of :class:`AvgPool2d`, one int
    each."""


@dataclass(frozen=True, eq=False, repr=False)
class AvgPool3d(_Window3, _AvgPool):
    """Average pooling of (N, C, D, H, W) (PyTorch ``nn.AvgPool3d``); the arguments of :class:`AvgPool2d`, an int
    or a triple each."""


@dataclass(frozen=True, eq=False, repr=False)
class _AdaptiveAvgPool(LinearOperator, abstract=True):
    """Adaptive average pooling to ``output_size``: PyTorch's windows, ``floor(i*n/o) .. ceil((i+1)*n/o) - 1``."""

    output_size: tuple = config(_sizes(2, 1))

    _dims: ClassVar[int] = 2

    def output_shape(self, shape):
        _check_layout(self._dims, shape)
        return (shape[0], *self.output_size)

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        (a,) = inputs
        return kernels.adaptive_avgpool_forward(a, self.output_size)

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        return [kernels.adaptive_avgpool_adjoint(s, inputs[0].shape[2:])]


@dataclass(frozen=True, eq=False, repr=False)
class AdaptiveAvgPool2d(_AdaptiveAvgPool):
    """Adaptive average pooling to ``output_size`` (PyTorch ``nn.AdaptiveAvgPool2d``); 1 is global pooling.

    Parameters
    ----------
    output_size : int or pair
    """


@dataclass(frozen=True, eq=False, repr=False)
class AdaptiveAvgPool1d(_AdaptiveAvgPool):
    """Adaptive average pooling of (N, C, L) (PyTorch ``nn.AdaptiveAvgPool1d``); ``output_size`` an int."""

    output_size: tuple = config(_sizes(1, 1))

    _dims: ClassVar[int] = 1


@dataclass(frozen=True, eq=False, repr=False)
class AdaptiveAvgPool3d(_AdaptiveAvgPool):
    """Adaptive average pooling of (N, C, D, H, W) (PyTorch ``nn.AdaptiveAvgPool3d``); ``output_size`` an int or a
    triple."""

    output_size: tuple = config(_sizes(3, 1))

    _dims: ClassVar[int] = 3


@dataclass(frozen=True, eq=False, repr=False)
class _MaxPool(_Window, abstract=True):
    """Max pooling with implicit -inf padding.  ``adjoint`` routes to each window's first maximum in row-major
    window order (the transpose of the layer's Jacobian); ``adjoint_split_ties`` splits evenly among all maxima."""

    role: ClassVar[str] = "selection"

    def forward_with_index(self, a):
        """Output and winner indices (first maximum in row-major window order)."""
        return kernels.maxpool_forward(a, *self._window(a.shape))

    def forward(self, inputs):
        (a,) = inputs
        return self.forward_with_index(a)[0]

    def _route(self, s, a, split_ties):
        out, index = self.forward_with_index(a)
        kernel, stride, padding, _ = self._window(a.shape)
        return kernels.maxpool_adjoint(s, a, out, index, kernel, stride, padding, split_ties)

    def adjoint(self, s, inputs):
        """Each window's ``s`` to the first maximum of ``inputs[0]`` in it."""
        return [self._route(s, inputs[0], False)]

    def adjoint_split_ties(self, s, inputs):
        """Each window's ``s`` split evenly among all positions equal to its maximum."""
        return [self._route(s, inputs[0], True)]


@dataclass(frozen=True, eq=False, repr=False)
class MaxPool2d(_MaxPool):
    """Max pooling (PyTorch ``nn.MaxPool2d`` without dilation).  ``adjoint`` routes to each window's first maximum
    in row-major window order (the transpose of the layer's Jacobian); ``adjoint_split_ties`` splits evenly among
    all maxima.

    Parameters
    ----------
    kernel_size : int or pair
    stride : int or pair, optional
        Defaults to ``kernel_size``.
    padding : int or pair
        Implicit -inf padding, at most half the kernel size.
    ceil_mode : bool
        Count a last, partial window (keyword only).
    """


@dataclass(frozen=True, eq=False, repr=False)
class MaxPool1d(_Window1, _MaxPool):
    """Max pooling of (N, C, L) (PyTorch ``nn.MaxPool1d`` without dilation); the arguments of :class:`MaxPool2d`,
    one int each."""


@dataclass(frozen=True, eq=False, repr=False)
class MaxPool3d(_Window3, _MaxPool):
    """Max pooling of (N, C, D, H, W) (PyTorch ``nn.MaxPool3d`` without dilation); the arguments of
    :class:`MaxPool2d`, an int or a triple each."""


__all__ = ["AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
           "MaxPool1d", "MaxPool2d", "MaxPool3d"]
