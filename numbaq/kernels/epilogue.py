"""What happens to an int32 accumulator tile after the K loop.

The GEMM core computes the raw dot products of *shifted* operands: activations
``a'`` as uint8 and weights ``b'`` as int8 (the only pair ``vpdpbusd`` takes)::

    acc[m, n] = sum_k a'[m, k] * b'[n, k]                 (int32, wrapping)

With ``a = a' - shift_a`` and ``b = b' + shift_b`` (0 or 128 each) and zero points
``za``, ``zb``, the product ONNX ``MatMulInteger`` asks for expands to::

    sum_k (a - za)(b - zb) = acc - zb' * row_sums[m] - za' * col_sums[n] + K * za' * zb'
    where za' = za + shift_a, zb' = zb - shift_b,
          row_sums[m] = sum_k a'[m, k], col_sums[n] = sum_k b'[n, k]

All of it is arithmetic modulo 2**32, so it is exact whenever the true result fits
in int32, even if a partial sum wraps. The dequantizing epilogue then gives::

    y[m, n] = float32(acc - za'[m] * col_sums[n]) * (scale_a[m] * scale_w[n]) + bias[n]

(weights are symmetric, ``zb = 0``, and stored as int8, ``shift_b = 0``; a Linear
without bias adds zeros), followed by an optional ReLU or GELU. Each register tile lands
in a small scratch (in L1) that the generated ``_store_f32_full`` dequantizes into ``y``
one vector of columns at a time (:func:`_store_f32`, its scalar twin, takes the last,
partial panel): measured faster here than the same epilogue on the accumulators in
registers. The helpers index flat outputs: a slice per row costs Numba a reference count
(an atomic operation) each time, which had made the epilogue 12% of a Linear.
"""

from __future__ import annotations

import numpy as np

from ..config import jit
from .mathf import _gelu

ACT_NONE, ACT_RELU, ACT_GELU = 0, 1, 2

SHIFT = 128
"""The lhs shift: int8 codes ``a`` go to the GEMM as uint8 ``a + SHIFT`` (their sign bit
flipped), uint8 weights as int8 ``b - SHIFT``; the sums above correct for it."""


@jit()
def _activate(v, act):
    """ReLU (``act == 1``) or exact GELU, ``0.5 x (1 + erf(x / sqrt 2))`` (``act == 2``,
    erf to 5e-7, see ``kernels.mathf``)."""
    if act == ACT_RELU:
        return max(v, np.float32(0.0))
    if act == ACT_GELU:
        return _gelu(v)
    return v


@jit()
def _store_i32(acc, ld_acc, rows, m, n0, ncols, out, ldo):
    """Copy a ``rows x ncols`` tile of ``acc`` (row stride ``ld_acc``) to rows ``m:`` and
    columns ``n0:`` of ``out``, flat with row stride ``ldo``.

    The tile helpers index flat arrays: a slice per row would cost Numba a reference
    count (an atomic) each time.
    """
    for r in range(rows):
        for j in range(ncols):
            out[(m + r) * ldo + n0 + j] = acc[r * ld_acc + j]


@jit()
def _store_f32(acc, ld_acc, rows, m, n0, ncols, a_scale, a_zp, w_scale, col_sums, bias, y, ldy):
    """Dequantize a tile held in scratch ``acc`` (row stride ``ld_acc``) into ``y`` (flat,
    row stride ``ldy``):
    ``y = float32(acc - a_zp[m] * col_sums[n]) * (a_scale[m] * w_scale[n]) + bias[n]``.

    The same float32 operations, in the same order, as ``reference.quantized_linear``.
    """
    for r in range(rows):
        za = a_zp[m + r]
        sa = a_scale[m + r]
        for j in range(ncols):
            n = n0 + j
            y[(m + r) * ldy + n] = (
                np.float32(np.int32(acc[r * ld_acc + j] - za * col_sums[n])) * (sa * w_scale[n])
                + bias[n]
            )


@jit()
def _activate_rows(y, ldy, m, rows, n0, ncols, act):
    """Apply the activation ``act`` in place to rows ``m:m + rows``, columns
    ``n0:n0 + ncols`` of ``y`` (flat, row stride ``ldy``).

    Unsigned flat indices: a signed index makes Numba wrap negative ones around, a
    select per element that kept LLVM from vectorizing the loop (GELU 7.8 ns an element
    on a Zen 4 core, 0.7 ns vectorized: the same float32 operations).
    """
    if act == ACT_NONE:
        return
    for r in range(rows):
        base = np.uint64((m + r) * ldy + n0)
        if act == ACT_RELU:
            for j in range(ncols):
                i = base + np.uint64(j)
                y[i] = max(y[i], np.float32(0.0))
        else:
            for j in range(ncols):
                i = base + np.uint64(j)
                y[i] = _gelu(y[i])


@jit()
def _row_sums(a, m, k, out):
    """``out[i] = sum_k a[i, :k]`` for uint8 ``a`` (M, lda), int32 ``out`` (M,)."""
    for i in range(m):
        s = np.int32(0)
        for j in range(k):
            s += np.int32(a[i, j])
        out[i] = s


@jit()
def _compensate(out, k, za, zb, row_sums, col_sums):
    """Turn raw shifted dot products into ``sum (a - za)(b - zb)``, in place.

    ``out`` (M, N) int32; ``za`` (M,), ``zb`` (N,), ``row_sums`` (M,), ``col_sums`` (N,)
    int32: the effective zero points and sums of the shifted operands (module notes).
    """
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (
                out[i, j] - zb[j] * row_sums[i] - za[i] * col_sums[j] + np.int32(k) * za[i] * zb[j]
            )
