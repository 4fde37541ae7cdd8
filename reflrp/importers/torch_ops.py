"""The conversions behind :func:`reflrp.importers.torch.from_torch`: one handler per PyTorch module type and per
function, each returning a reflrp layer (or, for functions, the layer and the tensors it takes), or ``None`` after
recording in the converter's audit why the construct cannot be converted."""

from __future__ import annotations

import inspect
import operator

import numpy as np

from reflrp import layers as L
from reflrp import validate
from reflrp.importers import torch_attention as attention
from reflrp.importers.common import gate_of
from reflrp.importers.common import where as where_of
from reflrp.importers.torch_shapes import (
    cat,
    channel_shuffle,
    chunk,
    expand,
    flatten,
    narrow,
    permute,
    permute_function,
    reshape,
    reshape_function,
    roll,
    same_dtype,
    split,
    transpose,
    unbind,
)

SHAPE = object()  # a traced value that is shape arithmetic, not a tensor
FAILED = object()  # a value whose construct the audit already reported (its consumers are not reported again)


def is_constant(value):
    """Whether a converted value is a parameter or buffer used directly (``("constant", path)``) or a tensor
    computed from constants (``("value", array)``)."""
    return isinstance(value, tuple) and len(value) == 2 and value[0] in ("constant", "value")


def signature(*names, **defaults):
    """A signature to bind call arguments against: positional names, then keyword defaults."""
    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    params += [inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=v) for k, v in defaults.items()]
    return inspect.Signature(params)


