"""The vectorizable float32 math (kernels.mathf) holds the accuracy its docstrings state."""

import math

import numpy as np
from numba import njit

from numbaq.kernels.mathf import _erf, _exp, _gelu, _sigmoid, _tanh


def _apply(fn):
    @njit
    def run(x, out):
        for i in range(x.size):
            out[i] = fn(x[i])

    def call(x):
        out = np.empty_like(x)
        run(x, out)
        return out

    return call


def _ulps(approx, exact):
    exact32 = exact.astype(np.float32)
    return np.abs(approx.astype(np.float64) - exact) / np.spacing(np.abs(exact32)).astype(
        np.float64
    )


def test_exp_within_three_ulps_and_clamped():
    x = np.linspace(-87, 88, 400_001).astype(np.float32)
    ulps = _ulps(_apply(_exp)(x), np.exp(x.astype(np.float64)))
    assert ulps.max() <= 3.0 and ulps.mean() < 0.5
    big = _apply(_exp)(np.array([200.0, -200.0], np.float32))
    assert np.isfinite(big).all() and big[1] > 0  # clamped, never inf or 0


def test_tanh_and_sigmoid_accuracy():
    x = np.concatenate(
        [
            np.linspace(-12, 12, 200_001),
            np.geomspace(1e-8, 1, 20_000),
            -np.geomspace(1e-8, 1, 20_000),
        ]
    ).astype(np.float32)
    tanh_ulps = _ulps(_apply(_tanh)(x), np.tanh(x.astype(np.float64)))
    assert tanh_ulps.mean() < 1 and tanh_ulps.max() < 12  # worst at the 0.1875 seam
    sig = 1 / (1 + np.exp(-x.astype(np.float64)))
    assert _ulps(_apply(_sigmoid)(x), sig).max() < 4


def test_erf_and_gelu_absolute_error():
    x = np.linspace(-10, 10, 200_001).astype(np.float32)
    erf = np.vectorize(math.erf)(x.astype(np.float64))
    assert np.abs(_apply(_erf)(x) - erf).max() < 5e-7  # formula + cancellation near 0
    gelu = 0.5 * x * (1 + np.vectorize(math.erf)(x.astype(np.float64) / math.sqrt(2)))
    # GELU inherits erf's error times |x| / 2, plus its own float32 rounding
    assert np.all(np.abs(_apply(_gelu)(x) - gelu) <= 3e-7 * np.maximum(np.abs(x), 1) + 1e-6)


def test_vector_gelu_has_the_bits_of_scalar_gelu():
    """``kernels.vmath._gelu_vec`` (GELU on a whole register, in the GEMM epilogue) is
    ``mathf._gelu`` operation for operation: the same bits on every finite float32 class
    (random bit patterns: tiny, subnormal, huge; the clamps' edges; signed zeros), at
    both vector widths."""
    from numbaq.kernels.simd import loadf8, loadf16, storef8, storef16
    from numbaq.kernels.vmath import _gelu_vec

    @njit
    def vec16(x, out):
        for i in range(0, x.size, 16):
            storef16(out, i, _gelu_vec(loadf16(x, i)))

    @njit
    def vec8(x, out):
        for i in range(0, x.size, 8):
            storef8(out, i, _gelu_vec(loadf8(x, i)))

    rng = np.random.default_rng(0)
    x = rng.integers(0, 2**32, 1 << 18, dtype=np.uint64).astype(np.uint32).view(np.float32)
    edges = [0.0, -0.0, 1e-30, -1e-30, 1e-45, 87, -87, 88, -88, 4 * 2**0.5, -4 * 2**0.5]
    edges += [3.4e38, -3.4e38, 0.5, -0.5, 1, -1]
    x = np.concatenate([x[np.isfinite(x)], rng.normal(0, 3, 1 << 16), edges]).astype(np.float32)
    x = np.concatenate([x, np.zeros(-x.size % 16, np.float32)])
    scalar = _apply(_gelu)(x).view(np.uint32)
    for vec in (vec16, vec8):
        out = np.empty_like(x)
        vec(x, out)
        np.testing.assert_array_equal(out.view(np.uint32), scalar)
