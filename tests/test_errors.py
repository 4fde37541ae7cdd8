"""Bad input gets a clear error naming the layer (type and node) or argument, raised before any kernel runs."""

import numpy as np
import pytest

import reflrp
from reflrp import kernels, rules
from reflrp.digits import make_digits
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
        (lambda r: reflrp.Upsample(2, mode="bicubic"), "mode must be 'nearest', 'linear', 'bilinear' or 'trilinear'"),
        (lambda r: reflrp.Upsample(2, mode="trilinear"), r"mode='trilinear' needs 3 spatial axes; scale_factor \(2, 2"),
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
    with pytest.raises(ReflrpError, match=r"Linear 'fc': input has 3 features on its last axis.*add a Flatten"):
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


# The probes of the hardening issue: each misuse is a ReflrpError naming the argument, never a raw Python error
# and never a silently wrong result.
@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: reflrp.targets.Region(0.9, np.ones((2, 2), bool)), "cls must be an integer, got 0.9"),
        (lambda: reflrp.targets.ArgmaxRegion(0.7), "cls must be an integer, got 0.7"),
        (lambda: reflrp.targets.Pixels(0.5, [(1, 1)]), "cls must be an integer, got 0.5"),
        (lambda: reflrp.targets.Class(0.7), "target Class: k must be an integer"),
        (lambda: reflrp.targets.Class(True), "target Class: k must be an integer"),
        (lambda: reflrp.targets.Pixels(0, 5), "target Pixels: pixels must be a non-empty list of"),
        (lambda: reflrp.targets.Classes(np.array([0.5, 1.0])), "ks must be a 1-D integer array"),
        (lambda: reflrp.Concat(axis=True), "Concat: axis must be an integer, got True"),
        (lambda: reflrp.Conv2d(np.ones((1, 1, 1, 1)), stride=2.0), r"Conv2d: stride must be an integer or a pair"),
        (lambda: reflrp.AvgPool2d(2, count_include_pad=1), "count_include_pad must be True or False"),
        (lambda: reflrp.Upsample(2, align_corners="yes"), "align_corners must be True or False"),
        (lambda: reflrp.Upsample(100000000), "scale_factor must be <= 16777216"),
        (lambda: reflrp.Dropout(True), "Dropout: p must be a number"),
        (lambda: rules.Epsilon(epsilon=True), "epsilon must be a number"),
        (lambda: rules.AlphaBeta(np.float32(2), np.int64(1), zero_bias=np.float64(0)), "zero_bias must be True or Fal"),
        (lambda: reflrp.composites.EpsilonPlus(epsilon="a"), "EpsilonPlus: epsilon must be a number"),
        (lambda: reflrp.composites.Composite(layer_map=[(int, rules.Epsilon())]), "each entry must be"),
    ],
)
def test_misuse_of_the_api_is_refused_naming_the_argument(make, message):
    with pytest.raises(ReflrpError, match=message):
        make()


def test_numpy_scalars_are_accepted_wherever_python_numbers_are():
    assert rules.Epsilon(np.float32(0.25)) == rules.Epsilon(0.25)
    conv = reflrp.Conv2d(np.ones((2, 1, 3, 3)), stride=np.int64(2), groups=np.int32(1))
    assert conv.stride == (2, 2) and type(conv.stride[0]) is int and type(conv.groups) is int
    assert reflrp.targets.Pixels(np.int64(0), [(np.int32(1), 2)]).pixels == ((1, 2),)
    assert rules.AlphaBeta(np.float64(3), np.int64(2)).alpha == 3.0
    assert reflrp.composites.EpsilonPlus(np.float32(0.5)) == reflrp.composites.EpsilonPlus(0.5)


def test_misused_results_are_refused_naming_the_argument(rng):
    m = model(rng)
    x = rng.normal(size=(2, 2, 5, 5))
    e = reflrp.explain(m, x, 0, rules.Epsilon(), keep=["relu"])
    with pytest.raises(ReflrpError, match="keep must be True, False, None or a list of node names, got 5"):
        reflrp.explain(m, x, 0, rules.Epsilon(), keep=5)
    with pytest.raises(ReflrpError, match="ledger.table: sample 5 is out of range: the ledger holds 2"):
        e.ledger.table(5)
    with pytest.raises(ReflrpError, match="ledger.table: sample must be an integer"):
        e.ledger.table(0.5)
    with pytest.raises(ReflrpError, match="ledger.row: no node 'nope'"):
        e.ledger.row("nope")
    with pytest.raises(ReflrpError, match="check_cut: names must be a list of node names, got 'relu'"):
        e.check_cut("relu")
    with pytest.raises(ReflrpError, match="skip_zero must be True or False"):
        e.normalized_aggregate(skip_zero="no")


