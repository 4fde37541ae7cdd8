"""Zennit 0.5.1's conventions (``profile="zennit"``), as a :class:`~reflrp.conventions.Profile` value.

What Zennit does that reflrp's own profile does not (read from Zennit's ``composites.py``, ``rules.py`` and
``types.py``, and measured against Zennit itself: tests/test_peers_zennit.py):

- **Layers without a rule get the plain gradient.**  Zennit attaches rules to modules; everything else, functional
  ``x + y`` and ``nn.Upsample`` included, is back-propagated by autograd.  So Upsample and Add are
  :class:`~reflrp.rules.Gradient` here (reflrp: the z-rule), and Add duplicates relevance into both branches (the
  ledger's ``gradient`` column shows what it creates).  Max pooling's gradient goes to the first maximum of each
  window, as :class:`~reflrp.rules.WinnerTakesAll` ("first") does.
- **BatchNorm gets Pass** in every named composite (``layer_map_base``), unless the model was canonized first:
  ``Zennit(merge_batchnorm=True)`` folds BatchNorm into the layer before it, as Zennit's
  ``SequentialMergeBatchNorm`` canonizer does.  (reflrp's composites: Epsilon on BatchNorm.)
- **A known defect, reproduced only on request**: Zennit 0.5.1's merge leaves each folded BatchNorm in the model
  with mean 0, variance 1, weight 1 and bias 0 but its ``eps`` unchanged, so it still divides by
  ``sqrt(1 + eps)``: the canonized model is not the original one (5e-6 relative per BatchNorm with PyTorch's
  ``eps = 1e-5``, measured 2e-6 to 1e-5 on the relevance of the fixtures' CNNs and U-Nets).
  ``Zennit(merge_batchnorm=True, merge_defect=True)`` reproduces it bit for bit.
- **Canonizers.**  ``Zennit(merge_batchnorm=True)`` is ``SequentialMergeBatchNorm``; ``residual_sums=True`` is
  what ``ResNetBasicBlockCanonizer`` and ``ResNetBottleneckCanonizer`` do: the residual addition of each torchvision
  ResNet block (``out += identity``, a function) becomes a ``Sum`` module, which every Zennit composite gives Norm
  (``layer_map_base``).  Zennit's ``ResNetCanonizer`` is both: ``Zennit(merge_batchnorm=True, residual_sums=True)``
  (with ``merge_defect=True`` for Zennit 0.5.1's numbers to the bit).  The blocks are found by the class that
  called the addition (``Node.within``, recorded by :func:`reflrp.from_torch`).
- **The first layer is one module**: the first node, in the model's order, whose type the first-layer map names
  (``EpsilonGammaBox``: convolutions only; the ``Flat`` composites: Linear and convolutions).  reflrp marks every
  feature-combining layer with no such layer before it.
- **The seed is 1** for the selected output (Zennit's examples pass a one-hot ``grad_output``), not its value.
- Same as reflrp: the stabilizer ``z + eps * sign(z)`` with ``sign(0) = +1``, the bias's positive part in z+'s
  denominator (ZPlus, AlphaBeta), Gamma as published, ZBox, Flat and WSquare without bias, average pooling under
  Norm, activations under Pass: every rule is read as given.

- **Functions are not modules.**  A layer the model calls as a function (``F.relu``, ``F.adaptive_avg_pool2d``,
  ``x.mean((2, 3))``, ``F.avg_pool2d``, ``x * gate``: ``Node.called == "function"``, recorded by
  :func:`reflrp.from_torch`) gets no rule in Zennit, whatever its composite says: relevance passes through it as
  its gradient (an activation: times its derivative; average pooling: spread evenly; a product: times the other
  factor).  ``nn.ReLU`` gets Pass and ``nn.AdaptiveAvgPool2d`` Norm; their functional twins get
  :class:`~reflrp.rules.Gradient`.  On torchvision's DenseNet, Inception, MobileNet and MnasNet this is the
  difference between 1e-15 and 6-100%.
- **Normalisations get the gradient.**  Zennit has no rule for LayerNorm or GroupNorm (a module or
  ``F.layer_norm``): autograd back-propagates them, their affine part and the normalisation's Jacobian
  (:meth:`reflrp.layers.LayerNorm.gradient`); so does this profile (:class:`~reflrp.rules.Gradient`), where
  reflrp's own passes relevance through the normalisation.
"""

from __future__ import annotations

from dataclasses import replace

from reflrp import composites, validate
from reflrp.composites import Composite, check_pairs, first_layers
from reflrp.conventions import FirstLayers, Profile
from reflrp.errors import ReflrpError
from reflrp.graph import Graph
from reflrp.layers import AVERAGE_POOLS, BATCHNORMS, CONVOLUTIONS, Add, Linear, Scale
from reflrp.rules import AlphaBeta, Epsilon, Flat, Gamma, Gradient, Norm, Pass, WinnerTakesAll, ZBox, ZPlus

CONVOLUTION = CONVOLUTIONS  # Zennit's types.Convolution
LINEAR = (Linear, *CONVOLUTION)  # Zennit's types.Linear

