"""The software twin of AMX's tile instructions (``numbaq.kernels.amx_twin``): each
operation against its definition (``numbaq.reference.tdpbusd`` for the multiply), the
instruction's limits refused as the hardware faults on them. The whole ``amx_emulated``
GEMM path runs every other path's exactness test (the ``gemm_path`` fixture)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numbaq import reference as ref
from numbaq.kernels import amx_twin as amx


def _config(shapes):
    """Palette 1 with ``{tile: (rows, colsb)}``."""
    cfg = np.zeros(64, np.uint8)
    cfg[0] = 1
    for t, (rows, colsb) in shapes.items():
        cfg[16 + 2 * t] = colsb & 0xFF
        cfg[17 + 2 * t] = colsb >> 8
        cfg[48 + t] = rows
    return cfg


@given(
    rows=st.integers(1, 16),
    quads=st.integers(1, 16),
    cols=st.integers(1, 16),
    seed=st.integers(0, 2**31),
    extreme=st.booleans(),
)
def test_tdpbusd_matches_its_definition(rows, quads, cols, seed, extreme):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (rows, 4 * quads), dtype=np.uint8)
    b = rng.integers(-128, 128, (quads, 4 * cols), dtype=np.int8)
    c = rng.integers(-(2**31), 2**31, (rows, cols), dtype=np.int64).astype(np.int32)
    if extreme:  # the largest products, and a C near the int32 edge: the adds wrap
        a[:] = 255
        b[:] = -128
        c[:] = -(2**31) + 5
    state, _ = amx.registers()
    amx.ldtilecfg(state, _config({0: (rows, 4 * cols), 1: (rows, 4 * quads), 2: (quads, 4 * cols)}))
    c_src = c.reshape(-1).view(np.uint8)
    amx.tileloadd(state, 0, c_src, 0, 4 * cols)
    amx.tileloadd(state, 1, a.reshape(-1), 0, 4 * quads)
    amx.tileloadd(state, 2, b.reshape(-1), 0, 4 * cols)
    amx.tdpbusd(state, 0, 1, 2)
    out = np.full(rows * 20, 7, np.int32)
    amx.tilestored(state, 0, out, 3, 20)  # offset and stride in int32 elements
    got = out.reshape(rows, 20)[:, 3 : 3 + cols] if rows else out
    np.testing.assert_array_equal(got, ref.tdpbusd(c, a, b))
    assert (out.reshape(rows, 20)[:, :3] == 7).all()  # nothing outside the tile written


def test_load_zeroes_the_rest_and_release_clears():
    state, _ = amx.registers()
    amx.ldtilecfg(state, _config({3: (2, 8)}))
    src = np.arange(1, 41, dtype=np.uint8)
    state[3 * amx.TILE_BYTES : 4 * amx.TILE_BYTES] = 99
    amx.tileloadd(state, 3, src, 4, 10)  # rows at 4 and 14
    tile = state[3 * amx.TILE_BYTES : 4 * amx.TILE_BYTES].reshape(16, 64)
    assert tile[0, :8].tolist() == list(range(5, 13)) and tile[1, :8].tolist() == list(
        range(15, 23)
    )
    assert not tile[:, 8:].any() and not tile[2:].any()
    amx.tilezero(state, 3)
    assert not tile.any()
    amx.tilerelease(state)
    assert not state.any()


@pytest.mark.parametrize(
    ("shapes", "match"),
    [
        ({0: (17, 64)}, "more than 16 rows"),
        ({0: (16, 65)}, "more than 16 rows or 64 bytes"),
        ({0: (4, 0)}, "rows but no bytes"),
    ],
)
def test_bad_configurations_are_refused(shapes, match):
    state, _ = amx.registers()
    with pytest.raises(ValueError, match=match):
        amx.ldtilecfg(state, _config(shapes))
    bad_palette = _config({})
    bad_palette[0] = 2
    with pytest.raises(ValueError, match="palette 1"):
        amx.ldtilecfg(state, bad_palette)


def test_mismatched_tiles_are_refused():
    state, _ = amx.registers()
    amx.ldtilecfg(state, _config({0: (4, 16), 1: (4, 8), 2: (3, 16), 3: (2, 8)}))
    with pytest.raises(ValueError, match="A's bytes a row must be 4 times B's rows"):
        amx.tdpbusd(state, 0, 1, 2)  # A has 2 quads, B 3 rows
    with pytest.raises(ValueError, match="shapes do not agree"):
        amx.tdpbusd(state, 0, 3, 2)  # A has 2 rows, C 4
    with pytest.raises(ValueError, match="not configured"):
        amx.tileloadd(state, 5, np.zeros(64, np.uint8), 0, 64)
