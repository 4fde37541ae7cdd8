"""Layers: immutable parameter holders with PyTorch names, argument names and layouts.

A layer computes its forward map on a batch and, when it is linear, the exact adjoint (transpose) of its
bias-free map.  Layers never initialise weights: they copy the arrays they are given and make the copies
read-only.  They know nothing of rules.

Four kinds matter to relevance propagation:

* :class:`AffineLayer` (``Linear``, ``Conv2d``, ``ConvTranspose2d``, ``BatchNorm1d``, ``BatchNorm2d``):
  ``z = W a + b``; rules modify ``W`` and ``b`` through :meth:`AffineLayer.affine_parameters`.
* :class:`LinearOp` (``AvgPool2d``, ``AdaptiveAvgPool2d``, ``Upsample``, ``Add``): parameter-free linear maps.
* :class:`Routing` (``Flatten``, ``Reshape``, ``Identity``, ``Dropout``, ``Concat``, ``Crop``,
  ``ZeroPad2d``): move values without arithmetic; relevance is routed exactly by the adjoint.
* :class:`Activation` and :class:`MaxPool2d`: elementwise or selecting nonlinearities.

Shapes passed to :meth:`Layer.output_shape` are per-sample (without the batch axis).
"""

from __future__ import annotations

import math

import numpy as np

from reflrp import kernels
from reflrp.errors import ReflrpError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _pair(value, what, layer, minimum):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        result = (int(value), int(value))
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        result = (int(value[0]), int(value[1]))
    else:
        raise ReflrpError(f"{layer}: {what} must be an int or a pair of ints, got {value!r}")
    if min(result) < minimum:
        raise ReflrpError(f"{layer}: {what} must be >= {minimum}, got {value!r}")
    return result


