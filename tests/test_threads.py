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


def _threads_now() -> int:
    import os

    return len(os.listdir("/proc/self/task"))


def test_park_blas_ends_idle_openblas_workers_and_numpy_stays_right(monkeypatch):
    """numbaq parks OpenBLAS's idle workers before a parallel GEMM (they would poll on the
    cores numbaq's threads need); numpy restarts them and computes the same products."""
    import os
    import threading

    from numbaq import _blas

    if not os.path.exists("/proc/self/task"):
        pytest.skip("needs Linux's /proc to count threads")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 256))
    expected = a @ a
    if _blas.park() == 0:
        pytest.skip("numpy's BLAS here is not an OpenBLAS with blas_thread_shutdown_")
    before = _threads_now()
    np.testing.assert_array_equal(a @ a, expected)  # OpenBLAS starts its workers again
    started = _threads_now() - before
    assert _blas.park() >= 1
    assert _threads_now() == before  # ... and they are gone again
    np.testing.assert_array_equal(a @ a, expected)
    if started == 0:
        pytest.skip("numpy's OpenBLAS runs one thread here: nothing to park")
    # from another Python thread, or switched off, it leaves the pool alone
    counts = []
    worker = threading.Thread(target=lambda: counts.append(_blas.park()))
    worker.start()
    worker.join()
    assert counts == [0]
    monkeypatch.setattr(config, "PARK_BLAS", False)
    assert _blas.park() == 0
