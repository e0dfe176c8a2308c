"""Transformer pieces for the encoder models: LayerNorm with its residual, and attention
over ragged batches (float32, and an int8 variant). Float32 data, float64 sums where they
round most.

Attention reads the fused projection ``qkv`` (T, 3 D): columns ``[0, D)`` are the queries,
``[D, 2D)`` the keys, ``[2D, 3D)`` the values. One *task* is one (sentence, head); a task
depends only on its own sentence's rows, and its arithmetic runs in the same order whichever
thread runs it, so a sentence's result does not depend on its batch-mates or on the number
of threads. The parallel entry points take a precomputed split of the tasks into one list
per worker (balanced by cost, see ``numbaq.models.bert``) instead of ``prange`` over tasks,
whose equal chunks of unequal sentences left one thread idle.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ..config import jit
from .epilogue import SHIFT
from .mathf import _exp
from .quantize import _lhs_qparams, _lhs_row, _lhs_status
from .simd import (
    fadd16,
    fmul16,
    imul16,
    isub16,
    loadf16,
    loadi16,
    splatf16,
    splati16,
    store16,
    storef16,
    tofloat16,
)
from .stats import _row_minmax

_F = np.float32


# ------------------------------------------------------------------ LayerNorm
@jit()
def _layer_norm_row(x, residual, t, weight, bias, eps, out, lanes):
    """Row ``t``: ``v = x + residual``, then ``(v - mean) * inv * weight + bias``.

    The sums run in 16 float32 lanes (``f32x16``: lane ``l`` sums columns ``l, l + 16,
    ...``), the lanes and the columns past the last multiple of 16 then added in float64,
    in order; ``lanes`` (16,) float32 scratch. ``x``, ``residual``, ``out`` are raveled
    (T * D,); ``weight``, ``bias`` (D,).
    """
    d = weight.size
    d16 = d // 16 * 16
    row = t * d
    acc = splatf16(np.float32(0.0))
    for j in range(0, d16, 16):
        v = fadd16(loadf16(x, row + j), loadf16(residual, row + j))
        storef16(out, row + j, v)
        acc = fadd16(acc, v)
    storef16(lanes, 0, acc)
    total = 0.0
    for lane in range(16):
        total += lanes[lane]
    for j in range(d16, d):
        out[row + j] = x[row + j] + residual[row + j]
        total += out[row + j]
    mean = np.float32(total / d)
    neg = splatf16(-mean)
    acc = splatf16(np.float32(0.0))
    for j in range(0, d16, 16):
        c = fadd16(loadf16(out, row + j), neg)
        acc = fadd16(acc, fmul16(c, c))
    storef16(lanes, 0, acc)
    var = 0.0
    for lane in range(16):
        var += lanes[lane]
    for j in range(d16, d):
        c = out[row + j] - mean
        var += c * c
    inv = np.float32(1.0 / math.sqrt(var / d + eps))
    scale = splatf16(inv)
    for j in range(0, d16, 16):
        c = fmul16(fadd16(loadf16(out, row + j), neg), scale)
        storef16(out, row + j, fadd16(fmul16(c, loadf16(weight, j)), loadf16(bias, j)))
    for j in range(d16, d):
        out[row + j] = np.float32((out[row + j] - mean) * inv) * weight[j] + bias[j]


@jit(parallel=True)
def _add_layer_norm(x, residual, weight, bias, eps, out):
    """``out = LayerNorm(x + residual)`` row by row, in parallel over blocks of rows:
    ``(v - mean) / sqrt(var + eps) * weight + bias`` with ``v = x + residual``;
    ``x``, ``residual``, ``out`` (T, D) float32; sums as in :func:`_layer_norm_row`."""
    n = x.shape[0]
    xf, rf, of = x.reshape(x.size), residual.reshape(residual.size), out.reshape(out.size)
    blocks = (n + 63) // 64
    for blk in prange(blocks):
        lanes = np.empty(16, np.float32)
        for t in range(blk * 64, min(n, blk * 64 + 64)):
            _layer_norm_row(xf, rf, t, weight, bias, eps, of, lanes)


@jit()
def _add_layer_norm_serial(x, residual, weight, bias, eps, out):
    """:func:`_add_layer_norm` on one thread (the same arithmetic, for small T)."""
    xf, rf, of = x.reshape(x.size), residual.reshape(residual.size), out.reshape(out.size)
    lanes = np.empty(16, np.float32)
    for t in range(x.shape[0]):
        _layer_norm_row(xf, rf, t, weight, bias, eps, of, lanes)


@jit()
def _add_layer_norm_quant(x, residual, weight, bias, eps, out, lhs, a, a_scale, a_zp):
    """:func:`_add_layer_norm_serial`, and the next Linear's quantized activations in the
    same pass: each row's min/max while it is in cache, then the scheme's qparams and codes
    (``kernels.quantize._quantize_lhs``'s own helpers, so the codes are the ones the
    dynamic Linear would make from ``out``, bit for bit).

    ``lhs`` is the scheme's ``numbaq.engine.LhsParams``; ``a`` (T, lda) uint8 the GEMM's lhs
    (K padding zeroed), ``a_scale`` (T,) float32, ``a_zp`` (T,) int32 the *effective* zero
    points (``+ SHIFT`` for int8 codes). Returns the status of ``_lhs_status``.
    """
    m = x.shape[0]
    xf, rf, of = x.reshape(x.size), residual.reshape(residual.size), out.reshape(out.size)
    lanes = np.empty(16, np.float32)
    lo = np.empty(m, np.float32)
    hi = np.empty(m, np.float32)
    n_bad = 0
    for t in range(m):
        _layer_norm_row(xf, rf, t, weight, bias, eps, of, lanes)
        lo[t], hi[t], finite = _row_minmax(out[t])
        n_bad += not finite
    if n_bad:
        return n_bad
    shift = SHIFT if lhs.signed else 0
    _lhs_qparams(lo, hi, lhs, shift, a_scale, a_zp)
    for t in range(m):
        _lhs_row(out, t, a_scale[t], a_zp[t] - shift, lhs, a)
    return _lhs_status(0, a_scale.max())


@jit(parallel=True)
def _add_layer_norm_quant_par(x, residual, weight, bias, eps, out, lhs, a, a_scale, a_zp):
    """Parallel twin of :func:`_add_layer_norm_quant` (blocks of 64 rows)."""
    m = x.shape[0]
    xf, rf, of = x.reshape(x.size), residual.reshape(residual.size), out.reshape(out.size)
    lo = np.empty(m, np.float32)
    hi = np.empty(m, np.float32)
    ok = np.empty(m, np.bool_)
    blocks = (m + 63) // 64
    for blk in prange(blocks):
        lanes = np.empty(16, np.float32)
        for t in range(blk * 64, min(m, blk * 64 + 64)):
            _layer_norm_row(xf, rf, t, weight, bias, eps, of, lanes)
            lo[t], hi[t], ok[t] = _row_minmax(out[t])
    n_bad = m - ok.sum()
    if n_bad:
        return n_bad
    shift = SHIFT if lhs.signed else 0
    _lhs_qparams(lo, hi, lhs, shift, a_scale, a_zp)
    for blk in prange(blocks):
        for t in range(blk * 64, min(m, blk * 64 + 64)):
            _lhs_row(out, t, a_scale[t], a_zp[t] - shift, lhs, a)
    return _lhs_status(0, a_scale.max())


# ------------------------------------------------------------------ float attention
@jit()
def _max_length(offsets, tasks, lo, hi, heads):
    """The longest sentence among ``tasks[lo:hi]``, rounded up to a multiple of 16."""
    n = 1
    for t in range(lo, hi):
        i = tasks[t] // heads
        n = max(n, offsets[i + 1] - offsets[i])
    return (n + 15) // 16 * 16


ROWS = 4
"""Query rows an attention task computes together: four independent sums in flight hide
the add latency that one row's chain of sums waits on (1.9-2.5x faster on Zen 4), and each
row's sums keep their order, so every bit stays the same."""


