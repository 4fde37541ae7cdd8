"""Whose conventions an explanation follows, as data: a :class:`Profile` is a frozen record of settings.

``explain(model, x, target, rules, profile=...)`` takes a profile or its name.  A profile decides only
conventions, never the arithmetic's correctness: every rule it uses is one of reflrp's rules (with its knobs,
docs/rules.md), so the ledger accounts for it as for any other.  The settings:

- ``seed``: relevance starts from the selected output's value or from 1;
- ``batchnorm``: what is done to BatchNorm before explaining (kept, merged into the layer before it, or merged
  leaving its ``eps`` behind);
- ``canonizers``: further rewrites of the model before explaining, as the library's canonizers do them (Zennit's
  ResNet canonizer makes each residual addition a module);
- ``batchnorm_parameters``: how every rule reads a BatchNorm (the rules' ``batchnorm`` knob);
- ``first``: what "the first layers" are (:class:`FirstLayers`);
- ``single_rule``: what a single rule given for the whole network covers;
- ``defaults``: the rule for a layer the composite leaves open, by layer role or type (first match wins);
- ``functions``: the rule for a layer the model called as a function (``F.relu``, ``x.mean``: ``Node.called``),
  whatever the composite says, by role or type; empty: functions are read as modules are;
- ``reads``: how reflrp's rules given by the user are read (:class:`Reading`): which rules the library has, and
  the knobs it fixes; None: every rule as given;
- ``presets``: the library's own composites by its own names, and ``named``: which of reflrp's named
  composites are which preset.

reflrp's own profile is ``Profile()``.  The other libraries' profiles are values made in :mod:`reflrp.compat`,
which registers them by name (:func:`register`) when reflrp is imported; the engine knows none of them.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields, replace

from reflrp import validate
from reflrp.canonize import merge_batchnorm
from reflrp.composites import DEFAULTS as ROLE_DEFAULTS
from reflrp.composites import Named, as_composite, first_layers
from reflrp.errors import ReflrpError
from reflrp.rules.base import BATCHNORMS, same

#: What a profile may do to BatchNorm before explaining (``Profile.batchnorm``).
BATCHNORM = ("keep", "merge", "merge-leaving-eps")


@dataclass(frozen=True)
class FirstLayers:
    """What "the first layers" are: the nodes of ``types`` whose inputs come from the model input through
    ``look_through`` layers only (:func:`reflrp.composites.first_layers`).

    Attributes
    ----------
    types : tuple of layer types
        Empty: every layer that combines features with learned weights.
    look_through : tuple of layer types or None
        None: every layer that is not of ``types``.
    which : "all", "first" or "none"
        Every such node, only the first in the model's order, or none (the library has no first-layer rule).
    """

    types: tuple = ()
    look_through: tuple | None = None
    which: str = validate.field(validate.one_of("all", "first", "none"), "all")

    def __post_init__(self):
        validate.check_fields(self)

    def __call__(self, graph):
        if self.which == "none":
            return []
        return first_layers(graph, self.types, self.look_through, self.which == "first")


@dataclass(frozen=True)
class Reading:
    """How a library reads one of reflrp's rules: the rule it has by that name, and the knobs it fixes.

    Attributes
    ----------
    rule : type
        The reflrp rule class.
    name : str
        The library's name for it.
    fixed : tuple of (field, value)
        Parameters the library's rule does not have: a rule at its default gets the library's value, a rule asking
        for another value is refused.
    required : tuple of (field, value)
        Values the rule must have to be the library's rule at all (``AlphaBeta`` with ``beta=0``).
    condition : callable or None
        ``condition(rule) -> str or None``: a further reason the library cannot compute the rule (or None).
    """

    rule: type
    name: str
    fixed: tuple = ()
    required: tuple = ()
    condition: object = None

    def read(self, rule, library):
        for field, value in self.required:
            if not same(getattr(rule, field), value):
                return None
        defaults = {f.name: f.default for f in fields(rule)}
        changes = {}
        for field, value in self.fixed:
            given = getattr(rule, field)
            if not same(given, value):
                if not same(given, defaults[field]):
                    raise ReflrpError(f"{library}'s {self.name} has no {field} (it uses {field}={value!r}); {rule} "
                                      f"asks for {field}={given!r}")
                changes[field] = value
        reason = self.condition(rule) if self.condition is not None else None
        if reason:
            raise ReflrpError(f"{library}'s {self.name}: {reason}; {rule!r} cannot be computed")
        return replace(rule, **changes) if changes else rule


def _matching(pairs, layer):
    """The rule of the first ``(role or layer types, rule)`` pair that matches ``layer``, or None."""
    for key, rule in pairs:
        if (layer.role == key) if isinstance(key, str) else isinstance(layer, key):
            return rule
    return None


def _show(value):
    return f"array{value.shape}" if hasattr(value, "shape") and getattr(value, "ndim", 0) else repr(value)


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


#: reflrp's rule for each parameter-free role (:data:`reflrp.composites.DEFAULTS`), as ``Profile.defaults``.
DEFAULTS = tuple(ROLE_DEFAULTS.items())


@dataclass(frozen=True)
class Profile:
    """Whose conventions an explanation follows (module docstring).  ``Profile()`` is reflrp's own.

    Attributes
    ----------
    name : str
        What ``explain(..., profile=name)`` accepts.
    library : str
        The implementation and version whose numbers the profile reproduces.
    seed : "value" or "unit"
    batchnorm : one of :data:`BATCHNORM`
    canonizers : tuple of callables
        ``canonizer(graph) -> graph``, applied in order after the BatchNorm setting; each returns an equivalent
        graph (the same function) that the library's rules read differently.
    batchnorm_parameters : "fused", "module" or "squared-variance"
        Set on every rule that has the ``batchnorm`` knob.
    first : FirstLayers
    single_rule : "all" or "weights"
        A single rule applies to every layer it can apply to (parameter-free linear layers included, reflrp), or
        to the layers with weights only (the others keep :attr:`defaults`, as the libraries do).
    defaults : tuple of (role or tuple of layer types, Rule)
    functions : tuple of (role or tuple of layer types, Rule)
        For the nodes the model called as functions (``Node.called == "function"``), unless the composite names the
        node: a library that attaches rules to modules only back-propagates everything else as its gradient.
    reads : tuple of Reading, or None
    presets : tuple of (name, function)
        ``function(**params, graph=graph)`` returns the preset's :class:`~reflrp.composites.Composite`.
    named : tuple of (named composite class, preset name)
    options : tuple of (name, value)
        The choices a profile was made with (``merge_batchnorm=True``), shown by ``str``.
    """

    name: str = validate.field(validate.string, "reflrp")
    library: str = validate.field(validate.string, "reflrp")
    seed: str = validate.field(validate.one_of("value", "unit"), "value")
    batchnorm: str = validate.field(validate.one_of(*BATCHNORM), "keep")
    canonizers: tuple = ()
    batchnorm_parameters: str = validate.field(validate.one_of(*BATCHNORMS), "fused")
    first: FirstLayers = FirstLayers()
    single_rule: str = validate.field(validate.one_of("all", "weights"), "all")
    defaults: tuple = DEFAULTS
    functions: tuple = ()
    reads: tuple | None = None
    presets: tuple = ()
    named: tuple = ()
    options: tuple = ()

    def __post_init__(self):
        validate.check_fields(self)
        if not isinstance(self.canonizers, tuple) or not all(callable(c) for c in self.canonizers):
            raise ReflrpError(f"Profile: canonizers must be a tuple of functions graph -> graph, got "
                              f"{self.canonizers!r}")

    def __str__(self):
        shown = ", ".join(f"{k}={v!r}" for k, v in self.options)
        return f"{self.name}({shown})" if shown else self.name

    # -- the model and the rules ----------------------------------------------------------------------------------

    def prepare(self, model):
        """The model as the library explains it (BatchNorm kept, or merged; then its canonizers)."""
        if self.batchnorm != "keep":
            model = merge_batchnorm(model, leave_eps=self.batchnorm == "merge-leaving-eps")
        for canonizer in self.canonizers:
            model = canonizer(model)
        return model

    def first_layers(self, graph):
        return self.first(graph)

    def default_rule(self, layer):
        """The rule for a layer the composite leaves open: the first of :attr:`defaults` that matches it."""
        rule = _matching(self.defaults, layer)
        if rule is None:
            raise ReflrpError(f"{self.library} has no default rule for {type(layer).__name__}; give this layer a rule "
                              f"in the composite")
        return rule

    def function_rule(self, node):
        """The rule for a node the model called as a function: the first of :attr:`functions` that matches it."""
        rule = _matching(self.functions, node.layer)
        if rule is None:
            raise ReflrpError(f"{node.label}: {self.library} back-propagates a {type(node.layer).__name__} called as "
                              f"a function by its gradient, which reflrp does not compute; name the node in the "
                              f"composite to give it a rule")
        return rule

    def read(self, rule):
        """``rule`` as this library computes it (:class:`Reading`)."""
        if self.reads is None:
            return rule
        for reading in self.reads:
            if type(rule) is reading.rule:
                read = reading.read(rule, self.library)
                if read is not None:
                    return read
        names = ", ".join(f"{r.name} ({r.rule.__name__})" for r in self.reads)
        raise ReflrpError(f"{self.library} has no rule like {rule}; its rules are {names}")

    # -- presets --------------------------------------------------------------------------------------------------

    def preset(self, name, **params):
        """The library's preset ``name`` with ``params`` (checked now), for ``explain(..., rules=...)``."""
        presets = dict(self.presets)
        if name not in presets:
            raise ReflrpError(f"profile {self.name}: no preset named {name!r}; the presets are "
                              f"{', '.join(sorted(presets)) or 'none'}")
        signature = inspect.signature(presets[name])
        try:
            bound = signature.bind(**params, graph=None)
        except TypeError as error:
            allowed = [p for p in signature.parameters if p != "graph"]
            raise ReflrpError(f"profile {self.name}: preset {name}: {error}; its parameters are "
                              f"{', '.join(allowed) or 'none'}") from None
        del bound.arguments["graph"]
        return Preset(self.name, name, tuple(bound.arguments.items()))

    def composite(self, rules, graph):
        """``(composite, exact)``: ``rules`` as a :class:`Composite` for ``graph``; ``exact`` when it is the
        library's own preset (its rules are already the library's; others are read by :meth:`read`)."""
        if isinstance(rules, str):
            if not self.presets:
                raise ReflrpError(f"rules must be a reflrp rule or composite, got str {rules!r}; preset names are "
                                  f"read under the profile of the library they belong to (profile=...)")
            rules = self.preset(rules)
        if isinstance(rules, Preset):
            if rules.profile != self.name:
                raise ReflrpError(f"rules {rules} is a preset of profile {rules.profile!r}, but the profile is "
                                  f"{self.name!r}")
            return dict(self.presets)[rules.name](**dict(rules.params), graph=graph), True
        if isinstance(rules, Named) and self.named:
            named = dict(self.named)
            if type(rules) not in named:
                raise ReflrpError(f"profile {self.name}: {self.library} has no composite {type(rules).__name__}")
            params = {f.name: getattr(rules, f.name) for f in fields(rules)}
            return dict(self.presets)[named[type(rules)]](**params, graph=graph), True
        return as_composite(rules, self.single_rule), False

    def resolve(self, rules, graph, nodes):
        """``{node name: rule}`` for ``nodes`` of ``graph``: the composite read the way this library reads it, its
        first layers and defaults, and its reading of BatchNorm."""
        composite, exact = self.composite(rules, graph)
        functions = {name: self.function_rule(graph[name]) for name in nodes if self.functions and
                     graph[name].called == "function" and name not in composite.names}
        modules = composite.resolve(graph, [name for name in nodes if name not in functions],
                                    first=self.first_layers(graph), default=self.default_rule,
                                    read=None if exact else self.read)
        chosen = {name: functions[name] if name in functions else modules[name] for name in nodes}
        if self.batchnorm_parameters == "fused":
            return chosen
        return {name: replace(rule, batchnorm=self.batchnorm_parameters) if hasattr(rule, "batchnorm") else rule
                for name, rule in chosen.items()}


