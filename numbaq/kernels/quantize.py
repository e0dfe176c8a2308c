"""Quantization kernels: qparams from a range, quantize, dequantize, and the fused
dynamic pass (stats, then qparams, then quantize, one row at a time).

The math (``round`` is round half to even, ``np.rint``)::

    q     = clip(round(x / scale) + zero_point, qmin, qmax)
    x_hat = (q - zero_point) * scale

With ``reciprocal`` (PyTorch/fbgemm) the quantize step is instead
``q = clip(round(fma(x, 1 / scale, zero_point)), qmin, qmax)``: one fused
multiply-add, rounded once, as fbgemm's ``_mm256_fmadd_ps``.

Kernels take arrays and scalars, do no checks and have no defaults; validation
lives in :mod:`numbaq.ops`. Parallel entry points end in ``_par`` and split rows
over Numba's threads; their serial twins are for problems too small to split.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import prange

from ..config import jit
from .epilogue import SHIFT
from .intrinsics import fma_f32
from .stats import _decode_bits, _reduce_bits_range, _row_minmax

_FLT_MIN = np.float32(np.finfo(np.float32).tiny)  # smallest normal float32, 2**-126
_FLT_TRUE_MIN = np.float32(np.finfo(np.float32).smallest_subnormal)  # 2**-149
_TORCH_SMALL_SCALE = np.float32(6.1e-5)  # torch's SMALL_SCALE_THRESHOLD
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)


@jit()
def _qparams_onnx(lo, hi, qmin, qmax, symmetric, min_scale):
    """``(scale, zero_point)`` in float32 arithmetic, as ONNX DynamicQuantizeLinear.

    A zero range counts as a range of 1; a scale below ``min_scale`` is raised to it.
    """
    lo = min(lo, _ZERO)
    hi = max(hi, _ZERO)
    if symmetric:
        amax = max(-lo, hi)
        if amax == _ZERO:
            amax = _ONE
        scale = amax / np.float32((qmax - qmin) / 2)
        return max(scale, min_scale), (qmin + qmax + 1) // 2
    span = hi - lo
    if span == _ZERO:
        span = _ONE
    scale = max(span / np.float32(qmax - qmin), min_scale)
    zp = np.float32(qmin) - lo / scale
    zp = min(max(zp, np.float32(qmin)), np.float32(qmax))
    return scale, int(np.rint(zp))


@jit()
def _qparams_torch(lo, hi, qmin, qmax, symmetric):
    """``(scale, zero_point)`` as PyTorch's ``ChooseQuantizationParams`` (float64 math)."""
    lo = min(lo, _ZERO)
    hi = max(hi, _ZERO)
    if symmetric:
        amax = max(-lo, hi)
        scale = np.float64(amax) / ((qmax - qmin) / 2)
    else:
        scale = (np.float64(hi) - np.float64(lo)) / (qmax - qmin)
    scale32 = np.float32(scale)
    if scale32 == _ZERO or np.isinf(_ONE / scale32):
        scale = 0.1
    if scale < _TORCH_SMALL_SCALE:
        org_scale = np.float32(scale)
        scale = np.float64(_TORCH_SMALL_SCALE)
        if lo == _ZERO:
            hi = _TORCH_SMALL_SCALE * np.float32(qmax - qmin)
        elif hi == _ZERO:
            lo = -_TORCH_SMALL_SCALE * np.float32(qmax - qmin)
        else:
            amplifier = _TORCH_SMALL_SCALE / org_scale
            lo = lo * amplifier
            hi = hi * amplifier
    if symmetric:
        return np.float32(scale), (qmin + qmax + 1) // 2
    zp_from_min = qmin - lo / scale
    zp_from_max = qmax - hi / scale
    err_from_min = abs(qmin) - abs(lo / scale)
    err_from_max = abs(qmax) - abs(hi / scale)
    zp = zp_from_min if err_from_min < err_from_max else zp_from_max
    if zp < qmin:
        return np.float32(scale), qmin
    if zp > qmax:
        return np.float32(scale), qmax
    return np.float32(scale), int(np.rint(zp))


