"""GEMM kernel paths: selection from CPU features, packing, and every path's exactness."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numbaq.kernels import _gen_gemm
from numbaq.kernels import gemm as kg

AVAILABLE = [p for p in kg.PATHS if kg.supported(p)]


def test_generated_files_are_up_to_date():
    for path in _gen_gemm.GENERATED:
        assert _gen_gemm.target(path).read_text() == _gen_gemm.render(path), (
            f"run `python -m numbaq.kernels._gen_gemm` to regenerate {path}"
        )


@pytest.mark.parametrize(
    "features, expected",
    [
        ({"avx512vnni", "avx512bw", "avx512f", "avx512vl", "avx2"}, "vnni512"),
        ({"avxvnni", "avx2"}, "vnni256"),
        ({"avx512bw", "avx512f", "avx2"}, "avx512bw"),
        ({"avx2"}, "avx2"),
        ({"sse4.2"}, "plain"),
    ],
)
def test_auto_path_follows_cpu_features(features, expected):
    path, reason = kg.resolve("auto", frozenset(features))
    assert path == expected and reason


def test_forcing_a_path_the_cpu_lacks_is_a_clear_error():
    with pytest.raises(ValueError, match=r"needs CPU features.*which this CPU lacks"):
        kg.resolve("vnni512", frozenset({"avx2"}))
    with pytest.raises(ValueError, match="gemm path must be 'auto' or one of"):
        kg.resolve("amx")


def test_numba_cpu_features_override(monkeypatch):
    monkeypatch.setattr(kg.numba.config, "CPU_FEATURES", "+avx2,-avx512vnni,+sse4.2")
    kg.cpu_features.cache_clear()
    try:
        assert kg.resolve("auto")[0] == "avx2"
    finally:
        kg.cpu_features.cache_clear()


@pytest.mark.parametrize("path", [p for p in kg.PATHS if p != "plain"])
def test_packing_puts_each_weight_where_the_tile_reads_it(path):
    lanes, nr, layout = kg.geometry(path)
    n, k = 3 * nr * lanes - 5, 13
    w = (np.arange(n * k) % 251 - 125).astype(np.int8).reshape(n, k)
    packed = kg.pack(w, path)
    kq, panel = -(-k // 4), nr * lanes
    for col in (0, lanes + 1, n - 1):
        for kk in (0, 5, k - 1):
            p, v, lane = col // panel, (col % panel) // lanes, col % lanes
            base = ((p * kq + kk // 4) * nr + v) * 4 * lanes
            j = kk % 4
            offset = lane * 4 + j if layout == "vnni" else (j // 2) * 2 * lanes + lane * 2 + j % 2
            assert packed[base + offset] == w[col, kk]


def _run(path, a, w, parallel):
    m, k = a.shape
    n = w.shape[0]
    kq = -(-k // 4)
    buf = np.zeros((m, 4 * kq), np.uint8)
    buf[:, :k] = a
    mod = kg.module(path)
    out = np.empty((m, n), np.int32)
    args = (buf.reshape(-1), 4 * kq, m, kg.pack(w, path), kq, n, out)
    if parallel:
        mod.gemm_i32_par(*args, kg.m_block(m, n, path, 2, max_rows=12))  # many small tasks
    else:
        mod.gemm_i32(*args)
    return out


@pytest.mark.parametrize("path", AVAILABLE)
@given(
    m=st.integers(1, 60),
    k=st.integers(1, 300),
    n=st.integers(1, 150),
    seed=st.integers(0, 2**31),
    extreme=st.booleans(),
    parallel=st.booleans(),
)
def test_every_path_is_exact(path, m, k, n, seed, extreme, parallel):
    rng = np.random.default_rng(seed)
    if extreme:  # the largest products: 255 * -128
        a = rng.choice(np.array([0, 255], np.uint8), (m, k))
        w = rng.choice(np.array([-128, 127], np.int8), (n, k))
    else:
        a = rng.integers(0, 256, (m, k), dtype=np.uint8)
        w = rng.integers(-128, 128, (n, k), dtype=np.int8)
    expected = (a.astype(np.int64) @ w.astype(np.int64).T).astype(np.int32)
    np.testing.assert_array_equal(_run(path, a, w, parallel), expected)
