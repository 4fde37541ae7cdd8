"""Values of an ONNX graph whose batch axis is not first and alone, for :func:`reflrp.importers.onnx.from_onnx`.

Exporters move and fold the batch axis: ``nn.MultiheadAttention`` computes sequence first, ``(T, N, E)``, and folds
its heads into the batch, ``(T, N * heads, d)``; timm's ``qkv.permute(2, 0, 3, 1, 4)`` puts the batch second; the
dynamo exporter transposes keys as ``(N * heads, T, E)``; GPT-2 applies its dense layers to ``x.view(-1, E)``;
Swin folds each sample's windows into the batch.  reflrp's layers keep the batch axis first, so such a value is
kept as a :class:`View`: the values of a batch-first tensor, and for each entry of the ONNX value the flat position
it comes from, at the file's batch size.  Rearrangements (Transpose, Reshape, Squeeze, Unsqueeze, Flatten, Gather
and Slice of constant positions, Split) rearrange the positions; a view whose batch axis is first and alone again
becomes layers (:func:`_as_layers`: Narrow, Reshape, Permute).  Other operators act on a view when its batch is one
part of one axis that they leave alone (a dense layer on the last axis of ``(T * N, E)``, the attention products
on ``(N * heads, T, d)``): on the tensor with that part moved out to a batch axis of its own, folded back after."""

from __future__ import annotations

import numpy as np

from reflrp import layers as L
from reflrp.errors import ReflrpError
from reflrp.importers.onnx_ops import Tensor, _axes, _axis

#: operators that may act on a view, and the axes they act on (None: entry by entry)
_ACTS = {"Add": None, "Sub": None, "Mul": None, "Div": None, "Relu": None, "Gelu": None, "Sigmoid": None,
         "Tanh": None, "Neg": None, "Cast": None, "Dropout": None, "Identity": None,
         "MatMul": "last two", "Gemm": "last", "Softmax": "axis", "LayerNormalization": "from axis"}
#: operators that only rearrange entries: computed on the positions
_LAYOUT = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Gather", "Slice", "Split")


class View:
    """The values of the batch-first ``tensor`` rearranged: ``index`` (integers, the ONNX value's shape at the
    file's batch size) holds each entry's flat position in ``tensor``'s (batch, *shape) array."""

    def __init__(self, tensor, index):
        self.tensor, self.index = tensor, index


def _positions(value, batch):
    """The flat positions of a tensor's or a view's entries (int32 where they fit: half the memory)."""
    if isinstance(value, View):
        return value.index
    size = batch * int(np.prod(value.shape))
    return np.arange(size, dtype=np.int32 if size < 2 ** 31 else np.int64).reshape(batch, *value.shape)


