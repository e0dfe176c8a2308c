"""Template: the GEMM drivers of every generated ``_tiles_<path>.py`` (SIMD paths).

Real, linted source, never imported at run time: ``_gen_gemm`` copies everything below
the template header into each path's file, where ``MR``, ``PANEL``, ``KBYTES`` and the
register tiles (``_tile``, ``_tile_i32``, ``_tile_f32``) are that path's own. The header
imports them from one generated file only so that this file reads (and lints) as Python.

* ``gemm_i32`` / ``gemm_i32_par``: raw int32 dot products of a packed panel set.
* ``linear_f32`` / ``linear_f32_par``: the same, with the dequantizing epilogue fused.
* ``linear_blocks_f32`` / ``_par``: scales per block of K (``BLOCK_Q8_0`` activations,
  per-group weights): the tile runs block by block, each block's int32 result is scaled
  and added in float32.

The parallel drivers split the work into tasks of (column panel, block of ``m_block``
rows; see :func:`numbaq.engine.m_block`); each task keeps its weight panel hot in
L1/L2 while it walks its rows.
"""

import numpy as np
from numba import prange

from ..config import jit
from ._tiles_vnni512 import KBYTES, LANES, MR, NR, PANEL, _tile, _tile_blocks, _tile_i32
from .epilogue import ACT_GELU, SHIFT, _activate_rows, _store_f32, _store_i32
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
from .vmath import _gelu_vec

# ---- end of template header: the generator copies what follows ----


@jit(inline=True)
def _block_i32(a, lda, m_lo, m_hi, w, kq_n, n, p, acc, out):
    """Rows ``m_lo:m_hi`` of panel ``p``: int32 results into ``out`` (M * N,), flat."""
    n0 = p * PANEL
    ncols = min(PANEL, n - n0)
    for m0 in range(m_lo, m_hi, MR):
        rows = min(MR, m_hi - m0)
        if ncols == PANEL:
            _tile_i32(a, m0 * lda, lda, w, p * kq_n * KBYTES, kq_n, out, m0 * n + n0, n, rows)
        else:
            _tile(a, m0 * lda, lda, w, p * kq_n * KBYTES, kq_n, acc, rows)
            _store_i32(acc, PANEL, rows, m0, n0, ncols, out, n)


