"""iNNvestigate 2.1.2's LRP conventions (``profile="innvestigate"``).

Read from iNNvestigate's ``relevance_rule.py``, ``relevance_analyzer.py`` and ``backend/graph.py`` and measured
against iNNvestigate itself (tests/test_peers_innvestigate.py):

- **No stabilizer but a safe division**: every rule except Epsilon divides by ``z + 1e-7 * [z == 0]``
  (:class:`SafeDivide`), so a denominator near zero blows relevance up.  Epsilon is ``z + eps * sign(z)`` with
  ``sign(0) = +1`` (iNNvestigate's default ``eps = 1e-7``; the presets use 0.1 on Dense layers).
- **AlphaBeta puts the whole bias into both denominators**: ``z+ = x+ w+ + x- w- + b`` and ``z- = x+ w- + x- w+ +
  b`` (reflrp: ``b+`` with the positive side, ``b-`` with the negative).  ``lrp.z_plus`` is AlphaBeta(1, 0)
  without bias, inputs split by sign; ``lrp.z_plus_fast`` uses ``w+`` alone on unsplit inputs.
- **Flat and WSquare** neither multiply by the input nor use a bias (as reflrp's); Z_B on the input layer.
- **BatchNorm is a fused affine layer under the analyzer's rule** (``z`` recomputed from its scale and shift);
  the presets give it their own rule (:class:`AlphaBetaX2m100`).  A known defect, reproduced only on request
  (``INNvestigate(batchnorm_defect=True)``): 2.1.2 computes the fused scale as ``gamma / sqrt(var**2 + eps)`` and
  the shift as ``beta - mean / sqrt(var**2 + eps)``, not ``gamma / sqrt(var + eps)`` and
  ``beta - gamma * mean / sqrt(var + eps)``.
- **Layers without weights**: Add and average pooling take the z-rule (with the safe division), max pooling its
  gradient (the first maximum), UpSampling2D, Concatenate, Flatten, Reshape and Dropout the gradient; Activation
  layers pass relevance on.
- **The input layer** (for ``input_layer_rule``): a layer with weights whose inputs all come from the model input,
  looking through Flatten, Reshape and Permute only.
- **The seed** is the selected output's value.

Not reproduced: a Keras ``ReLU()`` layer is back-propagated as its gradient (relevance kept only where the input
is positive), an ``Activation("relu")`` layer or a layer's built-in activation passes it on; after import reflrp
uses Pass for all of them, which differs only where relevance reaches a unit whose activation is zero (Flat and
WSquare upstream).  A model ending in an activation is explained at the pre-activation output; iNNvestigate seeds
with the activated value.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import partial

import numpy as np

from reflrp import validate
from reflrp.composites import Composite
from reflrp.errors import ReflrpError
from reflrp.graph import INPUT
from reflrp.layers import (
    AdaptiveAvgPool2d,
    Add,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    ConvTranspose2d,
    Flatten,
    Linear,
    Permute,
    Reshape,
)
from reflrp.profiles.base import Profile
from reflrp.rules import (
    AlphaBeta,
    Epsilon,
    Flat,
    Gradient,
    Norm,
    Pass,
    Rule,
    WinnerTakesAll,
    WSquare,
    ZBox,
    ZPlus,
)
from reflrp.steps import Propagation, modified_passes, modified_rule, positive_part, signed_parts, z_rule

KERNEL = (Linear, Conv1d, Conv2d, ConvTranspose2d)
BATCHNORM = (BatchNorm1d, BatchNorm2d)


@dataclass(frozen=True)
class SafeDivide:
    """iNNvestigate's ``safe_divide`` denominator: ``z + eps * [z == 0]`` (``eps`` is Keras' ``epsilon()``, 1e-7)."""

    eps: float = 1e-7

    def __call__(self, z):
        return z + np.where(z == 0, z.dtype.type(self.eps), z.dtype.type(0))


SAFE = SafeDivide()


def _affine(rule, layer):
    """``(weight, bias)`` as iNNvestigate sees the layer: BatchNorm as its fused scale and shift (with 2.1.2's
    formulas when ``rule.batchnorm_defect``)."""
    if not isinstance(layer, BATCHNORM):
        return layer.affine_parameters()
    gamma = np.ones_like(layer.running_mean) if layer.weight is None else layer.weight
    beta = np.zeros_like(layer.running_mean) if layer.bias is None else layer.bias
    if rule.batchnorm_defect:
        s = np.sqrt(layer.running_var ** 2 + layer.eps)
        return gamma / s, beta - layer.running_mean / s
    return layer.scale, layer.shift


class _Rule(Rule):
    """Base of this profile's rules: ``batchnorm_defect`` is set by the profile, not by users."""

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "batchnorm_defect", validate.boolean(self.batchnorm_defect,
                                                                      f"{type(self).__name__}: batchnorm_defect"))


