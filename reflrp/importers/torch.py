"""``from_torch``: a PyTorch module as a reflrp Graph, through ``torch.fx``.

The module is traced symbolically (``torch.fx.symbolic_trace``) and run once on the example input to record
every tensor's shape; each traced call then becomes one reflrp node named after the module path
(``layer1.0.conv1``; a module called twice gets ``:2``) or, for functions and methods, after torch.fx's node
name (``add``, ``cat_1``).  Shape arithmetic (``x.size(0)``, ``x.shape``) is resolved from the recorded shapes.
Anything without an exact reflrp counterpart is collected by the audit and reported all at once, by name,
before anything is computed: there is no silent fallback.
"""

from __future__ import annotations

import inspect
import operator

import numpy as np

from reflrp import layers as L
from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.graph import INPUT
from reflrp.importers.common import Audit, Builder, require

_SHAPE = object()  # a traced value that is shape arithmetic, not a tensor
_FAILED = object()  # a value whose construct the audit already reported (its consumers are not reported again)


def _signature(*names, **defaults):
    """A signature to bind call arguments against: positional names, then keyword defaults."""
    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    params += [inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=v) for k, v in defaults.items()]
    return inspect.Signature(params)


def _integral(value):
    """An int from an int or an integral float (PyTorch accepts scale_factor=2.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class _Converter:
    def __init__(self, torch, module, example, dtype):
        self.torch, self.F = torch, torch.nn.functional
        self.module = module
        self.dtype = dtype
        self.audit = Audit(f"from_torch({type(module).__name__})")
        self.builder = Builder()
        self.values = {}  # fx node -> reflrp node name, _SHAPE, or a Python constant
        self.calls = {}  # module path -> number of calls so far
        self.graph_module = self._trace(module)
        from torch.fx.passes.shape_prop import ShapeProp

        try:
            with torch.no_grad():
                ShapeProp(self.graph_module).propagate(example)
        except Exception as error:  # the model's own forward failed: say so in one line
            raise ReflrpError(f"from_torch: the module fails on the example input: {type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}") from None

    def _trace(self, module):
        import torch.fx

        try:
            return torch.fx.symbolic_trace(module)
        except Exception as error:
            first = str(error).splitlines()[0] if str(error) else ""
            raise ReflrpError(
                f"from_torch: torch.fx cannot trace {type(module).__name__}: {type(error).__name__}: {first}. "
                f"Tracing needs a forward without data-dependent Python control flow (if/for on tensor values); "
                f"move such logic out of forward, or mark an untraceable helper with torch.fx.wrap"
            ) from None

    # -- helpers ---------------------------------------------------------------------------------------------

    def shape(self, node):
        """The traced tensor shape of an fx node (batch axis included)."""
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def array(self, tensor):
        return None if tensor is None else tensor.detach().cpu().numpy().astype(self.dtype)

    def tensor_input(self, node, arg, where, what):
        """The reflrp node name for a tensor argument, or None (audited) when it is not a traced tensor."""
        import torch.fx

        if isinstance(arg, torch.fx.Node) and isinstance(self.values.get(arg), str):
            return self.values[arg]
        if isinstance(arg, torch.fx.Node) and self.values.get(arg) is _FAILED:
            return None
        self.audit.add(where, what, f"takes {arg!r}, which is not a tensor computed from the input "
                                    f"(constants, parameters used directly and shape values are not supported)")
        return None

    def add(self, node, name, layer, *inputs):
        if any(i is None for i in inputs):
            return None
        try:
            return self.builder.add(name, layer, *inputs)
        except ReflrpError as error:
            self.audit.add(name, type(layer).__name__, str(error))
            return None

    def layer(self, where, what, make):
        """``make()``, with a ReflrpError turned into an audit finding."""
        try:
            return make()
        except ReflrpError as error:
            self.audit.add(where, what, str(error))
            return None

    def dim(self, node, dim, where, what):
        """A PyTorch dim (possibly negative) as a reflrp axis (>= 1); the batch axis is refused."""
        ndim = len(self.shape(node) or ())
        if not isinstance(dim, int) or not -ndim <= dim < ndim or dim % ndim == 0:
            self.audit.add(where, what, f"dim {dim!r} must be a non-batch axis of a {ndim}-D tensor")
            return None
        return dim % ndim

    # -- the walk --------------------------------------------------------------------------------------------

    def convert(self):
        output = None
        for node in self.graph_module.graph.nodes:
            if node.op == "placeholder":
                if INPUT in self.values.values():
                    self.audit.add(node.name, "input", "only modules with a single tensor input are supported")
                self.values[node] = INPUT
            elif node.op == "output":
                result = node.args[0]
                if hasattr(result, "op") and self.values.get(result) is _FAILED:
                    pass
                elif not (hasattr(result, "op") and isinstance(self.values.get(result), str)):
                    self.audit.add("output", "output", "the module must return a single tensor")
                else:
                    output = self.values[result]
            elif node.op in ("call_module", "call_function", "call_method"):
                value = getattr(self, node.op)(node)
                self.values[node] = _FAILED if value is None else value
            elif node.op == "get_attr":
                self.values[node] = ("constant", node.target)
            else:  # pragma: no cover - torch.fx has no other node kinds
                self.audit.add(node.name, node.op, "unknown torch.fx node kind")
        self.audit.check()
        graph = self.builder.build(output)
        self._check_shapes(graph)
        return graph

    def _check_shapes(self, graph):
        """Every node's shape as reflrp computes it equals the shape PyTorch produced (a converter self-check)."""
        example_shape = None
        traced = {}
        for node in self.graph_module.graph.nodes:
            if node.op == "placeholder":
                example_shape = self.shape(node)
            name = self.values.get(node)
            if isinstance(name, str) and name != INPUT and self.shape(node) is not None:
                traced[name] = self.shape(node)[1:]
        ours = graph.shapes(example_shape[1:])
        for name, shape in traced.items():
            if name in ours and tuple(ours[name]) != tuple(shape):
                raise ReflrpError(f"from_torch: node {name!r} has shape {ours[name]} in reflrp but {shape} in PyTorch: "
                                  f"a bug in the importer, please report it")

    # -- modules ---------------------------------------------------------------------------------------------

    def call_module(self, node):
        nn = self.torch.nn
        path = node.target
        module = self.graph_module.get_submodule(path)
        count = self.calls.get(path, 0) + 1
        self.calls[path] = count
        name = path if count == 1 else f"{path}:{count}"
        kind = type(module).__name__
        inputs = [self.tensor_input(node, a, name, kind) for a in node.args]
        if node.kwargs:
            self.audit.add(name, kind, f"keyword arguments {sorted(node.kwargs)} in the call are not supported")
            return None
        for module_type, handler in _MODULES:
            if type(module) is getattr(nn, module_type):
                made = handler(self, module, node, name)
                if made is None:
                    return None
                return self.add(node, name, made, *inputs)
        self.audit.add(name, kind, f"{kind} is not supported (supported modules: {', '.join(m for m, _ in _MODULES)})")
        return None

    # -- functions and methods -------------------------------------------------------------------------------

    def call_function(self, node):
        target = node.target
        where = node.name
        for functions, signature, handler in self.function_table():
            if target in functions:
                return self._apply(node, where, getattr(target, "__name__", str(target)), signature, handler, node.args,
                                   node.kwargs)
        if self._shape_only(node):
            return _SHAPE
        if target is operator.getitem:
            self.audit.add(where, "x[...]", "indexing or slicing a tensor is not supported")
            return None
        self.audit.add(where, getattr(target, "__name__", str(target)), "function not supported")
        return None

    def call_method(self, node):
        name = node.target
        where = node.name
        if name in ("size", "dim", "numel") or (name == "__getattribute__"):
            return _SHAPE
        if name in ("contiguous", "clone", "detach"):
            return self.tensor_input(node, node.args[0], where, name)
        table = {
            "relu": (_signature("input"), lambda c, n, a: L.ReLU()),
            "relu_": (_signature("input"), lambda c, n, a: L.ReLU()),
            "sigmoid": (_signature("input"), lambda c, n, a: L.Sigmoid()),
            "tanh": (_signature("input"), lambda c, n, a: L.Tanh()),
            "softmax": (_signature("input", "dim"), _softmax),
            "flatten": (_signature("input", start_dim=0, end_dim=-1), _flatten),
            "view": (None, _reshape),
            "reshape": (None, _reshape),
            "permute": (None, _permute),
        }
        if name not in table:
            self.audit.add(where, f"Tensor.{name}", "method not supported")
            return None
        signature, handler = table[name]
        return self._apply(node, where, f"Tensor.{name}", signature, handler, node.args, node.kwargs)

    def _shape_only(self, node):
        """``getattr(x, "shape")`` and ``operator.getitem`` on shape values: shape arithmetic, resolved from the
        recorded shapes by the reshapes that use it."""
        if node.target is getattr and len(node.args) == 2 and node.args[1] == "shape":
            return True
        if node.target in (operator.getitem, operator.mul, operator.floordiv, operator.add):
            return any(self.values.get(a) is _SHAPE for a in node.args if hasattr(a, "op"))
        return False

    def _apply(self, node, where, what, signature, handler, args, kwargs):
        if signature is None:
            bound = {"input": args[0], "args": args[1:], **kwargs}
        else:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as error:
                self.audit.add(where, what, f"unexpected arguments: {error}")
                return None
            bound.apply_defaults()
            bound = bound.arguments
        made = handler(self, node, bound)
        if made is None:
            return None
        if isinstance(made, str):  # the handler resolved to an existing node (an identity)
            return made
        layer, tensors = made if isinstance(made, tuple) else (made, [bound["input"]])
        inputs = [self.tensor_input(node, t, where, what) for t in tensors]
        return self.add(node, where, layer, *inputs)

    def function_table(self):
        torch, F = self.torch, self.F
        return [
            ((torch.relu, F.relu, torch.relu_), _signature("input", inplace=False), lambda c, n, a: L.ReLU()),
            ((F.leaky_relu,), _signature("input", negative_slope=0.01, inplace=False), _leaky_relu),
            ((torch.sigmoid, F.sigmoid), _signature("input"), lambda c, n, a: L.Sigmoid()),
            ((torch.tanh, F.tanh), _signature("input"), lambda c, n, a: L.Tanh()),
            ((torch.softmax, F.softmax), _signature("input", dim=None, _stacklevel=3, dtype=None), _softmax),
            ((operator.add, operator.iadd, torch.add), _signature("input", "other", alpha=1), _add),
            ((torch.cat, torch.concat), _signature("tensors", dim=0), _cat),
            ((torch.flatten,), _signature("input", start_dim=0, end_dim=-1), _flatten),
            ((torch.reshape,), _signature("input", "shape"), _reshape_function),
            ((torch.permute,), _signature("input", "dims"), _permute_function),
            ((F.max_pool2d,), _signature("input", "kernel_size", stride=None, padding=0, dilation=1, ceil_mode=False,
                                         return_indices=False), _max_pool),
            ((F.avg_pool2d,), _signature("input", "kernel_size", stride=None, padding=0, ceil_mode=False,
                                         count_include_pad=True, divisor_override=None), _avg_pool),
            ((F.adaptive_avg_pool2d,), _signature("input", "output_size"), _adaptive_avg_pool),
            ((F.interpolate,), _signature("input", size=None, scale_factor=None, mode="nearest", align_corners=None,
                                          recompute_scale_factor=None, antialias=False), _interpolate),
            ((F.dropout,), _signature("input", p=0.5, training=True, inplace=False), _dropout),
        ]


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
    return _max_pool(c, node, {"kernel_size": module.kernel_size, "stride": module.stride, "padding": module.padding,
                               "dilation": module.dilation, "ceil_mode": module.ceil_mode,
                               "return_indices": module.return_indices}, name)


