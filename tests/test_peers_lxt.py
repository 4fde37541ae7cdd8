"""profile="lxt" against LXT 2.1 itself: fixtures made by scripts/peers/lxt_fixtures.py in LXT's own venv.

Every case of every model (LXT's recipe for it: CP-LRP on torchvision's ViT; AttnLRP on Hugging Face's BERT, Llama
and GPT-2; CP-LRP on Llama too): the input relevance and the relevance arriving at each listed module's output,
float64, to <= 1e-10 relative (of each map's largest magnitude); measured ~1e-15.  The Hugging Face models exported
by PyTorch's dynamo exporter (``MODEL.onnx``, made by the same script) import with reflrp.from_onnx and explain as
LXT does.
"""

import json
import os
import pathlib

import numpy as np
import pytest

import reflrp
from reflrp import composites

# nox -s peers points this at fixtures it has just rebuilt from LXT itself
PEERS = os.environ.get("REFLRP_PEERS_DATA", pathlib.Path(__file__).resolve().parent / "data" / "peers")
DATA = pathlib.Path(PEERS) / "lxt"
MODELS = ("vit", "bert", "llama", "llama_cp", "gpt2")


def load(name):
    arrays = np.load(DATA / f"{name}.npz")
    return reflrp.load(DATA / f"{name}.reflrp"), arrays


def relative(mine, theirs):
    return np.abs(mine - theirs).max() / max(np.abs(theirs).max(), np.finfo(np.float64).tiny)


def cases():
    for name in MODELS:
        for case, preset in json.loads(str(np.load(DATA / f"{name}.npz")["cases"])).items():
            yield name, case, preset


def test_fixtures_were_made_by_lxt_2_1():
    for name in MODELS:
        versions = json.loads(str(np.load(DATA / f"{name}.npz")["versions"]))
        assert versions["lxt"].startswith("2.1")


@pytest.mark.parametrize("name, case, preset", list(cases()))
def test_profile_lxt_equals_lxt_per_layer(name, case, preset):
    model, arrays = load(name)
    modules = json.loads(str(arrays["modules"]))
    target = reflrp.targets.Class(int(arrays["target"]))
    e = reflrp.explain(model, arrays["x"], target, preset, profile="lxt", keep=modules)
    assert relative(e.relevance, arrays[case]) <= 1e-10
    for module in modules:
        assert relative(e.relevances[module], arrays[f"{case}/{module}"]) <= 1e-10, module
    assert np.abs(e.ledger.closure(relative=True)).max() <= 1e-12


@pytest.mark.parametrize("name, case, preset", list(cases()))
def test_the_papers_composites_with_epsilon_0_read_as_lxts_recipes(name, case, preset):
    model, arrays = load(name)
    named = {"AttnLRP": composites.AttnLRP(epsilon=0.0), "CP-LRP": composites.CPLRP(epsilon=0.0)}[preset]
    target = reflrp.targets.Class(int(arrays["target"]))
    got = reflrp.explain(model, arrays["x"], target, named, profile="lxt").relevance
    assert relative(got, arrays[case]) <= 1e-10
    with pytest.raises(reflrp.ReflrpError, match="LXT's efficient mode has no epsilon"):
        reflrp.explain(model, arrays["x"], target, type(named)(), profile="lxt")


# The dynamo exporter folds Llama's rotary tables itself: its float32 cosines and sines are 1 ulp of float32 (6e-8)
# from PyTorch's in places, and LXT ran on PyTorch's (measured: 1.4e-7 apart).  BERT: 1.8e-15; GPT-2: 1.5e-12 (its
# tanh GELU arrives as separate arithmetic, fused back into one GELU).
ONNX_TOLERANCE = {"bert": 1e-10, "gpt2": 1e-10, "llama": 1e-6}


@pytest.mark.parametrize("name", list(ONNX_TOLERANCE))
def test_hugging_face_models_exported_to_onnx_explain_as_lxt(name):
    pytest.importorskip("onnx", reason="needs onnx, from the test extra")
    model, arrays = load(name)
    graph = reflrp.from_onnx(DATA / f"{name}.onnx")
    x = arrays["x"]
    assert relative(graph(x), model(x)) <= ONNX_TOLERANCE[name] / 10
    (case, preset), = json.loads(str(arrays["cases"])).items()
    e = reflrp.explain(graph, x, reflrp.targets.Class(int(arrays["target"])), preset, profile="lxt")
    assert relative(e.relevance, arrays[case]) <= ONNX_TOLERANCE[name]
    assert np.abs(e.ledger.closure(relative=True)).max() <= 1e-12


def test_compare_names_profile_lxt_and_the_first_layer_where_reflrps_own_rules_depart():
    model, arrays = load("vit")
    modules = json.loads(str(arrays["modules"]))
    other = {module: arrays[f"cp-lrp/{module}"] for module in modules} | {"input": arrays["cp-lrp"]}
    target = reflrp.targets.Class(int(arrays["target"]))
    comparison = reflrp.compare(model, arrays["x"], target, composites.CPLRP(epsilon=0.0), other)
    assert comparison.explained_by == "lxt"
    assert comparison.profiles["lxt"] <= 1e-12
    # reflrp's own CP-LRP: the identity on LayerNorm and GELU; the relevance first differs below the last block
    assert comparison.departure.node == "encoder.layers.encoder_layer_1.mlp.3"
