"""from_onnx: models exported by both of torch's ONNX exporters (opsets 11 to 20) and hand-built ONNX graphs for
every supported operator reproduce onnxruntime's outputs; everything unsupported is reported by node."""

import re
import warnings

import numpy as np

from extras import need

need("onnx", "onnxruntime", "onnxscript", "torch")

import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import reflrp
from reflrp import cli
from reflrp.errors import ReflrpError
from reflrp.importers import ImportAuditError, from_onnx

from torch_nets import VGG16, UNet, fixed_weights, resnet18

EXPORTERS = {
    "torchscript opset 11": {"dynamo": False, "opset_version": 11},
    "torchscript opset 17": {"dynamo": False, "opset_version": 17},
    "dynamo": {"dynamo": True, "verbose": False},
}


def export(module, x, path, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.from_numpy(x),), str(path), **options)
    return path


def runtime(model_or_path, x):
    source = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    session = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def same(got, expected, rtol):
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= rtol * max(np.abs(expected).max(), 1e-30)


@pytest.mark.parametrize("exporter", sorted(EXPORTERS))
@pytest.mark.parametrize("name", ["unet", "unet-upsample", "resnet18"])
def test_exported_models_reproduce_onnxruntime(name, exporter, tmp_path):
    module = {"unet": lambda: UNet(), "unet-upsample": lambda: UNet(upsample=True), "resnet18": resnet18}[name]()
    module = fixed_weights(module.double()).float().eval()
    x = np.random.default_rng(0).uniform(size=(1, 1, 16, 16) if "unet" in name else (1, 3, 64, 64)).astype(np.float32)
    path = export(module, x, tmp_path / "m.onnx", **EXPORTERS[exporter])
    graph = from_onnx(path)
    same(graph(x), runtime(path, x), 1e-5)
    e = reflrp.explain(graph.astype(np.float64), x.astype(np.float64), 1, reflrp.composites.EpsilonPlus())
    assert np.abs(e.ledger.closure(relative=True)).max() <= 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["torchscript opset 17", "dynamo"])
def test_vgg16_exports_reproduce_onnxruntime(exporter, tmp_path):
    module = fixed_weights(VGG16().double()).float().eval()
    x = np.random.default_rng(1).uniform(size=(1, 3, 224, 224)).astype(np.float32)
    path = export(module, x, tmp_path / "vgg16.onnx", **EXPORTERS[exporter])
    same(from_onnx(path)(x), runtime(path, x), 1e-5)


# -- hand-built graphs: one per operator and attribute variant ------------------------------------------------

_TABLES = np.random.default_rng(7)  # draws the arrays of the case tables below, once, as the module loads


def weights(*shape, rng=_TABLES):
    return rng.normal(size=shape).astype(np.float32)


def model(nodes, in_shape, initializers=(), opset=17):
    """A single-input, single-output model; the last node's first output is the model output."""
    graph = helper.make_graph(
        nodes, "test", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
        [numpy_helper.from_array(value, name) for name, value in initializers])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def node(op, inputs, output="y", name=None, **attrs):
    return helper.make_node(op, inputs, [output], name=name or f"the_{op.lower()}", **attrs)


