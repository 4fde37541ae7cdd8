"""iNNvestigate 2.1.2's LRP conventions (``profile="innvestigate"``), as a :class:`~reflrp.conventions.Profile`.

Read from iNNvestigate's ``relevance_rule.py``, ``relevance_analyzer.py`` and ``backend/graph.py`` and measured
against iNNvestigate itself (tests/test_peers_innvestigate.py):

- **No stabilizer but a safe division**: every rule except Epsilon divides by ``z + 1e-7 * [z == 0]`` (the
  ``stabilizer="zero"`` knob with epsilon 1e-7), so a denominator near zero blows relevance up.  Epsilon is
  ``z + eps * sign(z)`` with ``sign(0) = +1`` (iNNvestigate's default ``eps = 1e-7``; the presets use 0.1 on
  Dense layers).
- **AlphaBeta puts the whole bias into both denominators** (``bias="whole"``): ``z+ = x+ w+ + x- w- + b`` and
  ``z- = x+ w- + x- w+ + b`` (reflrp: ``b+`` with the positive side, ``b-`` with the negative).  ``lrp.z_plus`` is
  AlphaBeta(1, 0) without bias, inputs split by sign; ``lrp.z_plus_fast`` uses ``w+`` alone on unsplit inputs
  (``inputs="whole"``).
- **Flat and WSquare** neither multiply by the input nor use a bias (as reflrp's); Z_B on the input layer.
- **BatchNorm is a fused affine layer under the analyzer's rule**; the presets give it their own rule
  (iNNvestigate's AlphaBetaX2m100Rule: AlphaBeta(2, 1) on the input's positive part, ``inputs="positive"``, bias
  split).  A known defect, reproduced only on request (``INNvestigate(batchnorm_defect=True)``): 2.1.2 computes
  the fused scale as ``gamma / sqrt(var**2 + eps)`` and the shift as ``beta - mean / sqrt(var**2 + eps)``, not
  ``gamma / sqrt(var + eps)`` and ``beta - gamma * mean / sqrt(var + eps)`` (``batchnorm="squared-variance"`` on
  every rule).
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
from dataclasses import replace

import numpy as np

from reflrp import validate
from reflrp.composites import Composite
from reflrp.conventions import FirstLayers, Profile, Reading
from reflrp.errors import ReflrpError
from reflrp.layers import AVERAGE_POOLS, BATCHNORMS, CONVOLUTIONS, Add, Flatten, Linear, Permute, Reshape
from reflrp.rules import AlphaBeta, Epsilon, Flat, Gradient, Norm, Pass, WinnerTakesAll, WSquare, ZBox, ZPlus

KERNEL = (Linear, *CONVOLUTIONS)  # iNNvestigate's kernel layers (Dense, ConvND)
#: iNNvestigate's ``safe_divide``: ``z + 1e-7 * [z == 0]`` (1e-7 is Keras' ``epsilon()``)
SAFE = (("stabilizer", "zero"), ("epsilon", 1e-7))


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
        return ZBox(low, high, **dict(SAFE))
    raise ReflrpError(f"{label}: input_layer_rule must be None or (low, high), got {value!r}")


def _analyzer(name, kernel_rule, input_layer_rule, bn_rule=None, first=None, dense_rule=None):
    first = _input_rule(input_layer_rule, name) or first
    pairs = []
    if dense_rule is not None:
        pairs.append(((Linear,), dense_rule))
    pairs += [(KERNEL, kernel_rule), (BATCHNORMS, bn_rule or kernel_rule)]
    return Composite(layer_map=pairs, first=first)


def _alpha_beta_rule(alpha, beta, bias):
    """iNNvestigate's AlphaBetaRule: inputs split by sign, the whole bias in both denominators, safe division."""
    return AlphaBeta(alpha, beta, zero_bias=not bias, bias="whole", **dict(SAFE))


def _z(bias=True, input_layer_rule=None, *, graph):
    """``lrp.z`` (``bias=False``: a ZRule without bias, which 2.1.2 has as a rule but not as an analyzer)."""
    bias = validate.boolean(bias, "lrp.z: bias")
    return _analyzer("lrp.z", Epsilon(zero_bias=not bias, **dict(SAFE)), input_layer_rule)


def _epsilon(epsilon=1e-7, bias=True, input_layer_rule=None, *, graph):
    epsilon = validate.real(epsilon, "lrp.epsilon: epsilon", minimum=0.0)
    bias = validate.boolean(bias, "lrp.epsilon: bias")
    return _analyzer("lrp.epsilon", Epsilon(epsilon, zero_bias=not bias), input_layer_rule)


def _w_square(input_layer_rule=None, *, graph):
    return _analyzer("lrp.w_square", WSquare(**dict(SAFE)), input_layer_rule)


def _flat(input_layer_rule=None, *, graph):
    return _analyzer("lrp.flat", Flat(**dict(SAFE)), input_layer_rule)


def _alpha_beta(alpha=None, beta=None, bias=True, input_layer_rule=None, *, graph):
    """``lrp.alpha_beta``: give alpha or beta (or both); the other follows from ``alpha - beta = 1``."""
    if alpha is None and beta is None:
        raise ReflrpError("lrp.alpha_beta: give alpha or beta")
    alpha = validate.real(alpha, "lrp.alpha_beta: alpha") if alpha is not None else beta + 1
    beta = validate.real(beta, "lrp.alpha_beta: beta") if beta is not None else alpha - 1
    if alpha < 1 or beta < 0:
        raise ReflrpError(f"lrp.alpha_beta: needs alpha >= 1 and beta >= 0, got alpha={alpha}, beta={beta}")
    bias = validate.boolean(bias, "lrp.alpha_beta: bias")
    return _analyzer("lrp.alpha_beta", _alpha_beta_rule(float(alpha), float(beta), bias), input_layer_rule)


