"""The ONNX operators of newer networks, for :func:`reflrp.importers.onnx.from_onnx`: clipped and hard activations,
elementwise products, slices and splits, layer normalisation, casts and negation.  What exporters write as several
nodes (SiLU, GELU, RMSNorm) is recognised before the walk: :mod:`reflrp.importers.onnx_fusions`."""

from __future__ import annotations

import math

import numpy as np

from reflrp import layers as L
from reflrp.errors import ReflrpError
from reflrp.importers.common import gate_of
from reflrp.importers.onnx_ops import Tensor, _axes, one_sample


class Blocks:
    """Mixed into the converter with :class:`reflrp.importers.onnx_ops.Operators`."""

    def op_Clip(self, node, where, attrs):
        x = self.tensor(node.input[0], where, "Clip")
        if self.opset >= 11:
            low, high = (self.constant(node.input[k]) if len(node.input) > k and node.input[k] else None
                         for k in (1, 2))
            if any(len(node.input) > k and node.input[k] and v is None for k, v in ((1, low), (2, high))):
                self.audit.add(where, "Clip", "min and max must be constants")
                return None
        else:
            low, high = attrs.get("min"), attrs.get("max")
        low = -np.inf if low is None else float(np.asarray(low).reshape(()))
        high = np.inf if high is None else float(np.asarray(high).reshape(()))
        if low == 0 and high == 6:
            return self.add(where, L.ReLU6(), x)
        if low == 0 and high == np.inf:
            return self.add(where, L.ReLU(), x)
        self.audit.add(where, "Clip", f"min={low}, max={high} is not supported (ReLU6: 0 and 6; ReLU: 0 and none)")
        return None

    def op_HardSigmoid(self, node, where, attrs):
        alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
        if not (math.isclose(alpha, 1 / 6, rel_tol=1e-6) and beta == 0.5):
            self.audit.add(where, "HardSigmoid", f"alpha={alpha}, beta={beta} is not supported (PyTorch's "
                                                 f"Hardsigmoid: 1/6 and 0.5)")
            return None
        return self._unary(node, where, L.Hardsigmoid())

    def op_Gelu(self, node, where, attrs):
        approximate = attrs.get("approximate", b"none")
        approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
        if approximate not in ("none", "tanh"):
            self.audit.add(where, "Gelu", f"approximate={approximate!r} is not supported")
            return None
        return self._unary(node, where, L.GELU(approximate=approximate))

    def op_Neg(self, node, where, attrs):
        return self._unary(node, where, L.Scale(np.asarray(-1.0, dtype=self.dtype)))

    def op_Cast(self, node, where, attrs):
        """A Cast of a computed tensor to the dtype the model computes in: the tensor itself (an RMSNorm's casts to
        float32 and back are part of its pattern, :func:`fusions`)."""
        x = self.tensor(node.input[0], where, "Cast")
        if x is not None and attrs.get("to") != self.file_type:
            to = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}.get(attrs.get("to"), attrs.get("to"))
            self.audit.add(where, "Cast", f"a change of dtype inside the model (to {to}) is not supported: export "
                                          f"the model in one dtype")
            return None
        return x

    def op_HardSwish(self, node, where, attrs):
        return self._unary(node, where, L.Hardswish())

    def op_Mul(self, node, where, attrs):
        """A product of two tensors (Multiply; a Sigmoid's or HardSigmoid's output is the gate), or a tensor times
        a constant (Scale)."""
        values = [self.values.get(name) for name in node.input]
        if any(v is None and name in self.values for v, name in zip(values, node.input)):
            return None
        if all(isinstance(v, Tensor) for v in values):
            gate = gate_of([self._kind(v) for v in values])
            return self.add(where, self.layer(where, "Mul", lambda: L.Multiply(gate=gate)), *values)
        tensor = next((v for v in values if isinstance(v, Tensor)), None)
        factor = next((v for v in values if isinstance(v, np.ndarray)), None)
        if tensor is None or factor is None:
            self.audit.add(where, "Mul", "multiplies nothing computed from the model input")
            return None
        weight = one_sample(factor, tensor, self.batch)
        if weight is None or weight.ndim > len(tensor.shape):
            self.audit.add(where, "Mul", f"a factor of shape {factor.shape} scales the samples of the batch apart")
            return None
        return self.add(where, self.layer(where, "Mul", lambda: L.Scale(self.param(weight))), tensor)

    def _made_by(self, tensor, kinds):
        node = next((n for n in self.builder.nodes if n.name == tensor.name), None)
        return node is not None and isinstance(node.layer, kinds)

    def _kind(self, tensor):
        """The class name of the layer that made ``tensor`` (None for the model input)."""
        node = next((n for n in self.builder.nodes if n.name == tensor.name), None)
        return None if node is None else type(node.layer).__name__

    def op_Slice(self, node, where, attrs):
        """A slice of non-batch axes with step 1, as one Narrow per axis."""
        x = self.tensor(node.input[0], where, "Slice")
        if self.opset < 10:
            starts, ends, axes, steps = attrs.get("starts"), attrs.get("ends"), attrs.get("axes"), None
        else:
            starts, ends, axes, steps = (self.constant(node.input[k]) if len(node.input) > k and node.input[k]
                                         else None for k in (1, 2, 3, 4))
            if starts is None or ends is None or any(len(node.input) > k and node.input[k] and v is None
                                                     for k, v in ((3, axes), (4, steps))):
                self.audit.add(where, "Slice", "starts, ends, axes and steps must be constants")
                return None
        if x is None:
            return None
        full = (self.batch, *x.shape)
        starts, ends = np.asarray(starts).reshape(-1), np.asarray(ends).reshape(-1)
        axes = _axes(range(len(starts)) if axes is None else axes, len(full), "Slice")
        steps = np.ones(len(starts), dtype=np.int64) if steps is None else np.asarray(steps).reshape(-1)
        for axis, start, end, step in zip(axes, starts, ends, steps):
            if step != 1:
                self.audit.add(where, "Slice", f"step {int(step)} is not supported (only 1)")
                return None
            size = full[axis]
            start, end = (int(min(max(v + size if v < 0 else v, 0), size)) for v in (start, end))
            if axis == 0:
                if (start, end) != (0, size):
                    self.audit.add(where, "Slice", "slicing the batch axis is not supported")
                    return None
                continue
            if end <= start:
                self.audit.add(where, "Slice", f"the slice {start}:{end} of axis {axis} is empty")
                return None
            if (start, end) != (0, size):
                x = self.add(where if axis == axes[-1] else f"{where}.axis{axis}", L.Narrow(axis, start, end - start),
                             x)
        return x

    def op_Split(self, node, where, attrs):
        """The parts of a non-batch axis, one Narrow each."""
        x = self.tensor(node.input[0], where, "Split")
        if x is None:
            return None
        ndim = len(x.shape) + 1
        axis = _axes([attrs.get("axis", 0)], ndim, "Split")[0]
        if axis == 0:
            self.audit.add(where, "Split", "splitting the batch axis is not supported")
            return None
        outputs = list(node.output)
        sizes = self.constant(node.input[1]) if len(node.input) > 1 and node.input[1] else attrs.get("split")
        size = x.shape[axis - 1]
        if sizes is None:
            part = -(-size // len(outputs))
            sizes = [min(part, size - k * part) for k in range(len(outputs))]
        sizes = [int(v) for v in np.asarray(sizes).reshape(-1)]
        if sum(sizes) != size or len(sizes) != len(outputs) or min(sizes) < 1:
            self.audit.add(where, "Split", f"parts {sizes} do not split axis {axis} of size {size} into "
                                           f"{len(outputs)} outputs")
            return None
        starts = np.cumsum([0, *sizes[:-1]])
        return [self.add(f"{where}.{k}", L.Narrow(axis, int(start), length), x)
                for k, (start, length) in enumerate(zip(starts, sizes))]

    def op_LayerNormalization(self, node, where, attrs):
        """The normalisation over the last axes from ``axis`` (LayerNorm), then its scale and bias (Scale)."""
        x = self.tensor(node.input[0], where, "LayerNormalization")
        scale = self.constant(node.input[1])
        bias = self.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if scale is None or (len(node.input) > 2 and node.input[2] and bias is None):
            self.audit.add(where, "LayerNormalization", "Scale and B must be constants")
            return None
        if any(out for out in node.output[1:]):
            self.audit.add(where, "LayerNormalization", "the Mean and InvStdDev outputs are not supported")
            return None
        if x is None:
            return None
        ndim = len(x.shape) + 1
        axis = _axes([attrs.get("axis", -1)], ndim, "LayerNormalization")[0]
        if axis == 0:
            self.audit.add(where, "LayerNormalization", "normalising over the batch axis is not supported")
            return None
        eps = float(attrs.get("epsilon", 1e-5))
        normalized = self.add(f"{where}.normalize", self.layer(where, "LayerNormalization", lambda: L.LayerNorm(
            tuple(x.shape[axis - 1:]), eps)), x)
        return self.add(where, self.layer(where, "LayerNormalization", lambda: L.Scale(
            self.param(scale), self.param(bias))), normalized)

    def op_InstanceNormalization(self, node, where, attrs):
        """The normalisation of each channel of each sample (GroupNorm with a group per channel), then its scale
        and bias per channel (Scale)."""
        x = self.tensor(node.input[0], where, "InstanceNormalization")
        scale, bias = self.constant(node.input[1]), self.constant(node.input[2])
        if scale is None or bias is None:
            self.audit.add(where, "InstanceNormalization", "scale and B must be constants")
            return None
        if x is None:
            return None
        per_channel = (-1,) + (1,) * (len(x.shape) - 1)
        normalized = self.add(f"{where}.normalize", self.layer(where, "InstanceNormalization", lambda: L.GroupNorm(
            x.shape[0], float(attrs.get("epsilon", 1e-5)))), x)
        return self.add(where, self.layer(where, "InstanceNormalization", lambda: L.Scale(
            self.param(scale).reshape(per_channel), self.param(bias).reshape(per_channel))), normalized)

    def op_PRelu(self, node, where, attrs):
        """PReLU with one slope, or one per channel (PyTorch exports them shaped (C, 1, ..., 1))."""
        x = self.tensor(node.input[0], where, "PRelu")
        slope = self.constant(node.input[1])
        if slope is None:
            self.audit.add(where, "PRelu", "the slope must be a constant")
            return None
        if x is None:
            return None
        per_channel = slope.ndim <= len(x.shape) and slope.shape[:1] == x.shape[:1] and \
            all(k == 1 for k in slope.shape[1:]) and slope.ndim == len(x.shape)
        if slope.size != 1 and not per_channel:
            self.audit.add(where, "PRelu", f"slope of shape {slope.shape}: one slope or one per channel (C, 1, ...) "
                                           f"is supported")
            return None
        return self.add(where, self.layer(where, "PRelu", lambda: L.PReLU(self.param(slope).reshape(-1))), x)

    def op_Pad(self, node, where, attrs):
        """Padding with zeros (``constant`` mode, value 0) or copies of the edge (``edge``): a Pad; no padding at
        all: the identity.  The pads may come from a subgraph of constants (folded)."""
        x = self.tensor(node.input[0], where, "Pad")
        pads = self.constant(node.input[1]) if len(node.input) > 1 and node.input[1] else \
            np.asarray(attrs.get("pads", []))
        value = self.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        axes = self.constant(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        mode = attrs.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if pads is None or (len(node.input) > 2 and node.input[2] and value is None) or \
                (len(node.input) > 3 and node.input[3] and axes is None):
            self.audit.add(where, "Pad", "pads, constant_value and axes must be constants")
            return None
        if x is None:
            return None
        ndim = len(x.shape) + 1
        pads = np.asarray(pads, dtype=np.int64).reshape(-1)
        axes = list(range(ndim)) if axes is None else [int(a) % ndim for a in np.asarray(axes).reshape(-1)]
        if len(pads) != 2 * len(axes):
            raise ReflrpError(f"pads {pads.tolist()} must have two entries per padded axis ({len(axes)})")
        widths = {axis: (int(pads[k]), int(pads[k + len(axes)])) for k, axis in enumerate(axes)}
        if not any(any(w) for w in widths.values()):
            return self.add(where, L.Identity(), x)
        problems = []
        if any(widths.get(0, (0, 0))):
            problems.append("padding the batch axis")
        if any(min(w) < 0 for w in widths.values()):
            problems.append(f"negative pads {pads.tolist()} (cropping)")
        if mode not in ("constant", "edge") or (mode == "constant" and value is not None and np.any(value != 0)):
            problems.append(f"mode={mode!r}" + (f" with value {np.asarray(value).tolist()}" if value is not None
                                                else "") + " (zeros or edge only)")
        for problem in problems:
            self.audit.add(where, "Pad", f"{problem} is not supported")
        if problems:
            return None
        first = min(axis for axis, w in widths.items() if any(w))  # F.pad's order: the last axis first
        pairs = [p for axis in reversed(range(first, ndim)) for p in widths.get(axis, (0, 0))]
        return self.add(where, self.layer(where, "Pad", lambda: L.Pad(tuple(pairs), mode="constant" if mode ==
                                                                    "constant" else "replicate")), x)


__all__ = ["Blocks"]
