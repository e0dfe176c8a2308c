"""One row against int8 block weights (``BLOCK_Q8_0``, llama.cpp's Q8_0): the decode step's
product, with the bits of the block tiles (``linear_blocks_f32``) and fewer bytes.

The block tiles take the activations as the unsigned operand of ``vpdpbusd`` (codes
``+ 128``) and correct with each weight block's sum, which they read with the weights:
an int32 per row and block (1.25 bytes a weight with the float32 scales). At one row the
product only streams weights, so here the roles swap: the weights are the unsigned
operand (``q + 128``, packed once) and the correction is the activation block's own sum::

    dot   = sum_k (q[n, k] + 128) * c[k] - 128 * sum_k c[k]  =  sum_k q[n, k] * c[k]
    total = total + float32(dot) * (sa[b] * w_scale[n, b])       (blocks in order)
    y[n]  = total + bias[n]

the same integers and float32 operations in the same order as the tiles, so the same
bits; 1.125 bytes a weight. Layout (``packed``): rows in groups of 16, then blocks of 32;
a (group, block) holds eight 64-byte vectors, byte ``i`` of lane ``l`` of vector ``j``
being ``q[16 g + l, 32 b + 4 j + i] + 128``; ``w_scale`` per (group, block, lane).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..config import jit
from .q4 import BLOCK, GROUP, PREFETCH, _quantize_blocks
from .simd import (
    bcast16,
    dpbusd16,
    fadd16,
    fmul16,
    isub16,
    load16,
    loadf16,
    prefetch,
    splatf16,
    splati16,
    storef16,
    tofloat16,
    zero16,
)

SHIFT = 128


@jit(inline=True)
def _group(codes, a_scale, a_sum, packed, w_scale, nb, g, bias, y):
    """Outputs ``16 g .. 16 g + 15`` of the one row."""
    t = splatf16(np.float32(0.0))
    for b in range(nb):
        at = g * nb + b
        base = at * 512
        for j in range(8):  # the weights are read once: fetch them ahead of use
            prefetch(packed, base + PREFETCH + 64 * j)
        prefetch(w_scale, at * GROUP + PREFETCH // 32)
        acc = zero16()
        for j in range(8):
            acc = dpbusd16(acc, load16(packed, base + 64 * j), bcast16(codes, b * BLOCK + 4 * j))
        dot = isub16(acc, splati16(SHIFT * a_sum[b]))
        scale = fmul16(splatf16(a_scale[b]), loadf16(w_scale, at * GROUP))
        t = fadd16(t, fmul16(tofloat16(dot), scale))
    total = np.empty(GROUP, np.float32)
    storef16(total, 0, t)
    n = y.shape[1]
    for lane in range(GROUP):
        col = g * GROUP + lane
        if col < n:
            y[0, col] = total[lane] + bias[col]


@jit()
def q8_gemv(x, lhs, codes, a_sum, packed, w_scale, bias, y, a_scale, parallel):
    """``y`` (1, N) float32 from ``x`` (1, K) float32: quantized in blocks of 32 (scratch
    ``codes`` (K,) int8, ``a_sum`` (K // 32,) int32; scales into ``a_scale``), then the
    product (module notes), its groups of 16 outputs split over threads when
    ``parallel``. Returns the quantize status (0: ``y`` is valid)."""
    status = _quantize_blocks(x, lhs, codes, a_scale, a_sum)
    if status == 0:
        nb = x.shape[1] // BLOCK
        if parallel:
            _groups_par(codes, a_scale, a_sum, packed, w_scale, nb, bias, y)
        else:
            for g in range(-(-y.shape[1] // GROUP)):
                _group(codes, a_scale, a_sum, packed, w_scale, nb, g, bias, y)
    return status


@jit(parallel=True)
def _groups_par(codes, a_scale, a_sum, packed, w_scale, nb, bias, y):
    for g in prange(-(-y.shape[1] // GROUP)):
        _group(codes, a_scale, a_sum, packed, w_scale, nb, g, bias, y)


def pack(q: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(packed, w_scale)`` of int8 weights ``q`` (N, K) with block scales ``scale``
    (N, K // 32) float32, in this module's layout (zero rows past N).

    Examples
    --------
    >>> packed, w_scale = pack(np.ones((3, 32), np.int8), np.ones((3, 1), np.float32))
    >>> packed.size, int(packed[0]), w_scale.size  # one group of 16 rows, 32 values each
    (512, 129, 16)
    """
    n, k = q.shape
    groups, nb = -(-n // GROUP), k // BLOCK
    u = np.full((groups * GROUP, k), SHIFT, np.uint8)
    u[:n] = q.view(np.uint8) ^ np.uint8(SHIFT)
    # [group, lane, block, j, i] -> [group, block, j, lane, i]
    packed = u.reshape(groups, GROUP, nb, 8, 4).transpose(0, 2, 3, 1, 4)
    s = np.zeros((groups * GROUP, nb), np.float32)
    s[:n] = scale
    w_scale = s.reshape(groups, GROUP, nb).transpose(0, 2, 1)
    return np.ascontiguousarray(packed).reshape(-1), np.ascontiguousarray(w_scale).reshape(-1)
