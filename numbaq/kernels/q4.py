"""4-bit weights in blocks of 32 (llama.cpp's Q4_1) against 8-bit block activations.

Weights: ``w[n, k] = d[n, b] * q[n, k] + m[n, b]``, ``b = k // 32``, codes ``q`` in
[0, 15], a scale ``d`` and an offset ``m`` per row and block, both half-precision values
(as GGUF stores them; float32 here, every one exact in float16). Activations: each block
of 32 values of a row of ``x`` quantized symmetric, ``BLOCK_Q8_0``'s rule (codes ``c`` in
[-127, 127], scale ``sa = absmax / 127``), and ``ss = sa * float32(sum of the block's
codes)``. Then, for each output, blocks in order::

    dot   = sum_{k in b} q[n, k] * c[r, k]                              (int32, exact)
    total = total + (float32(dot) * (sa[r, b] * d[n, b]) + m[n, b] * ss[r, b])
    y[r, n] = total + bias[n]

each float32 operation rounded once, never fused: the kernels here and
:func:`numbaq.reference.q4_linear` give the same bits, on any number of threads. It is
``sum_b sa (d dot + m sum c)``, the product of the dequantized weights and activations.

Layout (``packed``): rows in groups of 16 (the lanes of a vector; N padded with zero
rows), then blocks; a (group, block) holds four 64-byte vectors, and byte ``i`` of lane
``l`` of vector ``j`` has ``q[16 g + l, 32 b + 8 j + i]`` in its low nibble and
``q[16 g + l, 32 b + 8 j + 4 + i]`` in its high one, so ``x & 0x0F0F0F0F`` and
``(x >> 4) & 0x0F0F0F0F`` are two ``vpdpbusd`` operands (unsigned weights, signed
activations: no correction term). ``d`` and ``m`` per (group, block, lane): half
precision bits (uint16) for the SIMD kernels, float32 for the portable one. SwiGLU's
gate/up Linear may be packed in ``pairs``: each group holds 8 gate rows and the same 8
up rows, so that its store can write ``silu(gate) * up`` itself.

Bytes per weight: 0.625 (as GGUF's Q4_1), against 1 for int8 codes; a decode step
(one token) reads each weight byte once, so it reads 0.625x the bytes.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..config import jit
from .mathf import _exp
from .quantize import LhsParams, _quantize_blocks_s8
from .simd import (
    and8,
    and16,
    bcast8,
    bcast16,
    dpbusd16,
    fadd8,
    fadd16,
    fmul8,
    fmul16,
    load8,
    load16,
    loadf8,
    loadf16,
    loadh8,
    loadh16,
    pmaddubsw8,
    prefetch,
    shr8,
    shr16,
    splatf8,
    splatf16,
    splati8,
    splati16,
    storef8,
    storef16,
    tofloat8,
    tofloat16,
    zero8,
    zero16,
)

BLOCK = 32
GROUP = 16  # rows per group: the lanes of a vector
_NIBBLES = 0x0F0F0F0F
PREFETCH = 4096  # bytes ahead (16 blocks): measured 16 -> 20 GB/s a thread (Zen 4)
_F = np.float32


# ------------------------------------------------------------------ activations
@jit()
def _quantize_blocks(x, lhs, codes, a_scale, a_sum):
    """``x`` (M, K) float32 in blocks of 32: codes (M * K,) int8 and scales (M * K // 32,)
    float32 (``kernels.quantize._quantize_blocks_s8``; ``lhs`` the fields of a
    ``LhsParams``, ``BLOCK_Q8_0``'s), and each block's sum of codes in ``a_sum``
    (M * K // 32,) int32. Returns the quantize status (0: valid)."""
    status = _quantize_blocks_s8(x, BLOCK, LhsParams(*lhs), codes, a_scale)
    if status == 0:
        for b in range(a_sum.size):
            total = 0
            for i in range(b * BLOCK, (b + 1) * BLOCK):
                total += codes[i]
            a_sum[b] = total
    return status


# ------------------------------------------------------------------ VNNI (AVX-512)
@jit(inline=True)
def _group_vnni(codes, k, rows, packed, d16, m16, nb, g, a_scale, a_sum, total):
    """Totals of row group ``g`` for every activation row into ``total`` (rows * 16,):
    the weights of a (group, block) unpacked once, then each row's eight ``vpdpbusd``."""
    mask = splati16(_NIBBLES)
    if rows == 1:  # the total stays in a register
        t = splatf16(_F(0.0))
        for b in range(nb):
            at = g * nb + b
            base = at * 256
            for j in range(4):  # the weights are read once: fetch them ahead of use
                prefetch(packed, base + PREFETCH + 64 * j)
            prefetch(d16, at * GROUP + PREFETCH // 16)  # 32 bytes a block: 1/8 as far
            prefetch(m16, at * GROUP + PREFETCH // 16)
            acc = zero16()
            for j in range(4):
                x = load16(packed, base + 64 * j)
                acc = dpbusd16(acc, and16(x, mask), bcast16(codes, b * BLOCK + 8 * j))
                acc = dpbusd16(acc, and16(shr16(x, 4), mask), bcast16(codes, b * BLOCK + 8 * j + 4))
            scale = fmul16(splatf16(a_scale[b]), loadh16(d16, at * GROUP))
            offset = fmul16(loadh16(m16, at * GROUP), splatf16(a_scale[b] * _F(a_sum[b])))
            t = fadd16(t, fadd16(fmul16(tofloat16(acc), scale), offset))
        storef16(total, 0, t)
        return
    for i in range(rows * GROUP):
        total[i] = 0
    for b in range(nb):
        at = g * nb + b
        base = at * 256
        x0, x1 = load16(packed, base), load16(packed, base + 64)
        x2, x3 = load16(packed, base + 128), load16(packed, base + 192)
        w0, w1 = and16(x0, mask), and16(shr16(x0, 4), mask)
        w2, w3 = and16(x1, mask), and16(shr16(x1, 4), mask)
        w4, w5 = and16(x2, mask), and16(shr16(x2, 4), mask)
        w6, w7 = and16(x3, mask), and16(shr16(x3, 4), mask)
        dv = loadh16(d16, at * GROUP)
        mv = loadh16(m16, at * GROUP)
        for r in range(rows):
            c0 = r * k + b * BLOCK
            acc = dpbusd16(zero16(), w0, bcast16(codes, c0))
            acc = dpbusd16(acc, w1, bcast16(codes, c0 + 4))
            acc = dpbusd16(acc, w2, bcast16(codes, c0 + 8))
            acc = dpbusd16(acc, w3, bcast16(codes, c0 + 12))
            acc = dpbusd16(acc, w4, bcast16(codes, c0 + 16))
            acc = dpbusd16(acc, w5, bcast16(codes, c0 + 20))
            acc = dpbusd16(acc, w6, bcast16(codes, c0 + 24))
            acc = dpbusd16(acc, w7, bcast16(codes, c0 + 28))
            rb = r * nb + b
            scale = fmul16(splatf16(a_scale[rb]), dv)
            offset = fmul16(mv, splatf16(a_scale[rb] * _F(a_sum[rb])))
            t = fadd16(loadf16(total, r * GROUP), fadd16(fmul16(tofloat16(acc), scale), offset))
            storef16(total, r * GROUP, t)


# ------------------------------------------------------------------ AVX2
@jit(inline=True)
def _half_avx2(codes, c0, packed, base, mask):
    """The int32 dot products of 8 rows (one half of a group: bytes ``base + 64 j`` ..
    ``+ 32``) with the activation block at ``c0``: ``vpmaddubsw`` (unsigned nibbles times
    signed codes, pairs into int16: at most 2 * 15 * 127, no saturation) then
    ``vpmaddwd`` by ones."""
    acc = zero8()
    for j in range(4):
        x = load8(packed, base + 64 * j)
        acc = pmaddubsw8(acc, and8(x, mask), bcast8(codes, c0 + 8 * j))
        acc = pmaddubsw8(acc, and8(shr8(x, 4), mask), bcast8(codes, c0 + 8 * j + 4))
    return acc


@jit(inline=True)
def _group_avx2(codes, k, rows, packed, d16, m16, nb, g, a_scale, a_sum, total):
    """:func:`_group_vnni` with 8-lane AVX2 vectors (a group's two halves), the same
    arithmetic in the same order."""
    mask = splati8(_NIBBLES)
    for i in range(rows * GROUP):
        total[i] = 0
    for b in range(nb):
        at = g * nb + b
        base = at * 256
        for j in range(4):
            prefetch(packed, base + PREFETCH + 64 * j)
        prefetch(d16, at * GROUP + PREFETCH // 16)
        prefetch(m16, at * GROUP + PREFETCH // 16)
        for r in range(rows):
            c0 = r * k + b * BLOCK
            sa = splatf8(a_scale[r * nb + b])
            ss = splatf8(a_scale[r * nb + b] * _F(a_sum[r * nb + b]))
            for half in range(2):
                acc = _half_avx2(codes, c0, packed, base + 32 * half, mask)
                scale = fmul8(sa, loadh8(d16, at * GROUP + 8 * half))
                offset = fmul8(loadh8(m16, at * GROUP + 8 * half), ss)
                at_r = r * GROUP + 8 * half
                t = fadd8(loadf8(total, at_r), fadd8(fmul8(tofloat8(acc), scale), offset))
                storef8(total, at_r, t)


# ------------------------------------------------------------------ portable
@jit(inline=True)
def _group_plain(codes, k, rows, packed, d32, m32, nb, g, a_scale, a_sum, total):
    """:func:`_group_vnni` in scalar loops (any CPU), the same arithmetic in the same
    order; ``d32``/``m32`` the same values as float32."""
    for i in range(rows * GROUP):
        total[i] = 0
    for b in range(nb):
        at = g * nb + b
        for r in range(rows):
            c0 = r * k + b * BLOCK
            rb = r * nb + b
            for lane in range(GROUP):
                dot = 0
                for j in range(4):
                    for i in range(4):
                        byte = packed[at * 256 + 64 * j + 4 * lane + i]
                        dot += (byte & 15) * np.int32(codes[c0 + 8 * j + i])
                        dot += (byte >> 4) * np.int32(codes[c0 + 8 * j + 4 + i])
                scale = a_scale[rb] * d32[at * GROUP + lane]
                offset = m32[at * GROUP + lane] * (a_scale[rb] * _F(a_sum[rb]))
                at_r = r * GROUP + lane
                total[at_r] = total[at_r] + (_F(dot) * scale + offset)


# ------------------------------------------------------------------ drivers
@jit(inline=True)
def _store(total, rows, g, pairs, glu, bias, y):
    """Group ``g``'s totals (``total[16 r + l]``) plus the bias into ``y``: rows
    ``16 g + l`` (the real ones); with ``pairs`` (SwiGLU's gate and up rows packed in
    pairs of 8, ``F = N / 2``) lanes 0-7 are gate rows ``8 g + l`` and lanes 8-15 the up
    rows ``F + 8 g + l``; with ``glu`` too, ``y`` is (M, F) and receives
    ``silu(gate) * up``, ``silu(v) = v / (1 + exp(-v))`` (``kernels.decoder._swiglu``'s
    operations: the same bits as the two passes). Contiguous loops, so they vectorize."""
    half = GROUP // 2
    if not pairs:
        n0 = g * GROUP
        cols = min(GROUP, y.shape[1] - n0)
        for r in range(rows):
            for lane in range(cols):
                y[r, n0 + lane] = total[r * GROUP + lane] + bias[n0 + lane]
        return
    h0 = g * half
    f = y.shape[1] if glu else y.shape[1] // 2
    for r in range(rows):
        t = r * GROUP
        if glu:
            for lane in range(half):
                gate = total[t + lane] + bias[h0 + lane]
                up = total[t + half + lane] + bias[f + h0 + lane]
                y[r, h0 + lane] = gate / (_F(1.0) + _exp(-gate)) * up
        else:
            for lane in range(half):
                y[r, h0 + lane] = total[t + lane] + bias[h0 + lane]
                y[r, f + h0 + lane] = total[t + half + lane] + bias[f + h0 + lane]


# One pair of drivers per kernel family, each naming its group function: a kernel that
# took the group function as an argument would not be cached on disk (Numba compiles a
# function-typed signature again in every process; measured), and the VNNI family must
# not even compile on a CPU without VNNI (paths module notes).
@jit()
def dynamic_q4_linear_vnni(
    x, lhs, codes, a_scale, a_sum, packed, d16, m16, bias, y, pairs, glu, parallel
):
    """The whole dynamic Linear in one call: ``x`` (M, K) float32 quantized in blocks
    (:func:`_quantize_blocks` into the scratch ``codes``, ``a_scale``, ``a_sum``), then
    the product into ``y`` (M, N) float32 (``bias`` (N,) added; with ``glu``, SwiGLU's
    product into ``y`` (M, N // 2), :func:`_store`), groups of 16 outputs split over
    threads when ``parallel`` (each output computed by one thread, in the same order);
    ``d16``, ``m16`` half-precision bits, ``pairs`` the weights' layout (:func:`_store`).
    Returns the quantize status (0: ``y`` is valid)."""
    status = _quantize_blocks(x, lhs, codes, a_scale, a_sum)
    if status == 0 and parallel:
        _vnni_par(codes, a_scale, a_sum, packed, d16, m16, bias, y, pairs, glu)
    elif status == 0:
        rows, k = x.shape
        total = np.empty(rows * GROUP, np.float32)
        for g in range(packed.size // (8 * k)):
            _group_vnni(codes, k, rows, packed, d16, m16, k // BLOCK, g, a_scale, a_sum, total)
            _store(total, rows, g, pairs, glu, bias, y)
    return status


@jit(parallel=True)
def _vnni_par(codes, a_scale, a_sum, packed, d16, m16, bias, y, pairs, glu):
    rows = y.shape[0]
    k = codes.size // rows
    for g in prange(packed.size // (8 * k)):
        total = np.empty(rows * GROUP, np.float32)
        _group_vnni(codes, k, rows, packed, d16, m16, k // BLOCK, g, a_scale, a_sum, total)
        _store(total, rows, g, pairs, glu, bias, y)


@jit()
def dynamic_q4_linear_avx2(
    x, lhs, codes, a_scale, a_sum, packed, d16, m16, bias, y, pairs, glu, parallel
):
    """:func:`dynamic_q4_linear_vnni` on AVX2 (:func:`_group_avx2`)."""
    status = _quantize_blocks(x, lhs, codes, a_scale, a_sum)
    if status == 0 and parallel:
        _avx2_par(codes, a_scale, a_sum, packed, d16, m16, bias, y, pairs, glu)
    elif status == 0:
        rows, k = x.shape
        total = np.empty(rows * GROUP, np.float32)
        for g in range(packed.size // (8 * k)):
            _group_avx2(codes, k, rows, packed, d16, m16, k // BLOCK, g, a_scale, a_sum, total)
            _store(total, rows, g, pairs, glu, bias, y)
    return status


@jit(parallel=True)
def _avx2_par(codes, a_scale, a_sum, packed, d16, m16, bias, y, pairs, glu):
    rows = y.shape[0]
    k = codes.size // rows
    for g in prange(packed.size // (8 * k)):
        total = np.empty(rows * GROUP, np.float32)
        _group_avx2(codes, k, rows, packed, d16, m16, k // BLOCK, g, a_scale, a_sum, total)
        _store(total, rows, g, pairs, glu, bias, y)


@jit()
def dynamic_q4_linear_plain(
    x, lhs, codes, a_scale, a_sum, packed, d32, m32, bias, y, pairs, glu, parallel
):
    """:func:`dynamic_q4_linear_vnni` on any CPU (:func:`_group_plain`; ``d32``, ``m32``
    float32)."""
    status = _quantize_blocks(x, lhs, codes, a_scale, a_sum)
    if status == 0 and parallel:
        _plain_par(codes, a_scale, a_sum, packed, d32, m32, bias, y, pairs, glu)
    elif status == 0:
        rows, k = x.shape
        total = np.empty(rows * GROUP, np.float32)
        for g in range(packed.size // (8 * k)):
            _group_plain(codes, k, rows, packed, d32, m32, k // BLOCK, g, a_scale, a_sum, total)
            _store(total, rows, g, pairs, glu, bias, y)
    return status


@jit(parallel=True)
def _plain_par(codes, a_scale, a_sum, packed, d32, m32, bias, y, pairs, glu):
    rows = y.shape[0]
    k = codes.size // rows
    for g in prange(packed.size // (8 * k)):
        total = np.empty(rows * GROUP, np.float32)
        _group_plain(codes, k, rows, packed, d32, m32, k // BLOCK, g, a_scale, a_sum, total)
        _store(total, rows, g, pairs, glu, bias, y)
