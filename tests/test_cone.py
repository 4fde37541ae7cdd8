"""The receptive cone (reflrp.cone): layers cut to a box compute exactly the whole layer's values there, the cone
holds every non-zero relevance, and explanations computed on it equal the whole computation's."""

from __future__ import annotations

import numpy as np
import pytest

import reflrp
from reflrp import boxes, composites, rules, targets
from reflrp.digits import make_digits
from reflrp.errors import ReflrpError
from reflrp.explain import plan


def _random_box(rng, shape):
    """A box of a per-sample shape: the channel axis whole, a random span of every other axis."""
    spans = []
    for n in shape[1:]:
        lo = int(rng.integers(0, n))
        spans.append((lo, int(rng.integers(lo + 1, n + 1))))
    return ((0, shape[0]), *spans)


LAYERS = {
    "conv": (lambda r: reflrp.Conv2d(r.normal(size=(4, 3, 3, 3)), r.normal(size=4), padding=1), [(3, 9, 8)]),
    "conv-strided-dilated": (lambda r: reflrp.Conv2d(r.normal(size=(4, 3, 3, 2)), None, stride=(2, 3),
                                                     padding=(2, 1), dilation=(2, 1)), [(3, 11, 13)]),
    "conv-grouped-same": (lambda r: reflrp.Conv2d(r.normal(size=(6, 1, 4, 3)), None, padding="same", groups=3),
                          [(3, 7, 9)]),
    "conv-depthwise": (lambda r: reflrp.Conv2d(r.normal(size=(3, 1, 3, 3)), None, stride=2, padding=1, groups=3),
                       [(3, 9, 10)]),
    "conv-pointwise": (lambda r: reflrp.Conv2d(r.normal(size=(5, 3, 1, 1)), r.normal(size=5)), [(3, 6, 7)]),
    "conv3d": (lambda r: reflrp.Conv3d(r.normal(size=(2, 2, 3, 3, 3)), None, padding=1, stride=(1, 2, 1)),
               [(2, 5, 6, 4)]),
    "conv1d": (lambda r: reflrp.Conv1d(r.normal(size=(3, 2, 3)), r.normal(size=3), stride=2, padding=2,
                                       dilation=2), [(2, 15)]),
    "conv1d-same": (lambda r: reflrp.Conv1d(r.normal(size=(3, 2, 4)), None, padding="same"), [(2, 9)]),
    "transposed-1d": (lambda r: reflrp.ConvTranspose1d(r.normal(size=(2, 3, 3)), None, stride=2, padding=1),
                      [(2, 7)]),
    "maxpool-1d": (lambda r: reflrp.MaxPool1d(3, 2), [(2, 11)]),
    "upsample-1d": (lambda r: reflrp.Upsample((3,)), [(2, 5)]),
    "transposed": (lambda r: reflrp.ConvTranspose2d(r.normal(size=(3, 4, 2, 2)), r.normal(size=4), stride=2),
                   [(3, 5, 6)]),
    "transposed-padded": (lambda r: reflrp.ConvTranspose2d(r.normal(size=(3, 2, 3, 4)), None, stride=(2, 3),
                                                           padding=(1, 2), output_padding=(1, 2)), [(3, 5, 4)]),
    "transposed-dilated": (lambda r: reflrp.ConvTranspose2d(r.normal(size=(2, 2, 3, 3)), None, stride=1,
                                                            padding=1, dilation=2), [(2, 6, 5)]),
    "transposed-3d": (lambda r: reflrp.ConvTranspose3d(r.normal(size=(2, 2, 2, 3, 2)), None, stride=2),
                      [(2, 3, 4, 3)]),
    "maxpool": (lambda r: reflrp.MaxPool2d(2), [(3, 8, 9)]),
    "maxpool-padded": (lambda r: reflrp.MaxPool2d(3, 2, 1), [(2, 9, 9)]),
    "avgpool-ceil": (lambda r: reflrp.AvgPool2d(3, 2, ceil_mode=True), [(2, 8, 8)]),
    "upsample-nearest": (lambda r: reflrp.Upsample((2, 3)), [(2, 4, 3)]),
    "upsample-bilinear": (lambda r: reflrp.Upsample((3, 2), mode="bilinear"), [(2, 5, 4)]),
    "upsample-align-corners": (lambda r: reflrp.Upsample(3, mode="bilinear", align_corners=True), [(2, 4, 5)]),
    "upsample-trilinear": (lambda r: reflrp.Upsample((2, 2, 3), mode="trilinear"), [(2, 3, 4, 2)]),
    "upsample-linear": (lambda r: reflrp.Upsample((4,), mode="linear"), [(2, 6)]),
    "zeropad": (lambda r: reflrp.ZeroPad2d((1, 2, 0, 3)), [(2, 5, 4)]),
    "crop": (lambda r: reflrp.Crop(((1, 2), (0, 3))), [(2, 7, 8)]),
    "batchnorm": (lambda r: reflrp.BatchNorm2d(r.normal(size=3), r.uniform(0.5, 2, 3), r.normal(size=3),
                                               r.normal(size=3)), [(3, 5, 6)]),
    "scale": (lambda r: reflrp.Scale(r.normal(size=(3, 1, 1)), r.normal(size=(3, 1, 1))), [(3, 5, 6)]),
    "relu": (lambda r: reflrp.ReLU(), [(3, 5, 6)]),
    "softmax-channels": (lambda r: reflrp.Softmax(dim=1), [(3, 5, 6)]),
    "add": (lambda r: reflrp.Add(), [(3, 5, 6), (3, 5, 6)]),
    "multiply-gate": (lambda r: reflrp.Multiply(), [(3, 5, 6), (3, 1, 1)]),
    "concat": (lambda r: reflrp.Concat(1), [(2, 5, 6), (3, 5, 6)]),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_window_computes_the_whole_layers_values_and_its_adjoint_reaches_no_further(name):
    rng = np.random.default_rng(sorted(LAYERS).index(name))
    make, in_shapes = LAYERS[name]
    layer = make(rng)
    inputs = [rng.normal(size=(2, *s)) for s in in_shapes]
    whole = layer.forward(inputs)
    out_shape = whole.shape[1:]
    cut_any = False
    for _ in range(25):
        box = _random_box(rng, out_shape)
        answer = layer.window(box, in_shapes)
        if answer is None:
            continue
        cut_any = True
        in_boxes, cut = answer[:2]
        grown = answer[2] if len(answer) == 3 else box
        assert boxes.union(grown, box) == grown  # the computed box holds the asked one
        parts = [boxes.crop(a, b, boxes.whole(s)) for a, b, s in zip(inputs, in_boxes, in_shapes)]
        got = cut.forward(parts)
        expected = boxes.crop(whole, grown, boxes.whole(out_shape))
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)
        if layer.role in ("affine", "linear", "routing", "selection"):
            s = rng.normal(size=got.shape)
            c_cut = cut.adjoint(s, parts)
            c_whole = layer.adjoint(boxes.embed(s, grown, boxes.whole(out_shape)), inputs)
            for got_k, whole_k, b, shape in zip(c_cut, c_whole, in_boxes, in_shapes):
                inner = boxes.crop(whole_k, b, boxes.whole(shape))
                np.testing.assert_allclose(got_k, inner, rtol=1e-13, atol=1e-13)
                outside = whole_k.copy()
                outside[boxes.inside(b, boxes.whole(shape))] = 0
                assert not outside.any()  # nothing outside the read box receives anything
    expect_cut = name not in ("maxpool-padded", "avgpool-ceil")
    assert cut_any or not expect_cut


