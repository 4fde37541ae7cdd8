"""torchvision's Swin Transformer blocks, taken apart by :func:`reflrp.importers.torch.from_torch`:
``ShiftedWindowAttention`` and ``PatchMerging``.

Their forwards call functions that torch.fx keeps opaque (``shifted_window_attention``, ``_patch_merging_pad``),
and the attention folds a sample's windows into the batch axis.  In reflrp the batch axis belongs to the samples,
so a sample's windows become one more axis of the sample: a (H, W, C) map is cut into windows by a Reshape and a
Permute to (windows, tokens, C), attention runs on every window at once, and the inverse Reshape and Permute put
the windows back.  Shifted windows are a :class:`~reflrp.layers.Roll` before and after; the relative position bias
and the mask between the shifted regions are constants added to the scores (Scale nodes with a bias, so their
share of relevance shows in the ledger).  Patch merging is a Reshape, Permute, Reshape (the four interleaved
sub-grids side by side in the channels, in torchvision's order), then its LayerNorm and Linear.

The modules are recognised by class name and attributes; Swin V2's (cosine attention, ``PatchMergingV2``) are
refused by name.
"""

from __future__ import annotations

import numpy as np

from reflrp import layers as L
from reflrp.importers import torch_attention

#: torchvision's Swin modules, by class name: the attributes that make one.
SWIN_MODULES = {
    "ShiftedWindowAttention": ("window_size", "shift_size", "num_heads", "qkv", "proj",
                               "relative_position_bias_table", "relative_position_index", "get_relative_position_bias"),
    "PatchMerging": ("norm", "reduction"),
    "ShiftedWindowAttentionV2": (),
    "PatchMergingV2": (),
}


def is_swin_module(module):
    """torchvision's ``ShiftedWindowAttention``, ``PatchMerging`` or their V2 versions (refused when converted)."""
    attributes = SWIN_MODULES.get(type(module).__name__)
    return attributes is not None and all(hasattr(module, a) for a in attributes)


def taken_apart(torch, module):
    """The conversion of a module taken apart into several reflrp nodes (``nn.MultiheadAttention``, Swin's
    blocks), or None."""
    if type(module) is torch.nn.MultiheadAttention:
        return torch_attention.multihead_attention
    if is_swin_module(module):
        return {"ShiftedWindowAttention": window_attention, "PatchMerging": patch_merging}.get(
            type(module).__name__, _version_two)
    return None


def _version_two(c, module, node, name):
    c.audit.add(name, type(module).__name__, "Swin V2 (cosine attention, its position MLP, PatchMergingV2) is not "
                                             "supported; torchvision's swin_t, swin_s and swin_b are")


def _source(c, module, node, name):
    """The block's input and its per-sample (H, W, C) shape, or (None, None) (audited)."""
    kind = type(module).__name__
    if len(node.args) != 1 or node.kwargs:
        c.audit.add(name, kind, "takes one tensor argument")
        return None, None
    shape = c.shape(node.args[0])
    if shape is None or len(shape) != 4:
        c.audit.add(name, kind, f"takes (N, H, W, C) maps, got shape {shape}")
        return None, None
    return c.tensor_input(node, node.args[0], name, kind), shape[1:]