def _integral(value):
    """An int from an int or an integral float (PyTorch accepts scale_factor=2.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def function_table(torch):
    """``[(functions, signature, handler, label)]``: what call_function nodes convert to."""
    F = torch.nn.functional
    return [
        ((torch.relu, F.relu, torch.relu_), signature("input", inplace=False), lambda c, n, a: L.ReLU(),
         "torch.relu, F.relu"),
        ((F.leaky_relu,), signature("input", negative_slope=0.01, inplace=False), leaky_relu, "F.leaky_relu"),
        ((F.relu6,), signature("input", inplace=False), lambda c, n, a: L.ReLU6(), "F.relu6"),
        ((F.hardsigmoid,), signature("input", inplace=False), lambda c, n, a: L.Hardsigmoid(), "F.hardsigmoid"),
        ((F.hardswish,), signature("input", inplace=False), lambda c, n, a: L.Hardswish(), "F.hardswish"),
        ((F.silu,), signature("input", inplace=False), lambda c, n, a: L.SiLU(), "F.silu"),
        ((F.gelu,), signature("input", approximate="none"),
         lambda c, n, a: c.layer(n.name, "gelu", lambda: L.GELU(a["approximate"])), "F.gelu"),
        ((F.mish,), signature("input", inplace=False), lambda c, n, a: L.Mish(), "F.mish"),
        ((F.layer_norm,), signature("input", "normalized_shape", weight=None, bias=None, eps=1e-5), layer_norm,
         "F.layer_norm (as LayerNorm and Scale)"),
        ((F.group_norm,), signature("input", "num_groups", weight=None, bias=None, eps=1e-5), group_norm,
         "F.group_norm (as GroupNorm and Scale)"),
        ((F.instance_norm,), signature("input", running_mean=None, running_var=None, weight=None, bias=None,
                                       use_input_stats=True, momentum=0.1, eps=1e-5), instance_norm,
         "F.instance_norm with the input's statistics (as GroupNorm, a group per channel, and Scale)"),
        ((F.prelu, torch.prelu), signature("input", "weight"), prelu, "F.prelu with a parameter of the module"),
        ((F.conv2d, torch.conv2d), signature("input", "weight", bias=None, stride=1, padding=0, dilation=1, groups=1),
         conv_function(L.Conv2d), "F.conv2d with the module's own parameters"),
        ((F.conv3d, torch.conv3d), signature("input", "weight", bias=None, stride=1, padding=0, dilation=1, groups=1),
         conv_function(L.Conv3d), "F.conv3d with the module's own parameters"),
        ((torch.stack,), signature("tensors", dim=0), stack, "torch.stack(tensors) summed over dim 0 (an Add)"),
        ((operator.mul, operator.imul, torch.mul), signature("input", "other"), multiply,
         "*, *=, torch.mul (two tensors: a product; a parameter or a number: a scale)"),
        ((torch.narrow,), signature("input", "dim", "start", "length"), narrow, "torch.narrow"),
        ((torch.chunk,), signature("input", "chunks", dim=0), chunk, "torch.chunk (then indexed)"),
        ((torch.split,), signature("tensor", "split_size_or_sections", dim=0), split, "torch.split (then indexed)"),
        ((torch.transpose,), signature("input", "dim0", "dim1"), transpose, "torch.transpose (batch first)"),
        ((F.channel_shuffle, torch.channel_shuffle), signature("input", "groups"), channel_shuffle,
         "F.channel_shuffle"),
        ((torch.sigmoid, F.sigmoid), signature("input"), lambda c, n, a: L.Sigmoid(), "torch.sigmoid"),
        ((torch.tanh, F.tanh), signature("input"), lambda c, n, a: L.Tanh(), "torch.tanh"),
        ((torch.softmax, F.softmax), signature("input", dim=None, _stacklevel=3, dtype=None), softmax,
         "torch.softmax, F.softmax"),
        ((operator.matmul, torch.matmul, torch.bmm), signature("input", "other"), attention.matmul,
         "@, torch.matmul, torch.bmm of two tensors (a MatMul; a Softmax's output is its gate)"),
        ((F.scaled_dot_product_attention,), signature("query", "key", "value", attn_mask=None, dropout_p=0.0,
                                                      is_causal=False, scale=None, enable_gqa=False),
         attention.scaled_dot_product_attention,
         "F.scaled_dot_product_attention without dropout (a causal mask or is_causal kept), as MatMul, Scale, "
         "Softmax, MatMul"),
        ((operator.neg, torch.neg), signature("input"), lambda c, n, a: L.Scale(np.asarray(-1.0, dtype=c.dtype)),
         "-x (a Scale by -1)"),
        ((operator.truediv, torch.div), signature("input", "other"), attention.divide, "x / number"),
        ((operator.add, operator.iadd, torch.add), signature("input", "other", alpha=1), add,
         "+, +=, torch.add (two tensors; a tensor and a parameter or number: a Scale with that bias)"),
        ((torch.cat, torch.concat), signature("tensors", dim=0), cat, "torch.cat"),
        ((torch.flatten,), signature("input", start_dim=0, end_dim=-1), flatten, "torch.flatten (batch kept)"),
        ((torch.reshape,), signature("input", "shape"), reshape_function, "torch.reshape (batch kept)"),
        ((torch.permute,), signature("input", "dims"), permute_function, "torch.permute (batch first)"),
        ((torch.roll,), signature("input", "shifts", dims=None), roll, "torch.roll along non-batch axes"),
        ((F.max_pool2d,), signature("input", "kernel_size", stride=None, padding=0, dilation=1, ceil_mode=False,
                                    return_indices=False), max_pool, "F.max_pool2d (dilation 1)"),
        ((F.avg_pool2d,), signature("input", "kernel_size", stride=None, padding=0, ceil_mode=False,
                                    count_include_pad=True, divisor_override=None), avg_pool,
         "F.avg_pool2d (no divisor_override)"),
        ((F.adaptive_avg_pool2d,), signature("input", "output_size"), adaptive_avg_pool, "F.adaptive_avg_pool2d"),
        ((F.max_pool1d, F.max_pool3d), signature("input", "kernel_size", stride=None, padding=0, dilation=1,
                                                 ceil_mode=False, return_indices=False), max_pool,
         "F.max_pool1d, F.max_pool3d (dilation 1)"),
        ((F.avg_pool1d,), signature("input", "kernel_size", stride=None, padding=0, ceil_mode=False,
                                    count_include_pad=True), avg_pool, "F.avg_pool1d"),
        ((F.avg_pool3d,), signature("input", "kernel_size", stride=None, padding=0, ceil_mode=False,
                                    count_include_pad=True, divisor_override=None), avg_pool,
         "F.avg_pool3d (no divisor_override)"),
        ((F.adaptive_avg_pool1d, F.adaptive_avg_pool3d), signature("input", "output_size"), adaptive_avg_pool,
         "F.adaptive_avg_pool1d, F.adaptive_avg_pool3d"),
        ((torch.mean,), signature("input", dim=None, keepdim=False, dtype=None), spatial_mean,
         "torch.mean(x, (2, 3)) (global average pooling); over other axes, a Mean"),
        ((F.interpolate,), signature("input", size=None, scale_factor=None, mode="nearest", align_corners=None,
                                     recompute_scale_factor=None, antialias=False), interpolate,
         "F.interpolate (nearest, linear, bilinear, trilinear; integer factors)"),
        ((F.dropout,), signature("input", p=0.5, training=True, inplace=False), dropout, "F.dropout (eval)"),
        ((F.pad,), signature("input", "pad", mode="constant", value=None), pad,
         "F.pad with zeros or replicate, any number of axes"),
    ]


#: Tensor method name -> (signature or None (positional arguments kept), handler, label)
METHODS = {
    "relu": (signature("input"), lambda c, n, a: L.ReLU(), "x.relu(), x.relu_()"),
    "relu_": (signature("input"), lambda c, n, a: L.ReLU(), None),
    "sigmoid": (signature("input"), lambda c, n, a: L.Sigmoid(), "x.sigmoid()"),
    "tanh": (signature("input"), lambda c, n, a: L.Tanh(), "x.tanh()"),
    "softmax": (signature("input", "dim"), lambda c, n, a: softmax(c, n, a), "x.softmax(dim)"),
    "matmul": (signature("input", "other"), lambda c, n, a: attention.matmul(c, n, a), "x.matmul(y)"),
    "flatten": (signature("input", start_dim=0, end_dim=-1), lambda c, n, a: flatten(c, n, a), "x.flatten()"),
    "view": (None, lambda c, n, a: reshape(c, n, a), "x.view(...) (batch kept; sizes from x.size() resolve)"),
    "reshape": (None, lambda c, n, a: reshape(c, n, a), "x.reshape(...) (batch kept)"),
    "permute": (None, lambda c, n, a: permute(c, n, a), "x.permute(...) (batch first)"),
    "roll": (signature("input", "shifts", dims=None), lambda c, n, a: roll(c, n, a), "x.roll(shifts, dims)"),
    "mean": (signature("input", dim=None, keepdim=False, dtype=None), lambda c, n, a: spatial_mean(c, n, a),
             "x.mean((2, 3)), x.mean(dim=[-2, -1], keepdim=True) (global average pooling); x.mean(dim=1) (a Mean)"),
    "mul": (signature("input", "other"), lambda c, n, a: multiply(c, n, a), "x.mul(y)"),
    "sum": (signature("input", dim=None, keepdim=False, dtype=None), lambda c, n, a: summed(c, n, a),
            "torch.stack(tensors).sum(dim=0) (an Add)"),
    "mul_": (signature("input", "other"), lambda c, n, a: multiply(c, n, a), None),
    "narrow": (signature("input", "dim", "start", "length"), lambda c, n, a: narrow(c, n, a), "x.narrow(...)"),
    "chunk": (signature("input", "chunks", dim=0), lambda c, n, a: chunk(c, n, a), "x.chunk(n, dim) (then indexed)"),
    "split": (signature("input", "split_size", dim=0), lambda c, n, a: split(c, n, {**a, "tensor": a["input"],
                                                                                       "split_size_or_sections":
                                                                                       a["split_size"]}),
              "x.split(size, dim) (then indexed)"),
    "transpose": (signature("input", "dim0", "dim1"), lambda c, n, a: transpose(c, n, a), "x.transpose(a, b)"),
    "expand": (None, lambda c, n, a: expand(c, n, a), "x.expand(...) along axes of size 1, batch kept (repeated "
                                                       "key/value heads)"),
    "unbind": (signature("input", dim=0), lambda c, n, a: unbind(c, n, a),
               "x.unbind(dim) (then indexed; after a permute that moved the batch axis, as timm's attention)"),
    "hardsigmoid": (signature("input"), lambda c, n, a: L.Hardsigmoid(), None),
    "neg": (signature("input"), lambda c, n, a: L.Scale(np.asarray(-1.0, dtype=c.dtype)), "x.neg()"),
    "to": (None, lambda c, n, a: same_dtype(c, n, a), "x.to(dtype), x.float(), x.type_as(y) that keep the dtype"),
    "float": (None, lambda c, n, a: same_dtype(c, n, a), None),
    "type_as": (None, lambda c, n, a: same_dtype(c, n, a), None),
}


# -- function handlers: (converter, fx node, bound arguments[, name]) -> layer, (layer, tensors), a name, or None --


def leaky_relu(c, node, a, name=None):
    return c.layer(where_of(node, name), "leaky_relu", lambda: L.LeakyReLU(a["negative_slope"]))


def softmax(c, node, a, name=None):
    if a.get("dtype") is not None:
        c.audit.add(where_of(node, name), "softmax", "dtype= is not supported")
        return None
    source = a.get("input", node.args[0] if node.args else None)
    dim = c.dim(source if hasattr(source, "op") else node, a["dim"], where_of(node, name), "softmax") \
        if a["dim"] is not None else None
    if dim is None:
        if a["dim"] is None:
            c.audit.add(where_of(node, name), "softmax", "dim=None (implicit dim) is not supported; give dim")
        return None
    return L.Softmax(dim)


def add(c, node, a, name=None):
    where = where_of(node, name)
    if a["alpha"] != 1:
        c.audit.add(where, "add", f"alpha={a['alpha']!r} is not supported")
        return None
    operands = [a["input"], a["other"]]
    tensors = [k for k, v in enumerate(operands) if hasattr(v, "op") and isinstance(c.values.get(v), str)]
    if len(tensors) == 1:  # a tensor plus a parameter (a position embedding) or a number: a bias
        other = operands[1 - tensors[0]]
        value = c.constant(other) if hasattr(other, "op") else other
        if value is not None and not isinstance(value, bool) and (isinstance(value, (int, float)) or
                                                                  isinstance(value, np.ndarray)):
            return attention.add_constant(c, where, operands[tensors[0]], value)
    if any(hasattr(v, "op") and c.values.get(v) is FAILED for v in operands):
        return None  # reported where it failed
    return L.Add(), operands


def _spatial_dims(c, node):
    """The number of spatial axes of a pooling's (N, C, ...) output: 1, 2 or 3 (2 when unknown)."""
    shape = c.shape(node)
    return len(shape) - 2 if shape is not None and 3 <= len(shape) <= 5 else 2


