"""``from_keras``: a Keras model file (``.keras`` or legacy ``.h5``, Keras 2 or 3) as a reflrp Graph, read with
``h5py`` and the JSON config alone: no TensorFlow or Keras needed.

Keras computes channels-last; reflrp's convolutions are channels-first.  The imported graph takes and returns the
Keras model's own layout: a tensor is moved to channels-first (a ``Permute`` node named ``<layer>.channels_first``)
only where a layer needs it, and back (``<layer>.channels_last``) before a Flatten, Reshape or Dense and at the
output, so Keras' flattening order is kept.  An activation built into the output layer (sigmoid, softmax) comes
after that last permutation, so explanations start at the logits.  Anything else is collected by the audit and
reported all at once, by layer, before anything is computed.
"""

from __future__ import annotations

import io as bytes_io
import json
import os
import re
import zipfile

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.files import existing_file
from reflrp.graph import INPUT
from reflrp.importers import keras_layers
from reflrp.importers.common import Audit, Builder, require
from reflrp.importers.keras_layers import Tensor

MAX_CONFIG_BYTES = 64 << 20
MAX_WEIGHTS_BYTES = 4 << 30
#: errors a malformed layer config or weights file raises while a layer is read; reported by layer name
_MALFORMED = (KeyError, TypeError, IndexError, AttributeError, ValueError, OverflowError)


def _array(dataset, label):
    """A stored weight array, its size and dtype checked before it is read."""
    if not hasattr(dataset, "dtype") or not hasattr(dataset, "shape"):
        raise ReflrpError(f"{label} is not an array (an HDF5 group?)")
    if dataset.dtype.kind not in "fiu":
        raise ReflrpError(f"{label} holds {dataset.dtype} values, not real numbers")
    if int(np.prod(dataset.shape, dtype=np.float64)) * dataset.dtype.itemsize > MAX_WEIGHTS_BYTES:
        raise ReflrpError(f"{label} of shape {dataset.shape} is larger than reflrp's budget of "
                          f"{MAX_WEIGHTS_BYTES >> 30} GiB")
    return np.asarray(dataset)


def snake_case(name):
    """The name Keras' native format files a layer's variables under: ``Conv2DTranspose`` -> ``conv2d_transpose``,
    ``LeakyReLU`` -> ``leaky_re_lu``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class _Weights:
    """A layer's arrays by Keras variable name (``kernel``, ``bias``, ``gamma``, ...)."""

    def __init__(self, h5, source):
        self.h5 = h5
        self.source = source

    def legacy(self, layer_name):
        """Legacy HDF5: ``model_weights/<layer>`` lists its datasets in the ``weight_names`` attribute."""
        group = self.h5.get("model_weights", self.h5).get(layer_name)
        if group is None:
            return {}
        arrays = {}
        for path in group.attrs.get("weight_names", []):
            path = path.decode() if isinstance(path, bytes) else str(path)
            if path not in group:
                raise ReflrpError(f"weight {path!r} of layer {layer_name!r} is missing from the file")
            arrays[path.rsplit("/", 1)[-1].split(":")[0]] = _array(group[path], f"weight {path!r}")
        return arrays

    def native(self, filed_as, order):
        """Native format: ``<root>/<snake_case name>/vars/<k>``, in the layer's variable ``order``."""
        for root in ("layers", "_layer_checkpoint_dependencies"):
            group = self.h5.get(f"{root}/{filed_as}/vars")
            if group is not None:
                if sorted(group) != [str(k) for k in range(len(group))]:
                    raise ReflrpError(f"{self.source}: layer filed as {filed_as!r} has arrays named "
                                      f"{sorted(group)}, expected 0, 1, ...")
                values = [_array(group[str(k)], f"array {k} of {filed_as!r}") for k in range(len(group))]
                if len(values) != len(order):
                    raise ReflrpError(f"{self.source}: layer filed as {filed_as!r} has {len(values)} arrays, expected "
                                      f"{len(order)} ({', '.join(order)})")
                return dict(zip(order, values))
        return {}


