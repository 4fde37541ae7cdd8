"""Properties of random sequential networks: ledger closure for every rule and composite, exact conservation
in the bias-free cases, and determinism."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import reflrp
from reflrp import rules

from nets import sequential_nets, zero_bias_model
from properties.conservation import ALL_RULES, CONSERVATIVE, assert_conserved, unstabilized


@given(sequential_nets(), st.sampled_from(ALL_RULES), st.sampled_from(["value", "unit"]))
def test_ledger_closes_for_every_rule(net, rule, seed):
    model, x = net
    e = reflrp.explain(model, x, target=0, rules=rule, seed=seed)
    assert np.all(np.abs(e.ledger.closure(relative=True)) <= 1e-12)
    assert np.all(np.abs(e.ledger.node_closure(relative=True)) <= 1e-12)
    assert np.all(np.isfinite(e.relevance))



@given(sequential_nets(), st.sampled_from(CONSERVATIVE))
def test_bias_free_networks_conserve_relevance(net, rule):
    model, x = net
    e = reflrp.explain(zero_bias_model(model), x, target=1, rules=unstabilized(rule))
    assert_conserved(e)


@given(sequential_nets(), st.sampled_from(CONSERVATIVE[:4]))
def test_zero_bias_rules_conserve_on_networks_with_biases(net, rule):
    model, x = net
    zero_bias = type(rule)(**{**rule.__dict__, "zero_bias": True})
    assert_conserved(reflrp.explain(model, x, target=0, rules=unstabilized(zero_bias)))


@given(sequential_nets(bias=False, batchnorm=False))
def test_zplus_conserves_for_non_negative_inputs(net):
    model, x = net
    assert_conserved(reflrp.explain(model, np.abs(x), target=0, rules=unstabilized(rules.ZPlus(epsilon=0.0))))


@given(sequential_nets(bias=False, batchnorm=False))
def test_zbox_conserves_inside_its_box(net):
    model, x = net
    low, high = -3.0, 3.0
    x = np.clip(x, low, high)
    composite = unstabilized(rules.Epsilon(epsilon=0.0), first=rules.ZBox(low, high, epsilon=0.0))
    assert_conserved(reflrp.explain(model, x, target=0, rules=composite))


@given(sequential_nets(), st.sampled_from(ALL_RULES))
def test_relevance_is_bit_identical_for_a_sample_alone_or_in_a_batch_and_when_repeated(net, rule):
    model, x = net
    batch = reflrp.explain(model, x, target=0, rules=rule).relevance
    again = reflrp.explain(model, x, target=0, rules=rule).relevance
    np.testing.assert_array_equal(batch, again)
    for k in range(len(x)):
        alone = reflrp.explain(model, x[k : k + 1], target=0, rules=rule).relevance
        np.testing.assert_array_equal(alone[0], batch[k])