def _shift_mask(height, width, window, shift):
    """Swin's mask between the regions a cyclic shift brings into one window: (windows, 1, N, N), -100 between
    tokens of different regions, 0 within one."""
    region = np.zeros((height, width))
    for i, rows in enumerate(_regions(height, window[0], shift[0])):
        for j, columns in enumerate(_regions(width, window[1], shift[1])):
            region[rows, columns] = 3 * i + j
    grid = region.reshape(height // window[0], window[0], width // window[1], window[1])
    tokens = grid.transpose(0, 2, 1, 3).reshape(-1, window[0] * window[1])
    differs = tokens[:, None, :] != tokens[:, :, None]
    return np.where(differs, -100.0, 0.0)[:, None]


def _regions(size, window, shift):
    """The rows (columns) of each region along one axis: one region when that axis is not shifted."""
    if shift == 0:
        return (slice(0, size),)
    return slice(0, size - window), slice(size - window, size - shift), slice(size - shift, size)


def window_attention(c, module, node, name):
    """torchvision's ``ShiftedWindowAttention`` on (N, H, W, C) maps, as reflrp nodes (see the module's
    docstring); the last is named after the module."""
    source, shape = _source(c, module, node, name)
    if source is None:
        return None
    height, width, channels = shape
    window, heads = tuple(module.window_size), module.num_heads
    size = channels // heads
    pad_bottom, pad_right = (-height) % window[0], (-width) % window[1]
    height_p, width_p = height + pad_bottom, width + pad_right
    shift = tuple(0 if w >= n else s for w, n, s in zip(window, (height_p, width_p), module.shift_size))
    rows, columns = height_p // window[0], width_p // window[1]
    windows, tokens = rows * columns, window[0] * window[1]

    def add(suffix, layer, *inputs):
        return c.add(node, f"{name}.{suffix}" if suffix else name, layer, *inputs)

    x = source
    if pad_bottom or pad_right:
        x = add("pad", L.Pad((0, 0, 0, pad_right, 0, pad_bottom)), x)
    if any(shift):
        x = add("shift", L.Roll((-shift[0], -shift[1]), (1, 2)), x)
    x = add("windows", L.Reshape((rows, window[0], columns, window[1], channels)), x)
    x = add("windows.t", L.Permute((0, 1, 3, 2, 4, 5)), x)
    x = add("windows.tokens", L.Reshape((windows, tokens, channels)), x)
    weights = np.split(c.array(module.qkv.weight), 3)
    biases = np.split(c.array(module.qkv.bias), 3) if module.qkv.bias is not None else [None] * 3
    parts = {}
    for key, weight, bias in zip("qkv", weights, biases):
        projected = add(f"qkv.{key}", L.Linear(weight, bias), x)
        split = add(f"qkv.{key}.heads", L.Reshape((windows, tokens, heads, size)), projected)
        parts[key] = add(f"qkv.{key}.t", L.Permute((0, 1, 3, 2, 4)), split)  # (windows, heads, tokens, size)
    query = add("q.scaled", L.Scale(np.asarray(size ** -0.5, dtype=c.dtype)), parts["q"])
    keys = add("k.t", L.Permute((0, 1, 2, 4, 3)), parts["k"])
    scores = add("scores", L.MatMul(), query, keys)
    bias = c.array(module.get_relative_position_bias())[0]  # (heads, tokens, tokens)
    scores = add("position_bias", L.Scale(np.ones((), dtype=c.dtype), bias), scores)
    if any(shift):
        mask = _shift_mask(height_p, width_p, window, shift).astype(c.dtype)
        scores = add("shift_mask", L.Scale(np.ones((), dtype=c.dtype), mask), scores)
    probabilities = add("softmax", L.Softmax(4), scores)
    context = add("context", L.MatMul(gate=0), probabilities, parts["v"])
    context = add("context.t", L.Permute((0, 1, 3, 2, 4)), context)
    x = add("context.tokens", L.Reshape((windows, tokens, channels)), context)
    proj = module.proj
    steps = [("proj", L.Linear(c.array(proj.weight), c.array(proj.bias))),
             ("unwindow", L.Reshape((rows, columns, window[0], window[1], channels))),
             ("unwindow.t", L.Permute((0, 1, 3, 2, 4, 5))),
             ("unwindow.map", L.Reshape((height_p, width_p, channels)))]
    if any(shift):
        steps.append(("unshift", L.Roll(shift, (1, 2))))
    if pad_bottom or pad_right:
        steps += [("crop.rows", L.Narrow(1, 0, height)), ("crop.columns", L.Narrow(2, 0, width))]
    for k, (suffix, layer) in enumerate(steps):
        x = add(suffix if k < len(steps) - 1 else "", layer, x)  # the last is named after the module
    return x


def patch_merging(c, module, node, name):
    """torchvision's ``PatchMerging``: each 2x2 patch's four pixels side by side in the channels (x[0::2, 0::2],
    x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]), as Reshape, Permute, Reshape; then its LayerNorm and Linear."""
    source, shape = _source(c, module, node, name)
    if source is None:
        return None
    norm, reduction = module.norm, module.reduction
    if type(norm).__name__ != "LayerNorm" or type(reduction).__name__ != "Linear":
        c.audit.add(name, "PatchMerging", "a LayerNorm and a Linear are supported as its norm and reduction")
        return None
    height, width, channels = shape
    x = source
    if height % 2 or width % 2:
        x = c.add(node, f"{name}.pad", L.Pad((0, 0, 0, width % 2, 0, height % 2)), x)
    half_h, half_w = (height + 1) // 2, (width + 1) // 2
    x = c.add(node, f"{name}.patches", L.Reshape((half_h, 2, half_w, 2, channels)), x)
    x = c.add(node, f"{name}.patches.t", L.Permute((0, 1, 3, 4, 2, 5)), x)  # (h, w, column, row, C)
    x = c.add(node, f"{name}.merge", L.Reshape((half_h, half_w, 4 * channels)), x)
    x = c.add(node, f"{name}.norm.normalize", L.LayerNorm(tuple(norm.normalized_shape), norm.eps), x)
    x = c.add(node, f"{name}.norm", L.Scale(c.array(norm.weight), c.array(norm.bias)), x)
    return c.add(node, name, L.Linear(c.array(reduction.weight), c.array(reduction.bias)), x)


__all__ = ["SWIN_MODULES", "is_swin_module", "patch_merging", "taken_apart", "window_attention"]
