"""The ledger as a picture: a waterfall from the target's value down to the input relevance.

Reading the explanation from the output back to the input, the running total starts at the target value (the
seed's sum) and every node that absorbs relevance moves it: down by what a bias, a stabilizer, a dropped unit or a
plain-gradient step absorbed, up by what it injected.  What is left at the end is the input relevance; the gap
between the two is the ledger's closure (rounding error).  :func:`steps` computes the bars (no matplotlib needed);
:func:`save_waterfall` draws them to PNG or SVG (the ``viz`` extra).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.files import written
from reflrp.ledger import COLUMNS

#: One colour per ledger column (what absorbed the relevance), and for the target and the input bars.
COLOURS = {"bias": "#c0392b", "stabilizer": "#e67e22", "dropped": "#7f8c8d", "gradient": "#8e44ad",
           "target": "#2c3e50", "input": "#2c3e50", "other nodes": "#bdc3c7"}
FORMATS = ("png", "svg")


class Bar(NamedTuple):
    """One bar of the waterfall: the running total moves from ``start`` to ``end`` (``end - start`` is minus what
    was absorbed; for the target and input bars, from 0 to the value)."""

    label: str
    column: str
    start: float
    end: float


def steps(ledger, explanation=0, top=25):
    """The waterfall's bars for one explanation, target first, input last.

    Parameters
    ----------
    ledger : Ledger
    explanation : int
        Which explanation of the ledger (its column).
    top : int or None
        Keep the ``top`` nodes that absorbed the most (by ``|absorbed|``, over all columns); the others are one
        bar, "other nodes", placed where the first of them is (None: every node that absorbed anything).

    Returns
    -------
    list of Bar
        Nodes in the order relevance meets them (output to input); one bar per non-zero column of a node. The
        last bar ends at ``input_relevance``; the bar before it ends at ``input_relevance + closure``.
    """
    m = validate.integer(explanation, "waterfall: explanation", minimum=0, maximum=None)
    if m >= len(ledger.target_value):
        raise ReflrpError(f"waterfall: explanation {m} is out of range: the ledger holds "
                          f"{len(ledger.target_value)} explanation(s)")
    if top is not None:
        top = validate.integer(top, "waterfall: top", minimum=1, maximum=None)
    order = list(reversed(range(len(ledger.nodes))))  # the order the relevance meets the nodes
    absorbed = {k: [(c, float(getattr(ledger, c)[k, m])) for c in COLUMNS if getattr(ledger, c)[k, m] != 0]
                for k in order}
    absorbing = [k for k in order if absorbed[k]]
    size = {k: sum(abs(v) for _, v in absorbed[k]) for k in absorbing}
    kept = set(sorted(absorbing, key=lambda k: -size[k])[:top] if top is not None else absorbing)
    rest = [k for k in absorbing if k not in kept]
    total = float(ledger.target_value[m])
    bars = [Bar("target", "target", 0.0, total)]
    other_done = False
    for k in absorbing:
        if k in kept:
            for column, value in absorbed[k]:
                bars.append(Bar(f"{ledger.nodes[k]} ({ledger.layers[k]})", column, total, total - value))
                total -= value
        elif not other_done:  # the nodes left out, as one bar where the first of them is
            value = sum(v for j in rest for _, v in absorbed[j])
            bars.append(Bar(f"{len(rest)} other nodes", "other nodes", total, total - value))
            total -= value
            other_done = True
    bars.append(Bar("input", "input", 0.0, float(ledger.input_relevance[m])))
    return bars


def save_waterfall(path, ledger, explanations=(0,), top=25, title=None):
    """Draw the waterfall of each explanation in ``explanations`` (one panel each, stacked) to ``path``: PNG or SVG
    by its suffix.  The file appears only when it is complete.

    Each bar is coloured by what absorbed the relevance (bias, stabilizer, dropped, gradient); a bar going down
    is relevance absorbed, up is relevance injected.  The panel's title gives the target value, the input
    relevance and the closure.
    """
    from reflrp.viz import require_matplotlib

    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    if suffix not in FORMATS:
        raise ReflrpError(f"save_waterfall: {path!r} must end in .png or .svg")
    explanations = list(explanations)
    if not explanations:
        raise ReflrpError("save_waterfall: no explanations to draw")
    panels = [(m, steps(ledger, m, top)) for m in explanations]
    figure_class = require_matplotlib()
    width = max(6.0, 0.32 * max(len(bars) for _, bars in panels) + 2.0)
    figure = figure_class(figsize=(width, 3.6 * len(panels) + (0.3 if title else 0)), layout="constrained")
    axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (m, bars) in zip(axes, panels):
        _draw(ax, bars)
        ax.set_title(f"explanation {m}: target {ledger.target_value[m]:+.6g}, input relevance "
                     f"{ledger.input_relevance[m]:+.6g}, closure {ledger.closure()[m]:+.1e}", fontsize=9)
    if title:
        figure.suptitle(title, fontsize=10)
    import matplotlib

    # the same ledger gives the same bytes: no date in the file, element ids from a fixed salt (for this call only)
    with written(path) as partial, matplotlib.rc_context({"svg.hashsalt": "reflrp"}):
        figure.savefig(partial, dpi=110, format=suffix, metadata={"Date": None} if suffix == "svg" else {})


def _draw(ax, bars):
    positions = np.arange(len(bars))
    for x, bar in zip(positions, bars):
        low, high = sorted((bar.start, bar.end))
        ax.bar(x, high - low, bottom=low, width=0.7, color=COLOURS[bar.column], edgecolor="none")
    for x, following in enumerate(bars[1:-1]):  # the running total, as thin connectors
        ax.plot([x + 0.35, x + 0.65], [following.start] * 2, color="black", linewidth=0.5)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(positions, [bar.label for bar in bars], rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("relevance", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    shown = [c for c in (*COLUMNS, "other nodes") if any(bar.column == c for bar in bars)]
    if shown:
        from matplotlib.patches import Patch

        ax.legend([Patch(color=COLOURS[c]) for c in shown], [f"{c} (down: absorbed)" for c in shown], fontsize=7,
                  loc="best")


__all__ = ["Bar", "COLOURS", "FORMATS", "save_waterfall", "steps"]
