"""The relevance ledger: for every node and explanation, where relevance came in, went out, and was absorbed.

For node ``v`` and explanation ``m``::

    relevance_in[v, m]  = sum of the relevance arriving at v's output
    relevance_out[v, m] = sum of the relevance v hands to its inputs
    absorbed[v, m]      = bias + stabilizer + dropped + gradient          (negative: injected)
    relevance_in - relevance_out - absorbed = 0                           (up to rounding)

Summed over the nodes this telescopes into the closure of the whole explanation::

    target_value - sum(input relevance) - sum over nodes of absorbed = closure ~ 0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.steps import Absorbed

COLUMNS = Absorbed._fields  # what a node can absorb: bias, stabilizer, dropped, gradient


@dataclass(frozen=True, eq=False)
class Ledger:
    """Per-node, per-explanation accounting of relevance (all arrays float64).

    Attributes
    ----------
    nodes, layers, rules : tuple of str
        Node names in evaluation order, their layer types and rules.
    relevance_in, relevance_out, bias, stabilizer, dropped, gradient : ndarray of shape (nodes, M)
    magnitude : ndarray of shape (nodes, M)
        Sum of |relevance| arriving at each node: the scale of the rounding error there.
    target_value : ndarray of shape (M,)
    input_relevance : ndarray of shape (M,)
        Sum of the input relevance.
    profile : str
        Whose conventions the explanation followed (:class:`reflrp.conventions.Profile`).
    """

    nodes: tuple
    layers: tuple
    rules: tuple
    relevance_in: np.ndarray
    relevance_out: np.ndarray
    bias: np.ndarray
    stabilizer: np.ndarray
    dropped: np.ndarray
    gradient: np.ndarray
    magnitude: np.ndarray
    target_value: np.ndarray
    input_relevance: np.ndarray
    input_magnitude: np.ndarray
    profile: str = "reflrp"

    @property
    def absorbed(self):
        """bias + stabilizer + dropped + gradient, shape (nodes, M)."""
        return self.bias + self.stabilizer + self.dropped + self.gradient

    def total(self, column):
        """A column (``"absorbed"``, ``"bias"``, ...) summed over the nodes in listing order, per explanation (M,).

        The nodes are added one by one, left to right, so each explanation's total has the same bits whatever else
        is in the batch (numpy's own reduction order depends on the array's shape)."""
        if column != "absorbed" and column not in COLUMNS:
            raise ReflrpError(f"ledger.total: {column!r} is not one of absorbed, {', '.join(COLUMNS)}")
        return node_sum(getattr(self, column))

    def scale(self):
        """The largest magnitude involved, per explanation (M,): what relative closures divide by."""
        parts = [np.abs(self.target_value), self.input_magnitude, self.magnitude.max(axis=0)]
        for name in COLUMNS:
            parts.append(np.abs(getattr(self, name)).max(axis=0))
        return np.maximum(np.max(parts, axis=0), np.finfo(np.float64).tiny)

    def closure(self, relative=False):
        """``target_value - sum(input relevance) - sum(absorbed)`` per explanation, shape (M,).

        ``relative=True`` divides by :meth:`scale`.
        """
        relative = validate.boolean(relative, "closure: relative")
        gap = self.target_value - self.input_relevance - self.total("absorbed")
        return gap / self.scale() if relative else gap

    def node_closure(self, relative=False):
        """``relevance_in - relevance_out - absorbed`` per node and explanation, shape (nodes, M)."""
        relative = validate.boolean(relative, "node_closure: relative")
        gap = self.relevance_in - self.relevance_out - self.absorbed
        return gap / self.scale()[None] if relative else gap

    def row(self, name):
        """One node's entries as a dict of (M,) arrays."""
        if not isinstance(name, str) or name not in self.nodes:
            raise ReflrpError(f"ledger.row: no node {name!r} in this ledger; its nodes are {', '.join(self.nodes)}")
        k = self.nodes.index(name)
        fields = ("relevance_in", "relevance_out") + COLUMNS
        return {f: getattr(self, f)[k] for f in fields} | {"layer": self.layers[k], "rule": self.rules[k]}

    def table(self, sample=0):
        """The ledger of explanation ``sample`` as readable text."""
        m = validate.integer(sample, "ledger.table: sample", minimum=0, maximum=None)
        if m >= len(self.target_value):
            raise ReflrpError(f"ledger.table: sample {m} is out of range: the ledger holds {len(self.target_value)} "
                              f"explanation(s)")
        head = ("node", "layer", "rule", "in", "out", "bias", "stabilizer", "dropped", "gradient")
        rows = []
        for k in reversed(range(len(self.nodes))):
            values = [self.relevance_in[k, m], self.relevance_out[k, m]]
            values += [getattr(self, c)[k, m] for c in COLUMNS]
            rows.append((self.nodes[k], self.layers[k], _short(self.rules[k]), *[_num(v) for v in values]))
        widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
        align = ["<", "<", "<"] + [">"] * 6

        def line(cells):
            return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

        out = [line(head), line(["-" * w for w in widths])]
        out += [line(r) for r in rows]
        total = {c: self.total(c)[m] for c in COLUMNS}
        out.append("")
        out.append(f"target value          {_num(self.target_value[m])}")
        out.append(f"input relevance       {_num(self.input_relevance[m])}")
        out.append(
            "absorbed              "
            + _num(self.total("absorbed")[m])
            + "  (" + ", ".join(f"{c} {_num(v)}" for c, v in total.items()) + ")"
        )
        out.append(
            f"closure               {self.closure()[m]:.3e}  (relative {self.closure(relative=True)[m]:.1e})"
        )
        out.append(f"profile               {self.profile}")
        return "\n".join(out)

    def __str__(self):
        n = self.target_value.shape[0]
        text = self.table(0)
        if n > 1:
            text = f"explanation 0 of {n} (ledger.table(m) shows the others)\n" + text
        return text

    def __repr__(self):
        return f"Ledger({len(self.nodes)} nodes x {self.target_value.shape[0]} explanations)"


def node_sum(values):
    """Rows (nodes) of a (nodes, M) array added one by one in order: the same bits for every M."""
    total = np.zeros(values.shape[1:])
    for row in values:
        total = total + row
    return total


def _num(v):
    if v == 0:
        return "0"
    return f"{v:+.6g}"


def _short(text, width=40):
    return text if len(text) <= width else text[: width - 3] + "..."
