"""Layers agree with PyTorch: same argument names, layouts and numbers (forward, and adjoint vs autograd).

Needs torch (the ``test`` extra installs the CPU build 2.13.0)."""

import numpy as np
import pytest

from extras import need

need("torch")

import torch
from torch.nn import functional as F

import reflrp


def t(a):
    return torch.from_numpy(np.array(a))


CASES = [
    (lambda r: torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
     lambda m: reflrp.Conv2d(m.weight.detach().numpy(), m.bias.detach().numpy(), stride=(2, 1), padding=(1, 0),
                             dilation=(1, 2), groups=2)),
    (lambda r: torch.nn.Conv2d(4, 3, 4, padding="same", dilation=1, bias=False),
     lambda m: reflrp.Conv2d(m.weight.detach().numpy(), padding="same")),
    (lambda r: torch.nn.Conv2d(4, 3, (2, 3), padding="same", dilation=(3, 2)),
     lambda m: reflrp.Conv2d(m.weight.detach().numpy(), m.bias.detach().numpy(), padding="same", dilation=(3, 2))),
    (lambda r: torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
     lambda m: reflrp.ConvTranspose2d(m.weight.detach().numpy(), m.bias.detach().numpy(), stride=2, padding=1,
                                      output_padding=1, groups=2)),
    (lambda r: torch.nn.ConvTranspose2d(4, 2, (2, 3), stride=(2, 1), dilation=(1, 2), bias=False),
     lambda m: reflrp.ConvTranspose2d(m.weight.detach().numpy(), stride=(2, 1), dilation=(1, 2))),
    (lambda r: torch.nn.ConvTranspose2d(4, 2, 2, stride=1, dilation=2, output_padding=1),  # output_padding >= stride
     lambda m: reflrp.ConvTranspose2d(m.weight.detach().numpy(), m.bias.detach().numpy(), dilation=2,
                                      output_padding=1)),
    (lambda r: torch.nn.MaxPool2d(3, 2, 1), lambda m: reflrp.MaxPool2d(3, 2, 1)),
    (lambda r: torch.nn.AvgPool2d(3, 2, 1), lambda m: reflrp.AvgPool2d(3, 2, 1)),
    (lambda r: torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False),
     lambda m: reflrp.AvgPool2d(3, 2, 1, count_include_pad=False)),
    (lambda r: torch.nn.AdaptiveAvgPool2d((3, 2)), lambda m: reflrp.AdaptiveAvgPool2d((3, 2))),
    (lambda r: torch.nn.Upsample(scale_factor=2, mode="nearest"), lambda m: reflrp.Upsample(2)),
    (lambda r: torch.nn.Upsample(scale_factor=(3, 2), mode="bilinear", align_corners=False),
     lambda m: reflrp.Upsample((3, 2), mode="bilinear")),
    (lambda r: torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
     lambda m: reflrp.Upsample(2, mode="bilinear", align_corners=True)),
    (lambda r: torch.nn.ZeroPad2d((1, 2, 0, 3)), lambda m: reflrp.ZeroPad2d((1, 2, 0, 3))),
    (lambda r: torch.nn.LeakyReLU(0.2), lambda m: reflrp.LeakyReLU(0.2)),
    (lambda r: torch.nn.PReLU(4, init=0.1), lambda m: reflrp.PReLU(m.weight.detach().numpy())),
    (lambda r: torch.nn.PReLU(1, init=-0.3), lambda m: reflrp.PReLU(m.weight.detach().numpy())),
    (lambda r: torch.nn.Sigmoid(), lambda m: reflrp.Sigmoid()),
    (lambda r: torch.nn.Softmax(dim=1), lambda m: reflrp.Softmax(dim=1)),
    (lambda r: torch.nn.Tanh(), lambda m: reflrp.Tanh()),
    (lambda r: torch.nn.ReLU(), lambda m: reflrp.ReLU()),
    (lambda r: torch.nn.ReLU6(), lambda m: reflrp.ReLU6()),
    (lambda r: torch.nn.Hardsigmoid(), lambda m: reflrp.Hardsigmoid()),
    (lambda r: torch.nn.Hardswish(), lambda m: reflrp.Hardswish()),
    (lambda r: torch.nn.SiLU(), lambda m: reflrp.SiLU()),
    (lambda r: torch.nn.GELU(), lambda m: reflrp.GELU()),
    (lambda r: torch.nn.GELU(approximate="tanh"), lambda m: reflrp.GELU(approximate="tanh")),
    (lambda r: torch.nn.Mish(), lambda m: reflrp.Mish()),
    (lambda r: torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True), lambda m: reflrp.MaxPool2d(3, 2, 1, ceil_mode=True)),
    (lambda r: torch.nn.MaxPool2d(2, ceil_mode=True), lambda m: reflrp.MaxPool2d(2, ceil_mode=True)),
    (lambda r: torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True), lambda m: reflrp.AvgPool2d(3, 2, 1, ceil_mode=True)),
    (lambda r: torch.nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False),
     lambda m: reflrp.AvgPool2d(2, ceil_mode=True, count_include_pad=False)),
    (lambda r: torch.nn.AvgPool2d(3, 3, 1, ceil_mode=True), lambda m: reflrp.AvgPool2d(3, 3, 1, ceil_mode=True)),
]


