"""The peer harness of the tests and of ``nox -s peers``: run Zennit or Captum on a PyTorch module, collect their
relevance at every module's output with hooks, and hand it to :func:`reflrp.compare`::

    report = compare_with("zennit", unet, x, (0, 5, 5), reflrp.composites.EpsilonPlus())
    print(report)   # ... departs at 'up1.0' (Gradient) ...; profile 'zennit' reproduces the other map

It uses only the libraries' public API (Zennit's composites and canonizers, Captum's ``LRP`` with its default
rules, whose stored relevance it reads back) and works on a deep copy of the module: the caller's modules are
never changed (Zennit registers hooks and Captum attaches rule objects to the modules it is given).  Captum's own
rules other than its defaults (GammaRule, Alpha1_Beta0_Rule) are importable only from a private module; they are
checked against the fixtures scripts/peers/captum_fixtures.py makes in Captum's own venv instead.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import torch

import reflrp
from reflrp import composites, conventions
from reflrp.errors import ReflrpError
from reflrp.explain import explained_node
from reflrp.targets import Class, Classes, Index, as_target

LIBRARIES = ("zennit", "captum")
ZENNIT_NAMES = (composites.EpsilonPlus, composites.EpsilonAlpha2Beta1, composites.EpsilonPlusFlat,
                composites.EpsilonAlpha2Beta1Flat, composites.EpsilonGammaBox)


def _leaves(module):
    return [(name, m) for name, m in module.named_modules() if name and not list(m.children())]


def zennit_relevance(module, x, composite, grad_output):
    """Zennit's relevance for a copy of ``module`` under a Zennit ``composite``, seeded with ``grad_output``:
    ``{"input": input relevance, module name: relevance arriving at that module's output}`` in float64."""
    module = copy.deepcopy(module)
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


def captum_relevance(module, x, target):
    """Captum's LRP with its default rules on a copy of ``module``: ``{"input": ..., module name: relevance at its
    output}``, the latter scaled by the output as Captum scales the input relevance."""
    from captum.attr import LRP

    module = copy.deepcopy(module)
    rules, handles = {}, []
    for name, leaf in _leaves(module):  # Captum deletes its rule objects afterwards: keep them as they run
        handles.append(leaf.register_forward_hook(_rule_keeper(rules, name)))
    x = torch.as_tensor(x).detach().clone().requires_grad_(True)
    try:
        relevance = LRP(module).attribute(x, target=target)
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        out = module(x)
        rows = torch.arange(len(x))
        selected = out[(rows, *target)] if isinstance(target, tuple) else out[rows, target]
    result = {"input": relevance.detach().double().numpy()}
    for name, rule in rules.items():
        stored = getattr(rule, "relevance_output", None)
        if stored:
            value = next(iter(stored.values()))
            result[name] = (value * selected.reshape(-1, *[1] * (value.dim() - 1))).detach().double().numpy()
    return result


def _rule_keeper(rules, name):
    def hook(module, inputs, output):
        rules.setdefault(name, getattr(module, "rule", None))  # returns None: the output is left as it is
    return hook


def _zennit_composite(given, x, merge_batchnorm):
    if not isinstance(given, ZENNIT_NAMES) or given.layer_map:
        raise ReflrpError(f"for Zennit, rules must be one of reflrp's named composites "
                          f"({', '.join(c.__name__ for c in ZENNIT_NAMES)}) without a layer_map, got {given!r}")
    try:
        import zennit.canonizers
        import zennit.composites
    except Exception as error:  # Zennit imports torchvision, which fails (not only with an ImportError) on a mismatch
        raise ReflrpError(f"comparing with Zennit needs zennit importable: pip install zennit==0.5.1 with a "
                          f"torchvision that matches your torch ({type(error).__name__}: {str(error)[:200]})") from None
    canonizers = [zennit.canonizers.SequentialMergeBatchNorm()] if merge_batchnorm else None
    kind = getattr(zennit.composites, type(given).__name__)
    if isinstance(given, composites.EpsilonGammaBox):
        low = torch.as_tensor(np.broadcast_to(given.low, x.shape).copy(), dtype=torch.float64)
        high = torch.as_tensor(np.broadcast_to(given.high, x.shape).copy(), dtype=torch.float64)
        return kind(low=low, high=high, epsilon=given.epsilon, gamma=given.gamma, canonizers=canonizers)
    return kind(epsilon=given.epsilon, canonizers=canonizers)


def _captum_target(target):
    target = as_target(target)
    if isinstance(target, Class):
        return int(target.k)
    if isinstance(target, Index):
        return tuple(int(i) for i in target.index)
    if isinstance(target, Classes):
        return [int(k) for k in target.ks]
    raise ReflrpError(f"Captum takes a class, an index or one class per sample as target, not "
                      f"{type(target).__name__}")


def compare_with(library, module, x, target, rules, *, profile="reflrp", merge_batchnorm=False, tolerance=1e-6):
    """Run ``library`` ("zennit" or "captum") on ``module`` and compare its relevance, per layer, with reflrp's.

    Zennit: ``rules`` is one of reflrp's named composites, run as Zennit's composite of that name
    (``merge_batchnorm``: with its BatchNorm canonizer, and reflrp's side merges too).  Captum: its default rules
    (``rules="default"`` under ``profile="captum"``; under another profile, the rules reflrp's side uses).  The seed
    is the library's either way; ``profile`` is the conventions of reflrp's side.
    """
    x = torch.as_tensor(x)
    graph = reflrp.from_torch(module, x)
    x_array = x.detach().numpy()
    profile = conventions.as_profile(profile)
    if library == "zennit":
        values = graph.trace(x_array)
        sample, weights = as_target(target).select(values[explained_node(graph)])
        if not np.array_equal(sample, np.arange(len(x_array))):
            raise ReflrpError("Zennit is compared with one explanation per sample")
        maps = _run("Zennit", zennit_relevance, module, x, _zennit_composite(rules, x_array, merge_batchnorm), weights)
        if merge_batchnorm and profile.batchnorm == "keep":  # Zennit explained its canonized model
            profile = replace(profile, batchnorm="merge", options=(*profile.options, ("merge_batchnorm", True)))
    else:
        maps = _run("Captum", captum_relevance, module, x, _captum_target(target))
    seed = conventions.as_profile(library).seed
    return reflrp.compare(graph, x_array, target, rules, maps, profile=profile, seed=seed, tolerance=tolerance)


def _run(library, collect, *args):
    """The library's relevance; its own failure (a module it has no rule for, ...) as a ReflrpError that says so."""
    try:
        return collect(*args)
    except ReflrpError:
        raise
    except Exception as error:
        raise ReflrpError(f"{library} cannot explain this module: {type(error).__name__}: {str(error)[:300]}") from None
