"""The ledger's per-sample sums (reflrp.kernels.sums): numpy's summation order, computed in parallel pieces, bit
for bit as the slow twin (tests/naive.py) and as the numpy expressions they replace, whatever the thread count."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reflrp import _jit
from reflrp.kernels import sums

import naive

LENGTHS = [0, 1, 7, 8, 9, 127, 128, 129, 136, 1000, 8191, 8192, 8193, 16385, 20000, 70001]


def values(rng, shape, dtype):
    """Magnitudes over 16 decades, signed zeros included: sums whose order shows in their last bits."""
    x = rng.normal(size=shape) * 10.0 ** rng.uniform(-8, 8, size=shape)
    x.reshape(-1)[::5] = -0.0
    return x.astype(dtype)


@pytest.fixture(params=["kernels", "numpy for small arrays"])
def path(request, monkeypatch):
    """Every array through the kernels, or small ones through numpy (the default): the same bits either way."""
    if request.param == "kernels":
        monkeypatch.setattr(sums, "_SMALL", 0)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("length", LENGTHS)
def test_row_sums_are_the_twins_and_numpys(dtype, length, path, rng):
    x = values(rng, (3, length), dtype)
    expected = np.array([naive.row_sum(row) for row in x])
    got, magnitude = sums.row_sums(x, magnitude=True)
    for result in (got, sums.row_sums(x)):
        np.testing.assert_array_equal(result.view(np.uint64), expected.view(np.uint64))
    np.testing.assert_array_equal(magnitude, [naive.row_sum(np.abs(row)) for row in x])
    np.testing.assert_array_equal(got, np.sum(x, axis=1, dtype=np.float64))  # what the ledger was made of before


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(0, 40000), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**31))
def test_any_row_length_sums_as_the_twin(rows, length, dtype, seed):
    x = values(np.random.default_rng(seed), (rows, length), dtype)
    np.testing.assert_array_equal(sums.row_sums(x), [naive.row_sum(row) for row in x])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pieces_of_zeros_are_skipped_without_changing_a_bit(dtype, path, rng):
    """A pixel's relevance: most pieces all zero (+0, -0 or both), the rest not; rows of zeros only."""
    x = values(rng, (4, 9 * 8192 + 77), dtype)
    x[:, :5 * 8192] = 0.0
    x[:, 8192:3 * 8192:2] = -0.0
    x[1, 6 * 8192:7 * 8192] = -0.0
    x[2] = -0.0
    x[3] = 0.0
    got, magnitude = sums.row_sums(x, magnitude=True)
    expected = np.sum(x, axis=1, dtype=np.float64)
    np.testing.assert_array_equal(got.view(np.uint64), expected.view(np.uint64))
    np.testing.assert_array_equal(magnitude, np.sum(np.abs(x), axis=1, dtype=np.float64))
    z = values(rng, x.shape, dtype)
    z[0, 100] = np.inf  # where r and s are 0: r - z s is NaN, and the sum must say so
    s = np.zeros_like(x)
    with np.errstate(invalid="ignore"):  # as explain runs the rules
        residual = sums.row_sums(x - z * s)
        np.testing.assert_array_equal(sums.residual_sums(x, z, s), residual)
    assert np.isnan(residual[0]) and np.isfinite(residual[1:]).all()


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_the_thread_count_changes_no_bit(threads, rng, monkeypatch):
    x = values(rng, (2, 3, 129, 131), np.float32)
    expected = sums.row_sums(x)
    monkeypatch.setattr(_jit, "THREADS", threads)
    monkeypatch.setattr(_jit, "MIN_WORK_PER_PART", 1)
    np.testing.assert_array_equal(sums.row_sums(x), expected)
    np.testing.assert_array_equal(sums.row_sums(x[1:]), expected[1:])  # nor the other rows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_sums_are_the_sums_of_the_numpy_expressions(dtype, path, rng):
    r, s = values(rng, (4, 3, 50, 61), dtype), values(rng, (4, 3, 50, 61), dtype)
    z = values(rng, (2, 3, 50, 61), dtype)
    sample = np.array([1, 0, 0, 1])
    np.testing.assert_array_equal(sums.residual_sums(r, z, s, sample), sums.row_sums(r - z[sample] * s))
    np.testing.assert_array_equal(sums.residual_sums(r[:2], z, s[:2]), sums.row_sums(r[:2] - z * s[:2]))
    np.testing.assert_array_equal(sums.residual_sums(r[:1], z, s[:1]), sums.row_sums(r[:1] - z[:1] * s[:1]))
    bias = values(rng, (3,), dtype).reshape(1, 3, 1, 1)
    np.testing.assert_array_equal(sums.scaled_sums(s, bias), sums.row_sums(s * bias))
    np.testing.assert_array_equal(sums.scaled_sums(s, bias[0]), sums.row_sums(s * bias))


def test_bad_arguments_are_refused_before_any_kernel_reads(path):
    x = np.ones((2, 5), np.float32)
    with pytest.raises(TypeError, match="float32 or float64"):
        sums.row_sums(np.ones((2, 5), np.int64))
    with pytest.raises(ValueError, match="sample must give one of"):
        sums.residual_sums(x, x, x, np.array([0, 2]))
    with pytest.raises(ValueError, match="rows of one shape and dtype"):
        sums.residual_sums(x, x.astype(np.float64), x)
    with pytest.raises(ValueError, match="dtype"):
        sums.scaled_sums(x, np.ones(5))
    assert sums.row_sums(np.ones((0, 4))).shape == (0,)
