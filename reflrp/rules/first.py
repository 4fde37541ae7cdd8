"""Rules for the first layers, where inputs are pixels rather than activations: ZBox, Flat and WSquare."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.rules import base
from reflrp.rules.base import Rule, bound, parameters, same
from reflrp.steps import Propagation, modified_rule, negative_part, positive_part


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
    stabilizer : "sign" or "zero"
    batchnorm : "fused" or "squared-variance"
    """

    low: object = validate.field(bound)
    high: object = validate.field(bound)
    epsilon: float = base.epsilon()
    stabilizer: str = base.stabilizer()
    batchnorm: str = base.batchnorm()

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
        return all(same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    def __hash__(self):
        def key(v):
            return (v.shape, v.tobytes()) if isinstance(v, np.ndarray) else v

        return hash(tuple(key(getattr(self, f.name)) for f in fields(self)))

    def __repr__(self):
        def show(v):
            return repr(v) if isinstance(v, float) else f"array{v.shape}"

        knobs = "".join(f", {f.name}={getattr(self, f.name)!r}" for f in fields(self)[3:]
                        if getattr(self, f.name) != f.default)
        return f"ZBox(low={show(self.low)}, high={show(self.high)}, epsilon={self.epsilon}{knobs})"

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

    def positional(self, input_shapes):
        spatial = len(input_shapes[0]) - 1  # the axes after the channel axis
        return any(spatial and any(n > 1 for n in np.shape(value)[-spatial:]) for value in (self.low, self.high))

    def propagate(self, layer, inputs, output, r_out, sample=None):
        (a,) = inputs
        weight, _ = parameters(layer, self.batchnorm)
        # a zero bound's term would be skipped by modified_rule: it is not built, nor its half of the weight
        halves = ((self.low, positive_part), (self.high, negative_part))
        terms = [(a, weight)] + [(-_expand(value, a), half(weight)) for value, half in halves if np.any(value)]
        step = modified_rule(layer, a, r_out, self.stabilizing(), terms, sample=sample)
        return Propagation([step.r_in], step.absorbed)


def _expand(value, a):
    """A bound as a C-contiguous array shaped like ``a``."""
    value = np.asarray(value, dtype=a.dtype)
    if value.ndim == a.ndim:
        value = value[0]
    return np.ascontiguousarray(np.broadcast_to(value, a.shape))


def _weights_only(rule, layer, a, r_out, rho_w, sample):
    """The four steps with every input set to 1 and the weight replaced: Flat and WSquare."""
    step = modified_rule(layer, a, r_out, rule.stabilizing(), [(np.ones_like(a), rho_w)], sample=sample)
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
    stabilizer : "sign" or "zero"
    """

    epsilon: float = base.epsilon()
    stabilizer: str = base.stabilizer()

    def propagate(self, layer, inputs, output, r_out, sample=None):
        weight, _ = layer.affine_parameters()
        return _weights_only(self, layer, inputs[0], r_out, np.ones_like(weight), sample)


@dataclass(frozen=True)
class WSquare(Rule):
    """LRP-w^2: ``r_in_i = sum_j w_ij^2 / stabilize(sum_i' w_i'j^2) r_j`` over in-bounds inputs; no bias.

    Montavon et al. (2017), Pattern Recognition 65, section 4.1 (w^2-rule).

    Parameters
    ----------
    epsilon : float
    stabilizer : "sign" or "zero"
    batchnorm : "fused" or "squared-variance"
    """

    epsilon: float = base.epsilon()
    stabilizer: str = base.stabilizer()
    batchnorm: str = base.batchnorm()

    def propagate(self, layer, inputs, output, r_out, sample=None):
        weight, _ = parameters(layer, self.batchnorm)
        return _weights_only(self, layer, inputs[0], r_out, weight * weight, sample)


__all__ = ["Flat", "WSquare", "ZBox"]
