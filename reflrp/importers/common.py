"""What every importer shares: optional dependencies, the audit of unsupported constructs, unique node names."""

from __future__ import annotations

import importlib
from typing import NamedTuple

from reflrp.errors import ReflrpError
from reflrp.graph import INPUT, Graph, Node


def require(module, extra, what):
    """Import an optional dependency, or a one-line error naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ReflrpError(f'{what} needs {module.split(".")[0]}: pip install "reflrp[{extra}]"') from None


class Finding(NamedTuple):
    """One construct an importer cannot convert."""

    where: str  # node name or module path
    what: str  # the op, layer or module type
    why: str


class Audit:
    """Collects everything unsupported while a model is converted; :meth:`check` raises once, listing all of it,
    before any computation."""

    def __init__(self, source):
        self.source = source
        self.findings = []

    def add(self, where, what, why):
        self.findings.append(Finding(str(where), str(what), str(why)))

    def report(self):
        """The findings as text, one per line."""
        return "\n".join(f"  - {f.where} ({f.what}): {f.why}" for f in self.findings)

    def check(self):
        if self.findings:
            count = len(self.findings)
            raise ImportAuditError(
                f"{self.source}: {count} construct{'s' if count > 1 else ''} cannot be imported:\n{self.report()}",
                self.findings,
            )


class ImportAuditError(ReflrpError):
    """A model that cannot be imported; :attr:`findings` lists every unsupported construct."""

    def __init__(self, message, findings):
        super().__init__(message)
        self.findings = findings


class Builder:
    """Nodes with unique names, added in order."""

    def __init__(self):
        self.nodes = []
        self.names = {INPUT}

    def unique(self, name):
        name = str(name) or "node"
        if name not in self.names:
            return name
        k = 2
        while f"{name}:{k}" in self.names:
            k += 1
        return f"{name}:{k}"

    def add(self, name, layer, *inputs, called="module", within=()):
        name = self.unique(name)
        self.nodes.append(Node(name, layer, tuple(inputs), called=called, within=within))
        self.names.add(name)
        return name

    def build(self, output):
        return Graph(self.nodes, output=output)


def where(node, name=None):
    """The name a converted fx node is reported and named by: ``name`` when the caller gives one (a module's path),
    else torch.fx's name for the node."""
    return name or node.name


__all__ = ["Audit", "Builder", "Finding", "ImportAuditError", "require", "where"]


#: Activations whose output gates the other factor of a gated linear unit (Llama's MLP: ``silu(gate_proj(x)) *
#: up_proj(x)``).
GLU_ACTIVATIONS = ("SiLU", "GELU", "ReLU")  # (a Sigmoid is a gate on its own)


def gate_of(made):
    """Which factor of a product of two tensors gates the other, from the kinds of the layers that made them
    (``made``: two layer class names, None where not a layer): the one a Sigmoid or Hardsigmoid made, if exactly
    one is; else, in a gated linear unit ``act(gate_proj(x)) * up_proj(x)``, the activated branch; else None."""
    gates = [k for k in range(2) if made[k] in ("Sigmoid", "Hardsigmoid")]
    if not gates:
        gates = [k for k in range(2) if made[k] in GLU_ACTIVATIONS and made[1 - k] == "Linear"]
    return gates[0] if len(gates) == 1 else None
