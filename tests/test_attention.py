"""Transformers' layers and rules: MatMul, Softmax inside a model (causal too), RMSNorm, the Product rule on a matrix
product, the softmax's Taylor rule, Epsilon on a normalisation with its statistics held, Pass with a stabilizer;
each against a slow twin written from the formula, and a small transformer's ledger closing under AttnLRP and
CP-LRP."""

import numpy as np
import pytest

import reflrp
from reflrp import composites, rules, targets
from reflrp.errors import ReflrpError
from reflrp.graph import GraphBuilder


def stab(z, eps):
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def softmax_twin(a, hidden=None):
    a = np.where(hidden, -np.inf, a) if hidden is not None else a
    e = np.exp(a - a.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_matmul_forward_and_partials_are_the_products_adjoints(rng):
    layer = reflrp.MatMul()
    a, b = rng.normal(size=(3, 2, 4, 5)), rng.normal(size=(3, 2, 5, 3))
    got = layer.forward([a, b])
    np.testing.assert_allclose(got, np.einsum("nhij,nhjk->nhik", a, b), rtol=1e-13)
    s = rng.normal(size=got.shape)
    c_a, c_b = layer.partials(s, [a, b])  # <s, a @ b> is linear in each factor: its gradients
    np.testing.assert_allclose(c_a, np.einsum("nhik,nhjk->nhij", s, b), rtol=1e-12)
    np.testing.assert_allclose(c_b, np.einsum("nhij,nhik->nhjk", a, s), rtol=1e-12)
    with pytest.raises(ReflrpError, match=r"cannot multiply per-sample shapes \(2, 4, 5\) and \(2, 4, 3\)"):
        layer(a, rng.normal(size=(3, 2, 4, 3)))


def product_twin(a, b, r, eps, shares):
    """One sample: every contribution a_ij b_jk shares r_ik by the epsilon rule, split by ``shares``."""
    n, k = a.shape
    m = b.shape[1]
    z = a @ b
    r_a, r_b = np.zeros_like(a), np.zeros_like(b)
    for i in range(n):
        for j in range(k):
            for t in range(m):
                part = a[i, j] * b[j, t] / stab(z[i, t], eps) * r[i, t]
                r_a[i, j] += shares[0] * part
                r_b[j, t] += shares[1] * part
    return r_a, r_b


@pytest.mark.parametrize("rule, gate, shares", [
    (rules.Product(split="uniform", epsilon=0.1), None, (0.5, 0.5)),
    (rules.Product(split="signal", epsilon=0.1), 0, (0.0, 1.0)),
    (rules.Product(split="signal", epsilon=0.0, ungated="uniform"), None, (0.5, 0.5)),
], ids=["uniform", "signal", "ungated"])
def test_product_rule_on_a_matrix_product_matches_its_twin(rule, gate, shares, rng):
    layer = reflrp.MatMul(gate=gate)
    a, b = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 3, 5))
    z = layer.forward([a, b])
    r = rng.normal(size=z.shape)
    result = rule.propagate(layer, [a, b], z, r)
    for k in range(2):
        expected = product_twin(a[k], b[k], r[k], rule.epsilon, shares)
        for got, want in zip(result.r_in, expected):
            np.testing.assert_allclose(got[k], want, rtol=1e-10, atol=1e-12)
    gap = r.sum((1, 2)) - sum(x.sum((1, 2)) for x in result.r_in) - sum(result.absorbed)
    assert np.abs(gap).max() <= 1e-12 * np.abs(r).sum()


def test_product_signal_refuses_an_unmarked_matrix_product():
    with pytest.raises(ReflrpError, match="needs to know which input is the gate"):
        rules.Product().check(reflrp.MatMul(), [(2, 3), (3, 2)], (2, 2))


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_forward_and_taylor_rule_match_the_jacobian_twin(causal, rng):
    layer = reflrp.Softmax(3, causal=causal)
    a = rng.normal(size=(2, 2, 3, 4))
    hidden = np.arange(4)[None, :] > np.arange(3)[:, None] + 1 if causal else None
    y = layer.forward([a])
    np.testing.assert_allclose(y, softmax_twin(a, hidden), rtol=1e-13)
    if causal:
        assert np.all(y[..., hidden] == 0)
    r = rng.normal(size=y.shape) * (y > 0)  # a hidden key's probability receives nothing from above
    result = rules.Taylor().propagate(layer, [a], y, r)
    expected = np.zeros_like(a)
    for index in np.ndindex(a.shape[:-1]):  # r_in_i = a_i sum_j (dy_j/da_i) r_j / y_j over the keys present
        yy, rr, aa = y[index], r[index], a[index]
        present = yy > 0
        jacobian = np.diag(yy) - np.outer(yy, yy)  # dy_j / da_i, symmetric
        ratio = np.where(present, rr / np.where(present, yy, 1), 0)
        expected[index] = np.where(present, aa * (jacobian @ ratio), 0)
    np.testing.assert_allclose(result.r_in[0], expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.absorbed.bias, r.sum((1, 2, 3)) - expected.sum((1, 2, 3)), rtol=1e-10)
    gradient = rules.Gradient().propagate(layer, [a], y, r).r_in[0]
    np.testing.assert_allclose(gradient, y * (r - (y * r).sum(-1, keepdims=True)), rtol=1e-12, atol=1e-14)