def _one(layer, a, r_out, stabilizer, terms, bias, sample):
    step = modified_rule(layer, a, r_out, stabilizer, terms, bias, sample)
    return Propagation([step.r_in], step.absorbed)


@dataclass(frozen=True)
class InnZ(_Rule):
    """iNNvestigate's ZRule: ``r_in = x * W^T (r / sd(x W + b))`` with ``sd`` the safe division; ``bias=False``
    leaves the bias out of ``z``."""

    bias: bool = True
    batchnorm_defect: bool = False

    _checks = {"bias": validate.boolean}

    def propagate(self, layer, inputs, output, r_out, sample=None):
        weight, bias = _affine(self, layer)
        return _one(layer, inputs[0], r_out, SAFE, [(inputs[0], weight)], bias if self.bias else None, sample)


@dataclass(frozen=True)
class InnEpsilon(_Rule):
    """iNNvestigate's EpsilonRule: as :class:`InnZ` with ``z + epsilon * sign(z)`` (``sign(0) = +1``)."""

    epsilon: float = 1e-7
    bias: bool = True
    batchnorm_defect: bool = False

    _checks = {"epsilon": partial(validate.real, minimum=0.0), "bias": validate.boolean}

    def propagate(self, layer, inputs, output, r_out, sample=None):
        weight, bias = _affine(self, layer)
        return _one(layer, inputs[0], r_out, self.epsilon, [(inputs[0], weight)], bias if self.bias else None, sample)


@dataclass(frozen=True)
class InnAlphaBeta(_Rule):
    """iNNvestigate's AlphaBetaRule: inputs split by sign, the whole bias in both denominators, safe division:
    ``r_in = alpha A - beta I`` with ``A = x+ W+^T s+ + x- W-^T s+``, ``s+ = r / sd(x+ W+ + x- W- + b)`` and
    ``I = x+ W-^T s- + x- W+^T s-``, ``s- = r / sd(x+ W- + x- W+ + b)``."""

    alpha: float = 2.0
    beta: float = 1.0
    bias: bool = True
    batchnorm_defect: bool = False

    _checks = {"alpha": partial(validate.real, minimum=0.0), "beta": partial(validate.real, minimum=0.0),
               "bias": validate.boolean}

    def __post_init__(self):
        super().__post_init__()
        if abs(self.alpha - self.beta - 1) > 1e-12:
            raise ReflrpError(f"InnAlphaBeta: alpha - beta must be 1, got alpha={self.alpha}, beta={self.beta}")

    def propagate(self, layer, inputs, output, r_out, sample=None):
        (a,) = inputs
        weight, bias = _affine(self, layer)
        bias = bias if self.bias else None
        a_pos, a_neg = signed_parts(a)
        w_pos, w_neg = signed_parts(weight)
        active = (r_out * self.alpha, [(a_pos, w_pos), (a_neg, w_neg)], bias)
        if self.beta == 0:
            (active,) = modified_passes(layer, a, [active], SAFE, sample)
            return Propagation([active.r_in], active.absorbed)
        inhibit = (r_out * self.beta, [(a_pos, w_neg), (a_neg, w_pos)], bias)
        active, inhibit = modified_passes(layer, a, [active, inhibit], SAFE, sample)  # one unfolding of a+ for both
        return Propagation([active.r_in - inhibit.r_in], active.absorbed.plus(inhibit.absorbed, -1.0))


@dataclass(frozen=True)
class InnZPlusFast(_Rule):
    """iNNvestigate's ZPlusFastRule: ``W+`` on unsplit inputs, no bias, safe division."""

    batchnorm_defect: bool = False

    def propagate(self, layer, inputs, output, r_out, sample=None):
        weight, _ = _affine(self, layer)
        return _one(layer, inputs[0], r_out, SAFE, [(inputs[0], positive_part(weight))], None, sample)


