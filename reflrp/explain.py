"""``explain``: one forward pass, one backward pass of relevance, and a ledger.

Order of work, fixed and documented (docs/conventions.md):

1. everything is validated (input, parameters, shapes along the graph, rules, target) before any kernel runs;
2. the forward pass keeps every active node's output;
3. relevance flows back through the nodes in reverse listing order; relevance arriving at a node from several
   consumers is summed in the order the consumers are listed (the same node twice: in input order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from reflrp import boxes, validate
from reflrp import cone as cones
from reflrp.conventions import Profile, as_profile
from reflrp.errors import ReflrpError
from reflrp.graph import INPUT, Graph
from reflrp.kernels.sums import row_sums
from reflrp.ledger import Ledger, node_sum
from reflrp.steps import Absorbed, per_sample
from reflrp.targets import Seed, as_target


@dataclass(frozen=True, eq=False)
class Explanation:
    """The result of :func:`explain`.

    Attributes
    ----------
    relevance : ndarray of shape (M, *x.shape[1:])
        Input relevance, one map per explanation (M = N unless the target makes several per sample).
    sample : ndarray of int64, shape (M,)
        Which sample of ``x`` each explanation belongs to.
    output : ndarray
        The explained tensor for the batch (N, ...): the model output, or the pre-activation logits when the
        model ends in Sigmoid, Softmax or Tanh.  Explained on the receptive cone (``cone=`` in :func:`explain`),
        a ``numpy.ma.MaskedArray`` computed inside the cone only.
    prediction : ndarray
        The model's output for the batch (after any output activation); on the cone, masked likewise.
    seed : ndarray of shape (M, *output.shape[1:])
        The relevance the explanation starts from.
    target_value : ndarray of shape (M,), float64
        Sum of the seed: the selected outputs (``seed="value"``) or their count (``seed="unit"``).
    ledger : Ledger
    relevances : dict of str to ndarray
        Relevance arriving at each kept node's output (``keep=`` in :func:`explain`); ``"input"`` is
        :attr:`relevance`.
    graph : Graph
        The explained model.
    explained : str
        The node whose output :attr:`output` is.
    profile : Profile
        Whose conventions the explanation follows (:class:`reflrp.conventions.Profile`).
    target : Target
        What was explained (:mod:`reflrp.targets`; plain values as :func:`reflrp.targets.as_target` converts them).
    """

    relevance: np.ndarray
    sample: np.ndarray
    output: np.ndarray
    prediction: np.ndarray
    seed: np.ndarray
    target_value: np.ndarray
    ledger: Ledger
    relevances: dict = field(default_factory=dict)
    graph: Graph | None = None
    explained: str = ""
    profile: Profile = field(default_factory=Profile)
    target: object = None

    def check_cut(self, names):
        """Cut conservation: relevance on a cut plus what the nodes above it absorbed equals the target value.

        Parameters
        ----------
        names : sequence of str
            Nodes that separate the explained output from the input (every path from the input to the output
            passes through one of them) and of which none depends on another; ``"input"`` is allowed.  Their
            relevance must have been kept (``keep=``).

        Returns
        -------
        ndarray of shape (M,)
            ``target_value - sum(relevance on the cut) - sum(absorbed above the cut)``, ~0 up to rounding.
        """
        graph = self.graph
        if isinstance(names, str) or not isinstance(names, (list, tuple, set, frozenset)):
            raise ReflrpError(f"check_cut: names must be a list of node names, got {names!r}")
        names = list(names)
        repeated = sorted({n for n in names if isinstance(n, str) and names.count(n) > 1})
        if repeated:
            raise ReflrpError(f"check_cut: node {repeated[0]!r} is named twice; a cut names each node once")
        active = graph.ancestors(self.explained)
        for name in names:
            if not isinstance(name, str):
                raise ReflrpError(f"check_cut: cut node {name!r} is not a node name")
            if name != INPUT and name not in active:
                raise ReflrpError(f"cut node '{name}' is not a node the explanation passes through")
            if name not in self.relevances and name != INPUT:
                raise ReflrpError(f"cut node '{name}': its relevance was not kept; pass keep=[...] to explain")
        below = {INPUT}
        for name in names:
            if name != INPUT:
                below |= graph.ancestors(name)
                for other in names:
                    if other != name and (other == INPUT or other in graph.ancestors(name)):
                        raise ReflrpError(f"cut nodes '{other}' and '{name}': one feeds the other; not a cut")
        # separation: with the cut removed, the output must not be reachable from the input
        reach = {INPUT} - set(names)
        for node in graph.nodes:
            if node.name in active and node.name not in names and any(i in reach for i in node.inputs):
                reach.add(node.name)
        if self.explained in reach:
            raise ReflrpError(f"nodes {names} do not separate the output from the input: not a cut")
        above = [k for k, n in enumerate(self.ledger.nodes) if n not in below]
        on_cut = sum(per_sample(self.relevance if n == INPUT else self.relevances[n]) for n in names)
        return self.target_value - on_cut - node_sum(self.ledger.absorbed[above])

    def normalized_aggregate(self, skip_zero=False):
        """``sum_a R_a / sum(R_a)`` over the explanations of each sample (e.g. all pixels of a region made by
        :class:`~reflrp.targets.Pixels`): one map per sample of ``x``, shape (N, *x.shape[1:]).

        An explanation whose relevance sums to exactly 0 (a pixel whose evidence is absorbed entirely, e.g.
        behind dead ReLUs) cannot be normalised: that is an error unless ``skip_zero=True`` leaves it out.
        Each map then sums to the number of explanations it includes.
        """
        skip_zero = validate.boolean(skip_zero, "normalized_aggregate: skip_zero")
        totals = per_sample(self.relevance)
        zero = np.flatnonzero(totals == 0)
        if zero.size and not skip_zero:
            raise ReflrpError(
                f"explanation {zero[0]} (and {zero.size - 1} more) has total relevance 0 and cannot be "
                f"normalised; pass skip_zero=True to leave such explanations out"
            )
        n = len(self.output)
        out = np.zeros((n, *self.relevance.shape[1:]), dtype=np.float64)
        for m in range(len(self.sample)):  # fixed order: explanation index
            if totals[m] != 0:
                out[self.sample[m]] += self.relevance[m] / totals[m]
        return out


def explained_node(graph):
    """The node an explanation starts from: the output node, or the node below trailing output activations
    (layers with ``output_activation``: Sigmoid, Softmax, Tanh)."""
    name = graph.output
    while name != INPUT and graph[name].layer.output_activation:
        name = graph[name].inputs[0]
    if name == INPUT:
        raise ReflrpError("the model is only output activations: there is nothing to explain")
    return name


class Plan(NamedTuple):
    """Everything :func:`explain` decided before any kernel runs."""

    model: Graph  # the model as the profile explains it
    profile: Profile
    seed: str  # "value" or "unit"
    explained: str  # the node whose output is explained
    active: list  # the nodes relevance passes through (the explained node and its ancestors), in listing order
    rules: dict  # node name -> rule
    target: object  # a reflrp.targets.Target
    keep: set  # nodes whose arriving relevance is kept
    parts: list | None  # [(cone, target, slots)]: explanations computed apart, each on its cone (None: everywhere)
    cone: cones.Cone | None = None  # where this part computes (None: everywhere)


def plan(model, x, target, rules, seed=None, keep=None, profile="reflrp", cone="auto"):
    """Validate everything an explanation needs, before any kernel runs, and decide what it does."""
    if not isinstance(model, Graph):
        raise ReflrpError(f"model must be a reflrp Graph or Sequential, got {type(model).__name__}")
    profile = as_profile(profile)
    seed = profile.seed if seed is None else validate.choice(seed, "seed", ("value", "unit"))
    model = profile.prepare(model)
    shapes = model.check_input(x)
    explained = explained_node(model)
    names = model.ancestors(explained)
    active = [node for node in model.nodes if node.name in names]
    target = as_target(target)
    target.check(shapes[explained], len(x))
    model.check_memory(shapes, len(x) + target.count(len(x)), x.itemsize)  # outputs, and relevance at each
    rule_of = profile.resolve(rules, model, [node.name for node in active])
    for node in active:
        try:
            rule_of[node.name].check(node.layer, [shapes[i] for i in node.inputs], shapes[node.name])
        except ReflrpError as error:
            raise ReflrpError(f"{node.label}: {error}") from None
    whole = {node.name for node in active if rule_of[node.name].positional([shapes[i] for i in node.inputs])}
    parts = _parts(model, shapes, explained, target, cone, whole)
    return Plan(model, profile, seed, explained, active, rule_of, target, _keep(names, keep), parts)


def _parts(model, shapes, explained, target, choice, whole):
    """The explanations in parts, each on the receptive cone of the outputs it selects (:mod:`reflrp.cone`):
    ``[(cone, target, slots, samples)]`` as :meth:`reflrp.targets.Target.parts`, parts computed on the whole model
    after the others with cone None (those of every sample together); None when no part has a cone.  "auto" cuts a
    part when its own cone pays (:meth:`reflrp.cone.Cone.pays`): a function of the part alone, so that a pixel's
    explanation has the same bits alone and among others."""
    if isinstance(choice, (bool, np.bool_)):
        choice = bool(choice)
    elif not (isinstance(choice, str) and choice == "auto"):
        raise ReflrpError(f"cone must be 'auto', True or False, got {choice!r}")
    parts = None if choice is False else target.parts(shapes[explained])
    if parts is None or (choice == "auto" and cones.work(model, shapes, explained) < cones.AUTO_WORK):
        return None
    trailing, name = [], model.output
    while name != explained:
        trailing.append(name)
        name = model[name].inputs[0]
    coned, everywhere, rest = [], [], []
    for box, part, slots, samples in parts:
        cone = None if box is None else cones.plan(model, shapes, explained, box, trailing[::-1], whole)
        if cone is not None and (choice is True or cone.pays()):
            coned.append((cone, part, slots, samples))
        elif samples is None:
            everywhere.extend(slots)
        else:
            rest.append((None, part, slots, samples))
    if not coned:
        return None
    return coned + ([(None, target.only(tuple(everywhere)), tuple(everywhere), None)] if everywhere else []) + rest


def explain(model, x, target, rules, *, seed=None, keep=None, profile="reflrp", cone="auto"):
    """Explain ``model``'s output for the batch ``x`` with LRP.

    Parameters
    ----------
    model : Graph or Sequential
    x : ndarray of shape (N, ...)
        float32 or float64, the parameters' dtype.
    target : int, int array, index tuple, boolean mask, float seed array or reflrp.targets object
        What to explain (see :mod:`reflrp.targets`).
    rules : Rule, Composite, named composite, or a profile's preset (name or :class:`~reflrp.conventions.Preset`)
        A single rule applies to every layer with weights; parameter-free layers get the defaults of
        :mod:`reflrp.composites` (or of the profile).
    seed : "value" or "unit", optional
        Start from the selected outputs' values (relevance sums to the logit) or from ones.  Default: the
        profile's ("value" for reflrp).
    keep : bool or sequence of str, optional
        Keep the relevance arriving at these nodes (True: all) in ``Explanation.relevances``.
    profile : str or Profile
        Whose conventions to follow: a :class:`~reflrp.conventions.Profile` or its registered name: "reflrp"
        (default), "zennit", "innvestigate", "captum" (docs/profiles.md).
    cone : "auto", True or False
        Compute only the receptive cone of the outputs the target selects (:mod:`reflrp.cone`; a pixel, a few
        pixels, a small region of a segmentation map): True whenever the target says which outputs it selects,
        "auto" (default) when the cone needs at most half of the model's work and the model is large enough for
        that to pay (:meth:`reflrp.cone.Cone.pays`; each explanation decides alone), False never.  The relevance
        and the ledger equal the whole computation's to rounding (the products have other shapes); ``output`` and
        ``prediction`` are then masked arrays, computed inside the cone only.

    Returns
    -------
    Explanation
    """
    p = plan(model, x, target, rules, seed, keep, profile, cone)
    if p.parts is None:
        return _explain(p, x)
    results = [_explain(p._replace(cone=part_cone, target=part), x if samples is None else x[list(samples)])
               for part_cone, part, _, samples in p.parts]
    return _merge(p, len(x), results, [(slots, samples) for _, _, slots, samples in p.parts])


def _explain(p, x):
    """One explanation as planned (on the plan's cone, when it has one)."""
    model = p.model
    values = model.trace(x, cone=p.cone)
    output, prediction = _outputs(model, p, values)
    values_out = output if p.cone is None else output.data
    sample, weights = p.target.select(values_out)
    if p.cone is not None and np.any(weights[:, output.mask[0]]):  # a target whose support is wrong: a bug
        raise ReflrpError(f"target {p.target} selects outputs outside its support {p.cone.boxes[p.explained]}")
    with np.errstate(over="ignore", invalid="ignore"):
        seed_array = weights if (p.seed == "unit" or isinstance(p.target, Seed)) else weights * values_out[sample]
        seed_array = np.ascontiguousarray(seed_array, dtype=x.dtype)
    if not np.all(np.isfinite(seed_array)):
        raise ReflrpError(f"the seed has values beyond the range of {x.dtype}")
    # the forward values stay one row per sample: rules share them among the explanations of a sample
    rows_of = None if np.array_equal(sample, np.arange(len(x))) else sample
    with np.errstate(over="ignore", invalid="ignore"):  # a sum beyond float64 is reported by _check_ledger
        relevance, rows, kept = _propagate(model, p, values, seed_array, rows_of)
        ledger = _account(p, rows, seed_array, relevance)
    _check_ledger(ledger)
    return Explanation(relevance=relevance, sample=sample, output=output, prediction=prediction, seed=seed_array,
                       target_value=ledger.target_value, ledger=ledger, relevances=kept, graph=model,
                       explained=p.explained, profile=p.profile, target=p.target)


def _merge(p, n, results, placed):
    """The explanations of parts computed apart as one: explanation ``s * K + slot`` of sample ``s`` (``K`` slots
    in all) comes from the part making ``slot`` for ``s``; ``placed`` holds each part's ``(slots, samples)``
    (samples None: all ``n``).  ``output`` and ``prediction`` are filled part by part where still masked: a
    part's values computed on the whole model, else its cone's (where cones overlap, the first part's values)."""
    k = p.target.count(1)
    samples_of = [np.arange(n) if samples is None else np.asarray(samples) for _, samples in placed]
    rows = np.concatenate([(own[:, None] * k + np.asarray(slots)[None, :]).ravel()
                           for (slots, _), own in zip(placed, samples_of)])

    def joined(arrays, axis=0):
        together = np.concatenate(arrays, axis=axis)
        out = np.empty_like(together)
        out[(slice(None),) * axis + (rows,)] = together
        return out

    ledgers = [r.ledger for r in results]
    first = ledgers[0]
    ledger = Ledger(profile=first.profile, nodes=first.nodes, layers=first.layers, rules=first.rules,
                    **{f: joined([getattr(ledger, f) for ledger in ledgers], axis=getattr(first, f).ndim - 1)
                       for f in ("relevance_in", "relevance_out", *Absorbed._fields, "magnitude", "target_value",
                                 "input_relevance", "input_magnitude")})
    return Explanation(
        relevance=joined([r.relevance for r in results]),
        sample=joined([own[r.sample] for r, own in zip(results, samples_of)]),
        output=_together(n, [r.output for r in results], samples_of),
        prediction=_together(n, [r.prediction for r in results], samples_of),
        seed=joined([r.seed for r in results]), target_value=ledger.target_value, ledger=ledger,
        relevances={name: joined([r.relevances[name] for r in results]) for name in results[0].relevances},
        graph=p.model, explained=p.explained, profile=p.profile, target=p.target)


def _together(n, arrays, samples_of):
    """One output of ``n`` samples from the parts' (each of its ``samples_of``): filled in turn where still masked;
    a plain array when nothing stays masked."""
    first = arrays[0]
    out = np.ma.MaskedArray(np.zeros((n, *first.shape[1:]), first.dtype), np.ones((n, *first.shape[1:]), bool))
    for array, own in zip(arrays, samples_of):
        mask = np.ma.getmaskarray(array)
        fill = out.mask[own] & ~mask
        block = out.data[own]
        block[fill] = np.ma.getdata(array)[fill]
        out.data[own] = block
        out.mask[own] = out.mask[own] & mask
    return out.data if not out.mask.any() else out


def _outputs(model, p, values):
    """The explained tensor and the model's output; in a cone, masked arrays computed inside it (the output is
    masked whole when its output activation reads more than the cone: it is not computed)."""
    if p.cone is None:
        return values[p.explained], values[model.output]
    output = p.cone.masked(p.explained, values[p.explained])
    if model.output in values:
        return output, p.cone.masked(model.output, values[model.output])
    n, shape = len(output), p.cone.shapes[model.output]
    return output, np.ma.MaskedArray(np.zeros((n, *shape), output.dtype), np.ones((n, *shape), dtype=bool))


class _Row(NamedTuple):
    """One node's ledger entries, per explanation."""

    relevance_in: np.ndarray
    relevance_out: np.ndarray
    absorbed: Absorbed
    magnitude: np.ndarray


def _propagate(model, p, values, seed_array, sample):
    """Relevance from the explained node back to the input, in reverse listing order; returns the input
    relevance, one ledger row per active node (listing order) and the kept relevances.  ``values`` hold one row
    per sample, relevance one row per explanation (``sample``: see :meth:`reflrp.rules.Rule.propagate`)."""
    cone = p.cone
    if cone is not None:
        seed_array = boxes.crop(seed_array, cone.boxes[p.explained], boxes.whole(seed_array.shape[1:]))
    arriving = {p.explained: [((len(model.nodes), 0), seed_array, None)]}
    kept, rows = {}, {}
    for node in reversed(p.active):
        r_out, out_sums = _gather(arriving.pop(node.name))
        if node.name in p.keep:
            kept[node.name] = r_out if cone is None else cone.whole(node.name, r_out)
        layer, inputs = (node.layer, [values[i] for i in node.inputs]) if cone is None else cone.cut(node, values)
        rule = p.rules[node.name]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            result = rule.propagate(layer, inputs, values[node.name], r_out, sample)
        in_sums = [row_sums(r, magnitude=True) for r in result.r_in]  # (sums, sums of magnitudes) per input
        # a NaN or an infinity makes its sample's sum non-finite: only then look at every element
        if not all(np.all(np.isfinite(t)) for t, _ in in_sums) and \
                not all(np.all(np.isfinite(r)) for r in result.r_in):
            raise ReflrpError(
                f"{node.label}: relevance overflowed under {rule} (a denominator is tiny but not zero); "
                f"use a larger epsilon"
            )
        out_sum, magnitude = row_sums(r_out, magnitude=True) if out_sums is None else out_sums
        rows[node.name] = _Row(out_sum, sum(t for t, _ in in_sums), result.absorbed, magnitude)
        position = model.position(node.name)
        for k, (source, r_in, in_sum) in enumerate(zip(node.inputs, result.r_in, in_sums)):
            if cone is not None:
                r_in = cone.widen(node, k, r_in)
            arriving.setdefault(source, []).append(((position, k), r_in, in_sum))
    relevance = _gather(arriving.pop(INPUT))[0]
    if cone is not None:
        relevance = cone.whole(INPUT, relevance)
    return relevance, [rows[node.name] for node in p.active], kept


def _account(p, rows, seed_array, relevance):
    """The ledger: one row per active node, in listing order."""
    input_relevance, input_magnitude = row_sums(relevance, magnitude=True)
    return Ledger(
        profile=str(p.profile),
        nodes=tuple(node.name for node in p.active),
        layers=tuple(type(node.layer).__name__ for node in p.active),
        rules=tuple(str(p.rules[node.name]) for node in p.active),
        relevance_in=np.array([row.relevance_in for row in rows]),
        relevance_out=np.array([row.relevance_out for row in rows]),
        **{column: np.array([getattr(row.absorbed, column) for row in rows]) for column in Absorbed._fields},
        magnitude=np.array([row.magnitude for row in rows]),
        target_value=per_sample(seed_array),
        input_relevance=input_relevance,
        input_magnitude=input_magnitude,
    )


def _check_ledger(ledger):
    """Refuse a ledger whose sums overflowed float64 (every value finite, their sum not), naming the first node."""
    if not (np.all(np.isfinite(ledger.target_value)) and np.all(np.isfinite(ledger.input_relevance))):
        raise ReflrpError("the target value or the input relevance sums beyond the range of float64; scale the model "
                          "or the input")
    for column in ("relevance_in", "relevance_out", "magnitude", *Absorbed._fields):
        bad = ~np.all(np.isfinite(getattr(ledger, column)), axis=1)
        if bad.any():
            node = ledger.nodes[int(np.argmax(bad))]
            raise ReflrpError(f"node {node!r}: the ledger's {column} sums beyond the range of float64; scale the model "
                              f"or the input")


def _gather(contributions):
    """Sum the relevance a node receives, in the documented order: by consumer position, then input slot,
    left to right.  Returns the sum and, when there is one contribution, its per-sample sums and sums of
    magnitudes (already taken for the consumer's ledger row: the same array summed the same way), else None."""
    ordered = sorted(contributions, key=lambda item: item[0])
    total = ordered[0][1]
    for _, part, _ in ordered[1:]:
        total = total + part
    return total, (ordered[0][2] if len(ordered) == 1 else None)


def _keep(active, keep):
    if keep is None or keep is False or keep is np.False_:
        return set()
    if keep is True or keep is np.True_:
        return set(active)
    if isinstance(keep, str):
        keep = [keep]
    if not isinstance(keep, (list, tuple, set, frozenset)):
        raise ReflrpError(f"keep must be True, False, None or a list of node names, got {keep!r}")
    for name in keep:
        if not isinstance(name, str):
            raise ReflrpError(f"keep: {name!r} is not a node name")
        if name not in active:
            raise ReflrpError(f"keep: node {name!r} does not exist or does not lead to the explained output")
    return set(keep)
