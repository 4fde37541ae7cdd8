"""What ONNX exporters write as several nodes and :func:`reflrp.from_torch` makes one layer, recognised before
:func:`reflrp.importers.onnx.from_onnx` walks the graph:

- SiLU: ``x * Sigmoid(x)``;
- GELU: ``(x * (Erf(x / sqrt 2) + 1)) * 0.5``, and its tanh form ``(0.5 x) (1 + Tanh(sqrt(2/pi) (x + 0.044715
  x^3)))`` (Hugging Face's ``NewGELUActivation``, GPT-2's);
- RMSNorm: ``x * Reciprocal(Sqrt(ReduceMean(x^2) + eps))`` over the last axis, inside Casts to float32 and back
  (Hugging Face's RMSNorm computes in float32; reflrp computes it in the model's dtype, as from PyTorch);
- a sum of stacked tensors, ``ReduceSum(Concat(Unsqueeze(t_1, a), ..., axis=a), a)`` (``torch.stack(ts).sum(0)``,
  segmentation-models-pytorch's FPN): one Add of the tensors.

A pattern counts only when each of its inner values feeds the pattern alone."""

from __future__ import annotations

import math
from functools import partial

from reflrp import layers as L
from reflrp.errors import ReflrpError


class Fusion:
    """Nodes of the ONNX graph that are one layer: ``make(shape)`` makes it for the per-sample shape of the value
    ``source`` it is applied to (raising :class:`~reflrp.errors.ReflrpError` when that shape does not fit), computed
    at the node ``last``; the others (``inner``) only feed it.  ``source`` is a tuple of values for a layer of
    several inputs."""

    def __init__(self, make, source, last, inner):
        self.make, self.source, self.last, self.inner = make, source, last, inner


class _Graph:
    """Who makes and who reads each value of an ONNX graph, and which values are constant numbers."""

    def __init__(self, graph, constants):
        self.nodes, self.constants = graph.node, constants
        self.producer = {out: k for k, node in enumerate(graph.node) for out in node.output if out}
        self.readers = {}
        for k, node in enumerate(graph.node):
            for name in node.input:
                self.readers.setdefault(name, []).append(k)
        self.outputs = {out.name for out in graph.output}

    def only_into(self, value, k):
        """Whether node ``k`` is the only reader of ``value`` (and it is not a model output)."""
        return self.readers.get(value, []) == [k] and value not in self.outputs

    def made_by(self, value, op, reader=None):
        """The index of the ``op`` node that makes ``value`` (read by node ``reader`` alone, when given), or None."""
        k = self.producer.get(value)
        if k is None or self.nodes[k].op_type != op or (reader is not None and not self.only_into(value, reader)):
            return None
        return k

    def is_number(self, value, number):
        array = self.constants.get(value)
        return array is not None and array.size == 1 and math.isclose(float(array.reshape(())), number,
                                                                         rel_tol=1e-6)

    def with_number(self, value, op, number, reader):
        """``(operand, k)`` when ``value = op(operand, number)`` (in either order for Mul and Add) at node ``k``
        read by ``reader`` alone, else None."""
        k = self.made_by(value, op, reader)
        if k is None or len(self.nodes[k].input) != 2:
            return None
        a, b = self.nodes[k].input
        orders = ((a, b), (b, a)) if op in ("Mul", "Add") else ((a, b),)
        return next(((x, k) for x, c in orders if self.is_number(c, number)), None)


def _pairs(node):
    """The two inputs of a binary node in both orders."""
    a, b = node.input
    return (a, b), (b, a)


def _silu(g, k, node):
    for x, s in _pairs(node):
        sig = g.made_by(s, "Sigmoid", k)
        if sig is not None and g.nodes[sig].input[0] == x:
            return Fusion(lambda shape: L.SiLU(), x, k, {sig})
    return None


def _gelu_erf(g, k, node):
    for half, product in _pairs(node):
        first = g.made_by(product, "Mul", k)
        if not g.is_number(half, 0.5) or first is None:
            continue
        for x, added in _pairs(g.nodes[first]):
            plus = g.with_number(added, "Add", 1.0, first)
            erf = None if plus is None else g.made_by(plus[0], "Erf", plus[1])
            div = None if erf is None else g.with_number(g.nodes[erf].input[0], "Div", math.sqrt(2), erf)
            if div is not None and div[0] == x:
                return Fusion(lambda shape: L.GELU(), x, k, {first, plus[1], erf, div[1]})
    return None


def _gelu_tanh(g, k, node):
    candidates = []  # (x, the bracket 1 + tanh(...), the node reading the bracket, nodes so far)
    for a, b in _pairs(node):
        half = g.with_number(a, "Mul", 0.5, k)
        if half is not None:  # (0.5 x) * bracket
            candidates.append((half[0], b, k, {half[1]}))
        product = g.made_by(a, "Mul", k)
        if g.is_number(b, 0.5) and product is not None:  # (x * bracket) * 0.5
            candidates += [(x, bracket, product, {product}) for x, bracket in _pairs(g.nodes[product])]
    for x, bracket, reader, nodes in candidates:
        plus = g.with_number(bracket, "Add", 1.0, reader)
        tanh = None if plus is None else g.made_by(plus[0], "Tanh", plus[1])
        scaled = None if tanh is None else g.with_number(g.nodes[tanh].input[0], "Mul", math.sqrt(2 / math.pi), tanh)
        total = None if scaled is None else g.made_by(scaled[0], "Add", scaled[1])
        if total is None:
            continue
        for first, cubic in _pairs(g.nodes[total]):
            term = g.with_number(cubic, "Mul", 0.044715, total)
            cube = None if term is None else g.with_number(term[0], "Pow", 3.0, term[1])
            if first == x and cube is not None and cube[0] == x:
                inner = nodes | {plus[1], tanh, scaled[1], total, term[1], cube[1]}
                return Fusion(lambda shape: L.GELU(approximate="tanh"), x, k, inner)
    return None