@dataclass(frozen=True)
class InnWSquare(_Rule):
    """iNNvestigate's WSquareRule: ``r_in = W^2 (r / sd(sum W^2))``, no input, no bias."""

    batchnorm_defect: bool = False

    def propagate(self, layer, inputs, output, r_out, sample=None):
        weight, _ = _affine(self, layer)
        return _one(layer, inputs[0], r_out, SAFE, [(np.ones_like(inputs[0]), weight * weight)], None, sample)


@dataclass(frozen=True)
class InnFlat(_Rule):
    """iNNvestigate's FlatRule: relevance spread evenly over each unit's connections (``sd`` of their number)."""

    batchnorm_defect: bool = False

    def propagate(self, layer, inputs, output, r_out, sample=None):
        weight, _ = _affine(self, layer)
        return _one(layer, inputs[0], r_out, SAFE, [(np.ones_like(inputs[0]), np.ones_like(weight))], None, sample)


@dataclass(frozen=True, eq=False)
class InnBounded(_Rule):
    """iNNvestigate's BoundedRule (Z_B): ``x W - low W+ - high W-`` over ``sd`` of its sum, no bias."""

    low: float = -1.0
    high: float = 1.0
    batchnorm_defect: bool = False

    _checks = {"low": validate.real, "high": validate.real}

    def propagate(self, layer, inputs, output, r_out, sample=None):
        (a,) = inputs
        weight, _ = _affine(self, layer)
        w_pos, w_neg = signed_parts(weight)
        terms = [(a, weight), (np.full_like(a, -self.low), w_pos), (np.full_like(a, -self.high), w_neg)]
        return _one(layer, a, r_out, SAFE, terms, None, sample)


@dataclass(frozen=True)
class AlphaBetaX2m100(_Rule):
    """The presets' BatchNorm rule (iNNvestigate's AlphaBetaX2m100Rule): ``2 r_pp - r_pn`` with
    ``r_pp = x+ k+ r / sd(x+ k+ + b+)`` and ``r_pn = x+ k- r / sd(x+ k- + b-)``."""

    batchnorm_defect: bool = False

    def propagate(self, layer, inputs, output, r_out, sample=None):
        (a,) = inputs
        weight, bias = _affine(self, layer)
        a_pos = positive_part(a)
        (k_pos, k_neg), (b_pos, b_neg) = signed_parts(weight), signed_parts(bias)
        pp, pn = modified_passes(layer, a, [(2 * r_out, [(a_pos, k_pos)], b_pos), (r_out, [(a_pos, k_neg)], b_neg)],
                                 SAFE, sample)
        return Propagation([pp.r_in - pn.r_in], pp.absorbed.plus(pn.absorbed, -1.0))


@dataclass(frozen=True)
class InnNorm(Rule):
    """iNNvestigate's z-rule for Add and average pooling: ``r_in = x * M^T (r / sd(M x))``."""

    _roles = ("linear",)
    _applies_to = "Add and average pooling"

    def propagate(self, layer, inputs, output, r_out, sample=None):
        return z_rule(layer, inputs, r_out, SAFE, output, sample=sample)


# -- presets: iNNvestigate's analyzers by their registry names -------------------------------------------------

def _input_rule(value, label):
    """``input_layer_rule``: None or ``(low, high)`` (Z_B)."""
    if value is None:
        return None
    if (isinstance(value, (tuple, list)) and len(value) == 2 and
            all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)):
        low, high = (validate.real(v, f"{label}: input_layer_rule") for v in value)
        if low > high:
            raise ReflrpError(f"{label}: input_layer_rule (low, high) needs low <= high, got {tuple(value)}")
        return InnBounded(low, high)
    raise ReflrpError(f"{label}: input_layer_rule must be None or (low, high), got {value!r}")


def _analyzer(name, kernel_rule, input_layer_rule, bn_rule=None, first=None, dense_rule=None):
    first = _input_rule(input_layer_rule, name) or first
    pairs = []
    if dense_rule is not None:
        pairs.append(((Linear,), dense_rule))
    pairs += [(KERNEL, kernel_rule), (BATCHNORM, bn_rule or kernel_rule)]
    return Composite(layer_map=pairs, first=first)


def _z(bias=True, input_layer_rule=None, *, graph):
    """``lrp.z`` (``bias=False``: a ZRule without bias, which 2.1.2 has as a rule but not as an analyzer)."""
    return _analyzer("lrp.z", InnZ(bias=validate.boolean(bias, "lrp.z: bias")), input_layer_rule)