def check_batch(x, name):
    """Refuse anything but a finite float32/float64 batch ``(N, ...)`` with ``N >= 1``; ``name`` says which."""
    if not isinstance(x, np.ndarray):
        raise ReflrpError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise ReflrpError(f"{name} must be float32 or float64, got {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ReflrpError(f"{name} must be a batch (N, ...) with N >= 1, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ReflrpError(f"{name} contains NaN or Inf")


def _array(value, what, layer, ndim=None, dtype=None):
    """Copy a parameter array, check it, and make the copy read-only."""
    if not isinstance(value, np.ndarray):
        raise ReflrpError(f"{layer}: {what} must be a numpy array, got {type(value).__name__}")
    if value.dtype not in FLOAT_DTYPES:
        raise ReflrpError(f"{layer}: {what} must be float32 or float64, got {value.dtype}")
    if dtype is not None and value.dtype != dtype:
        raise ReflrpError(f"{layer}: {what} is {value.dtype} but weight is {dtype}; use one dtype per layer")
    if ndim is not None and value.ndim != ndim:
        raise ReflrpError(f"{layer}: {what} must have {ndim} dimension(s), got shape {value.shape}")
    if not np.all(np.isfinite(value)):
        raise ReflrpError(f"{layer}: {what} contains NaN or Inf")
    copy = np.array(value, copy=True, order="C")
    copy.flags.writeable = False
    return copy


class Layer:
    """Base class.  Subclasses define ``forward``, ``output_shape``, ``config`` and ``parameters``."""

    n_inputs = 1  # number of inputs; ``None`` means "two or more"

    def forward(self, *inputs):
        raise NotImplementedError

    def __call__(self, *inputs):
        """``forward`` on a batch, after checking it (arrays, dtype, finite values, shapes)."""
        name = type(self).__name__
        for a in inputs:
            check_batch(a, f"{name}: input")
            if self.dtype is not None and a.dtype != self.dtype:
                raise ReflrpError(f"{name}: parameters are {self.dtype} but the input is {a.dtype}")
        expected = self.n_inputs
        if (expected is not None and len(inputs) != expected) or (expected is None and len(inputs) < 2):
            raise ReflrpError(f"{name}: takes {expected or 'two or more'} input(s), got {len(inputs)}")
        try:
            self.output_shape(*(a.shape[1:] for a in inputs))
        except ReflrpError as error:
            raise ReflrpError(f"{name}: {error}") from None
        return self.forward(*inputs)

    def output_shape(self, *shapes):
        """Per-sample output shape for per-sample input shapes; raises :class:`ReflrpError` on a mismatch."""
        raise NotImplementedError

    def config(self) -> dict:
        """Non-array constructor arguments (JSON-able)."""
        return {}

    def parameters(self) -> dict:
        """Array constructor arguments (``None`` entries omitted)."""
        return {}

    @property
    def dtype(self):
        """dtype of the parameters, or ``None`` for a parameter-free layer."""
        arrays = list(self.parameters().values())
        return arrays[0].dtype if arrays else None

    def astype(self, dtype):
        """A new layer of the same type with parameters cast to ``dtype``."""
        arrays = {k: v.astype(dtype) for k, v in self.parameters().items()}
        return type(self)(**arrays, **self.config())

    def __repr__(self):
        parts = [f"{k}={v.shape}" for k, v in self.parameters().items()]
        parts += [f"{k}={v!r}" for k, v in self.config().items()]
        return f"{type(self).__name__}({', '.join(parts)})"


# ----------------------------------------------------------------------------------------------------------
# Affine layers


class AffineLayer(Layer):
    """A layer computing ``z = linear(a, W) + b``.

    Rules use :meth:`affine_parameters` to get ``(W, b)``, modify them, and call :meth:`linear` and
    :meth:`adjoint` with the modified ``W`` and :meth:`expand_bias` with the modified ``b``.
    """

    def affine_parameters(self):
        """``(W, b)``: the array :meth:`linear` takes, and the bias (``None`` when there is none)."""
        raise NotImplementedError

    def linear(self, a, weight):
        """The bias-free map with weight array ``weight`` (shaped like ``affine_parameters()[0]``)."""
        raise NotImplementedError

    def adjoint(self, s, weight, input_shape):
        """The exact transpose of :meth:`linear` applied to ``s``; ``input_shape`` is the batch input shape."""
        raise NotImplementedError

    def expand_bias(self, bias, ndim):
        """``bias`` reshaped to broadcast against an output of ``ndim`` dimensions."""
        return bias.reshape((1, -1) + (1,) * (ndim - 2))

    def forward(self, a):
        weight, bias = self.affine_parameters()
        z = self.linear(a, weight)
        if bias is not None:
            z = z + self.expand_bias(bias, z.ndim)
        return z


class Linear(AffineLayer):
    """Dense layer ``a @ weight.T + bias`` (PyTorch ``nn.Linear``).

    Parameters
    ----------
    weight : ndarray of shape (out_features, in_features)
    bias : ndarray of shape (out_features,), optional
    """

    def __init__(self, weight, bias=None):
        self.weight = _array(weight, "weight", "Linear", ndim=2)
        self.bias = None if bias is None else _array(bias, "bias", "Linear", ndim=1, dtype=self.weight.dtype)
        if self.bias is not None and self.bias.shape[0] != self.weight.shape[0]:
            raise ReflrpError(
                f"Linear: bias has {self.bias.shape[0]} entries, weight has {self.weight.shape[0]} outputs"
            )

    def parameters(self):
        return {"weight": self.weight} | ({} if self.bias is None else {"bias": self.bias})

    def affine_parameters(self):
        return self.weight, self.bias

    def output_shape(self, shape):
        if len(shape) != 1:
            raise ReflrpError(f"input must be (N, in_features), got per-sample shape {shape}; add a Flatten")
        if shape[0] != self.weight.shape[1]:
            raise ReflrpError(f"input has {shape[0]} features, weight expects {self.weight.shape[1]}")
        return (self.weight.shape[0],)

    def linear(self, a, weight):
        return kernels.linear_forward(a, weight)

    def adjoint(self, s, weight, input_shape):
        return kernels.linear_adjoint(s, weight)


def _conv_padding(padding, kernel, dilation, stride, layer):
    """Padding as (top, bottom, left, right); PyTorch's "same" puts the odd pixel at the bottom/right."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ReflrpError(f"{layer}: padding='same' needs stride 1, got stride {stride}")
            total = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)
        raise ReflrpError(f"{layer}: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    ph, pw = _pair(padding, "padding", layer, 0)
    return (ph, ph, pw, pw)


class Conv2d(AffineLayer):
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

    def __init__(self, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
        name = type(self).__name__
        self.weight = _array(weight, "weight", name, ndim=4)
        self.bias = None if bias is None else _array(bias, "bias", name, ndim=1, dtype=self.weight.dtype)
        self.stride = _pair(stride, "stride", name, 1)
        self.dilation = _pair(dilation, "dilation", name, 1)
        if not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ReflrpError(f"{name}: groups must be a positive int, got {groups!r}")
        self.groups = int(groups)
        self.padding = padding if isinstance(padding, str) else _pair(padding, "padding", name, 0)
        self._pads = _conv_padding(padding, self.weight.shape[2:], self.dilation, self.stride, name)
        self._check_channels(name)

    def _check_channels(self, name):
        out_channels = self.weight.shape[0]
        if out_channels % self.groups:
            raise ReflrpError(f"{name}: out_channels {out_channels} is not divisible by groups {self.groups}")
        if self.bias is not None and self.bias.shape[0] != out_channels:
            raise ReflrpError(f"{name}: bias has {self.bias.shape[0]} entries, weight has {out_channels} outputs")

    @property
    def in_channels(self):
        return self.weight.shape[1] * self.groups

    @property
    def out_channels(self):
        return self.weight.shape[0]

    def config(self):
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}

    def parameters(self):
        return {"weight": self.weight} | ({} if self.bias is None else {"bias": self.bias})

    def affine_parameters(self):
        return self.weight, self.bias

    def output_shape(self, shape):
        if len(shape) != 3:
            raise ReflrpError(f"input must be (N, C, H, W), got per-sample shape {shape}")
        if shape[0] != self.in_channels:
            raise ReflrpError(f"input has {shape[0]} channels, weight expects {self.in_channels}")
        kh, kw = self.weight.shape[2:]
        pt, pb, pl, pr = self._pads
        oh = kernels.conv.conv_output_size(shape[1], kh, self.stride[0], pt + pb, self.dilation[0])
        ow = kernels.conv.conv_output_size(shape[2], kw, self.stride[1], pl + pr, self.dilation[1])
        if oh < 1 or ow < 1:
            raise ReflrpError(f"input of size {shape[1]}x{shape[2]} is smaller than the (dilated) kernel")
        return (self.out_channels, oh, ow)

    def linear(self, a, weight):
        return kernels.conv2d_forward(a, weight, self.stride, self._pads, self.dilation, self.groups)

    def adjoint(self, s, weight, input_shape):
        return kernels.conv2d_adjoint(
            s, weight, input_shape[2:], self.stride, self._pads, self.dilation, self.groups
        )


class ConvTranspose2d(AffineLayer):
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

    def __init__(self, weight, bias=None, *, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
        name = "ConvTranspose2d"
        self.weight = _array(weight, "weight", name, ndim=4)
        self.bias = None if bias is None else _array(bias, "bias", name, ndim=1, dtype=self.weight.dtype)
        self.stride = _pair(stride, "stride", name, 1)
        self.padding = _pair(padding, "padding", name, 0)
        self.output_padding = _pair(output_padding, "output_padding", name, 0)
        self.dilation = _pair(dilation, "dilation", name, 1)
        if not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ReflrpError(f"{name}: groups must be a positive int, got {groups!r}")
        self.groups = int(groups)
        if self.weight.shape[0] % self.groups:
            raise ReflrpError(f"{name}: in_channels {self.weight.shape[0]} is not divisible by groups {groups}")
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= max(s, d):
                raise ReflrpError(f"{name}: output_padding {op} must be smaller than stride or dilation")
        if self.bias is not None and self.bias.shape[0] != self.out_channels:
            raise ReflrpError(f"{name}: bias has {self.bias.shape[0]} entries, layer has {self.out_channels}")
        self._pads = (self.padding[0], self.padding[0], self.padding[1], self.padding[1])

    @property
    def in_channels(self):
        return self.weight.shape[0]

    @property
    def out_channels(self):
        return self.weight.shape[1] * self.groups

    def config(self):
        return {
            "stride": self.stride,
            "padding": self.padding,
            "output_padding": self.output_padding,
            "dilation": self.dilation,
            "groups": self.groups,
        }

    def parameters(self):
        return {"weight": self.weight} | ({} if self.bias is None else {"bias": self.bias})

    def affine_parameters(self):
        return self.weight, self.bias

    def output_shape(self, shape):
        if len(shape) != 3:
            raise ReflrpError(f"input must be (N, C, H, W), got per-sample shape {shape}")
        if shape[0] != self.in_channels:
            raise ReflrpError(f"input has {shape[0]} channels, weight expects {self.in_channels}")
        size = [
            (n - 1) * s - 2 * p + d * (k - 1) + op + 1
            for n, s, p, d, k, op in zip(
                shape[1:], self.stride, self.padding, self.dilation, self.weight.shape[2:], self.output_padding
            )
        ]
        if min(size) < 1:
            raise ReflrpError(f"output size {size[0]}x{size[1]} is empty: padding too large")
        return (self.out_channels, size[0], size[1])

    def linear(self, a, weight):
        out_hw = self.output_shape(a.shape[1:])[1:]
        return kernels.conv2d_adjoint(a, weight, out_hw, self.stride, self._pads, self.dilation, self.groups)

    def adjoint(self, s, weight, input_shape):
        c = kernels.conv2d_forward(s, weight, self.stride, self._pads, self.dilation, self.groups)
        h, w = input_shape[2:]
        # with output_padding >= stride (allowed when dilation is larger) the convolution reaches past the input
        return c if c.shape[2:] == (h, w) else np.ascontiguousarray(c[:, :, :h, :w])


class _BatchNorm(AffineLayer):
    """Inference-mode batch normalisation as the affine map ``a * scale + shift`` along axis 1.

    ``scale = weight / sqrt(running_var + eps)`` and ``shift = bias - running_mean * scale`` (``weight`` 1 and
    ``bias`` 0 when not given).  Under an LRP rule the shift is a bias: what it absorbs or injects is recorded
    in the ledger.
    """

    spatial_ndim = 0

    def __init__(self, running_mean, running_var, weight=None, bias=None, eps=1e-5):
        name = type(self).__name__
        self.running_mean = _array(running_mean, "running_mean", name, ndim=1)
        dtype = self.running_mean.dtype
        self.running_var = _array(running_var, "running_var", name, ndim=1, dtype=dtype)
        self.weight = None if weight is None else _array(weight, "weight", name, ndim=1, dtype=dtype)
        self.bias = None if bias is None else _array(bias, "bias", name, ndim=1, dtype=dtype)
        n = self.running_mean.shape[0]
        for what, arr in (("running_var", self.running_var), ("weight", self.weight), ("bias", self.bias)):
            if arr is not None and arr.shape[0] != n:
                raise ReflrpError(f"{name}: {what} has {arr.shape[0]} entries, running_mean has {n}")
        if not (isinstance(eps, (float, int)) and eps >= 0 and math.isfinite(eps)):
            raise ReflrpError(f"{name}: eps must be a finite number >= 0, got {eps!r}")
        self.eps = float(eps)
        if np.any(self.running_var + self.eps <= 0):
            raise ReflrpError(f"{name}: running_var + eps must be > 0")
        gamma = np.ones_like(self.running_mean) if self.weight is None else self.weight
        beta = np.zeros_like(self.running_mean) if self.bias is None else self.bias
        scale = gamma / np.sqrt(self.running_var + self.eps)
        shift = beta - self.running_mean * scale
        scale.flags.writeable = False
        shift.flags.writeable = False
        self.scale, self.shift = scale, shift

    @property
    def num_features(self):
        return self.running_mean.shape[0]

    def config(self):
        return {"eps": self.eps}

    def parameters(self):
        arrays = {"running_mean": self.running_mean, "running_var": self.running_var}
        if self.weight is not None:
            arrays["weight"] = self.weight
        if self.bias is not None:
            arrays["bias"] = self.bias
        return arrays

    def affine_parameters(self):
        return self.scale, self.shift

    def output_shape(self, shape):
        allowed = {1, 2} if self.spatial_ndim == 0 else {3}
        if len(shape) not in allowed:
            want = "(N, C) or (N, C, L)" if self.spatial_ndim == 0 else "(N, C, H, W)"
            raise ReflrpError(f"input must be {want}, got per-sample shape {shape}")
        if shape[0] != self.num_features:
            raise ReflrpError(f"input has {shape[0]} channels, layer has {self.num_features}")
        return tuple(shape)

    def linear(self, a, weight):
        return a * self.expand_bias(weight, a.ndim)

    def adjoint(self, s, weight, input_shape):
        return s * self.expand_bias(weight, s.ndim)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) at inference (PyTorch ``nn.BatchNorm1d``, ``eval()``).

    Parameters
    ----------
    running_mean, running_var : ndarray of shape (C,)
    weight, bias : ndarray of shape (C,), optional
        PyTorch's affine parameters (gamma and beta).
    eps : float
    """


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W) at inference (PyTorch ``nn.BatchNorm2d``, ``eval()``).

    Parameters are those of :class:`BatchNorm1d`.
    """

    spatial_ndim = 2


# ----------------------------------------------------------------------------------------------------------
# Parameter-free linear maps


class LinearOp(Layer):
    """A parameter-free linear map with an exact adjoint.

    ``adjoint(s, input_shapes)`` returns one array per input, the transpose of ``forward`` applied to ``s``.
    """

    def adjoint(self, s, input_shapes):
        raise NotImplementedError


def _spatial_check(shape):
    if len(shape) != 3:
        raise ReflrpError(f"input must be (N, C, H, W), got per-sample shape {shape}")


class AvgPool2d(LinearOp):
    """Average pooling (PyTorch ``nn.AvgPool2d`` with ``ceil_mode=False``).

    Parameters
    ----------
    kernel_size : int or pair
    stride : int or pair, optional
        Defaults to ``kernel_size``.
    padding : int or pair
        Zero padding, at most half the kernel size.
    count_include_pad : bool
        Divide by the full window size (default) or by the in-bounds count.
    """

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        name = type(self).__name__
        self.kernel_size = _pair(kernel_size, "kernel_size", name, 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", name, 1)
        self.padding = _pair(padding, "padding", name, 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ReflrpError(f"{name}: padding {self.padding} must be at most half of kernel_size")
        self.count_include_pad = bool(count_include_pad)

    def config(self):
        return {
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "count_include_pad": self.count_include_pad,
        }

    def output_shape(self, shape):
        _spatial_check(shape)
        size = [
            (n + 2 * p - k) // s + 1
            for n, p, k, s in zip(shape[1:], self.padding, self.kernel_size, self.stride)
        ]
        if min(size) < 1:
            raise ReflrpError(f"input of size {shape[1]}x{shape[2]} is smaller than the kernel")
        return (shape[0], size[0], size[1])

    def _args(self, shape):
        oh, ow = self.output_shape(shape[1:])[1:]
        return (*self.kernel_size, *self.stride, *self.padding), oh, ow

    def forward(self, a):
        args, oh, ow = self._args(a.shape)
        return kernels.avgpool2d_forward(a, *args, oh, ow, self.count_include_pad)

    def adjoint(self, s, input_shapes):
        (shape,) = input_shapes
        args, _, _ = self._args(shape)
        return [kernels.avgpool2d_adjoint(s, shape[2], shape[3], *args, self.count_include_pad)]


class AdaptiveAvgPool2d(LinearOp):
    """Adaptive average pooling to ``output_size`` (PyTorch ``nn.AdaptiveAvgPool2d``); 1 is global pooling.

    Parameters
    ----------
    output_size : int or pair
    """

    def __init__(self, output_size):
        self.output_size = _pair(output_size, "output_size", "AdaptiveAvgPool2d", 1)

    def config(self):
        return {"output_size": self.output_size}

    def output_shape(self, shape):
        _spatial_check(shape)
        return (shape[0], *self.output_size)

    def forward(self, a):
        return kernels.adaptive_avgpool2d_forward(a, *self.output_size)

    def adjoint(self, s, input_shapes):
        (shape,) = input_shapes
        return [kernels.adaptive_avgpool2d_adjoint(s, shape[2], shape[3])]


class Upsample(LinearOp):
    """Upsampling by an integer factor (PyTorch ``nn.Upsample`` with ``scale_factor``).

    Parameters
    ----------
    scale_factor : int or pair of int
    mode : "nearest" or "bilinear"
    align_corners : bool
        Bilinear only, as PyTorch.
    """

    def __init__(self, scale_factor, mode="nearest", align_corners=False):
        self.scale_factor = _pair(scale_factor, "scale_factor", "Upsample", 1)
        if mode not in ("nearest", "bilinear"):
            raise ReflrpError(f"Upsample: mode must be 'nearest' or 'bilinear', got {mode!r}")
        if mode == "nearest" and align_corners:
            raise ReflrpError("Upsample: align_corners applies to mode='bilinear' only")
        self.mode = mode
        self.align_corners = bool(align_corners)

    def config(self):
        return {"scale_factor": self.scale_factor, "mode": self.mode, "align_corners": self.align_corners}

    def output_shape(self, shape):
        _spatial_check(shape)
        return (shape[0], shape[1] * self.scale_factor[0], shape[2] * self.scale_factor[1])

    def _axis_table(self, size, factor, dtype):
        out = np.arange(size * factor)
        if self.mode == "nearest":
            first = out // factor
            return first, first, np.ones(out.size, dtype), np.zeros(out.size, dtype)
        if self.align_corners:
            ratio = (size - 1) / (size * factor - 1) if size * factor > 1 else 0.0
            src = ratio * out
        else:
            src = np.maximum((out + 0.5) / factor - 0.5, 0.0)
        first = np.floor(src).astype(np.int64)
        second = np.minimum(first + 1, size - 1)
        frac = src - first
        return first, second, (1.0 - frac).astype(dtype), frac.astype(dtype)

    def _tables(self, shape, dtype):
        rows = self._axis_table(shape[2], self.scale_factor[0], dtype)
        cols = self._axis_table(shape[3], self.scale_factor[1], dtype)
        return rows[0], rows[1], rows[2], rows[3], cols[0], cols[1], cols[2], cols[3]

    def forward(self, a):
        return kernels.upsample2d_forward(a, *self._tables(a.shape, a.dtype))

    def adjoint(self, s, input_shapes):
        (shape,) = input_shapes
        return [kernels.upsample2d_adjoint(s, shape[2], shape[3], *self._tables(shape, s.dtype))]


class Add(LinearOp):
    """Elementwise sum of two or more inputs of equal shape (a residual connection)."""

    n_inputs = None

    def output_shape(self, *shapes):
        if len(shapes) < 2:
            raise ReflrpError(f"Add needs at least two inputs, got {len(shapes)}")
        for k, shape in enumerate(shapes[1:], start=1):
            if tuple(shape) != tuple(shapes[0]):
                raise ReflrpError(f"input {k} has shape {tuple(shape)}, input 0 has {tuple(shapes[0])}")
        return tuple(shapes[0])

    def forward(self, *inputs):
        total = inputs[0]
        for a in inputs[1:]:
            total = total + a
        return total

    def adjoint(self, s, input_shapes):
        return [s for _ in input_shapes]


# ----------------------------------------------------------------------------------------------------------
# Routing: values move, nothing is computed; the adjoint routes relevance exactly.


class Routing(LinearOp):
    """A linear map that only moves, copies or drops values (its matrix holds only zeros and ones, with at
    most one 1 per input column).  Its adjoint routes relevance exactly."""

    def lost(self, s):
        """The part of ``s`` that the adjoint has nowhere to send (positions the layer created), or ``None``."""
        return None


class Identity(Routing):
    """The identity."""

    def output_shape(self, shape):
        return tuple(shape)

    def forward(self, a):
        return a

    def adjoint(self, s, input_shapes):
        return [s]


class Dropout(Identity):
    """Dropout at inference: the identity.  ``p`` is kept for the record.

    Parameters
    ----------
    p : float
    """

    def __init__(self, p=0.5):
        if not (isinstance(p, (int, float)) and 0 <= p < 1):
            raise ReflrpError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)

    def config(self):
        return {"p": self.p}


class Flatten(Routing):
    """Flatten dims ``start_dim`` .. ``end_dim`` (PyTorch ``nn.Flatten``; dims count the batch axis)."""

    def __init__(self, start_dim=1, end_dim=-1):
        if not isinstance(start_dim, int) or start_dim < 1:
            raise ReflrpError(f"Flatten: start_dim must be an int >= 1 (0 is the batch), got {start_dim!r}")
        if not isinstance(end_dim, int) or (0 <= end_dim < start_dim):
            raise ReflrpError(f"Flatten: end_dim {end_dim!r} must be >= start_dim or negative")
        self.start_dim, self.end_dim = start_dim, end_dim

    def config(self):
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}

    def output_shape(self, shape):
        full = (1, *shape)
        end = self.end_dim % len(full)
        if not self.start_dim <= end < len(full):
            raise ReflrpError(f"cannot flatten dims {self.start_dim}..{self.end_dim} of shape {tuple(shape)}")
        merged = int(np.prod(full[self.start_dim : end + 1]))
        return tuple(full[1 : self.start_dim]) + (merged,) + tuple(full[end + 1 :])

    def forward(self, a):
        return a.reshape((a.shape[0], *self.output_shape(a.shape[1:])))

    def adjoint(self, s, input_shapes):
        return [s.reshape(input_shapes[0])]


class Reshape(Routing):
    """Reshape each sample to ``shape`` (one entry may be -1).

    Parameters
    ----------
    shape : tuple of int
        Per-sample shape (the batch axis is kept).
    """

    def __init__(self, shape):
        if not (isinstance(shape, (tuple, list)) and all(isinstance(v, int) for v in shape)):
            raise ReflrpError(f"Reshape: shape must be a tuple of ints, got {shape!r}")
        if sum(v == -1 for v in shape) > 1 or any(v < -1 or v == 0 for v in shape):
            raise ReflrpError(f"Reshape: shape {shape!r} must hold positive sizes and at most one -1")
        self.shape = tuple(shape)

    def config(self):
        return {"shape": self.shape}

    def output_shape(self, shape):
        size = int(np.prod(shape))
        known = int(np.prod([v for v in self.shape if v != -1]))
        target = tuple(size // known if v == -1 else v for v in self.shape)
        if int(np.prod(target)) != size:
            raise ReflrpError(f"cannot reshape per-sample shape {tuple(shape)} to {self.shape}")
        return target

    def forward(self, a):
        return a.reshape((a.shape[0], *self.output_shape(a.shape[1:])))

    def adjoint(self, s, input_shapes):
        return [s.reshape(input_shapes[0])]


class Concat(Routing):
    """Concatenate inputs along ``axis`` (counting the batch axis, so ``axis=1`` is channels).

    Parameters
    ----------
    axis : int
        >= 1.
    """

    n_inputs = None

    def __init__(self, axis=1):
        if not isinstance(axis, int) or axis < 1:
            raise ReflrpError(f"Concat: axis must be an int >= 1 (0 is the batch), got {axis!r}")
        self.axis = axis

    def config(self):
        return {"axis": self.axis}

    def output_shape(self, *shapes):
        if len(shapes) < 2:
            raise ReflrpError(f"Concat needs at least two inputs, got {len(shapes)}")
        k = self.axis - 1
        first = tuple(shapes[0])
        if k >= len(first):
            raise ReflrpError(f"axis {self.axis} is out of range for inputs of per-sample shape {first}")
        for i, shape in enumerate(shapes[1:], start=1):
            shape = tuple(shape)
            if len(shape) != len(first) or shape[:k] + shape[k + 1 :] != first[:k] + first[k + 1 :]:
                raise ReflrpError(
                    f"input {i} has shape {shape}, input 0 has {first}: they must agree except along axis "
                    f"{self.axis}"
                )
        return first[:k] + (sum(s[k] for s in shapes),) + first[k + 1 :]

    def forward(self, *inputs):
        return np.concatenate(inputs, axis=self.axis)

    def adjoint(self, s, input_shapes):
        bounds = np.cumsum([shape[self.axis] for shape in input_shapes])[:-1]
        return [np.ascontiguousarray(part) for part in np.split(s, bounds, axis=self.axis)]


def _crop_spec(cropping):
    """Keras Cropping2D's argument as (top, bottom, left, right)."""
    if isinstance(cropping, int) and not isinstance(cropping, bool):
        return (cropping,) * 4
    if isinstance(cropping, (tuple, list)) and len(cropping) == 2:
        if all(isinstance(v, int) for v in cropping):
            return (cropping[0], cropping[0], cropping[1], cropping[1])
        if all(isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(u, int) for u in v) for v in cropping):
            return (cropping[0][0], cropping[0][1], cropping[1][0], cropping[1][1])
    raise ReflrpError(
        f"Crop: cropping must be an int, (h, w) or ((top, bottom), (left, right)) as Keras' Cropping2D, got "
        f"{cropping!r}"
    )


