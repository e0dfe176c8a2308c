"""Template: the model-level drivers of every generated ``_tiles_<path>.py``.

Real, linted source, never imported at run time: ``_gen_gemm`` copies everything below
the template header into each path's file (``plain`` included), where ``linear_f32``,
``linear_f32_par``, ``cols_f32``, ``MR`` and ``PANEL`` are that path's own: the model
drivers use only those GEMM entry points.

* ``dynamic_linear_f32`` / ``_par``: the whole dynamic Linear in one call: quantize
  ``x`` into the uint8 lhs buffer (``kernels.quantize._quantize_lhs``), then
  ``linear_f32``.
* ``dynamic_linear_blocks_f32``: the same with one scale per block of K (``BLOCK_Q8_0``),
  then ``linear_blocks_f32`` or its parallel twin.
* ``recurrence`` / ``recurrence_par``: the hidden recurrence of one LSTM or GRU layer
  direction over all time steps in one call: per step, ``h`` quantized once, then per
  block of hidden units (one task each, split across threads) its gates' columns of the
  hidden projection and the fused gate update (``kernels.rnn``).

``lhs`` is the scheme's :class:`numbaq.kernels.quantize.LhsParams` as a plain tuple
(which Numba's dispatcher types in C); each entry point rebuilds the NamedTuple.
"""

import numpy as np
from numba import prange

from ..config import jit
from .gemm import (
    MR,
    PANEL,
    cols_f32,
    linear_blocks_f32,
    linear_blocks_f32_par,
    linear_f32,
    linear_f32_par,
)
from .quantize import LhsParams, _quantize_lhs, _quantize_lhs_blocks, _quantize_lhs_par
from .rnn import _gru_block, _lstm_block

# ---- end of template header: the generator copies what follows ----


@jit()
def dynamic_linear_f32(x, lhs, w, kq_n, n, w_scale, col_sums, bias, act, y, a_scale, a_zp):
    """Quantize ``x`` (M, K) float32 per row or per tensor, then :func:`linear_f32`.

    Fills ``a_scale``/``a_zp`` (M,) with the runtime scales and effective zero points
    and returns the status of ``kernels.quantize._lhs_status`` (0: ``y`` is valid).
    """
    lhs = LhsParams(*lhs)
    m, k = x.shape
    lda = 4 * kq_n
    a = np.empty((m, lda), np.uint8)
    if lda != k:
        a[:, k:] = 0
    status = _quantize_lhs(x, lhs, a, a_scale, a_zp)
    if status == 0:
        linear_f32(
            a.reshape(a.size), lda, m, w, kq_n, n, a_scale, a_zp, w_scale, col_sums, bias, act, y
        )
    return status


@jit(parallel=True)
def dynamic_linear_f32_par(
    x, lhs, w, kq_n, n, w_scale, col_sums, bias, act, y, a_scale, a_zp, m_block, parallel_quantize
):
    """Parallel twin of :func:`dynamic_linear_f32` (the quantize step in parallel too
    when ``parallel_quantize``)."""
    lhs = LhsParams(*lhs)
    m, k = x.shape
    lda = 4 * kq_n
    a = np.empty((m, lda), np.uint8)
    if lda != k:
        a[:, k:] = 0
    if parallel_quantize:
        status = _quantize_lhs_par(x, lhs, a, a_scale, a_zp)
    else:
        status = _quantize_lhs(x, lhs, a, a_scale, a_zp)
    if status == 0:
        linear_f32_par(
            a.reshape(a.size),
            lda,
            m,
            w,
            kq_n,
            n,
            a_scale,
            a_zp,
            w_scale,
            col_sums,
            bias,
            act,
            y,
            m_block,
        )
    return status