#: The blocks whose residual addition Zennit's ResNet canonizers make a ``Sum`` module (zennit/torchvision.py).
RESNET_BLOCKS = ("torchvision.models.resnet.BasicBlock", "torchvision.models.resnet.Bottleneck")


def _residual(node):
    """Whether ``node`` is the residual addition of a torchvision ResNet block."""
    return isinstance(node.layer, Add) and len(node.inputs) == 2 and bool(node.within) and \
        node.within[1] in RESNET_BLOCKS


def residual_sum_modules(graph):
    """Zennit's ``ResNetBasicBlockCanonizer`` and ``ResNetBottleneckCanonizer``: the residual addition of each
    torchvision ResNet block (a function call, ``out += identity``) becomes a module, Zennit's ``Sum``.  The function
    the graph computes is unchanged; the presets give these additions Norm, as Zennit's composites give ``Sum``."""
    return Graph([replace(n, called="module") if _residual(n) and n.called == "function" else n
                  for n in graph.nodes], output=graph.output)


def _sums(graph):
    """The ``Sum`` modules of a canonized graph (:func:`residual_sum_modules`): residual additions called as modules."""
    return [n.name for n in graph.nodes if _residual(n) and n.called == "module"]


def _zero_bias(zero_params, label):
    """Zennit's ``zero_params``: None, or ``["bias"]`` (the only parameter zeroing that keeps a rule meaningful)."""
    if zero_params is None:
        return False
    if isinstance(zero_params, str):
        zero_params = [zero_params]
    if not isinstance(zero_params, (list, tuple)) or any(p != "bias" for p in zero_params):
        raise ReflrpError(f"{label}: zero_params must be None or ['bias'], got {zero_params!r}")
    return True


def _composite(name, graph, layer_map, conv_rule, epsilon, stabilizer, zero_params, first_map=(), first_rule=None):
    """A Zennit composite: ``layer_map``, then ``layer_map_base``, then ``conv_rule`` on convolutions and Epsilon
    on Linear; ``first_map`` (with ``first_rule`` appended) for the first matching node."""
    label = f"zennit {name}"
    epsilon = validate.real(epsilon, f"{label}: epsilon", minimum=0.0)
    stabilizer = validate.real(stabilizer, f"{label}: stabilizer", minimum=0.0)
    zero_bias = _zero_bias(zero_params, label)
    base = ((AVERAGE_POOLS, Norm(epsilon=stabilizer)), (BATCHNORMS, Pass()))
    pairs = check_pairs(layer_map, f"{label}: layer_map") + base + (
        (CONVOLUTION, conv_rule(stabilizer, zero_bias)),
        (Linear, Epsilon(epsilon=epsilon, zero_bias=zero_bias)),
    )
    first_pairs = check_pairs(first_map, f"{label}: first_map") + (first_rule(stabilizer) if first_rule else ())
    names = {}
    if not any(issubclass(Add, kinds if isinstance(kinds, tuple) else (kinds,)) for kinds, _ in pairs):
        names.update((name, Norm(epsilon=stabilizer)) for name in _sums(graph))  # layer_map_base: (Sum, Norm)
    if first_pairs:  # the first module of a first-map type, in the model's order
        types = tuple(t for kinds, _ in first_pairs for t in (kinds if isinstance(kinds, tuple) else (kinds,)))
        for node_name in first_layers(graph, types, first_only=True):
            names[node_name] = next(r for kinds, r in first_pairs if isinstance(graph[node_name].layer, kinds))
    return Composite(layer_map=pairs, names=names)


def _zplus(stabilizer, zero_bias):
    return ZPlus(epsilon=stabilizer, zero_bias=zero_bias)


def _alpha2beta1(stabilizer, zero_bias):
    return AlphaBeta(2.0, 1.0, epsilon=stabilizer, zero_bias=zero_bias)


def _flat_first(stabilizer):
    return ((LINEAR, Flat(epsilon=stabilizer)),)


def epsilon_plus(epsilon=1e-6, stabilizer=1e-6, layer_map=(), zero_params=None, *, graph):
    """Zennit's ``EpsilonPlus``: ZPlus on convolutions, Epsilon on Linear."""
    return _composite("EpsilonPlus", graph, layer_map, _zplus, epsilon, stabilizer, zero_params)


def epsilon_alpha2_beta1(epsilon=1e-6, stabilizer=1e-6, layer_map=(), zero_params=None, *, graph):
    """Zennit's ``EpsilonAlpha2Beta1``: AlphaBeta(2, 1) on convolutions, Epsilon on Linear."""
    return _composite("EpsilonAlpha2Beta1", graph, layer_map, _alpha2beta1, epsilon, stabilizer, zero_params)


def epsilon_plus_flat(epsilon=1e-6, stabilizer=1e-6, layer_map=(), first_map=(), zero_params=None, *, graph):
    """Zennit's ``EpsilonPlusFlat``: EpsilonPlus with Flat on the first Linear or convolution."""
    return _composite("EpsilonPlusFlat", graph, layer_map, _zplus, epsilon, stabilizer, zero_params, first_map,
                      _flat_first)