def _read_config_and_weights(where, h5py):
    """``(model config, weights lookup, opened resources)`` from a .keras archive or a legacy .h5 file."""
    if zipfile.is_zipfile(where):
        with zipfile.ZipFile(where) as archive:
            sizes = {info.filename: info.file_size for info in archive.infolist()}
            if "config.json" not in sizes or "model.weights.h5" not in sizes:
                raise ReflrpError(f"from_keras: {where!r} is not a Keras archive (config.json or model.weights.h5 "
                                  f"missing)")
            if sizes["config.json"] > MAX_CONFIG_BYTES or sizes["model.weights.h5"] > MAX_WEIGHTS_BYTES:
                raise ReflrpError(f"from_keras: {where!r} is larger than reflrp's budget")
            config = json.loads(archive.read("config.json").decode("utf-8"))
            weights = h5py.File(bytes_io.BytesIO(archive.read("model.weights.h5")), "r")
        return config, _Weights(weights, where), "native", weights
    handle = h5py.File(where, "r")
    raw = handle.attrs.get("model_config")
    if raw is None:
        handle.close()
        raise ReflrpError(f"from_keras: {where!r} holds no model_config (saved with save_weights only?)")
    if not isinstance(raw, (bytes, str)):
        handle.close()
        raise ReflrpError(f"from_keras: {where!r}: model_config is a {type(raw).__name__}, not JSON text")
    try:
        config = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except BaseException:
        handle.close()
        raise
    return config, _Weights(handle, where), "legacy", handle


def _history(entry):
    """``(layer name, node index, tensor index)`` of an inbound tensor in Keras 2 or Keras 3 config syntax."""
    if isinstance(entry, dict) and entry.get("class_name") == "__keras_tensor__":
        return tuple(entry["config"]["keras_history"])
    if isinstance(entry, (list, tuple)) and len(entry) >= 3 and isinstance(entry[0], str):
        return tuple(entry[:3])
    raise ReflrpError(f"unreadable inbound tensor {str(entry)[:80]}")


def _inbound(layer):
    """The names of the layers feeding ``layer`` (a functional model's config), in order; the number of calls."""
    nodes = layer.get("inbound_nodes") or []
    if not nodes:
        return [], 0
    first = nodes[0]
    if isinstance(first, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        args = first.get("args", [])
        tensors = args[0] if len(args) == 1 and isinstance(args[0], list) else args
    else:  # Keras 2: [[name, node, tensor, kwargs], ...]
        tensors = first
    return [_history(t)[0] for t in tensors], len(nodes)


def _endpoints(value):
    """input_layers / output_layers: one [name, 0, 0] or a list of them."""
    if isinstance(value, list) and value and isinstance(value[0], str):
        return [value[0]]
    return [v[0] for v in value or []]


class _Converter:
    def __init__(self, config, weights, kind, source, dtype):
        self.source = source
        self.audit = Audit(f"from_keras({os.path.basename(source)})")
        self.builder = Builder()
        self.weights, self.kind = weights, kind
        self.dtype = dtype
        model = config.get("config", {})
        self.class_name = config.get("class_name")
        if self.class_name not in ("Sequential", "Functional", "Model"):
            raise ReflrpError(f"from_keras: {source!r} holds a {self.class_name!r}, not a Sequential or functional "
                              f"model")
        self.layers = list(model.get("layers", []))
        self.model = model
        self.filed_as = self._filing_names()

    def _filing_names(self):
        counts, names = {}, {}
        for layer in self.layers:
            base = snake_case(layer.get("class_name", ""))
            k = counts.get(base, 0)
            counts[base] = k + 1
            names[layer["config"]["name"]] = base if k == 0 else f"{base}_{k}"
        return names

    def arrays(self, cfg, order):
        """The arrays of the layer configured by ``cfg``, by Keras variable name, cast to the graph's dtype."""
        name = cfg["name"]
        found = self.weights.legacy(name) if self.kind == "legacy" else self.weights.native(self.filed_as[name],
                                                                                             order)
        missing = [k for k in order if k not in found]
        if missing:
            raise ReflrpError(f"arrays {', '.join(missing)} are missing from the file")
        return {k: np.asarray(found[k]).astype(self.dtype) for k in order}

    def convert(self):
        sequential = self.class_name == "Sequential"
        layers = [layer for layer in self.layers if layer.get("class_name") != "InputLayer"]
        input_shape = self._input_shape()
        tensors = {}
        previous = Tensor(INPUT, input_shape, "keras")
        for layer in self.layers:
            if layer.get("class_name") == "InputLayer":
                tensors[layer["config"]["name"]] = previous
        output_name = None
        for position, layer in enumerate(layers):
            name = layer["config"]["name"]
            if sequential:
                inputs = [previous]
            else:
                sources, calls = _inbound(layer)
                if calls > 1:
                    self.audit.add(name, layer["class_name"], "a layer called more than once (shared) is not supported")
                    tensors[name] = None
                    continue
                inputs = [tensors.get(s) for s in sources]
            is_output = (position == len(layers) - 1) if sequential else name in _endpoints(
                self.model.get("output_layers"))
            if any(t is None for t in inputs):  # an earlier layer was reported: check what its config alone shows
                if not sequential and any(s not in tensors for s in sources):
                    self.audit.add(name, layer["class_name"], f"unknown inputs {sources}")
                try:
                    keras_layers.check(layer, is_output)
                except ReflrpError as error:
                    self.audit.add(name, layer.get("class_name"), str(error))
                tensors[name] = previous = None
                continue
            try:
                out = keras_layers.convert(self, layer, inputs, is_output)
            except ReflrpError as error:
                self.audit.add(name, layer.get("class_name"), str(error))
                out = None
            except _MALFORMED as error:
                self.audit.add(name, layer.get("class_name"), f"the layer's config or arrays are malformed: "
                                                              f"{type(error).__name__}: {str(error)[:200]}")
                out = None
            tensors[name] = previous = out
            if is_output:
                output_name = name
        if not sequential and len(_endpoints(self.model.get("output_layers"))) != 1:
            self.audit.add("output", "Model", "only models with exactly one output are supported")
        self.audit.check()
        final = keras_layers.to_keras(self, tensors[output_name], f"{output_name}")
        return self.builder.build(final.name)

    def _input_shape(self):
        inputs = [layer for layer in self.layers if layer.get("class_name") == "InputLayer"]
        candidates = [layer["config"] for layer in inputs] or [self.layers[0]["config"]] if self.layers else []
        if len(inputs) > 1:
            raise ReflrpError(f"from_keras: only models with one input are supported, {self.source!r} has "
                              f"{len(inputs)}")
        for config in candidates:
            shape = config.get("batch_shape") or config.get("batch_input_shape")
            if shape:
                if not isinstance(shape, list) or len(shape) < 2:
                    raise ReflrpError(f"from_keras: the input shape {shape!r} is not a batch shape [None, ...]")
                if any(v is None for v in shape[1:]):
                    raise ReflrpError(f"from_keras: the input shape {shape} has unknown sizes beyond the batch axis; "
                                      f"save the model with a fixed input size")
                if any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in shape[1:]):
                    raise ReflrpError(f"from_keras: the input shape {shape} must hold positive integers beyond the "
                                      f"batch axis")
                return tuple(shape[1:])
        raise ReflrpError(f"from_keras: {self.source!r} does not say its input shape")