def test_a_forward_overflow_is_reported_as_such_naming_the_node(rng):
    m = model(rng)
    x = np.full((1, 2, 5, 5), 1e308)  # finite, but any sum of a few overflows
    with pytest.raises(ReflrpError, match=r"Conv2d 'conv1': the forward pass overflowed"):
        reflrp.explain(m, x, 0, rules.Epsilon())


def test_a_model_too_large_for_memory_is_refused_before_allocating(no_kernels):
    huge = reflrp.Sequential([("up", reflrp.Upsample(100000)), ("pool", reflrp.AdaptiveAvgPool2d(1)),
                              ("flat", reflrp.Flatten())])
    with pytest.raises(ReflrpError, match=r"this batch needs at least .* GiB.*largest tensor is Upsample 'up''s"):
        reflrp.explain(huge, np.ones((1, 1, 4, 4)), 0, rules.Epsilon())
    padded = reflrp.Sequential([("conv", reflrp.Conv2d(np.ones((1, 1, 1, 1)), padding=10**6))])
    with pytest.raises(ReflrpError, match=r"needs at least .* GiB"):
        reflrp.explain(padded, np.ones((1, 1, 4, 4)), (0, 0, 0), rules.Epsilon())


def test_a_forward_pass_that_overflows_is_an_error_not_inf(rng):
    with pytest.raises(ReflrpError, match=r"Conv2d 'conv1': the forward pass overflowed"):
        model(rng)(np.full((1, 2, 5, 5), 1e308))


def _m(rng):
    return model(rng)


# Found by probing the API with about 1,200 misuses (each was a raw Python error, a silent wrong result or a
# crash before this list was fixed).
@pytest.mark.parametrize(
    "call,message",
    [
        (lambda r, t: reflrp.save(_m(r), True), "save: path must be a path"),
        (lambda r, t: reflrp.save(_m(r), 3), "save: path must be a path"),
        (lambda r, t: reflrp.save(_m(r), t / "m", metadata={1: "a"}), "metadata keys must be strings"),
        (lambda r, t: reflrp.load(t, max_bytes=1), "is a directory"),
        (lambda r, t: reflrp.io.read(reflrp.models.DIGITS_UNET_FILE, max_bytes=True), "max_bytes must be an integ"),
        (lambda r, t: reflrp.explain(_m(r), r.normal(size=(1, 2, 5, 5)), 0, rules.Epsilon(), keep=True)
         .check_cut(["relu", "relu"]), "'relu' is named twice"),
        (lambda r, t: reflrp.Add()(np.ones((1, 1, 2, 2)), np.ones((2, 1, 2, 2))), "input 1 holds 2 samples"),
        (lambda r, t: reflrp.Add()(np.ones((1, 2)), np.ones((1, 2), np.float32)), "input 1 is float32; use one"),
        (lambda r, t: _m(r).shapes((2.5, 5, 5)), "input_shape must be an integer"),
        (lambda r, t: reflrp.Linear(np.ma.masked_invalid(np.array([[np.nan, 1.0]]))), "Linear: weight is a masked"),
        (lambda r, t: reflrp.explain(_m(r), np.ma.masked_invalid(np.ones((1, 2, 5, 5))), 0, rules.Epsilon()),
         "x is a masked array"),
        (lambda r, t: reflrp.Linear(np.zeros((3, 0))), r"Linear: weight is empty \(shape \(3, 0\)\)"),
        (lambda r, t: reflrp.AdaptiveAvgPool2d(1)(np.ones((1, 1, 0, 0))), "no empty axis"),
        (lambda r, t: reflrp.Linear(np.full((1, 2), 1e308))(np.full((1, 2), 1e308)), "Linear: the output overflowed"),
        (lambda r, t: reflrp.BatchNorm2d(np.zeros(1), np.full(1, 1e-300), np.full(1, 1e300), eps=0.0),
         "BatchNorm2d: weight / sqrt"),
        (lambda r, t: reflrp.explain(_m(r), r.normal(size=(2, 2, 5, 5)), [True, 2], rules.Epsilon()),
         "one integer class per sample"),
        (lambda r, t: reflrp.targets.Classes([True, 2]), "one integer class per sample"),
        (lambda r, t: reflrp.targets.Pixels.from_mask(0, np.array([[0, 2]])), "mask must be a boolean"),
        (lambda r, t: reflrp.explain(reflrp.models.small_unet(reflrp.models.random_unet_parameters()),
                                     np.zeros((1, 1, 28, 28)), reflrp.targets.ArgmaxRegion(0), rules.Epsilon()),
         r"ArgmaxRegion\(0\) selects no pixel in sample 0"),
        (lambda r, t: _m(r).astype(None), "astype: dtype must be float32 or float64, got None"),
        (lambda r, t: reflrp.ReLU().astype("garbage"), "ReLU.astype: dtype must be float32 or float64"),
        (lambda r, t: reflrp.explain(_m(r), r.normal(size=(1, 2, 5, 5)), 0, rules.Epsilon()).ledger.closure("no"),
         "closure: relative must be True or False"),
        (lambda r, t: reflrp.Linear(None), "Linear: weight is required"),
        (lambda r, t: _m(r).replace(["conv1"]), "replace: layers must be a dict"),
        (lambda r, t: reflrp.explain(_m(r), r.normal(size=(1, 2, 5, 5)), 0, rules.Epsilon(), keep=[[1]]),
         r"keep: \[1\] is not a node name"),
        (lambda r, t: reflrp.explain(_m(r), r.normal(size=(1, 2, 5, 5)), 0, rules.Epsilon(), seed=np.array(["a"])),
         "seed must be 'value' or 'unit'"),
        (lambda r, t: reflrp.composites.Composite(names={1: rules.Epsilon()}), "got the key 1"),
        (lambda r, t: reflrp.explain(_m(r), r.normal(size=(1, 2, 5, 5)), reflrp.targets.Target(), rules.Epsilon()),
         "Target is not a usable target"),
        (lambda r, t: reflrp.explain(_m(r), r.normal(size=(1, 2, 5, 5)), 0, rules.Epsilon),
         r"got the class Epsilon; did you mean Epsilon\(...\)\?"),
        (lambda r, t: reflrp.canonize.merge_batchnorm(reflrp.Sequential([
            ("conv", reflrp.Conv2d(np.ones((4, 1, 3, 3)))), ("bn", reflrp.BatchNorm2d(np.zeros(3), np.ones(3)))])),
         "BatchNorm2d 'bn': has 3 channels but Conv2d 'conv' has 4 outputs"),
        (lambda r, t: reflrp.Upsample(2**24)(np.ones((1, 1, 64, 64))), "Upsample: the output needs at least"),
        (lambda r, t: _m(r).trace("abc"), "x must be a numpy array"),
        (lambda r, t: reflrp.Node("a", reflrp.ReLU), r"got the class ReLU; did you mean ReLU\(...\)\?"),
        (lambda r, t: make_digits(2, seed=-1), "make_digits: seed must be >= 0"),
        (lambda r, t: reflrp.explain(reflrp.Sequential([reflrp.Linear(np.eye(2))]), np.full((1, 2), 1e308),
                                     np.array([True, True]), rules.Epsilon()), "sums beyond the range of float64"),
    ],
)
def test_probed_misuses_are_refused_clearly(call, message, rng, tmp_path):
    with pytest.raises(ReflrpError, match=message):
        call(rng, tmp_path)


