"""Composites: which rule each layer of a model gets.

A :class:`Composite` resolves a rule for every node, in this order of precedence:

1. ``names``: a rule for a node by name;
2. ``first``: a rule for the first layers that combine features with learned weights (Linear, Conv2d or
   ConvTranspose2d nodes with no such layer between them and the model input);
3. ``layer_map``: ordered ``(layer type or tuple of types, rule)`` pairs, first match wins (``isinstance``);
4. ``affine``: a rule for every other layer with weights (Linear, Conv1d, Conv2d, ConvTranspose2d, BatchNorm);
5. ``linear``: a rule for every other parameter-free linear layer (average pooling, Upsample, Add);
6. defaults for parameter-free layers, by what the layer does (:data:`DEFAULTS`): activations
   :class:`~reflrp.rules.Pass`; average pooling, Upsample and Add :class:`~reflrp.rules.Norm`; max pooling
   :class:`~reflrp.rules.WinnerTakesAll` (first maximum); Flatten, Reshape, Concat, Crop, ZeroPad2d, Identity
   and Dropout :class:`~reflrp.rules.Gradient` (exact routing).

A layer with weights that none of these covers is an error.  A single rule passed where a composite is expected
applies to every layer it can apply to: ``Composite(affine=rule)``, and also ``linear=rule`` when the rule applies
to parameter-free linear layers (:class:`~reflrp.rules.Epsilon` does: ``Epsilon(epsilon=0)`` alone is LRP-0
everywhere, which is gradient times input).  The named composites (:class:`EpsilonPlus`, ...) are frozen values
with their own parameters; :func:`as_composite` turns them into the :class:`Composite` they stand for.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import partial

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.graph import INPUT, Graph
from reflrp.layers import BATCHNORMS, CONVOLUTIONS, Layer, Linear, MatMul, Multiply, Scale
from reflrp.rules import (
    AlphaBeta,
    Epsilon,
    Flat,
    Gamma,
    Gradient,
    Norm,
    Pass,
    Product,
    Rule,
    Taylor,
    WinnerTakesAll,
    ZBox,
    ZPlus,
)
from reflrp.rules.base import bound

#: The rule for each parameter-free role (see :data:`reflrp.layers.ROLES`).
DEFAULTS = {"activation": Pass(), "selection": WinnerTakesAll(), "routing": Gradient(), "linear": Norm(),
            "product": Product(), "normalization": Pass(), "softmax": Taylor(),
            "embedding": Pass()}


def _layer_types(value):
    types = value if isinstance(value, tuple) else (value,)
    return bool(types) and all(isinstance(t, type) and issubclass(t, Layer) for t in types)


def check_pairs(pairs, label):
    if not isinstance(pairs, (list, tuple)):
        raise ReflrpError(f"{label} must be a list of (layer type, rule) pairs, got {type(pairs).__name__}")
    checked = []
    for pair in pairs:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and _layer_types(pair[0])):
            raise ReflrpError(f"{label}: each entry must be (layer type or tuple of types, rule), got {pair!r}")
        if not isinstance(pair[1], Rule):
            raise ReflrpError(f"{label}: the rule for {pair[0]!r} must be a reflrp rule, got {_describe(pair[1])}")
        checked.append((pair[0], pair[1]))
    return tuple(checked)


def _optional_rule(value, label):
    if value is not None and not isinstance(value, Rule):
        raise ReflrpError(f"{label} must be a reflrp rule, got {_describe(value)}")
    return value


def _rules_by_name(value, label):
    if not isinstance(value, dict):
        raise ReflrpError(f"{label} must be a dict of node name to rule")
    for name, rule in value.items():
        if not isinstance(name, str):
            raise ReflrpError(f"{label} must map node names (strings) to rules, got the key {name!r}")
        if rule is None:
            raise ReflrpError(f"{label}: the rule for node {name!r} is None")
        _optional_rule(rule, f"{label}: the rule for node {name!r}")
    return dict(value)


def _layer_map():
    return validate.field(check_pairs, ())


def _rule():
    return validate.field(_optional_rule, None)


def _describe(value):
    """How an error shows a value that should have been a rule or composite: a class gets a hint."""
    if isinstance(value, type):
        return f"the class {value.__name__}; did you mean {value.__name__}(...)?"
    return repr(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__


def first_layers(graph, types=(), look_through=None, first_only=False):
    """Names of the first layers of ``graph``: the nodes of ``types`` whose inputs all come from the model input
    through ``look_through`` layers only.  The one definition of "first layer", parameterised.

    Parameters
    ----------
    graph : Graph
    types : tuple of layer types
        Which layers can be first layers; empty: every layer that combines features with learned weights
        (Linear, Conv1d, Conv2d, ConvTranspose2d; ``Layer.combines_features``).
    look_through : tuple of layer types, optional
        The layers that may lie between the input and a first layer; None: every layer that is not of ``types``.
    first_only : bool
        Only the first such node in the model's order.
    """
    if not isinstance(graph, Graph):
        raise ReflrpError(f"first_layers: graph must be a reflrp Graph, got {type(graph).__name__}")

    def candidate(layer):
        return isinstance(layer, types) if types else layer.combines_features

    raw = {INPUT}  # nodes whose output comes from the input through look-through layers only
    first = []
    for node in graph.nodes:
        from_input = all(i in raw for i in node.inputs)
        if candidate(node.layer):
            if from_input:
                first.append(node.name)
        elif from_input and (look_through is None or isinstance(node.layer, look_through)):
            raw.add(node.name)
    return first[:1] if first_only else first


@dataclass(frozen=True, eq=False)
class Composite:
    """Rules by node name, for the first layers, by layer type, and for every layer with weights.

    Parameters
    ----------
    layer_map : sequence of (layer type or tuple of types, Rule)
        First match wins.
    first : Rule, optional
        For the first Linear/Conv2d/ConvTranspose2d layers.
    names : dict of str to Rule, optional
        Per node; overrides everything else.
    affine : Rule, optional
        For every layer with weights that nothing above covers.
    linear : Rule, optional
        For every parameter-free linear layer (pooling, Upsample, Add) that nothing above covers.
    """

    layer_map: tuple = _layer_map()
    first: Rule | None = _rule()
    names: dict = field(default_factory=dict, metadata={"check": _rules_by_name})
    affine: Rule | None = _rule()
    linear: Rule | None = _rule()

    def __post_init__(self):
        validate.check_fields(self)

    def __eq__(self, other):
        return type(other) is type(self) and (self.layer_map, self.first, self.names, self.affine, self.linear) == (
            other.layer_map, other.first, other.names, other.affine, other.linear)

    def __hash__(self):
        return hash((self.layer_map, self.first, tuple(self.names.items()), self.affine, self.linear))

    def rule_for(self, name, layer, first):
        """The rule for node ``name`` holding ``layer`` (``first``: whether it is a first layer), or None when the
        composite leaves the layer to the defaults."""
        if name in self.names:
            return self.names[name]
        if first and self.first is not None:
            return self.first
        for layer_type, rule in self.layer_map:
            if isinstance(layer, layer_type):
                return rule
        if layer.role == "affine":
            return self.affine
        if layer.role == "linear":
            return self.linear
        return None

    def resolve(self, graph, nodes, first=None, default=None, read=None):
        """``{node name: rule}`` for ``nodes`` (names) of ``graph``; unknown names and uncovered layers are
        errors.

        ``first`` (the first layers' names) defaults to :func:`first_layers`; ``default`` (a function from a layer to
        its rule when the composite leaves it open, or None) to :data:`DEFAULTS` by role; ``read`` (a function
        from a rule the composite gives to the rule applied) to the rule itself.  A profile
        (:class:`reflrp.conventions.Profile`) passes its own."""
        unknown = sorted(set(self.names) - {n.name for n in graph.nodes})
        if unknown:
            raise ReflrpError(f"rules are given for nodes that do not exist: {', '.join(unknown)}")
        first = set(first_layers(graph) if first is None else first)
        default = default or (lambda layer: DEFAULTS.get(layer.role))
        resolved = {}
        for name in nodes:
            node = graph[name]
            rule = self.rule_for(name, node.layer, name in first)
            try:
                if rule is None:
                    rule = default(node.layer)
                elif read is not None:
                    rule = read(rule)
            except ReflrpError as error:  # a profile that says why it has no rule for this layer
                raise ReflrpError(f"{node.label}: {error}") from None
            if rule is None:
                raise ReflrpError(f"{node.label}: no rule is given for this layer type")
            resolved[name] = rule
        return resolved


class Named:
    """Base class of the named composites: frozen values whose fields are their parameters."""

    def composite(self) -> Composite:
        raise ReflrpError(f"{type(self).__name__} is not a usable composite")

    def __repr__(self):
        """``EpsilonPlus(epsilon=1e-06)``: every parameter, and ``layer_map`` when it is not empty."""
        shown = [f"{f.name}={_show(getattr(self, f.name))}" for f in fields(self)
                 if f.name != "layer_map" or getattr(self, f.name)]
        return f"{type(self).__name__}({', '.join(shown)})"


def _show(value):
    return f"array{value.shape}" if isinstance(value, np.ndarray) else repr(value)


def _standard(conv_rule, epsilon, layer_map, first=None):
    """``layer_map`` first, then ``conv_rule`` on convolutions and Epsilon on Linear, BatchNorm and Scale."""
    dense = Epsilon(epsilon=epsilon)
    pairs = check_pairs(layer_map, "layer_map")
    pairs += ((CONVOLUTIONS, conv_rule), (Linear, dense), ((*BATCHNORMS, Scale), dense))
    return Composite(layer_map=pairs, first=first)


_non_negative = partial(validate.real, minimum=0.0)


@dataclass(frozen=True, repr=False)
class _EpsilonAnd(Named):
    """Epsilon on Linear, BatchNorm and Scale, and a rule of the subclass's on convolutions."""

    epsilon: float = validate.field(_non_negative, 1e-6)
    layer_map: tuple = _layer_map()

    def __post_init__(self):
        validate.check_fields(self)