@jit()
def _qparams(lo, hi, qmin, qmax, symmetric, torch_rule, reciprocal):
    """Dispatch to the ONNX (float32) or the torch (float64) arithmetic.

    Under the ONNX rule a scale that would be 0 becomes the smallest subnormal
    (``x / scale`` stays defined, as ONNX divides); with ``reciprocal`` scales under
    the smallest normal float32 are raised to it, so that ``1 / scale`` is finite.
    """
    if torch_rule:
        return _qparams_torch(lo, hi, qmin, qmax, symmetric)
    min_scale = _FLT_MIN if reciprocal else _FLT_TRUE_MIN
    return _qparams_onnx(lo, hi, qmin, qmax, symmetric, min_scale)


@jit()
def _choose_qparams(lo, hi, qmin, qmax, symmetric, torch_rule, reciprocal, scale, zero_point):
    """Fill ``scale`` (n,) float32 and ``zero_point`` (n,) int32 from ``lo``, ``hi`` (n,)."""
    for i in range(lo.size):
        scale[i], zero_point[i] = _qparams(
            lo[i], hi[i], qmin, qmax, symmetric, torch_rule, reciprocal
        )


@jit()
def _quantize_row(x, scale, zero_point, qmin, qmax, reciprocal, q):
    """Quantize 1-D ``x`` float32 with one scale into ``q`` (same size, int8/uint8)."""
    _quantize_range(x, 0, x.size, scale, zero_point, qmin, qmax, reciprocal, q)


@jit()
def _quantize_range(x, start, stop, scale, zero_point, qmin, qmax, reciprocal, q):
    """:func:`_quantize_row` of ``x[start:stop]`` into ``q[start:stop]`` (1-D, no slice)."""
    zp = np.float32(zero_point)
    lo = np.float32(qmin)
    hi = np.float32(qmax)
    base = np.uint64(start)  # unsigned indices: no wrap-around code, the loops vectorize
    if reciprocal:
        inv = _ONE / scale
        for j in range(stop - start):
            i = base + np.uint64(j)
            q[i] = min(max(np.rint(fma_f32(x[i], inv, zp)), lo), hi)
    else:
        for j in range(stop - start):
            i = base + np.uint64(j)
            q[i] = min(max(np.rint(x[i] / scale) + zp, lo), hi)


@jit()
def _quantize_row_by_column(x, scale, zero_point, qmin, qmax, reciprocal, q):
    """Quantize 1-D ``x`` (C,) with one scale per element, ``scale`` (C,) float32."""
    lo = np.float32(qmin)
    hi = np.float32(qmax)
    if reciprocal:
        for i in range(x.size):
            v = np.rint(fma_f32(x[i], _ONE / scale[i], np.float32(zero_point[i])))
            q[i] = min(max(v, lo), hi)
    else:
        for i in range(x.size):
            v = np.rint(x[i] / scale[i]) + np.float32(zero_point[i])
            q[i] = min(max(v, lo), hi)


@jit()
def _quantize_rows(x, scale, zero_point, qmin, qmax, reciprocal, q):
    """Quantize ``x`` (R, C) float32 with ``scale``/``zero_point`` (R,) into ``q`` (R, C)."""
    for r in range(x.shape[0]):
        _quantize_row(x[r], scale[r], zero_point[r], qmin, qmax, reciprocal, q[r])


@jit(parallel=True)
def _quantize_rows_par(x, scale, zero_point, qmin, qmax, reciprocal, q):
    """Parallel twin of :func:`_quantize_rows`."""
    for r in prange(x.shape[0]):
        _quantize_row(x[r], scale[r], zero_point[r], qmin, qmax, reciprocal, q[r])


@jit()
def _quantize_cols(x, scale, zero_point, qmin, qmax, reciprocal, q):
    """Quantize ``x`` (R, C) float32 with ``scale``/``zero_point`` (C,) into ``q`` (R, C)."""
    for r in range(x.shape[0]):
        _quantize_row_by_column(x[r], scale, zero_point, qmin, qmax, reciprocal, q[r])


@jit(parallel=True)
def _quantize_cols_par(x, scale, zero_point, qmin, qmax, reciprocal, q):
    """Parallel twin of :func:`_quantize_cols`."""
    for r in prange(x.shape[0]):
        _quantize_row_by_column(x[r], scale, zero_point, qmin, qmax, reciprocal, q[r])


