"""Import models from PyTorch (:func:`from_torch`), ONNX (:func:`from_onnx`) and Keras files (:func:`from_keras`).

The frameworks are optional extras; nothing here imports them until an importer is called.  Every importer
converts what has an exact reflrp counterpart and reports everything else at once, by name (an
:class:`~reflrp.importers.common.ImportAuditError` listing each finding), before anything is computed.
"""

from reflrp.importers.common import ImportAuditError


def from_torch(module, example_input, *, dtype=None, output=None):
    """See :func:`reflrp.importers.torch.from_torch`."""
    from reflrp.importers.torch import from_torch as convert

    return convert(module, example_input, dtype=dtype, output=output)


def from_onnx(model, *, dtype=None):
    """See :func:`reflrp.importers.onnx.from_onnx`."""
    from reflrp.importers.onnx import from_onnx as convert

    return convert(model, dtype=dtype)


def from_keras(path, *, dtype=None):
    """See :func:`reflrp.importers.keras.from_keras`."""
    from reflrp.importers.keras import from_keras as convert

    return convert(path, dtype=dtype)


def supported_markdown(framework):
    """The table of what an importer converts (``"torch"``, ``"onnx"`` or ``"keras"``), as markdown: the tables
    docs/import.md shows are these (a test checks they agree)."""
    import importlib

    module = importlib.import_module(f"reflrp.importers.{framework}")
    lines = ["| construct | supported |", "|---|---|"]
    lines += [f"| `{name}` | {note} |" if note else f"| `{name}` | |" for name, note in module.supported()]
    return "\n".join(lines)


__all__ = ["ImportAuditError", "from_keras", "from_onnx", "from_torch", "supported_markdown"]