def _avg_pool_module(c, module, node, name):
    return _avg_pool(c, node, {"kernel_size": module.kernel_size, "stride": module.stride, "padding": module.padding,
                               "ceil_mode": module.ceil_mode, "count_include_pad": module.count_include_pad,
                               "divisor_override": module.divisor_override}, name)


def _upsample_module(c, module, node, name):
    return _interpolate(c, node, {"size": module.size, "scale_factor": module.scale_factor, "mode": module.mode,
                                  "align_corners": module.align_corners}, name)


def _softmax_module(c, module, node, name):
    return _softmax(c, node, {"dim": module.dim}, name)


def _flatten_module(c, module, node, name):
    return _flatten(c, node, {"start_dim": module.start_dim, "end_dim": module.end_dim}, name)


def _dropout_module(c, module, node, name):
    return c.layer(name, "Dropout", lambda: L.Dropout(module.p))


_MODULES = [
    ("Conv1d", _conv1d),
    ("Conv2d", _conv2d),
    ("ConvTranspose2d", _conv_transpose2d),
    ("Linear", _linear),
    ("BatchNorm1d", _batchnorm(L.BatchNorm1d)),
    ("BatchNorm2d", _batchnorm(L.BatchNorm2d)),
    ("ReLU", lambda c, m, n, name: L.ReLU()),
    ("LeakyReLU", lambda c, m, n, name: c.layer(name, "LeakyReLU", lambda: L.LeakyReLU(m.negative_slope))),
    ("Sigmoid", lambda c, m, n, name: L.Sigmoid()),
    ("Tanh", lambda c, m, n, name: L.Tanh()),
    ("Softmax", _softmax_module),
    ("MaxPool2d", _max_pool_module),
    ("AvgPool2d", _avg_pool_module),
    ("AdaptiveAvgPool2d", lambda c, m, n, name: _adaptive_avg_pool(c, n, {"output_size": m.output_size}, name)),
    ("Upsample", _upsample_module),
    ("Flatten", _flatten_module),
    ("Dropout", _dropout_module),
    ("Dropout2d", _dropout_module),
    ("Identity", lambda c, m, n, name: L.Identity()),
    ("ZeroPad2d", lambda c, m, n, name: c.layer(name, "ZeroPad2d", lambda: L.ZeroPad2d(tuple(m.padding)))),
]


