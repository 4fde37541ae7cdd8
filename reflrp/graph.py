"""Models: :class:`Graph` (named nodes with explicit inputs) and :class:`Sequential` (a chain).

A graph is plain data: a list of :class:`Node` objects ``(name, layer, inputs)`` in topological order, the
model input named ``"input"``, and the name of the output node.  Each node may take only the model input and
nodes listed before it, so cycles cannot be built and the evaluation order is the listing order.  Every
node's output may feed any number of later nodes (fan-out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reflrp.errors import ReflrpError
from reflrp.layers import FLOAT_DTYPES, Conv2d, ConvTranspose2d, Layer, Linear, Sigmoid, Softmax, Tanh, check_batch

INPUT = "input"

OUTPUT_ACTIVATIONS = (Sigmoid, Softmax, Tanh)


@dataclass(frozen=True)
class Node:
    """One node of a :class:`Graph`.

    Parameters
    ----------
    name : str
        Unique, not ``"input"``.
    layer : Layer
    inputs : tuple of str
        Names of earlier nodes or ``"input"``, in the order the layer takes them.
    """

    name: str
    layer: Layer
    inputs: tuple = (INPUT,)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ReflrpError(f"node name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.layer, Layer):
            raise ReflrpError(f"node '{self.name}': layer must be a reflrp layer, got {type(self.layer).__name__}")
        inputs = (self.inputs,) if isinstance(self.inputs, str) else tuple(self.inputs)
        if not inputs or not all(isinstance(i, str) for i in inputs):
            raise ReflrpError(f"node '{self.name}': inputs must be a non-empty list of node names")
        object.__setattr__(self, "inputs", inputs)

    @property
    def label(self):
        """``"Conv2d 'conv1'"``: how errors and ledgers name the node."""
        return f"{type(self.layer).__name__} '{self.name}'"


class Graph:
    """A model as a directed acyclic graph of named layers.

    Parameters
    ----------
    nodes : list of Node
        In topological order: a node's inputs are ``"input"`` or nodes listed before it.
    output : str, optional
        Name of the output node; defaults to the last node.

    Examples
    --------
    >>> g = Graph([Node("fc", Linear(w)), Node("act", ReLU(), ["fc"])], output="act")  # doctest: +SKIP
    """

    def __init__(self, nodes, output=None):
        nodes = tuple(nodes)
        if not nodes:
            raise ReflrpError("a graph needs at least one node")
        for node in nodes:
            if not isinstance(node, Node):
                raise ReflrpError(f"graph nodes must be reflrp.Node objects, got {type(node).__name__}")
        position = {}
        for k, node in enumerate(nodes):
            if node.name == INPUT:
                raise ReflrpError(f"node name '{INPUT}' is reserved for the model input")
            if node.name in position:
                raise ReflrpError(f"two nodes are named '{node.name}'")
            position[node.name] = k
        names = set(position)
        for k, node in enumerate(nodes):
            for source in node.inputs:
                if source == INPUT:
                    continue
                if source not in names:
                    raise ReflrpError(f"{node.label}: input '{source}' does not exist")
                if position[source] >= k:
                    cycle = _find_cycle(nodes, position, node.name)
                    if cycle:
                        raise ReflrpError(f"{node.label}: the graph has a cycle: {' -> '.join(cycle)}")
                    raise ReflrpError(
                        f"{node.label}: input '{source}' is listed after it; list nodes in topological order"
                    )
            expected = node.layer.n_inputs
            if expected is not None and len(node.inputs) != expected:
                raise ReflrpError(f"{node.label}: takes {expected} input(s), got {len(node.inputs)}")
            if expected is None and len(node.inputs) < 2:
                raise ReflrpError(f"{node.label}: takes two or more inputs, got {len(node.inputs)}")
        output = nodes[-1].name if output is None else output
        if output not in names:
            raise ReflrpError(f"output node '{output}' does not exist")
        self.nodes = nodes
        self.output = output
        self._position = position
        for node in nodes:
            if isinstance(node.layer, Softmax) and node.name != output:
                raise ReflrpError(f"{node.label}: Softmax is only allowed as the output layer")
        self.explained = self._explained_node()
        self.active = self._ancestors(self.explained)

    def __call__(self, x):
        """The model's output for a batch ``x``."""
        return self.forward(x)

    def __len__(self):
        return len(self.nodes)

    def __getitem__(self, name):
        """The :class:`Node` called ``name``."""
        if name not in self._position:
            raise ReflrpError(f"no node is named '{name}'")
        return self.nodes[self._position[name]]

    def __repr__(self):
        lines = [f"{type(self).__name__}("]
        for node in self.nodes:
            lines.append(f"  {node.name}: {node.layer!r} <- {', '.join(node.inputs)}")
        lines.append(f"  output={self.output!r})")
        return "\n".join(lines)

    def position(self, name):
        """Index of node ``name`` in the listing (evaluation) order."""
        self[name]
        return self._position[name]

    def _explained_node(self):
        """The output node, or the node below trailing output activations (Sigmoid, Softmax, Tanh)."""
        name = self.output
        while name != INPUT and isinstance(self[name].layer, OUTPUT_ACTIVATIONS):
            name = self[name].inputs[0]
        if name == INPUT:
            raise ReflrpError("the model is only output activations: there is nothing to explain")
        return name

    def _ancestors(self, name):
        """Names of ``name`` and every node it depends on (the model input excluded)."""
        keep = {name}
        for node in reversed(self.nodes):
            if node.name in keep:
                keep.update(i for i in node.inputs if i != INPUT)
        return keep

    def ancestors(self, name):
        """Names of ``name`` and all nodes it depends on (``"input"`` excluded)."""
        self[name]
        return self._ancestors(name)

    @property
    def dtype(self):
        """The parameters' dtype (``None`` for a model without parameters)."""
        for node in self.nodes:
            if node.layer.dtype is not None:
                return node.layer.dtype
        return None

    def astype(self, dtype):
        """A copy with every layer's parameters cast to ``dtype`` (float32 or float64)."""
        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise ReflrpError(f"dtype must be float32 or float64, got {dtype}")
        return self.replace({n.name: n.layer.astype(dtype) for n in self.nodes})

    def replace(self, layers):
        """A copy with the layers of the named nodes replaced (``{name: layer}``)."""
        nodes = [Node(n.name, layers.get(n.name, n.layer), n.inputs) for n in self.nodes]
        return Graph(nodes, output=self.output)

    def consumers(self, name):
        """Names of the nodes that take ``name`` as an input, in listing order."""
        return [n.name for n in self.nodes if name in n.inputs]

    def shapes(self, input_shape):
        """Per-sample output shape of every node for a per-sample input shape.

        Raises :class:`ReflrpError` naming the first node whose input does not fit.
        """
        shapes = {INPUT: tuple(int(v) for v in input_shape)}
        for node in self.nodes:
            try:
                shapes[node.name] = tuple(node.layer.output_shape(*(shapes[i] for i in node.inputs)))
            except ReflrpError as error:
                raise ReflrpError(f"{node.label}: {error}") from None
        return shapes

    def check_input(self, x, name="x"):
        """Validate a batch before any kernel runs; return the per-sample shapes of all nodes."""
        check_batch(x, name)
        for node in self.nodes:
            dtype = node.layer.dtype
            if dtype is not None and dtype != x.dtype:
                raise ReflrpError(
                    f"{node.label}: parameters are {dtype} but {name} is {x.dtype}; "
                    f"cast one of them (model.astype(numpy.{x.dtype}))"
                )
        return self.shapes(x.shape[1:])

    def trace(self, x, upto=None):
        """Forward pass keeping every active node's output: ``{name: array}`` (``"input"`` included)."""
        names = self.active if upto is None else self._ancestors(upto)
        values = {INPUT: np.ascontiguousarray(x)}
        for node in self.nodes:
            if node.name in names:
                values[node.name] = node.layer.forward(*(values[i] for i in node.inputs))
        return values

    def forward(self, x):
        """The model's output for a batch ``x`` (checked first)."""
        self.check_input(x)
        return self.trace(x, upto=self.output)[self.output]

    def first_linear_nodes(self):
        """Names of the Linear/Conv2d/ConvTranspose2d nodes with no such layer between them and the input."""
        weighted = (Linear, Conv2d, ConvTranspose2d)
        behind = {INPUT: False}  # does a weighted layer lie between the input and this node's output?
        first = []
        for node in self.nodes:
            upstream = any(behind[i] for i in node.inputs)
            if isinstance(node.layer, weighted):
                if not upstream:
                    first.append(node.name)
                behind[node.name] = True
            else:
                behind[node.name] = upstream
        return first


