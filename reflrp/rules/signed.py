"""Rules that treat positive and negative contributions differently: AlphaBeta, ZPlus and Gamma."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.rules import base
from reflrp.rules.base import Rule, check_alpha_beta, non_negative, parameters
from reflrp.steps import (
    Absorbed,
    Propagation,
    modified_passes,
    modified_rule,
    negative_part,
    per_sample,
    positive_part,
    rows,
    signed_parts,
)


def _check_module(rule):
    """``batchnorm="module"`` modifies BatchNorm's own weight with one function per side, which needs inputs that
    are not split (a split side multiplies two modified weights)."""
    if rule.batchnorm == "module" and rule.inputs != "whole":
        raise ReflrpError(f"{type(rule).__name__}: batchnorm='module' needs inputs='whole', got inputs={rule.inputs!r}")


def _alpha_beta(rule, layer, a, r_out, alpha, beta, sample):
    """Shared body of :class:`AlphaBeta` and :class:`ZPlus`: each side is the four steps on the contributions of its
    sign (``a+ w+`` and ``a- w-`` are positive, ``a+ w-`` and ``a- w+`` negative), with the inputs and the bias
    placed as the rule's knobs say."""
    a_pos, a_neg = signed_parts(a)
    if layer.normalizes and rule.batchnorm == "module":  # each side's weight, and the bias following it
        (w_pos, b_pos), (w_neg, b_neg) = (parameters(layer, "module", rho, rule.zero_bias)
                                          for rho in (positive_part, negative_part))
        biases = (b_pos, b_neg) if rule.bias == "whole" else (positive_part(b_pos), negative_part(b_neg))
    else:
        weight, bias = parameters(layer, rule.batchnorm, zero_bias=rule.zero_bias)
        w_pos, w_neg = signed_parts(weight)
        biases = (None, None) if bias is None else (bias, bias) if rule.bias == "whole" else signed_parts(bias)
    terms = {"signed": ([(a_pos, w_pos), (a_neg, w_neg)], [(a_pos, w_neg), (a_neg, w_pos)]),
             "positive": ([(a_pos, w_pos)], [(a_pos, w_neg)]),
             "whole": ([(a, w_pos)], [(a, w_neg)])}[rule.inputs]
    sides = [side for side in zip((alpha, beta), (1.0, -1.0), terms, biases) if side[0] != 0]
    # the sides at once: after a ReLU both multiply the same a+ (r_out * 1.0 is r_out, so factor 1 is not applied)
    done = modified_passes(layer, a, [(r_out if factor == 1 else r_out * factor, side_terms, side_bias)
                                      for factor, _, side_terms, side_bias in sides], rule.stabilizing(), sample)
    absorbed = Absorbed.nothing(len(r_out))
    if len(done) == 1:  # z+: its relevance as it is (its zeros are +0, as 0 + r_in would make them)
        return Propagation([done[0].r_in], absorbed.plus(done[0].absorbed))
    r_in = np.zeros((len(r_out), *a.shape[1:]), dtype=a.dtype)
    for (_, sign, _, _), step in zip(sides, done):
        r_in += sign * step.r_in
        absorbed = absorbed.plus(step.absorbed, sign)
    return Propagation([r_in], absorbed)


@dataclass(frozen=True)
class _TwoSided(Rule):
    """The knobs of AlphaBeta and ZPlus (keyword arguments; docs/rules.md, "Knobs")."""

    stabilizer: str = base.stabilizer()
    inputs: str = base.inputs()
    bias: str = base.bias()
    batchnorm: str = base.batchnorm()

    def __post_init__(self):
        super().__post_init__()
        _check_module(self)


@dataclass(frozen=True)
class AlphaBeta(_TwoSided):
    """LRP-alpha-beta: positive and negative contributions propagated separately.

    ``r_in_i = sum_j (alpha (a_i w_ij)^+ / stabilize(z_j^+) - beta (a_i w_ij)^- / stabilize(z_j^-)) r_j``
    with ``z_j^+ = sum_i (a_i w_ij)^+ + b_j^+`` and ``z_j^- = sum_i (a_i w_ij)^- + b_j^-``: the bias's positive
    part joins the positive denominator, its negative part the negative one.  A side with no contributions
    (``z_j^+ = 0`` or ``z_j^- = 0``) passes nothing: its share is recorded as dropped.

    Bach et al. (2015), PLoS ONE 10(7), eq. 60; Montavon et al. (2017), "Explaining nonlinear classification
    decisions with deep Taylor decomposition", Pattern Recognition 65.

    Parameters
    ----------
    alpha, beta : float
        ``alpha - beta = 1``, both >= 0.
    epsilon : float
        Stabilizer of both denominators.
    zero_bias : bool
    stabilizer : "sign" or "zero"
    inputs : "signed", "positive" or "whole"
        How the input enters the two sides (docs/rules.md, "Knobs"); "signed" is the formula above.
    bias : "split" or "whole"
        "split": ``b+`` and ``b-`` as above; "whole": ``b`` in both denominators.
    batchnorm : "fused", "module" or "squared-variance"
    """

    alpha: float = validate.field(non_negative, 2.0)
    beta: float = validate.field(non_negative, 1.0)
    epsilon: float = base.epsilon()
    zero_bias: bool = base.zero_bias()

    def __post_init__(self):
        super().__post_init__()
        check_alpha_beta(self)

    def propagate(self, layer, inputs, output, r_out, sample=None):
        return _alpha_beta(self, layer, inputs[0], r_out, self.alpha, self.beta, sample)


