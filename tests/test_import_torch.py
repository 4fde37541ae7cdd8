"""from_torch: every supported construct reproduces PyTorch's forward, torchvision's VGG-16 and ResNet-18/50 import
to the graphs torchvision itself gives (tests/data/torchvision_graphs.json) with torchvision's outputs, U-Nets
import and explain, and everything unsupported is reported by name before anything runs."""

import json
import pathlib
import sys
import warnings

import numpy as np
import pytest

from extras import need

need("torch")

import torch
from torch import nn
from torch.nn import functional as F

import reflrp
from reflrp import composites
from reflrp.errors import ReflrpError
from reflrp.importers import ImportAuditError, from_torch

from torch_nets import TWINS, UNet, fixed_weights

REFERENCE = json.loads((pathlib.Path(__file__).resolve().parent / "data" / "torchvision_graphs.json").read_text())


def describe(graph):
    return [
        {"name": n.name, "layer": type(n.layer).__name__, "inputs": list(n.inputs),
         "config": json.loads(json.dumps(n.layer.config())),
         "parameters": {k: list(v.shape) for k, v in n.layer.parameters().items()}}
        for n in graph.nodes
    ]


def torch_output(module, x):
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def same(got, expected, rtol):
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= rtol * np.abs(expected).max()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "resnet18", "resnet50"])
def test_twins_import_to_torchvisions_graphs_and_reproduce_its_outputs(name):
    model = fixed_weights(TWINS[name]().double().eval())
    x = np.random.default_rng(0).uniform(-1, 1, size=(1, 3, 64, 64))
    graph = from_torch(model, x)
    assert describe(graph) == REFERENCE["models"][name]["graph"]  # node names are the module paths
    same(graph(x)[0], np.array(REFERENCE["models"][name]["output"]), 1e-12)
    same(graph(x), torch_output(model, x), 1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "vgg16"])
def test_float32_models_import_as_float32(name):
    model = fixed_weights(TWINS[name]().double().eval()).float()
    x = np.random.default_rng(1).uniform(-1, 1, size=(2, 3, 32, 32)).astype(np.float32)
    graph = from_torch(model, x)
    assert graph.dtype == np.float32
    same(graph(x), torch_output(model, x), 1e-5)


@pytest.mark.parametrize("upsample", [False, True])
def test_unets_import_reproduce_and_explain(upsample):
    model = fixed_weights(UNet(upsample=upsample).double().eval())
    x = np.random.default_rng(2).uniform(0, 1, size=(2, 1, 16, 16))
    graph = from_torch(model, x)
    same(graph(x), torch_output(model, x), 1e-12)
    e = reflrp.explain(graph, x, (1, 8, 8), composites.EpsilonGammaBox(0.0, 1.0))
    assert np.abs(e.ledger.closure(relative=True)).max() <= 1e-12
    assert ("up.0" if upsample else "up") in e.ledger.nodes and "down.0" in e.ledger.nodes  # module paths


class Wrap(nn.Module):
    """A module whose forward is a given function of its input and submodules."""

    def __init__(self, forward, **modules):
        super().__init__()
        self.fn = forward
        for key, module in modules.items():
            setattr(self, key, module)

    def forward(self, x):
        return self.fn(self, x)


def conv(cin=3, cout=4, **kw):
    return nn.Conv2d(cin, cout, 3, padding=1, **kw)


