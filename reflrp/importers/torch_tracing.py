"""Tracing a PyTorch module for :func:`reflrp.from_torch`: torch.fx's symbolic trace, or, where the forward
branches on shapes in Python, a trace that runs the example input alongside; and PyTorch's own values at every
node, for the importer's check of the finished graph."""

from __future__ import annotations

import numpy as np

from reflrp.errors import ReflrpError
from reflrp.importers.torch_windows import is_swin_module


def run(torch, forward, example):
    """``forward(example)`` without autograd; a failure is the module's own, said in one line."""
    try:
        with torch.no_grad():
            return forward(example)
    except Exception as error:
        raise ReflrpError(f"from_torch: the module fails on the example input: {type(error).__name__}: "
                          f"{first_line(error)}") from None


class _TypeOfTracedValue(Exception):
    """``torch.jit.isinstance`` asked of a traced value whose value is not known (a symbolic trace)."""


def _jit_isinstance(torch):
    """``torch.jit.isinstance`` that answers for a traced value by the value it holds on the example (the shape
    tracer), and stops a symbolic trace, which knows no values: for a proxy the original answers False, so MONAI's
    ``if x_e is not None and torch.jit.isinstance(x_e, torch.Tensor)`` would silently drop a U-Net's skips."""
    import contextlib

    original = torch.jit.isinstance

    def answer(obj, target_type):
        if isinstance(obj, torch.fx.Proxy):
            if "value" not in obj.node.meta:
                raise _TypeOfTracedValue(f"torch.jit.isinstance({obj.node.name}, ...)")
            obj = obj.node.meta["value"]
        return original(obj, target_type)

    @contextlib.contextmanager
    def patched():
        torch.jit.isinstance = answer
        try:
            yield
        finally:
            torch.jit.isinstance = original

    return patched()


def _shape_len(torch):
    """``len(x.shape)`` while tracing with the example's values: the length of a shape is known (a tensor's
    length, its batch size, is not, and stays refused)."""
    import contextlib

    original = torch.fx.Proxy.__len__

    def length(proxy):
        if proxy.node.meta.get("shapes only") and isinstance(proxy.node.meta.get("value"), (tuple, list)):
            return len(proxy.node.meta["value"])
        return original(proxy)

    @contextlib.contextmanager
    def patched():
        torch.fx.Proxy.__len__ = length
        try:
            yield
        finally:
            torch.fx.Proxy.__len__ = original

    return patched()


def trace(torch, module, example):
    """torch.fx's symbolic trace of ``module``; where the forward branches on shapes (``if h % 32``) or asks the
    type of a traced value (``torch.jit.isinstance``), a trace that knows the example input's values
    (:func:`shape_tracer`)."""
    import torch.fx

    fixed = fixed_arguments(module)
    try:
        with _jit_isinstance(torch):
            tracer = leaf_tracer(torch)()
            graph = tracer.trace(module, concrete_args=fixed)
            return torch.fx.GraphModule(tracer.root, graph, type(module).__name__)
    except Exception as error:
        first = f"{type(error).__name__}: {first_line(error)}"
    run(torch, module, example)  # a module that fails on the example says so in its own words
    tracer = shape_tracer(torch, example)
    try:
        with torch.no_grad(), _jit_isinstance(torch), _shape_len(torch):
            graph = tracer.trace(module, concrete_args=fixed)
    except Exception as error:
        again = "" if tracer.failed_on_values else f" (and with the example's shapes: {type(error).__name__}: " \
                                                   f"{first_line(error)})"
        raise ReflrpError(
            f"from_torch: torch.fx cannot trace {type(module).__name__}: {first}{again}. Tracing needs a forward "
            f"without Python control flow on tensor values (if/for on what a tensor holds; branches on shapes are "
            f"fine); move such logic out of forward, mark an untraceable helper with torch.fx.wrap, or export the "
            f"model with torch.onnx.export and read the file with reflrp.from_onnx (MONAI's SwinUNETR imports so)"
        ) from None
    traced = torch.fx.GraphModule(tracer.root, graph, type(module).__name__)
    traced.graph.eliminate_dead_code()  # the shape arithmetic only the branches used
    traced.recompile()
    return traced