@jit()
def _attention_task(flat, offsets, heads, width, task, kt, s, out):
    """One (sentence, head): ``softmax(q k^T / sqrt(d)) v`` into ``out``'s rows and columns.

    ``flat`` is ``qkv`` (T, 3 D) raveled; ``kt`` (d * Lp,) and ``s`` (ROWS * Lp,) float32
    scratch, ``Lp >= L`` a multiple of 16. The keys are transposed into ``kt`` (zero-padded
    to Lp columns), so the scores of 16 keys are one register (``f32x16``), summed over the
    head's columns in order; ``exp`` is ``mathf._exp``; the output is registers of 16
    columns, summed over keys in order (columns past the last multiple of 16: the same sums
    in scalars). Every multiply and add rounds once (IEEE, not fused). :data:`ROWS` query
    rows run side by side, each with its own sums.
    """
    d = width // heads
    ld = 3 * width
    i = task // heads
    c0 = (task % heads) * d
    start = offsets[i]
    length = offsets[i + 1] - start
    lp = (length + 15) // 16 * 16
    scale = np.float32(1.0 / math.sqrt(d))
    _transpose_keys(flat, start * ld + width + c0, ld, length, d, lp, kt)
    vcol = start * ld + 2 * width + c0
    for a0 in range(0, length - ROWS + 1, ROWS):
        _scores4(flat, (start + a0) * ld + c0, ld, d, scale, kt, lp, s)
        _softmax4(s, length, lp)
        _context4(flat, vcol, ld, d, length, lp, s, out, (start + a0) * width + c0, width)
    for a in range(length - length % ROWS, length):
        _scores1(flat, (start + a) * ld + c0, d, scale, kt, lp, s)
        _softmax_row(s, 0, length, lp)
        _context1(flat, vcol, ld, d, length, s, out, (start + a) * width + c0)