@dataclass(frozen=True, repr=False)
class EpsilonPlus(_EpsilonAnd):
    """ZPlus on convolutions (Conv1d, Conv2d, ConvTranspose2d), Epsilon on Linear, BatchNorm and Scale.

    ``layer_map`` pairs given here take precedence (e.g. ``[(MaxPool2d, WinnerTakesAll("split"))]``).
    """

    def composite(self):
        return _standard(ZPlus(), self.epsilon, self.layer_map)


@dataclass(frozen=True, repr=False)
class EpsilonAlpha2Beta1(_EpsilonAnd):
    """AlphaBeta(2, 1) on convolutions, Epsilon on Linear, BatchNorm and Scale."""

    def composite(self):
        return _standard(AlphaBeta(2.0, 1.0), self.epsilon, self.layer_map)


@dataclass(frozen=True, repr=False)
class EpsilonPlusFlat(_EpsilonAnd):
    """:class:`EpsilonPlus` with Flat on the first layers."""

    def composite(self):
        return _standard(ZPlus(), self.epsilon, self.layer_map, first=Flat())


@dataclass(frozen=True, repr=False)
class EpsilonAlpha2Beta1Flat(_EpsilonAnd):
    """:class:`EpsilonAlpha2Beta1` with Flat on the first layers."""

    def composite(self):
        return _standard(AlphaBeta(2.0, 1.0), self.epsilon, self.layer_map, first=Flat())


