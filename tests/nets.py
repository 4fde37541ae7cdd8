"""Random networks for tests: hypothesis strategies and small fixed models."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import reflrp


def batchnorm2d(rng, c):
    return reflrp.BatchNorm2d(
        rng.normal(0, 0.5, c), rng.uniform(0.5, 2.0, c), rng.uniform(0.5, 1.5, c), rng.normal(0, 0.5, c)
    )


def zero_bias_model(model):
    """The same network with every bias and BatchNorm shift set to 0."""
    layers = {}
    for node in model.nodes:
        layer = node.layer
        if isinstance(layer, (reflrp.Linear, reflrp.Conv2d, reflrp.ConvTranspose2d)):
            layers[node.name] = type(layer)(layer.weight, None, **layer.config())
        elif isinstance(layer, reflrp.BatchNorm2d):
            scale = layer.scale
            layers[node.name] = reflrp.BatchNorm2d(np.zeros_like(scale), np.ones_like(scale), scale, None, eps=0.0)
    return model.replace(layers)


@st.composite
def sequential_nets(draw, bias=True, batchnorm=True, pools=True):
    """``(model, x)``: conv blocks (conv [+ BN] + ReLU [+ pool]), then Flatten + Linear [+ ReLU + Linear].

    Shapes are tracked while drawing, so every drawn network is valid by construction.
    """
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    c = draw(st.integers(1, 3))
    h, w = draw(st.integers(5, 10)), draw(st.integers(5, 10))
    x = rng.normal(size=(draw(st.integers(1, 3)), c, h, w))
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(1, 3))
        stride = draw(st.integers(1, 2))
        padding = draw(st.integers(0, k // 2 + 1)) if k > 1 else 0
        groups = draw(st.sampled_from([g for g in (1, 2) if c % g == 0]))
        out = groups * draw(st.integers(1, 3))
        if (h + 2 * padding - k) // stride + 1 < 2 or (w + 2 * padding - k) // stride + 1 < 2:
            stride, padding = 1, k // 2
        weight = rng.normal(0, 1 / np.sqrt(k * k * c / groups), (out, c // groups, k, k))
        has_bias = bias and draw(st.booleans())
        layers.append(reflrp.Conv2d(weight, rng.normal(0, 0.3, out) if has_bias else None,
                                    stride=stride, padding=padding, groups=groups))
        h, w = layers[-1].output_shape((c, h, w))[1:]
        c = out
        if batchnorm and draw(st.booleans()):
            layers.append(batchnorm2d(rng, c))
        layers.append(reflrp.ReLU())
        if pools and min(h, w) >= 4 and draw(st.booleans()):
            layers.append(draw(st.sampled_from([reflrp.MaxPool2d(2), reflrp.AvgPool2d(2), reflrp.MaxPool2d(3, 2, 1)])))
            h, w = layers[-1].output_shape((c, h, w))[1:]
    layers.append(reflrp.Flatten())
    features = c * h * w
    if draw(st.booleans()):
        hidden = draw(st.integers(2, 8))
        layers += [reflrp.Linear(rng.normal(0, 1 / np.sqrt(features), (hidden, features)),
                                 rng.normal(0, 0.3, hidden) if bias else None), reflrp.ReLU()]
        features = hidden
    classes = draw(st.integers(2, 5))
    layers.append(reflrp.Linear(rng.normal(0, 1 / np.sqrt(features), (classes, features)),
                                rng.normal(0, 0.3, classes) if bias else None))
    return reflrp.Sequential(layers), x


def _conv(rng, cin, cout, k, bias, **kw):
    weight = rng.normal(0, np.sqrt(2 / (cin * k * k)), (cout, cin, k, k))
    return reflrp.Conv2d(weight, rng.normal(0, 0.2, cout) if bias else None, **kw)


@st.composite
def unet_graphs(draw, bias=True, batchnorm=True):
    """``(graph, x)``: encoder block, a way down, a middle block, a way up, a skip joined by Concat or Add."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c = draw(st.integers(1, 2))
    size = 2 * draw(st.integers(3, 5))
    width = draw(st.integers(2, 4))
    b = reflrp.GraphBuilder()

    def block(name, source, cin, cout):
        h = b.add(name, _conv(rng, cin, cout, 3, bias and draw(st.booleans()), padding="same"), source)
        if batchnorm and draw(st.booleans()):
            h = b.add(f"bn_{name}", batchnorm2d(rng, cout), h)
        return b.add(f"relu_{name}", reflrp.ReLU(), h)

    skip = block("enc", b.input, c, width)
    down = draw(st.sampled_from(["max", "avg", "stride"]))
    if down == "max":
        h = b.add("down", reflrp.MaxPool2d(2), skip)
    elif down == "avg":
        h = b.add("down", reflrp.AvgPool2d(2), skip)
    else:
        h = b.add("down", _conv(rng, width, width, 2, bias, stride=2), skip)
    h = block("mid", h, width, 2 * width)
    up = draw(st.sampled_from(["transpose", "nearest", "bilinear"]))
    if up == "transpose":
        weight = rng.normal(0, 0.5, (2 * width, width, 2, 2))
        h = b.add("up", reflrp.ConvTranspose2d(weight, rng.normal(0, 0.2, width) if bias else None, stride=2), h)
    else:
        h = b.add("up", reflrp.Upsample(2, mode=up), h)
        h = b.add("up_conv", _conv(rng, 2 * width, width, 1, bias), h)
    h = b.add("relu_up", reflrp.ReLU(), h)
    if draw(st.booleans()):  # crop the skip and pad it back: exact routing both ways
        skip = b.add("pad", reflrp.ZeroPad2d(1), b.add("crop", reflrp.Crop(1), skip))
    if draw(st.booleans()):
        h = b.add("join", reflrp.Concat(axis=1), h, skip)
        joined = 2 * width
    else:
        h = b.add("join", reflrp.Add(), h, skip)
        joined = width
    classes = draw(st.integers(1, 3))
    b.add("head", _conv(rng, joined, classes, 1, bias), h)
    x = rng.uniform(0, 1, size=(draw(st.integers(1, 3)), c, size, size))
    return b.build(), x


