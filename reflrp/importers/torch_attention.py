"""The conversions of :func:`reflrp.importers.torch.from_torch` for transformers: matrix products of two
activations, ``F.scaled_dot_product_attention`` and ``nn.MultiheadAttention`` taken apart into their products,
scale and softmax, and the constants a transformer adds or concatenates (position embeddings, class tokens).

Attention becomes, per head, ``q @ k.T`` (a :class:`~reflrp.layers.MatMul`), a scale, a
:class:`~reflrp.layers.Softmax` (causal when asked) and ``probabilities @ v`` (a MatMul whose gate is the
probabilities), so that every part gets its own rule and its own ledger row."""

from __future__ import annotations

import math

import numpy as np

from reflrp import layers as L
from reflrp.importers.common import where as where_of


class Outputs:
    """The outputs of a module that returns a tuple (``nn.MultiheadAttention``): a reflrp node name per position,
    None for outputs that are not converted (the attention weights)."""

    def __init__(self, names, missing):
        self.names = names
        self.missing = missing  # why a None output is not available


def matmul(c, node, a, name=None):
    """``a @ b``, ``torch.matmul``, ``torch.bmm`` of two tensors computed from the input: a MatMul, its gate the
    operand a Softmax made."""
    where = where_of(node, name)
    operands = [a["input"], a["other"]]
    if not all(hasattr(v, "op") and isinstance(c.values.get(v), str) for v in operands):
        constants = [v for v in operands if hasattr(v, "op") and c.constant(v) is not None]
        if constants:
            c.audit.add(where, "matmul", "a product with a parameter is not supported: use nn.Linear")
            return None
        return L.MatMul(), operands  # tensor_input reports what is not a tensor
    gates = [k for k, v in enumerate(operands) if c.produced_by(v) == "Softmax"]
    return c.layer(where, "matmul", lambda: L.MatMul(gate=gates[0] if len(gates) == 1 else None)), operands


def attention(c, node, where, q, k, v, *, ndim, causal, scale, size):
    """Nodes for ``softmax(q @ k.T * scale) @ v`` on ``ndim``-D (N, ..., T, E) tensors named ``q``, ``k``, ``v``
    (reflrp node names), ``size`` = E; returns the name of the context node."""
    axes = tuple(range(ndim - 2)) + (ndim - 1, ndim - 2)
    keys = c.add(node, f"{where}.k.t", L.Permute(axes), k)
    scores = c.add(node, f"{where}.scores", L.MatMul(), q, keys)
    factor = 1.0 / math.sqrt(size) if scale is None else float(scale)
    scaled = c.add(node, f"{where}.scaled", L.Scale(np.asarray(factor, dtype=c.dtype)), scores)
    probabilities = c.add(node, f"{where}.softmax", L.Softmax(ndim - 1, causal=causal), scaled)
    return c.add(node, f"{where}.context", L.MatMul(gate=0), probabilities, v)


def mask_kind(mask):
    """``"none"`` for an attention mask that hides nothing (all True, or all 0 added), ``"causal"`` for one that
    hides exactly the keys after each query (``j > i + keys - queries``; False, or a value below -1e30 added, the
    rest as for "none"), None for any other (per-sample shape (..., queries, keys), leading axes of 1)."""
    if mask.ndim < 2 or any(n != 1 for n in mask.shape[:-2]):
        return None
    queries, keys = mask.shape[-2:]
    hidden = np.arange(keys)[None, :] > np.arange(queries)[:, None] + (keys - queries)
    plane = mask.reshape(queries, keys)
    shown = plane if plane.dtype == bool else plane == 0
    dropped = ~plane if plane.dtype == bool else plane < -1e30
    if not (shown | dropped).all():
        return None
    if shown.all():
        return "none"
    return "causal" if np.array_equal(dropped, hidden) else None


def scaled_dot_product_attention(c, node, a, name=None):
    """``F.scaled_dot_product_attention(q, k, v)`` without dropout (``is_causal`` and ``scale`` kept; an
    ``attn_mask`` computed from constants that hides nothing or is causal, :func:`mask_kind`), as its parts."""
    where = where_of(node, name)
    if a["dropout_p"] or a["enable_gqa"]:
        c.audit.add(where, "scaled_dot_product_attention", "dropout_p and enable_gqa are not supported")
        return None
    causal = bool(a["is_causal"])
    if a["attn_mask"] is not None:
        mask = c.constant(a["attn_mask"]) if hasattr(a["attn_mask"], "op") else None
        kind = None if mask is None else mask_kind(mask)
        if kind is None:
            c.audit.add(where, "scaled_dot_product_attention", "attn_mask is supported when it hides nothing or is "
                                                               "a causal mask (a padding mask is not)")
            return None
        causal = causal or kind == "causal"
    q, k, v = (c.tensor_input(node, a[key], where, "scaled_dot_product_attention") for key in
               ("query", "key", "value"))
    if None in (q, k, v):
        return None
    shape = c.shape(a["query"])
    if a["is_causal"] and shape[-2] != c.shape(a["key"])[-2]:  # PyTorch aligns is_causal at the top left
        c.audit.add(where, "scaled_dot_product_attention", "is_causal with fewer queries than keys (PyTorch's mask "
                                                           "aligned at the top left) is not supported")
        return None
    return attention(c, node, where, q, k, v, ndim=len(shape), causal=causal, scale=a["scale"], size=shape[-1])


