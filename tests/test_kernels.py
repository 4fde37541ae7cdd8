"""Every kernel against its slow twin in tests/naive.py, over strides, paddings, dilations, groups and odd sizes.

Adjoints are checked against the transpose of the twin's dense matrix, and by the inner-product identity
<M a, s> = <a, M^T s>.
"""

import numpy as np
import pytest

import reflrp
from reflrp import _jit, kernels

import naive

CONV_CASES = [
    # (C, O, H, W, kh, kw, stride, padding, dilation, groups)
    (1, 1, 5, 5, 3, 3, 1, 0, 1, 1),
    (3, 4, 7, 6, 3, 3, 1, 1, 1, 1),
    (2, 4, 9, 8, 3, 2, 2, 1, 1, 2),
    (4, 6, 8, 7, 2, 3, (2, 1), (0, 2), (1, 2), 2),
    (3, 3, 6, 9, 3, 3, 3, 2, 2, 3),
    (2, 2, 5, 5, 1, 1, 2, 0, 1, 1),
    (2, 3, 5, 7, 4, 2, 1, "same", (1, 2), 1),
    (2, 2, 6, 6, 3, 3, 1, "valid", 1, 1),
    # depthwise (one input channel per group): direct loops
    (4, 8, 9, 10, 3, 3, 2, 1, 2, 4),
    (3, 3, 8, 8, 4, 4, 1, "same", 1, 3),
    (6, 6, 7, 7, 7, 7, 1, 3, 1, 6),
]


