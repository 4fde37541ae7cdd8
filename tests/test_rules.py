"""Every rule on every affine layer type against its dense-matrix formula (tests/naive.py), plus the per-layer
ledger identity and parameter validation."""

import numpy as np
import pytest

import reflrp
from reflrp import kernels, rules
from reflrp.errors import ReflrpError
from reflrp.stabilize import Stabilizer
from reflrp.steps import modified_passes, modified_rule, signed_parts

import naive


def _layers(rng):
    return {
        "linear": (reflrp.Linear(rng.normal(size=(6, 9)), rng.normal(size=6)), (9,)),
        "conv": (
            reflrp.Conv2d(rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4), stride=2, padding=1, groups=2),
            (4, 6, 5),
        ),
        "convt": (
            reflrp.ConvTranspose2d(
                rng.normal(size=(4, 3, 3, 2)), rng.normal(size=6), stride=2, padding=1, output_padding=1, groups=2
            ),
            (4, 3, 4),
        ),
        "bn": (
            reflrp.BatchNorm2d(rng.normal(size=3), rng.uniform(0.5, 2, size=3), rng.normal(size=3), rng.normal(size=3)),
            (3, 4, 4),
        ),
        "bias-free conv": (reflrp.Conv2d(rng.normal(size=(3, 2, 2, 2)), dilation=2, padding=(1, 0)), (2, 5, 6)),
        "conv1d": (reflrp.Conv1d(rng.normal(size=(4, 1, 3)), rng.normal(size=4), stride=2, padding=1, groups=2),
                   (2, 9)),
        "linear on tokens": (reflrp.Linear(rng.normal(size=(5, 4)), rng.normal(size=5)), (3, 4)),
        "scale": (reflrp.Scale(rng.normal(size=(3, 1, 1)), rng.normal(size=(3, 1, 4))), (3, 2, 4)),
    }


def _dense(layer, in_shape, weight=None):
    w, b = layer.affine_parameters()
    weight = w if weight is None else weight
    m = naive.matrix(naive.layer_fn(layer, weight), in_shape)
    out_shape = layer.output_shape(in_shape)
    return m, naive.bias_vector(layer, b, out_shape), out_shape


def twin(rule, layer, a, r):
    """The rule's formula on one sample, from the dense matrix of the layer (no reflrp kernels)."""
    in_shape = a.shape
    m, b, _ = _dense(layer, in_shape)
    a, r = a.ravel(), r.ravel()
    eps = getattr(rule, "epsilon", 0.0)
    mode = getattr(rule, "stabilizer", "sign")

    def stab(z):
        return naive.stab(z, eps, mode)

    zero_bias = getattr(rule, "zero_bias", False)
    b = np.zeros_like(b) if zero_bias else b
    c = m * a[None, :]  # c[j, i] = a_i w_ij: the contribution of input i to output j
    if isinstance(rule, rules.Epsilon):
        out = naive.spread(c, r, stab(c.sum(1) + b))
    elif isinstance(rule, (rules.AlphaBeta, rules.ZPlus)):
        alpha, beta = (rule.alpha, rule.beta) if isinstance(rule, rules.AlphaBeta) else (1.0, 0.0)
        if rule.inputs == "signed":  # the contributions of each sign
            cp, cn = np.maximum(c, 0), np.minimum(c, 0)
        else:  # the input (or its positive part) with the weights of each sign
            x = np.maximum(a, 0) if rule.inputs == "positive" else a
            cp, cn = np.maximum(m, 0) * x[None, :], np.minimum(m, 0) * x[None, :]
        bp, bn = (b, b) if rule.bias == "whole" else (np.maximum(b, 0), np.minimum(b, 0))
        out = alpha * naive.spread(cp, r, stab(cp.sum(1) + bp))
        out -= beta * naive.spread(cn, r, stab(cn.sum(1) + bn))
    elif isinstance(rule, rules.Gamma) and rule.inputs == "whole":  # w + gamma w+ for every input, bias kept
        c = (m + rule.gamma * np.maximum(m, 0)) * a[None, :]
        out = naive.spread(c, r, stab(c.sum(1) + b))
    elif isinstance(rule, rules.Gamma):  # contributions that agree in sign with the unit amplified by gamma
        z = c.sum(1) + b
        out = np.zeros_like(a)
        for j in range(len(z)):
            if z[j] == 0:
                continue
            part = np.maximum if z[j] > 0 else np.minimum
            rho_c = c[j] + rule.gamma * part(c[j], 0)
            rho_b = b[j] + rule.gamma * part(b[j], 0)
            denominator = stab(np.array(rho_c.sum() + rho_b))
            if denominator != 0:
                out += rho_c * r[j] / denominator
    elif isinstance(rule, rules.ZBox):
        low = np.broadcast_to(rule.low, in_shape).ravel()
        high = np.broadcast_to(rule.high, in_shape).ravel()
        c = c - np.maximum(m, 0) * low[None] - np.minimum(m, 0) * high[None]
        out = naive.spread(c, r, stab(c.sum(1)))
    elif isinstance(rule, (rules.Flat, rules.WSquare)):
        w = layer.affine_parameters()[0]
        rho = np.ones_like(w) if isinstance(rule, rules.Flat) else w * w
        c, _, _ = _dense(layer, in_shape, rho)
        out = naive.spread(c, r, stab(c.sum(1)))
    else:
        raise TypeError(rule)
    return out.reshape(in_shape)