@jit()
def dynamic_linear_blocks_f32(
    x, lhs, w, kq_n, n, block_kq, w_scale, block_sums, bias, act, y, a_scale, m_block
):
    """The whole block-scaled dynamic Linear in one call: each block of ``4 * block_kq``
    values of ``x`` (M, K) float32 quantized on its own (``_quantize_lhs`` on the blocks
    (symmetric int8 codes, stored ``+ SHIFT``), then :func:`linear_blocks_f32`
    (``linear_blocks_f32_par`` with tasks of ``m_block`` rows when ``m_block > 0``).

    The blocks are quantized on one thread (``_quantize_lhs_blocks``, on flat indices).
    ``a_scale`` (M * K // block,) float32 receives the blocks' scales. Returns the
    status of ``kernels.quantize._lhs_status`` (counting blocks; 0: ``y`` is valid).
    """
    lhs = LhsParams(*lhs)
    m, k = x.shape
    a = np.empty(m * k, np.uint8)
    status = _quantize_lhs_blocks(x, 4 * block_kq, lhs, a, a_scale)
    if status == 0:
        scales = a_scale.reshape(m, k // (4 * block_kq))
        args = (a, k, m, w, kq_n, n, block_kq, scales, w_scale, block_sums)
        if m_block > 0:
            linear_blocks_f32_par(*args, bias, act, y, m_block)
        else:
            linear_blocks_f32(*args, bias, act, y)
    return status


@jit()
def _units(
    lstm,
    u0,
    count,
    a,
    lda,
    w,
    kq_n,
    acc,
    a_scale,
    a_zp,
    w_scale,
    col_sums,
    bias,
    hg,
    xg_t,
    h,
    c,
    out_t,
):
    """One task of a step: the block's gate columns of ``hg = dynamic_linear(h)`` (``a``
    the quantized ``h``, flat), then its units' update, in place, and ``out_t``."""
    gates = 4 if lstm else 3
    c0 = gates * u0
    m, n = hg.shape
    cols_f32(
        a,
        lda,
        m,
        w,
        kq_n,
        n,
        c0,
        c0 + gates * count,
        acc,
        a_scale,
        a_zp,
        w_scale,
        col_sums,
        bias,
        hg,
    )
    if lstm:
        _lstm_block(xg_t, hg, u0, count, h, c)
    else:
        _gru_block(xg_t, hg, u0, count, h)
    for b in range(m):
        out_t[b, u0 : u0 + count] = h[b, u0 : u0 + count]


@jit()
def recurrence(
    lstm, xg, h, c, out, reverse, lhs, w, kq_n, w_scale, col_sums, bias, a_scale, a_zp, unit_block
):
    """All steps of one layer direction: ``hg = dynamic_linear(h)``, then the gates.

    ``xg`` (T, B, G*H) holds the input projections (``b_ih`` included); ``h`` and ``c``
    (B, H) the initial state, updated in place (``c`` unused for a GRU); ``out`` (T, B, H)
    receives every step's ``h``. ``w`` (with ``w_scale``, ``col_sums``, ``bias``) is
    ``W_hh`` with its rows in blocks of ``unit_block`` units
    (``kernels.rnn.gate_order``): per step, ``h`` is quantized once, then each block
    computes its gates' columns and updates its units while they are in L1. Returns 0, or
    the status of the first step whose ``h`` failed to quantize.
    """
    lhs = LhsParams(*lhs)
    steps, m, hidden = out.shape
    a = np.zeros((m, 4 * kq_n), np.uint8)
    flat = a.reshape(a.size)  # the tiles read the lhs flat
    hg = np.empty((m, xg.shape[2]), np.float32)
    acc = np.empty(MR * PANEL, np.int32)
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        status = _quantize_lhs(h, lhs, a, a_scale, a_zp)
        if status != 0:
            return status
        for u0 in range(0, hidden, unit_block):
            _units(
                lstm,
                u0,
                min(unit_block, hidden - u0),
                flat,
                4 * kq_n,
                w,
                kq_n,
                acc,
                a_scale,
                a_zp,
                w_scale,
                col_sums,
                bias,
                hg,
                xg[t],
                h,
                c,
                out[t],
            )
    return 0


@jit(parallel=True)
def recurrence_par(
    lstm, xg, h, c, out, reverse, lhs, w, kq_n, w_scale, col_sums, bias, a_scale, a_zp, unit_block
):
    """Parallel twin of :func:`recurrence`: the blocks of units of each step are split
    across the threads, so each core keeps its share of ``W_hh`` in its own cache."""
    lhs = LhsParams(*lhs)
    steps, m, hidden = out.shape
    a = np.zeros((m, 4 * kq_n), np.uint8)
    flat = a.reshape(a.size)  # the tiles read the lhs flat
    hg = np.empty((m, xg.shape[2]), np.float32)
    n_blocks = (hidden + unit_block - 1) // unit_block
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        status = _quantize_lhs(h, lhs, a, a_scale, a_zp)
        if status != 0:
            return status
        for i in prange(n_blocks):
            u0 = i * unit_block
            acc = np.empty(MR * PANEL, np.int32)
            _units(
                lstm,
                u0,
                min(unit_block, hidden - u0),
                flat,
                4 * kq_n,
                w,
                kq_n,
                acc,
                a_scale,
                a_zp,
                w_scale,
                col_sums,
                bias,
                hg,
                xg[t],
                h,
                c,
                out[t],
            )
    return 0