_MAX_POOLS = {1: L.MaxPool1d, 2: L.MaxPool2d, 3: L.MaxPool3d}
_AVG_POOLS = {1: L.AvgPool1d, 2: L.AvgPool2d, 3: L.AvgPool3d}
_ADAPTIVE_POOLS = {1: L.AdaptiveAvgPool1d, 2: L.AdaptiveAvgPool2d, 3: L.AdaptiveAvgPool3d}


def max_pool(c, node, a, name=None):
    where = where_of(node, name)
    dims = _spatial_dims(c, node)
    what = f"max_pool{dims}d"
    problems = []
    if a["return_indices"]:
        problems.append("return_indices=True")
    dilation = a["dilation"]
    if (validate.is_integer(dilation) and dilation != 1) or \
            (isinstance(dilation, (tuple, list)) and any(d != 1 for d in dilation)):
        problems.append(f"dilation={dilation!r}")
    for problem in problems:
        c.audit.add(where, what, f"{problem} is not supported")
    if problems:
        return None
    stride = a["stride"] if a["stride"] not in (None, (), []) else None
    return c.layer(where, what, lambda: _MAX_POOLS[dims](a["kernel_size"], stride, a["padding"],
                                                         ceil_mode=bool(a["ceil_mode"])))


def avg_pool(c, node, a, name=None):
    where = where_of(node, name)
    dims = _spatial_dims(c, node)
    what = f"avg_pool{dims}d"
    if a.get("divisor_override") is not None:
        c.audit.add(where, what, f"divisor_override={a['divisor_override']!r} is not supported")
        return None
    stride = a["stride"] if a["stride"] not in (None, (), []) else None
    return c.layer(where, what, lambda: _AVG_POOLS[dims](a["kernel_size"], stride, a["padding"],
                                                         count_include_pad=bool(a["count_include_pad"]),
                                                         ceil_mode=bool(a["ceil_mode"])))