RULES = [
    rules.Epsilon(),
    rules.Epsilon(epsilon=0.0),
    rules.Epsilon(epsilon=0.5, zero_bias=True),
    rules.AlphaBeta(),
    rules.AlphaBeta(alpha=1.5, beta=0.5, epsilon=0.1, zero_bias=True),
    rules.ZPlus(),
    rules.ZPlus(epsilon=0.0),
    rules.Gamma(),
    rules.Gamma(gamma=1.0, epsilon=0.0, zero_bias=True),
    rules.ZBox(-1.5, 2.0),
    rules.Flat(),
    rules.WSquare(epsilon=0.3),
    # the knobs (docs/rules.md): other libraries' conventions are these values
    rules.Epsilon(epsilon=1e-7, stabilizer="zero"),
    rules.AlphaBeta(epsilon=1e-7, stabilizer="zero", bias="whole"),
    rules.AlphaBeta(epsilon=0.2, inputs="positive"),
    rules.AlphaBeta(alpha=3.0, beta=2.0, inputs="whole", bias="whole"),
    rules.ZPlus(epsilon=1e-9, inputs="whole", bias="whole"),
    rules.ZPlus(epsilon=1e-7, zero_bias=True, inputs="whole", stabilizer="zero"),
    rules.Gamma(gamma=0.5, epsilon=1e-9, inputs="whole"),
    rules.Gamma(gamma=0.5, epsilon=0.1, stabilizer="zero"),
    rules.ZBox(-1.0, 1.0, epsilon=1e-7, stabilizer="zero"),
    rules.Flat(epsilon=1e-7, stabilizer="zero"),
    rules.WSquare(epsilon=1e-7, stabilizer="zero"),
]
LAYERS = ["linear", "conv", "convt", "bn", "bias-free conv", "conv1d", "linear on tokens", "scale"]


@pytest.mark.parametrize("rule", RULES, ids=str)
@pytest.mark.parametrize("which", LAYERS)
def test_rule_matches_dense_formula(rule, which, rng):
    layer, in_shape = _layers(rng)[which]
    a = rng.normal(size=(3, *in_shape))
    output = layer.forward([a])
    r = rng.normal(size=output.shape)
    result = rule.propagate(layer, [a], output, r)
    (got,) = result.r_in
    assert got.shape == a.shape and got.dtype == a.dtype
    expected = np.stack([twin(rule, layer, a[k], r[k]) for k in range(3)])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())