def test_a_causal_softmax_needs_its_last_axis():
    with pytest.raises(ReflrpError, match="a causal softmax runs over the last"):
        reflrp.Softmax(1, causal=True).output_shape((3, 4))


@pytest.mark.parametrize("layer, shape", [(reflrp.LayerNorm((4,), eps=1e-3), (3, 4)),
                                          (reflrp.GroupNorm(2, eps=1e-3), (4, 3)),
                                          (reflrp.RMSNorm((4,), eps=1e-3), (3, 4))], ids=lambda v: str(v)[:9])
def test_epsilon_on_a_normalisation_is_the_z_rule_of_its_map_with_the_statistics_held(layer, shape, rng):
    a = rng.normal(size=(2, *shape))
    y = layer.forward([a])
    r = rng.normal(size=y.shape)
    result = rules.Epsilon(epsilon=0.01).propagate(layer, [a], y, r)
    for k in range(2):
        x = a[k].reshape(-1)
        n = x.size
        groups = {"LayerNorm": shape[0], "GroupNorm": 2, "RMSNorm": shape[0]}[type(layer).__name__]
        size = n // groups
        matrix = np.zeros((n, n))  # the map at the held statistics, group by group (rows, or channel groups)
        for g in range(groups):
            part = slice(g * size, (g + 1) * size)
            xs = x[part]
            if isinstance(layer, reflrp.RMSNorm):
                matrix[part, part] = np.eye(size) / np.sqrt((xs ** 2).mean() + 1e-3)
            else:
                sigma = np.sqrt(xs.var() + 1e-3)
                matrix[part, part] = (np.eye(size) - 1.0 / size) / sigma
        z = matrix @ x
        np.testing.assert_allclose(z, y[k].reshape(-1), rtol=1e-12, atol=1e-12)
        expected = x * (matrix.T @ (r[k].reshape(-1) / stab(z, 0.01)))
        np.testing.assert_allclose(result.r_in[0][k].reshape(-1), expected, rtol=1e-10, atol=1e-12)
    gap = r.sum((1, 2)) - result.r_in[0].sum((1, 2)) - sum(result.absorbed)
    assert np.abs(gap).max() <= 1e-12 * np.abs(r).sum()


def test_rmsnorm_forward_and_gradient(rng):
    layer = reflrp.RMSNorm((5,), eps=1e-4)
    a = rng.normal(size=(3, 2, 5))
    y = layer.forward([a])
    np.testing.assert_allclose(y, a / np.sqrt((a ** 2).mean(-1, keepdims=True) + 1e-4), rtol=1e-13)
    r, step = rng.normal(size=a.shape), 1e-6
    got = layer.gradient(a, r)
    for index in [(0, 0, 0), (1, 1, 3), (2, 0, 4)]:  # central differences of <r, y(a)>
        bump = np.zeros_like(a)
        bump[index] = step
        numeric = ((r * layer.forward([a + bump])).sum() - (r * layer.forward([a - bump])).sum()) / (2 * step)
        assert abs(got[index] - numeric) <= 1e-7


def test_pass_with_epsilon_is_the_stabilized_identity(rng):
    layer = reflrp.GELU()
    a = rng.normal(size=(2, 6))
    a[0, 0] = -1e-10  # "plus" divides by zero here: the unit's relevance is dropped, never NaN
    y, r = layer.forward([a]), rng.normal(size=(2, 6))
    result = rules.Pass(epsilon=1e-10, stabilizer="plus").propagate(layer, [a], y, r)
    denominator = a + 1e-10
    denominator[0, 0] = np.inf  # dropped
    expected = r * a / denominator
    np.testing.assert_allclose(result.r_in[0], expected, rtol=1e-14)
    np.testing.assert_allclose(result.absorbed.stabilizer, (r - expected).sum(1) - [r[0, 0], 0], rtol=1e-12,
                               atol=1e-15)
    np.testing.assert_array_equal(result.absorbed.dropped, [r[0, 0], 0])
    with pytest.raises(ReflrpError, match="divides by the input of an activation"):
        rules.Pass(epsilon=1e-10).check(reflrp.Identity(), [(3,)], (3,))