def from_keras(path, *, dtype=None):
    """A Keras model file as a reflrp :class:`~reflrp.Graph` taking and returning Keras' channels-last layout.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.keras`` archive (Keras 2.13+ or 3) or a legacy ``.h5`` file (Keras 2 or 3).
    dtype : float32 or float64, optional
        The graph's dtype; default float32 (Keras' own).

    Raises
    ------
    ReflrpError
        Listing every unsupported layer, activation or argument by layer name, before anything is computed.
    """
    h5py = require("h5py", "keras", "from_keras")
    where = existing_file(path, "from_keras: model file")
    dtype = validate.float_dtype(np.float32 if dtype is None else dtype, "from_keras: dtype")
    try:
        config, weights, kind, resource = _read_config_and_weights(where, h5py)
    except ReflrpError:
        raise
    except (OSError, ValueError, KeyError, UnicodeDecodeError, zipfile.BadZipFile, RecursionError) as error:
        raise ReflrpError(f"from_keras: {where!r} is not a readable Keras model file: {type(error).__name__}: "
                          f"{str(error)[:200]}") from None
    try:
        return _Converter(config, weights, kind, where, dtype).convert()
    except ReflrpError:
        raise
    except (*_MALFORMED, RecursionError) as error:
        raise ReflrpError(f"from_keras: {where!r} has a model config reflrp cannot read: {type(error).__name__}: "
                          f"{str(error)[:200]}") from None
    finally:
        resource.close()


def read(path):
    """``(model, metadata)`` for :data:`reflrp.io.LOADERS`."""
    return from_keras(path), {"format": "keras"}


def supported():
    """``[(layer, note)]``: what :func:`from_keras` converts (for the docs)."""
    return [(name, note) for name, (_, note) in sorted(keras_layers.CONVERTERS.items())]


__all__ = ["from_keras", "read", "snake_case", "supported"]
