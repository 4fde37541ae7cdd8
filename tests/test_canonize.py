"""merge_batchnorm: same function within 1e-12, BN folded where it can be, reported where it cannot."""

import numpy as np

import reflrp
from reflrp import rules
from reflrp.canonize import merge_batchnorm

from nets import batchnorm2d


def test_merge_batchnorm_keeps_the_function(rng):
    convt = reflrp.ConvTranspose2d(rng.normal(size=(4, 3, 2, 2)), rng.normal(size=6), stride=2, groups=2)
    model = reflrp.Sequential([
        ("conv", reflrp.Conv2d(rng.normal(size=(4, 2, 3, 3)), None, padding=1)), ("bn1", batchnorm2d(rng, 4)),
        ("relu", reflrp.ReLU()), ("up", convt), ("bn2", batchnorm2d(rng, 6)), ("relu2", reflrp.ReLU()),
        ("flat", reflrp.Flatten()),
        ("fc", reflrp.Linear(rng.normal(size=(3, 6 * 10 * 10)), rng.normal(size=3))),
        ("bn3", reflrp.BatchNorm1d(rng.normal(size=3), rng.uniform(0.5, 2, 3), rng.normal(size=3), None, eps=1e-3)),
    ])
    merged, report = merge_batchnorm(model, report=True)
    assert report == {}
    assert [n.name for n in merged.nodes] == ["conv", "relu", "up", "relu2", "flat", "fc"]
    x = rng.normal(size=(3, 2, 5, 5))
    np.testing.assert_allclose(merged(x), model(x), rtol=1e-12, atol=1e-12)
    e = reflrp.explain(merged, x, 1, rules.Epsilon())
    assert np.abs(e.ledger.closure(relative=True)).max() < 1e-12


def test_unfoldable_batchnorm_is_reported_and_kept(rng):
    b = reflrp.GraphBuilder()
    conv = b.add("conv", reflrp.Conv2d(rng.normal(size=(2, 2, 1, 1))), b.input)
    bn_in = b.add("bn_in", batchnorm2d(rng, 2), b.input)
    both = b.add("add", reflrp.Add(), conv, bn_in)
    bn_add = b.add("bn_add", batchnorm2d(rng, 2), both)
    relu = b.add("relu", reflrp.ReLU(), bn_add)
    bn_relu = b.add("bn_relu", batchnorm2d(rng, 2), relu)
    shared = b.add("shared", reflrp.Conv2d(rng.normal(size=(2, 2, 1, 1))), bn_relu)
    bn_shared = b.add("bn_shared", batchnorm2d(rng, 2), shared)
    out = b.add("out", reflrp.Add(), bn_shared, shared)
    model = b.build(output=out)
    merged, report = merge_batchnorm(model, report=True)
    assert set(report) == {"bn_in", "bn_add", "bn_relu", "bn_shared"}
    assert "model input" in report["bn_in"]
    assert "Add 'add'" in report["bn_add"]
    assert "also feeds other nodes" in report["bn_shared"]
    x = rng.normal(size=(2, 2, 3, 3))
    np.testing.assert_allclose(merged(x), model(x), rtol=1e-12)
    assert [n.name for n in merged.nodes] == [n.name for n in model.nodes]