# -- function handlers: (converter, fx node, bound arguments[, name]) -> layer, (layer, tensors), a name, or None --


def _where(node, name):
    return name or node.name


def _leaky_relu(c, node, a, name=None):
    return c.layer(_where(node, name), "leaky_relu", lambda: L.LeakyReLU(a["negative_slope"]))


def _softmax(c, node, a, name=None):
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


def _add(c, node, a, name=None):
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


def _cat(c, node, a, name=None):
    tensors = list(a["tensors"])
    dim = c.dim(node, a["dim"], _where(node, name), "cat")
    if dim is None:
        return None
    if len(tensors) == 1:
        return c.tensor_input(node, tensors[0], _where(node, name), "cat")
    return c.layer(_where(node, name), "cat", lambda: L.Concat(axis=dim)), tensors


def _flatten(c, node, a, name=None):
    where = _where(node, name)
    source = a.get("input", node.args[0] if node.args else None)
    shape = c.shape(source) if hasattr(source, "op") else c.shape(node)
    ndim = len(shape) if shape else 2
    start, end = a["start_dim"] % ndim, a["end_dim"] % ndim
    if start == 0:
        c.audit.add(where, "flatten", "flattening the batch axis (start_dim=0) is not supported; use start_dim=1")
        return None
    return c.layer(where, "flatten", lambda: L.Flatten(start, end))


