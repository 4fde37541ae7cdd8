"""The Keras layers :func:`reflrp.importers.keras.from_keras` converts, one function per layer class.

A :class:`Tensor` is a reflrp node with its per-sample shape and its layout: ``"keras"`` (channels-last, as the
Keras model sees it) or ``"channels_first"`` (as reflrp's convolutions want it).  Converters move tensors between
the two only where needed (:func:`to_channels_first`, :func:`to_keras`).
"""

from __future__ import annotations

from reflrp import layers as L
from reflrp.errors import ReflrpError


class Tensor:
    def __init__(self, name, shape, layout):
        self.name, self.shape, self.layout = name, tuple(int(v) for v in shape), layout


def _add(c, where, layer, *inputs, layout):
    name = c.builder.add(where, layer, *(t.name for t in inputs))
    return Tensor(name, layer.output_shape(*(t.shape for t in inputs)), layout)


def to_channels_first(c, t, where):
    """``t`` in channels-first layout (a Permute node when it is channels-last with 2 or more axes)."""
    if t.layout == "channels_first" or len(t.shape) < 2:
        return t
    rank = len(t.shape)
    return _add(c, f"{where}.channels_first", L.Permute((0, rank, *range(1, rank))), t, layout="channels_first")


def to_keras(c, t, where):
    """``t`` in Keras' channels-last layout."""
    if t.layout == "keras" or len(t.shape) < 2:
        return Tensor(t.name, t.shape, "keras")
    rank = len(t.shape)
    return _add(c, f"{where}.channels_last", L.Permute((0, *range(2, rank + 1), 1)), t, layout="keras")


def _pair(value):
    return tuple(value) if isinstance(value, (list, tuple)) else (value, value)


def _sizes(value, dims):
    """An int or a sequence of ``dims`` ints, as a tuple of ``dims``."""
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * dims


def _same_pads(sizes, kernel, strides, dilation):
    """TensorFlow's SAME padding per axis: (before, after), the odd pixel after."""
    pads = []
    for n, k, s, d in zip(sizes, kernel, strides, dilation):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def conv2d(c, cfg, inputs, where):
    t = to_channels_first(c, inputs[0], where)
    a = c.arrays(cfg, ["kernel", "bias"] if cfg.get("use_bias", True) else ["kernel"])
    kernel, strides, dilation = a["kernel"].transpose(3, 2, 0, 1), _pair(cfg["strides"]), _pair(cfg["dilation_rate"])
    padding = cfg["padding"]
    if padding == "same" and strides != (1, 1):
        pads = _same_pads(t.shape[1:], kernel.shape[2:], strides, dilation)
        if pads[0][0] != pads[0][1] or pads[1][0] != pads[1][1]:
            t = _add(c, f"{where}.pad", L.ZeroPad2d((pads[1][0], pads[1][1], pads[0][0], pads[0][1])), t,
                     layout="channels_first")
            padding = 0
        else:
            padding = (pads[0][0], pads[1][0])
    elif padding not in ("same", "valid"):
        raise ReflrpError(f"padding={padding!r} is not supported")
    layer = L.Conv2d(kernel, a.get("bias"), stride=strides, padding=padding, dilation=dilation,
                     groups=cfg.get("groups", 1))
    return _add(c, where, layer, t, layout="channels_first")


def conv1d(c, cfg, inputs, where):
    t = to_channels_first(c, inputs[0], where)
    a = c.arrays(cfg, ["kernel", "bias"] if cfg.get("use_bias", True) else ["kernel"])
    kernel = a["kernel"].transpose(2, 1, 0)
    (stride,), (dilation,) = tuple(cfg["strides"]), tuple(cfg["dilation_rate"])
    padding = cfg["padding"]
    if padding == "same" and stride != 1:
        (before, after), = _same_pads(t.shape[1:], kernel.shape[2:], (stride,), (dilation,))
        if before != after:
            raise ReflrpError("padding='same' with a stride that pads asymmetrically is not supported")
        padding = before
    elif padding not in ("same", "valid"):
        raise ReflrpError(f"padding={padding!r} is not supported")
    layer = L.Conv1d(kernel, a.get("bias"), stride=stride, padding=padding, dilation=dilation,
                     groups=cfg.get("groups", 1))
    return _add(c, where, layer, t, layout="channels_first")


