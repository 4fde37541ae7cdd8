"""What every rule shares: the base class, the knobs and their checks, and how a rule reads a layer's parameters.

A rule is a frozen dataclass whose fields are its parameters.  Besides the parameters of its formula (``epsilon``,
``gamma``, ``alpha`` ...) a rule has *knobs*: fields that choose between the conventions implementations follow
where the publications leave a choice (docs/rules.md, "Knobs").  Every knob has one meaning for every rule that has
it, and its default is reflrp's convention:

``stabilizer``
    ``"sign"``: divide by ``z + epsilon * sign(z)`` with ``sign(0) = +1``; ``"zero"``: by ``z + epsilon * [z == 0]``
    (:mod:`reflrp.stabilize`).
``inputs``
    How sign-splitting rules treat the layer's input ``a``: ``"signed"`` splits it into ``a+`` and ``a-``, each
    with the weights that make a contribution of the side's sign; ``"positive"`` keeps only ``a+``; ``"whole"``
    uses ``a`` unsplit with the side's weights.
``bias``
    Where a two-sided rule puts the bias: ``"split"``, ``b+`` into the positive side and ``b-`` into the negative
    one; ``"whole"``, all of ``b`` into both.
``batchnorm``
    How a rule reads a BatchNorm's parameters: ``"fused"``, its affine map ``(scale, shift)``, which the rule
    modifies like any weight; ``"module"``, the rule modifies BatchNorm's own weight ``gamma`` and the map
    follows (``scale' = rho(gamma) / sqrt(var + eps)``, ``shift' = beta - mean * scale'``, ``zero_bias`` zeroing
    ``beta``; a BatchNorm without ``gamma`` has nothing to modify); ``"squared-variance"``, the map ``gamma /
    sqrt(var**2 + eps)`` and ``beta - mean / sqrt(var**2 + eps)`` (a published implementation's defect, reproduced
    on request).
"""

from __future__ import annotations

import numbers
from dataclasses import MISSING, fields
from functools import partial

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.stabilize import STABILIZERS, Stabilizer

INPUTS = ("signed", "positive", "whole")
BIASES = ("split", "whole")
BATCHNORMS = ("fused", "module", "squared-variance")

non_negative = partial(validate.real, minimum=0.0)


def epsilon(default=1e-6):
    """The ``epsilon`` field: >= 0."""
    return validate.field(non_negative, default)


def zero_bias():
    """The ``zero_bias`` field: compute ``z`` without the bias."""
    return validate.field(validate.boolean, False)


def stabilizer():
    """The ``stabilizer`` knob (a keyword argument, as every knob)."""
    return validate.field(validate.one_of(*STABILIZERS), "sign", kw_only=True)


def inputs(*options):
    """The ``inputs`` knob (``options``: the values the rule has, default first)."""
    return validate.field(validate.one_of(*(options or INPUTS)), "signed", kw_only=True)


def bias():
    """The ``bias`` knob."""
    return validate.field(validate.one_of(*BIASES), "split", kw_only=True)


def batchnorm():
    """The ``batchnorm`` knob."""
    return validate.field(validate.one_of(*BATCHNORMS), "fused", kw_only=True)