def multihead_attention(c, module, node, name):
    """``nn.MultiheadAttention`` with ``batch_first=True`` called as self-attention (``m(x, x, x)``) without masks:
    three Linear projections, per-head attention, the output projection (a node named after the module); returns
    :class:`Outputs` (the attention weights are not converted)."""
    args = list(node.args) + [node.kwargs.get(k) for k in ("query", "key", "value") if k in node.kwargs]
    options = {k: v for k, v in node.kwargs.items() if k not in ("query", "key", "value")}
    masks = {k: v for k, v in options.items() if k in ("key_padding_mask", "attn_mask") and v is not None}
    problems = []
    if len(args) != 3 or not (args[0] is args[1] is args[2]):
        problems.append("only self-attention m(x, x, x) is supported")
    if masks or options.get("is_causal"):
        problems.append(f"masks are not supported ({', '.join(sorted(masks)) or 'is_causal'})")
    if not module.batch_first:
        problems.append("batch_first=False: the batch must be the first axis")
    if not module._qkv_same_embed_dim or module.bias_k is not None or module.add_zero_attn:
        problems.append("separate key/value sizes, bias_k/bias_v and add_zero_attn are not supported")
    if problems:
        c.audit.add(name, "MultiheadAttention", "; ".join(problems))
        return None
    source = c.tensor_input(node, args[0], name, "MultiheadAttention")
    if source is None:
        return None
    tokens = c.shape(args[0])[1]
    width, heads = module.embed_dim, module.num_heads
    size = width // heads
    weights = np.split(c.array(module.in_proj_weight), 3)
    biases = np.split(c.array(module.in_proj_bias), 3) if module.in_proj_bias is not None else [None] * 3
    parts = {}
    for key, weight, bias in zip("qkv", weights, biases):
        projected = c.add(node, f"{name}.{key}", L.Linear(weight, bias), source)
        split = c.add(node, f"{name}.{key}.heads", L.Reshape((tokens, heads, size)), projected)
        parts[key] = c.add(node, f"{name}.{key}.t", L.Permute((0, 2, 1, 3)), split)
    context = attention(c, node, name, parts["q"], parts["k"], parts["v"], ndim=4, causal=False, scale=None,
                        size=size)
    context = c.add(node, f"{name}.context.t", L.Permute((0, 2, 1, 3)), context)
    merged = c.add(node, f"{name}.merge", L.Reshape((tokens, width)), context)
    out = module.out_proj
    result = c.add(node, name, L.Linear(c.array(out.weight), c.array(out.bias)), merged)
    return Outputs([result, None], "the attention weights of nn.MultiheadAttention are not converted")


def divide(c, node, a, name=None):
    """``x / number`` (attention's ``/ sqrt(d)``): a :class:`~reflrp.layers.Scale` by its reciprocal."""
    where = where_of(node, name)
    divisor = a["other"]
    if isinstance(divisor, bool) or not isinstance(divisor, (int, float)) or divisor == 0:
        c.audit.add(where, "div", f"dividing by {divisor!r} is supported for non-zero numbers only")
        return None
    return L.Scale(np.asarray(1.0 / divisor, dtype=c.dtype))


def add_constant(c, where, tensor, constant):
    """``x + parameter`` (a position embedding) or ``x + number``: a :class:`~reflrp.layers.Scale` with weight 1
    and the constant as its bias, so that the constant's share of relevance shows in the ledger; None (audited)
    when the constant does not broadcast over one sample."""
    value = np.asarray(constant, dtype=c.dtype)
    if value.ndim == len(c.shape(tensor)) and value.shape[0] == 1:  # (1, ...): one sample's constant
        value = value[0]
    return c.layer(where, "add", lambda: L.Scale(np.ones((), dtype=c.dtype), value)), [tensor]


def concat_constant(c, node, where, tensors, axis):
    """``torch.cat([class_token.expand(n, -1, -1), x], dim)``: a :class:`~reflrp.layers.ConstantConcat`; None when
    the parts are not one constant and one tensor."""
    kinds = [c.constant(t) if hasattr(t, "op") and not isinstance(c.values.get(t), str) else None for t in tensors]
    if len(tensors) != 2 or sum(k is not None for k in kinds) != 1:
        return None
    position = 0 if kinds[0] is not None else 1
    value = kinds[position]
    if value.shape[0] == 1:
        value = value[0]
    return c.layer(where, "cat", lambda: L.ConstantConcat(value, axis, position)), [tensors[1 - position]]


__all__ = ["Outputs", "add_constant", "attention", "concat_constant", "divide", "mask_kind", "matmul",
           "multihead_attention", "scaled_dot_product_attention"]