@dataclass(frozen=True)
class ZPlus(_TwoSided):
    """LRP-z+: :class:`AlphaBeta` with ``alpha=1, beta=0``; only positive contributions (and ``b^+``) count.

    Montavon et al. (2017), Pattern Recognition 65, eq. (z+-rule).  With ``inputs="whole"`` it is the z+ rule as
    written for non-negative inputs, ``z_j = sum_i a_i w_ij^+ + b``, applied to any input.

    Parameters
    ----------
    epsilon : float
    zero_bias : bool
    stabilizer : "sign" or "zero"
    inputs : "signed", "positive" or "whole"
    bias : "split" or "whole"
    batchnorm : "fused", "module" or "squared-variance"
    """

    epsilon: float = base.epsilon()
    zero_bias: bool = base.zero_bias()

    def propagate(self, layer, inputs, output, r_out, sample=None):
        return _alpha_beta(self, layer, inputs[0], r_out, 1.0, 0.0, sample)


@dataclass(frozen=True)
class Gamma(Rule):
    """LRP-gamma, generalised to signed inputs: contributions that agree in sign with the unit are amplified.

    For a unit with ``z_j > 0``: ``rho(a_i w_ij) = a_i w_ij + gamma (a_i w_ij)^+`` and ``rho(b_j) = b_j +
    gamma b_j^+``; for ``z_j < 0``: ``rho(a_i w_ij) = a_i w_ij + gamma (a_i w_ij)^-`` and ``rho(b_j) = b_j +
    gamma b_j^-``.  Then ``r_in_i = sum_j rho(a_i w_ij) / stabilize(sum_i' rho(a_i' w_i'j) + rho(b_j)) r_j``.
    Units with ``z_j = 0`` pass nothing (dropped).  ``z_j`` is the layer's output (without the bias when
    ``zero_bias``).  In weights: a positive input uses ``w + gamma w^+`` where ``z_j > 0`` and ``w + gamma w^-``
    where ``z_j < 0``; a negative input the other one.  For non-negative inputs this is the rule as published.

    With ``inputs="whole"`` every input and every unit uses ``w + gamma w^+`` and the bias is kept as it is:
    ``r_in_i = sum_j a_i (w_ij + gamma w_ij^+) / stabilize(sum_i' a_i' (w_i'j + gamma w_i'j^+) + b_j) r_j``, the
    published formula applied to signed inputs and units unchanged (Captum's ``GammaRule``).

    Montavon et al. (2019), "Layer-Wise Relevance Propagation: An Overview", LNCS 11700, eq. (LRP-gamma), for
    non-negative inputs; Andeol et al. (2021), "Learning Domain Invariant Representations by Joint Wasserstein
    Distance Minimization", and Zennit's ``Gamma`` for signed inputs.

    Parameters
    ----------
    gamma : float
        >= 0; 0 is LRP-epsilon.
    epsilon : float
    zero_bias : bool
    stabilizer : "sign" or "zero"
    inputs : "signed" or "whole"
    batchnorm : "fused", "module" or "squared-variance"
    """

    gamma: float = validate.field(non_negative, 0.25)
    epsilon: float = base.epsilon()
    zero_bias: bool = base.zero_bias()
    stabilizer: str = base.stabilizer()
    inputs: str = base.inputs("signed", "whole")
    batchnorm: str = base.batchnorm()

    def __post_init__(self):
        super().__post_init__()
        _check_module(self)

    def propagate(self, layer, inputs, output, r_out, sample=None):
        (a,) = inputs
        if self.inputs == "whole":
            weight, bias = parameters(layer, self.batchnorm, lambda w: w + self.gamma * positive_part(w),
                                      self.zero_bias)
            step = modified_rule(layer, a, r_out, self.stabilizing(), [(a, weight)], bias, sample)
            return Propagation([step.r_in], step.absorbed)
        weight, bias = parameters(layer, self.batchnorm, zero_bias=self.zero_bias)
        z = output if bias is not None else layer.linear(inputs)
        a_pos, a_neg = signed_parts(a)
        w_pos, w_neg = signed_parts(weight)
        w_up, w_down = weight + self.gamma * w_pos, weight + self.gamma * w_neg
        b_up = b_down = None
        if bias is not None:
            b_pos, b_neg = signed_parts(bias)
            b_up, b_down = bias + self.gamma * b_pos, bias + self.gamma * b_neg
        z = rows(z, sample)
        r_in = np.zeros((len(r_out), *a.shape[1:]), dtype=a.dtype)
        absorbed = Absorbed.nothing(len(r_out))._replace(dropped=per_sample(np.where(z == 0, r_out, 0)))
        # (units, weight for positive inputs, weight for negative inputs, modified bias)
        sides = [(np.where(mask, r_out, 0), [(a_pos, w_for_pos_a), (a_neg, w_for_neg_a)], rho_b) for
                 mask, w_for_pos_a, w_for_neg_a, rho_b in ((z > 0, w_up, w_down, b_up), (z < 0, w_down, w_up, b_down))]
        for step in modified_passes(layer, a, sides, self.stabilizing(), sample):
            r_in += step.r_in
            absorbed = absorbed.plus(step.absorbed)
        return Propagation([r_in], absorbed)


__all__ = ["AlphaBeta", "Gamma", "ZPlus"]
