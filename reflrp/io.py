"""Model files: a versioned JSON graph plus raw arrays in one npz archive; no pickle anywhere.

A ``.reflrp`` file is a zip archive (numpy's npz) holding ``__reflrp__.npy``, the UTF-8 JSON description of the
graph (format name, version, nodes with layer type, inputs, non-array arguments and array names, optional
metadata), and one ``.npy`` entry per parameter array.  Loading uses ``allow_pickle=False`` and builds layers only
from the known layer types, so opening an untrusted file cannot run code.  Arrays are stored bit for bit: a round
trip is exact.

:data:`LOADERS` maps file suffixes to reader functions returning ``(model, metadata)``; importing another model
format is one more entry.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from reflrp.errors import ReflrpError
from reflrp.graph import INPUT, Graph, Node
from reflrp.layers import LAYER_TYPES

FORMAT = "reflrp-model"
VERSION = 1
_HEADER = "__reflrp__"


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


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
        })
    header = {
        "format": FORMAT,
        "version": VERSION,
        "kind": "Graph",
        "output": model.output,
        "nodes": nodes,
        "metadata": metadata or {},
    }
    try:
        text = json.dumps(header)
    except TypeError as error:
        raise ReflrpError(f"save: metadata must be JSON-serialisable: {error}") from None
    arrays[_HEADER] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def read(path):
    """``(model, metadata)`` from a ``.reflrp`` file, with clear errors for corrupt, truncated or mismatched
    files."""
    where = os.fspath(path)
    if not os.path.isfile(where):
        raise ReflrpError(f"model file {where!r} does not exist")
    try:
        with open(where, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            if _HEADER not in archive.files:
                raise ReflrpError(f"{where!r} is not a reflrp model file (no {_HEADER} entry)")
            header = _header(archive[_HEADER], where)
            arrays = {name: archive[name] for name in archive.files if name != _HEADER}
    except ReflrpError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        raise ReflrpError(f"{where!r} is not a readable reflrp model file (corrupt or truncated): {error}") from None
    return _build(header, arrays, where), header.get("metadata", {})


def load(path):
    """The model stored in a ``.reflrp`` file (see :func:`save`)."""
    return read(path)[0]


def _header(raw, where):
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ReflrpError(f"{where!r}: corrupt header")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReflrpError(f"{where!r}: corrupt header: {error}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ReflrpError(f"{where!r} is not a reflrp model file (format {header.get('format')!r})")
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        raise ReflrpError(f"{where!r}: invalid format version {version!r}")
    if version > VERSION:
        raise ReflrpError(
            f"{where!r} was written by a newer reflrp (format version {version}); this reflrp reads version "
            f"{VERSION}: upgrade reflrp"
        )
    return header


def _build(header, arrays, where):
    try:
        specs = list(header["nodes"])
        kind, output = header["kind"], header["output"]
    except (KeyError, TypeError):
        raise ReflrpError(f"{where!r}: corrupt header (nodes, kind or output missing)") from None
    used, nodes = set(), []
    for spec in specs:
        try:
            name, type_name, inputs = spec["name"], spec["layer"], spec["inputs"]
            config, names = dict(spec.get("config", {})), dict(spec.get("arrays", {}))
        except (KeyError, TypeError):
            raise ReflrpError(f"{where!r}: corrupt node entry {spec!r}") from None
        if type_name not in LAYER_TYPES:
            raise ReflrpError(f"{where!r}: node '{name}' has unknown layer type {type_name!r}")
        params = {}
        for key, entry in names.items():
            if entry not in arrays:
                raise ReflrpError(f"{where!r}: node '{name}': array {key!r} ({entry}) is missing")
            params[key] = arrays[entry]
            used.add(entry)
        try:
            layer = LAYER_TYPES[type_name](**params, **config)
        except ReflrpError as error:
            raise ReflrpError(f"{where!r}: node '{name}': {error}") from None
        except TypeError as error:
            raise ReflrpError(f"{where!r}: node '{name}': arguments do not match {type_name}: {error}") from None
        nodes.append(Node(name, layer, tuple(inputs)))
    extra = sorted(set(arrays) - used)
    if extra:
        raise ReflrpError(f"{where!r}: arrays {', '.join(extra)} belong to no node (mismatched file)")
    try:
        if kind == "Sequential":  # files written by reflrp 0.1: the nodes must form a chain
            chained = all(n.inputs == ((m.name,) if k else (INPUT,)) for k, (m, n) in enumerate(zip([None, *nodes],
                                                                                                    nodes)))
            if not chained or output != nodes[-1].name:
                raise ReflrpError("a Sequential whose nodes do not form a chain")
        return Graph(nodes, output=output)
    except ReflrpError as error:
        raise ReflrpError(f"{where!r}: {error}") from None


LOADERS = {".reflrp": read}


def read_any(path):
    """``(model, metadata)`` from the reader registered for the file's suffix in :data:`LOADERS`."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in LOADERS:
        raise ReflrpError(f"no loader for {suffix or 'files without a suffix'!r} files; known: {', '.join(LOADERS)}")
    return LOADERS[suffix](path)


def load_any(path):
    """The model from the reader registered for the file's suffix in :data:`LOADERS`."""
    return read_any(path)[0]


__all__ = ["FORMAT", "LOADERS", "VERSION", "load", "load_any", "read", "read_any", "save"]