def _epsilon(epsilon=1e-7, bias=True, input_layer_rule=None, *, graph):
    return _analyzer("lrp.epsilon", InnEpsilon(epsilon, bias), input_layer_rule)


def _w_square(input_layer_rule=None, *, graph):
    return _analyzer("lrp.w_square", InnWSquare(), input_layer_rule)


def _flat(input_layer_rule=None, *, graph):
    return _analyzer("lrp.flat", InnFlat(), input_layer_rule)


def _alpha_beta(alpha=None, beta=None, bias=True, input_layer_rule=None, *, graph):
    """``lrp.alpha_beta``: give alpha or beta (or both); the other follows from ``alpha - beta = 1``."""
    if alpha is None and beta is None:
        raise ReflrpError("lrp.alpha_beta: give alpha or beta")
    alpha = validate.real(alpha, "lrp.alpha_beta: alpha") if alpha is not None else beta + 1
    beta = validate.real(beta, "lrp.alpha_beta: beta") if beta is not None else alpha - 1
    if alpha < 1 or beta < 0:
        raise ReflrpError(f"lrp.alpha_beta: needs alpha >= 1 and beta >= 0, got alpha={alpha}, beta={beta}")
    return _analyzer("lrp.alpha_beta", InnAlphaBeta(float(alpha), float(beta), bias), input_layer_rule)


def _fixed_alpha_beta(alpha, beta, bias):
    def analyzer(input_layer_rule=None, *, graph):
        return _analyzer("lrp.alpha_beta", InnAlphaBeta(alpha, beta, bias), input_layer_rule)
    return analyzer


def _z_plus_fast(input_layer_rule=None, *, graph):
    return _analyzer("lrp.z_plus_fast", InnZPlusFast(), input_layer_rule)


def _preset(alpha, beta, flat):
    def analyzer(epsilon=0.1, input_layer_rule=None, *, graph):
        return _analyzer("lrp.sequential_preset", InnAlphaBeta(alpha, beta, True), input_layer_rule,
                         bn_rule=AlphaBetaX2m100(), first=InnFlat() if flat else None,
                         dense_rule=InnEpsilon(epsilon, True))
    return analyzer


PRESETS = {
    "lrp.z": _z,
    "lrp.epsilon": _epsilon,
    "lrp.w_square": _w_square,
    "lrp.flat": _flat,
    "lrp.alpha_beta": _alpha_beta,
    "lrp.alpha_2_beta_1": _fixed_alpha_beta(2.0, 1.0, True),
    "lrp.alpha_2_beta_1_IB": _fixed_alpha_beta(2.0, 1.0, False),
    "lrp.alpha_1_beta_0": _fixed_alpha_beta(1.0, 0.0, True),
    "lrp.alpha_1_beta_0_IB": _fixed_alpha_beta(1.0, 0.0, False),
    "lrp.z_plus": _fixed_alpha_beta(1.0, 0.0, False),
    "lrp.z_plus_fast": _z_plus_fast,
    "lrp.sequential_preset_a": _preset(1.0, 0.0, False),
    "lrp.sequential_preset_b": _preset(2.0, 1.0, False),
    "lrp.sequential_preset_a_flat": _preset(1.0, 0.0, True),
    "lrp.sequential_preset_b_flat": _preset(2.0, 1.0, True),
}

#: the class names iNNvestigate exports for the same analyzers
PRESETS.update({
    "LRPZ": PRESETS["lrp.z"], "LRPEpsilon": PRESETS["lrp.epsilon"], "LRPWSquare": PRESETS["lrp.w_square"],
    "LRPFlat": PRESETS["lrp.flat"], "LRPAlphaBeta": PRESETS["lrp.alpha_beta"],
    "LRPAlpha2Beta1": PRESETS["lrp.alpha_2_beta_1"], "LRPAlpha2Beta1IgnoreBias": PRESETS["lrp.alpha_2_beta_1_IB"],
    "LRPAlpha1Beta0": PRESETS["lrp.alpha_1_beta_0"], "LRPAlpha1Beta0IgnoreBias": PRESETS["lrp.alpha_1_beta_0_IB"],
    "LRPZPlus": PRESETS["lrp.z_plus"], "LRPZPlusFast": PRESETS["lrp.z_plus_fast"],
    "LRPSequentialPresetA": PRESETS["lrp.sequential_preset_a"],
    "LRPSequentialPresetB": PRESETS["lrp.sequential_preset_b"],
    "LRPSequentialPresetAFlat": PRESETS["lrp.sequential_preset_a_flat"],
    "LRPSequentialPresetBFlat": PRESETS["lrp.sequential_preset_b_flat"],
})

