"""LRP rules: small frozen objects that choose parameters and do the elementwise work.

Every rule for an affine layer ``z = W a + b`` follows the four steps of Montavon et al. (2019),
"Layer-Wise Relevance Propagation: An Overview", in *Explainable AI*, LNCS 11700, section 10.2.2::

    z    = layer.linear([a], rho(W)) + rho(b)       # step 1: forward with modified parameters
    s    = r_out / stabilize(z)                     # step 2: elementwise
    c    = layer.adjoint(s, [a], rho(W))            # step 3: exact transpose of the bias-free map
    r_in = a * c                                    # step 4: elementwise

Rules never touch kernels and never create parameters; layers know nothing of rules.  A rule reads what a
layer can do from its capability attributes (``layer.role``, see :mod:`reflrp.layers.base`), never from its
class.  Each rule returns a :class:`~reflrp.steps.Propagation`: the input relevance and, per sample, what the
step :class:`~reflrp.steps.Absorbed` (see docs/ledger.md); :mod:`reflrp.steps` runs the four steps.  For every rule
``sum(r_out) = sum(r_in) + bias + stabilizer + dropped + gradient`` up to rounding.

Conventions (docs/conventions.md): ``stabilize(z) = z + epsilon * sign(z)`` with ``sign(0) = +1``; with
``epsilon = 0`` a zero denominator drops that unit's relevance (never NaN); ``alpha - beta = 1``.
"""

from __future__ import annotations

import numbers
from dataclasses import MISSING, dataclass, fields
from functools import partial

import numpy as np

from reflrp import steps, validate
from reflrp.errors import ReflrpError
from reflrp.steps import Absorbed, Propagation, modified_passes, modified_rule, per_sample, rows, signed_parts, z_rule

_epsilon = partial(validate.real, minimum=0.0)


def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return type(a) is type(b) and a.shape == b.shape and bool(np.array_equal(a, b))
    return type(a) is type(b) and a == b


class Rule:
    """Base class.  ``check`` refuses layers the rule does not apply to; ``propagate`` does the work.

    Subclasses are frozen dataclasses; ``_checks`` maps field names to their checks from :mod:`reflrp.validate`.
    """

    _checks: dict = {}
    _roles: tuple = ("affine",)
    _applies_to: str = "layers with weights (Linear, Conv2d, ConvTranspose2d, BatchNorm)"

    def __post_init__(self):
        for name, check in self._checks.items():
            object.__setattr__(self, name, check(getattr(self, name), f"{type(self).__name__}: {name}"))

    def __str__(self):
        """Class name and the fields that differ from their defaults: ``Epsilon(epsilon=0.0)``."""
        changed = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.default is MISSING or not _same(value, f.default):
                changed.append(f"{f.name}={value if isinstance(value, (int, float, str)) else 'array'}")
        return f"{type(self).__name__}({', '.join(changed)})" if changed else type(self).__name__

    def handles(self, role):
        """Whether the rule applies to layers of ``role`` (see :data:`reflrp.layers.ROLES`)."""
        return role in self._roles

    def check(self, layer, input_shapes, output_shape):
        """Raise :class:`ReflrpError` (without the node name; the caller adds it) if not applicable."""
        if not self.handles(layer.role):
            raise ReflrpError(f"rule {self} applies to {self._applies_to} only")

    def propagate(self, layer, inputs, output, r_out, sample=None) -> Propagation:
        """Relevance for the layer's inputs from ``r_out``, the relevance of its output.

        ``inputs`` and ``output`` hold one row per sample; ``r_out`` one row per explanation, ``sample[m]`` being
        the sample of explanation ``m`` (None: one explanation per sample, in order).  Work that depends only on
        the inputs is done once per sample (:func:`reflrp.steps.rows` spreads it to the explanations).
        """
        raise ReflrpError(f"{type(self).__name__} is not a usable rule")


