"""Captum 0.9's LRP conventions (``profile="captum"``), as a :class:`~reflrp.conventions.Profile` value.

Read from Captum's ``attr/_core/lrp.py`` and ``attr/_utils/lrp_rules.py`` and measured against Captum itself
(tests/test_peers_captum.py):

- **Default rules by module type**: ``EpsilonRule(epsilon=1e-9)`` on Conv2d, Linear, BatchNorm2d, max and average
  pooling, AdaptiveAvgPool2d and Captum's ``Addition_Module``; ReLU, Tanh and Dropout pass relevance on unchanged.
  Any other module (ConvTranspose2d, Conv1d, BatchNorm1d, Upsample, nn.Flatten, LeakyReLU, ...) has no default:
  Captum raises, and so does this profile unless the composite gives the layer a rule.  Functional operations
  (``torch.cat``, ``torch.flatten``, ``F.interpolate``) are back-propagated by autograd: Concat, Flatten, Reshape,
  Upsample and the other routing layers get :class:`~reflrp.rules.Gradient`.
- **Max pooling is an epsilon layer**: the window's relevance goes to its maximum ``a`` as ``a R / (a + eps)``
  (:class:`~reflrp.rules.Epsilon` on max pooling), not exactly ``R``.
- **Captum's GammaRule and Alpha1_Beta0_Rule** modify the weights only (``w + gamma w+`` and ``w+``), whatever the
  input's sign (``inputs="whole"``), keep the bias as it is (``bias="whole"``; ``set_bias_to_zero`` drops it) and
  stabilize with a fixed 1e-9: they are reflrp's :class:`~reflrp.rules.Gamma` and :class:`~reflrp.rules.ZPlus`
  with those knobs.  On BatchNorm they modify its ``weight`` (``batchnorm="module"``).
- **No first-layer rule**, and the seed is the selected output's value (Captum back-propagates 1 and multiplies
  the input relevance by the output at the end: the same numbers up to rounding).
- Same as reflrp: the stabilizer ``z + eps * sign(z)`` with ``sign(0) = +1``, z with the bias.

Not reproduced (documented defects of Captum 0.9, docs/profiles.md): relevance through a tensor that feeds both
a layer with a rule and a functional operation (a ``torch.cat`` skip) is multiplied by the activation twice;
a functional ``x + y`` copies the whole relevance into both branches; a skip taken before a ReLU module loses its
relevance.  :func:`reflrp.compat.compare` shows the node where Captum's numbers depart because of them.
"""

from __future__ import annotations

from reflrp.composites import Composite
from reflrp.conventions import FirstLayers, Profile, Reading
from reflrp.layers import (
    AdaptiveAvgPool2d,
    Add,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Linear,
    MaxPool2d,
    ReLU,
    Tanh,
)
from reflrp.rules import AlphaBeta, Epsilon, Gamma, Gradient, Norm, Pass, WinnerTakesAll, ZPlus

#: Captum's ``PropagationRule.STABILITY_FACTOR`` and ``EpsilonRule``'s default
STABILITY = 1e-9
#: What Captum's GammaRule and Alpha1_Beta0_Rule fix: no epsilon of their own, unsplit inputs, BatchNorm's weight.
WEIGHTS_ONLY = (("epsilon", STABILITY), ("stabilizer", "sign"), ("inputs", "whole"), ("batchnorm", "module"))


def default(*, graph):
    """What ``LRP(model).attribute(...)`` does without rules set by hand: Captum's defaults everywhere."""
    return Composite()


CAPTUM = Profile(
    name="captum",
    library="Captum 0.9",
    first=FirstLayers(which="none"),
    single_rule="weights",
    # Captum's SUPPORTED_LAYERS_WITH_RULES and SUPPORTED_NON_LINEAR_LAYERS; functional operations: autograd
    defaults=(((Conv2d, Linear, BatchNorm2d, AvgPool2d, AdaptiveAvgPool2d, Add, MaxPool2d), Epsilon(STABILITY)),
              ((ReLU, Tanh, Dropout), Pass()), ("routing", Gradient()), ("linear", Gradient())),
    reads=(Reading(Epsilon, "EpsilonRule", fixed=(("stabilizer", "sign"),)),
           Reading(Gamma, "GammaRule", fixed=WEIGHTS_ONLY),
           Reading(ZPlus, "Alpha1_Beta0_Rule", fixed=(*WEIGHTS_ONLY, ("bias", "whole"))),
           Reading(AlphaBeta, "Alpha1_Beta0_Rule", required=(("beta", 0.0),), fixed=(*WEIGHTS_ONLY, ("bias", "whole"))),
           Reading(Pass, "IdentityRule"), Reading(Norm, "EpsilonRule (pooling, Addition_Module)"),
           Reading(Gradient, "autograd's gradient"), Reading(WinnerTakesAll, "autograd's gradient (max pooling)")),
    presets=(("default", default),),
)


def Captum():
    """Captum 0.9's profile (module docstring).  ``rules="default"`` is Captum's own assignment; a reflrp rule or
    composite overrides it where it applies, read as the Captum rule of that name.

    Returns
    -------
    Profile
    """
    return CAPTUM


#: The settings :func:`reflrp.compat.compare` tries.
VARIANTS = (CAPTUM,)

__all__ = ["CAPTUM", "Captum", "STABILITY", "VARIANTS"]