CASES = {
    "conv same_upper stride 2": ([node("Conv", ["x", "w", "b"], auto_pad="SAME_UPPER", strides=[2, 2])],
                                 (2, 3, 7, 6), [("w", weights(4, 3, 3, 3)), ("b", weights(4))]),
    "conv asymmetric pads, groups, dilation": ([node("Conv", ["x", "w"], pads=[1, 0, 2, 1], group=3,
                                                     dilations=[2, 1])], (2, 3, 7, 6), [("w", weights(6, 1, 3, 2))]),
    "conv1d": ([node("Conv", ["x", "w", "b"], pads=[1, 1], strides=[2])], (2, 3, 9),
               [("w", weights(4, 3, 3)), ("b", weights(4))]),
    "conv transpose": ([node("ConvTranspose", ["x", "w", "b"], strides=[2, 2], pads=[1, 1, 1, 1],
                             output_padding=[1, 1])], (2, 4, 5, 5), [("w", weights(4, 3, 3, 3)), ("b", weights(3))]),
    "gemm": ([node("Gemm", ["x", "w", "b"], alpha=0.5, beta=2.0)], (2, 5), [("w", weights(5, 3)), ("b", weights(3))]),
    "matmul + add (a dense layer)": ([node("MatMul", ["x", "w"], "h"), node("Add", ["h", "b"])], (2, 5),
                                     [("w", weights(5, 3)), ("b", weights(3))]),
    "conv + add per channel": ([node("Conv", ["x", "w"], "h"), node("Add", ["h", "b"])], (2, 3, 5, 5),
                               [("w", weights(4, 3, 1, 1)), ("b", weights(1, 4, 1, 1))]),
    "batch normalization": ([node("BatchNormalization", ["x", "s", "b", "m", "v"], epsilon=1e-3)], (2, 3, 4, 4),
                            [("s", weights(3)), ("b", weights(3)), ("m", weights(3)),
                             ("v", _TABLES.uniform(0.5, 2, 3).astype(np.float32))]),
    "relu, leaky relu, tanh": ([node("Relu", ["x"], "a"), node("LeakyRelu", ["x"], "b", alpha=0.2),
                                node("Add", ["a", "b"], "c"), node("Tanh", ["c"])], (2, 3, 4), []),
    "max pool with pads": ([node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
                           (2, 3, 7, 7), []),
    "average pool": ([node("AveragePool", ["x"], kernel_shape=[2, 3], strides=[1, 2], pads=[1, 1, 1, 1],
                           count_include_pad=1)], (2, 3, 7, 7), []),
    "global average pool": ([node("GlobalAveragePool", ["x"])], (2, 3, 5, 4), []),
    "reduce mean, opset 18": ([node("ReduceMean", ["x", "axes"], keepdims=0)], (2, 3, 5, 4),
                    [("axes", np.array([2, 3], np.int64))]),
    "resize nearest": ([node("Resize", ["x", "", "s"], mode="nearest", coordinate_transformation_mode="asymmetric",
                             nearest_mode="floor")], (2, 3, 3, 4), [("s", np.array([1, 1, 2, 3], np.float32))]),
    "resize linear by sizes": ([node("Resize", ["x", "", "", "z"], mode="linear",
                                     coordinate_transformation_mode="half_pixel")], (2, 3, 3, 4),
                               [("z", np.array([2, 3, 6, 8], np.int64))]),
    "resize linear align corners": ([node("Resize", ["x", "", "s"], mode="linear",
                                          coordinate_transformation_mode="align_corners")], (2, 3, 3, 4),
                                    [("s", np.array([1, 1, 2, 2], np.float32))]),
    "concat and flatten": ([node("Relu", ["x"], "a"), node("Concat", ["a", "x"], "c", axis=-3),
                            node("Flatten", ["c"], axis=1)], (2, 3, 2, 2), []),
    "reshape with 0 and -1": ([node("Reshape", ["x", "t"])], (2, 3, 4, 2), [("t", np.array([0, 3, -1], np.int64))]),
    "shape arithmetic into reshape": ([node("Shape", ["x"], "s"), node("Gather", ["s", "i"], "n", axis=0),
                                       node("Unsqueeze", ["n", "a"], "u"), node("Concat", ["u", "m"], "t", axis=0),
                                       node("Reshape", ["x", "t"])], (2, 3, 4),
                                      [("i", np.array(0, np.int64)), ("a", np.array([0], np.int64)),
                                       ("m", np.array([-1], np.int64))]),
    "constant node": ([helper.make_node("Constant", [], ["t"], value=numpy_helper.from_array(
        np.array([2, 6], np.int64))), node("Reshape", ["x", "t"])], (2, 3, 2), []),
    "transpose, squeeze, unsqueeze": ([node("Transpose", ["x"], "a", perm=[0, 2, 1]),
                                       node("Unsqueeze", ["a", "ax"], "b"), node("Squeeze", ["b", "ax"])],
                                      (2, 3, 4), [("ax", np.array([3], np.int64))]),
    "dropout and identity": ([node("Dropout", ["x"], "a"), node("Identity", ["a"])], (2, 3), []),
    "sigmoid at the end": ([node("Sigmoid", ["x"])], (2, 3), []),
    "softmax at the end": ([node("Softmax", ["x"], axis=1)], (2, 3, 4), []),
    "opset 11 softmax": ([node("Softmax", ["x"], axis=1)], (2, 5), []),
    "clip as relu6 and as relu": ([node("Clip", ["x", "zero", "six"], "a"), node("Clip", ["x", "zero"], "b", "relu"),
                                   node("Add", ["a", "b"])], (2, 3, 4),
                                  [("zero", np.array(0, np.float32)), ("six", np.array(6, np.float32))]),
    "hard sigmoid gate times hard swish": ([node("HardSigmoid", ["x"], "g", alpha=1 / 6, beta=0.5),
                                            node("HardSwish", ["x"], "h"), node("Mul", ["g", "h"])], (2, 3, 4), []),
    "mul broadcasting, and by a constant": ([node("GlobalAveragePool", ["x"], "p"), node("Mul", ["x", "p"], "m"),
                                             node("Mul", ["s", "m"], name="scale")], (2, 3, 4, 5),
                                            [("s", weights(3, 1, 1))]),
    "silu as x * sigmoid(x)": ([node("Sigmoid", ["x"], "s"), node("Mul", ["x", "s"])], (2, 3, 4), []),
    "gelu as erf": ([node("Div", ["x", "root"], "d"), node("Erf", ["d"], "e"), node("Add", ["e", "one"], "a"),
                     node("Mul", ["x", "a"], "m"), node("Mul", ["m", "half"], name="gelu")], (2, 3, 4),
                    [("root", np.array(np.sqrt(2), np.float32)), ("one", np.array(1, np.float32)),
                     ("half", np.array(0.5, np.float32))]),
    "slice two axes, negative ends": ([node("Slice", ["x", "s", "e", "ax"])], (2, 5, 6),
                                      [("s", np.array([1, 2], np.int64)), ("e", np.array([-1, 99], np.int64)),
                                       ("ax", np.array([1, -1], np.int64))]),
    "split into unequal parts": ([helper.make_node("Split", ["x", "sizes"], ["a", "b"], axis=1),
                                  node("Concat", ["b", "a"], axis=1)], (2, 5, 3), [("sizes", np.array([2, 3]))]),
    "instance normalization, prelu per channel and shared": (
        [node("InstanceNormalization", ["x", "g", "b"], "n", epsilon=1e-3), node("PRelu", ["n", "c"], "p"),
         node("PRelu", ["x", "one"], "q", name="shared"), node("Add", ["p", "q"])], (2, 3, 4, 5),
        [("g", weights(3)), ("b", weights(3)), ("c", weights(3, 1, 1)), ("one", weights(1))]),
    "layer normalization over two axes": ([node("LayerNormalization", ["x", "g", "b"], axis=-2, epsilon=1e-3)],
                                          (2, 3, 4, 5), [("g", weights(4, 5)), ("b", weights(4, 5))]),
    "max and average pool, ceil mode": ([node("MaxPool", ["x"], "a", kernel_shape=[3, 3], strides=[2, 2],
                                              pads=[1, 1, 1, 1], ceil_mode=1),
                                         node("AveragePool", ["x"], "b", kernel_shape=[3, 3], strides=[2, 2],
                                              pads=[1, 1, 1, 1], ceil_mode=1), node("Add", ["a", "b"])],
                                        (2, 3, 8, 8), []),
    "patch tokens, position embedding, class token, attention, first token": (
        [node("MatMul", ["x", "w"], "h", name="patches"), node("Add", ["h", "pos"], "p", name="position"),
         node("Shape", ["x"], "xs"), node("Gather", ["xs", "zero"], "n", axis=0, name="batch"),
         node("Unsqueeze", ["n", "first_axis"], "nn"), node("Concat", ["nn", "rest"], "size", axis=0, name="size"),
         node("Expand", ["cls", "size"], "tokens"), node("Concat", ["tokens", "p"], "t", axis=1),
         node("Transpose", ["t"], "kt", perm=[0, 2, 1]),
         node("MatMul", ["t", "kt"], "s", name="scores"), node("Div", ["s", "root"], "d"),
         node("Add", ["d", "mask"], "m", name="mask"), node("Softmax", ["m"], "a", axis=-1),
         node("MatMul", ["a", "t"], "c", name="context"), node("Gather", ["c", "zero"], "first", axis=1),
         node("Gemm", ["first", "head"], transB=1)], (2, 3, 5),
        [("w", weights(5, 4)), ("pos", weights(3, 4)), ("cls", weights(1, 1, 4)), ("root", np.array(2, np.float32)),
         ("mask", np.triu(np.full((4, 4), -np.inf, np.float32), 1)), ("zero", np.array(0, np.int64)),
         ("head", weights(2, 4)), ("first_axis", np.array([0], np.int64)), ("rest", np.array([1, 4], np.int64))]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_supported_operator_reproduces_onnxruntime(name, rng):
    nodes, shape, initializers = CASES[name]
    m = model(nodes, shape, initializers, opset=11 if "opset 11" in name else 18 if "opset 18" in name else 17)
    x = rng.uniform(-1, 1, size=shape).astype(np.float32)
    graph = from_onnx(m)
    same(graph(x), runtime(m, x), 1e-5)
    same(from_onnx(m, dtype=np.float64)(x.astype(np.float64)), runtime(m, x).astype(np.float64), 1e-5)


def test_attention_from_onnx_is_taken_apart_and_explained(rng):
    nodes, shape, initializers = CASES["patch tokens, position embedding, class token, attention, first token"]
    graph = from_onnx(model(nodes, shape, initializers), dtype=np.float64)
    kinds = {n.name: type(n.layer).__name__ for n in graph.nodes}
    assert kinds["position"] == "Scale" and kinds["the_concat"] == "ConstantConcat" and kinds["scores"] == "MatMul"
    assert graph["context"].layer.gate == 0 and graph["the_softmax"].layer.causal  # the -inf mask became causal
    e = reflrp.explain(graph, rng.uniform(-1, 1, size=shape), 1, reflrp.composites.AttnLRP())
    assert np.abs(e.ledger.closure(relative=True)).max() <= 1e-12


def test_everything_unsupported_is_reported_at_once_by_node(rng):
    nodes = [
        node("Resize", ["x", "", "s"], "a", mode="cubic"),
        node("Softmax", ["x"], "b", axis=0),
        node("Add", ["b", "c"], "d"),
        node("Gather", ["d", "i"], "e", axis=1),
        node("MaxPool", ["x"], "f", kernel_shape=[2, 2], dilations=[2, 2]),
        node("Add", ["f", "f"], "y"),
    ]
    nodes = [helper.make_node(n.op_type, n.input, n.output, name=f"n{k}", **{a.name: helper.get_attribute_value(a)
                                                                            for a in n.attribute})
             for k, n in enumerate(nodes)]
    m = model(nodes, (1, 3, 4, 4), [("s", np.array([1, 1, 2, 2], np.float32)), ("c", weights(3, 4, 4, rng=rng)),
                                    ("i", np.array([0], np.int64))])
    with pytest.raises(ImportAuditError) as error:
        from_onnx(m)
    text = str(error.value)
    for expected in ["n0 (Resize): mode='cubic'", "n1 (Softmax): a softmax over the batch axis is not supported",
                     "n4 (MaxPool): dilations=[2, 2] is not supported"]:
        assert expected in text, text
    assert len(error.value.findings) == 3  # n2, n3 and n5 follow reported nodes: not reported again


def test_batch_axis_moved_or_folded_is_taken_apart_or_refused_by_name(rng):
    """A transpose that moves the batch axis and a reshape that folds axes into it, with dense layers, biases and
    activations in between, each undone (against onnxruntime); what acts on the axis that holds the samples, what
    mixes the samples, and an output whose batch axis is not first are refused by name."""
    shape = (3, 2, 6, 8)
    folded = [node("Reshape", ["x", "fold"], "f", name="fold"), node("Transpose", ["f"], "t", perm=[0, 2, 1]),
              node("MatMul", ["t", "w"], "m"), node("Add", ["b", "m"], "a"), node("Relu", ["a"], "r"),
              node("Reshape", ["r", "unfold"], name="unfold")]
    constants = [("fold", np.array([-1, 6, 8], np.int64)), ("unfold", np.array([3, 2, 8, 5], np.int64)),
                 ("w", weights(6, 5, rng=rng)), ("b", weights(5, rng=rng))]
    moved = [node("Transpose", ["x"], "t", perm=[2, 0, 1, 3]), node("Relu", ["t"], "r"),
             node("Gather", ["r", "i"], "g", axis=0), node("Softmax", ["g"], axis=-1)]
    x = rng.normal(size=shape).astype(np.float32)
    for nodes, initializers in ((folded, constants), (moved, [("i", np.array(4, np.int64))])):
        m = model(nodes, shape, initializers)
        same(from_onnx(m)(x), runtime(m, x), 1e-6)
    over_samples = [folded[0], node("Softmax", ["f"], "s", axis=0, name="across"), node("Reshape", ["s", "back"])]
    with pytest.raises(ImportAuditError, match=r"across \(Softmax\): it acts on axis 0, which holds the samples"):
        from_onnx(model(over_samples, shape, [("fold", constants[0][1]), ("back", np.array([3, 2, 6, 8]))]))
    mixed = [node("Reshape", ["x", "rows"], "f"), node("Relu", ["f"], "r", name="mixing"),
             node("Reshape", ["r", "back"])]
    with pytest.raises(ImportAuditError, match=r"mixing \(Relu\): its input of shape \(4, 72\) .* mixes the samples"):
        from_onnx(model(mixed, shape, [("rows", np.array([4, 72])), ("back", np.array([3, 2, 6, 8]))]))
    with pytest.raises(ImportAuditError, match="the output has the batch axis moved or folded among its other axes"):
        from_onnx(model(moved[:1], shape))


def test_models_that_cannot_be_read_say_why(tmp_path):
    with pytest.raises(ReflrpError, match="opset 9 is not supported; reflrp reads opset 11"):
        from_onnx(model([node("Relu", ["x"])], (1, 3), opset=9))
    with pytest.raises(ReflrpError, match="symbolic dimension 'h' beyond the batch axis"):
        from_onnx(model([node("Relu", ["x"])], ("n", "h")))
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ReflrpError, match="is not a readable ONNX model"):
        from_onnx(tmp_path / "bad.onnx")
    with pytest.raises(ReflrpError, match="does not exist"):
        from_onnx(tmp_path / "absent.onnx")


def test_the_cli_reads_onnx_files_and_checks_them(tmp_path, capsys, rng):
    m = model(*CASES["conv same_upper stride 2"][:1], (1, 3, 7, 6), CASES["conv same_upper stride 2"][2])
    onnx.save(m, tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", rng.uniform(size=(1, 3, 7, 6)).astype(np.float32))
    assert cli.main(["explain", str(tmp_path / "m.onnx"), str(tmp_path / "x.npy"), "--target", "0,1,1"]) == 0
    assert "closure" in capsys.readouterr().out
    assert cli.main(["import-check", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert "the_conv.pad: ZeroPad2d" in out and "the_conv: Conv2d" in out and "imports: 2 nodes" in out
    bad = model([node("Resize", ["x", "", "s"], mode="cubic")], (1, 3, 4, 4), [("s", np.array([1, 1, 2, 2],
                                                                                               np.float32))])
    onnx.save(bad, tmp_path / "bad.onnx")
    assert cli.main(["import-check", str(tmp_path / "bad.onnx")]) == 1
    captured = capsys.readouterr()
    assert "the_resize (Resize): mode='cubic'" in captured.out and captured.err.count("\n") == 1


MALFORMED = {  # (nodes, input shape, initializers, what the error says)
    "conv with one input": ([node("Conv", ["x"])], (1, 1, 5, 5), [], "the_conv (Conv): the node has 1 inputs; "
                                                                      "Conv takes 2 to 3"),
    "relu without inputs": ([node("Relu", [])], (1, 3), [], "Relu takes 1"),
    "add with three inputs": ([node("Add", ["x", "x", "x"])], (1, 3), [], "Add takes 2"),
    "batchnorm with 3 inputs": ([node("BatchNormalization", ["x", "s", "b"])], (1, 3, 2, 2),
                                [("s", weights(3)), ("b", weights(3))], "BatchNormalization takes 5"),
    "max pool without kernel": ([node("MaxPool", ["x"])], (1, 1, 4, 4), [], "'kernel_shape' is missing"),
    "conv pads of the wrong length": ([node("Conv", ["x", "w"], pads=[1, 1, 1])], (1, 1, 5, 5),
                                      [("w", weights(2, 1, 3, 3))], "pads [1, 1, 1] must have 4 entries"),
    "2-D conv weight": ([node("Conv", ["x", "w"])], (1, 1, 5, 5), [("w", weights(2, 1))], "the weight has 2 axes"),
    "gemm bias of the wrong length": ([node("Gemm", ["x", "w", "c"])], (1, 4), [("w", weights(4, 3)),
                                                                              ("c", weights(5))],
                                      "C of shape (5,) is not one bias per output (3)"),
    "resize by nan": ([node("Resize", ["x", "", "s"])], (1, 1, 4, 4),
                      [("s", np.array([1, 1, np.nan, np.nan], np.float32))], "only integer spatial scale factors"),
    "resize changing channels": ([node("Resize", ["x", "", "", "z"], mode="linear")], (2, 1, 4, 4),
                                 [("z", np.array([2, 3, 8, 8], np.int64))], "change more than the spatial axes"),
    "dropout ratio vector": ([node("Dropout", ["x", "r"])], (1, 3), [("r", np.array([0.1, 0.2], np.float32))],
                             "the ratio must be a scalar"),
    "reshape with two -1": ([node("Reshape", ["x", "t"])], (2, 6), [("t", np.array([-1, -1], np.int64))],
                            "at most one -1"),
    "concat axis out of range": ([node("Concat", ["x", "x"], axis=9)], (1, 3), [], "axis 9 is out of range"),
    "softmax axis out of range": ([node("Softmax", ["x"], axis=5)], (1, 3), [], "axis 5 is out of range"),
    "unsqueeze axis twice": ([node("Unsqueeze", ["x", "a"])], (1, 3), [("a", np.array([1, 1], np.int64))],
                             "name an axis twice"),
    "squeeze axis out of range": ([node("Squeeze", ["x", "a"])], (1, 3, 1), [("a", np.array([7], np.int64))],
                                  "axis 7 is out of range"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_nodes_are_reported_by_name(name):
    nodes, shape, initializers, message = MALFORMED[name]
    with pytest.raises(ImportAuditError, match=re.escape(message)):
        from_onnx(model(nodes, shape, initializers))


def test_malformed_models_are_refused_with_the_reason(rng):
    with pytest.raises(ReflrpError, match="this is not an ONNX model: it has no graph nodes and no opset"):
        from_onnx(onnx.ModelProto())
    m = model([node("Relu", ["x"])], (1, 3))
    m.graph.output[0].name = "zzz"
    with pytest.raises(ImportAuditError, match="no node computes the model output 'zzz'"):
        from_onnx(m)
    with pytest.raises(ReflrpError, match="has a dimension <= 0"):
        from_onnx(model([node("Relu", ["x"])], (1, 0)))
    m = model([node("Gemm", ["x", "w"])], (1, 2), [("w", weights(2, 2, rng=rng))])
    m.graph.initializer[0].raw_data = b"\x00" * 3  # too short for 2 x 2 floats
    with pytest.raises(ReflrpError, match="initializer 'w' cannot be read"):
        from_onnx(m)


def test_negative_unsqueeze_axes_count_in_the_output(rng):
    """ONNX normalises Unsqueeze's axes against the output's rank: [-1, -2] on (N, 3) gives (N, 3, 1, 1)."""
    m = model([node("Unsqueeze", ["x", "a"])], (2, 3), [("a", np.array([-1, -2], np.int64))], opset=13)
    x = rng.uniform(size=(2, 3)).astype(np.float32)
    same(from_onnx(m)(x), runtime(m, x), 0)
    assert from_onnx(m)(x).shape == (2, 3, 1, 1)


def test_a_fixed_batch_in_a_reshape_is_refused_when_the_batch_is_symbolic(rng):
    """With a symbolic batch a constant target [1, -1] fits only batch 1; from a Shape node it is the batch."""
    fixed = model([node("Reshape", ["x", "t"])], ("N", 2, 3), [("t", np.array([1, -1], np.int64))])
    with pytest.raises(ImportAuditError, match=r"a constant target \[1, -1\] that moves the batch axis fits one batch "
                                               r"size only \(the model's batch size is symbolic\)"):
        from_onnx(fixed)
    nodes, _, initializers = CASES["shape arithmetic into reshape"]
    dynamic = model(nodes, ("N", 3, 4), initializers)
    x = rng.uniform(size=(3, 3, 4)).astype(np.float32)
    same(from_onnx(dynamic)(x), runtime(dynamic, x), 1e-6)


@pytest.mark.parametrize("exporter", ["torchscript opset 17", "dynamo"])
def test_pytorch_exports_fold_batchnorm_and_merging_after_from_torch_agrees(exporter, tmp_path, capsys):
    """Both exporters fold BatchNorm into the convolution: the file explains like the merged PyTorch import, not
    like the import that keeps BatchNorm, and import-check says so with the one-line fix."""
    from reflrp.canonize import merge_batchnorm

    module = fixed_weights(resnet18().double()).eval()
    x = np.random.default_rng(5).uniform(size=(1, 3, 32, 32))
    path = export(module, x, tmp_path / "m.onnx", **EXPORTERS[exporter])
    onnx_graph = from_onnx(path)
    kept = reflrp.from_torch(module, x)
    rules = reflrp.composites.EpsilonPlus()  # z+ on a convolution, epsilon on a BatchNorm kept on its own
    onnx_map, kept_map, merged_map = (reflrp.explain(g, x, 1, rules).relevance for g in (onnx_graph, kept,
                                                                                          merge_batchnorm(kept)))
    scale = np.abs(onnx_map).max()
    assert np.abs(merged_map - onnx_map).max() <= 1e-9 * scale
    assert np.abs(kept_map - onnx_map).max() > 0.1 * scale
    assert cli.main(["import-check", str(path)]) == 0
    assert "note: PyTorch's ONNX exporters fold each BatchNorm" in capsys.readouterr().out


def test_activations_written_as_several_nodes_become_one_layer_and_gates_are_marked():
    def kinds(name):
        nodes, shape, initializers = CASES[name]
        return [(type(n.layer).__name__, getattr(n.layer, "gate", None)) for n in from_onnx(
            model(nodes, shape, initializers)).nodes]

    assert kinds("silu as x * sigmoid(x)") == [("SiLU", None)]
    assert kinds("gelu as erf") == [("GELU", None)]
    assert kinds("hard sigmoid gate times hard swish") == [("Hardsigmoid", None), ("Hardswish", None),
                                                           ("Multiply", 0)]
    assert kinds("mul broadcasting, and by a constant") == [("AdaptiveAvgPool2d", None), ("Multiply", None),
                                                            ("Scale", None)]
    # an inner value used elsewhere too: no fusion, and Erf alone is not a layer
    nodes, shape, initializers = CASES["gelu as erf"]
    with pytest.raises(ImportAuditError, match="the_erf \\(Erf\\): operator not supported"):
        from_onnx(model([*nodes[:-1], node("Mul", ["m", "half"], "y1", name="gelu"), node("Add", ["y1", "e"])],
                        shape, initializers))


class Modern(torch.nn.Module):
    """A block of what newer CNNs hold, without BatchNorm (which exporters fold)."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.stem, self.act = nn.Conv2d(3, 8, 3, padding=1), nn.Hardswish()
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.reduce, self.expand = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)
        self.norm, self.fc = nn.LayerNorm(8), nn.Linear(8, 8)
        self.scale = nn.Parameter(torch.rand(8, 1, 1) + 0.5)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = self.pool(torch.nn.functional.relu6(self.act(self.stem(x))))
        gate = torch.sigmoid(self.expand(torch.nn.functional.silu(self.reduce(h.mean((2, 3), keepdim=True)))))
        h = h * gate
        t = torch.nn.functional.gelu(self.fc(self.norm(h.permute(0, 2, 3, 1)))).permute(0, 3, 1, 2)
        h = h + self.scale * t
        a, b = h.chunk(2, dim=1)
        return self.head(torch.cat([b, a[:, :, 1:, :]], dim=2).mean((2, 3)))


@pytest.mark.parametrize("exporter", ["torchscript opset 17", "dynamo"])
def test_a_modern_block_exported_to_onnx_explains_as_its_pytorch_import_does(exporter, tmp_path):
    torch.manual_seed(3)
    module = Modern().double().eval()
    x = np.random.default_rng(2).uniform(size=(1, 3, 11, 11))
    path = export(module.float(), x.astype(np.float32), tmp_path / "m.onnx", **EXPORTERS[exporter])
    onnx_graph = from_onnx(path, dtype=np.float64)
    torch_graph = reflrp.from_torch(module.double(), torch.from_numpy(x))
    assert [type(n.layer).__name__ for n in onnx_graph.nodes].count("GELU") == 1
    same(onnx_graph(x), torch_graph(x), 1e-6)  # the ONNX file holds float32 parameters
    rules = reflrp.composites.EpsilonPlus()
    from_file = reflrp.explain(onnx_graph, x, 2, rules)
    traced = reflrp.explain(torch_graph, x, 2, rules)
    assert np.abs(from_file.ledger.closure(relative=True)).max() <= 1e-12
    same(from_file.relevance, traced.relevance, 1e-5)


def test_pads_computed_from_constants_become_a_pad_layer(rng):
    """PyTorch exports a padding whose widths are computed from constants (EfficientNet-PyTorch's static padding,
    MONAI's replicated odd edges) as a subgraph of Slice, Transpose, Reshape and Cast feeding Pad: the subgraph is
    evaluated, the Pad read as zeros or edge copies."""
    pads = numpy_helper.from_array(np.array([[0, 0, 1, 2], [0, 0, 0, 1]], np.int64).T.copy(), "p")  # per axis
    nodes = [node("Transpose", ["p"], "pt", name="t", perm=[1, 0]), node("Reshape", ["pt", "shape"], "flat", name="r"),
             node("Pad", ["x", "flat"], "a", name="zeros"), node("Pad", ["a", "flat"], "y", name="edge", mode="edge")]
    graph = helper.make_graph(
        nodes, "pads", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3, 4, 5])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [pads, numpy_helper.from_array(np.array([-1], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    got = from_onnx(model)
    assert [type(n.layer).__name__ for n in got.nodes] == ["Pad", "Pad"]
    assert [n.layer.mode for n in got.nodes] == ["constant", "replicate"]
    same(got(x), runtime(model, x), 1e-6)


def test_views_become_narrow_reshape_and_permute_layers_that_take_exactly_their_entries():
    """reflrp.importers.onnx_views._as_layers on strided boxes of random arrays, transposed and reshaped: the layers
    it makes take exactly those entries; entries in no such order are refused (None)."""
    from reflrp.importers.onnx_views import _as_layers

    rng = np.random.default_rng(7)
    for _ in range(200):
        shape = tuple(int(v) for v in rng.integers(1, 6, size=rng.integers(1, 5)))
        positions = np.arange(int(np.prod(shape))).reshape(shape)
        cut = []
        for n in shape:  # a step divides the axis's length (PatchMerging pads to even sizes first)
            step = 2 if n % 2 == 0 and rng.random() < 0.5 else 1
            start = int(rng.integers(0, n))
            cut.append(slice(start, None if rng.random() < 0.5 else int(rng.integers(start + 1, n + 1)), step))
        taken = np.transpose(positions[tuple(cut)], rng.permutation(len(shape)))
        f = taken.reshape(-1) if rng.random() < 0.3 else taken
        layers = _as_layers(f, shape)
        assert layers is not None, (shape, cut)
        values = np.arange(positions.size, dtype=np.float64).reshape(1, *shape)
        for _, layer in layers:
            values = layer.forward([values])
        np.testing.assert_array_equal(values[0], f)
    assert _as_layers(np.array([[0, 2], [1, 5]]), (2, 3)) is None  # no strides reach these
    assert _as_layers(np.array([3, 1, 2]), (4,)) is None
    assert _as_layers(np.array([2, 4]), (5,)) is None  # a step that does not divide the axis: refused


def _sequence(*ops):
    """Nodes named n0, n1, ... chained from x to y: ``ops`` are (op, extra inputs, attributes)."""
    names = ["x"] + [f"v{k}" for k in range(len(ops) - 1)] + ["y"]
    return [helper.make_node(op, [names[k], *extra], [names[k + 1]], name=f"n{k}", **attrs)
            for k, (op, extra, attrs) in enumerate(ops)]


def _ints(*values):
    return np.array(values, np.int64)


VIEWS = {  # a view's axes counted as ONNX counts them; Flatten's negative axis; against onnxruntime
    "softmax axis 1 on (N*4, 6)": ([("Reshape", ["a"], {}), ("Softmax", [], {"axis": 1}), ("Reshape", ["b"], {})],
                                  [("a", _ints(-1, 6)), ("b", _ints(2, 4, 6))]),
    "layer norm axis 1 on (N*4, 6)": ([("Reshape", ["a"], {}), ("LayerNormalization", ["s", "c"], {"axis": 1}),
                                       ("Reshape", ["b"], {})],
                                      [("a", _ints(-1, 6)), ("b", _ints(2, 4, 6)), ("s", weights(6)),
                                       ("c", weights(6))]),
    "softmax axis 2 on (4, N, 6)": ([("Transpose", [], {"perm": [1, 0, 2]}), ("Softmax", [], {"axis": 2}),
                                     ("Transpose", [], {"perm": [1, 0, 2]})], []),
    "flatten axis -2": ([("Flatten", [], {"axis": -2}), ("Softmax", [], {"axis": -1}), ("Reshape", ["b"], {})],
                        [("b", _ints(2, 24))]),
    "flatten axis -1": ([("Flatten", [], {"axis": -1}), ("Softmax", [], {"axis": -1}), ("Reshape", ["b"], {})],
                        [("b", _ints(2, 4, 6))]),
}


@pytest.mark.parametrize("case", list(VIEWS))
def test_operators_on_views_count_their_axes_as_onnx_does(case, rng):
    ops, initializers = VIEWS[case]
    m = model(_sequence(*ops), (2, 4, 6), initializers)
    x = rng.normal(size=(2, 4, 6)).astype(np.float32)
    same(from_onnx(m)(x), runtime(m, x), 1e-6)


def test_views_refuse_what_they_cannot_keep_per_sample(rng):
    """A constant target that moves the batch under a symbolic batch size, an operator across the samples, a
    constant with more axes than its view, token ids rearranged, a reversal and an empty slice: refused by name."""
    refusals = [
        (("N", 4, 6), [("Reshape", ["a"], {}), ("Softmax", [], {"axis": -1}), ("Reshape", ["b"], {})],
         [("a", _ints(4, -1)), ("b", _ints(-1, 4, 6))], r"n0 \(Reshape\): .*fits one batch size only"),
        (("N", 4, 6), [("Transpose", [], {"perm": [1, 0, 2]}), ("Softmax", [], {"axis": -2}),
                       ("Transpose", [], {"perm": [1, 0, 2]})], [], "n1 .*which holds the samples of the batch"),
        ((2, 4, 6), [("Transpose", [], {"perm": [1, 0, 2]}), ("Add", ["c"], {}), ("Reshape", ["s"], {}),
                     ("Transpose", [], {"perm": [1, 0, 2]})],
         [("c", np.repeat(weights(1, 4, 1, 6), 2, 0)), ("s", _ints(-1, 2, 6))], "n1 .*has more axes than its"),
        ((2, 4, 6), [("Transpose", [], {"perm": [1, 0, 2]}), ("Slice", ["s", "e", "a", "t"], {}),
                     ("Transpose", [], {"perm": [1, 0, 2]})],
         [("s", _ints(-1)), ("e", _ints(-100)), ("a", _ints(2)), ("t", _ints(-1))], "n1 .*a negative step"),
        ((2, 4, 6), [("Transpose", [], {"perm": [1, 0, 2]}), ("Slice", ["s", "e", "a"], {}),
                     ("Transpose", [], {"perm": [1, 0, 2]})],
         [("s", _ints(3)), ("e", _ints(3)), ("a", _ints(2))], "n1 .*leaves nothing"),
    ]
    for shape, ops, initializers, message in refusals:
        with pytest.raises(ImportAuditError, match=message):
            from_onnx(model(_sequence(*ops), shape, initializers))
    ids = _sequence(("Transpose", [], {"perm": [1, 0, 2]}), ("Cast", [], {"to": TensorProto.FLOAT}))
    graph = helper.make_graph(ids, "ids", [helper.make_tensor_value_info("x", TensorProto.INT64, [2, 2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(ImportAuditError, match="n0 .*the model input is token ids"):
        from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


class _StackedSum(torch.nn.Module):
    """segmentation-models-pytorch's FPN merge: torch.stack of same-shaped maps, summed over the new axis."""

    def __init__(self):
        super().__init__()
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(2, 3, 3, padding=1) for _ in range(3))

    def forward(self, x):
        return torch.stack([conv(x) for conv in self.convs]).sum(dim=0)


@pytest.mark.parametrize("exporter", sorted(EXPORTERS))
def test_a_sum_of_stacked_maps_is_one_add(exporter, tmp_path):
    module = fixed_weights(_StackedSum().double()).float().eval()
    x = np.random.default_rng(3).uniform(size=(2, 2, 5, 5)).astype(np.float32)
    path = export(module, x, tmp_path / "stacked.onnx", **EXPORTERS[exporter])
    graph = from_onnx(path)
    same(graph(x), runtime(path, x), 1e-6)
    assert [type(n.layer).__name__ for n in graph.nodes][-1] == "Add" and len(graph.nodes[-1].inputs) == 3