def test_probed_valid_inputs_are_accepted(rng, tmp_path):
    assert rules.AlphaBeta(2.3, 1.3).alpha == 2.3  # alpha - beta = 1 up to rounding
    reflrp.save(model(rng), tmp_path / "m.reflrp", metadata={"seed": np.int64(3), "loss": np.float32(0.5)})
    assert reflrp.io.read(tmp_path / "m.reflrp")[1] == {"seed": 3, "loss": 0.5}
    e = reflrp.explain(model(rng), rng.normal(size=(1, 2, 5, 5)), 0, rules.Epsilon(), keep=np.True_)
    assert "relu" in e.relevances
    big_endian = np.ones((3, 2), ">f8")
    assert reflrp.Linear(big_endian).weight.dtype == np.float64  # parameters are copied to native order


def test_alpha_beta_pairs_that_cannot_resolve_alpha_minus_beta_are_refused():
    for alpha, beta in ((1e17 + 1, 1e17), (1e308, 1e308 - 1), (3.0, 1.0)):
        with pytest.raises(ReflrpError, match="alpha - beta must be 1"):
            rules.AlphaBeta(alpha, beta)
    rules.AlphaBeta(2.3, 1.3)  # 0.9999999999999998 after rounding: accepted


def test_a_seed_beyond_float32_is_refused_without_warnings(rng):
    import warnings

    model = reflrp.Sequential([reflrp.Linear(rng.normal(size=(3, 4)).astype(np.float32))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ReflrpError, match="the seed has values beyond the range of float32"):
            reflrp.explain(model, np.ones((1, 4), np.float32), reflrp.targets.Seed(np.full(3, 1e300)),
                           rules.Epsilon())
