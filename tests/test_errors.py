"""Bad input gets a clear error naming the layer (type and node) or argument, raised before any kernel runs."""

import numpy as np
import pytest

import reflrp
from reflrp import kernels, rules
from reflrp.errors import ReflrpError


@pytest.fixture
def no_kernels(monkeypatch):
    """Make every kernel fail loudly, to prove errors come first."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a kernel ran before the input was validated")

    for name in kernels.__all__:
        monkeypatch.setattr(kernels, name, forbidden)


def model(rng):
    return reflrp.Sequential([
        ("conv1", reflrp.Conv2d(rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4), padding=1)),
        ("relu", reflrp.ReLU()),
        ("flat", reflrp.Flatten()),
        ("fc", reflrp.Linear(rng.normal(size=(3, 4 * 5 * 5)))),
    ])


@pytest.mark.parametrize(
    "make_x,message",
    [
        (lambda r: r.normal(size=(1, 3, 5, 5)), "Conv2d 'conv1': input has 3 channels, weight expects 2"),
        (lambda r: r.normal(size=(1, 2, 6, 5)), "Linear 'fc': input has 120 features, weight expects 100"),
        (lambda r: r.normal(size=(2, 5, 5)), r"Conv2d 'conv1': input must be \(N, C, H, W\)"),
        (lambda r: np.full((1, 2, 5, 5), np.nan), "x contains NaN or Inf"),
        (lambda r: np.full((1, 2, 5, 5), np.inf), "x contains NaN or Inf"),
        (lambda r: np.ones((1, 2, 5, 5), dtype=np.int64), "x must be float32 or float64, got int64"),
        (lambda r: np.ones((1, 2, 5, 5), dtype=np.float32), r"Conv2d 'conv1': parameters are float64 but x is float32"),
        (lambda r: [[1.0]], "x must be a numpy array"),
        (lambda r: np.ones((0, 2, 5, 5)), "N >= 1"),
    ],
)
def test_bad_inputs(make_x, message, rng, no_kernels):
    m = model(rng)
    with pytest.raises(ReflrpError, match=message):
        reflrp.explain(m, make_x(rng), target=0, rules=rules.Epsilon())


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda r: reflrp.Conv2d(np.full((2, 1, 3, 3), np.nan)), "Conv2d: weight contains NaN or Inf"),
        (lambda r: reflrp.Conv2d(r.normal(size=(2, 3, 3))), r"Conv2d: weight must have 4 dimension\(s\)"),
        (lambda r: reflrp.Conv2d(r.normal(size=(3, 1, 3, 3)), groups=2), "out_channels 3 is not divisible by groups 2"),
        (lambda r: reflrp.Conv2d(r.normal(size=(2, 1, 3, 3)), r.normal(size=3)), "bias has 3 entries"),
        (lambda r: reflrp.Conv2d(r.normal(size=(2, 1, 3, 3)), stride=2, padding="same"), "'same' needs stride 1"),
        (lambda r: reflrp.Conv2d(r.normal(size=(2, 1, 3, 3)), padding="full"), "padding must be an int, a pair"),
        (lambda r: reflrp.Conv2d(r.normal(size=(2, 1, 3, 3)), stride=0), "stride must be >= 1"),
        (lambda r: reflrp.Linear(r.normal(size=(2, 3)).astype(np.float32), r.normal(size=2)), "bias is float64"),
        (lambda r: reflrp.Linear(r.normal(size=(2, 3)).astype(np.int32)), "weight must be float32 or float64"),
        (lambda r: reflrp.Linear([[1.0]]), "weight must be a numpy array"),
        (lambda r: reflrp.ConvTranspose2d(r.normal(size=(2, 1, 3, 3)), output_padding=1), "output_padding 1"),
        (lambda r: reflrp.BatchNorm2d(np.zeros(3), -np.ones(3)), "running_var \\+ eps must be > 0"),
        (lambda r: reflrp.BatchNorm2d(np.zeros(3), np.ones(2)), "running_var has 2 entries"),
        (lambda r: reflrp.MaxPool2d(2, padding=2), "padding"),
        (lambda r: reflrp.Upsample(1.5), "scale_factor must be an int"),
        (lambda r: reflrp.Upsample(2, mode="bicubic"), "mode must be 'nearest' or 'bilinear'"),
        (lambda r: reflrp.Crop("x"), "cropping must be an int"),
        (lambda r: reflrp.Dropout(1.0), r"p must be in \[0, 1\)"),
    ],
)
def test_bad_layers(make, message, rng):
    with pytest.raises(ReflrpError, match=message):
        make(rng)


def test_layers_that_do_not_chain(rng, no_kernels):
    m = reflrp.Sequential([("conv", reflrp.Conv2d(rng.normal(size=(2, 1, 3, 3)))),
                           ("fc", reflrp.Linear(rng.normal(size=(2, 18))))])
    with pytest.raises(ReflrpError, match=r"Linear 'fc': input must be \(N, in_features\).*add a Flatten"):
        m(rng.normal(size=(1, 1, 5, 5)))


@pytest.mark.parametrize(
    "rule_map,message",
    [
        ({"conv1": rules.WinnerTakesAll()}, "Conv2d 'conv1': rule WinnerTakesAll applies to MaxPool2d only"),
        ({"fc": rules.Pass()}, "Linear 'fc': rule Pass needs a single-input layer"),
        ({"flat": rules.Epsilon()}, "Flatten 'flat': rule Epsilon applies to layers with weights"),
        ({"relu": rules.Norm()}, "ReLU 'relu': rule Norm applies to parameter-free linear layers"),
        ({"conv1": rules.ZBox(np.zeros((3, 1, 1)), 1.0)}, r"Conv2d 'conv1': ZBox: low of shape \(3, 1, 1\)"),
        ({"nope": rules.Epsilon()}, "rules are given for nodes that do not exist: nope"),
    ],
)
def test_rules_that_do_not_apply(rule_map, message, rng, no_kernels):
    composite = reflrp.composites.Composite(layer_map=[(reflrp.layers.AffineLayer, rules.Epsilon())], names=rule_map)
    with pytest.raises(ReflrpError, match=message):
        reflrp.explain(model(rng), rng.normal(size=(1, 2, 5, 5)), target=0, rules=composite)


def test_rules_argument_must_be_a_rule(rng):
    with pytest.raises(ReflrpError, match="rules must be a reflrp rule or composite, got str"):
        reflrp.explain(model(rng), rng.normal(size=(1, 2, 5, 5)), 0, "epsilon")
    with pytest.raises(ReflrpError, match="seed must be 'value' or 'unit'"):
        reflrp.explain(model(rng), rng.normal(size=(1, 2, 5, 5)), 0, rules.Epsilon(), seed="one")
    with pytest.raises(ReflrpError, match="model must be a reflrp Graph"):
        reflrp.explain(lambda v: v, rng.normal(size=(1, 2, 5, 5)), 0, rules.Epsilon())


def test_calling_a_layer_directly_checks_its_input(rng, no_kernels):
    conv = reflrp.Conv2d(rng.normal(size=(2, 3, 3, 3)))
    with pytest.raises(ReflrpError, match="Conv2d: input has 1 channels, weight expects 3"):
        conv(rng.normal(size=(1, 1, 5, 5)))
    with pytest.raises(ReflrpError, match="Conv2d: parameters are float64 but the input is float32"):
        conv(np.ones((1, 3, 5, 5), np.float32))
    with pytest.raises(ReflrpError, match="Add: takes two or more input"):
        reflrp.Add()(np.ones((1, 2)))
    with pytest.raises(ReflrpError, match="ReLU: input contains NaN"):  # the check explain's input gets too
        reflrp.ReLU()(np.full((1, 2), np.nan))