@jit(inline=True)
def _transpose_keys(flat, k0, ld, length, d, lp, kt):
    """``kt[j * lp + b] = k[b, j]`` for the ``length`` keys at ``flat[k0 + b * ld:]``, zeros
    in columns ``length:lp``. Key by key (contiguous reads), unsigned indices: the loads
    vectorize (a column-by-column gather with signed indices took a third of the task)."""
    ulp = np.uint64(lp)
    for b in range(length):
        src = np.uint64(k0 + b * ld)
        for j in range(d):
            kt[np.uint64(j) * ulp + np.uint64(b)] = flat[src + np.uint64(j)]
    for j in range(d):
        for b in range(length, lp):
            kt[np.uint64(j) * ulp + np.uint64(b)] = 0.0


@jit(inline=True)
def _scores1(flat, qa, d, scale, kt, lp, s):
    """``s[:lp] = (q * scale) . kt`` for the query at ``flat[qa:qa + d]``, 16 keys a vector."""
    for b0 in range(0, lp, 16):
        acc = splatf16(np.float32(0.0))
        for j in range(d):
            acc = fadd16(acc, fmul16(splatf16(flat[qa + j] * scale), loadf16(kt, j * lp + b0)))
        storef16(s, b0, acc)


@jit(inline=True)
def _scores4(flat, qa, ld, d, scale, kt, lp, s):
    """:func:`_scores1` of the ROWS queries at ``flat[qa + r * ld:]`` into ``s[r * lp:]``."""
    q1, q2, q3 = qa + ld, qa + 2 * ld, qa + 3 * ld
    for b0 in range(0, lp, 16):
        acc0 = splatf16(np.float32(0.0))
        acc1, acc2, acc3 = acc0, acc0, acc0
        for j in range(d):
            k = loadf16(kt, j * lp + b0)
            acc0 = fadd16(acc0, fmul16(splatf16(flat[qa + j] * scale), k))
            acc1 = fadd16(acc1, fmul16(splatf16(flat[q1 + j] * scale), k))
            acc2 = fadd16(acc2, fmul16(splatf16(flat[q2 + j] * scale), k))
            acc3 = fadd16(acc3, fmul16(splatf16(flat[q3 + j] * scale), k))
        storef16(s, b0, acc0)
        storef16(s, lp + b0, acc1)
        storef16(s, 2 * lp + b0, acc2)
        storef16(s, 3 * lp + b0, acc3)