def test_layers_that_read_beyond_a_position_are_not_cut():
    rng = np.random.default_rng(0)
    box = ((0, 3), (1, 3), (0, 2))
    for layer, shapes in [
        (reflrp.AdaptiveAvgPool2d(2), [(3, 4, 4)]),
        (reflrp.Softmax(dim=2), [(3, 4, 4)]),
        (reflrp.Scale(rng.normal(size=(3, 4, 1))), [(3, 4, 4)]),
        (reflrp.Concat(2), [(3, 2, 4), (3, 2, 4)]),
        (reflrp.GroupNorm(1, 3), [(3, 4, 4)]),
    ]:
        assert layer.window(box, shapes) is None, layer


def _unet(dtype=np.float64, seed=0):
    """A small U-Net with every layer the cone cuts: padded and valid convolutions, BatchNorm, max pooling, a
    transposed convolution, nearest upsampling, zero padding, a crop, concatenation and a sigmoid."""
    rng = np.random.default_rng(seed)

    def conv(cin, cout, k=3, **kw):
        return reflrp.Conv2d(rng.normal(size=(cout, cin, k, k)) / (cin * k), rng.normal(size=cout) / 10, **kw)

    def bn(c):
        return reflrp.BatchNorm2d(rng.normal(size=c) / 5, rng.uniform(0.5, 2, c), rng.uniform(0.5, 1.5, c),
                                  rng.normal(size=c) / 5)

    nodes = [
        ("c1", conv(2, 4, padding=1), ["input"]), ("b1", bn(4), ["c1"]), ("r1", reflrp.ReLU(), ["b1"]),
        ("p1", reflrp.MaxPool2d(2), ["r1"]),
        ("c2", conv(4, 6), ["p1"]), ("r2", reflrp.ReLU(), ["c2"]),
        ("pad", reflrp.ZeroPad2d(1), ["r2"]),
        ("up", reflrp.ConvTranspose2d(rng.normal(size=(6, 4, 2, 2)) / 6, rng.normal(size=4) / 10, stride=2),
         ["pad"]),
        ("near", reflrp.Upsample(2), ["p1"]),
        ("crop", reflrp.Crop(((0, 0), (0, 0))), ["near"]),
        ("cat", reflrp.Concat(1), ["r1", "up", "crop"]),
        ("c3", conv(12, 4, padding=1), ["cat"]), ("r3", reflrp.ReLU(), ["c3"]),
        ("add", reflrp.Add(), ["r3", "r1"]),
        ("out", conv(4, 2, k=1), ["add"]),
        ("sig", reflrp.Sigmoid(), ["out"]),
    ]
    model = reflrp.Graph([reflrp.Node(name, layer, inputs) for name, layer, inputs in nodes], output="sig")
    x = rng.uniform(-1, 1, size=(2, 2, 16, 16))
    return model.astype(dtype), x.astype(dtype)