@jit()
def gemm_i32(a, lda, m, w, kq_n, n, out):
    """``out[:m, :n] = a' . b'^T`` (int32, wrapping): ``a`` uint8 (M, lda) flat, ``w`` packed."""
    acc = np.empty(MR * PANEL, np.int32)
    flat = out.reshape(out.size)
    for p in range((n + PANEL - 1) // PANEL):
        _block_i32(a, lda, 0, m, w, kq_n, n, p, acc, flat)


@jit(parallel=True)
def gemm_i32_par(a, lda, m, w, kq_n, n, out, m_block):
    """Parallel twin of :func:`gemm_i32`: tasks of (panel, block of ``m_block`` rows)."""
    n_panels = (n + PANEL - 1) // PANEL
    n_tasks = n_panels * ((m + m_block - 1) // m_block)
    flat = out.reshape(out.size)
    for t in prange(n_tasks):
        m_lo = (t // n_panels) * m_block
        acc = np.empty(MR * PANEL, np.int32)
        _block_i32(a, lda, m_lo, min(m, m_lo + m_block), w, kq_n, n, t % n_panels, acc, flat)


@jit(inline=True)
def _store_f32_full(acc, rows, m, n0, a_scale, a_zp, w_scale, col_sums, bias, y, n, gelu):
    """``epilogue._store_f32`` of a full panel into ``y`` (M * N,), flat: one vector of
    ``LANES`` columns at a time, the same float32 operations per lane in the same order;
    with ``gelu``, GELU on each vector while it is in a register (``vmath._gelu_vec``, the
    bits of ``mathf._gelu``).

    Plain loops over row slices had compiled to scalar code with an atomic reference
    count per slice, 1.0-1.5 ns an output: the Linear ran 11-16% over its int32 core on
    avx2, and 5-8% with this. GELU in a loop over the stored row took about 1 ns an
    element on a Zen 4 core, 0.3 here.
    """
    for r in range(rows):
        za = vsplati(a_zp[m + r])
        sa = vsplatf(a_scale[m + r])
        for v in range(NR):
            j = n0 + v * LANES
            t = vtofloat(visub(vloadi(acc, (r * NR + v) * LANES), vimul(za, vloadi(col_sums, j))))
            t = vfadd(vfmul(t, vfmul(sa, vloadf(w_scale, j))), vloadf(bias, j))
            if gelu:
                t = _gelu_vec(t)
            vstoref(y, (m + r) * n + j, t)


@jit(inline=True)
def _block_f32(
    a, lda, m_lo, m_hi, w, kq_n, n, p, acc, a_scale, a_zp, w_scale, col_sums, bias, act, y
):
    """Rows ``m_lo:m_hi`` of panel ``p``, dequantized into ``y`` (M * N,) float32, flat:
    each tile lands in the L1 scratch ``acc``, then the epilogue reads it.

    An epilogue on the accumulators in registers, stored straight to ``y``, measured
    slower here: 22.3 against 18.4 us at M=1, K=512, N=2048; 1145 against 1036 us at
    128 x 768 x 3072 (one thread, vnni512).
    """
    n0 = p * PANEL
    ncols = min(PANEL, n - n0)
    for m0 in range(m_lo, m_hi, MR):
        rows = min(MR, m_hi - m0)
        _tile(a, m0 * lda, lda, w, p * kq_n * KBYTES, kq_n, acc, rows)
        if ncols == PANEL:
            gelu = act == ACT_GELU
            _store_f32_full(acc, rows, m0, n0, a_scale, a_zp, w_scale, col_sums, bias, y, n, gelu)
            if not gelu:
                _activate_rows(y, n, m0, rows, n0, ncols, act)
        else:
            _store_f32(
                acc, PANEL, rows, m0, n0, ncols, a_scale, a_zp, w_scale, col_sums, bias, y, n
            )
            _activate_rows(y, n, m0, rows, n0, ncols, act)


@jit()
def linear_f32(a, lda, m, w, kq_n, n, a_scale, a_zp, w_scale, col_sums, bias, act, y):
    """``y = dequantize(a' . b'^T) + bias``, then the activation; see ``epilogue``."""
    acc = np.empty(MR * PANEL, np.int32)
    yf = y.reshape(y.size)
    for p in range((n + PANEL - 1) // PANEL):
        _block_f32(
            a, lda, 0, m, w, kq_n, n, p, acc, a_scale, a_zp, w_scale, col_sums, bias, act, yf
        )


@jit(parallel=True)
def linear_f32_par(a, lda, m, w, kq_n, n, a_scale, a_zp, w_scale, col_sums, bias, act, y, m_block):
    """Parallel twin of :func:`linear_f32`: tasks of (panel, block of ``m_block`` rows)."""
    n_panels = (n + PANEL - 1) // PANEL
    n_tasks = n_panels * ((m + m_block - 1) // m_block)
    yf = y.reshape(y.size)
    for t in prange(n_tasks):
        m_lo = (t // n_panels) * m_block
        acc = np.empty(MR * PANEL, np.int32)
        _block_f32(
            a,
            lda,
            m_lo,
            min(m, m_lo + m_block),
            w,
            kq_n,
            n,
            t % n_panels,
            acc,
            a_scale,
            a_zp,
            w_scale,
            col_sums,
            bias,
            act,
            yf,
        )


@jit()
def _blocks_panel(
    a,
    lda,
    m_lo,
    m_hi,
    w,
    kq_n,
    n,
    p,
    block_kq,
    a_scale,
    w_scale,
    block_sums,
    bias,
    act,
    y,
    acc,
    total,
):
    """Rows ``m_lo:m_hi`` of panel ``p`` with one scale per block of ``4 * block_kq`` K values:
    ``y = sum_b float32(dot_b - SHIFT * block_sums[b, n]) * (a_scale[m, b] * w_scale[b, n])
    + bias``, ``dot_b`` the tile's int32 result on block ``b`` of the shifted activations.
    ``w_scale`` and ``block_sums`` are flat, panel by panel (``[p][b][j]``, see
    ``QuantizedWeight.block_panels``); ``y`` is (M * N,), flat. Full panels run
    ``_tile_blocks`` (each block's int32 tile folded into float32 totals in registers or
    L1 scratch, measured 3-5x the scalar fold); the last, partial panel the scalar
    loops, with the same operations in the same order."""
    n0 = p * PANEL
    ncols = min(PANEL, n - n0)
    n_blocks = kq_n // block_kq
    for m0 in range(m_lo, m_hi, MR):
        rows = min(MR, m_hi - m0)
        if ncols == PANEL:
            _tile_blocks(
                a,
                m0 * lda,
                lda,
                w,
                p * kq_n * KBYTES,
                n_blocks,
                block_kq,
                a_scale.reshape(a_scale.size),
                m0 * n_blocks,
                n_blocks,
                w_scale,
                block_sums,
                p * n_blocks * PANEL,
                PANEL,
                total,
                rows,
            )
            for r in range(rows):
                for v in range(NR):
                    j = n0 + v * LANES
                    t = vfadd(vloadf(total, (r * NR + v) * LANES), vloadf(bias, j))
                    vstoref(y, (m0 + r) * n + j, t)
        else:  # the last, partial panel: the same sums in scalars
            total.fill(0)
            for b in range(n_blocks):
                _tile(
                    a,
                    m0 * lda + 4 * b * block_kq,
                    lda,
                    w,
                    (p * kq_n + b * block_kq) * KBYTES,
                    block_kq,
                    acc,
                    rows,
                )
                wb = (p * n_blocks + b) * PANEL
                for r in range(rows):
                    sa = a_scale[m0 + r, b]
                    for j in range(ncols):
                        total[r * PANEL + j] += np.float32(
                            np.int32(acc[r * PANEL + j] - SHIFT * block_sums[wb + j])
                        ) * (sa * w_scale[wb + j])
            for r in range(rows):
                for j in range(ncols):
                    y[(m0 + r) * n + n0 + j] = total[r * PANEL + j] + bias[n0 + j]
        _activate_rows(y, n, m0, rows, n0, ncols, act)


@jit()
def linear_blocks_f32(a, lda, m, w, kq_n, n, block_kq, a_scale, w_scale, block_sums, bias, act, y):
    """Block-scaled Linear over signed activations stored shifted (``q + 128``) in ``a``."""
    acc = np.empty(MR * PANEL, np.int32)
    total = np.empty(MR * PANEL, np.float32)
    yf = y.reshape(y.size)
    for p in range((n + PANEL - 1) // PANEL):
        _blocks_panel(
            a,
            lda,
            0,
            m,
            w,
            kq_n,
            n,
            p,
            block_kq,
            a_scale,
            w_scale,
            block_sums,
            bias,
            act,
            yf,
            acc,
            total,
        )


@jit(parallel=True)
def linear_blocks_f32_par(
    a, lda, m, w, kq_n, n, block_kq, a_scale, w_scale, block_sums, bias, act, y, m_block
):
    """Parallel twin of :func:`linear_blocks_f32`."""
    n_panels = (n + PANEL - 1) // PANEL
    n_tasks = n_panels * ((m + m_block - 1) // m_block)
    yf = y.reshape(y.size)
    for t in prange(n_tasks):
        m_lo = (t // n_panels) * m_block
        acc = np.empty(MR * PANEL, np.int32)
        total = np.empty(MR * PANEL, np.float32)
        _blocks_panel(
            a,
            lda,
            m_lo,
            min(m, m_lo + m_block),
            w,
            kq_n,
            n,
            t % n_panels,
            block_kq,
            a_scale,
            w_scale,
            block_sums,
            bias,
            act,
            yf,
            acc,
            total,
        )


@jit()
def cols_f32(a, lda, m, w, kq_n, n, c0, c1, acc, a_scale, a_zp, w_scale, col_sums, bias, y):
    """Columns ``c0:c1`` of :func:`linear_f32` (no activation): the panels that hold them,
    ``c0`` a multiple of PANEL and ``c1`` one or ``n``; ``acc`` MR * PANEL int32 scratch."""
    yf = y.reshape(y.size)
    for p in range(c0 // PANEL, (c1 + PANEL - 1) // PANEL):
        _block_f32(a, lda, 0, m, w, kq_n, n, p, acc, a_scale, a_zp, w_scale, col_sums, bias, 0, yf)
