"""Runtime statistics kernels against numpy's min/max (numbaq.reference)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numbaq as nq
from numbaq import reference as ref

from .conftest import float_arrays


@given(x=float_arrays(min_dims=1), granularity=st.sampled_from(["tensor", "row", "column"]))
def test_minmax_matches_reference(x, granularity):
    lo, hi = nq.minmax(x, granularity)
    rlo, rhi = ref.minmax(x, granularity)
    np.testing.assert_array_equal(lo, rlo)
    np.testing.assert_array_equal(hi, rhi)
    assert lo.dtype == np.float32 and lo.shape == rlo.shape


@given(x=float_arrays(min_dims=1, last_multiple_of=8), block_size=st.sampled_from([1, 2, 4, 8]))
def test_minmax_blocks_match_reference(x, block_size):
    lo, hi = nq.minmax(x, "block", block_size)
    rlo, rhi = ref.minmax(x, "block", block_size)
    np.testing.assert_array_equal(lo, rlo)
    np.testing.assert_array_equal(hi, rhi)


@pytest.mark.parametrize("shape", [(128, 768), (3, 5000), (70000,), (1, 1), (2, 3, 4)])
def test_minmax_both_entry_points(shape, entry_point):
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    for granularity in ("tensor", "row", "column"):
        lo, hi = nq.minmax(x, granularity)
        rlo, rhi = ref.minmax(x, granularity)
        np.testing.assert_array_equal(lo, rlo)
        np.testing.assert_array_equal(hi, rhi)


def test_minmax_of_0d_array():
    lo, hi = nq.minmax(np.float32(-2.5))
    assert lo.shape == () and float(lo) == float(hi) == -2.5


@pytest.mark.parametrize(
    "values",
    [
        [-0.0, 0.0],
        [-3.0, -1.0, -2.0],
        [np.finfo(np.float32).max, -np.finfo(np.float32).max],
        [np.finfo(np.float32).tiny / 4, 1e-45],  # subnormals
        [-1e-45, -np.finfo(np.float32).tiny],
    ],
)
def test_minmax_bit_tricks_at_the_edges(values):
    x = np.array(values, np.float32)
    lo, hi = nq.minmax(x)
    assert lo == x.min() and hi == x.max()


@pytest.mark.parametrize("bad", [np.nan, -np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("granularity", ["tensor", "row", "column"])
def test_nonfinite_values_raise(bad, granularity, entry_point):
    x = np.ones((300, 300), np.float32)
    x[7, 11] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        nq.minmax(x, granularity)


def test_float64_overflowing_float32_raises():
    with pytest.raises(ValueError, match="NaN or Inf"):
        nq.minmax(np.array([1e300, 1.0]))


def test_absmax():
    x = np.array([[1.0, -4.0], [2.0, 3.0]])
    np.testing.assert_array_equal(nq.absmax(x, "row"), [4.0, 3.0])
    assert nq.absmax(x) == 4.0
