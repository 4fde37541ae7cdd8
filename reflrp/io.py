"""Model files: a versioned JSON graph plus raw arrays in one zip archive (numpy's npz); no pickle anywhere.

A ``.reflrp`` file is a zip archive holding ``__reflrp__.npy``, the UTF-8 JSON description of the graph (format
name, version, nodes with layer type, inputs, non-array arguments and array names, optional metadata), and one
``.npy`` member per parameter array.  Arrays are stored bit for bit: a round trip is exact.

Reading trusts nothing in the file.  Layers are built only from the registered layer types
(:data:`reflrp.layers.LAYER_TYPES`) and only from float arrays, so opening an untrusted file cannot run code.
Every size is checked from the archive's directory and the members' ``.npy`` headers *before* anything is
inflated or allocated (a file cannot make reflrp allocate more than ``max_bytes`` or inflate a member more than
:data:`MAX_RATIO`-fold), the JSON description is checked field by field, and whatever is wrong ends in one
:class:`ReflrpError` that names the file, the node and the problem.

:data:`LOADERS` maps file suffixes to reader functions returning ``(model, metadata)``; importing another model
format is one more entry.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.files import existing_file, path_argument, written
from reflrp.graph import INPUT, Graph, Node
from reflrp.layers import LAYER_TYPES

FORMAT = "reflrp-model"
VERSION = 1
_HEADER = "__reflrp__"

MAX_MODEL_BYTES = 4 << 30  # default budget for a model's arrays, expanded
MAX_HEADER_BYTES = 64 << 20  # the JSON description
MAX_MEMBERS = 1 << 16  # arrays in one file
MAX_RATIO = 64  # how many times a member larger than 1 MiB may expand (float parameters barely compress)
_NPY_HEADER_LIMIT = 1 << 16  # bytes of an .npy header
_FLOATS = ("f",)


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _metadata_value(value):
    """``json.dumps``'s fallback: numpy scalars become Python numbers; anything else is refused."""
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    raise TypeError(f"{type(value).__name__} values cannot be stored")