RULES = {
    "epsilon": rules.Epsilon(),
    "epsilonplus": composites.EpsilonPlus(),
    "alphabeta": rules.AlphaBeta(),
    "flat-first": composites.EpsilonAlpha2Beta1Flat(),
    "gamma-box": composites.EpsilonGammaBox(-1.0, 1.0),
    "box-per-pixel": composites.EpsilonGammaBox(np.full((2, 16, 16), -1.0), np.full((2, 16, 16), 1.0)),
    "gradient": composites.Composite(layer_map=[(reflrp.Conv2d, rules.Gradient()),
                                                (reflrp.ConvTranspose2d, rules.ZPlus()),
                                                (reflrp.BatchNorm2d, rules.Pass())]),
    "split-ties": composites.EpsilonPlus(layer_map=[(reflrp.MaxPool2d, rules.WinnerTakesAll("split"))]),
}

TARGETS = {
    "center": targets.Index((1, 7, 8)),
    "corner": targets.Index((0, 15, 0)),
    "pixels": targets.Pixels(1, [(0, 0), (9, 4), (15, 15)]),
    "region": targets.Region(0, np.pad(np.ones((2, 3), bool), ((5, 9), (1, 12)))),
}


def _same_to_rounding(got, expected, scale):
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13 * max(scale, 1e-300))


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_explanations_on_the_cone_equal_the_whole_computation(rule, target):
    model, x = _unet()
    whole = reflrp.explain(model, x, TARGETS[target], RULES[rule], cone=False, keep=True)
    cut = reflrp.explain(model, x, TARGETS[target], RULES[rule], cone=True, keep=True)
    scale = np.abs(whole.relevance).max()
    _same_to_rounding(cut.relevance, whole.relevance, scale)
    for name, r in whole.relevances.items():
        _same_to_rounding(cut.relevances[name], r, np.abs(r).max())
    for column in ("relevance_in", "relevance_out", "bias", "stabilizer", "dropped", "gradient", "magnitude"):
        _same_to_rounding(getattr(cut.ledger, column), getattr(whole.ledger, column), whole.ledger.scale().max())
    _same_to_rounding(cut.seed, whole.seed, np.abs(whole.seed).max())
    np.testing.assert_array_equal(cut.sample, whole.sample)
    assert np.all(np.abs(cut.ledger.closure()) <= 1e-12 * cut.ledger.scale())  # the ledger closes on the cone
    # outputs: masked arrays, equal to the whole computation's where computed
    assert isinstance(cut.output, np.ma.MaskedArray) and cut.output.mask.any()
    _same_to_rounding(cut.output.compressed(), whole.output[~cut.output.mask], np.abs(whole.output).max())
    _same_to_rounding(cut.prediction.compressed(), whole.prediction[~cut.prediction.mask], 1.0)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_cone_holds_every_nonzero_relevance_of_the_whole_computation(target):
    model, x = _unet()
    chosen = TARGETS[target]
    whole = reflrp.explain(model, x, chosen, composites.EpsilonPlus(), cone=False, keep=True)
    shapes = model.shapes(x.shape[1:])
    for cone, _, slots, _ in plan(model, x, chosen, composites.EpsilonPlus(), cone=True).parts:
        columns = [n * len(chosen.parts(shapes["out"])) + j for n in range(len(x)) for j in slots]
        for name, r in [*whole.relevances.items(), ("input", whole.relevance)]:
            outside = r[columns].copy()
            outside[boxes.inside(cone.boxes[name], boxes.whole(shapes[name]))] = 0
            assert not outside.any(), name
        assert cone.share < 1


