"""explain() end to end: the README example, targets and seeds, kept relevances, LRP-0 = gradient x input,
output activations."""

import numpy as np
import pytest

import reflrp
from reflrp import composites, rules
from reflrp.errors import ReflrpError

import naive


def small_cnn(rng, bias=True):
    w1, b1 = rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4) if bias else None
    w2, b2 = rng.normal(size=(5, 4 * 4 * 4)) / 8, rng.normal(size=5) if bias else None
    return reflrp.Sequential([
        ("conv", reflrp.Conv2d(w1, b1, padding=1)), ("relu", reflrp.ReLU()), ("pool", reflrp.MaxPool2d(2)),
        ("flat", reflrp.Flatten()), ("fc", reflrp.Linear(w2, b2)),
    ])


def test_readme_example(rng):
    model = small_cnn(rng)
    x = rng.normal(size=(3, 2, 8, 8))
    e = reflrp.explain(model, x, target=3, rules=rules.Epsilon(epsilon=1e-6))
    assert e.relevance.shape == x.shape
    assert abs(e.ledger.closure()).max() < 1e-12
    np.testing.assert_array_equal(e.target_value, model(x)[:, 3])
    text = str(e.ledger)
    for word in ("fc", "conv", "Epsilon", "bias", "stabilizer", "closure"):
        assert word in text


def test_seed_value_and_unit(rng):
    model = small_cnn(rng)
    x = rng.normal(size=(2, 2, 8, 8))
    value = reflrp.explain(model, x, target=1, rules=rules.Epsilon(epsilon=0.0))
    unit = reflrp.explain(model, x, target=1, rules=rules.Epsilon(epsilon=0.0), seed="unit")
    np.testing.assert_array_equal(unit.target_value, [1.0, 1.0])
    # LRP-0 is linear in the seed: the value seed is the unit seed scaled by the logit
    np.testing.assert_allclose(value.relevance, unit.relevance * model(x)[:, 1, None, None, None], rtol=1e-12)


def test_target_forms(rng):
    model = small_cnn(rng)
    x = rng.normal(size=(2, 2, 8, 8))
    out = model(x)
    rule = rules.Epsilon()
    per_sample = reflrp.explain(model, x, target=np.array([4, 0]), rules=rule)
    np.testing.assert_array_equal(per_sample.target_value, [out[0, 4], out[1, 0]])
    index = reflrp.explain(model, x, target=(2,), rules=rule)
    np.testing.assert_array_equal(index.target_value, out[:, 2])
    mask = np.array([True, False, True, False, False])
    masked = reflrp.explain(model, x, target=mask, rules=rule)
    np.testing.assert_allclose(masked.target_value, out[:, 0] + out[:, 2], rtol=1e-15)
    seed = np.array([0.5, 0, 0, 0, -1.0])
    seeded = reflrp.explain(model, x, target=seed, rules=rule)
    np.testing.assert_array_equal(seeded.target_value, [-0.5, -0.5])
    np.testing.assert_array_equal(seeded.seed[0], seed)


@pytest.mark.parametrize(
    "target,message",
    [
        (5, "target class 5 is out of range: the output has 5 classes"),
        (-1, "k must be >= 0, got -1"),
        (np.array([1, 2, 3]), "3 class indices for a batch of 2"),
        ((1, 2), "has 2 entries, one sample's output has 1 axes"),
        (np.zeros(5, dtype=bool), "selects nothing"),
        (np.ones(4), "target seed has shape"),
        ("cat", "the only named target is .predicted."),
        (1.5, "target must be an int"),
    ],
)
def test_bad_targets_are_refused_before_any_kernel(target, message, rng):
    model = small_cnn(rng)
    with pytest.raises(ReflrpError, match=message):
        reflrp.explain(model, rng.normal(size=(2, 2, 8, 8)), target=target, rules=rules.Epsilon())


def test_keep_returns_relevance_at_nodes_and_input_cut_holds(rng):
    model = small_cnn(rng)
    x = rng.normal(size=(2, 2, 8, 8))
    e = reflrp.explain(model, x, target=0, rules=rules.Epsilon(), keep=["relu", "flat"])
    assert set(e.relevances) == {"relu", "flat"}
    assert e.relevances["relu"].shape == (2, 4, 8, 8)
    for cut in (["relu"], ["flat"], ["input"]):
        assert np.all(np.abs(e.check_cut(cut)) <= 1e-12 * e.ledger.scale())
    none = reflrp.explain(model, x, target=0, rules=rules.Epsilon())
    assert none.relevances == {}
    with pytest.raises(ReflrpError, match="does not exist"):
        reflrp.explain(model, x, target=0, rules=rules.Epsilon(), keep=["nope"])


def jacobian_row(model, x, k):
    """d output[k] / d x for one sample, by multiplying dense Jacobians built with tests/naive.py."""
    a = x[None]
    jac = np.eye(a.size)
    for node in model.nodes:
        layer = node.layer
        if isinstance(layer, (reflrp.Conv2d, reflrp.Linear)):
            local = naive.matrix(naive.layer_fn(layer, layer.weight), a.shape[1:])
        elif isinstance(layer, reflrp.ReLU):
            local = np.diag((a.ravel() > 0).astype(float))
        elif isinstance(layer, reflrp.MaxPool2d):
            out, winner = naive.maxpool2d(a, layer.kernel_size, layer.stride, layer.padding)
            local = np.zeros((out.size, a.size))
            for (b, c, y, xx), (p, q) in winner.items():
                local[np.ravel_multi_index((b, c, y, xx), out.shape), np.ravel_multi_index((b, c, p, q), a.shape)] = 1
        elif isinstance(layer, reflrp.Flatten):
            local = np.eye(a.size)
        else:
            raise TypeError(layer)
        jac = local @ jac
        a = layer.forward([a])
    return jac[k].reshape(x.shape)


