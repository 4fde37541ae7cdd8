"""The conversions of :func:`reflrp.importers.onnx.from_onnx` for transformers (a mixin of the converter, taken
before :class:`~reflrp.importers.onnx_ops.Operators`): the matrix product of two activations, a softmax inside the
model (causal when a constant causal mask is added before it), a constant added outside any layer (a position
embedding: a Scale with that bias), a constant concatenated (a class token), division by a constant, and
``Gather`` of one index along a non-batch axis (``x[:, 0]``)."""

from __future__ import annotations

import numpy as np

from reflrp import layers as L
from reflrp.graph import INPUT
from reflrp.importers.onnx_ops import Tensor, _axis, _per_channel
from reflrp.importers.torch_attention import mask_kind


class Moved:
    """A ``Transpose`` that moves the batch axis to second place (timm's ``qkv.permute(2, 0, 3, 1, 4)``), kept until
    ``Gather`` of one index along its first axis takes it apart (timm's ``unbind(0)``): each part has the batch
    first again.  ``tensor``: the untransposed input; ``perm``: the transpose's permutation."""

    def __init__(self, tensor, perm):
        self.tensor, self.perm = tensor, perm


class Folded:
    """A ``Reshape`` that folds the first ``axes`` axes of each sample into the batch axis (PyTorch's dynamo
    exporter transposes the keys of attention as ``(N * heads, T, E)``), kept until a ``Reshape`` brings the batch
    axis back to itself; ``Transpose`` of the other axes in between.  ``tensor``: the same values with the batch
    axis alone (per-sample shape: the folded axes, then the rest)."""

    def __init__(self, tensor, axes):
        self.tensor, self.axes = tensor, axes