@dataclass(frozen=True, eq=False, repr=False)
class EpsilonGammaBox(Named):
    """ZBox(low, high) on the first layers, Gamma(gamma) on convolutions, Epsilon on Linear, BatchNorm and Scale."""

    low: object = validate.field(bound)
    high: object = validate.field(bound)
    epsilon: float = validate.field(_non_negative, 1e-6)
    gamma: float = validate.field(_non_negative, 0.25)
    layer_map: tuple = _layer_map()

    def __post_init__(self):
        validate.check_fields(self)
        ZBox(self.low, self.high)  # low <= high everywhere, broadcasting together

    def __eq__(self, other):
        if type(other) is not EpsilonGammaBox:
            return NotImplemented
        return (ZBox(self.low, self.high) == ZBox(other.low, other.high)
                and (self.epsilon, self.gamma, self.layer_map) == (other.epsilon, other.gamma, other.layer_map))

    def __hash__(self):
        return hash((ZBox(self.low, self.high), self.epsilon, self.gamma, self.layer_map))

    def composite(self):
        return _standard(Gamma(gamma=self.gamma), self.epsilon, self.layer_map, first=ZBox(self.low, self.high))


@dataclass(frozen=True, repr=False)
class AttnLRP(Named):
    """AttnLRP for transformers (Achtibat et al. (2024), "AttnLRP: Attention-Aware Layer-Wise Relevance Propagation
    for Transformers", ICML): Epsilon on layers with weights, the uniform Product rule on matrix and elementwise
    products of two activations (attention's ``q @ k.T`` and ``probabilities @ v``, gated units), the softmax's
    Taylor rule (:class:`~reflrp.rules.Taylor`), the identity on normalisations and activations, the z-rule with
    the same epsilon on sums and other parameter-free linear layers.

    ``layer_map`` pairs given here take precedence.
    """

    epsilon: float = validate.field(_non_negative, 1e-6)
    layer_map: tuple = _layer_map()

    def __post_init__(self):
        validate.check_fields(self)

    def _products(self):
        return Product(split="uniform", epsilon=self.epsilon)

    def composite(self):
        dense = Epsilon(epsilon=self.epsilon)
        pairs = check_pairs(self.layer_map, "layer_map") + (((MatMul, Multiply), self._products()),)
        return Composite(layer_map=pairs, affine=dense, linear=Norm(epsilon=self.epsilon))