def test_cone_explanations_do_not_depend_on_the_batch_or_on_other_pixels():
    model, x = _unet(np.float32)
    pixels = [(3, 3), (12, 5), (0, 15)]
    many = reflrp.explain(model, x, targets.Pixels(0, pixels), composites.EpsilonPlus(), cone=True)
    for m, (n, pixel) in enumerate((n, p) for n in range(2) for p in pixels):
        one = reflrp.explain(model, x[n:n + 1], targets.Index((0, *pixel)), composites.EpsilonPlus(), cone=True)
        assert one.relevance[0].tobytes() == many.relevance[m].tobytes()
        for column in ("relevance_in", "bias", "stabilizer", "dropped"):
            assert getattr(one.ledger, column)[:, 0].tobytes() == getattr(many.ledger, column)[:, m].tobytes()


def test_auto_chooses_the_cone_when_it_pays_and_says_where_it_computed(monkeypatch):
    model, x = _unet()
    shapes = model.shapes(x.shape[1:])
    small = reflrp.cone.plan(model, shapes, "out", ((0, 2), (0, 1), (0, 1)))
    assert small.share <= reflrp.cone.AUTO_SHARE and small.work < reflrp.cone.AUTO_WORK and not small.pays()
    assert plan(model, x, targets.Index((0, 0, 0)), rules.Epsilon()).parts is None  # too small a model to pay
    monkeypatch.setattr(reflrp.cone, "AUTO_WORK", 0)
    corner = plan(model, x, targets.Index((0, 0, 0)), rules.Epsilon())
    assert corner.parts is not None and corner.parts[0][0].share <= reflrp.cone.AUTO_SHARE
    # a class target selects every pixel: nothing to cut
    assert plan(model, x, targets.Class(1), rules.Epsilon()).parts is None
    assert plan(model, x, targets.Index((0, 0, 0)), rules.Epsilon(), cone=False).parts is None
    # pixels whose cones do not pay are explained together, everywhere, after the others
    many = plan(model, x, targets.Pixels(0, [(0, 0), (8, 8)]), rules.Epsilon())
    shares = {slots: (cone.share if cone else None) for cone, _, slots, _ in many.parts}
    assert all(share is None or share <= reflrp.cone.AUTO_SHARE for share in shares.values())
    e = reflrp.explain(model, x, targets.Index((0, 0, 0)), rules.Epsilon())
    assert isinstance(e.output, np.ma.MaskedArray) and e.output.count() < e.output.size


