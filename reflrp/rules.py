"""LRP rules: small frozen objects that choose parameters and do the elementwise work.

Every rule for an affine layer ``z = W a + b`` follows the four steps of Montavon et al. (2019),
"Layer-Wise Relevance Propagation: An Overview", in *Explainable AI*, LNCS 11700, section 10.2.2::

    z    = layer.linear(a, rho(W)) + rho(b)       # step 1: forward with modified parameters
    s    = r_out / stabilize(z)                   # step 2: elementwise
    c    = layer.adjoint(s, rho(W))               # step 3: exact transpose of the bias-free map
    r_in = a * c                                  # step 4: elementwise

Rules never touch kernels and never create parameters; layers know nothing of rules.  Each rule returns a
:class:`Propagation`: the input relevance and, per sample, what the step absorbed, split into
``bias``, ``stabilizer``, ``dropped`` and ``gradient`` (see docs/ledger.md).  For every rule
``sum(r_out) = sum(r_in) + bias + stabilizer + dropped + gradient`` up to rounding.

Conventions (docs/conventions.md): ``stabilize(z) = z + epsilon * sign(z)`` with ``sign(0) = +1``; with
``epsilon = 0`` a zero denominator drops that unit's relevance (never NaN); ``alpha - beta = 1``.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from typing import NamedTuple

import numpy as np

from reflrp.errors import ReflrpError
from reflrp.layers import AffineLayer, Layer, LinearOp, MaxPool2d, Routing
from reflrp.stabilize import divide, stabilize


class Propagation(NamedTuple):
    """What one rule did at one layer.

    Attributes
    ----------
    r_in : list of ndarray
        Relevance for each input of the layer, shaped like that input.
    bias, stabilizer, dropped, gradient : ndarray of shape (N,), float64
        Relevance absorbed (negative: injected) by the bias, by the stabilizer, dropped at units with a zero
        denominator (or with nothing on one AlphaBeta side, or at padding), and created or destroyed by a
        non-conservative plain-gradient step.
    """

    r_in: list
    bias: np.ndarray
    stabilizer: np.ndarray
    dropped: np.ndarray
    gradient: np.ndarray


def per_sample(x):
    """Sum over all axes but the first, in float64, in a fixed order."""
    return np.sum(x.reshape(x.shape[0], -1), axis=1, dtype=np.float64)


def _zeros(n):
    return np.zeros(n, dtype=np.float64)


def _check_epsilon(rule, epsilon):
    if not (isinstance(epsilon, (int, float)) and not isinstance(epsilon, bool)):
        raise ReflrpError(f"{rule}: epsilon must be a number, got {epsilon!r}")
    if not (math.isfinite(epsilon) and epsilon >= 0):
        raise ReflrpError(f"{rule}: epsilon must be finite and >= 0, got {epsilon!r}")


def _check_bool(rule, name, value):
    if not isinstance(value, bool):
        raise ReflrpError(f"{rule}: {name} must be True or False, got {value!r}")


def _same(a, b):
    return type(a) is type(b) and a == b


def _parts(x):
    return np.maximum(x, 0), np.minimum(x, 0)


class Rule:
    """Base class.  ``check`` refuses layers the rule does not apply to; ``propagate`` does the work."""

    def __str__(self):
        """Class name and the fields that differ from their defaults: ``Epsilon(epsilon=0.0)``."""
        changed = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.default is MISSING or not _same(value, f.default):
                changed.append(f"{f.name}={value if isinstance(value, (int, float, str)) else 'array'}")
        return f"{type(self).__name__}({', '.join(changed)})" if changed else type(self).__name__

    def check(self, layer: Layer, input_shapes, output_shape):
        """Raise :class:`ReflrpError` (without the node name; the caller adds it) if not applicable."""
        if not isinstance(layer, AffineLayer):
            raise ReflrpError(f"rule {self} applies to Linear, Conv2d, ConvTranspose2d and BatchNorm layers only")

    def propagate(self, layer, inputs, output, r_out) -> Propagation:
        raise NotImplementedError


def _stabilizer_part(r, dropped, s, z, epsilon):
    """What the stabilizer absorbed: ``sum(r - dropped - s * z)``; exactly 0 when ``epsilon`` is 0."""
    if epsilon == 0:
        return _zeros(len(r))
    return per_sample(r - dropped - s * z)


def _affine_step(layer, a, r_out, epsilon, weight, bias, z=None):
    """The four steps for one (weight, bias) pair; ``z`` may be passed when it is already known."""
    if z is None:
        z = layer.linear(a, weight)
        if bias is not None:
            z = z + layer.expand_bias(bias, z.ndim)
    s, dropped = divide(r_out, stabilize(z, epsilon))
    c = layer.adjoint(s, weight, a.shape)
    bias_part = _zeros(len(a)) if bias is None else per_sample(s * layer.expand_bias(bias, z.ndim))
    return a * c, bias_part, _stabilizer_part(r_out, dropped, s, z, epsilon), per_sample(dropped)


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

    def __post_init__(self):
        _check_epsilon("Epsilon", self.epsilon)
        _check_bool("Epsilon", "zero_bias", self.zero_bias)

    def check(self, layer, input_shapes, output_shape):
        if isinstance(layer, Routing) or not isinstance(layer, (AffineLayer, LinearOp)):
            raise ReflrpError(f"rule {self} applies to layers with weights and to pooling, Upsample and Add only")

    def propagate(self, layer, inputs, output, r_out):
        if isinstance(layer, LinearOp):
            return _z_rule(layer, inputs, output, r_out, self.epsilon)
        (a,) = inputs
        weight, bias = layer.affine_parameters()
        if self.zero_bias or bias is None:
            r_in, b, st, dr = _affine_step(layer, a, r_out, self.epsilon, weight, None)
        else:
            r_in, b, st, dr = _affine_step(layer, a, r_out, self.epsilon, weight, bias, z=output)
        return Propagation([r_in], b, st, dr, _zeros(len(a)))


def _z_rule(layer, inputs, output, r_out, epsilon):
    s, dropped = divide(r_out, stabilize(output, epsilon))
    cs = layer.adjoint(s, [a.shape for a in inputs])
    n = len(output)
    return Propagation(
        [a * c for a, c in zip(inputs, cs)],
        _zeros(n),
        _stabilizer_part(r_out, dropped, s, output, epsilon),
        per_sample(dropped),
        _zeros(n),
    )


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

    def __post_init__(self):
        _check_epsilon("Norm", self.epsilon)

    def check(self, layer, input_shapes, output_shape):
        if isinstance(layer, Routing) or not isinstance(layer, LinearOp):
            raise ReflrpError(f"rule {self} applies to parameter-free linear layers (pooling, Upsample, Add)")

    def propagate(self, layer, inputs, output, r_out):
        return _z_rule(layer, inputs, output, r_out, self.epsilon)


@dataclass(frozen=True)
class Gradient(Rule):
    """Plain gradient: ``r_in = M^T r_out`` (the layer's adjoint applied to the relevance, no division).

    The exact, conservative routing for Flatten, Reshape, Concat, Crop, ZeroPad2d, Identity and Dropout (their
    default).  On Upsample and Add it reproduces libraries that push relevance through those layers as a
    gradient: Add then duplicates relevance, which the ledger shows in its ``gradient`` column (negative:
    injected).  Relevance that the adjoint loses at zero-padded positions is ``dropped``.
    """

    def check(self, layer, input_shapes, output_shape):
        if not isinstance(layer, LinearOp):
            raise ReflrpError(f"rule {self} applies to parameter-free linear layers only")

    def propagate(self, layer, inputs, output, r_out):
        r_in = layer.adjoint(r_out, [a.shape for a in inputs])
        n = len(output)
        if isinstance(layer, Routing):  # exact routing: only positions the layer created lose relevance
            lost = layer.lost(r_out)
            dropped = _zeros(n) if lost is None else per_sample(lost)
            return Propagation(r_in, _zeros(n), _zeros(n), dropped, _zeros(n))
        created = per_sample(r_out) - sum(per_sample(r) for r in r_in)
        return Propagation(r_in, _zeros(n), _zeros(n), _zeros(n), created)


@dataclass(frozen=True)
class Pass(Rule):
    """Identity: ``r_in = r_out``.  The default for activations; allowed on any single-input layer whose output
    has its input's shape (BatchNorm, Identity, Dropout)."""

    def check(self, layer, input_shapes, output_shape):
        if len(input_shapes) != 1 or tuple(input_shapes[0]) != tuple(output_shape):
            raise ReflrpError(f"rule {self} needs a single-input layer whose output has its input's shape")

    def propagate(self, layer, inputs, output, r_out):
        n = len(output)
        return Propagation([r_out], _zeros(n), _zeros(n), _zeros(n), _zeros(n))


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

    def __post_init__(self):
        if self.ties not in ("first", "split"):
            raise ReflrpError(f"WinnerTakesAll: ties must be 'first' or 'split', got {self.ties!r}")

    def check(self, layer, input_shapes, output_shape):
        if not isinstance(layer, MaxPool2d):
            raise ReflrpError(f"rule {self} applies to MaxPool2d only")

    def propagate(self, layer, inputs, output, r_out):
        (a,) = inputs
        r_in = layer.route(r_out, a, self.ties == "split")
        n = len(a)
        return Propagation([r_in], _zeros(n), _zeros(n), _zeros(n), _zeros(n))


def _alpha_beta(layer, a, r_out, alpha, beta, epsilon, zero_bias):
    """Shared body of :class:`AlphaBeta` and :class:`ZPlus`."""
    weight, bias = layer.affine_parameters()
    a_pos, a_neg = _parts(a)
    w_pos, w_neg = _parts(weight)
    b_pos, b_neg = (None, None) if (zero_bias or bias is None) else _parts(bias)
    n = len(a)
    r_in = np.zeros_like(a)
    bias_part, stab_part, dropped_part = _zeros(n), _zeros(n), _zeros(n)
    # positive side: contributions a_i w_ij > 0, i.e. a+ w+ and a- w-; negative side: a+ w- and a- w+
    sides = ((alpha, 1.0, w_pos, w_neg, b_pos), (beta, -1.0, w_neg, w_pos, b_neg))
    for factor, sign, w_for_pos_a, w_for_neg_a, b_side in sides:
        if factor == 0:
            continue
        z = layer.linear(a_pos, w_for_pos_a) + layer.linear(a_neg, w_for_neg_a)
        if b_side is not None:
            z = z + layer.expand_bias(b_side, z.ndim)
        r_side = r_out * factor
        s, dropped = divide(r_side, stabilize(z, epsilon))
        c_pos = layer.adjoint(s, w_for_pos_a, a.shape)
        c_neg = layer.adjoint(s, w_for_neg_a, a.shape)
        r_in += sign * (a_pos * c_pos + a_neg * c_neg)
        if b_side is not None:
            bias_part += sign * per_sample(s * layer.expand_bias(b_side, z.ndim))
        stab_part += sign * _stabilizer_part(r_side, dropped, s, z, epsilon)
        dropped_part += sign * per_sample(dropped)
    return Propagation([r_in], bias_part, stab_part, dropped_part, _zeros(n))


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

    def __post_init__(self):
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ReflrpError(f"AlphaBeta: {name} must be a finite number, got {value!r}")
            if value < 0:
                raise ReflrpError(f"AlphaBeta: {name} must be >= 0, got {value!r}")
        if self.alpha - self.beta != 1:
            raise ReflrpError(f"AlphaBeta: alpha - beta must be 1, got alpha={self.alpha}, beta={self.beta}")
        _check_epsilon("AlphaBeta", self.epsilon)
        _check_bool("AlphaBeta", "zero_bias", self.zero_bias)

    def propagate(self, layer, inputs, output, r_out):
        return _alpha_beta(layer, inputs[0], r_out, self.alpha, self.beta, self.epsilon, self.zero_bias)


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

    def __post_init__(self):
        _check_epsilon("ZPlus", self.epsilon)
        _check_bool("ZPlus", "zero_bias", self.zero_bias)

    def propagate(self, layer, inputs, output, r_out):
        return _alpha_beta(layer, inputs[0], r_out, 1.0, 0.0, self.epsilon, self.zero_bias)


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

    def __post_init__(self):
        if isinstance(self.gamma, bool) or not isinstance(self.gamma, (int, float)):
            raise ReflrpError(f"Gamma: gamma must be a number, got {self.gamma!r}")
        if not (math.isfinite(self.gamma) and self.gamma >= 0):
            raise ReflrpError(f"Gamma: gamma must be finite and >= 0, got {self.gamma!r}")
        _check_epsilon("Gamma", self.epsilon)
        _check_bool("Gamma", "zero_bias", self.zero_bias)

    def propagate(self, layer, inputs, output, r_out):
        (a,) = inputs
        weight, bias = layer.affine_parameters()
        if self.zero_bias or bias is None:
            bias = None
            z = layer.linear(a, weight)
        else:
            z = output
        n = len(a)
        a_pos, a_neg = _parts(a)
        w_pos, w_neg = _parts(weight)
        w_up, w_down = weight + self.gamma * w_pos, weight + self.gamma * w_neg
        b_up = b_down = None
        if bias is not None:
            b_pos, b_neg = _parts(bias)
            b_up, b_down = bias + self.gamma * b_pos, bias + self.gamma * b_neg
        r_in = np.zeros_like(a)
        dropped_part = per_sample(np.where(z == 0, r_out, 0))
        bias_part, stab_part = _zeros(n), _zeros(n)
        # (units, weight for positive inputs, weight for negative inputs, modified bias)
        sides = ((z > 0, w_up, w_down, b_up), (z < 0, w_down, w_up, b_down))
        for mask, w_for_pos_a, w_for_neg_a, rho_b in sides:
            r_side = np.where(mask, r_out, 0)
            rho_z = layer.linear(a_pos, w_for_pos_a) + layer.linear(a_neg, w_for_neg_a)
            if rho_b is not None:
                rho_z = rho_z + layer.expand_bias(rho_b, rho_z.ndim)
            s, dropped = divide(r_side, stabilize(rho_z, self.epsilon))
            r_in += a_pos * layer.adjoint(s, w_for_pos_a, a.shape) + a_neg * layer.adjoint(s, w_for_neg_a, a.shape)
            if rho_b is not None:
                bias_part += per_sample(s * layer.expand_bias(rho_b, rho_z.ndim))
            stab_part += _stabilizer_part(r_side, dropped, s, rho_z, self.epsilon)
            dropped_part += per_sample(dropped)
        return Propagation([r_in], bias_part, stab_part, dropped_part, _zeros(n))


def _bound(value, name):
    if isinstance(value, bool):
        raise ReflrpError(f"ZBox: {name} must be a number or an array, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ReflrpError(f"ZBox: {name} must be finite, got {value!r}")
        return float(value)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise ReflrpError(f"ZBox: {name} must be a number or a numeric array, got {type(value).__name__}")
    if not np.all(np.isfinite(value)):
        raise ReflrpError(f"ZBox: {name} contains NaN or Inf")
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

    def __post_init__(self):
        low, high = _bound(self.low, "low"), _bound(self.high, "high")
        try:
            ok = bool(np.all(np.asarray(low) <= np.asarray(high)))
        except ValueError as error:
            raise ReflrpError(f"ZBox: low and high do not broadcast together: {error}") from None
        if not ok:
            raise ReflrpError("ZBox: low must be <= high everywhere")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        _check_epsilon("ZBox", self.epsilon)

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

    def propagate(self, layer, inputs, output, r_out):
        (a,) = inputs
        weight, _ = layer.affine_parameters()
        w_pos, w_neg = _parts(weight)
        low = _expand(self.low, a)
        high = _expand(self.high, a)
        z = layer.linear(a, weight) - layer.linear(low, w_pos) - layer.linear(high, w_neg)
        s, dropped = divide(r_out, stabilize(z, self.epsilon))
        r_in = a * layer.adjoint(s, weight, a.shape) - low * layer.adjoint(s, w_pos, a.shape)
        r_in -= high * layer.adjoint(s, w_neg, a.shape)
        n = len(a)
        stab_part = _stabilizer_part(r_out, dropped, s, z, self.epsilon)
        return Propagation([r_in], _zeros(n), stab_part, per_sample(dropped), _zeros(n))


def _expand(bound, a):
    """A bound as a C-contiguous array shaped like ``a``."""
    value = np.asarray(bound, dtype=a.dtype)
    if value.ndim == a.ndim:
        value = value[0]
    return np.ascontiguousarray(np.broadcast_to(value, a.shape))


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

    def __post_init__(self):
        _check_epsilon("Flat", self.epsilon)

    def propagate(self, layer, inputs, output, r_out):
        weight, _ = layer.affine_parameters()
        return _weights_only(layer, inputs[0], r_out, np.ones_like(weight), self.epsilon)


@dataclass(frozen=True)
class WSquare(Rule):
    """LRP-w^2: ``r_in_i = sum_j w_ij^2 / stabilize(sum_i' w_i'j^2) r_j`` over in-bounds inputs; no bias.

    Montavon et al. (2017), Pattern Recognition 65, section 4.1 (w^2-rule).

    Parameters
    ----------
    epsilon : float
    """

    epsilon: float = 1e-6

    def __post_init__(self):
        _check_epsilon("WSquare", self.epsilon)

    def propagate(self, layer, inputs, output, r_out):
        weight, _ = layer.affine_parameters()
        return _weights_only(layer, inputs[0], r_out, weight * weight, self.epsilon)


def _weights_only(layer, a, r_out, rho_w, epsilon):
    ones = np.ones_like(a)
    r_in, _, st, dr = _affine_step(layer, ones, r_out, epsilon, rho_w, None)
    n = len(a)
    return Propagation([r_in], _zeros(n), st, dr, _zeros(n))


__all__ = [
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
