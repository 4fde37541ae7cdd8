"""The ONNX operators :func:`reflrp.importers.onnx.from_onnx` converts: one ``op_<OpType>`` method each, taking the
node, its name and its attributes and returning a :class:`Tensor` (a reflrp node), a constant array, or ``None``
after recording in the audit why the node cannot be converted."""

from __future__ import annotations

import numpy as np

from reflrp import layers as L
from reflrp.errors import ReflrpError


def _per_channel(bias, shape):
    """The per-channel vector a constant ``bias`` adds to a tensor of per-sample ``shape``, or None when it is not
    constant across every axis but the channel axis."""
    try:
        full = np.broadcast_to(np.asarray(bias, dtype=np.float64), (1, *shape))
    except ValueError:
        return None
    if np.asarray(bias).ndim > len(shape) + 1:
        return None
    per_channel = full[0].reshape(shape[0], -1)
    if not np.all(per_channel == per_channel[:, :1]):
        return None
    return np.ascontiguousarray(per_channel[:, 0])


def _axis(value, ndim, what):
    """An ONNX axis attribute as an index into ``ndim`` axes: an integer in ``[-ndim, ndim)``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ReflrpError(f"{what}: axis {value!r} is not an integer")
    if not -ndim <= value < ndim:
        raise ReflrpError(f"{what}: axis {value} is out of range for a {ndim}-D tensor")
    return int(value) % ndim


def _axes(values, ndim, what):
    """A list of distinct axes (:func:`_axis` each)."""
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        raise ReflrpError(f"{what}: axes {array.tolist()!r} are not integers")
    axes = [_axis(int(v), ndim, what) for v in array.ravel()]
    if len(set(axes)) != len(axes):
        raise ReflrpError(f"{what}: axes {array.tolist()} name an axis twice")
    return axes


def one_sample(constant, tensor, batch):
    """One sample's part of a constant combined with ``tensor``: a constant with a batch axis of 1 or of the file's
    ``batch`` size (a class token expanded over the batch, a mask or table written once per sample) gives its first
    sample when all samples hold the same; None when they differ or the axis fits no batch."""
    if constant.ndim != len(tensor.shape) + 1:
        return constant
    if constant.shape[0] not in (1, batch) or not all(np.array_equal(constant[0], row) for row in constant[1:]):
        return None
    return constant[0]


class Tensor:
    """A tensor computed from the input: its reflrp node name and per-sample shape."""

    def __init__(self, name, shape):
        self.name, self.shape = name, tuple(int(v) for v in shape)


def _global_pool(x):
    """Adaptive average pooling to 1 over every spatial axis of ``x`` (a per-sample shape (C, ...))."""
    return (L.AdaptiveAvgPool1d, L.AdaptiveAvgPool2d, L.AdaptiveAvgPool3d)[len(x.shape) - 2](1)


class Operators:
    """Mixed into the converter, which provides ``values``, ``builder``, ``audit``, ``constant``, ``tensor``,
    ``param``, ``add``, ``layer``, ``users``, ``opset``, ``batch`` and ``graph``."""

    def _pads(self, where, what, attrs, tensor, kernel, strides, dilations):
        """(top/left..., bottom/right...) pads per spatial axis from ``pads`` or ``auto_pad``."""
        auto = attrs.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        n = len(kernel)
        if auto in ("NOTSET", ""):
            pads = list(attrs.get("pads", [0] * (2 * n)))
            if len(pads) != 2 * n:
                raise ReflrpError(f"pads {pads} must have {2 * n} entries for a {n}-D kernel")
            return pads[:n], pads[n:]
        if auto == "VALID":
            return [0] * n, [0] * n
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            begin, end = [], []
            for size, k, s, d in zip(tensor.shape[1:], kernel, strides, dilations):
                total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
                small, large = total // 2, total - total // 2
                begin.append(small if auto == "SAME_UPPER" else large)
                end.append(large if auto == "SAME_UPPER" else small)
            return begin, end
        self.audit.add(where, what, f"auto_pad={auto!r} is not supported")
        return None

    def op_Conv(self, node, where, attrs):
        x = self.tensor(node.input[0], where, "Conv")
        weight = self.constant(node.input[1])
        bias = self.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if weight is None:
            self.audit.add(where, "Conv", "the weight must be a constant (an initializer)")
            return None
        if x is None:
            return None
        if weight.ndim not in (3, 4, 5):
            self.audit.add(where, "Conv", f"the weight has {weight.ndim} axes; 1-D, 2-D and 3-D convolutions have 3, "
                                          f"4 or 5")
            return None
        n = weight.ndim - 2
        kernel = list(weight.shape[2:])
        strides = list(attrs.get("strides", [1] * n))
        dilations = list(attrs.get("dilations", [1] * n))
        pads = self._pads(where, "Conv", attrs, x, kernel, strides, dilations)
        if pads is None:
            return None
        begin, end = pads
        group = attrs.get("group", 1)
        if n == 1:
            if begin != end:
                self.audit.add(where, "Conv", f"asymmetric 1-D pads {begin + end} are not supported")
                return None
            return self.add(where, self.layer(where, "Conv", lambda: L.Conv1d(
                self.param(weight), self.param(bias), stride=strides[0], padding=begin[0], dilation=dilations[0],
                groups=group)), x)
        if n == 3:
            if begin != end:
                self.audit.add(where, "Conv", f"asymmetric 3-D pads {begin + end} are not supported")
                return None
            return self.add(where, self.layer(where, "Conv", lambda: L.Conv3d(
                self.param(weight), self.param(bias), stride=tuple(strides), padding=tuple(begin),
                dilation=tuple(dilations), groups=group)), x)
        if begin != end:  # asymmetric: explicit zero padding, then a convolution without
            x = self.add(f"{where}.pad", L.ZeroPad2d((begin[1], end[1], begin[0], end[0])), x)
            begin = [0, 0]
        return self.add(where, self.layer(where, "Conv", lambda: L.Conv2d(
            self.param(weight), self.param(bias), stride=tuple(strides), padding=tuple(begin),
            dilation=tuple(dilations), groups=group)), x)

    def op_ConvTranspose(self, node, where, attrs):
        x = self.tensor(node.input[0], where, "ConvTranspose")
        weight = self.constant(node.input[1])
        bias = self.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if weight is None or weight.ndim not in (3, 4, 5):
            self.audit.add(where, "ConvTranspose", "only 1-D, 2-D and 3-D transposed convolutions with a constant "
                                                   "weight are supported")
            return None
        n = weight.ndim - 2
        for key in ("output_shape",):
            if key in attrs:
                self.audit.add(where, "ConvTranspose", f"{key} is not supported; export with explicit pads")
                return None
        auto = attrs.get("auto_pad", b"NOTSET")
        if (auto.decode() if isinstance(auto, bytes) else auto) not in ("NOTSET", "", "VALID"):
            self.audit.add(where, "ConvTranspose", f"auto_pad={auto!r} is not supported")
            return None
        pads = list(attrs.get("pads", [0] * 2 * n))
        if len(pads) != 2 * n:
            raise ReflrpError(f"pads {pads} must have {2 * n} entries for a {n}-D kernel")
        if pads[:n] != pads[n:]:
            self.audit.add(where, "ConvTranspose", f"asymmetric pads {pads} are not supported")
            return None
        kind = (L.ConvTranspose1d, L.ConvTranspose2d, L.ConvTranspose3d)[n - 1]
        return self.add(where, self.layer(where, "ConvTranspose", lambda: kind(
            self.param(weight), self.param(bias), stride=tuple(attrs.get("strides", [1] * n)), padding=tuple(pads[:n]),
            output_padding=tuple(attrs.get("output_padding", [0] * n)),
            dilation=tuple(attrs.get("dilations", [1] * n)), groups=attrs.get("group", 1))), x)

    def op_Gemm(self, node, where, attrs):
        x = self.tensor(node.input[0], where, "Gemm")
        b = self.constant(node.input[1])
        c = self.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if attrs.get("transA", 0):
            self.audit.add(where, "Gemm", "transA=1 is not supported")
            return None
        if b is None:
            self.audit.add(where, "Gemm", "B must be a constant (an initializer)")
            return None
        if b.ndim != 2:
            self.audit.add(where, "Gemm", f"B has {b.ndim} axes, not 2")
            return None
        weight = (b if attrs.get("transB", 0) else b.T) * attrs.get("alpha", 1.0)
        if c is not None and (np.ndim(c) > 2 or np.size(c) not in (1, weight.shape[0]) or
                              (np.ndim(c) == 2 and np.shape(c)[0] != 1)):
            self.audit.add(where, "Gemm", f"C of shape {np.shape(c)} is not one bias per output ({weight.shape[0]})")
            return None
        bias = None if c is None else np.broadcast_to(np.asarray(c).reshape(-1) * attrs.get("beta", 1.0),
                                                      (weight.shape[0],))
        return self.add(where, self.layer(where, "Gemm", lambda: L.Linear(self.param(weight), self.param(bias))), x)

    def op_MatMul(self, node, where, attrs):
        x = self.tensor(node.input[0], where, "MatMul")
        b = self.constant(node.input[1])
        if b is None or b.ndim != 2:
            self.audit.add(where, "MatMul", "only a tensor times a constant 2-D matrix is supported")
            return None
        return self.add(where, self.layer(where, "MatMul", lambda: L.Linear(self.param(b.T))), x)

    def op_Add(self, node, where, attrs):
        values = [self.values.get(name) for name in node.input]
        if all(isinstance(v, Tensor) for v in values):
            if values[0].shape != values[1].shape:
                self.audit.add(where, "Add", f"broadcasting {values[0].shape} + {values[1].shape} is not supported")
                return None
            return self.add(where, L.Add(), *values)
        if any(v is None and name in self.values for v, name in zip(values, node.input)):
            return None
        tensor = next((v for v in values if isinstance(v, Tensor)), None)
        bias = next((v for v in values if isinstance(v, np.ndarray)), None)
        return self._fold_bias(where, tensor, bias)

    def _fold_bias(self, where, tensor, bias):
        """``tensor + bias`` where ``tensor`` is a bias-free affine layer's output used only here and ``bias`` is
        constant per channel: the bias joins that layer (MatMul + Add is how exporters write a dense layer)."""
        producer = next((n for n in self.builder.nodes if tensor is not None and n.name == tensor.name), None)
        layer = None if producer is None else producer.layer
        vector = None
        if isinstance(layer, L.Linear) and bias is not None and np.ndim(bias) >= 1 and \
                np.shape(bias)[-1] == layer.weight.shape[0] and np.size(bias) == np.shape(bias)[-1]:
            vector = np.asarray(bias).reshape(-1)  # a Linear acts on the last axis: its bias lies along it
        elif tensor is not None:
            vector = _per_channel(bias, tensor.shape)
        if (isinstance(layer, (L.Linear, L.Conv1d, L.Conv2d, L.ConvTranspose2d)) and layer.bias is None
                and vector is not None and self._used_once(producer.name)):
            merged = self.layer(where, "Add", lambda: type(layer)(layer.weight, self.param(vector), **layer.config()))
            if merged is None:
                return None
            self.builder.nodes[self.builder.nodes.index(producer)] = type(producer)(producer.name, merged,
                                                                                  producer.inputs)
            return tensor
        self.audit.add(where, "Add", "adding a constant is a bias outside any layer, which the ledger cannot "
                                     "account for: not supported")
        return None

    def _used_once(self, reflrp_name):
        """The ONNX value behind a reflrp node feeds only one ONNX node."""
        for onnx_name, value in self.values.items():
            if isinstance(value, Tensor) and value.name == reflrp_name:
                return self.users.get(onnx_name, 0) == 1
        return False

    def op_BatchNormalization(self, node, where, attrs):
        x = self.tensor(node.input[0], where, "BatchNormalization")
        scale, bias, mean, var = (self.constant(n) for n in node.input[1:5])
        if attrs.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
            self.audit.add(where, "BatchNormalization", "training mode is not supported")
            return None
        if any(v is None for v in (scale, bias, mean, var)):
            self.audit.add(where, "BatchNormalization", "scale, B, mean and var must be constants")
            return None
        if x is None:
            return None
        kind = {3: L.BatchNorm2d, 4: L.BatchNorm3d}.get(len(x.shape), L.BatchNorm1d)
        return self.add(where, self.layer(where, "BatchNormalization", lambda: kind(
            self.param(mean), self.param(var), self.param(scale), self.param(bias),
            eps=float(attrs.get("epsilon", 1e-5)))), x)

    def _unary(self, node, where, layer):
        return self.add(where, layer, self.tensor(node.input[0], where, node.op_type))

    def op_Relu(self, node, where, attrs):
        return self._unary(node, where, L.ReLU())

    def op_LeakyRelu(self, node, where, attrs):
        return self._unary(node, where, L.LeakyReLU(float(attrs.get("alpha", 0.01))))

    def op_Sigmoid(self, node, where, attrs):
        return self._unary(node, where, L.Sigmoid())

    def op_Tanh(self, node, where, attrs):
        return self._unary(node, where, L.Tanh())

    def _pool(self, node, where, attrs, what):
        x = self.tensor(node.input[0], where, what)
        if x is None:
            return None
        kernel = list(attrs["kernel_shape"])
        strides = list(attrs.get("strides", [1] * len(kernel)))
        if len(kernel) not in (1, 2, 3) or len(kernel) != len(x.shape) - 1:
            self.audit.add(where, what, f"{len(kernel)}-D pooling of a {len(x.shape) + 1}-D tensor is not supported")
            return None
        problems = []
        if any(d != 1 for d in attrs.get("dilations", [1] * len(kernel))):
            problems.append(f"dilations={attrs['dilations']!r}")
        if what == "MaxPool" and len([o for o in node.output if o]) > 1:
            problems.append("the indices output")
        for problem in problems:
            self.audit.add(where, what, f"{problem} is not supported")
        pads = self._pads(where, what, attrs, x, kernel, strides, [1] * len(kernel))
        if problems or pads is None:
            return None
        if pads[0] != pads[1]:
            self.audit.add(where, what, f"asymmetric pads {pads[0] + pads[1]} are not supported")
            return None
        ceil = bool(attrs.get("ceil_mode", 0))
        if what == "MaxPool":
            kind = (L.MaxPool1d, L.MaxPool2d, L.MaxPool3d)[len(kernel) - 1]
            return self.add(where, self.layer(where, what, lambda: kind(
                tuple(kernel), tuple(strides), tuple(pads[0]), ceil_mode=ceil)), x)
        include = bool(attrs.get("count_include_pad", 0))
        kind = (L.AvgPool1d, L.AvgPool2d, L.AvgPool3d)[len(kernel) - 1]
        return self.add(where, self.layer(where, what, lambda: kind(
            tuple(kernel), tuple(strides), tuple(pads[0]), count_include_pad=include, ceil_mode=ceil)), x)

    def op_MaxPool(self, node, where, attrs):
        return self._pool(node, where, attrs, "MaxPool")

    def op_AveragePool(self, node, where, attrs):
        return self._pool(node, where, attrs, "AveragePool")

    def op_GlobalAveragePool(self, node, where, attrs):
        x = self.tensor(node.input[0], where, "GlobalAveragePool")
        if x is not None and len(x.shape) not in (2, 3, 4):
            self.audit.add(where, "GlobalAveragePool", "only (N, C, L), (N, C, H, W) and (N, C, D, H, W) inputs are "
                                                       "supported")
            return None
        return self.add(where, _global_pool(x), x) if x is not None else None

    def op_ReduceMean(self, node, where, attrs):
        """The mean over the spatial axes (how exporters write global average pooling); over other non-batch axes
        (a transformer's mean over its tokens), a Mean."""
        x = self.tensor(node.input[0], where, "ReduceMean")
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.constant(node.input[1])
        if x is None:
            return None
        ndim = len(x.shape) + 1
        axes = None if axes is None else sorted({int(a) % ndim for a in np.asarray(axes).ravel()})
        if axes is None or 0 in axes:
            self.audit.add(where, "ReduceMean", "only a mean over constant non-batch axes is supported")
            return None
        if not 3 <= ndim <= 5 or axes != list(range(2, ndim)):
            return self.add(where, L.Mean(tuple(axes), bool(attrs.get("keepdims", 1))), x)
        pooled = self.add(where, _global_pool(x), x)
        if attrs.get("keepdims", 1):
            return pooled
        return self.add(f"{where}.flatten", L.Flatten(1, -1), pooled)

    def op_Resize(self, node, where, attrs, scales_input=2, sizes_input=3):
        x = self.tensor(node.input[0], where, node.op_type)
        if x is None:
            return None
        text = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
        mode = text.get("mode", "nearest")
        transform = text.get("coordinate_transformation_mode", "half_pixel")
        scales = self.constant(node.input[scales_input]) if len(node.input) > scales_input and \
            node.input[scales_input] else None
        sizes = self.constant(node.input[sizes_input]) if sizes_input and len(node.input) > sizes_input and \
            node.input[sizes_input] else None
        if sizes is not None and sizes.size:
            sizes = np.asarray(sizes).reshape(-1)
            batch_kept = sizes.size and sizes[0] == self.batch and (
                not self.symbolic_batch or node.input[sizes_input] in self.from_shape)
            if sizes.size != len(x.shape) + 1 or sizes[1] != x.shape[0] or not batch_kept:
                fixed = " (the model's batch size is symbolic; constant sizes fit one batch size only)" \
                    if self.symbolic_batch and sizes.size and sizes[0] > 0 else ""
                self.audit.add(where, node.op_type, f"sizes {sizes.tolist()} change more than the spatial axes of "
                                                    f"the (N, {', '.join(map(str, x.shape))}) input{fixed}")
                return None
            factors = [o / i for o, i in zip(sizes[2:], x.shape[1:])]
        elif scales is not None and scales.size == len(x.shape) + 1:
            factors = list(np.asarray(scales, dtype=np.float64).reshape(-1)[2:])
        else:
            self.audit.add(where, node.op_type, "the scales or sizes must be constants")
            return None
        integral = all(np.isfinite(factors)) and all(f == int(f) and f >= 1 for f in factors)
        if not 1 <= len(factors) <= 3 or not integral or \
                (scales is not None and scales.size and any(s != 1 for s in np.asarray(scales)[:2])):
            self.audit.add(where, node.op_type, f"only integer spatial scale factors are supported, got {factors}")
            return None
        factors = tuple(int(f) for f in factors)
        if mode == "nearest" and (transform == "asymmetric" and text.get("nearest_mode", "round_prefer_floor") ==
                                  "floor" or all(f == 1 for f in factors)):
            return self.add(where, L.Upsample(factors), x)
        if mode == "linear" and transform in ("pytorch_half_pixel", "half_pixel", "align_corners"):
            align = transform == "align_corners"
            linear = ("linear", "bilinear", "trilinear")[len(factors) - 1]
            return self.add(where, L.Upsample(factors, mode=linear, align_corners=align), x)
        nearest = f" and nearest_mode={text.get('nearest_mode')!r}" if mode == "nearest" else ""
        self.audit.add(where, node.op_type, f"mode={mode!r} with coordinate_transformation_mode={transform!r}{nearest} "
                                            f"is not supported (nearest: asymmetric + floor; linear: half_pixel, "
                                            f"pytorch_half_pixel or align_corners)")
        return None

    def op_Concat(self, node, where, attrs):
        tensors = [self.tensor(name, where, "Concat") for name in node.input]
        if any(t is None for t in tensors):
            return None
        ndim = len(tensors[0].shape) + 1
        if "axis" not in attrs:
            raise ReflrpError("the required attribute 'axis' is missing")
        axis = _axis(attrs["axis"], ndim, "Concat")
        if axis == 0:
            self.audit.add(where, "Concat", "concatenating along the batch axis is not supported")
            return None
        if len(tensors) == 1:
            return tensors[0]
        return self.add(where, L.Concat(axis=axis), *tensors)

    def op_Flatten(self, node, where, attrs):
        x = self.tensor(node.input[0], where, "Flatten")
        if x is None:
            return None
        rank = len(x.shape) + 1
        axis = attrs.get("axis", 1)
        if not -rank <= axis <= rank:
            raise ReflrpError(f"Flatten: axis {axis} is out of range for a {rank}-D tensor")
        if (axis + rank if axis < 0 else axis) != 1:
            self.audit.add(where, "Flatten", f"axis={attrs.get('axis')} is not supported (only 1: keep the batch)")
            return None
        return self.add(where, L.Flatten(1, -1), x)

    def op_Reshape(self, node, where, attrs):
        x = self.tensor(node.input[0], where, "Reshape")
        target = self.constant(node.input[1])
        if target is None:
            self.audit.add(where, "Reshape", "the target shape must be a constant (or computed from shapes)")
            return None
        if x is None:
            return None
        target = [int(v) for v in np.asarray(target).reshape(-1)]
        if attrs.get("allowzero", 0) and 0 in target:
            self.audit.add(where, "Reshape", "allowzero=1 with a zero in the shape is not supported")
            return None
        if target.count(-1) > 1 or any(v < -1 for v in target):
            raise ReflrpError(f"the target shape {target} is invalid (at most one -1, no other negative entries)")
        size = int(np.prod(x.shape))
        rest = int(np.prod([x.shape[k - 1] if v == 0 else v for k, v in enumerate(target) if k and v != -1]))
        keeps_batch = (target[0] == 0 or (target[0] == -1 and rest == size)
                       or (target[0] == self.batch and (not self.symbolic_batch or node.input[1] in self.from_shape)))
        if not keeps_batch:
            self.audit.add(where, "Reshape", f"a reshape to {target} changes the batch axis" + (
                " (the model's batch size is symbolic; a fixed first entry only fits one batch size)"
                if self.symbolic_batch and target[0] > 0 else
                " (another axis folded into it, as exported attention folds its heads and Swin its windows: "
                "reflrp.from_torch imports such models)"))
            return None
        per_sample = tuple(x.shape[k - 1] if v == 0 else v for k, v in enumerate(target) if k)
        return self.add(where, self.layer(where, "Reshape", lambda: L.Reshape(per_sample)), x)

    def op_Transpose(self, node, where, attrs):
        x = self.tensor(node.input[0], where, "Transpose")
        if x is None:
            return None
        perm = tuple(attrs.get("perm", range(len(x.shape), -1, -1)))
        return self.add(where, self.layer(where, "Transpose", lambda: L.Permute(perm)), x)

    def op_Dropout(self, node, where, attrs):
        x = self.tensor(node.input[0], where, "Dropout")
        training = self.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if training is not None and bool(np.asarray(training)):
            self.audit.add(where, "Dropout", "training_mode=True is not supported")
            return None
        ratio = self.constant(node.input[1]) if len(node.input) > 1 and node.input[1] else None
        if ratio is not None and np.size(ratio) != 1:
            raise ReflrpError(f"the ratio must be a scalar, got shape {np.shape(ratio)}")
        p = float(np.asarray(ratio).reshape(())) if ratio is not None else float(attrs.get("ratio", 0.5))
        return self.add(where, self.layer(where, "Dropout", lambda: L.Dropout(p)), x)

    def op_Identity(self, node, where, attrs):
        return self.tensor(node.input[0], where, "Identity")

    def op_Unsqueeze(self, node, where, attrs):
        return self._squeeze(node, where, attrs, "Unsqueeze")

    def op_Squeeze(self, node, where, attrs):
        return self._squeeze(node, where, attrs, "Squeeze")

    def _squeeze(self, node, where, attrs, what):
        x = self.tensor(node.input[0], where, what)
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1:
            axes = self.constant(node.input[1])
        if x is None or axes is None:
            if x is not None:
                self.audit.add(where, what, "the axes must be constants")
            return None
        full = [None, *x.shape]
        rank = len(full) + (np.size(axes) if what == "Unsqueeze" else 0)  # axes count in the output for Unsqueeze
        axes = _axes(axes, rank, what)
        if 0 in axes:
            self.audit.add(where, what, "the batch axis cannot be squeezed or unsqueezed")
            return None
        if what == "Unsqueeze":
            rest = iter(full)
            full = [1 if k in axes else next(rest) for k in range(rank)]
        else:
            for axis in axes:
                if full[axis] != 1:
                    self.audit.add(where, what, f"axis {axis} has size {full[axis]}, not 1")
                    return None
            full = [v for k, v in enumerate(full) if k not in axes]
        return self.add(where, L.Reshape(tuple(full[1:])), x)


__all__ = ["Operators", "Tensor"]