CONSTRUCTS = {
    "conv2d stride/dilation/groups": (Wrap(lambda m, x: m.c(x), c=nn.Conv2d(4, 6, 3, stride=2, dilation=2, groups=2,
                                                                        padding=(2, 1))), (4, 9, 9)),
    "conv2d same": (Wrap(lambda m, x: m.c(x), c=nn.Conv2d(4, 3, (2, 3), padding="same")), (4, 7, 7)),
    "conv1d": (Wrap(lambda m, x: m.c(x), c=nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2)), (4, 11)),
    "conv1d + batchnorm1d": (Wrap(lambda m, x: m.b(m.c(x)), c=nn.Conv1d(4, 5, 3), b=nn.BatchNorm1d(5)), (4, 9)),
    "conv transpose": (Wrap(lambda m, x: m.c(x), c=nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1,
                                                                     groups=2)), (4, 5, 5)),
    "linear + batchnorm1d": (Wrap(lambda m, x: m.b(m.f(x)), f=nn.Linear(6, 5), b=nn.BatchNorm1d(5)), (6,)),
    "relu forms": (Wrap(lambda m, x: F.relu(torch.relu(m.r(x).relu())) + x.relu_(), r=nn.ReLU()), (3, 4, 4)),
    "leaky relu": (Wrap(lambda m, x: F.leaky_relu(m.r(x), 0.2), r=nn.LeakyReLU(0.1)), (3, 4, 4)),
    "pooling modules": (Wrap(lambda m, x: m.a(m.b(m.c(x))), c=nn.MaxPool2d(3, 2, 1), b=nn.AvgPool2d(2, 1, 1,
                                                                                                count_include_pad=False),
                             a=nn.AdaptiveAvgPool2d((2, 3))), (3, 9, 9)),
    "pooling functions": (Wrap(lambda m, x: F.adaptive_avg_pool2d(F.avg_pool2d(F.max_pool2d(x, 2), 2, 1), 1)),
                          (3, 8, 8)),
    "upsample module": (Wrap(lambda m, x: m.u(x), u=nn.Upsample(scale_factor=(2, 3), mode="bilinear")), (3, 4, 4)),
    "interpolate size": (Wrap(lambda m, x: F.interpolate(x, size=(8, 12), mode="nearest")), (3, 4, 4)),
    "interpolate align_corners": (Wrap(lambda m, x: F.interpolate(x, scale_factor=2.0, mode="bilinear",
                                                                  align_corners=True)), (3, 4, 4)),
    "cat and add": (Wrap(lambda m, x: torch.cat([m.c(x), torch.add(m.c(x), m.d(x))], dim=-3), c=conv(), d=conv()),
                    (3, 5, 5)),
    "flatten forms": (Wrap(lambda m, x: torch.flatten(m.f(x).flatten(1), 1), f=nn.Flatten(2)), (3, 4, 5)),
    "view and reshape": (Wrap(lambda m, x: x.view(x.size(0), -1).reshape(x.shape[0], 4, -1)), (3, 4, 4)),
    "permute": (Wrap(lambda m, x: x.permute(0, 2, 3, 1).contiguous()), (3, 4, 5)),
    "modern activations": (Wrap(lambda m, x: F.mish(F.gelu(F.silu(F.hardswish(F.hardsigmoid(F.relu6(m.a(x)))))))
                                + m.f(m.e(m.d(m.c(m.b(x))))), a=nn.ReLU6(), b=nn.Hardsigmoid(), c=nn.Hardswish(),
                                d=nn.SiLU(), e=nn.GELU(approximate="tanh"), f=nn.Mish()), (3, 4, 4)),
    "squeeze and excitation": (Wrap(lambda m, x: x * m.gate(m.up(F.relu(m.down(F.adaptive_avg_pool2d(x, 1))))),
                                    down=nn.Conv2d(4, 2, 1), up=nn.Conv2d(2, 4, 1), gate=nn.Sigmoid()), (4, 5, 5)),
    "layer scale and a scalar": (Wrap(lambda m, x: 0.5 * (m.gamma * m.c(x)), c=conv(), gamma=nn.Parameter(
        torch.rand(4, 1, 1))), (3, 4, 4)),
    "chunk, split, narrow and slices": (Wrap(lambda m, x: torch.cat([x.chunk(2, dim=1)[1], torch.split(x, 1, 1)[0],
                                                                     x.narrow(1, 1, 1), x[:, 2:][:, :1]],
                                                                    dim=1)), (4, 5, 5)),
    "channel shuffle and transpose": (Wrap(lambda m, x: x.view(x.size(0), 2, 2, 5, 5).transpose(1, 2).reshape(
        x.size(0), 4, 5, 5).transpose(2, 3) + m.s(x), s=nn.ChannelShuffle(2)), (4, 5, 5)),
    "ceil_mode pooling": (Wrap(lambda m, x: F.avg_pool2d(m.p(x), 2, ceil_mode=True),
                               p=nn.MaxPool2d(3, 2, ceil_mode=True)), (3, 10, 9)),
    "layer norm": (Wrap(lambda m, x: F.layer_norm(m.n(x), (5,), m.w, m.b, 1e-3) + m.plain(x), n=nn.LayerNorm(5),
                        plain=nn.LayerNorm((4, 5), elementwise_affine=False), w=nn.Parameter(torch.rand(5)),
                        b=nn.Parameter(torch.rand(5))), (3, 4, 5)),
    "convnext block": (Wrap(lambda m, x: x + m.gamma * m.f2(F.gelu(m.f1(m.n(m.dw(x).permute(0, 2, 3, 1)))))
                            .permute(0, 3, 1, 2), dw=nn.Conv2d(4, 4, 3, padding=1, groups=4), n=nn.LayerNorm(4),
                            f1=nn.Linear(4, 16), f2=nn.Linear(16, 4), gamma=nn.Parameter(torch.rand(4, 1, 1))),
                       (4, 5, 5)),
    "group norm": (Wrap(lambda m, x: m.g(x) + F.group_norm(x, 2, m.w, m.b, 1e-3), g=nn.GroupNorm(2, 4),
                        w=nn.Parameter(torch.rand(4)), b=nn.Parameter(torch.rand(4))), (4, 5, 5)),
    "instance norm and prelu": (Wrap(lambda m, x: m.p1(m.i1(x)) + m.i2(x) + m.i3(x) + F.prelu(
        F.instance_norm(x, weight=m.w, bias=m.b, eps=1e-3), m.s), i1=nn.InstanceNorm2d(4, affine=True),
        i2=nn.InstanceNorm2d(4), i3=nn.InstanceNorm2d(4, affine=True, track_running_stats=True), p1=nn.PReLU(4),
        w=nn.Parameter(torch.rand(4)), b=nn.Parameter(torch.rand(4)), s=nn.Parameter(torch.rand(1))), (4, 5, 5)),
    "instance norm 1d and prelu": (Wrap(lambda m, x: m.p(m.i(x)), i=nn.InstanceNorm1d(3, affine=True),
                                        p=nn.PReLU(3)), (3, 8)),
    "conv2d with its own parameters, stacked and summed": (
        Wrap(lambda m, x: torch.stack([F.conv2d(x, m.w, m.b, padding=1), m.c(x)]).sum(dim=0),
             w=nn.Parameter(torch.rand(4, 3, 3, 3)), b=nn.Parameter(torch.rand(4)), c=conv()), (3, 5, 5)),
    "mean over the spatial axes": (Wrap(lambda m, x: m.f(x.mean((2, 3)) + torch.mean(x, dim=[-2, -1], keepdim=True)
                                                      .flatten(1)), f=nn.Linear(3, 2)), (3, 4, 5)),
    "dropout and identity": (Wrap(lambda m, x: F.dropout(m.i(m.d(x)), 0.3, training=m.training), d=nn.Dropout(),
                                  i=nn.Identity()), (3, 4)),
    "zero padding": (Wrap(lambda m, x: m.p(x), p=nn.ZeroPad2d((1, 2, 0, 3))), (3, 4, 4)),
    "sigmoid at the end": (Wrap(lambda m, x: torch.sigmoid(m.c(x)), c=conv()), (3, 4, 4)),
    "softmax at the end": (Wrap(lambda m, x: F.softmax(m.f(x), dim=1), f=nn.Linear(6, 4)), (6,)),
    "tanh, nested sequential, module list": (Wrap(lambda m, x: m.l[1](m.s(x)).tanh(), s=nn.Sequential(
        nn.Sequential(conv(), nn.ReLU())), l=nn.ModuleList([nn.Identity(), conv(4, 2)])), (3, 4, 4)),
}


