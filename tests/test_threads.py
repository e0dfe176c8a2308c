"""1 thread and N threads give the same bits."""

import numba
import numpy as np
import pytest

import numbaq as nq
from numbaq import config


@pytest.fixture
def force_parallel(monkeypatch):
    monkeypatch.setattr(config, "PARALLEL_MIN", 0)


@pytest.mark.parametrize("name", sorted(nq.schemes.SCHEMES))
def test_one_thread_equals_n_threads(name, force_parallel):
    n_max = numba.config.NUMBA_NUM_THREADS
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((257, 96)) * rng.uniform(0.01, 50, (257, 1))).astype(np.float32)
    results = []
    before = numba.get_num_threads()
    try:
        for n in sorted({1, 2, n_max}):
            numba.set_num_threads(n)
            q, qp = nq.dynamic_quantize(x, name)
            results.append((q, qp, nq.dequantize(q, qp), nq.minmax(x, "row")))
    finally:
        numba.set_num_threads(before)
    for q, qp, x_hat, (lo, hi) in results[1:]:
        np.testing.assert_array_equal(q, results[0][0])
        assert qp == results[0][1]
        np.testing.assert_array_equal(x_hat, results[0][2])
        np.testing.assert_array_equal(lo, results[0][3][0])
        np.testing.assert_array_equal(hi, results[0][3][1])