def _fixed_alpha_beta(alpha, beta, bias):
    def analyzer(input_layer_rule=None, *, graph):
        return _analyzer("lrp.alpha_beta", _alpha_beta_rule(alpha, beta, bias), input_layer_rule)
    return analyzer


def _z_plus_fast(input_layer_rule=None, *, graph):
    """``lrp.z_plus_fast``: ``W+`` on unsplit inputs, no bias, safe division."""
    return _analyzer("lrp.z_plus_fast", ZPlus(zero_bias=True, inputs="whole", **dict(SAFE)), input_layer_rule)


#: The presets' BatchNorm rule (iNNvestigate's AlphaBetaX2m100Rule): ``2 r_pp - r_pn`` with ``r_pp = x+ k+ r /
#: sd(x+ k+ + b+)`` and ``r_pn = x+ k- r / sd(x+ k- + b-)``.
X2M100 = AlphaBeta(2.0, 1.0, inputs="positive", **dict(SAFE))


def _preset(alpha, beta, flat):
    def analyzer(epsilon=0.1, input_layer_rule=None, *, graph):
        epsilon = validate.real(epsilon, "lrp.sequential_preset: epsilon", minimum=0.0)
        return _analyzer("lrp.sequential_preset", _alpha_beta_rule(alpha, beta, True), input_layer_rule,
                         bn_rule=X2M100, first=Flat(**dict(SAFE)) if flat else None, dense_rule=Epsilon(epsilon))
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
CLASS_NAMES = {
    "LRPZ": "lrp.z", "LRPEpsilon": "lrp.epsilon", "LRPWSquare": "lrp.w_square", "LRPFlat": "lrp.flat",
    "LRPAlphaBeta": "lrp.alpha_beta", "LRPAlpha2Beta1": "lrp.alpha_2_beta_1",
    "LRPAlpha2Beta1IgnoreBias": "lrp.alpha_2_beta_1_IB", "LRPAlpha1Beta0": "lrp.alpha_1_beta_0",
    "LRPAlpha1Beta0IgnoreBias": "lrp.alpha_1_beta_0_IB", "LRPZPlus": "lrp.z_plus", "LRPZPlusFast": "lrp.z_plus_fast",
    "LRPSequentialPresetA": "lrp.sequential_preset_a", "LRPSequentialPresetB": "lrp.sequential_preset_b",
    "LRPSequentialPresetAFlat": "lrp.sequential_preset_a_flat",
    "LRPSequentialPresetBFlat": "lrp.sequential_preset_b_flat",
}
PRESETS.update({name: PRESETS[registry] for name, registry in CLASS_NAMES.items()})


def _scalar_bounds(rule):
    """scalar bounds only"""
    if np.ndim(rule.low) or np.ndim(rule.high):
        return "it takes scalar bounds, not arrays"
    return None


INNVESTIGATE = Profile(
    name="innvestigate",
    library="iNNvestigate 2.1.2",
    first=FirstLayers(types=KERNEL, look_through=(Flatten, Reshape, Permute)),
    single_rule="weights",
    defaults=(((Add, *AVERAGE_POOLS), Norm(**dict(SAFE))), ("linear", Gradient()),
              ("selection", WinnerTakesAll("first")), ("routing", Gradient()), ("activation", Pass())),
    reads=(Reading(Epsilon, "EpsilonRule"),
           Reading(ZPlus, "AlphaBetaRule(alpha=1, beta=0)", fixed=(*SAFE, ("bias", "whole"))),
           Reading(AlphaBeta, "AlphaBetaRule", fixed=(*SAFE, ("bias", "whole"))),
           Reading(Flat, "FlatRule", fixed=SAFE),
           Reading(WSquare, "WSquareRule", fixed=SAFE),
           Reading(ZBox, "BoundedRule", fixed=SAFE, condition=_scalar_bounds),
           Reading(Norm, "ZRule (Add, average pooling)", fixed=SAFE),
           Reading(Pass, "the identity (activations)"), Reading(Gradient, "the gradient"),
           Reading(WinnerTakesAll, "the gradient (max pooling)")),
    presets=tuple(PRESETS.items()),
)


def INNvestigate(batchnorm_defect=False):
    """iNNvestigate 2.1.2's profile (module docstring).  Its analyzers are presets by their registry names
    (``"lrp.sequential_preset_a"``) and class names (``"LRPSequentialPresetA"``).

    Parameters
    ----------
    batchnorm_defect : bool
        Fuse BatchNorm with 2.1.2's formulas (``sqrt(var**2 + eps)``, the shift without gamma) instead of the
        correct ones.  Off by default: a defect is reproduced only on request.

    Returns
    -------
    Profile
    """
    if not validate.boolean(batchnorm_defect, "INNvestigate: batchnorm_defect"):
        return INNVESTIGATE
    return replace(INNVESTIGATE, batchnorm_parameters="squared-variance", options=(("batchnorm_defect", True),))


#: The settings :func:`reflrp.compat.compare` tries.
VARIANTS = (INNvestigate(), INNvestigate(batchnorm_defect=True))

__all__ = ["INNVESTIGATE", "INNvestigate", "PRESETS", "VARIANTS", "X2M100"]