@pytest.mark.parametrize("rule", RULES, ids=str)
@pytest.mark.parametrize("which", LAYERS)
def test_rule_ledger_identity_per_layer(rule, which, rng):
    layer, in_shape = _layers(rng)[which]
    a = rng.normal(size=(3, *in_shape))
    output = layer.forward([a])
    r = rng.normal(size=output.shape)
    result = rule.propagate(layer, [a], output, r)
    r_in = result.r_in[0]
    absorbed = sum(result.absorbed)  # bias + stabilizer + dropped + gradient
    gap = r.reshape(3, -1).sum(1) - r_in.reshape(3, -1).sum(1) - absorbed
    scale = np.abs(r).reshape(3, -1).sum(1) + np.abs(r_in).reshape(3, -1).sum(1)
    assert np.all(np.abs(gap) <= 1e-12 * scale)


def test_epsilon_splits_absorbed_relevance_into_bias_and_stabilizer(rng):
    layer, in_shape = _layers(rng)["linear"]
    a = rng.normal(size=(1, *in_shape))
    z = layer.forward([a])
    r = rng.normal(size=z.shape)
    result = rules.Epsilon(epsilon=0.25).propagate(layer, [a], z, r)
    denominator = naive.stab(z, 0.25)
    np.testing.assert_allclose(result.absorbed.bias, [(r * layer.bias / denominator).sum()], rtol=1e-12)
    np.testing.assert_allclose(result.absorbed.stabilizer, [(r * (denominator - z) / denominator).sum()], rtol=1e-12)
    assert result.absorbed.dropped[0] == 0


def test_zero_denominator_drops_relevance_instead_of_nan():
    layer = reflrp.Linear(np.array([[1.0, -1.0], [2.0, 0.0]]))
    a = np.array([[3.0, 3.0]])  # unit 0 has z = 0 exactly
    r = np.array([[5.0, 7.0]])
    for rule in (rules.Epsilon(epsilon=0.0), rules.Gamma(epsilon=0.0)):
        result = rule.propagate(layer, [a], layer.forward([a]), r)
        assert np.all(np.isfinite(result.r_in[0]))
        np.testing.assert_allclose(result.absorbed.dropped, [5.0])
        np.testing.assert_allclose(result.r_in[0].sum() + result.absorbed.dropped + result.absorbed.stabilizer, [12.0])


def test_alphabeta_side_without_contributions_is_dropped():
    layer = reflrp.Linear(np.array([[1.0, 2.0]]))
    a = np.array([[1.0, 1.0]])  # no negative contributions at all
    result = rules.AlphaBeta(epsilon=0.0).propagate(layer, [a], layer.forward([a]), np.array([[1.0]]))
    np.testing.assert_allclose(result.r_in[0], [[2 * 1 / 3, 2 * 2 / 3]])  # alpha * share
    np.testing.assert_allclose(result.absorbed.dropped, [-1.0])  # the beta share had nowhere to go


def test_stabilizer_sign_of_zero_is_positive():
    from reflrp.stabilize import stabilize

    np.testing.assert_array_equal(stabilize(np.array([-2.0, 0.0, 3.0]), 0.5), [-2.5, 0.5, 3.5])


def test_norm_and_epsilon_on_parameter_free_layers(rng):
    a = rng.uniform(0.1, 1, size=(2, 2, 6, 6))
    pool = reflrp.AvgPool2d(3, 2, 1)
    z = pool.forward([a])
    r = rng.normal(size=z.shape)
    m = naive.matrix(lambda v: naive.avgpool2d(v, (3, 3), (2, 2), (1, 1)), a.shape[1:])
    for rule in (rules.Norm(epsilon=0.1), rules.Epsilon(epsilon=0.1)):
        (got,) = rule.propagate(pool, [a], z, r).r_in
        expected = [naive.spread(m * a[k].ravel(), r[k].ravel(), naive.stab(z[k].ravel(), 0.1)) for k in range(2)]
        np.testing.assert_allclose(got, np.reshape(expected, a.shape), rtol=1e-12)