class Attention:
    """ONNX operators of transformers; each falls back to :class:`~reflrp.importers.onnx_ops.Operators`."""

    def op_Transpose(self, node, where, attrs):
        x, perm = self.values.get(node.input[0]), attrs.get("perm")
        if isinstance(x, Tensor) and perm is not None and len(perm) > 2 and perm[0] != 0 and perm[1] == 0:
            return Moved(x, tuple(perm))
        if isinstance(x, Folded) and perm is not None and perm[0] == 0:
            k = x.axes
            dims = (0, *range(1, k + 1), *(k + int(p) for p in perm[1:]))
            return _kept(Folded, self.add(where, L.Permute(dims), x.tensor), k)
        return super().op_Transpose(node, where, attrs)

    def op_Reshape(self, node, where, attrs):
        x, target = self.values.get(node.input[0]), self.constant(node.input[1])
        if target is None or not isinstance(x, (Tensor, Folded)) or 0 in np.ravel(target):
            return super().op_Reshape(node, where, attrs)
        target = [int(v) for v in np.ravel(target)]
        if isinstance(x, Folded):
            size = int(np.prod(x.tensor.shape))
            rest = int(np.prod(target[1:]))
            if target[0] in (-1, self.batch) and rest == size:  # the batch axis alone again
                return self.add(where, L.Reshape(tuple(target[1:])), x.tensor)
            self.audit.add(where, "Reshape", "a tensor with axes folded into its batch axis is supported when a "
                                             "Reshape brings the batch axis back (N, ...), after Transposes of the "
                                             "other axes")
            return None
        folded = self._folded_by(x.shape, target)
        if folded is None:
            return super().op_Reshape(node, where, attrs)
        return _kept(Folded, self.add(where, L.Reshape((*x.shape[:folded], *target[1:])), x), folded)

    def _folded_by(self, shape, target):
        """How many leading per-sample axes of ``shape`` a reshape to ``target`` folds into the batch axis (with
        the rest reshaped to ``target[1:]``), or None when it folds none or does not split at an axis."""
        size, rest = int(np.prod(shape)), int(np.prod(target[1:])) if len(target) > 1 else 1
        if -1 in target[1:] or rest == 0 or size % rest:
            return None
        factor = size // rest
        if factor == 1 or (target[0] != -1 and target[0] != self.batch * factor):
            return None
        leading = np.cumprod(shape)
        matches = [k + 1 for k, v in enumerate(leading) if v == factor]
        return matches[0] if matches else None

    def _unfolded(self, node, where, attrs, handler):
        """A dense layer or its bias on a tensor with axes folded into its batch axis (GPT-2's ``x.view(-1, E)``
        before its dense layers): it acts on the last axis, so on the tensor with its batch axis alone, folded
        as before.  ``node``'s first input is such a tensor."""
        folded = self.values.get(node.input[0])
        if folded.axes >= len(folded.tensor.shape):
            self.audit.add(where, node.op_type, "a dense layer on a tensor whose every axis is folded into the batch "
                                                "axis is not supported")
            return None
        self.values[node.input[0]] = folded.tensor
        try:
            result = handler(node, where, attrs)
        finally:
            self.values[node.input[0]] = folded
        return None if result is None else Folded(result, folded.axes)

    def op_Gemm(self, node, where, attrs):
        if isinstance(self.values.get(node.input[0]), Folded):
            return self._unfolded(node, where, attrs, super().op_Gemm)
        return super().op_Gemm(node, where, attrs)

    def op_MatMul(self, node, where, attrs):
        values = [self.values.get(name) for name in node.input]
        if isinstance(values[0], Folded) and isinstance(values[1], np.ndarray):
            return self._unfolded(node, where, attrs, super().op_MatMul)
        if not all(isinstance(v, Tensor) for v in values):
            return super().op_MatMul(node, where, attrs)
        gates = [k for k, v in enumerate(values) if self._made_by(v, (L.Softmax,))]
        gate = gates[0] if len(gates) == 1 else None
        return self.add(where, self.layer(where, "MatMul", lambda: L.MatMul(gate=gate)), *values)

    def op_Add(self, node, where, attrs):
        if self.constant(node.input[0]) is not None and isinstance(self.values.get(node.input[1]), Folded):
            swapped = type(node)()  # the bias second: a copy of the node with its inputs swapped
            swapped.CopyFrom(node)
            swapped.input[:] = node.input[::-1]
            node = swapped
        if isinstance(self.values.get(node.input[0]), Folded) and self.constant(node.input[1]) is not None:
            return self._unfolded(node, where, attrs, self.op_Add)
        values = [self.values.get(name) for name in node.input]
        tensor = next((v for v in values if isinstance(v, Tensor)), None)
        constant = next((v for v in values if isinstance(v, np.ndarray)), None)
        if tensor is None or constant is None or not self._outside_any_layer(tensor, constant):
            return super().op_Add(node, where, attrs)
        bias = _one_sample(constant, tensor)  # a mask made for each sample (Hugging Face's): one, if all alike
        kind = mask_kind(bias) if bias is not None and self._feeds_only_softmax(node.output[0]) else None
        if kind is not None:  # an attention mask: the softmax after it hides the keys (or nothing)
            self.masked[node.output[0]] = kind
            return tensor
        if bias is None:
            self.audit.add(where, "Add", "a constant that differs between the samples of the batch is not supported")
            return None
        if not np.all(np.isfinite(bias)):
            self.audit.add(where, "Add", "a constant with inf or NaN added outside a softmax's mask")
            return None
        return self.add(where, self.layer(where, "Add", lambda: L.Scale(np.ones((), dtype=self.dtype),
                                                                         self.param(bias))), tensor)

    def _outside_any_layer(self, tensor, constant):
        """Whether ``tensor + constant`` is not a bias that joins the layer before it (the exporters' MatMul +
        Add): a layer with weights and no bias of its own, used once, takes one constant per output feature."""
        producer = next((n for n in self.builder.nodes if n.name == tensor.name), None)
        layer = None if producer is None else producer.layer
        if isinstance(layer, L.Linear):
            per_feature = np.size(constant) == layer.weight.shape[0] == np.shape(constant)[-1]
        else:
            per_feature = _per_channel(constant, tensor.shape) is not None
        joins = isinstance(layer, (L.Linear, L.Conv1d, L.Conv2d, L.ConvTranspose2d)) and layer.bias is None and \
            per_feature and self._used_once(producer.name)
        return not joins

    def _feeds_only_softmax(self, name):
        users = [n for n in self.graph.node if name in n.input]
        return len(users) == 1 and users[0].op_type == "Softmax"

    def op_Softmax(self, node, where, attrs):
        kind = self.masked.get(node.input[0])
        x = self.tensor(node.input[0], where, "Softmax")
        if x is None:
            return None
        ndim = len(x.shape) + 1
        axis = _axis(attrs.get("axis", -1 if self.opset >= 13 else 1), ndim, "Softmax") % ndim
        if self.opset < 13 and ndim > 2 and axis != ndim - 1:
            self.audit.add(where, "Softmax", f"before opset 13, Softmax(axis={axis}) flattens its input: not "
                                             f"supported for {ndim}-D tensors")
            return None
        if axis == 0:
            self.audit.add(where, "Softmax", "a softmax over the batch axis is not supported")
            return None
        return self.add(where, self.layer(where, "Softmax", lambda: L.Softmax(axis, causal=kind == "causal")), x)

    def op_Div(self, node, where, attrs):
        x = self.tensor(node.input[0], where, "Div")
        divisor = self.constant(node.input[1])
        if x is None:
            return None
        if divisor is None or np.size(divisor) != 1 or float(np.asarray(divisor).reshape(())) == 0:
            self.audit.add(where, "Div", "only division by a non-zero constant number is supported")
            return None
        factor = np.asarray(1.0 / float(np.asarray(divisor).reshape(())))
        return self.add(where, self.layer(where, "Div", lambda: L.Scale(self.param(factor))), x)

    def op_Gather(self, node, where, attrs):
        moved = self.values.get(node.input[0])
        if isinstance(moved, Moved):
            return self._gather_moved(moved, node, where, attrs)
        table, ids = self.constant(node.input[0]), self.values.get(node.input[1])
        if table is not None and isinstance(ids, Tensor):
            return self._embedding(table, ids, where, attrs)
        x = self.tensor(node.input[0], where, "Gather")
        index = self.constant(node.input[1])
        if x is None:
            return None
        ndim = len(x.shape) + 1
        axis = _axis(attrs.get("axis", 0), ndim, "Gather") % ndim
        if index is None or np.ndim(index) != 0 or axis == 0:
            self.audit.add(where, "Gather", "only one constant index along a non-batch axis (x[:, 0]) is supported")
            return None
        position = int(index) % x.shape[axis - 1]
        narrowed = self.add(f"{where}.narrow", L.Narrow(axis, position, 1), x)
        if narrowed is None:
            return None
        kept = tuple(n for k, n in enumerate(x.shape) if k != axis - 1)
        return self.add(where, self.layer(where, "Gather", lambda: L.Reshape(kept)), narrowed)

    def _embedding(self, table, ids, where, attrs):
        """Rows of a constant table looked up by the model's token ids: an Embedding."""
        if not (self.ids and ids.name == INPUT and table.ndim == 2 and attrs.get("axis", 0) == 0):
            self.audit.add(where, "Gather", "a lookup in a constant table is supported only of its rows (axis 0) by "
                                            "the model input, when that is token ids (an embedding)")
            return None
        return self.add(where, self.layer(where, "Gather", lambda: L.Embedding(self.param(table))), ids)

    def _gather_moved(self, moved, node, where, attrs):
        """One part along the first axis of a transpose that moved the batch axis: that index of the untransposed
        tensor (a Narrow), without the axis, and the rest of the permutation (batch first)."""
        index = self.constant(node.input[1])
        if attrs.get("axis", 0) != 0 or index is None or np.ndim(index) != 0:
            self.audit.add(where, "Gather", "after a transpose that moves the batch axis, only one constant index "
                                            "along the first axis (unbind(0)) is supported")
            return None
        axis = moved.perm[0]
        narrowed = self.add(f"{where}.narrow", L.Narrow(axis, int(index) % moved.tensor.shape[axis - 1], 1),
                            moved.tensor)
        return None if narrowed is None else self._unmove(Moved(narrowed, moved.perm), where)

    def _unmove(self, moved, where):
        """A moved tensor whose first (moved) axis has size 1, without that axis: a Reshape, then a Permute with
        the rest of the transpose's permutation, the batch first."""
        axis = moved.perm[0]
        order = tuple(d - (d > axis) for d in moved.perm[1:])
        kept = tuple(n for k, n in enumerate(moved.tensor.shape) if k != axis - 1)
        if order == tuple(range(len(order))):
            return self.add(where, L.Reshape(kept), moved.tensor)
        return self.add(where, L.Permute(order), self.add(f"{where}.squeeze", L.Reshape(kept), moved.tensor))

    def op_Split(self, node, where, attrs):
        moved = self.values.get(node.input[0])
        if not isinstance(moved, Moved):
            return super().op_Split(node, where, attrs)
        sizes = self.constant(node.input[1]) if len(node.input) > 1 and node.input[1] else attrs.get("split")
        axis, outputs = moved.perm[0], len(node.output)
        if attrs.get("axis", 0) != 0 or (sizes is not None and any(int(v) != 1 for v in np.ravel(sizes))) or \
                moved.tensor.shape[axis - 1] != outputs:
            self.audit.add(where, "Split", "after a transpose that moves the batch axis, only a split of the first "
                                           "axis into parts of one (unbind(0)) is supported")
            return None
        parts = [_kept(Moved, self.add(f"{where}.{k}", L.Narrow(axis, k, 1), moved.tensor), moved.perm)
                 for k in range(outputs)]
        return None if None in parts else parts

    def op_Slice(self, node, where, attrs):
        moved = self.values.get(node.input[0])
        if not isinstance(moved, Moved) or self.opset < 10:
            return super().op_Slice(node, where, attrs)
        starts, ends, axes, steps = (self.constant(node.input[k]) if len(node.input) > k and node.input[k] else None
                                     for k in (1, 2, 3, 4))
        size = moved.tensor.shape[moved.perm[0] - 1]
        bounds = None if starts is None or ends is None else \
            [int(min(max(v + size if v < 0 else v, 0), size)) for v in (np.ravel(starts)[0], np.ravel(ends)[0])]
        if bounds is None or np.size(starts) != 1 or [int(a) for a in np.ravel(0 if axes is None else axes)] != [0] \
                or (steps is not None and int(np.ravel(steps)[0]) != 1) or bounds[1] <= bounds[0]:
            self.audit.add(where, "Slice", "after a transpose that moves the batch axis, only a constant slice of "
                                           "its first axis with step 1 (unbind(0)) is supported")
            return None
        start, stop = bounds
        return _kept(Moved, self.add(where, L.Narrow(moved.perm[0], start, stop - start), moved.tensor), moved.perm)

    def op_Squeeze(self, node, where, attrs):
        moved = self.values.get(node.input[0])
        if not isinstance(moved, Moved):
            return super().op_Squeeze(node, where, attrs)
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1:
            axes = self.constant(node.input[1])
        if axes is None or [int(v) for v in np.ravel(axes)] != [0] or moved.tensor.shape[moved.perm[0] - 1] != 1:
            self.audit.add(where, "Squeeze", "after a transpose that moves the batch axis, only squeezing its first "
                                             "axis of size 1 is supported")
            return None
        return self._unmove(moved, where)

    def op_Concat(self, node, where, attrs):
        values = [self.values.get(name) for name in node.input]
        constants = [k for k, v in enumerate(values) if isinstance(v, np.ndarray)]
        if len(values) != 2 or len(constants) != 1 or not isinstance(values[1 - constants[0]], Tensor):
            return super().op_Concat(node, where, attrs)
        tensor = values[1 - constants[0]]
        value = _one_sample(values[constants[0]], tensor)
        if value is None:
            self.audit.add(where, "Concat", "a constant that differs between the samples is not supported")
            return None
        ndim = len(tensor.shape) + 1
        axis = _axis(attrs["axis"], ndim, "Concat") % ndim
        return self.add(where, self.layer(where, "Concat", lambda: L.ConstantConcat(
            self.param(value), axis, constants[0])), tensor)


def _kept(kind, tensor, *how):
    """A :class:`Moved` or :class:`Folded` view of ``tensor``, or None when making ``tensor`` failed (audited)."""
    return None if tensor is None else kind(tensor, *how)


def _one_sample(constant, tensor):
    """One sample's part of a constant combined with ``tensor``: a constant with a batch axis (a class token
    expanded over the batch) gives its first sample when all samples hold the same; None when they differ."""
    if constant.ndim != len(tensor.shape) + 1:
        return constant
    if not all(np.array_equal(constant[0], row) for row in constant[1:]):
        return None
    return constant[0]


__all__ = ["Attention"]
