"""Runtime statistics: exact min and max of float32 data, with a NaN/Inf check.

Numba's float ``min``/``max`` reductions stay scalar (the loop vectorizer does not
form them, with or without fast-math: 55 us for 128x768 float32 here). These kernels
reduce the float32 *bit patterns* as integers instead, which LLVM does vectorize,
and which is exact with no fast-math at all (4 us for the same tensor, 1 core).

Read a float32 ``x`` as int32 ``s`` and as uint32 ``u`` (same bits):

* non-negative floats have ``s >= 0`` and ``s`` grows with the value;
* negative floats have ``u >= 0x80000000`` and ``u`` grows with the magnitude.

So three integer reductions give everything::

    max(x) = bits(max s)   if max s >= 0            (some x >= +0.0)
           = bits(min u)   otherwise                (all negative: closest to 0)
    min(x) = bits(max u)   if max u >= 0x80000000   (some x <= -0.0)
           = bits(min u)   otherwise                (all non-negative: smallest)
    NaN or Inf present  <=>  max s >= 0x7F800000  or  max u >= 0xFF800000

Kernels take arrays and scalars, do no checks and have no defaults; validation
lives in :mod:`numbaq.ops`. The per-row kernel has a ``_par`` twin that splits rows
over Numba's threads. The per-column kernel is serial (11 us for 128x768): its
parallel form measured 3x slower, and per-column statistics are off the hot path.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..config import jit
from .intrinsics import f32_from_bits as _f32_from_bits

_POS_INF_BITS = np.int32(0x7F800000)  # +Inf; every larger int32 is a +NaN
_NEG_INF_BITS = np.uint32(0xFF800000)  # -Inf; every larger uint32 is a -NaN
_SIGN_BIT = np.uint32(0x80000000)


@jit()
def _reduce_bits(x):
    """``(max s, max u, min u)`` over a contiguous 1-D float32 ``x``; see module notes."""
    return _reduce_bits_range(x.view(np.int32), x.view(np.uint32), 0, x.size)


@jit()
def _reduce_bits_range(s, u, start, stop):
    """:func:`_reduce_bits` of ``x[start:stop]``, given ``x``'s bits as int32 ``s`` and
    uint32 ``u`` (no slice: a slice costs Numba a reference count, an atomic, which the
    many short blocks of a block scheme pay once each)."""
    smax = np.int32(-0x80000000)
    umax = np.uint32(0)
    umin = np.uint32(0xFFFFFFFF)
    base = np.uint64(start)  # unsigned: no wrap-around of negative indices, so it vectorizes
    for j in range(stop - start):
        i = base + np.uint64(j)
        a = s[i]
        b = u[i]
        smax = a if a > smax else smax
        umax = b if b > umax else umax
        umin = b if b < umin else umin
    return smax, umax, umin


@jit()
def _decode_bits(smax, umax, umin):
    """Turn the three bit reductions into ``(min, max, finite)``."""
    finite = smax < _POS_INF_BITS and umax < _NEG_INF_BITS
    hi = _f32_from_bits(smax) if smax >= 0 else _f32_from_bits(umin)
    lo = _f32_from_bits(umax) if umax >= _SIGN_BIT else _f32_from_bits(umin)
    return lo, hi, finite


@jit()
def _row_minmax(x):
    """``(min, max, finite)`` of a contiguous 1-D float32 ``x`` of size >= 1."""
    smax, umax, umin = _reduce_bits(x)
    return _decode_bits(smax, umax, umin)


@jit()
def _minmax_rows(x, lo, hi):
    """Per-row min and max of ``x`` (R, C) float32 into ``lo``, ``hi`` (R,) float32.

    Returns the number of rows holding a NaN or an Inf (their lo/hi are meaningless).
    """
    n_bad = 0
    for r in range(x.shape[0]):
        lo[r], hi[r], finite = _row_minmax(x[r])
        n_bad += not finite
    return n_bad


@jit(parallel=True)
def _minmax_rows_par(x, lo, hi):
    """Parallel twin of :func:`_minmax_rows`."""
    n_bad = 0
    for r in prange(x.shape[0]):
        lo[r], hi[r], finite = _row_minmax(x[r])
        n_bad += not finite
    return n_bad


@jit()
def _minmax_cols(x, lo, hi):
    """Per-column min and max of ``x`` (R, C) float32 into ``lo``, ``hi`` (C,) float32.

    Returns the number of columns holding a NaN or an Inf.
    """
    s = x.view(np.int32)
    u = x.view(np.uint32)
    n_cols = x.shape[1]
    smax = np.full(n_cols, np.int32(-0x80000000), np.int32)
    umax = np.zeros(n_cols, np.uint32)
    umin = np.full(n_cols, np.uint32(0xFFFFFFFF), np.uint32)
    for r in range(x.shape[0]):
        for c in range(n_cols):
            a = s[r, c]
            b = u[r, c]
            smax[c] = a if a > smax[c] else smax[c]
            umax[c] = b if b > umax[c] else umax[c]
            umin[c] = b if b < umin[c] else umin[c]
    n_bad = 0
    for c in range(n_cols):
        lo[c], hi[c], finite = _decode_bits(smax[c], umax[c], umin[c])
        n_bad += not finite
    return n_bad


@jit()
def _minmax_flat(x):
    """``(min, max, n_bad)`` of a contiguous 1-D float32 ``x``: one pass, no rows."""
    lo, hi, finite = _row_minmax(x)
    return lo, hi, int(not finite)


@jit(parallel=True)
def _minmax_flat_par(x, n_chunks):
    """Parallel twin of :func:`_minmax_flat`: ``n_chunks`` contiguous slices, one per task."""
    n = x.size
    smax = np.empty(n_chunks, np.int32)
    umax = np.empty(n_chunks, np.uint32)
    umin = np.empty(n_chunks, np.uint32)
    for c in prange(n_chunks):
        smax[c], umax[c], umin[c] = _reduce_bits(x[c * n // n_chunks : (c + 1) * n // n_chunks])
    lo, hi, finite = _decode_bits(smax.max(), umax.max(), umin.min())
    return lo, hi, int(not finite)
