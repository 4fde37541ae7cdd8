"""The rule for elementwise products of two inputs (:class:`reflrp.layers.Multiply`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.rules.base import Rule
from reflrp.steps import Absorbed, Propagation, unbroadcast


@dataclass(frozen=True)
class Product(Rule):
    """Relevance through ``z = a_0 * a_1``: the product is not linear in its inputs, so how its relevance is shared
    is a choice.  Either way the inputs receive exactly ``r_out`` (an input broadcast to the output's shape receives
    the sum over the axes it was broadcast along), and nothing is absorbed.

    ``split="signal"`` (the default): all relevance to the signal, none to the gate (the layer's ``gate``), the
    rule for multiplicative gates of Arras et al. (2017), "Explaining Recurrent Neural Network Predictions in
    Sentiment Analysis", WASSA, sec. 3 (the gate decides how much of the signal passes, the signal carries what is
    explained), as for squeeze-and-excitation gates.  ``split="uniform"``: each input gets half, the rule for the
    product of two signals of Achtibat et al. (2024), "AttnLRP: Attention-Aware Layer-Wise Relevance Propagation
    for Transformers", ICML, Proposition 3.2.

    Parameters
    ----------
    split : "signal" or "uniform"
    """

    split: str = validate.field(validate.one_of("signal", "uniform"), "signal")

    _roles = ("product",)
    _applies_to = "elementwise products (Multiply)"

    def check(self, layer, input_shapes, output_shape):
        super().check(layer, input_shapes, output_shape)
        if self.split == "signal" and layer.gate is None:
            raise ReflrpError(f"rule {self} needs to know which input is the gate, and this product has none marked "
                              f"(Multiply(gate=0 or 1)); give it Product(split='uniform') if neither input is a gate")

    def propagate(self, layer, inputs, output, r_out, sample=None):
        if self.split == "signal":
            shares = [np.zeros_like(r_out) if k == layer.gate else r_out for k in range(len(inputs))]
        else:
            half = r_out * r_out.dtype.type(0.5)  # exact: a power of two
            shares = [half, half]
        r_in = [unbroadcast(share, a.shape[1:]) for share, a in zip(shares, inputs)]
        return Propagation(r_in, Absorbed.nothing(len(r_out)))


__all__ = ["Product"]