@jit(inline=True)
def _context1(flat, vcol, ld, d, length, s, out, o):
    """``out[o:o + d] = s[:length] . v``, the values at ``flat[vcol + b * ld:]``."""
    d16 = d // 16 * 16
    for j0 in range(0, d16, 16):
        acc = splatf16(np.float32(0.0))
        for b in range(length):
            acc = fadd16(acc, fmul16(splatf16(s[b]), loadf16(flat, vcol + b * ld + j0)))
        storef16(out, o + j0, acc)
    for j in range(d16, d):
        r = np.float32(0.0)
        for b in range(length):
            r += s[b] * flat[vcol + b * ld + j]
        out[o + j] = r


@jit(inline=True)
def _context4(flat, vcol, ld, d, length, lp, s, out, o, width):
    """:func:`_context1` of the ROWS probability rows ``s[r * lp:]`` into ``out[o + r *
    width:]``."""
    d16 = d // 16 * 16
    for j0 in range(0, d16, 16):
        acc0 = splatf16(np.float32(0.0))
        acc1, acc2, acc3 = acc0, acc0, acc0
        for b in range(length):
            v = loadf16(flat, vcol + b * ld + j0)
            acc0 = fadd16(acc0, fmul16(splatf16(s[b]), v))
            acc1 = fadd16(acc1, fmul16(splatf16(s[lp + b]), v))
            acc2 = fadd16(acc2, fmul16(splatf16(s[2 * lp + b]), v))
            acc3 = fadd16(acc3, fmul16(splatf16(s[3 * lp + b]), v))
        storef16(out, o + j0, acc0)
        storef16(out, o + width + j0, acc1)
        storef16(out, o + 2 * width + j0, acc2)
        storef16(out, o + 3 * width + j0, acc3)
    for r in range(ROWS):
        for j in range(d16, d):
            t = np.float32(0.0)
            for b in range(length):
                t += s[r * lp + b] * flat[vcol + b * ld + j]
            out[o + r * width + j] = t


@jit(inline=True)
def _softmax4(s, length, lp):
    """:func:`_softmax_row` of the ROWS rows ``s[r * lp:]`` side by side: the running max
    and the sum of each row in its own chain, in the row's order (four chains in flight
    instead of one waiting on each add). Unsigned indices, as in :func:`_softmax_row`."""
    u1, u2, u3 = np.uint64(lp), np.uint64(2 * lp), np.uint64(3 * lp)
    m0, m1, m2, m3 = s[0], s[u1], s[u2], s[u3]
    for b in range(1, length):
        ub = np.uint64(b)
        m0 = max(m0, s[ub])
        m1 = max(m1, s[u1 + ub])
        m2 = max(m2, s[u2 + ub])
        m3 = max(m3, s[u3 + ub])
    _exp_shifted(s, np.uint64(0), lp, m0)
    _exp_shifted(s, u1, lp, m1)
    _exp_shifted(s, u2, lp, m2)
    _exp_shifted(s, u3, lp, m3)
    t0 = t1 = t2 = t3 = np.float32(0.0)
    for b in range(length):
        ub = np.uint64(b)
        t0 += s[ub]
        t1 += s[u1 + ub]
        t2 += s[u2 + ub]
        t3 += s[u3 + ub]
    i0, i1 = np.float32(1.0) / t0, np.float32(1.0) / t1
    i2, i3 = np.float32(1.0) / t2, np.float32(1.0) / t3
    for b in range(length):
        ub = np.uint64(b)
        s[ub] = s[ub] * i0
        s[u1 + ub] = s[u1 + ub] * i1
        s[u2 + ub] = s[u2 + ub] * i2
        s[u3 + ub] = s[u3 + ub] * i3


@jit(inline=True)
def _exp_shifted(s, base, count, best):
    """``s[base:base + count] = exp(s[...] - best)`` (``base`` unsigned: the loop vectorizes)."""
    for b in range(count):
        i = base + np.uint64(b)
        s[i] = _exp(s[i] - best)


