"""profile="zennit" against Zennit 0.5.1 itself: fixtures made by scripts/peers/zennit_fixtures.py.

Every case of every model: the input relevance and the relevance arriving at every module Zennit hooks, float64,
to <= 1e-10 relative (of each map's largest magnitude); measured ~1e-15.  And reflrp's own Gamma equals Zennit's on
networks whose Gamma layers see signed inputs, to 1e-12 (tests/data/zennit_gamma.npz, made by Zennit itself with
scripts/zennit_reference.py; the networks are rebuilt here from its arrays).
"""

import json
import os
import pathlib

import numpy as np
import pytest

import reflrp
from reflrp import composites, rules
from reflrp.compat import Zennit
from reflrp.compat.zennit import RESNET_BLOCKS

# nox -s peers points this at fixtures it has just rebuilt from Zennit itself
PEERS = os.environ.get("REFLRP_PEERS_DATA", pathlib.Path(__file__).resolve().parent / "data" / "peers")
DATA = pathlib.Path(PEERS) / "zennit"
MODELS = ("cnn", "unet_transposed", "unet_upsample", "unet_nobn", "modern", "resnet", "norms", "signal", "volume")
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


CANONIZED = {  # Zennit's canonizers as a profile: SequentialMergeBatchNorm, ResNetCanonizer
    "bn-pass": ("", Zennit()),
    "bn-merged": ("+merge", Zennit(merge_batchnorm=True, merge_defect=True)),
    "resnet": ("+resnet", Zennit(merge_batchnorm=True, merge_defect=True, residual_sums=True)),
}


def zennit_modules(model):
    """reflrp's node for each module Zennit hooks: its own name; for a module whose forward torch.fx traced
    through (torchvision's LayerNorm2d), the last node it computed (``Node.within``); for the ``Sum`` module
    Zennit's ResNet canonizer adds to a block (``layer1.0.canonizer_sum``), the block's residual addition."""
    named = {n.within[0]: n.name for n in model.nodes if n.within}  # the last node called inside each module
    named |= {f"{n.within[0]}.canonizer_sum": n.name for n in model.nodes
              if isinstance(n.layer, reflrp.Add) and n.within and n.within[1] in RESNET_BLOCKS}
    nodes = {n.name for n in model.nodes}
    return lambda module: module if module in nodes else named.get(module, module)


@pytest.mark.parametrize("canonized", CANONIZED)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", MODELS)
def test_zennit_profile_reproduces_zennit(name, case, canonized):
    model, arrays, target = load(name)
    suffix, profile = CANONIZED[canonized]
    label = case + suffix
    if f"{label}/input" not in arrays.files:
        assert canonized == "resnet" and name != "resnet"  # the ResNet canonizer runs on the ResNet only
        return
    e = reflrp.explain(model, arrays["x"], target, CASES[case], profile=profile, keep=True)
    assert relative(e.relevance, arrays[f"{label}/input"]) <= 1e-10
    node = zennit_modules(model)
    layers = [k.split("/", 1)[1] for k in arrays.files if k.startswith(label + "/") and not k.endswith("/input")]
    assert {node(m) for m in layers} <= set(e.relevances)  # every module Zennit hooks is a node here
    for module in layers:
        assert relative(e.relevances[node(module)], arrays[f"{label}/{module}"]) <= 1e-10, module
    assert np.all(np.abs(e.ledger.closure(relative=True)) < 1e-12)


def test_the_resnet_canonizer_makes_each_residual_addition_a_sum_under_norm():
    """The fixture's ResNet has four torchvision blocks; without the canonizer Zennit copies relevance into both
    branches of each addition (far from the canonized map), with it the additions are Norm."""
    model, arrays, target = load("resnet")
    sums = [n for n in model.nodes if isinstance(n.layer, reflrp.Add)]
    assert [n.within[1].rsplit(".", 1)[1] for n in sums] == ["BasicBlock"] * 2 + ["Bottleneck"] * 2
    assert all(n.called == "function" for n in sums)
    profile = CANONIZED["resnet"][1]
    canonized = profile.prepare(model)
    assert all(canonized[n.name].called == "module" for n in sums)
    chosen = profile.resolve(CASES["EpsilonPlus"], canonized, [n.name for n in sums])
    assert set(chosen.values()) == {rules.Norm(epsilon=1e-6)}
    assert set(Zennit().resolve(CASES["EpsilonPlus"], model, [n.name for n in sums]).values()) == {rules.Gradient()}
    assert relative(arrays["EpsilonPlus+merge/input"], arrays["EpsilonPlus+resnet/input"]) > 1e-2


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


# -- Gamma on signed inputs -------------------------------------------------------------------------------------

GAMMA = np.load(pathlib.Path(__file__).resolve().parent / "data" / "zennit_gamma.npz")


def gamma_arrays(net):
    prefix = f"{net}/"
    return {k[len(prefix):]: GAMMA[k] for k in GAMMA.files if k.startswith(prefix)}


def conv(p, name, **kw):
    return reflrp.Conv2d(p[f"{name}.weight"], p[f"{name}.bias"], **kw)


def signed(p):
    return reflrp.Sequential([
        ("conv1", conv(p, "conv1", padding=1)), ("conv2", conv(p, "conv2", stride=2)), ("relu", reflrp.ReLU()),
        ("conv3", conv(p, "conv3", padding=1)), ("flatten", reflrp.Flatten()),
        ("fc", reflrp.Linear(p["fc.weight"], p["fc.bias"])),
    ])


def skip(p):
    b = reflrp.GraphBuilder()
    h = b.add("relu1", reflrp.ReLU(), b.add("conv1", conv(p, "conv1", padding=1), b.input))
    down = b.add("relu2", reflrp.ReLU(), b.add("down", conv(p, "down", stride=2, padding=1), h))
    up = b.add("up", reflrp.ConvTranspose2d(p["up.weight"], p["up.bias"], stride=2), down)
    cat = b.add("cat", reflrp.Concat(axis=1), b.add("skip", conv(p, "skip", padding=1), h), up)
    return b.build(output=b.add("out", conv(p, "out"), cat))


@pytest.mark.parametrize("gamma", [0.25, 1.0])
@pytest.mark.parametrize("net, build", [("signed", signed), ("skip", skip)])
def test_gamma_matches_zennit_on_signed_inputs(net, build, gamma):
    p = gamma_arrays(net)
    model, x = build(p), p["x"]
    assert np.any(model.trace(x)["conv1" if net == "signed" else "skip"] < 0)  # a Gamma layer sees signed inputs
    e = reflrp.explain(model, x, p["seed"], rules.Gamma(gamma=gamma), seed="unit")
    expected = p[f"relevance/gamma={gamma}"]
    assert e.relevance.shape == expected.shape
    assert np.abs(e.relevance - expected).max() <= 1e-12 * np.abs(expected).max()


def test_the_gamma_reference_came_from_zennit_0_5_1():
    assert str(GAMMA["zennit_version"]) == "0.5.1"
