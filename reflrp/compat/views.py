"""Pictures of a :class:`~reflrp.compat.compare.Comparison`: the two maps side by side with their difference, and
the per-layer divergence as a curve over depth with the first diverging layer marked.

Drawn with matplotlib (the ``viz`` extra) to PNG or SVG, the same bytes for the same comparison.
"""

from __future__ import annotations

import os

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.files import written
from reflrp.viz import colorize, require_matplotlib, symmetric_limit

#: The smallest relative difference the curve shows (identical layers sit on this floor).
FLOOR = 1e-18


def plane(relevance):
    """One explanation's map as a 2-D picture: (H, W) as it is, (C, H, W) summed over channels, (C, D, H, W)
    summed over channels at the depth slice holding the most ``|R|``, a 1-D map (tokens, features) as one row."""
    r = np.asarray(relevance, dtype=np.float64)
    if r.ndim == 1:
        return r[None]
    if r.ndim == 2:
        return r
    if r.ndim == 3:
        return r.sum(axis=0)
    if r.ndim == 4:
        volume = r.sum(axis=0)
        return volume[int(np.argmax(np.abs(volume).sum(axis=(1, 2))))]
    raise ReflrpError(f"save_comparison: cannot draw a map of per-explanation shape {r.shape}")


def save_comparison(path, comparison, explanation=0, title=None):
    """Draw ``comparison`` to ``path`` (PNG or SVG by its suffix; the file appears only when complete): reflrp's
    map and the other implementation's on one colour scale, their difference on its own, and, when the comparison
    had maps per layer, each compared node's relative difference from the output (left) to the input (right) on a
    log scale, the tolerance as a dashed line and the first departing node marked."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    if suffix not in ("png", "svg"):
        raise ReflrpError(f"save_comparison: {path!r} must end in .png or .svg")
    if comparison.mine is None or comparison.theirs is None:
        raise ReflrpError("save_comparison: this comparison holds no maps (make it with reflrp.compare)")
    m = validate.integer(explanation, "save_comparison: explanation", minimum=0, maximum=None)
    if m >= len(comparison.mine):
        raise ReflrpError(f"save_comparison: explanation {m} is out of range: the comparison holds "
                          f"{len(comparison.mine)} explanation(s)")
    mine, theirs = plane(comparison.mine[m]), plane(comparison.theirs[m])
    figure_class = require_matplotlib()
    curve = bool(comparison.layers)
    figure = figure_class(figsize=(10, 3.4 + (3.2 if curve else 0) + (0.3 if title else 0)), layout="constrained")
    grid = figure.add_gridspec(2 if curve else 1, 3)
    shared = max(symmetric_limit(mine), symmetric_limit(theirs))
    gap = mine - theirs
    r = comparison.relevance
    for column, (name, shown, limit) in enumerate((("reflrp", mine, shared), ("other", theirs, shared),
                                                   ("reflrp - other", gap, symmetric_limit(gap)))):
        ax = figure.add_subplot(grid[0, column])
        ax.imshow(colorize(shown, limit=limit), interpolation="nearest", aspect="auto" if shown.shape[0] == 1
                  else "equal")
        ax.axis("off")
        extra = f"\nlargest |difference| {r.max_abs:.3g} (relative {r.relative:.2g})" if column == 2 else \
            f"\nsum {comparison.mine[m].sum() if column == 0 else comparison.theirs[m].sum():+.4g}"
        ax.set_title(f"{name}{extra}", fontsize=8)
    if curve:
        _divergence(figure.add_subplot(grid[1, :]), comparison)
    heading = f"profile {comparison.profile}: correlation {r.correlation:.6f}"
    figure.suptitle(f"{title}\n{heading}" if title else heading, fontsize=9)
    import matplotlib

    with written(path) as partial, matplotlib.rc_context({"svg.hashsalt": "reflrp"}):
        figure.savefig(partial, dpi=110, format=suffix, metadata={"Date": None} if suffix == "svg" else {})


def _divergence(ax, comparison):
    names = list(comparison.layers)
    values = [max(comparison.layers[n].relative, FLOOR) for n in names]
    positions = np.arange(len(names))
    ax.semilogy(positions, values, marker="o", markersize=3, linewidth=1, color="#2c3e50")
    ax.axhline(max(comparison.tolerance, FLOOR), color="#7f8c8d", linestyle="--", linewidth=0.8,
               label=f"tolerance {comparison.tolerance:g}")
    departure = comparison.departure
    if departure is not None and departure.node in names:
        k = names.index(departure.node)
        ax.axvline(k, color="#c0392b", linewidth=1)
        ax.annotate(f"departs: {', '.join(departure.layers)}", (k, values[k]), textcoords="offset points",
                    xytext=(6, 6), fontsize=7, color="#c0392b")
    ax.set_xticks(positions, names, rotation=70, ha="right", fontsize=6)
    ax.set_ylabel("relative difference", fontsize=8)
    ax.set_xlabel("relevance arriving at each node, output (left) to input (right)", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7, loc="best")


__all__ = ["FLOOR", "plane", "save_comparison"]
