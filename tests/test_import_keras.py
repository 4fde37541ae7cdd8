"""from_keras: files saved by Keras 2 (TensorFlow 2.14) and Keras 3, in both formats, import with h5py alone and
reproduce the outputs Keras computed when they were made (scripts/keras_reference.py); the seed U-Net of
iNNvestigate issue #118 explains in Keras' own channels-last layout; unsupported layers are reported by name."""

import json
import pathlib
import re
import sys
import zipfile

import numpy as np
import pytest

import reflrp
from reflrp import cli, composites, rules
from reflrp.errors import ReflrpError
from reflrp.importers import ImportAuditError, from_keras

DATA = pathlib.Path(__file__).resolve().parent / "data" / "keras"
FILES = sorted(p.name for p in DATA.glob("keras*-*.h5")) + sorted(p.name for p in DATA.glob("keras*-*.keras"))
EXPECTED = {flavour: np.load(DATA / f"{flavour}-expected.npz") for flavour in ("keras2", "keras3")}


def expected(name):
    data = EXPECTED[name.split("-")[0]]
    return data[f"{name}/x"], data[f"{name}/y"]


def test_every_flavour_and_format_is_present():
    models = {"seed_unet", "seed_unet_bn", "constructs", "sequential"}
    keras3_only = {"volume", "signal"}  # 3-D and 1-D layers, made with Keras 3
    assert {f"{k}-{m}{s}" for k in ("keras2", "keras3") for m in models for s in (".h5", ".keras")} | \
        {f"keras3-{m}{s}" for m in keras3_only for s in (".h5", ".keras")} == set(FILES)


@pytest.mark.parametrize("stem", ["volume", "signal"])
def test_volumes_and_signals_from_keras_explain_and_close_their_ledgers(stem):
    x, _ = expected(f"keras3-{stem}.keras")
    graph = from_keras(DATA / f"keras3-{stem}.keras", dtype=np.float64)
    kinds = {type(n.layer).__name__ for n in graph.nodes}
    assert kinds >= ({"Conv3d", "BatchNorm3d", "MaxPool3d", "AvgPool3d", "Upsample", "Pad", "AdaptiveAvgPool3d"}
                     if stem == "volume" else {"Conv1d", "MaxPool1d", "AvgPool1d", "Upsample", "Pad",
                                               "AdaptiveAvgPool1d"})
    e = reflrp.explain(graph, x.astype(np.float64), 1, composites.EpsilonPlus())
    assert np.abs(e.ledger.closure(relative=True)).max() <= 1e-12


@pytest.mark.parametrize("name", FILES)
def test_keras_files_reproduce_keras_outputs(name):
    x, y = expected(name)
    graph = from_keras(DATA / name)
    assert graph.dtype == np.float32
    got = graph(x)
    assert got.shape == y.shape  # Keras' own (channels-last) layout, in and out
    assert np.abs(got - y).max() <= 1e-5 * np.abs(y).max()
    got64 = from_keras(DATA / name, dtype=np.float64)(x.astype(np.float64))
    assert np.abs(got64 - y).max() <= 1e-5 * np.abs(y).max()


@pytest.mark.parametrize("stem", ["seed_unet", "seed_unet_bn", "constructs", "sequential"])
def test_both_formats_and_both_keras_versions_give_the_same_graph(stem):
    graphs = [from_keras(DATA / f"{k}-{stem}{s}") for k in ("keras2", "keras3") for s in (".h5", ".keras")]
    first = graphs[0]
    for other in graphs[1:]:
        assert [(n.name, type(n.layer), n.inputs) for n in other.nodes] == [(n.name, type(n.layer), n.inputs) for n in
                                                                              first.nodes]
        for a, b in zip(first.nodes, other.nodes):
            assert a.layer.parameters().keys() == b.layer.parameters().keys()
            assert all(np.array_equal(v, b.layer.parameters()[k]) for k, v in a.layer.parameters().items())
            for key, value in a.layer.config().items():  # Keras 2 stores LeakyReLU's 0.3 as float32's 0.30000001
                assert np.allclose(value, b.layer.config()[key], rtol=1e-7) if isinstance(value, float) else \
                    value == b.layer.config()[key]


@pytest.mark.parametrize("name", ["keras2-seed_unet.h5", "keras3-seed_unet_bn.keras"])
def test_the_seed_unet_explains_in_keras_layout(name):
    x, _ = expected(name)
    graph = from_keras(DATA / name, dtype=np.float64)
    names = [n.name for n in graph.nodes]
    assert names[0] == "conv1.channels_first" and "up.relu" in names and "crop" in names
    assert names[-2:] == ["logits.channels_last", "logits.sigmoid"]  # explained at the logits
    e = reflrp.explain(graph, x.astype(np.float64), (5, 6, 0), composites.EpsilonGammaBox(0.0, 1.0))
    assert e.relevance.shape == x.shape  # relevance shaped like the array given to Keras
    assert np.abs(e.ledger.closure(relative=True)).max() <= 1e-12
    lrp0 = reflrp.explain(graph, x.astype(np.float64), (5, 6, 0), rules.Epsilon(0.0, zero_bias=True))
    assert np.isfinite(lrp0.relevance).all()