@jit()
def _dequantize_row(q, scale, zero_point, out):
    """``out = (q - zero_point) * scale`` for 1-D ``q`` with one scale, float32 ``out``."""
    zp = np.float32(zero_point)
    for i in range(q.size):
        out[i] = (np.float32(q[i]) - zp) * scale


@jit()
def _dequantize_rows(q, scale, zero_point, out):
    """Dequantize ``q`` (R, C) with ``scale``/``zero_point`` (R,) into ``out`` (R, C) float32."""
    for r in range(q.shape[0]):
        _dequantize_row(q[r], scale[r], zero_point[r], out[r])


@jit(parallel=True)
def _dequantize_rows_par(q, scale, zero_point, out):
    """Parallel twin of :func:`_dequantize_rows`."""
    for r in prange(q.shape[0]):
        _dequantize_row(q[r], scale[r], zero_point[r], out[r])


@jit()
def _dequantize_cols(q, scale, zero_point, out):
    """Dequantize ``q`` (R, C) with ``scale``/``zero_point`` (C,) into ``out`` (R, C) float32."""
    for r in range(q.shape[0]):
        for c in range(q.shape[1]):
            out[r, c] = (np.float32(q[r, c]) - np.float32(zero_point[c])) * scale[c]


@jit()
def _dynamic_quantize_row(x, smin, smax, qmin, qmax, symmetric, torch_rule, reciprocal, q):
    """Stats, qparams and quantize for one row while it sits in cache.

    Returns ``(scale, zero_point, finite)``; a non-finite row is left unquantized.
    """
    lo, hi, finite = _row_minmax(x)
    if not finite:
        return _ONE, 0, False
    scale, zp = _qparams(lo, hi, smin, smax, symmetric, torch_rule, reciprocal)
    _quantize_row(x, scale, zp, qmin, qmax, reciprocal, q)
    return scale, zp, True


@jit()
def _dynamic_quantize_rows(
    x, smin, smax, qmin, qmax, symmetric, torch_rule, reciprocal, q, scale, zero_point
):
    """Per-row dynamic quantization of ``x`` (R, C) float32 in one pass over memory.

    ``smin``/``smax`` is the range the scale is chosen for, ``qmin``/``qmax`` the clamp
    range. Writes ``q`` (R, C), ``scale`` (R,) float32, ``zero_point`` (R,) int32 and
    returns the number of rows holding a NaN or an Inf.
    """
    n_bad = 0
    for r in range(x.shape[0]):
        scale[r], zero_point[r], finite = _dynamic_quantize_row(
            x[r], smin, smax, qmin, qmax, symmetric, torch_rule, reciprocal, q[r]
        )
        n_bad += not finite
    return n_bad


@jit(parallel=True)
def _dynamic_quantize_rows_par(
    x, smin, smax, qmin, qmax, symmetric, torch_rule, reciprocal, q, scale, zero_point
):
    """Parallel twin of :func:`_dynamic_quantize_rows`."""
    n_bad = 0
    for r in prange(x.shape[0]):
        scale[r], zero_point[r], finite = _dynamic_quantize_row(
            x[r], smin, smax, qmin, qmax, symmetric, torch_rule, reciprocal, q[r]
        )
        n_bad += not finite
    return n_bad


@jit()
def _dynamic_quantize_tensor(
    x, smin, smax, qmin, qmax, symmetric, torch_rule, reciprocal, q, lo, hi
):
    """Per-tensor dynamic quantization of ``x`` (R, C) float32 in one call.

    Two passes over memory (the scale needs the whole tensor's range): per-row
    min/max into the scratch ``lo``, ``hi`` (R,), then quantize into ``q``.
    Returns ``(scale, zero_point, n_bad)``, ``n_bad`` the rows holding NaN or Inf.
    """
    n_bad = 0
    for r in range(x.shape[0]):
        lo[r], hi[r], finite = _row_minmax(x[r])
        n_bad += not finite
    if n_bad:
        return _ONE, 0, n_bad
    scale, zp = _qparams(lo.min(), hi.max(), smin, smax, symmetric, torch_rule, reciprocal)
    for r in range(x.shape[0]):
        _quantize_row(x[r], scale, zp, qmin, qmax, reciprocal, q[r])
    return scale, zp, 0


