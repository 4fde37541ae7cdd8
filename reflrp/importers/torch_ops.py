"""The conversions behind :func:`reflrp.importers.torch.from_torch`: one handler per PyTorch module type and per
function, each returning a reflrp layer (or, for functions, the layer and the tensors it takes), or ``None`` after
recording in the converter's audit why the construct cannot be converted."""

from __future__ import annotations

import inspect
import operator

import numpy as np

from reflrp import layers as L
from reflrp import validate
from reflrp.importers.torch_shapes import (
    cat,
    channel_shuffle,
    chunk,
    flatten,
    narrow,
    permute,
    permute_function,
    reshape,
    reshape_function,
    split,
    transpose,
)

SHAPE = object()  # a traced value that is shape arithmetic, not a tensor
FAILED = object()  # a value whose construct the audit already reported (its consumers are not reported again)


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
         "torch.softmax, F.softmax (at the output)"),
        ((operator.add, operator.iadd, torch.add), signature("input", "other", alpha=1), add,
         "+, +=, torch.add (two tensors)"),
        ((torch.cat, torch.concat), signature("tensors", dim=0), cat, "torch.cat"),
        ((torch.flatten,), signature("input", start_dim=0, end_dim=-1), flatten, "torch.flatten (batch kept)"),
        ((torch.reshape,), signature("input", "shape"), reshape_function, "torch.reshape (batch kept)"),
        ((torch.permute,), signature("input", "dims"), permute_function, "torch.permute (batch first)"),
        ((F.max_pool2d,), signature("input", "kernel_size", stride=None, padding=0, dilation=1, ceil_mode=False,
                                    return_indices=False), max_pool, "F.max_pool2d (dilation 1)"),
        ((F.avg_pool2d,), signature("input", "kernel_size", stride=None, padding=0, ceil_mode=False,
                                    count_include_pad=True, divisor_override=None), avg_pool,
         "F.avg_pool2d (no divisor_override)"),
        ((F.adaptive_avg_pool2d,), signature("input", "output_size"), adaptive_avg_pool, "F.adaptive_avg_pool2d"),
        ((torch.mean,), signature("input", dim=None, keepdim=False, dtype=None), spatial_mean,
         "torch.mean(x, (2, 3)) (global average pooling)"),
        ((F.interpolate,), signature("input", size=None, scale_factor=None, mode="nearest", align_corners=None,
                                     recompute_scale_factor=None, antialias=False), interpolate,
         "F.interpolate (nearest, bilinear; integer factors)"),
        ((F.dropout,), signature("input", p=0.5, training=True, inplace=False), dropout, "F.dropout (eval)"),
    ]


#: Tensor method name -> (signature or None (positional arguments kept), handler, label)
METHODS = {
    "relu": (signature("input"), lambda c, n, a: L.ReLU(), "x.relu(), x.relu_()"),
    "relu_": (signature("input"), lambda c, n, a: L.ReLU(), None),
    "sigmoid": (signature("input"), lambda c, n, a: L.Sigmoid(), "x.sigmoid()"),
    "tanh": (signature("input"), lambda c, n, a: L.Tanh(), "x.tanh()"),
    "softmax": (signature("input", "dim"), lambda c, n, a: softmax(c, n, a), "x.softmax(dim) (at the output)"),
    "flatten": (signature("input", start_dim=0, end_dim=-1), lambda c, n, a: flatten(c, n, a), "x.flatten()"),
    "view": (None, lambda c, n, a: reshape(c, n, a), "x.view(...) (batch kept; sizes from x.size() resolve)"),
    "reshape": (None, lambda c, n, a: reshape(c, n, a), "x.reshape(...) (batch kept)"),
    "permute": (None, lambda c, n, a: permute(c, n, a), "x.permute(...) (batch first)"),
    "mean": (signature("input", dim=None, keepdim=False, dtype=None), lambda c, n, a: spatial_mean(c, n, a),
             "x.mean((2, 3)), x.mean(dim=[-2, -1], keepdim=True) (global average pooling)"),
    "mul": (signature("input", "other"), lambda c, n, a: multiply(c, n, a), "x.mul(y)"),
    "mul_": (signature("input", "other"), lambda c, n, a: multiply(c, n, a), None),
    "narrow": (signature("input", "dim", "start", "length"), lambda c, n, a: narrow(c, n, a), "x.narrow(...)"),
    "chunk": (signature("input", "chunks", dim=0), lambda c, n, a: chunk(c, n, a), "x.chunk(n, dim) (then indexed)"),
    "split": (signature("input", "split_size", dim=0), lambda c, n, a: split(c, n, {**a, "tensor": a["input"],
                                                                                       "split_size_or_sections":
                                                                                       a["split_size"]}),
              "x.split(size, dim) (then indexed)"),
    "transpose": (signature("input", "dim0", "dim1"), lambda c, n, a: transpose(c, n, a), "x.transpose(a, b)"),
    "hardsigmoid": (signature("input"), lambda c, n, a: L.Hardsigmoid(), None),
}