_LOOK_THROUGH = (Flatten, Reshape, Permute)


@dataclass(frozen=True)
class INNvestigate(Profile):
    """iNNvestigate 2.1.2 (``profile="innvestigate"``); see the module docstring.  Its analyzers are presets by
    their registry names (``"lrp.sequential_preset_a"``) and class names (``"LRPSequentialPresetA"``).

    Parameters
    ----------
    batchnorm_defect : bool
        Fuse BatchNorm with 2.1.2's formulas (``sqrt(var**2 + eps)``, the shift without gamma) instead of the
        correct ones.  Off by default: a defect is reproduced only on request.
    """

    batchnorm_defect: bool = False

    name = "innvestigate"
    library = "iNNvestigate 2.1.2"
    seed = "value"
    presets = PRESETS

    def __post_init__(self):
        object.__setattr__(self, "batchnorm_defect", validate.boolean(self.batchnorm_defect,
                                                                      "INNvestigate: batchnorm_defect"))

    @classmethod
    def variants(cls):
        return [cls(), cls(batchnorm_defect=True)]

    def first_layers(self, graph):
        """Layers with weights whose inputs all come from the model input through Flatten, Reshape and Permute
        (iNNvestigate's ``is_input_layer``)."""
        from_input = {INPUT}
        first = []
        for node in graph.nodes:
            if isinstance(node.layer, _LOOK_THROUGH) and all(i in from_input for i in node.inputs):
                from_input.add(node.name)
            elif isinstance(node.layer, KERNEL) and all(i in from_input for i in node.inputs):
                first.append(node.name)
        return first

    def default_rule(self, layer):
        if isinstance(layer, (Add, AvgPool2d, AdaptiveAvgPool2d)):
            return InnNorm()
        if layer.role == "linear":  # UpSampling2D: its gradient
            return Gradient()
        if layer.role == "selection":
            return WinnerTakesAll("first")
        if layer.role in ("routing", "activation"):
            return Pass() if layer.role == "activation" else Gradient()
        return None

    def variant(self, rule, layer):
        """iNNvestigate's version of a rule (its safe division, its bias placement), with this profile's
        BatchNorm fusion."""
        translated = _translate(rule)
        if isinstance(translated, _Rule) and translated.batchnorm_defect != self.batchnorm_defect:
            fields = {f: getattr(translated, f) for f in translated.__dataclass_fields__}
            translated = type(translated)(**{**fields, "batchnorm_defect": self.batchnorm_defect})
        return translated


def _translate(rule):
    if isinstance(rule, (_Rule, InnNorm, Pass, Gradient, WinnerTakesAll)):
        return rule
    if isinstance(rule, Epsilon):
        return InnEpsilon(rule.epsilon, bias=not rule.zero_bias)
    if isinstance(rule, ZPlus):
        return InnAlphaBeta(1.0, 0.0, bias=not rule.zero_bias)
    if isinstance(rule, AlphaBeta):
        return InnAlphaBeta(rule.alpha, rule.beta, bias=not rule.zero_bias)
    if isinstance(rule, Flat):
        return InnFlat()
    if isinstance(rule, WSquare):
        return InnWSquare()
    if isinstance(rule, Norm):
        return InnNorm()
    if isinstance(rule, ZBox):
        if np.ndim(rule.low) or np.ndim(rule.high):
            raise ReflrpError("iNNvestigate's BoundedRule takes scalar bounds; ZBox has arrays")
        return InnBounded(float(rule.low), float(rule.high))
    raise ReflrpError(f"iNNvestigate 2.1.2 has no rule like {rule}; its rules are Z, Epsilon, AlphaBeta, ZPlusFast, "
                      f"WSquare, Flat and Bounded (Z_B)")


__all__ = ["AlphaBetaX2m100", "INNvestigate", "InnAlphaBeta", "InnBounded", "InnEpsilon", "InnFlat", "InnNorm",
           "InnWSquare", "InnZ", "InnZPlusFast", "PRESETS", "SafeDivide"]