@dataclass(frozen=True)
class Epsilon(Rule):
    """LRP-epsilon: ``r_in_i = sum_j a_i w_ij / stabilize(z_j) * r_j`` with ``z_j = sum_i a_i w_ij + b_j``.

    Bach et al. (2015), "On Pixel-Wise Explanations for Non-Linear Classifier Decisions by Layer-Wise Relevance
    Propagation", PLoS ONE 10(7), eq. 58.  ``epsilon=0`` is LRP-0.  On parameter-free linear layers (pooling,
    upsampling, Add) it is the z-rule with this epsilon, like :class:`Norm`.

    Parameters
    ----------
    epsilon : float
        >= 0.
    zero_bias : bool
        Compute ``z`` without the bias (the bias then absorbs nothing).
    """

    epsilon: float = 1e-6
    zero_bias: bool = False

    _checks = {"epsilon": _epsilon, "zero_bias": validate.boolean}
    _roles = ("affine", "linear")
    _applies_to = "layers with weights and to pooling, Upsample and Add"

    def propagate(self, layer, inputs, output, r_out, sample=None):
        bias = layer.affine_parameters()[1] if layer.role == "affine" else None
        if self.zero_bias or bias is None:
            z = layer.linear(inputs) if bias is not None else output
            return z_rule(layer, inputs, r_out, self.epsilon, z, sample=sample)
        return z_rule(layer, inputs, r_out, self.epsilon, output, bias, sample)


@dataclass(frozen=True)
class Norm(Rule):
    """The z-rule for parameter-free linear layers (average pooling, Upsample, Add):
    ``r_in_i = a_i * sum_j m_ij r_j / stabilize(z_j)`` with ``z = M a`` the layer's own map.

    Parameters
    ----------
    epsilon : float
        >= 0.
    """

    epsilon: float = 1e-6

    _checks = {"epsilon": _epsilon}
    _roles = ("linear",)
    _applies_to = "parameter-free linear layers (pooling, Upsample, Add)"

    def propagate(self, layer, inputs, output, r_out, sample=None):
        return z_rule(layer, inputs, r_out, self.epsilon, output, sample=sample)


@dataclass(frozen=True)
class Gradient(Rule):
    """Plain gradient: ``r_in = M^T r_out`` (the layer's adjoint applied to the relevance, no division).

    The exact, conservative routing for Flatten, Reshape, Concat, Crop, ZeroPad2d, Identity and Dropout (their
    default).  On Upsample and Add it reproduces libraries that push relevance through those layers as a
    gradient: Add then duplicates relevance, which the ledger shows in its ``gradient`` column (negative:
    injected).  Relevance that the adjoint loses at zero-padded positions is ``dropped``.
    """

    _roles = ("linear", "routing")
    _applies_to = "parameter-free linear layers"

    def propagate(self, layer, inputs, output, r_out, sample=None):
        r_in = layer.adjoint(r_out, inputs)
        n = len(r_out)
        if layer.role == "routing":  # exact routing: only positions the layer created lose relevance
            lost = layer.lost(r_out)
            dropped = np.zeros(n) if lost is None else per_sample(lost)
            return Propagation(r_in, Absorbed.nothing(n)._replace(dropped=dropped))
        created = per_sample(r_out) - sum(per_sample(r) for r in r_in)
        return Propagation(r_in, Absorbed.nothing(n)._replace(gradient=created))


@dataclass(frozen=True)
class Pass(Rule):
    """Identity: ``r_in = r_out``.  The default for activations; allowed on any single-input layer whose output
    has its input's shape (BatchNorm, Identity, Dropout)."""

    def check(self, layer, input_shapes, output_shape):
        if len(input_shapes) != 1 or tuple(input_shapes[0]) != tuple(output_shape):
            raise ReflrpError(f"rule {self} needs a single-input layer whose output has its input's shape")

    def propagate(self, layer, inputs, output, r_out, sample=None):
        return Propagation([r_out], Absorbed.nothing(len(r_out)))


