"""profile="innvestigate" against iNNvestigate 2.1.2 itself: Keras models and relevance made by
scripts/peers/innvestigate_fixtures.py (TensorFlow 2.14, float64), imported here with reflrp.from_keras.

Every analyzer on every model: the input relevance and the relevance at every Keras layer's output agree to
<= 1e-10 relative (measured 3e-14) with iNNvestigate's BatchNorm defect reproduced on request; without it only the
BatchNorm models differ.  Not reproduced, and shown to differ: a Keras ReLU() layer under Flat and WSquare."""

import json
import os
import pathlib

import numpy as np
import pytest

import reflrp
from reflrp.compat import INNvestigate

PEERS = os.environ.get("REFLRP_PEERS_DATA", pathlib.Path(__file__).resolve().parent / "data" / "peers")
DATA = pathlib.Path(PEERS) / "innvestigate"
MODELS = ("cnn", "unet_nobn", "unet_bn", "seed_unet", "seed_unet_bn")
#: fixture key -> (preset, parameters): iNNvestigate analyzers made with arguments
VARIANTS = {"lrp.z_IB": ("lrp.z", {"bias": False}), "lrp.epsilon_IB": ("lrp.epsilon", {"bias": False}),
            "lrp.epsilon_0.1": ("lrp.epsilon", {"epsilon": 0.1}),
            "lrp.z_ZB01": ("lrp.z", {"input_layer_rule": (0.0, 1.0)})}
#: the CNN's Keras ReLU() layer: iNNvestigate back-propagates its gradient, reflrp passes relevance on
NOT_REPRODUCED = {("cnn", "lrp.flat"), ("cnn", "lrp.w_square")}


def load(name):
    arrays = np.load(DATA / f"{name}.npz")
    return reflrp.from_keras(DATA / f"{name}.h5", dtype=arrays["x"].dtype), arrays


def analyzers(name):
    return [str(key) for key in np.load(DATA / f"{name}.npz")["analyzers"]]


def layer_maps(model, arrays, key):
    """iNNvestigate's relevance per Keras layer, as reflrp node names and layouts: a layer's built-in activation
    is the node ``<layer>.relu``; 4-D tensors move from channels-last to reflrp's channels-first."""
    names = {node.name for node in model.nodes}
    maps = {}
    for k in arrays.files:
        if not k.startswith(f"Rl__{key}__") or k.endswith("__NeuronSelection"):
            continue
        layer = k.split("__")[2]
        node = "input" if layer == "input" else (f"{layer}.relu" if f"{layer}.relu" in names else layer)
        value = arrays[k]
        maps[node] = value if (node == "input" or value.ndim != 4) else value.transpose(0, 3, 1, 2)
    return maps


def explain(model, arrays, key, profile):
    preset, params = VARIANTS.get(key, (key, {}))
    return reflrp.explain(model, arrays["x"], int(arrays["neuron_index"]), profile.preset(preset, **params),
                          profile=profile, keep=True)


def relative(mine, theirs):
    return np.abs(mine - theirs).max() / max(np.abs(theirs).max(), np.finfo(np.float64).tiny)


def test_fixtures_were_made_by_innvestigate_2_1_2_in_float64():
    for name in MODELS:
        versions = json.loads(str(np.load(DATA / f"{name}.npz")["versions"]))
        assert versions["innvestigate"] == "2.1.2" and versions["floatx"] == "float64"
    assert len(analyzers("cnn")) == 18


@pytest.mark.parametrize("name, key", [(n, k) for n in MODELS for k in analyzers(n)
                                       if (n, k) not in NOT_REPRODUCED])
def test_innvestigate_profile_reproduces_innvestigate(name, key):
    model, arrays = load(name)
    e = explain(model, arrays, key, INNvestigate(batchnorm_defect=True))
    assert relative(e.relevance, arrays[f"R__{key}"]) <= 1e-10
    maps = layer_maps(model, arrays, key)
    assert len(maps) >= 8 and set(maps) <= set(e.relevances) | {"input"}
    for node, theirs in maps.items():
        assert relative(e.relevance if node == "input" else e.relevances[node], theirs) <= 1e-10, node
    assert np.all(np.abs(e.ledger.closure(relative=True)) < 1e-12)


def test_the_batchnorm_defect_is_real_and_only_an_opt_in():
    """Without the defect BatchNorm-free models still match; models with BatchNorm differ where a bias counts."""
    model, arrays = load("unet_nobn")
    assert relative(explain(model, arrays, "lrp.z", INNvestigate()).relevance, arrays["R__lrp.z"]) <= 1e-10
    model, arrays = load("unet_bn")
    assert relative(explain(model, arrays, "lrp.z", INNvestigate()).relevance, arrays["R__lrp.z"]) > 0.1
    report = reflrp.compare(model, arrays["x"], int(arrays["neuron_index"]), INNvestigate().preset("lrp.z"),
                            dict(layer_maps(model, arrays, "lrp.z"), input=arrays["R__lrp.z"]),
                            profile="innvestigate")
    assert report.departure.layers == ("bott_bn",)  # the deepest BatchNorm: the first met walking back
    assert report.explained_by == "innvestigate(batchnorm_defect=True)"


def test_a_keras_relu_layer_is_where_flat_departs():
    model, arrays = load("cnn")
    key = "lrp.flat"
    report = reflrp.compare(model, arrays["x"], int(arrays["neuron_index"]), INNvestigate().preset(key),
                            dict(layer_maps(model, arrays, key), input=arrays[f"R__{key}"]), profile="innvestigate")
    assert report.departure.layers == ("relu1",) and report.relevance.relative > 0.1
