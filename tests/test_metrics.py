import numpy as np
import pytest

from numbaq import metrics


def test_sqnr_known_values():
    ref = np.ones(100)
    assert metrics.sqnr(ref, ref) == float("inf")
    assert metrics.sqnr(ref, ref * 1.1) == pytest.approx(20.0)  # noise power 1% of signal


def test_sqnr_of_uniform_quantizer_is_about_6_db_per_bit():
    x = np.random.default_rng(0).uniform(-1, 1, 100_000)
    for bits in (4, 8):
        step = 2 / 2**bits
        q = np.round(x / step) * step
        assert metrics.sqnr(x, q) == pytest.approx(6.02 * bits, abs=0.3)


def test_mse_max_abs_cosine():
    a, b = np.array([1.0, -2.0, 3.0]), np.array([1.0, -2.5, 2.0])
    assert metrics.mse(a, b) == pytest.approx((0.25 + 1.0) / 3)
    assert metrics.max_abs_error(a, b) == 1.0
    assert metrics.cosine(a, a * 3) == pytest.approx(1.0)
    assert metrics.cosine(a, -a) == pytest.approx(-1.0)
    assert metrics.cosine(np.zeros(3), np.zeros(3)) == 1.0
    assert metrics.cosine(np.zeros(3), a) == 0.0


def test_metrics_check_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.sqnr(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="empty"):
        metrics.mse(np.ones(0), np.ones(0))