@dataclass(frozen=True)
class WinnerTakesAll(Rule):
    """Max pooling: each window's relevance goes to its maximum.

    Parameters
    ----------
    ties : "first" or "split"
        "first" (default): to the first maximum in row-major window order.  "split": evenly among all
        positions equal to the maximum.
    """

    ties: str = "first"

    _checks = {"ties": partial(validate.choice, options=("first", "split"))}
    _roles = ("selection",)
    _applies_to = "MaxPool2d"

    def propagate(self, layer, inputs, output, r_out, sample=None):
        route = layer.adjoint if self.ties == "first" else layer.adjoint_split_ties
        return Propagation(route(r_out, [rows(a, sample) for a in inputs]), Absorbed.nothing(len(r_out)))


def _alpha_beta(layer, a, r_out, alpha, beta, epsilon, zero_bias, sample):
    """Shared body of :class:`AlphaBeta` and :class:`ZPlus`: each side is the four steps on the contributions
    of its sign (``a+ w+`` and ``a- w-`` are positive, ``a+ w-`` and ``a- w+`` negative)."""
    weight, bias = layer.affine_parameters()
    a_pos, a_neg = signed_parts(a)
    w_pos, w_neg = signed_parts(weight)
    b_pos, b_neg = (None, None) if (zero_bias or bias is None) else signed_parts(bias)
    sides = [side for side in ((alpha, 1.0, w_pos, w_neg, b_pos), (beta, -1.0, w_neg, w_pos, b_neg)) if side[0] != 0]
    # the sides at once: after a ReLU both multiply the same a+ (r_out * 1.0 is r_out, so factor 1 is not applied)
    done = modified_passes(layer, a, [(r_out if factor == 1 else r_out * factor, [(a_pos, w_a_pos), (a_neg, w_a_neg)],
                                       b_side) for factor, _, w_a_pos, w_a_neg, b_side in sides], epsilon, sample)
    absorbed = Absorbed.nothing(len(r_out))
    if len(done) == 1:  # z+: its relevance as it is (its zeros are +0, as 0 + r_in would make them)
        return Propagation([done[0].r_in], absorbed.plus(done[0].absorbed))
    r_in = np.zeros((len(r_out), *a.shape[1:]), dtype=a.dtype)
    for (_, sign, *_), step in zip(sides, done):
        r_in += sign * step.r_in
        absorbed = absorbed.plus(step.absorbed, sign)
    return Propagation([r_in], absorbed)


def _alpha_beta_checks(rule):
    # alpha - beta = 1 up to rounding: 2.3 - 1.3 is 0.9999999999999998 in binary floating point; at alpha beyond
    # ~1e13 the difference of two doubles cannot resolve 1 to this tolerance and such pairs are refused
    if abs(rule.alpha - rule.beta - 1) > 1e-12:
        raise ReflrpError(f"{type(rule).__name__}: alpha - beta must be 1, got alpha={rule.alpha}, beta={rule.beta}")


_non_negative = partial(validate.real, minimum=0.0)