@jit()
def _softmax_row(s, at, length, lp):
    """``s[at:at + length] = softmax(s[at:at + length])`` (``exp`` over all ``lp``).

    Unsigned indices: with a signed ``at + b`` Numba wraps negative indices around, which
    kept the ``exp`` loop scalar."""
    base = np.uint64(at)
    best = s[base]
    for b in range(1, length):
        best = max(best, s[base + np.uint64(b)])
    for b in range(lp):
        i = base + np.uint64(b)
        s[i] = _exp(s[i] - best)
    total = np.float32(0.0)
    for b in range(length):
        total += s[base + np.uint64(b)]
    inv = np.float32(1.0) / total
    for b in range(length):
        i = base + np.uint64(b)
        s[i] = s[i] * inv


@jit()
def _attention(qkv, offsets, heads, out):
    """``softmax(q k^T / sqrt(d)) v`` per sentence and head of a ragged batch, one thread.

    ``qkv`` (T, 3 D) float32 (queries, keys, values side by side), ``out`` (T, D) float32;
    sentence ``i`` is rows ``offsets[i]:offsets[i + 1]`` (int64); ``d = D / heads``.
    """
    width = out.shape[1]
    d = width // heads
    n = (offsets.size - 1) * heads
    tasks = np.arange(n)
    lp = _max_length(offsets, tasks, 0, n, heads)
    kt = np.empty(d * lp, np.float32)
    s = np.empty(ROWS * lp, np.float32)
    flat = qkv.reshape(qkv.size)
    o = out.reshape(out.size)
    for task in range(n):
        _attention_task(flat, offsets, heads, width, task, kt, s, o)


@jit(parallel=True)
def _attention_par(qkv, offsets, heads, worker_ptr, tasks, out):
    """:func:`_attention` over workers: worker ``w`` runs ``tasks[worker_ptr[w]:worker_ptr[w
    + 1]]`` (task = sentence * heads + head), each task with the same arithmetic."""
    width = out.shape[1]
    d = width // heads
    flat = qkv.reshape(qkv.size)
    o = out.reshape(out.size)
    for w in prange(worker_ptr.size - 1):
        lo, hi = worker_ptr[w], worker_ptr[w + 1]
        lp = _max_length(offsets, tasks, lo, hi, heads)
        kt = np.empty(d * lp, np.float32)
        s = np.empty(ROWS * lp, np.float32)
        for t in range(lo, hi):
            _attention_task(flat, offsets, heads, width, tasks[t], kt, s, o)


# ------------------------------------------------------------------ int8 attention
@jit()
def _absmax_scale(v):
    """``absmax / 127`` (1 where the absmax is 0) and its reciprocal, float32."""
    if v == 0:
        return np.float32(1.0), np.float32(1.0)
    scale = np.float32(v / np.float32(127.0))
    return scale, np.float32(1.0) / scale