# -- module handlers: (converter, module, fx node, name) -> layer or None (audited) ----------------------------


def _padding_mode(c, module, name):
    if getattr(module, "padding_mode", "zeros") != "zeros":
        c.audit.add(name, type(module).__name__, f"padding_mode={module.padding_mode!r} (only 'zeros' is supported)")
        return False
    return True


def _conv1d(c, module, node, name):
    if not _padding_mode(c, module, name):
        return None
    return c.layer(name, "Conv1d", lambda: L.Conv1d(
        c.array(module.weight), c.array(module.bias), stride=module.stride, padding=module.padding,
        dilation=module.dilation, groups=module.groups))


def _conv2d(c, module, node, name):
    if not _padding_mode(c, module, name):
        return None
    return c.layer(name, "Conv2d", lambda: L.Conv2d(
        c.array(module.weight), c.array(module.bias), stride=module.stride, padding=module.padding,
        dilation=module.dilation, groups=module.groups))


def _conv_transpose2d(c, module, node, name):
    if not _padding_mode(c, module, name):
        return None
    return c.layer(name, "ConvTranspose2d", lambda: L.ConvTranspose2d(
        c.array(module.weight), c.array(module.bias), stride=module.stride, padding=module.padding,
        output_padding=module.output_padding, dilation=module.dilation, groups=module.groups))


def _linear(c, module, node, name):
    return c.layer(name, "Linear", lambda: L.Linear(c.array(module.weight), c.array(module.bias)))


def _batchnorm(layer_type):
    def convert(c, module, node, name):
        if module.running_mean is None or module.running_var is None:
            c.audit.add(name, type(module).__name__, "track_running_stats=False: batch statistics are not a fixed "
                                                     "affine map")
            return None
        if module.training:
            c.audit.add(name, type(module).__name__, "the module is in training mode (batch statistics); call "
                                                     ".eval() first")
            return None
        return c.layer(name, layer_type.__name__, lambda: layer_type(
            c.array(module.running_mean), c.array(module.running_var), c.array(module.weight), c.array(module.bias),
            eps=module.eps))

    return convert


def _max_pool_module(c, module, node, name):
    return max_pool(c, node, {"kernel_size": module.kernel_size, "stride": module.stride, "padding": module.padding,
                               "dilation": module.dilation, "ceil_mode": module.ceil_mode,
                               "return_indices": module.return_indices}, name)


def _avg_pool_module(c, module, node, name):
    return avg_pool(c, node, {"kernel_size": module.kernel_size, "stride": module.stride, "padding": module.padding,
                               "ceil_mode": module.ceil_mode, "count_include_pad": module.count_include_pad,
                               "divisor_override": module.divisor_override}, name)


def _upsample_module(c, module, node, name):
    return interpolate(c, node, {"size": module.size, "scale_factor": module.scale_factor, "mode": module.mode,
                                  "align_corners": module.align_corners}, name)


