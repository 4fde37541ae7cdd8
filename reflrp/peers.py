"""Other implementations' relevance, collected from a PyTorch module, and compared with reflrp's in one call.

:func:`compare_torch` imports the module (:func:`reflrp.from_torch`), runs Zennit or Captum on it with the rules
reflrp is given (translated into that library's own composite or rule objects), collects the relevance arriving
at every module's output with hooks, and hands everything to :func:`reflrp.compare`::

    report = reflrp.compare_torch(unet, x, (0, 5, 5), reflrp.composites.EpsilonPlus(), library="zennit")
    print(report)   # ... departs at 'up1.0' (Gradient) ...; profile 'zennit' reproduces the other map

Zennit needs ``pip install zennit`` (with a torchvision that loads beside your torch), Captum
``pip install captum``; neither is a dependency of reflrp.
"""

from __future__ import annotations

import numpy as np

from reflrp import composites, validate
from reflrp import rules as reflrp_rules
from reflrp.compare import compare
from reflrp.errors import ReflrpError
from reflrp.explain import explained_node
from reflrp.importers.common import require
from reflrp.profiles import as_profile
from reflrp.profiles.captum import CaptumAlpha1Beta0, CaptumGamma, EpsilonMax
from reflrp.targets import Class, Classes, Index, as_target

LIBRARIES = ("zennit", "captum")


def _leaves(module):
    return [(name, m) for name, m in module.named_modules() if name and not list(m.children())]


def zennit_relevance(module, x, composite, grad_output):
    """Zennit's relevance for ``module`` under a Zennit ``composite``, seeded with ``grad_output``: ``{"input":
    input relevance, module name: relevance arriving at that module's output}`` as float64 arrays."""
    torch = require("torch", "torch", "collecting Zennit's relevance")
    kept, handles = {}, []
    x = torch.as_tensor(x).clone().requires_grad_(True)
    with composite.context(module) as modified:
        for name, leaf in _leaves(modified):  # after Zennit's hooks: each sees the output Zennit's hook returned
            handles.append(leaf.register_forward_hook(_keeper(kept, name)))
        try:
            out = modified(x)
            (relevance,) = torch.autograd.grad(out, x, grad_outputs=torch.as_tensor(grad_output, dtype=out.dtype))
        finally:
            for handle in handles:
                handle.remove()
    result = {name: value.detach().double().numpy() for name, value in kept.items()}
    result["input"] = relevance.detach().double().numpy()
    return result


def _keeper(kept, name):
    def hook(module, inputs, output):
        if hasattr(output, "register_hook") and output.requires_grad:
            output.register_hook(lambda grad: kept.__setitem__(name, grad))
    return hook


def captum_relevance(module, x, target, rules_by_module):
    """Captum's LRP relevance for ``module`` with ``rules_by_module`` (module name to a Captum rule object; other
    modules get Captum's defaults): ``{"input": ..., module name: relevance at its output}``, scaled by the
    output as Captum scales the input relevance."""
    torch = require("torch", "torch", "collecting Captum's relevance")
    captum_lrp = require("captum.attr", "captum", "collecting Captum's relevance")
    from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES

    attached = {}
    for name, leaf in _leaves(module):
        if name in rules_by_module:
            leaf.rule = rules_by_module[name]
        elif type(leaf) in SUPPORTED_LAYERS_WITH_RULES:
            leaf.rule = SUPPORTED_LAYERS_WITH_RULES[type(leaf)]()  # Captum's default, made here to read it back
        if getattr(leaf, "rule", None) is not None:
            attached[name] = leaf.rule
    x = torch.as_tensor(x).detach().clone().requires_grad_(True)
    relevance = captum_lrp.LRP(module).attribute(x, target=target)
    with torch.no_grad():
        out = module(x)
        selected = out[(torch.arange(len(x)), *target)] if isinstance(target, tuple) else \
            out[torch.arange(len(x)), target]
    result = {"input": relevance.detach().double().numpy()}
    for name, rule in attached.items():
        stored = rule.relevance_output.get(x.device)
        if stored is not None:
            scale = selected.reshape(-1, *[1] * (stored.dim() - 1))
            result[name] = (stored * scale).detach().double().numpy()
    return result


def _zennit():
    """Zennit's composites and canonizers modules.  Zennit imports torchvision, which fails (not only with an
    ImportError) when it does not match the installed torch: say so in one line."""
    try:
        import zennit.canonizers
        import zennit.composites
    except Exception as error:
        raise ReflrpError(f"comparing with Zennit needs zennit importable: pip install zennit==0.5.1 with a "
                          f"torchvision that matches your torch ({type(error).__name__}: {str(error)[:200]})") from None
    return zennit.composites, zennit.canonizers


def _zennit_composite(given, x, merge_batchnorm):
    if not isinstance(given, tuple(_ZENNIT_NAMES)) or given.layer_map:
        raise ReflrpError(f"compare_torch: for Zennit, rules must be one of reflrp's named composites "
                          f"({', '.join(c.__name__ for c in _ZENNIT_NAMES)}) without a layer_map, got {given!r}")
    zennit, canonizer_module = _zennit()
    torch = require("torch", "torch", "comparing with Zennit")
    canonizers = [canonizer_module.SequentialMergeBatchNorm()] if merge_batchnorm else None
    kind = getattr(zennit, type(given).__name__)
    if isinstance(given, composites.EpsilonGammaBox):
        low = torch.as_tensor(np.broadcast_to(given.low, x.shape).copy(), dtype=torch.float64)
        high = torch.as_tensor(np.broadcast_to(given.high, x.shape).copy(), dtype=torch.float64)
        return kind(low=low, high=high, epsilon=given.epsilon, gamma=given.gamma, canonizers=canonizers)
    return kind(epsilon=given.epsilon, canonizers=canonizers)


