"""The conversions of :func:`reflrp.importers.onnx.from_onnx` for transformers (a mixin of the converter, taken
before :class:`~reflrp.importers.onnx_ops.Operators`): the matrix product of two activations, a softmax inside the
model (causal when a constant causal mask is added before it), a constant added outside any layer (a position
embedding: a Scale with that bias), a constant concatenated (a class token), division by a constant, and
``Gather`` of one index along a non-batch axis (``x[:, 0]``)."""

from __future__ import annotations

import numpy as np

from reflrp import layers as L
from reflrp.graph import INPUT
from reflrp.importers.onnx_ops import Tensor, _axis, _per_channel, one_sample
from reflrp.importers.torch_attention import mask_kind


class Attention:
    """ONNX operators of transformers; each falls back to :class:`~reflrp.importers.onnx_ops.Operators`."""

    def op_MatMul(self, node, where, attrs):
        values = [self.values.get(name) for name in node.input]
        if not all(isinstance(v, Tensor) for v in values):
            return super().op_MatMul(node, where, attrs)
        gates = [k for k, v in enumerate(values) if self._made_by(v, (L.Softmax,))]
        gate = gates[0] if len(gates) == 1 else None
        return self.add(where, self.layer(where, "MatMul", lambda: L.MatMul(gate=gate)), *values)

    def op_Add(self, node, where, attrs):
        values = [self.values.get(name) for name in node.input]
        tensor = next((v for v in values if isinstance(v, Tensor)), None)
        constant = next((v for v in values if isinstance(v, np.ndarray)), None)
        if tensor is None or constant is None or not self._outside_any_layer(tensor, constant):
            return super().op_Add(node, where, attrs)
        bias = one_sample(constant, tensor, self.batch)  # a mask made for each sample (Hugging Face): one if alike
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

    def op_Concat(self, node, where, attrs):
        values = [self.values.get(name) for name in node.input]
        constants = [k for k, v in enumerate(values) if isinstance(v, np.ndarray)]
        if len(values) != 2 or len(constants) != 1 or not isinstance(values[1 - constants[0]], Tensor):
            return super().op_Concat(node, where, attrs)
        tensor = values[1 - constants[0]]
        value = one_sample(values[constants[0]], tensor, self.batch)
        if value is None:
            self.audit.add(where, "Concat", "a constant that differs between the samples is not supported")
            return None
        ndim = len(tensor.shape) + 1
        axis = _axis(attrs["axis"], ndim, "Concat") % ndim
        return self.add(where, self.layer(where, "Concat", lambda: L.ConstantConcat(
            self.param(value), axis, constants[0])), tensor)


__all__ = ["Attention"]