@st.composite
def residual_graphs(draw, bias=True, batchnorm=True):
    """``(graph, x)``: a stem, one or two residual blocks (fan-out into conv path and identity), a head."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c, width, size = draw(st.integers(1, 3)), draw(st.integers(2, 4)), draw(st.integers(4, 8))
    b = reflrp.GraphBuilder()
    h = b.add("stem", _conv(rng, c, width, 3, bias, padding=1), b.input)
    h = b.add("stem_relu", reflrp.ReLU(), h)
    for k in range(draw(st.integers(1, 2))):
        r = b.add(f"c{k}a", _conv(rng, width, width, 3, bias and draw(st.booleans()), padding=1), h)
        if batchnorm and draw(st.booleans()):
            r = b.add(f"bn{k}", batchnorm2d(rng, width), r)
        r = b.add(f"r{k}", reflrp.ReLU(), r)
        r = b.add(f"c{k}b", _conv(rng, width, width, 3, bias, padding=1), r)
        h = b.add(f"add{k}", reflrp.Add(), r, h)
        h = b.add(f"out{k}", reflrp.ReLU(), h)
    h = b.add("gap", reflrp.AdaptiveAvgPool2d(1), h)
    h = b.add("flat", reflrp.Flatten(), h)
    b.add("fc", reflrp.Linear(rng.normal(0, 1, (draw(st.integers(2, 4)), width)), None), h)
    x = rng.normal(size=(draw(st.integers(1, 3)), c, size, size))
    return b.build(), x


def every_layer_graph(rng):
    """One graph holding every layer type (model files, fuzzing)."""
    b = reflrp.GraphBuilder()
    h = b.add("pad", reflrp.ZeroPad2d((1, 0, 2, 1)), b.input)
    h = b.add("conv", reflrp.Conv2d(rng.normal(size=(4, 1, 3, 3)), rng.normal(size=4), padding="same"), h)
    h = b.add("bn", reflrp.BatchNorm2d(rng.normal(size=4), rng.uniform(1, 2, 4), None, rng.normal(size=4), eps=1e-3), h)
    h = b.add("leaky", reflrp.LeakyReLU(0.1), h)
    skip = b.add("crop", reflrp.Crop(((1, 0), (0, 1))), h)
    h = b.add("avg", reflrp.AvgPool2d(2, 1, 1, count_include_pad=False), skip)
    h = b.add("max", reflrp.MaxPool2d(2), h)
    h = b.add("up", reflrp.Upsample(2, mode="bilinear", align_corners=True), h)
    h = b.add("convt", reflrp.ConvTranspose2d(rng.normal(size=(4, 2, 3, 3)), None, padding=1, groups=2), h)
    h = b.add("sum", reflrp.Add(), h, b.add("drop", reflrp.Dropout(0.2), skip))
    h = b.add("cat", reflrp.Concat(axis=1), h, skip)
    h = b.add("tanh", reflrp.Tanh(), h)
    h = b.add("ada", reflrp.AdaptiveAvgPool2d((2, 3)), h)
    h = b.add("flat", reflrp.Flatten(), h)
    h = b.add("id", reflrp.Identity(), h)
    h = b.add("fc", reflrp.Linear(rng.normal(size=(6, 48))), h)
    h = b.add("bn1", reflrp.BatchNorm1d(np.zeros(6), np.ones(6)), h)
    h = b.add("shape", reflrp.Reshape((2, 3)), h)
    h = b.add("relu", reflrp.ReLU(), h)
    h = b.add("sm", reflrp.Softmax(dim=2), h)
    return b.build(output=h)
