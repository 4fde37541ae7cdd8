"""Convolution kernels against the loops of tests/naive.py over random strides, paddings, dilations, groups and
odd sizes (the parametrized cases in tests/test_kernels.py are the fixed corners)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reflrp
from reflrp import kernels

import naive


@st.composite
def convolutions(draw):
    groups = draw(st.integers(1, 3))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.one_of(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                             st.just("same") if stride == (1, 1) else st.just((0, 0))))
    h = draw(st.integers(dilation[0] * (kh - 1) + 1, 8))
    w = draw(st.integers(dilation[1] * (kw - 1) + 1, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    layer = reflrp.Conv2d(rng.normal(size=(cout, cin // groups, kh, kw)), stride=stride, padding=padding,
                          dilation=dilation, groups=groups)
    return layer, rng.normal(size=(2, cin, h, w)), rng


@given(convolutions(), st.integers(1, 64))
def test_conv2d_forward_and_adjoint_match_loops(case, slab_columns):
    layer, x, rng = case
    with pytest.MonkeyPatch.context() as patch:  # slabs of about slab_columns windows (64: usually whole)
        patch.setattr(kernels.conv, "_SLAB_BYTES", 1)
        patch.setattr(kernels.conv, "_MIN_SLAB_COLUMNS", slab_columns)
        _check_conv2d(layer, x, rng)


def _check_conv2d(layer, x, rng):
    got = layer.linear([x], layer.weight)
    expected = naive.conv2d(x, layer.weight, layer.stride, layer.pads, layer.dilation, layer.groups)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    s = rng.normal(size=got.shape)
    m = naive.matrix(naive.layer_fn(layer, layer.weight), x.shape[1:])
    np.testing.assert_allclose(layer.adjoint(s, [x], layer.weight)[0], (s.reshape(2, -1) @ m).reshape(x.shape),
                               rtol=0, atol=1e-12)


@given(convolutions(), st.data())
def test_conv_transpose2d_matches_loops(case, data):
    conv, x, rng = case
    stride, dilation = conv.stride, conv.dilation
    output_padding = tuple(data.draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    kernel = conv.weight.shape[2:]
    # padding at most what keeps the output non-empty, so every drawn case is valid by construction
    room = [((n - 1) * st_ + d * (k - 1) + op) // 2
            for n, st_, d, k, op in zip(x.shape[2:], stride, dilation, kernel, output_padding)]
    padding = tuple(data.draw(st.integers(0, min(1, r))) for r in room)
    weight = rng.normal(size=(x.shape[1], conv.out_channels // conv.groups, *kernel))
    layer = reflrp.ConvTranspose2d(weight, stride=stride, padding=padding, output_padding=output_padding,
                                   dilation=dilation, groups=conv.groups)
    out_shape = layer.output_shape(x.shape[1:])
    got = layer.linear([x], weight)
    expected = naive.conv_transpose2d(x, weight, stride, padding, output_padding, dilation, conv.groups)
    assert got.shape == expected.shape == (2, *out_shape)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    s = rng.normal(size=got.shape)
    m = naive.matrix(naive.layer_fn(layer, weight), x.shape[1:])
    np.testing.assert_allclose(layer.adjoint(s, [x], weight)[0], (s.reshape(2, -1) @ m).reshape(x.shape),
                               rtol=0, atol=1e-12)