def edited(tmp_path, name, edit):
    """A copy of a .keras fixture with its config.json changed by ``edit(config)``."""
    with zipfile.ZipFile(DATA / name) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def test_everything_unsupported_is_reported_at_once_by_layer(tmp_path):
    def edit(config):
        layers = {layer["config"]["name"]: layer["config"] for layer in config["config"]["layers"]}
        layers["strided_same"]["activation"] = "gelu"
        layers["same"]["data_format"] = "channels_first"
        layers["dense1"]["activation"] = "softmax"

    with pytest.raises(ImportAuditError) as error:
        from_keras(edited(tmp_path, "keras3-constructs.keras", edit))
    text = str(error.value)
    for expected_text in ["strided_same (Conv2D): activation 'gelu' is not supported",
                          "same (Conv2D): data_format='channels_first' is not supported",
                          "dense1 (Dense): softmax is only allowed at the model's output"]:
        assert expected_text in text, text  # layers after a reported one are still checked by their config
    assert len(error.value.findings) == 3

    def asymmetric_pool(config):
        pool = next(layer["config"] for layer in config["config"]["layers"] if layer["config"]["name"] == "pool")
        pool.update(padding="same", pool_size=[3, 3])

    with pytest.raises(ImportAuditError, match=r"pool \(MaxPooling2D\): padding='same' pads .* asymmetrically"):
        from_keras(edited(tmp_path, "keras3-seed_unet.keras", asymmetric_pool))


def test_bad_files_say_why(tmp_path, monkeypatch):
    (tmp_path / "text.h5").write_text("not a model")
    with pytest.raises(ReflrpError, match="is not a readable Keras model file"):
        from_keras(tmp_path / "text.h5")
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as archive:
        archive.writestr("metadata.json", "{}")
    with pytest.raises(ReflrpError, match=r"is not a Keras archive \(config.json or model.weights.h5 missing\)"):
        from_keras(tmp_path / "empty.keras")
    with pytest.raises(ReflrpError, match="does not exist"):
        from_keras(tmp_path / "absent.keras")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ReflrpError, match=r'^from_keras needs h5py: pip install "reflrp\[keras\]"$'):
        from_keras(DATA / "keras3-sequential.keras")


def test_the_cli_explains_keras_files(tmp_path, capsys):
    x, _ = expected("keras3-seed_unet.keras")
    np.save(tmp_path / "x.npy", x)
    code = cli.main(["explain", str(DATA / "keras3-seed_unet.keras"), str(tmp_path / "x.npy"), "--target", "5,6,0",
                     "--out", str(tmp_path / "r.npy")])
    assert code == 0 and np.load(tmp_path / "r.npy").shape == x.shape
    capsys.readouterr()
    assert cli.main(["import-check", str(DATA / "keras2-seed_unet_bn.h5")]) == 0
    assert "bn_conv1: BatchNorm2d" in capsys.readouterr().out


def _edited_h5(tmp_path, edit):
    """A copy of the Keras 2 sequential .h5 with ``edit(h5 file, config)`` applied; returns its path."""
    import shutil

    import h5py

    path = tmp_path / "edited.h5"
    shutil.copy(DATA / "keras2-sequential.h5", path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        if edit(f, config) is not False:
            f.attrs["model_config"] = json.dumps(config)
    return path


def _replace(f, name, data=None, **create):
    """Replace (or, given nothing, delete) the dataset ``name``."""
    del f[name]
    if data is not None:
        f[name] = data
    elif create:
        f.create_dataset(name, **create)


@pytest.mark.parametrize("case, edit, message", [
    ("config not text", lambda f, c: f.attrs.__setitem__("model_config", 5) or False, "model_config is a int64, not "
                                                                                      "JSON text"),
    ("config nested too deep", lambda f, c: f.attrs.__setitem__("model_config", "[" * 100000 + "]" * 100000) or False,
     "not a readable Keras model file: RecursionError"),
    ("input shape not integers", lambda f, c: c["config"]["layers"][0]["config"].__setitem__(
        "batch_input_shape", [None, "a", 6, 2]), "must hold positive integers"),
    ("input shape fractional", lambda f, c: c["config"]["layers"][0]["config"].__setitem__(
        "batch_input_shape", [None, 6.5, 6, 2]), "must hold positive integers"),
    ("kernel with 2 axes", lambda f, c: _replace(f, "model_weights/conv/conv/kernel:0", np.ones((3, 3), "f4")),
     "conv (Conv2D): the layer's config or arrays are malformed"),
    ("kernel of strings", lambda f, c: _replace(f, "model_weights/conv/conv/kernel:0", np.array([b"a", b"b"])),
     "holds |S1 values, not real numbers"),
    ("kernel declared huge", lambda f, c: _replace(f, "model_weights/conv/conv/kernel:0", shape=(200000, 200000),
                                                   dtype="f4", chunks=(10, 10)), "larger than reflrp's budget"),
    ("weight named but absent", lambda f, c: _replace(f, "model_weights/conv/conv/bias:0"),
     "weight 'conv/bias:0' of layer 'conv' is missing from the file"),
])
def test_malformed_keras_files_are_refused_by_layer(tmp_path, case, edit, message):
    with pytest.raises(ReflrpError, match=re.escape(message)):
        from_keras(_edited_h5(tmp_path, edit))
    assert cli.main(["import-check", str(_edited_h5(tmp_path, edit))]) == 1


def test_concatenate_axis_out_of_range_is_refused(tmp_path):
    import h5py

    path = tmp_path / "c.h5"
    with h5py.File(DATA / "keras2-constructs.h5") as f:
        config = json.loads(f.attrs["model_config"])
    layers = [layer for layer in config["config"]["layers"] if layer["class_name"] == "Concatenate"]
    assert layers
    for layer in layers:
        layer["config"]["axis"] = 9
    import shutil

    shutil.copy(DATA / "keras2-constructs.h5", path)
    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ImportAuditError, match="axis=9 is out of range"):
        from_keras(path)