def adaptive_avg_pool(c, node, a, name=None):
    dims = _spatial_dims(c, node)
    size = a["output_size"]
    if size is None or (isinstance(size, (tuple, list)) and None in size):
        shape = c.shape(node)
        size = tuple(shape[2:]) if shape else size
    return c.layer(where_of(node, name), f"adaptive_avg_pool{dims}d", lambda: _ADAPTIVE_POOLS[dims](size))


def spatial_mean(c, node, a, name=None):
    """The mean over every spatial axis of (N, C, ...): adaptive average pooling to 1, then Flatten unless
    ``keepdim``; over other axes (a transformer's tokens): a :class:`~reflrp.layers.Mean`."""
    where = where_of(node, name)
    source = a["input"]
    shape = c.shape(source) if hasattr(source, "op") else None
    dims = a["dim"] if isinstance(a["dim"], (tuple, list)) else (a["dim"],)
    ndim = len(shape) if shape is not None else 0
    if ndim < 2 or a["dtype"] is not None or not all(isinstance(d, int) for d in dims) or \
            any(d % ndim == 0 for d in dims):
        c.audit.add(where, "mean", "only a mean over non-batch axes given as integers (x.mean((2, 3)), "
                                   "x.mean(dim=1)) is supported, without dtype=")
        return None
    if not 3 <= ndim <= 5 or sorted(d % ndim for d in dims) != list(range(2, ndim)):  # tokens, not an image
        return c.layer(where, "mean", lambda: L.Mean(tuple(sorted(d % ndim for d in dims)), bool(a["keepdim"])))
    pooled = c.add(node, where, _ADAPTIVE_POOLS[ndim - 2]((1,) * (ndim - 2)),
                   c.tensor_input(node, source, where, "mean"))
    if a["keepdim"] or pooled is None:
        return pooled
    return c.add(node, f"{where}.flatten", L.Flatten(1, -1), pooled)