def test_add_norm_splits_by_contribution_and_gradient_duplicates():
    add = reflrp.Add()
    a1, a2 = np.array([[1.0, 3.0]]), np.array([[3.0, -1.0]])
    z = add.forward([a1, a2])
    r = np.array([[8.0, 4.0]])
    norm = rules.Norm(epsilon=0.0).propagate(add, [a1, a2], z, r)
    np.testing.assert_allclose(norm.r_in[0], [[2.0, 6.0]])
    np.testing.assert_allclose(norm.r_in[1], [[6.0, -2.0]])
    grad = rules.Gradient().propagate(add, [a1, a2], z, r)
    np.testing.assert_array_equal(grad.r_in[0], r)
    np.testing.assert_allclose(grad.absorbed.gradient, [-12.0])  # 12 injected


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: rules.AlphaBeta(alpha=2.0, beta=0.5), "alpha - beta must be 1"),
        (lambda: rules.AlphaBeta(alpha=0.5, beta=-0.5), "beta must be >= 0"),
        (lambda: rules.Epsilon(epsilon=-1.0), "epsilon must be >= 0"),
        (lambda: rules.Epsilon(epsilon=float("nan")), "epsilon must be finite"),
        (lambda: rules.Epsilon(zero_bias=1), "zero_bias must be True or False"),
        (lambda: rules.Gamma(gamma=-0.1), "gamma must be >= 0"),
        (lambda: rules.ZBox(1.0, 0.0), "low must be <= high"),
        (lambda: rules.ZBox(np.array([np.nan]), 1.0), "low contains NaN"),
        (lambda: rules.WinnerTakesAll("middle"), "ties must be 'first' or 'split'"),
        (lambda: rules.Flat(epsilon="small"), "epsilon must be a number"),
    ],
)
def test_invalid_rule_parameters_are_refused(make, message):
    with pytest.raises(ReflrpError, match=message):
        make()


def test_rules_are_frozen():
    rule = rules.Epsilon()
    with pytest.raises(AttributeError):
        rule.epsilon = 1.0


def test_a_rule_never_changes_layer_parameters(rng):
    for layer, in_shape in _layers(rng).values():
        before = {k: v.copy() for k, v in layer.parameters().items()}
        a = rng.normal(size=(2, *in_shape))
        out = layer.forward([a])
        for rule in RULES:
            rule.propagate(layer, [a], out, np.ones_like(out))
        for k, v in layer.parameters().items():
            assert not v.flags.writeable
            np.testing.assert_array_equal(v, before[k])


def test_gamma_units_with_zero_output_pass_nothing_and_signs_pick_the_amplified_part():
    # unit 0: z > 0 from a positive and a negative input; unit 1: z < 0; unit 2: z = 0 exactly
    layer = reflrp.Linear(np.array([[2.0, 1.0], [-1.0, 0.5], [1.0, 2.0]]), np.array([0.5, -0.25, 1.0]))
    a = np.array([[1.0, -1.0]])
    z = layer.forward([a])
    assert z[0, 0] > 0 and z[0, 1] < 0 and z[0, 2] == 0
    r = np.array([[1.0, 2.0, 4.0]])
    result = rules.Gamma(gamma=0.5, epsilon=0.0).propagate(layer, [a], z, r)
    # unit 0: contributions (2, -1) -> (3, -1), bias 0.5 -> 0.75, denominator 2.75
    # unit 1: contributions (-1, -0.5) -> (-1.5, -0.75), bias -0.25 -> -0.375, denominator -2.625
    expected = np.array([[3 / 2.75 * 1 + -1.5 / -2.625 * 2, -1 / 2.75 * 1 + -0.75 / -2.625 * 2]])
    np.testing.assert_allclose(result.r_in[0], expected, rtol=1e-15)
    np.testing.assert_allclose(result.absorbed.dropped, [4.0], rtol=0)
    np.testing.assert_allclose(result.absorbed.bias, [0.75 / 2.75 * 1 + -0.375 / -2.625 * 2], rtol=1e-15)