@jit(parallel=True)
def _dynamic_quantize_tensor_par(
    x, smin, smax, qmin, qmax, symmetric, torch_rule, reciprocal, q, lo, hi
):
    """Parallel twin of :func:`_dynamic_quantize_tensor`."""
    n_bad = 0
    for r in prange(x.shape[0]):
        lo[r], hi[r], finite = _row_minmax(x[r])
        n_bad += not finite
    if n_bad:
        return _ONE, 0, n_bad
    scale, zp = _qparams(lo.min(), hi.max(), smin, smax, symmetric, torch_rule, reciprocal)
    for r in prange(x.shape[0]):
        _quantize_row(x[r], scale, zp, qmin, qmax, reciprocal, q[r])
    return scale, zp, 0


# ----------------------------------------------------------------- the GEMM's lhs
class LhsParams(NamedTuple):
    """A scheme's activation rule as the kernels take it: one argument, not nine.

    Attributes
    ----------
    per_tensor : bool
        One scale for all rows (else one per row).
    smin, smax : int
        The code range the scale is chosen for (``QScheme.scale_range``).
    qmin, qmax : int
        Codes are clamped to ``[qmin, qmax]`` (``QScheme.clamp_range``).
    symmetric, torch_rule, reciprocal : bool
        The qparams rule (see :class:`numbaq.QScheme`).
    signed : bool
        int8 codes, stored ``+ SHIFT`` in the uint8 lhs.

    Made by :func:`numbaq.engine.lhs_params`.
    """

    per_tensor: bool
    smin: int
    smax: int
    qmin: int
    qmax: int
    symmetric: bool
    torch_rule: bool
    reciprocal: bool
    signed: bool


@jit()
def _lhs_row(x, r, scale, zp, lhs, a):
    """Quantize row ``r`` of ``x`` into row ``r`` of the uint8 buffer ``a``.

    Signed codes are stored shifted, ``q + SHIFT`` (a flip of the sign bit): the GEMM
    takes uint8 x int8.
    """
    k = x.shape[1]
    if lhs.signed:
        row = a[r, :k]
        _quantize_row(x[r], scale, zp, lhs.qmin, lhs.qmax, lhs.reciprocal, a[r].view(np.int8)[:k])
        for i in range(k):
            row[i] ^= np.uint8(SHIFT)
    else:
        _quantize_row(x[r], scale, zp, lhs.qmin, lhs.qmax, lhs.reciprocal, a[r, :k])


@jit()
def _lhs_status(n_bad, scale):
    """0 if fine, the count of rows with NaN/Inf, or -1 if a scale overflowed to Inf."""
    if n_bad:
        return n_bad
    return -1 if np.isinf(scale) else 0


@jit()
def _lhs_qparams(lo, hi, lhs, shift, a_scale, a_zp):
    """Scales and effective zero points (``zero_point + shift``) from the row ranges
    ``lo``, ``hi`` (M,): one pair for all rows per tensor, else one per row."""
    rule = (lhs.smin, lhs.smax, lhs.symmetric, lhs.torch_rule, lhs.reciprocal)
    if lhs.per_tensor:
        scale, zp = _qparams(lo.min(), hi.max(), *rule)
        a_scale[:] = scale
        a_zp[:] = zp + shift
    else:
        for r in range(lo.size):
            a_scale[r], zp = _qparams(lo[r], hi[r], *rule)
            a_zp[r] = zp + shift


@jit()
def _quantize_lhs(x, lhs, a, a_scale, a_zp):
    """Dynamic quantization of ``x`` (M, K) float32 into the GEMM's lhs ``a`` (M, lda) uint8.

    ``lhs`` is the scheme's :class:`LhsParams` (granularity, scale range,
    code range, rule). Per row (one fused pass each) or per tensor (stats of every row
    first). Writes the
    scales to ``a_scale`` (M,) and the *effective* zero points, ``zero_point + SHIFT`` for
    signed codes, to ``a_zp`` (M,) int32. Returns the status of :func:`_lhs_status`.
    """
    m = x.shape[0]
    shift = SHIFT if lhs.signed else 0
    lo = np.empty(m, np.float32)
    hi = np.empty(m, np.float32)
    n_bad = 0
    for r in range(m):
        lo[r], hi[r], finite = _row_minmax(x[r])
        n_bad += not finite
    if n_bad:
        return n_bad
    _lhs_qparams(lo, hi, lhs, shift, a_scale, a_zp)
    for r in range(m):
        _lhs_row(x, r, a_scale[r], a_zp[r] - shift, lhs, a)
    return _lhs_status(0, a_scale.max())


