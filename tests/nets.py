"""Random networks for tests: hypothesis strategies and small fixed models."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import reflrp


def batchnorm2d(rng, c):
    return reflrp.BatchNorm2d(
        rng.normal(0, 0.5, c), rng.uniform(0.5, 2.0, c), rng.uniform(0.5, 1.5, c), rng.normal(0, 0.5, c)
    )


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
