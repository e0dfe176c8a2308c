"""Integer matmul and the dynamically quantized Linear: public verbs.

::

    qw = quantize_weight(w)                  # int8 per channel, packed once
    y = quantized_linear(x, qw, bias)        # y = x . W^T + b, through int8 and int32
    c = matmul_integer(a, b, za, zb)         # ONNX MatMulInteger, exact int32

The GEMM core multiplies uint8 activations by int8 weights (``vpdpbusd``). Other
dtype pairs are shifted by 128 into that pair and corrected with row and column
sums; see :mod:`numbaq.kernels.epilogue` for the algebra.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from . import config, schemes
from .kernels import epilogue as ke
from .kernels import gemm as kg
from .ops import DEFAULT_SCHEME, _dynamic_quantize_2d, _layout, _raise_nonfinite, as_float32
from .qparams import QScheme
from .weights import QuantizedWeight, quantize_weight

INT32_MAX = 2**31 - 1
ACTIVATIONS = {None: ke.ACT_NONE, "relu": ke.ACT_RELU, "gelu": ke.ACT_GELU}
_INT_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8))


# ------------------------------------------------------------------ paths and limits
def gemm_path() -> tuple[str, str]:
    """``(path, reason)``: the integer GEMM path in use, from ``config.GEMM_PATH``."""
    return _resolve(config.GEMM_PATH)


@functools.cache
def _resolve(requested: str) -> tuple[str, str]:
    return kg.resolve(requested)


@functools.cache
def _kernels(requested: str):
    """``(path, kernel module)`` for a ``config.GEMM_PATH`` value, resolved once."""
    path, _ = _resolve(requested)
    return path, kg.module(path)


@functools.cache
def _lhs_args(sch: QScheme) -> tuple:
    """The scheme's parameters in the order the fused kernels take them."""
    smin, smax = sch.scale_range
    qmin, qmax = sch.clamp_range
    return (
        sch.granularity == "tensor",
        smin,
        smax,
        qmin,
        qmax,
        sch.symmetric,
        sch.rule == "torch",
        sch.reciprocal,
        sch.storage is np.int8,
    )


def info() -> dict:
    """What numbaq runs on: CPU, its features, the GEMM path and why, threads, cache.

    Examples
    --------
    >>> sorted(info())[:3]
    ['cache', 'cpu', 'cpu_features']
    """
    from llvmlite import binding

    path, reason = gemm_path()
    return {
        "cpu": numba.config.CPU_NAME or binding.get_host_cpu_name(),
        "cpu_features": sorted(kg.cpu_features() & kg._all_needed()),
        "gemm_path": path,
        "gemm_path_reason": reason,
        "gemm_paths_available": [p for p in kg.PATHS if kg.supported(p)],
        "threads": numba.get_num_threads(),
        "cache": config.CACHE,
    }


def max_k(a_span: int, b_span: int) -> int:
    """Largest K for which ``sum_k (a - za)(b - zb)`` cannot leave int32.

    ``a_span`` and ``b_span`` bound ``|a - za|`` and ``|b - zb|``. With zero points 0:
    uint8 x int8: 255 * 128 -> K <= 65793; int8 x int8: 128 * 128 -> K <= 131071;
    uint8 x uint8: 255 * 255 -> K <= 33025.

    Examples
    --------
    >>> max_k(255, 128)
    65793
    """
    return INT32_MAX // (a_span * b_span)


def _span(zero_point: np.ndarray, dtype) -> int:
    """Largest ``|q - zero_point|`` over the codes of ``dtype`` and the zero points."""
    info_ = np.iinfo(dtype)
    return int(max(zero_point.max() - info_.min, info_.max - zero_point.min()))


def _check_k(k: int, a_span: int, b_span: int, what: str) -> None:
    limit = max_k(a_span, b_span)
    if k > limit:
        raise ValueError(
            f"K={k} can overflow the int32 accumulator for {what} "
            f"(|a - za| <= {a_span}, |b - zb| <= {b_span}: K must be <= {limit}); "
            "split the product along K and add the parts in int64"
        )


def _parallel(m: int, n: int, k: int) -> bool:
    return m * n * k >= config.GEMM_PARALLEL_MIN and numba.get_num_threads() > 1