def test_cone_argument_is_checked_before_any_kernel_runs():
    model, x = _unet()
    for bad in ("yes", np.array([1, 2]), np.array("auto"), 1, None):
        with pytest.raises(ReflrpError, match="cone must be 'auto', True or False, got"):
            reflrp.explain(model, x, targets.Index((0, 0, 0)), rules.Epsilon(), cone=bad)
    assert plan(model, x, targets.Index((0, 0, 0)), rules.Epsilon(), cone=np.True_).parts is not None


def test_a_model_whose_output_cannot_be_cut_is_explained_everywhere():
    rng = np.random.default_rng(1)
    model = reflrp.Sequential([reflrp.Conv2d(rng.normal(size=(2, 1, 3, 3)), None, padding=1),
                               reflrp.GroupNorm(1, 2)])
    x = rng.normal(size=(1, 1, 6, 6))
    assert plan(model, x, targets.Index((0, 2, 2)), rules.Epsilon(), cone=True).parts is None
    e = reflrp.explain(model, x, targets.Index((0, 2, 2)), rules.Epsilon(), cone=True)
    assert not isinstance(e.output, np.ma.MaskedArray)


def test_auto_decides_for_each_pixel_alone_so_a_pixel_has_the_same_bits_alone_and_among_others(monkeypatch):
    monkeypatch.setattr(reflrp.cone, "AUTO_WORK", 0)  # the model is small
    rng = np.random.default_rng(0)
    layers = []
    for cin, cout in [(2, 4), (4, 4), (4, 4), (4, 4), (4, 2)]:
        layers += [reflrp.Conv2d(rng.normal(size=(cout, cin, 5, 5)) / 10, rng.normal(size=cout) / 10, padding=2),
                   reflrp.ReLU()]
    model = reflrp.Sequential(layers[:-1])
    x = rng.normal(size=(1, 2, 8, 8))
    rule = composites.EpsilonPlus()
    share = {(r, c): plan(model, x, targets.Index((0, r, c)), rule, cone=True).parts[0][0].share
             for r in range(8) for c in range(8)}
    below = [p for p, v in share.items() if v <= reflrp.cone.AUTO_SHARE][:2]
    above = [p for p, v in share.items() if v > reflrp.cone.AUTO_SHARE][:2]
    assert len(below) == len(above) == 2
    pixels = [below[0], above[0], below[1], above[1]]
    many = reflrp.explain(model, x, targets.Pixels(0, pixels), rule)
    for j, pixel in enumerate(pixels):
        one = reflrp.explain(model, x, targets.Index((0, *pixel)), rule)
        assert isinstance(one.output, np.ma.MaskedArray) == (pixel in below)
        assert one.relevance[0].tobytes() == many.relevance[j].tobytes()


def test_a_gate_of_lower_rank_is_not_cut():
    # x * gate(x), the gate (H, W) one rank lower than x (C, H, W): its first axis is not a channel axis
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 2, 4, 5))
    for gate in (reflrp.Softmax(dim=1), reflrp.PReLU(np.full(4, 0.2))):
        model = reflrp.Graph([reflrp.Node("m", reflrp.Mean((1,)), ("input",)), reflrp.Node("g", gate, ("m",)),
                              reflrp.Node("mul", reflrp.Multiply(gate=1), ("input", "g")),
                              reflrp.Node("out", reflrp.Conv2d(rng.normal(size=(2, 2, 1, 1)), None), ("mul",))],
                             output="out")
        whole = reflrp.explain(model, x, targets.Index((0, 1, 2)), rules.Epsilon(), cone=False)
        cut = reflrp.explain(model, x, targets.Index((0, 1, 2)), rules.Epsilon(), cone=True)
        _same_to_rounding(cut.relevance, whole.relevance, np.abs(whole.relevance).max())
        np.testing.assert_allclose(cut.output.compressed(), whole.output[~cut.output.mask], rtol=1e-13)


