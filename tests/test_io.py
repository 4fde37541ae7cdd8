"""Model files: bit-exact round trips, no pickle, clear errors for corrupt, truncated or mismatched files."""

import json
import zipfile

import numpy as np
import pytest

import reflrp
from reflrp import io, models, rules, targets
from reflrp.errors import ReflrpError

from nets import every_layer_graph


def test_round_trip_is_bit_exact_for_every_layer_type(tmp_path, rng):
    model = every_layer_graph(rng)
    path = tmp_path / "m.reflrp"
    reflrp.save(model, path, metadata={"note": "test", "seed": 1})
    loaded, meta = io.read(path)
    assert meta == {"note": "test", "seed": 1}
    assert [(n.name, type(n.layer), n.inputs) for n in loaded.nodes] == [
        (n.name, type(n.layer), n.inputs) for n in model.nodes]
    for a, b in zip(model.nodes, loaded.nodes):
        assert a.layer.config() == b.layer.config()
        for key, value in a.layer.parameters().items():
            assert b.layer.parameters()[key].tobytes() == value.tobytes()
            assert b.layer.parameters()[key].dtype == value.dtype
    x = rng.normal(size=(2, 1, 8, 8))
    assert loaded(x).tobytes() == model(x).tobytes()
    e1 = reflrp.explain(model, x, (1, 2), rules.Epsilon())
    e2 = reflrp.explain(loaded, x, (1, 2), rules.Epsilon())
    assert e1.relevance.tobytes() == e2.relevance.tobytes()


def test_sequential_and_float32_round_trip(tmp_path, rng):
    model = reflrp.Sequential([reflrp.Linear(rng.normal(size=(3, 4)).astype(np.float32)), reflrp.ReLU()])
    reflrp.save(model, tmp_path / "s.reflrp")
    loaded = reflrp.load(tmp_path / "s.reflrp")
    assert loaded == model and loaded.dtype == np.float32  # a Sequential is saved and loaded as its Graph


def test_shipped_model_loads_and_reaches_its_stated_quality():
    from reflrp.digits import make_digits, stroke_labels
    from reflrp.models import DIGITS_UNET_FILE as MODEL_FILE

    model, meta = io.read(MODEL_FILE)
    assert meta["test_foreground_iou"] >= 0.95 and meta["seed"] and meta["final_training_loss"] < 0.05
    images, _ = make_digits(200, seed=12345)  # digits the training never saw
    predicted, truth = model(images) > 0.5, stroke_labels(images) > 0.5
    assert (predicted == truth).mean() >= 0.99
    assert (predicted & truth).sum() / (predicted | truth).sum() >= 0.95
    e = reflrp.explain(model, images[:1], targets.Pixel((0, 6, 6)), rules.Epsilon())
    assert abs(e.ledger.closure(relative=True)).max() < 1e-12


def _write_zip(path, entries):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def _npy(array):
    import io as pyio

    buffer = pyio.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _header_bytes(header):
    return _npy(np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))


def _valid(tmp_path, rng):
    path = tmp_path / "ok.reflrp"
    reflrp.save(reflrp.Sequential([("fc", reflrp.Linear(rng.normal(size=(2, 3))))]), path)
    return path


def test_bad_files_are_refused_clearly(tmp_path, rng):
    good = _valid(tmp_path, rng)
    data = good.read_bytes()
    cases = {}
    (tmp_path / "text.reflrp").write_text("hello")
    cases["text.reflrp"] = "not a readable reflrp model file"
    (tmp_path / "cut.reflrp").write_bytes(data[: len(data) // 2])
    cases["cut.reflrp"] = "corrupt or truncated"
    with zipfile.ZipFile(good) as archive:
        entry = archive.infolist()[0]
    name_len, extra_len = np.frombuffer(data[entry.header_offset + 26 : entry.header_offset + 30], dtype="<u2")
    flipped = bytearray(data)
    flipped[entry.header_offset + 30 + name_len + extra_len + entry.compress_size // 2] ^= 0xFF  # inside its data
    (tmp_path / "flip.reflrp").write_bytes(bytes(flipped))
    cases["flip.reflrp"] = r"corrupt or truncated\): Bad CRC-32"
    np.savez(tmp_path / "plain.npz", a=np.ones(3))
    (tmp_path / "plain.reflrp").write_bytes((tmp_path / "plain.npz").read_bytes())
    cases["plain.reflrp"] = "not a reflrp model file"
    header = {"format": "reflrp-model", "version": 99, "kind": "Graph", "output": "fc", "nodes": []}
    _write_zip(tmp_path / "new.reflrp", {"__reflrp__.npy": _header_bytes(header)})
    cases["new.reflrp"] = "written by a newer reflrp"
    node = {"name": "fc", "layer": "Linear", "inputs": ["input"], "config": {}, "arrays": {"weight": "n0.weight"}}
    header = {"format": "reflrp-model", "version": 1, "kind": "Graph", "output": "fc", "nodes": [node]}
    _write_zip(tmp_path / "missing.reflrp", {"__reflrp__.npy": _header_bytes(header)})
    cases["missing.reflrp"] = "node 'fc': array 'weight' \\(n0.weight\\) is missing"
    _write_zip(tmp_path / "shape.reflrp", {"__reflrp__.npy": _header_bytes(header), "n0.weight.npy": _npy(np.ones(3))})
    cases["shape.reflrp"] = r"node 'fc': Linear: weight must have 2 dimension\(s\)"
    _write_zip(tmp_path / "pickle.reflrp", {"__reflrp__.npy": _header_bytes(header),
                                            "n0.weight.npy": _npy(np.array([{"a": 1}], dtype=object))})
    cases["pickle.reflrp"] = "array n0.weight: arrays of object are not allowed here"  # nothing is unpickled
    evil = {**node, "layer": "os.system"}
    _write_zip(tmp_path / "type.reflrp", {"__reflrp__.npy": _header_bytes({**header, "nodes": [evil]})})
    cases["type.reflrp"] = "unknown layer type 'os.system'"
    _write_zip(tmp_path / "extra.reflrp", {"__reflrp__.npy": _header_bytes(header),
                                           "n0.weight.npy": _npy(np.ones((2, 3))), "x.npy": _npy(np.ones(2))})
    cases["extra.reflrp"] = "arrays x belong to no node"
    cases["absent.reflrp"] = "does not exist"
    for name, message in cases.items():
        with pytest.raises(ReflrpError, match=message):
            reflrp.load(tmp_path / name)


def test_load_any_dispatches_on_suffix(tmp_path, rng):
    path = _valid(tmp_path, rng)
    assert io.load_any(path) == reflrp.load(path)
    with pytest.raises(ReflrpError, match="no loader for '.pt' files; known: .reflrp, .onnx, .keras, .h5"):
        io.load_any(tmp_path / "model.pt")


def test_save_refuses_what_it_cannot_store(tmp_path, rng):
    with pytest.raises(ReflrpError, match="metadata must be JSON-serialisable"):
        reflrp.save(models.small_unet(models.random_unet_parameters()), tmp_path / "u.reflrp", metadata={"f": open})
    with pytest.raises(ReflrpError, match="model must be a reflrp Graph"):
        reflrp.save([reflrp.ReLU()], tmp_path / "u.reflrp")