@dataclass(frozen=True)
class AlphaBeta(Rule):
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
    """

    alpha: float = 2.0
    beta: float = 1.0
    epsilon: float = 1e-6
    zero_bias: bool = False

    _checks = {"alpha": _non_negative, "beta": _non_negative, "epsilon": _epsilon, "zero_bias": validate.boolean}

    def __post_init__(self):
        super().__post_init__()
        _alpha_beta_checks(self)

    def propagate(self, layer, inputs, output, r_out, sample=None):
        return _alpha_beta(layer, inputs[0], r_out, self.alpha, self.beta, self.epsilon, self.zero_bias, sample)


@dataclass(frozen=True)
class ZPlus(Rule):
    """LRP-z+: :class:`AlphaBeta` with ``alpha=1, beta=0``; only positive contributions (and ``b^+``) count.

    Montavon et al. (2017), Pattern Recognition 65, eq. (z+-rule).

    Parameters
    ----------
    epsilon : float
    zero_bias : bool
    """

    epsilon: float = 1e-6
    zero_bias: bool = False

    _checks = {"epsilon": _epsilon, "zero_bias": validate.boolean}

    def propagate(self, layer, inputs, output, r_out, sample=None):
        return _alpha_beta(layer, inputs[0], r_out, 1.0, 0.0, self.epsilon, self.zero_bias, sample)


@dataclass(frozen=True)
class Gamma(Rule):
    """LRP-gamma, generalised to signed inputs: contributions that agree in sign with the unit are amplified.

    For a unit with ``z_j > 0``: ``rho(a_i w_ij) = a_i w_ij + gamma (a_i w_ij)^+`` and ``rho(b_j) = b_j +
    gamma b_j^+``; for ``z_j < 0``: ``rho(a_i w_ij) = a_i w_ij + gamma (a_i w_ij)^-`` and ``rho(b_j) = b_j +
    gamma b_j^-``.  Then ``r_in_i = sum_j rho(a_i w_ij) / stabilize(sum_i' rho(a_i' w_i'j) + rho(b_j)) r_j``.
    Units with ``z_j = 0`` pass nothing (dropped).  ``z_j`` is the layer's output (without the bias when
    ``zero_bias``).  In weights: a positive input uses ``w + gamma w^+`` where ``z_j > 0`` and ``w + gamma w^-``
    where ``z_j < 0``; a negative input the other one.  For non-negative inputs this is the rule as published.

    Montavon et al. (2019), "Layer-Wise Relevance Propagation: An Overview", LNCS 11700, eq. (LRP-gamma), for
    non-negative inputs; Andeol et al. (2021), "Learning Domain Invariant Representations by Joint Wasserstein
    Distance Minimization", and Zennit's ``Gamma`` for signed inputs.

    Parameters
    ----------
    gamma : float
        >= 0; 0 is LRP-epsilon.
    epsilon : float
    zero_bias : bool
    """

    gamma: float = 0.25
    epsilon: float = 1e-6
    zero_bias: bool = False

    _checks = {"gamma": _non_negative, "epsilon": _epsilon, "zero_bias": validate.boolean}

    def propagate(self, layer, inputs, output, r_out, sample=None):
        (a,) = inputs
        weight, bias = layer.affine_parameters()
        if self.zero_bias or bias is None:
            bias = None
            z = layer.linear(inputs)
        else:
            z = output
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
        for step in modified_passes(layer, a, sides, self.epsilon, sample):
            r_in += step.r_in
            absorbed = absorbed.plus(step.absorbed)
        return Propagation([r_in], absorbed)


def _bound(value, label):
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


@dataclass(frozen=True, eq=False)
class ZBox(Rule):
    """LRP-z^B for inputs bounded by ``low <= a <= high`` (usually the first layer).

    ``z_j = sum_i (a_i w_ij - low_i w_ij^+ - high_i w_ij^-)`` and
    ``r_in_i = sum_j (a_i w_ij - low_i w_ij^+ - high_i w_ij^-) / stabilize(z_j) r_j``.  Bias-free by
    construction: the bias terms of the three products cancel, so the bias absorbs nothing.

    Montavon et al. (2017), "Explaining nonlinear classification decisions with deep Taylor decomposition",
    Pattern Recognition 65, section 4.3.

    Parameters
    ----------
    low, high : float or ndarray
        Scalars, or arrays broadcastable to one sample's input shape (a leading batch axis of 1 is allowed);
        ``low <= high`` everywhere.
    epsilon : float
    """

    low: object
    high: object
    epsilon: float = 1e-6

    _checks = {"low": _bound, "high": _bound, "epsilon": _epsilon}

    def __post_init__(self):
        super().__post_init__()
        try:
            ordered = bool(np.all(np.asarray(self.low) <= np.asarray(self.high)))
        except ValueError as error:
            raise ReflrpError(f"ZBox: low and high do not broadcast together: {error}") from None
        if not ordered:
            raise ReflrpError("ZBox: low must be <= high everywhere")

    def __eq__(self, other):
        if type(other) is not ZBox:
            return NotImplemented
        return all(_same(getattr(self, f), getattr(other, f)) for f in ("low", "high", "epsilon"))

    def __hash__(self):
        def key(v):
            return (v.shape, v.tobytes()) if isinstance(v, np.ndarray) else v

        return hash((key(self.low), key(self.high), self.epsilon))

    def __repr__(self):
        def show(v):
            return repr(v) if isinstance(v, float) else f"array{v.shape}"

        return f"ZBox(low={show(self.low)}, high={show(self.high)}, epsilon={self.epsilon})"

    def check(self, layer, input_shapes, output_shape):
        super().check(layer, input_shapes, output_shape)
        sample = tuple(input_shapes[0])
        for name in ("low", "high"):
            value = np.asarray(getattr(self, name))
            shape = value.shape[1:] if value.ndim == len(sample) + 1 and value.shape[0] == 1 else value.shape
            try:
                ok = np.broadcast_shapes(shape, sample) == sample
            except ValueError:
                ok = False
            if not ok:
                raise ReflrpError(f"ZBox: {name} of shape {value.shape} does not broadcast to the input {sample}")

    def propagate(self, layer, inputs, output, r_out, sample=None):
        (a,) = inputs
        weight, _ = layer.affine_parameters()
        # a zero bound's term would be skipped by modified_rule: it is not built, nor its half of the weight
        halves = ((self.low, steps.positive_part), (self.high, steps.negative_part))
        terms = [(a, weight)] + [(-_expand(bound, a), half(weight)) for bound, half in halves if np.any(bound)]
        step = modified_rule(layer, a, r_out, self.epsilon, terms, sample=sample)
        return Propagation([step.r_in], step.absorbed)


def _expand(bound, a):
    """A bound as a C-contiguous array shaped like ``a``."""
    value = np.asarray(bound, dtype=a.dtype)
    if value.ndim == a.ndim:
        value = value[0]
    return np.ascontiguousarray(np.broadcast_to(value, a.shape))


def _weights_only(layer, a, r_out, rho_w, epsilon, sample):
    """The four steps with every input set to 1 and the weight replaced: Flat and WSquare."""
    step = modified_rule(layer, a, r_out, epsilon, [(np.ones_like(a), rho_w)], sample=sample)
    return Propagation([step.r_in], step.absorbed)


@dataclass(frozen=True)
class Flat(Rule):
    """LRP-flat: relevance spread evenly over each output's in-bounds inputs, ignoring weights and inputs.

    ``r_in_i = sum_j 1[i in window(j)] / stabilize(n_j) r_j`` with ``n_j`` the number of in-bounds inputs of
    unit ``j`` (zero padding excluded).  No bias.  Lapuschkin et al. (2019), "Unmasking Clever Hans predictors
    and assessing what machines really learn", Nature Communications 10, 1096.

    Parameters
    ----------
    epsilon : float
    """

    epsilon: float = 1e-6

    _checks = {"epsilon": _epsilon}

    def propagate(self, layer, inputs, output, r_out, sample=None):
        weight, _ = layer.affine_parameters()
        return _weights_only(layer, inputs[0], r_out, np.ones_like(weight), self.epsilon, sample)


@dataclass(frozen=True)
class WSquare(Rule):
    """LRP-w^2: ``r_in_i = sum_j w_ij^2 / stabilize(sum_i' w_i'j^2) r_j`` over in-bounds inputs; no bias.

    Montavon et al. (2017), Pattern Recognition 65, section 4.1 (w^2-rule).

    Parameters
    ----------
    epsilon : float
    """

    epsilon: float = 1e-6

    _checks = {"epsilon": _epsilon}

    def propagate(self, layer, inputs, output, r_out, sample=None):
        weight, _ = layer.affine_parameters()
        return _weights_only(layer, inputs[0], r_out, weight * weight, self.epsilon, sample)


__all__ = [
    "Absorbed",
    "AlphaBeta",
    "Epsilon",
    "Flat",
    "Gamma",
    "Gradient",
    "Norm",
    "Pass",
    "Propagation",
    "Rule",
    "WSquare",
    "WinnerTakesAll",
    "ZBox",
    "ZPlus",
]
