"""Gamma equals Zennit 0.5.1's on networks with signed inputs, to 1e-12 relative in float64.

The reference relevance was computed by Zennit itself (scripts/zennit_reference.py, in a separate venv: Zennit
needs torchvision, which does not load beside this project's CPU torch) and stored in tests/data/zennit_gamma.npz
with the networks' arrays.  Here the same networks are rebuilt in reflrp from those arrays.
"""

import pathlib

import numpy as np
import pytest

import reflrp
from reflrp import rules

DATA = np.load(pathlib.Path(__file__).resolve().parent / "data" / "zennit_gamma.npz")


def arrays(net):
    prefix = f"{net}/"
    return {k[len(prefix):]: DATA[k] for k in DATA.files if k.startswith(prefix)}


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
    p = arrays(net)
    model, x = build(p), p["x"]
    assert np.any(model.trace(x)["conv1" if net == "signed" else "skip"] < 0)  # a Gamma layer sees signed inputs
    e = reflrp.explain(model, x, p["seed"], rules.Gamma(gamma=gamma), seed="unit")
    expected = p[f"relevance/gamma={gamma}"]
    assert e.relevance.shape == expected.shape
    assert np.abs(e.relevance - expected).max() <= 1e-12 * np.abs(expected).max()


def test_the_reference_came_from_zennit_0_5_1():
    assert str(DATA["zennit_version"]) == "0.5.1"
