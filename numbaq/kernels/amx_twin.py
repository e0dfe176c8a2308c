"""A software twin of Intel AMX's tile instructions, in Numba: the ``amx_emulated`` path.

AMX-INT8 multiplies int8 matrices in 2-D *tile* registers: 8 tiles of up to 16 rows x 64
bytes, shaped by a 64-byte *tile configuration* (palette 1). The instructions the GEMM
uses, and how the twin holds them:

``ldtilecfg(cfg)``
    Load the configuration: byte 0 the palette (1), bytes ``16 + 2 t`` the bytes per row
    of tile ``t`` (``colsb``, little-endian 16 bits, at most 64), byte ``48 + t`` its rows
    (at most 16). Every tile's data is zeroed.
``tilezero(t)``
    Tile ``t`` all zeros.
``tileloadd(t, base, stride)``
    Rows ``r < rows_t`` of tile ``t`` from ``colsb_t`` bytes at ``base + r * stride``; the
    rest of the tile zeroed.
``tdpbusd(c, a, b)``
    ``C[m, n] += sum_k sum_i A[m, 4 k + i] * B[k, 4 n + i]``, ``A`` unsigned and ``B``
    signed bytes, ``C`` int32 wrapping, for ``m < rows_c``, ``n < colsb_c / 4``, ``k <
    colsb_a / 4``; the shapes must agree: ``rows_a == rows_c``, ``colsb_b == colsb_c``,
    ``colsb_a == 4 rows_b`` (the instruction faults otherwise; the twin raises).
``tilestored(t, base, stride)``
    Rows of tile ``t`` (``colsb_t`` bytes each) to ``base + r * stride``.
``tilerelease()``
    Back to the initial state: no configuration, tiles zeroed.

Here the register file is a uint8 array ``state`` (:data:`STATE_BYTES`: the 8 tiles of
1 KiB, then the configuration) that each kernel owns, so every twin function takes it
first, and tile numbers are plain integers. Offsets and strides count elements of the
array they index (bytes for the uint8/int8 operands, int32 elements for ``tilestored``),
as the hardware variant's wrappers take them. :func:`numbaq.reference.tdpbusd` is the
plain-numpy twin of the multiply, for tests and for teaching (notebook 06).
"""

from __future__ import annotations

import numpy as np

from ..config import jit

TILES = 8
ROWS = 16
COLSB = 64
TILE_BYTES = ROWS * COLSB
CONFIG = TILES * TILE_BYTES
"""Where the 64-byte configuration starts in ``state``."""
STATE_BYTES = CONFIG + 64


@jit(inline=True)
def _rows(state, t):
    return np.int64(state[CONFIG + 48 + t])


@jit(inline=True)
def _colsb(state, t):
    return np.int64(state[CONFIG + 16 + 2 * t]) | (np.int64(state[CONFIG + 17 + 2 * t]) << 8)


@jit()
def ldtilecfg(state, cfg):
    """Load the 64-byte palette-1 configuration ``cfg`` (uint8); zero every tile."""
    if cfg[0] != 1:
        raise ValueError("ldtilecfg: only palette 1 is supported")
    for t in range(TILES):
        rows = np.int64(cfg[48 + t])
        colsb = np.int64(cfg[16 + 2 * t]) | (np.int64(cfg[17 + 2 * t]) << 8)
        if rows > ROWS or colsb > COLSB:
            raise ValueError("ldtilecfg: a tile has more than 16 rows or 64 bytes a row")
        if (rows == 0) != (colsb == 0):
            raise ValueError("ldtilecfg: a tile has rows but no bytes, or bytes but no rows")
    for i in range(64):
        state[CONFIG + i] = cfg[i]
    state[:CONFIG] = 0


@jit()
def tilerelease(state):
    """The initial state: no configuration, every tile zeroed."""
    state[:] = 0


@jit()
def tilezero(state, t):
    """Tile ``t`` all zeros."""
    state[t * TILE_BYTES : (t + 1) * TILE_BYTES] = 0


@jit()
def tileloadd(state, t, src, offset, stride):
    """Tile ``t`` from ``src`` (1-D uint8 or int8): row ``r`` is ``colsb`` bytes at
    ``offset + r * stride``; bytes past ``colsb`` and rows past ``rows`` are zeroed."""
    rows, colsb = _rows(state, t), _colsb(state, t)
    if rows == 0:
        raise ValueError("tileloadd: the tile is not configured")
    base = t * TILE_BYTES
    state[base : base + TILE_BYTES] = 0
    for r in range(rows):
        row = offset + r * stride
        for j in range(colsb):
            state[base + r * COLSB + j] = np.uint8(src[row + j] & 0xFF)


@jit()
def tilestored(state, t, dst, offset, stride):
    """Tile ``t`` as int32 to ``dst`` (1-D int32): row ``r``'s ``colsb / 4`` values at
    ``offset + r * stride``."""
    rows, cols = _rows(state, t), _colsb(state, t) // 4
    if rows == 0:
        raise ValueError("tilestored: the tile is not configured")
    c = state[t * TILE_BYTES : (t + 1) * TILE_BYTES].view(np.int32)
    for r in range(rows):
        for j in range(cols):
            dst[offset + r * stride + j] = c[r * (COLSB // 4) + j]


@jit()
def tdpbusd(state, c, a, b):
    """``C += A . B`` in int32, wrapping: A's bytes unsigned, B's signed, B in the
    4-byte-interleaved layout (row ``k`` of B holds ``B[4 k + i, n]`` at byte ``4 n + i``)."""
    rows, n_cols, n_quads = _rows(state, c), _colsb(state, c) // 4, _colsb(state, a) // 4
    if rows == 0 or _rows(state, a) != rows or _colsb(state, b) != 4 * n_cols:
        raise ValueError("tdpbusd: the tiles' shapes do not agree (rows of A and C, B and C)")
    if _rows(state, b) != n_quads or _colsb(state, a) % 4:
        raise ValueError("tdpbusd: A's bytes a row must be 4 times B's rows")
    tile_c = state[c * TILE_BYTES : (c + 1) * TILE_BYTES].view(np.int32)
    tile_a = state[a * TILE_BYTES : (a + 1) * TILE_BYTES]
    tile_b = state[b * TILE_BYTES : (b + 1) * TILE_BYTES].view(np.int8)
    for m in range(rows):
        for n in range(n_cols):
            acc = np.int64(tile_c[m * (COLSB // 4) + n])
            for k in range(n_quads):
                for i in range(4):
                    acc += np.int64(tile_a[m * COLSB + 4 * k + i]) * np.int64(
                        tile_b[k * COLSB + 4 * n + i]
                    )
            tile_c[m * (COLSB // 4) + n] = np.int32(acc & 0xFFFFFFFF)


@jit(inline=True)
def registers():
    """``(state, cfg)``: a zeroed register file for the twin (uint8, :data:`STATE_BYTES`)
    and a 64-byte configuration buffer; each tile kernel call makes its own (a thread's
    tile state is its own on the hardware too)."""
    return np.zeros(STATE_BYTES, np.uint8), np.zeros(64, np.uint8)