@jit()
def _quantize_blocks_s8(x, block, lhs, codes, a_scale):
    """:func:`_quantize_lhs` of ``x`` (M, K) seen as rows of ``block`` values (the blocks
    of a symmetric block scheme: ``lhs.signed``, zero points 0), on flat indices: signed
    codes in ``codes`` (M * K,) int8, scales in ``a_scale`` (M * K // block,). Returns
    the status of :func:`_lhs_status` (counting blocks).

    A slice per block, as ``_quantize_lhs`` takes per row, cost 1.6 ns a value in
    reference counts at blocks of 32; this reads and writes through flat indices.
    """
    xf = x.reshape(x.size)
    s, u = xf.view(np.int32), xf.view(np.uint32)
    n_blocks = x.size // block
    lo = np.empty(n_blocks, np.float32)
    hi = np.empty(n_blocks, np.float32)
    n_bad = 0
    for b in range(n_blocks):
        lo[b], hi[b], finite = _decode_bits(*_reduce_bits_range(s, u, b * block, (b + 1) * block))
        n_bad += not finite
    if n_bad:
        return n_bad
    a_zp = np.empty(n_blocks, np.int32)
    _lhs_qparams(lo, hi, lhs, SHIFT, a_scale, a_zp)
    for b in range(n_blocks):
        zp = a_zp[b] - SHIFT
        start, stop = b * block, (b + 1) * block
        _quantize_range(xf, start, stop, a_scale[b], zp, lhs.qmin, lhs.qmax, lhs.reciprocal, codes)
    return _lhs_status(0, a_scale.max())


@jit()
def _quantize_lhs_blocks(x, block, lhs, a, a_scale):
    """:func:`_quantize_blocks_s8`, the codes stored ``+ SHIFT`` in ``a`` (M * K,) uint8
    (the GEMM's unsigned lhs)."""
    status = _quantize_blocks_s8(x, block, lhs, a.view(np.int8), a_scale)
    if status == 0:
        for i in range(a.size):
            a[i] ^= np.uint8(SHIFT)
    return status


@jit(parallel=True)
def _quantize_lhs_par(x, lhs, a, a_scale, a_zp):
    """Parallel twin of :func:`_quantize_lhs`."""
    m = x.shape[0]
    shift = SHIFT if lhs.signed else 0
    lo = np.empty(m, np.float32)
    hi = np.empty(m, np.float32)
    n_bad = 0
    for r in prange(m):
        lo[r], hi[r], finite = _row_minmax(x[r])
        n_bad += not finite
    if n_bad:
        return n_bad
    _lhs_qparams(lo, hi, lhs, shift, a_scale, a_zp)
    for r in prange(m):
        _lhs_row(x, r, a_scale[r], a_zp[r] - shift, lhs, a)
    return _lhs_status(0, a_scale.max())


@jit()
def _quantize_lhs_static(x, scale, zero_point, qmin, qmax, reciprocal, signed, a):
    """Quantize ``x`` (M, K) with fixed ``scale``/``zero_point`` into the GEMM's lhs ``a``
    (M, lda) uint8 (signed codes shifted by ``SHIFT``). Returns how many values clipped: their
    code before clamping was outside ``[qmin, qmax]``."""
    k = x.shape[1]
    zp = np.float32(zero_point)
    lo, hi = np.float32(qmin), np.float32(qmax)
    shift = np.float32(SHIFT if signed else 0)
    inv = _ONE / scale
    clipped = 0
    for r in range(x.shape[0]):
        row = a[r]
        for i in range(k):
            v = np.rint(fma_f32(x[r, i], inv, zp)) if reciprocal else np.rint(x[r, i] / scale) + zp
            clipped += (v < lo) | (v > hi)
            row[i] = min(max(v, lo), hi) + shift
    return clipped