def interpolate(c, node, a, name=None):
    where = where_of(node, name)
    mode = a["mode"]
    if mode not in ("nearest", "linear", "bilinear", "trilinear"):
        c.audit.add(where, "interpolate", f"mode={mode!r} is not supported (nearest, linear, bilinear, trilinear)")
        return None
    if a.get("antialias"):
        c.audit.add(where, "interpolate", "antialias=True is not supported")
        return None
    source = node.args[0] if node.args else None
    before, after = c.shape(source) if hasattr(source, "op") else None, c.shape(node)
    if before is None or after is None or not 3 <= len(before) <= 5:
        c.audit.add(where, "interpolate", "only (N, C, L), (N, C, H, W) and (N, C, D, H, W) inputs are supported")
        return None
    factors = []
    for b, o in zip(before[2:], after[2:]):
        if o % b:
            c.audit.add(where, "interpolate", f"size {tuple(after[2:])} is not an integer multiple of "
                                              f"{tuple(before[2:])}: only integer scale factors are supported")
            return None
        factors.append(o // b)
    scale = a["scale_factor"]
    if scale is not None:
        scales = scale if isinstance(scale, (tuple, list)) else (scale,) * len(factors)
        requested = tuple(_integral(s) for s in scales)
        if requested != tuple(factors):
            c.audit.add(where, "interpolate", f"scale_factor={scale!r} is not an integer factor")
            return None
    align = bool(a["align_corners"]) if mode != "nearest" and a["align_corners"] is not None else False
    return c.layer(where, "interpolate", lambda: L.Upsample(tuple(factors), mode=mode, align_corners=align))


def pad(c, node, a, name=None):
    """``F.pad`` with zeros or copies of the edge (a :class:`~reflrp.layers.Pad`; MONAI's BasicUNet pads odd
    edges by replication); a padding of zeros in any mode is the identity."""
    where = where_of(node, name)
    widths = a["pad"]
    if not (isinstance(widths, (tuple, list)) and widths and all(validate.is_integer(w) for w in widths)):
        c.audit.add(where, "pad", f"pad={widths!r} must be integers known when tracing")
        return None
    if not any(widths):
        return L.Identity()
    if (a["mode"], a["value"]) not in (("constant", None), ("constant", 0), ("replicate", None)):
        c.audit.add(where, "pad", f"mode={a['mode']!r} (value={a['value']!r}) is not supported: zeros ('constant') "
                                  f"or copies of the edge ('replicate')")
        return None
    return c.layer(where, "pad", lambda: L.Pad(tuple(widths), mode=a["mode"]))


def multiply(c, node, a, name=None):
    """``a * b``: of two tensors, a :class:`~reflrp.layers.Multiply` (its gate marked: the input made by a Sigmoid or
    Hardsigmoid, if exactly one is; else, in a gated linear unit ``act(gate_proj(x)) * up_proj(x)``, the activated
    branch); of a tensor and a parameter or a number, a :class:`~reflrp.layers.Scale`."""
    where = where_of(node, name)
    operands = [a["input"], a["other"]]
    tensors = [k for k, v in enumerate(operands) if hasattr(v, "op") and isinstance(c.values.get(v), str)]
    if len(tensors) == 2:
        gate = gate_of([c.produced_by(v) for v in operands])
        return c.layer(where, "mul", lambda: L.Multiply(gate=gate)), operands
    if len(tensors) == 1:
        factor = operands[1 - tensors[0]]
        weight = c.constant(factor) if hasattr(factor, "op") else factor
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) and getattr(weight, "ndim", None) is None:
            c.audit.add(where, "mul", f"multiplying by {factor!r} is not supported (a tensor, a parameter or a number)")
            return None
        array = np.asarray(weight, dtype=c.dtype).reshape(np.shape(weight) or (1,))
        if array.ndim == len(c.shape(node) or ()) and len(array) == 1:  # (1, ...): one sample's factor
            array = array[0]
        return c.layer(where, "mul", lambda: L.Scale(array)), [operands[tensors[0]]]
    return None  # neither operand is a tensor computed from the input: tensor_input reports it


