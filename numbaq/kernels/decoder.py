"""Decoder pieces for :mod:`numbaq.models.llama`: RMSNorm with its residual, rotary
position embedding, grouped-query attention over a KV cache, and SwiGLU. Float32 data.

Rows are the new tokens of a ragged batch, stacked: row ``t`` belongs to sequence
``seq[t]`` at position ``pos[t]``. Each producer has a ``_quant`` twin that also writes
the next Linear's quantized activations in the same call (``kernels.quantize._quantize_lhs``
on the rows it produced: the codes the dynamic Linear would make from them, bit for bit).

The KV cache of a layer: keys transposed, ``kt`` (B, H_kv, d, capacity), so a query's
scores run along contiguous positions; values ``v`` (B, H_kv, capacity, d). Float32, or
int8 codes with one runtime scale per (sequence, head, position) (``k_scale``/``v_scale``
(B, H_kv, capacity)): ``k = k_scale * kq`` with ``k_scale = absmax / 127``; a float32
cache's kernels never read its (one-element) scales. One attention task is one (row,
key/value head), its group of query heads; its arithmetic runs in the same order whichever
thread runs it, so a row's result depends on neither its batch-mates nor the thread count.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ..config import jit
from .mathf import _exp
from .quantize import _quantize_lhs
from .simd import fadd16, ffma16, fmax16, loadf16, splatf16, storef16

_F = np.float32


# ------------------------------------------------------------------ RMSNorm
@jit()
def _rms_row(h, t, weight, eps, out):
    """``out[t] = h[t] / sqrt(mean(h[t]^2) + eps) * weight`` (float64 sum of squares)."""
    d = h.shape[1]
    ss = 0.0
    for i in range(d):
        v = np.float64(h[t, i])
        ss += v * v
    inv = _F(1.0) / _F(math.sqrt(_F(ss / d) + eps))
    for i in range(d):
        out[t, i] = weight[i] * (h[t, i] * inv)


@jit()
def _add_rms_row(h, delta, add, t, weight, eps, out):
    """Row ``t``: ``h += delta`` (when ``add``) in place, then :func:`_rms_row`."""
    if add:
        for i in range(h.shape[1]):
            h[t, i] += delta[t, i]
    _rms_row(h, t, weight, eps, out)


@jit()
def _add_rms_norm(h, delta, add, weight, eps, out):
    """``h += delta`` (when ``add``) in place, then ``out = rms_norm(h) * weight``.

    ``h``, ``delta``, ``out`` (T, D) float32; ``weight`` (D,) float32.
    """
    for t in range(h.shape[0]):
        _add_rms_row(h, delta, add, t, weight, eps, out)


@jit(parallel=True)
def _add_rms_norm_par(h, delta, add, weight, eps, out):
    """Parallel twin of :func:`_add_rms_norm` (one row per task; the same arithmetic)."""
    for t in prange(h.shape[0]):
        _add_rms_row(h, delta, add, t, weight, eps, out)


@jit()
def _add_rms_norm_quant(h, delta, add, weight, eps, out, lhs, a, a_scale, a_zp):
    """:func:`_add_rms_norm`, then ``out`` quantized for the next Linear (``lhs``, ``a``,
    ``a_scale``, ``a_zp`` as in ``kernels.quantize._quantize_lhs``). Returns its status."""
    _add_rms_norm(h, delta, add, weight, eps, out)
    return _quantize_lhs(out, lhs, a, a_scale, a_zp)


# ------------------------------------------------------------------ rotary embedding
@jit()
def _rope_row(x, t, c0, heads, d, cos, sin, p):
    """Rotate ``heads`` heads of width ``d`` from column ``c0`` of row ``t`` by position
    ``p``, in place: ``(x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin)`` with ``x1`` the
    first half of the head and ``x2`` the second (transformers' ``rotate_half`` layout)."""
    half = d // 2
    for hh in range(heads):
        b = c0 + hh * d
        for i in range(half):
            x1 = x[t, b + i]
            x2 = x[t, b + half + i]
            x[t, b + i] = x1 * cos[p, i] - x2 * sin[p, i]
            x[t, b + half + i] = x2 * cos[p, i] + x1 * sin[p, i]


# ------------------------------------------------------------------ KV cache
@jit()
def _store_kv(qkv, t, s, p, heads, kv_heads, d, kt, v, k_scale, v_scale):
    """Write row ``t``'s keys and values (after the queries in ``qkv``) into the cache of
    sequence ``s`` at position ``p``; int8 caches quantize each head's vector symmetric
    with ``scale = absmax / 127`` (0 for an all-zero vector)."""
    k0 = heads * d
    v0 = (heads + kv_heads) * d
    quant = kt.itemsize == 1  # int8 codes; a float32 cache has no scales to write
    for g in range(kv_heads):
        if quant:
            ka = _F(0.0)
            va = _F(0.0)
            for j in range(d):
                ka = max(ka, abs(qkv[t, k0 + g * d + j]))
                va = max(va, abs(qkv[t, v0 + g * d + j]))
            ks = ka / _F(127.0)
            vs = va / _F(127.0)
            k_scale[s, g, p] = ks
            v_scale[s, g, p] = vs
            kinv = _F(0.0) if ks == 0 else _F(1.0) / ks
            vinv = _F(0.0) if vs == 0 else _F(1.0) / vs
            for j in range(d):
                kt[s, g, j, p] = np.int8(np.rint(qkv[t, k0 + g * d + j] * kinv))
                v[s, g, p, j] = np.int8(np.rint(qkv[t, v0 + g * d + j] * vinv))
        else:
            for j in range(d):
                kt[s, g, j, p] = qkv[t, k0 + g * d + j]
                v[s, g, p, j] = qkv[t, v0 + g * d + j]


# ------------------------------------------------------------------ attention
@jit()
def _softmax_scores(scores, n, scale):
    """``scores[:n] = exp(scale * s - max) / sum`` in place, float32 (``mathf._exp``);
    ``scores[n:]`` up to the next multiple of 16 zeroed. The maximum and the sum over 16
    lanes (loops without a carried scalar, so that they vectorize)."""
    n16 = -(-n // 16) * 16
    for i in range(n, n16):
        scores[i] = -np.inf
    lanes = loadf16(scores, 0)
    for b0 in range(16, n16, 16):
        lanes = fmax16(lanes, loadf16(scores, b0))
    storef16(scores, n16, lanes)  # 16 scratch slots past the block (the capacity has them)
    best = scores[n16]
    for i in range(1, 16):
        best = max(best, scores[n16 + i])
    best *= scale
    for i in range(n):
        scores[i] = _exp(scores[i] * scale - best)
    for i in range(n, n16):
        scores[i] = 0
    lanes = splatf16(_F(0.0))
    for b0 in range(0, n16, 16):
        lanes = fadd16(lanes, loadf16(scores, b0))
    storef16(scores, n16, lanes)
    total = _F(0.0)
    for i in range(16):
        total += scores[n16 + i]
    inv = _F(1.0) / total
    for i in range(n):
        scores[i] *= inv


@jit()
def _scores(qkv, t, q0, d, ktf, kbase, cap, n, scores):
    """``scores[b] = q . k_b`` for positions ``b < n`` rounded up to 64 (the capacity is a
    multiple of 64; keys float32 or int8 codes): 64 positions at a time in eight vectors,
    the even and the odd ``j`` in separate fused multiply-add chains, added at the end."""
    for b0 in range(0, n, 64):
        a0 = splatf16(_F(0.0))
        a1, a2, a3, e0, e1, e2, e3 = a0, a0, a0, a0, a0, a0, a0
        for j in range(0, d - 1, 2):
            qj = splatf16(qkv[t, q0 + j])
            qe = splatf16(qkv[t, q0 + j + 1])
            row = kbase + j * cap + b0
            a0 = ffma16(qj, loadf16(ktf, row), a0)
            a1 = ffma16(qj, loadf16(ktf, row + 16), a1)
            a2 = ffma16(qj, loadf16(ktf, row + 32), a2)
            a3 = ffma16(qj, loadf16(ktf, row + 48), a3)
            row += cap
            e0 = ffma16(qe, loadf16(ktf, row), e0)
            e1 = ffma16(qe, loadf16(ktf, row + 16), e1)
            e2 = ffma16(qe, loadf16(ktf, row + 32), e2)
            e3 = ffma16(qe, loadf16(ktf, row + 48), e3)
        if d % 2:
            qj = splatf16(qkv[t, q0 + d - 1])
            row = kbase + (d - 1) * cap + b0
            a0 = ffma16(qj, loadf16(ktf, row), a0)
            a1 = ffma16(qj, loadf16(ktf, row + 16), a1)
            a2 = ffma16(qj, loadf16(ktf, row + 32), a2)
            a3 = ffma16(qj, loadf16(ktf, row + 48), a3)
        storef16(scores, b0, fadd16(a0, e0))
        storef16(scores, b0 + 16, fadd16(a1, e1))
        storef16(scores, b0 + 32, fadd16(a2, e2))
        storef16(scores, b0 + 48, fadd16(a3, e3))


@jit()
def _context(scores, n, vf, vbase, d, out, o):
    """``out[o + j] = sum_b scores[b] v[b, j]`` (values float32 or int8 codes): 64 columns
    at a time in four vectors, then 16, then one (a head width off the vector grid); the
    even and the odd positions in separate fused multiply-add chains, added at the end."""
    half = n // 2
    j0 = 0
    while j0 + 64 <= d:
        a0 = splatf16(_F(0.0))
        a1, a2, a3, e0, e1, e2, e3 = a0, a0, a0, a0, a0, a0, a0
        for i in range(half):
            p = splatf16(scores[2 * i])
            pe = splatf16(scores[2 * i + 1])
            row = vbase + 2 * i * d + j0
            a0 = ffma16(p, loadf16(vf, row), a0)
            a1 = ffma16(p, loadf16(vf, row + 16), a1)
            a2 = ffma16(p, loadf16(vf, row + 32), a2)
            a3 = ffma16(p, loadf16(vf, row + 48), a3)
            row += d
            e0 = ffma16(pe, loadf16(vf, row), e0)
            e1 = ffma16(pe, loadf16(vf, row + 16), e1)
            e2 = ffma16(pe, loadf16(vf, row + 32), e2)
            e3 = ffma16(pe, loadf16(vf, row + 48), e3)
        if n % 2:
            p = splatf16(scores[n - 1])
            row = vbase + (n - 1) * d + j0
            a0 = ffma16(p, loadf16(vf, row), a0)
            a1 = ffma16(p, loadf16(vf, row + 16), a1)
            a2 = ffma16(p, loadf16(vf, row + 32), a2)
            a3 = ffma16(p, loadf16(vf, row + 48), a3)
        storef16(out, o + j0, fadd16(a0, e0))
        storef16(out, o + j0 + 16, fadd16(a1, e1))
        storef16(out, o + j0 + 32, fadd16(a2, e2))
        storef16(out, o + j0 + 48, fadd16(a3, e3))
        j0 += 64
    while j0 + 16 <= d:
        acc = splatf16(_F(0.0))
        for i in range(n):
            acc = ffma16(splatf16(scores[i]), loadf16(vf, vbase + i * d + j0), acc)
        storef16(out, o + j0, acc)
        j0 += 16
    for j in range(j0, d):
        total = _F(0.0)
        for i in range(n):
            total += scores[i] * _F(vf[vbase + i * d + j])
        out[o + j] = total


@jit()
def _attend(qkv, t, g, s, p, group, d, kt, v, k_scale, v_scale, scores, out):
    """Causal attention of the ``group`` query heads of key/value head ``g``, row ``t``
    (sequence ``s``, position ``p``), over cache positions ``0..p``:
    ``softmax(q k^T / sqrt(d)) v`` into ``out[t, h*d:(h+1)*d]``. An int8 cache's codes are
    widened to float32 in the vector loads; its scales multiply each score before the
    softmax (``q . k_b = k_scale[b] * (q . kq_b)``) and each probability before the
    context (``sum_b w_b v_b = sum_b (w_b v_scale[b]) vq_b``). The positions past ``p`` up
    to the next multiple of 64 are scored and ignored (the capacity is a multiple of 64,
    ``scores`` 16 longer). One task's arithmetic is always in this order."""
    n = p + 1
    cap = kt.shape[3]
    ktf = kt.reshape(kt.size)
    vf = v.reshape(v.size)
    kbase = ((s * kt.shape[1] + g) * d) * cap
    vbase = ((s * v.shape[1] + g) * cap) * d
    quant = kt.itemsize == 1  # a float32 cache's (one-element) scales are never read
    scale = _F(1.0) / _F(math.sqrt(d))
    of = out.reshape(out.size)
    for r in range(group):
        q0 = (g * group + r) * d
        _scores(qkv, t, q0, d, ktf, kbase, cap, n, scores)
        if quant:
            for i in range(n):
                scores[i] *= k_scale[s, g, i]
        _softmax_scores(scores, n, scale)
        if quant:
            for i in range(n):
                scores[i] *= v_scale[s, g, i]
        _context(scores, n, vf, vbase, d, of, t * out.shape[1] + q0)


@jit()
def _rope_store(qkv, seq, pos, cos, sin, heads, kv_heads, kt, v, k_scale, v_scale):
    """Rotary embedding of every row's queries and keys in place, then its keys and values
    into the cache."""
    d = kt.shape[2]
    for t in range(qkv.shape[0]):
        _rope_row(qkv, t, 0, heads + kv_heads, d, cos, sin, pos[t])
        _store_kv(qkv, t, seq[t], pos[t], heads, kv_heads, d, kt, v, k_scale, v_scale)


@jit()
def _attention(qkv, seq, pos, cos, sin, heads, kv_heads, kt, v, k_scale, v_scale, out):
    """:func:`_rope_store`, then each (row, key/value head)'s attention over the cache
    (float32 or int8) into ``out`` (T, heads * d), on one thread."""
    _rope_store(qkv, seq, pos, cos, sin, heads, kv_heads, kt, v, k_scale, v_scale)
    scores = np.zeros(kt.shape[3] + 16, np.float32)
    for task in range(qkv.shape[0] * kv_heads):
        t, g = task // kv_heads, task % kv_heads
        args = (seq[t], pos[t], heads // kv_heads, kt.shape[2], kt, v, k_scale, v_scale)
        _attend(qkv, t, g, *args, scores, out)


@jit()
def _balanced_row(i, rows):
    """The ``i``-th row in the order first, last, second, second last, ...: ``prange``
    gives each thread a contiguous range of tasks, and a causal prefill's later rows
    cost more (measured, 256 tokens on 2 threads: 65 ms of attention unbalanced)."""
    return i // 2 if i % 2 == 0 else rows - 1 - i // 2


@jit(parallel=True)
def _attention_par(qkv, seq, pos, cos, sin, heads, kv_heads, kt, v, k_scale, v_scale, out):
    """Parallel twin of :func:`_attention`: the (row, key/value head) tasks split over
    threads, each task's arithmetic the serial one's."""
    _rope_store(qkv, seq, pos, cos, sin, heads, kv_heads, kt, v, k_scale, v_scale)
    for task in prange(qkv.shape[0] * kv_heads):
        t, g = _balanced_row(task // kv_heads, qkv.shape[0]), task % kv_heads
        scores = np.zeros(kt.shape[3] + 16, np.float32)
        args = (seq[t], pos[t], heads // kv_heads, kt.shape[2], kt, v, k_scale, v_scale)
        _attend(qkv, t, g, *args, scores, out)


@jit()
def _quantize_out(out, lhs, a, a_scale, a_zp):
    """``kernels.quantize._quantize_lhs`` of a producer's output (its ``_quant`` step)."""
    return _quantize_lhs(out, lhs, a, a_scale, a_zp)


# ------------------------------------------------------------------ SwiGLU
@jit()
def _swiglu_row(gu, t, out):
    """Row ``t`` of :func:`_swiglu`."""
    f = out.shape[1]
    for j in range(f):
        g = gu[t, j]
        out[t, j] = g / (_F(1.0) + _exp(-g)) * gu[t, f + j]


@jit()
def _swiglu(gu, out):
    """``out = silu(gate) * up``, ``gate = gu[:, :F]``, ``up = gu[:, F:]``,
    ``silu(g) = g / (1 + exp(-g))``; ``gu`` (T, 2F), ``out`` (T, F) float32."""
    for t in range(gu.shape[0]):
        _swiglu_row(gu, t, out)


@jit(parallel=True)
def _swiglu_par(gu, out):
    """Parallel twin of :func:`_swiglu` (rows split over threads)."""
    for t in prange(gu.shape[0]):
        _swiglu_row(gu, t, out)


@jit()
def _swiglu_quant(gu, out, lhs, a, a_scale, a_zp):
    """:func:`_swiglu`, then ``out`` quantized for the next Linear. Returns its status."""
    _swiglu(gu, out)
    return _quantize_lhs(out, lhs, a, a_scale, a_zp)
