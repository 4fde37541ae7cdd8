"""Models: :class:`Graph` (named nodes with explicit inputs) and :class:`Sequential` (a chain).

A graph is plain data: a list of :class:`Node` objects ``(name, layer, inputs)`` in topological order, the
model input named ``"input"``, and the name of the output node.  Each node may take only the model input and
nodes listed before it, so cycles cannot be built and the evaluation order is the listing order.  Every
node's output may feed any number of later nodes (fan-out).

A graph knows nothing of relevance propagation: which node is explained, which nodes matter to it and which
layers a composite calls "first" are decided by :mod:`reflrp.explain` and :mod:`reflrp.composites`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from reflrp import boxes, validate
from reflrp.errors import ReflrpError
from reflrp.kernels import fused
from reflrp.layers import Layer

INPUT = "input"


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
    called : "module" or "function"
        How the imported model invoked the layer: as a module (``nn.ReLU()``, a Keras layer, an ONNX node), or as a
        function or tensor method (``F.relu``, ``x.mean``, ``a + b``).  It changes nothing in reflrp's own profile;
        a library that attaches rules to modules only treats functions otherwise (``Profile.functions``).
    within : tuple of (str, str)
        ``(path, class)`` of the innermost module whose forward made the call, as :func:`reflrp.from_torch` records
        it (``("layer1.0", "torchvision.models.resnet.BasicBlock")``); ``()`` at the top level or when unknown.  It
        changes nothing in reflrp's own profile; a library's canonizer may act on the calls inside a known block.
    """

    name: str
    layer: Layer
    inputs: tuple = (INPUT,)
    called: str = "module"
    within: tuple = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ReflrpError(f"node name must be a non-empty string, got {self.name!r}")
        if isinstance(self.layer, type) and issubclass(self.layer, Layer):
            raise ReflrpError(f"node '{self.name}': layer must be a reflrp layer, got the class "
                              f"{self.layer.__name__}; did you mean {self.layer.__name__}(...)?")
        if not isinstance(self.layer, Layer):
            raise ReflrpError(f"node '{self.name}': layer must be a reflrp layer, got {type(self.layer).__name__}")
        inputs = (self.inputs,) if isinstance(self.inputs, str) else self.inputs
        if not isinstance(inputs, (tuple, list)) or not inputs or not all(isinstance(i, str) for i in inputs):
            raise ReflrpError(f"node '{self.name}': inputs must be a non-empty list of node names, got {inputs!r}")
        object.__setattr__(self, "inputs", tuple(inputs))
        if self.called not in ("module", "function"):
            raise ReflrpError(f"node '{self.name}': called must be 'module' or 'function', got {self.called!r}")
        within = tuple(self.within) if isinstance(self.within, (tuple, list)) else None
        if within is None or within and not (len(within) == 2 and all(isinstance(w, str) for w in within)):
            raise ReflrpError(f"node '{self.name}': within must be () or (module path, class name), got "
                              f"{self.within!r}")
        object.__setattr__(self, "within", within)
        try:
            self.layer.check_input_count(len(self.inputs))
        except ReflrpError as error:
            raise ReflrpError(f"{self.label}: {error}") from None

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
        if not isinstance(nodes, (list, tuple)):
            raise ReflrpError(f"graph nodes must be a list of reflrp.Node objects, got {type(nodes).__name__}")
        nodes = tuple(nodes)
        if not nodes:
            raise ReflrpError("a graph needs at least one node")
        position = {}
        for k, node in enumerate(nodes):
            if not isinstance(node, Node):
                raise ReflrpError(f"graph nodes must be reflrp.Node objects, got {type(node).__name__}")
            if node.name == INPUT:
                raise ReflrpError(f"node name '{INPUT}' is reserved for the model input")
            if node.name in position:
                raise ReflrpError(f"two nodes are named '{node.name}'")
            position[node.name] = k
        for k, node in enumerate(nodes):
            for source in node.inputs:
                if source != INPUT and source not in position:
                    raise ReflrpError(f"{node.label}: input '{source}' does not exist")
                if source != INPUT and position[source] >= k:
                    cycle = _find_cycle(nodes, position, node.name)
                    if cycle:
                        raise ReflrpError(f"{node.label}: the graph has a cycle: {' -> '.join(cycle)}")
                    raise ReflrpError(
                        f"{node.label}: input '{source}' is listed after it; list nodes in topological order"
                    )
        output = nodes[-1].name if output is None else output
        if not isinstance(output, str) or output not in position:
            raise ReflrpError(f"output node {output!r} does not exist")
        self.nodes = nodes
        self.output = output
        self._position = position

    def __call__(self, x):
        """The model's output for a batch ``x``."""
        return self.forward(x)

    def __len__(self):
        return len(self.nodes)

    def __getitem__(self, name):
        """The :class:`Node` called ``name``."""
        if not isinstance(name, str) or name not in self._position:
            raise ReflrpError(f"no node is named {name!r}")
        return self.nodes[self._position[name]]

    def __eq__(self, other):
        return isinstance(other, Graph) and self.nodes == other.nodes and self.output == other.output

    __hash__ = None

    def __repr__(self):
        lines = ["Graph("]
        for node in self.nodes:
            lines.append(f"  {node.name}: {node.layer!r} <- {', '.join(node.inputs)}")
        lines.append(f"  output={self.output!r})")
        return "\n".join(lines)

    def position(self, name):
        """Index of node ``name`` in the listing (evaluation) order."""
        self[name]
        return self._position[name]

    def ancestors(self, name):
        """Names of ``name`` and every node it depends on (``"input"`` excluded)."""
        self[name]
        keep = {name}
        for node in reversed(self.nodes):
            if node.name in keep:
                keep.update(i for i in node.inputs if i != INPUT)
        return keep

    def consumers(self, name):
        """Names of the nodes that take ``name`` as an input, in listing order."""
        return [n.name for n in self.nodes if name in n.inputs]

    @property
    def dtype(self):
        """The parameters' dtype (``None`` for a model without parameters)."""
        for node in self.nodes:
            if node.layer.dtype is not None:
                return node.layer.dtype
        return None

    def astype(self, dtype):
        """A copy with every layer's parameters cast to ``dtype`` (float32 or float64)."""
        dtype = validate.float_dtype(dtype, "astype: dtype")
        return self.replace({n.name: n.layer.astype(dtype) for n in self.nodes})

    def replace(self, layers):
        """A copy with the layers of the named nodes replaced (``{name: layer}``)."""
        if not isinstance(layers, dict):
            raise ReflrpError(f"replace: layers must be a dict of node name to layer, got {type(layers).__name__}")
        unknown = [name for name in layers if not isinstance(name, str) or name not in self._position]
        if unknown:
            raise ReflrpError(f"replace: no node is named {', '.join(map(repr, unknown))}")
        return Graph([replace(n, layer=layers.get(n.name, n.layer)) for n in self.nodes], output=self.output)

    def shapes(self, input_shape):
        """Per-sample output shape of every node for a per-sample input shape.

        Raises :class:`ReflrpError` naming the first node whose input does not fit.
        """
        shapes = {INPUT: validate.integers(input_shape, "shapes: input_shape", minimum=1, maximum=None)}
        for node in self.nodes:
            try:
                shapes[node.name] = tuple(node.layer.output_shape(*(shapes[i] for i in node.inputs)))
            except ReflrpError as error:
                raise ReflrpError(f"{node.label}: {error}") from None
        return shapes

    def check_input(self, x, name="x"):
        """Validate a batch before any kernel runs (array, dtype, finite values, shapes along the graph, the memory a
        forward pass needs); return the per-sample shapes of all nodes."""
        validate.batch(x, name)
        for node in self.nodes:
            dtype = node.layer.dtype
            if dtype is not None and dtype != x.dtype:
                raise ReflrpError(
                    f"{node.label}: parameters are {dtype} but {name} is {x.dtype}; "
                    f"cast one of them (model.astype(numpy.{x.dtype}))"
                )
        shapes = self.shapes(x.shape[1:])
        self.check_memory(shapes, len(x), x.itemsize)
        return shapes

    def check_memory(self, shapes, copies, itemsize):
        """Refuse, before allocating, ``copies`` of every node's output (``shapes`` from :meth:`shapes`) when they
        cannot fit in the memory this process may use; the message names the largest node."""
        sizes = {name: math.prod(shape) for name, shape in shapes.items()}
        largest = max(sizes, key=sizes.get)
        where = "the input" if largest == INPUT else f"{self[largest].label}'s output"
        validate.check_memory(copies * sum(sizes.values()) * itemsize, "this batch",
                              f". The largest tensor is {where}, per sample {shapes[largest]}: use a smaller batch or "
                              f"check the model's configuration")

    def trace(self, x, upto=None, cone=None):
        """Forward pass keeping node outputs: ``{name: array}`` for node ``upto`` (default: the output node), every
        node it depends on, and ``"input"``.  ``x`` is checked first (:meth:`check_input`); a node whose output
        overflows is reported by name.  With a :class:`reflrp.cone.Cone` (``upto`` ignored), the nodes of the cone,
        each on its box (``"input"`` too)."""
        self.check_input(x)
        if cone is None:
            names = self.ancestors(self.output if upto is None else upto)
            values = {INPUT: np.ascontiguousarray(x)}
        else:
            names = cone.layers
            values = {INPUT: np.ascontiguousarray(x[boxes.inside(cone.boxes[INPUT], boxes.whole(x.shape[1:]))])}
        for node in self.nodes:
            if node.name in names:
                layer, inputs = (node.layer, [values[i] for i in node.inputs]) if cone is None else \
                    cone.cut(node, values)
                with np.errstate(over="ignore", invalid="ignore"):
                    out = layer.forward(inputs)
                if not fused.all_finite(out):
                    raise ReflrpError(f"{node.label}: the forward pass overflowed (values beyond the range of "
                                      f"{out.dtype}); scale the input or the model")
                values[node.name] = out
        return values

    def forward(self, x):
        """The model's output for a batch ``x`` (checked first)."""
        return self.trace(x)[self.output]