def _softmax_module(c, module, node, name):
    return softmax(c, node, {"dim": module.dim}, name)


def _flatten_module(c, module, node, name):
    return flatten(c, node, {"start_dim": module.start_dim, "end_dim": module.end_dim}, name)


def _dropout_module(c, module, node, name):
    return c.layer(name, "Dropout", lambda: L.Dropout(module.p))


#: (nn module class name, handler, note for the docs)
MODULES = [
    ("Conv1d", _conv1d, "padding_mode='zeros'; stride, padding (incl. 'same'), dilation, groups"),
    ("Conv2d", _conv2d, "padding_mode='zeros'; stride, padding (incl. 'same'), dilation, groups"),
    ("ConvTranspose2d", _conv_transpose2d, "padding_mode='zeros'; output_padding, dilation, groups"),
    ("Linear", _linear, ""),
    ("BatchNorm1d", _batchnorm(L.BatchNorm1d), "eval mode, running statistics"),
    ("BatchNorm2d", _batchnorm(L.BatchNorm2d), "eval mode, running statistics"),
    ("ReLU", lambda c, m, n, name: L.ReLU(), ""),
    ("ReLU6", lambda c, m, n, name: L.ReLU6(), ""),
    ("Hardsigmoid", lambda c, m, n, name: L.Hardsigmoid(), ""),
    ("Hardswish", lambda c, m, n, name: L.Hardswish(), ""),
    ("SiLU", lambda c, m, n, name: L.SiLU(), ""),
    ("GELU", lambda c, m, n, name: c.layer(name, "GELU", lambda: L.GELU(m.approximate)),
     "approximate 'none' or 'tanh'"),
    ("Mish", lambda c, m, n, name: L.Mish(), ""),
    ("LayerNorm", lambda c, m, n, name: layer_norm(c, n, {"input": n.args[0], "normalized_shape": m.normalized_shape,
                                                          "weight": c.array(m.weight), "bias": c.array(m.bias),
                                                          "eps": m.eps}, name),
     "as LayerNorm (relevance passes) and Scale (its weight and bias)"),
    ("LeakyReLU", lambda c, m, n, name: c.layer(name, "LeakyReLU", lambda: L.LeakyReLU(m.negative_slope)), ""),
    ("Sigmoid", lambda c, m, n, name: L.Sigmoid(), "at the output: explained at the logit"),
    ("Tanh", lambda c, m, n, name: L.Tanh(), ""),
    ("Softmax", _softmax_module, "at the output only"),
    ("MaxPool2d", _max_pool_module, "dilation 1"),
    ("AvgPool2d", _avg_pool_module, "no divisor_override"),
    ("AdaptiveAvgPool2d", lambda c, m, n, name: adaptive_avg_pool(c, n, {"output_size": m.output_size}, name), ""),
    ("Upsample", _upsample_module, "nearest, bilinear; integer factors"),
    ("Flatten", _flatten_module, "batch axis kept"),
    ("Dropout", _dropout_module, "eval mode: the identity"),
    ("Dropout2d", _dropout_module, "eval mode: the identity"),
    ("Dropout1d", _dropout_module, "eval mode: the identity"),
    ("ChannelShuffle", lambda c, m, n, name: channel_shuffle(c, n, {"groups": m.groups, "input": n.args[0]}, name),
     "as Reshape, Permute, Reshape"),
    ("Identity", lambda c, m, n, name: L.Identity(), ""),
    ("ZeroPad2d", lambda c, m, n, name: c.layer(name, "ZeroPad2d", lambda: L.ZeroPad2d(tuple(m.padding))), ""),
]


# -- function handlers: (converter, fx node, bound arguments[, name]) -> layer, (layer, tensors), a name, or None --


def _where(node, name):
    return name or node.name