def _conv(case, rng, dtype=np.float64):
    c, o, h, w, kh, kw, stride, padding, dilation, groups = case
    weight = rng.normal(size=(o, c // groups, kh, kw)).astype(dtype)
    layer = reflrp.Conv2d(weight, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x = rng.normal(size=(2, c, h, w)).astype(dtype)
    return layer, x


@pytest.fixture(params=["whole", "slabs"])
def slabs(request, monkeypatch):
    """Run a test on whole column matrices and again with one output row per slab (as large layers are run)."""
    if request.param == "slabs":
        monkeypatch.setattr(kernels.conv, "_SLAB_BYTES", 1)
        monkeypatch.setattr(kernels.conv, "_MIN_SLAB_COLUMNS", 1)
    return request.param


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward_matches_loops(case, rng, slabs):
    layer, x = _conv(case, rng)
    got = layer.linear([x], layer.weight)
    expected = naive.conv2d(x, layer.weight, layer.stride, layer.pads, layer.dilation, layer.groups)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward_many_unfolds_once_with_each_weights_bits(case, rng, slabs):
    layer, x = _conv(case, rng)
    weights = [layer.weight, -layer.weight, rng.normal(size=layer.weight.shape)]
    args = (layer.stride, layer.pads, layer.dilation, layer.groups)
    together = kernels.conv2d_forward_many(x, weights, *args)
    assert [out.tobytes() for out in together] == [kernels.conv2d_forward(x, w, *args).tobytes() for w in weights]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_convolution_skips_the_unfolding_bit_for_bit(dtype, rng, slabs, monkeypatch):
    x = rng.normal(size=(2, 6, 7, 9)).astype(dtype)
    weight = rng.normal(size=(4, 6, 1, 1)).astype(dtype)
    args = ((1, 1), (0, 0, 0, 0), (1, 1), 1)
    direct = kernels.conv2d_forward(x, weight, *args)
    monkeypatch.setattr(kernels.conv, "_is_pointwise", lambda *_: False)
    assert direct.tobytes() == kernels.conv2d_forward(x, weight, *args).tobytes()
    np.testing.assert_allclose(direct, naive.conv2d(x, weight), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_adjoint_is_transpose(case, rng, slabs):
    layer, x = _conv(case, rng)
    m = naive.matrix(naive.layer_fn(layer, layer.weight), x.shape[1:])
    s = rng.normal(size=(2, *layer.output_shape(x.shape[1:])))
    got = layer.adjoint(s, [x], layer.weight)[0]
    expected = (s.reshape(2, -1) @ m).reshape(x.shape)
    assert got.shape == x.shape and got.dtype == x.dtype
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


TRANSPOSE_CASES = [
    # (C, O, H, W, kh, kw, stride, padding, output_padding, dilation, groups)
    (2, 3, 4, 5, 2, 2, 2, 0, 0, 1, 1),
    (4, 4, 3, 4, 3, 3, 2, 1, 1, 1, 2),
    (3, 6, 5, 3, 3, 2, (1, 2), (1, 0), (0, 1), (2, 1), 3),
    (1, 2, 6, 6, 1, 1, 1, 0, 0, 1, 1),
]


def _convt(case, rng, dtype=np.float64):
    c, o, h, w, kh, kw, stride, padding, output_padding, dilation, groups = case
    weight = rng.normal(size=(c, o // groups, kh, kw)).astype(dtype)
    layer = reflrp.ConvTranspose2d(
        weight, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups
    )
    return layer, rng.normal(size=(2, c, h, w)).astype(dtype)


@pytest.mark.parametrize("case", TRANSPOSE_CASES)
def test_conv_transpose2d_forward_matches_loops(case, rng, slabs):
    layer, x = _convt(case, rng)
    got = layer.linear([x], layer.weight)
    expected = naive.conv_transpose2d(
        x, layer.weight, layer.stride, layer.padding, layer.output_padding, layer.dilation, layer.groups
    )
    assert got.shape == expected.shape == (2, *layer.output_shape(x.shape[1:]))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", TRANSPOSE_CASES)
def test_conv_transpose2d_adjoint_is_transpose(case, rng, slabs):
    layer, x = _convt(case, rng)
    m = naive.matrix(naive.layer_fn(layer, layer.weight), x.shape[1:])
    s = rng.normal(size=(2, *layer.output_shape(x.shape[1:])))
    got = layer.adjoint(s, [x], layer.weight)[0]
    np.testing.assert_allclose(got, (s.reshape(2, -1) @ m).reshape(x.shape), rtol=0, atol=1e-12)


CONV3D_CASES = [
    # (C, O, D, H, W, kernel, stride, padding, dilation, groups)
    (2, 3, 4, 5, 4, 3, 1, 1, 1, 1),
    (4, 6, 6, 5, 7, (2, 3, 1), (2, 1, 2), (1, 0, 1), (2, 1, 1), 2),
    (3, 3, 5, 4, 6, 3, 1, "same", 1, 3),
    (2, 4, 3, 3, 3, (3, 1, 2), 1, "valid", 1, 1),
]


def _conv3d(case, rng, dtype=np.float64, transposed=False):
    c, o, d, h, w, kernel, stride, padding, dilation, groups = case
    kernel = (kernel,) * 3 if isinstance(kernel, int) else kernel
    if transposed:
        padding = 0 if padding in ("same", "valid") else padding
        layer = reflrp.ConvTranspose3d(rng.normal(size=(c, o // groups, *kernel)).astype(dtype), stride=stride,
                                       padding=padding, dilation=dilation, groups=groups)
    else:
        layer = reflrp.Conv3d(rng.normal(size=(o, c // groups, *kernel)).astype(dtype), stride=stride,
                              padding=padding, dilation=dilation, groups=groups)
    return layer, rng.normal(size=(2, c, d, h, w)).astype(dtype)


@pytest.mark.parametrize("transposed", [False, True], ids=["conv3d", "conv_transpose3d"])
@pytest.mark.parametrize("case", CONV3D_CASES)
def test_conv3d_forward_matches_loops_and_its_adjoint_is_the_transpose(case, transposed, rng, slabs):
    layer, x = _conv3d(case, rng, transposed=transposed)
    got = layer.linear([x], layer.weight)
    assert got.shape == (2, *layer.output_shape(x.shape[1:]))
    m = naive.matrix(naive.layer_fn(layer, layer.weight), x.shape[1:])  # the loops' matrix
    np.testing.assert_allclose(got, (x.reshape(2, -1) @ m.T).reshape(got.shape), rtol=0, atol=1e-12)
    s = rng.normal(size=got.shape)
    np.testing.assert_allclose(layer.adjoint(s, [x], layer.weight)[0], (s.reshape(2, -1) @ m).reshape(x.shape),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv3d_gives_each_sample_its_bits_under_any_batch_chunk_and_split(dtype, rng, monkeypatch):
    """Each (sample, output slice) is one 2-D sample to the 2-D kernels: its bits do not depend on the batch, on
    how many slices are windowed at once, or on how tasks are split across threads."""
    layer, x = _conv3d(CONV3D_CASES[1], rng, dtype)
    x = np.concatenate([x, x[::-1], x])
    out = layer.linear([x], layer.weight)
    s = rng.normal(size=out.shape).astype(dtype)
    c = layer.adjoint(s, [x], layer.weight)[0]
    for b in range(len(x)):
        np.testing.assert_array_equal(layer.linear([x[b:b + 1]], layer.weight), out[b:b + 1])
        np.testing.assert_array_equal(layer.adjoint(s[b:b + 1], [x[b:b + 1]], layer.weight)[0], c[b:b + 1])
    monkeypatch.setattr(kernels.conv3d, "_WINDOW_BYTES", 1)  # one output slice at a time
    monkeypatch.setattr(_jit, "THREADS", 3)
    monkeypatch.setattr(_jit, "MIN_WORK_PER_PART", 1)
    np.testing.assert_array_equal(layer.linear([x], layer.weight), out)
    np.testing.assert_array_equal(layer.adjoint(s, [x], layer.weight)[0], c)


def test_linear_forward_and_adjoint(rng):
    weight = rng.normal(size=(5, 7))
    layer = reflrp.Linear(weight)
    a, s = rng.normal(size=(3, 7)), rng.normal(size=(3, 5))
    np.testing.assert_allclose(layer.linear([a], weight), np.einsum("oi,ni->no", weight, a), rtol=0, atol=1e-13)
    np.testing.assert_allclose(layer.adjoint(s, [a], weight)[0], np.einsum("oi,no->ni", weight, s), rtol=0, atol=1e-13)


POOL_CASES = [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (1, 0)), ((2, 3), (3, 1), (0, 1))]


@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES)
def test_maxpool2d_forward_and_routing(kernel, stride, padding, rng):
    x = rng.normal(size=(2, 3, 7, 8))
    layer = reflrp.MaxPool2d(kernel, stride, padding)
    got = layer.forward([x])
    expected, winner = naive.maxpool2d(x, kernel, stride, padding)
    np.testing.assert_array_equal(got, expected)
    s = rng.normal(size=got.shape)
    routed = layer.adjoint(s, [x])[0]
    want = np.zeros_like(x)
    for (b, c, y, xx), (p, q) in winner.items():
        want[b, c, p, q] += s[b, c, y, xx]
    np.testing.assert_allclose(routed, want, rtol=0, atol=1e-14)


def test_maxpool2d_ties_first_or_split():
    x = np.array([[[[1.0, 3.0, 2.0, 2.0], [3.0, 2.0, 2.0, 2.0]]]])
    layer = reflrp.MaxPool2d(2)
    s = np.array([[[[6.0, 1.0]]]])
    first = layer.adjoint(s, [x])[0]
    np.testing.assert_array_equal(first, [[[[0, 6.0, 1.0, 0], [0, 0, 0, 0]]]])
    split = layer.adjoint_split_ties(s, [x])[0]
    np.testing.assert_array_equal(split, [[[[0, 3.0, 0.25, 0.25], [3.0, 0, 0.25, 0.25]]]])


@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avgpool2d_forward_and_adjoint(kernel, stride, padding, count_include_pad, rng):
    x = rng.normal(size=(2, 3, 7, 8))
    layer = reflrp.AvgPool2d(kernel, stride, padding, count_include_pad=count_include_pad)
    expected = naive.avgpool2d(x, kernel, stride, padding, count_include_pad)
    np.testing.assert_allclose(layer.forward([x]), expected, rtol=0, atol=1e-14)
    m = naive.matrix(lambda a: naive.avgpool2d(a, kernel, stride, padding, count_include_pad), x.shape[1:])
    s = rng.normal(size=expected.shape)
    (got,) = layer.adjoint(s, [x])
    np.testing.assert_allclose(got, (s.reshape(2, -1) @ m).reshape(x.shape), rtol=0, atol=1e-14)


@pytest.mark.parametrize("size", [1, (2, 3), (3, 3), (5, 4)])
def test_adaptive_avgpool2d_forward_and_adjoint(size, rng):
    x = rng.normal(size=(2, 2, 7, 5))
    layer = reflrp.AdaptiveAvgPool2d(size)
    expected = naive.adaptive_avgpool2d(x, layer.output_size)
    np.testing.assert_allclose(layer.forward([x]), expected, rtol=0, atol=1e-14)
    m = naive.matrix(lambda a: naive.adaptive_avgpool2d(a, layer.output_size), x.shape[1:])
    s = rng.normal(size=expected.shape)
    np.testing.assert_allclose(layer.adjoint(s, [x])[0], (s.reshape(2, -1) @ m).reshape(x.shape), atol=1e-14)


@pytest.mark.parametrize(
    "factor,mode,align", [(2, "nearest", False), ((3, 2), "nearest", False), (2, "bilinear", False),
                          ((2, 3), "bilinear", False), (2, "bilinear", True), ((3, 1), "bilinear", True)]
)
def test_upsample_forward_and_adjoint(factor, mode, align, rng):
    x = rng.normal(size=(2, 2, 4, 5))
    layer = reflrp.Upsample(factor, mode=mode, align_corners=align)
    expected = naive.upsample2d(x, layer.scale_factor, mode, align)
    np.testing.assert_allclose(layer.forward([x]), expected, rtol=0, atol=1e-14)
    m = naive.matrix(lambda a: naive.upsample2d(a, layer.scale_factor, mode, align), x.shape[1:])
    s = rng.normal(size=expected.shape)
    np.testing.assert_allclose(layer.adjoint(s, [x])[0], (s.reshape(2, -1) @ m).reshape(x.shape), atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_keep_dtype_and_agree_across_precisions(dtype, rng):
    layer64, x64 = _conv(CONV_CASES[2], rng)
    layer = layer64.astype(dtype)
    x = x64.astype(dtype)
    got = layer.linear([x], layer.weight)
    assert got.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, layer64.linear([x.astype(np.float64)], layer.weight.astype(np.float64)), atol=tol)
    s = np.ones((2, *layer.output_shape(x.shape[1:])), dtype)
    assert layer.adjoint(s, [x], layer.weight)[0].dtype == dtype
    maxed = kernels.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, 4, 4)[0]
    for pooled in (maxed, kernels.avgpool2d_forward(x, 2, 2, 2, 2, 0, 0, 4, 4, True)):
        assert pooled.dtype == dtype


def test_conv2d_large_batch_is_chunked_without_changing_bits(rng, monkeypatch):
    layer, x = _conv(CONV_CASES[1], rng)
    x = np.concatenate([x] * 5)
    whole = layer.linear([x], layer.weight)
    monkeypatch.setattr(kernels.conv, "_CHUNK_BYTES", 1)  # one sample per chunk
    np.testing.assert_array_equal(layer.linear([x], layer.weight), whole)
    s = np.ones_like(whole)
    chunked = layer.adjoint(s, [x], layer.weight)[0]
    monkeypatch.undo()
    np.testing.assert_array_equal(layer.adjoint(s, [x], layer.weight)[0], chunked)


def test_large_layers_run_in_slabs_chosen_by_one_samples_geometry(rng, monkeypatch):
    # 32 -> 32 channels, 3x3, at 96x96: a 288 x 9216 column matrix per sample (10.6 MB in float32), run in slabs
    layer = reflrp.Conv2d(rng.normal(size=(32, 32, 3, 3)).astype(np.float32), padding=1)
    x = rng.normal(size=(3, 32, 96, 96)).astype(np.float32)
    assert kernels.conv._slabs(3, 32 * 9, 96, 96, 4)[:3] == [(0, 1, 0, 37), (0, 1, 37, 74), (0, 1, 74, 96)]
    for n in (1, 2, 5):  # the slabs of each sample are its own whatever the batch (BLAS's bits follow the shapes)
        assert [(y0, y1) for b, _, y0, y1 in kernels.conv._slabs(n, 32 * 9, 96, 96, 4) if b == n - 1] == \
            [(0, 37), (37, 74), (74, 96)]
    out = layer.linear([x], layer.weight)
    s = rng.normal(size=out.shape).astype(np.float32)
    c = layer.adjoint(s, [x], layer.weight)[0]
    for b in range(3):  # alone, each sample gets the bits it gets in the batch
        np.testing.assert_array_equal(layer.linear([x[b:b + 1]], layer.weight), out[b:b + 1])
        np.testing.assert_array_equal(layer.adjoint(s[b:b + 1], [x[b:b + 1]], layer.weight)[0], c[b:b + 1])
    monkeypatch.setattr(_jit, "THREADS", 3)
    monkeypatch.setattr(_jit, "MIN_WORK_PER_PART", 1)  # and under any split of the kernels' tasks
    np.testing.assert_array_equal(layer.linear([x], layer.weight), out)
    np.testing.assert_array_equal(layer.adjoint(s, [x], layer.weight)[0], c)
    monkeypatch.setattr(kernels.conv, "_SLAB_BYTES", 1 << 40)  # whole column matrices: the same numbers up to
    for whole, slabbed in ((layer.linear([x], layer.weight), out), (layer.adjoint(s, [x], layer.weight)[0], c)):
        # a few units in the last place of the largest value (sums taken in another order at slab edges)
        np.testing.assert_allclose(whole, slabbed, rtol=0, atol=4 * np.finfo(np.float32).eps * np.abs(slabbed).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_convolutions_give_each_samples_bits_under_any_split(dtype, rng, monkeypatch):
    """A depthwise layer (ConvNeXt's 7x7, two outputs per channel) sums each output tap after tap in one task:
    its bits do not depend on the batch or on how the tasks are split across threads."""
    layer = reflrp.Conv2d(rng.normal(size=(32, 1, 7, 7)).astype(dtype), padding=3, groups=16, stride=(1, 2))
    x = rng.normal(size=(3, 16, 40, 40)).astype(dtype)
    out = layer.linear([x], layer.weight)
    s = rng.normal(size=out.shape).astype(dtype)
    c = layer.adjoint(s, [x], layer.weight)[0]
    np.testing.assert_allclose(out, naive.conv2d(x, layer.weight, layer.stride, layer.pads, layer.dilation, 16),
                               rtol=0, atol=1e-4 if dtype == np.float32 else 1e-12)
    for b in range(3):
        np.testing.assert_array_equal(layer.linear([x[b:b + 1]], layer.weight), out[b:b + 1])
        np.testing.assert_array_equal(layer.adjoint(s[b:b + 1], [x[b:b + 1]], layer.weight)[0], c[b:b + 1])
    monkeypatch.setattr(_jit, "THREADS", 3)
    monkeypatch.setattr(_jit, "MIN_WORK_PER_PART", 1)
    np.testing.assert_array_equal(layer.linear([x], layer.weight), out)
    np.testing.assert_array_equal(layer.adjoint(s, [x], layer.weight)[0], c)


def test_adjoint_skips_slabs_without_relevance_bit_for_bit(rng, monkeypatch):
    layer = reflrp.Conv2d(rng.normal(size=(32, 32, 3, 3)).astype(np.float32), padding=1)
    x = np.zeros((2, 32, 96, 96), np.float32)
    s = np.zeros((2, 32, 96, 96), np.float32)
    s[0, :, 40:42, 50:60] = rng.normal(size=(32, 2, 10))  # one slab of sample 0 (rows 37-73); sample 1 all zero
    s[0, 3, 5, 5] = -0.0
    skipped = layer.adjoint(s, [x], layer.weight)[0]
    monkeypatch.setattr(kernels.conv, "_all_zero", lambda a: False)
    computed = layer.adjoint(s, [x], layer.weight)[0]
    np.testing.assert_array_equal(skipped, computed)
    assert skipped.tobytes() == computed.tobytes()  # signs of zeros included
    assert np.any(skipped[0, :, 38:44]) and not np.any(skipped[0, :, :36]) and not np.any(skipped[1])


# Precision policy (docs/conventions.md): every kernel computes in its arrays' dtype.  Values chosen so that a
# float32 sum in the documented order and a float64 sum disagree: 1e8 + 1 rounds to 1e8 in float32.
CANCELLING = np.array([1e8, 1.0, -1e8, 1.0])


@pytest.mark.parametrize("dtype, expected", [(np.float32, 0.25), (np.float64, 0.5)])
def test_pooling_sums_in_the_arrays_dtype(dtype, expected):
    x = CANCELLING.astype(dtype).reshape(1, 1, 2, 2)
    for got in (kernels.avgpool2d_forward(x, 2, 2, 2, 2, 0, 0, 1, 1, True),
                kernels.adaptive_avgpool2d_forward(x, 1, 1)):
        assert got.dtype == dtype and got[0, 0, 0, 0] == expected


@pytest.mark.parametrize("dtype, expected", [(np.float32, 1.0), (np.float64, 2.0)])
def test_adjoints_accumulate_in_the_arrays_dtype(dtype, expected):
    # four outputs whose windows all cover input (0, 0), visited in row-major output order
    s = CANCELLING.astype(dtype).reshape(1, 1, 2, 2)
    nearest = reflrp.Upsample(2)
    got = nearest.adjoint(s, [np.zeros((1, 1, 1, 1), dtype)])[0]
    assert got.dtype == dtype and got[0, 0, 0, 0] == expected
    avg = kernels.avgpool2d_adjoint(s, 3, 3, 2, 2, 1, 1, 0, 0, True)  # 2x2 windows at stride 1 share (1, 1)
    assert avg.dtype == dtype and avg[0, 0, 1, 1] == expected / 4
    cols = np.zeros((1, 4, 4), dtype)
    cols[0, [0, 1, 2, 3], [3, 2, 1, 0]] = CANCELLING  # taps (rows) that land on input (1, 1), in summation order
    col2im = kernels.conv.col2im2d(cols, np.zeros((1, 1, 3, 3), dtype), 2, 2, 1, 1, 0, 0, 1, 1, 2, 2)
    assert col2im.dtype == dtype and col2im[0, 0, 1, 1] == expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_linear_on_tokens_is_one_product_per_sample_with_each_samples_bits(dtype, rng):
    """A Linear on the last axis of (N, H, W, C) (ConvNeXt's MLP) multiplies each sample's tokens as one matrix:
    the same numbers as one token at a time, and each sample's bits alone or in any batch."""
    layer = reflrp.Linear(rng.normal(size=(24, 16)).astype(dtype))
    x = rng.normal(size=(3, 5, 7, 16)).astype(dtype)
    out = layer.linear([x], layer.weight)
    s = rng.normal(size=out.shape).astype(dtype)
    c = layer.adjoint(s, [x], layer.weight)[0]
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, x @ layer.weight.T, rtol=0, atol=tolerance)
    np.testing.assert_allclose(c, s @ layer.weight, rtol=0, atol=tolerance)
    for b in range(3):
        np.testing.assert_array_equal(layer.linear([x[b:b + 1]], layer.weight), out[b:b + 1])
        np.testing.assert_array_equal(layer.adjoint(s[b:b + 1], [x[b:b + 1]], layer.weight)[0], c[b:b + 1])


def _awkward(rng, shape, dtype):
    """Values that test every branch of the fused steps: signed zeros, exact zeros, +-epsilon, tiny and large."""
    x = rng.normal(size=shape).astype(dtype)
    flat = x.reshape(-1)
    picks = rng.choice(flat.size, size=(5, flat.size // 8), replace=False) if flat.size >= 40 else None
    if picks is not None:
        flat[picks[0]] = 0.0
        flat[picks[1]] = -0.0
        flat[picks[2]] = dtype(1e-3)
        flat[picks[3]] = dtype(-1e-3)
        flat[picks[4]] *= np.finfo(dtype).tiny * 1e6  # tiny, yet no quotient overflows (warnings in threads)
    return x


def _bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["sign", "zero", "plus"])
@pytest.mark.parametrize("epsilon", [0.0, 1e-3])
@pytest.mark.parametrize("sample", [None, [0, 0, 2, 1, 1]])
def test_fused_quotient_has_the_bits_of_numpys_divide(dtype, mode, epsilon, sample, rng, monkeypatch):
    """``r / stabilize(z)[sample]`` in one pass, bit for bit (signed zeros too) as the numpy expression, with the
    dropped relevance where a denominator is 0 (z = 0 without epsilon, z = -epsilon under "plus")."""
    from reflrp.stabilize import Stabilizer, divide

    z = _awkward(rng, (3, 4, 33, 17), dtype)
    rows = 3 if sample is None else len(sample)
    r = _awkward(rng, (rows, 4, 33, 17), dtype)
    stabilizer = Stabilizer(epsilon, mode)
    denominator = stabilizer.denominator(z)
    expected = divide(r, denominator if sample is None else denominator[np.array(sample)])
    for threads in (1, 3):
        monkeypatch.setattr(_jit, "THREADS", threads)
        monkeypatch.setattr(_jit, "MIN_WORK_PER_PART", 1)
        s, dropped = stabilizer.quotient(r, z, None if sample is None else np.array(sample))
        _bits(s, expected[0])
        assert (dropped is None) == (expected[1] is None)
        if dropped is not None:
            _bits(dropped, expected[1])
    assert expected[1] is not None or (epsilon > 0 and mode != "plus")  # the zero denominators were met


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sample", [None, [1, 1, 0]])
def test_fused_products_have_the_bits_of_numpy(dtype, sample, rng):
    from reflrp.kernels import fused

    xs = [_awkward(rng, (2, 3, 50, 41), dtype) for _ in range(3)]
    rows = 2 if sample is None else len(sample)
    cs = [_awkward(rng, (rows, 3, 50, 41), dtype) for _ in range(3)]
    spread = [x if sample is None else x[np.array(sample)] for x in xs]
    index = None if sample is None else np.array(sample)
    _bits(fused.sum_of_products(xs[:1], cs[:1], index), spread[0] * cs[0])
    expected = spread[0] * cs[0]
    expected += spread[1] * cs[1]
    expected += spread[2] * cs[2]
    _bits(fused.sum_of_products(xs, iter(cs), index, plus_zero=True), np.add(expected, 0.0))
    assert np.signbit(fused.sum_of_products(xs[:1], cs[:1], index)).sum() > np.signbit(
        fused.sum_of_products(xs[:1], cs[:1], index, plus_zero=True)).sum()  # -0 made +0 only when asked
    with pytest.raises(ValueError, match="term 1"):
        fused.sum_of_products(xs[:2], [cs[0], cs[1][:, :2]], index)
    with pytest.raises(ValueError, match="sample must give one of"):  # a sample row past the last: never read
        fused.sum_of_products(xs[:1], cs[:1], np.full(rows, len(xs[0])))
    empty = xs[0][:0]  # no rows at all
    assert fused.sum_of_products([empty], [empty]).shape == empty.shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_signed_parts_and_finiteness_have_the_bits_of_numpy(dtype, rng):
    from reflrp.kernels import fused

    x = _awkward(rng, (3, 5, 40, 39), dtype)
    positive, negative = fused.signed_parts(x)
    _bits(positive, np.maximum(x, 0))
    _bits(negative, np.minimum(x, 0))
    assert fused.all_finite(x)
    for bad in (np.inf, -np.inf, np.nan):
        y = x.copy()
        y.reshape(-1)[-1] = bad
        assert not fused.all_finite(y)
        with np.errstate(invalid="ignore"):
            _bits(fused.signed_parts(y)[0], np.maximum(y, 0))
            _bits(fused.signed_parts(y)[1], np.minimum(y, 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [
    # (C, H, W, kh, kw, stride, padding, dilation)
    (5, 7, 7, 7, 7, 1, 3, 1),
    (40, 9, 11, 3, 3, 2, 1, 1),
    (70, 12, 10, 4, 4, 1, "same", 1),
    (70, 12, 10, 3, 4, (2, 1), (0, 2), 1),
    (3, 13, 9, 3, 5, 1, (2, 0), (2, 1)),
    (33, 6, 6, 5, 5, 3, 4, 1),
])
def test_depthwise_layouts_give_the_same_bits(dtype, case, rng, monkeypatch):
    """Channels last (small planes, one output per channel) and phases (the rest) keep each output's order of
    taps: forcing one or the other changes no bit, and both agree with the slow twin."""
    from reflrp.kernels import depthwise

    c, h, w, kh, kw, stride, padding, dilation = case
    stride = (stride, stride) if isinstance(stride, int) else stride
    layer = reflrp.Conv2d(rng.normal(size=(c, 1, kh, kw)).astype(dtype), stride=stride, padding=padding,
                          dilation=dilation, groups=c)
    x = rng.normal(size=(2, c, h, w)).astype(dtype)
    s = rng.normal(size=(2, *layer.output_shape(x.shape[1:]))).astype(dtype)
    results = {}
    for layout, channels in (("channels last", (1, 64)), ("phases", (1 << 40, 1 << 40)), ("blocks of 2", (2, 2))):
        monkeypatch.setattr(depthwise, "_MIN_CHANNELS", channels[0])
        monkeypatch.setattr(depthwise, "_MAX_CHANNELS", channels[1])
        results[layout] = layer.linear([x], layer.weight), layer.adjoint(s, [x], layer.weight)[0]
    for out, c_in in results.values():
        _bits(out, results["phases"][0])
        _bits(c_in, results["phases"][1])
    np.testing.assert_allclose(results["phases"][0], naive.conv2d(x, layer.weight, layer.stride, layer.pads,
                                                                  layer.dilation, c),
                               rtol=0, atol=1e-4 if dtype == np.float32 else 1e-12)
    # the adjoint: <M x, s> = <x, M^T s>
    np.testing.assert_allclose(np.vdot(results["phases"][0], s), np.vdot(x, results["phases"][1]),
                               rtol=1e-4 if dtype == np.float32 else 1e-11)