@pytest.mark.parametrize("rule", [rules.ZPlus(), rules.AlphaBeta(), rules.Gamma(), rules.ZBox(0.0, 1.0)])
def test_skipping_a_zero_term_changes_no_bit_whatever_the_batch_holds(rule, rng):
    # sample 0 is non-negative, so its a- term is zero: alone it is skipped, beside a signed sample it is computed.
    # (The zero-sign mechanism that makes this exact is tested on modified_rule itself below.)
    layer = reflrp.Conv2d(rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4), padding=1)
    alone = np.abs(rng.normal(size=(1, 2, 5, 5)))
    alone[0, 0, 0, :3] = 0.0  # zero inputs give zero relevance, whose sign is what skipping could change
    batch = np.concatenate([alone, rng.normal(size=(1, 2, 5, 5))])
    r_out = rng.normal(size=(2, 4, 5, 5))
    got = rule.propagate(layer, [alone], layer.forward([alone]), r_out[:1])
    expected = rule.propagate(layer, [batch], layer.forward([batch]), r_out)
    assert got.r_in[0].tobytes() == expected.r_in[0][:1].tobytes()
    for mine, theirs in zip(got.absorbed, expected.absorbed):
        assert mine.tobytes() == theirs[:1].tobytes()


@pytest.mark.parametrize("layer_kind", ["conv", "linear"])
def test_modified_passes_share_products_bit_for_bit(layer_kind, rng, monkeypatch):
    # Gamma's and AlphaBeta's sides: the same inputs with other weights; taken together as taken one by one
    if layer_kind == "conv":
        layer = reflrp.Conv2d(rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4), padding=1)
        a = rng.normal(size=(2, 3, 6, 5))
        monkeypatch.setattr(kernels.conv, "_SLAB_BYTES", 1)  # and in slabs: the input unfolded once per slab
        monkeypatch.setattr(kernels.conv, "_MIN_SLAB_COLUMNS", 7)
    else:
        layer = reflrp.Linear(rng.normal(size=(4, 6)), rng.normal(size=4))
        a = rng.normal(size=(2, 6))
    a_pos, a_neg = signed_parts(a)
    w_pos, w_neg = signed_parts(layer.weight)
    r_out = rng.normal(size=layer.forward([a]).shape)
    passes = [(r_out, [(a_pos, w_pos), (a_neg, w_neg)], None),
              (2 * r_out, [(a_pos, w_neg), (a_neg, w_pos)], layer.bias),
              (r_out, [(a_pos, layer.weight), (np.zeros_like(a), w_pos)], None)]
    together = modified_passes(layer, a, passes, Stabilizer(1e-6))
    for (r, terms, bias), step in zip(passes, together):
        alone = modified_rule(layer, a, r, Stabilizer(1e-6), terms, bias)
        assert step.r_in.tobytes() == alone.r_in.tobytes()
        for mine, theirs in zip(step.absorbed, alone.absorbed):
            assert mine.tobytes() == theirs.tobytes()
    assert [w.tobytes() for w in layer.linear_many([a], [w_pos, w_neg])] == \
        [layer.linear([a], w).tobytes() for w in (w_pos, w_neg)]


