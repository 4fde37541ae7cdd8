"""The receptive cone: explain part of a spatial output for the cost of the part of the model it depends on.

A pixel of a segmentation map depends on a window of each layer's output, widening toward the input; outside it
every layer's relevance is exactly zero, and the forward values there are never read.  :func:`plan` follows the
graph from the box of outputs an explanation selects (:meth:`reflrp.targets.Target.parts`) back to the input,
asking each layer which part of its inputs its box reads (:meth:`reflrp.layers.base.Layer.window`); a layer that
cannot be cut (a global pooling, a dense layer, a normalisation over the whole map) reads its inputs whole, and so
does every layer below it.  :func:`reflrp.explain` then runs the forward pass and the backward pass on these boxes
alone, with each layer cut to its box: the same multiply-adds as the whole computation, restricted.

The relevance maps and the ledger equal the whole computation's to rounding, not bit for bit: the products have
other shapes (OpenBLAS's bits depend on them), and the ledger sums the boxes.  An explanation on its cone has the
same bits from run to run, alone or among other samples and pixels.  docs/segmentation.md says what changes,
docs/speed.md when it is chosen and what it saves.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reflrp import boxes
from reflrp.graph import INPUT

#: ``explain(cone="auto")`` cuts the model for an explanation whose cone needs at most this share of the whole
#: model's work, on a model of at least :data:`AUTO_WORK` multiply-adds.  The time follows the share (the
#: benchmarks' U-Net at 3x256x256: a cone of 12% took 15% of the whole model's time, 4.5% took 9%; the smp U-Net's
#: centre pixel: 60% took 57%), but K explanations on the whole model share their forward products (about (2 + K) /
#: 3 explanations' work), so K cones of half the model each can cost more than the K explanations together on the
#: whole model.  Each explanation decides alone (its bits must not depend on the others), so the share is kept at a
#: half.
AUTO_SHARE = 0.5

#: Below this many multiply-adds per sample (an explanation of about 0.1 s here) a cone saves less than its fixed
#: costs: on the shipped digits U-Net (3e5) one pixel took 4.9 ms on its cone and 4.8 ms whole, 16 pixels 72 ms on
#: their cones and 13 ms together on the whole model; on the benchmarks' U-Net at 3x64x64 (8e8) 16 pixels took 0.89 s
#: on their cones and 0.70 s together, at 3x128x128 (3e9) 64 pixels 6.3 s and 8.7 s.
AUTO_WORK = 1e9


class Cone(NamedTuple):
    """Where an explanation computes: per node, the box of its output that is computed and receives relevance.

    Attributes
    ----------
    boxes : dict of str to box
        Per node (and ``"input"``): one sample's ``((lo, hi) per axis)``.
    layers : dict of str to Layer
        Per node: its layer cut to compute its box (:meth:`~reflrp.layers.base.Layer.window`).
    reads : dict of str to list of box
        Per node: the box it reads of each input.
    shapes : dict of str to tuple
        Per node: its whole per-sample output shape.
    share : float
        The share of the whole model's multiply-adds the cone needs (an estimate from the layers' weights).
    work : int
        The whole model's multiply-adds for one sample (the same estimate).
    """

    boxes: dict
    layers: dict
    reads: dict
    shapes: dict
    share: float
    work: int

    def pays(self):
        """Whether ``explain(cone="auto")`` cuts: :data:`AUTO_SHARE` and :data:`AUTO_WORK`."""
        return self.share <= AUTO_SHARE and self.work >= AUTO_WORK

    def cut(self, node, values):
        """The layer of ``node`` cut to its box, and its inputs cut from ``values`` (each holding its box)."""
        inputs = [boxes.crop(values[i], read, self.boxes[i]) for i, read in zip(node.inputs, self.reads[node.name])]
        return self.layers[node.name], inputs

    def widen(self, node, k, r_in):
        """Input ``k``'s relevance from ``node`` (on the box it reads) on the whole box of that input."""
        source = node.inputs[k]
        return boxes.embed(r_in, self.reads[node.name][k], self.boxes[source])

    def whole(self, name, array):
        """``array`` (node ``name``'s box) in the node's whole shape, +0 outside the box."""
        return boxes.embed(array, self.boxes[name], boxes.whole(self.shapes[name]))

    def masked(self, name, array):
        """``array`` (node ``name``'s box) as a masked array of the node's whole shape: outside the box masked."""
        data = self.whole(name, array)
        mask = np.ones(data.shape, dtype=bool)
        mask[boxes.inside(self.boxes[name], boxes.whole(self.shapes[name]))] = False
        return np.ma.MaskedArray(data, mask)