def _rms_norm(g, k, node):
    if node.op_type == "Div":  # x / Sqrt(v)
        candidates = [(node.input[0], g.made_by(node.input[1], "Sqrt", k), set())]
    else:  # x * Reciprocal(Sqrt(v)) or x * (1 / Sqrt(v))
        candidates = []
        for x, r in _pairs(node):
            one = g.made_by(r, "Reciprocal", k)
            if one is None:
                one = g.made_by(r, "Div", k)
                one = one if one is not None and g.is_number(g.nodes[one].input[0], 1.0) else None
            if one is not None:
                candidates.append((x, g.made_by(g.nodes[one].input[-1], "Sqrt", one), {one}))
    for x, sqrt, nodes in candidates:
        add = None if sqrt is None else g.made_by(g.nodes[sqrt].input[0], "Add", sqrt)
        plus = None if add is None else next(((m, g.constants[e]) for m, e in _pairs(g.nodes[add])
                                              if e in g.constants and g.constants[e].size == 1), None)
        mean = None if plus is None else g.made_by(plus[0], "ReduceMean", add)
        if mean is None:
            continue
        reduce = g.nodes[mean]
        keepdims = next((a.i for a in reduce.attribute if a.name == "keepdims"), 1)
        axes = next((list(a.ints) for a in reduce.attribute if a.name == "axes"), None)
        if axes is None and len(reduce.input) > 1 and reduce.input[1] in g.constants:
            axes = [int(v) for v in g.constants[reduce.input[1]].ravel()]
        square = g.with_number(reduce.input[0], "Pow", 2.0, mean)
        if square is None:
            product = g.made_by(reduce.input[0], "Mul", mean)
            square = (x, product) if product is not None and list(g.nodes[product].input) == [x, x] else None
        if keepdims != 1 or axes is None or len(axes) != 1 or square is None or square[0] != x or x in g.outputs:
            continue
        nodes |= {sqrt, add, mean, square[1]}
        source, cast = x, g.made_by(x, "Cast")
        if cast is not None and set(g.readers.get(x, [])) == {square[1], k}:
            source, nodes = g.nodes[cast].input[0], nodes | {cast}  # float32 inside: computed in the model's dtype
        return Fusion(partial(_rms_norm_layer, axes[0], float(plus[1].reshape(()))), source, k, nodes)
    return None


def _stacked_sum(g, k, node):
    keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
    axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
    if axes is None and len(node.input) > 1 and node.input[1] in g.constants:
        axes = [int(v) for v in g.constants[node.input[1]].ravel()]
    concat = g.made_by(node.input[0], "Concat", k)
    if keepdims != 0 or axes is None or len(axes) != 1 or concat is None:
        return None
    axis = next((a.i for a in g.nodes[concat].attribute if a.name == "axis"), None)
    parts, inner = [], {concat}
    for value in g.nodes[concat].input:
        unsqueeze = g.made_by(value, "Unsqueeze", concat)
        if unsqueeze is None:
            return None
        node_axes = next((list(a.ints) for a in g.nodes[unsqueeze].attribute if a.name == "axes"), None)
        if node_axes is None and len(g.nodes[unsqueeze].input) > 1 and g.nodes[unsqueeze].input[1] in g.constants:
            node_axes = [int(v) for v in g.constants[g.nodes[unsqueeze].input[1]].ravel()]
        if node_axes != [axis]:
            return None
        parts.append(g.nodes[unsqueeze].input[0])
        inner.add(unsqueeze)
    if axes != [axis] or len(parts) < 2 or axis is None or axis < 0:  # a negative axis: the rank is not known here
        return None
    return Fusion(lambda shape: L.Add(), tuple(parts), k, inner)


def _rms_norm_layer(axis, eps, shape):
    """The RMSNorm of :func:`_rms_norm`, over the last axis of a tensor of per-sample ``shape``."""
    if axis not in (-1, len(shape)):
        raise ReflrpError(f"an RMSNorm pattern over axis {axis} is not supported: only over the last axis")
    return L.RMSNorm((shape[-1],), eps)


_PATTERNS = {"Mul": (_rms_norm, _silu, _gelu_erf, _gelu_tanh), "Div": (_rms_norm,), "ReduceSum": (_stacked_sum,)}


def fusions(graph, constants):
    """``{node index: Fusion}`` for the last node of each pattern, and ``{node index}`` of the inner nodes.
    ``constants``: ``{value name: array}`` of initializers and Constant nodes."""
    g = _Graph(graph, constants)
    found, inner = {}, set()
    for k, node in enumerate(graph.node):
        if node.op_type != "ReduceSum" and len(node.input) != 2:  # the binary patterns
            continue
        for pattern in _PATTERNS.get(node.op_type, ()):
            fusion = pattern(g, k, node)
            if fusion is not None:
                found[k], inner = fusion, inner | fusion.inner
                break
    return found, inner


__all__ = ["Fusion", "fusions"]
