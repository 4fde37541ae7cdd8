"""``from_torch``: a PyTorch module as a reflrp Graph, through ``torch.fx``.

The module is traced symbolically (``torch.fx.symbolic_trace``; where its forward branches on shapes in Python,
by a tracer that runs the example input alongside and takes the example's branch) and run once on the example
input to record every tensor's shape; each traced call then becomes one reflrp node named after the module path
(``layer1.0.conv1``; a module called twice gets ``:2``) or, for functions and methods, after torch.fx's node
name (``add``, ``cat_1``), and records which it was (``Node.called``).  Shape arithmetic (``x.size(0)``,
``x.shape``) is resolved from the recorded shapes.  Anything without an exact reflrp counterpart is collected by
the audit and reported all at once, by name, before anything is computed: there is no silent fallback.  The
finished graph is run on the example's first sample and checked against PyTorch's output.
"""

from __future__ import annotations

import operator

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.graph import INPUT
from reflrp.importers import torch_attention as attention
from reflrp.importers import torch_ops as ops
from reflrp.importers import torch_shapes as shapes
from reflrp.importers import torch_tracing as tracing
from reflrp.importers import torch_windows as windows
from reflrp.importers.common import Audit, Builder, require
from reflrp.importers.torch_modules import MODULES, hugging_face_leaf, rms_norm

_SHAPE, _FAILED = ops.SHAPE, ops.FAILED