def _check_keys(value, label="metadata"):
    """JSON object keys must be strings (json would silently turn 1 into "1")."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ReflrpError(f"save: {label} keys must be strings, got {key!r}")
            _check_keys(item, f"{label}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_keys(item, label)


def save(model, path, metadata=None):
    """Write ``model`` (a Graph or Sequential) to ``path`` (by convention ``*.reflrp``).

    Parameters
    ----------
    model : Graph
    path : str or os.PathLike
    metadata : dict, optional
        JSON-able information stored alongside (training seed, loss, quality, ...).
    """
    if not isinstance(model, Graph):
        raise ReflrpError(f"save: model must be a reflrp Graph or Sequential, got {type(model).__name__}")
    where = path_argument(path, "save: path")
    if metadata is not None and not isinstance(metadata, dict):
        raise ReflrpError(f"save: metadata must be a dict, got {type(metadata).__name__}")
    arrays, nodes = {}, []
    for k, node in enumerate(model.nodes):
        names = {}
        for key, array in node.layer.parameters().items():
            names[key] = f"n{k}.{key}"
            arrays[names[key]] = np.ascontiguousarray(array)
        nodes.append({
            "name": node.name,
            "layer": type(node.layer).__name__,
            "inputs": list(node.inputs),
            "config": {key: _jsonable(v) for key, v in node.layer.config().items()},
            "arrays": names,
            **({"called": node.called} if node.called != "module" else {}),
            **({"within": list(node.within)} if node.within else {}),
        })
    header = {"format": FORMAT, "version": VERSION, "kind": "Graph", "output": model.output, "nodes": nodes,
              "metadata": metadata or {}}
    try:
        _check_keys(header["metadata"])
    except RecursionError:
        raise ReflrpError("save: metadata is nested too deeply") from None
    try:
        text = json.dumps(header, allow_nan=False, default=_metadata_value)
    except (TypeError, ValueError, RecursionError) as error:
        raise ReflrpError(f"save: metadata must be JSON-serialisable: {str(error)[:200]}") from None
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_HEADER_BYTES:
        raise ReflrpError(f"save: the model description and metadata take {len(encoded)} bytes, more than "
                          f"{MAX_HEADER_BYTES} (what load accepts); store large metadata elsewhere")
    arrays[_HEADER] = np.frombuffer(encoded, dtype=np.uint8)
    if os.path.isdir(where):
        raise ReflrpError(f"save: {where!r} is a directory")
    try:
        with written(where) as partial, open(partial, "wb") as handle:
            np.savez(handle, **arrays)
    except OSError as error:
        raise ReflrpError(f"save: cannot write {where!r}: {error.strerror or error}") from None


def npy_header(stream, size, label, kinds=_FLOATS, max_bytes=MAX_MODEL_BYTES):
    """``(shape, fortran_order, dtype)`` of a ``.npy`` stream of ``size`` bytes, checked (dtype kind, no objects,
    the data size the header implies equals what the stream holds) before any data is read; the stream is left at
    the data."""
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        version = np.lib.format.read_magic(stream)
        if version in read_header:
            shape, fortran_order, dtype = read_header[version](stream, max_header_size=_NPY_HEADER_LIMIT)
    except (ValueError, TypeError, SyntaxError, RecursionError) as error:
        raise ReflrpError(f"{label} is not a valid .npy array: {str(error)[:200]}") from None
    if version not in read_header:
        raise ReflrpError(f"{label}: unsupported .npy format version {version}")
    if dtype.hasobject or dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None:
        raise ReflrpError(f"{label}: arrays of {dtype} are not allowed here")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > max_bytes:
        raise ReflrpError(f"{label}: its header claims {nbytes} bytes ({shape}, {dtype}), more than the budget of "
                          f"{max_bytes} bytes")
    offset = stream.tell()
    if offset + nbytes != size:
        raise ReflrpError(f"{label}: its header claims shape {shape} of {dtype} ({nbytes} bytes) but it holds "
                          f"{size - offset} bytes of data (corrupt or truncated)")
    return shape, fortran_order, dtype


def read_npy(stream, size, label, kinds=_FLOATS, max_bytes=MAX_MODEL_BYTES):
    """One ``.npy`` array of ``size`` bytes from a binary stream, its header checked (:func:`npy_header`) before
    anything is read.

    ``kinds`` are the dtype kinds allowed (numpy's ``dtype.kind``: "f" floats, "u" unsigned, "b" booleans, ...);
    object arrays are never allowed, so nothing is unpickled.
    """
    shape, fortran_order, dtype = npy_header(stream, size, label, kinds, max_bytes)
    nbytes = math.prod(shape) * dtype.itemsize
    data = stream.read(nbytes)
    if len(data) != nbytes:
        raise ReflrpError(f"{label}: truncated (expected {nbytes} bytes of data, got {len(data)})")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")
    return np.ascontiguousarray(array)


def read(path, max_bytes=MAX_MODEL_BYTES):
    """``(model, metadata)`` from a ``.reflrp`` file, refusing (with a :class:`ReflrpError`) any file that is not
    a valid model file or whose arrays would exceed ``max_bytes`` when expanded."""
    where = existing_file(path, "model file")
    max_bytes = validate.integer(max_bytes, "read: max_bytes", minimum=1, maximum=None)
    try:
        with zipfile.ZipFile(where) as archive:
            members = _members(archive, where, max_bytes)
            if _HEADER not in members:
                raise ReflrpError(f"{where!r} is not a reflrp model file (no {_HEADER} entry)")
            with archive.open(members[_HEADER]) as stream:
                raw = read_npy(stream, members[_HEADER].file_size, f"{where!r}: header", ("u",), MAX_HEADER_BYTES)
            header = _header(raw, where)
            specs = _node_specs(header, where)
            wanted = {entry for spec in specs for entry in spec["arrays"].values()}
            extra = sorted(set(members) - wanted - {_HEADER})
            if extra:
                raise ReflrpError(f"{where!r}: arrays {', '.join(extra)} belong to no node (mismatched file)")
            arrays = {}
            for name in sorted(wanted & set(members)):
                with archive.open(members[name]) as stream:
                    arrays[name] = read_npy(stream, members[name].file_size, f"{where!r}: array {name}",
                                            max_bytes=max_bytes)
    except ReflrpError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error, NotImplementedError,
            RuntimeError, ValueError) as error:
        raise ReflrpError(f"{where!r} is not a readable reflrp model file (corrupt or truncated): {error}") from None
    return _build(specs, header["output"], header["kind"], arrays, where), header.get("metadata", {})


def read_npz(path, what, max_bytes=MAX_MODEL_BYTES):
    """``{name: array}`` from an ``.npz`` file of numeric arrays (``numpy.savez``), checked like a model file: sizes
    against ``max_bytes`` before anything is inflated, no pickled objects."""
    where = existing_file(path, what)
    try:
        with zipfile.ZipFile(where) as archive:
            members = _members(archive, where, max_bytes)
            arrays = {}
            for name in sorted(members):
                with archive.open(members[name]) as stream:
                    arrays[name] = read_npy(stream, members[name].file_size, f"{what} {where!r}: array {name}",
                                            ("f", "i", "u"), max_bytes)
    except ReflrpError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error, NotImplementedError,
            RuntimeError, ValueError) as error:
        raise ReflrpError(f"{what} {where!r} is not a readable .npz file: {error}") from None
    return arrays


def load(path, max_bytes=MAX_MODEL_BYTES):
    """The model stored in a ``.reflrp`` file (see :func:`save` and :func:`read`)."""
    return read(path, max_bytes)[0]


def _members(archive, where, max_bytes):
    """``{array name: ZipInfo}``, every size checked against the budgets before anything is inflated."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ReflrpError(f"{where!r}: {len(infos)} members, more than {MAX_MEMBERS}")
    members, total = {}, 0
    for info in infos:
        name = info.filename
        if not name.endswith(".npy") or info.is_dir():
            raise ReflrpError(f"{where!r}: unexpected member {name!r} (a model file holds only .npy arrays)")
        key = name[: -len(".npy")]
        if key in members:
            raise ReflrpError(f"{where!r}: member {name!r} appears twice")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > (1 << 20) and ratio > MAX_RATIO:
            raise ReflrpError(f"{where!r}: member {name!r} would expand {ratio:.0f}-fold to {info.file_size} bytes: "
                              f"refused (a decompression bomb?)")
        total += info.file_size
        if total > max_bytes + MAX_HEADER_BYTES:
            raise ReflrpError(f"{where!r}: its arrays would take more than {max_bytes} bytes (the budget; pass "
                              f"max_bytes= to read larger models)")
        members[key] = info
    return members


def _header(raw, where):
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ReflrpError(f"{where!r}: corrupt header (not a byte string)")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ReflrpError(f"{where!r}: corrupt header: {str(error)[:200]}") from None
    if not isinstance(header, dict):
        raise ReflrpError(f"{where!r} is not a reflrp model file (its header is a JSON {type(header).__name__}, "
                          f"not an object)")
    if header.get("format") != FORMAT:
        raise ReflrpError(f"{where!r} is not a reflrp model file (format {str(header.get('format'))[:80]!r})")
    version = header.get("version")
    if type(version) is not int or version < 1:
        raise ReflrpError(f"{where!r}: invalid format version {str(version)[:80]!r}")
    if version > VERSION:
        raise ReflrpError(
            f"{where!r} was written by a newer reflrp (format version {version}); this reflrp reads version "
            f"{VERSION}: upgrade reflrp"
        )
    for key, kind in (("nodes", list), ("output", str), ("kind", str), ("metadata", dict)):
        if key not in header and key != "metadata":
            raise ReflrpError(f"{where!r}: corrupt header ({key!r} is missing)")
        if key in header and not isinstance(header[key], kind):
            raise ReflrpError(f"{where!r}: corrupt header ({key!r} must be a JSON {kind.__name__}, got "
                              f"{type(header[key]).__name__})")
    if header["kind"] not in ("Graph", "Sequential"):
        raise ReflrpError(f"{where!r}: corrupt header (kind {header['kind'][:80]!r})")
    return header


def _node_specs(header, where):
    """The node entries, each checked to be ``{name: str, layer: known type, inputs: [str], config: {str: ...},
    arrays: {str: str}}``."""
    specs = []
    for k, spec in enumerate(header["nodes"]):
        if not isinstance(spec, dict):
            raise ReflrpError(f"{where!r}: node {k} is a JSON {type(spec).__name__}, not an object")
        name = spec.get("name")
        label = f"{where!r}: node {name[:80]!r}" if isinstance(name, str) else f"{where!r}: node {k}"
        checks = (("name", str, None), ("layer", str, None), ("inputs", list, str), ("config", dict, None),
                  ("arrays", dict, str))
        for key, kind, item in checks:
            value = spec.get(key, {} if key in ("config", "arrays") else None)
            if not isinstance(value, kind):
                raise ReflrpError(f"{label}: {key!r} must be a JSON {kind.__name__}, got {type(value).__name__}")
            items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
            if item is not None and not all(isinstance(v, item) for v in items):
                raise ReflrpError(f"{label}: every entry of {key!r} must be a string")
        if spec["layer"] not in LAYER_TYPES:
            raise ReflrpError(f"{label}: unknown layer type {spec['layer'][:80]!r}")
        specs.append({"name": name, "layer": spec["layer"], "inputs": spec["inputs"],
                      "config": spec.get("config", {}), "arrays": spec.get("arrays", {}),
                      "called": spec.get("called", "module"), "within": spec.get("within", []), "label": label})
    return specs


def _build(specs, output, kind, arrays, where):
    nodes = []
    for spec in specs:
        params = {}
        for key, entry in spec["arrays"].items():
            if entry not in arrays:
                raise ReflrpError(f"{spec['label']}: array {key!r} ({entry}) is missing")
            params[key] = arrays[entry]
        try:
            layer = LAYER_TYPES[spec["layer"]](**params, **spec["config"])
        except ReflrpError as error:
            raise ReflrpError(f"{spec['label']}: {error}") from None
        except TypeError as error:
            raise ReflrpError(f"{spec['label']}: arguments do not match {spec['layer']}: {error}") from None
        try:
            nodes.append(Node(spec["name"], layer, tuple(spec["inputs"]), called=spec["called"],
                              within=spec["within"]))
        except ReflrpError as error:  # names its node already
            raise ReflrpError(f"{where!r}: {error}") from None
    try:
        if kind == "Sequential" and nodes:  # files written by reflrp 0.1: the nodes must form a chain
            previous = [INPUT] + [n.name for n in nodes[:-1]]
            if any(n.inputs != (p,) for n, p in zip(nodes, previous)) or output != nodes[-1].name:
                raise ReflrpError("a Sequential whose nodes do not form a chain")
        return Graph(nodes, output=output)
    except ReflrpError as error:
        raise ReflrpError(f"{where!r}: {error}") from None


def _read_onnx(path):
    from reflrp.importers.onnx import read as read_onnx

    return read_onnx(path)


def _read_keras(path):
    from reflrp.importers.keras import read as read_keras

    return read_keras(path)


LOADERS = {".reflrp": read, ".onnx": _read_onnx, ".keras": _read_keras, ".h5": _read_keras}


def read_any(path):
    """``(model, metadata)`` from the reader registered for the file's suffix in :data:`LOADERS`."""
    if not isinstance(path, (str, os.PathLike)):
        raise ReflrpError(f"model file must be a path, got {type(path).__name__}")
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in LOADERS:
        raise ReflrpError(f"no loader for {suffix or 'files without a suffix'!r} files; known: {', '.join(LOADERS)}")
    return LOADERS[suffix](path)


def load_any(path):
    """The model from the reader registered for the file's suffix in :data:`LOADERS`."""
    return read_any(path)[0]


__all__ = ["FORMAT", "LOADERS", "MAX_MODEL_BYTES", "VERSION", "existing_file", "load", "load_any", "npy_header",
           "read", "read_any", "read_npy", "save"]