_ZENNIT_NAMES = (composites.EpsilonPlus, composites.EpsilonAlpha2Beta1, composites.EpsilonPlusFlat,
                 composites.EpsilonAlpha2Beta1Flat, composites.EpsilonGammaBox)


def _captum_rules(graph, given, module):
    """Captum rule objects, by module name, for the rules the captum profile resolves."""
    lrp_rules = require("captum.attr._utils.lrp_rules", "captum", "comparing with Captum")
    names = {name for name, _ in _leaves(module)}
    profile = as_profile("captum")
    active = [n.name for n in graph.nodes if n.name in graph.ancestors(explained_node(graph))]
    chosen = {}
    for name, rule in profile.resolve(given, graph, active).items():
        if name not in names:
            continue
        if isinstance(rule, CaptumGamma):
            chosen[name] = lrp_rules.GammaRule(gamma=rule.gamma, set_bias_to_zero=rule.set_bias_to_zero)
        elif isinstance(rule, CaptumAlpha1Beta0):
            chosen[name] = lrp_rules.Alpha1_Beta0_Rule(set_bias_to_zero=rule.set_bias_to_zero)
        elif isinstance(rule, (reflrp_rules.Epsilon, reflrp_rules.Norm, EpsilonMax)):
            chosen[name] = lrp_rules.EpsilonRule(epsilon=rule.epsilon)
        elif isinstance(rule, reflrp_rules.Pass) and graph[name].layer.role != "activation":
            chosen[name] = lrp_rules.IdentityRule()  # activations pass relevance on in Captum without a rule
    return chosen


def _captum_target(target):
    target = as_target(target)
    if isinstance(target, Class):
        return int(target.k)
    if isinstance(target, Index):
        return tuple(int(i) for i in target.index)
    if isinstance(target, Classes):
        return [int(k) for k in target.ks]
    raise ReflrpError(f"compare_torch: Captum takes a class, an index or one class per sample as target, not "
                      f"{type(target).__name__}")


def compare_torch(module, x, target, rules, library, *, profile="reflrp", merge_batchnorm=False, tolerance=1e-6,
                  top=10):
    """Run ``library`` ("zennit" or "captum") on a PyTorch ``module`` and compare its relevance, per layer, with
    reflrp's (:func:`reflrp.compare`).

    Parameters
    ----------
    module : torch.nn.Module
        In eval mode, float64 recommended (both sides then compute in float64).
    x : ndarray or torch.Tensor (N, ...)
    target
        As for :func:`reflrp.explain` (Captum: a class, an index or one class per sample).
    rules : reflrp rule or composite
        Zennit: one of reflrp's named composites, run as Zennit's composite of that name.  Captum: any rules the
        ``captum`` profile accepts, set on the modules as Captum's rule objects.
    library : "zennit" or "captum"
    profile : str or Profile
        The conventions of reflrp's side (default reflrp's own: the report shows where the library departs from
        them).  The seed is the library's convention either way.
    merge_batchnorm : bool
        Zennit: run it with its ``SequentialMergeBatchNorm`` canonizer (and reflrp on the merged model).

    Returns
    -------
    Comparison
    """
    torch = require("torch", "torch", "compare_torch")
    validate.choice(library, "compare_torch: library", LIBRARIES)
    merge_batchnorm = validate.boolean(merge_batchnorm, "compare_torch: merge_batchnorm")
    x_tensor = torch.as_tensor(x)
    graph = _import(module, x_tensor)
    x_array = x_tensor.detach().numpy()
    if library == "zennit":
        seed = as_profile("zennit").seed
        values = graph.trace(x_array)
        sample, weights = as_target(target).select(values[explained_node(graph)])
        if not np.array_equal(sample, np.arange(len(x_array))):
            raise ReflrpError("compare_torch: Zennit is compared with one explanation per sample")
        composite = _zennit_composite(rules, x_array, merge_batchnorm)
        maps = _run("Zennit", zennit_relevance, module, x_tensor, composite, weights)
    else:
        seed = as_profile("captum").seed
        chosen = _captum_rules(graph, rules, module)
        maps = _run("Captum", captum_relevance, module, x_tensor, _captum_target(target), chosen)
    explained = graph
    if merge_batchnorm and as_profile(profile).prepare(graph) is graph:
        # Zennit explained its canonized model: reflrp explains the merged one too, unless the profile merges
        # itself (Zennit(merge_batchnorm=True)); the profiles tried for the verdict start from the original
        from reflrp.canonize import merge_batchnorm as merge

        explained = merge(graph)
    return compare(explained, x_array, target, rules, maps, profile=profile, seed=seed, tolerance=tolerance, top=top,
                   _profiles_from=graph)


def _run(library, collect, *args):
    """The library's relevance; its own failure (a module it has no rule for, ...) as a ReflrpError that says so."""
    try:
        return collect(*args)
    except ReflrpError:
        raise
    except Exception as error:
        raise ReflrpError(f"compare_torch: {library} cannot explain this module: {type(error).__name__}: "
                          f"{str(error)[:300]}") from None


def _import(module, x):
    from reflrp.importers import from_torch

    return from_torch(module, x)


__all__ = ["LIBRARIES", "captum_relevance", "compare_torch", "zennit_relevance"]