def layer_norm(c, node, a, name=None):
    """LayerNorm: the normalisation (a :class:`~reflrp.layers.LayerNorm` node), then its weight and bias as a
    :class:`~reflrp.layers.Scale` node named after the layer (``weight`` and ``bias``: arrays, fx values of
    parameters, or None)."""
    where = where_of(node, name)
    weight, bias = (c.constant(v) if hasattr(v, "op") else v for v in (a["weight"], a["bias"]))
    if any(hasattr(v, "op") and c.constant(v) is None for v in (a["weight"], a["bias"])):
        c.audit.add(where, "layer_norm", "weight and bias must be parameters of the module")
        return None
    shape = tuple(a["normalized_shape"]) if isinstance(a["normalized_shape"], (tuple, list)) else \
        (a["normalized_shape"],)
    source = c.tensor_input(node, a["input"], where, "layer_norm")
    if weight is None and bias is None:
        return c.add(node, where, c.layer(where, "LayerNorm", lambda: L.LayerNorm(shape, a["eps"])), source)
    normalized = c.add(node, f"{where}.normalize", c.layer(where, "LayerNorm", lambda: L.LayerNorm(shape, a["eps"])),
                       source)
    weight = np.ones(shape, dtype=c.dtype) if weight is None else weight
    return c.add(node, where, c.layer(where, "Scale", lambda: L.Scale(weight, bias)), normalized)


