"""``from_onnx``: an ONNX model as a reflrp Graph, read with the ``onnx`` package only.

Initializers and ``Constant`` nodes become numpy arrays; small constant subgraphs (the ``Shape``, ``Gather``,
``Unsqueeze``, ``Concat`` chains exporters write for ``x.view(x.size(0), -1)``) are evaluated with the shapes
known from the model's input, so a ``Reshape`` gets a constant target.  Every other node becomes one reflrp
node named after the ONNX node (or its op type and position when it has no name).  A bias added after a
``MatMul`` is folded into the dense layer; SiLU and GELU written as several nodes become one layer.  Anything
without an exact reflrp counterpart is collected by the audit and reported all at once, by node, before anything
is computed.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.files import existing_file
from reflrp.graph import INPUT
from reflrp.importers.common import Audit, Builder, require
from reflrp.importers.onnx_attention import Attention
from reflrp.importers.onnx_blocks import Blocks
from reflrp.importers.onnx_fusions import fusions
from reflrp.importers.onnx_ops import Operators, Tensor
from reflrp.importers.onnx_views import View, Views

MIN_OPSET = 11

#: what each converted operator supports (for the docs)
NOTES = {
    "Add": "two tensors of one shape; a per-feature constant after a layer joins its bias; any other constant is a "
           "Scale with that bias (a position embedding), or, before a softmax, an attention mask that hides nothing "
           "or is causal",
    "AveragePool": "symmetric pads, count_include_pad, ceil_mode (PyTorch's sizes)",
    "BatchNormalization": "inference mode",
    "Cast": "to the dtype of the model input (the identity); float32 inside an RMSNorm pattern of a float64 model",
    "Clip": "min 0 and max 6 (ReLU6) or none (ReLU)",
    "Concat": "any non-batch axis; a constant and a tensor (a class token)",
    "Conv": "1-D and 2-D; pads (asymmetric as an explicit ZeroPad2d), auto_pad, strides, dilations, group",
    "ConvTranspose": "2-D; symmetric pads, output_padding, strides, dilations, group",
    "Div": "by a constant number (a Scale)",
    "Dropout": "inference mode: the identity",
    "Erf": "in GELU's decomposition (Div by sqrt 2, Erf, Add 1, Mul, Mul by 0.5): one GELU",
    "Flatten": "axis=1",
    "Gather": "one constant index along a non-batch axis (x[:, 0]); of rows of a constant table by the model input "
              "when it is token ids (an Embedding)",
    "Gelu": "opset 20; approximate none or tanh",
    "Gemm": "transB, alpha, beta (transA=0)",
    "GlobalAveragePool": "",
    "HardSigmoid": "PyTorch's (alpha 1/6, beta 0.5)",
    "HardSwish": "",
    "Identity": "",
    "InstanceNormalization": "scale and B constant; a GroupNorm with a group per channel and a Scale",
    "LayerNormalization": "Scale and B constant; a LayerNorm and a Scale",
    "LeakyRelu": "",
    "MatMul": "by a constant matrix (a following per-channel Add becomes the bias); of two tensors (attention: a "
              "MatMul, a Softmax's output its gate)",
    "MaxPool": "symmetric pads, ceil_mode (PyTorch's sizes), dilations 1, no indices output",
    "Mul": "two tensors (broadcasting; the gate: a Sigmoid's or HardSigmoid's output, or the activated branch of a "
           "gated linear unit), or a tensor and a constant (Scale); x * Sigmoid(x) is one SiLU",
    "Neg": "a Scale by -1 (rotary embeddings)",
    "Pad": "constant pads (computed from constants too), zeros or edge (replicate), not the batch axis",
    "PRelu": "a constant slope, one or one per channel",
    "Pow": "squares in RMSNorm's decomposition (see Reciprocal)",
    "Reciprocal": "in RMSNorm's decomposition (Pow or Mul, ReduceMean over the last axis, Add eps, Sqrt, Reciprocal "
                  "or Div, Mul; Casts to float32 and back around it): one RMSNorm",
    "ReduceMean": "over H and W (global average pooling); over other non-batch axes, a Mean (over tokens)",
    "ReduceSum": "over the new axis of tensors stacked by Unsqueeze and Concat (torch.stack(ts).sum(0), smp's FPN): "
                 "one Add",
    "Relu": "",
    "Reshape": "constant target (0 and -1 allowed); one that moves or folds the batch axis among other axes makes a "
               "view, taken apart when the batch axis is first again (see Transpose)",
    "Resize": "nearest (asymmetric, floor) and linear (half_pixel, pytorch_half_pixel, align_corners); integer "
              "factors; 1 to 3 spatial axes",
    "Sigmoid": "at the output: explained at the logit; inside, a gate or part of a SiLU",
    "Sqrt": "in RMSNorm's decomposition (see Reciprocal)",
    "Slice": "non-batch axes, constant starts and ends, step 1 (any step on a view: see Transpose)",
    "Softmax": "a non-batch axis; inside a model (attention), causal when a constant causal mask is added before it",
    "Split": "a non-batch axis",
    "Squeeze": "non-batch axes",
    "Tanh": "",
    "Transpose": "any permutation: one that moves the batch axis makes a view of a batch-first tensor (the "
                 "positions its entries come from), rearranged by Transpose, Reshape, Squeeze, Unsqueeze, Flatten, "
                 "Gather, Slice (strided too) and Split until the batch axis is first again (then Narrow, Reshape and "
                 "Permute layers); dense layers, products, biases, activations, softmax and normalisations act on a "
                 "view whose batch is one part of one axis they leave alone (nn.MultiheadAttention's export, Swin's "
                 "windows)",
    "Unsqueeze": "non-batch axes",
}

#: (fewest, most) inputs of each converted operator in the ONNX specification (None: no limit)
ARITY = {"Conv": (2, 3), "ConvTranspose": (2, 3), "Gemm": (2, 3), "MatMul": (2, 2), "Add": (2, 2),
         "BatchNormalization": (5, 5), "Relu": (1, 1), "LeakyRelu": (1, 1), "Sigmoid": (1, 1), "Tanh": (1, 1),
         "Softmax": (1, 1), "MaxPool": (1, 1), "AveragePool": (1, 1), "GlobalAveragePool": (1, 1),
         "ReduceMean": (1, 2), "Resize": (1, 4), "Concat": (1, None), "Flatten": (1, 1),
         "Reshape": (2, 2), "Transpose": (1, 1), "Dropout": (1, 3), "Identity": (1, 1), "Unsqueeze": (1, 2),
         "Squeeze": (1, 2), "Clip": (1, 3), "HardSigmoid": (1, 1), "HardSwish": (1, 1), "Mul": (2, 2),
         "Slice": (1, 5), "Split": (1, 2), "LayerNormalization": (2, 3), "Erf": (1, 1),
         "Gelu": (1, 1), "InstanceNormalization": (3, 3), "PRelu": (2, 2), "Pad": (1, 4), "Div": (2, 2),
         "Gather": (2, 2), "Neg": (1, 1), "Cast": (1, 1)}
#: attributes an operator cannot do without
REQUIRED = {"MaxPool": ("kernel_shape",), "AveragePool": ("kernel_shape",)}
#: errors a malformed node can raise while it is read; reported in the audit with the node's name
_MALFORMED = (IndexError, KeyError, ValueError, TypeError, AttributeError, OverflowError, ZeroDivisionError)
_FOLDABLE = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Slice", "Identity", "Mul", "Div", "Sub",
             "Add", "ConstantOfShape", "Range", "Reshape", "Neg", "Floor", "Ceil", "Equal", "Where", "Transpose",
             "Max", "Min", "Not", "Greater", "Less", "Expand", "Mod", "Sqrt", "Trilu", "Pow", "MatMul", "ScatterND",
             "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "Abs", "Sign", "Tile", "ScatterElements", "CumSum",
             "ReduceSum", "ReduceMax", "ReduceMin", "Size", "Exp", "Log", "Cos", "Sin", "Reciprocal", "Split"}


class _Converter(Views, Attention, Operators, Blocks):
    def __init__(self, onnx, model, dtype):
        self.onnx = onnx
        self.model = model
        self.graph = model.graph
        self.audit = Audit("from_onnx")
        self.builder = Builder()
        self.values = {}  # ONNX value name -> Tensor, ndarray (a constant), or None (failed: already reported)
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        self.from_shape = set()  # constants computed from a Shape node (they hold the batch size self.batch)
        self.masked = {}  # ONNX value name -> "causal" or "none": an attention mask added before a softmax
        self.users = {}
        for node in self.graph.node:
            for name in node.input:
                self.users[name] = self.users.get(name, 0) + 1
        for out in self.graph.output:
            self.users[out.name] = self.users.get(out.name, 0) + 1
        self.dtype = dtype

    # -- helpers ---------------------------------------------------------------------------------------------

    def attributes(self, node):
        helper = self.onnx.helper
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def constant(self, name):
        value = self.values.get(name)
        return value if isinstance(value, np.ndarray) else None

    def tensor(self, name, where, what):
        value = self.values.get(name)
        if isinstance(value, Tensor):
            return value
        if name in self.values and value is None:
            return None  # its producer was reported
        if isinstance(value, View):
            self.audit.add(where, what, f"input {name!r} has the batch axis moved or folded among its other axes (as "
                                        f"exported attention and Swin's windows have), and {what} is not supported "
                                        f"there")
            return None
        self.audit.add(where, what, f"input {name!r} is not a tensor computed from the model input")
        return None

    def param(self, array):
        return None if array is None else np.asarray(array).astype(self.dtype)

    def add(self, where, layer, *inputs):
        if layer is None or any(t is None for t in inputs):
            return None
        try:
            shape = layer.output_shape(*(t.shape for t in inputs))
            name = self.builder.add(where, layer, *(t.name for t in inputs))
        except ReflrpError as error:
            self.audit.add(where, type(layer).__name__, str(error))
            return None
        return Tensor(name, shape)

    def layer(self, where, what, make):
        try:
            return make()
        except ReflrpError as error:
            self.audit.add(where, what, str(error))
            return None

    # -- the walk --------------------------------------------------------------------------------------------

    def convert(self):
        if self.opset is None and not self.graph.node:
            raise ReflrpError("from_onnx: this is not an ONNX model: it has no graph nodes and no opset")
        if self.opset is None or self.opset < MIN_OPSET:
            raise ReflrpError(f"from_onnx: opset {self.opset} is not supported; reflrp reads opset {MIN_OPSET} and "
                              f"later (re-export the model with opset_version >= {MIN_OPSET})")
        numpy_helper = self.onnx.numpy_helper
        for init in self.graph.initializer:
            try:
                self.values[init.name] = numpy_helper.to_array(init)
            except Exception as error:  # a malformed initializer: the onnx package's own error, named here
                raise ReflrpError(f"from_onnx: initializer {init.name!r} cannot be read: {type(error).__name__}: "
                                  f"{error}") from None
            if self.values[init.name].dtype.kind not in "biuf":
                raise ReflrpError(f"from_onnx: initializer {init.name!r} holds {self.values[init.name].dtype} "
                                  f"values, not numbers")
        inputs = [i for i in self.graph.input if i.name not in self.values]
        if len(inputs) != 1:
            raise ReflrpError(f"from_onnx: the model must have exactly one input, it has {len(inputs)}")
        self.input_shape = self._input_shape(inputs[0])
        self.values[inputs[0].name] = Tensor(INPUT, self.input_shape)
        self.file_type = inputs[0].type.tensor_type.elem_type  # the dtype the file computes in (a Cast to it: kept)
        self.ids = self.file_type in (6, 7)  # int32 or int64: token ids, which only an embedding may look up
        if self.ids:  # a language model computes in the dtype of its tables
            tables = [v for v in self.values.values() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
            self.file_type = 11 if tables and tables[0].dtype == np.float64 else 1
        if self.dtype is None:
            self.dtype = {1: np.float32, 11: np.float64}.get(self.file_type, np.float32)
        self.dtype = validate.float_dtype(self.dtype, "from_onnx: dtype")
        constants = {name: value for name, value in self.values.items() if isinstance(value, np.ndarray)}
        for node in self.graph.node:
            if node.op_type == "Constant" and node.output and node.domain in ("", "ai.onnx"):
                try:
                    constants[node.output[0]] = self._constant(node)
                except (ReflrpError, *_MALFORMED):
                    pass  # reported when the walk reaches it
        fused, inner = fusions(self.graph, constants)
        for k, node in enumerate(self.graph.node):
            where = node.name or f"{node.op_type}_{k}"
            if k in inner:  # feeds only a fused pattern's last node
                continue
            if k in fused:
                self.values[node.output[0]] = self.fused(fused[k], where, node.op_type)
                continue
            if node.domain not in ("", "ai.onnx"):
                self.audit.add(where, f"{node.domain}.{node.op_type}", "operators outside the default ONNX domain are "
                                                                      "not supported")
                self._fail(node)
                continue
            try:
                results = self.node(node, where)
            except ReflrpError as error:
                self.audit.add(where, node.op_type, str(error))
                results = None
            except _MALFORMED as error:
                self.audit.add(where, node.op_type, f"the node is malformed: {type(error).__name__}: {error}")
                results = None
            if results is None:
                self._fail(node)
            else:
                for name, value in zip(node.output, results):
                    if name:
                        self.values[name] = value
        outputs = list(self.graph.output)
        if len(outputs) != 1:
            self.audit.add("output", "output", f"the model must have exactly one output, it has {len(outputs)}")
        elif outputs[0].name not in self.values:
            self.audit.add("output", "output", f"no node computes the model output {outputs[0].name!r}")
        output = self.values.get(outputs[0].name) if outputs else None
        if isinstance(output, View):
            self.audit.add("output", "output", f"the output has the batch axis moved or folded among its other axes "
                                               f"(shape {output.index.shape} at batch size {self.batch}); reflrp's "
                                               f"outputs have the batch first")
        elif outputs and not isinstance(output, Tensor) and outputs[0].name in self.values and output is not None:
            self.audit.add("output", "output", "the output is a constant, not computed from the input")
        self.audit.check()
        return self.builder.build(output.name)

    def _fail(self, node):
        for name in node.output:
            if name:
                self.values[name] = None

    def _input_shape(self, value_info):
        dims = value_info.type.tensor_type.shape.dim
        per_sample = []
        for d in list(dims)[1:]:
            if not d.HasField("dim_value"):
                raise ReflrpError(f"from_onnx: input {value_info.name!r} has a symbolic dimension {d.dim_param!r} "
                                  f"beyond the batch axis; export the model with a fixed input size")
            per_sample.append(d.dim_value)
        if len(dims) < 2:
            raise ReflrpError(f"from_onnx: input {value_info.name!r} must be a batch (N, ...)")
        if any(v <= 0 for v in per_sample) or (dims[0].HasField("dim_value") and dims[0].dim_value <= 0):
            raise ReflrpError(f"from_onnx: input {value_info.name!r} has a dimension <= 0: "
                              f"{[d.dim_value if d.HasField('dim_value') else d.dim_param for d in dims]}")
        # a symbolic batch is taken as 2 where shape arithmetic needs a number (so that a reshape or a view tells
        # the batch from an axis of 1); self.from_shape tracks where it went
        self.symbolic_batch = not dims[0].HasField("dim_value")
        self.batch = 2 if self.symbolic_batch else dims[0].dim_value
        return tuple(per_sample)

    def apply_fused(self, fusion, where, what, *sources):
        """The layer of a fused pattern (:mod:`reflrp.importers.onnx_fusions`) on the tensors ``sources``."""
        layer = None if None in sources else self.layer(where, what, partial(fusion.make, sources[0].shape))
        return self.add(where, layer, *sources)

    def node(self, node, where):
        ins = list(node.input)
        if not any(node.output):
            raise ReflrpError("the node has no outputs")
        if self.ids and node.op_type not in ("Shape", "Gather") and any(
                isinstance(self.values.get(name), Tensor) and self.values[name].name == INPUT for name in ins):
            raise ReflrpError("the model input is token ids (integers), which only a Gather from a constant table "
                              "(an embedding) may read")
        if self.on_views(node):
            return self.view_node(node, where)
        if node.op_type == "Constant":
            return [self._constant(node)]
        if all(not name or self.constant(name) is not None for name in ins) and node.op_type in _FOLDABLE:
            if any(name in self.from_shape for name in ins):
                self.from_shape.update(node.output)
            return self._fold(node, where)
        if node.op_type == "Shape" and ins and isinstance(self.values.get(ins[0]), Tensor):
            shape = (self.batch, *self.values[ins[0]].shape)
            attrs = self.attributes(node)
            self.from_shape.update(node.output)
            return [np.array(shape[attrs.get("start", 0):attrs.get("end", len(shape))], dtype=np.int64)]
        handler = getattr(self, f"op_{node.op_type}", None)
        if handler is None:
            self.audit.add(where, node.op_type, "operator not supported")
            return None
        fewest, most = ARITY.get(node.op_type, (0, None))
        if len(ins) < fewest or (most is not None and len(ins) > most):
            expected = f"{fewest}" if fewest == most else f"{fewest} to {most or 'any number of'}"
            raise ReflrpError(f"the node has {len(ins)} inputs; {node.op_type} takes {expected}")
        attrs = self.attributes(node)
        missing = [a for a in REQUIRED.get(node.op_type, ()) if a not in attrs]
        if missing:
            raise ReflrpError(f"the required attribute {missing[0]!r} is missing")
        result = handler(node, where, attrs)
        return None if result is None else result if isinstance(result, list) else [result]

    def _constant(self, node):
        attrs = self.attributes(node)
        if "value" in attrs:
            return self.onnx.numpy_helper.to_array(attrs["value"])
        for key in ("value_float", "value_int"):
            if key in attrs:
                return np.array(attrs[key])
        for key in ("value_floats", "value_ints"):
            if key in attrs:
                return np.array(list(attrs[key]))
        raise ReflrpError("Constant: only value, value_float(s) and value_int(s) are supported")

    def _fold(self, node, where):
        """Evaluate a node whose inputs are all constants (shape arithmetic) with the ONNX reference evaluator."""
        from onnx.reference import ReferenceEvaluator

        inputs = [name for name in node.input if name]
        graph = self.onnx.helper.make_graph(
            [node], "fold", [self.onnx.helper.make_tensor_value_info(n, 0, None) for n in inputs],
            [self.onnx.helper.make_tensor_value_info(n, 0, None) for n in node.output if n])
        model = self.onnx.helper.make_model(graph, opset_imports=[self.onnx.helper.make_opsetid("", self.opset)])
        try:
            results = ReferenceEvaluator(model).run(None, {n: self.constant(n) for n in inputs})
        except Exception as error:
            raise ReflrpError(f"cannot evaluate its constant inputs: {type(error).__name__}: {error}") from None
        return [np.asarray(r) for r in results]


def from_onnx(model, *, dtype=None):
    """An ONNX model (a path or an ``onnx.ModelProto``) as a reflrp :class:`~reflrp.Graph`.

    Parameters
    ----------
    model : str, os.PathLike or onnx.ModelProto
    dtype : float32 or float64, optional
        The graph's dtype; default: the model input's element type.

    Raises
    ------
    ReflrpError
        Listing every unsupported operator, attribute or value by node, before anything is computed.
    """
    onnx = require("onnx", "onnx", "from_onnx")
    require("onnx.reference", "onnx", "from_onnx")
    model = _proto(onnx, model)
    dtype = None if dtype is None else validate.float_dtype(dtype, "from_onnx: dtype")
    return _Converter(onnx, model, dtype).convert()


def _proto(onnx, model):
    if isinstance(model, onnx.ModelProto):
        return model
    where = existing_file(model, "from_onnx: model file")
    try:
        return onnx.load(where)
    except Exception as error:
        raise ReflrpError(f"from_onnx: {where!r} is not a readable ONNX model: {type(error).__name__}: "
                          f"{str(error)[:200]}") from None


#: What ``reflrp import-check`` and ``reflrp info`` say about a file PyTorch exported (docs/import.md).
PYTORCH_NOTE = ("PyTorch's ONNX exporters fold each BatchNorm into the convolution before it; reflrp.from_torch keeps "
                "BatchNorm as a layer of its own, which rules treat differently. To explain the PyTorch model as this "
                "file describes it: reflrp.canonize.merge_batchnorm(reflrp.from_torch(module, x))")


def read(path):
    """``(model, metadata)`` for :data:`reflrp.io.LOADERS`: the producer, and for PyTorch's files a note on their
    folded BatchNorms."""
    onnx = require("onnx", "onnx", "from_onnx")
    proto = _proto(onnx, path)
    producer = " ".join(filter(None, (proto.producer_name, proto.producer_version)))
    metadata = {"format": "onnx", **({"producer": producer} if producer else {})}
    if proto.producer_name == "pytorch":
        metadata["note"] = PYTORCH_NOTE
    return from_onnx(proto), metadata


def supported():
    """``[(operator, note)]``: what :func:`from_onnx` converts (for the docs)."""

    converted = {name[3:] for kind in (Attention, Operators, Blocks) for name in dir(kind) if name.startswith("op_")}
    missing = converted - NOTES.keys()
    if missing:  # every converted operator is documented, and so are those only fused patterns read (Erf, Pow, ...)
        raise ReflrpError(f"supported: no note for {sorted(missing)}")
    return [(op, NOTES[op]) for op in sorted(NOTES)] + [("Constant, Shape and constant subgraphs",
                                              "evaluated (shape arithmetic feeding Reshape)")]


__all__ = ["from_onnx", "read", "supported"]