def test_lrp0_equals_gradient_times_input_for_relu_networks(rng):
    model = small_cnn(rng, bias=True)
    x = rng.normal(size=(2, 2, 8, 8))  # continuous random input: no ties in max pooling
    e = reflrp.explain(model, x, target=2, rules=rules.Epsilon(epsilon=0.0))
    for n in range(2):
        expected = x[n] * jacobian_row(model, x[n], 2)
        np.testing.assert_allclose(e.relevance[n], expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())


def test_output_activations_are_explained_at_the_logit(rng):
    base = small_cnn(rng)
    x = rng.normal(size=(2, 2, 8, 8))
    logits = base(x)
    for activation in (reflrp.Softmax(), reflrp.Sigmoid(), reflrp.Tanh()):
        model = reflrp.Sequential([(n.name, n.layer) for n in base.nodes] + [("act", activation)])
        e = reflrp.explain(model, x, target=1, rules=rules.Epsilon())
        np.testing.assert_array_equal(e.target_value, logits[:, 1])
        np.testing.assert_array_equal(e.prediction, activation.forward([logits]))
        np.testing.assert_array_equal(e.output, logits)
        assert "act" not in e.ledger.nodes


def test_pass_on_batchnorm_and_composite_by_name(rng):
    bn = reflrp.BatchNorm2d(rng.normal(size=4), rng.uniform(1, 2, 4), rng.normal(size=4), rng.normal(size=4))
    base = small_cnn(rng)
    nodes = [(n.name, n.layer) for n in base.nodes]
    model = reflrp.Sequential(nodes[:1] + [("bn", bn)] + nodes[1:])
    x = rng.normal(size=(1, 2, 8, 8))
    passed = reflrp.explain(model, x, 0, composites.Composite(layer_map=[(reflrp.layers.AffineLayer, rules.Epsilon())],
                                                              names={"bn": rules.Pass()}))
    row = passed.ledger.row("bn")
    assert row["relevance_in"][0] == row["relevance_out"][0] and row["rule"] == "Pass"
    affine = reflrp.explain(model, x, 0, rules.Epsilon())
    assert affine.ledger.row("bn")["bias"][0] != 0  # the BN shift absorbs (or injects) relevance
    assert np.abs(affine.ledger.closure(relative=True)).max() < 1e-12


def test_composites_assign_documented_rules(rng):
    model = reflrp.Sequential([
        ("c1", reflrp.Conv2d(rng.normal(size=(2, 1, 3, 3)))), ("r1", reflrp.ReLU()),
        ("c2", reflrp.Conv2d(rng.normal(size=(2, 2, 3, 3)))), ("p", reflrp.AvgPool2d(2)), ("f", reflrp.Flatten()),
        ("fc", reflrp.Linear(rng.normal(size=(3, 2)))),
    ])
    x = rng.uniform(0, 1, size=(1, 1, 6, 6))
    cases = {
        composites.EpsilonGammaBox(0.0, 1.0): ("ZBox", "Gamma", "Epsilon"),
        composites.EpsilonPlus(): ("ZPlus", "ZPlus", "Epsilon"),
        composites.EpsilonPlusFlat(): ("Flat", "ZPlus", "Epsilon"),
        composites.EpsilonAlpha2Beta1(): ("AlphaBeta", "AlphaBeta", "Epsilon"),
        composites.EpsilonAlpha2Beta1Flat(): ("Flat", "AlphaBeta", "Epsilon"),
    }
    for composite, (first, conv, dense) in cases.items():
        ledger = reflrp.explain(model, x, 0, composite).ledger
        got = {name: rule.split("(")[0] for name, rule in zip(ledger.nodes, ledger.rules)}
        assert (got["c1"], got["c2"], got["fc"], got["r1"], got["p"], got["f"]) == (
            first, conv, dense, "Pass", "Norm", "Gradient")


def test_single_rule_on_a_parameter_free_only_model_uses_defaults(rng):
    model = reflrp.Sequential([reflrp.AvgPool2d(2), reflrp.Flatten()])
    e = reflrp.explain(model, rng.uniform(1, 2, size=(1, 1, 4, 4)), 0, rules.ZPlus())
    assert e.ledger.rules == ("Norm", "Gradient")


def test_float32_models_explain_in_float32(rng):
    model = small_cnn(rng).astype(np.float32)
    x = rng.normal(size=(2, 2, 8, 8)).astype(np.float32)
    e = reflrp.explain(model, x, 0, composites.EpsilonPlus())
    assert e.relevance.dtype == np.float32
    assert np.abs(e.ledger.closure(relative=True)).max() < 1e-5
    e64 = reflrp.explain(model.astype(np.float64), x.astype(np.float64), 0, composites.EpsilonPlus())
    np.testing.assert_allclose(e.relevance, e64.relevance, atol=1e-4 * np.abs(e64.relevance).max())


def test_overflowing_relevance_is_an_error_not_an_inf():
    tiny, huge = reflrp.Linear(np.array([[1e-160]])), reflrp.Linear(np.array([[1e160]]))
    model = reflrp.Sequential([("fc", tiny), ("out", huge)])
    x = np.array([[1e-160]])  # tiny z everywhere: a unit seed divided by them overflows
    with pytest.raises(ReflrpError, match="Linear 'out': relevance overflowed under Epsilon\\(epsilon=0.0\\)"):
        reflrp.explain(model, x, 0, rules.Epsilon(epsilon=0.0), seed="unit")
    e = reflrp.explain(model, x, 0, rules.Epsilon(), seed="unit")  # the default epsilon absorbs it; the ledger says so
    assert np.all(np.isfinite(e.relevance)) and e.ledger.stabilizer.sum() != 0