@jit()
def _attention_int8_task(
    flat, offsets, heads, width, task, qi, kti, vi, sq, sk, sv, rvs, e, ep, out
):
    """One (sentence, head) of the dynamically quantized attention (module notes of
    ``numbaq.models.bert``): int8 ``q``, ``k`` per token, int8 ``v`` per column, uint8
    probabilities per query row; exact int32 dot products in ``i32x16`` registers (16 keys
    of a query row, or 16 columns of an output row).

    ``flat`` is ``qkv`` (T, 3 D) raveled. Scratch, ``Lp >= L`` a multiple of 16: ``qi``
    (Lp * d,) int8, ``kti`` (d * Lp,) int32 (keys transposed, zero-padded), ``vi`` (Lp * d,)
    int32, ``sq``, ``sk`` (Lp,), ``sv``, ``rvs`` (d,), ``e`` (Lp,) float32, ``ep`` (Lp,)
    int32.
    """
    d = width // heads
    ld = 3 * width
    i = task // heads
    c0 = (task % heads) * d
    start = offsets[i]
    length = offsets[i + 1] - start
    lp = (length + 15) // 16 * 16
    scale = np.float32(1.0 / math.sqrt(d))
    for b in range(length):  # q and k: one scale per token and head
        rowq = (start + b) * ld + c0
        mq = np.float32(0.0)
        mk = np.float32(0.0)
        for j in range(d):
            mq = max(mq, abs(flat[rowq + j]))
            mk = max(mk, abs(flat[rowq + width + j]))
        sq[b], rq = _absmax_scale(mq)
        sk[b], rk = _absmax_scale(mk)
        for j in range(d):
            qi[b * d + j] = np.int8(np.rint(flat[rowq + j] * rq))
            kti[j * lp + b] = np.int32(np.rint(flat[rowq + width + j] * rk))
    for j in range(d):
        for b in range(length, lp):
            kti[j * lp + b] = 0
    v0 = start * ld + 2 * width + c0  # v: one scale per column of the head, over the sentence
    for j in range(d):
        sv[j] = 0.0
    for b in range(length):
        for j in range(d):
            sv[j] = max(sv[j], abs(flat[v0 + b * ld + j]))
    for j in range(d):
        sv[j], rv = _absmax_scale(sv[j])
        rvs[j] = rv
    for b in range(length):
        for j in range(d):
            vi[b * d + j] = np.int32(np.rint(flat[v0 + b * ld + j] * rvs[j]))
    zero = splati16(0)
    d16 = d // 16 * 16
    for a in range(length):
        for b0 in range(0, lp, 16):
            acc = zero
            for j in range(d):  # acc += q * k, as acc - (-q) * k (wrapping int32)
                acc = isub16(
                    acc, imul16(splati16(-np.int32(qi[a * d + j])), loadi16(kti, j * lp + b0))
                )
            store16(ep, b0, acc)
        fa = sq[a] * scale
        for b in range(length):
            e[b] = np.float32(ep[b]) * (fa * sk[b])
        best = e[0]
        for b in range(1, length):
            best = max(best, e[b])
        for b in range(length):  # exp(s - max) in (0, 1]: uint8 codes, scale 1/255
            ep[b] = np.int32(np.rint(_exp(e[b] - best) * np.float32(255.0)))
        total = np.int32(0)
        for b in range(length):
            total += ep[b]
        inv = np.float32(1.0) / np.float32(total)
        o = (start + a) * width + c0
        for j0 in range(0, d16, 16):
            acc = zero
            for b in range(length):
                acc = isub16(acc, imul16(splati16(-ep[b]), loadi16(vi, b * d + j0)))
            storef16(out, o + j0, fmul16(tofloat16(acc), fmul16(loadf16(sv, j0), splatf16(inv))))
        for j in range(d16, d):
            r = np.int32(0)
            for b in range(length):
                r += ep[b] * vi[b * d + j]
            out[o + j] = np.float32(r) * (sv[j] * inv)


@jit()
def _int8_scratch(lp, d):
    return (
        np.empty(lp * d, np.int8),
        np.empty(d * lp, np.int32),
        np.empty(lp * d, np.int32),
        np.empty(lp, np.float32),
        np.empty(lp, np.float32),
        np.empty(d, np.float32),
        np.empty(d, np.float32),
        np.empty(lp, np.float32),
        np.empty(lp, np.int32),
    )


@jit()
def _attention_int8(qkv, offsets, heads, out):
    """Dynamically quantized attention on one thread; arguments as :func:`_attention`."""
    width = out.shape[1]
    d = width // heads
    n = (offsets.size - 1) * heads
    lp = _max_length(offsets, np.arange(n), 0, n, heads)
    qi, kti, vi, sq, sk, sv, rvs, e, ep = _int8_scratch(lp, d)
    flat = qkv.reshape(qkv.size)
    o = out.reshape(out.size)
    for task in range(n):
        _attention_int8_task(
            flat, offsets, heads, width, task, qi, kti, vi, sq, sk, sv, rvs, e, ep, o
        )


@jit(parallel=True)
def _attention_int8_par(qkv, offsets, heads, worker_ptr, tasks, out):
    """:func:`_attention_int8` over workers, split as in :func:`_attention_par`."""
    width = out.shape[1]
    d = width // heads
    flat = qkv.reshape(qkv.size)
    o = out.reshape(out.size)
    for w in prange(worker_ptr.size - 1):
        lo, hi = worker_ptr[w], worker_ptr[w + 1]
        lp = _max_length(offsets, tasks, lo, hi, heads)
        qi, kti, vi, sq, sk, sv, rvs, e, ep = _int8_scratch(lp, d)
        for t in range(lo, hi):
            _attention_int8_task(
                flat, offsets, heads, width, tasks[t], qi, kti, vi, sq, sk, sv, rvs, e, ep, o
            )
