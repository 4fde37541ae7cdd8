"""profile="captum" against Captum 0.9 itself: fixtures made by scripts/peers/captum_fixtures.py.

Every case of every model: the input relevance and the relevance at the output of every module Captum gives a
rule, float64, to <= 1e-10 relative (of each map's largest magnitude); measured ~4e-15.
"""

import json
import os
import pathlib

import numpy as np
import pytest

import reflrp
from reflrp import rules
from reflrp.composites import Composite
from reflrp.errors import ReflrpError

# nox -s peers points this at fixtures it has just rebuilt from Captum itself
PEERS = os.environ.get("REFLRP_PEERS_DATA", pathlib.Path(__file__).resolve().parent / "data" / "peers")
DATA = pathlib.Path(PEERS) / "captum"
MODELS = ("cnn", "mlp", "unet")


def captum_rule(kind, params):
    """The reflrp rule a user names for Captum's rule of that kind (the profile makes it Captum's)."""
    zero_bias = params.get("set_bias_to_zero", False)
    return {"EpsilonRule": lambda: rules.Epsilon(epsilon=params.get("epsilon", 1e-9)),
            "GammaRule": lambda: rules.Gamma(gamma=params.get("gamma", 0.25), zero_bias=zero_bias),
            "Alpha1_Beta0_Rule": lambda: rules.ZPlus(zero_bias=zero_bias),
            "IdentityRule": lambda: rules.Pass()}[kind]()


def cases(name):
    arrays = np.load(DATA / f"{name}.npz")
    return sorted({key.split("/")[0] for key in arrays.files if key.endswith("/rules")})


def relative(mine, theirs):
    return np.abs(mine - theirs).max() / max(np.abs(theirs).max(), np.finfo(np.float64).tiny)


def test_fixtures_were_made_by_captum_0_9():
    for name in MODELS:
        assert json.loads(str(np.load(DATA / f"{name}.npz")["versions"]))["captum"].startswith("0.9")


@pytest.mark.parametrize("name, case", [(name, case) for name in MODELS for case in cases(name)])
def test_captum_profile_reproduces_captum(name, case):
    model = reflrp.load(DATA / f"{name}.reflrp")
    arrays = np.load(DATA / f"{name}.npz")
    x, target = arrays["x"], arrays["target"]
    target = reflrp.targets.Index(tuple(int(v) for v in target)) if name == "unet" else reflrp.targets.Classes(target)
    chosen = {module: captum_rule(*rule) for module, rule in json.loads(str(arrays[f"{case}/rules"])).items()}
    if name == "unet":  # the U-Net's max pool is torch.nn.functional.max_pool2d: Captum's autograd gradient
        chosen["max_pool2d"] = rules.WinnerTakesAll()
    e = reflrp.explain(model, x, target, Composite(names=chosen) if chosen else "default", profile="captum",
                       keep=True)
    assert relative(e.relevance, arrays[f"{case}/input"]) <= 1e-10
    layers = [k.split("/", 1)[1] for k in arrays.files if k.startswith(case + "/") and
              not k.endswith(("/input", "/rules"))]
    assert layers and set(layers) <= set(e.relevances)
    for node in layers:
        assert relative(e.relevances[node], arrays[f"{case}/{node}"]) <= 1e-10, node
    assert np.all(np.abs(e.ledger.closure(relative=True)) < 1e-12)


def test_captum_rules_by_name_and_what_captum_cannot_do():
    model = reflrp.load(DATA / "cnn.reflrp")
    x = np.load(DATA / "cnn.npz")["x"]
    e = reflrp.explain(model, x, 1, Composite(layer_map=[(reflrp.Conv2d, rules.Gamma()),
                                                         (reflrp.Linear, rules.ZPlus())]), profile="captum")
    # Captum's GammaRule and Alpha1_Beta0_Rule are reflrp's Gamma and ZPlus with Captum's knobs
    gamma = str(rules.Gamma(epsilon=1e-9, inputs="whole", batchnorm="module"))
    alpha1beta0 = str(rules.ZPlus(epsilon=1e-9, inputs="whole", bias="whole", batchnorm="module"))
    assert e.ledger.rules[:5] == (gamma, "Epsilon(epsilon=1e-09)", "Pass", "Epsilon(epsilon=1e-09)", gamma)
    assert alpha1beta0 in e.ledger.rules
    with pytest.raises(ReflrpError, match="Captum 0.9 has no rule like AlphaBeta; its rules are EpsilonRule"):
        reflrp.explain(model, x, 1, rules.AlphaBeta(), profile="captum")
    with pytest.raises(ReflrpError, match="Captum 0.9's GammaRule has no epsilon .* asks for epsilon=0.1"):
        reflrp.explain(model, x, 1, rules.Gamma(epsilon=0.1), profile="captum")
    unet = reflrp.load(DATA / "unet.reflrp")
    with pytest.raises(ReflrpError, match="ConvTranspose2d 'up': Captum 0.9 has no default rule for ConvTranspose2d"):
        reflrp.explain(unet, np.load(DATA / "unet.npz")["x"], (0, 1, 1), "default", profile="captum")