def conv3d(c, cfg, inputs, where):
    t = to_channels_first(c, inputs[0], where)
    a = c.arrays(cfg, ["kernel", "bias"] if cfg.get("use_bias", True) else ["kernel"])
    kernel = a["kernel"].transpose(4, 3, 0, 1, 2)
    strides, dilation = _sizes(cfg["strides"], 3), _sizes(cfg["dilation_rate"], 3)
    padding = cfg["padding"]
    if padding == "same" and strides != (1, 1, 1):
        pads = _same_pads(t.shape[1:], kernel.shape[2:], strides, dilation)
        if any(b != e for b, e in pads):  # TensorFlow puts the odd voxel after: an explicit padding first
            widths = tuple(w for b, e in reversed(pads) for w in (b, e))
            t = _add(c, f"{where}.pad", L.Pad(widths), t, layout="channels_first")
            padding = 0
        else:
            padding = tuple(b for b, _ in pads)
    elif padding not in ("same", "valid"):
        raise ReflrpError(f"padding={padding!r} is not supported")
    layer = L.Conv3d(kernel, a.get("bias"), stride=strides, padding=padding, dilation=dilation,
                     groups=cfg.get("groups", 1))
    return _add(c, where, layer, t, layout="channels_first")


def conv2d_transpose(c, cfg, inputs, where):
    if cfg.get("output_padding") is not None:
        raise ReflrpError("output_padding is not supported")
    t = to_channels_first(c, inputs[0], where)
    a = c.arrays(cfg, ["kernel", "bias"] if cfg.get("use_bias", True) else ["kernel"])
    kernel, strides, dilation = a["kernel"].transpose(3, 2, 0, 1), _pair(cfg["strides"]), _pair(cfg["dilation_rate"])
    if cfg["padding"] not in ("same", "valid"):
        raise ReflrpError(f"padding={cfg['padding']!r} is not supported")
    crops, extra = [], []
    for n, k, s, d in zip(t.shape[1:], kernel.shape[2:], strides, dilation):
        k_eff = (k - 1) * d + 1
        keras_out = n * s if cfg["padding"] == "same" else n * s + max(k_eff - s, 0)
        full = (n - 1) * s + k_eff
        total = max(full - keras_out, 0)
        crops.append((total // 2, total - total // 2))
        extra.append(max(keras_out - full, 0))
    padding = tuple(b for b, _ in crops) if all(b == e for b, e in crops) else (0, 0)
    t = _add(c, where, L.ConvTranspose2d(kernel, a.get("bias"), stride=strides, padding=padding,
                                         output_padding=tuple(extra), dilation=dilation), t, layout="channels_first")
    if padding == (0, 0) and any(b or e for b, e in crops):
        t = _add(c, f"{where}.crop", L.Crop(tuple(crops)), t, layout="channels_first")
    return t


def dense(c, cfg, inputs, where):
    t = to_keras(c, inputs[0], where)
    if len(t.shape) != 1:
        raise ReflrpError(f"Dense on a {t.shape}-shaped input (more than one axis) is not supported; add a Flatten")
    a = c.arrays(cfg, ["kernel", "bias"] if cfg.get("use_bias", True) else ["kernel"])
    return _add(c, where, L.Linear(a["kernel"].T, a.get("bias")), t, layout="keras")


def batch_normalization(c, cfg, inputs, where):
    axis = cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    rank = len(inputs[0].shape)
    if isinstance(axis, bool) or not isinstance(axis, int) or axis not in (-1, rank):
        raise ReflrpError(f"axis={cfg.get('axis')!r} is not supported (only the channel axis, -1)")
    order = (["gamma"] if cfg.get("scale", True) else []) + (["beta"] if cfg.get("center", True) else [])
    a = c.arrays(cfg, order + ["moving_mean", "moving_variance"])
    t = to_channels_first(c, inputs[0], where)
    kind = {3: L.BatchNorm2d, 4: L.BatchNorm3d}.get(rank, L.BatchNorm1d)
    layer = kind(a["moving_mean"], a["moving_variance"], a.get("gamma"), a.get("beta"), eps=cfg.get("epsilon", 1e-3))
    return _add(c, where, layer, t, layout=t.layout)


def activation_layer(c, cfg, inputs, where):
    return inputs[0]  # the activation itself is applied by convert()


def relu(c, cfg, inputs, where):
    if cfg.get("max_value") is not None or cfg.get("threshold", 0) != 0:
        raise ReflrpError("max_value and threshold are not supported")
    slope = cfg.get("negative_slope", 0.0) or 0.0
    t = inputs[0]
    return _add(c, where, L.LeakyReLU(slope) if slope else L.ReLU(), t, layout=t.layout)


def leaky_relu(c, cfg, inputs, where):
    slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
    return _add(c, where, L.LeakyReLU(slope), inputs[0], layout=inputs[0].layout)


_MAX_POOLS = {1: L.MaxPool1d, 2: L.MaxPool2d, 3: L.MaxPool3d}
_AVG_POOLS = {1: L.AvgPool1d, 2: L.AvgPool2d, 3: L.AvgPool3d}
_GLOBAL_POOLS = {1: L.AdaptiveAvgPool1d, 2: L.AdaptiveAvgPool2d, 3: L.AdaptiveAvgPool3d}


def _pooling(c, cfg, inputs, where, kind, dims=2):
    t = to_channels_first(c, inputs[0], where)
    size = _sizes(cfg["pool_size"], dims)
    strides = _sizes(cfg.get("strides") or size, dims)
    padding = (0,) * dims
    if cfg["padding"] == "same":
        pads = _same_pads(t.shape[1:], size, strides, (1,) * dims)
        if any(b != e for b, e in pads):
            raise ReflrpError(f"padding='same' pads {pads} asymmetrically here: not supported")
        padding = tuple(b for b, _ in pads)
    if kind == "max":
        return _add(c, where, _MAX_POOLS[dims](size, strides, padding), t, layout="channels_first")
    layer = _AVG_POOLS[dims](size, strides, padding, count_include_pad=False)  # TensorFlow averages in-bounds values
    return _add(c, where, layer, t, layout="channels_first")


def max_pooling2d(c, cfg, inputs, where):
    return _pooling(c, cfg, inputs, where, "max")


def average_pooling2d(c, cfg, inputs, where):
    return _pooling(c, cfg, inputs, where, "average")


def _global_average_pooling(dims):
    def convert(c, cfg, inputs, where):
        t = _add(c, where, _GLOBAL_POOLS[dims](1), to_channels_first(c, inputs[0], where), layout="channels_first")
        if cfg.get("keepdims", False):
            return t
        return _add(c, f"{where}.flatten", L.Flatten(1, -1), t, layout="keras")

    return convert


global_average_pooling2d = _global_average_pooling(2)


def up_sampling2d(c, cfg, inputs, where):
    mode = cfg.get("interpolation", "nearest")
    if mode not in ("nearest", "bilinear"):
        raise ReflrpError(f"interpolation={mode!r} is not supported")
    t = to_channels_first(c, inputs[0], where)
    return _add(c, where, L.Upsample(_pair(cfg["size"]), mode=mode), t, layout="channels_first")


def _up_sampling(dims):
    """UpSampling1D and UpSampling3D: nearest neighbour, one factor per axis."""
    def convert(c, cfg, inputs, where):
        t = to_channels_first(c, inputs[0], where)
        return _add(c, where, L.Upsample(_sizes(cfg["size"], dims)), t, layout="channels_first")

    return convert


def _zero_padding(dims):
    """ZeroPadding1D and ZeroPadding3D as a Pad of zeros."""
    def convert(c, cfg, inputs, where):
        padding = cfg["padding"]
        pairs = [tuple(padding)] if dims == 1 else [tuple(p) for p in padding]
        widths = tuple(w for pair in reversed(pairs) for w in pair)
        return _add(c, where, L.Pad(widths), to_channels_first(c, inputs[0], where), layout="channels_first")

    return convert


def cropping2d(c, cfg, inputs, where):
    return _add(c, where, L.Crop(cfg["cropping"]), to_channels_first(c, inputs[0], where), layout="channels_first")


def zero_padding2d(c, cfg, inputs, where):
    (top, bottom), (left, right) = cfg["padding"]
    t = to_channels_first(c, inputs[0], where)
    return _add(c, where, L.ZeroPad2d((left, right, top, bottom)), t, layout="channels_first")


def concatenate(c, cfg, inputs, where):
    rank = len(inputs[0].shape)
    axis = cfg.get("axis", -1)
    if isinstance(axis, bool) or not isinstance(axis, int) or not -(rank + 1) <= axis <= rank:
        raise ReflrpError(f"axis={axis!r} is out of range for {rank + 1}-D inputs")
    axis %= rank + 1
    if axis == 0:
        raise ReflrpError("concatenating along the batch axis is not supported")
    if rank < 2:
        return _add(c, where, L.Concat(axis=axis), *inputs, layout="keras")
    tensors = [to_channels_first(c, t, f"{where}.{k}") for k, t in enumerate(inputs)]
    internal = 1 if axis == rank else axis + 1
    return _add(c, where, L.Concat(axis=internal), *tensors, layout="channels_first")


def add(c, cfg, inputs, where):
    move = to_channels_first if inputs[0].layout == "channels_first" else to_keras
    tensors = [inputs[0]] + [move(c, t, f"{where}.{k}") for k, t in enumerate(inputs[1:], start=1)]
    return _add(c, where, L.Add(), *tensors, layout=inputs[0].layout)


def flatten(c, cfg, inputs, where):
    return _add(c, where, L.Flatten(1, -1), to_keras(c, inputs[0], where), layout="keras")


def reshape(c, cfg, inputs, where):
    return _add(c, where, L.Reshape(tuple(cfg["target_shape"])), to_keras(c, inputs[0], where), layout="keras")


def dropout(c, cfg, inputs, where):
    return _add(c, where, L.Dropout(cfg.get("rate", 0.5)), inputs[0], layout=inputs[0].layout)


#: class name -> (converter, note for the docs)
CONVERTERS = {
    "Conv1D": (conv1d, "valid, same (stride 1, or symmetric)"),
    "Conv2D": (conv2d, "valid, same (asymmetric SAME padding as an explicit ZeroPad2d), groups, dilation"),
    "Conv2DTranspose": (conv2d_transpose, "valid, same (asymmetric cropping as an explicit Crop)"),
    "Conv3D": (conv3d, "valid, same (asymmetric SAME padding as an explicit Pad), groups, dilation"),
    "Dense": (dense, "on flat inputs"),
    "BatchNormalization": (batch_normalization, "channel axis"),
    "Activation": (activation_layer, "relu, sigmoid/tanh, softmax at the output, linear"),
    "ReLU": (relu, "negative_slope (as LeakyReLU)"),
    "LeakyReLU": (leaky_relu, ""),
    "MaxPooling1D": (lambda c, cfg, i, w: _pooling(c, cfg, i, w, "max", 1), "valid, symmetric same"),
    "MaxPooling2D": (max_pooling2d, "valid, symmetric same"),
    "MaxPooling3D": (lambda c, cfg, i, w: _pooling(c, cfg, i, w, "max", 3), "valid, symmetric same"),
    "AveragePooling1D": (lambda c, cfg, i, w: _pooling(c, cfg, i, w, "average", 1),
                         "valid, symmetric same (in-bounds average)"),
    "AveragePooling2D": (average_pooling2d, "valid, symmetric same (in-bounds average)"),
    "AveragePooling3D": (lambda c, cfg, i, w: _pooling(c, cfg, i, w, "average", 3),
                         "valid, symmetric same (in-bounds average)"),
    "GlobalAveragePooling1D": (_global_average_pooling(1), "keepdims"),
    "GlobalAveragePooling2D": (global_average_pooling2d, "keepdims"),
    "GlobalAveragePooling3D": (_global_average_pooling(3), "keepdims"),
    "UpSampling1D": (_up_sampling(1), "nearest"),
    "UpSampling2D": (up_sampling2d, "nearest, bilinear"),
    "UpSampling3D": (_up_sampling(3), "nearest"),
    "ZeroPadding1D": (_zero_padding(1), ""),
    "ZeroPadding3D": (_zero_padding(3), ""),
    "Cropping2D": (cropping2d, ""),
    "ZeroPadding2D": (zero_padding2d, ""),
    "Concatenate": (concatenate, "any non-batch axis"),
    "Add": (add, ""),
    "Flatten": (flatten, "in Keras' channels-last order"),
    "Reshape": (reshape, "in Keras' channels-last order"),
    "Dropout": (dropout, ""),
}
_ACTIVATIONS = {"relu": L.ReLU, "sigmoid": L.Sigmoid, "tanh": L.Tanh}


def check(layer, is_output):
    """The problems visible in a layer's configuration alone (raised as one ReflrpError listing them): what can be
    reported even when an earlier layer could not be converted.  Returns the built-in activation's name."""
    kind, cfg = layer.get("class_name"), layer["config"]
    problems = []
    if kind not in CONVERTERS:
        problems.append(f"{kind} is not supported (supported: {', '.join(sorted(CONVERTERS))})")
    if cfg.get("data_format", "channels_last") not in (None, "channels_last"):
        problems.append(f"data_format={cfg['data_format']!r} is not supported (channels_last only)")
    if "padding" in cfg and isinstance(cfg["padding"], str) and cfg["padding"] not in ("same", "valid"):
        problems.append(f"padding={cfg['padding']!r} is not supported")
    name = cfg.get("activation", "linear")
    if isinstance(name, dict):  # Keras 3 may serialise the activation as an object
        name = name.get("config", {}).get("name") or name.get("class_name", "").lower()
    if name not in (None, "linear", "relu", "sigmoid", "tanh", "softmax"):
        problems.append(f"activation {name!r} is not supported (relu, sigmoid, tanh, softmax at the output)")
    elif name == "softmax" and not is_output:
        problems.append("softmax is only allowed at the model's output: relevance cannot be propagated through it")
    if problems:
        raise ReflrpError("; ".join(problems))
    return name


def convert(c, layer, inputs, is_output):
    """One Keras layer and its built-in activation; an output activation comes after the move back to Keras'
    layout, so explanations start at the logits."""
    kind, cfg = layer.get("class_name"), layer["config"]
    where = cfg["name"]
    name = check(layer, is_output)
    t = CONVERTERS[kind][0](c, cfg, inputs, where)
    if name in (None, "linear"):
        return t
    target = f"{where}.{name}" if kind != "Activation" else where
    if is_output and name != "relu":
        t = to_keras(c, t, where)
        layer = L.Softmax(len(t.shape)) if name == "softmax" else _ACTIVATIONS[name]()
        return _add(c, target, layer, t, layout="keras")
    return _add(c, target, _ACTIVATIONS[name](), t, layout=t.layout)


__all__ = ["CONVERTERS", "Tensor", "convert", "to_channels_first", "to_keras"]