def leaky_relu(c, node, a, name=None):
    return c.layer(_where(node, name), "leaky_relu", lambda: L.LeakyReLU(a["negative_slope"]))


def softmax(c, node, a, name=None):
    if a.get("dtype") is not None:
        c.audit.add(_where(node, name), "softmax", "dtype= is not supported")
        return None
    source = a.get("input", node.args[0] if node.args else None)
    dim = c.dim(source if hasattr(source, "op") else node, a["dim"], _where(node, name), "softmax") \
        if a["dim"] is not None else None
    if dim is None:
        if a["dim"] is None:
            c.audit.add(_where(node, name), "softmax", "dim=None (implicit dim) is not supported; give dim")
        return None
    if not all(user.op == "output" for user in node.users):
        c.audit.add(_where(node, name), "Softmax", "only allowed as the model's output: relevance cannot be "
                                                   "propagated through it")
        return None
    return L.Softmax(dim)


def add(c, node, a, name=None):
    where = _where(node, name)
    if a["alpha"] != 1:
        c.audit.add(where, "add", f"alpha={a['alpha']!r} is not supported")
        return None
    constants = [a[k] for k in ("input", "other") if not hasattr(a[k], "op")]
    for value in constants:
        c.audit.add(where, "add", f"adding a constant ({value!r}) is a bias the ledger cannot account for: not "
                                  f"supported")
    if constants:
        return None
    return L.Add(), [a["input"], a["other"]]


def max_pool(c, node, a, name=None):
    where = _where(node, name)
    problems = []
    if a["return_indices"]:
        problems.append("return_indices=True")
    if validate.is_integer(a["dilation"]) and a["dilation"] != 1 or (isinstance(a["dilation"], (tuple, list))
                                                                     and tuple(a["dilation"]) != (1, 1)):
        problems.append(f"dilation={a['dilation']!r}")
    for problem in problems:
        c.audit.add(where, "max_pool2d", f"{problem} is not supported")
    if problems:
        return None
    stride = a["stride"] if a["stride"] not in (None, (), []) else None
    return c.layer(where, "max_pool2d", lambda: L.MaxPool2d(a["kernel_size"], stride, a["padding"],
                                                            ceil_mode=bool(a["ceil_mode"])))


def avg_pool(c, node, a, name=None):
    where = _where(node, name)
    problems = []
    if a["divisor_override"] is not None:
        problems.append(f"divisor_override={a['divisor_override']!r}")
    for problem in problems:
        c.audit.add(where, "avg_pool2d", f"{problem} is not supported")
    if problems:
        return None
    stride = a["stride"] if a["stride"] not in (None, (), []) else None
    return c.layer(where, "avg_pool2d", lambda: L.AvgPool2d(a["kernel_size"], stride, a["padding"],
                                                            count_include_pad=bool(a["count_include_pad"]),
                                                            ceil_mode=bool(a["ceil_mode"])))


def adaptive_avg_pool(c, node, a, name=None):
    size = a["output_size"]
    if size is None or (isinstance(size, (tuple, list)) and None in size):
        shape = c.shape(node)
        size = tuple(shape[2:]) if shape else size
    return c.layer(_where(node, name), "adaptive_avg_pool2d", lambda: L.AdaptiveAvgPool2d(size))


def spatial_mean(c, node, a, name=None):
    """The mean over both spatial axes of (N, C, H, W): AdaptiveAvgPool2d(1), then Flatten unless ``keepdim``."""
    where = _where(node, name)
    source = a["input"]
    shape = c.shape(source) if hasattr(source, "op") else None
    dims = a["dim"] if isinstance(a["dim"], (tuple, list)) else (a["dim"],)
    if shape is None or len(shape) != 4 or a["dtype"] is not None or not all(isinstance(d, int) for d in dims) \
            or sorted(d % 4 for d in dims) != [2, 3]:
        c.audit.add(where, "mean", "only the mean over the spatial axes (2, 3) of an (N, C, H, W) tensor is supported "
                                   "(global average pooling), without dtype=")
        return None
    pooled = c.add(node, where, L.AdaptiveAvgPool2d(1), c.tensor_input(node, source, where, "mean"))
    if a["keepdim"] or pooled is None:
        return pooled
    return c.add(node, f"{where}.flatten", L.Flatten(1, -1), pooled)


