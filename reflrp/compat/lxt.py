"""LXT 2.1's conventions (``profile="lxt"``), as a :class:`~reflrp.conventions.Profile` value.

LXT (LRP-eXplains-Transformers, the AttnLRP authors' library) computes relevance as gradient times input after
patching the forward passes of the layers it has rules for ("efficient" mode, ``lxt.efficient.monkey_patch``).
Read from its ``efficient/rules.py``, ``efficient/patches.py`` and ``efficient/models/``, and measured against LXT
itself (tests/test_peers_lxt.py).  What follows is what its efficient mode computes, next to the paper's rules
(reflrp's :class:`~reflrp.composites.AttnLRP`):

- **No epsilon on layers with weights.**  Linear and convolution layers are left to autograd: the z-rule with
  epsilon 0 and the bias in ``z`` (:class:`~reflrp.rules.Epsilon` ``epsilon=0``), so biases absorb their share; so
  do sums (a residual ``a + b``: ``a / (a + b)`` of the relevance) and anything added to the activations (position
  embeddings, LayerNorm's shift).  The paper: epsilon-LRP.
- **Activations** (GELU, SiLU, Tanh) get the identity rule computed as a gradient: ``r_in = r_out * a / (a +
  1e-10)``, a plain ``+ 1e-10`` whatever the sign of ``a`` (:class:`~reflrp.rules.Pass` ``epsilon=1e-10,
  stabilizer="plus"``).  The paper: the identity.
- **LayerNorm** holds its deviation fixed (``std.detach()``) and leaves the centring to autograd: the z-rule of
  ``(a - mean(a)) / std`` with ``std`` a constant (:class:`~reflrp.rules.Epsilon` ``epsilon=0`` on a
  normalisation), which moves relevance between features while conserving it.  The paper: the identity.  RMSNorm:
  the identity (LXT and the paper).
- **Softmax** is left to autograd, which is the paper's Taylor rule (:class:`~reflrp.rules.Taylor`).
- **Products of two activations** (``q @ k.T``, ``probabilities @ v``, gated units) split uniformly, epsilon 0
  (:class:`~reflrp.rules.Product` ``split="uniform", epsilon=0``).
- **CP-LRP** (LXT's only recipe for torchvision's ViT, and its ``cp_LRP`` for Hugging Face models): query and key
  detached, so the attention probabilities are constants: ``probabilities @ v`` gives all relevance to ``v``
  (``split="signal"``) and the softmax and ``q @ k.T`` receive none; a gated unit's gate is detached too (its
  product gives all relevance to the gated branch).
- **The seed** is the explained logit's value (``y.backward()`` on the logit, relevance ``x * x.grad``).
- **Class token and position embedding** absorb their shares, as biases do (the ledger's ``dropped`` and ``bias``
  columns).

Not reproduced: LXT's Hugging Face patches compute RMSNorm, eager attention's softmax and rotary embeddings in
float32 even in a float64 model (a 1e-7 departure); compare in float32 there, or against float64 fixtures made
with those casts removed.
"""

from __future__ import annotations

from reflrp.composites import CPLRP as PaperCPLRP
from reflrp.composites import AttnLRP as PaperAttnLRP
from reflrp.composites import Composite, check_pairs
from reflrp.conventions import FirstLayers, Profile, Reading
from reflrp.errors import ReflrpError
from reflrp.layers import GELU, GroupNorm, LayerNorm, MatMul, Multiply, RMSNorm, SiLU, Tanh
from reflrp.rules import Epsilon, Gradient, Pass, Product, Taylor, WinnerTakesAll

#: The constant of LXT's ``identity_rule_implicit`` (activations).
IDENTITY_EPSILON = 1e-10
#: What LXT's activations do: the identity rule as a stabilized gradient.
ACTIVATIONS = ((GELU, SiLU, Tanh), Pass(epsilon=IDENTITY_EPSILON, stabilizer="plus"))
EXACT = Epsilon(epsilon=0.0)


def _composite(products, epsilon, layer_map):
    if epsilon != 0:
        raise ReflrpError(f"LXT's efficient mode has no epsilon (its layers with weights are gradient times input: "
                          f"epsilon 0); got epsilon={epsilon!r}: give epsilon=0, or rules='AttnLRP' / 'CP-LRP'")
    pairs = check_pairs(layer_map, "layer_map") + (((MatMul, Multiply), products), ((LayerNorm, GroupNorm), EXACT),
                                                    ((RMSNorm,), Pass()), ACTIVATIONS)
    return Composite(layer_map=pairs, affine=EXACT, linear=EXACT)


def attnlrp(epsilon=0.0, layer_map=(), *, graph):
    """LXT's AttnLRP (its Hugging Face recipes): products split uniformly."""
    return _composite(Product(split="uniform", epsilon=0.0), epsilon, layer_map)


def cp_lrp(epsilon=0.0, layer_map=(), *, graph):
    """LXT's CP-LRP (its torchvision ViT recipe, and ``cp_LRP`` of its Hugging Face models): the attention
    probabilities and gated units' gates held."""
    return _composite(Product(split="signal", epsilon=0.0, ungated="uniform"), epsilon, layer_map)


LXT_PROFILE = Profile(
    name="lxt",
    library="LXT 2.1",
    seed="value",
    first=FirstLayers(which="none"),
    defaults=(("affine", EXACT), ("linear", EXACT), ("routing", Gradient()), ("selection", WinnerTakesAll()),
              ACTIVATIONS, ("activation", Pass()), ((RMSNorm,), Pass()), ("normalization", EXACT),
              ("softmax", Taylor()), ("product", Product(split="uniform", epsilon=0.0)), ("embedding", Pass())),
    reads=(Reading(Epsilon, "gradient x input (epsilon 0)", required=(("epsilon", 0.0),)),
           Reading(Pass, "identity_rule_implicit"), Reading(Taylor, "softmax's gradient x input"),
           Reading(Product, "divide_gradient (uniform) or stop_gradient (CP-LRP)", required=(("epsilon", 0.0),)),
           Reading(Gradient, "autograd's gradient"), Reading(WinnerTakesAll, "autograd's gradient (max pooling)")),
    presets=(("AttnLRP", attnlrp), ("CP-LRP", cp_lrp)),
    named=((PaperAttnLRP, "AttnLRP"), (PaperCPLRP, "CP-LRP")),
)


def LXT():
    """LXT 2.1's profile (module docstring): ``rules="AttnLRP"`` or ``rules="CP-LRP"`` are its recipes;
    :class:`reflrp.composites.AttnLRP` and :class:`~reflrp.composites.CPLRP` with ``epsilon=0`` read the same.

    Returns
    -------
    Profile
    """
    return LXT_PROFILE


#: The settings :func:`reflrp.compat.compare` tries.
VARIANTS = (LXT_PROFILE,)

__all__ = ["IDENTITY_EPSILON", "LXT", "LXT_PROFILE", "VARIANTS"]