class Narrowed(torch.nn.Module):
    def forward(self, x):
        return x.narrow(1, 1, 2)


class Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gamma = torch.nn.Parameter(torch.randn(4, 1, 1))

    def forward(self, x):
        return self.gamma * x


CASES += [
    (lambda r: Narrowed(), lambda m: reflrp.Narrow(1, 1, 2)),
    (lambda r: Scaled(), lambda m: reflrp.Scale(m.gamma.detach().numpy())),
]


@pytest.mark.parametrize("k", range(len(CASES)))
def test_forward_and_adjoint_match_pytorch(k, rng):
    torch.manual_seed(k)
    make_torch, make_ours = CASES[k]
    module = make_torch(rng).double()
    ours = make_ours(module)
    x = rng.normal(size=(2, 4, 7, 6))
    tx = t(x).requires_grad_(True)
    expected = module(tx)
    got = ours.forward([x])
    assert got.shape == tuple(expected.shape)
    np.testing.assert_allclose(got, expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    s = rng.normal(size=got.shape)
    expected.backward(t(s))
    if ours.role == "activation":  # no adjoint; its derivative, for the Gradient rule, is PyTorch's backward
        assert not hasattr(ours, "adjoint")
        np.testing.assert_allclose(ours.derivative(x) * s, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
        return
    if ours.role == "softmax":  # its Jacobian transposed, for the Gradient rule
        np.testing.assert_allclose(ours.gradient(x, s), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
        return
    (c,) = ours.adjoint(s, [x])  # affine layers: with their own weight
    np.testing.assert_allclose(c, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", [0, 2, "same", "valid"])
def test_conv1d_and_permute_match_pytorch(padding, rng):
    conv = torch.nn.Conv1d(4, 6, 3, stride=1 if padding == "same" else 2, padding=padding, dilation=2, groups=2)
    conv = conv.double()
    ours = reflrp.Conv1d(conv.weight.detach().numpy(), conv.bias.detach().numpy(), stride=conv.stride,
                         padding=padding, dilation=conv.dilation, groups=2)
    x = rng.normal(size=(2, 4, 11))
    tx = t(x).requires_grad_(True)
    expected = conv(tx)
    np.testing.assert_allclose(ours.forward([x]), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    s = rng.normal(size=expected.shape)
    expected.backward(t(s))
    np.testing.assert_allclose(ours.adjoint(s, [x])[0], tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    permute = reflrp.Permute((0, 2, 3, 1))
    y = rng.normal(size=(2, 3, 4, 5))
    np.testing.assert_array_equal(permute.forward([y]), t(y).permute(0, 2, 3, 1).numpy())
    roll = reflrp.Roll((2, -1, 7), (1, 3, 2))
    ty = t(y).requires_grad_(True)
    rolled = torch.roll(ty, (2, -1, 7), (1, 3, 2))
    np.testing.assert_array_equal(roll.forward([y]), rolled.detach().numpy())
    rolled.backward(t(s := rng.normal(size=y.shape)))
    np.testing.assert_array_equal(roll.adjoint(s, [y])[0], ty.grad.numpy())


def test_every_layer_type_is_compared_with_pytorch():
    compared = {type(make_ours(make_torch(None).double())).__name__ for make_torch, make_ours in CASES}
    # LayerNorm, GroupNorm and the rest: the tests above and below; the 1-D and 3-D layers and Pad:
    # tests/test_volumes.py
    compared |= {"BatchNorm2d", "Linear", "Conv1d", "Permute", "Roll", "Multiply", "LayerNorm", "GroupNorm", "Conv3d",
                 "ConvTranspose3d", "BatchNorm3d", "MaxPool1d", "MaxPool3d", "AvgPool1d", "AvgPool3d",
                 "AdaptiveAvgPool1d", "AdaptiveAvgPool3d", "Pad", "ConvTranspose1d", "MatMul", "RMSNorm", "Embedding",
                 "Mean"}
    # the routing layers and Add are held to their dense matrices in tests/test_layers.py
    routing = {"Identity", "Dropout", "Flatten", "Reshape", "Concat", "Crop", "Add", "BatchNorm1d", "ConstantConcat",
               "Expand"}
    assert set(reflrp.layers.LAYER_TYPES) - routing <= compared


def test_matmul_rmsnorm_embedding_and_mean_match_pytorch(rng):
    a, b = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 3, 5, 2))
    ta, tb = t(a).requires_grad_(True), t(b).requires_grad_(True)
    expected = torch.matmul(ta, tb)
    layer = reflrp.MatMul()
    np.testing.assert_allclose(layer.forward([a, b]), expected.detach().numpy(), rtol=1e-13, atol=1e-13)
    s = rng.normal(size=expected.shape)
    expected.backward(t(s))
    for got, want in zip(layer.partials(s, [a, b]), (ta.grad, tb.grad)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12)
    table = rng.normal(size=(7, 3))
    ids = np.array([[0, 6, 2, 2]])
    np.testing.assert_array_equal(reflrp.Embedding(table).forward([ids.astype(np.float64)]),
                                  torch.nn.functional.embedding(torch.from_numpy(ids), t(table)).numpy())
    x = rng.normal(size=(2, 3, 4))
    np.testing.assert_allclose(reflrp.Mean((1,)).forward([x]), t(x).mean(1).numpy(), rtol=1e-14)
    norm = torch.nn.RMSNorm(5, eps=1e-5, elementwise_affine=False).double()
    x = rng.normal(size=(2, 3, 5))
    tx = t(x).requires_grad_(True)
    expected = norm(tx)
    ours = reflrp.RMSNorm((5,), eps=1e-5)
    np.testing.assert_allclose(ours.forward([x]), expected.detach().numpy(), rtol=1e-13, atol=1e-13)
    r = rng.normal(size=x.shape)
    expected.backward(t(r))
    np.testing.assert_allclose(ours.gradient(x, r), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_batchnorm_and_linear_match_pytorch(rng):
    bn = torch.nn.BatchNorm2d(4).double().eval()
    with torch.no_grad():
        bn.running_mean.copy_(t(rng.normal(size=4)))
        bn.running_var.copy_(t(rng.uniform(0.5, 2, 4)))
        bn.weight.copy_(t(rng.normal(size=4)))
        bn.bias.copy_(t(rng.normal(size=4)))
    ours = reflrp.BatchNorm2d(bn.running_mean.numpy(), bn.running_var.numpy(), bn.weight.detach().numpy(),
                              bn.bias.detach().numpy(), eps=bn.eps)
    x = rng.normal(size=(2, 4, 3, 3))
    np.testing.assert_allclose(ours.forward([x]), bn(t(x)).detach().numpy(), rtol=1e-12, atol=1e-12)
    fc = torch.nn.Linear(5, 3).double()
    ours = reflrp.Linear(fc.weight.detach().numpy(), fc.bias.detach().numpy())
    x = rng.normal(size=(4, 5))
    np.testing.assert_allclose(ours.forward([x]), fc(t(x)).detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shapes", [((4, 7, 6), (4, 1, 1)), ((4, 1, 1), (4, 7, 6)), ((4, 7, 6), (4, 7, 6))])
def test_multiply_matches_pytorch_with_broadcasting(shapes, rng):
    a, b = (rng.normal(size=(2, *shape)) for shape in shapes)
    np.testing.assert_array_equal(reflrp.Multiply().forward([a, b]), (t(a) * t(b)).numpy())
    assert reflrp.Multiply().output_shape(*shapes) == (4, 7, 6)


@pytest.mark.parametrize("shapes", [((4, 7, 6), (4, 1, 1)), ((4, 1, 1), (4, 7, 6))])
def test_the_gradient_rule_is_autograd_on_products_activations_and_scales(shapes, rng):
    """Gradient() reproduces what autograd does through a layer without a rule (Zennit on functions)."""
    a, b = (rng.normal(size=(2, *shape)) for shape in shapes)
    ta, tb = t(a).requires_grad_(True), t(b).requires_grad_(True)
    r = rng.normal(size=(2, 4, 7, 6))
    (ta * tb).backward(t(r))
    got = reflrp.rules.Gradient().propagate(reflrp.Multiply(), [a, b], None, r).r_in
    np.testing.assert_allclose(got[0], ta.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(got[1], tb.grad.numpy(), rtol=1e-12)
    x, weight = rng.normal(size=(2, 4, 7, 6)), rng.normal(size=(4, 1, 1))
    tx = t(x).requires_grad_(True)
    torch.nn.functional.silu(t(weight) * tx).backward(t(r))
    scaled = reflrp.Scale(weight).forward([x])
    (through_silu,) = reflrp.rules.Gradient().propagate(reflrp.SiLU(), [scaled], None, r).r_in
    (through_scale,) = reflrp.rules.Gradient().propagate(reflrp.Scale(weight), [x], None, through_silu).r_in
    np.testing.assert_allclose(through_scale, tx.grad.numpy(), rtol=1e-12)


def test_layernorm_and_linear_on_the_last_axis_match_pytorch(rng):
    x = rng.normal(size=(2, 3, 5, 6))
    ours = reflrp.LayerNorm((5, 6), eps=1e-3).forward([x])
    expected = torch.nn.functional.layer_norm(t(x), (5, 6), eps=1e-3).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)
    fc = torch.nn.Linear(6, 4).double()
    linear = reflrp.Linear(fc.weight.detach().numpy(), fc.bias.detach().numpy())
    tx = t(x).requires_grad_(True)
    out = fc(tx)
    np.testing.assert_allclose(linear.forward([x]), out.detach().numpy(), rtol=1e-12, atol=1e-12)
    s = rng.normal(size=out.shape)
    out.backward(t(s))
    np.testing.assert_allclose(linear.adjoint(s, [x])[0], tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    weight, bias = rng.normal(size=(6,)), rng.normal(size=(6,))
    np.testing.assert_array_equal(reflrp.Scale(weight, bias).forward([x]), (t(x) * t(weight) + t(bias)).numpy())
    np.testing.assert_allclose(reflrp.GroupNorm(3, eps=1e-3).forward([x]),
                               torch.nn.functional.group_norm(t(x), 3, eps=1e-3).numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("eps", [1e-5, 1e-1])
def test_the_gradient_rule_on_a_normalisation_is_autograd(eps, rng):
    """Gradient() on LayerNorm and GroupNorm is the normalisation's Jacobian transposed, as autograd computes it
    (Zennit on a normalisation it has no rule for); explanations of one sample (``sample``) read its own rows."""
    x = rng.normal(size=(2, 6, 5, 4)) * 3 + 1
    r = rng.normal(size=(3, 6, 5, 4))
    sample = np.array([1, 0, 1])
    for ours, theirs in ((reflrp.LayerNorm((5, 4), eps=eps), lambda v: F.layer_norm(v, (5, 4), eps=eps)),
                         (reflrp.GroupNorm(3, eps=eps), lambda v: F.group_norm(v, 3, eps=eps))):
        tx = t(x[sample]).requires_grad_(True)
        theirs(tx).backward(t(r))
        (got,) = reflrp.rules.Gradient().propagate(ours, [x], None, r, sample=sample).r_in
        np.testing.assert_allclose(got, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