def _find_cycle(nodes, position, start):
    """A cycle through ``start`` following inputs, as a list of names, or ``None`` (iterative depth-first)."""
    parent = {}
    stack = [start]
    seen = set()
    while stack:
        name = stack.pop()
        for source in nodes[position[name]].inputs:
            if source == start:
                path = [name]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start] + path
            if source in position and source not in seen:
                seen.add(source)
                parent[source] = name
                stack.append(source)
    return None


class Sequential(Graph):
    """A chain of layers: a :class:`Graph` whose node ``k`` takes node ``k - 1``.  Everything a graph does
    (``astype``, ``replace``, canonization, saving) returns a plain :class:`Graph`.

    Parameters
    ----------
    layers : list of Layer or (name, Layer) pairs, or dict
        Unnamed layers are called ``"<type>_<k>"`` (``"conv2d_0"``, ``"relu_1"``, ...).
    """

    def __init__(self, layers):
        if isinstance(layers, dict):
            items = list(layers.items())
        elif isinstance(layers, (list, tuple)):
            items = list(layers)
        else:
            raise ReflrpError(f"Sequential takes a list or dict of layers, got {type(layers).__name__}")
        nodes, previous = [], INPUT
        for k, item in enumerate(items):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                name, layer = item
            elif isinstance(item, Layer):
                name, layer = f"{type(item).__name__.lower()}_{k}", item
            elif isinstance(item, tuple) and len(item) == 2:
                raise ReflrpError(f"Sequential: entry {k}: a node name must be a string, got {item[0]!r}")
            else:
                name, layer = f"layer_{k}", item  # Node says what is wrong with it
            nodes.append(Node(name, layer, (previous,)))
            previous = name
        super().__init__(nodes)


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