class Crop(Routing):
    """Crop the spatial border (Keras ``Cropping2D``); relevance at cropped-away positions is exactly 0.

    Parameters
    ----------
    cropping : int, (h, w) or ((top, bottom), (left, right))
    """

    def __init__(self, cropping):
        self.cropping = _crop_spec(cropping)
        if min(self.cropping) < 0:
            raise ReflrpError(f"Crop: cropping must be >= 0, got {cropping!r}")

    def config(self):
        t, b, l, r = self.cropping
        return {"cropping": ((t, b), (l, r))}

    def output_shape(self, shape):
        _spatial_check(shape)
        t, b, l, r = self.cropping
        h, w = shape[1] - t - b, shape[2] - l - r
        if h < 1 or w < 1:
            raise ReflrpError(f"cropping {self.cropping} leaves nothing of a {shape[1]}x{shape[2]} input")
        return (shape[0], h, w)

    def forward(self, a):
        t, b, l, r = self.cropping
        return np.ascontiguousarray(a[:, :, t : a.shape[2] - b, l : a.shape[3] - r])

    def adjoint(self, s, input_shapes):
        t, b, l, r = self.cropping
        return [np.pad(s, ((0, 0), (0, 0), (t, b), (l, r)))]


class ZeroPad2d(Routing):
    """Zero padding (PyTorch ``nn.ZeroPad2d``): an int, or (left, right, top, bottom) as PyTorch.

    Relevance arriving at padded positions has nowhere to go: the ledger records it as dropped.
    """

    def __init__(self, padding):
        if isinstance(padding, int) and not isinstance(padding, bool):
            padding = (padding,) * 4
        if not (
            isinstance(padding, (tuple, list))
            and len(padding) == 4
            and all(isinstance(v, int) and v >= 0 for v in padding)
        ):
            raise ReflrpError(f"ZeroPad2d: padding must be an int or (left, right, top, bottom) >= 0, got {padding!r}")
        self.padding = tuple(padding)

    def config(self):
        return {"padding": self.padding}

    def output_shape(self, shape):
        _spatial_check(shape)
        l, r, t, b = self.padding
        return (shape[0], shape[1] + t + b, shape[2] + l + r)

    def forward(self, a):
        l, r, t, b = self.padding
        return np.pad(a, ((0, 0), (0, 0), (t, b), (l, r)))

    def adjoint(self, s, input_shapes):
        l, r, t, b = self.padding
        return [np.ascontiguousarray(s[:, :, t : s.shape[2] - b, l : s.shape[3] - r])]

    def lost(self, s):
        l, r, t, b = self.padding
        border = s.copy()
        border[:, :, t : s.shape[2] - b, l : s.shape[3] - r] = 0
        return border


