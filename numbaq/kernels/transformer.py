"""Transformer pieces for the real models: LayerNorm with its residual, and attention
over ragged batches. Float32 data, float64 sums where they round most."""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ..config import jit


@jit(parallel=True)
def _add_layer_norm(x, residual, weight, bias, eps, out):
    """``out = LayerNorm(x + residual)`` row by row: ``(v - mean) / sqrt(var + eps) * weight
    + bias`` with ``v = x + residual``; ``x``, ``residual``, ``out`` (T, D) float32."""
    d = x.shape[1]
    for t in prange(x.shape[0]):
        mean = 0.0
        for j in range(d):
            mean += np.float32(x[t, j] + residual[t, j])
        mean /= d
        var = 0.0
        for j in range(d):
            c = np.float32(x[t, j] + residual[t, j]) - mean
            var += c * c
        inv = 1.0 / math.sqrt(var / d + eps)
        for j in range(d):
            v = np.float32(x[t, j] + residual[t, j])
            out[t, j] = np.float32((v - mean) * inv) * weight[j] + bias[j]


@jit(parallel=True)
def _attention(q, k, v, offsets, heads, out):
    """``softmax(q k^T / sqrt(d)) v`` per sentence and head of a ragged batch.

    ``q``, ``k``, ``v``, ``out`` (T, D) float32; sentence ``i`` is rows
    ``offsets[i]:offsets[i + 1]``; ``d = D / heads``.
    """
    width = q.shape[1]
    d = width // heads
    scale = np.float32(1.0 / math.sqrt(d))
    n_tasks = (offsets.size - 1) * heads
    for task in prange(n_tasks):
        i = task // heads
        c0 = (task % heads) * d
        start, stop = offsets[i], offsets[i + 1]
        length = stop - start
        kt = np.empty((d, length), np.float32)  # this head's keys, transposed: rows contiguous
        for b in range(length):
            for j in range(d):
                kt[j, b] = k[start + b, c0 + j]
        scores = np.empty(length, np.float32)
        for a in range(length):
            scores[:] = 0
            for j in range(d):
                qj = q[start + a, c0 + j] * scale
                for b in range(length):
                    scores[b] += qj * kt[j, b]
            best = scores.max()
            total = np.float32(0.0)
            for b in range(length):
                scores[b] = np.float32(math.exp(scores[b] - best))
                total += scores[b]
            row = out[start + a, c0 : c0 + d]
            row[:] = 0
            for b in range(length):
                w = scores[b] / total
                for j in range(d):
                    row[j] += w * v[start + b, c0 + j]