def test_volumes_and_signals_are_explained_on_their_cones():
    from reflrp.shapes import make_shapes

    volume_model = reflrp.models.shapes_unet3d().astype(np.float64)
    volumes = make_shapes(1, seed=2)[0]
    rng = np.random.default_rng(3)
    signal_model = reflrp.Sequential([
        reflrp.Conv1d(rng.normal(size=(4, 2, 5)) / 4, rng.normal(size=4) / 10, padding=2), reflrp.ReLU(),
        reflrp.MaxPool1d(2),
        reflrp.Conv1d(rng.normal(size=(4, 4, 3)) / 4, None, padding="same", dilation=2), reflrp.ReLU(),
        reflrp.ConvTranspose1d(rng.normal(size=(4, 3, 2)) / 2, rng.normal(size=3) / 10, stride=2),
    ])
    signals = rng.normal(size=(2, 2, 64))
    for model, x, target in [(volume_model, volumes, targets.Voxel((1, 3, 20, 4))),
                             (signal_model, signals, targets.Pixels(2, [(5,), (60,)]))]:
        whole = reflrp.explain(model, x, target, composites.EpsilonPlus(), cone=False)
        cut = reflrp.explain(model, x, target, composites.EpsilonPlus(), cone=True)
        assert all(cone.share < 0.6 for cone, _, _, _ in plan(model, x, target, composites.EpsilonPlus(),
                                                             cone=True).parts)
        _same_to_rounding(cut.relevance, whole.relevance, np.abs(whole.relevance).max())
        _same_to_rounding(cut.ledger.relevance_in, whole.ledger.relevance_in, whole.ledger.scale().max())


@pytest.mark.parametrize("rules_, profile", [
    ("EpsilonPlusFlat", "zennit"),
    ("EpsilonAlpha2Beta1", "zennit"),
    ("lrp.alpha_2_beta_1", "innvestigate"),
    ("lrp.z", "innvestigate"),
    (rules.Gamma(), "captum"),
    (composites.EpsilonAlpha2Beta1Flat(), "reflrp"),
])
def test_every_profile_explains_on_the_cone_as_on_the_whole_model(rules_, profile):
    model = reflrp.load(reflrp.models.DIGITS_UNET_FILE)
    x, _ = make_digits(2, seed=3)
    target = targets.Pixels(0, [(3, 3), (11, 0)])
    whole = reflrp.explain(model, x, target, rules_, profile=profile, cone=False)
    cut = reflrp.explain(model, x, target, rules_, profile=profile, cone=True)
    assert plan(model, x, target, rules_, profile=profile, cone=True).parts is not None
    _same_to_rounding(cut.relevance, whole.relevance, np.abs(whole.relevance).max())
    for column in ("relevance_in", "bias", "stabilizer", "dropped", "gradient"):
        _same_to_rounding(getattr(cut.ledger, column), getattr(whole.ledger, column), whole.ledger.scale().max())


def test_an_output_layer_that_computes_a_larger_box_is_cut_to_it():
    rng = np.random.default_rng(4)
    model = reflrp.Sequential([reflrp.Conv2d(rng.normal(size=(2, 1, 3, 3)), rng.normal(size=2), padding=1),
                               reflrp.ZeroPad2d(2)])
    x = rng.normal(size=(2, 1, 8, 8))
    target = targets.Index((1, 0, 5))  # in the padding: the cut reads the nearest input row and computes to it
    (cone, _, _, _), = plan(model, x, target, rules.Epsilon(), cone=True).parts
    assert cone.boxes[model.output] == ((0, 2), (0, 3), (5, 6))
    whole = reflrp.explain(model, x, target, rules.Epsilon(), cone=False)
    cut = reflrp.explain(model, x, target, rules.Epsilon(), cone=True)
    np.testing.assert_array_equal(cut.relevance, whole.relevance)  # all zero: a padded position's seed is dropped
    _same_to_rounding(cut.ledger.dropped, whole.ledger.dropped, whole.ledger.scale().max())
    assert cut.output.count() == 2 * 2 * 3 * 1


