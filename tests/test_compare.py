"""compare: the first departing layer, the profile that explains a difference, bad input; the CLI; Captum itself,
live, through the peer harness (tests/peers.py; Zennit live runs in ``nox -s peers``)."""

import pathlib

import numpy as np
import pytest

from extras import need

need("torch")

import torch
from torch import nn

import reflrp
from reflrp import cli, composites, rules
from reflrp.errors import ReflrpError

from peers import compare_with


def unet_like(rng):
    g = reflrp.GraphBuilder()
    g.add("conv1", reflrp.Conv2d(rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4), padding=1), "input")
    g.add("relu1", reflrp.ReLU(), "conv1")
    g.add("pool", reflrp.MaxPool2d(2), "relu1")
    g.add("conv2", reflrp.Conv2d(rng.normal(size=(4, 4, 3, 3)), rng.normal(size=4), padding=1), "pool")
    g.add("up", reflrp.Upsample(scale_factor=2), "conv2")
    g.add("cat", reflrp.Concat(axis=1), "relu1", "up")
    g.add("out", reflrp.Conv2d(rng.normal(size=(2, 8, 1, 1)), rng.normal(size=2)), "cat")
    return g.build("out")


@pytest.fixture(scope="module")
def setting():
    rng = np.random.default_rng(5)  # one model for the module's tests, drawn once
    model, x = unet_like(rng), rng.uniform(-1, 1, size=(2, 2, 8, 8))
    return model, x, (1, 3, 4), composites.EpsilonPlus()


def test_identical_maps_agree_everywhere(setting):
    model, x, target, chosen = setting
    e = reflrp.explain(model, x, target, chosen, keep=True)
    c = reflrp.compare(model, x, target, chosen, dict(e.relevances, input=e.relevance))
    assert c.relevance.max_abs == 0 and c.relevance.correlation == pytest.approx(1.0) and c.departure is None
    assert list(c.layers) == ["out", "cat", "up", "conv2", "pool", "relu1", "conv1", "input"]
    assert c.explained_by == "reflrp" and "the maps agree under profile 'reflrp'" in str(c)


def test_the_first_departing_layer_is_named_with_its_ledger_row(setting):
    """Another implementation that differs only in Upsample's rule departs at the Upsample node."""
    model, x, target, chosen = setting
    other = reflrp.explain(model, x, target, composites.Composite(
        layer_map=[(reflrp.Upsample, rules.Norm(epsilon=0.5))], affine=rules.ZPlus()), keep=True)
    c = reflrp.compare(model, x, target, chosen, dict(other.relevances, input=other.relevance))
    assert c.departure.node == "conv2" and c.departure.layers == ("up",) and c.departure.rules == ("Norm",)
    assert c.layers["cat"].max_abs == 0 and c.layers["conv2"].relative > 1e-6
    assert set(c.departure.ledger["up"]) >= {"relevance_in", "relevance_out", "stabilizer", "layer", "rule"}
    assert "departs at 'up' (Norm)" in str(c) and "ledger of 'up' (Upsample, Norm)" in str(c)
    assert c.explained_by is None and "no profile reproduces the other map" in str(c)
    index, mine, theirs = c.largest[0]
    assert abs(mine - theirs) == pytest.approx(c.relevance.max_abs)
    assert abs(mine - theirs) == np.abs(reflrp.explain(model, x, target, chosen).relevance - other.relevance).max()


def test_a_different_seed_departs_at_the_explained_node_and_zennit_explains_it(setting):
    model, x, target, chosen = setting
    zennit = reflrp.explain(model, x, target, chosen, profile="zennit", keep=True)
    c = reflrp.compare(model, x, target, chosen, dict(zennit.relevances, input=zennit.relevance))
    assert c.departure.node == "out" and c.departure.layers == ("out",)
    assert c.explained_by == "zennit" and c.profiles["zennit"] <= 1e-15
    assert "profile 'zennit' reproduces the other map" in str(c)


def test_bad_comparisons_are_refused(setting):
    model, x, target, chosen = setting
    e = reflrp.explain(model, x, target, chosen, keep=True)
    good = e.relevance
    cases = [
        (good[:1], "other's input relevance has shape \\(1, 2, 8, 8\\); reflrp's is \\(2, 2, 8, 8\\)"),
        (np.where(good != 0, np.nan, good), "holds NaN or Inf \\(the other implementation failed there\\)"),
        ({"conv1": e.relevances["conv1"]}, "other holds no input relevance"),
        ({"input": good, "conv2": good}, "other\\['conv2'\\] has shape"),
        ({1: good}, "keys must be node names"),
        ([good], "other must be an array .* or a non-empty dict"),
        (good.astype(complex), "must be a numeric array"),
    ]
    for other, message in cases:
        with pytest.raises(ReflrpError, match=message):
            reflrp.compare(model, x, target, chosen, other)
    with pytest.raises(ReflrpError, match="compare: tolerance must be"):
        reflrp.compare(model, x, target, chosen, good, tolerance=-1)
    c = reflrp.compare(model, x, target, chosen, {"input": good, "nowhere": good})
    assert c.ignored == ("nowhere",) and "not compared: nowhere" in str(c)


