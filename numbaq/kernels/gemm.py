"""Integer GEMM: weight packing, and the portable plain path.

The paths and how one is chosen live in :mod:`numbaq.kernels.paths`; each path is a
module ``_tiles_<path>`` with the same kernels (``gemm_i32``, ``linear_f32``,
``linear_blocks_f32``, ``dynamic_linear_f32``, ``recurrence``, and their ``_par``
twins), called only by :mod:`numbaq.engine`.

Weights are packed once per path (:func:`pack`): panels of ``PANEL`` output
columns; inside a panel, for each group of 4 consecutive K values, ``NR`` vectors
of ``LANES`` lanes, each lane holding one column's 4 K values (``vnni`` layout) or,
for ``vpmaddwd``, K values 0,1 of all lanes then 2,3 (``pairs`` layout).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..config import jit
from .epilogue import SHIFT, _activate
from .paths import get


def _aligned(values: np.ndarray) -> np.ndarray:
    """``values`` flattened into a new array that starts on a 64-byte boundary (a cache
    line: a panel's vector loads then never straddle two lines; numpy guarantees 16)."""
    buf = np.empty(values.size + 64, values.dtype)
    start = -buf.ctypes.data % 64
    out = buf[start : start + values.size]
    out[:] = values.reshape(-1)
    return out


def pack(w: np.ndarray, path: str) -> np.ndarray:
    """Pack int8 weights ``w`` (N, K) for ``path``: a 1-D int8 array, zero padded, its
    start 64-byte aligned.

    K is padded to a multiple of 4 and N to a multiple of the panel width.
    """
    n, k = w.shape
    spec = get(path)
    kq = -(-k // 4)
    if spec.layout == "rows":
        out = np.zeros((n, 4 * kq), np.int8)
        out[:, :k] = w
        return _aligned(out)
    lanes, nr = spec.lanes, spec.nr
    n_panels = -(-n // spec.panel)
    padded = np.zeros((n_panels * spec.panel, 4 * kq), np.int8)
    padded[:n, :k] = w
    if spec.layout == "vnni":  # [panel][kq][vector][lane][4 K values]
        blocks = padded.reshape(n_panels, nr, lanes, kq, 4).transpose(0, 3, 1, 2, 4)
    else:  # pairs: [panel][kq][vector][K pair][lane][2 K values]
        blocks = padded.reshape(n_panels, nr, lanes, kq, 2, 2).transpose(0, 3, 1, 4, 2, 5)
    return _aligned(blocks)


# ------------------------------------------------------------------ the plain path
# The GEMM entry points of the plain path, with the generated modules' signatures;
# ``_tiles_plain.py`` (generated) adds the model drivers on top. ``w`` is row-major
# (N, 4 * kq_n), flat.


@jit()
def _dot_row(a, a_off, w, w_off, k):
    """``sum_k a[a_off + k] * w[w_off + k]``, uint8 x int8 -> int32 (wrapping).

    Written so LLVM vectorizes it (51 GOPS here against 1.3 for the naive loop):
    sliced views, int16 products (exact: 255 * 128 < 2**15), an explicit int32 sum.
    """
    av = a[a_off : a_off + k]
    wv = w[w_off : w_off + k]
    s = np.int32(0)
    for i in range(k):
        s = np.int32(s + np.int16(av[i]) * np.int16(wv[i]))
    return s


@jit()
def gemm_i32(a, lda, m, w, kq_n, n, out):
    """Raw int32 dot products ``out[i, j] = sum_k a[i, k] * w[j, k]``, plain loops."""
    k = 4 * kq_n
    for i in range(m):
        for j in range(n):
            out[i, j] = _dot_row(a, i * lda, w, j * k, k)


@jit(parallel=True)
def gemm_i32_par(a, lda, m, w, kq_n, n, out, m_block):
    """Parallel twin of :func:`gemm_i32`, over rows (``m_block`` unused)."""
    k = 4 * kq_n
    for i in prange(m):
        for j in range(n):
            out[i, j] = _dot_row(a, i * lda, w, j * k, k)


MR = PANEL = 1  # the plain "tile": one row, one column


@jit()
def _linear_cols(a, lda, i, w, kq_n, c0, c1, a_scale, a_zp, w_scale, col_sums, bias, act, y):
    k = 4 * kq_n
    for j in range(c0, c1):
        acc = np.int32(_dot_row(a, i * lda, w, j * k, k) - a_zp[i] * col_sums[j])
        y[i, j] = _activate(np.float32(acc) * (a_scale[i] * w_scale[j]) + bias[j], act)


@jit()
def linear_f32(a, lda, m, w, kq_n, n, a_scale, a_zp, w_scale, col_sums, bias, act, y):
    """Dequantizing linear over plain loops; see :mod:`numbaq.kernels.epilogue`."""
    for i in range(m):
        _linear_cols(a, lda, i, w, kq_n, 0, n, a_scale, a_zp, w_scale, col_sums, bias, act, y)


@jit(parallel=True)
def linear_f32_par(a, lda, m, w, kq_n, n, a_scale, a_zp, w_scale, col_sums, bias, act, y, m_block):
    """Parallel twin of :func:`linear_f32`, over rows (``m_block`` unused)."""
    for i in prange(m):
        _linear_cols(a, lda, i, w, kq_n, 0, n, a_scale, a_zp, w_scale, col_sums, bias, act, y)


@jit()
def cols_f32(a, lda, m, w, kq_n, n, c0, c1, acc, a_scale, a_zp, w_scale, col_sums, bias, y):
    """Columns ``c0:c1`` of :func:`linear_f32` (no activation; ``acc`` unused)."""
    for i in range(m):
        _linear_cols(a, lda, i, w, kq_n, c0, c1, a_scale, a_zp, w_scale, col_sums, bias, 0, y)


# ------------------------------------------------------- scales per block of K
@jit()
def _blocks_row(a, lda, i, w, kq_n, n, block_kq, a_scale, w_scale, block_sums, bias, act, y):
    k, block, n_blocks = 4 * kq_n, 4 * block_kq, kq_n // block_kq
    for j in range(n):
        total = np.float32(0.0)
        for b in range(n_blocks):
            raw = _dot_row(a, i * lda + b * block, w, j * k + b * block, block)
            dot = np.int32(raw - SHIFT * block_sums[j * n_blocks + b])
            total += np.float32(dot) * (a_scale[i, b] * w_scale[j * n_blocks + b])
        y[i, j] = _activate(total + bias[j], act)


@jit()
def linear_blocks_f32(a, lda, m, w, kq_n, n, block_kq, a_scale, w_scale, block_sums, bias, act, y):
    """Scales per block of K over plain loops (as the generated paths): ``y = sum_b
    float32(dot_b - SHIFT * block_sums[b, n]) * (a_scale[m, b] * w_scale[b, n]) + bias``;
    ``w_scale`` and ``block_sums`` flat, panel by panel (``QuantizedWeight.block_panels``
    with ``PANEL = 1``: ``[n][b]``)."""
    for i in range(m):
        _blocks_row(a, lda, i, w, kq_n, n, block_kq, a_scale, w_scale, block_sums, bias, act, y)


@jit(parallel=True)
def linear_blocks_f32_par(
    a, lda, m, w, kq_n, n, block_kq, a_scale, w_scale, block_sums, bias, act, y, m_block
):
    """Parallel twin of :func:`linear_blocks_f32`, over rows (``m_block`` unused)."""
    for i in prange(m):
        _blocks_row(a, lda, i, w, kq_n, n, block_kq, a_scale, w_scale, block_sums, bias, act, y)
