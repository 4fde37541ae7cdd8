"""LRP rules: small frozen objects that choose parameters and do the elementwise work.

Every rule for an affine layer ``z = W a + b`` follows the four steps of Montavon et al. (2019),
"Layer-Wise Relevance Propagation: An Overview", in *Explainable AI*, LNCS 11700, section 10.2.2::

    z    = layer.linear([a], rho(W)) + rho(b)       # step 1: forward with modified parameters
    s    = r_out / stabilize(z)                     # step 2: elementwise
    c    = layer.adjoint(s, [a], rho(W))            # step 3: exact transpose of the bias-free map
    r_in = a * c                                    # step 4: elementwise

Rules never touch kernels and never create parameters; layers know nothing of rules.  A rule reads what a
layer can do from its capability attributes (``layer.role``, ``layer.normalizes``, see :mod:`reflrp.layers.base`),
never from its class.  Each rule returns a :class:`~reflrp.steps.Propagation`: the input relevance and, per sample,
what the step :class:`~reflrp.steps.Absorbed` (see docs/ledger.md); :mod:`reflrp.steps` runs the four steps.  For
every rule ``sum(r_out) = sum(r_in) + bias + stabilizer + dropped + gradient`` up to rounding.

Where implementations of a rule differ (how the denominator is stabilized, where a two-sided rule puts the bias,
whether inputs are split by sign, how a BatchNorm's parameters are read) a rule has a *knob* with one meaning
everywhere (:mod:`reflrp.rules.base`, docs/rules.md); the defaults are reflrp's conventions (docs/conventions.md):
``stabilize(z) = z + epsilon * sign(z)`` with ``sign(0) = +1``; with ``epsilon = 0`` a zero denominator drops that
unit's relevance (never NaN); ``alpha - beta = 1``.

The rules live in :mod:`reflrp.rules.plain` (the layer's own map), :mod:`reflrp.rules.signed` (signs treated
apart), :mod:`reflrp.rules.first` (first layers) and :mod:`reflrp.rules.product` (products of two inputs, softmax);
all are importable from here.
"""

from reflrp.rules.base import Rule
from reflrp.rules.first import Flat, WSquare, ZBox
from reflrp.rules.plain import Epsilon, Gradient, Norm, Pass, WinnerTakesAll
from reflrp.rules.product import Product, Taylor
from reflrp.rules.signed import AlphaBeta, Gamma, ZPlus
from reflrp.steps import Absorbed, Propagation

__all__ = [
    "Absorbed",
    "AlphaBeta",
    "Epsilon",
    "Flat",
    "Gamma",
    "Gradient",
    "Norm",
    "Pass",
    "Product",
    "Propagation",
    "Rule",
    "Taylor",
    "WSquare",
    "WinnerTakesAll",
    "ZBox",
    "ZPlus",
]