def tiny_transformer(rng, causal=False, tokens=5, width=8, heads=2, classes=3, biases=True):
    """A pre-norm transformer block and a head on the first token, built by hand: per-sample input (tokens,
    width)."""
    size = width // heads

    def dense(out, inp, scale=0.4):
        bias = rng.normal(size=out) * 0.1 if biases else None
        return reflrp.Linear(rng.normal(size=(out, inp)) * scale, bias)

    def norm(b, name, source):
        h = b.add(f"{name}.normalize", reflrp.LayerNorm((width,)), source)
        shift = rng.normal(size=width) * 0.1 if biases else None
        return b.add(name, reflrp.Scale(rng.uniform(0.5, 1.5, width), shift), h)

    b = GraphBuilder()
    x = b.input
    h = norm(b, "ln1", x)
    q, k, v = (b.add(name, dense(width, width), h) for name in ("q", "k", "v"))
    split = reflrp.Reshape((tokens, heads, size))
    q, k, v = (b.add(f"{name}.heads", split, t) for name, t in (("q", q), ("k", k), ("v", v)))
    q = b.add("q.t", reflrp.Permute((0, 2, 1, 3)), q)
    k = b.add("k.t", reflrp.Permute((0, 2, 3, 1)), k)
    v = b.add("v.t", reflrp.Permute((0, 2, 1, 3)), v)
    scores = b.add("scores", reflrp.MatMul(), q, k)
    scores = b.add("scaled", reflrp.Scale(np.array(size ** -0.5)), scores)
    p = b.add("softmax", reflrp.Softmax(3, causal=causal), scores)
    context = b.add("context", reflrp.MatMul(gate=0), p, v)
    context = b.add("context.t", reflrp.Permute((0, 2, 1, 3)), context)
    context = b.add("context.merge", reflrp.Reshape((tokens, width)), context)
    attended = b.add("attended", dense(width, width), context)
    x = b.add("residual1", reflrp.Add(), x, attended)
    h = norm(b, "ln2", x)
    h = b.add("fc1", dense(2 * width, width), h)
    h = b.add("gelu", reflrp.GELU(), h)
    h = b.add("fc2", dense(width, 2 * width), h)
    x = b.add("residual2", reflrp.Add(), x, h)
    first = b.add("first", reflrp.Narrow(1, 0, 1), x)
    first = b.add("flat", reflrp.Flatten(), first)
    b.add("head", dense(classes, width, 1.0), first)
    return b.build()


@pytest.mark.parametrize("composite", [composites.AttnLRP(), composites.CPLRP(), composites.AttnLRP(epsilon=0.0)],
                         ids=repr)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_transformer_explains_and_its_ledger_closes(composite, causal, dtype, rng):
    model = tiny_transformer(rng, causal).astype(dtype)
    x = rng.normal(size=(2, 5, 8)).astype(dtype)
    e = reflrp.explain(model, x, targets.Class(1), composite)
    assert e.relevance.shape == x.shape and e.relevance.dtype == dtype
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    assert np.abs(e.ledger.closure(relative=True)).max() <= tolerance
    assert np.abs(e.ledger.node_closure(relative=True)).max() <= tolerance
    softmax = e.ledger.nodes.index("softmax")
    if isinstance(composite, composites.CPLRP):  # the probabilities are held: the softmax sees no relevance
        assert e.ledger.bias[softmax].max() == 0
    else:
        assert np.abs(e.ledger.bias[softmax]).max() > 0  # the Taylor rule's zeroth-order term


def test_cp_lrp_without_biases_conserves_the_target(rng):
    model = tiny_transformer(rng, biases=False)
    x = rng.normal(size=(3, 5, 8))
    e = reflrp.explain(model, x, targets.Class(2), composites.CPLRP(epsilon=0.0))
    total = e.relevance.reshape(3, -1).sum(1)
    np.testing.assert_allclose(total, e.target_value, rtol=1e-12)


def test_a_transformer_explanation_does_not_depend_on_the_batch(rng):
    model = tiny_transformer(rng, causal=True)
    x = rng.normal(size=(4, 5, 8))
    together = reflrp.explain(model, x, targets.Class(0), composites.AttnLRP()).relevance
    alone = reflrp.explain(model, x[2:3], targets.Class(0), composites.AttnLRP()).relevance
    np.testing.assert_array_equal(together[2:3], alone)