def _find_cycle(nodes, position, start):
    """A cycle through ``start`` following inputs, as a list of names, or ``None``."""
    path, seen = [start], set()

    def visit(name):
        for source in nodes[position[name]].inputs:
            if source == start:
                return True
            if source in position and source not in seen:
                seen.add(source)
                path.append(source)
                if visit(source):
                    return True
                path.pop()
        return False

    if visit(start):
        return [start] + list(reversed(path))
    return None


class Sequential(Graph):
    """A chain of layers: a :class:`Graph` whose node ``k`` takes node ``k - 1``.

    Parameters
    ----------
    layers : list of Layer or (name, Layer) pairs, or dict
        Unnamed layers are called ``"<type>_<k>"`` (``"conv2d_0"``, ``"relu_1"``, ...).
    """

    def __init__(self, layers):
        items = list(layers.items()) if isinstance(layers, dict) else list(layers)
        nodes, previous = [], INPUT
        for k, item in enumerate(items):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                name, layer = item
            else:
                name, layer = f"{type(item).__name__.lower()}_{k}", item
            nodes.append(Node(name, layer, (previous,)))
            previous = name
        super().__init__(nodes)

    def replace(self, layers):
        return Sequential([(n.name, layers.get(n.name, n.layer)) for n in self.nodes])


class GraphBuilder:
    """A convenient way to write a :class:`Graph`.

    Examples
    --------
    >>> b = GraphBuilder()                                   # doctest: +SKIP
    >>> h = b.add("conv", Conv2d(w), b.input)                # doctest: +SKIP
    >>> h = b.add("relu", ReLU(), h)                         # doctest: +SKIP
    >>> model = b.build(output=h)                            # doctest: +SKIP
    """

    input = INPUT

    def __init__(self):
        self._nodes = []

    def add(self, name, layer, *inputs):
        """Append a node taking ``inputs`` (names; default: the previous node, or the model input); return its
        name so it can be passed on."""
        if not inputs:
            inputs = (self._nodes[-1].name if self._nodes else INPUT,)
        self._nodes.append(Node(name, layer, inputs))
        return name

    def build(self, output=None):
        """The :class:`Graph`, validated."""
        return Graph(self._nodes, output=output)


__all__ = ["INPUT", "Graph", "GraphBuilder", "Node", "Sequential"]
