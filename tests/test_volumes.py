"""Volumes (issue 20): 3-D convolutions, transposed convolutions and BatchNorm, one definition with the 2-D layers.

Each against PyTorch (forward and adjoint) and its dense matrix (tests/test_layers.py, tests/test_kernels.py); a
3-D U-Net-like model imported from PyTorch and ONNX reproduces them; LRP-0 on a ReLU volume network is
gradient x input; every rule closes its ledger; bits do not depend on the batch."""

import warnings

import numpy as np
import pytest

from extras import need

need("torch")

import torch
from torch import nn
from torch.nn import functional as F

import reflrp
from reflrp import canonize, composites, rules, targets
from reflrp.importers import from_torch


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def same_as_pytorch(ours, module, x, rng, atol, adjoint_atol=None):
    """``ours`` computes ``module``'s output (and says its shape), and its adjoint is ``module``'s gradient."""
    tx = t(x).requires_grad_(True)
    expected = module(tx)
    got = ours.forward([x])
    assert got.shape == tuple(expected.shape) == (len(x), *ours.output_shape(x.shape[1:]))
    np.testing.assert_allclose(got, expected.detach().numpy(), rtol=1e-12, atol=atol)
    s = rng.normal(size=got.shape)
    expected.backward(t(s))
    np.testing.assert_allclose(ours.adjoint(s, [x])[0], tx.grad.numpy(), rtol=1e-12,
                               atol=atol if adjoint_atol is None else adjoint_atol)


LAYERS = [
    (lambda: nn.Conv3d(4, 6, 3, padding=1), lambda m, w, b: reflrp.Conv3d(w, b, padding=1)),
    (lambda: nn.Conv3d(4, 6, (2, 3, 1), stride=(2, 1, 2), padding=(1, 0, 1), dilation=(1, 2, 1), groups=2),
     lambda m, w, b: reflrp.Conv3d(w, b, stride=(2, 1, 2), padding=(1, 0, 1), dilation=(1, 2, 1), groups=2)),
    (lambda: nn.Conv3d(4, 4, 3, padding="same", groups=4, bias=False),
     lambda m, w, b: reflrp.Conv3d(w, padding="same", groups=4)),
    (lambda: nn.ConvTranspose3d(4, 6, 2, stride=2), lambda m, w, b: reflrp.ConvTranspose3d(w, b, stride=2)),
    (lambda: nn.ConvTranspose3d(4, 2, 3, stride=(1, 2, 2), padding=1, output_padding=(0, 1, 1), groups=2),
     lambda m, w, b: reflrp.ConvTranspose3d(w, b, stride=(1, 2, 2), padding=1, output_padding=(0, 1, 1), groups=2)),
]


@pytest.mark.parametrize("k", range(len(LAYERS)))
def test_3d_convolutions_match_pytorch_forward_and_adjoint(k, rng):
    torch.manual_seed(k)
    module = LAYERS[k][0]().double()
    ours = LAYERS[k][1](module, module.weight.detach().numpy(),
                        None if module.bias is None else module.bias.detach().numpy())
    same_as_pytorch(ours, module, rng.normal(size=(2, 4, 5, 6, 7)), rng, atol=1e-12)


POOLS = [
    (lambda: nn.MaxPool3d(3, 2, 1), lambda: reflrp.MaxPool3d(3, 2, 1)),
    (lambda: nn.MaxPool3d((2, 3, 2), ceil_mode=True), lambda: reflrp.MaxPool3d((2, 3, 2), ceil_mode=True)),
    (lambda: nn.AvgPool3d(3, 2, 1), lambda: reflrp.AvgPool3d(3, 2, 1)),
    (lambda: nn.AvgPool3d((2, 3, 2), (1, 2, 2), (1, 1, 0), ceil_mode=True, count_include_pad=False),
     lambda: reflrp.AvgPool3d((2, 3, 2), (1, 2, 2), (1, 1, 0), ceil_mode=True, count_include_pad=False)),
    (lambda: nn.AdaptiveAvgPool3d((2, 3, 4)), lambda: reflrp.AdaptiveAvgPool3d((2, 3, 4))),
    (lambda: nn.AdaptiveAvgPool3d(1), lambda: reflrp.AdaptiveAvgPool3d(1)),
]


