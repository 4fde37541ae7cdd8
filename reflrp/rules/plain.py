"""Rules that propagate with the layer's own map: Epsilon (and LRP-0), Norm, Gradient, Pass, WinnerTakesAll."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.rules import base
from reflrp.rules.base import Rule, parameters
from reflrp.stabilize import divide
from reflrp.steps import Absorbed, Propagation, held_rule, modified_rule, per_sample, rows, z_rule


@dataclass(frozen=True)
class Epsilon(Rule):
    """LRP-epsilon: ``r_in_i = sum_j a_i w_ij / stabilize(z_j) * r_j`` with ``z_j = sum_i a_i w_ij + b_j``.

    Bach et al. (2015), "On Pixel-Wise Explanations for Non-Linear Classifier Decisions by Layer-Wise Relevance
    Propagation", PLoS ONE 10(7), eq. 58.  ``epsilon=0`` is LRP-0.  On parameter-free linear layers (pooling,
    upsampling, Add) it is the z-rule with this epsilon, like :class:`Norm`; on max pooling it is the z-rule of the
    pooling's linear map once the winners are known: a window's relevance ``R`` goes to its first maximum ``a`` as
    ``a R / stabilize(a)``.  On a normalisation (LayerNorm, GroupNorm, RMSNorm) it is the z-rule of the map with
    its statistics held at their values (``(a - mean(a)) / s`` with ``s`` a constant is linear in ``a``), as LXT
    computes LayerNorm (its deviation detached); on RMSNorm that is the identity.

    Parameters
    ----------
    epsilon : float
        >= 0.
    zero_bias : bool
        Compute ``z`` without the bias (the bias then absorbs nothing).
    stabilizer : "sign" or "zero"
        The stabilizer's convention (docs/rules.md, "Knobs").
    batchnorm : "fused" or "squared-variance"
        How a BatchNorm's parameters are read ("module" is the same as "fused" here: this rule modifies no weight).
    """

    epsilon: float = base.epsilon()
    zero_bias: bool = base.zero_bias()
    stabilizer: str = base.stabilizer()
    batchnorm: str = base.batchnorm()

    _roles = ("affine", "linear", "selection", "normalization")
    _applies_to = "layers with weights, pooling, Upsample, Add and normalisations"

    def propagate(self, layer, inputs, output, r_out, sample=None):
        stabilizer = self.stabilizing()
        if layer.role == "normalization":
            return held_rule(layer, inputs, r_out, stabilizer, output, sample)
        if layer.role != "affine":
            return z_rule(layer, inputs, r_out, stabilizer, output, sample=sample)
        if layer.normalizes and self.batchnorm == "squared-variance":  # z as the rule reads the layer, not its output
            weight, bias = parameters(layer, self.batchnorm, zero_bias=self.zero_bias)
            step = modified_rule(layer, inputs[0], r_out, stabilizer, [(inputs[0], weight)], bias, sample)
            return Propagation([step.r_in], step.absorbed)
        bias = layer.affine_parameters()[1]
        if self.zero_bias or bias is None:
            z = layer.linear(inputs) if bias is not None else output
            return z_rule(layer, inputs, r_out, stabilizer, z, sample=sample)
        return z_rule(layer, inputs, r_out, stabilizer, output, bias, sample)


@dataclass(frozen=True)
class Norm(Rule):
    """The z-rule for parameter-free linear layers (average pooling, Upsample, Add):
    ``r_in_i = a_i * sum_j m_ij r_j / stabilize(z_j)`` with ``z = M a`` the layer's own map.

    Parameters
    ----------
    epsilon : float
        >= 0.
    stabilizer : "sign" or "zero"
    """

    epsilon: float = base.epsilon()
    stabilizer: str = base.stabilizer()

    _roles = ("linear",)
    _applies_to = "parameter-free linear layers (pooling, Upsample, Add)"

    def propagate(self, layer, inputs, output, r_out, sample=None):
        return z_rule(layer, inputs, r_out, self.stabilizing(), output, sample=sample)


@dataclass(frozen=True)
class Gradient(Rule):
    """Plain gradient: ``r_in = J^T r_out``, the layer's Jacobian transposed applied to the relevance, no division.

    The exact, conservative routing for Flatten, Reshape, Concat, Crop, ZeroPad2d, Identity and Dropout (their
    default).  Elsewhere it reproduces libraries that push relevance through a layer as a gradient (autograd
    through a layer that has no rule): on Upsample, Add, pooling and affine layers ``J`` is the bias-free map
    (Add duplicates relevance); on an activation ``r_in = f'(a) r_out``; on a product ``a_0 a_1``,
    ``r_in_0 = a_1 r_out`` and ``r_in_1 = a_0 r_out`` (for a matrix product, ``r_out a_1^T`` and ``a_0^T r_out``);
    on a normalisation (LayerNorm, GroupNorm) its Jacobian, ``(r - mean(r) - y mean(r y)) / s`` per group, ``y``
    the normalised input and ``s`` its deviation (RMSNorm: ``(r - y mean(r y)) / rms``); on a softmax
    ``y (r - sum(y r))``.  What this creates or destroys is the ledger's ``gradient`` column (negative: injected);
    relevance that the adjoint loses at zero-padded positions is ``dropped``.
    """

    _roles = ("linear", "routing", "affine", "activation", "product", "normalization", "softmax")
    _applies_to = "parameter-free linear layers, affine layers, activations, products, normalisations and softmax"

    def propagate(self, layer, inputs, output, r_out, sample=None):
        n = len(r_out)
        if layer.role == "activation":
            r_in = [rows(layer.derivative(inputs[0]), sample) * r_out]
        elif layer.role == "product":
            r_in = layer.partials(r_out, [rows(x, sample) for x in inputs])
        elif layer.role in ("normalization", "softmax"):
            r_in = [layer.gradient(rows(inputs[0], sample), r_out)]
        else:  # a linear map: its adjoint (for an affine layer, of the bias-free map)
            r_in = layer.adjoint(r_out, inputs)
            if layer.role == "routing":  # exact routing: only positions the layer created lose relevance
                lost = layer.lost(r_out)
                dropped = np.zeros(n) if lost is None else per_sample(lost)
                return Propagation(r_in, Absorbed.nothing(n)._replace(dropped=dropped))
        created = per_sample(r_out) - sum(per_sample(r) for r in r_in)
        return Propagation(r_in, Absorbed.nothing(n)._replace(gradient=created))


@dataclass(frozen=True)
class Pass(Rule):
    """Identity: ``r_in = r_out``.  The default for activations; allowed on any single-input layer whose output
    has its input's shape (BatchNorm, Identity, Dropout).

    On an :class:`~reflrp.layers.Embedding` each token receives the sum over its vector.  With ``epsilon > 0``
    (activations only) it is the identity rule as gradient-times-input libraries compute it,
    ``r_in = r_out * a / stabilize(a)``: the gradient replaced by ``f(a) / stabilize(a)`` (LXT's
    ``identity_rule_implicit``, with ``epsilon=1e-10, stabilizer="plus"``); the stabilizer absorbs the rest.

    Parameters
    ----------
    epsilon : float
        >= 0; 0 (the default) passes ``r_out`` unchanged.
    stabilizer : "sign", "zero" or "plus"
    """

    epsilon: float = base.epsilon(0.0)
    stabilizer: str = base.stabilizer()

    def check(self, layer, input_shapes, output_shape):
        if layer.role == "embedding":  # each token gets the sum over its vector
            if self.epsilon > 0:
                raise ReflrpError(f"rule {self}: an embedding has nothing to divide by; give it epsilon=0")
            return
        if len(input_shapes) != 1 or tuple(input_shapes[0]) != tuple(output_shape):
            raise ReflrpError(f"rule {self} needs a single-input layer whose output has its input's shape")
        if self.epsilon > 0 and layer.role != "activation":
            raise ReflrpError(f"rule {self} divides by the input of an activation; give it epsilon=0 on other "
                              f"layers")

    def propagate(self, layer, inputs, output, r_out, sample=None):
        n = len(r_out)
        if layer.role == "embedding":
            return Propagation([r_out.sum(axis=-1)], Absorbed.nothing(n))
        if self.epsilon == 0:
            return Propagation([r_out], Absorbed.nothing(n))
        a = rows(inputs[0], sample)
        denominator = self.stabilizing().denominator(a)
        ratio, _ = divide(a, denominator)  # a unit with a zero denominator passes nothing: dropped
        r_in = r_out * ratio
        dropped = np.where(denominator == 0, r_out, 0)
        absorbed = Absorbed.nothing(n)._replace(stabilizer=per_sample(r_out - r_in - dropped),
                                                dropped=per_sample(dropped))
        return Propagation([r_in], absorbed)


@dataclass(frozen=True)
class WinnerTakesAll(Rule):
    """Max pooling: each window's relevance goes to its maximum.

    Parameters
    ----------
    ties : "first" or "split"
        "first" (default): to the first maximum in row-major window order.  "split": evenly among all
        positions equal to the maximum.
    """

    ties: str = validate.field(validate.one_of("first", "split"), "first")

    _roles = ("selection",)
    _applies_to = "MaxPool2d"

    def propagate(self, layer, inputs, output, r_out, sample=None):
        route = layer.adjoint if self.ties == "first" else layer.adjoint_split_ties
        return Propagation(route(r_out, [rows(a, sample) for a in inputs]), Absorbed.nothing(len(r_out)))


__all__ = ["Epsilon", "Gradient", "Norm", "Pass", "WinnerTakesAll"]
