"""GEMM kernel paths: the registry, selection from CPU features, packing, and every
path's exactness through the one entry point (numbaq.engine)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numbaq import engine
from numbaq import schemes as nq_schemes
from numbaq.kernels import _gen_gemm, paths
from numbaq.kernels import gemm as kg

from .conftest import GEMM_PATHS, SEVEN_BIT_PATHS


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
    path, reason = paths.resolve("auto", frozenset(features))
    assert path == expected and reason


def test_forcing_a_path_the_cpu_lacks_is_a_clear_error():
    with pytest.raises(ValueError, match=r"needs CPU features.*which this CPU lacks"):
        paths.resolve("vnni512", frozenset({"avx2"}))
    with pytest.raises(ValueError, match="gemm path must be 'auto' or one of"):
        paths.resolve("vnni1024")


def test_amx_is_reported_and_forcing_it_without_the_cpu_features_is_a_clear_error():
    with pytest.raises(ValueError, match=r"gemm path 'amx': not available: this CPU lacks amx"):
        paths.resolve("amx", frozenset({"avx512vnni", "avx512bw", "avx512f"}))
    assert "lacks avx512bw, avx512f" in paths.amx_status(frozenset({"amx-tile", "amx-int8"}))
    assert paths.resolve("auto", frozenset())[0] == "plain"  # never the twin
    assert paths.resolve("amx_emulated", frozenset())[0] == "amx_emulated"
    if not paths.AMX_NEEDS <= paths.cpu_features():
        assert paths.amx_status().startswith("not available")


def test_the_generator_and_the_registry_agree():
    for name, spec in paths.PATHS.items():
        text = _gen_gemm.target(name).read_text()
        if spec.simd:
            assert f"LANES = {spec.lanes}\nMR = {spec.mr}\nNR = {spec.nr}\n" in text
            assert f"LAYOUT = {spec.layout!r}" in text
        assert "def recurrence_par(" in text and "def dynamic_linear_f32(" in text


def test_numba_cpu_features_override(monkeypatch):
    monkeypatch.setattr(paths.numba.config, "CPU_FEATURES", "+avx2,-avx512vnni,+sse4.2")
    paths.cpu_features.cache_clear()
    try:
        assert paths.resolve("auto")[0] == "avx2"
    finally:
        paths.cpu_features.cache_clear()


@pytest.mark.parametrize("path", [p for p in paths.PATHS if p != "plain"])
def test_packing_puts_each_weight_where_the_tile_reads_it(path):
    spec = paths.PATHS[path]
    lanes, nr, layout = spec.lanes, spec.nr, spec.layout
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
    m, n = a.shape[0], w.shape[0]
    buf, shift = engine.shift_lhs(a)
    assert shift == 0
    block = engine.m_block(m, n, path, 2, max_rows=12) if parallel else 0  # many small tasks
    out = np.empty((m, n), np.int32)
    return engine.gemm_i32(buf, kg.pack(w, path), n, out, path=path, block=block)


@pytest.mark.parametrize("path", [*GEMM_PATHS, *SEVEN_BIT_PATHS])
@given(
    m=st.integers(1, 60),
    k=st.integers(1, 300),
    n=st.integers(1, 150),
    seed=st.integers(0, 2**31),
    extreme=st.booleans(),
    parallel=st.booleans(),
)
def test_every_path_is_exact(path, m, k, n, seed, extreme, parallel):
    """Every code a path takes: 0-255, or 0-127 for a 7-bit companion (``vpmaddubsw``
    saturates a pair above 32767; at 127 the largest pair is 127 * -128 * 2)."""
    top = paths.get(path).lhs_max
    rng = np.random.default_rng(seed)
    if extreme:  # the largest products: 255 * -128 (127 * -128)
        a = rng.choice(np.array([0, top], np.uint8), (m, k))
        w = rng.choice(np.array([-128, 127], np.int8), (n, k))
    else:
        a = rng.integers(0, top + 1, (m, k), dtype=np.uint8)
        w = rng.integers(-128, 128, (n, k), dtype=np.int8)
    expected = (a.astype(np.int64) @ w.astype(np.int64).T).astype(np.int32)
    np.testing.assert_array_equal(_run(path, a, w, parallel), expected)


@pytest.mark.parametrize("path", SEVEN_BIT_PATHS)
def test_seven_bit_paths_saturate_above_127(path):
    """Why the companion is never taken for 8-bit codes: 255 * -128 * 2 saturates."""
    a = np.full((1, 8), 255, np.uint8)
    w = np.full((1, 8), -128, np.int8)
    assert _run(path, a, w, False)[0, 0] != 255 * -128 * 8


@pytest.mark.parametrize("path", paths.BY_NAME)
def test_packed_weights_start_on_a_cache_line(path):
    for n, k in ((1, 1), (17, 33), (64, 256)):
        packed = kg.pack(np.ones((n, k), np.int8), path)
        assert packed.ctypes.data % 64 == 0 and packed.flags.c_contiguous


def test_seven_bit_companion_is_taken_only_for_codes_that_fit():
    assert paths.for_lhs("avx2", 127) == "avx2u7"
    assert paths.for_lhs("avx2", 255) == "avx2"  # 255 * 128 * 2 would saturate
    assert paths.for_lhs("vnni512", 127) == "vnni512"  # vpdpbusd is exact on all codes
    with pytest.raises(ValueError, match="gemm path must be"):
        paths.resolve("avx2u7", frozenset({"avx2"}))  # never forced: wrong above 127
    assert "avx2u7" not in paths.available(frozenset({"avx2"}))


def test_a_uint7_scheme_runs_on_the_companion(monkeypatch):
    monkeypatch.setattr(engine.config, "GEMM_PATH", "plain")
    sch7, sch8 = (nq_schemes.get(name) for name in ("PER_TOKEN_UINT7", "PER_TOKEN_UINT8"))
    assert engine._scheme_kernels(sch7)[0] == "plain"
    if paths.supported("avx2"):
        monkeypatch.setattr(engine.config, "GEMM_PATH", "avx2")
        assert engine._scheme_kernels(sch7)[0] == "avx2u7"
        assert engine._scheme_kernels(sch8)[0] == "avx2"
        assert engine._scheme_kernels(nq_schemes.get("PER_TOKEN_INT8"))[0] == "avx2"


@pytest.mark.parametrize("path", [name for name, p in paths.BY_NAME.items() if p.simd])
def test_vector_epilogue_matches_the_scalar_one_on_every_path(path):
    """The full-panel epilogue of every generated module, the CPU's own or not: it uses
    only generic vector operations, so it compiles and runs on any x86-64; bit for bit
    the scalar ``epilogue._store_f32`` (extreme int32 values, zero points, tiny scales)."""
    from numbaq.kernels.epilogue import ACT_GELU, _activate_rows, _store_f32

    mod = engine._module(path)
    rows, panel = mod.MR, mod.PANEL
    rng = np.random.default_rng(7)
    m, n0, n = rows + 1, panel, 3 * panel
    acc = rng.integers(-(2**31), 2**31, rows * panel, dtype=np.int64).astype(np.int32)
    acc[:3] = [2**31 - 1, -(2**31), 0]
    a_scale = rng.uniform(1e-6, 10, m).astype(np.float32)
    a_zp = rng.integers(-200, 300, m).astype(np.int32)
    w_scale = rng.uniform(1e-6, 1, n).astype(np.float32)
    col_sums = rng.integers(-(2**20), 2**20, n).astype(np.int32)
    bias = rng.standard_normal(n).astype(np.float32)
    got = np.full(m * n, np.nan, np.float32)
    want = got.copy()
    args = (a_scale, a_zp, w_scale, col_sums, bias)
    mod._store_f32_full(acc, rows, 1, n0, *args, got, n, False)
    _store_f32(acc, panel, rows, 1, n0, panel, *args, want, n)
    assert np.array_equal(got.view(np.int32), want.view(np.int32))
    assert np.isnan(got.reshape(m, n)[0]).all() and np.isnan(got.reshape(m, n)[:, :n0]).all()
    # with GELU applied in registers: the bits of the scalar activation pass after it
    mod._store_f32_full(acc, rows, 1, n0, *args, got, n, True)
    _activate_rows(want, n, 1, rows, n0, panel, ACT_GELU)
    assert np.array_equal(got.view(np.int32), want.view(np.int32))