def group_norm(c, node, a, name=None):
    """GroupNorm: the normalisation, then its per-channel weight and bias as a Scale node named after the layer."""
    where = where_of(node, name)
    shape = c.shape(node)
    source = c.tensor_input(node, a["input"], where, "group_norm")
    if shape is None:
        return None
    weight, bias = (c.constant(v) if hasattr(v, "op") else v for v in (a["weight"], a["bias"]))
    norm = c.layer(where, "GroupNorm", lambda: L.GroupNorm(a["num_groups"], a["eps"]))
    if weight is None and bias is None:
        return c.add(node, where, norm, source)
    normalized = c.add(node, f"{where}.normalize", norm, source)
    per_channel = (-1,) + (1,) * (len(shape) - 2)
    weight = np.ones(shape[1], dtype=c.dtype) if weight is None else weight
    return c.add(node, where, c.layer(where, "Scale", lambda: L.Scale(
        weight.reshape(per_channel), None if bias is None else bias.reshape(per_channel))), normalized)


def instance_norm(c, node, a, name=None):
    """``F.instance_norm`` with the input's own statistics: GroupNorm with one group per channel, and Scale."""
    if not a["use_input_stats"]:
        c.audit.add(where_of(node, name), "instance_norm", "use_input_stats=False (running statistics) is supported "
                                                         "for nn.InstanceNorm modules only")
        return None
    channels = (c.shape(node) or (0, 0))[1]
    return group_norm(c, node, {**a, "num_groups": channels}, name)


def prelu(c, node, a, name=None):
    where = where_of(node, name)
    weight = c.constant(a["weight"]) if hasattr(a["weight"], "op") else None
    if weight is None:
        c.audit.add(where, "prelu", "the weight must be a parameter of the module")
        return None
    return c.layer(where, "prelu", lambda: L.PReLU(weight))


def conv_function(layer_type):
    """``F.conv2d`` (``F.conv3d``) with the module's parameters (e.g. a convolution with its own padding logic)."""
    what = layer_type.__name__.lower()

    def convert(c, node, a, name=None):
        where = where_of(node, name)
        weight, bias = (c.constant(v) if hasattr(v, "op") else v for v in (a["weight"], a["bias"]))
        if weight is None or (a["bias"] is not None and bias is None):
            c.audit.add(where, what, "weight and bias must be parameters of the module")
            return None
        return c.layer(where, what, lambda: layer_type(weight, bias, stride=a["stride"], padding=a["padding"],
                                                       dilation=a["dilation"], groups=a["groups"]))

    return convert


class Stacked:
    """The value of ``torch.stack(tensors)`` along a new first axis: only its sum over that axis (an Add) is
    supported."""

    def __init__(self, names):
        self.names = names


def stack(c, node, a, name=None):
    where = where_of(node, name)
    if a["dim"] != 0:
        c.audit.add(where, "stack", f"stacking along dim={a['dim']!r} is supported only when summed over it at once "
                                   f"(dim=0)")
        return None
    names = [c.tensor_input(node, t, where, "stack") for t in a["tensors"]]
    return None if any(n is None for n in names) else Stacked(names)


def summed(c, node, a, name=None):
    """``x.sum(dim=0)`` of a :class:`Stacked`: the Add of the stacked tensors."""
    where = where_of(node, name)
    stacked = c.values.get(a["input"]) if hasattr(a["input"], "op") else None
    if not isinstance(stacked, Stacked) or a["dim"] not in (0, (0,), [0]) or a["keepdim"]:
        c.audit.add(where, "sum", "only the sum over the stacking axis of torch.stack(tensors) is supported (an Add)")
        return None
    return c.add(node, where, L.Add(), *stacked.names)


def stochastic_depth(c, node, a, name=None):
    """torchvision's ``stochastic_depth`` at evaluation: the identity."""
    if a["training"]:
        c.audit.add(where_of(node, name), "stochastic_depth", "training=True drops rows at random; call .eval()")
        return None
    return c.tensor_input(node, a["input"], where_of(node, name), "stochastic_depth")


def dropout(c, node, a, name=None):
    if a["training"]:
        c.audit.add(where_of(node, name), "dropout", "training=True drops values at random; call .eval() or pass "
                                                   "training=self.training")
        return None
    return c.layer(where_of(node, name), "dropout", lambda: L.Dropout(a["p"]))



__all__ = ["FAILED", "METHODS", "SHAPE", "Stacked", "function_table", "signature"]