def fixed_arguments(module):
    """The forward's arguments after the input that have defaults (timm's ``attn_mask=None``), fixed at them."""
    import inspect

    try:
        parameters = list(inspect.signature(module.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    fixed = {p.name: p.default for p in parameters if p.kind in kinds and p.default is not inspect.Parameter.empty}
    return fixed or None


def first_line(error):
    return str(error).splitlines()[0] if str(error) else ""


def departure(ours, theirs):
    """The largest difference relative to the largest magnitude of ``theirs`` (a torch tensor or array)."""
    theirs = np.asarray(theirs.detach().cpu().numpy() if hasattr(theirs, "detach") else theirs, dtype=np.float64)
    if np.shape(ours) != theirs.shape:
        return np.inf
    return float(np.max(np.abs(ours - theirs), initial=0.0) / max(np.max(np.abs(theirs), initial=0.0), 1e-300))


#: ``getattr(x, name)`` that reads a tensor's metadata, not its values: known once the example's shape is.
METADATA = ("shape", "ndim", "dtype", "device")
#: Tensor methods that read metadata.
METADATA_METHODS = ("size", "dim", "numel")


def is_rms_norm(module):
    """A Hugging Face style RMSNorm (``LlamaRMSNorm``: a ``weight`` and a ``variance_epsilon``), converted as a
    module rather than traced through (its forward computes in float32 and by parts)."""
    return type(module).__name__.endswith("RMSNorm") and hasattr(module, "weight") and \
        hasattr(module, "variance_epsilon")


#: Hugging Face modules converted whole (their forwards fold the batch into other axes or compute by parts): the
#: class name and what it is.
HUGGING_FACE_LEAVES = {"Conv1D": "a dense layer x @ weight + bias (GPT-2's)",
                       "NewGELUActivation": "GELU, tanh approximation", "PytorchGELUTanh": "GELU, tanh approximation"}


def is_leaf(module):
    """Modules converted whole rather than traced through: :func:`is_rms_norm`, :data:`HUGGING_FACE_LEAVES`
    (those from the ``transformers`` package) and torchvision's Swin blocks (:mod:`.torch_windows`)."""
    kind = type(module)
    hugging_face = kind.__name__ in HUGGING_FACE_LEAVES and kind.__module__.startswith("transformers")
    return is_rms_norm(module) or hugging_face or is_swin_module(module)


def leaf_tracer(torch):
    """torch.fx's tracer class with some modules kept whole (:func:`is_leaf`) and buffers traced as constants."""
    import torch.fx

    class LeafTracer(torch.fx.Tracer):
        proxy_buffer_attributes = True  # a buffer used in forward (position ids) is a traced constant

        def is_leaf_module(self, m, module_qualified_name):
            return is_leaf(m) or super().is_leaf_module(m, module_qualified_name)

    return LeafTracer


def input_independent(graph):
    """The call nodes of ``graph`` whose values do not depend on the input's values (a position index, a mask
    made from the input's shape, rotary tables): computed once on the example and imported as constants."""
    dependent = set()
    calls = ("call_function", "call_method", "call_module")
    for node in graph.nodes:
        if node.op == "placeholder" and not any(n.op == "placeholder" for n in dependent):  # the input
            dependent.add(node)
        elif node.op in calls and not _reads_metadata(node) and any(n in dependent for n in node.all_input_nodes):
            dependent.add(node)
    return {node for node in graph.nodes if node.op in calls and node not in dependent}


def _reads_metadata(node):
    return (node.op == "call_method" and node.target in METADATA_METHODS) or \
        (node.op == "call_function" and node.target is getattr and len(node.args) > 1 and node.args[1] in METADATA)


def propagate(torch, graph_module, example, keep):
    """``(output, {node: value})``: the graph module run on ``example`` with torch.fx's ShapeProp (every node's
    shape recorded in its ``meta``), and the values of the nodes in ``keep``."""
    from torch.fx.passes.shape_prop import ShapeProp

    kept = {}

    class Keeping(ShapeProp):
        def run_node(self, node):
            result = super().run_node(node)
            if node in keep:
                kept[node] = result
            return result

    return run(torch, Keeping(graph_module).propagate, example), kept


def shape_tracer(torch, example):
    """A torch.fx tracer that runs the example input alongside the trace, so that Python branches on shapes
    (segmentation-models-pytorch's ``if h % output_stride != 0``) take the example's branch; a branch on what a
    tensor holds is still refused."""
    import torch.fx
    from torch.fx.node import map_arg

    module = torch.nn.Module
    plain = module.__call__, module.__getattr__  # tracing patches both; the example runs without the patches

    class ValueProxy(torch.fx.Proxy):
        def __getattr__(self, name):  # a traced tensor's dtype and device are the example's
            value = self.node.meta.get("value")
            if name in ("dtype", "device") and isinstance(value, torch.Tensor):
                return getattr(value, name)
            return super().__getattr__(name)

        def __index__(self):  # a size used as a slice bound or an index
            value = self.node.meta.get("value")
            if self.node.meta.get("constant") and isinstance(value, int):
                return value
            raise TypeError(f"{self.node.name} is not an integer known when tracing")

    class ShapeTracer(leaf_tracer(torch)):
        failed_on_values = False

        def proxy(self, node):
            return ValueProxy(node, self)

        def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
            node = super().create_node(kind, target, args, kwargs, name, type_expr)
            if kind == "output":
                return node
            args, kwargs = map_arg((args, kwargs), lambda n: n.meta["value"])
            patched = module.__call__, module.__getattr__
            module.__call__, module.__getattr__ = plain
            try:
                value = node.meta["value"] = self.run(kind, target, args, kwargs)
            finally:
                module.__call__, module.__getattr__ = patched
            sizes = (kind == "call_method" and target in ("size", "dim", "numel")) or \
                (target is getattr and tuple(args[1:]) in (("shape",), ("ndim",)))
            node.meta["shapes only"] = not isinstance(value, torch.Tensor) and (
                sizes or kind in ("call_function", "call_method")
                and all(n.meta.get("shapes only") for n in node.all_input_nodes))
            node.meta["constant"] = kind != "placeholder" and (_reads_metadata(node) or all(
                n.meta.get("constant") for n in node.all_input_nodes))
            return node

        def run(self, kind, target, args, kwargs):
            """What the node computes on the example input."""
            if kind == "placeholder":
                return example
            if kind == "get_attr":
                value = self.root
                for part in target.split("."):
                    value = getattr(value, part)
                return value
            if kind == "call_module":
                return self.root.get_submodule(target)(*args, **kwargs)
            if kind == "call_method":
                return getattr(args[0], target)(*args[1:], **kwargs)
            return target(*args, **kwargs)

        def to_bool(self, proxy):
            if proxy.node.meta.get("shapes only") or proxy.node.meta.get("constant"):
                return bool(proxy.node.meta["value"])
            self.failed_on_values = True
            return super().to_bool(proxy)

        def iter(self, proxy):
            value = proxy.node.meta.get("value")
            if proxy.node.meta.get("shapes only"):
                return iter(value)
            if isinstance(value, (tuple, list)):
                return iter([proxy[k] for k in range(len(value))])
            return super().iter(proxy)

    return ShapeTracer()


def node_values(graph_module, x):
    """Every fx node's tensor output on ``x`` (to name the node where an import departs from PyTorch)."""
    import torch
    import torch.fx

    found = {}

    class Recording(torch.fx.Interpreter):
        def run_node(self, node):
            found[node.name] = result = super().run_node(node)
            return result

    with torch.no_grad():
        Recording(graph_module).run(x)
    return {name: value for name, value in found.items() if isinstance(value, torch.Tensor)}


__all__ = ["HUGGING_FACE_LEAVES", "METADATA", "departure", "fixed_arguments", "input_independent", "is_leaf",
           "is_rms_norm", "leaf_tracer", "node_values", "propagate", "run", "shape_tracer", "trace"]