def test_modified_rule_zero_term_skipped_bit_for_bit(rng):
    # r_in = x1 * c1 + x2 * c2: where x1 = 0 and c1 < 0 the first part is -0; the skipped part would make it +0
    layer = reflrp.Conv2d(rng.normal(size=(3, 2, 3, 3)), None, padding=1)
    x1 = rng.normal(size=(2, 2, 4, 4))
    x1[:, :, :2] = 0.0
    x2 = np.zeros_like(x1)
    x2[1] = rng.normal(size=(2, 4, 4))  # sample 1 uses the second term, sample 0 does not
    r_out = rng.normal(size=(2, 3, 4, 4))
    weights = (layer.weight, -np.abs(layer.weight))
    got = modified_rule(layer, x1[:1], r_out[:1], Stabilizer(1e-6), [(x1[:1], weights[0]), (x2[:1], weights[1])])
    expected = modified_rule(layer, x1, r_out, Stabilizer(1e-6), [(x1, weights[0]), (x2, weights[1])])
    assert np.any(got.r_in == 0) and not np.any(np.signbit(expected.r_in) & (expected.r_in == 0))  # zeros are +0
    assert got.r_in.tobytes() == expected.r_in[:1].tobytes()


def test_batchnorm_knob_reads_the_module_or_the_defect_as_documented(rng):
    """batchnorm="module": rho modifies gamma and the shift follows; "squared-variance": iNNvestigate 2.1.2's
    formulas (docs/rules.md).  Checked against the formulas written out, on one BatchNorm."""
    from reflrp.rules.base import parameters

    mean, var, gamma, beta = rng.normal(size=3), rng.uniform(0.5, 2, 3), rng.normal(size=3), rng.normal(size=3)
    bn = reflrp.BatchNorm2d(mean, var, gamma, beta, eps=1e-3)
    sigma = np.sqrt(var + 1e-3)
    scale, shift = parameters(bn, "module", lambda w: w + 0.25 * np.maximum(w, 0))
    np.testing.assert_allclose(scale, (gamma + 0.25 * np.maximum(gamma, 0)) / sigma, rtol=1e-15)
    np.testing.assert_allclose(shift, beta - mean * scale, rtol=1e-15)
    _, zero_beta = parameters(bn, "module", np.abs, zero_bias=True)
    np.testing.assert_allclose(zero_beta, -mean * np.abs(gamma) / sigma, rtol=1e-15)  # only beta is zeroed
    defect = np.sqrt(var ** 2 + 1e-3)
    scale, shift = parameters(bn, "squared-variance")
    np.testing.assert_array_equal(scale, gamma / defect)
    np.testing.assert_array_equal(shift, beta - mean / defect)
    assert parameters(bn, "fused")[0].tobytes() == bn.scale.tobytes()
    with pytest.raises(ReflrpError, match="batchnorm='module' needs inputs='whole'"):
        rules.ZPlus(batchnorm="module")


@pytest.mark.parametrize("split", ["signal", "uniform"])
def test_product_shares_exactly_what_arrives_with_broadcasting(split, rng):
    layer = reflrp.Multiply(gate=1)
    signal, gate = rng.normal(size=(2, 3, 4, 5)), rng.uniform(size=(2, 3, 1, 1))
    output = layer.forward([signal, gate])
    r = rng.normal(size=(4, *output.shape[1:]))  # two explanations of each sample
    result = rules.Product(split).propagate(layer, [signal, gate], output, r, np.array([0, 0, 1, 1]))
    r_signal, r_gate = result.r_in
    assert r_signal.shape == (4, 3, 4, 5) and r_gate.shape == (4, 3, 1, 1)
    if split == "signal":
        np.testing.assert_array_equal(r_signal, r)
        assert not r_gate.any()
    else:
        np.testing.assert_array_equal(r_signal, r / 2)
        np.testing.assert_allclose(r_gate[..., 0, 0], r.sum(axis=(2, 3)) / 2, rtol=1e-14)
    gap = r.reshape(4, -1).sum(1) - r_signal.reshape(4, -1).sum(1) - r_gate.reshape(4, -1).sum(1)
    assert np.abs(gap).max() <= 1e-13 * np.abs(r).sum() and not any(np.any(a) for a in result.absorbed)
    with pytest.raises(ReflrpError, match="needs to know which input is the gate"):
        rules.Product().check(reflrp.Multiply(), [(3, 4, 5), (3, 1, 1)], (3, 4, 5))