def same(a, b):
    """Equal values of one type (arrays by shape and content)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return type(a) is type(b) and a.shape == b.shape and bool(np.array_equal(a, b))
    return type(a) is type(b) and a == b


class Rule:
    """Base class.  ``check`` refuses layers the rule does not apply to; ``propagate`` does the work.

    Subclasses are frozen dataclasses whose fields are declared with :func:`reflrp.validate.field` (the shared
    ones with :func:`epsilon`, :func:`stabilizer`, ...) and checked on construction.
    """

    _roles: tuple = ("affine",)
    _applies_to: str = "layers with weights (Linear, Conv2d, ConvTranspose2d, BatchNorm)"

    def __post_init__(self):
        validate.check_fields(self)

    def __str__(self):
        """Class name and the fields that differ from their defaults, the formula's parameters before the knobs:
        ``Epsilon(epsilon=0.0)``, ``ZPlus(epsilon=1e-09, inputs=whole)``."""
        changed = []
        for f in sorted(fields(self), key=lambda f: f.kw_only is True):
            value = getattr(self, f.name)
            if f.default is MISSING or not same(value, f.default):
                changed.append(f"{f.name}={value if isinstance(value, (int, float, str)) else 'array'}")
        return f"{type(self).__name__}({', '.join(changed)})" if changed else type(self).__name__

    def handles(self, role):
        """Whether the rule applies to layers of ``role`` (see :data:`reflrp.layers.ROLES`)."""
        return role in self._roles

    def check(self, layer, input_shapes, output_shape):
        """Raise :class:`ReflrpError` (without the node name; the caller adds it) if not applicable."""
        if not self.handles(layer.role):
            raise ReflrpError(f"rule {self} applies to {self._applies_to} only")

    def positional(self, input_shapes):
        """True when the rule holds values tied to positions of the layer's input (a ZBox bound per pixel): the
        receptive cone (:mod:`reflrp.cone`) then computes that layer whole."""
        return False

    def propagate(self, layer, inputs, output, r_out, sample=None):
        """Relevance for the layer's inputs from ``r_out``, the relevance of its output.

        ``inputs`` and ``output`` hold one row per sample; ``r_out`` one row per explanation, ``sample[m]`` being
        the sample of explanation ``m`` (None: one explanation per sample, in order).  Work that depends only on
        the inputs is done once per sample (:func:`reflrp.steps.rows` spreads it to the explanations).
        """
        raise ReflrpError(f"{type(self).__name__} is not a usable rule")

    def stabilizing(self):
        """The rule's :class:`~reflrp.stabilize.Stabilizer` (its ``epsilon`` and ``stabilizer`` knob)."""
        return Stabilizer(self.epsilon, getattr(self, "stabilizer", "sign"))


def parameters(layer, batchnorm="fused", rho=None, zero_bias=False):
    """``(weight, bias)`` a rule computes with on ``layer``: ``rho(W)`` (``W`` when ``rho`` is None) and the bias
    (None with ``zero_bias`` or when the layer has none), BatchNorm read as the ``batchnorm`` knob says (module
    docstring)."""
    if not layer.normalizes or batchnorm == "fused":
        weight, bias = layer.affine_parameters()
        return (weight if rho is None else rho(weight)), (None if zero_bias else bias)
    if batchnorm == "module":  # a BatchNorm without a weight has none to modify
        gamma = None if (layer.weight is None or rho is None) else rho(layer.weight)
        beta = np.zeros_like(layer.running_mean) if (layer.bias is None or zero_bias) else None
        return layer.fused(gamma, beta)
    # "squared-variance": not a fusion but a defect's formulas, written out as the defect computes them
    sigma = np.sqrt(layer.running_var ** 2 + layer.eps)
    scale = layer.fused(variance=layer.running_var ** 2)[0]
    beta = np.zeros_like(sigma) if layer.bias is None else layer.bias
    shift = beta - layer.running_mean / sigma
    return (scale if rho is None else rho(scale)), (None if zero_bias else shift)


def check_alpha_beta(rule):
    """``alpha - beta = 1`` up to rounding: 2.3 - 1.3 is 0.9999999999999998 in binary floating point; at alpha
    beyond ~1e13 the difference of two doubles cannot resolve 1 to this tolerance and such pairs are refused."""
    if abs(rule.alpha - rule.beta - 1) > 1e-12:
        raise ReflrpError(f"{type(rule).__name__}: alpha - beta must be 1, got alpha={rule.alpha}, beta={rule.beta}")


def bound(value, label):
    """A ZBox bound: a finite number, or a numeric array copied to read-only float64."""
    if isinstance(value, (numbers.Real, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        return validate.real(value, label)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise ReflrpError(f"{label} must be a number or a numeric array, got {type(value).__name__}")
    if not np.all(np.isfinite(value)):
        raise ReflrpError(f"{label} contains NaN or Inf")
    copy = np.array(value, dtype=np.float64, copy=True)
    copy.flags.writeable = False
    return copy


__all__ = ["BATCHNORMS", "BIASES", "INPUTS", "Rule", "batchnorm", "bias", "bound", "check_alpha_beta", "epsilon",
           "inputs", "non_negative", "parameters", "same", "stabilizer", "zero_bias"]
