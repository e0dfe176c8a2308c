"""Plain-numpy twins of every kernel, written to read like the textbook formula.

Nothing here calls :mod:`numbaq.kernels`. Tests compare each kernel with its twin:
bit for bit for integers (quantized values, zero points) and for the float32
scales, which both compute with the same float32 (or, for the torch rule, float64)
operations in the same order.

    q     = clip(round(x / scale) + zero_point, qmin, qmax)       round half to even
    x_hat = (q - zero_point) * scale
"""

from __future__ import annotations

import itertools

import numpy as np

from .qparams import QScheme

F32 = np.float32
FLT_MIN = F32(np.finfo(np.float32).tiny)
TORCH_SMALL_SCALE = F32(6.1e-5)


def groups(x: np.ndarray, granularity: str, block_size: int | None = None):
    """Reshape ``x`` so that axis -1 of the result runs over one group of values.

    Returns ``(grouped, param_shape)``. Per column the groups are the columns of
    ``x.reshape(-1, K)``, so ``grouped`` is its transpose.
    """
    if granularity == "tensor":
        return x.reshape(1, -1), ()
    k = x.shape[-1]
    if granularity == "row":
        return x.reshape(-1, k), x.shape[:-1]
    if granularity == "column":
        return x.reshape(-1, k).T, (k,)
    return x.reshape(-1, block_size), x.shape[:-1] + (k // block_size,)


def ungroup(values: np.ndarray, x_shape, granularity: str) -> np.ndarray:
    """Inverse of :func:`groups` for an array of the grouped shape."""
    if granularity == "column":
        values = values.T
    return values.reshape(x_shape)


def minmax(x, granularity="tensor", block_size=None):
    """``(min, max)`` of each group, float32, via ``np.min`` / ``np.max``."""
    g, shape = groups(np.asarray(x, np.float32), granularity, block_size)
    return g.min(axis=-1).reshape(shape), g.max(axis=-1).reshape(shape)


def qparams_onnx(lo, hi, qmin, qmax, symmetric, min_scale=FLT_MIN):
    """Scale and zero point in float32 arithmetic (ONNX DynamicQuantizeLinear).

    ``lo``, ``hi`` are float32 arrays; returns ``(scale float32, zero_point int32)``.
    Scales are floored at ``min_scale`` (``QScheme.min_scale``).
    """
    lo = np.minimum(F32(lo), F32(0))
    hi = np.maximum(F32(hi), F32(0))
    if symmetric:
        amax = np.maximum(-lo, hi)
        amax = np.where(amax == 0, F32(1), amax)
        scale = np.maximum(amax / F32((qmax - qmin) / 2), min_scale)
        zero_point = np.full(scale.shape, (qmin + qmax + 1) // 2)
        return scale, zero_point.astype(np.int32)
    span = hi - lo
    span = np.where(span == 0, F32(1), span)  # an all-zero group: range taken as 1
    scale = np.maximum(span / F32(qmax - qmin), min_scale)
    zero_point = np.rint(np.clip(F32(qmin) - lo / scale, F32(qmin), F32(qmax)))
    return scale.astype(np.float32), zero_point.astype(np.int32)


def qparams_torch(lo, hi, qmin, qmax, symmetric):
    """PyTorch's ``ChooseQuantizationParams``, transcribed for scalars, applied to each pair."""
    lo = np.asarray(lo, np.float32)
    scale = np.empty(lo.shape, np.float32)
    zero_point = np.empty(lo.shape, np.int32)
    for i, (a, b) in enumerate(zip(lo.reshape(-1), np.asarray(hi, np.float32).reshape(-1))):
        scale.flat[i], zero_point.flat[i] = _torch_scalar(F32(a), F32(b), qmin, qmax, symmetric)
    return scale, zero_point


def _torch_scalar(lo, hi, qmin, qmax, symmetric):
    lo, hi = min(lo, F32(0)), max(hi, F32(0))
    if symmetric:
        scale = float(max(-lo, hi)) / ((qmax - qmin) / 2)
    else:
        scale = (float(hi) - float(lo)) / (qmax - qmin)
    if F32(scale) == 0 or np.isinf(F32(1) / F32(scale)):
        scale = 0.1
    if scale < TORCH_SMALL_SCALE:  # cut off small scales, stretching min/max alike
        org_scale = F32(scale)
        scale = float(TORCH_SMALL_SCALE)
        if lo == 0:
            hi = TORCH_SMALL_SCALE * F32(qmax - qmin)
        elif hi == 0:
            lo = -TORCH_SMALL_SCALE * F32(qmax - qmin)
        else:
            amplifier = TORCH_SMALL_SCALE / org_scale
            lo, hi = lo * amplifier, hi * amplifier
    if symmetric:
        return F32(scale), (qmin + qmax + 1) // 2
    # zero point from whichever end adds the smaller terms, then nudged into range
    from_min, from_max = qmin - float(lo) / scale, qmax - float(hi) / scale
    err_min = abs(qmin) - abs(float(lo) / scale)
    err_max = abs(qmax) - abs(float(hi) / scale)
    zero_point = from_min if err_min < err_max else from_max
    return F32(scale), int(np.clip(np.rint(zero_point), qmin, qmax))


def qparams(lo, hi, scheme: QScheme):
    """``(scale, zero_point)`` for ranges ``lo``, ``hi`` under ``scheme``."""
    smin, smax = scheme.scale_range
    if scheme.rule == "torch":
        return qparams_torch(lo, hi, smin, smax, scheme.symmetric)
    return qparams_onnx(lo, hi, smin, smax, scheme.symmetric, scheme.min_scale)


def quantize(x, scale, zero_point, qmin, qmax, dtype, reciprocal=False):
    """``q = clip(round(x / scale) + zero_point, qmin, qmax)``, elementwise, float32 math.

    With ``reciprocal`` (PyTorch/fbgemm): ``q = clip(round(fma(x, 1/scale, zero_point)),
    qmin, qmax)``. numpy has no fma, so it is formed in float64: ``x * (1/scale)`` is
    exact there (24 + 24 bits), and adding the integer ``zero_point`` then rounding to
    float32 differs from one fused rounding only if the float64 sum lands exactly on a
    float32 tie (about 2**-29 per value), and even then only changes ``q`` at a .5.
    ``scale`` and ``zero_point`` broadcast against ``x``.
    """
    x = np.asarray(x, np.float32)
    if reciprocal:
        inv = np.float64(F32(1) / F32(scale))
        q = np.rint((x.astype(np.float64) * inv + np.float64(zero_point)).astype(np.float32))
    else:
        q = np.rint(x / F32(scale)) + F32(zero_point)
    return np.clip(q, F32(qmin), F32(qmax)).astype(dtype)


def dequantize(q, scale, zero_point):
    """``x_hat = (q - zero_point) * scale``, in float32."""
    return (np.asarray(q, np.float32) - F32(zero_point)) * F32(scale)


def dynamic_quantize(x, scheme: QScheme):
    """Reference dynamic quantization: ``(q, scale, zero_point)`` for ``x`` under ``scheme``."""
    x = np.asarray(x, np.float32)
    lo, hi = minmax(x, scheme.granularity, scheme.block_size)
    scale, zero_point = qparams(lo, hi, scheme)
    g, _ = groups(x, scheme.granularity, scheme.block_size)
    qmin, qmax = scheme.clamp_range
    gq = quantize(
        g,
        scale.reshape(-1, 1),
        zero_point.reshape(-1, 1),
        qmin,
        qmax,
        scheme.storage,
        scheme.reciprocal,
    )
    return ungroup(gq, x.shape, scheme.granularity), scale, zero_point


def dynamic_quantize_linear(x):
    """ONNX ``DynamicQuantizeLinear`` as the operator's specification writes it."""
    x = np.asarray(x, np.float32)
    x_min = np.minimum(F32(0), x.min())
    x_max = np.maximum(F32(0), x.max())
    y_scale = F32(1.0 if x_max == x_min else (x_max - x_min)) / F32(255)
    y_zero_point = np.rint(np.clip(F32(0) - x_min / y_scale, 0, 255))
    y = np.clip(np.rint(x / y_scale) + y_zero_point, 0, 255)
    return y.astype(np.uint8), y_scale, y_zero_point.astype(np.uint8)


def matmul_integer(a, b, a_zero_point=0, b_zero_point=0):
    """ONNX MatMulInteger: ``(a - za) @ (b - zb)``, exact, as int32.

    ``a_zero_point`` broadcasts per row of ``a`` ((M, 1) or scalar), ``b_zero_point``
    per column of ``b`` ((N,) or scalar). Computed in int64, then wrapped to int32.
    """
    za = np.asarray(a_zero_point, np.int64)
    za = za.reshape(-1, 1) if za.ndim == 1 else za
    lhs = np.asarray(a, np.int64) - za
    rhs = np.asarray(b, np.int64) - np.asarray(b_zero_point, np.int64)
    return (lhs @ rhs).astype(np.int32)


def quantize_weight(w, per_channel=True, narrow_range=True):
    """Symmetric int8 weights: ``scale = absmax / qmax`` per row (or tensor),
    ``q = round(w / scale)``."""
    scheme = QScheme("int8", True, "row" if per_channel else "tensor", narrow_range=narrow_range)
    q, scale, _ = dynamic_quantize(np.asarray(w, np.float32), scheme)
    return q, np.broadcast_to(scale, (q.shape[0],)).astype(np.float32)


def gelu(v):
    """Exact GELU ``0.5 v (1 + erf(v / sqrt 2))``, float64."""
    from math import erf, sqrt

    return 0.5 * v * (1.0 + np.vectorize(erf)(v / sqrt(2.0)))


def quantized_linear(x, w_q, w_scale, bias, scheme: QScheme, activation=None):
    """The dynamic Linear, step by step: quantize ``x``, integer matmul, dequantize.

    ``acc[m, n] = sum_k (q_x[m, k] - zp_x[m]) * q_w[n, k]`` (int32, exact), then
    ``y = float32(acc) * (scale_x[m] * scale_w[n]) + bias[n]``, in float32, in that order.
    Per block (``BLOCK_Q8_0`` activations, or weights with one scale per group ``w_scale``
    (N, K // group)): ``y = sum_b float32(acc_b) * (scale_x[m, b] * scale_w[n, b]) + bias[n]``,
    blocks summed in order. ``activation``: None, "relu" or "gelu".
    """
    x = np.asarray(x, np.float32).reshape(-1, np.shape(w_q)[1])
    w32 = np.asarray(w_q, np.int64)
    q, scale, zero_point = dynamic_quantize(x, scheme)
    w_scale = np.asarray(w_scale, np.float32)
    if scheme.granularity == "block" or w_scale.ndim == 2:
        b = w32.shape[1] // w_scale.shape[1] if w_scale.ndim == 2 else scheme.block_size
        n_blocks = x.shape[1] // b
        a_scale = np.asarray(scale, np.float32).reshape(x.shape[0], -1)
        a_scale = np.repeat(a_scale, n_blocks // a_scale.shape[1], axis=1)
        w_scale = w_scale if w_scale.ndim == 2 else np.repeat(w_scale[:, None], n_blocks, 1)
        y = np.zeros((x.shape[0], w32.shape[0]), np.float32)
        for j in range(n_blocks):
            acc_b = q[:, j * b : (j + 1) * b].astype(np.int64) @ w32[:, j * b : (j + 1) * b].T
            y += acc_b.astype(np.int32).astype(np.float32) * (a_scale[:, j : j + 1] * w_scale[:, j])
    else:
        scale = np.broadcast_to(scale, (x.shape[0],)).reshape(-1, 1)
        zero_point = np.broadcast_to(zero_point, (x.shape[0],)).reshape(-1, 1)
        acc = ((q.astype(np.int64) - zero_point) @ w32.T).astype(np.int32)
        y = acc.astype(np.float32) * (scale * np.asarray(w_scale, np.float32))
    if bias is not None:
        y = y + np.asarray(bias, np.float32)
    if activation == "relu":
        y = np.maximum(y, np.float32(0))
    elif activation == "gelu":
        y = gelu(y.astype(np.float64)).astype(np.float32)
    return y.astype(np.float32)


def _sigmoid(v):
    return np.float32(1) / (np.float32(1) + np.exp(-v))


def lstm_cell(xg, hg, c):
    """One LSTM step from the gate pre-activations ``xg``, ``hg`` (B, 4H), gates i, f, g, o.

    ``c' = f c + i g``, ``h' = o tanh(c')``; returns ``(h', c')`` in float32.
    """
    i, f, g, o = np.split(np.asarray(xg, np.float32) + np.asarray(hg, np.float32), 4, axis=-1)
    c_new = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    return (_sigmoid(o) * np.tanh(c_new)).astype(np.float32), c_new.astype(np.float32)


def gru_cell(xg, hg, h):
    """One GRU step from ``xg``, ``hg`` (B, 3H), gates r, z, n:
    ``n = tanh(xg_n + r hg_n)``, ``h' = (1 - z) n + z h``."""
    xr, xz, xn = np.split(np.asarray(xg, np.float32), 3, axis=-1)
    hr, hz, hn = np.split(np.asarray(hg, np.float32), 3, axis=-1)
    r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    return ((np.float32(1) - z) * n + z * h).astype(np.float32)


def add_layer_norm(x, residual, weight, bias, eps):
    """``LayerNorm(x + residual)`` over the last axis: ``(v - mean) / sqrt(var + eps) * w + b``."""
    v = (np.asarray(x, np.float32) + np.asarray(residual, np.float32)).astype(np.float64)
    mean = v.mean(axis=-1, keepdims=True)
    var = ((v - mean) ** 2).mean(axis=-1, keepdims=True)
    return ((v - mean) / np.sqrt(var + eps) * weight + bias).astype(np.float32)


def attention(q, k, v, offsets, heads):
    """Per sentence and head: ``softmax(q k^T / sqrt(d)) v``, in float64."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    out = np.empty(q.shape)
    d = q.shape[1] // heads
    for start, stop in itertools.pairwise(offsets):
        for h in range(heads):
            cols = slice(h * d, (h + 1) * d)
            s = q[start:stop, cols] @ k[start:stop, cols].T / np.sqrt(d)
            w = np.exp(s - s.max(axis=1, keepdims=True))
            out[start:stop, cols] = (w / w.sum(axis=1, keepdims=True)) @ v[start:stop, cols]
    return out.astype(np.float32)


def attention_int8(q, k, v, offsets, heads):
    """The dynamically quantized attention, per sentence and head (``kernels.transformer``).

    ``q``, ``k``: int8 per token (``scale = absmax / 127``, ``round(x / scale)``); ``v``:
    int8 per column over the sentence; ``e = exp(s - max)`` as uint8 ``round(255 e)``;
    ``out = float32(sum_b e_q v_q) * (scale_v / sum_b e_q)``. Float32 like the kernel, but
    numpy's ``exp`` (the kernel's is within 3 ulps), so a probability code can differ by 1.
    Returns ``(out, codes)``: codes ``{"q", "k", "v"}`` (T, D) int8 of every head.
    """
    q, k, v = (np.asarray(a, np.float32) for a in (q, k, v))
    out = np.empty(q.shape, np.float32)
    codes = {name: np.empty(q.shape, np.int8) for name in "qkv"}
    d = q.shape[1] // heads
    f = np.float32

    def per(x, axis):
        amax = np.abs(x).max(axis=axis, keepdims=True)
        scale = np.where(amax == 0, f(1), amax / f(127)).astype(f)
        return np.rint(x * (f(1) / scale)).astype(np.int8), scale

    for start, stop in itertools.pairwise(offsets):
        for h in range(heads):
            cols = slice(h * d, (h + 1) * d)
            (qi, sq), (ki, sk), (vi, sv) = (
                per(q[start:stop, cols], 1),
                per(k[start:stop, cols], 1),
                per(v[start:stop, cols], 0),
            )
            for name, c in zip("qkv", (qi, ki, vi)):
                codes[name][start:stop, cols] = c
            acc = qi.astype(np.int32) @ ki.astype(np.int32).T
            s = acc.astype(f) * ((sq * f(1 / np.sqrt(d))) * sk.T)
            e = np.rint(np.exp(s - s.max(axis=1, keepdims=True)) * f(255)).astype(np.int32)
            pv = (e @ vi.astype(np.int32)).astype(f)
            inv = f(1) / e.sum(axis=1, keepdims=True).astype(f)
            out[start:stop, cols] = pv * (sv * inv)
    return out, codes


def tdpbusd(c, a, b):
    """AMX's ``tdpbusd`` on numpy tiles: ``C[m, n] + sum_k sum_i A[m, 4 k + i] B[k, 4 n + i]``.

    ``a`` (rows, 4 K) uint8, ``b`` (K, 4 N) int8 in the 4-byte-interleaved layout (row ``k``
    holds K values ``4 k .. 4 k + 3`` of each of the N columns side by side), ``c`` (rows,
    N) int32; the sum in int64, then wrapped to int32 as the instruction's adds wrap. The
    twin the kernels run is ``numbaq.kernels.amx_twin.tdpbusd``.

    Examples
    --------
    >>> a = np.full((1, 4), 255, np.uint8); b = np.full((1, 4), -128, np.int8)
    >>> tdpbusd(np.zeros((1, 1), np.int32), a, b).tolist()  # 4 * 255 * -128
    [[-130560]]
    """
    rows, n = c.shape
    quads = a.shape[1] // 4
    a4 = a.astype(np.int64).reshape(rows, quads, 4)
    b4 = b.astype(np.int64).reshape(quads, n, 4)
    total = c.astype(np.int64) + np.einsum("mki,kni->mn", a4, b4)
    return ((total + 2**31) % 2**32 - 2**31).astype(np.int32)


# ---- GGUF blocks (llama.cpp's formats) ---------------------------------------------------
# Twins of ``numbaq.models.gguf.dequantize_blocks``. A row of a GGUF tensor is a run of
# blocks of 32 values, each block its scale(s) (IEEE half, little-endian) and its codes:
#
#     Q8_0  34 bytes: d (fp16), q[32] (int8)             x[i] = d * q[i]
#     Q4_0  18 bytes: d (fp16), qs[16] (two 4-bit codes)  x[i] = d * (q[i] - 8)
#     Q4_1  20 bytes: d (fp16), m (fp16), qs[16]          x[i] = d * q[i] + m
#
# where, for the 4-bit formats, q[j] = qs[j] & 0x0F and q[j + 16] = qs[j] >> 4 (the low
# nibbles are elements 0..15, the high nibbles 16..31). Computed in float32, as gguf-py does.


def _gguf_blocks(blocks, block_bytes: int) -> tuple[np.ndarray, tuple]:
    """``blocks`` (..., n * block_bytes) uint8 as ``(n_blocks, block_bytes)``, and the
    leading shape of the result."""
    blocks = np.asarray(blocks, np.uint8)
    return blocks.reshape(-1, block_bytes), blocks.shape[:-1]


def _fp16(two_bytes: np.ndarray) -> np.ndarray:
    """Little-endian IEEE half values, ``(n, 2)`` uint8 -> ``(n, 1)`` float32."""
    return np.ascontiguousarray(two_bytes).view("<f2").astype(F32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """``(n, 16)`` bytes -> ``(n, 32)`` 4-bit codes in [0, 15]: low nibbles, then high."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1)


def dequantize_q8_0(blocks) -> np.ndarray:
    """Q8_0 blocks to float32: ``x = d * q``.

    Parameters
    ----------
    blocks : (..., n * 34) uint8
        Rows of Q8_0 blocks (``d`` fp16, then 32 int8 codes).

    Returns
    -------
    (..., n * 32) float32 ndarray
        The block values, in order.

    Examples
    --------
    >>> d = np.float16(0.5).tobytes()
    >>> block = np.frombuffer(d + np.arange(-16, 16, dtype=np.int8).tobytes(), np.uint8)
    >>> dequantize_q8_0(block)[:3].tolist()
    [-8.0, -7.5, -7.0]
    """
    b, lead = _gguf_blocks(blocks, 34)
    d = _fp16(b[:, 0:2])
    q = b[:, 2:34].view(np.int8).astype(F32)
    return (d * q).reshape(*lead, -1)


def dequantize_q4_0(blocks) -> np.ndarray:
    """Q4_0 blocks to float32: ``x = d * (q - 8)``.

    Parameters
    ----------
    blocks : (..., n * 18) uint8
        Rows of Q4_0 blocks (``d`` fp16, then 16 bytes of 4-bit codes).

    Returns
    -------
    (..., n * 32) float32 ndarray
        The block values, in order.

    Examples
    --------
    >>> block = np.frombuffer(np.float16(2).tobytes() + bytes([0x9F] * 16), np.uint8)
    >>> x = dequantize_q4_0(block)  # low nibble 0xF -> 2 * 7, high nibble 0x9 -> 2 * 1
    >>> x[0].item(), x[16].item()
    (14.0, 2.0)
    """
    b, lead = _gguf_blocks(blocks, 18)
    d = _fp16(b[:, 0:2])
    q = _nibbles(b[:, 2:18]).astype(F32)
    return (d * (q - F32(8))).reshape(*lead, -1)


def dequantize_q4_1(blocks) -> np.ndarray:
    """Q4_1 blocks to float32: ``x = d * q + m`` (the product rounded, then the sum).

    Parameters
    ----------
    blocks : (..., n * 20) uint8
        Rows of Q4_1 blocks (``d`` fp16, ``m`` fp16, then 16 bytes of 4-bit codes).

    Returns
    -------
    (..., n * 32) float32 ndarray
        The block values, in order.

    Examples
    --------
    >>> dm = np.array([0.5, -4], np.float16).tobytes()
    >>> block = np.frombuffer(dm + bytes([0x30] * 16), np.uint8)
    >>> x = dequantize_q4_1(block)  # low nibble 0 -> m, high nibble 3 -> 1.5 + m
    >>> x[0].item(), x[16].item()
    (-4.0, -2.5)
    """
    b, lead = _gguf_blocks(blocks, 20)
    d = _fp16(b[:, 0:2])
    m = _fp16(b[:, 2:4])
    q = _nibbles(b[:, 4:20]).astype(F32)
    return (d * q + m).reshape(*lead, -1)


def quantize_q4_1(w):
    """llama.cpp's Q4_1 quantizer (``quantize_row_q4_1_ref``): blocks of 32 along the
    last axis, ``d = (max - min) / 15``, ``q = min(15, int(fl((x - min) * (1 / d)) + 0.5))``
    (0 where ``d`` is 0), ``d`` and ``m = min`` stored in half precision.

    Parameters
    ----------
    w : (N, K) float
        ``K`` a multiple of 32.

    Returns
    -------
    q : (N, K) uint8
        Codes in [0, 15].
    d, m : (N, K // 32) float32
        The stored scale and offset (half-precision values), ``w ~ d * q + m``.

    Examples
    --------
    >>> q, d, m = quantize_q4_1(np.linspace(-1, 2, 32, dtype=np.float32)[None])
    >>> q[0, [0, 31]].tolist(), d.item(), m.item()
    ([0, 15], 0.199951171875, -1.0)
    """
    w = np.asarray(w, F32)
    blocks = w.reshape(w.shape[0], -1, 32)
    lo, hi = blocks.min(axis=2), blocks.max(axis=2)
    d = (hi - lo) / F32(15)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, F32(1) / d, F32(0)).astype(F32)
    x = (blocks - lo[..., None]) * inv[..., None]
    q = np.minimum(15, (x + F32(0.5)).astype(np.int8)).astype(np.uint8)
    half = lambda v: v.astype(np.float16).astype(F32)  # noqa: E731
    return q.reshape(w.shape), half(d), half(lo)


def q4_linear(x, q, d, m, bias=None):
    """The 4-bit block Linear (:mod:`numbaq.kernels.q4`), step by step.

    ``x`` (M, K) quantized in blocks of 32 by ``BLOCK_Q8_0`` (codes ``c``, scales ``sa``),
    ``ss = sa * float32(sum of the block's codes)``; then for each block ``b`` in order
    ``y = y + (float32(dot_b) * (sa_b * d_b) + m_b * ss_b)``, ``dot_b = sum q c`` (int32),
    and ``y + bias``: float32 throughout, one rounding per operation.

    Parameters
    ----------
    x : (M, K) float32
    q : (N, K) uint8
        Codes in [0, 15].
    d, m : (N, K // 32) float32
        Block scales and offsets: ``w = d * q + m``.
    bias : (N,) float32, optional

    Returns
    -------
    (M, N) float32 ndarray

    Examples
    --------
    >>> q, d, m = quantize_q4_1(np.ones((2, 32), np.float32))
    >>> q4_linear(np.ones((1, 32), np.float32), q, d, m).tolist()
    [[32.0, 32.0]]
    """
    from .schemes import BLOCK_Q8_0

    x = np.asarray(x, F32)
    c, sa, _ = dynamic_quantize(x, BLOCK_Q8_0)
    c = c.astype(np.int64).reshape(x.shape[0], -1, 32)
    sa = np.asarray(sa, F32).reshape(x.shape[0], -1)
    ss = sa * c.sum(axis=2).astype(F32)
    qb = np.asarray(q, np.int64).reshape(q.shape[0], -1, 32)
    y = np.zeros((x.shape[0], q.shape[0]), F32)
    for b in range(qb.shape[1]):
        dot = (c[:, b] @ qb[:, b].T).astype(F32)
        y = y + (dot * (sa[:, b, None] * d[None, :, b]) + m[None, :, b] * ss[:, b, None])
    return y if bias is None else y + np.asarray(bias, F32)


# ------------------------------------------------------------------ decoder (numbaq.models.llama)
def rms_norm(h, weight, eps):
    """``h / sqrt(mean(h^2) + eps) * weight`` over the last axis, in float64."""
    h = np.asarray(h, np.float64)
    inv = 1.0 / np.sqrt((h * h).mean(axis=-1, keepdims=True) + eps)
    return h * inv * np.asarray(weight, np.float64)


def rope(x, positions, theta):
    """Rotary position embedding of ``x`` (T, heads, d) at ``positions`` (T,) (float64):
    with ``x1, x2`` the halves of each head and ``a = p * theta^(-2i/d)``,
    ``(x1, x2) -> (x1 cos a - x2 sin a, x2 cos a + x1 sin a)``."""
    x = np.asarray(x, np.float64)
    d = x.shape[-1]
    a = np.asarray(positions, np.float64)[:, None] * theta ** (-np.arange(0, d, 2) / d)
    cos, sin = np.cos(a)[:, None, :], np.sin(a)[:, None, :]
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def gqa_attention(q, k, v):
    """Causal grouped-query attention of one sequence (float64): ``q`` (T, H, d), ``k``,
    ``v`` (T, H_kv, d); query head ``h`` reads key/value head ``h // (H / H_kv)``;
    ``softmax(q k^T / sqrt(d) + mask) v`` with the mask hiding later positions."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    t, heads, d = q.shape
    group = heads // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    s = np.einsum("thd,uhd->htu", q, k) / np.sqrt(d)
    s[:, np.triu(np.ones((t, t), bool), 1)] = -np.inf
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("htu,uhd->thd", p, v)


def swiglu(gate, up):
    """``silu(gate) * up`` with ``silu(g) = g / (1 + exp(-g))`` in float64."""
    g = np.asarray(gate, np.float64)
    return g / (1 + np.exp(-g)) * np.asarray(up, np.float64)


def llama_forward(params, ids, config):
    """Logits (T, vocab) of a Llama decoder on one sequence, every step in float64 from the
    arrays in transformers' names (``embed_tokens.weight``, ``layers.{i}.*``,
    ``norm.weight``, ``lm_head.weight``) and a :class:`numbaq.models.llama.LlamaConfig`."""
    c = config
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    h = p["embed_tokens.weight"][np.asarray(ids)]
    t, d = h.shape[0], c.head_dim
    pos = np.arange(t)
    for i in range(c.num_hidden_layers):
        a = f"layers.{i}."
        x = rms_norm(h, p[a + "input_layernorm.weight"], c.rms_norm_eps)
        q = (x @ p[a + "self_attn.q_proj.weight"].T).reshape(t, -1, d)
        k = (x @ p[a + "self_attn.k_proj.weight"].T).reshape(t, -1, d)
        v = (x @ p[a + "self_attn.v_proj.weight"].T).reshape(t, -1, d)
        q, k = rope(q, pos, c.rope_theta), rope(k, pos, c.rope_theta)
        h = h + gqa_attention(q, k, v).reshape(t, -1) @ p[a + "self_attn.o_proj.weight"].T
        x = rms_norm(h, p[a + "post_attention_layernorm.weight"], c.rms_norm_eps)
        m = swiglu(x @ p[a + "mlp.gate_proj.weight"].T, x @ p[a + "mlp.up_proj.weight"].T)
        h = h + m @ p[a + "mlp.down_proj.weight"].T
    x = rms_norm(h, p["norm.weight"], c.rms_norm_eps)
    head = p.get("lm_head.weight", p["embed_tokens.weight"])
    return (x @ head.T).astype(np.float32)
