"""Template: the tiles of the AMX paths (``amx_emulated``; ``amx`` where the CPU has it).

Real, linted source, never imported at run time: ``_gen_gemm`` copies everything below
the template header into ``_tiles_<path>.py`` for each path whose ``tile`` is ``"amx"``,
with the tile operations imported from the path's ``ops`` module: ``amx_twin`` (the
software twin, any CPU) or the hardware intrinsics. The drivers that follow them in the
generated file are the SIMD paths' own (``_drivers_tiles``, ``_drivers_model``): they
call :func:`_tile`, :func:`_tile_i32` and :func:`_tile_blocks` as they call a register
tile's.

One call computes a ``rows x 64`` block of C (``rows <= MR = 16``) as four 16 x 16 int32
tiles (0-3) over the whole K loop, 64 K values (16 quads) a step: A (tile 4, ``rows``
x 64 bytes) straight from the row-major uint8 lhs at stride ``lda``; B (tile 5, 16 quads
x 64 bytes) from the weights packed as for ``vnni512`` (``[panel][kq][vector][lane][4]``:
quad ``kq`` of vector ``v`` at ``(kq * 4 + v) * 64``, so stride ``KBYTES = 256``).
A K tail of ``tail < 16`` quads has its own tiles, configured once with the others: A'
(tile 6, ``rows`` x ``4 tail`` bytes) and B' (tile 7, ``tail`` quads). Tile numbers are
literals (the hardware's are immediates), hence the four unrolled C tiles.
"""

import numpy as np

from ..config import jit
from .amx_twin import ldtilecfg, tdpbusd, tileloadd, tilerelease, tilestored, tilezero
from .amx_twin import registers as _state
from .epilogue import SHIFT
from .simd import fadd16 as vfadd
from .simd import fmul16 as vfmul
from .simd import imul16 as vimul
from .simd import isub16 as visub
from .simd import loadf16 as vloadf
from .simd import loadi16 as vloadi
from .simd import splatf16 as vsplatf
from .simd import splati16 as vsplati
from .simd import storef16 as vstoref
from .simd import tofloat16 as vtofloat

LANES = 16
MR = 16
NR = 4
PANEL = 64
KBYTES = 256
LAYOUT = "vnni"

# ---- end of template header: the generator copies what follows ----

QUADS = 16  # K quads (64 bytes of A) per tdpbusd step


@jit(inline=True)
def _config(cfg, rows, tail):
    """Palette 1: C tiles 0-3 and A (4) ``rows`` x 64 bytes, B (5) 16 x 64, and for a K
    tail of ``tail`` quads A' (6) ``rows`` x ``4 tail`` and B' (7) ``tail`` x 64."""
    cfg[:] = 0
    cfg[0] = 1
    for t in range(8):
        r, colsb = rows, 64
        if t == 5:
            r = QUADS
        elif t == 6:
            colsb = 4 * tail
        elif t == 7:
            r = tail
        if r == 0 or colsb == 0:
            r, colsb = 0, 0
        cfg[16 + 2 * t] = colsb
        cfg[48 + t] = r