# -- profiles by name ----------------------------------------------------------------------------------------------

_REGISTERED = {"reflrp": (Profile(),)}


def register(*variants):
    """Make ``explain(..., profile=name)`` accept ``variants[0].name``; the variants (the default first) are the
    settings :func:`reflrp.compat.compare` tries when looking for the profile that explains another map.  Called
    by :mod:`reflrp.compat` as reflrp is imported; a name is registered once."""
    name = variants[0].name
    if any(v.name != name for v in variants) or not all(isinstance(v, Profile) for v in variants):
        raise ReflrpError("register: variants must be profiles of one name")
    if name in _REGISTERED and _REGISTERED[name] != variants:
        raise ReflrpError(f"register: a profile named {name!r} is registered already")
    _REGISTERED[name] = tuple(variants)


def names():
    """The registered profile names."""
    return tuple(_REGISTERED)


def variants(name):
    """The registered settings of profile ``name``, its default first."""
    return _REGISTERED[name]


def as_profile(profile):
    """A :class:`Profile` from a profile or its name."""
    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, str) and profile in _REGISTERED:
        return _REGISTERED[profile][0]
    if callable(profile) and hasattr(profile, "__name__"):  # reflrp.compat.Zennit rather than Zennit()
        raise ReflrpError(f"profile must be a profile or its name, got the function {profile.__name__}; did you mean "
                          f"{profile.__name__}()?")
    shown = repr(profile) if isinstance(profile, str) else type(profile).__name__
    raise ReflrpError(f"profile must be one of {', '.join(_REGISTERED)} (or a reflrp.conventions.Profile), got "
                      f"{shown}")


__all__ = ["BATCHNORM", "DEFAULTS", "FirstLayers", "Preset", "Profile", "Reading", "as_profile", "names", "register",
           "variants"]
