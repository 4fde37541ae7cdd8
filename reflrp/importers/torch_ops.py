"""The conversions behind :func:`reflrp.importers.torch.from_torch`: one handler per PyTorch module type and per
function, each returning a reflrp layer (or, for functions, the layer and the tensors it takes), or ``None`` after
recording in the converter's audit why the construct cannot be converted."""

from __future__ import annotations

import inspect
import operator

from reflrp import layers as L
from reflrp import validate

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
                                    return_indices=False), max_pool, "F.max_pool2d (no ceil_mode, dilation 1)"),
        ((F.avg_pool2d,), signature("input", "kernel_size", stride=None, padding=0, ceil_mode=False,
                                    count_include_pad=True, divisor_override=None), avg_pool,
         "F.avg_pool2d (no ceil_mode, no divisor_override)"),
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
    ("LeakyReLU", lambda c, m, n, name: c.layer(name, "LeakyReLU", lambda: L.LeakyReLU(m.negative_slope)), ""),
    ("Sigmoid", lambda c, m, n, name: L.Sigmoid(), "at the output: explained at the logit"),
    ("Tanh", lambda c, m, n, name: L.Tanh(), ""),
    ("Softmax", _softmax_module, "at the output only"),
    ("MaxPool2d", _max_pool_module, "no ceil_mode, dilation 1"),
    ("AvgPool2d", _avg_pool_module, "no ceil_mode, no divisor_override"),
    ("AdaptiveAvgPool2d", lambda c, m, n, name: adaptive_avg_pool(c, n, {"output_size": m.output_size}, name), ""),
    ("Upsample", _upsample_module, "nearest, bilinear; integer factors"),
    ("Flatten", _flatten_module, "batch axis kept"),
    ("Dropout", _dropout_module, "eval mode: the identity"),
    ("Dropout2d", _dropout_module, "eval mode: the identity"),
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


def spatial_crop(index, shape):
    """``((top, bottom), (left, right))`` when ``index`` slices only the last two axes of a 4-D ``shape``
    (``x[:, :, t:b, l:r]``, steps of 1, constant bounds, something left), else None."""
    if shape is None or len(shape) != 4:
        return None
    index = index if isinstance(index, tuple) else (index,)
    if any(not isinstance(i, slice) for i in index) or len(index) > 4:
        return None
    index = index + (slice(None),) * (4 - len(index))
    if index[0] != slice(None) or index[1] != slice(None):
        return None
    sides = []
    for part, size in zip(index[2:], shape[2:]):
        if part.step not in (None, 1) or any(v is not None and not isinstance(v, int) for v in (part.start,
                                                                                               part.stop)):
            return None
        start, stop, _ = part.indices(size)
        if stop <= start:
            return None
        sides.append((start, size - stop))
    return tuple(sides)


def cat(c, node, a, name=None):
    tensors = list(a["tensors"])
    dim = c.dim(node, a["dim"], _where(node, name), "cat")
    if dim is None:
        return None
    if len(tensors) == 1:
        return c.tensor_input(node, tensors[0], _where(node, name), "cat")
    return c.layer(_where(node, name), "cat", lambda: L.Concat(axis=dim)), tensors


def flatten(c, node, a, name=None):
    where = _where(node, name)
    source = a.get("input", node.args[0] if node.args else None)
    shape = c.shape(source) if hasattr(source, "op") else c.shape(node)
    ndim = len(shape) if shape else 2
    start, end = a["start_dim"] % ndim, a["end_dim"] % ndim
    if start == 0:
        c.audit.add(where, "flatten", "flattening the batch axis (start_dim=0) is not supported; use start_dim=1")
        return None
    return c.layer(where, "flatten", lambda: L.Flatten(start, end))


def reshape(c, node, a, name=None):
    """view / reshape: the target shape is the recorded output shape (whatever arithmetic produced it)."""
    where = _where(node, name)
    shape, source = c.shape(node), c.shape(a["input"]) if hasattr(a["input"], "op") else None
    if shape is None or source is None or shape[0] != source[0]:
        c.audit.add(where, "reshape", f"reshapes that change the batch axis ({source} -> {shape}) are not supported")
        return None
    return c.layer(where, "reshape", lambda: L.Reshape(tuple(shape[1:])))


def reshape_function(c, node, a, name=None):
    return reshape(c, node, {"input": a["input"]}, name)


def permute(c, node, a, name=None):
    dims = a["args"][0] if len(a["args"]) == 1 and isinstance(a["args"][0], (tuple, list)) else a["args"]
    return permute_function(c, node, {"input": a["input"], "dims": a.get("dims", dims)}, name)


def permute_function(c, node, a, name=None):
    dims = tuple(a["dims"])
    ndim = len(c.shape(node) or dims)
    dims = tuple(d % ndim if isinstance(d, int) else d for d in dims)
    return c.layer(_where(node, name), "permute", lambda: L.Permute(dims))


def max_pool(c, node, a, name=None):
    where = _where(node, name)
    problems = []
    if a["ceil_mode"]:
        problems.append("ceil_mode=True (reflrp pools with floor)")
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
    return c.layer(where, "max_pool2d", lambda: L.MaxPool2d(a["kernel_size"], stride, a["padding"]))


def avg_pool(c, node, a, name=None):
    where = _where(node, name)
    problems = []
    if a["ceil_mode"]:
        problems.append("ceil_mode=True (reflrp pools with floor)")
    if a["divisor_override"] is not None:
        problems.append(f"divisor_override={a['divisor_override']!r}")
    for problem in problems:
        c.audit.add(where, "avg_pool2d", f"{problem} is not supported")
    if problems:
        return None
    stride = a["stride"] if a["stride"] not in (None, (), []) else None
    return c.layer(where, "avg_pool2d", lambda: L.AvgPool2d(a["kernel_size"], stride, a["padding"],
                                                            count_include_pad=bool(a["count_include_pad"])))


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


def dropout(c, node, a, name=None):
    if a["training"]:
        c.audit.add(_where(node, name), "dropout", "training=True drops values at random; call .eval() or pass "
                                                   "training=self.training")
        return None
    return c.layer(_where(node, name), "dropout", lambda: L.Dropout(a["p"]))



__all__ = ["FAILED", "METHODS", "MODULES", "SHAPE", "function_table", "signature"]
