"""Properties of random sequential networks: ledger closure for every rule and composite, exact conservation
in the bias-free cases, and determinism."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import reflrp
from reflrp import composites, rules

from nets import sequential_nets, zero_bias_model

ALL_RULES = [
    rules.Epsilon(),
    rules.Epsilon(epsilon=0.0),
    rules.Epsilon(epsilon=0.1, zero_bias=True),
    rules.ZPlus(),
    rules.AlphaBeta(),
    rules.AlphaBeta(alpha=1.0, beta=0.0, epsilon=0.0),
    rules.Gamma(),
    rules.Gamma(gamma=0.5, epsilon=0.0),
    rules.Flat(),
    rules.WSquare(),
    composites.EpsilonPlus(),
    composites.EpsilonAlpha2Beta1(),
    composites.EpsilonPlusFlat(),
    composites.EpsilonAlpha2Beta1Flat(),
    composites.EpsilonGammaBox(-4.0, 4.0),
    composites.Composite(layer_map=[(reflrp.Conv2d, rules.Gamma()), (reflrp.ConvTranspose2d, rules.Gamma()),
                                    (reflrp.Linear, rules.Epsilon()),
                                    (reflrp.BatchNorm2d, rules.Pass()),
                                    (reflrp.MaxPool2d, rules.WinnerTakesAll("split"))]),
]


@given(sequential_nets(), st.sampled_from(ALL_RULES), st.sampled_from(["value", "unit"]))
def test_ledger_closes_for_every_rule(net, rule, seed):
    model, x = net
    e = reflrp.explain(model, x, target=0, rules=rule, seed=seed)
    assert np.all(np.abs(e.ledger.closure(relative=True)) <= 1e-12)
    assert np.all(np.abs(e.ledger.node_closure(relative=True)) <= 1e-12)
    assert np.all(np.isfinite(e.relevance))


CONSERVATIVE = [
    rules.Epsilon(epsilon=0.0),
    rules.AlphaBeta(epsilon=0.0),
    rules.AlphaBeta(alpha=3.0, beta=2.0, epsilon=0.0),
    rules.Gamma(epsilon=0.0),
    rules.Flat(epsilon=0.0),
    rules.WSquare(epsilon=0.0),
]


def _exact(rule, first=None):
    """``rule`` on layers with weights and an unstabilized z-rule on average pooling."""
    return composites.Composite(
        layer_map=[(reflrp.layers.AffineLayer, rule), (reflrp.AvgPool2d, rules.Norm(epsilon=0.0))], first=first
    )


def _assert_conserved(e):
    ledger = e.ledger
    assert np.all(ledger.bias == 0) and np.all(ledger.stabilizer == 0) and np.all(ledger.gradient == 0)
    scale = ledger.scale()
    dropped = ledger.dropped.sum(axis=0)
    # exact conservation, with any unit whose denominator vanished accounted for
    assert np.all(np.abs(e.target_value - e.relevance.reshape(len(e.relevance), -1).sum(1) - dropped) <= 1e-10 * scale)
    # and where no denominator vanished, the input relevance alone sums to the target
    clean = np.all(ledger.dropped == 0, axis=0)
    total = e.relevance.reshape(len(e.relevance), -1).sum(1)
    assert np.all(np.abs(e.target_value - total)[clean] <= 1e-10 * scale[clean])


@given(sequential_nets(), st.sampled_from(CONSERVATIVE))
def test_bias_free_networks_conserve_relevance(net, rule):
    model, x = net
    e = reflrp.explain(zero_bias_model(model), x, target=1, rules=_exact(rule))
    _assert_conserved(e)


@given(sequential_nets(), st.sampled_from(CONSERVATIVE[:4]))
def test_zero_bias_rules_conserve_on_networks_with_biases(net, rule):
    model, x = net
    zero_bias = type(rule)(**{**rule.__dict__, "zero_bias": True})
    _assert_conserved(reflrp.explain(model, x, target=0, rules=_exact(zero_bias)))


@given(sequential_nets(bias=False, batchnorm=False))
def test_zplus_conserves_for_non_negative_inputs(net):
    model, x = net
    _assert_conserved(reflrp.explain(model, np.abs(x), target=0, rules=_exact(rules.ZPlus(epsilon=0.0))))


@given(sequential_nets(bias=False, batchnorm=False))
def test_zbox_conserves_inside_its_box(net):
    model, x = net
    low, high = -3.0, 3.0
    x = np.clip(x, low, high)
    composite = _exact(rules.Epsilon(epsilon=0.0), first=rules.ZBox(low, high, epsilon=0.0))
    _assert_conserved(reflrp.explain(model, x, target=0, rules=composite))


@given(sequential_nets(), st.sampled_from(ALL_RULES))
def test_relevance_is_bit_identical_for_a_sample_alone_or_in_a_batch_and_when_repeated(net, rule):
    model, x = net
    batch = reflrp.explain(model, x, target=0, rules=rule).relevance
    again = reflrp.explain(model, x, target=0, rules=rule).relevance
    np.testing.assert_array_equal(batch, again)
    for k in range(len(x)):
        alone = reflrp.explain(model, x[k : k + 1], target=0, rules=rule).relevance
        np.testing.assert_array_equal(alone[0], batch[k])
