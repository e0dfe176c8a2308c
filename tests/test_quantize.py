"""Quantize / dequantize / dynamic kernels against numbaq.reference, and their properties."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import numbaq as nq
from numbaq import reference as ref
from numbaq.qparams import DTYPES, QScheme

from .conftest import float_arrays


@st.composite
def schemes(draw, granularities=("tensor", "row", "column", "block")):
    granularity = draw(st.sampled_from(granularities))
    return QScheme(
        dtype=draw(st.sampled_from(sorted(DTYPES))),
        symmetric=draw(st.booleans()),
        granularity=granularity,
        block_size=draw(st.sampled_from([1, 2, 4])) if granularity == "block" else None,
        narrow_range=draw(st.booleans()),
        reduce_range=draw(st.booleans()),
        rule=draw(st.sampled_from(["onnx", "torch"])),
        reciprocal=draw(st.booleans()),
    )


@given(x=float_arrays(min_dims=1, last_multiple_of=4), scheme=schemes())
def test_dynamic_quantize_matches_reference(x, scheme):
    q, qp = nq.dynamic_quantize(x, scheme)
    rq, rscale, rzp = ref.dynamic_quantize(x, scheme)
    np.testing.assert_array_equal(qp.scale, rscale)
    np.testing.assert_array_equal(qp.zero_point, rzp)
    np.testing.assert_array_equal(q, rq)
    assert q.dtype == scheme.storage and q.shape == x.shape


@given(x=float_arrays(min_dims=1, last_multiple_of=4), scheme=schemes())
def test_fused_equals_staged(x, scheme):
    """dynamic_quantize (one fused pass) == choose_qparams, then quantize."""
    q, qp = nq.dynamic_quantize(x, scheme)
    staged = nq.choose_qparams(x, scheme)
    assert qp == staged
    np.testing.assert_array_equal(q, nq.quantize(x, staged))


@given(x=float_arrays(min_dims=0), scheme=schemes(granularities=("tensor",)))
def test_per_tensor_on_any_shape(x, scheme):
    q, qp = nq.dynamic_quantize(x, scheme)
    rq, rscale, rzp = ref.dynamic_quantize(x, scheme)
    np.testing.assert_array_equal(q, rq)
    assert qp.scale.shape == () and qp.scale == rscale and qp.zero_point == rzp


@given(x=float_arrays(min_dims=1, last_multiple_of=4), scheme=schemes())
def test_dequantize_matches_reference(x, scheme):
    q, qp = nq.dynamic_quantize(x, scheme)
    g, _ = ref.groups(q, scheme.granularity, scheme.block_size)
    expected = ref.dequantize(g, qp.scale.reshape(-1, 1), qp.zero_point.reshape(-1, 1))
    np.testing.assert_array_equal(
        nq.dequantize(q, qp), ref.ungroup(expected, x.shape, scheme.granularity)
    )


@given(x=float_arrays(min_dims=1, last_multiple_of=4), scheme=schemes())
def test_round_trip_error_at_most_half_a_step(x, scheme):
    """Inside the representable range, |x - dequantize(quantize(x))| <= scale / 2.

    Tolerance: the float32 ops x / scale, rint, and (q - z) * scale each round once,
    a relative error of 2**-24 on values up to (qmax - qmin) * scale, so we allow
    scale/2 plus 4 ulps of the largest representable magnitude.
    """
    q, qp = nq.dynamic_quantize(x, scheme)
    x_hat = nq.dequantize(q, qp).astype(np.float64)
    g_x, _ = ref.groups(x, scheme.granularity, scheme.block_size)
    g_err, _ = ref.groups(np.abs(x - x_hat), scheme.granularity, scheme.block_size)
    scale = qp.scale.reshape(-1, 1).astype(np.float64)
    zp = qp.zero_point.reshape(-1, 1).astype(np.float64)
    lo, hi = (qp.qmin - zp) * scale, (qp.qmax - zp) * scale
    inside = (g_x >= lo) & (g_x <= hi)
    bound = scale / 2 + 4 * np.finfo(np.float32).eps * np.maximum(abs(lo), abs(hi))
    assert np.all(g_err[inside] <= np.broadcast_to(bound, g_err.shape)[inside])


@given(x=float_arrays(min_dims=1, last_multiple_of=4), scheme=schemes())
def test_zero_is_exact(x, scheme):
    x = x.copy()
    x.reshape(-1)[0] = 0.0
    x_hat = nq.fake_quantize(x, scheme)
    assert x_hat.reshape(-1)[0] == 0.0


@given(x=float_arrays(min_dims=1, last_multiple_of=4), scheme=schemes())
def test_symmetric_means_fixed_zero_point(x, scheme):
    scheme = scheme.replace(symmetric=True)
    _, qp = nq.dynamic_quantize(x, scheme)
    qmin, qmax = scheme.scale_range
    expected = 0 if scheme.dtype.startswith("int") else (qmin + qmax + 1) // 2
    assert np.all(qp.zero_point == expected)


@given(x=float_arrays(min_dims=1, last_multiple_of=4), scheme=schemes())
def test_idempotent(x, scheme):
    """Quantizing a fake-quantized tensor again with the same parameters changes nothing."""
    q, qp = nq.dynamic_quantize(x, scheme)
    x_hat = nq.dequantize(q, qp)
    np.testing.assert_array_equal(nq.quantize(x_hat, qp), q)


@given(x=float_arrays(min_dims=1, last_multiple_of=4), scheme=schemes())
def test_values_within_clamp_range(x, scheme):
    q, qp = nq.dynamic_quantize(x, scheme)
    assert q.min() >= qp.qmin and q.max() <= qp.qmax


@pytest.mark.parametrize("name", sorted(nq.schemes.SCHEMES))
def test_named_schemes_both_entry_points(name, entry_point):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((300, 256)) * rng.uniform(0.1, 10, (300, 1))).astype(np.float32)
    scheme = nq.schemes.get(name)
    q, qp = nq.dynamic_quantize(x, scheme)
    rq, rscale, rzp = ref.dynamic_quantize(x, scheme)
    np.testing.assert_array_equal(q, rq)
    np.testing.assert_array_equal(qp.scale, rscale)
    np.testing.assert_array_equal(qp.zero_point, rzp)
    g, _ = ref.groups(q, scheme.granularity, scheme.block_size)
    expected = ref.dequantize(g, rscale.reshape(-1, 1), rzp.reshape(-1, 1))
    np.testing.assert_array_equal(
        nq.dequantize(q, qp), ref.ungroup(expected, x.shape, scheme.granularity)
    )


def test_per_column_both_entry_points(entry_point):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((400, 200)).astype(np.float32) * np.linspace(0.1, 5, 200)
    scheme = QScheme("int8", symmetric=True, granularity="column")
    q, qp = nq.dynamic_quantize(x, scheme)
    rq, rscale, _ = ref.dynamic_quantize(x, scheme)
    np.testing.assert_array_equal(q, rq)
    np.testing.assert_array_equal(qp.scale, rscale)
    np.testing.assert_array_equal(nq.dequantize(q, qp), ref.dequantize(rq, rscale, 0))


def test_round_half_to_even():
    qp = nq.qparams_from_minmax(np.float32(-127), np.float32(127), "PER_TOKEN_INT8")
    assert float(qp.scale) == 1.0
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5], np.float32)
    assert nq.quantize(x, qp).tolist() == [0, 2, 2, 0, -2]


def test_saturation():
    qp = nq.qparams_from_minmax(np.float32(-1), np.float32(1), "PER_TOKEN_INT8")
    x = np.array([-1e6, -1.0, 1.0, 1e6], np.float32)
    assert nq.quantize(x, qp).tolist() == [-127, -127, 127, 127]


def test_quantize_with_external_qparams_per_row():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    qp = nq.qparams_from_minmax(x.min(1), x.max(1), "PER_TOKEN_UINT8")
    rq, _, _ = ref.dynamic_quantize(x, nq.schemes.PER_TOKEN_UINT8)
    np.testing.assert_array_equal(nq.quantize(x, qp), rq)


@given(x=float_arrays(min_dims=1, max_dims=2))
def test_int4_codes_fit_in_4_bits(x):
    assume(x.size > 0)
    for dtype, lo, hi in (("int4", -8, 7), ("uint4", 0, 15)):
        q, _ = nq.dynamic_quantize(x, QScheme(dtype, symmetric=False, granularity="row"))
        assert q.min() >= lo and q.max() <= hi