@pytest.mark.parametrize("k", range(len(POOLS)))
def test_3d_pooling_matches_pytorch_forward_and_adjoint(k, rng):
    """Max pooling's adjoint is its gradient: the first maximum of each window in row-major order, as PyTorch
    routes it (random inputs have no ties)."""
    same_as_pytorch(POOLS[k][1](), POOLS[k][0](), rng.normal(size=(2, 3, 7, 6, 8)), rng, atol=1e-14)


def test_1d_pooling_matches_pytorch(rng):
    x = rng.normal(size=(2, 3, 11))
    for module, ours in ((nn.MaxPool1d(3, 2, 1), reflrp.MaxPool1d(3, 2, 1)),
                         (nn.AvgPool1d(4, 3, 2, ceil_mode=True), reflrp.AvgPool1d(4, 3, 2, ceil_mode=True)),
                         (nn.AdaptiveAvgPool1d(4), reflrp.AdaptiveAvgPool1d(4))):
        same_as_pytorch(ours, module, x, rng, atol=1e-14)


def test_3d_layers_refuse_other_shapes_with_the_layer_named():
    conv = reflrp.Conv3d(np.ones((2, 3, 3, 3, 3)))
    with pytest.raises(reflrp.ReflrpError, match=r"input must be \(N, C, D, H, W\), got per-sample shape \(3, 5, 5\)"):
        conv.output_shape((3, 5, 5))
    with pytest.raises(reflrp.ReflrpError, match="input of size 2x5x5 is smaller than the"):
        conv.output_shape((3, 2, 5, 5))
    with pytest.raises(reflrp.ReflrpError, match="stride must be an integer or a triple"):
        reflrp.Conv3d(np.ones((2, 3, 3, 3, 3)), stride=(1, 2))
    with pytest.raises(reflrp.ReflrpError, match="weight"):
        reflrp.Conv3d(np.ones((2, 3, 3, 3)))
    with pytest.raises(reflrp.ReflrpError, match=r"input must be \(N, C, D, H, W\)"):
        reflrp.BatchNorm3d(np.zeros(2), np.ones(2)).output_shape((2, 4, 4))


class UNet3d(nn.Module):
    """A two-level 3-D U-Net as nnU-Net and MONAI build them: convolutions with BatchNorm or InstanceNorm,
    LeakyReLU or PReLU, a strided convolution down, a transposed convolution up, a concatenation skip."""

    def __init__(self, norm="batch"):
        super().__init__()

        def normalization(c):
            return nn.BatchNorm3d(c) if norm == "batch" else nn.InstanceNorm3d(c, affine=True)

        self.enc = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), normalization(4), nn.LeakyReLU(0.01))
        self.down = nn.Sequential(nn.Conv3d(4, 8, 3, stride=2, padding=1), normalization(8), nn.PReLU(8))
        self.up = nn.ConvTranspose3d(8, 4, 2, stride=2)
        self.dec = nn.Sequential(nn.Conv3d(8, 4, 3, padding=1), normalization(4), nn.LeakyReLU(0.01))
        self.out = nn.Conv3d(4, 2, 1)

    def forward(self, x):
        skip = self.enc(x)
        return self.out(self.dec(torch.cat([skip, self.up(self.down(skip))], dim=1)))