# ----------------------------------------------------------------------------------------------------------
# Nonlinearities


class Activation(Layer):
    """An elementwise (or, for Softmax, per-sample) nonlinearity.  Relevance passes through unchanged."""

    output_only = False  # True: may only end the network; the explanation starts below it

    def output_shape(self, shape):
        return tuple(shape)


class ReLU(Activation):
    """max(a, 0)."""

    def forward(self, a):
        return np.maximum(a, 0)


class LeakyReLU(Activation):
    """a for a >= 0, ``negative_slope * a`` otherwise."""

    def __init__(self, negative_slope=0.01):
        if not (isinstance(negative_slope, (int, float)) and math.isfinite(negative_slope)):
            raise ReflrpError(f"LeakyReLU: negative_slope must be a finite number, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def config(self):
        return {"negative_slope": self.negative_slope}

    def forward(self, a):
        return np.where(a >= 0, a, a * a.dtype.type(self.negative_slope))


class Tanh(Activation):
    """Hyperbolic tangent.  At the end of a network it is an output activation: explanations start below it."""

    def forward(self, a):
        return np.tanh(a)


class Sigmoid(Activation):
    """Logistic sigmoid; as the last layer, an output activation: explanations start at the logit below it."""

    def forward(self, a):
        return 0.5 * (1.0 + np.tanh(0.5 * a))  # no overflow for large |a|


class Softmax(Activation):
    """Softmax along ``dim`` (counting the batch axis).  Only allowed as an output activation."""

    output_only = True

    def __init__(self, dim=1):
        if not isinstance(dim, int) or dim < 1:
            raise ReflrpError(f"Softmax: dim must be an int >= 1 (0 is the batch), got {dim!r}")
        self.dim = dim

    def config(self):
        return {"dim": self.dim}

    def output_shape(self, shape):
        if self.dim > len(shape):
            raise ReflrpError(f"dim {self.dim} is out of range for per-sample shape {tuple(shape)}")
        return tuple(shape)

    def forward(self, a):
        shifted = a - a.max(axis=self.dim, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=self.dim, keepdims=True)


class MaxPool2d(Layer):
    """Max pooling (PyTorch ``nn.MaxPool2d`` without dilation and ``ceil_mode``).

    Parameters
    ----------
    kernel_size : int or pair
    stride : int or pair, optional
        Defaults to ``kernel_size``.
    padding : int or pair
        Implicit -inf padding, at most half the kernel size.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size = _pair(kernel_size, "kernel_size", "MaxPool2d", 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", "MaxPool2d", 1)
        self.padding = _pair(padding, "padding", "MaxPool2d", 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ReflrpError(f"MaxPool2d: padding {self.padding} must be at most half of kernel_size")

    def config(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}

    def output_shape(self, shape):
        _spatial_check(shape)
        size = [
            (n + 2 * p - k) // s + 1
            for n, p, k, s in zip(shape[1:], self.padding, self.kernel_size, self.stride)
        ]
        if min(size) < 1:
            raise ReflrpError(f"input of size {shape[1]}x{shape[2]} is smaller than the kernel")
        return (shape[0], size[0], size[1])

    def forward_with_index(self, a):
        """Output and winner indices (first maximum in row-major window order)."""
        oh, ow = self.output_shape(a.shape[1:])[1:]
        return kernels.maxpool2d_forward(a, *self.kernel_size, *self.stride, *self.padding, oh, ow)

    def forward(self, a):
        return self.forward_with_index(a)[0]

    def route(self, s, a, split_ties):
        """Send ``s`` to the window maxima of ``a`` (all of it to the first, or split evenly among ties)."""
        out, index = self.forward_with_index(a)
        return kernels.maxpool2d_adjoint(s, a, out, index, *self.kernel_size, *self.stride, *self.padding, split_ties)


LAYER_TYPES = {
    cls.__name__: cls
    for cls in (
        Linear, Conv2d, ConvTranspose2d, BatchNorm1d, BatchNorm2d, AvgPool2d, AdaptiveAvgPool2d, Upsample, Add,
        Identity, Dropout, Flatten, Reshape, Concat, Crop, ZeroPad2d, ReLU, LeakyReLU, Tanh, Sigmoid, Softmax,
        MaxPool2d,
    )
}
