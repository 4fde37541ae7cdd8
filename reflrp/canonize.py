"""Canonization: rewrite a model into an equivalent one that rules treat better.

:func:`merge_batchnorm` folds each inference-mode BatchNorm into the Linear, Conv2d or ConvTranspose2d that
feeds it, so the BN shift becomes part of that layer's bias.  The alternatives (docs/batchnorm.md) are to
keep BN as an affine layer under the active rule (its shift is a bias in the ledger) or to give it
:class:`~reflrp.rules.Pass`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.graph import INPUT, Graph
from reflrp.layers import (
    BATCHNORMS,
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    Linear,
)

_FOLDS_INTO = {BatchNorm1d: (Linear, Conv1d, ConvTranspose1d), BatchNorm2d: (Conv2d, ConvTranspose2d),
               BatchNorm3d: (Conv3d, ConvTranspose3d)}
_TRANSPOSED = (ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)


def _scaled(layer, scale, shift):
    """``layer`` followed by ``a * scale + shift`` as one layer of the same type."""
    weight = layer.weight
    if isinstance(layer, _TRANSPOSED):  # IOHW: output channel g * og + j is column j of group g's rows
        og = weight.shape[1]
        per_row = np.repeat(scale.reshape(layer.groups, og), weight.shape[0] // layer.groups, axis=0)
        weight = weight * per_row.reshape(per_row.shape + (1,) * (weight.ndim - 2))
    else:
        weight = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    bias = shift if layer.bias is None else layer.bias * scale + shift
    return replace(layer, weight=weight, bias=bias)


def merge_batchnorm(model, report=False, leave_eps=False):
    """Fold every BatchNorm that directly follows a layer it can merge into.

    A ``BatchNorm2d`` folds into a Conv2d or ConvTranspose2d, a ``BatchNorm3d`` into a Conv3d or ConvTranspose3d, a
    ``BatchNorm1d`` into a Linear or Conv1d, when that layer's output feeds only the BatchNorm.  The merged node keeps
    the layer's name and takes over the BatchNorm's consumers.  The merged model computes the same function up to
    rounding.

    Parameters
    ----------
    model : Graph or Sequential
    report : bool
        Also return ``{BatchNorm node name: why it was not folded}``.
    leave_eps : bool
        Leave each folded BatchNorm where it was, with mean 0, variance 1, weight 1, bias 0 and its own ``eps``:
        a layer that still divides by ``sqrt(1 + eps)``, so the result is *not* the original model (5e-6 relative
        per BatchNorm with ``eps = 1e-5``).  What Zennit 0.5.1's ``SequentialMergeBatchNorm`` leaves behind,
        reproduced on request (``reflrp.compat.Zennit(merge_batchnorm=True, merge_defect=True)``).

    Returns
    -------
    Graph, or (Graph, report) with ``report=True``.
    """
    if not isinstance(model, Graph):
        raise ReflrpError(f"model must be a reflrp Graph or Sequential, got {type(model).__name__}")
    report = validate.boolean(report, "merge_batchnorm: report")
    leave_eps = validate.boolean(leave_eps, "merge_batchnorm: leave_eps")
    merged, renamed, unmerged = {}, {}, {}
    for node in model.nodes:
        if not isinstance(node.layer, BATCHNORMS):
            continue
        (source,) = node.inputs
        allowed = _FOLDS_INTO[type(node.layer)]
        if source == INPUT:
            unmerged[node.name] = "it follows the model input"
            continue
        producer = model[source]
        if not isinstance(producer.layer, allowed):
            unmerged[node.name] = (
                f"it follows {producer.label}; a {type(node.layer).__name__} folds only into "
                f"{' or '.join(t.__name__ for t in allowed)}"
            )
            continue
        if model.consumers(source) != [node.name] or source == model.output:
            unmerged[node.name] = f"{producer.label} also feeds other nodes"
            continue
        if producer.layer.dtype != node.layer.dtype:
            unmerged[node.name] = f"its dtype differs from {producer.label}'s"
            continue
        channels = producer.layer.out_channels if isinstance(producer.layer, _TRANSPOSED) else \
            producer.layer.weight.shape[0]
        if channels != node.layer.num_features:
            raise ReflrpError(f"{node.label}: has {node.layer.num_features} channels but {producer.label} has "
                              f"{channels} outputs: the model cannot run")
        merged[source] = _scaled(producer.layer, node.layer.scale, node.layer.shift)
        renamed[node.name] = source
    nodes = []
    for node in model.nodes:
        if node.name in renamed:
            if leave_eps:
                bn = node.layer
                nodes.append(replace(node, layer=replace(bn, running_mean=np.zeros_like(bn.running_mean),
                                                         running_var=np.ones_like(bn.running_var),
                                                         weight=np.ones_like(bn.running_mean),
                                                         bias=np.zeros_like(bn.running_mean))))
            continue
        inputs = node.inputs if leave_eps else tuple(renamed.get(i, i) for i in node.inputs)
        nodes.append(replace(node, layer=merged.get(node.name, node.layer), inputs=inputs))
    output = model.output if leave_eps else renamed.get(model.output, model.output)
    result = Graph(nodes, output=output)
    return (result, unmerged) if report else result


__all__ = ["merge_batchnorm"]