def unet3d(norm="batch"):
    torch.manual_seed(0)
    model = UNet3d(norm).double()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm3d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("norm", ["batch", "instance"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_3d_unet_imports_reproduces_pytorch_and_closes_its_ledger(norm, dtype):
    model = unet3d(norm).to(torch.float64 if dtype == np.float64 else torch.float32)
    x = np.random.default_rng(3).uniform(-1, 1, size=(2, 1, 6, 8, 8)).astype(dtype)
    graph = from_torch(model, x.copy())
    with torch.no_grad():
        expected = model(t(x)).numpy()
    got = graph(x)
    assert np.abs(got - expected).max() <= (1e-12 if dtype == np.float64 else 1e-5) * np.abs(expected).max()
    if dtype == np.float64:
        for rule in (composites.EpsilonPlus(), composites.EpsilonGammaBox(-1.0, 1.0),
                     composites.EpsilonAlpha2Beta1Flat()):
            e = reflrp.explain(graph, x, targets.Index((1, 3, 4, 4)), rule)
            assert e.relevance.shape == x.shape
            assert np.abs(e.ledger.closure(relative=True)).max() <= 1e-12


def test_lrp0_on_a_relu_volume_network_is_gradient_times_input():
    model = unet3d("batch")
    for sequential in (model.enc, model.down, model.dec):
        sequential[2] = nn.ReLU()
    model.eval()
    x = np.random.default_rng(4).uniform(-1, 1, size=(2, 1, 6, 8, 8))
    graph = from_torch(model, x.copy())
    e = reflrp.explain(graph, x, targets.Index((0, 2, 3, 5)), rules.Epsilon(0.0))
    tx = t(x).requires_grad_(True)
    model(tx)[:, 0, 2, 3, 5].sum().backward()
    expected = (tx.grad * tx).detach().numpy()
    np.testing.assert_allclose(e.relevance, expected, rtol=0, atol=1e-13 * np.abs(expected).max())


def test_batchnorm3d_merges_into_3d_convolutions():
    graph = from_torch(unet3d("batch"), np.zeros((1, 1, 4, 4, 4)))
    merged, unmerged = canonize.merge_batchnorm(graph, report=True)
    assert not unmerged and not any(isinstance(n.layer, reflrp.BatchNorm3d) for n in merged.nodes)
    x = np.random.default_rng(5).normal(size=(2, 1, 6, 8, 8))
    np.testing.assert_allclose(merged(x), graph(x), rtol=0, atol=1e-12 * np.abs(graph(x)).max())
    transposed = reflrp.Sequential([reflrp.ConvTranspose3d(np.random.default_rng(6).normal(size=(2, 6, 2, 2, 2)),
                                                           groups=2, stride=2),
                                    reflrp.BatchNorm3d(np.arange(12.0), np.full(12, 2.0), np.linspace(-1, 1, 12))])
    y = np.random.default_rng(7).normal(size=(1, 2, 2, 3, 2))
    np.testing.assert_allclose(canonize.merge_batchnorm(transposed)(y), transposed(y), rtol=1e-12, atol=1e-12)


def test_explanations_of_volumes_do_not_depend_on_the_batch(tmp_path):
    graph = from_torch(unet3d("instance"), np.zeros((1, 1, 6, 8, 8)))
    x = np.random.default_rng(8).uniform(-1, 1, size=(3, 1, 6, 8, 8))
    rule = composites.EpsilonGammaBox(-1.0, 1.0)
    batch = reflrp.explain(graph, x, targets.Index((1, 2, 2, 2)), rule)
    for b in range(3):
        alone = reflrp.explain(graph, x[b:b + 1], targets.Index((1, 2, 2, 2)), rule)
        np.testing.assert_array_equal(alone.relevance[0], batch.relevance[b])
    reflrp.save(graph, tmp_path / "unet3d.reflrp")
    loaded = reflrp.load(tmp_path / "unet3d.reflrp")
    np.testing.assert_array_equal(reflrp.explain(loaded, x, targets.Index((1, 2, 2, 2)), rule).relevance,
                                  batch.relevance)


def test_a_3d_unet_exported_to_onnx_reads_back(tmp_path):
    need("onnx")
    need("onnxruntime")
    import onnxruntime

    model = unet3d("batch").float()
    x = np.random.default_rng(9).uniform(-1, 1, size=(1, 1, 6, 8, 8)).astype(np.float32)
    path = tmp_path / "unet3d.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (t(x),), str(path), dynamo=False, opset_version=17)
    graph = reflrp.from_onnx(path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert np.abs(graph(x) - expected).max() <= 1e-5 * np.abs(expected).max()
    assert any(isinstance(n.layer, reflrp.ConvTranspose3d) for n in graph.nodes)


def test_functional_3d_convolutions_with_the_modules_parameters_import():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.w, self.b = nn.Parameter(torch.rand(2, 1, 3, 3, 3)), nn.Parameter(torch.rand(2))

        def forward(self, x):
            return F.conv3d(x, self.w, self.b, padding=(1, 0, 1))

    model = Functional().double().eval()
    x = torch.rand(1, 1, 4, 5, 4, dtype=torch.float64)
    graph = from_torch(model, x)
    assert [type(n.layer).__name__ for n in graph.nodes] == ["Conv3d"]
    with torch.no_grad():
        np.testing.assert_allclose(graph(x.numpy()), model(x).numpy(), rtol=1e-12, atol=1e-12)


class SignalCNN(nn.Module):
    """A 1-D CNN for signals (ECG, EEG): convolutions with BatchNorm, max and average pooling, a global mean and a
    dense head."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv1d(2, 8, 7, padding=3), nn.BatchNorm1d(8), nn.ReLU(), nn.MaxPool1d(2),
                                      nn.Conv1d(8, 8, 5, stride=2, padding=2), nn.ReLU(), nn.AvgPool1d(3, 1, 1),
                                      nn.Conv1d(8, 16, 3, dilation=2, padding=2), nn.ReLU())
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        h = self.features(x)
        return self.head(h.mean(2) + F.adaptive_avg_pool1d(h, 1).flatten(1))


class PooledVolume(nn.Module):
    """3-D pooling as classification networks for volumes use it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 4, 3, padding=1)
        self.pools = nn.Sequential(nn.MaxPool3d(2, ceil_mode=True), nn.ReLU(), nn.AvgPool3d(3, 1, 1))
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = self.pools(self.conv(x))
        return self.fc(F.adaptive_avg_pool3d(h, 1).flatten(1) + h.mean((2, 3, 4)))


@pytest.mark.parametrize("make, shape", [(SignalCNN, (2, 64)), (PooledVolume, (1, 5, 7, 6))],
                         ids=["signal", "volume"])
def test_signal_and_volume_classifiers_import_from_pytorch_and_onnx(make, shape, tmp_path):
    need("onnx")
    torch.manual_seed(1)
    model = make().double().eval()
    x = np.random.default_rng(10).normal(size=(3, *shape))
    graph = from_torch(model, x.copy())
    with torch.no_grad():
        expected = model(t(x)).numpy()
    np.testing.assert_allclose(graph(x), expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    e = reflrp.explain(graph, x, 2, composites.EpsilonPlus())
    assert np.abs(e.ledger.closure(relative=True)).max() <= 1e-12
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.float(), (t(x).float(),), str(path), dynamo=False, opset_version=17)
    onnx_graph = reflrp.from_onnx(path).astype(np.float64)
    np.testing.assert_allclose(onnx_graph(x), expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_volume_targets_a_voxel_a_region_the_predicted_structure_and_k_voxels():
    graph = from_torch(unet3d("batch"), np.zeros((1, 1, 6, 8, 8)))
    x = np.random.default_rng(11).uniform(-1, 1, size=(2, 1, 6, 8, 8))
    rule = composites.EpsilonPlus()
    output = graph(x)
    voxel = reflrp.explain(graph, x, targets.Voxel((1, 2, 3, 4)), rule)
    np.testing.assert_allclose(voxel.target_value, output[:, 1, 2, 3, 4], rtol=1e-15)
    region = np.zeros((6, 8, 8), bool)
    region[1:4, 2:6, 3:5] = True
    e = reflrp.explain(graph, x, targets.Region(0, region), rule)
    np.testing.assert_allclose(e.target_value, output[:, 0][:, region].sum(1), rtol=1e-12)
    per_sample = np.stack([region, ~region])
    e = reflrp.explain(graph, x, targets.Region(1, per_sample), rule)
    np.testing.assert_allclose(e.target_value, [output[0, 1][region].sum(), output[1, 1][~region].sum()], rtol=1e-12)
    predicted = np.argmax(output, axis=1) == 1
    e = reflrp.explain(graph, x, targets.ArgmaxRegion(1), rule)
    np.testing.assert_allclose(e.target_value, [output[b, 1][predicted[b]].sum() for b in range(2)], rtol=1e-12)
    voxels = [(2, 3, 4), (0, 0, 0), (5, 7, 7)]
    many = reflrp.explain(graph, x, targets.Voxels(1, voxels), rule)
    assert many.relevance.shape == (6, 1, 6, 8, 8)
    for k, position in enumerate(voxels):  # sample-major rows, each the bits of its own explanation
        single = reflrp.explain(graph, x, targets.Voxel((1, *position)), rule)
        np.testing.assert_array_equal(many.relevance[k::3], single.relevance)
    assert targets.Voxels.from_mask(1, region).pixels[0] == (1, 2, 3)
    with pytest.raises(reflrp.ReflrpError, match=r"target pixel \(6, 0, 0\) is outside the 6x8x8 output"):
        reflrp.explain(graph, x, targets.Voxels(1, [(6, 0, 0)]), rule)
    with pytest.raises(reflrp.ReflrpError, match="target positions have 2 coordinates; the output map"):
        reflrp.explain(graph, x, targets.Pixels(1, [(2, 3)]), rule)
    with pytest.raises(reflrp.ReflrpError, match="positions of one length"):
        targets.Voxels(1, [(1, 2, 3), (1, 2)])


@pytest.mark.parametrize("mode, factor, shape, align_corners", [
    ("nearest", (2, 1, 3), (3, 2, 3, 4), False), ("trilinear", (2, 2, 3), (3, 3, 2, 4), False),
    ("trilinear", (2, 2, 3), (3, 3, 2, 4), True), ("nearest", (3,), (3, 5), False), ("linear", (2,), (3, 5), False),
    ("linear", (2,), (3, 5), True),
])
def test_upsampling_of_volumes_and_signals_matches_pytorch(mode, factor, shape, align_corners, rng):
    ours = reflrp.Upsample(factor, mode=mode, align_corners=align_corners)
    module = nn.Upsample(scale_factor=factor, mode=mode, align_corners=None if mode == "nearest" else align_corners)
    same_as_pytorch(ours, module, rng.normal(size=(2, *shape)), rng, atol=1e-14, adjoint_atol=1e-13)


def test_a_3d_unet_with_trilinear_upsampling_imports_from_pytorch_and_onnx(tmp_path):
    need("onnx")

    class Trilinear(nn.Module):
        def __init__(self):
            super().__init__()
            self.down, self.conv = nn.Conv3d(1, 3, 2, stride=2), nn.Conv3d(4, 2, 3, padding=1)

        def forward(self, x):
            up = F.interpolate(self.down(x), scale_factor=2, mode="trilinear", align_corners=False)
            return self.conv(torch.cat([x, up], 1))

    torch.manual_seed(2)
    model = Trilinear().double().eval()
    x = np.random.default_rng(12).normal(size=(2, 1, 4, 6, 6))
    graph = from_torch(model, x.copy())
    assert any(isinstance(n.layer, reflrp.Upsample) and n.layer.mode == "trilinear" for n in graph.nodes)
    with torch.no_grad():
        expected = model(t(x)).numpy()
    np.testing.assert_allclose(graph(x), expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    e = reflrp.explain(graph, x, targets.Voxel((0, 1, 2, 3)), composites.EpsilonPlus())
    assert np.abs(e.ledger.closure(relative=True)).max() <= 1e-12
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.float(), (t(x).float(),), str(path), dynamo=False, opset_version=17)
    np.testing.assert_allclose(reflrp.from_onnx(path).astype(np.float64)(x), expected, rtol=0,
                               atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("mode", ["constant", "replicate"])
@pytest.mark.parametrize("widths", [(1, 2), (0, 1, 2, 0, 1, 1), (3, 0, 1, 2, 0, 2)])
def test_padding_matches_pytorch_and_routes_relevance(mode, widths, rng):
    x = rng.normal(size=(2, 3, 4, 5, 6))
    layer = reflrp.Pad(widths, mode=mode)
    tx = t(x).requires_grad_(True)
    if mode == "replicate" and len(widths) != 6:  # PyTorch replicates the last 3 axes of a volume only
        expected = t(np.pad(x, layer._widths(5), mode="edge"))
    else:
        expected = F.pad(tx, widths, mode=mode)
    np.testing.assert_array_equal(layer.forward([x]), expected.detach().numpy())
    s = rng.normal(size=expected.shape)
    if expected.requires_grad:
        expected.backward(t(s))
        np.testing.assert_allclose(layer.adjoint(s, [x])[0], tx.grad.numpy(), rtol=1e-13, atol=1e-13)
    kept = layer.adjoint(s, [x])[0].sum() + (0 if layer.lost(s) is None else layer.lost(s).sum())
    np.testing.assert_allclose(kept, s.sum(), rtol=1e-12)  # every output's relevance goes somewhere or is lost


class UpCat(nn.Module):
    """The pattern of MONAI's BasicUNet decoder: the skip is concatenated only when ``torch.jit.isinstance`` says
    it is a tensor (False for a traced value), and odd edges are padded by replication after comparing shapes in
    Python."""

    def __init__(self, channels):
        super().__init__()
        self.up = nn.ConvTranspose3d(channels, channels, 2, stride=2)
        self.conv = nn.Conv3d(2 * channels, channels, 3, padding=1)

    def forward(self, x, skip=None):
        x = self.up(x)
        if skip is not None and torch.jit.isinstance(skip, torch.Tensor):
            widths = [0] * (2 * (len(x.shape) - 2))
            for i in range(len(x.shape) - 2):
                if skip.shape[-i - 1] != x.shape[-i - 1]:
                    widths[2 * i + 1] = 1
            x = self.conv(torch.cat([skip, F.pad(x, widths, "replicate")], dim=1))
        return x


class GuardedUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc, self.down = nn.Conv3d(1, 4, 3, padding=1), nn.Conv3d(4, 4, 2, stride=2)
        self.upcat, self.out = UpCat(4), nn.Conv3d(4, 2, 1)

    def forward(self, x):
        skip = F.relu(self.enc(x))
        return self.out(self.upcat(F.relu(self.down(skip)), skip))


@pytest.mark.parametrize("shape", [(1, 6, 8, 8), (1, 5, 7, 8)], ids=["even", "odd edges"])
def test_skips_guarded_by_torch_jit_isinstance_are_imported_not_dropped(shape):
    """torch.fx cannot see the skip (torch.jit.isinstance of a traced value is False): the import traces with
    the example's values instead, keeps the concatenation and pads odd edges by replication."""
    torch.manual_seed(3)
    model = GuardedUNet().double().eval()
    x = np.random.default_rng(13).normal(size=(2, *shape))
    graph = from_torch(model, x.copy())
    assert sum(isinstance(n.layer, reflrp.Concat) for n in graph.nodes) == 1
    assert any(isinstance(n.layer, reflrp.Pad) and n.layer.mode == "replicate" for n in graph.nodes) == \
        (shape[1] % 2 == 1)
    with torch.no_grad():
        expected = model(t(x)).numpy()
    np.testing.assert_allclose(graph(x), expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    e = reflrp.explain(graph, x, targets.Voxel((1, 2, 3, 3)), composites.EpsilonPlus())
    assert np.abs(e.ledger.closure(relative=True)).max() <= 1e-12


def test_pictures_of_a_volume_and_a_signal(tmp_path):
    need("matplotlib")
    from reflrp import viz

    volume = np.arange(4 * 5 * 6, dtype=float).reshape(4, 5, 6)
    planes = viz.volume_planes(volume, (1, 2, 3))
    np.testing.assert_array_equal(planes["axial"], volume[1])
    np.testing.assert_array_equal(planes["coronal"], volume[:, 2])
    np.testing.assert_array_equal(planes["sagittal"], volume[:, :, 3])
    graph = from_torch(unet3d("batch"), np.zeros((1, 1, 6, 8, 8)))
    x = np.random.default_rng(14).uniform(0, 1, size=(1, 1, 6, 8, 8))
    e = reflrp.explain(graph, x, targets.Voxel((1, 2, 3, 4)), composites.EpsilonPlus())
    viz.save_volume(tmp_path / "volume.png", e.relevance[0], (2, 3, 4), image=x[0])
    signal = np.random.default_rng(15).normal(size=(3, 50))
    viz.save_signal(tmp_path / "signal.png", signal * 0.1, signal=signal, names=["I", "II", "III"])
    for name in ("volume.png", "signal.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(reflrp.ReflrpError, match=r"voxel \(6, 0, 0\) is outside the \(6, 8, 8\) volume"):
        viz.save_volume(tmp_path / "bad.png", e.relevance[0], (6, 0, 0))
    with pytest.raises(reflrp.ReflrpError, match="signal .* and relevance .* differ in shape"):
        viz.save_signal(tmp_path / "bad.png", signal, signal=signal[:2])
    assert not (tmp_path / "bad.png").exists()


@pytest.mark.parametrize("options", [{"stride": 2}, {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2},
                                     {"dilation": 2, "padding": 2}])
def test_transposed_1d_convolutions_match_pytorch(options, rng):
    module = nn.ConvTranspose1d(4, 6, 3, **options).double()
    ours = reflrp.ConvTranspose1d(module.weight.detach().numpy(), module.bias.detach().numpy(), **options)
    same_as_pytorch(ours, module, rng.normal(size=(2, 4, 9)), rng, atol=1e-13)


def test_replicate_padded_convolutions_import_as_a_pad_and_a_convolution():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv3d(1, 3, 3, padding=1, padding_mode="replicate"), nn.ReLU(),
                          nn.Conv3d(3, 2, (3, 1, 2), padding="same", padding_mode="replicate")).double().eval()
    x = np.random.default_rng(16).normal(size=(2, 1, 4, 5, 6))
    graph = from_torch(model, x.copy())
    assert [type(n.layer).__name__ for n in graph.nodes] == ["Pad", "Conv3d", "ReLU", "Pad", "Conv3d"]
    with torch.no_grad():
        np.testing.assert_allclose(graph(x), model(t(x)).numpy(), rtol=1e-12, atol=1e-13)


def test_signal_explanations_do_not_depend_on_the_batch():
    torch.manual_seed(5)
    graph = from_torch(SignalCNN().double().eval(), np.zeros((1, 2, 64)))
    x = np.random.default_rng(17).normal(size=(4, 2, 64))
    rule = composites.EpsilonGammaBox(-3.0, 3.0)
    batch = reflrp.explain(graph, x, 1, rule).relevance
    for b in range(4):
        np.testing.assert_array_equal(reflrp.explain(graph, x[b:b + 1], 1, rule).relevance[0], batch[b])
