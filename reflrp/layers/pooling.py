"""Pooling: AvgPool2d and AdaptiveAvgPool2d (parameter-free linear maps) and MaxPool2d (selection)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from reflrp import kernels, validate
from reflrp.errors import ReflrpError
from reflrp.layers.base import Layer, LinearOperator, config, optional, spatial

_pair1 = partial(validate.pair, minimum=1)


def _pooled(n, k, s, p, ceil_mode):
    """PyTorch's pooled size: with ``ceil_mode`` a last, partial window counts, unless it starts beyond the input
    and its left padding."""
    size = (n + 2 * p - k + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (size - 1) * s >= n + p:
        size -= 1
    return size


@dataclass(frozen=True, eq=False, repr=False)
class _Window(Layer, abstract=True):
    """A sliding window: kernel_size, stride (default: kernel_size), padding of at most half the kernel, and
    ``ceil_mode`` (a last, partial window counts, as in PyTorch)."""

    kernel_size: tuple = config(_pair1)
    stride: tuple | None = config(optional(_pair1), None)
    padding: tuple = config(validate.pair, 0)
    ceil_mode: bool = config(validate.boolean, False, kw_only=True)

    def _validate(self):
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel_size)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ReflrpError(f"{type(self).__name__}: padding {self.padding} must be at most half of kernel_size "
                              f"{self.kernel_size}")

    def output_shape(self, shape):
        spatial(shape)
        size = [_pooled(n, k, s, p, self.ceil_mode) for n, p, k, s in zip(shape[1:], self.padding, self.kernel_size,
                                                                          self.stride)]
        if min(size) < 1:
            raise ReflrpError(f"input of size {shape[1]}x{shape[2]} is smaller than the kernel")
        return (shape[0], size[0], size[1])

    def _window_args(self, input_shape):
        """Kernel size, stride and padding as the kernels take them, then the output height and width."""
        oh, ow = self.output_shape(input_shape[1:])[1:]
        return (*self.kernel_size, *self.stride, *self.padding, oh, ow)


@dataclass(frozen=True, eq=False, repr=False)
class AvgPool2d(_Window, LinearOperator):
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

    count_include_pad: bool = config(validate.boolean, True)

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        (a,) = inputs
        return kernels.avgpool2d_forward(a, *self._window_args(a.shape), self.count_include_pad)

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        shape = inputs[0].shape
        kh, kw, sh, sw, ph, pw, _, _ = self._window_args(shape)
        return [kernels.avgpool2d_adjoint(s, shape[2], shape[3], kh, kw, sh, sw, ph, pw, self.count_include_pad)]


@dataclass(frozen=True, eq=False, repr=False)
class AdaptiveAvgPool2d(LinearOperator):
    """Adaptive average pooling to ``output_size`` (PyTorch ``nn.AdaptiveAvgPool2d``); 1 is global pooling.

    Parameters
    ----------
    output_size : int or pair
    """

    output_size: tuple = config(_pair1)

    def output_shape(self, shape):
        spatial(shape)
        return (shape[0], *self.output_size)

    def linear(self, inputs, weight=None):
        self._no_weight(weight)
        (a,) = inputs
        return kernels.adaptive_avgpool2d_forward(a, *self.output_size)

    def adjoint(self, s, inputs, weight=None):
        self._no_weight(weight)
        shape = inputs[0].shape
        return [kernels.adaptive_avgpool2d_adjoint(s, shape[2], shape[3])]


@dataclass(frozen=True, eq=False, repr=False)
class MaxPool2d(_Window):
    """Max pooling (PyTorch ``nn.MaxPool2d`` without dilation).

    Parameters
    ----------
    kernel_size : int or pair
    stride : int or pair, optional
        Defaults to ``kernel_size``.
    padding : int or pair
        Implicit -inf padding, at most half the kernel size.
    ceil_mode : bool
        Count a last, partial window (keyword only).

    ``adjoint`` routes to each window's first maximum in row-major window order (the transpose of the layer's
    Jacobian); ``adjoint_split_ties`` splits evenly among all maxima.
    """

    role: ClassVar[str] = "selection"

    def forward_with_index(self, a):
        """Output and winner indices (first maximum in row-major window order)."""
        return kernels.maxpool2d_forward(a, *self._window_args(a.shape))

    def forward(self, inputs):
        (a,) = inputs
        return self.forward_with_index(a)[0]

    def _route(self, s, a, split_ties):
        out, index = self.forward_with_index(a)
        kh, kw, sh, sw, ph, pw, _, _ = self._window_args(a.shape)
        return kernels.maxpool2d_adjoint(s, a, out, index, kh, kw, sh, sw, ph, pw, split_ties)

    def adjoint(self, s, inputs):
        """Each window's ``s`` to the first maximum of ``inputs[0]`` in it."""
        return [self._route(s, inputs[0], False)]

    def adjoint_split_ties(self, s, inputs):
        """Each window's ``s`` split evenly among all positions equal to its maximum."""
        return [self._route(s, inputs[0], True)]


__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d"]