def plan(graph, shapes, start, box, trailing=(), whole=()):
    """The cone of ``box`` (one sample's part of node ``start``'s output) through ``graph``.

    ``shapes`` are the per-sample output shapes of every node (:meth:`~reflrp.graph.Graph.shapes`).  Node
    ``start`` and every node it depends on get a box; a node read by several gets the smallest box holding what
    each reads; a node whose layer cannot be cut to its box is computed whole.  ``trailing`` nodes (output
    activations above ``start``) are computed on ``start``'s box when they can be cut to it, else not at all;
    ``whole`` nodes are computed whole (their rule holds values tied to input positions).
    Returns None when ``start`` is computed whole (nothing to gain).
    """
    names = graph.ancestors(start)
    wanted = {start: box}
    cut_boxes, layers, reads = {}, {}, {}
    for node in reversed(graph.nodes):
        if node.name not in names:
            continue
        in_shapes = [shapes[i] for i in node.inputs]
        own = wanted.pop(node.name)
        cut = own != boxes.whole(shapes[node.name]) and node.name not in whole
        answer = node.layer.window(own, in_shapes) if cut else None
        if answer is not None and any(read[0] != (0, s[0]) for read, s in zip(answer[0], in_shapes)):
            answer = None  # every box keeps the first (channel) axis whole: layers below rely on it
        if answer is None:
            answer = [boxes.whole(s) for s in in_shapes], node.layer, boxes.whole(shapes[node.name])
        own = answer[2] if len(answer) == 3 else own
        cut_boxes[node.name], layers[node.name], reads[node.name] = own, answer[1], list(answer[0])
        for source, read in zip(node.inputs, answer[0]):
            wanted[source] = boxes.union(wanted.get(source), read)
    cut_boxes[INPUT] = wanted.pop(INPUT, boxes.whole(shapes[INPUT]))
    box = cut_boxes[start]  # the asked box, or a larger one its layer computes
    if box == boxes.whole(shapes[start]):
        return None
    for name in trailing:
        node = graph[name]
        answer = node.layer.window(box, [shapes[i] for i in node.inputs])
        if answer is None or len(answer) == 3 or list(answer[0]) != [box]:
            break
        cut_boxes[name], layers[name], reads[name] = box, answer[1], [box]
    work = _work(graph, cut_boxes, shapes, names)
    share = _work(graph, cut_boxes, shapes, names, cut=True) / max(work, 1)
    return Cone(cut_boxes, layers, reads, dict(shapes), share, work)


def work(graph, shapes, start):
    """The multiply-adds of one sample through node ``start`` and every node it depends on, whole (an estimate:
    each output position costs one per weight that produces it)."""
    return _work(graph, None, shapes, graph.ancestors(start))


def _work(graph, cut_boxes, shapes, names, cut=False):
    """Multiply-adds (estimated: each output position costs one per weight that produces it) of ``names``."""
    total = 0
    for node in graph.nodes:
        if node.name in names:
            weight = getattr(node.layer, "weight", None)
            fan = weight[0].size if isinstance(weight, np.ndarray) and weight.ndim >= 2 else 1
            box = cut_boxes[node.name] if cut else boxes.whole(shapes[node.name])
            total += boxes.volume(box) * fan
    return total