def _reshape(c, node, a, name=None):
    """view / reshape: the target shape is the recorded output shape (whatever arithmetic produced it)."""
    where = _where(node, name)
    shape, source = c.shape(node), c.shape(a["input"]) if hasattr(a["input"], "op") else None
    if shape is None or source is None or shape[0] != source[0]:
        c.audit.add(where, "reshape", f"reshapes that change the batch axis ({source} -> {shape}) are not supported")
        return None
    return c.layer(where, "reshape", lambda: L.Reshape(tuple(shape[1:])))


def _reshape_function(c, node, a, name=None):
    return _reshape(c, node, {"input": a["input"]}, name)


def _permute(c, node, a, name=None):
    dims = a["args"][0] if len(a["args"]) == 1 and isinstance(a["args"][0], (tuple, list)) else a["args"]
    return _permute_function(c, node, {"input": a["input"], "dims": a.get("dims", dims)}, name)


def _permute_function(c, node, a, name=None):
    dims = tuple(a["dims"])
    ndim = len(c.shape(node) or dims)
    dims = tuple(d % ndim if isinstance(d, int) else d for d in dims)
    return c.layer(_where(node, name), "permute", lambda: L.Permute(dims))


def _max_pool(c, node, a, name=None):
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


def _avg_pool(c, node, a, name=None):
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