@dataclass(frozen=True, repr=False)
class CPLRP(AttnLRP):
    """CP-LRP (Ali et al. (2022), "XAI for Transformers: Better Explanations through Conservative Propagation",
    ICML): :class:`AttnLRP` with the attention probabilities held fixed: ``probabilities @ v`` gives all its
    relevance to ``v`` (:class:`~reflrp.rules.Product` ``split="signal"``, the probabilities being the marked gate),
    so nothing reaches the softmax or ``q @ k.T``; products without a marked gate are split uniformly."""

    def _products(self):
        return Product(split="signal", epsilon=self.epsilon, ungated="uniform")


def as_composite(rules, single="all"):
    """A :class:`Composite` from a composite, a named composite, or a single rule: for every layer it applies to
    (``single="all"``), or for the layers with weights only (``single="weights"``)."""
    if isinstance(rules, Composite):
        return rules
    if isinstance(rules, Named):
        return rules.composite()
    if isinstance(rules, Rule):
        return Composite(affine=rules, linear=rules if single == "all" and rules.handles("linear") else None)
    if isinstance(rules, type):
        raise ReflrpError(f"rules must be a reflrp rule or composite, got {_describe(rules)}")
    raise ReflrpError(f"rules must be a reflrp rule or composite, got {type(rules).__name__}")


__all__ = [
    "AttnLRP",
    "CPLRP",
    "DEFAULTS",
    "Composite",
    "EpsilonAlpha2Beta1",
    "EpsilonAlpha2Beta1Flat",
    "EpsilonGammaBox",
    "EpsilonPlus",
    "EpsilonPlusFlat",
    "Named",
    "as_composite",
    "first_layers",
]
