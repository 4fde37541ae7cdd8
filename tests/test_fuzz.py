"""Fuzzing: mutated model files, PNG images and .npy inputs end in a ReflrpError (or load), never in another
exception, and never allocate much memory on the way.

Mutations: random byte flips, truncations and insertions; JSON fields of the model description replaced by any
JSON value or deleted; ``.npy`` member headers rewritten to claim other shapes and dtypes; PNG headers claiming
other sizes.  Every example is small, so reading it may allocate at most MEMORY_BOUND bytes (tracemalloc sees
numpy's allocations); hypothesis's deadline catches a hang.
"""

import io as bytes_io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reflrp
from reflrp import cli, io
from reflrp.errors import ReflrpError
from reflrp.images import read_png

from nets import every_layer_graph

MEMORY_BOUND = 64 << 20
FUZZ = settings(deadline=20000, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """A valid model file holding every layer type: its bytes, its header and its arrays."""
    path = tmp_path_factory.mktemp("fuzz") / "m.reflrp"
    reflrp.save(every_layer_graph(np.random.default_rng(3)), path, metadata={"seed": 3})
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    header = json.loads(np.load(bytes_io.BytesIO(members["__reflrp__.npy"])).tobytes())
    return data, header, members


def only_clean_errors(read, path):
    """``read(path)`` succeeds or raises ReflrpError, within the memory bound."""
    tracemalloc.start()
    try:
        read(path)
    except ReflrpError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"reading allocated {peak} bytes"


def paths(value, prefix=()):
    """Every (path, value) in a JSON document, the root first."""
    yield prefix, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from paths(child, (*prefix, key))


def replaced(document, path, value, delete=False):
    if not path:
        return value
    copy = json.loads(json.dumps(document))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return copy


def zip_of(members, header_text=None):
    buffer = bytes_io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            if name == "__reflrp__.npy" and header_text is not None:
                array = np.frombuffer(header_text.encode("utf-8", "surrogatepass"), np.uint8)
                member = bytes_io.BytesIO()
                np.save(member, array)
                data = member.getvalue()
            archive.writestr(name, data)
    return buffer.getvalue()


@FUZZ
@given(data=st.data())
def test_byte_mutations_of_a_model_file(valid, tmp_path, data):
    raw = bytearray(valid[0])
    for _ in range(data.draw(st.integers(1, 8))):
        where = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            raw[where] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del raw[where:]
            break
        else:
            raw[where:where] = data.draw(st.binary(min_size=1, max_size=16))
    path = tmp_path / "m.reflrp"
    path.write_bytes(bytes(raw))
    only_clean_errors(reflrp.load, path)


@FUZZ
@given(data=st.data())
def test_json_mutations_of_a_model_description(valid, tmp_path, data):
    _, header, members = valid
    document = header
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from([p for p, _ in paths(document)]))
        document = replaced(document, where, data.draw(JSON), delete=data.draw(st.booleans()))
    path = tmp_path / "m.reflrp"
    path.write_bytes(zip_of(members, json.dumps(document)))
    only_clean_errors(reflrp.load, path)


NPY_DTYPES = ["<f8", "<f4", ">f8", "<f2", "|O", "<i8", "|u1", "|b1", "<c16", "|V8", "[('a', '<f8')]", "('<f8', (2,))"]


def npy_bytes(shape, dtype, fortran, payload):
    header = f"{{'descr': {dtype if dtype.startswith(('[', '(')) else repr(dtype)}, 'fortran_order': {fortran}, " \
             f"'shape': {shape!r}, }}"
    header = header + " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1") + payload


SHAPES = st.one_of(st.tuples(st.integers(-3, 10**13)), st.tuples(st.integers(0, 10**7), st.integers(0, 10**7)),
                   st.lists(st.integers(0, 4), max_size=5).map(tuple))


@FUZZ
@given(data=st.data())
def test_member_header_mutations(valid, tmp_path, data):
    _, _, members = valid
    name = data.draw(st.sampled_from(sorted(members)))
    shape, dtype = data.draw(SHAPES), data.draw(st.sampled_from(NPY_DTYPES))
    payload = data.draw(st.binary(max_size=96))
    path = tmp_path / "m.reflrp"
    path.write_bytes(zip_of({**members, name: npy_bytes(shape, dtype, data.draw(st.booleans()), payload)}))
    only_clean_errors(reflrp.load, path)


def test_a_deflate_bomb_is_refused_before_inflating(valid, tmp_path):
    _, _, members = valid
    bomb = npy_bytes((64 << 20,), "|u1", False, bytes(64 << 20))  # 64 MiB of zeros: a ~64 KiB member
    buffer = bytes_io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in {**members, "n0.weight.npy": bomb}.items():
            archive.writestr(name, data)
    (tmp_path / "bomb.reflrp").write_bytes(buffer.getvalue())
    del bomb, buffer
    tracemalloc.start()
    with pytest.raises(ReflrpError, match="would expand .*-fold .* refused"):
        reflrp.load(tmp_path / "bomb.reflrp")
    assert tracemalloc.get_traced_memory()[1] < MEMORY_BOUND
    tracemalloc.stop()


def test_a_header_claiming_a_trillion_elements_allocates_nothing(valid, tmp_path):
    _, _, members = valid
    path = tmp_path / "m.reflrp"
    path.write_bytes(zip_of({**members, "n1.weight.npy": npy_bytes((10**12,), "<f8", False, b"")}))
    tracemalloc.start()
    with pytest.raises(ReflrpError, match="claims 8000000000000 bytes"):
        reflrp.load(path)
    assert tracemalloc.get_traced_memory()[1] < MEMORY_BOUND
    tracemalloc.stop()


def test_a_model_larger_than_the_budget_is_refused_and_a_larger_budget_reads_it(valid, tmp_path):
    path = tmp_path / "m.reflrp"
    path.write_bytes(valid[0])
    with pytest.raises(ReflrpError, match="more than (the budget of )?100 bytes"):
        io.read(path, max_bytes=100)
    assert io.read(path, max_bytes=1 << 20)[1] == {"seed": 3}


@pytest.fixture(scope="module")
def png_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("png") / "p.png"
    image = pytest.importorskip("PIL.Image", reason="reading PNG images needs Pillow: pip install -e '.[test]'")
    image.fromarray(np.random.default_rng(0).integers(0, 256, size=(9, 7, 3), dtype=np.uint8)).save(path)
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_mutated_png_images(png_bytes, tmp_path, data):
    import struct
    import zlib

    raw = bytearray(png_bytes)
    if data.draw(st.booleans()):  # claim another size, with a valid checksum
        width, height = data.draw(st.integers(0, 2**31 - 1)), data.draw(st.integers(0, 2**31 - 1))
        raw[16:24] = struct.pack(">II", width, height)
        raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    for _ in range(data.draw(st.integers(0, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    path = tmp_path / "p.png"
    path.write_bytes(bytes(raw))
    only_clean_errors(read_png, path)


@FUZZ
@given(shape=SHAPES, dtype=st.sampled_from(NPY_DTYPES), fortran=st.booleans(), payload=st.binary(max_size=96),
       cut=st.integers(0, 200))
def test_mutated_npy_inputs(tmp_path, shape, dtype, fortran, payload, cut):
    path = tmp_path / "x.npy"
    data = npy_bytes(shape, dtype, fortran, payload)
    path.write_bytes(data[: len(data) - cut] if cut < len(data) else b"")
    only_clean_errors(lambda p: cli.load_input(str(p), np.float64), path)
    only_clean_errors(lambda p: cli.parse_target(f"mask:{p}"), path)