def test_cut_layers_are_ordinary_layers_and_their_new_arguments_are_checked():
    rng = np.random.default_rng(5)
    conv = reflrp.Conv2d(rng.normal(size=(2, 1, 3, 3)), None, padding=(0, 2, 1, 0))
    assert conv.pads == (0, 2, 1, 0) and conv.output_shape((1, 5, 5)) == (2, 5, 4)
    up = reflrp.Upsample(2, mode="bilinear", part=((1, 6, 3, 7), (0, 5, 0, 4)))
    assert up.output_shape((3, 4, 3)) == (3, 4, 4)
    for layer in (conv, up, reflrp.Conv1d(rng.normal(size=(2, 1, 3)), None, padding=(1, 0))):
        assert type(layer)(**layer.parameters(), **layer.config()) == layer
    for make, message in [
        (lambda: reflrp.Conv2d(rng.normal(size=(2, 1, 3, 3)), None, padding=(1, 2, 3)), "padding must be"),
        (lambda: reflrp.Conv2d(rng.normal(size=(2, 1, 3, 3)), None, padding=(0, -1, 0, 0)), "padding"),
        (lambda: reflrp.Upsample(2, part=((0, 4, 0, 2),)), "part has 1 axes"),
        (lambda: reflrp.Upsample(2, part=((0, 4, 3, 2), (0, 4, 0, 2))), "is not a part of the upsampling"),
        (lambda: reflrp.Upsample(2, part=5), "part must be None or one"),
        (lambda: up.output_shape((3, 2, 3)), "smaller than the part"),
        (lambda: reflrp.Upsample(2, part=((3, 6, 0, 4), (0, 5, 0, 4))).output_shape((3, 4, 3)),
         "reads positions before its offset"),
        (lambda: conv.reconfigured(weight=np.ones((2, 1, 3, 3))), "are arrays, not configuration"),
        (lambda: conv.reconfigured(kernel=3), "has no field 'kernel'"),
    ]:
        with pytest.raises(ReflrpError, match=message):
            make()


def test_one_region_per_sample_puts_each_sample_on_its_own_cone(monkeypatch):
    monkeypatch.setattr(reflrp.cone, "AUTO_WORK", 0)  # the model is small
    model, x = _unet()
    x = np.concatenate([x, x[::-1] * 0.5])
    masks = np.zeros((4, 16, 16), bool)
    masks[0, 2:4, 3:6] = masks[1, 10:12, 12:16] = masks[2, 0, 0] = True
    masks[3] = True  # the whole map: computed on the whole model
    target = targets.Region(1, masks)
    p = plan(model, x, target, composites.EpsilonPlus())
    assert [samples for _, _, _, samples in p.parts] == [(0,), (1,), (2,), (3,)]
    assert [cone is None for cone, _, _, _ in p.parts] == [False, False, False, True]
    whole = reflrp.explain(model, x, target, composites.EpsilonPlus(), cone=False, keep=True)
    cut = reflrp.explain(model, x, target, composites.EpsilonPlus(), keep=True)
    _same_to_rounding(cut.relevance, whole.relevance, np.abs(whole.relevance).max())
    for column in ("relevance_in", "bias", "stabilizer", "dropped"):
        _same_to_rounding(getattr(cut.ledger, column), getattr(whole.ledger, column), whole.ledger.scale().max())
    np.testing.assert_array_equal(cut.sample, np.arange(4))
    assert not cut.output.mask[3].any() and cut.output.mask[:3].any()
    np.testing.assert_allclose(cut.output.compressed(), whole.output[~cut.output.mask], rtol=1e-13)
    for n in range(4):  # each sample's explanation has the bits it has alone
        alone = reflrp.explain(model, x[n:n + 1], targets.Region(1, masks[n:n + 1]), composites.EpsilonPlus())
        assert alone.relevance[0].tobytes() == cut.relevance[n].tobytes()