def _adaptive_avg_pool(c, node, a, name=None):
    size = a["output_size"]
    if size is None or (isinstance(size, (tuple, list)) and None in size):
        shape = c.shape(node)
        size = tuple(shape[2:]) if shape else size
    return c.layer(_where(node, name), "adaptive_avg_pool2d", lambda: L.AdaptiveAvgPool2d(size))


def _interpolate(c, node, a, name=None):
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


def _dropout(c, node, a, name=None):
    if a["training"]:
        c.audit.add(_where(node, name), "dropout", "training=True drops values at random; call .eval() or pass "
                                                   "training=self.training")
        return None
    return c.layer(_where(node, name), "dropout", lambda: L.Dropout(a["p"]))


def from_torch(module, example_input, *, dtype=None):
    """A PyTorch module (in eval mode) as a reflrp :class:`~reflrp.Graph`.

    Parameters
    ----------
    module : torch.nn.Module
    example_input : torch.Tensor or ndarray of shape (N, ...)
        One batch the module accepts: it fixes the shapes that reshapes and ``F.interpolate(size=...)`` resolve.
    dtype : float32 or float64, optional
        The graph's dtype; default: the module's parameters' dtype (float32 for most models).

    Returns
    -------
    Graph
        Node names are the module paths (``features.0``, ``layer1.0.conv1``); functions get torch.fx's names.

    Raises
    ------
    ReflrpError
        Listing every unsupported module, function, method or argument by name, before anything is computed.
    """
    torch = require("torch", "torch", "from_torch")
    require("torch.fx", "torch", "from_torch")
    if not isinstance(module, torch.nn.Module):
        raise ReflrpError(f"from_torch: module must be a torch.nn.Module, got {type(module).__name__}")
    if isinstance(example_input, np.ndarray):
        example_input = torch.from_numpy(example_input)
    if not isinstance(example_input, torch.Tensor) or example_input.ndim < 2 or not example_input.is_floating_point():
        raise ReflrpError("from_torch: example_input must be a floating-point batch (N, ...), as a tensor or array")
    if module.training:
        raise ReflrpError(f"from_torch: {type(module).__name__} is in training mode (BatchNorm would use batch "
                          f"statistics, Dropout would drop); call module.eval() first")
    if dtype is None:
        first = next(module.parameters(), None)
        dtype = np.dtype(str(first.dtype).replace("torch.", "")) if first is not None else \
            np.dtype(str(example_input.dtype).replace("torch.", ""))
    dtype = validate.float_dtype(dtype, "from_torch: dtype")
    first = next(module.parameters(), None)
    example = example_input.to(first.dtype if first is not None else example_input.dtype)
    return _Converter(torch, module, example, dtype).convert()


def supported():
    """``[(construct, note)]``: what :func:`from_torch` converts (for the docs)."""
    modules = [(f"nn.{name}", "") for name, _ in _MODULES]
    functions = ["torch.relu / F.relu / x.relu()", "F.leaky_relu", "torch.sigmoid", "torch.tanh",
                 "torch.softmax / F.softmax (at the output)", "+ / torch.add (two tensors)", "torch.cat",
                 "torch.flatten / x.flatten()", "x.view / x.reshape / torch.reshape (batch axis kept)",
                 "x.permute / torch.permute", "F.max_pool2d", "F.avg_pool2d", "F.adaptive_avg_pool2d",
                 "F.interpolate (nearest, bilinear; integer factors)", "F.dropout (eval)",
                 "x.size() / x.shape arithmetic feeding reshapes", "x.contiguous()"]
    return modules + [(f, "") for f in functions]


__all__ = ["from_torch", "supported"]
