"""Captum 0.9's LRP conventions (``profile="captum"``).

Read from Captum's ``attr/_core/lrp.py`` and ``attr/_utils/lrp_rules.py`` and measured against Captum itself
(tests/test_peers_captum.py):

- **Default rules by exact module type**: ``EpsilonRule(epsilon=1e-9)`` on Conv2d, Linear, BatchNorm2d, max and
  average pooling, AdaptiveAvgPool2d and Captum's ``Addition_Module``; ReLU, Tanh and Dropout pass relevance on
  unchanged.  Any other module (ConvTranspose2d, Conv1d, BatchNorm1d, Upsample, nn.Flatten, LeakyReLU, ...) has
  no default: Captum raises, and so does this profile unless the composite gives the layer a rule.  Functional
  operations (``torch.cat``, ``torch.flatten``, ``F.interpolate``) are back-propagated by autograd: Concat,
  Flatten, Reshape, Upsample and the other routing layers get :class:`~reflrp.rules.Gradient`.
- **Max pooling is an epsilon layer**: the window's relevance goes to its maximum ``a`` as ``a R / (a + eps)``
  (:class:`EpsilonMax`), not exactly ``R``.
- **Captum's GammaRule and Alpha1_Beta0_Rule** modify the weights only (``w + gamma w+`` and ``w+``), whatever
  the input's sign, keep the bias as it is (``set_bias_to_zero`` drops it) and stabilize with a fixed 1e-9:
  :class:`CaptumGamma` and :class:`CaptumAlpha1Beta0`, which this profile uses where a composite names
  :class:`~reflrp.rules.Gamma` or :class:`~reflrp.rules.ZPlus`.  On BatchNorm they modify its ``weight``.
- **No first-layer rule**, and the seed is the selected output's value (Captum back-propagates 1 and multiplies
  the input relevance by the output at the end: the same numbers up to rounding).
- Same as reflrp: the stabilizer ``z + eps * sign(z)`` with ``sign(0) = +1``, z with the bias.

Not reproduced (documented defects of Captum 0.9, docs/profiles.md): relevance through a tensor that feeds both
a layer with a rule and a functional operation (a ``torch.cat`` skip) is multiplied by the activation twice;
a functional ``x + y`` copies the whole relevance into both branches; a skip taken before a ReLU module loses its
relevance.  :func:`reflrp.compare` shows the node where Captum's numbers depart because of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from reflrp import validate
from reflrp.composites import Composite
from reflrp.errors import ReflrpError
from reflrp.layers import (
    AdaptiveAvgPool2d,
    Add,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Linear,
    MaxPool2d,
    ReLU,
    Tanh,
)
from reflrp.profiles.base import Profile
from reflrp.rules import AlphaBeta, Epsilon, Gamma, Gradient, Norm, Pass, Rule, WinnerTakesAll, ZPlus
from reflrp.steps import Propagation, modified_rule, positive_part, z_rule

#: Captum's ``PropagationRule.STABILITY_FACTOR`` and ``EpsilonRule``'s default
STABILITY = 1e-9


def _modified(layer, change, zero_bias):
    """``(weight, bias)`` of ``layer`` after Captum changes its ``weight`` parameter by ``change`` (and zeroes its
    ``bias`` with ``zero_bias``), as the affine map reflrp's steps use.  BatchNorm's ``weight`` is its gamma: the
    scale and the shift both follow from the changed gamma."""
    if isinstance(layer, (BatchNorm1d, BatchNorm2d)):
        sigma = np.sqrt(layer.running_var + layer.eps)
        gamma = np.ones_like(sigma) if layer.weight is None else change(layer.weight)
        beta = np.zeros_like(sigma) if (layer.bias is None or zero_bias) else layer.bias
        scale = gamma / sigma
        return scale, beta - layer.running_mean * scale
    return change(layer.weight), None if zero_bias else layer.bias


def _weights_rule(rule, layer, inputs, r_out, change, sample):
    weight, bias = _modified(layer, change, rule.set_bias_to_zero)
    (a,) = inputs
    step = modified_rule(layer, a, r_out, STABILITY, [(a, weight)], bias, sample)
    return Propagation([step.r_in], step.absorbed)


@dataclass(frozen=True)
class CaptumGamma(Rule):
    """Captum's ``GammaRule``: ``w' = w + gamma w+`` for every input (no split by the input's sign), the bias
    unchanged (``set_bias_to_zero``: none), ``r_in = a * J'^T (r_out / stabilize(z'))`` with ``z' = w' a + b``
    and the stabilizer fixed at 1e-9.

    Parameters
    ----------
    gamma : float
        >= 0 (Captum's default 0.25).
    set_bias_to_zero : bool
    """

    gamma: float = 0.25
    set_bias_to_zero: bool = False

    _checks = {"gamma": partial(validate.real, minimum=0.0), "set_bias_to_zero": validate.boolean}

    def propagate(self, layer, inputs, output, r_out, sample=None):
        return _weights_rule(self, layer, inputs, r_out, lambda w: w + self.gamma * positive_part(w), sample)


@dataclass(frozen=True)
class CaptumAlpha1Beta0(Rule):
    """Captum's ``Alpha1_Beta0_Rule``: ``w' = w+``, the whole bias kept (``set_bias_to_zero``: none), the
    stabilizer fixed at 1e-9.  Unlike :class:`~reflrp.rules.ZPlus` it neither splits inputs by sign nor keeps
    only the bias's positive part, so ``z'`` can be zero or negative.

    Parameters
    ----------
    set_bias_to_zero : bool
    """

    set_bias_to_zero: bool = False

    _checks = {"set_bias_to_zero": validate.boolean}

    def propagate(self, layer, inputs, output, r_out, sample=None):
        return _weights_rule(self, layer, inputs, r_out, positive_part, sample)


@dataclass(frozen=True)
class EpsilonMax(Rule):
    """Captum's ``EpsilonRule`` on max pooling: each window's relevance ``R`` goes to its first maximum ``a`` as
    ``a R / stabilize(a)`` (the rest of ``R`` is the stabilizer's, in the ledger).

    Parameters
    ----------
    epsilon : float
    """

    epsilon: float = STABILITY

    _checks = {"epsilon": partial(validate.real, minimum=0.0)}
    _roles = ("selection",)
    _applies_to = "max pooling"

    def propagate(self, layer, inputs, output, r_out, sample=None):
        return z_rule(layer, inputs, r_out, self.epsilon, output, sample=sample)


_EPSILON = Epsilon(epsilon=STABILITY)
#: Captum's ``SUPPORTED_LAYERS_WITH_RULES`` and ``SUPPORTED_NON_LINEAR_LAYERS``, by reflrp layer type
DEFAULTS = {Conv2d: _EPSILON, Linear: _EPSILON, BatchNorm2d: _EPSILON, AvgPool2d: _EPSILON,
            AdaptiveAvgPool2d: _EPSILON, Add: _EPSILON, MaxPool2d: EpsilonMax(), ReLU: Pass(), Tanh: Pass(),
            Dropout: Pass()}


def default(*, graph):
    """What ``LRP(model).attribute(...)`` does without rules set by hand: Captum's defaults everywhere."""
    return Composite()


@dataclass(frozen=True)
class Captum(Profile):
    """Captum 0.9 (``profile="captum"``); see the module docstring.  ``rules="default"`` is Captum's own
    assignment; a reflrp rule or composite overrides it where it applies, read as the Captum rule of that name."""

    name = "captum"
    library = "Captum 0.9"
    seed = "value"
    presets = {"default": default}

    def first_layers(self, graph):
        return []

    def default_rule(self, layer):
        rule = DEFAULTS.get(type(layer))
        if rule is not None:
            return rule
        if layer.role in ("routing", "linear"):  # functional operations: autograd's gradient
            return Gradient()
        raise ReflrpError(f"Captum 0.9 has no default rule for {type(layer).__name__} (its LRP raises TypeError); "
                          f"give this layer a rule in the composite")

    def variant(self, rule, layer):
        """Captum's version of a rule: its GammaRule and Alpha1_Beta0_Rule for Gamma and ZPlus."""
        if isinstance(rule, Gamma):
            _no_epsilon(rule, Gamma, "GammaRule")
            return CaptumGamma(gamma=rule.gamma, set_bias_to_zero=rule.zero_bias)
        if isinstance(rule, ZPlus) or (isinstance(rule, AlphaBeta) and rule.beta == 0):
            _no_epsilon(rule, type(rule), "Alpha1_Beta0_Rule")
            return CaptumAlpha1Beta0(set_bias_to_zero=rule.zero_bias)
        if isinstance(rule, (Epsilon, Norm, Pass, Gradient, WinnerTakesAll, CaptumGamma, CaptumAlpha1Beta0,
                             EpsilonMax)):
            return rule
        raise ReflrpError(f"Captum 0.9 has no rule like {rule}; its rules are EpsilonRule (Epsilon), GammaRule "
                          f"(Gamma), Alpha1_Beta0_Rule (ZPlus) and IdentityRule (Pass)")


def _no_epsilon(rule, kind, captum_name):
    """Captum's GammaRule and Alpha1_Beta0_Rule stabilize with a fixed 1e-9: a rule asking for another epsilon
    cannot be what Captum computes."""
    if rule.epsilon != kind.__dataclass_fields__["epsilon"].default:
        raise ReflrpError(f"Captum's {captum_name} has no epsilon (it stabilizes with {STABILITY}); {rule} asks for "
                          f"epsilon={rule.epsilon}")


__all__ = ["Captum", "CaptumAlpha1Beta0", "CaptumGamma", "DEFAULTS", "EpsilonMax"]