# ------------------------------------------------------------------ MatMulInteger
def _int_matrix(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype not in _INT_DTYPES:
        raise TypeError(f"{name} must be uint8 or int8, got {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    return arr


def _zero_points(zp, dtype, n: int, name: str, what: str) -> np.ndarray:
    """A zero point (scalar, or one per ``what``) as an int32 array of length ``n``."""
    if zp is None:
        return np.zeros(n, np.int32)
    arr = np.asarray(zp)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer (of {np.dtype(dtype)}), got {arr.dtype}")
    info_ = np.iinfo(dtype)
    if arr.size and (arr.min() < info_.min or arr.max() > info_.max):
        raise ValueError(f"{name} must lie in [{info_.min}, {info_.max}] for {np.dtype(dtype)}")
    if arr.size == 1:
        return np.full(n, arr.reshape(-1)[0], np.int32)
    if arr.size != n:
        raise ValueError(
            f"{name} must be a scalar or hold one value per {what} ({n}), got shape {arr.shape}"
        )
    return arr.reshape(-1).astype(np.int32)


def _shifted_lhs(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``a'`` uint8 (M, 4 * ceil(K / 4)), zero padded, and the shift (0 or 128)."""
    m, k = a.shape
    buf = np.zeros((m, 4 * -(-k // 4)), np.uint8)
    if a.dtype == np.int8:
        np.bitwise_xor(a.view(np.uint8), 0x80, out=buf[:, :k])  # a + 128
        return buf, 128
    buf[:, :k] = a
    return buf, 0


def matmul_integer(a, b, a_zero_point=None, b_zero_point=None) -> np.ndarray:
    """ONNX ``MatMulInteger``: ``(a - a_zero_point) @ (b - b_zero_point)`` in exact int32.

    Parameters
    ----------
    a : (M, K) uint8 or int8
    b : (K, N) uint8 or int8
    a_zero_point : scalar, (M,) or (M, 1), optional
        Of ``a``'s dtype; a vector holds one zero point per row of ``a``.
    b_zero_point : scalar or (N,), optional
        Of ``b``'s dtype; a vector holds one zero point per column of ``b``.

    Returns
    -------
    (M, N) int32

    Notes
    -----
    .. math:: C_{mn} = \\sum_k (A_{mk} - z^a_m)(B_{kn} - z^b_n)

    Plain text: ``C[m, n] = sum_k (a[m, k] - za[m]) * (b[k, n] - zb[n])``. Every dtype
    pair runs on the uint8 x int8 instruction: int8 ``a`` is shifted up by 128, uint8
    ``b`` down by 128, and row sums of ``a`` and column sums of ``b`` correct for the
    shifts and zero points. K is checked against the int32 bound (:func:`max_k`).
    ``b`` is packed on every call; for fixed weights use :func:`quantized_linear`.

    Examples
    --------
    >>> a = np.array([[11, 7, 3], [10, 6, 2], [9, 5, 1], [8, 4, 0]], np.uint8)
    >>> b = np.array([[1, 4], [2, 5], [3, 6]], np.uint8)
    >>> matmul_integer(a, b, np.uint8(12), np.uint8(0)).tolist()
    [[-38, -83], [-44, -98], [-50, -113], [-56, -128]]
    """
    a = _int_matrix(a, "a")
    b = _int_matrix(b, "b")
    (m, k), (k_b, n) = a.shape, b.shape
    if k != k_b:
        raise ValueError(f"a is (M, K) = {a.shape} and b is (K, N) = {b.shape}: their K differ")
    za = _zero_points(a_zero_point, a.dtype, m, "a_zero_point", "row of a")
    zb = _zero_points(b_zero_point, b.dtype, n, "b_zero_point", "column of b")
    _check_k(k, _span(za, a.dtype), _span(zb, b.dtype), f"{a.dtype} x {b.dtype}")
    a_buf, shift_a = _shifted_lhs(a)
    if b.dtype == np.uint8:
        b_t, shift_b = np.ascontiguousarray((b ^ np.uint8(0x80)).view(np.int8).T), 128
    else:
        b_t, shift_b = np.ascontiguousarray(b.T), 0
    path, _ = gemm_path()
    mod = kg.module(path)
    out = np.empty((m, n), np.int32)
    args = (a_buf.reshape(-1), a_buf.shape[1], m, kg.pack(b_t, path), a_buf.shape[1] // 4, n, out)
    if _parallel(m, n, k):
        mod.gemm_i32_par(*args, kg.m_block(m, n, path, numba.get_num_threads()))
    else:
        mod.gemm_i32(*args)
    za_eff = za + shift_a
    zb_eff = zb - shift_b
    row_sums = np.zeros(m, np.int32)
    if zb_eff.any():
        ke._row_sums(a_buf, m, k, row_sums)
    col_sums = b_t.sum(axis=1, dtype=np.int64).astype(np.int32)
    if za_eff.any() or zb_eff.any():
        ke._compensate(out, k, za_eff, zb_eff, row_sums, col_sums)
    return out


# ------------------------------------------------------------------ the dynamic Linear
def quantized_linear(
    x, qweight: QuantizedWeight, bias=None, scheme=None, activation: str | None = None
) -> np.ndarray:
    """Dynamically quantized Linear: ``y = x . W^T + bias`` through int8 and int32.

    Parameters
    ----------
    x : (..., K) float array
        Activations; quantized on every call from their own range.
    qweight : QuantizedWeight
        From :func:`quantize_weight`, shape (N, K).
    bias : (N,) float array, optional
    scheme : QScheme or str, optional
        Activation scheme, default ``PER_TOKEN_UINT8``. Per tensor (``ONNX``,
        ``TORCH``), per row (``PER_TOKEN_*``) and per block (``BLOCK_Q8_0``, a slower
        plain path) are supported.
    activation : {None, "relu", "gelu"}
        Applied in the epilogue.

    Returns
    -------
    y : (..., N) float32

    Notes
    -----
    One pipeline: dynamic quantization of each row block of ``x`` (stats, qparams,
    quantize), the tiled uint8 x int8 GEMM in int32, then the epilogue

    .. math::

        y_{mn} = s^x_m s^w_n \\left(\\sum_k q^x_{mk} q^w_{nk}
                 - z^x_m \\sum_k q^w_{nk}\\right) + b_n

    Plain text: ``y[m, n] = float32(acc[m, n] - zp_x[m] * col_sums[n]) * (scale_x[m] *
    scale_w[n]) + bias[n]`` with ``acc = q_x . q_w^T`` (int32).

    Examples
    --------
    >>> w = np.array([[0.5, -1.0], [2.0, 0.25]], np.float32)
    >>> y = quantized_linear(np.array([[1.0, 2.0]]), quantize_weight(w), bias=np.ones(2))
    >>> y.astype(float).round(2).tolist()  # exact: [[-0.5, 3.5]]
    [[-0.5, 3.5]]
    """
    sch = DEFAULT_SCHEME if scheme is None else schemes.get(scheme)
    if not isinstance(qweight, QuantizedWeight):
        raise TypeError(
            "qweight must be a QuantizedWeight (from quantize_weight), "
            f"got {type(qweight).__name__}"
        )
    n, k = qweight.shape
    x = as_float32(x)
    if x.ndim == 0 or x.shape[-1] != k:
        raise ValueError(
            f"x must have shape (..., {k}) for weights of shape {qweight.shape}, got {x.shape}"
        )
    x2d = x.reshape(-1, k)
    bias = qweight.zero_bias if bias is None else _bias(bias, n)
    act = ACTIVATIONS.get(activation, -1) if isinstance(activation, (str, type(None))) else -1
    if act < 0:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
    y, _, _ = _linear_2d(x2d, qweight, bias, sch, act)
    return y.reshape(x.shape[:-1] + (n,))


def _linear_2d(x2d, qweight: QuantizedWeight, bias, sch: QScheme, act: int):
    """The dynamic Linear on validated inputs: ``x2d`` (M, K) float32 C-contiguous,
    ``bias`` (N,) float32. Returns ``(y (M, N), scale, zero_point)``, the runtime
    activation parameters: (M,) per row or per tensor, (M, K // block) per block."""
    (m, k), n = x2d.shape, qweight.shape[0]
    y = np.empty((m, n), np.float32)
    if sch.granularity == "block" or qweight.group_size:
        scale = _linear_blocks(x2d, qweight, bias, sch, act, y)
        return y, scale, np.zeros(scale.shape, np.int32)
    if sch.granularity == "column":
        raise ValueError(
            "per-column activation scales cannot be taken out of the sum over K; "
            "use a scheme with granularity 'tensor', 'row' or 'block'"
        )
    lhs = _lhs_args(sch)
    _check_k(k, lhs[4] - lhs[3], 128, "activations x int8 weights")
    path, mod = _kernels(config.GEMM_PATH)
    a_scale = np.empty(m, np.float32)
    a_zp = np.empty(m, np.int32)
    args = (
        x2d,
        *lhs,
        qweight.packed(path),
        -(-k // 4),
        n,
        qweight.scale,
        qweight.col_sums,
        bias,
        act,
        y,
        a_scale,
        a_zp,
    )
    if _parallel(m, n, k):
        threads = numba.get_num_threads()
        status = mod.dynamic_linear_f32_par(
            *args, kg.m_block(m, n, path, threads), config.use_parallel(x2d.size)
        )
    else:
        status = mod.dynamic_linear_f32(*args)
    if status:
        _raise_nonfinite("x", max(status, 0), "rows")
        raise ValueError("the range of x overflows float32 (max - min is Inf); rescale x")
    if sch.storage is np.int8:
        a_zp -= 128  # the kernel's zero points include the +128 shift of int8 codes
    return y, a_scale, a_zp


def _bias(bias, n: int) -> np.ndarray:
    arr = np.asarray(bias)
    if arr.dtype.kind != "f":
        raise TypeError(f"bias must be a float array, got {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"bias must have shape ({n},), got {arr.shape}")
    return np.ascontiguousarray(arr, np.float32)


def _linear_blocks(x2d, qweight: QuantizedWeight, bias, sch: QScheme, act: int, y):
    """Scales per block of K, for the activations, the weights, or both: an int32 dot
    per block, the blocks summed in float32. Returns the activation scales (M, blocks)."""
    block = qweight.group_size or sch.block_size
    if sch.granularity == "block" and qweight.group_size and sch.block_size != block:
        raise ValueError(
            f"activation blocks ({sch.block_size}) must match the weight groups ({block})"
        )
    if not sch.symmetric or sch.storage is not np.int8 or sch.granularity not in ("row", "block"):
        raise ValueError(
            "per-block scales need symmetric int8 activations per row or per block "
            "(PER_TOKEN_INT8, BLOCK_Q8_0)"
        )
    m, k = x2d.shape
    n_blocks = k // block
    layout = _layout(x2d, sch.granularity, sch.block_size)[0]
    q = np.empty(layout.shape, np.int8)
    scale, _ = _dynamic_quantize_2d(layout, sch, q)
    a_scale = scale.reshape(m, -1)
    if a_scale.shape[1] != n_blocks:
        a_scale = np.repeat(a_scale, n_blocks, axis=1)
    w_scale = qweight.scale.T if qweight.group_size else qweight.scale[None, :]
    w_scale = np.ascontiguousarray(  # (blocks, N): each block's scales are contiguous
        np.broadcast_to(w_scale, (n_blocks, qweight.shape[0]))
    )
    a = q.reshape(m, k).view(np.uint8) ^ np.uint8(0x80)  # q + 128: the GEMM takes uint8
    path, mod = _kernels(config.GEMM_PATH)
    if k % 4 or block % 4:  # the packed paths read K four values at a time
        path, mod = "plain", kg.module("plain")
    args = (
        a.reshape(-1),
        k,
        m,
        qweight.packed(path),
        -(-k // 4),
        y.shape[1],
        block // 4,
        a_scale,
        w_scale,
        qweight.block_sums(block),
        bias,
        act,
        y,
    )
    if _parallel(m, y.shape[1], k):
        mod.linear_blocks_f32_par(*args, kg.m_block(m, y.shape[1], path, numba.get_num_threads()))
    else:
        mod.linear_blocks_f32(*args)
    return scale.reshape(m, -1)


__all__ = [
    "INT32_MAX",
    "QuantizedWeight",
    "gemm_path",
    "info",
    "matmul_integer",
    "max_k",
    "quantize_weight",
    "quantized_linear",
]
