"""The conversions of :func:`reflrp.importers.torch.from_torch` for PyTorch module types: one handler per
``nn`` class in :data:`MODULES`, taking the converter, the module, the fx node and the node's name, and returning
a layer, an existing node's name (after adding nodes of its own), or None after recording in the audit why it
cannot convert."""

from __future__ import annotations

import numpy as np

from reflrp import layers as L
from reflrp.importers.torch_ops import (
    adaptive_avg_pool,
    avg_pool,
    group_norm,
    interpolate,
    layer_norm,
    max_pool,
    softmax,
)
from reflrp.importers.torch_shapes import channel_shuffle, flatten

# -- module handlers: (converter, module, fx node, name) -> layer or None (audited) ----------------------------


def _padding_mode(c, module, name):
    if getattr(module, "padding_mode", "zeros") != "zeros":
        c.audit.add(name, type(module).__name__, f"padding_mode={module.padding_mode!r} (only 'zeros' and, for "
                                                 f"convolutions, 'replicate' are supported)")
        return False
    return True


def _replicated(c, module, node, name):
    """A convolution with ``padding_mode='replicate'``: its padding as a Pad of edge copies, then the convolution
    without padding; the Pad's node name (or None, audited)."""
    kernel, dilation = module.weight.shape[2:], module.dilation
    if module.padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        pairs = [(t // 2, t - t // 2) for t in totals]
    else:
        pairs = [(p, p) for p in module.padding]
    widths = tuple(w for pair in reversed(pairs) for w in pair)
    source = c.tensor_input(node, node.args[0], name, type(module).__name__)
    return c.add(node, f"{name}.pad", c.layer(name, "Pad", lambda: L.Pad(widths, mode="replicate")), source)


def _conv(layer_type):
    def convert(c, module, node, name):
        if getattr(module, "padding_mode", "zeros") == "replicate":
            padded = _replicated(c, module, node, name)
            conv = c.layer(name, layer_type.__name__, lambda: layer_type(
                c.array(module.weight), c.array(module.bias), stride=module.stride, padding=0,
                dilation=module.dilation, groups=module.groups))
            return c.add(node, name, conv, padded)
        if not _padding_mode(c, module, name):
            return None
        return c.layer(name, layer_type.__name__, lambda: layer_type(
            c.array(module.weight), c.array(module.bias), stride=module.stride, padding=module.padding,
            dilation=module.dilation, groups=module.groups))

    return convert


def _conv_transpose(layer_type):
    def convert(c, module, node, name):
        if not _padding_mode(c, module, name):
            return None
        return c.layer(name, layer_type.__name__, lambda: layer_type(
            c.array(module.weight), c.array(module.bias), stride=module.stride, padding=module.padding,
            output_padding=module.output_padding, dilation=module.dilation, groups=module.groups))

    return convert


def _linear(c, module, node, name):
    return c.layer(name, "Linear", lambda: L.Linear(c.array(module.weight), c.array(module.bias)))


def _batchnorm(layer_type):
    def convert(c, module, node, name):
        if module.running_mean is None or module.running_var is None:
            c.audit.add(name, type(module).__name__, "track_running_stats=False: batch statistics are not a fixed "
                                                     "affine map")
            return None
        if module.training:
            c.audit.add(name, type(module).__name__, "the module is in training mode (batch statistics); call "
                                                     ".eval() first")
            return None
        return c.layer(name, layer_type.__name__, lambda: layer_type(
            c.array(module.running_mean), c.array(module.running_var), c.array(module.weight), c.array(module.bias),
            eps=module.eps))

    return convert


def _instance_norm(batchnorm):
    def convert(c, module, node, name):
        if module.track_running_stats and not module.training:  # running statistics: a fixed affine map
            return _batchnorm(batchnorm)(c, module, node, name)
        channels = (c.shape(node) or (0, 0))[1]
        return group_norm(c, node, {"input": node.args[0], "num_groups": channels, "weight": c.array(module.weight),
                                    "bias": c.array(module.bias), "eps": module.eps}, name)

    return convert


def _prelu(c, module, node, name):
    return c.layer(name, "PReLU", lambda: L.PReLU(c.array(module.weight)))


def _max_pool_module(c, module, node, name):
    return max_pool(c, node, {"kernel_size": module.kernel_size, "stride": module.stride, "padding": module.padding,
                               "dilation": module.dilation, "ceil_mode": module.ceil_mode,
                               "return_indices": module.return_indices}, name)


def _avg_pool_module(c, module, node, name):
    return avg_pool(c, node, {"kernel_size": module.kernel_size, "stride": module.stride, "padding": module.padding,
                               "ceil_mode": module.ceil_mode, "count_include_pad": module.count_include_pad,
                               "divisor_override": getattr(module, "divisor_override", None)}, name)


def _adaptive_pool_module(c, module, node, name):
    return adaptive_avg_pool(c, node, {"output_size": module.output_size}, name)


def _upsample_module(c, module, node, name):
    return interpolate(c, node, {"size": module.size, "scale_factor": module.scale_factor, "mode": module.mode,
                                  "align_corners": module.align_corners}, name)


def _softmax_module(c, module, node, name):
    return softmax(c, node, {"dim": module.dim}, name)


def _flatten_module(c, module, node, name):
    return flatten(c, node, {"start_dim": module.start_dim, "end_dim": module.end_dim}, name)


def _dropout_module(c, module, node, name):
    return c.layer(name, "Dropout", lambda: L.Dropout(module.p))


def rms_norm(c, module, node, name):
    """``nn.RMSNorm`` and Hugging Face style RMSNorm (``weight``, ``variance_epsilon``): the normalisation, then its
    weight as a Scale node named after the module."""
    eps = getattr(module, "variance_epsilon", getattr(module, "eps", None))
    shape = tuple(module.normalized_shape) if hasattr(module, "normalized_shape") else tuple(module.weight.shape)
    if eps is None:  # nn.RMSNorm(eps=None): the machine epsilon of the dtype
        eps = float(np.finfo(c.dtype).eps)
    source = c.tensor_input(node, node.args[0] if node.args else None, name, type(module).__name__)
    norm = c.layer(name, "RMSNorm", lambda: L.RMSNorm(shape, eps))
    if module.weight is None:
        return c.add(node, name, norm, source)
    normalized = c.add(node, f"{name}.normalize", norm, source)
    return c.add(node, name, c.layer(name, "Scale", lambda: L.Scale(c.array(module.weight))), normalized)


def embedding(c, module, name):
    """``nn.Embedding``: a lookup of token ids (the graph's input, as floats)."""
    if module.max_norm is not None:
        c.audit.add(name, "Embedding", "max_norm is not supported (it renormalises the table while looking up)")
        return None
    return c.layer(name, "Embedding", lambda: L.Embedding(c.array(module.weight)))


def hugging_face_leaf(c, module, name):
    """A Hugging Face module of :data:`~reflrp.importers.torch_tracing.HUGGING_FACE_LEAVES` as a reflrp layer:
    GPT-2's ``Conv1D`` (weight (in, out)) as a Linear, the tanh-approximated GELUs as GELU."""
    if type(module).__name__ == "Conv1D":
        return c.layer(name, "Conv1D", lambda: L.Linear(c.array(module.weight).T, c.array(module.bias)))
    return L.GELU("tanh")


#: (nn module class name, handler, note for the docs)
MODULES = [
    ("Conv1d", _conv(L.Conv1d), "padding_mode 'zeros' or 'replicate'; stride, padding (incl. 'same'), dilation, "
     "groups"),
    ("Conv2d", _conv(L.Conv2d), "padding_mode 'zeros' or 'replicate'; stride, padding (incl. 'same'), dilation, "
     "groups"),
    ("Conv3d", _conv(L.Conv3d), "padding_mode 'zeros' or 'replicate'; stride, padding (incl. 'same'), dilation, "
     "groups"),
    ("ConvTranspose1d", _conv_transpose(L.ConvTranspose1d), "padding_mode='zeros'; output_padding, dilation, groups"),
    ("ConvTranspose2d", _conv_transpose(L.ConvTranspose2d), "padding_mode='zeros'; output_padding, dilation, groups"),
    ("ConvTranspose3d", _conv_transpose(L.ConvTranspose3d), "padding_mode='zeros'; output_padding, dilation, groups"),
    ("Linear", _linear, ""),
    ("BatchNorm1d", _batchnorm(L.BatchNorm1d), "eval mode, running statistics"),
    ("BatchNorm2d", _batchnorm(L.BatchNorm2d), "eval mode, running statistics"),
    ("BatchNorm3d", _batchnorm(L.BatchNorm3d), "eval mode, running statistics"),
    ("ReLU", lambda c, m, n, name: L.ReLU(), ""),
    ("ReLU6", lambda c, m, n, name: L.ReLU6(), ""),
    ("Hardsigmoid", lambda c, m, n, name: L.Hardsigmoid(), ""),
    ("Hardswish", lambda c, m, n, name: L.Hardswish(), ""),
    ("SiLU", lambda c, m, n, name: L.SiLU(), ""),
    ("GELU", lambda c, m, n, name: c.layer(name, "GELU", lambda: L.GELU(m.approximate)),
     "approximate 'none' or 'tanh'"),
    ("Mish", lambda c, m, n, name: L.Mish(), ""),
    ("GroupNorm", lambda c, m, n, name: group_norm(c, n, {"input": n.args[0], "num_groups": m.num_groups,
                                                          "weight": c.array(m.weight), "bias": c.array(m.bias),
                                                          "eps": m.eps}, name),
     "as GroupNorm (relevance passes) and Scale (its weight and bias)"),
    ("LayerNorm", lambda c, m, n, name: layer_norm(c, n, {"input": n.args[0], "normalized_shape": m.normalized_shape,
                                                          "weight": c.array(m.weight), "bias": c.array(m.bias),
                                                          "eps": m.eps}, name),
     "as LayerNorm (relevance passes) and Scale (its weight and bias)"),
    ("InstanceNorm1d", _instance_norm(L.BatchNorm1d), "as GroupNorm with a group per channel and Scale (its weight "
     "and bias); with track_running_stats, in eval mode, as BatchNorm1d"),
    ("InstanceNorm2d", _instance_norm(L.BatchNorm2d), "as GroupNorm with a group per channel and Scale (its weight "
     "and bias); with track_running_stats, in eval mode, as BatchNorm2d"),
    ("InstanceNorm3d", _instance_norm(L.BatchNorm3d), "as GroupNorm with a group per channel and Scale (its weight "
     "and bias); with track_running_stats, in eval mode, as BatchNorm3d"),
    ("RMSNorm", rms_norm, "as RMSNorm (relevance passes) and Scale (its weight); Hugging Face's RMSNorm modules too"),
    ("Embedding", lambda c, m, n, name: embedding(c, m, name), "token ids (no max_norm)"),
    ("LeakyReLU", lambda c, m, n, name: c.layer(name, "LeakyReLU", lambda: L.LeakyReLU(m.negative_slope)), ""),
    ("PReLU", _prelu, "one slope, or one per channel"),
    ("Sigmoid", lambda c, m, n, name: L.Sigmoid(), "at the output: explained at the logit"),
    ("Tanh", lambda c, m, n, name: L.Tanh(), ""),
    ("Softmax", _softmax_module, "at the output only"),
    ("MaxPool1d", _max_pool_module, "dilation 1"),
    ("MaxPool2d", _max_pool_module, "dilation 1"),
    ("MaxPool3d", _max_pool_module, "dilation 1"),
    ("AvgPool1d", _avg_pool_module, ""),
    ("AvgPool2d", _avg_pool_module, "no divisor_override"),
    ("AvgPool3d", _avg_pool_module, "no divisor_override"),
    ("AdaptiveAvgPool1d", _adaptive_pool_module, ""),
    ("AdaptiveAvgPool2d", _adaptive_pool_module, ""),
    ("AdaptiveAvgPool3d", _adaptive_pool_module, ""),
    ("Upsample", _upsample_module, "nearest, linear, bilinear, trilinear; integer factors"),
    ("Flatten", _flatten_module, "batch axis kept"),
    ("Dropout", _dropout_module, "eval mode: the identity"),
    ("Dropout2d", _dropout_module, "eval mode: the identity"),
    ("Dropout1d", _dropout_module, "eval mode: the identity"),
    ("ChannelShuffle", lambda c, m, n, name: channel_shuffle(c, n, {"groups": m.groups, "input": n.args[0]}, name),
     "as Reshape, Permute, Reshape"),
    ("Identity", lambda c, m, n, name: L.Identity(), ""),
    ("ZeroPad2d", lambda c, m, n, name: c.layer(name, "ZeroPad2d", lambda: L.ZeroPad2d(tuple(m.padding))), ""),
]


__all__ = ["MODULES"]