@pytest.mark.parametrize("name", sorted(CONSTRUCTS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_supported_construct_reproduces_pytorch(name, dtype):
    module, shape = CONSTRUCTS[name]
    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    module = fixed_weights(module.double()).to(torch_dtype).eval()
    x = np.random.default_rng(3).uniform(-1, 1, size=(2, *shape)).astype(dtype)
    graph = from_torch(module, x.copy())
    assert graph.dtype in (None, np.dtype(dtype))
    same(graph(x), torch_output(module, x.copy()), 1e-12 if dtype == np.float64 else 1e-5)


class Everything(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool2d(2, dilation=2)
        self.pad = nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect")
        self.head = nn.Softmax(dim=1)
        self.elu = nn.ELU()

    def forward(self, x):
        h = self.head(self.pad(self.pool(x)))  # a softmax inside a model is fine
        h = F.interpolate(self.elu(h), scale_factor=1.5) + 1.0  # and so is a constant added
        return h[:, ::2]


def test_everything_unsupported_is_reported_at_once_by_name():
    with pytest.raises(ImportAuditError) as error:
        from_torch(Everything().eval(), torch.randn(1, 3, 8, 8))
    text = str(error.value)
    for expected in ["pool (max_pool2d): dilation=2", "pad (Conv2d): padding_mode='reflect'",
                     "elu (ELU): ELU is not supported", "interpolate (interpolate): size (4, 4) is not an integer",
                     "(x[...]): indexing or slicing"]:
        assert expected in text, text
    assert text.startswith("from_torch(Everything): 5 constructs cannot be imported")
    assert len(error.value.findings) == 5


def test_models_that_cannot_be_imported_at_all_say_why():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ReflrpError, match="torch.fx cannot trace Branchy: .*control flow on tensor values.*or export "
                                          "the model with torch.onnx.export and read the file with reflrp.from_onnx"):
        from_torch(Branchy().eval(), torch.randn(1, 3))
    with pytest.raises(ReflrpError, match="is in training mode .* call module.eval"):
        from_torch(nn.BatchNorm1d(3), torch.randn(2, 3))
    with pytest.raises(ReflrpError, match="the module fails on the example input: RuntimeError"):
        from_torch(nn.Linear(3, 2).eval(), torch.randn(2, 4))
    with pytest.raises(ReflrpError, match="example_input must be a floating-point batch"):
        from_torch(nn.Linear(3, 2).eval(), torch.ones(2, 3, dtype=torch.int8))
    with pytest.raises(ReflrpError, match=r"integer example_input is token ids, which only an nn.Embedding may take"):
        from_torch(nn.Linear(3, 2).eval(), torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(ReflrpError, match="module must be a torch.nn.Module"):
        from_torch(lambda x: x, torch.randn(2, 3))


def test_a_missing_extra_is_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ReflrpError, match=r'^from_torch needs torch: pip install "reflrp\[torch\]"$'):
        from_torch(object(), None)


def test_example_inputs_and_modules_that_cannot_be_imported_say_why():
    from torch import nn

    model = nn.Sequential(nn.Linear(5, 3)).eval()
    flipped = np.ones((2, 5))[:, ::-1]  # negative strides
    x = np.arange(10.0, dtype=np.float32).reshape(2, 5)
    expected = reflrp.from_torch(model, x)(x)
    assert np.array_equal(reflrp.from_torch(model, flipped)(x), expected)
    assert np.array_equal(reflrp.from_torch(model, x.astype(">f8"))(x), expected)
    read_only = np.ones((2, 5), np.float32)
    read_only.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reflrp.from_torch(model, read_only)
    with pytest.raises(ReflrpError, match="example_input must be float32 or float64 \\(or token ids\\), got object"):
        reflrp.from_torch(model, np.ones((2, 5), object))
    with pytest.raises(ReflrpError, match="0.weight \\(parameter\\) is torch.bfloat16; .*module.float\\(\\)"):
        reflrp.from_torch(nn.Sequential(nn.Linear(5, 3)).to(torch.bfloat16).eval(), torch.ones(2, 5))
    partly_training = nn.Sequential(nn.Linear(5, 5), nn.Dropout(0.5), nn.Linear(5, 2)).eval()
    partly_training[1].train()
    with pytest.raises(ReflrpError, match="from_torch: 1 is in training mode"):
        reflrp.from_torch(partly_training, torch.ones(2, 5))


def test_a_center_crop_by_slicing_is_a_crop_node():
    from torch import nn

    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            h = self.conv(x)
            return torch.cat([h[:, :, 2:-2, 1:-3], h[:, :, 2:-2, 2:-2]], dim=1)

    module = Skip().double().eval()
    x = torch.randn(2, 1, 12, 12, dtype=torch.float64)
    graph = reflrp.from_torch(module, x)
    assert [type(n.layer).__name__ for n in graph.nodes] == ["Conv2d", "Crop", "Crop", "Concat"]
    assert graph.nodes[1].layer.sides == (2, 2, 1, 3)
    assert np.abs(graph(x.numpy()) - module(x).detach().numpy()).max() <= 1e-15

    class Channels(nn.Module):
        def forward(self, x):
            return x[:, ::2]

    with pytest.raises(ReflrpError, match=r"integers and slices with steps of 1 of non-batch axes .* other indices"):
        reflrp.from_torch(Channels().eval(), x)


def test_a_mean_over_other_axes_is_a_mean_layer_and_over_the_batch_is_reported():
    graph = from_torch(Wrap(lambda m, x: x.mean(1)).eval(), torch.randn(1, 3, 4, 4))
    assert [type(n.layer).__name__ for n in graph.nodes] == ["Mean"]
    with pytest.raises(ImportAuditError, match=r"mean \(mean\): only a mean over non-batch axes"):
        from_torch(Wrap(lambda m, x: x.mean(0)).eval(), torch.randn(1, 3, 4, 4))


@pytest.mark.slow
def test_lrp0_as_a_single_rule_on_a_resnet_is_gradient_times_input():
    """A single Epsilon(0) applies to Add and average pooling too (not only to layers with weights): LRP-0
    everywhere, which equals gradient x input (Montavon et al. 2019, section 10.2.1)."""
    model = fixed_weights(TWINS["resnet18"]().double().eval())
    x = np.random.default_rng(4).uniform(-1, 1, size=(2, 3, 32, 32))
    graph = from_torch(model, x)
    e = reflrp.explain(graph, x, 7, reflrp.rules.Epsilon(epsilon=0.0))
    inputs = torch.from_numpy(x).requires_grad_(True)
    model(inputs)[:, 7].sum().backward()
    expected = (inputs.grad * inputs).detach().numpy()
    assert e.relevance.shape == expected.shape
    assert np.abs(e.relevance - expected).max() <= 1e-12 * np.abs(expected).max()
    parameter_free = [rule for layer, rule in zip(e.ledger.layers, e.ledger.rules)
                      if layer in ("Add", "AdaptiveAvgPool2d")]
    assert len(parameter_free) == 9 and set(parameter_free) == {"Epsilon(epsilon=0.0)"}


class Segmenter(nn.Module):
    """Returns a dict, as torchvision's segmentation models do."""

    def __init__(self):
        super().__init__()
        self.body, self.aux = nn.Conv2d(3, 2, 3, padding=1), nn.Conv2d(3, 2, 1)

    def forward(self, x):
        return {"out": self.body(x), "aux": self.aux(x)}


def test_a_dict_or_tuple_output_is_chosen_by_key_or_index():
    module = fixed_weights(Segmenter().double()).eval()
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64)
    for key in ("out", "aux"):
        graph = from_torch(module, x, output=key)
        same(graph(x.numpy()), module(x)[key].detach().numpy(), 1e-15)
    with pytest.raises(ImportAuditError, match=r"returns a dict \('out', 'aux'\): choose one with "
                                               r"from_torch\(..., output='out'\)"):
        from_torch(module, x)
    with pytest.raises(ImportAuditError, match="output='main' is not in the dict"):
        from_torch(module, x, output="main")
    pair = Wrap(lambda m, x: (m.c(x), x), c=conv())
    same(from_torch(pair.double().eval(), x, output=0)(x.numpy()), pair(x)[0].detach().numpy(), 1e-15)


def test_a_gate_from_a_sigmoid_is_marked_and_its_relevance_goes_to_the_signal(rng):
    module, _ = CONSTRUCTS["squeeze and excitation"]
    module = fixed_weights(module.double()).eval()
    x = rng.uniform(-1, 1, size=(2, 4, 5, 5))
    graph = from_torch(module, x)
    (product,) = [n for n in graph.nodes if isinstance(n.layer, reflrp.Multiply)]
    assert product.layer.gate == 1 and product.inputs[0] == "input"
    e = reflrp.explain(graph, x, (1, 2, 2), reflrp.rules.Epsilon())
    assert abs(e.ledger.closure(relative=True)).max() <= 1e-12
    assert e.ledger.rules[e.ledger.nodes.index(product.name)] == "Product"


def stochastic_depth(input, p, mode, training=True):  # what torchvision.ops.stochastic_depth is at evaluation
    return input


stochastic_depth.__module__ = "torchvision.ops.stochastic_depth"
torch.fx.wrap("stochastic_depth")


def test_stochastic_depth_at_evaluation_is_the_identity():
    module = Wrap(lambda m, x: m.c(x) + stochastic_depth(m.c(x), 0.2, "row", False), c=conv())
    x = torch.rand(1, 3, 4, 4)
    graph = from_torch(module.eval(), x)
    assert [type(n.layer).__name__ for n in graph.nodes] == ["Conv2d", "Conv2d", "Add"]
    same(graph(x.numpy()), module(x).detach().numpy(), 1e-6)
    training = Wrap(lambda m, x: stochastic_depth(x, 0.2, "row", True))
    with pytest.raises(ImportAuditError, match="training=True drops rows at random"):
        from_torch(training.eval(), x)


def test_a_convnext_block_explains_with_its_layer_norm_passing_relevance(rng):
    module, shape = CONSTRUCTS["convnext block"]
    module = fixed_weights(module.double()).eval()
    x = rng.uniform(-1, 1, size=(2, *shape))
    graph = from_torch(module, x)
    kinds = [type(n.layer).__name__ for n in graph.nodes]
    assert kinds == ["Conv2d", "Permute", "LayerNorm", "Scale", "Linear", "GELU", "Linear", "Permute", "Scale", "Add"]
    for rules in (reflrp.rules.Epsilon(), composites.EpsilonPlus()):
        e = reflrp.explain(graph, x, (1, 2, 2), rules)
        assert abs(e.ledger.closure(relative=True)).max() <= 1e-12
        row = e.ledger.row("n.normalize")
        assert row["rule"] == "Pass" and row["relevance_in"][0] == row["relevance_out"][0]
        assert e.ledger.row("n")["bias"][0] != 0  # LayerNorm's bias, in the ledger


class CheckedShapes(nn.Module):
    """Branches on shapes in Python, as segmentation-models-pytorch's models do before their encoder."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        h, w = x.shape[-2:]
        if h % 4 != 0 or w % 4 != 0:
            raise RuntimeError(f"height and width must be divisible by 4, got {h} x {w}")
        y = self.conv(x)
        return y[:, :2] if y.size(1) > 2 else y


def test_branches_on_shapes_take_the_example_inputs_branch():
    model = CheckedShapes().eval()
    with pytest.raises(torch.fx.proxy.TraceError):
        torch.fx.symbolic_trace(model)  # what torch.fx alone does
    x = torch.randn(2, 3, 8, 12)
    graph = from_torch(model, x)
    assert [type(n.layer).__name__ for n in graph.nodes] == ["Conv2d", "Narrow"]
    np.testing.assert_allclose(graph(x.numpy()), torch_output(model, x.numpy()), atol=1e-6)
    with pytest.raises(ReflrpError, match="the module fails on the example input: RuntimeError: height and width"):
        from_torch(model, torch.randn(1, 3, 6, 8))


def test_every_node_records_whether_it_was_a_module_or_a_function(tmp_path):
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.relu, self.pool = nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            h = self.relu(self.conv(x))
            return self.pool(h).flatten(1) + F.relu(h).mean((2, 3))

    graph = from_torch(Mixed().eval(), torch.randn(1, 3, 6, 6))
    called = {n.name: n.called for n in graph.nodes}
    assert called == {"conv": "module", "relu": "module", "pool": "module", "flatten": "function",
                      "relu_1": "function", "mean": "function", "mean.flatten": "function", "add": "function"}
    reflrp.save(graph, tmp_path / "m.reflrp")
    assert {n.name: n.called for n in reflrp.load(tmp_path / "m.reflrp").nodes} == called
    assert reflrp.canonize.merge_batchnorm(graph)["relu_1"].called == "function"
    with pytest.raises(ReflrpError, match="called must be 'module' or 'function', got 'method'"):
        reflrp.Node("n", reflrp.ReLU(), called="method")


def test_an_import_that_departs_from_pytorch_names_the_node(monkeypatch):
    """The importer checks its graph against PyTorch's forward on the example input: a converter that got a
    layer wrong is caught and the node named."""
    from reflrp.importers import torch_modules

    wrong = [(name, (lambda c, m, node, where: reflrp.LeakyReLU(0.5)) if name == "ReLU" else handler, note)
             for name, handler, note in torch_modules.MODULES]
    monkeypatch.setattr(reflrp.importers.torch, "MODULES", wrong)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()
    with pytest.raises(ReflrpError, match=r"node '1' computes values that differ from PyTorch's by .* a bug in the "
                                          r"importer"):
        from_torch(model, torch.randn(1, 3, 6, 6))
