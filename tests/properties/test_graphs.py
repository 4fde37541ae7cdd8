"""Properties of random graphs (U-Net-like and residual, with and without BN) under every rule: ledger closure,
exact conservation in the bias-free cases, determinism."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import reflrp
from reflrp import composites, rules

from nets import residual_graphs, unet_graphs
from properties.conservation import ALL_RULES, CONSERVATIVE, assert_conserved, unstabilized

GRAPHS = st.one_of(unet_graphs(), residual_graphs())
BIAS_FREE = st.one_of(unet_graphs(bias=False, batchnorm=False), residual_graphs(bias=False, batchnorm=False))
GRAPH_RULES = ALL_RULES + [
    composites.Composite(layer_map=[(reflrp.layers.AffineLayer, rules.Epsilon()), (reflrp.Add, rules.Gradient()),
                                    (reflrp.Upsample, rules.Gradient())]),
]


def _target(model, x):
    out = model(x)
    return out.shape[1:], (0,) + tuple(s // 2 for s in out.shape[2:])


@given(GRAPHS, st.sampled_from(GRAPH_RULES))
def test_graph_ledger_closes_for_every_rule(net, rule):
    model, x = net
    _, index = _target(model, x)
    e = reflrp.explain(model, x, index, rule)
    assert np.all(np.abs(e.ledger.closure(relative=True)) <= 1e-12)
    assert np.all(np.abs(e.ledger.node_closure(relative=True)) <= 1e-12)


@given(BIAS_FREE, st.sampled_from(CONSERVATIVE))
def test_bias_free_graphs_conserve_relevance(net, rule):
    model, x = net
    _, index = _target(model, x)
    assert_conserved(reflrp.explain(model, x, index, unstabilized(rule)))


@given(GRAPHS, st.sampled_from(GRAPH_RULES))
def test_graph_relevance_is_bit_identical_alone_in_a_batch_and_repeated(net, rule):
    model, x = net
    _, index = _target(model, x)
    batch = reflrp.explain(model, x, index, rule, keep=True)
    again = reflrp.explain(model, x, index, rule, keep=True)
    np.testing.assert_array_equal(batch.relevance, again.relevance)
    for name in batch.relevances:
        np.testing.assert_array_equal(batch.relevances[name], again.relevances[name])
    for k in range(len(x)):
        alone = reflrp.explain(model, x[k : k + 1], index, rule)
        np.testing.assert_array_equal(alone.relevance[0], batch.relevance[k])


CONE_RULES = [rules.Epsilon(), rules.ZPlus(), rules.AlphaBeta(), rules.Gamma(), rules.Flat(), rules.WSquare(),
              composites.EpsilonPlus(), composites.EpsilonGammaBox(-4.0, 4.0)]


def _pixels(data, shape, k):
    """``k`` output positions of a (classes, H, W) map, and a class."""
    positions = [tuple(data.draw(st.integers(0, n - 1)) for n in shape[1:]) for _ in range(k)]
    return data.draw(st.integers(0, shape[0] - 1)), positions


@given(unet_graphs(), st.sampled_from(CONE_RULES), st.data())
def test_graph_relevance_on_the_receptive_cone_equals_the_whole_computation(net, rule, data):
    model, x = net
    shape, _ = _target(model, x)
    cls, (pixel,) = _pixels(data, shape, 1)
    whole = reflrp.explain(model, x, (cls, *pixel), rule, cone=False, keep=True)
    cut = reflrp.explain(model, x, (cls, *pixel), rule, cone=True, keep=True)
    scale = np.abs(whole.ledger.magnitude).max()  # the largest relevance magnitude any node handled
    np.testing.assert_allclose(cut.relevance, whole.relevance, rtol=0, atol=1e-12 * scale)
    for name, r in whole.relevances.items():
        np.testing.assert_allclose(cut.relevances[name], r, rtol=0, atol=1e-12 * scale)
    for column in ("relevance_in", "relevance_out", "bias", "stabilizer", "dropped"):
        np.testing.assert_allclose(getattr(cut.ledger, column), getattr(whole.ledger, column), rtol=0,
                                   atol=1e-12 * scale)


@given(unet_graphs(), st.sampled_from(CONE_RULES), st.data())
def test_graph_pixels_have_the_bits_of_single_pixels_whatever_the_cone(net, rule, data):
    model, x = net
    shape, _ = _target(model, x)
    cls, pixels = _pixels(data, shape, 3)
    cone = data.draw(st.sampled_from(["auto", True, False]))
    many = reflrp.explain(model, x, reflrp.targets.Pixels(cls, pixels), rule, cone=cone)
    for m, (n, pixel) in enumerate((n, p) for n in range(len(x)) for p in pixels):
        one = reflrp.explain(model, x[n:n + 1], (cls, *pixel), rule, cone=cone)
        assert one.relevance[0].tobytes() == many.relevance[m].tobytes()