def _fold(index, batch, size):
    """``(axis, outer, inner)`` when the sample of each entry is the middle part of ``axis`` split as ``(outer,
    batch, inner)``, else None (the first such axis, the smallest ``inner``)."""
    sample = index // size
    for axis, n in enumerate(index.shape):
        if n % batch:
            continue
        for inner in (d for d in range(1, n // batch + 1) if (n // batch) % d == 0):
            shape = [1] * index.ndim
            shape[axis] = n
            if np.array_equal(sample, np.broadcast_to(((np.arange(n) // inner) % batch).reshape(shape), sample.shape)):
                return axis, n // (batch * inner), inner
    return None


def _unfolded(index, fold, batch):
    """The positions with the batch part of ``fold``'s axis moved out to a first axis of its own."""
    axis, outer, inner = fold
    split = index.reshape(*index.shape[:axis], outer, batch, inner, *index.shape[axis + 1:])
    moved = np.moveaxis(split, axis + 1, 0)
    return moved.reshape(batch, *index.shape[:axis], outer * inner, *index.shape[axis + 1:])


def _folded(shape, fold, batch):
    """The positions of a batch-first tensor of per-sample ``shape`` folded as ``fold`` says (the inverse of
    :func:`_unfolded`)."""
    axis, outer, inner = fold
    index = _positions(Tensor("", shape), batch)
    split = index.reshape(batch, *shape[:axis], outer, inner, *shape[axis + 1:])
    moved = np.moveaxis(split, 0, axis + 1)
    return moved.reshape(*shape[:axis], outer * batch * inner, *shape[axis + 1:])


def _strides(g):
    """``[(size, stride)]``, outermost first, with ``g[j]`` = the sum of ``j``'s digits (in those sizes) times their
    strides, for ``g`` flattened; None when ``g`` is no such sum (strides > 0)."""
    n, factors, block = g.size, [], 1
    while block < n:
        stride, run = int(g[block]), 1
        while (run + 1) * block <= n and int(g[run * block]) == run * stride:
            run += 1
        if stride <= 0 or (n // block) % run:
            return None
        factors.append((run, stride))
        block *= run
    factors.reverse()
    digits = np.indices([size for size, _ in factors]).reshape(len(factors), -1)
    if not np.array_equal(sum(d * stride for d, (_, stride) in zip(digits, factors)), g):
        return None
    return factors


def _as_layers(f, shape):
    """Layers that make, from one sample of per-sample ``shape``, the entries at flat positions ``f`` (the
    per-sample positions of a view whose batch axis is first again): ``[(suffix, layer)]``, or None when no
    Reshape, Narrow and Permute do.  The sample is split into axes at the strides ``f`` steps by (a strided slice
    is one axis split in two, narrowed), each narrowed to the run ``f`` takes, and the axes put in ``f``'s order."""
    size, out, flat = int(np.prod(shape)), tuple(f.shape), f.ravel()
    if np.array_equal(flat, np.arange(size)):
        return [] if out == tuple(shape) else [("reshape", L.Reshape(out))]
    offset = int(flat[0])
    factors = _strides(flat - offset) if flat.size > 1 else []
    if factors is None:
        return None
    axes = []  # (full size, start, count, factor) innermost first; factor None: the positions below every stride
    unit = 1
    for k in sorted(range(len(factors)), key=lambda k: factors[k][1]):
        count, stride = factors[k]
        if stride % unit:
            return None
        if stride > unit:
            axes.append((stride // unit, (offset // unit) % (stride // unit), 1, None))
        unit = stride
        following = min((st for _, st in factors if st > stride), default=size)
        if following % stride:
            return None
        axes.append((following // stride, (offset // stride) % (following // stride), count, k))
        unit = following
    if unit < size:
        if size % unit:
            return None
        axes.append((size // unit, (offset // unit) % (size // unit), 1, None))
    axes.reverse()  # outermost first
    layers = []
    split = tuple(full for full, _, _, _ in axes)
    if split != tuple(shape):
        layers.append(("split", L.Reshape(split)))
    layers += [(f"narrow{a + 1}", L.Narrow(a + 1, start, count)) for a, (full, start, count, _) in enumerate(axes)
               if (start, count) != (0, full)]
    order = [next(a for a, axis in enumerate(axes) if axis[3] == k) for k in range(len(factors))]
    order += [a for a, axis in enumerate(axes) if axis[3] is None]
    if order != sorted(order):
        layers.append(("permute", L.Permute((0, *(a + 1 for a in order)))))
    if tuple(axes[a][2] for a in order) != out:
        layers.append(("reshape", L.Reshape(out)))
    values = np.arange(size, dtype=np.float64).reshape(1, *shape)
    for _, layer in layers:
        layer.output_shape(values.shape[1:])
        values = layer.forward([values])
    return layers if np.array_equal(values[0], f) else None


def _shifted_axis(node):
    """A copy of ``node`` whose (non-negative) ``axis`` attribute counts one axis more."""
    shifted = type(node)()
    shifted.CopyFrom(node)
    for attribute in shifted.attribute:
        if attribute.name == "axis":
            attribute.i += 1
    return shifted


class Views:
    """Mixed into the converter before the other operator mixins: values whose batch axis moved."""

    def on_views(self, node):
        """Whether ``node`` reads a view, or rearranges a tensor so that its batch axis moves."""
        values = [self.values.get(name) for name in node.input if name]
        return any(isinstance(v, View) for v in values) or (
            node.op_type in _LAYOUT and bool(values) and self._moves_batch(node, values[0]))

    def view_node(self, node, where):
        """The outputs of a node for which :meth:`on_views` holds."""
        values = [self.values.get(name) for name in node.input if name]
        views = [v for v in values if isinstance(v, View)]
        if node.op_type in _LAYOUT and (isinstance(values[0], View) or self._moves_batch(node, values[0])):
            return self._rearranged(node, where)
        if node.op_type == "Shape":
            attrs = self.attributes(node)
            shape = views[0].index.shape
            self.from_shape.update(node.output)
            return [np.array(shape[attrs.get("start", 0):attrs.get("end", len(shape))], dtype=np.int64)]
        return self._on_unfolded(node, where, views)

    # -- rearrangements ------------------------------------------------------------------------------------------

    def _moves_batch(self, node, x):
        """Whether a rearrangement of the batch-first tensor ``x`` leaves its batch axis other than first and
        alone."""
        if not isinstance(x, Tensor):
            return False
        attrs = self.attributes(node)
        if node.op_type == "Transpose":
            return attrs.get("perm") is not None and list(attrs["perm"])[0] != 0
        if node.op_type == "Reshape":
            target = self.constant(node.input[1])
            if target is None or (attrs.get("allowzero", 0) and 0 in np.ravel(target)):
                return False
            full = (self.batch, *x.shape)
            target = [full[k] if v == 0 and k < len(full) else int(v) for k, v in enumerate(np.ravel(target))]
            if -1 in target:
                known = int(np.prod([v for v in target if v != -1]))
                if known == 0 or int(np.prod(full)) % known:
                    return False
                target[target.index(-1)] = int(np.prod(full)) // known
            return target[0] != self.batch and int(np.prod(target)) == int(np.prod(full))
        if node.op_type == "Flatten":
            axis, rank = attrs.get("axis", 1), len(x.shape) + 1
            return -rank <= axis <= rank and (axis + rank if axis < 0 else axis) != 1
        if node.op_type == "Slice" and len(node.input) > 4 and node.input[4]:
            steps = self.constant(node.input[4])
            if steps is not None and np.any(np.ravel(steps) != 1):  # a strided slice: a split axis, narrowed
                return True
        if self.batch == 1 and node.op_type in ("Squeeze", "Unsqueeze", "Gather", "Slice", "Split"):
            # a file made for one sample: a leading axis of 1 that the graph splits off, squeezes or picks from is
            # that sample's data (timm's qkv.unbind(0) after its permutation), not the batch
            return 0 in self._axes_of(node, attrs, len(x.shape) + 1)
        return False

    def _axes_of(self, node, attrs, ndim):
        """The axes a Squeeze, Unsqueeze, Gather, Slice or Split names (in the output's count for Unsqueeze)."""
        op, second = node.op_type, self.constant(node.input[1]) if len(node.input) > 1 and node.input[1] else None
        if op in ("Gather", "Split"):
            return {_axis(attrs.get("axis", 0), ndim, op)}
        if op == "Slice":
            axes = self.constant(node.input[3]) if len(node.input) > 3 and node.input[3] else attrs.get("axes")
            starts = self.constant(node.input[1]) if self.opset >= 10 else attrs.get("starts")
            if axes is None:
                return set(range(np.size(starts))) if starts is not None else set()
            return set(_axes(axes, ndim, op))
        axes = attrs.get("axes") if second is None else second
        if axes is None:
            return {0} if op == "Squeeze" else set()
        return set(_axes(axes, ndim + (np.size(axes) if op == "Unsqueeze" else 0), op))

    def _rearranged(self, node, where):
        """A rearrangement computed on the positions of its input (a view, or a tensor whose batch axis it moves)."""
        x = self.values.get(node.input[0])
        base = x.tensor if isinstance(x, View) else x
        index = _positions(x, self.batch)
        attrs = self.attributes(node)
        try:
            parts = self._rearrange(node, attrs, index)
        except ReflrpError:
            raise
        except (ValueError, IndexError) as error:
            raise ReflrpError(f"cannot rearrange a {index.shape} value: {error}") from None
        if any(part.size == 0 for part in parts):
            raise ReflrpError(f"it leaves nothing of the {index.shape} value (an empty slice or part)")
        results = [self._settled(base, part, f"{where}.{k}" if len(parts) > 1 else where)
                   for k, part in enumerate(parts)]
        return None if any(r is None for r in results) else results

    def _rearrange(self, node, attrs, index):
        """The positions after ``node`` (one array per output)."""
        op = node.op_type
        second = self.constant(node.input[1]) if len(node.input) > 1 and node.input[1] else None
        if op == "Transpose":
            return [np.transpose(index, attrs.get("perm"))]
        if op == "Reshape":
            if second is None:
                raise ReflrpError("the target shape must be a constant (or computed from shapes)")
            target = [index.shape[k] if v == 0 and not attrs.get("allowzero", 0) else int(v)
                      for k, v in enumerate(np.ravel(second))]
            if self.symbolic_batch and node.input[1] not in self.from_shape and target[:1] != [-1]:
                # only -1 first, or a target computed from shapes, puts every batch size's samples where batch 2's go
                raise ReflrpError(f"a constant target {target} that moves the batch axis fits one batch size only "
                                  f"(the model's batch size is symbolic): compute it from shapes, or export with a "
                                  f"fixed batch size")
            return [index.reshape(target)]
        if op == "Flatten":
            axis = attrs.get("axis", 1)
            if not -index.ndim <= axis <= index.ndim:
                raise ReflrpError(f"axis {axis} is out of range for a {index.ndim}-D tensor")
            axis = axis + index.ndim if axis < 0 else axis
            return [index.reshape(int(np.prod(index.shape[:axis])), -1)]
        if op in ("Squeeze", "Unsqueeze"):
            axes = attrs.get("axes") if second is None else second
            if axes is None and op == "Squeeze":
                return [np.squeeze(index)]
            rank = index.ndim + (np.size(axes) if op == "Unsqueeze" else 0)
            axes = _axes(axes, rank, op)
            return [np.expand_dims(index, tuple(axes)) if op == "Unsqueeze" else np.squeeze(index, tuple(axes))]
        if op == "Gather":
            if second is None:
                raise ReflrpError("the indices must be constants")
            return [np.take(index, np.asarray(second, dtype=np.int64), axis=_axis(attrs.get("axis", 0), index.ndim,
                                                                                  "Gather"))]
        if op == "Slice":
            starts, ends, axes, steps = (self.constant(node.input[k]) if len(node.input) > k and node.input[k]
                                         else None for k in (1, 2, 3, 4))
            if self.opset < 10:
                starts, ends, axes = attrs.get("starts"), attrs.get("ends"), attrs.get("axes")
            if starts is None or ends is None:
                raise ReflrpError("starts and ends must be constants")
            axes = range(np.size(starts)) if axes is None else _axes(axes, index.ndim, "Slice")
            steps = [1] * np.size(starts) if steps is None else np.ravel(steps)
            if any(int(step) < 1 for step in steps):
                raise ReflrpError(f"steps {[int(v) for v in steps]}: a negative step (a reversal) is not supported")
            cut = [slice(None)] * index.ndim
            for axis, start, end, step in zip(axes, np.ravel(starts), np.ravel(ends), steps):
                cut[axis] = slice(*slice(int(start), int(end), int(step)).indices(index.shape[axis]))
            return [index[tuple(cut)]]
        axis = _axis(attrs.get("axis", 0), index.ndim, "Split")  # Split
        sizes = second if second is not None else attrs.get("split")
        if sizes is None:
            count = len(node.output)
            sizes = [-(-index.shape[axis] // count)] * (count - 1)
            sizes.append(index.shape[axis] - sum(sizes))
        return np.split(index, np.cumsum([int(v) for v in np.ravel(sizes)])[:-1], axis=axis)

    def _settled(self, base, index, where):
        """``index``'s entries of ``base`` as a tensor when its batch axis is first and alone (layers that make it),
        else as a :class:`View`."""
        size, batch = int(np.prod(base.shape)), self.batch
        if index.ndim < 2 or index.shape[0] != batch or index[:1].max() >= size:  # positions are never negative
            return View(base, index)
        samples = np.arange(batch, dtype=np.int64).reshape(batch, *([1] * (index.ndim - 1))) * size
        if not np.array_equal(index, index[:1] + samples):
            return View(base, index)
        layers = _as_layers(index[0], base.shape)
        if layers is None:
            self.audit.add(where, "rearrangement", "the entries it takes from each sample are not a strided box of "
                                                   "the sample's entries (a step must divide its axis), transposed "
                                                   "and reshaped")
            return None
        tensor = base
        for k, (suffix, layer) in enumerate(layers):
            tensor = self.add(where if k == len(layers) - 1 else f"{where}.{suffix}", layer, tensor)
        return tensor

    # -- other operators on views --------------------------------------------------------------------------------

    def _on_unfolded(self, node, where, views):
        """``node`` on its views with their batch part moved out to an axis of its own, folded back after."""
        op = node.op_type
        if op not in _ACTS:
            self.audit.add(where, op, "its input has the batch axis moved or folded among other axes (as exported "
                                      "attention and Swin's windows have); supported there: rearrangements, "
                                      f"{', '.join(sorted(_ACTS))}")
            return None
        index = views[0].index
        fold = _fold(index, self.batch, int(np.prod(views[0].tensor.shape)))
        if fold is None:
            self.audit.add(where, op, f"its input of shape {index.shape} (at batch size {self.batch}) mixes the "
                                      f"samples of the batch: they are not one part of one axis")
            return None
        if any(v.index.ndim != index.ndim or v.index.shape[fold[0]] != index.shape[fold[0]] or
               _fold(v.index, self.batch, int(np.prod(v.tensor.shape))) != fold for v in views):
            self.audit.add(where, op, "its inputs hold the samples of the batch in different places")
            return None
        axis = fold[0]
        constant_factor = op in ("MatMul", "Gemm") and self.constant(node.input[1]) is not None
        acted = {index.ndim - 1} if constant_factor else self._acted(op, self.attributes(node), index.ndim)
        if axis in acted:
            self.audit.add(where, op, f"it acts on axis {axis}, which holds the samples of the batch")
            return None
        values = [self.values.get(name) for name in node.input if name]
        for value in values:
            if isinstance(value, np.ndarray) and value.ndim > index.ndim:
                self.audit.add(where, op, f"a constant of shape {value.shape} has more axes than its {index.shape} "
                                          f"input, whose batch is moved or folded")
                return None
            if isinstance(value, Tensor):
                self.audit.add(where, op, "a tensor with the batch first and one with the batch moved are combined")
                return None
            if isinstance(value, np.ndarray) and not constant_factor and value.ndim >= index.ndim - axis and \
                    value.shape[axis - index.ndim] != 1:
                self.audit.add(where, op, f"a constant of shape {value.shape} differs along axis {axis}, which "
                                          f"holds the samples of the batch")
                return None
        saved = {name: self.values[name] for name in node.input if isinstance(self.values.get(name), View)}
        if op in ("Softmax", "LayerNormalization") and self.attributes(node).get("axis", -1) >= 0:
            node = _shifted_axis(node)  # a view's axis k is axis k + 1 of the tensor with the batch moved out
        try:
            for name, view in saved.items():
                self.values[name] = self._settled(view.tensor, _unfolded(view.index, fold, self.batch),
                                                  f"{where}.unfolded")
                if self.values[name] is None:
                    return None
            results = self.node(node, where)  # on tensors now: the operator's own conversion
        finally:
            self.values.update(saved)
        if results is None:
            return None
        folded = []
        for result in results:
            if not isinstance(result, Tensor) or result.shape[axis] != fold[1] * fold[2]:
                self.audit.add(where, op, "its result does not keep the axis that holds the samples of the batch")
                return None
            folded.append(View(result, _folded(result.shape, fold, self.batch)))
        return folded

    def _acted(self, op, attrs, ndim):
        how = _ACTS[op]
        if how is None:
            return set()
        if how == "last two":
            return {ndim - 2, ndim - 1}
        if how == "last":
            return {ndim - 1}
        axis = _axis(attrs.get("axis", -1), ndim, op)
        return {axis} if how == "axis" else set(range(axis, ndim))

    def fused(self, fusion, where, what):
        """A fused pattern's layer on its source, which may be a view (:mod:`reflrp.importers.onnx_fusions`)."""
        if isinstance(fusion.source, tuple):  # a layer of several inputs (batch first)
            return self.apply_fused(fusion, where, what, *(self.tensor(s, where, what) for s in fusion.source))
        source = self.values.get(fusion.source)
        if not isinstance(source, View):
            return self.apply_fused(fusion, where, what, self.tensor(fusion.source, where, what))
        fold = _fold(source.index, self.batch, int(np.prod(source.tensor.shape)))
        if fold is None or fold[0] == source.index.ndim - 1:
            self.audit.add(where, what, "its input has the batch axis moved into the axis it acts on")
            return None
        tensor = self._settled(source.tensor, _unfolded(source.index, fold, self.batch), f"{where}.unfolded")
        result = self.apply_fused(fusion, where, what, tensor)
        return None if result is None else View(result, _folded(result.shape, fold, self.batch))


__all__ = ["View", "Views"]