@jit(inline=True)
def _k_loop(state, a, a_off, lda, w, w_off, kq_n):
    """Tiles 0-3 = A . B over ``kq_n`` quads of K (configured by :func:`_config`)."""
    tilezero(state, 0)
    tilezero(state, 1)
    tilezero(state, 2)
    tilezero(state, 3)
    for kb in range(kq_n // QUADS):
        wb = w_off + kb * QUADS * KBYTES
        tileloadd(state, 4, a, a_off + kb * 4 * QUADS, lda)
        tileloadd(state, 5, w, wb, KBYTES)
        tdpbusd(state, 0, 4, 5)
        tileloadd(state, 5, w, wb + 64, KBYTES)
        tdpbusd(state, 1, 4, 5)
        tileloadd(state, 5, w, wb + 128, KBYTES)
        tdpbusd(state, 2, 4, 5)
        tileloadd(state, 5, w, wb + 192, KBYTES)
        tdpbusd(state, 3, 4, 5)
    if kq_n % QUADS:
        kb = kq_n // QUADS
        wb = w_off + kb * QUADS * KBYTES
        tileloadd(state, 6, a, a_off + kb * 4 * QUADS, lda)
        tileloadd(state, 7, w, wb, KBYTES)
        tdpbusd(state, 0, 6, 7)
        tileloadd(state, 7, w, wb + 64, KBYTES)
        tdpbusd(state, 1, 6, 7)
        tileloadd(state, 7, w, wb + 128, KBYTES)
        tdpbusd(state, 2, 6, 7)
        tileloadd(state, 7, w, wb + 192, KBYTES)
        tdpbusd(state, 3, 6, 7)


@jit(inline=True)
def _store(state, out, out_off, ldo):
    """Tiles 0-3 side by side into int32 ``out`` at ``out_off``, row stride ``ldo``."""
    tilestored(state, 0, out, out_off, ldo)
    tilestored(state, 1, out, out_off + 16, ldo)
    tilestored(state, 2, out, out_off + 32, ldo)
    tilestored(state, 3, out, out_off + 48, ldo)


@jit()
def _tile(a, a_off, lda, w, w_off, kq_n, acc, rows):
    """``rows`` x 64 int32 results of the whole K loop into scratch ``acc`` (rows of PANEL)."""
    state, cfg = _state()
    _config(cfg, rows, kq_n % QUADS)
    ldtilecfg(state, cfg)
    _k_loop(state, a, a_off, lda, w, w_off, kq_n)
    _store(state, acc, 0, PANEL)
    tilerelease(state)


@jit()
def _tile_i32(a, a_off, lda, w, w_off, kq_n, out, out_off, ldo, rows):
    """A full-panel tile of ``rows`` rows, int32 results straight to flat ``out``."""
    state, cfg = _state()
    _config(cfg, rows, kq_n % QUADS)
    ldtilecfg(state, cfg)
    _k_loop(state, a, a_off, lda, w, w_off, kq_n)
    _store(state, out, out_off, ldo)
    tilerelease(state)


@jit()
def _tile_blocks(
    a,
    a_off,
    lda,
    w,
    w_off,
    n_blocks,
    block_kq,
    a_scale,
    as_off,
    as_ld,
    w_scale,
    block_sums,
    wb_off,
    wb_ld,
    total,
    rows,
):
    """The block-scaled tile: each block of ``block_kq`` quads through the tiles, its int32
    result folded into the float32 ``total`` (rows of PANEL) as soon as it is stored:
    ``total += float32(dot_b - SHIFT * block_sums[b]) * (a_scale[m, b] * w_scale[b])``,
    the operations and order of the SIMD paths' block tiles."""
    state, cfg = _state()
    _config(cfg, rows, block_kq % QUADS)
    ldtilecfg(state, cfg)
    acc = np.empty(MR * PANEL, np.int32)
    zero = vsplatf(np.float32(0.0))
    for i in range(0, rows * PANEL, LANES):
        vstoref(total, i, zero)
    shift = vsplati(SHIFT)
    for blk in range(n_blocks):
        _k_loop(
            state, a, a_off + 4 * blk * block_kq, lda, w, w_off + blk * block_kq * KBYTES, block_kq
        )
        _store(state, acc, 0, PANEL)
        wb = wb_off + blk * wb_ld
        for r in range(rows):
            sa = vsplatf(a_scale[as_off + r * as_ld + blk])
            for v in range(NR):
                at = (r * NR + v) * LANES
                s = vimul(shift, vloadi(block_sums, wb + v * LANES))
                term = vfmul(
                    vtofloat(visub(vloadi(acc, at), s)), vfmul(sa, vloadf(w_scale, wb + v * LANES))
                )
                vstoref(total, at, vfadd(vloadf(total, at), term))
    tilerelease(state)