class _Converter:
    def __init__(self, torch, module, example, dtype, output=None):
        self.torch, self.F = torch, torch.nn.functional
        self.module = module
        self.dtype = dtype
        self.output = output
        self.audit = Audit(f"from_torch({type(module).__name__})")
        self.builder = Builder()
        self.values = {}  # fx node -> reflrp node name, _SHAPE, or a Python constant
        self.calls = {}  # module path -> number of calls so far
        self.float32_inside = False  # a module that computes in float32 in any model (PyTorch's side rounds)
        self.example = example
        self.graph_module = tracing.trace(torch, module, example)
        self.fixed = tracing.fixed_arguments(module) or {}  # forward's later arguments, at their defaults
        if not example.is_floating_point():
            self._ids_go_to_an_embedding()
        self.constants = tracing.input_independent(self.graph_module.graph)
        self.expected, self.folded = tracing.propagate(torch, self.graph_module, example, self.constants)

    def _ids_go_to_an_embedding(self):
        """Token ids (an integer example) may only be looked up by ``nn.Embedding`` modules."""
        placeholder = next(n for n in self.graph_module.graph.nodes if n.op == "placeholder")
        for user in placeholder.users:
            module = self.graph_module.get_submodule(user.target) if user.op == "call_module" else None
            if not isinstance(module, self.torch.nn.Embedding):
                raise ReflrpError(f"from_torch: an integer example_input is token ids, which only an nn.Embedding "
                                  f"may take; {user.name} takes them")

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
        if layer is None or any(i is None for i in inputs):  # a failure the audit has already recorded
            return None
        owner = self.owner(node)
        own = owner or (node.target if node.op == "call_module" else None)
        try:
            return self.builder.add(owner or name, layer, *inputs,
                                    called="module" if own else "function", within=self.within(node, own))
        except ReflrpError as error:
            self.audit.add(name, type(layer).__name__, str(error))
            return None

    def owner(self, node):
        """The path of the convolution or Linear module whose own forward calls ``F.conv2d`` (``F.conv1d``,
        ``F.conv3d``, ``F.linear``) with its own weight (a subclass with its own padding, as EfficientNet-PyTorch's),
        or None: such a call is that module's computation, and named after it."""
        F, nn = self.F, self.torch.nn
        kinds = {F.conv1d: nn.Conv1d, F.conv2d: nn.Conv2d, F.conv3d: nn.Conv3d, F.linear: nn.Linear}
        weight = (node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")) \
            if node.op == "call_function" and node.target in kinds else None
        if not (hasattr(weight, "op") and weight.op == "get_attr" and weight.target.endswith("weight")):
            return None
        path = weight.target.rpartition(".")[0]
        owner = self.module.get_submodule(path) if path else self.module  # the original: the traced one has copies
        return path if isinstance(owner, kinds[node.target]) and path else None

    @staticmethod
    def within(node, own):
        """``(path, class)`` of the innermost module whose forward made the call (torch.fx's module stack; a
        module's own entry skipped), or ``()``."""
        stack = [entry for entry in node.meta.get("nn_module_stack", {}).values() if entry[0] != own]
        if not stack:
            return ()
        path, kind = stack[-1]
        return str(path), f"{kind.__module__}.{kind.__qualname__}" if isinstance(kind, type) else str(kind)

    def produced_by(self, node):
        """The reflrp layer type name of the node an fx value was converted to, or None."""
        name = self.values.get(node) if hasattr(node, "op") else None
        found = next((n for n in self.builder.nodes if n.name == name), None) if isinstance(name, str) else None
        return type(found.layer).__name__ if found is not None else None

    def constant(self, node):
        """A parameter or buffer used directly (a ``get_attr`` value), or a tensor computed from constants only, as
        a numpy array, or None."""
        value = self.values.get(node)
        if isinstance(value, tuple) and value[0] == "value":
            return value[1]
        if not (isinstance(value, tuple) and value[0] == "constant"):
            return None
        tensor = self.graph_module
        for part in value[1].split("."):
            tensor = getattr(tensor, part)
        return self.array(tensor) if isinstance(tensor, self.torch.Tensor) else None

    def concrete(self, value):
        """``value`` with every fx node computed from shapes only replaced by its value on the example (a slice's
        bound ``x.shape[-1] // 2``)."""
        if isinstance(value, tuple):
            return tuple(self.concrete(v) for v in value)
        if isinstance(value, slice):
            return slice(self.concrete(value.start), self.concrete(value.stop), self.concrete(value.step))
        if hasattr(value, "op") and value in self.folded and not isinstance(self.folded[value], self.torch.Tensor):
            return self.folded[value]
        return value

    def fold(self, node, value):
        """A node computed from constants and shapes only: ``("value", array)`` for a tensor (with a batch axis of 1
        when it repeats one sample's constant over the example's batch), else the shape marker."""
        if not isinstance(value, self.torch.Tensor):
            return _SHAPE
        array = self.array(value)
        batch = len(self.example)
        if batch > 1 and array.ndim and len(array) == batch:
            if not all(np.array_equal(array[0], row) for row in array[1:]):
                self.audit.add(node.name, str(getattr(node.target, "__name__", node.target)),
                               "a constant that differs between the samples of the batch is not supported")
                return _FAILED
            array = array[:1]
        return ("value", array)

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
                    if not node.name.startswith(tuple(self.fixed)):
                        self.audit.add(node.name, "input", "only modules with a single tensor input are supported")
                    self.values[node] = _SHAPE  # an argument fixed at its default while tracing
                    continue
                self.values[node] = INPUT
            elif node.op == "output":
                result = self._chosen_output(node.args[0])
                if result is None:
                    pass
                elif hasattr(result, "op") and self.values.get(result) is _FAILED:
                    pass
                elif not (hasattr(result, "op") and isinstance(self.values.get(result), str)):
                    self.audit.add("output", "output", "the module must return a single tensor")
                else:
                    output = self.values[result]
            elif node in self.constants:  # computed from constants and shapes only: a constant itself
                self.values[node] = self.fold(node, self.folded[node])
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
        self._check_values(graph)
        return graph

    def _chosen_output(self, result):
        """The tensor the module returns, or the one ``output=`` names in a dict, tuple or list it returns (None
        after an audit finding)."""
        if isinstance(result, dict) or isinstance(result, (tuple, list)):
            keys = list(result) if isinstance(result, dict) else list(range(len(result)))
            kind = "dict" if isinstance(result, dict) else type(result).__name__
            if self.output is None:
                self.audit.add("output", "output", f"the module returns a {kind} ({', '.join(map(repr, keys))}): "
                                                   f"choose one with from_torch(..., output={keys[0]!r})")
                return None
            if self.output not in keys:
                self.audit.add("output", "output", f"output={self.output!r} is not in the {kind} the module returns "
                                                   f"({', '.join(map(repr, keys))})")
                return None
            return result[self.output]
        if self.output is not None:
            self.audit.add("output", "output", f"output={self.output!r} is given but the module returns one tensor")
            return None
        return result

    def _check_shapes(self, graph):
        """Every node's shape as reflrp computes it equals the shape PyTorch produced (a converter self-check)."""
        example_shape = None
        traced = {}
        for node in self.graph_module.graph.nodes:
            if node.op == "placeholder" and self.values.get(node) == INPUT:
                example_shape = self.shape(node)
            name = self.values.get(node)
            if isinstance(name, str) and name != INPUT and self.shape(node) is not None:
                traced[name] = self.shape(node)[1:]
        ours = graph.shapes(example_shape[1:])
        for name, shape in traced.items():
            if name in ours and tuple(ours[name]) != tuple(shape):
                raise ReflrpError(f"from_torch: node {name!r} has shape {ours[name]} in reflrp but {shape} in PyTorch: "
                                  f"a bug in the importer, please report it")

    def _check_values(self, graph):
        """The graph's output on the example's first sample equals PyTorch's (to rounding in the coarser of the two
        dtypes), else the first node whose values depart is named: a converter self-check."""
        expected = self._chosen_output(self.expected) if isinstance(self.expected, (dict, tuple, list)) \
            else self.expected
        reference = expected[:1].detach().cpu().numpy().astype(np.float64)
        if not np.all(np.isfinite(reference)):
            raise ReflrpError("from_torch: the module's output on the example input is not finite (inf or NaN); "
                              "give an example input the module computes finite outputs for")
        x = self.example[:1].detach().cpu().numpy().astype(graph.dtype)
        exact = self.example.dtype in (self.torch.float64, self.torch.int64, self.torch.int32)  # ids are exact
        tolerance = 1e-9 if graph.dtype == np.float64 and exact else 1e-4
        if self.float32_inside:  # Hugging Face's RMSNorm computes in float32 whatever the model's dtype
            tolerance = max(tolerance, 1e-6)
        if tracing.departure(graph.forward(x), reference) <= tolerance:
            return
        ours = graph.trace(x)
        theirs = tracing.node_values(self.graph_module, self.example[:1])
        for node in self.graph_module.graph.nodes:
            name = self.values.get(node)
            if isinstance(name, str) and name in ours and node.name in theirs:
                departure = tracing.departure(ours[name], theirs[node.name])
                if departure > tolerance:
                    raise ReflrpError(f"from_torch: node {name!r} computes values that differ from PyTorch's by "
                                      f"{departure:.2g} of their largest magnitude on the example input: a bug in the "
                                      f"importer, please report it")
        raise ReflrpError("from_torch: the imported graph's output differs from PyTorch's on the example input: a bug "
                          "in the importer, please report it")

    # -- modules ---------------------------------------------------------------------------------------------

    def call_module(self, node):
        nn = self.torch.nn
        path = node.target
        module = self.graph_module.get_submodule(path)
        count = self.calls.get(path, 0) + 1
        self.calls[path] = count
        name = path if count == 1 else f"{path}:{count}"
        kind = type(module).__name__
        convert = windows.taken_apart(self.torch, module)  # nn.MultiheadAttention, Swin's blocks
        if convert is not None:
            return convert(self, module, node, name)
        if tracing.is_rms_norm(module):
            self.float32_inside = True
            return rms_norm(self, module, node, name)
        if tracing.is_leaf(module):  # a Hugging Face module converted whole
            return self.add(node, name, hugging_face_leaf(self, module, name), self.tensor_input(
                node, node.args[0] if node.args else None, name, kind))
        inputs = [self.tensor_input(node, a, name, kind) for a in node.args]
        if node.kwargs:
            self.audit.add(name, kind, f"keyword arguments {sorted(node.kwargs)} in the call are not supported")
            return None
        for module_type, handler, _ in MODULES:
            if type(module) is getattr(nn, module_type):
                made = handler(self, module, node, name)
                if made is None or isinstance(made, str):  # failed (audited), or added as nodes of its own
                    return made
                return self.add(node, name, made, *inputs)
        supported = ", ".join(m for m, _, _ in MODULES)
        self.audit.add(name, kind, f"{kind} is not supported (supported modules: {supported})")
        return None

    # -- functions and methods -------------------------------------------------------------------------------

    def call_function(self, node):
        target = node.target
        where = node.name
        for functions, signature, handler, _ in self.function_table():
            if target in functions:
                return self._apply(node, where, getattr(target, "__name__", str(target)), signature, handler, node.args,
                                   node.kwargs)
        if self._shape_only(node):
            return _SHAPE
        if target is operator.getitem:
            return self._index(node, where)
        if target is getattr(self.torch, "_assert", None) or getattr(target, "__name__", "") == "_assert_is_none":
            return _SHAPE  # a check on shapes (torchvision's ViT) or on an argument fixed at None: nothing to convert
        if getattr(target, "__name__", "") == "stochastic_depth" and \
                getattr(target, "__module__", "").startswith("torchvision"):
            signature = ops.signature("input", "p", "mode", training=True)
            return self._apply(node, where, "stochastic_depth", signature, ops.stochastic_depth, node.args,
                               node.kwargs)
        self.audit.add(where, getattr(target, "__name__", str(target)), "function not supported")
        return None

    def call_method(self, node):
        name = node.target
        where = node.name
        if name in ("size", "dim", "numel") or (name == "__getattribute__"):
            return _SHAPE
        if name in ("contiguous", "clone", "detach"):
            return self.tensor_input(node, node.args[0], where, name)
        if name not in ops.METHODS:
            self.audit.add(where, f"Tensor.{name}", "method not supported")
            return None
        signature, handler, _ = ops.METHODS[name]
        return self._apply(node, where, f"Tensor.{name}", signature, handler, node.args, node.kwargs)

    def _index(self, node, where):
        """``parts[k]`` of a chunk, split or unbind; ``outputs[k]`` of a module that returns a tuple; ``x[...]`` of
        a tensor (:func:`~reflrp.importers.torch_shapes.index_tensor`)."""
        source, index = node.args
        index = shapes.without_ellipsis(self.concrete(index), self.shape(source) if hasattr(source, "op") else None)
        parts = self.values.get(source) if hasattr(source, "op") else None
        if parts is _FAILED and self.shape(source) is None:  # a failed module that returns a tuple: reported
            return None
        if isinstance(parts, attention.Outputs):
            count = len(parts.names)
            chosen = parts.names[index] if validate.is_integer(index) and -count <= index < count else None
            if chosen is None and not node.users:  # ``x, _ = attention(x, x, x)``: the unused weights
                return _SHAPE
            if chosen is None:
                self.audit.add(where, "x[...]", parts.missing if validate.is_integer(index) else f"index {index!r}")
            return chosen
        if isinstance(parts, shapes.Parts):
            if not validate.is_integer(index) or not -len(parts.parts) <= index < len(parts.parts):
                self.audit.add(where, "x[...]", f"part {index!r} of a chunk or split of {len(parts.parts)} parts")
                return None
            start, length = parts.parts[index]
            name, made = parts.source, parts.layers(start, length)
            for k, layer in enumerate(made):
                name = self.add(node, where if k == len(made) - 1 else f"{where}.{k}", layer, name)
            return name
        return shapes.index_tensor(self, node, source, index, where)

    def _shape_only(self, node):
        """``getattr(x, "shape")`` and ``operator.getitem`` on shape values: shape arithmetic, resolved from the
        recorded shapes by the reshapes that use it."""
        if node.target is getattr and len(node.args) == 2 and node.args[1] == "shape":
            return True
        if node.target in (operator.getitem, operator.mul, operator.floordiv, operator.add, operator.sub,
                           operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge):
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
        if isinstance(made, (str, shapes.Parts, shapes.Moved, ops.Stacked)) or ops.is_constant(made):
            return made  # an existing node, parts of a chunk, a stack, or a constant (an expanded class token)
        layer, tensors = made if isinstance(made, tuple) else (made, [bound["input"]])
        inputs = [self.tensor_input(node, t, where, what) for t in tensors]
        return self.add(node, where, layer, *inputs)

    def function_table(self):
        return ops.function_table(self.torch)


def from_torch(module, example_input, *, dtype=None, output=None):
    """A PyTorch module (in eval mode) as a reflrp :class:`~reflrp.Graph`.

    Parameters
    ----------
    module : torch.nn.Module
    example_input : torch.Tensor or ndarray of shape (N, ...)
        One batch the module accepts: it fixes the shapes that reshapes and ``F.interpolate(size=...)`` resolve.
        Integers are token ids (a language model whose first layer is an ``nn.Embedding``): the graph then reads
        them as floats of its dtype, and each token's relevance is the sum over its embedding.
    dtype : float32 or float64, optional
        The graph's dtype; default: the module's parameters' dtype (float32 for most models).
    output : str or int, optional
        For a module that returns a dict, tuple or list (torchvision's segmentation models return
        ``{"out": ..., "aux": ...}``): the key or index of the tensor to explain.

    Returns
    -------
    Graph
        Node names are the module paths (``features.0``, ``layer1.0.conv1``); functions get torch.fx's names.

    Raises
    ------
    ReflrpError
        Listing every unsupported module, function, method or argument by name, before anything is computed.

    Notes
    -----
    BatchNorm stays a layer of its own.  PyTorch's ONNX exporters fold it into the convolution before it, so the same
    model read with :func:`reflrp.from_onnx` explains differently; ``reflrp.canonize.merge_batchnorm(graph)`` makes
    this import match the ONNX file (docs/import.md).
    """
    torch = require("torch", "torch", "from_torch")
    require("torch.fx", "torch", "from_torch")
    if not isinstance(module, torch.nn.Module):
        raise ReflrpError(f"from_torch: module must be a torch.nn.Module, got {type(module).__name__}")
    if isinstance(example_input, np.ndarray):
        if example_input.dtype.kind in "iu":  # token ids
            example_input = torch.from_numpy(example_input.astype(np.int64))
        elif example_input.dtype.kind != "f" or example_input.dtype.itemsize not in (4, 8):
            raise ReflrpError(f"from_torch: example_input must be float32 or float64 (or token ids), got "
                              f"{example_input.dtype}")
        else:  # a native-order, contiguous, writable copy: torch takes no other
            example_input = torch.from_numpy(np.array(example_input, dtype=example_input.dtype.newbyteorder("=")))
    ids = isinstance(example_input, torch.Tensor) and example_input.dtype in (torch.int64, torch.int32)
    if not isinstance(example_input, torch.Tensor) or example_input.ndim < 2 or \
            not (example_input.is_floating_point() or ids):
        raise ReflrpError("from_torch: example_input must be a floating-point batch (N, ...) or a batch of token ids "
                          "(N, tokens), as a tensor or array")
    try:
        named = list(module.named_modules()) + [(f"{n} (parameter)", p) for n, p in module.named_parameters()] + \
            [(f"{n} (buffer)", b) for n, b in module.named_buffers()]
    except RecursionError:
        raise ReflrpError("from_torch: the module is nested too deeply to walk") from None
    training = [name or type(module).__name__ for name, m in named if isinstance(m, torch.nn.Module) and m.training]
    if training:
        raise ReflrpError(f"from_torch: {training[0]} is in training mode (BatchNorm would use batch statistics, "
                          f"Dropout would drop); call module.eval() first")
    odd = [(name, t.dtype) for name, t in named if isinstance(t, torch.Tensor) and t.is_floating_point()
           and t.dtype not in (torch.float32, torch.float64)]
    if odd:
        raise ReflrpError(f"from_torch: {odd[0][0]} is {odd[0][1]}; reflrp reads float32 and float64 models (call "
                          f"module.float() or module.double() first)")
    if dtype is None:
        first = next(module.parameters(), None)
        dtype = np.dtype(str(first.dtype).replace("torch.", "")) if first is not None else \
            np.dtype(str(example_input.dtype).replace("torch.", ""))
    dtype = validate.float_dtype(dtype, "from_torch: dtype")
    first = next(module.parameters(), None)
    example = example_input if ids else example_input.to(first.dtype if first is not None else example_input.dtype)
    try:
        return _Converter(torch, module, example, dtype, output).convert()
    except RecursionError:
        raise ReflrpError("from_torch: the module is nested too deeply to trace") from None


def supported():
    """``[(construct, note)]``: what :func:`from_torch` converts, from the tables it converts with (for the docs)."""
    import torch

    rows = [(f"nn.{name}", note) for name, _, note in MODULES]
    rows += [(label, "") for *_, label in ops.function_table(torch)]
    rows += [(label, "") for *_, label in ops.METHODS.values() if label]
    rows += [("x.size(), x.shape", "arithmetic on sizes, feeding reshapes"), ("x.contiguous()", "the identity"),
             ("x[:, :, t:b, l:r]", "a spatial crop of (N, C, H, W), steps of 1")]
    return rows


__all__ = ["from_torch", "supported"]
