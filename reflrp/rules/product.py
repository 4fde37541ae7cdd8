"""Rules for products of two inputs (:class:`reflrp.layers.Multiply`, :class:`reflrp.layers.MatMul`) and for a
softmax inside a model (:class:`Taylor`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.rules import base
from reflrp.rules.base import Rule
from reflrp.steps import Absorbed, Propagation, contribution_rule, per_sample, rows, unbroadcast


@dataclass(frozen=True)
class Product(Rule):
    """Relevance through a product of two inputs: not linear in its inputs, so how its relevance is shared is a
    choice.

    ``split="signal"`` (the default): all relevance to the signal, none to the gate (the layer's ``gate``), the
    rule for multiplicative gates of Arras et al. (2017), "Explaining Recurrent Neural Network Predictions in
    Sentiment Analysis", WASSA, sec. 3 (the gate decides how much of the signal passes, the signal carries what is
    explained), as for squeeze-and-excitation gates; on attention's ``probabilities @ v`` it is CP-LRP (Ali et al.
    (2022), "XAI for Transformers: Better Explanations through Conservative Propagation", ICML, sec. 4: the
    attention probabilities are held fixed).  ``split="uniform"``: each input gets half, the rule for the product
    of two signals of Achtibat et al. (2024), "AttnLRP: Attention-Aware Layer-Wise Relevance Propagation for
    Transformers", ICML, sec. 3 (the uniform rule, for elementwise and matrix products).

    On an elementwise product (Multiply) each output is one contribution and the inputs receive exactly ``r_out``
    (an input broadcast to the output's shape receives the sum over the axes it was broadcast along); nothing is
    absorbed.  On a matrix product (MatMul) each output ``z_ik = sum_j a_ij b_jk`` shares its relevance among its
    contributions by the epsilon rule (``a_ij b_jk / stabilize(z_ik) * r_ik``), and each
    contribution's share is split as above; the stabilizer absorbs the rest.

    Parameters
    ----------
    split : "signal" or "uniform"
    epsilon : float
        >= 0; the matrix product's stabilizer (unused on elementwise products).
    ungated : "refuse" or "uniform"
        What ``split="signal"`` does with a product that has no gate marked: refuse it (the default), or split it
        uniformly (CP-LRP's ``q @ k.T``, which the held attention probabilities leave without relevance anyway).
    stabilizer : "sign", "zero" or "plus"
    """

    split: str = validate.field(validate.one_of("signal", "uniform"), "signal")
    epsilon: float = base.epsilon()
    ungated: str = validate.field(validate.one_of("refuse", "uniform"), "refuse", kw_only=True)
    stabilizer: str = base.stabilizer()

    _roles = ("product",)
    _applies_to = "products of two inputs (Multiply, MatMul)"

    def check(self, layer, input_shapes, output_shape):
        super().check(layer, input_shapes, output_shape)
        if self.split == "signal" and layer.gate is None and self.ungated == "refuse":
            raise ReflrpError(f"rule {self} needs to know which input is the gate, and this product has none marked "
                              f"({type(layer).__name__}(gate=0 or 1)); give it Product(split='uniform') if neither "
                              f"input is a gate")

    def shares(self, layer):
        """Each input's share of a contribution's relevance."""
        if self.split == "uniform" or layer.gate is None:
            return (0.5, 0.5)
        return tuple(0.0 if k == layer.gate else 1.0 for k in range(2))

    def propagate(self, layer, inputs, output, r_out, sample=None):
        if layer.contracts:
            return contribution_rule(layer, inputs, r_out, self.stabilizing(), output, self.shares(layer), sample)
        if self.split == "signal" and layer.gate is not None:
            shares = [np.zeros_like(r_out) if k == layer.gate else r_out for k in range(len(inputs))]
        else:
            half = r_out * r_out.dtype.type(0.5)  # exact: a power of two
            shares = [half, half]
        r_in = [unbroadcast(share, a.shape[1:]) for share, a in zip(shares, inputs)]
        return Propagation(r_in, Absorbed.nothing(len(r_out)))


@dataclass(frozen=True)
class Taylor(Rule):
    """A softmax inside a model (attention): its first-order Taylor expansion at the input,
    ``r_in_i = a_i sum_j (dy_j / da_i) r_j / y_j = a_i (r_i - y_i sum_j r_j)`` along the softmax's axis.

    Achtibat et al. (2024), "AttnLRP: Attention-Aware Layer-Wise Relevance Propagation for Transformers", ICML,
    sec. 3 (the softmax rule).  The expansion's zeroth-order term is not passed on: the ledger's ``bias`` column holds
    ``sum(r_out) - sum(r_in)``.  A hidden key of a causal softmax (probability 0) receives nothing.
    """

    _roles = ("softmax",)
    _applies_to = "a softmax inside a model (Softmax)"

    def propagate(self, layer, inputs, output, r_out, sample=None):
        a, y = rows(inputs[0], sample), rows(output, sample)
        total = r_out.sum(axis=layer.dim, keepdims=True)
        r_in = a * (r_out - y * total)
        n = len(r_out)
        return Propagation([r_in], Absorbed.nothing(n)._replace(bias=per_sample(r_out) - per_sample(r_in)))


__all__ = ["Product", "Taylor"]