def epsilon_alpha2_beta1_flat(epsilon=1e-6, stabilizer=1e-6, layer_map=(), first_map=(), zero_params=None, *,
                              graph):
    """Zennit's ``EpsilonAlpha2Beta1Flat``: EpsilonAlpha2Beta1 with Flat on the first Linear or convolution."""
    return _composite("EpsilonAlpha2Beta1Flat", graph, layer_map, _alpha2beta1, epsilon, stabilizer, zero_params,
                      first_map, _flat_first)


def epsilon_gamma_box(low, high, epsilon=1e-6, gamma=0.25, stabilizer=1e-6, layer_map=(), first_map=(),
                      zero_params=None, *, graph):
    """Zennit's ``EpsilonGammaBox``: ZBox(low, high) on the first convolution, Gamma on convolutions, Epsilon on
    Linear."""
    gamma = validate.real(gamma, "zennit EpsilonGammaBox: gamma", minimum=0.0)
    box = ZBox(low, high)  # checks the bounds now

    def gamma_rule(stabilizer, zero_bias):
        return Gamma(gamma=gamma, epsilon=stabilizer, zero_bias=zero_bias)

    def box_first(stabilizer):
        return ((CONVOLUTION, ZBox(box.low, box.high, epsilon=stabilizer)),)

    return _composite("EpsilonGammaBox", graph, layer_map, gamma_rule, epsilon, stabilizer, zero_params, first_map,
                      box_first)


ZENNIT = Profile(
    name="zennit",
    library="Zennit 0.5.1",
    seed="unit",
    single_rule="weights",
    first=FirstLayers(which="first"),
    defaults=(("linear", Gradient()), ("routing", Gradient()), ("selection", WinnerTakesAll("first")),
              ("activation", Pass()), ("normalization", Gradient()), ((Scale,), Gradient())),
    functions=(("selection", WinnerTakesAll("first")),
               *((role, Gradient()) for role in ("linear", "routing", "affine", "activation", "product",
                                                 "normalization"))),
    presets=(("EpsilonPlus", epsilon_plus), ("EpsilonAlpha2Beta1", epsilon_alpha2_beta1),
             ("EpsilonPlusFlat", epsilon_plus_flat), ("EpsilonAlpha2Beta1Flat", epsilon_alpha2_beta1_flat),
             ("EpsilonGammaBox", epsilon_gamma_box)),
    named=tuple((getattr(composites, name), name) for name in ("EpsilonPlus", "EpsilonAlpha2Beta1", "EpsilonPlusFlat",
                                                               "EpsilonAlpha2Beta1Flat", "EpsilonGammaBox")),
)


def Zennit(merge_batchnorm=False, merge_defect=False, residual_sums=False):
    """Zennit 0.5.1's profile (module docstring).  Zennit's ``ResNetCanonizer`` is
    ``Zennit(merge_batchnorm=True, residual_sums=True)``.

    Parameters
    ----------
    merge_batchnorm : bool
        Fold BatchNorm into the layer before it first, as Zennit's ``SequentialMergeBatchNorm`` canonizer does
        (:func:`reflrp.canonize.merge_batchnorm`).  Without it, BatchNorm gets Pass.
    merge_defect : bool
        With ``merge_batchnorm``: keep each folded BatchNorm as Zennit 0.5.1 does, as a layer that still divides
        by ``sqrt(1 + eps)``.  Off by default: a defect is reproduced only on request.
    residual_sums : bool
        Make the residual addition of every torchvision ResNet block a ``Sum`` module under Norm, as Zennit's
        ``ResNetBasicBlockCanonizer`` and ``ResNetBottleneckCanonizer`` do (:func:`residual_sum_modules`).  Without it
        the addition is a function, back-propagated as its gradient.

    Returns
    -------
    Profile
    """
    merge_batchnorm = validate.boolean(merge_batchnorm, "Zennit: merge_batchnorm")
    merge_defect = validate.boolean(merge_defect, "Zennit: merge_defect")
    sums = validate.boolean(residual_sums, "Zennit: residual_sums")
    if merge_defect and not merge_batchnorm:
        raise ReflrpError("Zennit: merge_defect=True is a defect of the BatchNorm merge; it needs merge_batchnorm=True")
    batchnorm = "merge-leaving-eps" if merge_defect else "merge" if merge_batchnorm else "keep"
    options = tuple((k, True) for k, v in (("merge_batchnorm", merge_batchnorm), ("merge_defect", merge_defect),
                                           ("residual_sums", sums)) if v)
    return replace(ZENNIT, batchnorm=batchnorm, canonizers=(residual_sum_modules,) if sums else (), options=options)


#: The settings :func:`reflrp.compat.compare` tries.
VARIANTS = (Zennit(), Zennit(merge_batchnorm=True), Zennit(merge_batchnorm=True, merge_defect=True),
            Zennit(merge_batchnorm=True, residual_sums=True),
            Zennit(merge_batchnorm=True, merge_defect=True, residual_sums=True))

__all__ = ["RESNET_BLOCKS", "VARIANTS", "ZENNIT", "Zennit", "residual_sum_modules"]
