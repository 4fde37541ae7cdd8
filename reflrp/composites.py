"""Composites: which rule each layer of a model gets.

A :class:`Composite` resolves a rule for every node, in this order of precedence:

1. ``names``: a rule for a node by name;
2. ``first``: a rule for the first linear layers (Linear, Conv2d or ConvTranspose2d nodes with no such layer
   between them and the model input);
3. ``layer_map``: ordered ``(layer type, rule)`` pairs, first match wins (``isinstance``);
4. defaults for parameter-free layers: activations :class:`~reflrp.rules.Pass`; average pooling, Upsample and
   Add :class:`~reflrp.rules.Norm`; max pooling :class:`~reflrp.rules.WinnerTakesAll` (first maximum);
   Flatten, Reshape, Concat, Crop, ZeroPad2d, Identity and Dropout :class:`~reflrp.rules.Gradient` (exact
   routing).

A layer with weights that none of these covers is an error.  A single rule passed where a composite is
expected applies to every layer with weights (Linear, Conv2d, ConvTranspose2d, BatchNorm).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reflrp.errors import ReflrpError
from reflrp.layers import (
    Activation,
    AffineLayer,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Layer,
    Linear,
    LinearOp,
    MaxPool2d,
    Routing,
)
from reflrp.rules import AlphaBeta, Epsilon, Flat, Gamma, Gradient, Norm, Pass, Rule, WinnerTakesAll, ZBox, ZPlus

CONVOLUTIONS = (Conv2d, ConvTranspose2d)
BATCHNORMS = (BatchNorm1d, BatchNorm2d)

_DEFAULTS = (
    (Activation, Pass()),
    (MaxPool2d, WinnerTakesAll()),
    (Routing, Gradient()),
    (LinearOp, Norm()),
)


def _check_pairs(pairs, what):
    pairs = tuple(tuple(p) for p in pairs)
    for pair in pairs:
        if len(pair) != 2 or not (isinstance(pair[0], type) and issubclass(pair[0], Layer)):
            raise ReflrpError(f"{what}: each entry must be (layer type, rule), got {pair!r}")
        if not isinstance(pair[1], Rule):
            raise ReflrpError(f"{what}: {pair[1]!r} for {pair[0].__name__} is not a reflrp rule")
    return pairs


@dataclass(frozen=True, eq=False)
class Composite:
    """Rules by layer type, by node name, and for the first linear layers.

    Parameters
    ----------
    layer_map : sequence of (layer type, Rule)
        First match wins.
    first : Rule, optional
        For the first Linear/Conv2d/ConvTranspose2d layers.
    names : dict of str to Rule, optional
        Per node; overrides everything else.
    """

    layer_map: tuple = ()
    first: Rule | None = None
    names: dict = field(default_factory=dict)
    label: str = field(default="", compare=False)

    def __post_init__(self):
        object.__setattr__(self, "layer_map", _check_pairs(self.layer_map, "Composite layer_map"))
        if self.first is not None and not isinstance(self.first, Rule):
            raise ReflrpError(f"Composite: first must be a reflrp rule, got {self.first!r}")
        if not isinstance(self.names, dict):
            raise ReflrpError("Composite: names must be a dict of node name to rule")
        for name, rule in self.names.items():
            if not isinstance(rule, Rule):
                raise ReflrpError(f"Composite: the rule for node '{name}' is not a reflrp rule: {rule!r}")
        object.__setattr__(self, "names", dict(self.names))

    def __repr__(self):
        if self.label:
            return self.label
        return f"Composite(layer_map={self.layer_map!r}, first={self.first!r}, names={self.names!r})"

    def rule_for(self, name, layer, first):
        """The rule for node ``name`` holding ``layer``; ``first`` tells whether it is a first linear layer."""
        if name in self.names:
            return self.names[name]
        if first and self.first is not None:
            return self.first
        for layer_type, rule in self.layer_map + _DEFAULTS:
            if isinstance(layer, layer_type):
                return rule
        return None

    def resolve(self, graph):
        """``{node name: rule}`` for every active node of ``graph``; unknown names and uncovered layers are
        errors."""
        unknown = sorted(set(self.names) - {n.name for n in graph.nodes})
        if unknown:
            raise ReflrpError(f"rules are given for nodes that do not exist: {', '.join(unknown)}")
        first = set(graph.first_linear_nodes())
        resolved = {}
        for node in graph.nodes:
            if node.name not in graph.active:
                continue
            rule = self.rule_for(node.name, node.layer, node.name in first)
            if rule is None:
                raise ReflrpError(f"{node.label}: no rule is given for this layer type")
            resolved[node.name] = rule
        return resolved


def as_composite(rules):
    """A :class:`Composite` from a composite, or from a single rule for every layer with weights."""
    if isinstance(rules, Composite):
        return rules
    if isinstance(rules, Rule):
        return Composite(layer_map=((AffineLayer, rules),))
    raise ReflrpError(f"rules must be a reflrp rule or composite, got {type(rules).__name__}")


def _standard(label, conv_rule, epsilon, first=None, layer_map=()):
    dense = Epsilon(epsilon=epsilon)
    pairs = tuple(layer_map) + ((CONVOLUTIONS, conv_rule), (Linear, dense), (BATCHNORMS, dense))
    expanded = []
    for types, rule in pairs:
        for t in types if isinstance(types, tuple) else (types,):
            expanded.append((t, rule))
    return Composite(layer_map=tuple(expanded), first=first, label=label)


def EpsilonPlus(epsilon=1e-6, layer_map=()):
    """ZPlus on convolutions (Conv2d, ConvTranspose2d), Epsilon on Linear and BatchNorm.

    ``layer_map`` pairs given here take precedence (e.g. ``[(MaxPool2d, WinnerTakesAll("split"))]``).
    """
    return _standard(f"EpsilonPlus(epsilon={epsilon})", ZPlus(), epsilon, layer_map=layer_map)


def EpsilonAlpha2Beta1(epsilon=1e-6, layer_map=()):
    """AlphaBeta(2, 1) on convolutions, Epsilon on Linear and BatchNorm."""
    return _standard(f"EpsilonAlpha2Beta1(epsilon={epsilon})", AlphaBeta(2.0, 1.0), epsilon, layer_map=layer_map)


def EpsilonPlusFlat(epsilon=1e-6, layer_map=()):
    """:func:`EpsilonPlus` with Flat on the first linear layers."""
    return _standard(f"EpsilonPlusFlat(epsilon={epsilon})", ZPlus(), epsilon, first=Flat(), layer_map=layer_map)


def EpsilonAlpha2Beta1Flat(epsilon=1e-6, layer_map=()):
    """:func:`EpsilonAlpha2Beta1` with Flat on the first linear layers."""
    label = f"EpsilonAlpha2Beta1Flat(epsilon={epsilon})"
    return _standard(label, AlphaBeta(2.0, 1.0), epsilon, first=Flat(), layer_map=layer_map)


def EpsilonGammaBox(low, high, epsilon=1e-6, gamma=0.25, layer_map=()):
    """ZBox(low, high) on the first linear layers, Gamma(gamma) on convolutions, Epsilon on Linear and
    BatchNorm."""
    box = ZBox(low, high)
    label = f"EpsilonGammaBox({str(box)[5:-1]}, epsilon={epsilon}, gamma={gamma})"
    return _standard(label, Gamma(gamma=gamma), epsilon, first=box, layer_map=layer_map)


__all__ = [
    "Composite",
    "EpsilonAlpha2Beta1",
    "EpsilonAlpha2Beta1Flat",
    "EpsilonGammaBox",
    "EpsilonPlus",
    "EpsilonPlusFlat",
    "as_composite",
]
