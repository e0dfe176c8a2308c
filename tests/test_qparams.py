"""QScheme / QParams: ranges, the documented rules for zero and tiny ranges, reprs."""

import numpy as np
import pytest

import numbaq as nq
from numbaq import reference as ref
from numbaq.qparams import QScheme

F32 = np.float32


@pytest.mark.parametrize(
    "kwargs, clamp, scale_range",
    [
        (dict(dtype="int8"), (-128, 127), (-128, 127)),
        (dict(dtype="int8", narrow_range=True), (-127, 127), (-127, 127)),
        (dict(dtype="uint8", reduce_range=True), (0, 255), (0, 127)),
        (dict(dtype="int8", reduce_range=True), (-128, 127), (-64, 63)),
        (dict(dtype="int8", reduce_range=True, narrow_range=True), (-127, 127), (-63, 63)),
        (dict(dtype="uint4", reduce_range=True, narrow_range=True), (1, 15), (1, 7)),
        (dict(dtype="int4"), (-8, 7), (-8, 7)),
        (dict(dtype="uint4", narrow_range=True), (1, 15), (1, 15)),
    ],
)
def test_ranges(kwargs, clamp, scale_range):
    scheme = QScheme(**kwargs)
    assert scheme.clamp_range == clamp and scheme.scale_range == scale_range


@pytest.mark.parametrize("scheme", [QScheme("int8", symmetric=False), nq.schemes.ONNX])
def test_zero_range_rule(scheme):
    """An all-zero tensor: the range counts as 1 (ONNX's rule); 0 stays exact."""
    qp = nq.choose_qparams(np.zeros(5), scheme)
    qmin, qmax = scheme.scale_range
    assert qp.scale == F32(1) / F32(qmax - qmin)
    q = nq.quantize(np.zeros(5), qp)
    assert np.all(nq.dequantize(q, qp) == 0)


def test_zero_range_symmetric():
    qp = nq.choose_qparams(np.zeros((2, 3)), "PER_TOKEN_INT8")
    np.testing.assert_array_equal(qp.scale, [F32(1) / F32(127)] * 2)


def test_constant_tensor_is_exact_at_the_end_of_the_range():
    x = np.full(7, 3.25, np.float32)
    for name in ("ONNX", "PER_TOKEN_INT8", "PER_TOKEN_UINT8"):
        x_hat = nq.fake_quantize(x, name)
        np.testing.assert_allclose(x_hat, x, rtol=1e-6)


def test_tiny_range_scale_floor():
    """Dividing schemes keep ONNX's subnormal scales; only a zero scale is raised.
    Reciprocal schemes raise scales to the smallest normal float32: 1/scale stays finite."""
    info = np.finfo(np.float32)
    x = np.array([0.0, 1e-40], np.float32)  # subnormal range: scale = 1e-40 / 255
    qp = nq.choose_qparams(x, "ONNX")
    assert qp.scale == np.float32(1e-40) / np.float32(255) and qp.scale < info.tiny
    assert nq.quantize(x, qp).tolist() == [0, 255]
    x = np.array([0.0, 1e-45], np.float32)  # 1e-45 / 255 underflows to 0
    assert nq.choose_qparams(x, "ONNX").scale == info.smallest_subnormal
    qp = nq.choose_qparams(np.array([0.0, 1e-40], np.float32), "PER_TOKEN_UINT8")
    assert qp.scale == info.tiny and np.isfinite(1 / qp.scale)


def test_torch_rule_zero_and_small_scales():
    torch_scheme = nq.schemes.TORCH
    assert nq.choose_qparams(np.zeros(3), torch_scheme).scale == F32(0.1)
    qp = nq.choose_qparams(np.array([0.0, 1e-4], np.float32), torch_scheme)
    assert qp.scale == F32(6.1e-5)  # the small-scale floor
    qp = nq.choose_qparams(np.array([-1e-4, 1e-4], np.float32), torch_scheme)
    assert qp.scale == F32(6.1e-5) and int(qp.zero_point) == 64


def test_range_overflow_raises():
    big = np.finfo(np.float32).max
    with pytest.raises(ValueError, match="overflows float32"):
        nq.choose_qparams(np.array([-big, big], np.float32), "ONNX")
    # symmetric schemes do not form max - min, so the same tensor is fine
    assert np.isfinite(nq.choose_qparams(np.array([-big, big], np.float32), "PER_TOKEN_INT8").scale)


@pytest.mark.parametrize("rule", ["onnx", "torch"])
@pytest.mark.parametrize("symmetric", [False, True])
def test_kernel_rule_matches_reference_on_a_grid(rule, symmetric):
    values = np.array([0.0, 1e-30, 1e-6, 6e-5, 0.3, 1.0, 7.7, 1e4, 3e30], np.float32)
    lo = np.concatenate([-values, values, -values])
    hi = np.concatenate([values, values * 2, np.zeros_like(values)])
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    scheme = QScheme("uint8", symmetric=symmetric, rule=rule)
    qp = nq.qparams_from_minmax(lo, hi, scheme)
    rscale, rzp = ref.qparams(lo, hi, scheme)
    np.testing.assert_array_equal(qp.scale, rscale)
    np.testing.assert_array_equal(qp.zero_point, rzp)


def test_qparams_from_minmax_checks():
    with pytest.raises(ValueError, match="one shape"):
        nq.qparams_from_minmax(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="min must be <= max"):
        nq.qparams_from_minmax(np.float32(1), np.float32(0))
    with pytest.raises(ValueError, match="finite"):
        nq.qparams_from_minmax(np.float32(np.nan), np.float32(0))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dtype="int2"), "dtype must be one of"),
        (dict(granularity="channel"), "granularity must be one of"),
        (dict(rule="tflite"), "rule must be one of"),
        (dict(granularity="block"), "needs block_size"),
        (dict(granularity="block", block_size=0), "needs block_size"),
        (dict(granularity="row", block_size=32), "only used with granularity='block'"),
    ],
)
def test_scheme_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QScheme(**kwargs)


def test_reprs_are_readable():
    assert repr(nq.schemes.BLOCK_Q8_0) == (
        "QScheme(BLOCK_Q8_0: int8 symmetric per block of 32, q in [-127, 127], "
        "rule=onnx, fma(x, 1/scale, zp))"
    )
    qp = nq.choose_qparams(np.array([-1.0, 3.0]), "ONNX")
    assert repr(qp) == "QParams(uint8 tensor, q in [0, 255], scale=0.0156863, zero_point=64)"
    qp = nq.choose_qparams(np.array([[-1.0, 3.0], [1.0, 2.0]]), "PER_TOKEN_UINT8")
    assert "2 scales of shape (2,)" in repr(qp) and "zero_point in [0, 64]" in repr(qp)


def test_replace_changes_granularity_cleanly():
    scheme = nq.schemes.BLOCK_Q8_0.replace(granularity="row")
    assert scheme.block_size is None and scheme.granularity == "row"


def test_schemes_lookup():
    assert nq.schemes.get("onnx") is nq.schemes.ONNX
    with pytest.raises(ValueError, match="unknown scheme 'Q4_K'"):
        nq.schemes.get("Q4_K")
    with pytest.raises(TypeError, match="scheme must be a QScheme"):
        nq.schemes.get(8)