def interpolate(c, node, a, name=None):
    where = _where(node, name)
    mode = a["mode"]
    if mode not in ("nearest", "bilinear"):
        c.audit.add(where, "interpolate", f"mode={mode!r} is not supported (nearest, bilinear)")
        return None
    if a.get("antialias"):
        c.audit.add(where, "interpolate", "antialias=True is not supported")
        return None
    source = node.args[0] if node.args else None
    before, after = c.shape(source) if hasattr(source, "op") else None, c.shape(node)
    if before is None or after is None or len(before) != 4:
        c.audit.add(where, "interpolate", "only 2-D (N, C, H, W) inputs are supported")
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
        requested = tuple(_integral(s) for s in (scale if isinstance(scale, (tuple, list)) else (scale, scale)))
        if requested != tuple(factors):
            c.audit.add(where, "interpolate", f"scale_factor={scale!r} is not an integer factor")
            return None
    align = bool(a["align_corners"]) if mode == "bilinear" and a["align_corners"] is not None else False
    return c.layer(where, "interpolate", lambda: L.Upsample(tuple(factors), mode=mode, align_corners=align))


def multiply(c, node, a, name=None):
    """``a * b``: of two tensors, a :class:`~reflrp.layers.Multiply` (the input made by a Sigmoid or Hardsigmoid,
    if exactly one is, marked as its gate); of a tensor and a parameter or a number, a
    :class:`~reflrp.layers.Scale`."""
    where = _where(node, name)
    operands = [a["input"], a["other"]]
    tensors = [k for k, v in enumerate(operands) if hasattr(v, "op") and isinstance(c.values.get(v), str)]
    if len(tensors) == 2:
        gates = [k for k, v in enumerate(operands) if c.produced_by(v) in ("Sigmoid", "Hardsigmoid")]
        return c.layer(where, "mul", lambda: L.Multiply(gate=gates[0] if len(gates) == 1 else None)), operands
    if len(tensors) == 1:
        factor = operands[1 - tensors[0]]
        weight = c.constant(factor) if hasattr(factor, "op") else factor
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) and getattr(weight, "ndim", None) is None:
            c.audit.add(where, "mul", f"multiplying by {factor!r} is not supported (a tensor, a parameter or a number)")
            return None
        array = np.asarray(weight, dtype=c.dtype).reshape(np.shape(weight) or (1,))
        return c.layer(where, "mul", lambda: L.Scale(array)), [operands[tensors[0]]]
    return None  # neither operand is a tensor computed from the input: tensor_input reports it


def layer_norm(c, node, a, name=None):
    """LayerNorm: the normalisation (a :class:`~reflrp.layers.LayerNorm` node), then its weight and bias as a
    :class:`~reflrp.layers.Scale` node named after the layer (``weight`` and ``bias``: arrays, fx values of
    parameters, or None)."""
    where = _where(node, name)
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


def stochastic_depth(c, node, a, name=None):
    """torchvision's ``stochastic_depth`` at evaluation: the identity."""
    if a["training"]:
        c.audit.add(_where(node, name), "stochastic_depth", "training=True drops rows at random; call .eval()")
        return None
    return c.tensor_input(node, a["input"], _where(node, name), "stochastic_depth")


def dropout(c, node, a, name=None):
    if a["training"]:
        c.audit.add(_where(node, name), "dropout", "training=True drops values at random; call .eval() or pass "
                                                   "training=self.training")
        return None
    return c.layer(_where(node, name), "dropout", lambda: L.Dropout(a["p"]))



__all__ = ["FAILED", "METHODS", "MODULES", "SHAPE", "function_table", "signature"]