def test_the_cli_compares(setting, tmp_path, capsys):
    model, x, target, chosen = setting
    reflrp.save(model, tmp_path / "m.reflrp")
    np.save(tmp_path / "x.npy", x)
    zennit = reflrp.explain(model, x, target, chosen, profile="zennit", keep=True)
    np.savez(tmp_path / "other.npz", input=zennit.relevance, **zennit.relevances)
    np.save(tmp_path / "other.npy", zennit.relevance)
    args = [str(tmp_path / "m.reflrp"), str(tmp_path / "x.npy"), "--target", "1,3,4", "--composite", "epsilonplus"]
    assert cli.main(["compare", *args[:2], str(tmp_path / "other.npz"), *args[2:]]) == 0
    out = capsys.readouterr().out
    assert "departs at 'out'" in out and "profile 'zennit' reproduces the other map" in out
    assert cli.main(["compare", *args[:2], str(tmp_path / "other.npz"), *args[2:], "--profile", "zennit"]) == 0
    assert "the maps agree under profile 'zennit'" in capsys.readouterr().out
    assert cli.main(["compare", *args[:2], str(tmp_path / "other.npy"), *args[2:]]) == 0
    (tmp_path / "other.txt").write_text("x")
    assert cli.main(["compare", *args[:2], str(tmp_path / "other.txt"), *args[2:]]) == 1
    assert "expected the input relevance as .npy" in capsys.readouterr().err


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.relu, self.pool = nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), \
            nn.MaxPool2d(2)
        self.fc = nn.Linear(64, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.relu(self.bn(self.conv(x)))), 1))


def test_captum_run_by_the_peer_harness_agrees_with_the_captum_profile():
    torch.manual_seed(0)
    module = SmallCNN().double().eval()
    with torch.no_grad():
        module.bn.running_mean.normal_()
        module.bn.running_var.uniform_(0.5, 2)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    x = torch.randn(2, 2, 8, 8, dtype=torch.float64)
    same = compare_with("captum", module, x, 1, "default", profile="captum")
    assert same.relevance.relative <= 1e-12 and same.departure is None and len(same.layers) == 5
    # reflrp's own conventions, Captum's epsilon: Captum's max pool is an epsilon layer, a R / (a + 1e-9); Captum
    # records no relevance at ReLU modules, so the first node below the pool that it records ('bn') departs
    own = compare_with("captum", module, x, 1, rules.Epsilon(epsilon=1e-9), tolerance=1e-12)
    assert own.layers["pool"].relative <= 1e-12 and own.departure.node == "bn" and own.explained_by == "captum"
    assert all(not hasattr(m, "rule") for m in module.modules())  # the harness worked on a copy
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    flatten_module = nn.Sequential(nn.Conv2d(2, 2, 3), nn.Flatten(), nn.Linear(72, 2)).double().eval()
    with pytest.raises(ReflrpError, match="Captum cannot explain this module: TypeError: Module of type .*Flatten"):
        compare_with("captum", flatten_module, x, 1, "default", profile="captum")
    with pytest.raises(ReflrpError, match="for Zennit, rules must be one of reflrp's named composites"):
        compare_with("zennit", module, x, 1, rules.Epsilon())


def test_a_captum_gamma_map_departs_at_the_convolutions_and_the_captum_profile_explains_it():
    """Captum's GammaRule is not LRP-gamma as published: compared under reflrp's conventions, Captum's own maps
    (tests/data/peers/captum, made by Captum itself) depart where Gamma is applied, and profile captum reproduces
    them."""
    data = pathlib.Path(__file__).resolve().parent / "data" / "peers" / "captum"
    model, arrays = reflrp.load(data / "cnn.reflrp"), np.load(data / "cnn.npz")
    maps = {key.split("/", 1)[1]: arrays[key] for key in arrays.files if key.startswith("gamma/") and
            not key.endswith("/rules")}
    # everything else as Captum does it: epsilon 1e-9 on the layers with weights, pooling and max pooling
    captum_epsilon = rules.Epsilon(1e-9)
    gamma_on_convs = composites.Composite(layer_map=[(reflrp.Conv2d, rules.Gamma()),
                                                     (reflrp.MaxPool2d, captum_epsilon)],
                                          affine=captum_epsilon, linear=captum_epsilon)
    report = reflrp.compare(model, arrays["x"], reflrp.targets.Classes(arrays["target"]), gamma_on_convs, maps)
    assert report.departure.layers == ("conv2",) and report.departure.rules == ("Gamma",)
    assert report.explained_by == "captum"


def test_a_map_seeded_with_one_is_recognised_as_a_seed_difference(setting):
    model, x, target, chosen = setting
    other = reflrp.explain(model, x, target, chosen, seed="unit").relevance
    c = reflrp.compare(model, x, target, chosen, other)
    assert c.profiles["reflrp, seed='unit'"] <= 1e-15 and c.explained_by == "reflrp, seed='unit'"
    assert "the difference is where relevance starts (the seed)" in str(c)
