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
