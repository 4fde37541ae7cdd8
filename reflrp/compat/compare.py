"""``compare``: where another LRP implementation's relevance departs from reflrp's, and why.

Given the other implementation's relevance for the same model, input, target and rules (a final map, or maps per
layer keyed by node name), :func:`compare` explains with reflrp and reports

- how far the final maps are apart: largest absolute and relative difference, correlation, and where the largest
  differences are;
- with maps per layer, walking back from the output: the first node whose arriving relevance differs, and the
  layer(s) that produced it (the rule that departed), with the ledger row of that layer beside it;
- which profile (:mod:`reflrp.compat`), if any, reproduces the other implementation's map: whether the
  difference is a convention or something else.

The relevance "at a node" is what arrives at its output (what ``explain(..., keep=True)`` keeps); ``"input"`` is
the input relevance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reflrp import conventions, validate
from reflrp.errors import ReflrpError
from reflrp.explain import explain, plan
from reflrp.graph import INPUT


@dataclass(frozen=True)
class Difference:
    """How far two relevance maps are apart.

    Attributes
    ----------
    max_abs : float
        Largest absolute difference.
    relative : float
        ``max_abs`` over the largest magnitude of reflrp's map (0 when both are zero).
    correlation : float
        Pearson correlation of the two maps (nan when one is constant).
    """

    max_abs: float
    relative: float
    correlation: float


def difference(mine, theirs):
    """:class:`Difference` of two arrays of one shape."""
    gap = np.abs(mine - theirs)
    max_abs = float(gap.max()) if gap.size else 0.0
    scale = float(np.abs(mine).max()) if mine.size else 0.0
    relative = 0.0 if max_abs == 0 else (max_abs / scale if scale > 0 else float("inf"))
    a, b = mine.ravel() - mine.mean(), theirs.ravel() - theirs.mean()
    norm = np.sqrt((a @ a) * (b @ b))
    correlation = float(a @ b / norm) if norm > 0 else float("nan")
    return Difference(max_abs, relative, correlation)


@dataclass(frozen=True)
class Departure:
    """Where, walking back from the output, the two implementations first part.

    Attributes
    ----------
    node : str
        The first node whose arriving relevance differs (``"input"``: only the input relevance does).
    layers : tuple of str
        The nodes that hand relevance to it: the layers whose rules departed (the explained node itself when the
        seeds differ).
    rules : tuple of str
        Their rules under reflrp.
    difference : Difference
    ledger : dict of str to dict
        Each departing layer's ledger row (:meth:`reflrp.Ledger.row`), per explanation.
    """

    node: str
    layers: tuple
    rules: tuple
    difference: Difference
    ledger: dict


@dataclass(frozen=True, eq=False)
class Comparison:
    """What :func:`compare` found (``str(comparison)`` is a readable report).

    Attributes
    ----------
    relevance : Difference
        Of the final (input) relevance maps.
    largest : list of (index tuple, reflrp value, other value)
        The positions of the largest absolute differences, largest first.
    layers : dict of str to Difference
        Per compared node, in backward order (output first).
    departure : Departure or None
        The first node that differs by more than ``tolerance`` (None: none does, or no per-layer maps).
    profiles : dict of str to float
        The relative difference between each profile's map and the other implementation's, for every profile and
        its registered variants (:func:`reflrp.conventions.variants`; those that cannot express the rules are left
        out).
    explained_by : str or None
        The profile that reproduces the other map within ``tolerance`` (the closest if several), or None.
    profile : str
        The profile reflrp's side followed.
    tolerance : float
    ignored : tuple of str
        Keys of the other implementation's maps that name no node reflrp passes through.
    mine, theirs : ndarray
        The two input relevance maps compared (reflrp's, the other implementation's), one row per explanation:
        what :func:`reflrp.compat.views.save_comparison` draws.
    """

    relevance: Difference
    largest: list
    layers: dict
    departure: Departure | None
    profiles: dict
    explained_by: str | None
    profile: str
    tolerance: float
    ignored: tuple = field(default=())
    mine: np.ndarray | None = field(default=None, repr=False)
    theirs: np.ndarray | None = field(default=None, repr=False)

    def __str__(self):
        r = self.relevance
        lines = [f"reflrp (profile {self.profile}) against the other implementation: largest |difference| "
                 f"{r.max_abs:.3g}, relative {r.relative:.3g}, correlation {r.correlation:.6f}"]
        if self.largest and r.max_abs > 0:
            shown = "; ".join(f"{tuple(int(i) for i in index)}: {mine:.6g} vs {theirs:.6g}"
                              for index, mine, theirs in self.largest[:3])
            lines.append(f"largest differences at {shown}")
        if self.layers:
            d = self.departure
            if d is None:
                lines.append(f"every compared node agrees within {self.tolerance:g} ({len(self.layers)} nodes)")
            else:
                parts = ", ".join(f"'{layer}' ({rule})" for layer, rule in zip(d.layers, d.rules))
                lines.append(f"departs at {parts}: the relevance arriving at '{d.node}' differs by "
                             f"{d.difference.relative:.3g} relative")
                for layer, row in d.ledger.items():
                    entries = ", ".join(f"{k} {float(v[0]):+.6g}" for k, v in row.items()
                                        if k not in ("layer", "rule"))
                    lines.append(f"  ledger of '{layer}' ({row['layer']}, {row['rule']}): {entries}")
        if self.profiles:
            listed = ", ".join(f"{name} {err:.3g}" for name, err in self.profiles.items())
            if self.explained_by is None:
                verdict = "no profile reproduces the other map: the difference is not a known convention"
            elif self.explained_by == self.profile and r.relative <= self.tolerance:
                verdict = f"the maps agree under profile {self.explained_by!r}"
            else:
                kind = "a known defect of that library" if "defect" in self.explained_by else \
                    "where relevance starts (the seed)" if "seed=" in self.explained_by else \
                    "that library's conventions"
                verdict = f"profile {self.explained_by!r} reproduces the other map: the difference is {kind}"
            lines.append(f"profiles (relative difference): {listed}; {verdict}")
        if self.ignored:
            lines.append(f"keys naming no node here, not compared: {', '.join(self.ignored)}")
        return "\n".join(lines)


def _maps(other):
    """``(final map, {node: map})`` from ``other``: an array, or a dict of node name (or "input") to arrays."""
    if isinstance(other, np.ndarray):
        return other, {}
    if not isinstance(other, dict) or not other:
        raise ReflrpError(f"compare: other must be an array (the input relevance) or a non-empty dict of node name to "
                          f"relevance, got {type(other).__name__}")
    maps = {}
    for key, value in other.items():
        if not isinstance(key, str):
            raise ReflrpError(f"compare: other's keys must be node names, got {key!r}")
        maps[key] = value
    if INPUT not in maps:
        raise ReflrpError("compare: other holds no input relevance (the key 'input')")
    return maps[INPUT], maps


def _checked(value, shape, label):
    """``value`` as a float64 array of ``shape`` (reflrp's), finite."""
    array = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if array.dtype.kind not in "fiu":
        raise ReflrpError(f"compare: {label} must be a numeric array, got {array.dtype}")
    if array.shape != tuple(shape):
        raise ReflrpError(f"compare: {label} has shape {array.shape}; reflrp's is {tuple(shape)}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ReflrpError(f"compare: {label} holds NaN or Inf (the other implementation failed there)")
    return array


def compare(model, x, target, rules, other, *, profile="reflrp", seed=None, tolerance=1e-6, top=10,
            try_profiles=True):
    """Compare another implementation's relevance with reflrp's for the same model, input, target and rules.

    Parameters
    ----------
    model, x, target, rules
        As for :func:`reflrp.explain`.
    other : ndarray or dict of str to ndarray
        The other implementation's input relevance (M, *x.shape[1:]), or its relevance per node (arriving at each
        node's output, keyed by node name; ``"input"``: the input relevance).
    profile : str or Profile
        The conventions reflrp's side follows.
    seed : "value" or "unit", optional
        Default: the profile's.
    tolerance : float
        Relative difference (of the largest magnitude) below which two maps agree.
    top : int
        How many of the largest differences to list.
    try_profiles : bool
        Also explain under every profile and say which reproduces ``other``'s input relevance.

    Returns
    -------
    Comparison
    """
    tolerance = validate.real(tolerance, "compare: tolerance", minimum=0.0)
    top = validate.integer(top, "compare: top", minimum=0, maximum=None)
    try_profiles = validate.boolean(try_profiles, "compare: try_profiles")
    profile = conventions.as_profile(profile)
    # everything about `other` is checked against the shapes the explanation will have, before it runs
    p = plan(model, x, target, rules, seed, True, profile)
    explanations = p.target.count(len(x))
    shapes = p.model.shapes(x.shape[1:])
    expected = {node.name: (explanations, *shapes[node.name]) for node in p.active}
    expected[INPUT] = (explanations, *x.shape[1:])
    final, maps = _maps(other)
    ignored = tuple(sorted(k for k in maps if k not in expected))
    checked = {k: _checked(v, expected[k], "other's input relevance" if k == INPUT else f"other[{k!r}]")
               for k, v in maps.items() if k in expected}
    theirs = checked[INPUT] if INPUT in checked else _checked(final, expected[INPUT], "other's input relevance")
    e = explain(model, x, target, rules, seed=seed, keep=True, profile=profile)
    order = [n.name for n in reversed(e.graph.nodes) if n.name in e.relevances] + [INPUT]
    layers, departure = {}, None
    mine = dict(e.relevances, **{INPUT: e.relevance})
    for node in order:
        if node not in checked:
            continue
        d = difference(mine[node], checked[node])
        layers[node] = d
        if departure is None and d.relative > tolerance:
            departure = _departure(e, node, d)
    gap = np.abs(e.relevance - theirs).ravel()
    worst = np.argsort(-gap, kind="stable")[:top]  # largest first; ties in index order
    largest = [(index, float(e.relevance[index]), float(theirs[index]))
               for index in (np.unravel_index(k, e.relevance.shape) for k in worst)]
    profiles = _profiles(model, x, target, rules, seed, theirs) if try_profiles else {}
    close = {name: err for name, err in profiles.items() if err <= tolerance}
    explained_by = min(close, key=close.get) if close else None
    return Comparison(difference(e.relevance, theirs), largest, layers, departure, profiles, explained_by,
                      str(profile), tolerance, ignored, e.relevance, theirs)


def _departure(e, node, d):
    """The layers that hand relevance to ``node`` in explanation ``e``, their rules and ledger rows."""
    graph = e.graph
    if node == e.explained:
        producers = [node]  # nothing hands relevance to the explained node: the seeds differ
    else:
        active = set(e.ledger.nodes)
        producers = [c for c in graph.consumers(node) if c in active]
    rules = tuple(e.ledger.rules[e.ledger.nodes.index(p)] for p in producers)
    return Departure(node, tuple(producers), rules, d, {p: e.ledger.row(p) for p in producers})


def _profiles(model, x, target, rules, seed, theirs):
    """The relative difference of each profile's input relevance from ``theirs`` (profiles that cannot express
    ``rules`` are left out).  Without a ``seed`` given, each profile is also tried with the other seed convention
    (labelled ``"reflrp, seed='unit'"``): a map seeded with 1 instead of the logit is told apart from another
    rule."""
    found = {}
    for name in conventions.names():
        for profile in conventions.variants(name):
            tried = [(seed, str(profile))]
            if seed is None:
                other = "unit" if profile.seed == "value" else "value"
                tried.append((other, f"{profile}, seed={other!r}"))
            for start, label in tried:
                try:
                    relevance = explain(model, x, target, rules, seed=start, profile=profile).relevance
                except ReflrpError:
                    break
                if relevance.shape == theirs.shape:  # a merge changes no shapes, but be sure
                    found[label] = difference(relevance, theirs).relative
    return found


__all__ = ["Comparison", "Departure", "Difference", "compare", "difference"]
