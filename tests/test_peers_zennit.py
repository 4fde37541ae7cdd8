"""profile="zennit" against Zennit 0.5.1 itself: fixtures made by scripts/peers/zennit_fixtures.py.

Every case of every model: the input relevance and the relevance arriving at every module Zennit hooks, float64,
to <= 1e-10 relative (of each map's largest magnitude); measured ~1e-15.
"""

import json
import os
import pathlib

import numpy as np
import pytest

import reflrp
from reflrp import composites
from reflrp.profiles import Zennit

# nox -s peers points this at fixtures it has just rebuilt from Zennit itself
PEERS = os.environ.get("REFLRP_PEERS_DATA", pathlib.Path(__file__).resolve().parent / "data" / "peers")
DATA = pathlib.Path(PEERS) / "zennit"
MODELS = ("cnn", "unet_transposed", "unet_upsample", "unet_nobn")
CASES = {
    "EpsilonPlus": composites.EpsilonPlus(),
    "EpsilonAlpha2Beta1": composites.EpsilonAlpha2Beta1(),
    "EpsilonPlusFlat": composites.EpsilonPlusFlat(),
    "EpsilonAlpha2Beta1Flat": composites.EpsilonAlpha2Beta1Flat(),
    "EpsilonGammaBox": composites.EpsilonGammaBox(low=-1.0, high=2.0),
}


def load(name):
    arrays = np.load(DATA / f"{name}.npz")
    index = tuple(int(i) for i in arrays["index"])
    target = index[0] if len(index) == 1 else reflrp.targets.Index(index)
    return reflrp.load(DATA / f"{name}.reflrp"), arrays, target


def relative(mine, theirs):
    return np.abs(mine - theirs).max() / max(np.abs(theirs).max(), np.finfo(np.float64).tiny)


def test_fixtures_were_made_by_zennit_0_5_1():
    for name in MODELS:
        versions = json.loads(str(np.load(DATA / f"{name}.npz")["versions"]))
        assert versions["zennit"] == "0.5.1"


@pytest.mark.parametrize("merged", [False, True], ids=["bn-pass", "bn-merged"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", MODELS)
def test_zennit_profile_reproduces_zennit(name, case, merged):
    model, arrays, target = load(name)
    label = case + ("+merge" if merged else "")
    profile = Zennit(merge_batchnorm=merged, merge_defect=merged)
    e = reflrp.explain(model, arrays["x"], target, CASES[case], profile=profile, keep=True)
    assert relative(e.relevance, arrays[f"{label}/input"]) <= 1e-10
    layers = [k.split("/", 1)[1] for k in arrays.files if k.startswith(label + "/") and not k.endswith("/input")]
    assert set(layers) <= set(e.relevances)  # every module Zennit hooks is a node here
    for node in layers:
        assert relative(e.relevances[node], arrays[f"{label}/{node}"]) <= 1e-10, node
    assert np.all(np.abs(e.ledger.closure(relative=True)) < 1e-12)


def test_the_merge_defect_is_real_and_only_an_opt_in():
    """Without merge_defect the merged model is the original one; Zennit's is not (5e-6 per BatchNorm)."""
    model, arrays, target = load("cnn")
    correct = reflrp.explain(model, arrays["x"], target, CASES["EpsilonPlus"], profile=Zennit(merge_batchnorm=True))
    assert 1e-7 < relative(correct.relevance, arrays["EpsilonPlus+merge/input"]) < 1e-4
    exact = reflrp.explain(model, arrays["x"], target, CASES["EpsilonPlus"], profile=Zennit(merge_batchnorm=True),
                           seed="unit")
    assert np.array_equal(exact.relevance, correct.relevance)


def test_upsample_is_where_reflrp_and_zennit_part():
    """reflrp's own conventions, with Zennit's seed and BatchNorm rule, depart from Zennit first at an Upsample
    (reflrp: z-rule, Zennit: gradient) and by the stabilizer's size only; without Upsample they agree."""
    bn_pass = composites.EpsilonPlus(layer_map=[((reflrp.BatchNorm2d,), reflrp.rules.Pass())])
    model, arrays, target = load("unet_nobn")
    own = reflrp.explain(model, arrays["x"], target, bn_pass, seed="unit")
    assert relative(own.relevance, arrays["EpsilonPlus/input"]) <= 1e-10
    model, arrays, target = load("unet_upsample")
    own = reflrp.explain(model, arrays["x"], target, bn_pass, seed="unit", keep=True)
    assert 1e-10 < relative(own.relevance, arrays["EpsilonPlus/input"]) < 1e-4
    departed = [node.name for node in reversed(model.nodes) if f"EpsilonPlus/{node.name}" in arrays.files
                and relative(own.relevances[node.name], arrays[f"EpsilonPlus/{node.name}"]) > 1e-10]
    first = departed[0]
    assert isinstance(model[model.consumers(first)[0]].layer, reflrp.Upsample), first
