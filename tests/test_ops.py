"""Bad input reaches a clear error that names the argument; valid edge cases work."""

import numpy as np
import pytest

import numbaq as nq
from numbaq.qparams import QScheme

VERBS = [
    lambda x: nq.dynamic_quantize(x),
    lambda x: nq.choose_qparams(x, "ONNX"),
    lambda x: nq.minmax(x),
    lambda x: nq.fake_quantize(x, "BLOCK_Q8_0"),
    lambda x: nq.dynamic_quantize_linear(x),
]


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint8, bool, np.complex64])
def test_non_float_input_is_a_type_error(verb, dtype):
    with pytest.raises(TypeError, match=r"x must be a floating-point array.*astype"):
        verb(np.zeros((2, 32), dtype))


@pytest.mark.parametrize("verb", VERBS)
def test_empty_input(verb):
    with pytest.raises(ValueError, match="x is empty"):
        verb(np.zeros((0, 32), np.float32))


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_input(verb, bad):
    x = np.ones((4, 32), np.float32)
    x[2, 5] = bad
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        verb(x)


def test_block_size_must_divide_last_axis():
    with pytest.raises(
        ValueError, match=r"block_size=32 does not divide the last axis of x \(48\)"
    ):
        nq.dynamic_quantize(np.ones((2, 48)), "BLOCK_Q8_0")


def test_row_granularity_needs_an_axis():
    with pytest.raises(ValueError, match="at least one axis"):
        nq.dynamic_quantize(np.float32(1.0), "PER_TOKEN_INT8")


def test_unknown_scheme_and_dtype():
    with pytest.raises(ValueError, match="unknown scheme"):
        nq.dynamic_quantize(np.ones(4), "INT3")
    with pytest.raises(ValueError, match="dtype must be one of"):
        nq.dynamic_quantize(np.ones(4), dtype="int3")


def test_qparams_shape_mismatch():
    qp = nq.choose_qparams(np.ones((3, 4)), "PER_TOKEN_INT8")
    with pytest.raises(ValueError, match=r"qparams.scale has shape \(3,\).*needs \(5,\)"):
        nq.quantize(np.ones((5, 4)), qp)
    with pytest.raises(TypeError, match="qparams must be a QParams"):
        nq.quantize(np.ones((5, 4)), "PER_TOKEN_INT8")


def test_dequantize_checks_dtype():
    q, qp = nq.dynamic_quantize(np.ones((3, 4)), "PER_TOKEN_INT8")
    with pytest.raises(TypeError, match="q must have dtype int8"):
        nq.dequantize(q.astype(np.uint8), qp)


def test_fake_quantize_refuses_overrides_with_fixed_qparams():
    qp = nq.choose_qparams(np.ones(4), "ONNX")
    with pytest.raises(TypeError, match="overrides"):
        nq.fake_quantize(np.ones(4), qp, dtype="int8")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_dtypes_are_converted(dtype):
    x = np.linspace(-2, 2, 64).reshape(2, 32).astype(dtype)
    q, qp = nq.dynamic_quantize(x)
    q32, qp32 = nq.dynamic_quantize(x.astype(np.float32))
    np.testing.assert_array_equal(q, q32)
    assert qp == qp32


def test_non_contiguous_and_read_only_inputs():
    x = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    view = x[:, ::2]
    view_ro = x.T
    view_ro.flags.writeable = False
    for v in (view, view_ro):
        q, qp = nq.dynamic_quantize(v)
        q2, qp2 = nq.dynamic_quantize(np.ascontiguousarray(v))
        np.testing.assert_array_equal(q, q2)
        assert qp == qp2


def test_lists_are_accepted():
    q, qp = nq.dynamic_quantize([[1.0, -2.0, 0.5]], "PER_TOKEN_INT8")
    assert q.tolist() == [[64, -127, 32]]  # 1.0 / (2/127) = 63.5 rounds to even 64
    assert qp.scale.tolist() == [np.float32(2 / 127)]


def test_overrides_build_a_new_scheme():
    x = np.linspace(-1, 1, 16).reshape(2, 8)
    q, qp = nq.dynamic_quantize(x, "PER_TOKEN_INT8", dtype="int4")
    assert qp.dtype == "int4" and q.min() >= -7 and q.max() <= 7
    assert qp.scheme == QScheme(
        "int4",
        symmetric=True,
        granularity="row",
        narrow_range=True,
        reciprocal=True,
        name="PER_TOKEN_INT8",
    )
