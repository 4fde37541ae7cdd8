"""What a profile is: the conventions one LRP implementation follows, as data and a few small methods.

An explanation under a profile differs from reflrp's own only in what the profile decides:

- ``prepare``: how the model is rewritten first (e.g. a library's BatchNorm merge);
- ``composite``: how ``rules`` are read: the library's presets by their own names (a :class:`Preset`), reflrp's
  named composites as the library's composite of the same name, single rules and :class:`Composite` as given;
- ``first_layers``: which nodes count as "the first layer";
- ``default_rule``: the rule for a layer the composite leaves open (parameter-free layers: Upsample as a gradient
  or a z-rule, max pooling's ties, ...);
- ``variant``: the library's own version of a rule (its stabilizer, where its biases go);
- ``seed``: whether relevance starts from the selected output's value or from 1.

Every rule a profile uses is an ordinary reflrp rule, so the ledger accounts for it as for any other: where a
library loses or creates relevance, the ledger says which layer did.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from typing import ClassVar

from reflrp.composites import DEFAULTS, Named, as_composite, first_layers
from reflrp.errors import ReflrpError
from reflrp.rules import Rule


@dataclass(frozen=True)
class Preset:
    """A library's named preset with its parameters: a valid ``rules`` value under that library's profile.

    Made by :meth:`Profile.preset` (checked there); ``params`` is a tuple of ``(name, value)`` pairs.
    """

    profile: str
    name: str
    params: tuple = ()

    def __str__(self):
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.params)
        return f"{self.profile}:{self.name}({shown})"


def _show(value):
    return f"array{value.shape}" if hasattr(value, "shape") and getattr(value, "ndim", 0) else repr(value)


@dataclass(frozen=True)
class Profile:
    """reflrp's own conventions (docs/conventions.md); the other profiles subclass this one.

    Class attributes
    ----------------
    name : str
        What ``explain(..., profile=name)`` accepts.
    library : str
        The implementation and version whose numbers the profile reproduces.
    seed : "value" or "unit"
        Where relevance starts unless ``explain`` is given ``seed=``.
    presets : dict of str to function
        The library's presets by their own names; each function takes the preset's parameters (keywords) and
        ``graph`` and returns a :class:`~reflrp.composites.Composite`.
    """

    name = "reflrp"
    library = "reflrp"
    seed = "value"
    presets: ClassVar[dict] = {}

    def __str__(self):
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if getattr(self, f.name) != f.default]
        return f"{self.name}({', '.join(changed)})" if changed else self.name

    # -- what a subclass may change -----------------------------------------------------------------------------

    @classmethod
    def variants(cls):
        """The settings worth trying when looking for the profile that explains another implementation's numbers
        (:func:`reflrp.compare`)."""
        return [cls()]

    def prepare(self, model):
        """The model as the library would explain it (rewritten by its canonizers, if the profile applies any)."""
        return model

    def named(self, composite, graph):
        """The library's version of one of reflrp's named composites; reflrp's own by default."""
        return composite.composite()

    def first_layers(self, graph):
        """The nodes that count as first layers."""
        return first_layers(graph)

    def default_rule(self, layer):
        """The rule for a layer the composite leaves open, or None."""
        return DEFAULTS.get(layer.role)

    def variant(self, rule, layer):
        """The library's version of ``rule`` on ``layer`` (its stabilizer, its bias placement): ``rule`` itself
        where the library computes what reflrp does."""
        return rule

    # -- the fixed part -----------------------------------------------------------------------------------------

    def preset(self, name, **params):
        """The library's preset ``name`` with ``params`` (checked now), for ``explain(..., rules=...)``."""
        if name not in self.presets:
            raise ReflrpError(f"profile {self.name}: no preset named {name!r}; the presets are "
                              f"{', '.join(sorted(self.presets)) or 'none'}")
        signature = inspect.signature(self.presets[name])
        try:
            bound = signature.bind(**params, graph=None)
        except TypeError as error:
            allowed = [p for p in signature.parameters if p != "graph"]
            raise ReflrpError(f"profile {self.name}: preset {name}: {error}; its parameters are "
                              f"{', '.join(allowed) or 'none'}") from None
        del bound.arguments["graph"]
        return Preset(self.name, name, tuple(bound.arguments.items()))

    def composite(self, rules, graph):
        """``rules`` as a :class:`Composite` for ``graph``, read the way this library reads them."""
        if isinstance(rules, str):
            if not self.presets:
                raise ReflrpError(f"rules must be a reflrp rule or composite, got str {rules!r}; preset names are "
                                  f"read under the profile of the library they belong to (profile=...)")
            rules = self.preset(rules)
        if isinstance(rules, Preset):
            if rules.profile != self.name:
                raise ReflrpError(f"rules {rules} is a preset of profile {rules.profile!r}, but the profile is "
                                  f"{self.name!r}")
            return self.presets[rules.name](**dict(rules.params), graph=graph)
        if isinstance(rules, Named):
            return self.named(rules, graph)
        return as_composite(rules)

    def resolve(self, rules, graph, nodes):
        """``{node name: rule}`` for ``nodes`` of ``graph``: the composite, this profile's first layers and
        defaults, and its variants of each rule."""
        composite = self.composite(rules, graph)
        chosen = composite.resolve(graph, nodes, first=self.first_layers(graph), default=self.default_rule)
        resolved = {}
        for name, rule in chosen.items():
            variant = self.variant(rule, graph[name].layer)
            if not isinstance(variant, Rule):  # a profile's own mistake; never the user's
                raise ReflrpError(f"profile {self.name}: no rule for {graph[name].label}")
            resolved[name] = variant
        return resolved


__all__ = ["Preset", "Profile"]
